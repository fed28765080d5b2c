/*
 * test_spawn.c - vigil_spawn: a worker gets its slot, its environment and a
 * clean process state; every failure (lookup, claim, fork, chdir, exec)
 * leaves no slot, no child and no fd behind.
 *
 * Every test has its own segment and temporary directory; the teardown
 * checks that the number of open fds is what it was before the setup and
 * that no child of ours is left (reaped or running).
 *
 * This binary is also a worker: run as "test_spawn --child-report FILE" it
 * attaches through vigil.h from the environment vigil_spawn gave it, beats,
 * reports what it sees of its own process state into FILE, and detaches.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "spawn.h"
#include "verify.h"
#include "vigil.h"

struct ctx {
	struct vigil_segment seg;
	char name[64];
	char dir[64];
	int dirfd;
	int fds_before;
	/* children spawned and not yet reaped by the test: the teardown kills
	 * and reaps them, so that one failed test does not fail the next */
	struct vigil_spawn_result kids[8];
	int n_kids;
};

static struct ctx *cur_ctx;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static int setup_n(void **state, uint32_t slots)
{
	static int seq;
	struct ctx *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -1;
	c->fds_before = count_fds();
	snprintf(c->name, sizeof c->name, "/vigil-sp-%d-%d", (int)getpid(), seq++);
	char err[256];
	if (vigil_segment_open(&c->seg, c->name, slots, 0600, true, true, err, sizeof err) < 0) {
		fprintf(stderr, "segment: %s\n", err);
		free(c);
		return -1;
	}
	snprintf(c->dir, sizeof c->dir, "/tmp/vigil-sp-XXXXXX");
	if (mkdtemp(c->dir) == NULL)
		return -1;
	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return -1;
	*state = c;
	cur_ctx = c;
	return 0;
}

static int setup4(void **state) { return setup_n(state, 4); }
static int setup1(void **state) { return setup_n(state, 1); }

static int teardown(void **state)
{
	struct ctx *c = *state;
	int rc = 0;
	for (int i = 0; i < c->n_kids; i++) {
		fprintf(stderr, "child %d was not reaped by the test\n", (int)c->kids[i].pid);
		kill(c->kids[i].pid, SIGKILL); /* unreaped: the pid is still ours */
		waitpid(c->kids[i].pid, NULL, 0);
		if (c->kids[i].pidfd >= 0)
			close(c->kids[i].pidfd);
		rc = -1;
	}
	cur_ctx = NULL;
	vigil_segment_close(&c->seg);
	shm_unlink(c->name);
	DIR *d = fdopendir(c->dirfd); /* takes over dirfd */
	struct dirent *e;
	for (int i = 0; d != NULL && i < 1000 && (e = readdir(d)) != NULL; i++)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	if (d != NULL)
		closedir(d);
	rmdir(c->dir);
	int after = count_fds();
	if (after != c->fds_before) {
		fprintf(stderr, "fd leak: %d open before, %d after\n", c->fds_before, after);
		rc = -1;
	}
	int st;
	errno = 0;
	if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) {
		fprintf(stderr, "a child is left over\n");
		rc = -1;
	}
	vigil_spawn_fail_fork_at = 0;
	free(c);
	return rc;
}

/* ---- helpers ------------------------------------------------------------------ */

static struct vigil_spawn_req base_req(const struct ctx *c, const char *const *argv)
{
	struct vigil_spawn_req r = {
		.worker_id = "worker-test-001",
		.worker_type = "test",
		.task_id = "task-1",
		.argv = argv,
		.cwd = c->dir,
		.log_dirfd = -1,
		.spawn_tag = 0xabc123,
		.tokens = 5000,
	};
	return r;
}

static int spawn(struct ctx *c, const char *name, const struct vigil_spawn_req *req,
		 struct vigil_spawn_result *res)
{
	int rc = vigil_spawn(&c->seg, name, req, res);
	if (rc == 0 && c->n_kids < (int)(sizeof c->kids / sizeof c->kids[0]))
		c->kids[c->n_kids++] = *res;
	return rc;
}

/* pidfd_open works here (not under valgrind < 3.20, where vigil_spawn
 * hands out pidfd -1 and we fall back to the pid). */
static bool have_pidfd;

/* Waits for the spawned child, closes its pidfd; returns the exit status,
 * or 128 + signal. */
