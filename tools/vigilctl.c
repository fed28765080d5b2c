/*
 * vigilctl.c - the operator's and the shell worker's command-line tool.
 *
 * vigild keeps its live state in the shared-memory segment and its history
 * in coordination/; vigilctl is how a human or a script reads the former
 * (`status`) and how a worker that cannot include vigil.h - a shell
 * script - publishes heartbeats (`emit`, wrapped by
 * emitter/worker-heartbeat-emitter.sh).
 *
 * Trust: the segment is shared with every worker of this user, so after
 * vigil_segment_open() has validated the header, every loop is bounded by
 * the slot count copied at open (seg.slots), never by header fields read
 * later, and every byte copied out of a slot (ids, pids, verdicts) is
 * checked or rendered safely before it is printed.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage; `check` follows the monitoring-
 * plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "prom.h"
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

/* Options every subcommand takes, resolved per SPEC §3. */
struct common {
	const char *home_arg;
	const char *shm_arg;
	char home[4096];
	char shm[VIGIL_SHM_NAME_MAX + 1];
};

typedef int (*cmd_fn)(int argc, char **argv, struct common *c);

struct cmd {
	const char *name;
	cmd_fn fn;
	const char *args; /* synopsis after the name */
	const char *help; /* one line */
};

static int cmd_status(int argc, char **argv, struct common *c);
static int cmd_emit(int argc, char **argv, struct common *c);
static int cmd_spawn(int argc, char **argv, struct common *c);
static int cmd_restart(int argc, char **argv, struct common *c);
static int cmd_cleanup(int argc, char **argv, struct common *c);
static int cmd_breakers(int argc, char **argv, struct common *c);
static int cmd_breaker(int argc, char **argv, struct common *c);
static int cmd_quarantine(int argc, char **argv, struct common *c);
static int cmd_top(int argc, char **argv, struct common *c);
static int cmd_check(int argc, char **argv, struct common *c);
static int cmd_metrics(int argc, char **argv, struct common *c);

/* Subcommands. */
static const struct cmd cmds[] = {
	{"status", cmd_status, "[--json] [--home DIR] [--shm NAME]",
	 "list live workers: HEALTH% | ID | LAST_SEEN | TYPE | PID | STATE"},
	{"top", cmd_top, "[--once] [--type T] [--sort health|id|age|type] [--reverse] [--home DIR] [--shm NAME]",
	 "live full-screen view of the workers, worst first (--once: one plain frame)"},
	{"check", cmd_check, "[--max-zombies N] [--min-health H] [--max-stale S] [--home DIR] [--shm NAME]",
	 "one-line verdict for probes and monitoring plugins: exit 0 OK, 1 WARNING, 2 CRITICAL"},
	{"metrics", cmd_metrics, "[--json | --prom] [--home DIR] [--shm NAME]",
	 "print vigild's metrics (JSON files, or Prometheus text as in vigil.prom)"},
	{"emit", cmd_emit, "[--pid PID] [--type T] [--task-id X] [--home DIR] [--shm NAME] {ID HEALTH PROGRESS | --stdin | --detach ID}",
	 "publish one heartbeat for a worker that cannot include vigil.h"},
	{"spawn", cmd_spawn,
	 "--type T --task-id X [--timeout S] [--tokens N] [--cwd DIR] [--id ID] [--wait] [--home DIR] [--shm NAME] -- CMD [ARGS...]",
	 "queue a new worker for vigild to start; prints its worker id"},
	{"restart", cmd_restart, "[--reason R] [--type T] [--task-id X] [--home DIR] [--shm NAME] ID",
	 "queue a restart request for worker ID; prints the request file"},
	{"cleanup-zombies", cmd_cleanup, "[--wait-seconds W] [--json] [--home DIR] [--shm NAME] [ID]",
	 "ask vigild to end zombie workers (all, or ID) and return their tokens"},
	{"breakers", cmd_breakers, "[--json] [--home DIR] [--shm NAME]",
	 "list circuit breakers: TYPE: STATE (N failures)"},
	{"breaker", cmd_breaker, "reset [--wait-seconds W] [--json] [--home DIR] [--shm NAME] TYPE",
	 "ask vigild to close the circuit breaker of worker type TYPE"},
	{"quarantine", cmd_quarantine, "lift [--wait-seconds W] [--json] [--home DIR] [--shm NAME] ID",
	 "ask vigild to lift auto-fix's quarantine of worker ID"},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

/* ---- small helpers ---------------------------------------------------- */

static void usage_main(FILE *out)
{
	fprintf(out,
		"usage: vigilctl [--home DIR] [--shm NAME] COMMAND [ARGS...]\n"
		"       vigilctl --help | --version\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(out, "  %-16s %s\n", cmds[i].name, cmds[i].help);
	fprintf(out,
		"\n"
		"Every command takes --home DIR (else $COMMIT_RELAY_HOME, else the current\n"
		"directory) and --shm NAME (else $VIGIL_SHM, else derived from the home).\n"
		"'vigilctl COMMAND --help' describes a command.  Exit codes: 0 ok, 1 failure,\n"
		"2 usage; except check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot tell,\n"
		"including usage errors), the monitoring-plugin convention.\n");
}

static void usage_cmd(FILE *out, const struct cmd *cmd)
{
	fprintf(out, "usage: vigilctl %s %s\n%s\n", cmd->name, cmd->args, cmd->help);
}

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Reports an unknown option or a missing argument from getopt_long (run
 * with opterr = 0) and returns EXIT_USAGE. */
static int bad_option(const char *cmd, int opt, char **argv)
{
	const char *what = argv[optind - 1];
	if (opt == ':')
		fprintf(stderr, "vigilctl %s: option '%s' needs an argument (see vigilctl %s --help)\n", cmd, what,
			cmd);
	else if (optopt != 0)
		fprintf(stderr, "vigilctl %s: unknown option '-%c' (see vigilctl %s --help)\n", cmd, optopt, cmd);
	else
		fprintf(stderr, "vigilctl %s: unknown option '%s' (see vigilctl %s --help)\n", cmd, what, cmd);
	return EXIT_USAGE;
}

/* Strict decimal integer in [lo, hi]. */
static bool parse_int(const char *s, long lo, long hi, long *out)
{
	if (s == NULL || *s == '\0')
		return false;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* A printable rendering of a string that came from the user or the
 * environment, for error messages. */
static const char *render_arg(const char *s, char *buf, size_t len)
{
	vigil_id_render(s, strlen(s), buf, len);
	return buf;
}

/* The last rows of every subcommand's option table: --home, --shm, --help
 * and the end. */
#define COMMON_OPTIONS                                                                                     \
	{"home", required_argument, NULL, 'H'}, {"shm", required_argument, NULL, 'S'},                    \
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}

/* After getopt: a subcommand that takes no operands refuses one.
 * EXIT_OK, or EXIT_USAGE with the reason on stderr. */
static int no_operands(const char *cmd, int argc, char **argv)
{
	if (optind >= argc)
		return EXIT_OK;
	char rb[160];
	fprintf(stderr, "vigilctl %s: unexpected argument '%s' (see vigilctl %s --help)\n", cmd,
		render_arg(argv[optind], rb, sizeof rb), cmd);
	return EXIT_USAGE;
}

/* Copies a fixed 64-byte id field out of the segment into a printable,
 * NUL-terminated string: the id itself when it obeys the name rule, else
 * its bytes with anything outside [A-Za-z0-9._-] escaped as \xNN. */
static void slot_id(char out[300], const char field[VIGIL_ID_MAX])
{
	char raw[VIGIL_ID_MAX + 1];
	if (vigil_id_copy(raw, field))
		memcpy(out, raw, sizeof raw);
	else
		vigil_id_render(field, VIGIL_ID_MAX, out, 300);
}

/* The vigild attached to the segment, or 0 when none is (or it is gone):
 * the holder of the segment's lock (vigil_segment_lock), never the pid in
 * the header, which a vigild killed -9 leaves behind. */
static pid_t supervisor_alive(const struct vigil_segment *seg)
{
	pid_t p = vigil_segment_supervisor(seg->name);
	if (p == -EBUSY)
		return -1; /* held by a vigild of another pid namespace */
	return p > 0 ? p : 0;
}

/* A supervisor pid for a message: "?" when it is not visible here. */
static const char *pid_text(long long pid, char buf[24])
{
	if (pid > 0)
		snprintf(buf, 24, "%lld", pid);
	else
		snprintf(buf, 24, "?");
	return buf;
}

static int resolve(struct common *c)
{
	char err[512] = "";
	int rc = vigil_home_resolve(c->home_arg, c->shm_arg, c->home, sizeof c->home, c->shm, sizeof c->shm, err,
				    sizeof err);
	if (rc < 0) {
		fprintf(stderr, "vigilctl: %s\n", err[0] != '\0' ? err : strerror(-rc));
		return rc == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Opens the segment of c without creating it; prints one line and returns
 * EXIT_FAIL on error. */
static int open_segment(const struct common *c, struct vigil_segment *seg, bool writable)
{
	char err[768] = "";
	int rc = vigil_segment_open(seg, c->shm, 1, VIGILCTL_SHM_MODE, false, writable, err, sizeof err);
	if (rc == 0)
		return EXIT_OK;
	switch (-rc) {
	case ENOENT:
		fprintf(stderr, "vigilctl: segment %s: no such segment (is vigild running for home %s?)\n", c->shm,
			c->home);
		break;
	case EPROTO:
		fprintf(stderr, "vigilctl: segment %s: %s (%s)\n", c->shm, vigil_strerror(rc),
			err[0] != '\0' ? err : "ABI mismatch");
		break;
	case EACCES:
		fprintf(stderr, "vigilctl: segment %s: permission denied (%s access)\n", c->shm,
			writable ? "read-write" : "read");
		break;
	default:
		if (err[0] != '\0')
			fprintf(stderr, "vigilctl: %s\n", err);
		else
			fprintf(stderr, "vigilctl: segment %s: %s\n", c->shm, vigil_strerror(rc));
		break;
	}
	return EXIT_FAIL;
}

/* ---- status ------------------------------------------------------------ */

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

static const char *verdict_state(uint32_t verdict)
{
	switch (verdict) {
	case VIGIL_VERDICT_NONE: return "new";
	case VIGIL_VERDICT_OK: return "active";
	case VIGIL_VERDICT_MISSED: return "missed";
	case VIGIL_VERDICT_TIMEOUT: return "timeout";
	case VIGIL_VERDICT_ZOMBIE: return "zombie";
	case VIGIL_VERDICT_EXITED: return "exited";
	case VIGIL_VERDICT_DETACHED: return "detached";
	case VIGIL_VERDICT_REJECTED: return "rejected";
	default: return "unknown";
	}
}

/*
 * Reads one slot into r; false when it is not a live worker (state other
 * than ACTIVE or ZOMBIE, or a registration vigild rejected) or kept
 * changing owner while we read it.
 *
 * The identity is read between two loads of the owner word: if the owner
 * moved, the copy may mix two identities and is thrown away.  The view is
 * trusted only when it describes this generation (vigild writes
 * generation_low first when it starts tracking a slot); otherwise the
 * worker is "new" to vigild and its health is unknown.  Without a view,
 * beats and progress come from the worker's own beat word, when that word
 * carries this generation.
 */
static bool read_slot(const struct vigil_segment *seg, uint32_t i, struct row *r)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		const struct vigil_slot_hot *hot = &seg->hot[i];
		uint64_t o = atomic_load_explicit(&hot->owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE)
			return false;
		uint64_t gen = vigil_owner_gen(o);

		struct vigil_slot_cold cold;
		memcpy(&cold, &seg->cold[i], sizeof cold);
		uint64_t beat = atomic_load_explicit(&hot->beat, memory_order_acquire);

		struct vigil_slot_view *v = &seg->view[i];
		uint32_t vgen = atomic_load_explicit(&v->generation_low, memory_order_acquire);
		uint64_t last = atomic_load_explicit(&v->last_seen_unix_ms, memory_order_relaxed);
		uint64_t vbeats = atomic_load_explicit(&v->beats, memory_order_relaxed);
		uint32_t health = atomic_load_explicit(&v->health_score, memory_order_relaxed);
		uint32_t prog = atomic_load_explicit(&v->progress, memory_order_relaxed);
		uint32_t verdict = atomic_load_explicit(&v->verdict, memory_order_relaxed);
		uint32_t missed = atomic_load_explicit(&v->missed, memory_order_relaxed);
		uint32_t vgen2 = atomic_load_explicit(&v->generation_low, memory_order_acquire);

		if (atomic_load_explicit(&hot->owner, memory_order_acquire) != o)
			continue; /* reused under us: read again */

		memset(r, 0, sizeof *r);
		r->slot = i;
		r->gen = gen;
		r->pid = cold.pid;
		slot_id(r->id, cold.worker_id);
		slot_id(r->type, cold.worker_type);
		slot_id(r->task, cold.task_id);

		/* Generation 0 was never claimed (claims start at 1), so a zeroed
		 * view never vouches for it. */
		bool trusted = gen != 0 && vgen == (uint32_t)gen && vgen2 == vgen;
		/* A registration vigild refused (worker_rejected, e.g. a second
		 * process with a live worker id) is not a worker: never shown,
		 * never counted (status, top, check all read slots here). */
		if (trusted && verdict == VIGIL_VERDICT_REJECTED)
			return false;
		if (trusted) {
			r->health = health > 100 ? 100 : (int)health;
			r->progress = prog > 100 ? 100 : (int)prog;
			r->missed = missed;
			r->beats = vbeats > INT64_MAX ? INT64_MAX : (int64_t)vbeats;
			r->last_seen_ms = last;
			r->state = verdict_state(verdict);
		} else {
			r->health = -1;
			r->missed = -1;
			r->last_seen_ms = 0;
			r->state = "new";
			if (vigil_beat_gen16(beat) == (gen & 0xffffu)) {
				uint32_t p = vigil_beat_progress(beat);
				r->progress = p > 100 ? 100 : (int)p;
				r->beats = vigil_beat_count(beat);
			} else {
				r->progress = -1;
				r->beats = -1;
			}
		}
		if (st == VIGIL_SLOT_ZOMBIE)
			r->state = "zombie";
		return true;
	}
	return false;
}

/* Like the runbook's `sort -rn`: highest health first (unknown last), then
 * by id, then by slot so that the order is total. */
static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->health != y->health)
		return x->health > y->health ? -1 : 1;
	int c = strcmp(x->id, y->id);
	if (c != 0)
		return c;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static json_t *int_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static int print_json(const struct row *rows, size_t n)
{
	json_t *arr = json_array();
	if (arr == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char iso[21];
		json_t *last = json_null(), *last_ms = json_null();
		if (r->last_seen_ms != 0) {
			vigil_iso8601(r->last_seen_ms, iso);
			last = json_string(iso);
			last_ms = json_integer((json_int_t)(r->last_seen_ms > INT64_MAX ? INT64_MAX : r->last_seen_ms));
		}
		/* The strings are ASCII by construction (slot_id), so jansson
		 * accepts them. */
		json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
				      "worker_id", r->id, "worker_type", r->type, "task_id", r->task, "pid",
				      (int)r->pid, "slot", (json_int_t)r->slot, "state", r->state, "health_score",
				      int_or_null(r->health), "progress", int_or_null(r->progress), "missed",
				      int_or_null(r->missed), "beats", int_or_null(r->beats), "last_seen", last,
				      "last_seen_ms", last_ms);
		if (o == NULL || json_array_append_new(arr, o) < 0)
			goto oom;
	}
	char *txt = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (txt == NULL)
		goto oom;
	int ok = printf("%s\n", txt) >= 0;
	free(txt);
	return ok ? EXIT_OK : EXIT_FAIL;
oom:
	json_decref(arr);
	fprintf(stderr, "vigilctl status: out of memory building JSON\n");
	return EXIT_FAIL;
}

static void print_text(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char health[16], last[21];
		if (r->health < 0)
			snprintf(health, sizeof health, "-");
		else
			snprintf(health, sizeof health, "%d%%", r->health);
		if (r->last_seen_ms == 0)
			snprintf(last, sizeof last, "never");
		else
			vigil_iso8601(r->last_seen_ms, last);
		printf("%s | %s | %s | %s | %d | %s\n", health, r->id[0] != '\0' ? r->id : "-", last,
		       r->type[0] != '\0' ? r->type : "-", (int)r->pid, r->state);
	}
}

