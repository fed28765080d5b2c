/*
 * itest.c - the integration-test harness (see itest.h).
 */
#define _GNU_SOURCE
#include "itest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

extern char **environ;

#define MAX_PROCS 512
#define MAX_HOMES 64
#define MAX_SEGS 64

static pid_t procs[MAX_PROCS]; /* 0: free or already reaped */
static char homes[MAX_HOMES][ITEST_PATH_MAX];
static char segs[MAX_SEGS][64];
static int nhomes, nsegs;
static bool registered;
static unsigned home_counter, bash_counter;

/* ---- time ------------------------------------------------------------------ */

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t itest_now_ms(void) { return clock_ms(CLOCK_REALTIME); }
int64_t itest_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

void itest_sleep_ms(int ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

int itest_slack_ms(void)
{
	const char *s = getenv("VIGIL_TEST_SLACK_MS");
	if (s != NULL && *s != '\0') {
		char *end;
		long v = strtol(s, &end, 10);
		if (*end == '\0' && v >= 0 && v < 600000)
			return (int)v;
	}
	return 60;
}

double itest_tick_ms(const struct itest_home *h)
{
	double t = h->interval * 1000.0 / 4.0;
	if (t > 100.0)
		t = 100.0;
	if (t < 1.0)
		t = 1.0;
	return t;
}

/* ---- bookkeeping --------------------------------------------------------------- */

static void atexit_cleanup(void) { itest_teardown(); }

static void ensure_registered(void)
{
	if (registered)
		return;
	registered = true;
	/* Orphans (a killed bash worker's children) come back to us, so they
	 * are reaped and never outlive the test program unnoticed. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	atexit(atexit_cleanup);
}

void itest_track_pid(pid_t pid)
{
	ensure_registered();
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i] == 0) {
			procs[i] = pid;
			return;
		}
	}
	fail_msg("itest: more than %d processes tracked", MAX_PROCS);
}

static void untrack_pid(pid_t pid)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == pid)
			procs[i] = 0;
}

void itest_track_segment(const char *name)
{
	ensure_registered();
	for (int i = 0; i < nsegs; i++)
		if (strcmp(segs[i], name) == 0)
			return;
	if (nsegs < MAX_SEGS)
		snprintf(segs[nsegs++], sizeof segs[0], "%s", name);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void itest_teardown(void)
{
	/* Wake stopped ones, then kill every group we made. */
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i] > 0) {
			kill(-procs[i], SIGCONT);
			kill(procs[i], SIGCONT);
		}
	}
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i] > 0) {
			kill(-procs[i], SIGKILL);
			kill(procs[i], SIGKILL);
		}
	}
	int64_t deadline = itest_mono_ms() + 5000;
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i] <= 0)
			continue;
		while (waitpid(procs[i], NULL, WNOHANG) == 0 && itest_mono_ms() < deadline)
			itest_sleep_ms(1);
		procs[i] = 0;
	}
	/* Orphans handed to us as subreaper (already killed with their group). */
	while (itest_mono_ms() < deadline) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p < 0)
			break; /* ECHILD: none left */
		if (p == 0)
			itest_sleep_ms(1);
	}
	for (int i = 0; i < nsegs; i++)
		shm_unlink(segs[i]);
	nsegs = 0;
	for (int i = 0; i < nhomes; i++)
		nftw(homes[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
	nhomes = 0;
}

/* ---- files ---------------------------------------------------------------------- */

const char *itest_path(const struct itest_home *h, const char *rel, char *buf)
{
	int n = snprintf(buf, ITEST_PATH_MAX, "%s/%s", h->dir, rel);
	if (n < 0 || n >= ITEST_PATH_MAX)
		fail_msg("itest: path too long: %s/%s", h->dir, rel);
	return buf;
}

static void mkdir_p(const char *path)
{
	char tmp[ITEST_PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	}
	mkdir(tmp, 0700);
}

static char *slurp(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

char *itest_read_file(const struct itest_home *h, const char *rel)
{
	char p[ITEST_PATH_MAX];
	return slurp(itest_path(h, rel, p), NULL);
}

bool itest_exists(const struct itest_home *h, const char *rel)
{
	char p[ITEST_PATH_MAX];
	struct stat st;
	return lstat(itest_path(h, rel, p), &st) == 0;
}

bool itest_wait_file(const struct itest_home *h, const char *rel, bool exists, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		if (itest_exists(h, rel) == exists)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(5);
	}
}

int itest_count_text(const struct itest_home *h, const char *rel, const char *needle)
{
	char *s = itest_read_file(h, rel);
	if (s == NULL)
		return 0;
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(s);
	return n;
}

bool itest_wait_text_count(const struct itest_home *h, const char *rel, const char *needle, int n, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		if (itest_count_text(h, rel, needle) >= n)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(5);
	}
}

