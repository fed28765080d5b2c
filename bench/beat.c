/*
 * beat.c - scenario "beat": what one heartbeat costs the worker, vigil's
 * against its peers, in the same run.
 *
 * The worker side runs on CPU 0; the receiver (a thread that drains the
 * socket or pipe, as a supervisor would) on CPU 1 when there are two.
 * Each mechanism runs `reps` repetitions of n beats and reports the median
 * ns per beat.  Every mechanism does what a worker would really do per
 * beat, nothing less:
 *
 *   bare_store    atomic_store_explicit(relaxed) of the loop counter into
 *                 a hot line of a real vigil segment: the floor.
 *   vigil_beat    vigil_beat() through emitter/vigil.h on a slot claimed by
 *                 vigil_attach() (self-registration), exactly as a worker.
 *   cpp_beat      a C++17 program (bench/beat_lang.cpp) beating through
 *                 vigil.h's C++ face: libvigil's vigil_beat, a call.
 *   python_beat   a python3 loop calling Worker.beat() of python/vigil.py
 *                 (ctypes over libvigil's handle form), loop included.
 *   shell_coproc  a bash loop of emit_heartbeat (sourced shell emitter):
 *                 one line to its `vigilctl emit --stdin` coprocess and
 *                 one line back per beat.
 *   shell_fork    the same loop with VIGIL_EMIT_FORK=1: a fork and exec
 *                 of `vigilctl emit` per beat (the shell beat before).
 *                 The four language rows time themselves (their own clock
 *                 around n beats, start-up and registration excluded).
 *   sd_notify     sd_notify(0, "WATCHDOG=1") through libsystemd to
 *                 $NOTIFY_SOCKET, a datagram socket that a thread drains.
 *   unix_dgram    sendto() of "WATCHDOG=1" on a connected AF_UNIX datagram
 *                 socket (the protocol without the library).
 *   pipe_write    write() of "WATCHDOG=1" to a pipe that a thread drains.
 *   pshared_mutex lock a PTHREAD_PROCESS_SHARED mutex in a shm object,
 *                 update the slot, unlock (uncontended, as at 10 Hz scans).
 *   file_rename   the runbook's file heartbeat: a ~200-byte JSON spec
 *                 written to a temp file and rename()d over the old one
 *                 (no fsync, like `jq ... > tmp && mv tmp spec`).
 *   jq_process    one `jq` process rewriting the spec (stdout to a temp
 *                 file, then rename), when jq is installed.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segment.h"
#include "vigil.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* ---- the receiver thread ------------------------------------------------------ */

struct receiver {
	int fd;
	int cpu;
	pthread_t th;
	uint64_t messages;
	uint64_t bytes;
	bool dgram;
};

static void *receiver_main(void *arg)
{
	struct receiver *r = arg;
	if (r->cpu >= 0) {
		cpu_set_t m;
		CPU_ZERO(&m);
		CPU_SET(r->cpu, &m);
		pthread_setaffinity_np(pthread_self(), sizeof m, &m);
	}
	char buf[65536];
	for (;;) {
		ssize_t n = read(r->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (r->dgram && n == 4 && memcmp(buf, "STOP", 4) == 0)
			break;
		r->messages += r->dgram ? 1 : (uint64_t)n / 10;
		r->bytes += (uint64_t)n;
	}
	return NULL;
}

static int receiver_start(struct receiver *r, int fd, bool dgram)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->dgram = dgram;
	r->cpu = bench_ncpus() >= 2 ? 1 : -1;
	return -pthread_create(&r->th, NULL, receiver_main, r);
}

static int bind_dgram(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof a.sun_path) {
		close(fd);
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	/* A large receive queue so that bursts do not block the sender more
	 * than the receiver's own pace does. */
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	return fd;
}

static void send_stop(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) < sizeof a.sun_path)
		memcpy(a.sun_path, path, strlen(path) + 1);
	if (fd >= 0) {
		sendto(fd, "STOP", 4, 0, (struct sockaddr *)&a, sizeof a);
		close(fd);
	}
}

/* ---- mechanisms: one repetition of n beats, returns elapsed ns -------------------- */