static int cmd_status(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("status");
	bool json = false;
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "One line per live worker (ACTIVE or ZOMBIE slot), highest health first, no\n"
			       "header.  HEALTH is '-' and STATE 'new' until vigild has scored the worker.\n"
			       "STATE: active, missed, timeout, zombie, new.  LAST_SEEN is UTC ISO 8601 or\n"
			       "'never'.  --json prints an array of objects with worker_id, worker_type,\n"
			       "task_id, pid, slot, state, health_score, progress, missed, beats, last_seen,\n"
			       "last_seen_ms (null when unknown).\n");
			return EXIT_OK;
		default: return bad_option("status", opt, argv);
		}
	}
	int rc = no_operands("status", argc, argv);
	if (rc == EXIT_OK)
		rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	struct vigil_segment seg;
	rc = open_segment(c, &seg, false);
	if (rc != EXIT_OK)
		return rc;
	if (supervisor_alive(&seg) == 0)
		fprintf(stderr, "vigilctl: warning: no vigild attached to %s; values may be stale\n", c->shm);

	struct row *rows = NULL;
	size_t n = 0, cap = 0;
	for (uint32_t i = 0; i < seg.slots; i++) {
		if (n == cap) {
			size_t ncap = cap == 0 ? 64 : cap * 2;
			struct row *nr = realloc(rows, ncap * sizeof *nr);
			if (nr == NULL) {
				fprintf(stderr, "vigilctl status: out of memory at slot %u\n", i);
				free(rows);
				vigil_segment_close(&seg);
				return EXIT_FAIL;
			}
			rows = nr;
			cap = ncap;
		}
		if (read_slot(&seg, i, &rows[n]))
			n++;
	}
	vigil_segment_close(&seg);
	if (n > 1)
		qsort(rows, n, sizeof *rows, row_cmp);
	if (json) {
		rc = print_json(rows, n);
	} else {
		print_text(rows, n);
		rc = EXIT_OK;
	}
	free(rows);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl status: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

/* ---- emit -------------------------------------------------------------- */

/*
 * One beat into a slot that is ours (ACTIVE with generation gen): the same
 * word vigil_beat() stores, with the count one past the slot's current
 * count.  A compare-and-swap, not a plain store, so that two emitters
 * beating the same worker at once both count, and so that a slot reused
 * under us (its beat word then carries the new owner's generation) is not
 * overwritten with our beat - unless the word was scribbled, in which case
 * the count restarts.
 */