bool itest_wait_text(const struct itest_home *h, const char *rel, const char *needle, int timeout_ms)
{
	return itest_wait_text_count(h, rel, needle, 1, timeout_ms);
}

void itest_write_file(const struct itest_home *h, const char *rel, const char *text)
{
	char path[ITEST_PATH_MAX], tmp[ITEST_PATH_MAX + 16], dir[ITEST_PATH_MAX];
	itest_path(h, rel, path);
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		mkdir_p(dir);
		/* The temp name starts with '.', which vigild's config watcher ignores. */
		snprintf(tmp, sizeof tmp, "%s/.itest-tmp-%d", dir, (int)getpid());
	} else {
		snprintf(tmp, sizeof tmp, ".itest-tmp-%d", (int)getpid());
	}
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		fail_msg("itest: cannot write %s: %s", tmp, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0)
		fail_msg("itest: cannot write %s: %s", tmp, strerror(errno));
	if (rename(tmp, path) < 0)
		fail_msg("itest: rename %s -> %s: %s", tmp, path, strerror(errno));
}

json_t *itest_read_json(const struct itest_home *h, const char *rel)
{
	char *s = itest_read_file(h, rel);
	if (s == NULL)
		return NULL;
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	if (j == NULL)
		fail_msg("itest: %s/%s is not valid JSON (%s, line %d): %.300s", h->dir, rel, e.text, e.line, s);
	free(s);
	return j;
}

/* ---- homes ----------------------------------------------------------------------- */

void itest_home_create(struct itest_home *h)
{
	ensure_registered();
	/* A systemd environment (CI under a service) must not leak into the
	 * vigild under test; a test that wants NOTIFY_SOCKET sets it after. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	memset(h, 0, sizeof *h);
	snprintf(h->dir, sizeof h->dir, "/tmp/vigil-it-XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		fail_msg("itest: mkdtemp: %s", strerror(errno));
	if (nhomes >= MAX_HOMES)
		fail_msg("itest: too many homes");
	snprintf(homes[nhomes++], ITEST_PATH_MAX, "%s", h->dir);
	snprintf(h->shm, sizeof h->shm, "/vigil-it-%d-%u", (int)getpid(), home_counter++);
	shm_unlink(h->shm); /* a leftover of a crashed run with a recycled pid */
	itest_track_segment(h->shm);
	itest_path(h, "vigild.pid", h->pidfile);
	char p[ITEST_PATH_MAX];
	mkdir_p(itest_path(h, "coordination/config", p));
	/* vigild's defaults until a test writes its policy. */
	h->interval = 30;
	h->timeout = 120;
	h->zombie = 300;
}

void itest_write_policy(struct itest_home *h, double interval, double timeout, double zombie, const char *extra)
{
	char text[2048];
	snprintf(text, sizeof text,
		 "{\n  \"heartbeat_interval_seconds\": %.6g,\n  \"heartbeat_timeout_seconds\": %.6g,\n"
		 "  \"zombie_threshold_seconds\": %.6g,\n  \"health_score_decay_rate\": 5,\n"
		 "  \"min_health_score\": 20%s%s\n}\n",
		 interval, timeout, zombie, extra != NULL ? ",\n  " : "", extra != NULL ? extra : "");
	itest_write_file(h, "coordination/config/heartbeat-policy.json", text);
	itest_write_file(h, "heartbeat-policy.good.json", text);
	h->interval = interval;
	h->timeout = timeout;
	h->zombie = zombie;
}

/* ---- processes --------------------------------------------------------------------- */

static bool env_overridden(const char *entry, const char *const *extra)
{
	static const char *const drop[] = {"VIGIL_SHM=",  "VIGIL_SLOT=", "VIGIL_GEN=",	    "WORKER_ID=",
					   "WORKER_TYPE=", "TASK_ID=",   "COMMIT_RELAY_HOME=", "VIGILCTL=",
					   "SHIM="};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		if (strncmp(entry, drop[i], strlen(drop[i])) == 0)
			return true;
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		const char *eq = strchr(extra[i], '=');
		size_t k = eq != NULL ? (size_t)(eq - extra[i]) + 1 : strlen(extra[i]);
		if (strncmp(entry, extra[i], k) == 0)
			return true;
	}
	return false;
}

