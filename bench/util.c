/*
 * util.c - vigil-bench helpers: time, processes, cleanup, files, /proc,
 * pinning, statistics, vigild homes.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct bench_opts g_opts;

/* ---- time ------------------------------------------------------------------ */

uint64_t bench_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t bench_real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bench_real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_sleep_ms(double ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {(time_t)(ms / 1000.0), (long)(fmod(ms, 1000.0) * 1e6)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- logging ------------------------------------------------------------------ */

static uint64_t log_t0;

__attribute__((format(printf, 1, 0))) static void vlog_(const char *fmt, va_list ap)
{
	if (log_t0 == 0)
		log_t0 = bench_mono_ns();
	fprintf(stderr, "[vigil-bench %7.2fs] ", (double)(bench_mono_ns() - log_t0) / 1e9);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void bench_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog_(fmt, ap);
	va_end(ap);
}

void bench_vlog(const char *fmt, ...)
{
	if (!g_opts.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog_(fmt, ap);
	va_end(ap);
}

/* ---- cleanup registry ------------------------------------------------------------
 * Fixed-size arrays so that the signal handler needs no allocator. */

#define MAX_TRACKED 32768
#define MAX_SEGMENTS 32

static volatile pid_t tracked[MAX_TRACKED];
static volatile int tracked_hi; /* one past the highest used index */
static char segments[MAX_SEGMENTS][128];
static volatile sig_atomic_t cleaning;
static pid_t self_pid;

void bench_track_pid(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (tracked[i] == 0) {
			tracked[i] = pid;
			if (i >= tracked_hi)
				tracked_hi = i + 1;
			return;
		}
	}
	/* Full: the /proc sweep at cleanup still finds it (we are its parent). */
}

void bench_untrack_pid(pid_t pid)
{
	for (int i = 0; i < tracked_hi; i++)
		if (tracked[i] == pid) {
			tracked[i] = 0;
			return;
		}
}

void bench_track_segment(const char *name)
{
	for (int i = 0; i < MAX_SEGMENTS; i++)
		if (segments[i][0] == '\0') {
			snprintf(segments[i], sizeof segments[i], "%s", name);
			return;
		}
}

void bench_untrack_segment(const char *name)
{
	for (int i = 0; i < MAX_SEGMENTS; i++)
		if (strcmp(segments[i], name) == 0)
			segments[i][0] = '\0';
}

/* getdents64 without libc's allocating opendir: async-signal-safe. */
struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static long parse_long_(const char *s)
{
	long v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

/* Parent pid of pid from /proc/<pid>/stat, or -1. */
static pid_t ppid_of(const char *pidstr)
{
	char path[64] = "/proc/";
	size_t n = strlen(pidstr);
	if (n > 20)
		return -1;
	memcpy(path + 6, pidstr, n);
	memcpy(path + 6 + n, "/stat", 6);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[512];
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	char *p = NULL;
	for (ssize_t i = r - 1; i >= 0; i--)
		if (buf[i] == ')') {
			p = buf + i;
			break;
		}
	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return -1;
	return (pid_t)parse_long_(p + 4); /* ") S ppid" */
}

/* SIGKILLs every process whose parent is us; returns how many. */
static int kill_children(void)
{
	int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int n = 0;
	char buf[8192];
	for (;;) {
		long r = syscall(SYS_getdents64, fd, buf, sizeof buf);
		if (r <= 0)
			break;
		for (long off = 0; off < r;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			if (!all_digits(d->d_name))
				continue;
			if (ppid_of(d->d_name) == self_pid) {
				kill((pid_t)parse_long_(d->d_name), SIGKILL);
				n++;
			}
		}
	}
	close(fd);
	return n;
}

int bench_reap_nohang(void)
{
	int n = 0, st;
	pid_t p;
	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		bench_untrack_pid(p);
		n++;
	}
	return n;
}

void bench_kill_all(void)
{
	for (int i = 0; i < tracked_hi; i++)
		if (tracked[i] > 0)
			kill(tracked[i], SIGKILL);
	/* Orphans (workers vigild spawned) come back to us as subreaper. */
	for (int round = 0; round < 500; round++) {
		int st;
		while (waitpid(-1, &st, WNOHANG) > 0)
			;
		int k = kill_children();
		if (k == 0) {
			errno = 0;
			if (waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD)
				break;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < tracked_hi; i++)
		tracked[i] = 0;
	tracked_hi = 0;
}

static int rmtree_at(int dirfd, const char *name, int depth)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > 32)
		return -ELOOP;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[4096];
	/* Repeat whole passes: removing entries while reading may skip some. */
	for (int pass = 0; pass < 1000; pass++) {
		bool any = false;
		lseek(fd, 0, SEEK_SET);
		for (;;) {
			long r = syscall(SYS_getdents64, fd, buf, sizeof buf);
			if (r <= 0)
				break;
			for (long off = 0; off < r;) {
				struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
				off += d->d_reclen;
				if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
					continue;
				any = true;
				rmtree_at(fd, d->d_name, depth + 1);
			}
		}
		if (!any)
			break;
	}
	close(fd);
	return unlinkat(dirfd, name, AT_REMOVEDIR) == 0 ? 0 : -errno;
}

int bench_rmtree(const char *path)
{
	if (path == NULL || path[0] != '/' || strcmp(path, "/") == 0)
		return -EINVAL;
	return rmtree_at(AT_FDCWD, path, 0);
}

void bench_cleanup(void)
{
	if (cleaning)
		return;
	cleaning = 1;
	if (getpid() != self_pid)
		return; /* a forked child must not clean up for us */
	bench_kill_all();
	for (int i = 0; i < MAX_SEGMENTS; i++)
		if (segments[i][0] != '\0') {
			shm_unlink(segments[i]);
			segments[i][0] = '\0';
		}
	if (g_opts.tmproot[0] == '/')
		bench_rmtree(g_opts.tmproot);
	g_opts.tmproot[0] = '\0';
	cleaning = 0;
}

static void on_signal(int sig)
{
	static const char msg[] = "[vigil-bench] interrupted: cleaning up\n";
	(void)!write(2, msg, sizeof msg - 1);
	bench_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void at_exit(void)
{
	bench_cleanup();
}

void bench_cleanup_init(void)
{
	self_pid = getpid();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(at_exit);
}

/* ---- processes ---------------------------------------------------------------- */

/* An fd >= 3 with O_CLOEXEC, so that dup2() onto 0/1/2 in the child is
 * never a no-op that leaves the close-on-exec flag set. */
__attribute__((noinline)) static int open_high(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd >= 0 && fd < 3) {
		int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		close(fd);
		fd = nfd;
	}
	return fd;
}

/*
 * posix_spawn() is not used because vigil's own src/spawn.h shadows the
 * system <spawn.h> on the include path of everything that links
 * vigil_core.  This is the same technique: vfork (the child borrows our
 * memory until it execs, so starting 5,000 workers stays cheap), every
 * signal blocked around it, the child only resets dispositions, joins the
 * process group, dup2()s and execs; an exec failure comes back through the
 * shared memory.
 */
pid_t bench_spawn(const struct bench_spawn *sp)
{
	int in = open_high(sp->stdin_path ? sp->stdin_path : "/dev/null", O_RDONLY);
	int out = open_high(sp->stdout_path ? sp->stdout_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND);
	int err = open_high(sp->stderr_path ? sp->stderr_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND);
	if (in < 0 || out < 0 || err < 0) {
		int e = -errno;
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
		if (err >= 0)
			close(err);
		return e;
	}
	char *const *envp = sp->envp ? (char *const *)sp->envp : environ;
	volatile int exec_errno = 0;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid_t pid = vfork();
	if (pid == 0) {
		static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD};
		for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
			signal(sigs[i], SIG_DFL);
		if (sp->pgroup >= 0)
			setpgid(0, sp->pgroup);
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
			exec_errno = errno;
			_exit(127);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(sp->argv[0], (char *const *)sp->argv, envp);
		exec_errno = errno;
		_exit(127);
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(in);
	close(out);
	close(err);
	if (pid < 0)
		return -fork_errno;
	if (exec_errno != 0) {
		int st;
		waitpid(pid, &st, 0);
		return -exec_errno;
	}
	bench_track_pid(pid);
	return pid;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int bench_wait(pid_t pid, int timeout_ms)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid) {
		bench_untrack_pid(pid);
		return st;
	}
	if (r < 0)
		return -errno;
	int fd = pidfd_open_(pid);
	uint64_t deadline = bench_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		uint64_t now = bench_mono_ns();
		if (now >= deadline) {
			if (fd >= 0)
				close(fd);
			return -ETIMEDOUT;
		}
		int left = (int)((deadline - now) / 1000000ull) + 1;
		if (fd >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			poll(&p, 1, left);
		} else {
			bench_sleep_ms(left < 5 ? left : 5);
		}
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			if (fd >= 0)
				close(fd);
			bench_untrack_pid(pid);
			return st;
		}
		if (r < 0) {
			int e = -errno;
			if (fd >= 0)
				close(fd);
			return e;
		}
	}
}