static bool beat_slot(struct vigil_slot_hot *hot, uint64_t gen, unsigned health, unsigned progress)
{
	uint64_t b = atomic_load_explicit(&hot->beat, memory_order_relaxed);
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t count = vigil_beat_gen16(b) == (gen & 0xffffu) ? vigil_beat_count(b) : 0;
		uint64_t nb = vigil_beat_make(gen, count + 1, health, progress);
		if (atomic_compare_exchange_weak_explicit(&hot->beat, &b, nb, memory_order_release,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

/* Whether vigild rejected the registration in slot i of generation gen:
 * its view says so for that generation (vigild writes generation_low
 * first).  Relaxed loads: a hint from vigild, re-checked every beat. */
static bool slot_rejected(const struct vigil_segment *seg, uint32_t i, uint64_t gen)
{
	const struct vigil_slot_view *v = &seg->view[i];
	return gen != 0 && atomic_load_explicit(&v->verdict, memory_order_relaxed) == VIGIL_VERDICT_REJECTED &&
	       atomic_load_explicit(&v->generation_low, memory_order_relaxed) == (uint32_t)gen;
}

/* Says goodbye for a slot of ours that vigild rejected, so that vigild
 * frees it now instead of never (it stopped watching the slot).  The CAS
 * moves only a slot still ACTIVE with that generation. */
static void release_rejected(const struct vigil_segment *seg, uint32_t i, uint64_t gen)
{
	uint64_t expect = vigil_owner_make(VIGIL_SLOT_ACTIVE, gen);
	/* relaxed: nothing we wrote needs to be seen with it. */
	atomic_compare_exchange_strong_explicit(&seg->hot[i].owner, &expect,
						vigil_owner_make(VIGIL_SLOT_DETACHED, gen), memory_order_relaxed,
						memory_order_relaxed);
}

/* Waits (1 ms polls, at most VIGILCTL_ACK_WAIT_MS) until vigild stores
 * this generation in the slot's ack word: vigild verifies a self-registered
 * worker through its registrar - this process, a descendant of the worker - so
 * we must stay alive and mapped until it has looked.  Returns 1 acked,
 * 0 timed out, -1 the slot stopped being ours meanwhile, -2 vigild
 * rejected the registration. */
static int wait_ack(const struct vigil_segment *seg, uint32_t slot, uint64_t gen)
{
	struct vigil_slot_hot *hot = &seg->hot[slot];
	const uint64_t mask = (1ull << 56) - 1;
	const uint64_t owner = vigil_owner_make(VIGIL_SLOT_ACTIVE, gen);
	struct timespec ms = {0, 1000000};
	for (int i = 0; i <= VIGILCTL_ACK_WAIT_MS; i++) {
		if ((atomic_load_explicit(&hot->ack, memory_order_acquire) & mask) == (gen & mask))
			return 1;
		if (atomic_load_explicit(&hot->owner, memory_order_acquire) != owner)
			return -1;
		if (slot_rejected(seg, slot, gen))
			return -2;
		nanosleep(&ms, NULL);
	}
	return 0;
}

/* The worker's slot named by VIGIL_SLOT/VIGIL_GEN (a worker vigild
 * started), when it is ACTIVE with that generation and holds id.  The
 * environment is authoritative there, as for vigil_attach(), whatever the
 * pid: a script vigild started may beat from a subshell.  -1 otherwise. */
static int64_t env_slot(const struct vigil_segment *seg, const char *id, uint64_t *gen_out)
{
	const char *slot_s = getenv("VIGIL_SLOT"), *gen_s = getenv("VIGIL_GEN");
	const char *shm = getenv("VIGIL_SHM");
	if (slot_s == NULL || gen_s == NULL || shm == NULL || strcmp(shm, seg->name) != 0)
		return -1;
	char *end1, *end2;
	errno = 0;
	unsigned long slot = strtoul(slot_s, &end1, 10);
	unsigned long long gen = strtoull(gen_s, &end2, 10);
	if (errno != 0 || *slot_s == '\0' || *gen_s == '\0' || *end1 != '\0' || *end2 != '\0' ||
	    slot >= seg->slots)
		return -1;
	uint64_t o = atomic_load_explicit(&seg->hot[slot].owner, memory_order_acquire);
	if (o != vigil_owner_make(VIGIL_SLOT_ACTIVE, gen))
		return -1;
	char cid[VIGIL_ID_MAX + 1];
	if (!vigil_id_copy(cid, seg->cold[slot].worker_id) || strcmp(cid, id) != 0)
		return -1;
	*gen_out = gen;
	return (int64_t)slot;
}

/* What one emitter beats for: the worker process and its identity, the
 * segment, and the slot it beat last (the --stdin emitter keeps it from
 * line to line, so a beat there is a load, a compare and a CAS). */
struct emitter {
	struct vigil_segment seg;
	int32_t pid;
	const char *type, *task;
	char id[VIGIL_ID_MAX + 1];
	int64_t slot; /* -1: none yet */
	uint64_t gen;
};

/* Checks ID HEALTH PROGRESS as given (argv or a --stdin line); EXIT_OK
 * with the numbers, or EXIT_USAGE after saying why. */
static int emit_args(const char *id, const char *health_s, const char *progress_s, long *health, long *progress)
{
	char rb[300];
	if (!vigil_id_valid(id)) {
		fprintf(stderr, "vigilctl emit: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!parse_int(health_s, 0, 100, health)) {
		fprintf(stderr, "vigilctl emit: invalid HEALTH '%s': want an integer 0..100\n",
			render_arg(health_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!parse_int(progress_s, 0, 100, progress)) {
		fprintf(stderr, "vigilctl emit: invalid PROGRESS '%s': want an integer 0..100\n",
			render_arg(progress_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/*
 * emit_beat - one beat of worker id (valid) for e->pid: into the slot
 * beaten last when it is still ours, else the slot vigild gave the worker
 * (VIGIL_SLOT/VIGIL_GEN), else the ACTIVE slot holding id and pid, else a
 * new registration (which waits for vigild's acknowledgement).  Returns an
 * exit code (EXIT_OK or EXIT_FAIL, after a sentence on stderr).
 *
 * A slot vigild rejected (worker_rejected) is never beaten: ours is
 * released so that vigild frees it, and the registration is tried again,
 * which vigil_register refuses (-EEXIST) while another process holding the
 * id runs.
 */
static int emit_beat(struct emitter *e, const char *id, unsigned health, unsigned progress)
{
	struct vigil_segment *seg = &e->seg;
	if (e->slot >= 0 && strcmp(e->id, id) == 0) {
		uint32_t i = (uint32_t)e->slot;
		/* acquire: pairs with the claim of a new owner. */
		if (atomic_load_explicit(&seg->hot[i].owner, memory_order_acquire) ==
			    vigil_owner_make(VIGIL_SLOT_ACTIVE, e->gen) &&
		    !slot_rejected(seg, i, e->gen)) {
			if (beat_slot(&seg->hot[i], e->gen, health, progress))
				return EXIT_OK;
			fprintf(stderr, "vigilctl emit: slot %u of worker %s keeps changing; beat not recorded\n", i,
				id);
			return EXIT_FAIL;
		}
	}
	e->slot = -1;

	/* A worker vigild started: its slot is in the environment. */
	uint64_t gen = 0;
	int64_t found = env_slot(seg, id, &gen);
	bool zombie = false;
	/* Otherwise the ACTIVE slot holding this id and pid.  Bounded by the
	 * slot count copied at open. */
	for (uint32_t i = 0; found < 0 && i < seg->slots; i++) {
		uint64_t o = atomic_load_explicit(&seg->hot[i].owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE)
			continue;
		char cid[VIGIL_ID_MAX + 1];
		if (!vigil_id_copy(cid, seg->cold[i].worker_id) || strcmp(cid, id) != 0)
			continue;
		int32_t cpid = seg->cold[i].pid;
		if (atomic_load_explicit(&seg->hot[i].owner, memory_order_acquire) != o)
			continue; /* changed hands while we read it */
		if (cpid != e->pid)
			continue; /* another process's: vigil_register judges it */
		if (slot_rejected(seg, i, vigil_owner_gen(o))) {
			release_rejected(seg, i, vigil_owner_gen(o));
			continue;
		}
		if (st == VIGIL_SLOT_ZOMBIE) {
			zombie = true;
			continue;
		}
		found = i;
		gen = vigil_owner_gen(o);
	}
	if (found >= 0) {
		if (!beat_slot(&seg->hot[found], gen, health, progress)) {
			fprintf(stderr, "vigilctl emit: slot %lld of worker %s keeps changing; beat not recorded\n",
				(long long)found, id);
			return EXIT_FAIL;
		}
		snprintf(e->id, sizeof e->id, "%s", id);
		e->slot = found;
		e->gen = gen;
		return EXIT_OK;
	}
	if (zombie) {
		fprintf(stderr,
			"vigilctl emit: worker %s (pid %d) was declared a zombie by vigild; its beats are ignored "
			"until it is cleaned up\n",
			id, (int)e->pid);
		return EXIT_FAIL;
	}

	/* Register.  vigil_register() checks the header again (any worker may
	 * have scribbled on it since we validated it) and bounds itself by
	 * our mapping. */
	if (vigil_header_check(seg->hdr, seg->size) < 0 || seg->hdr->slot_count != seg->slots) {
		fprintf(stderr, "vigilctl emit: segment %s: header changed since it was opened; refusing it\n",
			seg->name);
		return EXIT_FAIL;
	}
	struct vigil v;
	memset(&v, 0, sizeof v);
	v.hdr = seg->hdr;
	v.map_size = (size_t)seg->size;
	int rc = vigil_register(&v, id, e->type, e->task, e->pid);
	if (rc == -EAGAIN)
		rc = vigil_register(&v, id, e->type, e->task, e->pid);
	if (rc < 0) {
		uint32_t oslot = 0;
		int32_t opid = 0;
		if (rc == -EEXIST && vigil__id_live(seg->hdr, seg->slots, id, &oslot, &opid))
			fprintf(stderr,
				"vigilctl emit: worker id %s is already registered by pid %d (slot %u), which is still "
				"running: %s\n",
				id, (int)opid, oslot, vigil_strerror(rc));
		else if (rc == -ENOSPC)
			fprintf(stderr, "vigilctl emit: segment %s is full (all %u slots taken): %s\n", seg->name,
				seg->slots, vigil_strerror(rc));
		else
			fprintf(stderr, "vigilctl emit: cannot register worker %s in %s: %s\n", id, seg->name,
				vigil_strerror(rc));
		return EXIT_FAIL;
	}
	vigil_beat(&v, health, progress);

	pid_t sup = supervisor_alive(seg);
	if (sup != 0) {
		int acked = wait_ack(seg, v.slot, v.gen);
		if (acked == 0) {
			fprintf(stderr,
				"vigilctl: warning: vigild (pid %d) did not acknowledge worker %s (slot %u) within %d ms; "
				"the beat is recorded, but vigild may watch pid %d by timeouts only\n",
				(int)sup, id, v.slot, VIGILCTL_ACK_WAIT_MS, (int)e->pid);
		} else if (acked == -1) {
			fprintf(stderr,
				"vigilctl emit: vigild did not accept worker %s (pid %d): slot %u was released before it "
				"was acknowledged (is pid %d alive, and is vigilctl its child?)\n",
				id, (int)e->pid, v.slot, (int)e->pid);
			return EXIT_FAIL;
		} else if (acked == -2) {
			release_rejected(seg, v.slot, v.gen);
			fprintf(stderr,
				"vigilctl emit: vigild rejected worker %s (pid %d); the reason is in its worker_rejected "
				"event (coordination/events/heartbeat-events.jsonl)\n",
				id, (int)e->pid);
			return EXIT_FAIL;
		}
	}
	/* Not vigil_detach(): the worker stays registered after we exit. */
	snprintf(e->id, sizeof e->id, "%s", id);
	e->slot = v.slot;
	e->gen = v.gen;
	return EXIT_OK;
}

/*
 * emit_detach - the clean goodbye of worker id (valid) for e->pid, as
 * vigil_detach(): its slot (the one beaten last, the one vigild gave it,
 * or the ACTIVE or ZOMBIE slot holding id and pid) goes to DETACHED, and
 * vigild reports worker_detached and frees it.  An exit code: EXIT_FAIL
 * (after a sentence) when no such slot is ours.
 */
static int emit_detach(struct emitter *e, const char *id)
{
	struct vigil_segment *seg = &e->seg;
	uint64_t gen = 0;
	int64_t found = -1;
	if (e->slot >= 0 && strcmp(e->id, id) == 0) {
		found = e->slot;
		gen = e->gen;
	}
	e->slot = -1;
	if (found < 0)
		found = env_slot(seg, id, &gen);
	for (uint32_t i = 0; found < 0 && i < seg->slots; i++) {
		uint64_t o = atomic_load_explicit(&seg->hot[i].owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE)
			continue;
		char cid[VIGIL_ID_MAX + 1];
		if (!vigil_id_copy(cid, seg->cold[i].worker_id) || strcmp(cid, id) != 0 || seg->cold[i].pid != e->pid)
			continue;
		if (atomic_load_explicit(&seg->hot[i].owner, memory_order_acquire) != o)
			continue; /* changed hands while we read it */
		found = i;
		gen = vigil_owner_gen(o);
	}
	if (found >= 0) {
		const uint32_t from[2] = {VIGIL_SLOT_ACTIVE, VIGIL_SLOT_ZOMBIE};
		for (int k = 0; k < 2; k++) {
			uint64_t expect = vigil_owner_make(from[k], gen);
			/* release: the last beat is ordered before the goodbye. */
			if (atomic_compare_exchange_strong_explicit(&seg->hot[found].owner, &expect,
								    vigil_owner_make(VIGIL_SLOT_DETACHED, gen),
								    memory_order_release, memory_order_relaxed))
				return EXIT_OK;
		}
	}
	fprintf(stderr, "vigilctl emit: worker %s (pid %d) is not registered: nothing to detach\n", id, (int)e->pid);
	return EXIT_FAIL;
}

#define EMIT_LINE_MAX 512 /* bytes of one --stdin line, newline included */

/* One --stdin line (NUL-terminated, newline removed): "ID HEALTH
 * PROGRESS" (a beat) or "ID detach" (the goodbye), fields separated by
 * blanks.  An exit code. */
static int emit_line(struct emitter *e, char *line)
{
	char *f[4];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(line, " \t\r", &save); t != NULL; t = strtok_r(NULL, " \t\r", &save)) {
		if (n == 4)
			break;
		f[n++] = t;
	}
	if (n == 2 && strcmp(f[1], "detach") == 0) {
		char rb[300];
		if (!vigil_id_valid(f[0])) {
			fprintf(stderr, "vigilctl emit: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
				render_arg(f[0], rb, sizeof rb));
			return EXIT_USAGE;
		}
		return emit_detach(e, f[0]);
	}
	if (n != 3) {
		fprintf(stderr, "vigilctl emit: expected a line 'ID HEALTH PROGRESS' or 'ID detach', got %d field%s\n", n,
			n == 1 ? "" : "s");
		return EXIT_USAGE;
	}
	long health, progress;
	int rc = emit_args(f[0], f[1], f[2], &health, &progress);
	if (rc != EXIT_OK)
		return rc;
	return emit_beat(e, f[0], (unsigned)health, (unsigned)progress);
}

/*
 * The long-lived emitter (`vigilctl emit --stdin`): one beat per line of
 * standard input, one line "<exit code>\n" per beat on standard output (0
 * ok, 1 failure, 2 bad line; the sentence goes to stderr as for a single
 * emit).  The shell emitter runs one per shell as a coprocess, so that a
 * beat costs a line written and a line read instead of a fork and an exec.
 *
 * Ends (exit 0) at end of input or when the worker process ends (its pidfd
 * becomes readable; without pidfd_open, end of input only), and when a
 * reply cannot be written (the shell is gone).  Ignores SIGINT, SIGQUIT,
 * SIGHUP and SIGTERM: a signal meant for the shell's process group must not
 * leave a shell that traps it writing to a dead emitter; it ends with the
 * shell instead.  Lines longer than EMIT_LINE_MAX are answered 2 and
 * skipped.
 */
static int emit_stdin(struct emitter *e)
{
	static const int ignored[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		signal(ignored[i], SIG_IGN);
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)e->pid, 0);
	char buf[EMIT_LINE_MAX];
	size_t len = 0;
	bool skipping = false; /* inside a line that was too long */
	for (;;) {
		struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
		int pr = poll(p, pidfd >= 0 ? 2 : 1, -1);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pidfd >= 0 && (p[1].revents & POLLIN))
			break; /* the worker ended */
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(STDIN_FILENO, buf + len, sizeof buf - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		/* Every complete line; bounded by the buffer's size. */
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
			*nl = '\0';
			int rc = EXIT_USAGE;
			if (skipping)
				skipping = false;
			else
				rc = emit_line(e, start);
			char reply[4] = {(char)('0' + rc), '\n'};
			if (write(STDOUT_FILENO, reply, 2) != 2)
				goto out;
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (len == sizeof buf) { /* no newline in a whole buffer */
			if (!skipping) {
				fprintf(stderr, "vigilctl emit: line longer than %d bytes ignored\n", EMIT_LINE_MAX);
				skipping = true;
			}
			len = 0;
		}
	}
out:
	if (pidfd >= 0)
		close(pidfd);
	return EXIT_OK;
}

static int cmd_emit(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		{"stdin", no_argument, NULL, 'i'},
		{"detach", no_argument, NULL, 'd'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("emit");
	const char *pid_s = NULL, *type = NULL, *task = NULL;
	bool from_stdin = false, detach = false;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': pid_s = optarg; break;
		case 't': type = optarg; break;
		case 'k': task = optarg; break;
		case 'i': from_stdin = true; break;
		case 'd': detach = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "HEALTH and PROGRESS are integers 0..100.  The worker is process --pid\n"
			       "(default: the parent of vigilctl, i.e. the calling shell); its type is\n"
			       "--type, else $WORKER_TYPE, else 'shell'; its task --task-id, else $TASK_ID.\n"
			       "The first emit for ID registers the worker in a free slot and waits up to\n"
			       "2 s for vigild to verify it (vigild checks that this process descends from\n"
			       "the worker pid); later emits beat that slot.  Prints nothing on success.\n"
			       "A worker id that another running process holds is refused (exit 1).\n"
			       "\n"
			       "--stdin: no ID HEALTH PROGRESS operands; reads one 'ID HEALTH PROGRESS'\n"
			       "line per beat and answers each with a line holding its exit code (0, 1\n"
			       "or 2), until end of input or until the worker process ends.  This is the\n"
			       "shell emitter's long-lived coprocess: a beat without a fork.  A line\n"
			       "'ID detach' is the goodbye, as --detach.\n"
			       "\n"
			       "--detach ID: the clean goodbye of worker ID (pid --pid): vigild reports\n"
			       "worker_detached, not worker_exited, and frees its slot.\n");
			return EXIT_OK;
		default:
			if (opt == '?' && optopt >= '0' && optopt <= '9') {
				fprintf(stderr, "vigilctl emit: invalid value '%s': HEALTH and PROGRESS want an integer 0..100\n",
					render_arg(argv[optind - 1], rb, sizeof rb));
				return EXIT_USAGE;
			}
			return bad_option("emit", opt, argv);
		}
	}
	int want = from_stdin ? 0 : detach ? 1 : 3;
	if (from_stdin && detach) {
		fprintf(stderr, "vigilctl emit: --stdin and --detach exclude each other (a line 'ID detach' detaches)\n");
		return EXIT_USAGE;
	}
	if (argc - optind != want) {
		if (detach)
			fprintf(stderr, "vigilctl emit: --detach takes one operand, the worker ID, got %d\n", argc - optind);
		else if (from_stdin)
			fprintf(stderr, "vigilctl emit: --stdin takes no ID HEALTH PROGRESS operands (they come one line "
					"per beat)\n");
		else
			fprintf(stderr,
				"vigilctl emit: expected ID HEALTH PROGRESS, got %d argument%s (see vigilctl emit --help)\n",
				argc - optind, argc - optind == 1 ? "" : "s");
		return EXIT_USAGE;
	}
	long health = 0, progress = 0, pidl;
	if (detach && !vigil_id_valid(argv[optind])) {
		fprintf(stderr, "vigilctl emit: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(argv[optind], rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!from_stdin && !detach) {
		int arc = emit_args(argv[optind], argv[optind + 1], argv[optind + 2], &health, &progress);
		if (arc != EXIT_OK)
			return arc;
	}
	if (pid_s != NULL) {
		if (!parse_int(pid_s, 2, INT_MAX, &pidl)) {
			fprintf(stderr, "vigilctl emit: invalid --pid '%s': want a process id > 1\n",
				render_arg(pid_s, rb, sizeof rb));
			return EXIT_USAGE;
		}
	} else {
		pidl = (long)getppid();
	}
	const char *type_src = "--type";
	if (type == NULL && (type = getenv("WORKER_TYPE")) != NULL && type[0] != '\0')
		type_src = "WORKER_TYPE";
	if (type == NULL || type[0] == '\0')
		type = "shell";
	if (!vigil_id_valid(type)) {
		fprintf(stderr, "vigilctl emit: invalid worker type '%s' (from %s): want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(type, rb, sizeof rb), type_src);
		return EXIT_USAGE;
	}
	const char *task_src = "--task-id";
	if (task == NULL && (task = getenv("TASK_ID")) != NULL)
		task_src = "TASK_ID";
	if (task == NULL)
		task = "";
	if (task[0] != '\0' && !vigil_id_valid(task)) {
		fprintf(stderr, "vigilctl emit: invalid task id '%s' (from %s): want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(task, rb, sizeof rb), task_src);
		return EXIT_USAGE;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	struct emitter e;
	memset(&e, 0, sizeof e);
	rc = open_segment(c, &e.seg, true);
	if (rc != EXIT_OK)
		return rc;
	e.pid = (int32_t)pidl;
	e.type = type;
	e.task = task;
	e.slot = -1;
	if (from_stdin)
		rc = emit_stdin(&e);
	else if (detach)
		rc = emit_detach(&e, argv[optind]);
	else
		rc = emit_beat(&e, argv[optind], (unsigned)health, (unsigned)progress);
	vigil_segment_close(&e.seg);
	return rc;
}

/* ---- requests to vigild: files under the home -------------------------- */

/*
 * vigilctl never talks to vigild directly: it drops a JSON file into a
 * queue directory of coordination/ and, for the commands that report an
 * outcome, polls for vigild's answer file.  A request left while vigild is
 * down is carried out when it starts.  Every file is published whole (temp
 * file named ".<name>.tmp.<pid>.<seq>" in the same directory, fsync, then
 * linkat or renameat), so vigild never reads half a request; it must skip
 * names starting with '.'.
 */

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Opens rel (e.g. "coordination/spawn/queue") under the home, never
 * following a symbolic link below the home; creates it when asked.  An fd
 * or -errno. */
static int open_home_dir(const struct common *c, const char *rel, bool create)
{
	int home = open(c->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home < 0)
		return -errno;
	int fd = vigil_fs_open_dir(home, rel, create);
	close(home);
	return fd;
}

/* Like open_home_dir with create, printing one error line on failure. */
static int open_queue_dir(const char *cmd, const struct common *c, const char *rel)
{
	int fd = open_home_dir(c, rel, true);
	if (fd < 0)
		fprintf(stderr, "vigilctl %s: cannot open %s/%s: %s%s\n", cmd, c->home, rel, strerror(-fd),
			fd == -ENOTDIR ? " (or a component is a symbolic link)" : "");
	return fd;
}

/* True when name exists in dirfd (any type, not followed). */
static bool exists_at(int dirfd, const char *name)
{
	struct stat st;
	return dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * Publishes doc (compact JSON and a newline) as name in dirfd: written to
 * a temp file in the same directory and fsync'd, then linked to name with
 * linkat() when exclusive (so the call fails with -EEXIST, leaving the
 * existing file alone, when name is taken), else renamed over name.  The
 * temp name is unlinked in every case.  0 or -errno.
 */
static int publish_json(int dirfd, const char *name, const json_t *doc, bool exclusive)
{
	static unsigned long seq;
	char tmp[512];
	int n = snprintf(tmp, sizeof tmp, ".%s.tmp.%d.%lu", name, (int)getpid(), seq++);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -ENAMETOOLONG;
	char *txt = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (txt == NULL)
		return -ENOMEM;
	size_t len = strlen(txt);
	char *line = realloc(txt, len + 2);
	if (line == NULL) {
		free(txt);
		return -ENOMEM;
	}
	line[len++] = '\n';
	line[len] = '\0';

	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = -errno;
		free(line);
		return e;
	}
	int rc = 0;
	const char *p = line;
	size_t left = len;
	/* Bounded: each pass writes at least one byte or fails. */
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	free(line);
	/* Durable: a request must survive a crash once we said it is queued. */
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0) {
		if (exclusive) {
			if (linkat(dirfd, tmp, dirfd, name, 0) < 0)
				rc = -errno;
			unlinkat(dirfd, tmp, 0);
		} else if (renameat(dirfd, tmp, dirfd, name) < 0) {
			rc = -errno;
			unlinkat(dirfd, tmp, 0);
		}
	} else {
		unlinkat(dirfd, tmp, 0);
	}
	if (rc == 0)
		fsync(dirfd); /* the new name; best effort */
	return rc;
}

/* Reads name in dirfd as a JSON object into *out.  0; -ENOENT when it is
 * missing; another -errno, or -EBADMSG when it is not a JSON object, with
 * why set. */
static int load_object(int dirfd, const char *name, json_t **out, char *why, size_t why_len)
{
	*out = NULL;
	char *buf;
	size_t n;
	int rc = vigil_fs_read(dirfd, name, VIGILCTL_FILE_MAX, &buf, &n);
	if (rc < 0) {
		if (rc == -EFBIG)
			snprintf(why, why_len, "larger than %u bytes", VIGILCTL_FILE_MAX);
		else if (rc == -ELOOP)
			snprintf(why, why_len, "is a symbolic link");
		else if (rc == -EINVAL)
			snprintf(why, why_len, "not a regular file");
		else
			snprintf(why, why_len, "%s", strerror(-rc));
		return rc;
	}
	json_error_t e;
	json_t *j = json_loadb(buf, n, 0, &e);
	free(buf);
	if (j == NULL) {
		snprintf(why, why_len, "invalid JSON (line %d: %s)", e.line, e.text);
		return -EBADMSG;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(why, why_len, "not a JSON object");
		return -EBADMSG;
	}
	*out = j;
	return 0;
}

/* A printable copy of an untrusted string (a message vigild or someone
 * else wrote): control characters become '?'; truncated to fit. */
static const char *safe_text(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; s != NULL && *s != '\0' && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
	return out;
}

/* A string member of obj, or NULL. */
static const char *obj_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/*
 * Whether a vigild supervises this home's segment: 1 yes (pid in *pid),
 * 0 no (no segment, or nobody holds its lock), -1 cannot tell (why set).
 * The segment is opened (and validated) read-only; who supervises it is
 * asked of the kernel (the lock), not read from the header.
 */
static int vigild_running(const struct common *c, pid_t *pid, char *why, size_t why_len)
{
	struct vigil_segment seg;
	char err[768] = "";
	*pid = 0;
	/* Read-only probe: accept a group-shared segment too. */
	int rc = vigil_segment_open(&seg, c->shm, 1, 0770, false, false, err, sizeof err);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		snprintf(why, why_len, "%s", err[0] != '\0' ? err : vigil_strerror(rc));
		return -1;
	}
	pid_t sp = vigil_segment_supervisor(seg.name);
	vigil_segment_close(&seg);
	if (sp == -EBUSY) {
		*pid = -1; /* running, in another pid namespace */
		return 1;
	}
	if (sp < 0 && sp != -ENOENT) {
		snprintf(why, why_len, "cannot ask who holds segment %s: %s", c->shm, vigil_strerror(sp));
		return -1;
	}
	if (sp <= 0)
		return 0;
	*pid = sp;
	return 1;
}

/* Strict decimal number: finite, in [lo, hi]. */
static bool parse_seconds(const char *s, double lo, double hi, double *out)
{
	if (s == NULL || *s == '\0')
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

/* A JSON number for v: an integer when v is whole. */
static json_t *json_seconds(double v)
{
	if (v >= 0 && v < 9e15 && (double)(long long)v == v)
		return json_integer((json_int_t)v);
	return json_real(v);
}

/* ---- spawn ------------------------------------------------------------- */

/*
 * Marks in used[] (VIGILCTL_ID_NUM_MAX + 1 entries) every N for which
 * dirfd holds "<prefix>N.json" with N written as "%03ld" would write it.
 * A missing directory (dirfd < 0) marks nothing.
 */
static void mark_used(int dirfd, const char *prefix, unsigned char *used)
{
	if (dirfd < 0)
		return;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	rewinddir(d); /* the dup shares dirfd's offset */
	size_t plen = strlen(prefix);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (len <= plen + 5 || strncmp(nm, prefix, plen) != 0 || strcmp(nm + len - 5, ".json") != 0)
			continue;
		char digits[16];
		size_t dl = len - plen - 5;
		if (dl >= sizeof digits)
			continue;
		memcpy(digits, nm + plen, dl);
		digits[dl] = '\0';
		long v;
		char canon[16];
		if (!parse_int(digits, 1, VIGILCTL_ID_NUM_MAX, &v))
			continue;
		snprintf(canon, sizeof canon, "%03ld", v);
		if (strcmp(canon, digits) == 0)
			used[v] = 1;
	}
	closedir(d);
}

/* The spawn request, or NULL (out of memory, a string that is not UTF-8,
 * or a document larger than vigild reads: *too_big then). */
static json_t *spawn_doc(const char *id, const char *type, const char *task, json_t *command, const char *cwd,
			 long tokens, bool has_timeout, double timeout, uint64_t now_ms, bool *too_big)
{
	char iso[21];
	vigil_iso8601(now_ms, iso);
	*too_big = false;
	json_t *doc = json_pack("{s:s, s:s, s:s, s:O, s:s, s:I, s:o, s:s, s:I}", "worker_id", id, "worker_type", type,
			 "task_id", task, "command", command, "cwd", cwd, "tokens", (json_int_t)tokens,
			 "timeout_seconds", has_timeout ? json_seconds(timeout) : json_null(), "created_at", iso,
			 "created_at_ms", (json_int_t)now_ms);
	if (doc != NULL && json_dumpb(doc, NULL, 0, JSON_COMPACT) + 1 > VIGILCTL_REQUEST_BYTES_MAX) {
		json_decref(doc);
		*too_big = true;
		return NULL;
	}
	return doc;
}

static void spawn_doc_error(bool too_big, const char *cwd)
{
	char rb[300];
	if (too_big)
		fprintf(stderr, "vigilctl spawn: the request would exceed the %d bytes vigild reads; shorten the command\n",
			VIGILCTL_REQUEST_BYTES_MAX);
	else
		fprintf(stderr, "vigilctl spawn: cannot build the request (working directory '%s' is not valid UTF-8?)\n",
			render_arg(cwd, rb, sizeof rb));
}

/* Inode and mtime of a file, to tell a fresh answer from an old one. */
struct fstamp {
	bool present;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
};

static struct fstamp stamp_at(int dirfd, const char *name)
{
	struct fstamp f;
	struct stat st;
	memset(&f, 0, sizeof f);
	if (dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		f.present = true;
		f.dev = st.st_dev;
		f.ino = st.st_ino;
		f.mtime = st.st_mtim;
	}
	return f;
}

static bool stamp_same(const struct fstamp *a, const struct fstamp *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * --wait: until vigild has started the worker (its spec appears in
 * worker-specs/active/ - or already in zombie/), or has consumed the
 * request and reported a failure in spawn/failed/<id>.json (one that was
 * not there, or not that file, before we queued).
 */
static int spawn_wait(const struct common *c, int queue_fd, const char *id, const char *file,
		      const struct fstamp *failed_before, const struct fstamp *rejected_before)
{
	int rejected_fd = open_home_dir(c, "coordination/restart/rejected", true);
	char reason_name[192];
	snprintf(reason_name, sizeof reason_name, "%s.reason", file);
	int active_fd = open_home_dir(c, "coordination/worker-specs/active", true);
	int zombie_fd = open_home_dir(c, "coordination/worker-specs/zombie", true);
	int failed_fd = open_home_dir(c, "coordination/spawn/failed", true);
	int rc = EXIT_FAIL;
	uint64_t deadline = vigil_mono_ns() + (uint64_t)VIGILCTL_SPAWN_WAIT_S * VIGIL_NS_PER_S;
	char why[512];
	for (unsigned polls = 0;; polls++) {
		if (exists_at(active_fd, file) || exists_at(zombie_fd, file)) {
			rc = EXIT_OK;
			break;
		}
		if (!exists_at(queue_fd, file)) {
			struct fstamp now = stamp_at(failed_fd, file);
			if (now.present && !stamp_same(&now, failed_before)) {
				json_t *f = NULL;
				char msg[1024];
				int lr = load_object(failed_fd, file, &f, why, sizeof why);
				if (lr == 0) {
					const char *m = obj_str(f, "message");
					fprintf(stderr, "vigilctl spawn: vigild could not start worker %s: %s\n", id,
						safe_text(m != NULL ? m : "(no message)", msg, sizeof msg));
					json_decref(f);
				} else {
					fprintf(stderr,
						"vigilctl spawn: vigild could not start worker %s (coordination/spawn/failed/%s: %s)\n",
						id, file, why);
				}
				break;
			}
			/* A malformed request is moved to restart/rejected/ with
			 * "<file>.reason" beside it. */
			now = stamp_at(rejected_fd, reason_name);
			if (now.present && !stamp_same(&now, rejected_before)) {
				char *txt = NULL, msg[1024];
				size_t tl;
				if (vigil_fs_read(rejected_fd, reason_name, 4096, &txt, &tl) == 0) {
					txt[strcspn(txt, "\n")] = '\0';
					fprintf(stderr, "vigilctl spawn: vigild rejected the request for %s: %s\n", id,
						safe_text(txt, msg, sizeof msg));
					free(txt);
				} else {
					fprintf(stderr, "vigilctl spawn: vigild rejected the request for %s (see "
							"coordination/restart/rejected/%s)\n", id, reason_name);
				}
				break;
			}
		}
		if (polls % 25 == 24) { /* every half second: is vigild still there? */
			pid_t pid;
			if (vigild_running(c, &pid, why, sizeof why) == 0) {
				fprintf(stderr, "vigilctl: vigild is not running; the spawn request stays queued\n");
				break;
			}
		}
		if (vigil_mono_ns() >= deadline) {
			if (exists_at(queue_fd, file))
				fprintf(stderr,
					"vigilctl spawn: vigild did not take the request for %s within %d s; it stays queued\n",
					id, VIGILCTL_SPAWN_WAIT_S);
			else
				fprintf(stderr,
					"vigilctl spawn: vigild took the request for %s but worker-specs/active/%s did not "
					"appear within %d s\n",
					id, file, VIGILCTL_SPAWN_WAIT_S);
			break;
		}
		sleep_ms(VIGILCTL_POLL_MS);
	}
	if (active_fd >= 0)
		close(active_fd);
	if (zombie_fd >= 0)
		close(zombie_fd);
	if (failed_fd >= 0)
		close(failed_fd);
	if (rejected_fd >= 0)
		close(rejected_fd);
	return rc;
}

static int cmd_spawn(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		{"timeout", required_argument, NULL, 'T'},
		{"tokens", required_argument, NULL, 'n'},
		{"cwd", required_argument, NULL, 'C'},
		{"id", required_argument, NULL, 'i'},
		{"wait", no_argument, NULL, 'w'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("spawn");
	const char *type = NULL, *task = NULL, *timeout_s = NULL, *tokens_s = NULL, *cwd_arg = NULL, *id_arg = NULL;
	bool wait = false;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	/* '+': options stop at CMD even without "--". */
	while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': type = optarg; break;
		case 'k': task = optarg; break;
		case 'T': timeout_s = optarg; break;
		case 'n': tokens_s = optarg; break;
		case 'C': cwd_arg = optarg; break;
		case 'i': id_arg = optarg; break;
		case 'w': wait = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "Writes coordination/spawn/queue/<worker_id>.json; vigild starts the worker\n"
			       "when it reads it (at once if running, else when it starts), watches it, and\n"
			       "restarts it with the same command, type and task.  Prints the worker id.\n"
			       "\n"
			       "  --type T       worker type (required)\n"
			       "  --task-id X    task id (required)\n"
			       "  --timeout S    seconds the worker may run (number > 0; default none)\n"
			       "  --tokens N     token budget to allocate (integer >= 0; default 0)\n"
			       "  --cwd DIR      working directory (default: the current one)\n"
			       "  --id ID        worker id (default: worker-<T>-<NNN>, the first free NNN)\n"
			       "  --wait         wait up to %d s until vigild has started the worker;\n"
			       "                 exit 1 if it failed, is not running, or did not answer\n"
			       "\n"
			       "Ids, types and task ids: [A-Za-z0-9._-]{1,64}, not starting with '.'.\n",
			       VIGILCTL_SPAWN_WAIT_S);
			return EXIT_OK;
		default: return bad_option("spawn", opt, argv);
		}
	}
	if (type == NULL || task == NULL) {
		fprintf(stderr, "vigilctl spawn: --type and --task-id are required (see vigilctl spawn --help)\n");
		return EXIT_USAGE;
	}
	if (!vigil_id_valid(type)) {
		fprintf(stderr, "vigilctl spawn: invalid worker type '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(type, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!vigil_id_valid(task)) {
		fprintf(stderr, "vigilctl spawn: invalid task id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(task, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (id_arg != NULL && !vigil_id_valid(id_arg)) {
		fprintf(stderr, "vigilctl spawn: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(id_arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	double timeout = 0;
	if (timeout_s != NULL && (!parse_seconds(timeout_s, 0, 1e9, &timeout) || timeout <= 0)) {
		fprintf(stderr, "vigilctl spawn: invalid --timeout '%s': want a number of seconds > 0\n",
			render_arg(timeout_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	long tokens = 0;
	if (tokens_s != NULL && !parse_int(tokens_s, 0, LONG_MAX, &tokens)) {
		fprintf(stderr, "vigilctl spawn: invalid --tokens '%s': want an integer >= 0\n",
			render_arg(tokens_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		fprintf(stderr, "vigilctl spawn: no command given: want -- CMD [ARGS...] (see vigilctl spawn --help)\n");
		return EXIT_USAGE;
	}
	if (argv[optind][0] == '\0') {
		fprintf(stderr, "vigilctl spawn: the command is an empty string\n");
		return EXIT_USAGE;
	}
	if (argc - optind > VIGILCTL_CMD_ARGS_MAX) {
		fprintf(stderr, "vigilctl spawn: the command has %d words; vigild accepts at most %d\n", argc - optind,
			VIGILCTL_CMD_ARGS_MAX);
		return EXIT_USAGE;
	}
	json_t *command = json_array();
	if (command == NULL) {
		fprintf(stderr, "vigilctl spawn: out of memory\n");
		return EXIT_FAIL;
	}
	for (int i = optind; i < argc; i++) {
		if (strlen(argv[i]) > VIGILCTL_CMD_ARG_BYTES_MAX) {
			fprintf(stderr, "vigilctl spawn: command argument %d is %zu bytes long; vigild accepts at most %d\n",
				i - optind, strlen(argv[i]), VIGILCTL_CMD_ARG_BYTES_MAX);
			json_decref(command);
			return EXIT_USAGE;
		}
		json_t *a = json_string(argv[i]);
		if (a == NULL) {
			fprintf(stderr, "vigilctl spawn: command argument %d '%s' is not valid UTF-8\n", i - optind,
				render_arg(argv[i], rb, sizeof rb));
			json_decref(command);
			return EXIT_USAGE;
		}
		json_array_append_new(command, a);
	}

	/* The working directory, absolute and resolved. */
	char *cwd = realpath(cwd_arg != NULL ? cwd_arg : ".", NULL);
	struct stat st;
	if (cwd == NULL || stat(cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		int e = cwd == NULL ? errno : ENOTDIR;
		fprintf(stderr, "vigilctl spawn: working directory '%s': %s\n",
			cwd_arg != NULL ? cwd_arg : ".", strerror(e));
		free(cwd);
		json_decref(command);
		return EXIT_FAIL;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK) {
		free(cwd);
		json_decref(command);
		return rc;
	}
	int queue_fd = open_queue_dir("spawn", c, "coordination/spawn/queue");
	if (queue_fd < 0) {
		free(cwd);
		json_decref(command);
		return EXIT_FAIL;
	}
	int active_fd = open_home_dir(c, "coordination/worker-specs/active", false);
	int zombie_fd = open_home_dir(c, "coordination/worker-specs/zombie", false);
	int failed_fd = open_home_dir(c, "coordination/spawn/failed", false);
	int rejected_fd = open_home_dir(c, "coordination/restart/rejected", false);

	char id[128] = "", file[160];
	struct fstamp failed_before, rejected_before;
	char reason_name[192];
	memset(&failed_before, 0, sizeof failed_before);
	memset(&rejected_before, 0, sizeof rejected_before);
	rc = EXIT_FAIL;
	if (id_arg != NULL) {
		snprintf(id, sizeof id, "%s", id_arg);
		snprintf(file, sizeof file, "%s.json", id);
		if (exists_at(active_fd, file) || exists_at(zombie_fd, file)) {
			fprintf(stderr, "vigilctl spawn: worker %s already exists (coordination/worker-specs/%s/%s)\n", id,
				exists_at(active_fd, file) ? "active" : "zombie", file);
			goto out;
		}
		failed_before = stamp_at(failed_fd, file);
		snprintf(reason_name, sizeof reason_name, "%s.reason", file);
		rejected_before = stamp_at(rejected_fd, reason_name);
		uint64_t now = vigil_unix_ms();
		bool too_big;
		json_t *doc = spawn_doc(id, type, task, command, cwd, tokens, timeout_s != NULL, timeout, now, &too_big);
		if (doc == NULL) {
			spawn_doc_error(too_big, cwd);
			goto out;
		}
		int pr = publish_json(queue_fd, file, doc, true);
		json_decref(doc);
		if (pr == -EEXIST) {
			fprintf(stderr, "vigilctl spawn: a spawn request for worker %s is already queued "
					"(coordination/spawn/queue/%s)\n", id, file);
			goto out;
		}
		if (pr < 0) {
			fprintf(stderr, "vigilctl spawn: cannot write coordination/spawn/queue/%s: %s\n", file,
				strerror(-pr));
			goto out;
		}
	} else {
		/* The smallest free worker-<T>-<NNN>.  Concurrent spawns may pick
		 * the same number: linkat() lets exactly one of them have it,
		 * and the others move on to the next. */
		char prefix[VIGIL_ID_MAX + 16];
		snprintf(prefix, sizeof prefix, "worker-%s-", type);
		if (strlen(prefix) + 3 > VIGIL_ID_MAX) {
			fprintf(stderr, "vigilctl spawn: worker type '%s' is too long for a generated id (%s<NNN> exceeds %d "
					"characters); give --id\n", type, prefix, VIGIL_ID_MAX);
			goto out;
		}
		unsigned char *used = calloc(VIGILCTL_ID_NUM_MAX + 1, 1);
		if (used == NULL) {
			fprintf(stderr, "vigilctl spawn: out of memory\n");
			goto out;
		}
		mark_used(active_fd, prefix, used);
		mark_used(zombie_fd, prefix, used);
		mark_used(queue_fd, prefix, used);
		bool done = false, reported = false;
		for (long n = 1; n <= VIGILCTL_ID_NUM_MAX && !done; n++) {
			if (used[n])
				continue;
			char cand[128];
			snprintf(cand, sizeof cand, "%s%03ld", prefix, n);
			if (!vigil_id_valid(cand))
				break; /* too long from here on */
			snprintf(file, sizeof file, "%s.json", cand);
			/* Looked again: vigild may have started one meanwhile. */
			if (exists_at(active_fd, file) || exists_at(zombie_fd, file))
				continue;
			failed_before = stamp_at(failed_fd, file);
			snprintf(reason_name, sizeof reason_name, "%s.reason", file);
			rejected_before = stamp_at(rejected_fd, reason_name);
			uint64_t now = vigil_unix_ms();
			bool too_big;
			json_t *doc = spawn_doc(cand, type, task, command, cwd, tokens, timeout_s != NULL, timeout, now,
						&too_big);
			if (doc == NULL) {
				spawn_doc_error(too_big, cwd);
				reported = true;
				break;
			}
			int pr = publish_json(queue_fd, file, doc, true);
			json_decref(doc);
			if (pr == -EEXIST)
				continue;
			if (pr < 0) {
				fprintf(stderr, "vigilctl spawn: cannot write coordination/spawn/queue/%s: %s\n", file,
					strerror(-pr));
				reported = true;
				break;
			}
			snprintf(id, sizeof id, "%s", cand);
			done = true;
		}
		free(used);
		if (!done) {
			if (!reported)
				fprintf(stderr, "vigilctl spawn: no free worker id %s<NNN> (NNN up to %d)\n", prefix,
					VIGILCTL_ID_NUM_MAX);
			goto out;
		}
	}

	printf("%s\n", id);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl spawn: cannot write output: %s (worker %s is queued)\n", strerror(errno), id);
		goto out;
	}
	pid_t pid;
	char why[768] = "";
	int running = vigild_running(c, &pid, why, sizeof why);
	if (running == 0) {
		fprintf(stderr, "vigilctl: vigild is not running; the spawn request stays queued\n");
		rc = wait ? EXIT_FAIL : EXIT_OK;
		goto out;
	}
	if (running < 0)
		fprintf(stderr, "vigilctl: warning: cannot tell whether vigild is running: %s\n", why);
	rc = wait ? spawn_wait(c, queue_fd, id, file, &failed_before, &rejected_before) : EXIT_OK;
out:
	close(queue_fd);
	if (active_fd >= 0)
		close(active_fd);
	if (zombie_fd >= 0)
		close(zombie_fd);
	if (failed_fd >= 0)
		close(failed_fd);
	if (rejected_fd >= 0)
		close(rejected_fd);
	free(cwd);
	json_decref(command);
	return rc;
}

/* ---- restart ----------------------------------------------------------- */

/* worker_type and task_id of worker id from its spec in worker-specs/active/
 * or zombie/: 1 found (strings copied), 0 no spec, -1 a spec that cannot
 * be used (why set). */
static int spec_identity(const struct common *c, const char *id, char type[VIGIL_ID_MAX + 1],
			 char task[VIGIL_ID_MAX + 1], char *why, size_t why_len)
{
	/* A worker vigild gave up on, or one quarantined, has no spec any
	 * more, but its lifecycle record names it (README, "Worker lifecycle"). */
	static const char *const dirs[] = {"coordination/worker-specs/active", "coordination/worker-specs/zombie",
					   "coordination/lifecycle"};
	char file[VIGIL_ID_MAX + 8];
	snprintf(file, sizeof file, "%s.json", id);
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		int fd = open_home_dir(c, dirs[i], false);
		if (fd < 0)
			continue;
		json_t *spec = NULL;
		char err[512];
		int rc = load_object(fd, file, &spec, err, sizeof err);
		close(fd);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			snprintf(why, why_len, "%s/%s: %s", dirs[i], file, err);
			return -1;
		}
		const char *t = obj_str(spec, "worker_type"), *k = obj_str(spec, "task_id");
		if (t == NULL || !vigil_id_valid(t) || (k != NULL && k[0] != '\0' && !vigil_id_valid(k))) {
			snprintf(why, why_len, "%s/%s: no valid worker_type/task_id", dirs[i], file);
			json_decref(spec);
			return -1;
		}
		snprintf(type, VIGIL_ID_MAX + 1, "%s", t);
		snprintf(task, VIGIL_ID_MAX + 1, "%s", k != NULL ? k : "");
		json_decref(spec);
		return 1;
	}
	return 0;
}

static int cmd_restart(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"reason", required_argument, NULL, 'r'},
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("restart");
	const char *reason = "manual", *type_arg = NULL, *task_arg = NULL;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': reason = optarg; break;
		case 't': type_arg = optarg; break;
		case 'k': task_arg = optarg; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "Writes the runbook's restart request coordination/restart/queue/<ID>-restart.json\n"
			       "(<ID>-restart-<ms>.json when one is already queued) and prints its path.\n"
			       "vigild carries it out under the restart policy and circuit breaker, and\n"
			       "records the outcome in coordination/metrics/worker-restart-history.jsonl.\n"
			       "\n"
			       "  --reason R     why (default 'manual')\n"
			       "  --type T       worker type (default: from the worker's spec)\n"
			       "  --task-id X    task id (default: from the worker's spec)\n");
			return EXIT_OK;
		default: return bad_option("restart", opt, argv);
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "vigilctl restart: expected one worker ID, got %d argument%s (see vigilctl restart --help)\n",
			argc - optind, argc - optind == 1 ? "" : "s");
		return EXIT_USAGE;
	}
	const char *id = argv[optind];
	if (!vigil_id_valid(id)) {
		fprintf(stderr, "vigilctl restart: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (type_arg != NULL && !vigil_id_valid(type_arg)) {
		fprintf(stderr, "vigilctl restart: invalid worker type '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(type_arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (task_arg != NULL && task_arg[0] != '\0' && !vigil_id_valid(task_arg)) {
		fprintf(stderr, "vigilctl restart: invalid task id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(task_arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (reason[0] == '\0' || strlen(reason) > 1024) {
		fprintf(stderr, "vigilctl restart: --reason must be 1..1024 bytes\n");
		return EXIT_USAGE;
	}
	json_t *reason_j = json_string(reason);
	if (reason_j == NULL) {
		fprintf(stderr, "vigilctl restart: --reason '%s' is not valid UTF-8\n", render_arg(reason, rb, sizeof rb));
		return EXIT_USAGE;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK) {
		json_decref(reason_j);
		return rc;
	}
	char type[VIGIL_ID_MAX + 1] = "", task[VIGIL_ID_MAX + 1] = "", why[768] = "";
	if (type_arg == NULL || task_arg == NULL) {
		int found = spec_identity(c, id, type, task, why, sizeof why);
		if (found < 0 && type_arg == NULL) {
			fprintf(stderr, "vigilctl restart: cannot read the spec of worker %s (%s): give --type\n", id, why);
			json_decref(reason_j);
			return EXIT_FAIL;
		}
		if (found <= 0 && type_arg == NULL) {
			fprintf(stderr, "vigilctl restart: unknown worker ID: give --type (no spec for %s in "
					"coordination/worker-specs/active/ or zombie/, no coordination/lifecycle/ record)\n", id);
			json_decref(reason_j);
			return EXIT_FAIL;
		}
		if (found <= 0)
			task[0] = '\0'; /* --type given, worker unknown: no task id unless --task-id */
	}
	if (type_arg != NULL)
		snprintf(type, sizeof type, "%s", type_arg);
	if (task_arg != NULL)
		snprintf(task, sizeof task, "%s", task_arg);

	int qfd = open_queue_dir("restart", c, "coordination/restart/queue");
	if (qfd < 0) {
		json_decref(reason_j);
		return EXIT_FAIL;
	}
	uint64_t now = vigil_unix_ms();
	char iso[21];
	vigil_iso8601(now, iso);
	json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:s}", "worker_id", id, "worker_type", type, "task_id", task,
				"reason", reason_j, "created_at", iso);
	if (doc == NULL) {
		fprintf(stderr, "vigilctl restart: out of memory\n");
		close(qfd);
		return EXIT_FAIL;
	}
	char file[VIGIL_ID_MAX + 64];
	int pr = -EEXIST;
	snprintf(file, sizeof file, "%s-restart.json", id);
	pr = publish_json(qfd, file, doc, true);
	if (pr == -EEXIST) {
		fprintf(stderr, "vigilctl restart: note: a restart request for %s is already queued; adding another\n", id);
		/* Bounded: one name per millisecond from now on. */
		for (uint64_t ms = now; pr == -EEXIST && ms < now + 1000; ms++) {
			snprintf(file, sizeof file, "%s-restart-%llu.json", id, (unsigned long long)ms);
			pr = publish_json(qfd, file, doc, true);
		}
	}
	json_decref(doc);
	close(qfd);
	if (pr < 0) {
		fprintf(stderr, "vigilctl restart: cannot write coordination/restart/queue/%s: %s\n", file, strerror(-pr));
		return EXIT_FAIL;
	}
	printf("%s/coordination/restart/queue/%s\n", c->home, file);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl restart: cannot write output: %s (the request is queued)\n", strerror(errno));
		return EXIT_FAIL;
	}
	pid_t pid;
	if (vigild_running(c, &pid, why, sizeof why) == 0)
		fprintf(stderr, "vigilctl: note: vigild is not running; the restart request stays queued\n");
	return EXIT_OK;
}

/* ---- control requests: cleanup-zombies, breaker reset ------------------- */

/*
 * Queues coordination/control/queue/<prefix>-<ms>-<pid>.json =
 * {"request_id", "action", <fields...>, "created_at", "created_at_ms"} and
 * waits up to wait_s seconds for vigild's answer in
 * coordination/control/done/<same name>; on an answer, *done_out holds
 * it, the done file is removed, and EXIT_OK is returned (the caller looks
 * at "result").  Otherwise one line on stderr and EXIT_FAIL.
 */
static int control_request(const char *cmd, const struct common *c, const char *prefix, const char *action,
			   json_t *fields, double wait_s, json_t **done_out)
{
	*done_out = NULL;
	uint64_t now = vigil_unix_ms();
	char name[128], file[160], iso[21], why[768] = "";
	snprintf(name, sizeof name, "%s-%llu-%d", prefix, (unsigned long long)now, (int)getpid());
	snprintf(file, sizeof file, "%s.json", name);
	vigil_iso8601(now, iso);
	json_t *doc = json_pack("{s:s, s:s}", "request_id", name, "action", action);
	if (doc == NULL || json_object_update(doc, fields) < 0 ||
	    json_object_set_new(doc, "created_at", json_string(iso)) < 0 ||
	    json_object_set_new(doc, "created_at_ms", json_integer((json_int_t)now)) < 0) {
		json_decref(doc);
		fprintf(stderr, "vigilctl %s: out of memory\n", cmd);
		return EXIT_FAIL;
	}
	int qfd = open_queue_dir(cmd, c, "coordination/control/queue");
	if (qfd < 0) {
		json_decref(doc);
		return EXIT_FAIL;
	}
	int dfd = open_queue_dir(cmd, c, "coordination/control/done");
	if (dfd < 0) {
		json_decref(doc);
		close(qfd);
		return EXIT_FAIL;
	}
	int pr = publish_json(qfd, file, doc, true);
	json_decref(doc);
	if (pr < 0) {
		fprintf(stderr, "vigilctl %s: cannot write coordination/control/queue/%s: %s\n", cmd, file,
			strerror(-pr));
		goto fail;
	}
	pid_t pid;
	int running = vigild_running(c, &pid, why, sizeof why);
	if (running == 0) {
		fprintf(stderr, "vigilctl: vigild is not running; the %s request stays queued "
				"(coordination/control/queue/%s)\n", action, file);
		goto fail;
	}
	if (running < 0)
		fprintf(stderr, "vigilctl: warning: cannot tell whether vigild is running: %s\n", why);

	uint64_t deadline = vigil_mono_ns() + (uint64_t)(wait_s * 1e9);
	for (unsigned polls = 0;; polls++) {
		json_t *done = NULL;
		int lr = load_object(dfd, file, &done, why, sizeof why);
		if (lr == 0) {
			/* vigild may name the request by its file name. */
			const char *rid = obj_str(done, "request_id");
			if (rid != NULL && strcmp(rid, name) != 0 && strcmp(rid, file) != 0)
				fprintf(stderr, "vigilctl: warning: coordination/control/done/%s answers request '%s'\n",
					file, safe_text(rid, why, sizeof why));
			vigil_fs_remove(dfd, file);
			close(qfd);
			close(dfd);
			*done_out = done;
			return EXIT_OK;
		}
		if (lr != -ENOENT) {
			fprintf(stderr, "vigilctl %s: vigild's answer coordination/control/done/%s is unusable: %s\n", cmd,
				file, why);
			goto fail;
		}
		if (polls % 25 == 24 && running > 0 && vigild_running(c, &pid, why, sizeof why) == 0) {
			/* One last look: it may have answered and then stopped. */
			if (exists_at(dfd, file))
				continue;
			if (exists_at(qfd, file))
				fprintf(stderr, "vigilctl: vigild stopped before answering; the %s request stays queued\n",
					action);
			else
				fprintf(stderr, "vigilctl: vigild stopped before answering the %s request %s\n", action,
					name);
			goto fail;
		}
		if (vigil_mono_ns() >= deadline) {
			if (exists_at(qfd, file))
				fprintf(stderr, "vigilctl: no answer from vigild within %g s; the request stays queued "
						"(coordination/control/queue/%s)\n", wait_s, file);
			else
				fprintf(stderr, "vigilctl: no answer from vigild within %g s; it has taken the request: "
						"the answer will be in coordination/control/done/%s\n", wait_s, file);
			goto fail;
		}
		sleep_ms(VIGILCTL_POLL_MS);
	}
fail:
	close(qfd);
	close(dfd);
	return EXIT_FAIL;
}

/* Prints done as one compact JSON line. */
static int print_doc(const json_t *done)
{
	char *txt = json_dumps(done, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (txt == NULL)
		return EXIT_FAIL;
	printf("%s\n", txt);
	free(txt);
	return EXIT_OK;
}

/* Exit status and message of a control answer; prints the message (stdout
 * on success, stderr otherwise). */
static int control_result(const char *cmd, const json_t *done, bool quiet)
{
	const char *res = obj_str(done, "result"), *msg = obj_str(done, "message");
	bool ok = res != NULL && strcmp(res, "success") == 0;
	char buf[2048];
	if (!quiet) {
		if (ok && msg != NULL && msg[0] != '\0')
			printf("%s\n", safe_text(msg, buf, sizeof buf));
		else if (!ok)
			fprintf(stderr, "vigilctl %s: vigild: %s\n", cmd,
				msg != NULL && msg[0] != '\0' ? safe_text(msg, buf, sizeof buf) : "failed (no message)");
	} else if (!ok) {
		fprintf(stderr, "vigilctl %s: vigild answered %s\n", cmd,
			res != NULL ? safe_text(res, buf, sizeof buf) : "without a result");
	}
	return ok ? EXIT_OK : EXIT_FAIL;
}

/* Parses --wait-seconds: a number in [0, 86400]. */
static bool wait_arg(const char *cmd, const char *s, double *out)
{
	char rb[300];
	if (!parse_seconds(s, 0, 86400, out)) {
		fprintf(stderr, "vigilctl %s: invalid --wait-seconds '%s': want a number of seconds 0..86400\n", cmd,
			render_arg(s, rb, sizeof rb));
		return false;
	}
	return true;
}

static int cmd_cleanup(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"wait-seconds", required_argument, NULL, 'W'},
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("cleanup-zombies");
	double wait_s = VIGILCTL_CONTROL_WAIT_S;
	bool json = false;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'W':
			if (!wait_arg("cleanup-zombies", optarg, &wait_s))
				return EXIT_USAGE;
			break;
		case 'j': json = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "Asks vigild (control request in coordination/control/queue/) to clean up\n"
			       "every zombie worker, or only ID: the process is ended through its pidfd\n"
			       "(SIGTERM, then SIGKILL after a grace), its slot freed, its spec removed from\n"
			       "worker-specs/zombie/, its tokens returned.  Waits for vigild's answer, up to\n"
			       "--wait-seconds W (default %g), and prints one line per worker\n"
			       "  ID: RESULT (SIGNAL, N tokens returned)\n"
			       "then vigild's message (--json: the answer as JSON).  Exit 0 when vigild\n"
			       "reports success; 1 on failure, or when vigild is not running or does not\n"
			       "answer in time (the request then stays queued).\n",
			       VIGILCTL_CONTROL_WAIT_S);
			return EXIT_OK;
		default: return bad_option("cleanup-zombies", opt, argv);
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "vigilctl cleanup-zombies: expected at most one worker ID, got %d arguments "
				"(see vigilctl cleanup-zombies --help)\n", argc - optind);
		return EXIT_USAGE;
	}
	const char *id = optind < argc ? argv[optind] : NULL;
	if (id != NULL && !vigil_id_valid(id)) {
		fprintf(stderr, "vigilctl cleanup-zombies: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	json_t *fields = json_pack("{s:o}", "worker_id", id != NULL ? json_string(id) : json_null());
	json_t *done = NULL;
	rc = fields == NULL ? EXIT_FAIL
			    : control_request("cleanup-zombies", c, "cleanup", "cleanup_zombies", fields, wait_s, &done);
	json_decref(fields);
	if (rc != EXIT_OK)
		return rc;
	if (json) {
		print_doc(done);
	} else {
		json_t *workers = json_object_get(done, "workers");
		size_t i;
		json_t *w;
		json_array_foreach(workers, i, w) {
			if (!json_is_object(w))
				continue;
			char wid[300], res[128], sig[64];
			const char *s_id = obj_str(w, "worker_id"), *s_res = obj_str(w, "result"),
				   *s_sig = obj_str(w, "signal");
			json_t *tok = json_object_get(w, "tokens_returned");
			vigil_id_render(s_id != NULL ? s_id : "?", s_id != NULL ? strlen(s_id) : 1, wid, sizeof wid);
			vigil_id_render(s_res != NULL ? s_res : "?", s_res != NULL ? strlen(s_res) : 1, res, sizeof res);
			if (s_sig != NULL)
				vigil_id_render(s_sig, strlen(s_sig), sig, sizeof sig);
			else
				snprintf(sig, sizeof sig, "no signal");
			printf("%s: %s (%s, %lld tokens returned)\n", wid, res, sig,
			       json_is_integer(tok) ? (long long)json_integer_value(tok) : 0LL);
		}
	}
	rc = control_result("cleanup-zombies", done, json);
	json_decref(done);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl cleanup-zombies: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

/* ---- breakers ----------------------------------------------------------- */

struct breaker {
	char type[300]; /* worker_type, else the file's name without .json */
	json_t *doc;
};

static int breaker_cmp(const void *a, const void *b)
{
	return strcmp(((const struct breaker *)a)->type, ((const struct breaker *)b)->type);
}

static int cmd_breakers(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("breakers");
	bool json = false;
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "Reads coordination/circuit-breakers/*.json and prints, sorted by type,\n"
			       "  TYPE: STATE (N failures)\n"
			       "(STATE closed, open or half_open; '?' where a file lacks the key).  Files\n"
			       "that are not JSON objects are skipped with a warning.  --json prints an\n"
			       "array of the breaker objects, in the same order.\n");
			return EXIT_OK;
		default: return bad_option("breakers", opt, argv);
		}
	}
	int rc = no_operands("breakers", argc, argv);
	if (rc == EXIT_OK)
		rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	struct breaker *bs = NULL;
	size_t n = 0, cap = 0;
	int fd = open_home_dir(c, "coordination/circuit-breakers", false);
	if (fd < 0 && fd != -ENOENT) {
		fprintf(stderr, "vigilctl breakers: cannot open %s/coordination/circuit-breakers: %s\n", c->home,
			strerror(-fd));
		return EXIT_FAIL;
	}
	rc = EXIT_OK;
	if (fd >= 0) {
		int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		if (d == NULL) {
			fprintf(stderr, "vigilctl breakers: cannot read coordination/circuit-breakers: %s\n",
				strerror(errno));
			if (dfd >= 0)
				close(dfd);
			close(fd);
			return EXIT_FAIL;
		}
		rewinddir(d); /* the dup shares fd's offset */
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			const char *nm = de->d_name;
			size_t len = strlen(nm);
			if (nm[0] == '.' || len <= 5 || strcmp(nm + len - 5, ".json") != 0)
				continue;
			char why[512], rn[300];
			json_t *doc = NULL;
			int lr = load_object(fd, nm, &doc, why, sizeof why);
			if (lr < 0) {
				if (lr != -ENOENT) /* gone meanwhile: not a problem */
					fprintf(stderr, "vigilctl: warning: skipping coordination/circuit-breakers/%s: %s\n",
						render_arg(nm, rn, sizeof rn), why);
				continue;
			}
			if (n == cap) {
				size_t ncap = cap == 0 ? 16 : cap * 2;
				struct breaker *nb = realloc(bs, ncap * sizeof *nb);
				if (nb == NULL) {
					json_decref(doc);
					fprintf(stderr, "vigilctl breakers: out of memory\n");
					rc = EXIT_FAIL;
					break;
				}
				bs = nb;
				cap = ncap;
			}
			const char *t = obj_str(doc, "worker_type");
			if (t != NULL)
				vigil_id_render(t, strlen(t), bs[n].type, sizeof bs[n].type);
			else
				vigil_id_render(nm, len - 5, bs[n].type, sizeof bs[n].type);
			bs[n].doc = doc;
			n++;
		}
		closedir(d);
		close(fd);
	}
	if (n > 1)
		qsort(bs, n, sizeof *bs, breaker_cmp);
	if (rc == EXIT_OK && json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr != NULL && i < n; i++)
			json_array_append(arr, bs[i].doc);
		if (arr == NULL || print_doc(arr) != EXIT_OK) {
			fprintf(stderr, "vigilctl breakers: out of memory building JSON\n");
			rc = EXIT_FAIL;
		}
		json_decref(arr);
	} else if (rc == EXIT_OK) {
		for (size_t i = 0; i < n; i++) {
			const char *st = obj_str(bs[i].doc, "state");
			json_t *fc = json_object_get(bs[i].doc, "failure_count");
			char state[128], count[32];
			if (st != NULL)
				vigil_id_render(st, strlen(st), state, sizeof state);
			else
				snprintf(state, sizeof state, "?");
			if (json_is_integer(fc))
				snprintf(count, sizeof count, "%lld", (long long)json_integer_value(fc));
			else
				snprintf(count, sizeof count, "?");
			printf("%s: %s (%s failures)\n", bs[i].type, state, count);
		}
	}
	for (size_t i = 0; i < n; i++)
		json_decref(bs[i].doc);
	free(bs);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl breakers: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

/* One control request naming one thing: `vigilctl breaker reset TYPE`,
 * `vigilctl quarantine lift ID`.  what: "breaker"; verb: "reset"; key: the
 * request's field ("worker_type"); noun: how the argument is called. */
struct simple_control {
	const char *what, *verb, *key, *noun, *prefix, *action, *help;
};

static int run_simple_control(const struct simple_control *sc, int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"wait-seconds", required_argument, NULL, 'W'},
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd(sc->what);
	double wait_s = VIGILCTL_CONTROL_WAIT_S;
	bool json = false;
	char rb[300], label[64];
	snprintf(label, sizeof label, "%s %s", sc->what, sc->verb);
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'W':
			if (!wait_arg(sc->what, optarg, &wait_s))
				return EXIT_USAGE;
			break;
		case 'j': json = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n%s\nWaits for vigild's answer up to --wait-seconds W (default %g) and prints its\n"
			       "message (--json: the answer as JSON).  Exit 0 on success; 1 on failure, or\n"
			       "when vigild is not running or does not answer in time (the request then\n"
			       "stays queued).\n",
			       sc->help, VIGILCTL_CONTROL_WAIT_S);
			return EXIT_OK;
		default: return bad_option(sc->what, opt, argv);
		}
	}
	if (optind >= argc || strcmp(argv[optind], sc->verb) != 0) {
		fprintf(stderr, "vigilctl %s: expected '%s %s' (see vigilctl %s --help)\n", sc->what, sc->verb, sc->noun,
			sc->what);
		return EXIT_USAGE;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "vigilctl %s: expected one %s, got %d arguments (see vigilctl %s --help)\n", label,
			sc->noun, argc - optind - 1, sc->what);
		return EXIT_USAGE;
	}
	const char *arg = argv[optind + 1];
	if (!vigil_id_valid(arg)) {
		fprintf(stderr, "vigilctl %s: invalid %s '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n", label,
			sc->noun, render_arg(arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	json_t *fields = json_pack("{s:s}", sc->key, arg);
	json_t *done = NULL;
	rc = fields == NULL ? EXIT_FAIL : control_request(label, c, sc->prefix, sc->action, fields, wait_s, &done);
	json_decref(fields);
	if (rc != EXIT_OK)
		return rc;
	if (json)
		print_doc(done);
	rc = control_result(label, done, json);
	json_decref(done);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl %s: cannot write output: %s\n", label, strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

static int cmd_breaker(int argc, char **argv, struct common *c)
{
	static const struct simple_control sc = {
		"breaker", "reset", "worker_type", "worker TYPE", "breaker-reset", "breaker_reset",
		"Asks vigild (control request in coordination/control/queue/) to close the\n"
		"circuit breaker of worker type TYPE and clear its failure count."};
	return run_simple_control(&sc, argc, argv, c);
}

static int cmd_quarantine(int argc, char **argv, struct common *c)
{
	static const struct simple_control sc = {
		"quarantine", "lift", "worker_id", "worker ID", "quarantine-lift", "quarantine_lift",
		"Asks vigild to lift the quarantine auto-fix put on worker ID (no restarts\n"
		"while quarantined): its restart count and failure history start afresh."};
	return run_simple_control(&sc, argc, argv, c);
}

/* ---- shared by metrics, check and top ------------------------------------ */

/* True when pid is a live process that calls itself vigild (a pid left in
 * the header by a vigild that was killed may have been reused); a process
 * whose name cannot be read is taken at its word. */
static int type_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/*
 * Worker types whose breaker file in dirfd (coordination/circuit-breakers/)
 * says "state": "open".  The first max of them (in directory order) are
 * copied into types and sorted; the total is returned.  Unreadable files
 * are skipped silently (vigilctl breakers reports them).
 */
static size_t read_open_breakers(int dirfd, char (*types)[VIGIL_ID_MAX + 1], size_t max)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (nm[0] == '.' || len <= 5 || strcmp(nm + len - 5, ".json") != 0)
			continue;
		json_t *doc = NULL;
		char why[256];
		if (load_object(dirfd, nm, &doc, why, sizeof why) < 0)
			continue;
		const char *st = obj_str(doc, "state");
		if (st != NULL && strcmp(st, "open") == 0) {
			if (n < max) {
				const char *wt = obj_str(doc, "worker_type");
				if (wt != NULL && vigil_id_valid(wt))
					snprintf(types[n], VIGIL_ID_MAX + 1, "%s", wt);
				else
					vigil_id_render(nm, len - 5, types[n], VIGIL_ID_MAX + 1);
			}
			n++;
		}
		json_decref(doc);
	}
	closedir(d);
	qsort(types, n < max ? n : max, sizeof types[0], type_cmp);
	return n;
}

/* Copies a NUL-terminated string into a 65-byte field, truncating. */
static void copy_field(char dst[VIGIL_ID_MAX + 1], const char *src)
{
	size_t n = strnlen(src, VIGIL_ID_MAX);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- metrics -------------------------------------------------------------- */

#define METRICS_DOCS 3
static const char *const metrics_files[METRICS_DOCS] = {
	"heartbeat-monitor-metrics.json", "worker-restart-metrics.json", "auto-fix-daemon-metrics.json"};
static const char *const metrics_names[METRICS_DOCS] = {"heartbeat", "restart", "autofix"};

/* Loads the metrics documents of the home into docs (NULL where a file is
 * missing or unusable; the latter with a warning unless quiet).  Returns
 * how many were loaded, or -errno when coordination/metrics/ cannot be
 * opened (printed unless quiet). */
static int load_metrics(const char *cmd, const struct common *c, json_t *docs[METRICS_DOCS], bool quiet)
{
	for (int i = 0; i < METRICS_DOCS; i++)
		docs[i] = NULL;
	int fd = open_home_dir(c, "coordination/metrics", false);
	if (fd < 0) {
		if (!quiet)
			fprintf(stderr, "vigilctl %s: cannot open %s/coordination/metrics: %s%s\n", cmd, c->home,
				strerror(-fd), fd == -ENOENT ? " (has vigild run for this home?)" : "");
		return fd;
	}
	int n = 0;
	for (int i = 0; i < METRICS_DOCS; i++) {
		char why[512];
		int rc = load_object(fd, metrics_files[i], &docs[i], why, sizeof why);
		if (rc == 0)
			n++;
		else if (rc != -ENOENT && !quiet)
			fprintf(stderr, "vigilctl: warning: skipping coordination/metrics/%s: %s\n", metrics_files[i], why);
	}
	close(fd);
	return n;
}

static void print_metric(const char *key, const json_t *v)
{
	char kb[256], vb[1024];
	safe_text(key, kb, sizeof kb);
	if (json_is_integer(v)) {
		printf("  %s: %lld\n", kb, (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		printf("  %s: %.6g\n", kb, json_real_value(v));
	} else if (json_is_string(v)) {
		printf("  %s: %s\n", kb, safe_text(json_string_value(v), vb, sizeof vb));
	} else {
		char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("  %s: %s\n", kb, txt != NULL ? safe_text(txt, vb, sizeof vb) : "?");
		free(txt);
	}
}

/* The per-type figures for --prom from the segment and the breaker files;
 * NULL (with a warning) when the segment cannot be read. */
static json_t *metrics_per_type(const struct common *c)
{
	struct vigil_segment seg;
	char err[768] = "";
	int rc = vigil_segment_open(&seg, c->shm, 1, VIGILCTL_SHM_MODE, false, false, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "vigilctl metrics: warning: per-type metrics left out: segment %s: %s\n", c->shm,
			rc == -ENOENT ? "no such segment" : err[0] != '\0' ? err : vigil_strerror(rc));
		return NULL;
	}
	int bfd = open_home_dir(c, "coordination/circuit-breakers", false);
	json_t *pt = NULL;
	rc = vigil_prom_per_type(&seg, bfd, &pt);
	if (bfd >= 0)
		close(bfd);
	vigil_segment_close(&seg);
	if (rc < 0)
		fprintf(stderr, "vigilctl metrics: warning: per-type metrics left out: %s\n", strerror(-rc));
	return pt;
}

static int cmd_metrics(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"prom", no_argument, NULL, 'p'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("metrics");
	bool json = false, prom = false;
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': prom = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "Reads coordination/metrics/heartbeat-monitor-metrics.json,\n"
			       "worker-restart-metrics.json and auto-fix-daemon-metrics.json and prints\n"
			       "them as 'key: value' lines under one heading per file (default), or as one\n"
			       "JSON object {\"heartbeat\":...,\"restart\":...,\"autofix\":...} with null for a\n"
			       "file not written yet (--json).\n"
			       "\n"
			       "--prom prints the Prometheus text exposition that vigild writes to\n"
			       "coordination/metrics/vigil.prom (for node_exporter's textfile collector),\n"
			       "rendered from the current files plus per-type figures read from the\n"
			       "segment: vigil_workers, vigil_zombies, vigil_health_average and\n"
			       "vigil_breaker_open, labelled worker_type.  Counters end in _total;\n"
			       "durations are in seconds.  Exit 1 when no metrics file exists yet.\n");
			return EXIT_OK;
		default: return bad_option("metrics", opt, argv);
		}
	}
	if (no_operands("metrics", argc, argv) != EXIT_OK)
		return EXIT_USAGE;
	if (json && prom) {
		fprintf(stderr, "vigilctl metrics: --json and --prom are exclusive\n");
		return EXIT_USAGE;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	json_t *docs[METRICS_DOCS];
	int n = load_metrics("metrics", c, docs, false);
	if (n < 0)
		return EXIT_FAIL;
	if (n == 0) {
		fprintf(stderr, "vigilctl metrics: no metrics in %s/coordination/metrics yet (is vigild running?)\n",
			c->home);
		return EXIT_FAIL;
	}
	rc = EXIT_OK;
	if (prom) {
		json_t *pt = metrics_per_type(c);
		char *text = NULL;
		if (vigil_prom_render(docs[0], docs[1], docs[2], pt, &text) < 0) {
			fprintf(stderr, "vigilctl metrics: out of memory rendering the metrics\n");
			rc = EXIT_FAIL;
		} else {
			fputs(text, stdout);
			free(text);
		}
		json_decref(pt);
	} else if (json) {
		json_t *o = json_object();
		for (int i = 0; o != NULL && i < METRICS_DOCS; i++)
			json_object_set(o, metrics_names[i], docs[i] != NULL ? docs[i] : json_null());
		if (o == NULL || print_doc(o) != EXIT_OK) {
			fprintf(stderr, "vigilctl metrics: out of memory building JSON\n");
			rc = EXIT_FAIL;
		}
		json_decref(o);
	} else {
		for (int i = 0; i < METRICS_DOCS; i++) {
			if (docs[i] == NULL) {
				printf("%s: not written yet (coordination/metrics/%s)\n", metrics_names[i], metrics_files[i]);
				continue;
			}
			printf("%s (coordination/metrics/%s):\n", metrics_names[i], metrics_files[i]);
			const char *key;
			json_t *v;
			json_object_foreach(docs[i], key, v)
				print_metric(key, v);
		}
	}
	for (int i = 0; i < METRICS_DOCS; i++)
		json_decref(docs[i]);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl metrics: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

/* ---- check -------------------------------------------------------------- */

enum { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_CRITICAL = 2, CHECK_UNKNOWN = 3 };
static const char *const check_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

#define CHECK_MIN_HEALTH_DEFAULT 50
/* How long check waits for one scanner tick: 2 ticks, at least this, at most 30 s. */
#define CHECK_TICK_WAIT_MIN_MS 2000 /* a loaded host may delay a tick; a probe must not flap */
#define CHECK_TICK_WAIT_MAX_MS 30000
#define CHECK_NAMES_SHOWN 3

/* Up to CHECK_NAMES_SHOWN names for a verdict, then "and N more". */
struct namelist {
	char text[400];
	size_t n;
};

static void namelist_add(struct namelist *l, const char *name)
{
	if (l->n++ < CHECK_NAMES_SHOWN) {
		size_t len = strlen(l->text);
		snprintf(l->text + len, sizeof l->text - len, "%s%s", len > 0 ? ", " : "", name);
	}
}

static const char *namelist_str(const struct namelist *l, char *out, size_t len)
{
	if (l->n > CHECK_NAMES_SHOWN)
		snprintf(out, len, "%s and %zu more", l->text, l->n - CHECK_NAMES_SHOWN);
	else
		snprintf(out, len, "%s", l->text);
	return out;
}

/* Prints the verdict line and returns its exit code. */
static int check_out(int code, const char *msg, const char *perf)
{
	printf("VIGIL %s - %s%s%s\n", check_names[code], msg, perf != NULL ? " | " : "", perf != NULL ? perf : "");
	fflush(stdout);
	return code;
}

static int check_usage_error(void)
{
	return check_out(CHECK_UNKNOWN, "invalid arguments (see vigilctl check --help)", NULL);
}

/* The scanner tick from heartbeat-monitor-metrics.json, else 0.1 s. */
static double check_tick_seconds(const struct common *c)
{
	json_t *docs[METRICS_DOCS];
	double tick = 0.1;
	if (load_metrics("check", c, docs, true) > 0) {
		json_t *t = json_object_get(docs[0], "tick_seconds");
		if (json_is_number(t) && json_number_value(t) > 0 && json_number_value(t) <= 3600)
			tick = json_number_value(t);
	}
	for (int i = 0; i < METRICS_DOCS; i++)
		json_decref(docs[i]);
	return tick;
}

static int cmd_check(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"max-zombies", required_argument, NULL, 'z'},
		{"min-health", required_argument, NULL, 'm'},
		{"max-stale", required_argument, NULL, 's'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("check");
	long max_zombies = 0, min_health = CHECK_MIN_HEALTH_DEFAULT;
	double max_stale = 0;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'z':
			if (!parse_int(optarg, 0, INT_MAX, &max_zombies)) {
				fprintf(stderr, "vigilctl check: invalid --max-zombies '%s': want an integer >= 0\n",
					render_arg(optarg, rb, sizeof rb));
				return check_usage_error();
			}
			break;
		case 'm':
			if (!parse_int(optarg, 0, 101, &min_health)) {
				fprintf(stderr, "vigilctl check: invalid --min-health '%s': want an integer 0..101\n",
					render_arg(optarg, rb, sizeof rb));
				return check_usage_error();
			}
			break;
		case 's':
			if (!parse_seconds(optarg, 0, 1e9, &max_stale) || max_stale <= 0) {
				fprintf(stderr, "vigilctl check: invalid --max-stale '%s': want a number of seconds > 0\n",
					render_arg(optarg, rb, sizeof rb));
				return check_usage_error();
			}
			break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "Prints one line in the monitoring-plugin convention (Nagios, Icinga,\n"
			       "Kubernetes exec probes, cron) and exits with its status:\n"
			       "  VIGIL OK - 12 workers, 0 zombies, min health 95 | workers=12 zombies=0 min_health=95 breakers_open=0\n"
			       "\n"
			       "  2 CRITICAL  the segment does not exist, no live vigild is attached to it,\n"
			       "              vigild is not ticking (the header's tick counter did not move\n"
			       "              within two scanner ticks, at least %d ms), or more than\n"
			       "              --max-zombies N zombies (default 0)\n"
			       "  1 WARNING   a worker's health is below --min-health H (default %d;\n"
			       "              101 flags every worker), a circuit breaker is open, 1..N\n"
			       "              zombies when --max-zombies N allows them, or (with\n"
			       "              --max-stale S) a worker has not beaten for more than S seconds\n"
			       "  0 OK        none of these\n"
			       "  3 UNKNOWN   cannot tell: bad arguments, or a segment that cannot be read\n"
			       "              (another owner, another ABI)\n"
			       "The reasons follow the counts, with up to %d worker ids or types each.\n"
			       "min_health is U when no worker has been scored yet.\n",
			       CHECK_TICK_WAIT_MIN_MS, CHECK_MIN_HEALTH_DEFAULT, CHECK_NAMES_SHOWN);
			return EXIT_OK;
		default:
			bad_option("check", opt, argv);
			return check_usage_error();
		}
	}
	if (no_operands("check", argc, argv) != EXIT_OK)
		return check_usage_error();
	if (resolve(c) != EXIT_OK)
		return check_out(CHECK_UNKNOWN, "cannot resolve the home or the segment name", NULL);

	char msg[8192];
	struct vigil_segment seg;
	char err[768] = "";
	int rc = vigil_segment_open(&seg, c->shm, 1, VIGILCTL_SHM_MODE, false, false, err, sizeof err);
	if (rc == -ENOENT) {
		snprintf(msg, sizeof msg, "no segment %s: vigild is not running for %s", c->shm, c->home);
		return check_out(CHECK_CRITICAL, msg, NULL);
	}
	if (rc < 0) {
		snprintf(msg, sizeof msg, "segment %s: %s", c->shm, err[0] != '\0' ? err : vigil_strerror(rc));
		return check_out(CHECK_UNKNOWN, msg, NULL);
	}
	pid_t sp = supervisor_alive(&seg);
	if (sp == 0) {
		vigil_segment_close(&seg);
		snprintf(msg, sizeof msg, "vigild is not running (no live supervisor on segment %s)", c->shm);
		return check_out(CHECK_CRITICAL, msg, NULL);
	}

	/* Liveness: the scanner bumps supervisor_ticks every tick. */
	double tick = check_tick_seconds(c);
	double wait_ms = 2 * tick * 1000.0;
	if (wait_ms < CHECK_TICK_WAIT_MIN_MS)
		wait_ms = CHECK_TICK_WAIT_MIN_MS;
	if (wait_ms > CHECK_TICK_WAIT_MAX_MS)
		wait_ms = CHECK_TICK_WAIT_MAX_MS;
	uint64_t t0 = atomic_load_explicit(&seg.hdr->supervisor_ticks, memory_order_relaxed);
	uint64_t deadline = vigil_mono_ns() + (uint64_t)(wait_ms * 1e6);
	bool ticking = false;
	while (!ticking) {
		ticking = atomic_load_explicit(&seg.hdr->supervisor_ticks, memory_order_relaxed) != t0;
		if (ticking || vigil_mono_ns() >= deadline)
			break;
		sleep_ms(5);
	}
	if (!ticking) {
		vigil_segment_close(&seg);
		char pb[24];
		snprintf(msg, sizeof msg, "vigild (pid %s) is not ticking: no scan in %.1f s", pid_text(sp, pb),
			 wait_ms / 1000.0);
		return check_out(CHECK_CRITICAL, msg, NULL);
	}

	size_t workers = 0, zombies = 0;
	int lowest = -1;
	struct namelist zl, low, stale, brk;
	memset(&zl, 0, sizeof zl);
	memset(&low, 0, sizeof low);
	memset(&stale, 0, sizeof stale);
	memset(&brk, 0, sizeof brk);
	uint64_t now_ms = vigil_unix_ms();
	for (uint32_t i = 0; i < seg.slots; i++) {
		struct row r;
		if (!read_slot(&seg, i, &r))
			continue;
		workers++;
		if (strcmp(r.state, "zombie") == 0) {
			zombies++;
			namelist_add(&zl, r.id);
		}
		if (r.health >= 0) {
			if (lowest < 0 || r.health < lowest)
				lowest = r.health;
			if (r.health < min_health) {
				char item[340];
				snprintf(item, sizeof item, "%s (%d)", r.id, r.health);
				namelist_add(&low, item);
			}
		}
		if (max_stale > 0 && r.last_seen_ms != 0 && now_ms > r.last_seen_ms &&
		    (double)(now_ms - r.last_seen_ms) > max_stale * 1000.0) {
			char item[340];
			snprintf(item, sizeof item, "%s (%.1f s)", r.id, (double)(now_ms - r.last_seen_ms) / 1000.0);
			namelist_add(&stale, item);
		}
	}
	vigil_segment_close(&seg);

	char open_types[CHECK_NAMES_SHOWN][VIGIL_ID_MAX + 1];
	size_t nopen = 0;
	int bfd = open_home_dir(c, "coordination/circuit-breakers", false);
	if (bfd >= 0) {
		nopen = read_open_breakers(bfd, open_types, CHECK_NAMES_SHOWN);
		close(bfd);
		for (size_t i = 0; i < nopen; i++)
			namelist_add(&brk, i < CHECK_NAMES_SHOWN ? open_types[i] : "");
	}

	int code = CHECK_OK;
	char health_s[16], reasons[1600] = "", names[600];
	if (lowest >= 0)
		snprintf(health_s, sizeof health_s, "%d", lowest);
	else
		snprintf(health_s, sizeof health_s, "U");
	size_t rl = 0;
#define REASON(...) (rl += (size_t)snprintf(reasons + rl, rl < sizeof reasons ? sizeof reasons - rl : 0, __VA_ARGS__), \
		     rl = rl < sizeof reasons ? rl : sizeof reasons - 1)
	if (zombies > (size_t)max_zombies) {
		code = CHECK_CRITICAL;
		REASON("; %zu zombie%s (more than %ld): %s", zombies, zombies == 1 ? "" : "s", max_zombies,
		       namelist_str(&zl, names, sizeof names));
	} else if (zombies > 0) {
		code = CHECK_WARNING;
		REASON("; %zu zombie%s (at most %ld allowed): %s", zombies, zombies == 1 ? "" : "s", max_zombies,
		       namelist_str(&zl, names, sizeof names));
	}
	if (low.n > 0) {
		if (code < CHECK_WARNING)
			code = CHECK_WARNING;
		REASON("; %zu below health %ld: %s", low.n, min_health, namelist_str(&low, names, sizeof names));
	}
	if (stale.n > 0) {
		if (code < CHECK_WARNING)
			code = CHECK_WARNING;
		REASON("; %zu silent for more than %g s: %s", stale.n, max_stale, namelist_str(&stale, names, sizeof names));
	}
	if (brk.n > 0) {
		if (code < CHECK_WARNING)
			code = CHECK_WARNING;
		REASON("; %zu breaker%s open: %s", brk.n, brk.n == 1 ? "" : "s", namelist_str(&brk, names, sizeof names));
	}
#undef REASON
	char perf[256];
	snprintf(msg, sizeof msg, "%zu worker%s, %zu zombie%s, min health %s%s", workers, workers == 1 ? "" : "s",
		 zombies, zombies == 1 ? "" : "s", lowest >= 0 ? health_s : "-", reasons);
	snprintf(perf, sizeof perf, "workers=%zu zombies=%zu min_health=%s breakers_open=%zu", workers, zombies,
		 health_s, nopen);
	return check_out(code, msg, perf);
}