/* environ minus vigil's variables, plus extra; malloc'd array of borrowed strings. */
static char **build_env(const char *const *extra)
{
	size_t n = 0, m = 0;
	while (environ[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	char **env = calloc(n + m + 1, sizeof *env);
	assert_non_null(env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!env_overridden(environ[i], extra))
			env[k++] = environ[i];
	for (size_t i = 0; i < m; i++)
		env[k++] = (char *)extra[i];
	env[k] = NULL;
	return env;
}

/* fork + exec argv in a new process group; fds 0/1/2 from in/out/err
 * (-1: /dev/null).  Records the pid. */
static pid_t spawn(const char *const *argv, const char *const *extra_env, int in_fd, int out_fd, int err_fd)
{
	ensure_registered();
	char **env = build_env(extra_env);
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("itest: fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		/* If the test program dies without its teardown (killed by a
		 * timeout), the processes it started die with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				signal(s, SIG_DFL);
		dup2(in_fd >= 0 ? in_fd : devnull, 0);
		dup2(out_fd >= 0 ? out_fd : devnull, 1);
		dup2(err_fd >= 0 ? err_fd : devnull, 2);
		execve(argv[0], (char *const *)argv, env);
		dprintf(2, "itest: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* no race with the child's own call */
	free(env);
	if (devnull >= 0)
		close(devnull);
	itest_track_pid(pid);
	return pid;
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int itest_reap(pid_t pid, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			untrack_pid(pid);
			return status_code(st);
		}
		if (r < 0) {
			untrack_pid(pid);
			fail_msg("itest: waitpid(%d): %s", (int)pid, strerror(errno));
		}
		if (itest_mono_ms() >= deadline)
			return -1;
		itest_sleep_ms(1);
	}
}

void itest_kill(pid_t pid)
{
	kill(pid, SIGCONT);
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	if (itest_reap(pid, 5000) == -1)
		fail_msg("itest: pid %d survived SIGKILL for 5 s", (int)pid);
}

void itest_signal(pid_t pid, int sig)
{
	if (pid <= 0 || kill(pid, sig) < 0)
		fail_msg("itest: kill(%d, %d): %s", (int)pid, sig, strerror(errno));
}

const char *itest_proc_stat(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

bool itest_wait_comm(pid_t pid, const char *prefix, int timeout_ms)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		char comm[64] = "";
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, comm, sizeof comm - 1);
			close(fd);
			comm[n > 0 ? n : 0] = '\0';
		}
		if (strncmp(comm, prefix, strlen(prefix)) == 0)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(5);
	}
}