int bench_stop(pid_t pid, int grace_ms)
{
	if (pid <= 0)
		return -EINVAL;
	kill(pid, SIGTERM);
	int st = bench_wait(pid, grace_ms);
	if (st == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		st = bench_wait(pid, 5000);
	}
	return st;
}

uint64_t bench_run_timed(const struct bench_spawn *sp, int timeout_ms, int *status)
{
	uint64_t t0 = bench_mono_ns();
	pid_t pid = bench_spawn(sp);
	if (pid < 0) {
		if (status)
			*status = -1;
		return 0;
	}
	int st = bench_wait(pid, timeout_ms);
	uint64_t t1 = bench_mono_ns();
	if (st == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		bench_wait(pid, 5000);
	}
	if (status)
		*status = st;
	return st < 0 ? 0 : t1 - t0;
}

/* ---- files -------------------------------------------------------------------- */

int bench_mkdirs(const char *path)
{
	char buf[BENCH_PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0700) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int bench_write_file(const char *path, const char *text)
{
	char tmp[BENCH_PATH_MAX + 16];
	snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	int e = (w == (ssize_t)n) ? 0 : (w < 0 ? -errno : -EIO);
	if (close(fd) < 0 && e == 0)
		e = -errno;
	if (e == 0 && rename(tmp, path) < 0)
		e = -errno;
	if (e != 0)
		unlink(tmp);
	return e;
}

char *bench_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);
	while (buf != NULL) {
		if (n == cap) {
			char *nb = realloc(buf, cap * 2 + 1);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (buf != NULL) {
		buf[n] = '\0';
		if (len)
			*len = n;
	}
	return buf;
}

bool bench_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

long bench_count_dir(const char *dir, const char *prefix, const char *suffix)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	long n = 0;
	size_t pl = strlen(prefix), sl = strlen(suffix);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l >= pl + sl && strncmp(e->d_name, prefix, pl) == 0 && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int bench_jsonl_each(const char *path, void (*fn)(json_t *o, void *ctx), void *ctx)
{
	size_t len;
	char *text = bench_read_file(path, &len);
	if (text == NULL)
		return -errno;
	int n = 0;
	for (char *line = text; line < text + len;) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		size_t l = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
		json_t *o = json_loadb(line, l, 0, NULL);
		if (o != NULL && json_is_object(o)) {
			fn(o, ctx);
			n++;
		}
		json_decref(o);
		line += l + 1;
	}
	free(text);
	return n;
}

