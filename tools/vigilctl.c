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
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Subcommands.  Only what works is listed; spawn, restart,
 * cleanup-zombies, breakers, breaker, metrics, top and check go here when
 * they are written. */
static const struct cmd cmds[] = {
	{"status", cmd_status, "[--json] [--home DIR] [--shm NAME]",
	 "list live workers: HEALTH% | ID | LAST_SEEN | TYPE | PID | STATE"},
	{"emit", cmd_emit, "[--pid PID] [--type T] [--task-id X] [--home DIR] [--shm NAME] ID HEALTH PROGRESS",
	 "publish one heartbeat for a worker that cannot include vigil.h"},
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
		fprintf(out, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fprintf(out,
		"\n"
		"Every command takes --home DIR (else $COMMIT_RELAY_HOME, else the current\n"
		"directory) and --shm NAME (else $VIGIL_SHM, else derived from the home).\n"
		"'vigilctl COMMAND --help' describes a command.  Exit codes: 0 ok, 1 failure,\n"
		"2 usage.\n");
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

/* True when pid names a live process (ours or not). */
static bool pid_alive(uint64_t pid)
{
	if (pid == 0 || pid > INT_MAX) /* never kill(0) or kill(-n) */
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* The vigild attached to the segment, or 0 when none is (or it is gone). */
static pid_t supervisor_alive(const struct vigil_segment *seg)
{
	uint64_t sp = atomic_load_explicit(&seg->hdr->supervisor_pid, memory_order_acquire);
	return pid_alive(sp) ? (pid_t)sp : 0;
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
 * than ACTIVE or ZOMBIE) or kept changing owner while we read it.
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
		r->pid = cold.pid;
		slot_id(r->id, cold.worker_id);
		slot_id(r->type, cold.worker_type);
		slot_id(r->task, cold.task_id);

		/* Generation 0 was never claimed (claims start at 1), so a zeroed
		 * view never vouches for it. */
		bool trusted = gen != 0 && vgen == (uint32_t)gen && vgen2 == vgen;
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
		{"home", required_argument, NULL, 'H'},
		{"shm", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
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
	if (optind < argc) {
		fprintf(stderr, "vigilctl status: unexpected argument '%s' (see vigilctl status --help)\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	int rc = resolve(c);
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

/* Waits (1 ms polls, at most VIGILCTL_ACK_WAIT_MS) until vigild stores
 * this generation in the slot's ack word: vigild verifies a self-registered
 * worker through its registrar - this process, a descendant of the worker - so
 * we must stay alive and mapped until it has looked.  Returns 1 acked,
 * 0 timed out, -1 the slot stopped being ours meanwhile. */
static int wait_ack(struct vigil_slot_hot *hot, uint64_t gen)
{
	const uint64_t mask = (1ull << 56) - 1;
	const uint64_t owner = vigil_owner_make(VIGIL_SLOT_ACTIVE, gen);
	struct timespec ms = {0, 1000000};
	for (int i = 0; i <= VIGILCTL_ACK_WAIT_MS; i++) {
		if ((atomic_load_explicit(&hot->ack, memory_order_acquire) & mask) == (gen & mask))
			return 1;
		if (atomic_load_explicit(&hot->owner, memory_order_acquire) != owner)
			return -1;
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

static int cmd_emit(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		{"home", required_argument, NULL, 'H'},
		{"shm", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct cmd *self = find_cmd("emit");
	const char *pid_s = NULL, *type = NULL, *task = NULL;
	char rb[300];
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': pid_s = optarg; break;
		case 't': type = optarg; break;
		case 'k': task = optarg; break;
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
			       "the worker pid); later emits beat that slot.  Prints nothing on success.\n");
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
	if (argc - optind != 3) {
		fprintf(stderr, "vigilctl emit: expected ID HEALTH PROGRESS, got %d argument%s (see vigilctl emit --help)\n",
			argc - optind, argc - optind == 1 ? "" : "s");
		return EXIT_USAGE;
	}
	const char *id = argv[optind], *health_s = argv[optind + 1], *progress_s = argv[optind + 2];
	long health, progress, pidl;
	if (!vigil_id_valid(id)) {
		fprintf(stderr, "vigilctl emit: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!parse_int(health_s, 0, 100, &health)) {
		fprintf(stderr, "vigilctl emit: invalid HEALTH '%s': want an integer 0..100\n",
			render_arg(health_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!parse_int(progress_s, 0, 100, &progress)) {
		fprintf(stderr, "vigilctl emit: invalid PROGRESS '%s': want an integer 0..100\n",
			render_arg(progress_s, rb, sizeof rb));
		return EXIT_USAGE;
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
	struct vigil_segment seg;
	rc = open_segment(c, &seg, true);
	if (rc != EXIT_OK)
		return rc;
	int32_t pid = (int32_t)pidl;

	/* A worker vigild started: its slot is in the environment. */
	uint64_t gen = 0;
	int64_t found = env_slot(&seg, id, &gen);
	int32_t other_pid = 0;
	bool zombie = false;
	/* Otherwise the ACTIVE slot holding this id and pid.  Bounded by the
	 * slot count copied at open. */
	for (uint32_t i = 0; found < 0 && i < seg.slots; i++) {
		uint64_t o = atomic_load_explicit(&seg.hot[i].owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE)
			continue;
		char cid[VIGIL_ID_MAX + 1];
		if (!vigil_id_copy(cid, seg.cold[i].worker_id) || strcmp(cid, id) != 0)
			continue;
		int32_t cpid = seg.cold[i].pid;
		if (atomic_load_explicit(&seg.hot[i].owner, memory_order_acquire) != o)
			continue; /* changed hands while we read it */
		if (st == VIGIL_SLOT_ZOMBIE) {
			zombie = zombie || cpid == pid;
			continue;
		}
		if (cpid == pid) {
			found = i;
			gen = vigil_owner_gen(o);
		} else if (other_pid == 0) {
			other_pid = cpid;
		}
	}
	if (found >= 0) {
		bool ok = beat_slot(&seg.hot[found], gen, (unsigned)health, (unsigned)progress);
		vigil_segment_close(&seg);
		if (!ok) {
			fprintf(stderr, "vigilctl emit: slot %lld of worker %s keeps changing; beat not recorded\n",
				(long long)found, id);
			return EXIT_FAIL;
		}
		return EXIT_OK;
	}
	if (other_pid != 0) {
		bool gone = !pid_alive((uint64_t)(other_pid > 0 ? other_pid : 0));
		fprintf(stderr, "vigilctl emit: worker id %s is already registered by pid %d%s\n", id, (int)other_pid,
			gone ? " (no longer running; vigild frees its slot when it notices)" : "");
		vigil_segment_close(&seg);
		return EXIT_FAIL;
	}
	if (zombie) {
		fprintf(stderr,
			"vigilctl emit: worker %s (pid %d) was declared a zombie by vigild; its beats are ignored "
			"until it is cleaned up\n",
			id, (int)pid);
		vigil_segment_close(&seg);
		return EXIT_FAIL;
	}

	/* Register.  vigil_register() sizes itself from the header, which any
	 * worker may have scribbled on since we validated it: check again. */
	if (vigil_header_check(seg.hdr, seg.size) < 0 || seg.hdr->slot_count != seg.slots) {
		fprintf(stderr, "vigilctl emit: segment %s: header changed since it was opened; refusing it\n",
			seg.name);
		vigil_segment_close(&seg);
		return EXIT_FAIL;
	}
	struct vigil v;
	memset(&v, 0, sizeof v);
	v.hdr = seg.hdr;
	v.map_size = (size_t)seg.size;
	rc = vigil_register(&v, id, type, task, pid);
	if (rc == -EAGAIN)
		rc = vigil_register(&v, id, type, task, pid);
	if (rc < 0) {
		if (rc == -ENOSPC)
			fprintf(stderr, "vigilctl emit: segment %s is full (all %u slots taken): %s\n", seg.name,
				seg.slots, vigil_strerror(rc));
		else
			fprintf(stderr, "vigilctl emit: cannot register worker %s in %s: %s\n", id, seg.name,
				vigil_strerror(rc));
		vigil_segment_close(&seg);
		return EXIT_FAIL;
	}
	vigil_beat(&v, (unsigned)health, (unsigned)progress);

	rc = EXIT_OK;
	pid_t sup = supervisor_alive(&seg);
	if (sup != 0) {
		int acked = wait_ack(v.hot, v.gen);
		if (acked == 0) {
			fprintf(stderr,
				"vigilctl: warning: vigild (pid %d) did not acknowledge worker %s (slot %u) within %d ms; "
				"the beat is recorded, but vigild may watch pid %d by timeouts only\n",
				(int)sup, id, v.slot, VIGILCTL_ACK_WAIT_MS, (int)pid);
		} else if (acked < 0) {
			fprintf(stderr,
				"vigilctl emit: vigild did not accept worker %s (pid %d): slot %u was released before it "
				"was acknowledged (is pid %d alive, and is vigilctl its child?)\n",
				id, (int)pid, v.slot, (int)pid);
			rc = EXIT_FAIL;
		}
	}
	/* Not vigil_detach(): the worker stays registered after we exit. */
	vigil_segment_close(&seg);
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