bool itest_alive(pid_t pid)
{
	char buf[512];
	if (itest_proc_stat(pid, buf, sizeof buf) == NULL)
		return false;
	const char *p = strrchr(buf, ')');
	/* State Z (zombie) or X (dead): the process has ended. */
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void home_env(const struct itest_home *h, char store[5][ITEST_PATH_MAX + 32], const char *env[6])
{
	snprintf(store[0], ITEST_PATH_MAX + 32, "COMMIT_RELAY_HOME=%s", h->dir);
	snprintf(store[1], ITEST_PATH_MAX + 32, "VIGIL_SHM=%s", h->shm);
	snprintf(store[2], ITEST_PATH_MAX + 32, "VIGILCTL=%s", VIGILCTL_PATH);
	snprintf(store[3], ITEST_PATH_MAX + 32, "SHIM=%s", SHIM_PATH);
	snprintf(store[4], ITEST_PATH_MAX + 32, "LC_ALL=C");
	for (int i = 0; i < 5; i++)
		env[i] = store[i];
	env[5] = NULL;
}

static int open_log(const struct itest_home *h, const char *rel)
{
	char p[ITEST_PATH_MAX];
	int fd = open(itest_path(h, rel, p), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_msg("itest: open %s: %s", p, strerror(errno));
	return fd;
}

pid_t itest_worker_start(const struct itest_home *h, const char *id, const char *type, const char *task,
			 const char *const *args)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = DEMO_WORKER_PATH;
	for (int i = 0; args != NULL && args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	char e[4][ITEST_PATH_MAX + 32];
	snprintf(e[0], sizeof e[0], "VIGIL_SHM=%s", h->shm);
	snprintf(e[1], sizeof e[1], "WORKER_ID=%s", id);
	snprintf(e[2], sizeof e[2], "WORKER_TYPE=%s", type);
	snprintf(e[3], sizeof e[3], "TASK_ID=%s", task != NULL ? task : "");
	const char *env[5] = {e[0], e[1], e[2], task != NULL ? e[3] : NULL, NULL};
	char rel[128];
	snprintf(rel, sizeof rel, "worker-%s.err", id);
	int fd = open_log(h, rel);
	pid_t pid = spawn(argv, env, -1, fd, fd);
	close(fd);
	return pid;
}

pid_t itest_bash_start(const struct itest_home *h, const char *script)
{
	char store[5][ITEST_PATH_MAX + 32];
	const char *env[6];
	home_env(h, store, env);
	const char *argv[] = {"/bin/bash", "-c", script, NULL};
	char rel[64];
	snprintf(rel, sizeof rel, "bash-%u.out", bash_counter++);
	int fd = open_log(h, rel);
	pid_t pid = spawn(argv, env, -1, fd, fd);
	close(fd);
	return pid;
}

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

int itest_run(const char *const *argv, const char *const *env, char **out, char **err, int timeout_ms)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)
		fail_msg("itest: pipe: %s", strerror(errno));
	pid_t pid = spawn(argv, env, -1, po[1], err != NULL ? pe[1] : 2);
	close(po[1]);
	close(pe[1]);
	struct buf bo = {0}, be = {0};
	buf_add(&bo, "", 0);
	buf_add(&be, "", 0);
	int64_t deadline = itest_mono_ms() + timeout_ms;
	struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
	bool timed_out = false;
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		int64_t left = deadline - itest_mono_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		int n = poll(fds, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || fds[i].revents == 0)
				continue;
			char tmp[4096];
			ssize_t r = read(fds[i].fd, tmp, sizeof tmp);
			if (r > 0) {
				buf_add(i == 0 ? &bo : &be, tmp, (size_t)r);
			} else if (r == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	int rc;
	if (timed_out) {
		rc = -1;
		itest_kill(pid);
	} else {
		int64_t left = deadline - itest_mono_ms();
		rc = itest_reap(pid, left > 0 ? (int)left : 0);
		if (rc == -1)
			itest_kill(pid);
	}
	if (out != NULL)
		*out = bo.p;
	else
		free(bo.p);
	if (err != NULL)
		*err = be.p;
	else
		free(be.p);
	return rc;
}

int itest_sh(const struct itest_home *h, const char *script, char **out, int timeout_ms)
{
	char store[5][ITEST_PATH_MAX + 32];
	const char *env[6];
	home_env(h, store, env);
	const char *argv[] = {"/bin/bash", "-c", script, NULL};
	return itest_run(argv, env, out, NULL, timeout_ms);
}

/* ---- vigild ----------------------------------------------------------------------------- */

static pid_t read_pidfile(const struct itest_home *h)
{
	char *s = slurp(h->pidfile, NULL);
	if (s == NULL)
		return 0;
	long v = strtol(s, NULL, 10);
	free(s);
	return (pid_t)v;
}

pid_t itest_vigild_start(struct itest_home *h)
{
	return itest_vigild_start_args(h, NULL);
}

int itest_vigild_stop(struct itest_home *h, int timeout_ms)
{
	if (h->vigild <= 0)
		fail_msg("itest: no vigild to stop");
	pid_t pid = h->vigild;
	h->vigild = 0;
	itest_signal(pid, SIGTERM);
	int rc = itest_reap(pid, timeout_ms);
	if (rc == -1)
		itest_kill(pid);
	return rc;
}

void itest_vigild_kill9(struct itest_home *h)
{
	if (h->vigild <= 0)
		fail_msg("itest: no vigild to kill");
	pid_t pid = h->vigild;
	h->vigild = 0;
	itest_kill(pid);
}

/* ---- events ---------------------------------------------------------------------------------- */

static void event_path(const char *file, char *rel, size_t len)
{
	if (strchr(file, '/') != NULL)
		snprintf(rel, len, "%s", file);
	else
		snprintf(rel, len, "coordination/events/%s", file);
}

json_t *itest_read_jsonl(const struct itest_home *h, const char *file)
{
	char rel[ITEST_PATH_MAX], p[ITEST_PATH_MAX];
	event_path(file, rel, sizeof rel);
	json_t *arr = json_array();
	assert_non_null(arr);
	size_t len;
	char *s = slurp(itest_path(h, rel, p), &len);
	if (s == NULL)
		return arr;
	size_t start = 0;
	unsigned lineno = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\n')
			continue;
		lineno++;
		s[i] = '\0';
		json_error_t e;
		json_t *o = json_loads(s + start, JSON_REJECT_DUPLICATES, &e);
		if (o == NULL || !json_is_object(o)) {
			char line[400];
			snprintf(line, sizeof line, "%s", s + start);
			json_decref(o);
			json_decref(arr);
			free(s);
			fail_msg("itest: %s line %u is not one JSON object (%s): '%s'", rel, lineno,
				 o == NULL ? e.text : "not an object", line);
		}
		json_array_append_new(arr, o);
		start = i + 1;
	}
	free(s);
	return arr;
}