bool bench_which(const char *name, char *out)
{
	out[0] = '\0';
	const char *path = getenv("PATH");
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t l = colon ? (size_t)(colon - path) : strlen(path);
		char cand[BENCH_PATH_MAX];
		if (l > 0 && l + strlen(name) + 2 < sizeof cand) {
			memcpy(cand, path, l);
			cand[l] = '/';
			strcpy(cand + l + 1, name);
			if (access(cand, X_OK) == 0) {
				snprintf(out, BENCH_PATH_MAX, "%s", cand);
				return true;
			}
		}
		path += l;
		if (*path == ':')
			path++;
	}
	return false;
}

/* ---- /proc --------------------------------------------------------------------------- */

int bench_proc_read(pid_t pid, struct bench_proc *out)
{
	memset(out, 0, sizeof *out);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *s = bench_read_file(path, NULL);
	if (s == NULL)
		return -errno;
	char *p = strrchr(s, ')');
	if (p == NULL) {
		free(s);
		return -EINVAL;
	}
	/* fields after ") ": 3 state, 4 ppid, ... 14 utime, 15 stime */
	int field = 2;
	char *tok = p + 1, *save = NULL;
	for (char *t = strtok_r(tok, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 14)
			out->utime_ticks = strtoull(t, NULL, 10);
		else if (field == 15) {
			out->stime_ticks = strtoull(t, NULL, 10);
			break;
		}
	}
	free(s);
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	s = bench_read_file(path, NULL);
	if (s == NULL)
		return -errno;
	for (char *line = strtok_r(s, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long v;
		if (sscanf(line, "VmRSS: %llu", &v) == 1)
			out->vm_rss_kb = v;
		else if (sscanf(line, "RssAnon: %llu", &v) == 1)
			out->rss_anon_kb = v;
		else if (sscanf(line, "RssFile: %llu", &v) == 1)
			out->rss_file_kb = v;
		else if (sscanf(line, "RssShmem: %llu", &v) == 1)
			out->rss_shmem_kb = v;
		else if (sscanf(line, "VmHWM: %llu", &v) == 1)
			out->vm_hwm_kb = v;
		else if (sscanf(line, "Threads: %llu", &v) == 1)
			out->threads = (int)v;
	}
	free(s);
	return 0;
}

int bench_proc_thread_cpu(pid_t pid, double *main_s, double *others_s, int *nthreads)
{
	*main_s = *others_s = 0;
	*nthreads = 0;
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	if (d == NULL)
		return -errno;
	double hz = (double)sysconf(_SC_CLK_TCK);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!all_digits(e->d_name))
			continue;
		char path[384];
		if (snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name) >= (int)sizeof path)
			continue;
		char *t = bench_read_file(path, NULL);
		char *p = t ? strrchr(t, ')') : NULL;
		if (p == NULL) {
			free(t);
			continue;
		}
		unsigned long long ut = 0, st = 0;
		/* ") S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime" */
		if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
			double sec = (double)(ut + st) / hz;
			if (atoi(e->d_name) == (int)pid)
				*main_s += sec;
			else
				*others_s += sec;
			(*nthreads)++;
		}
		free(t);
	}
	closedir(d);
	return 0;
}