static int wait_exit(const struct vigil_spawn_result *r)
{
	assert_true(r->pid > 0);
	assert_true(r->pidfd >= 0 || !have_pidfd);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int rc;
	do
		rc = r->pidfd >= 0 ? waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED)
				   : waitid(P_PID, (id_t)r->pid, &si, WEXITED);
	while (rc < 0 && errno == EINTR);
	assert_int_equal(rc, 0);
	if (r->pidfd >= 0)
		close(r->pidfd);
	for (int i = 0; cur_ctx != NULL && i < cur_ctx->n_kids; i++)
		if (cur_ctx->kids[i].pid == r->pid)
			cur_ctx->kids[i] = cur_ctx->kids[--cur_ctx->n_kids];
	return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

static int kill_and_reap(const struct vigil_spawn_result *r)
{
	if (r->pidfd >= 0)
		assert_int_equal(pidfd_send_signal(r->pidfd, SIGKILL, NULL, 0), 0);
	else
		assert_int_equal(kill(r->pid, SIGKILL), 0);
	return wait_exit(r);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Reads name in dirfd once it holds a complete line (up to 5 s). */
static void wait_file(int dirfd, const char *name, char *buf, size_t len)
{
	buf[0] = '\0';
	for (int i = 0; i < 500; i++) {
		int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, len - 1);
			close(fd);
			if (n > 0 && buf[n - 1] == '\n') {
				buf[n] = '\0';
				return;
			}
		}
		sleep_ms(10);
	}
	fail_msg("%s never got a complete line", name);
}

static int read_proc(pid_t pid, const char *what, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return (int)n;
}

/* Appends src to the string in dst (capacity cap), truncating. */
static void append(char *dst, size_t cap, const char *src)
{
	size_t used = strlen(dst), n = strlen(src);
	if (used + 1 >= cap)
		return;
	if (n > cap - 1 - used)
		n = cap - 1 - used;
	memcpy(dst + used, src, n);
	dst[used + n] = '\0';
}

static void assert_all_free(const struct ctx *c, uint64_t gen)
{
	for (uint32_t i = 0; i < c->seg.slots; i++)
		assert_true(atomic_load(&c->seg.hot[i].owner) == vigil_owner_make(VIGIL_SLOT_FREE, gen));
}

static void assert_no_child(void)
{
	int st;
	errno = 0;
	pid_t r = waitpid(-1, &st, WNOHANG);
	assert_true(r == 0 || (r == -1 && errno == ECHILD));
}

/* ---- success ------------------------------------------------------------------ */

