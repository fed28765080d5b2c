/*
 * emit.c - `vigilctl emit`: heartbeats for a worker that cannot include
 * vigil.h (a shell script, via emitter/worker-heartbeat-emitter.sh).
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>

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
			ctl_render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!ctl_parse_int(health_s, 0, 100, health)) {
		fprintf(stderr, "vigilctl emit: invalid HEALTH '%s': want an integer 0..100\n",
			ctl_render_arg(health_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!ctl_parse_int(progress_s, 0, 100, progress)) {
		fprintf(stderr, "vigilctl emit: invalid PROGRESS '%s': want an integer 0..100\n",
			ctl_render_arg(progress_s, rb, sizeof rb));
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

	pid_t sup = ctl_supervisor_alive(seg);
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
				ctl_render_arg(f[0], rb, sizeof rb));
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

/* What `vigilctl emit --help` prints after the usage line. */
static void emit_help(const void *ctx)
{
	(void)ctx;
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
}

int ctl_cmd_emit(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		{"stdin", no_argument, NULL, 'i'},
		{"detach", no_argument, NULL, 'd'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"emit", ":h", opts, emit_help, NULL};
	const char *pid_s = NULL, *type = NULL, *task = NULL;
	bool from_stdin = false, detach = false;
	char rb[300];
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'p': pid_s = optarg; break;
		case 't': type = optarg; break;
		case 'k': task = optarg; break;
		case 'i': from_stdin = true; break;
		case 'd': detach = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default:
			if (opt == '?' && optopt >= '0' && optopt <= '9') {
				fprintf(stderr, "vigilctl emit: invalid value '%s': HEALTH and PROGRESS want an integer 0..100\n",
					ctl_render_arg(argv[optind - 1], rb, sizeof rb));
				return EXIT_USAGE;
			}
			return ctl_bad_option("emit", opt, argv);
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
			ctl_render_arg(argv[optind], rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!from_stdin && !detach) {
		int arc = emit_args(argv[optind], argv[optind + 1], argv[optind + 2], &health, &progress);
		if (arc != EXIT_OK)
			return arc;
	}
	if (pid_s != NULL) {
		if (!ctl_parse_int(pid_s, 2, INT_MAX, &pidl)) {
			fprintf(stderr, "vigilctl emit: invalid --pid '%s': want a process id > 1\n",
				ctl_render_arg(pid_s, rb, sizeof rb));
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
			ctl_render_arg(type, rb, sizeof rb), type_src);
		return EXIT_USAGE;
	}
	const char *task_src = "--task-id";
	if (task == NULL && (task = getenv("TASK_ID")) != NULL)
		task_src = "TASK_ID";
	if (task == NULL)
		task = "";
	if (task[0] != '\0' && !vigil_id_valid(task)) {
		fprintf(stderr, "vigilctl emit: invalid task id '%s' (from %s): want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(task, rb, sizeof rb), task_src);
		return EXIT_USAGE;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	struct emitter e;
	memset(&e, 0, sizeof e);
	rc = ctl_open_segment(c, &e.seg, true);
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