static bool matches(const json_t *o, const char *event, const char *worker_id)
{
	const char *ev = json_string_value(json_object_get(o, "event"));
	const char *id = json_string_value(json_object_get(o, "worker_id"));
	if (event != NULL && (ev == NULL || strcmp(ev, event) != 0))
		return false;
	if (worker_id != NULL && (id == NULL || strcmp(id, worker_id) != 0))
		return false;
	return true;
}

json_t *itest_find_event(const struct itest_home *h, const char *file, const char *event, const char *worker_id)
{
	json_t *arr = itest_read_jsonl(h, file);
	json_t *found = NULL;
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		if (matches(o, event, worker_id)) {
			found = json_incref(o);
			break;
		}
	}
	json_decref(arr);
	return found;
}

json_t *itest_wait_event(const struct itest_home *h, const char *file, const char *event, const char *worker_id,
			 int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *o = itest_find_event(h, file, event, worker_id);
		if (o != NULL)
			return o;
		if (itest_mono_ms() >= deadline)
			return NULL;
		itest_sleep_ms(5);
	}
}

size_t itest_count_events(const struct itest_home *h, const char *file, const char *event, const char *worker_id)
{
	json_t *arr = itest_read_jsonl(h, file);
	size_t n = 0, i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		if (matches(o, event, worker_id))
			n++;
	}
	json_decref(arr);
	return n;
}

int64_t itest_int(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || !json_is_integer(v)) {
		char *s = json_dumps(obj, JSON_COMPACT);
		fail_msg("itest: member '%s' missing or not an integer in %s", key, s != NULL ? s : "?");
	}
	return (int64_t)json_integer_value(v);
}

int itest_sanitizer_reports(const struct itest_home *h)
{
	static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					    "WARNING: ThreadSanitizer", "runtime error:"};
	if (h->dir[0] == '\0')
		return 0;
	DIR *d = opendir(h->dir);
	if (d == NULL)
		return 0;
	int bad = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		bool ours = strcmp(n, "vigild.out") == 0 ||
			    (strncmp(n, "worker-", 7) == 0 && len > 4 && strcmp(n + len - 4, ".err") == 0) ||
			    (strncmp(n, "bash-", 5) == 0 && len > 4 && strcmp(n + len - 4, ".out") == 0);
		if (!ours)
			continue;
		char *s = itest_read_file(h, n);
		if (s == NULL)
			continue;
		for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
			if (strstr(s, marks[i]) != NULL) {
				fprintf(stderr, "itest: sanitizer report in %s/%s:\n%s\n", h->dir, n, s);
				bad++;
				break;
			}
		}
		free(s);
	}
	closedir(d);
	return bad;
}

/* ---- additions (self-healing tests) ------------------------------------------------------------ */

pid_t itest_vigild_start_args(struct itest_home *h, const char *const *extra)
{
	return itest_vigild_start_prefixed(h, NULL, extra);
}

/* Does the NUL-separated environment block env (len bytes) hold entry? */
static bool env_block_has(const char *env, size_t len, const char *entry)
{
	size_t el = strlen(entry);
	for (size_t i = 0; i < len;) {
		size_t l = strnlen(env + i, len - i);
		if (l == el && memcmp(env + i, entry, el) == 0)
			return true;
		i += l + 1;
	}
	return false;
}

int itest_procs_with_env(const char *const *envs, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || pid == (long)getpid())
			continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/%ld/environ", pid);
		size_t len;
		char *env = slurp(path, &len);
		if (env == NULL)
			continue;
		bool all = len > 0;
		for (int i = 0; all && envs[i] != NULL; i++)
			all = env_block_has(env, len, envs[i]);
		free(env);
		if (!all || !itest_alive((pid_t)pid))
			continue;
		if (out != NULL && n < max)
			out[n] = (pid_t)pid;
		n++;
	}
	closedir(d);
	return n;
}