/* ---- top ------------------------------------------------------------------ */

/*
 * A live view of the segment, read-only.  Each refresh (every
 * TOP_REFRESH_MS) makes one pass over the slots, copying the live ones
 * into a row array that grows only when the fleet does (never per frame),
 * sorts an index array of the rows that pass the type filter, and renders
 * only the rows on screen into a frame buffer sized by the terminal, which
 * goes out in one write().  Beat rates are the difference of view.beats
 * between two refreshes, kept per slot (16 bytes a slot, calloc'd once:
 * pages of slots never used are never touched).
 */
#define TOP_REFRESH_MS 500
#define TOP_BREAKERS_MAX 64
#define TOP_BREAKERS_REREAD_NS (5 * VIGIL_NS_PER_S)
#define TOP_HEAD_LINES 6 /* title, vigild, totals, breakers, position, column names */
#define TOP_LINE_MAX 1024

enum top_sort { SORT_HEALTH, SORT_ID, SORT_AGE, SORT_TYPE, SORT_COUNT };
static const char *const top_sort_names[SORT_COUNT] = {"health", "id", "age", "type"};
static const char *const top_sort_desc[SORT_COUNT] = {"zombies, then lowest health first", "by id",
						       "longest silent first", "by type, then lowest health"};

enum top_attr { ATTR_NONE, ATTR_HEAD, ATTR_ZOMBIE, ATTR_BREAKER, ATTR_ALERT };

