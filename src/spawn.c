/*
 * spawn.c - vigild starts a worker and knows at once whether exec worked.
 *
 * The protocol (one call, on vigild's action thread):
 *
 *   parent (vigild)                              child
 *   ---------------                              -----
 *   resolve argv[0] (PATH), open /dev/null and
 *   the log file, socketpair, envp array
 *   claim a slot: FREE -> CLAIMED|gen+1,
 *   write the identity (pid 0), first beat word
 *   block all signals; fork() ---------------->  close parent's end; signals to
 *   restore the signal mask                      SIG_DFL; setsid(); stdio;
 *   pidfd_open(pid)                              rlimit; chdir(cwd); mark fds
 *   cold.pid, cold.pid_start_ticks                >= 3 close-on-exec
 *   send "go" -------------------------------->  read "go" (EOF: _exit(127))
 *                                                empty signal mask; execve()
 *   read the channel  <--- EOF (CLOEXEC closed it: exec worked)
 *                     <--- {stage, errno}, _exit(127) (chdir/exec failed)
 *   EOF:   CAS CLAIMED|gen -> ACTIVE|gen (release: publishes the identity)
 *   error: reap the child, close the pidfd, CLAIMED|gen -> FREE|gen
 *
 * Why fork and not posix_spawn.  glibc's posix_spawn also reports exec
 * errors synchronously and can do setsid, the signal reset, chdir and
 * closefrom, but it returns the pid only after the exec, so the worker
 * could run (and attach, and be scanned) before its pid and start time are
 * in the slot, and we could not take a pidfd before the child can die.
 * The "go" gate gives us that order: the child exists but does nothing
 * until its identity is complete.  fork's cost is copying vigild's page
 * tables; vigild is small, and the segment (the only big mapping) is
 * MAP_SHARED, whose page tables Linux does not copy (they refault lazily):
 * a whole vigil_spawn of /bin/true measured 0.3-0.4 ms on the dev box
 * with 64 slots and with a million touched slots alike.  vfork/CLONE_VM
 * would save that, but then the child shares our memory and stack and one
 * misstep (or a sanitizer's interceptor) corrupts the supervisor.
 *
 * Why a socketpair and not two pipes.  One channel does both directions:
 * the parent sends "go", the child answers only on failure, and the
 * parent's read sees EOF when the child's end is closed by a successful
 * execve (it is SOCK_CLOEXEC) - the classic close-on-exec exec check (Python's
 * subprocess, older glibc posix_spawn).  A child whose setup fails
 * (chdir...) reports without waiting for "go": our send may then fail
 * with EPIPE, and the queued report still wins.  And send(MSG_NOSIGNAL) cannot raise
 * SIGPIPE when the child died before reading "go", whatever vigild's
 * SIGPIPE disposition is.  The child closes the parent's end first, so a
 * parent that dies during the hand-shake gives it EOF: it exits 127
 * instead of running an unsupervised worker.
 *
 * Signals.  The parent blocks every signal across fork(), so that no
 * vigild handler ever runs in the child; the child resets every
 * disposition to SIG_DFL (SIG_IGN, e.g. vigild's SIGPIPE, would survive
 * execve) and only then, right before execve, empties its mask (vigild
 * blocks TERM/INT/HUP in all threads, and masks survive execve).  setsid()
 * takes the worker out of the terminal's process group, so a ^C aimed at
 * vigild does not hit the workers.
 *
 * Async-signal safety.  vigild has other threads (scanner, call_rcu), so
 * the child may only make async-signal-safe calls: everything it needs
 * (path, argv, envp, fds, fd bound) is computed in the parent.  The only
 * allocations are the envp array (and the argv of a scope wrapper), freed
 * before return; the new environment strings live on our stack.
 *
 * What "success" means: execve() happened.  The program may still exit a
 * microsecond later (and a child killed from outside in the instant
 * between reading "go" and execve looks the same: EOF); the caller learns
 * either through the pidfd, like any exit.  A child killed before it read
 * "go" is an error (ECONNRESET/EPIPE, no report), never a success.
 *
 * Bounds: the PATH search by PATH's length, the slot scan by the slot
 * count, the fd fallback by sysconf(_SC_OPEN_MAX) (capped), EINTR retries
 * by a counter, and the wait for execve by VIGIL_SPAWN_EXEC_TIMEOUT_MS
 * (below the 5 s after which the scanner reclaims a CLAIMED slot); a
 * child that misses it is SIGKILLed through its pidfd and reaped.
 *
 * Known limits.  fds that vigild's other threads open concurrently are
 * inherited but close-on-exec, so they never reach the worker; a fork from
 * another thread between our socketpair() and our close of the child's
 * end could hold that end until its own exec, delaying our EOF by as much.
 * A relative argv[0] containing '/' is resolved in the child's cwd (like
 * "cd cwd && ./prog"); relative PATH entries are ignored.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "verify.h"

int vigil_spawn_fail_fork_at;
int vigil_spawn_umask = -1;

#define EINTR_RETRIES 1000
#define ENV_MAX (1u << 20)     /* entries of vigild's environ we copy at most */
#define FD_FALLBACK_MAX (1 << 20)