void bench_machine_cpu(uint64_t *busy, uint64_t *total)
{
	*busy = *total = 0;
	char *s = bench_read_file("/proc/stat", NULL);
	if (s == NULL)
		return;
	unsigned long long v[10] = {0};
	if (sscanf(s, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5], &v[6], &v[7], &v[8], &v[9]) >= 4) {
		/* user nice system idle iowait irq softirq steal (guest counted in user) */
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];
	}
	free(s);
}

void bench_machine_snap(struct bench_machine_snap *s)
{
	memset(s, 0, sizeof *s);
	char *t = bench_read_file("/proc/stat", NULL);
	if (t == NULL)
		return;
	unsigned long long v[8] = {0};
	if (sscanf(t, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		   &v[7]) >= 4) {
		for (int i = 0; i < 8; i++)
			s->total += v[i];
		s->busy = s->total - v[3] - v[4];
		s->steal = v[7];
	}
	free(t);
}

json_t *bench_machine_since(const struct bench_machine_snap *s0)
{
	struct bench_machine_snap s1;
	bench_machine_snap(&s1);
	double dt = (double)(s1.total - s0->total);
	json_t *o = json_object();
	json_object_set_new(o, "busy_pct_all_cpus", dt > 0 ? json_real(100.0 * (double)(s1.busy - s0->busy) / dt) : json_null());
	json_object_set_new(o, "steal_pct", dt > 0 ? json_real(100.0 * (double)(s1.steal - s0->steal) / dt) : json_null());
	json_object_set_new(o, "loadavg_1min_at_end", json_real(bench_loadavg1()));
	return o;
}

double bench_loadavg1(void)
{
	char *s = bench_read_file("/proc/loadavg", NULL);
	double l = NAN;
	if (s != NULL)
		l = strtod(s, NULL);
	free(s);
	return l;
}

/* ---- pinning ----------------------------------------------------------------------- */

static cpu_set_t start_mask;
static bool start_mask_saved;

int bench_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

int bench_pin_self(int cpu)
{
	if (!start_mask_saved) {
		CPU_ZERO(&start_mask);
		sched_getaffinity(0, sizeof start_mask, &start_mask);
		start_mask_saved = true;
	}
	cpu_set_t m;
	CPU_ZERO(&m);
	CPU_SET(cpu, &m);
	return sched_setaffinity(0, sizeof m, &m) < 0 ? -errno : 0;
}

void bench_unpin_self(void)
{
	if (start_mask_saved)
		sched_setaffinity(0, sizeof start_mask, &start_mask);
}