struct top_row {
	uint32_t slot;
	int32_t pid;
	int16_t health;   /* -1 unknown */
	int16_t progress; /* -1 unknown */
	bool zombie;
	bool missed;
	const char *state;
	uint64_t last_seen_ms; /* 0 unknown */
	double rate;           /* beats/s; < 0 unknown */
	char id[VIGIL_ID_MAX + 1];
	char type[VIGIL_ID_MAX + 1];
};

struct top {
	const struct common *c;
	struct vigil_segment seg;
	struct top_row *rows;
	uint32_t *order;
	size_t nrows, norder, cap;
	uint64_t *prev_beats; /* per slot: beats + 1 at the last refresh; 0 unknown */
	uint64_t *prev_gen;
	uint64_t prev_ns, prev_ticks;
	bool have_prev;
	double ticks_per_s, beats_per_s; /* < 0 unknown */
	pid_t vigild;                    /* 0: not running; -1: running, pid not visible here */
	uint64_t now_ms;
	size_t workers, zombies, missed, fresh;
	int sort;
	bool reverse;
	char filter[VIGIL_ID_MAX + 1]; /* "" all types */
	size_t scroll;
	char open_types[TOP_BREAKERS_MAX][VIGIL_ID_MAX + 1];
	size_t nopen;
	bool bdir_known;
	dev_t bdir_dev;
	ino_t bdir_ino;
	struct timespec bdir_mtime;
	uint64_t bdir_read_ns;
	/* the screen */
	bool live;
	int term_rows, term_cols;
	char *frame;
	size_t frame_len, frame_cap;
	int y; /* next screen line */
};

