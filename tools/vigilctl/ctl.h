/*
 * ctl.h - what vigilctl's commands share: the options every command takes,
 * the exit codes, the dispatch table's row, and the helpers that more than
 * one command uses (usage errors, home and segment resolution, reading a
 * slot, the JSON files under the home).
 *
 * vigilctl is one program built from several files (tools/vigilctl.c holds
 * the table of commands and main(); tools/vigilctl/<command>.c each
 * command); this header is internal to it, never installed.  Every helper
 * prints its own one-line error and returns an exit code or -errno as its
 * contract says, so that each command's messages stay word for word what
 * they were when the tool was one file.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage; `check` follows the monitoring-
 * plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 */
#ifndef VIGILCTL_CTL_H
#define VIGILCTL_CTL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "segment.h"
#include "util.h"
#include "vigil.h"

#define VIGILCTL_VERSION "0.1.0"
#define VIGILCTL_SHM_MODE 0600
/* How long `emit` waits for vigild to verify a new registration. */
#define VIGILCTL_ACK_WAIT_MS 2000
/* Requests to vigild: poll period, and how long `spawn --wait` and the
 * control requests wait by default. */
#define VIGILCTL_POLL_MS 20
#define VIGILCTL_SPAWN_WAIT_S 10
#define VIGILCTL_CONTROL_WAIT_S 15.0
/* Generated worker ids: worker-<type>-<NNN>, NNN in 1..this. */
#define VIGILCTL_ID_NUM_MAX 100000
/* vigild's limits on a spawn request: argument count and length, file size. */
#define VIGILCTL_CMD_ARGS_MAX 256
#define VIGILCTL_CMD_ARG_BYTES_MAX 4096
#define VIGILCTL_REQUEST_BYTES_MAX 65536
/* Largest file vigilctl reads from coordination/. */
#define VIGILCTL_FILE_MAX (1u << 20)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Options every subcommand takes (--home, --shm), resolved as the README
 * describes: option, else environment, else derived from the home. */
struct common {
	const char *home_arg;
	const char *shm_arg;
	char home[4096];
	char shm[VIGIL_SHM_NAME_MAX + 1];
};

typedef int (*cmd_fn)(int argc, char **argv, struct common *c);

/* A row of the table of commands (tools/vigilctl.c). */
struct cmd {
	const char *name;
	cmd_fn fn;
	const char *args; /* synopsis after the name */
	const char *help; /* one line */
};

/*
 * The shared preamble of a command's option parsing.  Each command lists
 * its own options, then COMMON_OPTIONS, and loops
 *
 *	ctl_opt_begin();
 *	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1)
 *		switch (opt) { its own options...; case CTL_OPT_HELP: return EXIT_OK;
 *		               default: return ctl_bad_option(name, opt, argv); }
 *
 * ctl_opt_next stores --home and --shm in c (the last one given wins, over
 * the global ones before the command) and answers --help itself.
 */
struct ctl_opts {
	const char *name;                /* the command's name in the table */
	const char *shortopts;           /* ":h", or "+:h" to stop at the first operand */
	const struct option *longopts;   /* the command's own, then COMMON_OPTIONS */
	void (*help)(const void *ctx);   /* prints what follows the usage line */
	const void *ctx;                 /* passed to help */
};
/* ctl_opt_next's answer once --help has been printed (not an option char). */
#define CTL_OPT_HELP (-2)
/* Starts parsing argv (argv[0] the command's name) with getopt_long,
 * errors reported by the caller (opterr 0). */
void ctl_opt_begin(void);
/* The next option that is the command's own, '?' or ':' for an unknown
 * option or a missing argument (for ctl_bad_option), CTL_OPT_HELP after
 * printing `vigilctl NAME --help`, or -1 after the last option (optind is
 * then the first operand). */
int ctl_opt_next(const struct ctl_opts *o, int argc, char **argv, struct common *c);

/* The last rows of every subcommand's option table: --home, --shm, --help
 * and the end. */
#define COMMON_OPTIONS                                                                                     \
	{"home", required_argument, NULL, 'H'}, {"shm", required_argument, NULL, 'S'},                    \
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}

/* One live slot as status, check and top see it (ctl_read_slot). */
struct row {
	uint32_t slot;
	uint64_t gen;        /* the slot's generation when it was read */
	int32_t pid;
	const char *state;
	int health;          /* -1: unknown (the view is not about this owner) */
	int progress;        /* -1: unknown */
	int64_t missed;      /* -1: unknown */
	int64_t beats;       /* -1: unknown */
	uint64_t last_seen_ms; /* 0: never / unknown */
	char id[300];
	char type[300];
	char task[300];
};

/* The metrics documents under coordination/metrics/: heartbeat, restart, autofix. */
#define METRICS_DOCS 3

/* ---- the commands (each in tools/vigilctl/<file>.c), run by main() ---- */

/* Each runs `vigilctl NAME ARGS...` with argv[0] the command's name and c
 * holding the global --home/--shm given before it; returns the exit code. */