static void spawn_env_and_slot(void **state)
{
	struct ctx *c = *state;
	/* Values vigild itself may carry must not reach the worker. */
	setenv("VIGIL_SLOT", "999", 1);
	setenv("WORKER_ID", "bogus", 1);
	const char *argv[] = {"/bin/sh", "-c",
			      "env | grep -c -e '^VIGIL_SLOT=' -e '^WORKER_ID=' > count; "
			      "echo \"$VIGIL_SHM $VIGIL_SLOT $VIGIL_GEN $WORKER_ID $WORKER_TYPE $TASK_ID $VIGIL_TOKENS\" > out; "
			      "exec sleep 5",
			      NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	int rc = spawn(c, c->name, &req, &res);
	unsetenv("VIGIL_SLOT");
	unsetenv("WORKER_ID");
	assert_int_equal(rc, 0);
	assert_int_equal(res.err, 0);
	assert_true(res.pid > 0);
	assert_true(res.pidfd >= 0 || !have_pidfd);
	assert_true(res.slot < c->seg.slots);
	assert_int_equal(res.gen, 1);

	assert_true(atomic_load(&c->seg.hot[res.slot].owner) == vigil_owner_make(VIGIL_SLOT_ACTIVE, res.gen));
	uint64_t beat = atomic_load(&c->seg.hot[res.slot].beat);
	assert_int_equal(beat, vigil_beat_make(res.gen, 0, 100, 0));
	const struct vigil_slot_cold *cold = &c->seg.cold[res.slot];
	assert_int_equal(cold->pid, res.pid);
	assert_int_equal(cold->registrar_pid, getpid());
	assert_true(cold->flags & VIGIL_COLD_SPAWNED);
	assert_int_equal(cold->spawn_tag, 0xabc123);
	assert_string_equal(cold->worker_id, "worker-test-001");
	assert_string_equal(cold->worker_type, "test");
	assert_string_equal(cold->task_id, "task-1");
	assert_true(cold->pid_start_ticks != 0);
	assert_int_equal(cold->pid_start_ticks, vigil_proc_start_ticks(res.pid));
	assert_int_equal(res.start_ticks, cold->pid_start_ticks);
	assert_true(cold->registered_unix_ms > 0);
	assert_true(cold->claimed_mono_ns > 0);

	char buf[512], want[512];
	wait_file(c->dirfd, "out", buf, sizeof buf);
	snprintf(want, sizeof want, "%s %u %llu worker-test-001 test task-1 5000\n", c->name, (unsigned)res.slot,
		 (unsigned long long)res.gen);
	assert_string_equal(buf, want);
	wait_file(c->dirfd, "count", buf, sizeof buf);
	assert_string_equal(buf, "2\n"); /* one VIGIL_SLOT, one WORKER_ID */

	assert_int_equal(kill_and_reap(&res), 128 + SIGKILL);
}

/* The process state vigild hands over: own session, empty mask, default
 * dispositions, only 0/1/2 open (all /dev/null) - although the spawning
 * thread blocked SIGTERM, ignored SIGPIPE and SIGUSR1, and holds an fd
 * without close-on-exec. */
static void spawn_clean_process_state(void **state)
{
	struct ctx *c = *state;
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
	struct sigaction ign, old_pipe, old_usr1;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old_pipe);
	sigaction(SIGUSR1, &ign, &old_usr1);
	int stray = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	assert_true(stray >= 0);

	const char *argv[] = {"/bin/sleep", "5", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	int rc = spawn(c, c->name, &req, &res);

	close(stray);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigaction(SIGUSR1, &old_usr1, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	assert_int_equal(rc, 0);

	char buf[4096];
	assert_true(read_proc(res.pid, "stat", buf, sizeof buf) > 0);
	const char *p = strrchr(buf, ')');
	assert_non_null(p);
	int ppid, pgrp, session;
	char st;
	assert_int_equal(sscanf(p + 2, "%c %d %d %d", &st, &ppid, &pgrp, &session), 4);
	assert_int_equal(session, res.pid);
	assert_int_equal(pgrp, res.pid);
	assert_int_equal(ppid, getpid());

	assert_true(read_proc(res.pid, "status", buf, sizeof buf) > 0);
	assert_non_null(strstr(buf, "\nSigBlk:\t0000000000000000\n"));
	assert_non_null(strstr(buf, "\nSigIgn:\t0000000000000000\n"));

	/* execve closes close-on-exec fds after the point where our channel
	 * reports success, so give it a moment to finish. */
	char fds[256] = "";
	for (int i = 0; i < 200; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/fd", (int)res.pid);
		DIR *d = opendir(path);
		assert_non_null(d);
		fds[0] = '\0';
		struct dirent *e;
		for (int j = 0; j < 64 && (e = readdir(d)) != NULL; j++)
			if (e->d_name[0] != '.') {
				char l[PATH_MAX + 1] = "";
				char fdp[400] = "";
				append(fdp, sizeof fdp, path);
				append(fdp, sizeof fdp, "/");
				append(fdp, sizeof fdp, e->d_name);
				ssize_t n = readlink(fdp, l, sizeof l - 1);
				l[n > 0 ? n : 0] = '\0';
				append(fds, sizeof fds, e->d_name);
				append(fds, sizeof fds, "=");
				append(fds, sizeof fds, l);
				append(fds, sizeof fds, " ");
			}
		closedir(d);
		if (strcmp(fds, "0=/dev/null 1=/dev/null 2=/dev/null ") == 0)
			break;
		sleep_ms(10);
	}
	assert_string_equal(fds, "0=/dev/null 1=/dev/null 2=/dev/null ");
	char cwd[PATH_MAX + 1] = "";
	snprintf(buf, sizeof buf, "/proc/%d/cwd", (int)res.pid);
	ssize_t n = readlink(buf, cwd, sizeof cwd - 1);
	cwd[n > 0 ? n : 0] = '\0';
	assert_string_equal(cwd, c->dir);

	assert_int_equal(kill_and_reap(&res), 128 + SIGKILL);
}

/* A worker built on vigil.h, from the inside: attaches from the
 * environment (the slot may still be CLAIMED), sees only fds 0-2, an empty
 * mask, default SIGPIPE, its own session; beats and detaches. */
static int child_report(const char *file)
{
	struct vigil v;
	int arc = vigil_attach(&v);
	char fds[256] = "";
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		struct dirent *e;
		for (int j = 0; j < 64 && (e = readdir(d)) != NULL; j++)
			if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) {
				if (fds[0] != '\0')
					append(fds, sizeof fds, ",");
				append(fds, sizeof fds, e->d_name);
			}
		closedir(d);
	}
	sigset_t mask;
	sigprocmask(SIG_BLOCK, NULL, &mask);
	int blocked = 0;
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&mask, s) == 1)
			blocked++;
	struct sigaction sa;
	sigaction(SIGPIPE, NULL, &sa);
	int pipe_dfl = sa.sa_handler == SIG_DFL;
	int sid_ok = getsid(0) == getpid();
	/* our variables exactly once each, whatever the spawner's environ had */
	int dups = 0;
	for (char **e = environ; *e != NULL; e++)
		for (size_t j = 0; j < 7; j++) {
			static const char *const names[] = {"VIGIL_SHM=", "VIGIL_SLOT=", "VIGIL_GEN=", "WORKER_ID=",
							    "WORKER_TYPE=", "TASK_ID=", "VIGIL_TOKENS="};
			if (strncmp(*e, names[j], strlen(names[j])) == 0)
				dups++;
		}
	unsigned slot = arc == 0 ? v.slot : 0;
	unsigned long long gen = arc == 0 ? (unsigned long long)v.gen : 0;
	int brc = vigil_beat(&v, 77, 42);
	/* vigil_detach accepts only ACTIVE (and ZOMBIE), and vigild publishes
	 * ACTIVE just after our execve: a worker that is quicker than that
	 * (here under valgrind) would get -ESTALE.  Wait for it, bounded. */
	for (int i = 0; arc == 0 && i < 500; i++) {
		if (atomic_load(&v.hot->owner) == vigil_owner_make(VIGIL_SLOT_ACTIVE, v.gen))
			break;
		sleep_ms(10);
	}
	int drc = arc == 0 ? vigil_detach(&v) : -1;
	FILE *f = fopen(file, "we");
	if (f == NULL)
		return 1;
	fprintf(f, "attach=%d beat=%d detach=%d fds=%s blocked=%d pipe_dfl=%d sid=%d vars=%d id=%s slot=%u gen=%llu\n",
		arc, brc, drc, fds, blocked, pipe_dfl, sid_ok, dups, getenv("WORKER_ID"), slot, gen);
	fclose(f);
	return 0;
}