static int top_cmp_health(const struct top_row *x, const struct top_row *y)
{
	if (x->zombie != y->zombie)
		return x->zombie ? -1 : 1;
	if (x->health != y->health) {
		if (x->health < 0)
			return 1; /* unknown (new) last */
		if (y->health < 0)
			return -1;
		return x->health < y->health ? -1 : 1;
	}
	return 0;
}

static int top_cmp(const void *a, const void *b, void *arg)
{
	const struct top *t = arg;
	const struct top_row *x = &t->rows[*(const uint32_t *)a], *y = &t->rows[*(const uint32_t *)b];
	int r = 0;
	switch (t->sort) {
	case SORT_HEALTH: r = top_cmp_health(x, y); break;
	case SORT_AGE:
		if (x->last_seen_ms != y->last_seen_ms) {
			if (x->last_seen_ms == 0)
				r = 1;
			else if (y->last_seen_ms == 0)
				r = -1;
			else
				r = x->last_seen_ms < y->last_seen_ms ? -1 : 1;
		}
		break;
	case SORT_TYPE:
		r = strcmp(x->type, y->type);
		if (r == 0)
			r = top_cmp_health(x, y);
		break;
	default: break;
	}
	if (r == 0)
		r = strcmp(x->id, y->id);
	if (r == 0)
		r = x->slot < y->slot ? -1 : x->slot > y->slot;
	return t->reverse ? -r : r;
}