__attribute__((noinline)) static uint64_t rep_bare(_Atomic uint64_t *word, uint64_t n)
{
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++)
		atomic_store_explicit(word, i, memory_order_relaxed);
	return bench_mono_ns() - t0;
}

__attribute__((noinline)) static uint64_t rep_vigil(struct vigil *v, uint64_t n)
{
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++)
		vigil_beat(v, 100, (unsigned)(i & 63));
	return bench_mono_ns() - t0;
}

#ifdef HAVE_SYSTEMD
__attribute__((noinline)) static uint64_t rep_sd_notify(uint64_t n, int *err)
{
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		int r = sd_notify(0, "WATCHDOG=1");
		if (r <= 0 && *err == 0)
			*err = r == 0 ? -ENOTCONN : r;
	}
	return bench_mono_ns() - t0;
}
#endif

__attribute__((noinline)) static uint64_t rep_dgram(int fd, uint64_t n, int *err)
{
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++)
		if (sendto(fd, "WATCHDOG=1", 10, MSG_NOSIGNAL, NULL, 0) != 10 && *err == 0)
			*err = -errno;
	return bench_mono_ns() - t0;
}

__attribute__((noinline)) static uint64_t rep_pipe(int fd, uint64_t n, int *err)
{
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++)
		if (write(fd, "WATCHDOG=1", 10) != 10 && *err == 0)
			*err = -errno;
	return bench_mono_ns() - t0;
}

struct mutex_slot {
	pthread_mutex_t m;
	uint64_t count;
	uint32_t health, progress;
} __attribute__((aligned(64)));

__attribute__((noinline)) static uint64_t rep_mutex(struct mutex_slot *s, uint64_t n)
{
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		pthread_mutex_lock(&s->m);
		s->count++;
		s->health = 100;
		s->progress = (uint32_t)(i & 63);
		pthread_mutex_unlock(&s->m);
	}
	return bench_mono_ns() - t0;
}

static int spec_text(char *buf, size_t len, uint64_t count)
{
	int64_t ms = bench_real_ms();
	return snprintf(buf, len,
			"{\"worker_id\":\"worker-bench-001\",\"worker_type\":\"bench\",\"task_id\":\"task-1\","
			"\"status\":\"active\",\"pid\":%d,\"heartbeat\":{\"health_score\":100,\"progress\":%u,"
			"\"last_seen_ms\":%lld,\"beats\":%llu,\"missed\":0}}\n",
			(int)getpid(), (unsigned)(count % 101), (long long)ms, (unsigned long long)count);
}

__attribute__((noinline)) static uint64_t rep_file(const char *spec, const char *tmp, uint64_t n, int *err,
						   size_t *bytes)
{
	char buf[512];
	uint64_t t0 = bench_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		int len = spec_text(buf, sizeof buf, i);
		*bytes = (size_t)len;
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, (size_t)len) != len || close(fd) < 0 || rename(tmp, spec) < 0) {
			if (*err == 0)
				*err = -errno;
		}
	}
	return bench_mono_ns() - t0;
}

/* One jq process per beat: jq FILTER spec > tmp && mv tmp spec. */
static uint64_t rep_jq(const char *spec, const char *tmp, int *err)
{
	char filter[256];
	snprintf(filter, sizeof filter,
		 ".heartbeat.health_score = 100 | .heartbeat.progress = 50 | .heartbeat.last_seen_ms = %lld",
		 (long long)bench_real_ms());
	const char *argv[] = {g_opts.jq, "-c", filter, spec, NULL};
	unlink(tmp);
	struct bench_spawn sp = {.argv = argv, .stdout_path = tmp, .pgroup = -1};
	uint64_t t0 = bench_mono_ns();
	pid_t pid = bench_spawn(&sp);
	int st = pid > 0 ? bench_wait(pid, 30000) : -1;
	if (st != 0 || rename(tmp, spec) < 0) {
		if (*err == 0)
			*err = st != 0 ? -ECHILD : -errno;
	}
	return bench_mono_ns() - t0;
}

static const char *fs_name(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0xEF53ul: return "ext2/3/4";
	case 0x01021994ul: return "tmpfs";
	case 0x58465342ul: return "xfs";
	case 0x9123683Eul: return "btrfs";
	case 0x794c7630ul: return "overlayfs";
	default: return "other";
	}
}