int ctl_cmd_status(int argc, char **argv, struct common *c);     /* status.c */
int ctl_cmd_top(int argc, char **argv, struct common *c);        /* top.c */
int ctl_cmd_check(int argc, char **argv, struct common *c);      /* check.c */
int ctl_cmd_metrics(int argc, char **argv, struct common *c);    /* metrics.c */
int ctl_cmd_emit(int argc, char **argv, struct common *c);       /* emit.c */
int ctl_cmd_spawn(int argc, char **argv, struct common *c);      /* spawn.c */
int ctl_cmd_restart(int argc, char **argv, struct common *c);    /* restart.c */
int ctl_cmd_cleanup(int argc, char **argv, struct common *c);    /* control.c */
int ctl_cmd_breakers(int argc, char **argv, struct common *c);   /* control.c */
int ctl_cmd_breaker(int argc, char **argv, struct common *c);    /* control.c */
int ctl_cmd_quarantine(int argc, char **argv, struct common *c); /* control.c */

/* ---- the table (tools/vigilctl.c) ---- */

/* The row of the command called name, or NULL. */
const struct cmd *ctl_find_cmd(const char *name);
/* "usage: vigilctl NAME ARGS" and the one-line help, to out. */
void ctl_usage_cmd(FILE *out, const struct cmd *cmd);

/* ---- the shared preamble and helpers (common.c) ---- */

/* Reports an unknown option or a missing argument from getopt_long (run
 * with opterr = 0); returns EXIT_USAGE. */
int ctl_bad_option(const char *cmd, int opt, char **argv);
/* Strict decimal integer in [lo, hi]. */
bool ctl_parse_int(const char *s, long lo, long hi, long *out);
/* Strict decimal number of seconds in [lo, hi]. */
bool ctl_parse_seconds(const char *s, double lo, double hi, double *out);
/* A printable rendering of a user- or environment-given string. */
const char *ctl_render_arg(const char *s, char *buf, size_t len);
/* After getopt: EXIT_OK when no operand is left, else EXIT_USAGE with the
 * reason on stderr. */
int ctl_no_operands(const char *cmd, int argc, char **argv);
/* Resolves c's home and segment name; EXIT_OK, or the exit code with one
 * line on stderr. */
int ctl_resolve(struct common *c);
/* Opens c's segment without creating it; EXIT_OK, or EXIT_FAIL with one
 * line on stderr. */
int ctl_open_segment(const struct common *c, struct vigil_segment *seg, bool writable);
/* The vigild holding the segment's lock: its pid, 0 when none, -1 when it
 * is in another pid namespace. */
pid_t ctl_supervisor_alive(const struct vigil_segment *seg);
/* A supervisor pid for a message: "?" when it is not visible here. */
const char *ctl_pid_text(long long pid, char buf[24]);
/* A 64-byte id field of the segment as a printable string. */
void ctl_slot_id(char out[300], const char field[VIGIL_ID_MAX]);
/* Reads slot i into r; false when the slot holds no live worker. */
bool ctl_read_slot(const struct vigil_segment *seg, uint32_t i, struct row *r);

/* Sleeps ms milliseconds (resuming after a signal). */
void ctl_sleep_ms(long ms);
/* Opens home-relative directory rel (creating it when create): fd or -errno. */
int ctl_open_home_dir(const struct common *c, const char *rel, bool create);
/* Opens (creating) queue directory rel for a request: fd, or -errno with
 * one line on stderr. */
int ctl_open_queue_dir(const char *cmd, const struct common *c, const char *rel);
/* True when dirfd holds name. */
bool ctl_exists_at(int dirfd, const char *name);
/* Publishes doc whole as dirfd/name (temp file, fsync, link or rename);
 * exclusive refuses an existing name.  0 or -errno. */
int ctl_publish_json(int dirfd, const char *name, const json_t *doc, bool exclusive);
/* Loads the JSON object dirfd/name into *out: 0; -ENOENT when missing;
 * another -errno (-EBADMSG: not an object) with why set. */
int ctl_load_object(int dirfd, const char *name, json_t **out, char *why, size_t why_len);
/* A printable copy of a string read from a file. */
const char *ctl_safe_text(const char *s, char *out, size_t len);
/* The string member key of obj, or NULL. */
const char *ctl_obj_str(const json_t *obj, const char *key);
/* Whether a vigild supervises c's home: 1 yes (*pid set), 0 no, -1 cannot
 * tell (why set). */
int ctl_vigild_running(const struct common *c, pid_t *pid, char *why, size_t why_len);
/* Seconds as a JSON integer when whole, else a real. */
json_t *ctl_json_seconds(double v);
/* Worker types whose breaker in dirfd is open: the first max sorted into
 * types; returns the total. */
size_t ctl_read_open_breakers(int dirfd, char (*types)[VIGIL_ID_MAX + 1], size_t max);
/* Copies src into a 65-byte field, truncating. */
void ctl_copy_field(char dst[VIGIL_ID_MAX + 1], const char *src);

/* ---- shared by more than one command, defined with its first user ---- */

/* Prints done as one compact JSON line on stdout (control.c). */
int ctl_print_doc(const json_t *done);
/* Loads the metrics documents of c's home into docs: how many, or -errno
 * (metrics.c). */
int ctl_load_metrics(const char *cmd, const struct common *c, json_t *docs[METRICS_DOCS], bool quiet);

#endif /* VIGILCTL_CTL_H */