/* The index of the rows that pass the filter, sorted. */
static void top_order(struct top *t)
{
	t->norder = 0;
	for (size_t i = 0; i < t->nrows; i++)
		if (t->filter[0] == '\0' || strcmp(t->rows[i].type, t->filter) == 0)
			t->order[t->norder++] = (uint32_t)i;
	qsort_r(t->order, t->norder, sizeof t->order[0], top_cmp, t);
}

/* The next type filter: the smallest type after the current one, then all. */
static void top_next_type(struct top *t)
{
	const char *best = NULL;
	for (size_t i = 0; i < t->nrows; i++) {
		const char *ty = t->rows[i].type;
		if (strcmp(ty, t->filter) > 0 && (best == NULL || strcmp(ty, best) < 0))
			best = ty;
	}
	char next[VIGIL_ID_MAX + 1] = "";
	if (best != NULL)
		copy_field(next, best);
	memcpy(t->filter, next, sizeof next);
}

static bool top_breaker_open(const struct top *t, const char *type)
{
	size_t n = t->nopen < TOP_BREAKERS_MAX ? t->nopen : TOP_BREAKERS_MAX;
	for (size_t i = 0; i < n; i++)
		if (strcmp(t->open_types[i], type) == 0)
			return true;
	return false;
}

/* Rereads the open breakers when their directory changed (or every 5 s). */
static void top_breakers(struct top *t)
{
	int fd = open_home_dir(t->c, "coordination/circuit-breakers", false);
	if (fd < 0) {
		t->nopen = 0;
		t->bdir_known = false;
		return;
	}
	struct stat st;
	uint64_t now = vigil_mono_ns();
	if (fstat(fd, &st) == 0 && t->bdir_known && st.st_dev == t->bdir_dev && st.st_ino == t->bdir_ino &&
	    st.st_mtim.tv_sec == t->bdir_mtime.tv_sec && st.st_mtim.tv_nsec == t->bdir_mtime.tv_nsec &&
	    now - t->bdir_read_ns < TOP_BREAKERS_REREAD_NS) {
		close(fd);
		return;
	}
	t->nopen = read_open_breakers(fd, t->open_types, TOP_BREAKERS_MAX);
	t->bdir_known = true;
	t->bdir_dev = st.st_dev;
	t->bdir_ino = st.st_ino;
	t->bdir_mtime = st.st_mtim;
	t->bdir_read_ns = now;
	close(fd);
}

/* One pass over the slots.  -ENOMEM when the row array cannot grow. */
static int top_collect(struct top *t)
{
	uint64_t now_ns = vigil_mono_ns();
	double dt = t->have_prev ? (double)(now_ns - t->prev_ns) / 1e9 : 0;
	uint64_t ticks = atomic_load_explicit(&t->seg.hdr->supervisor_ticks, memory_order_relaxed);
	t->ticks_per_s = t->have_prev && dt > 0 && ticks >= t->prev_ticks ? (double)(ticks - t->prev_ticks) / dt : -1;
	t->vigild = supervisor_alive(&t->seg);
	t->now_ms = vigil_unix_ms();
	t->nrows = 0;
	t->workers = t->zombies = t->missed = t->fresh = 0;
	t->beats_per_s = -1;
	/* Bounded by the slot count copied at open. */
	for (uint32_t i = 0; i < t->seg.slots; i++) {
		struct row r;
		if (!read_slot(&t->seg, i, &r))
			continue;
		if (t->nrows == t->cap) {
			size_t ncap = t->cap * 2;
			struct top_row *nr = realloc(t->rows, ncap * sizeof *nr);
			if (nr == NULL)
				return -ENOMEM;
			t->rows = nr;
			uint32_t *no = realloc(t->order, ncap * sizeof *no);
			if (no == NULL)
				return -ENOMEM;
			t->order = no;
			t->cap = ncap;
		}
		struct top_row *o = &t->rows[t->nrows++];
		o->slot = i;
		o->pid = r.pid;
		o->health = (int16_t)r.health;
		o->progress = (int16_t)r.progress;
		o->state = r.state;
		o->zombie = strcmp(r.state, "zombie") == 0;
		o->missed = strcmp(r.state, "missed") == 0 || strcmp(r.state, "timeout") == 0;
		o->last_seen_ms = r.last_seen_ms;
		copy_field(o->id, r.id[0] != '\0' ? r.id : "-");
		copy_field(o->type, r.type[0] != '\0' ? r.type : "-");
		o->rate = -1;
		if (r.beats >= 0) {
			uint64_t b1 = (uint64_t)r.beats + 1;
			if (t->have_prev && dt > 0 && t->prev_gen[i] == r.gen && t->prev_beats[i] != 0 &&
			    b1 >= t->prev_beats[i])
				o->rate = (double)(b1 - t->prev_beats[i]) / dt;
			t->prev_beats[i] = b1;
		} else {
			t->prev_beats[i] = 0;
		}
		t->prev_gen[i] = r.gen;
		t->workers++;
		t->zombies += o->zombie;
		t->missed += o->missed;
		t->fresh += o->health < 0;
		if (o->rate >= 0)
			t->beats_per_s = (t->beats_per_s < 0 ? 0 : t->beats_per_s) + o->rate;
	}
	t->prev_ns = now_ns;
	t->prev_ticks = ticks;
	t->have_prev = true;
	top_breakers(t);
	return 0;
}

/* ---- top: drawing ---- */