/* ---- driver ---------------------------------------------------------------------------- */

struct result {
	const char *name;
	const char *what;
	double ns[64];
	int reps;
	uint64_t n;
	int err;
	bool skipped;
	const char *skip_reason;
	double median;
	double min;
	json_t *extra;
};

static void finish(struct result *r, uint64_t elapsed_ns[], int reps, uint64_t n)
{
	r->reps = reps;
	r->n = n;
	for (int i = 0; i < reps; i++)
		r->ns[i] = (double)elapsed_ns[i] / (double)n;
	double tmp[64];
	memcpy(tmp, r->ns, sizeof(double) * (size_t)reps);
	r->median = bench_median(tmp, (size_t)reps);
	r->min = tmp[0]; /* sorted by bench_median */
	bench_log("beat: %-14s median %12.3f ns/beat  (%d x %llu)%s", r->name, r->median, reps,
		  (unsigned long long)n, r->err ? "  ERRORS" : "");
}


/* ---- rows measured by another program ------------------------------------------------ */

/*
 * Runs argv (argv[0] a path) with env ("K=V", NULL-ended) added to ours,
 * stdout into a pipe: it prints one number per repetition, the ns per
 * beat of that repetition.  Up to max values into ns; how many, or -errno
 * (-ECHILD: the program failed).  Bounded: at most 600 s of reading.
 */