/* What the child reports when it fails before (or in) execve. */
enum child_stage { STAGE_SETSID = 1, STAGE_STDIO, STAGE_RLIMIT, STAGE_CHDIR, STAGE_EXEC };
struct child_report {
	int32_t stage;
	int32_t err;
};

/* Everything the child needs, computed before fork. */
struct child_args {
	const char *path;
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int in_fd, out_fd; /* >= 3 */
	int chan;          /* the child's end of the channel, >= 3 */
	int parent_end;
	int max_fd;        /* bound of the close fallback */
	int set_nofile;
	struct rlimit nofile;
	int umask; /* >= 0: the worker's umask (vigil_spawn_umask) */
};

static const char *const overridden[] = {"VIGIL_SHM", "VIGIL_SLOT", "VIGIL_GEN", "WORKER_ID",
					 "WORKER_TYPE", "TASK_ID", "VIGIL_TOKENS"};
#define N_OVERRIDDEN (sizeof overridden / sizeof overridden[0])

/* What systemd (or a socket-activating parent) hands to vigild itself and
 * must never reach a worker: with vigild's NOTIFY_SOCKET a worker running
 * systemd-notify speaks for vigild's unit ("reception only permitted for
 * main PID"), WATCHDOG_PID/USEC name vigild's pid, LISTEN_* name fds the
 * worker does not have, INVOCATION_ID and JOURNAL_STREAM describe vigild's
 * own invocation and stderr (a worker's stderr is its log file).  Names
 * ending in '_' are prefixes (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES...). */
static const char *const scrubbed[] = {"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_",
				       "INVOCATION_ID", "JOURNAL_STREAM", "MAINPID", "MANAGERPID",
				       "VIGIL_WORKER_SCOPE"};
#define N_SCRUBBED (sizeof scrubbed / sizeof scrubbed[0])

/* Whether vigild's environment entry e stays out of a worker's: ours
 * (overridden below) or vigild's own systemd context (scrubbed). */
static bool env_dropped(const char *e)
{
	for (size_t j = 0; j < N_OVERRIDDEN; j++) {
		size_t l = strlen(overridden[j]);
		if (strncmp(e, overridden[j], l) == 0 && e[l] == '=')
			return true;
	}
	for (size_t j = 0; j < N_SCRUBBED; j++) {
		size_t l = strlen(scrubbed[j]);
		if (strncmp(e, scrubbed[j], l) == 0 && (scrubbed[j][l - 1] == '_' || e[l] == '='))
			return true;
	}
	return false;
}

/* ---- the child: async-signal-safe calls only --------------------------- */