static void spawn_worker_attaches(void **state)
{
	struct ctx *c = *state;
	char self[PATH_MAX + 1] = "";
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = '\0';
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	/* stale values in the spawner's environment must not reach the worker */
	setenv("VIGIL_SLOT", "999", 1);
	setenv("VIGIL_GEN", "77", 1);
	setenv("WORKER_ID", "bogus", 1);
	const char *argv[] = {self, "--child-report", "report", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	int rc = spawn(c, c->name, &req, &res);
	unsetenv("VIGIL_SLOT");
	unsetenv("VIGIL_GEN");
	unsetenv("WORKER_ID");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(wait_exit(&res), 0);

	char buf[512], want[512];
	wait_file(c->dirfd, "report", buf, sizeof buf);
	snprintf(want, sizeof want,
		 "attach=0 beat=0 detach=0 fds=0,1,2 blocked=0 pipe_dfl=1 sid=1 vars=7 id=worker-test-001 slot=%u gen=%llu\n",
		 (unsigned)res.slot, (unsigned long long)res.gen);
	assert_string_equal(buf, want);
	assert_true(atomic_load(&c->seg.hot[res.slot].owner) == vigil_owner_make(VIGIL_SLOT_DETACHED, res.gen));
	assert_int_equal(atomic_load(&c->seg.hot[res.slot].beat), vigil_beat_make(res.gen, 1, 77, 42));
}

static void spawn_log_dirfd(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"/bin/sh", "-c", "echo out-line; echo err-line >&2", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	req.log_dirfd = c->dirfd;
	req.cwd = NULL;
	for (int i = 0; i < 2; i++) {
		struct vigil_spawn_result res;
		assert_int_equal(spawn(c, c->name, &req, &res), 0);
		assert_int_equal(wait_exit(&res), 0);
	}
	char buf[256];
	int fd = openat(c->dirfd, "worker-test-001.log", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "out-line\nerr-line\nout-line\nerr-line\n"); /* appended */
	struct stat st;
	assert_int_equal(fstatat(c->dirfd, "worker-test-001.log", &st, 0), 0);
	mode_t um = umask(0);
	umask(um);
	assert_int_equal(st.st_mode & 0777, 0644 & ~um);

	/* A symbolic link planted as the log is not followed. */
	assert_int_equal(symlinkat("/etc/hostname", c->dirfd, "evil.log"), 0);
	req.worker_id = "evil";
	struct vigil_spawn_result res;
	int rc = spawn(c, c->name, &req, &res);
	assert_int_equal(rc, -ELOOP);
	assert_int_equal(res.pid, 0);
	assert_int_equal(res.pidfd, -1);
	assert_non_null(strstr(res.msg, "evil.log"));
	/* Nor is a FIFO opened (that would block vigild). */
	assert_int_equal(mkfifoat(c->dirfd, "fifo.log", 0600), 0);
	req.worker_id = "fifo";
	rc = spawn(c, c->name, &req, &res);
	assert_true(rc == -ENXIO || rc == -EINVAL); /* no reader: ENXIO; else not regular */
	assert_true(strncmp(res.msg, "open log fifo.log: ", 19) == 0);
	/* the two good spawns hold slots 0 and 1; the bad ones claimed nothing */
	assert_true(atomic_load(&c->seg.hot[2].owner) == 0 && atomic_load(&c->seg.hot[3].owner) == 0);
	assert_no_child();
}

static void spawn_path_search(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"sh", "-c", "exit 3", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	assert_int_equal(spawn(c, c->name, &req, &res), 0);
	assert_int_equal(wait_exit(&res), 3);

	/* Relative PATH entries are ignored; an unset PATH means /bin:/usr/bin. */
	char *saved = strdup(getenv("PATH"));
	assert_non_null(saved);
	setenv("PATH", ".:bin:/nonexistent", 1);
	const char *argv2[] = {"sh", "-c", "exit 4", NULL};
	req.argv = argv2;
	int rc = spawn(c, c->name, &req, &res);
	unsetenv("PATH");
	int rc2 = spawn(c, c->name, &req, &res);
	setenv("PATH", saved, 1);
	free(saved);
	assert_int_equal(rc, -ENOENT);
	assert_int_equal(rc2, 0);
	assert_int_equal(wait_exit(&res), 4);
}

static void spawn_nofile_soft(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"/bin/sh", "-c", "ulimit -n > lim", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	req.nofile_soft = 256;
	struct vigil_spawn_result res;
	assert_int_equal(spawn(c, c->name, &req, &res), 0);
	assert_int_equal(wait_exit(&res), 0);
	char buf[64];
	wait_file(c->dirfd, "lim", buf, sizeof buf);
	/* valgrind emulates RLIMIT_NOFILE for its client instead of setting it */
	const char *pre = getenv("LD_PRELOAD");
	if (pre == NULL || strstr(pre, "vgpreload") == NULL)
		assert_string_equal(buf, "256\n");
}

/* ---- failures ------------------------------------------------------------------ */

static void spawn_not_found(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"no-such-program-xyz", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	assert_int_equal(spawn(c, c->name, &req, &res), -ENOENT);
	assert_int_equal(res.err, -ENOENT);
	assert_int_equal(res.pid, 0);
	assert_int_equal(res.pidfd, -1);
	assert_non_null(strstr(res.msg, "no-such-program-xyz"));
	assert_all_free(c, 0); /* nothing was even claimed */
	assert_no_child();
}

static void spawn_not_executable(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"/etc/passwd", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	assert_int_equal(spawn(c, c->name, &req, &res), -EACCES);
	assert_string_equal(res.msg, "exec /etc/passwd: Permission denied");
	assert_int_equal(res.pidfd, -1);
	/* claimed (gen 1) and released with the same generation */
	for (uint32_t i = 0; i < c->seg.slots; i++)
		assert_int_equal(vigil_owner_state(atomic_load(&c->seg.hot[i].owner)), VIGIL_SLOT_FREE);
	assert_no_child();
}

static void spawn_exec_garbage(void **state)
{
	struct ctx *c = *state;
	char path[128];
	snprintf(path, sizeof path, "%s/garbage", c->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	static const char junk[] = "\x01\x02\x03 this is not a program \xff\xfe\n";
	assert_int_equal(write(fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
	close(fd);
	assert_int_equal(chmod(path, 0755), 0);

	const char *argv[] = {path, NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	assert_int_equal(spawn(c, c->name, &req, &res), -ENOEXEC);
	char want[256];
	snprintf(want, sizeof want, "exec %s: %s", path, strerror(ENOEXEC));
	assert_string_equal(res.msg, want);
	assert_true(atomic_load(&c->seg.hot[0].owner) == vigil_owner_make(VIGIL_SLOT_FREE, 1));
	assert_no_child();

	/* The next claim of the (only) slot bumps the generation. */
	const char *argv2[] = {"/bin/true", NULL};
	req.argv = argv2;
	assert_int_equal(spawn(c, c->name, &req, &res), 0);
	assert_int_equal(res.slot, 0);
	assert_int_equal(res.gen, 2);
	assert_int_equal(wait_exit(&res), 0);
}

static void spawn_chdir_fails(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"/bin/true", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	req.cwd = "/no/such/dir";
	/* The child reports and exits without waiting for "go", so it races
	 * with our send: repeat to see both orders. */
	for (uint64_t i = 1; i <= 20; i++) {
		struct vigil_spawn_result res;
		assert_int_equal(spawn(c, c->name, &req, &res), -ENOENT);
		assert_string_equal(res.msg, "chdir /no/such/dir: No such file or directory");
		assert_true(atomic_load(&c->seg.hot[0].owner) == vigil_owner_make(VIGIL_SLOT_FREE, i));
		assert_no_child();
	}
}

static void spawn_fork_fails(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"/bin/true", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	vigil_spawn_fail_fork_at = 1;
	assert_int_equal(spawn(c, c->name, &req, &res), -EAGAIN);
	assert_int_equal(vigil_spawn_fail_fork_at, 0);
	assert_non_null(strstr(res.msg, "fork"));
	assert_int_equal(res.pidfd, -1);
	assert_true(atomic_load(&c->seg.hot[0].owner) == vigil_owner_make(VIGIL_SLOT_FREE, 1));
	assert_no_child();

	/* The second fork from now fails: the first spawn works. */
	vigil_spawn_fail_fork_at = 2;
	struct vigil_spawn_result ok;
	assert_int_equal(spawn(c, c->name, &req, &ok), 0);
	assert_int_equal(spawn(c, c->name, &req, &res), -EAGAIN);
	assert_int_equal(wait_exit(&ok), 0);
	/* the hook is spent */
	assert_int_equal(spawn(c, c->name, &req, &ok), 0);
	assert_int_equal(wait_exit(&ok), 0);
}

static void spawn_segment_full(void **state)
{
	struct ctx *c = *state;
	uint64_t taken = vigil_owner_make(VIGIL_SLOT_ACTIVE, 7);
	atomic_store(&c->seg.hot[0].owner, taken);
	const char *argv[] = {"/bin/true", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	assert_int_equal(spawn(c, c->name, &req, &res), -ENOSPC);
	assert_int_equal(res.pid, 0);
	assert_int_equal(res.pidfd, -1);
	assert_non_null(strstr(res.msg, "no free slot"));
	assert_true(atomic_load(&c->seg.hot[0].owner) == taken);
	assert_no_child();
}

static void spawn_bad_request(void **state)
{
	struct ctx *c = *state;
	const char *argv[] = {"/bin/true", NULL};
	struct vigil_spawn_req req = base_req(c, argv);
	struct vigil_spawn_result res;
	req.worker_id = "../evil";
	assert_int_equal(spawn(c, c->name, &req, &res), -EINVAL);
	req.worker_id = "ok";
	const char *empty[] = {NULL};
	req.argv = empty;
	assert_int_equal(spawn(c, c->name, &req, &res), -EINVAL);
	req.argv = argv;
	assert_int_equal(spawn(c, "no-slash", &req, &res), -EINVAL);
	assert_all_free(c, 0);
	assert_no_child();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child-report") == 0)
		return child_report(argv[2]);
	int probe = pidfd_open(getpid(), 0);
	have_pidfd = probe >= 0;
	if (probe >= 0)
		close(probe);
	else
		fprintf(stderr, "note: no pidfd_open here (%s); testing the pid fallback\n", strerror(errno));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(spawn_env_and_slot, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_clean_process_state, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_worker_attaches, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_log_dirfd, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_path_search, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_nofile_soft, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_not_found, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_not_executable, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_exec_garbage, setup1, teardown),
		cmocka_unit_test_setup_teardown(spawn_chdir_fails, setup1, teardown),
		cmocka_unit_test_setup_teardown(spawn_fork_fails, setup4, teardown),
		cmocka_unit_test_setup_teardown(spawn_segment_full, setup1, teardown),
		cmocka_unit_test_setup_teardown(spawn_bad_request, setup4, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