static int run_timed(const char *const *argv, const char *const *env, double *ns, int max)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(p[0]);
		close(p[1]);
		return e;
	}
	if (pid == 0) {
		for (int i = 0; env != NULL && env[i] != NULL; i++)
			putenv((char *)env[i]);
		dup2(p[1], STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	char buf[8192];
	size_t len = 0;
	uint64_t deadline = bench_mono_ns() + 600ull * 1000000000ull;
	while (len < sizeof buf - 1 && bench_mono_ns() < deadline) {
		ssize_t r = read(p[0], buf + len, sizeof buf - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(p[0]);
	buf[len] = '\0';
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -ECHILD;
	int n = 0;
	for (char *s = buf, *end; n < max; s = end) {
		double v = strtod(s, &end);
		if (end == s)
			break;
		ns[n++] = v;
	}
	return n;
}

/* Like finish(), from per-repetition ns per beat measured elsewhere. */
static void finish_ns(struct result *r, const double *ns, int reps, uint64_t n)
{
	uint64_t el[64];
	for (int i = 0; i < reps && i < 64; i++)
		el[i] = (uint64_t)(ns[i] * (double)n + 0.5);
	finish(r, el, reps < 64 ? reps : 64, n);
}

/* One row measured by argv: n beats per repetition, reps repetitions. */
static void lang_row(struct result *r, const char *const *argv, const char *const *env, int reps, uint64_t n)
{
	double ns[64];
	int got = run_timed(argv, env, ns, reps);
	if (got < reps) {
		r->skipped = true;
		r->skip_reason = got == -ECHILD ? "the program failed (see its stderr)" : "the program gave too few samples";
		bench_log("beat: %-14s skipped: %s", r->name, r->skip_reason);
		return;
	}
	finish_ns(r, ns, reps, n);
}

static const char PY_BEAT[] =
	"import sys, time, vigil\n"
	"n, reps = int(sys.argv[1]), int(sys.argv[2])\n"
	"w = vigil.attach()\n"
	"beat = w.beat\n"
	"for i in range(n // 10): beat(100, 50)\n"
	"for r in range(reps):\n"
	"    t = time.perf_counter_ns()\n"
	"    for i in range(n): beat(100, 50)\n"
	"    print((time.perf_counter_ns() - t) / n, flush=True)\n"
	"w.detach()\n";

/* $1 beats per repetition, $2 repetitions; registration (and the
 * coprocess's start) outside the timing. */
static const char SH_BEAT[] =
	"source \"$SHIM\" || exit 1\n"
	"emit_heartbeat \"$WORKER_ID\" 100 0 || exit 1\n"
	"for ((r = 0; r < $2; r++)); do\n"
	"    t0=$EPOCHREALTIME\n"
	"    for ((i = 0; i < $1; i++)); do emit_heartbeat \"$WORKER_ID\" 100 50 || exit 1; done\n"
	"    t1=$EPOCHREALTIME\n"
	"    echo $(( (${t1/./} - ${t0/./}) * 1000 / $1 ))\n"
	"done\n";

json_t *bench_beat(void)
{
	const bool q = g_opts.quick;
	const int reps = q ? 5 : 9;
	json_t *out = json_object();
	char err[256];
	char dir[BENCH_PATH_MAX + 32];
	snprintf(dir, sizeof dir, "%s/beat", g_opts.tmproot);
	bench_mkdirs(dir);

	int ncpu = bench_ncpus();
	int pin = bench_pin_self(0);
	json_object_set_new(out, "worker_cpu", json_integer(0));
	json_object_set_new(out, "receiver_cpu", ncpu >= 2 ? json_integer(1) : json_null());
	if (pin < 0)
		json_object_set_new(out, "pin_error", json_string(strerror(-pin)));

	/* A real segment, as vigild makes it. */
	struct vigil_segment seg;
	char shm[128];
	snprintf(shm, sizeof shm, "/vigil-bench-%d-beat", (int)getpid());
	bench_track_segment(shm);
	int rc = vigil_segment_open(&seg, shm, 64, 0600, true, true, err, sizeof err);
	if (rc < 0) {
		bench_log("beat: cannot create segment %s: %s", shm, err);
		json_object_set_new(out, "error", json_string(err));
		bench_unpin_self();
		return out;
	}

	struct result res[12];
	memset(res, 0, sizeof res);
	int nres = 0;
	uint64_t el[64];

	/* bare store and vigil_beat, interleaved: repetition i of each runs
	 * back to back, so that both see the same machine (a shared host's
	 * noise hits both, and their ratio stays honest). */
	{
		struct result *rb = &res[nres++];
		struct result *rv = &res[nres++];
		rb->name = "bare_store";
		rb->what = "relaxed 64-bit store into a hot line of the shm segment (the floor)";
		rv->name = "vigil_beat";
		rv->what = "vigil_beat() via emitter/vigil.h on a self-registered slot";
		_Atomic uint64_t *w = &seg.hot[8].beat;
		/* vigil_beat, as a worker: vigil_attach from the environment */
		setenv("VIGIL_SHM", shm, 1);
		setenv("WORKER_ID", "worker-bench-beat", 1);
		setenv("WORKER_TYPE", "bench", 1);
		unsetenv("VIGIL_SLOT");
		unsetenv("VIGIL_GEN");
		struct vigil v;
		rc = vigil_attach(&v);
		unsetenv("VIGIL_SHM");
		unsetenv("WORKER_ID");
		unsetenv("WORKER_TYPE");
		const int breps = q ? 7 : 21;
		uint64_t n = q ? 10000000ull : 50000000ull;
		uint64_t elv[64];
		rep_bare(w, n); /* warm-up */
		if (rc == 0)
			rep_vigil(&v, n);
		for (int i = 0; i < breps; i++) {
			el[i] = rep_bare(w, n);
			if (rc == 0)
				elv[i] = rep_vigil(&v, n);
		}
		finish(rb, el, breps, n);
		if (rc < 0) {
			rv->skipped = true;
			rv->skip_reason = vigil_strerror(rc);
		} else {
			finish(rv, elv, breps, n);
			rv->extra = json_pack("{s:I,s:b}", "beats_in_slot",
					      (json_int_t)vigil_beat_count(atomic_load(&v.hot->beat)), "interleaved_with_bare_store",
					      1);
			vigil_detach(&v);
		}
	}
	/* The other languages' workers, in the same run. */
	{
		struct result *rc_ = &res[nres++];
		struct result *rp = &res[nres++];
		struct result *rs = &res[nres++];
		struct result *rf = &res[nres++];
		rc_->name = "cpp_beat";
		rc_->what = "a C++17 worker's vigil_beat (vigil.h's C++ face: a call into libvigil)";
		rp->name = "python_beat";
		rp->what = "Worker.beat() of python/vigil.py (ctypes over libvigil), in a Python loop";
		rs->name = "shell_coproc";
		rs->what = "emit_heartbeat in a bash loop: a line to its vigilctl emit --stdin coprocess, a line back";
		rf->name = "shell_fork";
		rf->what = "emit_heartbeat with VIGIL_EMIT_FORK=1: fork and exec of vigilctl emit per beat";
		char e_shm[160], e_lib[BENCH_PATH_MAX + 32], e_py[BENCH_PATH_MAX + 32], e_ctl[BENCH_PATH_MAX + 32],
			e_shim[BENCH_PATH_MAX + 32];
		snprintf(e_shm, sizeof e_shm, "VIGIL_SHM=%s", shm);
		snprintf(e_ctl, sizeof e_ctl, "VIGILCTL=%s", g_opts.vigilctl);
		snprintf(e_shim, sizeof e_shim, "SHIM=%s/emitter/worker-heartbeat-emitter.sh", VIGIL_SOURCE_DIR);
		char n_s[32], reps_s[16];
		snprintf(reps_s, sizeof reps_s, "%d", reps);
#ifdef VIGIL_BENCH_CPP_BEAT
		snprintf(e_lib, sizeof e_lib, "VIGIL_LIBRARY=%s", VIGIL_BENCH_LIBVIGIL);
		snprintf(e_py, sizeof e_py, "PYTHONPATH=%s/python", VIGIL_SOURCE_DIR);
		uint64_t n = q ? 2000000ull : 20000000ull;
		snprintf(n_s, sizeof n_s, "%llu", (unsigned long long)n);
		const char *cpp_argv[] = {VIGIL_BENCH_CPP_BEAT, n_s, reps_s, NULL};
		const char *cpp_env[] = {e_shm, "WORKER_ID=worker-bench-cpp", "WORKER_TYPE=bench", NULL};
		lang_row(rc_, cpp_argv, cpp_env, reps, n);
		n = q ? 100000ull : 1000000ull;
		snprintf(n_s, sizeof n_s, "%llu", (unsigned long long)n);
		const char *py_argv[] = {VIGIL_BENCH_PYTHON3, "-c", PY_BEAT, n_s, reps_s, NULL};
		const char *py_env[] = {e_shm, e_lib, e_py, "WORKER_ID=worker-bench-py", "WORKER_TYPE=bench", NULL};
		if (VIGIL_BENCH_PYTHON3[0] == '\0') {
			rp->skipped = true;
			rp->skip_reason = "python3 not found at build time";
		} else {
			lang_row(rp, py_argv, py_env, reps, n);
		}
#else
		(void)e_lib;
		(void)e_py;
		rc_->skipped = rp->skipped = true;
		rc_->skip_reason = rp->skip_reason = "built without libvigil";
#endif
		n = q ? 500 : 5000;
		snprintf(n_s, sizeof n_s, "%llu", (unsigned long long)n);
		const char *sh_argv[] = {"/bin/bash", "-c", SH_BEAT, "shell-beat", n_s, reps_s, NULL};
		const char *sh_env[] = {e_shm, e_ctl, e_shim, "WORKER_ID=worker-bench-sh", "WORKER_TYPE=bench", NULL};
		lang_row(rs, sh_argv, sh_env, reps, n);
		uint64_t nf = q ? 20 : 100;
		snprintf(n_s, sizeof n_s, "%llu", (unsigned long long)nf);
		const char *shf_env[] = {e_shm, e_ctl, e_shim, "WORKER_ID=worker-bench-shf", "WORKER_TYPE=bench",
					 "VIGIL_EMIT_FORK=1", NULL};
		lang_row(rf, sh_argv, shf_env, reps, nf);
		if (!rs->skipped && !rf->skipped)
			rs->extra = json_pack("{s:f}", "times_cheaper_than_shell_fork", rf->median / rs->median);
	}
	/* sd_notify */
	{
		struct result *r = &res[nres++];
		r->name = "sd_notify";
		r->what = "sd_notify(0, \"WATCHDOG=1\") (libsystemd) to a datagram socket drained by a thread";
#ifdef HAVE_SYSTEMD
		char path[BENCH_PATH_MAX + 64];
		snprintf(path, sizeof path, "%s/notify.sock", dir);
		int fd = bind_dgram(path);
		struct receiver rv;
		if (fd < 0 || receiver_start(&rv, fd, true) < 0) {
			r->skipped = true;
			r->skip_reason = "cannot bind the notify socket";
			if (fd >= 0)
				close(fd);
		} else {
			setenv("NOTIFY_SOCKET", path, 1);
			uint64_t n = q ? 2000 : 20000;
			rep_sd_notify(n / 10, &r->err);
			for (int i = 0; i < reps; i++)
				el[i] = rep_sd_notify(n, &r->err);
			unsetenv("NOTIFY_SOCKET");
			send_stop(path);
			pthread_join(rv.th, NULL);
			close(fd);
			finish(r, el, reps, n);
			r->extra = json_pack("{s:I,s:I}", "messages_sent", (json_int_t)(n * (uint64_t)reps + n / 10),
					     "messages_received", (json_int_t)rv.messages);
		}
#else
		r->skipped = true;
		r->skip_reason = "built without libsystemd (pkg-config libsystemd not found)";
#endif
	}
	/* raw unix datagram */
	{
		struct result *r = &res[nres++];
		r->name = "unix_dgram";
		r->what = "sendto() on a connected AF_UNIX datagram socket drained by a thread";
		char path[BENCH_PATH_MAX + 64];
		snprintf(path, sizeof path, "%s/raw.sock", dir);
		int fd = bind_dgram(path);
		int cfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		if (strlen(path) < sizeof a.sun_path)
			memcpy(a.sun_path, path, strlen(path) + 1);
		struct receiver rv;
		if (fd < 0 || cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof a) < 0 ||
		    receiver_start(&rv, fd, true) < 0) {
			r->skipped = true;
			r->skip_reason = "cannot set up the socket pair";
		} else {
			uint64_t n = q ? 20000 : 200000;
			rep_dgram(cfd, n / 10, &r->err);
			for (int i = 0; i < reps; i++)
				el[i] = rep_dgram(cfd, n, &r->err);
			send_stop(path);
			pthread_join(rv.th, NULL);
			finish(r, el, reps, n);
			r->extra = json_pack("{s:I,s:I}", "messages_sent", (json_int_t)(n * (uint64_t)reps + n / 10),
					     "messages_received", (json_int_t)rv.messages);
		}
		if (fd >= 0)
			close(fd);
		if (cfd >= 0)
			close(cfd);
	}
	/* pipe */
	{
		struct result *r = &res[nres++];
		r->name = "pipe_write";
		r->what = "write() of 10 bytes to a pipe drained by a thread";
		int p[2];
		struct receiver rv;
		if (pipe2(p, O_CLOEXEC) < 0 || receiver_start(&rv, p[0], false) < 0) {
			r->skipped = true;
			r->skip_reason = "cannot create the pipe";
		} else {
			uint64_t n = q ? 50000 : 500000;
			rep_pipe(p[1], n / 10, &r->err);
			for (int i = 0; i < reps; i++)
				el[i] = rep_pipe(p[1], n, &r->err);
			close(p[1]);
			pthread_join(rv.th, NULL);
			close(p[0]);
			finish(r, el, reps, n);
			r->extra = json_pack("{s:I,s:I}", "messages_sent", (json_int_t)(n * (uint64_t)reps + n / 10),
					     "messages_received", (json_int_t)rv.messages);
		}
	}
	/* process-shared mutex in shm */
	{
		struct result *r = &res[nres++];
		r->name = "pshared_mutex";
		r->what = "PTHREAD_PROCESS_SHARED mutex in a shm object around a slot update (uncontended)";
		char mname[128];
		snprintf(mname, sizeof mname, "/vigil-bench-%d-mutex", (int)getpid());
		bench_track_segment(mname);
		int fd = shm_open(mname, O_RDWR | O_CREAT | O_EXCL, 0600);
		struct mutex_slot *s = MAP_FAILED;
		if (fd >= 0 && ftruncate(fd, 4096) == 0)
			s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (fd >= 0)
			close(fd);
		shm_unlink(mname);
		bench_untrack_segment(mname);
		if (s == MAP_FAILED) {
			r->skipped = true;
			r->skip_reason = "cannot map the shm object";
		} else {
			pthread_mutexattr_t ma;
			pthread_mutexattr_init(&ma);
			pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
			pthread_mutex_init(&s->m, &ma);
			pthread_mutexattr_destroy(&ma);
			uint64_t n = q ? 2000000 : 20000000;
			rep_mutex(s, n / 10);
			for (int i = 0; i < reps; i++)
				el[i] = rep_mutex(s, n);
			finish(r, el, reps, n);
			pthread_mutex_destroy(&s->m);
			munmap(s, 4096);
		}
	}
	/* file + rename */
	char spec[BENCH_PATH_MAX + 64], tmp[BENCH_PATH_MAX + 64];
	snprintf(spec, sizeof spec, "%s/worker-bench-001.json", dir);
	snprintf(tmp, sizeof tmp, "%s/.worker-bench-001.json.tmp", dir);
	{
		struct result *r = &res[nres++];
		r->name = "file_rename";
		r->what = "~200-byte JSON spec to a temp file, rename() over the old one (the runbook's file heartbeat)";
		uint64_t n = q ? 300 : 3000;
		size_t bytes = 0;
		rep_file(spec, tmp, n / 10, &r->err, &bytes);
		for (int i = 0; i < reps; i++)
			el[i] = rep_file(spec, tmp, n, &r->err, &bytes);
		finish(r, el, reps, n);
		r->extra = json_pack("{s:I,s:s,s:s}", "spec_bytes", (json_int_t)bytes, "directory", dir, "filesystem",
				     fs_name(dir));
	}
	/* jq */
	{
		struct result *r = &res[nres++];
		r->name = "jq_process";
		r->what = "one jq process rewriting the spec (stdout to a temp file, then rename)";
		if (g_opts.jq[0] == '\0') {
			r->skipped = true;
			r->skip_reason = "jq is not installed";
		} else {
			int n = q ? 5 : 20;
			rep_jq(spec, tmp, &r->err); /* warm-up: page cache */
			for (int i = 0; i < n; i++)
				el[i] = rep_jq(spec, tmp, &r->err);
			/* one beat per repetition */
			finish(r, el, n, 1);
			r->extra = json_pack("{s:s}", "jq", g_opts.jq);
		}
	}

	bench_unpin_self();
	vigil_segment_close(&seg);
	shm_unlink(shm);
	bench_untrack_segment(shm);

	double bare = res[0].skipped ? NAN : res[0].median;
	double bare_min = res[0].skipped ? NAN : res[0].min;
	double vb = res[1].skipped ? NAN : res[1].median;
	json_t *arr = json_array();
	for (int i = 0; i < nres; i++) {
		struct result *r = &res[i];
		json_t *m = json_object();
		json_object_set_new(m, "name", json_string(r->name));
		json_object_set_new(m, "what", json_string(r->what));
		if (r->skipped) {
			json_object_set_new(m, "skipped", json_string(r->skip_reason));
		} else {
			json_object_set_new(m, "beats_per_rep", json_integer((json_int_t)r->n));
			json_object_set_new(m, "reps", json_integer(r->reps));
			json_t *samples = json_array();
			for (int k = 0; k < r->reps; k++)
				json_array_append_new(samples, json_real(r->ns[k]));
			json_object_set_new(m, "ns_per_beat_samples", samples);
			json_object_set_new(m, "ns_per_beat", bench_stats_json(r->ns, (size_t)r->reps, false));
			json_object_set_new(m, "ratio_vs_bare_store", isfinite(bare) ? json_real(r->median / bare) : json_null());
			/* Noise only ever adds time: the ratio of the fastest
			 * repetitions is the robust one on a busy host. */
			json_object_set_new(m, "ratio_vs_bare_store_of_minima",
					    isfinite(bare_min) ? json_real(r->min / bare_min) : json_null());
			json_object_set_new(m, "ratio_vs_vigil_beat", isfinite(vb) ? json_real(r->median / vb) : json_null());
			json_object_set_new(m, "errors", r->err ? json_string(strerror(-r->err)) : json_null());
		}
		if (r->extra)
			json_object_update(m, r->extra), json_decref(r->extra);
		json_array_append_new(arr, m);
	}
	json_object_set_new(out, "mechanisms", arr);
	bench_rmtree(dir);
	return out;
}