static _Noreturn void child_fail(const struct child_args *a, int stage, int err)
{
	struct child_report r = {stage, err};
	for (int i = 0; i < EINTR_RETRIES; i++)
		if (send(a->chan, &r, sizeof r, MSG_NOSIGNAL) >= 0 || errno != EINTR)
			break;
	_exit(127);
}

static _Noreturn void child_main(const struct child_args *a)
{
	/* First: a parent that dies now must give us EOF on "go". */
	close(a->parent_end);

	/* Dispositions before the mask: every signal is blocked (the parent
	 * blocked them around fork), so no vigild handler can run here.
	 * glibc refuses its two internal signals with EINVAL: harmless. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			(void)sigaction(s, &dfl, NULL);

	if (setsid() < 0)
		child_fail(a, STAGE_SETSID, errno);
	/* The sources are >= 3, so dup2 never meets itself and always clears
	 * close-on-exec on 0, 1, 2. */
	if (dup2(a->in_fd, 0) < 0 || dup2(a->out_fd, 1) < 0 || dup2(a->out_fd, 2) < 0)
		child_fail(a, STAGE_STDIO, errno);
	if (a->set_nofile && setrlimit(RLIMIT_NOFILE, &a->nofile) < 0)
		child_fail(a, STAGE_RLIMIT, errno);
	if (a->cwd != NULL && chdir(a->cwd) < 0)
		child_fail(a, STAGE_CHDIR, errno);
	if (a->umask >= 0)
		umask((mode_t)a->umask); /* async-signal-safe; cannot fail */

	/* Every fd >= 3 goes at execve: marked rather than closed, so that the
	 * channel (already close-on-exec) stays usable until then. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < a->max_fd; fd++)
			if (fd != a->chan)
				close(fd);
	}

	char go = 0;
	ssize_t n = -1;
	for (int i = 0; i < EINTR_RETRIES; i++) {
		n = read(a->chan, &go, 1);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n != 1)
		_exit(127); /* the parent gave up or died: never run unsupervised */

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(a->path, a->argv, a->envp);
	child_fail(a, STAGE_EXEC, errno);
}

/* ---- parent helpers ----------------------------------------------------- */

static void set_msg(struct vigil_spawn_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(struct vigil_spawn_result *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->msg, sizeof out->msg, fmt, ap);
	va_end(ap);
}

/* argv[0] to an executable path: 0 or -errno. */
static int resolve_program(const char *name, char *out, size_t out_len)
{
	size_t nlen = strlen(name);
	if (nlen == 0)
		return -ENOENT;
	if (strchr(name, '/') != NULL) {
		if (nlen >= out_len)
			return -ENAMETOOLONG;
		memcpy(out, name, nlen + 1);
		return 0;
	}
	if (nlen > NAME_MAX)
		return -ENAMETOOLONG;
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/bin:/usr/bin";
	int rc = -ENOENT;
	/* Bounded by PATH's length: each turn consumes one entry. */
	for (const char *p = path;;) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen > 0 && p[0] == '/' && dlen + 1 + nlen < out_len) {
			memcpy(out, p, dlen);
			out[dlen] = '/';
			memcpy(out + dlen + 1, name, nlen + 1);
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(out, X_OK) == 0)
					return 0;
				rc = -EACCES; /* as execvp: found, but not executable */
			}
		}
		if (*end == '\0')
			break;
		p = end + 1;
	}
	out[0] = '\0';
	return rc;
}

/* Moves a valid fd to a number >= 3 (so the child's dup2 onto 0..2 never
 * clobbers a source).  Returns the fd or -errno; fd is consumed either way. */
static int fd_above_stdio(int fd)
{
	if (fd < 0 || fd > 2)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int e = errno;
	close(fd);
	return nfd >= 0 ? nfd : -e;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Bounded scan from claim_hint, as vigil_register does, but through the
 * supervisor's private copies of the layout (never the header's). */