static const char *ascii_text(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; s != NULL && *s != '\0' && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		out[o++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
	return out;
}

static void frame_add(struct top *t, const char *s, size_t n)
{
	if (t->frame_len + n > t->frame_cap)
		n = t->frame_cap - t->frame_len;
	memcpy(t->frame + t->frame_len, s, n);
	t->frame_len += n;
}

/* One line of the view: on the screen (clipped to its width, with its
 * attribute) when live, else printed as is. */
static void top_line(struct top *t, enum top_attr attr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void top_line(struct top *t, enum top_attr attr, const char *fmt, ...)
{
	char line[TOP_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (!t->live) {
		puts(line);
		return;
	}
	if (t->y >= t->term_rows)
		return;
	static const char *const on[] = {
		[ATTR_NONE] = "", [ATTR_HEAD] = "\033[7m", [ATTR_ZOMBIE] = "\033[1;31m",
		[ATTR_BREAKER] = "\033[33m", [ATTR_ALERT] = "\033[1;31m",
	};
	char pos[32];
	int pn = snprintf(pos, sizeof pos, "\033[%d;1H", t->y + 1);
	frame_add(t, pos, (size_t)pn);
	frame_add(t, on[attr], strlen(on[attr]));
	size_t len = strlen(line);
	if (len > (size_t)t->term_cols)
		len = (size_t)t->term_cols;
	frame_add(t, line, len);
	if (attr != ATTR_NONE)
		frame_add(t, "\033[0m", 4);
	frame_add(t, "\033[K", 3);
	t->y++;
}

static void top_fmt_age(uint64_t now_ms, uint64_t last_ms, char out[24])
{
	if (last_ms == 0) {
		snprintf(out, 24, "-");
		return;
	}
	unsigned long long d = now_ms > last_ms ? now_ms - last_ms : 0;
	if (d < 10000)
		snprintf(out, 24, "%.1fs", (double)d / 1000.0);
	else if (d < 60000)
		snprintf(out, 24, "%llus", d / 1000);
	else if (d < 3600000)
		snprintf(out, 24, "%llum%02llus", d / 60000, d / 1000 % 60);
	else if (d < 86400000)
		snprintf(out, 24, "%lluh%02llum", d / 3600000, d / 60000 % 60);
	else
		snprintf(out, 24, "%llud%02lluh", d / 86400000, d / 3600000 % 24);
}

/* "[#########-]  90": one # per full 10 points. */
static void top_fmt_health(int health, char out[24])
{
	char bar[11];
	int full = health < 0 ? 0 : health / 10;
	for (int i = 0; i < 10; i++)
		bar[i] = health < 0 ? ' ' : i < full ? '#' : '-';
	bar[10] = '\0';
	if (health < 0)
		snprintf(out, 24, "[%s]   -", bar);
	else
		snprintf(out, 24, "[%s] %3d", bar, health);
}

#define TOP_COLS "%-16s  %-*s  %-*s  %-8s %5s %8s %7s %7s"

static void top_draw(struct top *t)
{
	char home[512], shm[300], iso[21];
	t->y = 0;
	size_t body;
	if (t->live) {
		int b = t->term_rows - TOP_HEAD_LINES - 1;
		body = b > 1 ? (size_t)b : 1;
	} else {
		body = t->norder;
	}
	size_t max_scroll = t->norder > body ? t->norder - body : 0;
	if (t->scroll > max_scroll)
		t->scroll = max_scroll;
	size_t first = t->scroll, last = first + body < t->norder ? first + body : t->norder;

	vigil_iso8601(t->now_ms, iso);
	top_line(t, ATTR_NONE, "vigil top - home %s  segment %s  %s", ascii_text(t->c->home, home, sizeof home),
		 ascii_text(t->c->shm, shm, sizeof shm), iso);
	char pb[24];
	if (t->vigild == 0)
		top_line(t, ATTR_ALERT, "vigild NOT RUNNING (no live supervisor on the segment; values are stale)");
	else if (t->ticks_per_s < 0)
		top_line(t, ATTR_NONE, "vigild pid %s", pid_text(t->vigild, pb));
	else
		top_line(t, t->ticks_per_s == 0 ? ATTR_ALERT : ATTR_NONE, "vigild pid %s  %.1f ticks/s%s",
			 pid_text(t->vigild, pb), t->ticks_per_s, t->ticks_per_s == 0 ? "  (NOT TICKING)" : "");
	char bps[32];
	if (t->beats_per_s < 0)
		snprintf(bps, sizeof bps, "-");
	else
		snprintf(bps, sizeof bps, "%.1f", t->beats_per_s);
	top_line(t, t->zombies > 0 ? ATTR_ZOMBIE : ATTR_NONE, "workers %zu  zombies %zu  missed %zu  new %zu  beats/s %s",
		 t->workers, t->zombies, t->missed, t->fresh, bps);
	if (t->nopen == 0) {
		top_line(t, ATTR_NONE, "breakers open: none");
	} else {
		char list[TOP_LINE_MAX] = "";
		size_t n = t->nopen < TOP_BREAKERS_MAX ? t->nopen : TOP_BREAKERS_MAX, len = 0;
		for (size_t i = 0; i < n && len + VIGIL_ID_MAX + 16 < sizeof list; i++)
			len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i > 0 ? ", " : "", t->open_types[i]);
		top_line(t, ATTR_BREAKER, "breakers open: %zu (%s%s)", t->nopen, list, t->nopen > n ? ", ..." : "");
	}
	char shown[64];
	if (t->norder == 0)
		snprintf(shown, sizeof shown, "no workers");
	else if (!t->live)
		snprintf(shown, sizeof shown, "%zu workers", t->norder);
	else
		snprintf(shown, sizeof shown, "rows %zu-%zu of %zu", first + 1, last, t->norder);
	top_line(t, ATTR_NONE, "%s  type: %s  sort: %s (%s%s)", shown, t->filter[0] != '\0' ? t->filter : "all",
		 top_sort_names[t->sort], top_sort_desc[t->sort], t->reverse ? ", reversed" : "");

	/* Column widths from the rows shown only. */
	int idw = 2, tyw = 4;
	for (size_t k = first; k < last; k++) {
		const struct top_row *r = &t->rows[t->order[k]];
		int il = (int)strlen(r->id), tl = (int)strlen(r->type);
		idw = il > idw ? il : idw;
		tyw = tl > tyw ? tl : tyw;
	}
	top_line(t, ATTR_HEAD, TOP_COLS, "HEALTH", idw, "ID", tyw, "TYPE", "STATE", "PROG", "PID", "AGE", "BEAT/S");
	for (size_t k = first; k < last; k++) {
		const struct top_row *r = &t->rows[t->order[k]];
		char health[24], prog[8], pid[16], age[24], rate[24];
		top_fmt_health(r->health, health);
		if (r->progress < 0)
			snprintf(prog, sizeof prog, "-");
		else
			snprintf(prog, sizeof prog, "%d%%", r->progress);
		snprintf(pid, sizeof pid, "%d", (int)r->pid);
		top_fmt_age(t->now_ms, r->last_seen_ms, age);
		if (r->rate < 0)
			snprintf(rate, sizeof rate, "-");
		else
			snprintf(rate, sizeof rate, "%.1f", r->rate);
		enum top_attr a = r->zombie ? ATTR_ZOMBIE : top_breaker_open(t, r->type) ? ATTR_BREAKER : ATTR_NONE;
		top_line(t, a, TOP_COLS, health, idw, r->id, tyw, r->type, r->state, prog, pid, age, rate);
	}
	if (t->live) {
		/* The key line sits on the last screen line; the lines between are cleared. */
		char clr[32];
		int n = snprintf(clr, sizeof clr, "\033[%d;1H\033[J", t->y + 1);
		frame_add(t, clr, (size_t)n);
		t->y = t->term_rows - 1;
		top_line(t, ATTR_HEAD, "q quit  s sort  t type  r reverse  j/k arrows scroll  PgUp/PgDn page  g/G top/bottom");
	}
}

/* ---- top: the terminal ---- */

static struct termios top_saved;
static bool top_saved_valid, top_screen_on;
static volatile sig_atomic_t top_quit_sig, top_resized, top_suspend;

static void top_write_all(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void top_term_restore(void)
{
	if (top_screen_on) {
		static const char leave[] = "\033[0m\033[?25h\033[?1049l";
		top_write_all(leave, sizeof leave - 1);
		top_screen_on = false;
	}
	if (top_saved_valid) {
		tcsetattr(STDIN_FILENO, TCSADRAIN, &top_saved);
		top_saved_valid = false;
	}
}

/* Keys without echo or line buffering (signals stay on: ^C is SIGINT),
 * the alternate screen, no cursor. */
static void top_term_enter(void)
{
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved) == 0) {
		struct termios raw = top_saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
		raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
			top_saved_valid = true;
	}
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	top_write_all(enter, sizeof enter - 1);
	top_screen_on = true;
}

static void top_on_signal(int sig)
{
	if (sig == SIGWINCH || sig == SIGCONT)
		top_resized = 1;
	else if (sig == SIGTSTP)
		top_suspend = 1;
	else
		top_quit_sig = sig;
}

static void top_signals(bool install)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP, SIGCONT};
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = install ? top_on_signal : SIG_DFL; /* no SA_RESTART: poll() returns */
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}

/* The terminal's size; the frame buffer follows it. */
static int top_resize(struct top *t)
{
	struct winsize ws;
	int rows = 24, cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		rows = ws.ws_row;
		cols = ws.ws_col;
	}
	if (cols > TOP_LINE_MAX - 1)
		cols = TOP_LINE_MAX - 1;
	size_t need = (size_t)rows * ((size_t)cols + 48) + 64;
	if (need > t->frame_cap) {
		char *f = realloc(t->frame, need);
		if (f == NULL)
			return -ENOMEM;
		t->frame = f;
		t->frame_cap = need;
	}
	t->term_rows = rows;
	t->term_cols = cols;
	return 0;
}

/* Handles the keys in buf[0..n); false when the user quits. */
static bool top_keys(struct top *t, const unsigned char *buf, size_t n)
{
	size_t page = t->term_rows > TOP_HEAD_LINES + 2 ? (size_t)(t->term_rows - TOP_HEAD_LINES - 1) : 1;
	for (size_t i = 0; i < n; i++) {
		int k = buf[i];
		if (k == 0x1b && i + 1 < n && (buf[i + 1] == '[' || buf[i + 1] == 'O')) {
			/* CSI / SS3: ESC [ A, ESC O A, ESC [ 5 ~ ... */
			size_t j = i + 2;
			int num = 0;
			while (j < n && buf[j] >= '0' && buf[j] <= '9')
				num = num * 10 + (buf[j++] - '0');
			if (j >= n)
				break;
			switch (buf[j]) {
			case 'A': k = 'k'; break;
			case 'B': k = 'j'; break;
			case 'H': k = 'g'; break;
			case 'F': k = 'G'; break;
			case '~': k = num == 5 ? 'b' : num == 6 ? ' ' : (num == 1 || num == 7) ? 'g' : (num == 4 || num == 8) ? 'G' : 0; break;
			default: k = 0; break;
			}
			i = j;
		}
		switch (k) {
		case 'q': case 'Q': return false;
		case 's':
			t->sort = (t->sort + 1) % SORT_COUNT;
			t->scroll = 0;
			top_order(t);
			break;
		case 't':
			top_next_type(t);
			t->scroll = 0;
			top_order(t);
			break;
		case 'r':
			t->reverse = !t->reverse;
			top_order(t);
			break;
		case 'j': t->scroll++; break;
		case 'k': t->scroll = t->scroll > 0 ? t->scroll - 1 : 0; break;
		case ' ': case 'f': case 0x06: t->scroll += page; break;
		case 'b': case 0x02: t->scroll = t->scroll > page ? t->scroll - page : 0; break;
		case 'g': t->scroll = 0; break;
		case 'G': t->scroll = SIZE_MAX / 2; break; /* clamped when drawn */
		default: break;
		}
	}
	return true;
}

static int top_live(struct top *t)
{
	if (top_resize(t) < 0) {
		fprintf(stderr, "vigilctl top: out of memory\n");
		return EXIT_FAIL;
	}
	top_signals(true);
	atexit(top_term_restore);
	top_term_enter();
	bool keys = top_saved_valid;
	uint64_t next = 0;
	bool dirty = true;
	int rc = EXIT_OK;
	while (top_quit_sig == 0) {
		if (top_suspend) {
			top_suspend = 0;
			top_term_restore();
			signal(SIGTSTP, SIG_DFL);
			raise(SIGTSTP); /* stops here until SIGCONT */
			top_signals(true);
			top_term_enter();
			top_resized = 1;
		}
		if (top_resized) {
			top_resized = 0;
			if (top_resize(t) < 0) {
				rc = EXIT_FAIL;
				break;
			}
			top_write_all("\033[2J", 4);
			dirty = true;
		}
		uint64_t now = vigil_mono_ns();
		if (now >= next) {
			if (top_collect(t) < 0) {
				rc = EXIT_FAIL;
				break;
			}
			top_order(t);
			next = now + (uint64_t)TOP_REFRESH_MS * VIGIL_NS_PER_MS;
			dirty = true;
		}
		if (dirty) {
			t->frame_len = 0;
			top_draw(t);
			top_write_all(t->frame, t->frame_len);
			dirty = false;
		}
		now = vigil_mono_ns();
		int wait = next > now ? (int)((next - now) / VIGIL_NS_PER_MS) + 1 : 0;
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		int pn = poll(&p, keys ? 1 : 0, wait);
		if (pn > 0 && (p.revents & POLLIN)) {
			unsigned char buf[64];
			ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
			if (r == 0)
				break; /* the terminal went away */
			if (r > 0) {
				if (!top_keys(t, buf, (size_t)r))
					break;
				dirty = true;
			}
		} else if (pn > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			break;
		}
	}
	top_term_restore();
	top_signals(false);
	if (rc != EXIT_OK)
		fprintf(stderr, "vigilctl top: out of memory\n");
	if (top_quit_sig != 0 && top_quit_sig != SIGINT && top_quit_sig != SIGQUIT) {
		/* Die of the signal, as the sender expects (the terminal is restored). */
		raise(top_quit_sig);
	}
	return rc;
}

static int cmd_top(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"once", no_argument, NULL, '1'},
		{"type", required_argument, NULL, 't'},
		{"sort", required_argument, NULL, 's'},
		{"reverse", no_argument, NULL, 'r'},
		COMMON_OPTIONS,
	};
	const struct cmd *self = find_cmd("top");
	bool once = false, reverse = false;
	const char *type = NULL;
	int sort = SORT_HEALTH;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case '1': once = true; break;
		case 't': type = optarg; break;
		case 's':
			sort = -1;
			for (int i = 0; i < SORT_COUNT; i++)
				if (strcmp(optarg, top_sort_names[i]) == 0)
					sort = i;
			if (sort < 0) {
				fprintf(stderr, "vigilctl top: invalid --sort '%s': want health, id, age or type\n",
					render_arg(optarg, rb, sizeof rb));
				return EXIT_USAGE;
			}
			break;
		case 'r': reverse = true; break;
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			usage_cmd(stdout, self);
			printf("\n"
			       "A full-screen view of the live workers, read from the shared-memory segment\n"
			       "(a read-only mapping: vigild is never blocked) every %d ms.  The top lines\n"
			       "show vigild's pid and ticks/s, the totals (workers, zombies, workers missing\n"
			       "beats, workers not yet scored, beats/s) and the open circuit breakers; then\n"
			       "one row per worker:\n"
			       "  HEALTH (bar and score)  ID  TYPE  STATE  PROG  PID  AGE (since its last\n"
			       "  beat)  BEAT/S (beats vigild saw per second since the last refresh)\n"
			       "sorted worst first: zombies, then lowest health (--sort health, default);\n"
			       "--sort id, age (longest silent first) or type; --reverse reverses.\n"
			       "Zombies are shown in red, workers whose type's breaker is open in yellow.\n"
			       "\n"
			       "Keys: q quit, s next sort, t next type filter (all, then each type),\n"
			       "r reverse, j/k or arrows scroll one row, PgUp/PgDn (b/space) one page,\n"
			       "g/G top/bottom.  Ctrl-C also quits; the terminal is restored on exit,\n"
			       "SIGINT, SIGTERM, SIGHUP and Ctrl-Z.\n"
			       "\n"
			       "--once prints one frame as plain text (no escapes, every row) and exits;\n"
			       "it samples twice, %d ms apart, so that the rates are known.\n"
			       "--type T shows only workers of type T.\n",
			       TOP_REFRESH_MS, TOP_REFRESH_MS);
			return EXIT_OK;
		default: return bad_option("top", opt, argv);
		}
	}
	if (no_operands("top", argc, argv) != EXIT_OK)
		return EXIT_USAGE;
	if (type != NULL && !vigil_id_valid(type)) {
		fprintf(stderr, "vigilctl top: invalid worker type '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(type, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!once && !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "vigilctl top: standard output is not a terminal; use --once for one plain frame\n");
		return EXIT_USAGE;
	}
	int rc = resolve(c);
	if (rc != EXIT_OK)
		return rc;
	static struct top t; /* large (open breaker names); one per process */
	memset(&t, 0, sizeof t);
	t.c = c;
	t.sort = sort;
	t.reverse = reverse;
	t.live = !once;
	if (type != NULL)
		copy_field(t.filter, type);
	rc = open_segment(c, &t.seg, false);
	if (rc != EXIT_OK)
		return rc;
	t.cap = t.seg.slots < 1024 ? t.seg.slots : 1024;
	t.rows = malloc(t.cap * sizeof *t.rows);
	t.order = malloc(t.cap * sizeof *t.order);
	t.prev_beats = calloc(t.seg.slots, sizeof *t.prev_beats);
	t.prev_gen = calloc(t.seg.slots, sizeof *t.prev_gen);
	if (t.rows == NULL || t.order == NULL || t.prev_beats == NULL || t.prev_gen == NULL) {
		fprintf(stderr, "vigilctl top: out of memory for %u slots\n", t.seg.slots);
		rc = EXIT_FAIL;
	} else if (once) {
		if (top_collect(&t) == 0) {
			sleep_ms(TOP_REFRESH_MS);
			rc = top_collect(&t) == 0 ? EXIT_OK : EXIT_FAIL;
		} else {
			rc = EXIT_FAIL;
		}
		if (rc == EXIT_OK) {
			top_order(&t);
			top_draw(&t);
			if (fflush(stdout) != 0 || ferror(stdout)) {
				fprintf(stderr, "vigilctl top: cannot write output: %s\n", strerror(errno));
				rc = EXIT_FAIL;
			}
		} else {
			fprintf(stderr, "vigilctl top: out of memory\n");
		}
	} else {
		rc = top_live(&t);
	}
	free(t.rows);
	free(t.order);
	free(t.prev_beats);
	free(t.prev_gen);
	free(t.frame);
	vigil_segment_close(&t.seg);
	return rc;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"home", required_argument, NULL, 'H'},
		{"shm", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct common c;
	memset(&c, 0, sizeof c);
	int opt;
	opterr = 0;
	/* '+': stop at the subcommand; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'H': c.home_arg = optarg; break;
		case 'S': c.shm_arg = optarg; break;
		case 'h': usage_main(stdout); return EXIT_OK;
		case 'V': printf("vigilctl " VIGILCTL_VERSION "\n"); return EXIT_OK;
		default:
			if (opt == ':')
				fprintf(stderr, "vigilctl: option '%s' needs an argument (see vigilctl --help)\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "vigilctl: unknown option '%s' (see vigilctl --help)\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	const struct cmd *cmd = find_cmd(argv[optind]);
	if (cmd == NULL) {
		char rb[300];
		fprintf(stderr, "vigilctl: unknown command '%s' (see vigilctl --help)\n",
			render_arg(argv[optind], rb, sizeof rb));
		return EXIT_USAGE;
	}
	return cmd->fn(argc - optind, argv + optind, &c);
}