/* ---- statistics ----------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return NAN;
	bench_sort(v, n);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double bench_pct(double *v, size_t n, double p)
{
	if (n == 0)
		return NAN;
	bench_sort(v, n);
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

json_t *bench_stats_json(double *v, size_t n, bool with_p99)
{
	json_t *o = json_object();
	json_object_set_new(o, "n", json_integer((json_int_t)n));
	if (n == 0) {
		json_object_set_new(o, "median", json_null());
		return o;
	}
	double med = bench_median(v, n); /* sorted from here */
	json_object_set_new(o, "median", num(med));
	json_object_set_new(o, "min", num(v[0]));
	json_object_set_new(o, "max", num(v[n - 1]));
	if (with_p99) {
		json_object_set_new(o, "p50", num(bench_pct(v, n, 50)));
		json_object_set_new(o, "p99", num(bench_pct(v, n, 99)));
	}
	return o;
}

double bench_json_num(json_t *o, const char *key)
{
	json_t *v = o ? json_object_get(o, key) : NULL;
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- vigild homes ---------------------------------------------------------------------- */

int bench_home_create(struct bench_home *h, const char *tag, uint32_t slots)
{
	memset(h, 0, sizeof *h);
	if (snprintf(h->dir, sizeof h->dir, "%s/home-%s", g_opts.tmproot, tag) >= (int)sizeof h->dir)
		return -ENAMETOOLONG;
	snprintf(h->shm, sizeof h->shm, "/vigil-bench-%d-%s", (int)getpid(), tag);
	h->slots = slots;
	bench_track_segment(h->shm);
	shm_unlink(h->shm);
	char p[BENCH_PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/coordination/config", h->dir);
	return bench_mkdirs(p);
}

const char *bench_home_path(const struct bench_home *h, const char *rel, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", h->dir, rel);
	return buf;
}

int bench_home_policy(const struct bench_home *h, const char *file, const char *json_text)
{
	char p[BENCH_PATH_MAX + 128];
	snprintf(p, sizeof p, "%s/coordination/config/%s", h->dir, file);
	return bench_write_file(p, json_text);
}

json_t *bench_home_metrics(const struct bench_home *h)
{
	char p[BENCH_PATH_MAX + 128];
	bench_home_path(h, "coordination/metrics/heartbeat-monitor-metrics.json", p, sizeof p);
	return json_load_file(p, 0, NULL);
}

int bench_home_start(struct bench_home *h)
{
	char slots[32], out[BENCH_PATH_MAX + 32], metrics[BENCH_PATH_MAX + 128];
	snprintf(slots, sizeof slots, "%u", h->slots);
	snprintf(out, sizeof out, "%s/vigild.out", h->dir);
	bench_home_path(h, "coordination/metrics/heartbeat-monitor-metrics.json", metrics, sizeof metrics);
	unlink(metrics);
	const char *argv[] = {g_opts.vigild, "--home", h->dir, "--shm", h->shm, "--slots", slots, NULL};
	struct bench_spawn sp = {.argv = argv, .stdout_path = out, .stderr_path = out, .pgroup = 0};
	pid_t pid = bench_spawn(&sp);
	if (pid < 0) {
		bench_log("cannot start %s: %s", g_opts.vigild, strerror((int)-pid));
		return (int)pid;
	}
	h->vigild = pid;
	uint64_t deadline = bench_mono_ns() + 30000000000ull;
	while (bench_mono_ns() < deadline) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			bench_untrack_pid(pid);
			h->vigild = 0;
			char *txt = bench_read_file(out, NULL);
			bench_log("vigild exited at start (status %d): %s", st, txt ? txt : "");
			free(txt);
			return -ECHILD;
		}
		if (bench_exists(metrics)) {
			bench_vlog("vigild pid %d ready on %s (%s)", (int)pid, h->dir, h->shm);
			return 0;
		}
		bench_sleep_ms(10);
	}
	bench_log("vigild did not write its metrics within 30 s");
	return -ETIMEDOUT;
}

void bench_home_stop(struct bench_home *h)
{
	if (h->vigild > 0) {
		bench_stop(h->vigild, 20000);
		h->vigild = 0;
	}
}

void bench_home_destroy(struct bench_home *h)
{
	bench_home_stop(h);
	if (h->shm[0] != '\0') {
		shm_unlink(h->shm);
		bench_untrack_segment(h->shm);
	}
	if (h->dir[0] == '/')
		bench_rmtree(h->dir);
	memset(h, 0, sizeof *h);
}