static int claim_slot(struct vigil_segment *seg, const struct vigil_spawn_req *req, uint32_t *slot_out,
		      uint64_t *gen_out)
{
	uint32_t n = seg->slots;
	uint32_t start = atomic_load_explicit(&seg->hdr->claim_hint, memory_order_relaxed) % n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot = (start + i) % n;
		struct vigil_slot_hot *hot = &seg->hot[slot];
		uint64_t o = atomic_load_explicit(&hot->owner, memory_order_relaxed);
		if (vigil_owner_state(o) != VIGIL_SLOT_FREE)
			continue;
		uint64_t gen = vigil_owner_gen(o) + 1;
		/* acquire: our identity writes stay after the claim. */
		if (!atomic_compare_exchange_strong_explicit(&hot->owner, &o,
							     vigil_owner_make(VIGIL_SLOT_CLAIMED, gen),
							     memory_order_acquire, memory_order_relaxed))
			continue;
		atomic_store_explicit(&seg->hdr->claim_hint, slot + 1, memory_order_relaxed);
		struct vigil_slot_cold *c = &seg->cold[slot];
		c->claimed_mono_ns = vigil_mono_ns();
		vigil__copy_id(c->worker_id, req->worker_id);
		vigil__copy_id(c->worker_type, req->worker_type);
		vigil__copy_id(c->task_id, req->task_id != NULL ? req->task_id : "");
		c->pid = 0;
		c->registrar_pid = (int32_t)getpid();
		c->pid_start_ticks = 0;
		c->registered_unix_ms = vigil_unix_ms();
		c->flags = VIGIL_COLD_SPAWNED;
		c->reserved0 = 0;
		c->spawn_tag = req->spawn_tag;
		atomic_store_explicit(&hot->ack, 0, memory_order_relaxed);
		atomic_store_explicit(&hot->beat, vigil_beat_make(gen, 0, 100, 0), memory_order_relaxed);
		*slot_out = slot;
		*gen_out = gen;
		return 0;
	}
	return -ENOSPC;
}

/* Reaps our own child (blocking; it is exiting or has exited).  ECHILD
 * (SIGCHLD ignored: the kernel reaped it) counts as reaped. */
static void reap(pid_t pid)
{
	for (int i = 0; i < EINTR_RETRIES; i++) {
		int st;
		if (waitpid(pid, &st, 0) >= 0 || errno != EINTR)
			return;
	}
}

static void kill_child(int pidfd, pid_t pid)
{
	/* A pid that we have not reaped cannot be recycled, so kill() is
	 * safe too when there is no pidfd. */
	if (pidfd < 0 || pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0)
		kill(pid, SIGKILL);
}

/* Waits for the child's verdict: 0 (EOF: execve worked), 1 (a report in
 * *rep), or -errno (-ETIMEDOUT, -EIO for a torn report, poll/read errors). */
static int read_verdict(int chan, struct child_report *rep)
{
	uint64_t deadline = vigil_mono_ns() + (uint64_t)VIGIL_SPAWN_EXEC_TIMEOUT_MS * VIGIL_NS_PER_MS;
	size_t got = 0;
	for (int i = 0; i < EINTR_RETRIES; i++) {
		uint64_t now = vigil_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = chan, .events = POLLIN};
		int ms = (int)((deadline - now + VIGIL_NS_PER_MS - 1) / VIGIL_NS_PER_MS);
		int r = poll(&pfd, 1, ms);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			continue; /* the deadline check above decides */
		ssize_t n = read(chan, (char *)rep + got, sizeof *rep - got);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return got == 0 ? 0 : -EIO;
		got += (size_t)n;
		if (got == sizeof *rep)
			return 1;
	}
	return -EINTR;
}

static const char *stage_name(int stage)
{
	switch (stage) {
	case STAGE_SETSID: return "setsid";
	case STAGE_STDIO: return "stdio redirection";
	case STAGE_RLIMIT: return "setrlimit(RLIMIT_NOFILE)";
	case STAGE_CHDIR: return "chdir";
	case STAGE_EXEC: return "exec";
	default: return "child setup";
	}
}