int itest_kill_segment_users(const char *shm)
{
	if (shm == NULL || shm[0] == '\0')
		return 0;
	char entry[128];
	snprintf(entry, sizeof entry, "VIGIL_SHM=%s", shm);
	const char *envs[] = {entry, NULL};
	int killed = 0;
	/* A few rounds: a worker being started while we look is caught next time. */
	for (int round = 0; round < 5; round++) {
		pid_t pids[256];
		int n = itest_procs_with_env(envs, pids, 256);
		if (n == 0)
			break;
		for (int i = 0; i < n && i < 256; i++) {
			kill(pids[i], SIGCONT);
			if (kill(pids[i], SIGKILL) == 0)
				killed++;
		}
		itest_sleep_ms(10);
	}
	return killed;
}

/* ---- additions (hostile tests) ------------------------------------------------------------------ */

pid_t itest_vigild_start_prefixed(struct itest_home *h, const char *const *prefix, const char *const *extra)
{
	if (h->vigild > 0)
		fail_msg("itest: vigild already running for %s", h->dir);
	const char *argv[64];
	int n = 0;
	for (int i = 0; prefix != NULL && prefix[i] != NULL && n < 16; i++)
		argv[n++] = prefix[i];
	const char *std[] = {VIGILD_PATH, "--home", h->dir, "--shm", h->shm, "--pidfile", h->pidfile};
	for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
		argv[n++] = std[i];
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 63; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	int fd = open_log(h, "vigild.out");
	int64_t t0 = itest_now_ms();
	pid_t pid = spawn(argv, NULL, -1, fd, fd);
	close(fd);
	int64_t deadline = itest_mono_ms() + 10000;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			untrack_pid(pid);
			char *log = itest_read_file(h, "vigild.out");
			fail_msg("itest: vigild (via %s) exited during start-up with %d; its output:\n%s", argv[0],
				 status_code(st), log != NULL ? log : "(none)");
		}
		if (read_pidfile(h) == pid) {
			json_t *m = itest_read_json(h, "coordination/metrics/heartbeat-monitor-metrics.json");
			json_t *ts = m != NULL ? json_object_get(m, "timestamp_ms") : NULL;
			bool fresh = ts != NULL && json_is_integer(ts) && json_integer_value(ts) >= t0;
			json_decref(m);
			if (fresh)
				break;
		}
		if (itest_mono_ms() >= deadline) {
			char *log = itest_read_file(h, "vigild.out");
			fail_msg("itest: vigild (pid %d, via %s) did not write its pid file and metrics within 10 s; output:\n%s",
				 (int)pid, argv[0], log != NULL ? log : "(none)");
		}
		itest_sleep_ms(5);
	}
	h->vigild = pid;
	return pid;
}

int itest_vigilctl(const struct itest_home *h, char **out, char **err, const char *const *args)
{
	const char *argv[64] = {VIGILCTL_PATH, "--home", h->dir, "--shm", h->shm};
	int n = 5;
	for (int i = 0; args[i] != NULL && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return itest_run(argv, NULL, out, err, 30000);
}

int itest_vigild_run(const struct itest_home *h, const char *const *extra, char **err, int timeout_ms)
{
	const char *argv[48] = {VIGILD_PATH, "--home", h->dir, "--shm", h->shm, "--pidfile", h->pidfile};
	int n = 7;
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 47; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	char *out = NULL, *e = NULL;
	int rc = itest_run(argv, NULL, &out, &e, timeout_ms);
	free(out);
	if (err != NULL)
		*err = e;
	else
		free(e);
	return rc;
}

int itest_procs_of(const struct itest_home *h, const char *worker_id, pid_t *out, int max)
{
	char e1[128], e2[128];
	snprintf(e1, sizeof e1, "VIGIL_SHM=%s", h->shm);
	snprintf(e2, sizeof e2, "WORKER_ID=%s", worker_id);
	const char *envs[] = {e1, e2, NULL};
	return itest_procs_with_env(envs, out, max);
}

const char *itest_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s != NULL ? s : "";
}

int itest_finish(struct itest_home *h, void (*before_files_go)(void))
{
	if (h->vigild > 0) {
		kill(h->vigild, SIGCONT); /* a test may have stopped it */
		itest_vigild_stop(h, 5000);
	}
	itest_kill_segment_users(h->shm);
	int bad = itest_sanitizer_reports(h);
	if (before_files_go != NULL)
		before_files_go();
	itest_teardown();
	memset(h, 0, sizeof *h);
	return bad == 0 ? 0 : -1;
}