/* ---- transient scopes under systemd -------------------------------------- */

/* Under systemd, vigild's unit sets VIGIL_WORKER_SCOPE=system (or user, for
 * `systemctl --user`) and each spawned worker runs in a transient scope
 * unit of its own, vigil-<worker_id>-<n>.scope in vigil.slice:
 *
 *   systemd-run --scope [--user] --quiet --collect --slice=vigil.slice
 *               --unit=vigil-<id>-<n> -p Before=vigild.service
 *               -p "After=local-fs.target remote-fs.target network.target" -- CMD...
 *
 * systemd-run --scope registers its own pid as the scope and then execs
 * CMD: the pid, its start time and its environment are the ones vigild put
 * in the slot, so nothing else changes.  Out of vigild's cgroup, a worker
 * is not killed when vigild's unit stops or restarts (vigild adopts it), and
 * systemd stops it in order at shutdown (scopes conflict with
 * shutdown.target; Before=vigild.service makes systemd stop vigild first,
 * so vigild does not see the shutdown as a failure to heal, and the After=
 * makes it stop the worker before the network goes and file systems are
 * unmounted).  README.md,
 * "Stop, restart and shutdown".  Returns the argv to run (wrapped in
 * *storage, which the caller frees) or req_argv as it is. */
static char *const *scope_argv(const char *const *req_argv, const char *resolved, const char *wid, char ***storage,
			       char *unit, size_t unit_len)
{
	static atomic_uint seq; /* distinct unit names within one vigild */
	const char *mode = getenv("VIGIL_WORKER_SCOPE");
	*storage = NULL;
	if (mode == NULL || (strcmp(mode, "system") != 0 && strcmp(mode, "user") != 0))
		return (char *const *)req_argv;
	size_t n = 0;
	while (req_argv[n] != NULL && n < ENV_MAX)
		n++;
	char **w = calloc(n + 16, sizeof *w);
	if (w == NULL)
		return NULL;
	snprintf(unit, unit_len, "--unit=vigil-%s-%d-%u", wid, (int)getpid(),
		 atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed)); /* relaxed: only distinctness */
	size_t k = 0;
	w[k++] = (char *)"systemd-run";
	w[k++] = (char *)"--scope";
	if (strcmp(mode, "user") == 0)
		w[k++] = (char *)"--user";
	w[k++] = (char *)"--quiet";
	w[k++] = (char *)"--collect";
	w[k++] = (char *)"--slice=vigil.slice";
	w[k++] = unit;
	w[k++] = (char *)"--property=Before=vigild.service";
	w[k++] = (char *)"--property=After=local-fs.target remote-fs.target network.target";
	w[k++] = (char *)"--";
	/* argv[0] as resolved by our PATH search (a name with a '/' stays as
	 * given: systemd-run resolves it in the same cwd). */
	w[k++] = (char *)(strchr(req_argv[0], '/') != NULL ? req_argv[0] : resolved);
	for (size_t i = 1; i < n; i++)
		w[k++] = (char *)req_argv[i];
	w[k] = NULL;
	*storage = w;
	return w;
}

/* ---- vigil_spawn -------------------------------------------------------- */

int vigil_spawn(struct vigil_segment *seg, const char *shm_name, const struct vigil_spawn_req *req,
		struct vigil_spawn_result *out)
{
	memset(out, 0, sizeof *out);
	out->pidfd = -1;

	if (seg == NULL || seg->hdr == NULL || !seg->writable || seg->slots == 0 || req == NULL ||
	    req->argv == NULL || req->argv[0] == NULL || vigil_segment_name_check(shm_name) < 0 ||
	    !vigil_id_valid(req->worker_id) || !vigil_id_valid(req->worker_type) ||
	    (req->task_id != NULL && req->task_id[0] != '\0' && !vigil_id_valid(req->task_id))) {
		out->err = -EINVAL;
		set_msg(out, "spawn: invalid request (segment, name, ids or argv)");
		return out->err;
	}
	const char *wid = req->worker_id;

	/* 1. Program, before anything is claimed. */
	char path[PATH_MAX];
	int rc = resolve_program(req->argv[0], path, sizeof path);
	if (rc < 0) {
		out->err = rc;
		if (rc == -ENOENT)
			set_msg(out, "exec %s: not found in PATH", req->argv[0]);
		else
			set_msg(out, "exec %s: %s", req->argv[0], strerror(-rc));
		return rc;
	}

	/* Under systemd: the worker in a scope of its own (scope_argv). */
	char **wrapped = NULL, unit[VIGIL_ID_MAX + 64];
	char *const *run_argv = scope_argv(req->argv, path, wid, &wrapped, unit, sizeof unit);
	char run_path[PATH_MAX];
	if (run_argv == NULL) {
		out->err = -ENOMEM;
		set_msg(out, "spawn %s: out of memory", wid);
		return out->err;
	}
	if (wrapped != NULL && (rc = resolve_program("systemd-run", run_path, sizeof run_path)) < 0) {
		free(wrapped);
		out->err = rc;
		set_msg(out, "exec systemd-run (VIGIL_WORKER_SCOPE is set): %s", strerror(-rc));
		return rc;
	}

	/* envp array: vigild's environ minus our names and its systemd context
	 * (env_dropped), plus ours. */
	size_t n_env = 0;
	while (environ != NULL && environ[n_env] != NULL && n_env < ENV_MAX)
		n_env++;
	if (n_env == ENV_MAX) {
		free(wrapped);
		out->err = -E2BIG;
		set_msg(out, "spawn %s: environment too large", wid);
		return out->err;
	}
	char **envp = calloc(n_env + N_OVERRIDDEN + 1, sizeof *envp);
	if (envp == NULL) {
		free(wrapped);
		out->err = -ENOMEM;
		set_msg(out, "spawn %s: out of memory", wid);
		return out->err;
	}
	size_t k = 0;
	for (size_t i = 0; i < n_env; i++)
		if (!env_dropped(environ[i]))
			envp[k++] = environ[i];

	/* fds the child uses, all >= 3 and close-on-exec here. */
	int devnull = -1, logfd = -1, sv[2] = {-1, -1}, pidfd = -1;
	uint32_t slot = 0;
	uint64_t gen = 0;
	bool claimed = false;
	pid_t pid = -1;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	rc = devnull < 0 ? -errno : 0;
	if (rc == 0 && (devnull = fd_above_stdio(devnull)) < 0)
		rc = devnull;
	if (rc < 0) {
		devnull = -1;
		set_msg(out, "open /dev/null: %s", strerror(-rc));
		goto fail;
	}
	if (req->log_dirfd >= 0) {
		char name[VIGIL_ID_MAX + 8];
		snprintf(name, sizeof name, "%s.log", wid);
		/* O_NONBLOCK: a FIFO planted as the log must not hang us in
		 * open(); only a regular file is accepted. */
		logfd = openat(req->log_dirfd, name,
			       O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
		rc = logfd < 0 ? -errno : 0;
		struct stat st;
		if (rc == 0 && fstat(logfd, &st) < 0)
			rc = -errno;
		else if (rc == 0 && !S_ISREG(st.st_mode))
			rc = -EINVAL;
		else if (rc == 0 && fcntl(logfd, F_SETFL, O_APPEND) < 0)
			rc = -errno;
		if (rc == 0 && (logfd = fd_above_stdio(logfd)) < 0)
			rc = logfd;
		if (rc < 0) {
			close_fd(&logfd);
			set_msg(out, "open log %s: %s", name, rc == -EINVAL ? "not a regular file" : strerror(-rc));
			goto fail;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		sv[0] = sv[1] = -1;
		set_msg(out, "spawn %s: socketpair: %s", wid, strerror(-rc));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		sv[i] = fd_above_stdio(sv[i]);
		if (sv[i] < 0) {
			rc = sv[i];
			sv[i] = -1;
			set_msg(out, "spawn %s: fcntl: %s", wid, strerror(-rc));
			goto fail;
		}
	}

	struct child_args a = {
		.path = wrapped != NULL ? run_path : path,
		.argv = run_argv,
		.envp = envp,
		.cwd = req->cwd,
		.in_fd = devnull,
		.out_fd = logfd >= 0 ? logfd : devnull,
		.chan = sv[1],
		.parent_end = sv[0],
		.umask = vigil_spawn_umask,
	};
	long open_max = sysconf(_SC_OPEN_MAX);
	a.max_fd = open_max < 3 ? 1024 : open_max > FD_FALLBACK_MAX ? FD_FALLBACK_MAX : (int)open_max;
	if (req->nofile_soft != 0 && getrlimit(RLIMIT_NOFILE, &a.nofile) == 0) {
		a.set_nofile = 1;
		if (req->nofile_soft < a.nofile.rlim_max)
			a.nofile.rlim_cur = (rlim_t)req->nofile_soft;
		else
			a.nofile.rlim_cur = a.nofile.rlim_max;
	}

	/* 2. The slot. */
	rc = claim_slot(seg, req, &slot, &gen);
	if (rc < 0) {
		set_msg(out, "spawn %s: no free slot in the segment (raise vigild --slots)", wid);
		goto fail;
	}
	claimed = true;
	char e_shm[VIGIL_SHM_NAME_MAX + 16], e_slot[32], e_gen[48], e_id[VIGIL_ID_MAX + 16],
		e_type[VIGIL_ID_MAX + 16], e_task[VIGIL_ID_MAX + 16], e_tokens[48];
	snprintf(e_shm, sizeof e_shm, "VIGIL_SHM=%s", shm_name);
	snprintf(e_slot, sizeof e_slot, "VIGIL_SLOT=%u", (unsigned)slot);
	snprintf(e_gen, sizeof e_gen, "VIGIL_GEN=%llu", (unsigned long long)gen);
	snprintf(e_id, sizeof e_id, "WORKER_ID=%s", wid);
	snprintf(e_type, sizeof e_type, "WORKER_TYPE=%s", req->worker_type);
	snprintf(e_task, sizeof e_task, "TASK_ID=%s", req->task_id != NULL ? req->task_id : "");
	snprintf(e_tokens, sizeof e_tokens, "VIGIL_TOKENS=%llu", (unsigned long long)req->tokens);
	envp[k++] = e_shm;
	envp[k++] = e_slot;
	envp[k++] = e_gen;
	envp[k++] = e_id;
	envp[k++] = e_type;
	envp[k++] = e_task;
	envp[k++] = e_tokens;
	envp[k] = NULL;

	/* 3. fork, with every signal blocked so that no handler of ours ever
	 * runs in the child. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (vigil_spawn_fail_fork_at > 0 && --vigil_spawn_fail_fork_at == 0) {
		pid = -1;
		errno = EAGAIN;
	} else {
		pid = fork();
	}
	if (pid == 0)
		child_main(&a); /* does not return */
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		rc = -fork_errno;
		set_msg(out, "spawn %s: fork: %s", wid, strerror(fork_errno));
		goto fail;
	}

	/* 4. Parent.  The child waits for "go"; it cannot exit before we say
	 * so (unless killed), and until we reap it its pid cannot be reused. */
	close_fd(&sv[1]);
	close_fd(&devnull);
	close_fd(&logfd);
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0 && errno != ENOSYS) {
		/* ENOSYS (valgrind < 3.20, old seccomp profiles) is tolerated:
		 * the child is ours and unreaped, so its pid is safe to use;
		 * the caller gets pidfd -1 and waits with waitpid(pid). */
		rc = -errno;
		set_msg(out, "spawn %s: pidfd_open(%d): %s", wid, (int)pid, strerror(-rc));
		goto fail_child; /* closing our end gives the child EOF: it exits 127 */
	}
	uint64_t ticks = vigil_proc_start_ticks(pid);
	seg->cold[slot].pid = (int32_t)pid;
	seg->cold[slot].pid_start_ticks = ticks;

	char go = 'g';
	ssize_t sn = -1;
	for (int i = 0; i < EINTR_RETRIES; i++) {
		sn = send(sv[0], &go, 1, MSG_NOSIGNAL);
		if (sn >= 0 || errno != EINTR)
			break;
	}
	int send_err = sn == 1 ? 0 : sn < 0 ? errno : EIO;
	if (send_err != 0)
		kill_child(pidfd, pid); /* harmless on a zombie; ends a child that still waits */

	/* A child whose setup failed (chdir...) reports and exits without
	 * waiting for "go", so a send that failed with EPIPE is normal then:
	 * the report is still queued for us and wins. */
	struct child_report rep = {0, 0};
	int v = read_verdict(sv[0], &rep);
	if (v == 1) {
		rc = rep.err > 0 ? -rep.err : -EIO;
		if (rep.stage == STAGE_EXEC)
			set_msg(out, "exec %s: %s", path, strerror(-rc));
		else if (rep.stage == STAGE_CHDIR)
			set_msg(out, "chdir %s: %s", req->cwd != NULL ? req->cwd : "", strerror(-rc));
		else
			set_msg(out, "spawn %s: %s: %s", wid, stage_name(rep.stage), strerror(-rc));
		goto fail_child;
	}
	if (send_err != 0) {
		/* EOF without a report and without "go": it never reached execve
		 * (killed from outside, or we could not send). */
		rc = -send_err;
		set_msg(out, "spawn %s: child %d died before exec: %s", wid, (int)pid, strerror(send_err));
		goto fail_child;
	}
	if (v < 0) {
		rc = v;
		if (v == -ETIMEDOUT)
			set_msg(out, "exec %s: did not complete within %d ms; child %d killed", path,
				VIGIL_SPAWN_EXEC_TIMEOUT_MS, (int)pid);
		else if (v == -ECONNRESET) /* it died with "go" unread */
			set_msg(out, "spawn %s: child %d died before exec", wid, (int)pid);
		else
			set_msg(out, "exec %s: waiting for the child: %s", path, strerror(-rc));
		kill_child(pidfd, pid);
		goto fail_child;
	}

	/* exec worked: publish.  The worker may already be running and
	 * attached (vigil_attach_to accepts CLAIMED); should a vigil.h ever
	 * let it detach from CLAIMED, a DETACHED|gen here is its own clean
	 * goodbye, not a theft. */
	if (!vigil_segment_slot_set(seg, slot, vigil_owner_make(VIGIL_SLOT_CLAIMED, gen), VIGIL_SLOT_ACTIVE) &&
	    atomic_load_explicit(&seg->hot[slot].owner, memory_order_acquire) !=
		    vigil_owner_make(VIGIL_SLOT_DETACHED, gen)) {
		rc = -ESTALE;
		claimed = false; /* not ours any more: do not touch it */
		set_msg(out, "spawn %s: slot %u was taken from us while the child started; child %d killed", wid,
			(unsigned)slot, (int)pid);
		kill_child(pidfd, pid);
		goto fail_child;
	}
	close_fd(&sv[0]);
	free(envp);
	free(wrapped);
	out->pid = (int32_t)pid;
	out->pidfd = pidfd;
	out->slot = slot;
	out->gen = gen;
	out->start_ticks = ticks;
	out->err = 0;
	return 0;

fail_child:
	close_fd(&sv[0]);
	reap(pid);
	close_fd(&pidfd);
fail:
	if (claimed)
		vigil_segment_slot_free(seg, slot, vigil_owner_make(VIGIL_SLOT_CLAIMED, gen));
	close_fd(&sv[0]);
	close_fd(&sv[1]);
	close_fd(&devnull);
	close_fd(&logfd);
	free(envp);
	free(wrapped);
	out->err = rc;
	return rc;
}
