/*
 * test_hostile.c - vigil under attack and under faults, end to end: the real
 * vigild, real worker processes, hostile processes of the same user, a
 * coordination tree on a full file system, kill -9 at random moments, low
 * descriptor limits, event storms, and pre-planted segments (issue 7,
 * README "What vigild writes", "Trust: the segment is untrusted input", "Reliability", README "Trust").
 *
 *   scribbler_cannot_crash_or_misdirect_vigild
 *       random bytes over the whole segment (header included) for ~3 s
 *       while a fleet runs and an innocent bystander's pid is written into
 *       every slot; vigild keeps ticking, signals nobody it did not
 *       verify, stops with 0; then the documented recovery (re-create).
 *   forged_view_is_not_trusted
 *       the slot's view (vigild's verdict area, in the segment) forged with
 *       a last_seen past year 9999: specs keep README "What vigild writes"'s time format.
 *   forged_pid_is_never_signalled
 *       a worker registering another process's pid (through vigil.h, and by
 *       writing the slot by hand with a plausible registrar): unverified;
 *       a restart request and cleanup-zombies never signal that process.
 *   bad_ids_rejected_nothing_written_outside
 *       "../", "/", NUL, 65 chars, leading "." in queue files and on
 *       vigilctl's command line.
 *   planted_symlinks_are_not_followed
 *       a spec file, a queue file (to a FIFO holding a request), the events
 *       directory (at start and while running).
 *   full_tmpfs_monitoring_goes_on
 *       coordination/ on a 1 MiB tmpfs filled to 100 %.
 *   kill9_rounds_nothing_forgotten_or_doubled
 *       vigild killed at seeded random moments while spawned workers run,
 *       crash-loop and restart requests arrive (VIGIL_TEST_SEED=N replays).
 *   worker_dead_before_adoption_is_exited_and_restarted
 *       a spawned worker dies while vigild is down and is not yet reaped
 *       when the next vigild adopts it.
 *   killed_between_exec_and_publish
 *       the state a kill -9 leaves between a spawned worker's execve() and
 *       the publish of its slot: that worker is not forgotten nor doubled.
 *   low_nofile_degrades_to_timeouts
 *       RLIMIT_NOFILE 64:64 and 80 self-registered workers.
 *   event_storm_nothing_lost
 *       500 workers register, then all die at the same instant, against an
 *       event ring of 16 (VIGIL_DEBUG_EVENT_RING, a test hook): the ring
 *       overflows (ring_full_deferrals grows during the exits) and every
 *       worker still gets exactly one worker_registered, exactly one
 *       worker_exited after it, and no event twice.
 *   hostile_segments_refused
 *       a segment pre-created with a bad header, the wrong size, mode 0666,
 *       another owner, another ABI; our own one is 0600.
 *
 * Every check that can go on after it failed is a SOFT_CHECK: a product
 * bug does not hide the behaviour after it; the test fails at its end with
 * every message.  Lines starting "OBSERVED:" on stderr describe what
 * vigild did where the contract leaves room (for the README).
 *
 * VIGIL_TEST_FILTER=<glob> runs some tests only; VIGIL_TEST_VERBOSE=1 prints
 * more of vigild's logs.
 *
 * Policies: interval 0.05 s, timeout 0.2 s, zombie 0.5 s, snapshots every
 * 0.1 s (tests poll the metrics file); restart retry 0.2 s; auto-fix off
 * (its own suite), so that every signal vigild sends here comes from the
 * path under test.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "itest.h"
#include "vigil.h"

static struct itest_home H;
#include "itest_check.h"

/* Under ThreadSanitizer every event that crosses vigild's ck rings is a
 * (suppressed) report, and TSan's bookkeeping of thousands of them slows
 * vigild by orders of magnitude: the scribbler then floods more gently and
 * waits longer.  (The same binary is built with TSan as vigild is.) */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define HB "heartbeat-events.jsonl"
#define ZE "zombie-cleanup-events.jsonl"
#define HIST "coordination/metrics/worker-restart-history.jsonl"
#define HBM "coordination/metrics/heartbeat-monitor-metrics.json"
#define HB_LOG "agents/logs/system/heartbeat-monitor-daemon.log"
#define RLOG "agents/logs/system/worker-restart-daemon.log"
#define QUEUE "coordination/restart/queue"
#define REJECTED "coordination/restart/rejected"
#define ACTIVE "coordination/worker-specs/active"

#define P_INTERVAL 0.05
#define P_TIMEOUT 0.2
#define P_ZOMBIE 0.5
#define P_EXTRA "\"snapshot_interval_seconds\": 0.1"

/* ---- diagnostics ------------------------------------------------------------- */

/* Prints the lines of <home>/<rel> that contain needle (diagnostics). */
static void grep_file(const char *rel, const char *needle)
{
	char *s = itest_read_file(&H, rel);
	fprintf(stderr, "---- %s, lines with '%s':\n", rel, needle);
	for (char *line = s != NULL ? strtok(s, "\n") : NULL; line != NULL; line = strtok(NULL, "\n"))
		if (strstr(line, needle) != NULL)
			fprintf(stderr, "%s\n", line);
	free(s);
}

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 20);
	dump_tail("heartbeat-monitor-daemon.log", HB_LOG, 20);
	dump_tail("worker-restart-daemon.log", RLOG, 15);
	dump_tail("vigild.out", "vigild.out", 20);
}

#define OBSERVED(...)                                                                                      \
	do {                                                                                               \
		fprintf(stderr, "OBSERVED: ");                                                             \
		fprintf(stderr, __VA_ARGS__);                                                              \
		fputc('\n', stderr);                                                                       \
	} while (0)

/* ---- processes this file forks itself (not through the harness) ------------------ */

#define MAX_OWN 1024
static pid_t own[MAX_OWN];
static int n_own;

/* Forks a child that runs fn(arg) and _exit()s with its result: it must
 * never return into cmocka or run the harness's atexit cleanup. */
static pid_t fork_child(int (*fn)(void *), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		_exit(fn(arg));
	}
	if (n_own < MAX_OWN)
		own[n_own++] = pid;
	return pid;
}

static void forget_own(pid_t pid)
{
	for (int i = 0; i < n_own; i++)
		if (own[i] == pid)
			own[i] = 0;
}

/* Waits (bounded) for our forked child; its exit code, 128+signal, -1. */
static int reap_own(pid_t pid, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			forget_own(pid);
			return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
		}
		if (r < 0 || itest_mono_ms() >= deadline)
			return -1;
		itest_sleep_ms(2);
	}
}

static void kill_own_all(void)
{
	for (int i = 0; i < n_own; i++)
		if (own[i] > 0) {
			kill(own[i], SIGCONT);
			kill(own[i], SIGKILL);
		}
	for (int i = 0; i < n_own; i++)
		if (own[i] > 0) {
			waitpid(own[i], NULL, 0);
			own[i] = 0;
		}
	n_own = 0;
}

/* Orphans handed to us (we are the harness's subreaper): workers that a
 * killed vigild had started.  init would reap them at once; so do we,
 * choosing them precisely (our zombie children running the demo worker)
 * so that no process the harness still waits for is taken from it. */
static void reap_orphans(void)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	struct dirent *de;
	pid_t self = getpid();
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 1)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
		if (open_paren == NULL || close_paren == NULL || close_paren[1] != ' ')
			continue;
		char state = close_paren[2];
		long ppid = strtol(close_paren + 4, NULL, 10);
		bool demo_worker = strncmp(open_paren + 1, "vigil-demo-work", 15) == 0;
		if (state == 'Z' && ppid == self && demo_worker)
			waitpid((pid_t)pid, NULL, WNOHANG);
	}
	closedir(d);
}

/* A thread that reaps orphaned workers the moment they die, as init does
 * on a real host (a worker that crashed while vigild was down is then
 * gone, not a zombie process, when the next vigild looks at it). */
static pthread_t reaper;
static bool reaper_on;

static bool is_orphan_worker(pid_t pid)
{
	char buf[512];
	const char *o = itest_proc_stat(pid, buf, sizeof buf) != NULL ? strchr(buf, '(') : NULL;
	return o != NULL && strncmp(o + 1, "vigil-demo-work", 15) == 0;
}

static void *reaper_main(void *arg)
{
	(void)arg;
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		/* Blocks until a child has died; does not take it. */
		if (waitid(P_ALL, 0, &si, WEXITED | WNOWAIT) < 0) {
			if (errno == ECHILD)
				itest_sleep_ms(5);
			continue;
		}
		if (si.si_pid > 0 && is_orphan_worker(si.si_pid))
			waitpid(si.si_pid, NULL, WNOHANG);
		else
			itest_sleep_ms(1); /* someone else's child: theirs to reap */
	}
	return NULL;
}

static void reaper_start(void)
{
	if (!reaper_on && pthread_create(&reaper, NULL, reaper_main, NULL) == 0)
		reaper_on = true;
}

static void reaper_stop(void)
{
	if (reaper_on) {
		pthread_cancel(reaper);
		pthread_join(reaper, NULL);
		reaper_on = false;
	}
}

/* Sleeps ms, reaping orphaned workers as init would. */
static void sleep_reaping(int ms)
{
	int64_t until = itest_mono_ms() + ms;
	for (;;) {
		reap_orphans();
		int64_t left = until - itest_mono_ms();
		if (left <= 0)
			return;
		itest_sleep_ms(left < 10 ? (int)left : 10);
	}
}

/* ---- the innocent bystander ----------------------------------------------------------- */

/* A process that has nothing to do with vigil: a bash loop that records
 * every catchable signal it receives ("SIG <pid>") in mark; SIGKILL and
 * SIGSTOP show in /proc.  Its copies (vigild may run its command line as
 * a "restart" of a forged worker) record under their own pid. */
static char bystander_mark[ITEST_PATH_MAX];

static char bystander_script[1024];

static int exec_bystander(void *arg)
{
	(void)arg;
	setpgid(0, 0);
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
	}
	char *const argv[] = {(char *)"/bin/bash", (char *)"-c", bystander_script, NULL};
	char *const envp[] = {(char *)"PATH=/usr/bin:/bin", (char *)"LC_ALL=C", NULL};
	execve(argv[0], argv, envp);
	return 127;
}

/* Started by fork + exec with a clean environment (no VIGIL_SHM: nothing
 * links it to vigil, and the harness's segment cleanup does not see it). */
static pid_t bystander_start(void)
{
	itest_path(&H, "bystander.signals", bystander_mark);
	snprintf(bystander_script, sizeof bystander_script,
		 "for s in TERM INT HUP QUIT USR1 USR2 CONT ALRM PIPE; do trap \"echo $s \\$\\$ >> %s\" $s; done; "
		 "while :; do sleep 0.05; done",
		 bystander_mark);
	pid_t pid = fork_child(exec_bystander, NULL);
	itest_sleep_ms(100);
	CHECK(itest_alive(pid), "the bystander did not start");
	return pid;
}

static char proc_state(pid_t pid)
{
	char buf[512];
	if (itest_proc_stat(pid, buf, sizeof buf) == NULL)
		return 'X';
	const char *p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '?';
}

/* The bystander is alive, not stopped, and caught no signal. */
static void bystander_check(pid_t pid, const char *when)
{
	char st = proc_state(pid);
	SOFT_CHECK(itest_alive(pid) && st != 'T' && st != 't', "%s: the bystander (pid %d) is %s", when, (int)pid,
		   !itest_alive(pid) ? "dead" : "stopped");
	char *s = itest_read_file(&H, "bystander.signals");
	char needle[32];
	snprintf(needle, sizeof needle, " %d\n", (int)pid);
	SOFT_CHECK(s == NULL || strstr(s, needle) == NULL, "%s: the bystander (pid %d) received signals:\n%s", when,
		   (int)pid, s);
	free(s);
}

/* ---- fixtures --------------------------------------------------------------------- */

static char mounted[ITEST_PATH_MAX];
static void remove_outside_dir(void);
/* After kill -9, a temporary file of a write cut short may stay (vigild
 * does not sweep them at start); counted, not failed, in that test. */
static bool tmp_leftovers_allowed;
static int tmp_leftovers;
static int dir_entries(const char *dir);

static void unmount_tmpfs(void)
{
	if (mounted[0] != '\0') {
		if (umount2(mounted, MNT_DETACH) < 0)
			fprintf(stderr, "test_hostile: umount %s: %s\n", mounted, strerror(errno));
		mounted[0] = '\0';
	}
}

static void write_restart_policy(const char *text)
{
	itest_write_file(&H, "coordination/config/worker-restart-policy.json", text);
}

static int setup(void **state)
{
	(void)state;
	soft_msgs[0] = '\0';
	n_own = 0;
	tmp_leftovers_allowed = false;
	itest_home_create(&H);
	itest_write_policy(&H, P_INTERVAL, P_TIMEOUT, P_ZOMBIE, P_EXTRA);
	write_restart_policy("{\"max_retries\": 1, \"retry_interval_seconds\": 0.2, \"kill_grace_seconds\": 0.3}\n");
	itest_write_file(&H, "coordination/config/auto-fix-policy.json", "{\"enabled\": false}\n");
	return 0;
}

static void hostile_cleanup(void)
{
	unmount_tmpfs();
	remove_outside_dir();
}

static int teardown(void **state)
{
	(void)state;
	reaper_stop();
	kill_own_all();
	return itest_finish(&H, hostile_cleanup);
}

/* ---- helpers -------------------------------------------------------------------------- */

/* vigilctl --home H --shm S args...; out/err malloc'd (may be NULL). */
static int ctl(char **out, char **err, const char *const *args)
{
	return itest_vigilctl(&H, out, err, args);
}

/* Integer member of heartbeat-monitor-metrics.json, -1 when absent. */
static int64_t hb_metric(const char *key)
{
	json_t *m = itest_read_json(&H, HBM);
	json_t *v = m != NULL ? json_object_get(m, key) : NULL;
	int64_t r = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
	json_decref(m);
	return r;
}

/* Waits until the metrics say ticks > after; the new value or -1. */
static int64_t wait_ticks_after(int64_t after, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		int64_t t = hb_metric("ticks");
		if (t > after)
			return t;
		if (itest_mono_ms() >= deadline)
			return -1;
		itest_sleep_ms(10);
	}
}

static bool wait_text(const char *rel, const char *needle, int timeout_ms)
{
	return itest_wait_text(&H, rel, needle, timeout_ms);
}

static pid_t demo(const char *id, const char *type, int beat_ms)
{
	char b[16];
	snprintf(b, sizeof b, "%d", beat_ms);
	const char *args[] = {"--beat-ms", b, NULL};
	return itest_worker_start(&H, id, type, "task-hostile", args);
}

static json_t *registered(const char *id, int timeout_ms)
{
	return itest_wait_event(&H, HB, "worker_registered", id, timeout_ms);
}

/* README "What vigild writes": every time vigild writes is YYYY-MM-DDTHH:MM:SSZ.  Checks the
 * string members named "timestamp", "last_seen" or "*_at" of o, deeply;
 * counts offenders and keeps the first in bad_stamp. */
static char bad_stamp[256];
static int bad_stamps;

static bool iso_ok(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
	if (strlen(s) != sizeof pat - 1)
		return false;
	for (size_t i = 0; i < sizeof pat - 1; i++)
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return false;
	return true;
}

static void check_stamps(const json_t *o, const char *where)
{
	const char *key;
	json_t *v;
	size_t i;
	if (json_is_array(o)) {
		json_array_foreach((json_t *)o, i, v) check_stamps(v, where);
		return;
	}
	if (!json_is_object(o))
		return;
	json_object_foreach((json_t *)o, key, v)
	{
		size_t n = strlen(key);
		bool stamp = strcmp(key, "timestamp") == 0 || strcmp(key, "last_seen") == 0 ||
			     (n > 3 && strcmp(key + n - 3, "_at") == 0);
		if (stamp && json_is_string(v) && !iso_ok(json_string_value(v))) {
			if (bad_stamps++ == 0)
				snprintf(bad_stamp, sizeof bad_stamp, "%s: \"%s\": \"%.40s\"", where, key,
					 json_string_value(v));
		}
		check_stamps(v, where);
	}
}

/* Every .jsonl under coordination/ is one JSON object per complete line
 * (itest_read_jsonl fails the test otherwise) and ends with a newline. */
static int check_jsonl_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	size_t n = strlen(fpath);
	if (type != FTW_F || n < 6 || strcmp(fpath + n - 6, ".jsonl") != 0)
		return 0;
	const char *rel = fpath + strlen(H.dir) + 1;
	json_t *lines = itest_read_jsonl(&H, rel);
	if (strstr(rel, "worker-restart-history") == NULL) /* others append there too */
		check_stamps(lines, rel);
	json_decref(lines);
	char *s = itest_read_file(&H, rel);
	if (s != NULL && s[0] != '\0')
		SOFT_CHECK(s[strlen(s) - 1] == '\n', "%s ends in a partial line", rel);
	free(s);
	return 0;
}

/* Every .json under coordination/ parses; no temporary file is left. */
static int check_json_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	if (type != FTW_F)
		return 0;
	const char *base = fpath + ftw->base;
	const char *rel = fpath + strlen(H.dir) + 1;
	const char *tmp = base[0] == '.' ? strstr(base, ".tmp.") : NULL;
	/* ".<name>.tmp.<pid>.<seq>": a write still in flight by a running
	 * vigild is normal; one whose writer is gone was left behind. */
	if (tmp != NULL && !(atoi(tmp + 5) > 0 && kill(atoi(tmp + 5), 0) == 0)) {
		tmp_leftovers++;
		SOFT_CHECK(tmp_leftovers_allowed, "a temporary file was left behind: %s", rel);
	}
	size_t n = strlen(base);
	if (n < 5 || strcmp(base + n - 5, ".json") != 0 || base[0] == '.')
		return 0;
	if (strstr(rel, "/restart/queue/") != NULL || strstr(rel, "/restart/rejected/") != NULL ||
	    strstr(rel, "/spawn/queue/") != NULL || strstr(rel, "/control/queue/") != NULL)
		return 0; /* requests: written by the test, not by vigild */
	char *s = itest_read_file(&H, rel);
	if (s == NULL)
		return 0;
	json_error_t e;
	json_t *o = json_loads(s, 0, &e);
	SOFT_CHECK(o != NULL, "%s is not valid JSON (%s): %.200s", rel, e.text, s);
	check_stamps(o, rel);
	json_decref(o);
	free(s);
	return 0;
}

static void check_tree_files(void)
{
	char p[ITEST_PATH_MAX];
	bad_stamps = 0;
	nftw(itest_path(&H, "coordination", p), check_jsonl_one, 16, FTW_PHYS);
	nftw(itest_path(&H, "coordination", p), check_json_one, 16, FTW_PHYS);
	SOFT_CHECK(bad_stamps == 0, "%d times written in another form than YYYY-MM-DDTHH:MM:SSZ, first %s", bad_stamps,
		   bad_stamp);
}

/* Finds files whose name contains needle anywhere under dir (not following
 * links); reports the first into found. */
static char find_needle[64];
static char find_found[ITEST_PATH_MAX];
static const char *find_skip;
static int find_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	if (find_skip != NULL && strstr(fpath, find_skip) != NULL)
		return 0;
	if (strstr(fpath + ftw->base, find_needle) != NULL) {
		snprintf(find_found, sizeof find_found, "%s", fpath);
		return 1;
	}
	return 0;
}
static bool tree_has_name(const char *dir, const char *needle, const char *skip)
{
	snprintf(find_needle, sizeof find_needle, "%s", needle);
	find_found[0] = '\0';
	find_skip = skip;
	nftw(dir, find_one, 16, FTW_PHYS);
	return find_found[0] != '\0';
}

/* A request file in the runbook's format, written whole (rename). */
static void write_request(const char *dir, const char *name, const char *body)
{
	char rel[ITEST_PATH_MAX];
	snprintf(rel, sizeof rel, "%s/%s", dir, name);
	itest_write_file(&H, rel, body);
}

/* The file's mtime moved 10 s into the past: vigild judges a malformed
 * request at once instead of giving its writer 2 s. */
static void age_file(const char *rel)
{
	char p[ITEST_PATH_MAX];
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= 10;
	ts[1] = ts[0];
	utimensat(AT_FDCWD, itest_path(&H, rel, p), ts, AT_SYMLINK_NOFOLLOW);
}

/* ==== a. the scribbler ============================================================ */

struct scribble_args {
	char shm[64];
	pid_t victim;
	uint64_t victim_ticks;
	int ms;
	uint64_t seed;
};

static uint64_t xs_state;
static uint64_t xs(void)
{
	xs_state ^= xs_state << 13;
	xs_state ^= xs_state >> 7;
	xs_state ^= xs_state << 17;
	return xs_state;
}

/* A hostile process of the same user: maps the segment itself and writes
 * random bytes over all of it, header included; plants plausible
 * registrations and writes the victim's pid (and its true start time) into
 * every slot's identity. */
static int scribble(void *arg)
{
	const struct scribble_args *a = arg;
	int fd = shm_open(a->shm, O_RDWR, 0);
	if (fd < 0)
		return 10;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 11;
	size_t size = (size_t)st.st_size;
	uint8_t *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return 12;
	/* The layout from the real size, never from the header we trash. */
	uint32_t slots = (uint32_t)((size - VIGIL_HEADER_SIZE) / (VIGIL_HOT_SIZE + VIGIL_COLD_SIZE + VIGIL_VIEW_SIZE));
	struct vigil_slot_hot *hot = (struct vigil_slot_hot *)(base + VIGIL_HEADER_SIZE);
	struct vigil_slot_cold *cold = (struct vigil_slot_cold *)(base + VIGIL_HEADER_SIZE + (size_t)slots * VIGIL_HOT_SIZE);
	struct vigil_slot_view *view =
		(struct vigil_slot_view *)(base + VIGIL_HEADER_SIZE + (size_t)slots * (VIGIL_HOT_SIZE + VIGIL_COLD_SIZE));
	xs_state = a->seed | 1;
	int64_t deadline = itest_mono_ms() + a->ms;
	uint64_t n = 0;
	while (itest_mono_ms() < deadline) {
		for (int i = 0; i < 64; i++, n++) {
			unsigned r = (unsigned)(xs() % 1000);
			if (r < 850) {
				size_t off = (size_t)(xs() % (size / 8)) * 8;
				__atomic_store_n((uint64_t *)(base + off), xs(), __ATOMIC_RELAXED);
			} else if (r < 920) {
				size_t len = (size_t)(xs() % 256), off = (size_t)(xs() % size);
				for (size_t k = 0; k < len && off + k < size; k++)
					base[off + k] = (uint8_t)xs();
			} else if (r < 935) {
				/* vigild's own verdict area, forged to match the slot's
				 * generation (vigilctl and the spec snapshots read it). */
				uint32_t k = (uint32_t)(xs() % slots);
				uint64_t o = __atomic_load_n(&hot[k].owner, __ATOMIC_RELAXED);
				__atomic_store_n(&view[k].generation_low, (uint32_t)vigil_owner_gen(o), __ATOMIC_RELAXED);
				__atomic_store_n(&view[k].last_seen_unix_ms, xs(), __ATOMIC_RELAXED);
				__atomic_store_n(&view[k].beats, xs(), __ATOMIC_RELAXED);
				__atomic_store_n(&view[k].health_score, (uint16_t)xs(), __ATOMIC_RELAXED);
				__atomic_store_n(&view[k].progress, (uint8_t)xs(), __ATOMIC_RELAXED);
				__atomic_store_n(&view[k].missed, (uint32_t)xs(), __ATOMIC_RELAXED);
			} else if (r < 950) {
				uint32_t k = (uint32_t)(xs() % slots);
				snprintf(cold[k].worker_id, VIGIL_ID_MAX, "scribble-%u", k);
				snprintf(cold[k].worker_type, VIGIL_ID_MAX, "scribble");
				cold[k].task_id[0] = '\0';
				cold[k].pid = a->victim;
				cold[k].registrar_pid = (xs() & 1) ? a->victim : (int32_t)(xs() % 4194304);
				cold[k].pid_start_ticks = a->victim_ticks;
				cold[k].flags = (uint32_t)xs() & 1;
				uint64_t gen = xs() & 0xffffff;
				__atomic_store_n(&hot[k].beat, vigil_beat_make(gen, (uint32_t)xs(), 100, 50), __ATOMIC_RELAXED);
				__atomic_store_n(&hot[k].owner, vigil_owner_make(2 + (uint32_t)(xs() % 3), gen), __ATOMIC_RELEASE);
			} else {
				for (size_t k = 0; k < VIGIL_HEADER_SIZE; k += 8)
					__atomic_store_n((uint64_t *)(base + k), xs(), __ATOMIC_RELAXED);
			}
		}
		for (uint32_t k = 0; k < slots; k++) {
			cold[k].pid = a->victim;
			cold[k].pid_start_ticks = a->victim_ticks;
		}
		struct timespec ts = {0, UNDER_TSAN ? 5000000 : 200000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void scribbler_cannot_crash_or_misdirect_vigild(void **state)
{
	(void)state;
	const char *slots64[] = {"--slots", "64", NULL};
	itest_vigild_start_args(&H, slots64);
	pid_t fleet[4];
	char ids[4][32];
	for (int i = 0; i < 4; i++) {
		snprintf(ids[i], sizeof ids[i], "worker-fleet-%03d", i + 1);
		fleet[i] = demo(ids[i], "fleet", 10);
	}
	for (int i = 0; i < 4; i++) {
		json_t *ev = registered(ids[i], 5000);
		CHECK(ev != NULL, "%s was not registered", ids[i]);
		json_decref(ev);
	}
	pid_t victim = bystander_start();

	struct scribble_args a;
	memset(&a, 0, sizeof a);
	snprintf(a.shm, sizeof a.shm, "%s", H.shm);
	a.victim = victim;
	a.victim_ticks = vigil__pid_start_ticks(victim);
	a.ms = 3000;
	a.seed = getenv("VIGIL_TEST_SEED") != NULL ? strtoull(getenv("VIGIL_TEST_SEED"), NULL, 10)
						    : (uint64_t)itest_now_ms();
	fprintf(stderr, "scribbler: seed %llu (VIGIL_TEST_SEED=%llu replays it)\n", (unsigned long long)a.seed,
		(unsigned long long)a.seed);
	int64_t ticks = hb_metric("ticks"), ticks0 = ticks, t0 = itest_mono_ms();
	pid_t scr = fork_child(scribble, &a);

	/* While it scribbles: vigild alive and ticking; operators ask for
	 * zombie cleanups and restarts of the slots it forges. */
	int rounds = 0, ctl_crashes = 0;
	int64_t last_progress = itest_mono_ms(), worst_gap = 0;
	while (itest_alive(scr) && rounds < 100) {
		itest_sleep_ms(250);
		rounds++;
		SOFT_CHECK(itest_alive(H.vigild), "vigild died while the segment was scribbled");
		if (!itest_alive(H.vigild))
			break;
		int64_t t = hb_metric("ticks");
		if (t > ticks) {
			int64_t now = itest_mono_ms();
			if (now - last_progress > worst_gap)
				worst_gap = now - last_progress;
			last_progress = now;
			ticks = t;
		}
		if (rounds % 3 == 0) {
			const char *cz[] = {"cleanup-zombies", "--wait-seconds", "2", NULL};
			int rc = ctl(NULL, NULL, cz);
			ctl_crashes += rc >= 128;
			char id[32];
			snprintf(id, sizeof id, "scribble-%d", rounds % 64);
			const char *rs[] = {"restart", "--reason", "hostile", "--type", "scribble", id, NULL};
			rc = ctl(NULL, NULL, rs);
			ctl_crashes += rc >= 128;
		}
	}
	int src = reap_own(scr, 5000);
	CHECK(src == 0, "the scribbler exited with %d", src);
	SOFT_CHECK(ctl_crashes == 0, "vigilctl crashed %d times on the scribbled segment", ctl_crashes);
	/* The metrics file is the action thread's: it may lag under the flood
	 * of forged registrations, but not stop. */
	SOFT_CHECK(worst_gap < 5000, "vigild's metrics stood still for %lld ms while scribbled", (long long)worst_gap);
	/* The scanner itself kept its pace: ticks over the whole scribbling. */
	int64_t ticks1 = wait_ticks_after(ticks, UNDER_TSAN ? 20000 : 3000), t1 = itest_mono_ms();
	double want = (double)(t1 - t0) / itest_tick_ms(&H) * 0.5;
	SOFT_CHECK((double)(ticks1 - ticks0) >= want, "the scanner ticked %lld times in %lld ms (want >= %.0f)",
		   (long long)(ticks1 - ticks0), (long long)(t1 - t0), want);
	OBSERVED("scribbling: the metrics file was rewritten every %lld ms at worst (action thread under the flood); "
		 "the scanner ticked %lld times in %lld ms (tick %.1f ms)",
		 (long long)worst_gap, (long long)(ticks1 - ticks0), (long long)(t1 - t0), itest_tick_ms(&H));

	/* Afterwards: still ticking, nobody it did not verify signalled. */
	CHECK(itest_alive(H.vigild), "vigild died after the scribbling");
	SOFT_CHECK(wait_ticks_after(hb_metric("ticks"), UNDER_TSAN ? 20000 : 2000) > 0,
		   "vigild stopped ticking after the scribbling");
	itest_sleep_ms(600); /* cleanups and restarts requested above finish */
	bystander_check(victim, "after scribbling");
	SOFT_CHECK(itest_sanitizer_reports(&H) == 0, "sanitizer report in vigild's output");
	check_tree_files();
	int64_t rejected = hb_metric("workers_rejected"), vanished = (int64_t)itest_count_events(&H, HB, "worker_vanished", NULL);
	OBSERVED("scribbling: %lld registrations rejected, %lld worker_vanished, %zu worker_registered, %lld unverified",
		 (long long)rejected, (long long)vanished, itest_count_events(&H, HB, "worker_registered", NULL),
		 (long long)hb_metric("workers_unverified"));
	/* Nothing named after a forged or garbage id outside coordination/. */
	SOFT_CHECK(!tree_has_name(H.dir, "scribble", "/coordination/") ||
			   strstr(find_found, "/agents/logs/workers/") != NULL,
		   "a file named after a forged id outside coordination/ and the logs: %s", find_found);

	/* What is left of the header (read as a file: this process must not
	 * map the segment, or it would count as a worker). */
	char shm_path[128];
	snprintf(shm_path, sizeof shm_path, "/dev/shm%s", H.shm);
	struct vigil_shm_header hdr;
	struct stat st;
	int fd = open(shm_path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr, "read %s",
	      shm_path);
	close(fd);
	int hrc = vigil_header_check(&hdr, (uint64_t)st.st_size);
	OBSERVED("scribbling: the header afterwards is %s (vigil_header_check %d); vigild keeps its own copy of the "
		 "layout and does not repair it",
		 hrc == 0 ? "intact" : "destroyed", hrc);
	/* A worker arriving now. */
	pid_t late = demo("worker-late-001", "late", 10);
	int late_rc = itest_reap(late, 1000);
	if (late_rc == -1) {
		json_t *ev = registered("worker-late-001", 2000);
		OBSERVED("scribbling: a new worker on the scribbled segment %s", ev != NULL ? "registered" : "attached but was not registered");
		json_decref(ev);
	} else {
		char *err = itest_read_file(&H, "worker-worker-late-001.err");
		OBSERVED("scribbling: a new worker on the scribbled segment exits %d: %s", late_rc, err != NULL ? err : "");
		free(err);
		if (hrc != 0)
			SOFT_CHECK(late_rc == 1, "a worker refused by a bad header should exit 1, got %d", late_rc);
	}
	char *out = NULL, *err = NULL;
	const char *status[] = {"status", NULL};
	int st_rc = ctl(&out, &err, status);
	SOFT_CHECK(st_rc < 128, "vigilctl status crashed (%d) on the scribbled segment", st_rc);
	OBSERVED("scribbling: vigilctl status exits %d: %s", st_rc, err != NULL ? err : "");
	free(out);
	free(err);

	/* The documented way out (vigild's refusal says "remove it (rm
	 * /dev/shm/...) if no worker uses it"): stop vigild (exit 0), end
	 * the workers of the broken segment, remove it, start again. */
	int rc = itest_vigild_stop(&H, UNDER_TSAN ? 60000 : 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM after the scribbling (want 0)", rc);
	/* The flood's events were checked above; the next vigild starts a
	 * fresh file (and this test's polls stay cheap). */
	char ev_old[ITEST_PATH_MAX], ev_new[ITEST_PATH_MAX];
	rename(itest_path(&H, "coordination/events/" HB, ev_old),
	       itest_path(&H, "coordination/events/heartbeat-events.scribbled.jsonl", ev_new));
	for (int i = 0; i < 4; i++)
		itest_kill(fleet[i]);
	itest_kill_segment_users(H.shm);
	shm_unlink(H.shm);
	itest_vigild_start_args(&H, slots64);
	pid_t fresh = demo("worker-late-002", "late", 10);
	json_t *ev = registered("worker-late-002", 5000);
	CHECK(ev != NULL, "a worker registering after the segment was re-created was not registered");
	json_decref(ev);
	itest_sleep_ms(50);
	itest_signal(fresh, SIGSTOP);
	ev = itest_wait_event(&H, HB, "heartbeat_missed", "worker-late-002", 2000);
	SOFT_CHECK(ev != NULL, "no heartbeat_missed for a SIGSTOPped worker after the re-creation");
	json_decref(ev);
	itest_signal(fresh, SIGCONT);
	bystander_check(victim, "at the end");
	soft_done();
}

/* The slot's view (vigild's verdict area, "written by vigild only") is in
 * the segment too, so a worker can forge it; vigild's snapshots read it
 * back.  A last_seen past year 9999 there must not reach a spec file in
 * another form than README "What vigild writes"'s (nor make vigild read past its buffer). */
struct view_forgery {
	char shm[64];
	uint32_t slot;
};

static int forge_view(void *arg)
{
	const struct view_forgery *a = arg;
	struct vigil v;
	memset(&v, 0, sizeof v);
	if (vigil__map(&v, a->shm, 1) < 0)
		return 50;
	struct vigil_shm_header *h = v.hdr;
	if (a->slot >= h->slot_count)
		return 51;
	struct vigil_slot_view *view = (struct vigil_slot_view *)((char *)h + h->view_offset) + a->slot;
	uint64_t o = atomic_load(&vigil__hot(h, a->slot)->owner);
	for (int i = 0; i < 250; i++) { /* the scanner rewrites it on every beat */
		atomic_store(&view->generation_low, (uint32_t)vigil_owner_gen(o));
		atomic_store(&view->last_seen_unix_ms, 1ull << 62);
		itest_sleep_ms(4);
	}
	return 0;
}

static void forged_view_is_not_trusted(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t w = demo("worker-viewed-001", "viewed", 200); /* beats rarely: the forgery stays */
	json_t *ev = registered("worker-viewed-001", 5000);
	CHECK(ev != NULL, "the worker was not registered");
	struct view_forgery a = {.slot = (uint32_t)itest_int(ev, "slot")};
	json_decref(ev);
	snprintf(a.shm, sizeof a.shm, "%s", H.shm);
	pid_t f = fork_child(forge_view, &a);
	/* The spec is rewritten from the view at each snapshot (0.1 s) while
	 * the forgery lasts: look at every version. */
	int64_t until = itest_mono_ms() + 900;
	char *bad = NULL;
	while (itest_mono_ms() < until && bad == NULL && itest_alive(H.vigild)) {
		json_t *spec = itest_read_json(&H, ACTIVE "/worker-viewed-001.json");
		const char *ls = json_string_value(json_object_get(json_object_get(spec, "heartbeat"), "last_seen"));
		if (ls != NULL && !iso_ok(ls))
			bad = strdup(ls);
		json_decref(spec);
		itest_sleep_ms(10);
	}
	CHECK(reap_own(f, 5000) == 0, "the forger failed");
	SOFT_CHECK(itest_alive(H.vigild), "vigild died on a forged view (see its sanitizer report)");
	SOFT_CHECK(bad == NULL, "a forged view in the segment reached the spec: \"last_seen\": \"%s\" (vigil_iso8601 "
				"gives strftime 21 bytes; past year 9999 the buffer is left unterminated)",
		   bad != NULL ? bad : "");
	free(bad);
	check_tree_files();
	(void)w;
	soft_done();
}

/* ==== b. a forged pid ================================================================ */

struct forger_args {
	char shm[64];
	char id[32];
	pid_t victim;
	int beats;
	/* raw: write the slot by hand with this registrar and the victim's
	 * true start time, instead of calling vigil_register */
	bool raw;
	pid_t registrar;
};

/* Registers a worker whose pid is the victim's, beats a little, then goes
 * silent (but stays alive, so the slot stays ACTIVE and becomes a zombie). */
static int forge(void *arg)
{
	const struct forger_args *a = arg;
	struct vigil v;
	memset(&v, 0, sizeof v);
	int rc = vigil__map(&v, a->shm, 1);
	if (rc < 0)
		return 20;
	if (!a->raw) {
		rc = vigil_register(&v, a->id, "forger", "task-forged", a->victim);
		if (rc < 0)
			return 21;
	} else {
		struct vigil_shm_header *h = v.hdr;
		uint32_t n = h->slot_count, slot = n;
		uint64_t gen = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct vigil_slot_hot *hot = vigil__hot(h, i);
			uint64_t o = atomic_load(&hot->owner);
			if (vigil_owner_state(o) != VIGIL_SLOT_FREE)
				continue;
			gen = vigil_owner_gen(o) + 1;
			if (atomic_compare_exchange_strong(&hot->owner, &o, vigil_owner_make(VIGIL_SLOT_CLAIMED, gen))) {
				slot = i;
				break;
			}
		}
		if (slot == n)
			return 22;
		struct vigil_slot_cold *c = vigil__cold(h, slot);
		memset(c, 0, sizeof *c);
		snprintf(c->worker_id, sizeof c->worker_id, "%s", a->id);
		snprintf(c->worker_type, sizeof c->worker_type, "forger");
		c->pid = a->victim;
		c->registrar_pid = a->registrar; /* a real worker that maps the segment */
		c->pid_start_ticks = vigil__pid_start_ticks(a->victim);
		struct vigil_slot_hot *hot = vigil__hot(h, slot);
		atomic_store(&hot->beat, vigil_beat_make(gen, 0, 100, 0));
		atomic_store(&hot->owner, vigil_owner_make(VIGIL_SLOT_ACTIVE, gen));
		v.hot = hot;
		v.gen = gen;
		v.slot = slot;
	}
	for (int i = 0; i < a->beats; i++) {
		vigil_beat(&v, 100, (unsigned)i);
		itest_sleep_ms(10);
	}
	for (;;)
		pause();
	return 0;
}

static void forged_pid_is_never_signalled(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t victim = bystander_start();
	pid_t honest = demo("worker-honest-001", "honest", 10);
	json_t *ev = registered("worker-honest-001", 5000);
	CHECK(ev != NULL, "the honest worker was not registered");
	CHECK(json_is_true(json_object_get(ev, "verified")), "the honest worker (it maps the segment) was not verified");
	json_decref(ev);

	/* Through vigil.h, and by hand with a registrar that really maps the
	 * segment (but does not descend from the victim). */
	struct forger_args f1 = {.victim = victim, .beats = 20};
	snprintf(f1.shm, sizeof f1.shm, "%s", H.shm);
	snprintf(f1.id, sizeof f1.id, "worker-forged-001");
	struct forger_args f2 = f1;
	snprintf(f2.id, sizeof f2.id, "worker-forged-002");
	f2.raw = true;
	f2.registrar = honest;
	pid_t p1 = fork_child(forge, &f1), p2 = fork_child(forge, &f2);
	(void)p1;
	(void)p2;
	const char *forged[2] = {f1.id, f2.id};
	for (int i = 0; i < 2; i++) {
		ev = registered(forged[i], 5000);
		CHECK(ev != NULL, "%s was not registered (nor rejected)", forged[i]);
		SOFT_CHECK(itest_int(ev, "pid") == victim, "%s registered with pid %lld, not the forged %d", forged[i],
			   (long long)itest_int(ev, "pid"), (int)victim);
		SOFT_CHECK(json_is_false(json_object_get(ev, "verified")), "%s (forged pid %d) was verified", forged[i],
			   (int)victim);
		json_decref(ev);
		char rel[128];
		snprintf(rel, sizeof rel, ACTIVE "/%s.json", forged[i]);
		CHECK(itest_wait_file(&H, rel, true, 2000), "no spec for %s", forged[i]);
		json_t *spec = itest_read_json(&H, rel);
		SOFT_CHECK(spec != NULL && json_is_false(json_object_get(spec, "verified")), "%s: spec says verified", rel);
		json_decref(spec);
	}
	char needle[160];
	snprintf(needle, sizeof needle, "worker %s (pid %d) not verified", f1.id, (int)victim);
	SOFT_CHECK(wait_text(HB_LOG, needle, 2000), "no log line '%s'", needle);
	int64_t unv = -1;
	for (int64_t until = itest_mono_ms() + 1000; itest_mono_ms() < until && (unv = hb_metric("workers_unverified")) < 2;)
		itest_sleep_ms(20);
	SOFT_CHECK(unv >= 2, "workers_unverified is %lld with two forged workers", (long long)unv);
	OBSERVED("forged pid: unverified workers are logged as '... not verified: <reason>' and counted in "
		 "workers_unverified (%lld)",
		 (long long)unv);

	/* A restart request while the forged worker is alive: vigild may not
	 * end it (it cannot signal an unverified pid). */
	const char *rs[] = {"restart", "--reason", "forged", f1.id, NULL};
	char *out = NULL, *err = NULL;
	int rc = ctl(&out, &err, rs);
	CHECK(rc == 0, "vigilctl restart exited %d: %s", rc, err);
	free(out);
	free(err);
	/* Its outcome: one history line (whatever the result). */
	int64_t deadline = itest_mono_ms() + 8000;
	size_t lines = 0;
	while (itest_mono_ms() < deadline) {
		json_t *h = itest_read_jsonl(&H, HIST);
		lines = 0;
		size_t i;
		json_t *o;
		json_array_foreach(h, i, o) lines += json_string_value(json_object_get(o, "worker_id")) != NULL &&
							  strcmp(json_string_value(json_object_get(o, "worker_id")), f1.id) == 0;
		json_decref(h);
		if (lines > 0 && !itest_exists(&H, QUEUE "/worker-forged-001-restart.json"))
			break;
		itest_sleep_ms(20);
	}
	OBSERVED("forged pid: restart of an unverified worker: %zu history line(s); restart log:", lines);
	dump_tail("worker-restart-daemon.log", RLOG, 8);
	bystander_check(victim, "after the restart request");

	/* Silent since: both become zombies; cleanup may not signal the victim. */
	for (int i = 0; i < 2; i++) {
		ev = itest_wait_event(&H, ZE, "zombie_detected", forged[i], 5000);
		SOFT_CHECK(ev != NULL, "%s never became a zombie", forged[i]);
		json_decref(ev);
	}
	const char *cz[] = {"cleanup-zombies", "--json", NULL};
	rc = ctl(&out, &err, cz);
	SOFT_CHECK(rc == 0, "vigilctl cleanup-zombies exited %d: %s", rc, err);
	OBSERVED("forged pid: cleanup-zombies answered: %s", out != NULL ? out : "");
	free(out);
	free(err);
	itest_sleep_ms(800); /* past kill_grace_seconds (0.3): a SIGKILL would have come */
	bystander_check(victim, "after cleanup-zombies");
	SOFT_CHECK(itest_alive(honest), "the honest worker died");
	soft_done();
}

/* ==== c. file-system attacks ======================================================= */

/* Ids that must never become file names (README "What vigild writes").  "pwn" marks them so
 * that any file named after one is found afterwards. */
static const char *const BAD_IDS[] = {
	"../pwn-dotdot",
	"../../../../../../tmp/pwn-escape",
	"pwn/slash",
	"pwn-nul\\u0000tail", /* JSON escape: jansson refuses it */
	"pwn-long-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", /* 65 */
	".pwn-hidden",
	"pwn space",
	"",
};
#define N_BAD (sizeof BAD_IDS / sizeof BAD_IDS[0])

static void bad_ids_rejected_nothing_written_outside(void **state)
{
	(void)state;
	_Static_assert(sizeof "pwn-long-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" == 66, "65 chars");
	itest_vigild_start(&H);
	/* Restart and spawn requests naming each bad id (worker_id, and for
	 * the spawn queue worker_type too). */
	for (size_t i = 0; i < N_BAD; i++) {
		char name[64], body[512];
		snprintf(name, sizeof name, "attack-%zu.json", i);
		snprintf(body, sizeof body,
			 "{\"worker_id\": \"%s\", \"worker_type\": \"test-worker\", \"task_id\": \"t\", \"reason\": \"x\", "
			 "\"created_at\": \"2026-11-27T10:00:00Z\"}\n",
			 BAD_IDS[i]);
		write_request(QUEUE, name, body);
		char rel[128];
		snprintf(rel, sizeof rel, QUEUE "/%s", name);
		age_file(rel);
		snprintf(name, sizeof name, "attack-type-%zu.json", i);
		snprintf(body, sizeof body,
			 "{\"worker_id\": \"worker-ok-%zu\", \"worker_type\": \"%s\", \"reason\": \"x\"}\n", i, BAD_IDS[i]);
		write_request(QUEUE, name, body);
		snprintf(rel, sizeof rel, QUEUE "/%s", name);
		age_file(rel);
		snprintf(name, sizeof name, "spawn-attack-%zu.json", i);
		snprintf(body, sizeof body,
			 "{\"worker_id\": \"%s\", \"worker_type\": \"t\", \"command\": [\"/bin/true\"], \"cwd\": \"/\"}\n",
			 BAD_IDS[i]);
		write_request("coordination/spawn/queue", name, body);
		snprintf(rel, sizeof rel, "coordination/spawn/queue/%s", name);
		age_file(rel);
	}
	/* A raw NUL byte inside the id (written by hand: not a C string). */
	{
		static const char raw[] = "{\"worker_id\": \"pwn-raw\0nul\", \"worker_type\": \"t\"}\n";
		char p[ITEST_PATH_MAX];
		int fd = open(itest_path(&H, QUEUE "/attack-rawnul.json", p), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		CHECK(fd >= 0 && write(fd, raw, sizeof raw - 1) == (ssize_t)(sizeof raw - 1), "write raw NUL request");
		close(fd);
		age_file(QUEUE "/attack-rawnul.json");
	}
	/* vigild takes queue files at once (inotify); give it a moment, then
	 * every one must be rejected with a reason naming the key. */
	for (size_t i = 0; i < N_BAD; i++) {
		char rel[128];
		snprintf(rel, sizeof rel, REJECTED "/attack-%zu.json.reason", i);
		SOFT_CHECK(itest_wait_file(&H, rel, true, 3000), "request with worker_id '%s' not rejected", BAD_IDS[i]);
		char *why = itest_read_file(&H, rel);
		SOFT_CHECK(why != NULL && (strstr(why, "worker_id") != NULL || strstr(why, "u0000") != NULL),
			   "reason for '%s' names neither worker_id nor the NUL: %s", BAD_IDS[i], why != NULL ? why : "(none)");
		free(why);
		snprintf(rel, sizeof rel, REJECTED "/attack-type-%zu.json.reason", i);
		SOFT_CHECK(itest_wait_file(&H, rel, true, 3000), "request with worker_type '%s' not rejected", BAD_IDS[i]);
		snprintf(rel, sizeof rel, REJECTED "/spawn-attack-%zu.json.reason", i);
		SOFT_CHECK(itest_wait_file(&H, rel, true, 3000), "spawn request with worker_id '%s' not rejected",
			   BAD_IDS[i]);
	}
	SOFT_CHECK(itest_wait_file(&H, REJECTED "/attack-rawnul.json.reason", true, 3000),
		   "a request with a raw NUL byte was not rejected");
	char *nulwhy = itest_read_file(&H, REJECTED "/attack-rawnul.json.reason");
	SOFT_CHECK(nulwhy != NULL && strstr(nulwhy, "NUL") != NULL, "the reason does not name the NUL byte: %s",
		   nulwhy != NULL ? nulwhy : "(none)");
	OBSERVED("bad ids: a request with a raw NUL byte: %s", nulwhy != NULL ? nulwhy : "(none)");
	free(nulwhy);
	char *first = itest_read_file(&H, REJECTED "/attack-0.json.reason");
	OBSERVED("bad ids: a request naming '../pwn-dotdot' is moved to restart/rejected/ with: %s",
		 first != NULL ? first : "(none)");
	free(first);

	/* On vigilctl's command line (argv cannot carry a NUL byte). */
	static const char *const CLI_BAD[] = {"../pwn-dotdot", "pwn/slash", ".pwn-hidden", "pwn space",
					      "pwn-long-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", ""};
	for (size_t i = 0; i < sizeof CLI_BAD / sizeof CLI_BAD[0]; i++) {
		const char *cmds[][8] = {
			{"emit", CLI_BAD[i], "100", "50", NULL},
			{"emit", "--type", CLI_BAD[i], "worker-ok-emit", "100", "50", NULL},
			{"emit", "--task-id", CLI_BAD[i], "worker-ok-emit", "100", "50", NULL},
			{"restart", CLI_BAD[i], NULL},
			{"cleanup-zombies", CLI_BAD[i], NULL},
			{"spawn", "--type", CLI_BAD[i], "--task-id", "t", "--", "/bin/true", NULL},
			{"spawn", "--type", "t", "--task-id", "t", "--id", CLI_BAD[i], NULL},
		};
		for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
			/* An empty --type / --task-id means "the default" (documented:
			 * type 'shell', no task), not a bad id. */
			if (CLI_BAD[i][0] == '\0' && (k == 1 || k == 2))
				continue;
			char *out = NULL, *err = NULL;
			int rc = ctl(&out, &err, cmds[k]);
			SOFT_CHECK(rc == 2 && err != NULL && strstr(err, "invalid") != NULL,
				   "vigilctl %s %s '%s': exit %d, stderr '%s' (want 2 and a clear error)", cmds[k][0],
				   cmds[k][1], CLI_BAD[i], rc, err != NULL ? err : "");
			if (i == 0 && k == 0)
				OBSERVED("bad ids: vigilctl emit '../pwn-dotdot' exits %d: %s", rc, err != NULL ? err : "");
			free(out);
			free(err);
		}
	}
	/* Nothing named after a bad id anywhere in the home but the rejected
	 * requests, nor in /tmp (where "../../../tmp" would lead). */
	itest_sleep_ms(300);
	SOFT_CHECK(!tree_has_name(H.dir, "pwn", NULL), "a file named after a bad id: %s", find_found);
	DIR *tmp = opendir("/tmp");
	struct dirent *de;
	while (tmp != NULL && (de = readdir(tmp)) != NULL)
		SOFT_CHECK(strncmp(de->d_name, "pwn", 3) != 0, "a file escaped to /tmp/%s", de->d_name);
	if (tmp != NULL)
		closedir(tmp);
	SOFT_CHECK(itest_count_events(&H, HB, "worker_spawn_failed", NULL) == 0 ||
			   itest_find_event(&H, HB, "worker_spawn_failed", "../pwn-dotdot") == NULL,
		   "a spawn failure recorded under a bad id");
	SOFT_CHECK(itest_alive(H.vigild), "vigild died");
	check_tree_files();
	soft_done();
}

/* ---- planted symbolic links ---- */

static char outside[ITEST_PATH_MAX];

static void make_outside_dir(void)
{
	snprintf(outside, sizeof outside, "%s", "/tmp/vigil-hostile-outside-XXXXXX");
	CHECK(mkdtemp(outside) != NULL, "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_outside_dir(void)
{
	if (outside[0] != '\0')
		nftw(outside, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	outside[0] = '\0';
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* A writer killed between create and rename leaves ".<name>.tmp.<pid>.<n>"
 * behind.  vigild removes those whose writer is gone when it starts, keeps
 * a live writer's, removes a link so named as a link (its target is never
 * touched) and leaves every other file alone. */
static void leftover_temp_files_swept_at_start(void **state)
{
	(void)state;
	make_outside_dir();
	char target[ITEST_PATH_MAX + 32], link_rel[160], live_rel[160], path[ITEST_PATH_MAX + 200];
	snprintf(target, sizeof target, "%s/keep.json", outside);
	FILE *f = fopen(target, "w");
	CHECK(f != NULL, "cannot write %s", target);
	fputs("{\"keep\": true}\n", f);
	fclose(f);
	/* pid_max is at most 2^22: these writers cannot be alive. */
	const char *dead[] = {ACTIVE "/.worker-gone-001.json.tmp.2147483647.3",
			      "coordination/metrics/.heartbeat-monitor-metrics.json.tmp.2147483646.12",
			      "coordination/restart/queue/.req.json.tmp.2147483645.1"};
	for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++)
		itest_write_file(&H, dead[i], "{\"partial\": ");
	snprintf(live_rel, sizeof live_rel, ACTIVE "/.worker-live-001.json.tmp.%d.1", (int)getpid());
	itest_write_file(&H, live_rel, "{\"in flight\": ");
	itest_write_file(&H, ACTIVE "/.notes.tmp", "not vigil's\n");
	itest_write_file(&H, ACTIVE "/.x.tmp.2147483640.34.json", "not vigil's either\n");
	snprintf(link_rel, sizeof link_rel, ACTIVE "/.worker-link-001.json.tmp.2147483644.9");
	CHECK(symlink(target, itest_path(&H, link_rel, path)) == 0, "symlink: %s", strerror(errno));

	itest_vigild_start(&H);
	CHECK(itest_wait_text(&H, HB_LOG, "removed 4 temporary file(s) left by a writer killed", 5000),
	      "vigild did not report removing the 4 leftovers (3 files and a link)");
	struct stat st;
	for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++)
		CHECK(lstat(itest_path(&H, dead[i], path), &st) < 0, "%s is still there", dead[i]);
	CHECK(lstat(itest_path(&H, link_rel, path), &st) < 0, "the link %s is still there", link_rel);
	char *kept = NULL;
	size_t klen = 0;
	f = fopen(target, "r");
	CHECK(f != NULL && getline(&kept, &klen, f) > 0 && strcmp(kept, "{\"keep\": true}\n") == 0,
	      "the link's target outside the tree was changed or removed");
	free(kept);
	fclose(f);
	CHECK(itest_exists(&H, live_rel), "a live writer's temp file %s was removed", live_rel);
	CHECK(itest_exists(&H, ACTIVE "/.notes.tmp") && itest_exists(&H, ACTIVE "/.x.tmp.2147483640.34.json"),
	      "a file that is not a vigil temp file was removed");
	/* Not leftovers of a dead writer to vigild; they are to the tree check. */
	remove(itest_path(&H, live_rel, path));
	remove(itest_path(&H, ACTIVE "/.x.tmp.2147483640.34.json", path));
	check_tree_files();
	soft_done();
}

static void planted_symlinks_are_not_followed(void **state)
{
	(void)state;
	make_outside_dir();
	char target[ITEST_PATH_MAX + 32], fifo[ITEST_PATH_MAX + 32], p[ITEST_PATH_MAX], q[ITEST_PATH_MAX];
	snprintf(target, sizeof target, "%s/precious.json", outside);
	snprintf(fifo, sizeof fifo, "%s/queue.fifo", outside);
	const char precious[] = "{\"precious\": true}\n";
	FILE *f = fopen(target, "w");
	CHECK(f != NULL && fputs(precious, f) >= 0 && fclose(f) == 0, "write %s", target);
	struct stat before;
	CHECK(stat(target, &before) == 0, "stat %s", target);

	/* 1. coordination/events as a symlink to an outside directory, before
	 * vigild starts. */
	CHECK(mkdir(itest_path(&H, "coordination", p), 0755) == 0 || errno == EEXIST, "mkdir coordination");
	CHECK(symlink(outside, itest_path(&H, "coordination/events", p)) == 0, "symlink: %s", strerror(errno));
	char *err = NULL;
	int rc = itest_vigild_run(&H, NULL, &err, 10000);
	OBSERVED("symlinks: coordination/events -> outside directory at start: vigild exits %d: %s", rc,
		 err != NULL ? err : "");
	SOFT_CHECK(rc == 1 || rc == 2, "vigild with coordination/events a symlink exited %d, want a refusal", rc);
	SOFT_CHECK(err != NULL && strstr(err, "coordination/events") != NULL, "the refusal does not name the path: %s",
		   err != NULL ? err : "");
	free(err);
	SOFT_CHECK(dir_entries(outside) == 1, "vigild wrote into the outside directory (%d entries)", dir_entries(outside));
	unlink(itest_path(&H, "coordination/events", p));

	/* 2. Running: a spec file and a queue file planted as links. */
	itest_vigild_start(&H);
	const char *id = "worker-linked-001";
	snprintf(q, sizeof q, "%s/%s.json", itest_path(&H, ACTIVE, p), id);
	CHECK(symlink(target, q) == 0, "symlink %s: %s", q, strerror(errno));
	/* The queue link points at a FIFO that holds a valid request: a
	 * follower would take it (and an open without O_NONBLOCK would hang
	 * on an empty one).  We keep the FIFO open read-write, so its
	 * content survives until we read it back. */
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo: %s", strerror(errno));
	int ffd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	CHECK(ffd >= 0, "open fifo: %s", strerror(errno));
	const char req[] = "{\"worker_id\":\"worker-linked-001\",\"worker_type\":\"linked\",\"reason\":\"via-fifo\"}\n";
	CHECK(write(ffd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1), "write fifo");
	snprintf(q, sizeof q, "%s/linked-request.json", itest_path(&H, QUEUE, p));
	CHECK(symlink(fifo, q) == 0, "symlink %s: %s", q, strerror(errno));
	snprintf(q, sizeof q, "%s/linked-file.json", itest_path(&H, QUEUE, p));
	CHECK(symlink(target, q) == 0, "symlink %s: %s", q, strerror(errno));

	pid_t w = demo(id, "linked", 10);
	json_t *ev = registered(id, 5000);
	CHECK(ev != NULL, "%s was not registered", id);
	json_decref(ev);
	itest_sleep_ms(400); /* several snapshots and queue polls */
	/* The spec link was replaced by a regular file; the target untouched. */
	struct stat lst, after;
	snprintf(q, sizeof q, "%s/%s.json", itest_path(&H, ACTIVE, p), id);
	SOFT_CHECK(lstat(q, &lst) == 0 && S_ISREG(lst.st_mode), "active/%s.json is not a regular file now", id);
	char *text = itest_read_file(&H, ACTIVE "/worker-linked-001.json");
	SOFT_CHECK(text != NULL && strstr(text, "\"worker_id\":\"worker-linked-001\"") != NULL, "the spec is not vigild's: %s",
		   text != NULL ? text : "(none)");
	free(text);
	SOFT_CHECK(stat(target, &after) == 0 && after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
			   after.st_mtim.tv_nsec == before.st_mtim.tv_nsec && after.st_size == before.st_size,
		   "the file outside the home was modified through the planted spec link");
	/* The FIFO still holds the whole request: nobody read it; and no
	 * outcome was recorded for it. */
	char back[256];
	ssize_t n = read(ffd, back, sizeof back);
	SOFT_CHECK(n == (ssize_t)(sizeof req - 1) && memcmp(back, req, sizeof req - 1) == 0,
		   "the FIFO behind the queue link was read (%zd bytes left of %zu)", n, sizeof req - 1);
	close(ffd);
	SOFT_CHECK(count_text(HIST, "via-fifo") == 0, "a request read through a planted link was carried out");
	SOFT_CHECK(itest_alive(H.vigild), "vigild died (or hung) on a FIFO behind a queue link");
	/* The queue links are rejected at once, as links: moved (never
	 * followed) to restart/rejected/ with the reason, and logged. */
	for (int k = 0; k < 2; k++) {
		const char *nm = k == 0 ? "linked-request.json" : "linked-file.json";
		char rel[160];
		snprintf(rel, sizeof rel, QUEUE "/%s", nm);
		SOFT_CHECK(lstat(itest_path(&H, rel, q), &lst) < 0, "the queue link %s is still in the queue", nm);
		snprintf(rel, sizeof rel, REJECTED "/%s", nm);
		SOFT_CHECK(lstat(itest_path(&H, rel, q), &lst) == 0 && S_ISLNK(lst.st_mode),
			   "the queue link %s is not in restart/rejected/ as a link", nm);
		snprintf(rel, sizeof rel, REJECTED "/%s.reason", nm);
		char *why = itest_read_file(&H, rel);
		SOFT_CHECK(why != NULL && strstr(why, "symbolic link") != NULL, "the reason for %s says: %s", nm,
			   why != NULL ? why : "(no reason file)");
		free(why);
	}
	SOFT_CHECK(count_text(RLOG, "request linked-request.json rejected") == 1,
		   "the restart log does not say that the linked request was rejected");

	/* 3. Running: coordination/events swapped for a link to the outside:
	 * vigild keeps writing through the descriptor it holds (the moved
	 * directory), never through the link. */
	char moved[ITEST_PATH_MAX];
	snprintf(moved, sizeof moved, "%s", itest_path(&H, "coordination/events.moved", p));
	CHECK(rename(itest_path(&H, "coordination/events", q), moved) == 0, "rename events: %s", strerror(errno));
	CHECK(symlink(outside, itest_path(&H, "coordination/events", p)) == 0, "symlink events: %s", strerror(errno));
	int outside_before = dir_entries(outside);
	itest_signal(w, SIGKILL);
	itest_reap(w, 2000);
	itest_sleep_ms(400);
	SOFT_CHECK(dir_entries(outside) == outside_before, "vigild wrote through the events link (%d entries, was %d)",
		   dir_entries(outside), outside_before);
	char movedfile[ITEST_PATH_MAX + 32];
	snprintf(movedfile, sizeof movedfile, "coordination/events.moved/%s", HB);
	json_t *arr = itest_read_jsonl(&H, movedfile);
	bool exited = false;
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) exited |= strcmp(json_string_value(json_object_get(o, "event")) ?: "", "worker_exited") == 0;
	json_decref(arr);
	OBSERVED("symlinks: events directory replaced by a link while running: the exit was %s the moved directory",
		 exited ? "recorded in" : "NOT recorded in");
	unlink(itest_path(&H, "coordination/events", p));
	rename(moved, itest_path(&H, "coordination/events", p));
	SOFT_CHECK(stat(target, &after) == 0 && after.st_size == before.st_size, "the outside file changed");
	rc = itest_vigild_stop(&H, 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM", rc);
	remove_outside_dir();
	soft_done();
}

/* ==== d. a tiny, full file system ===================================================== */

/* Fills the file system of dir with a filler file until ENOSPC. */
static void fill_fs(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	char buf[4096];
	memset(buf, 'F', sizeof buf);
	for (int i = 0; i < 100000; i++) {
		ssize_t w = write(fd, buf, sizeof buf);
		if (w < (ssize_t)sizeof buf)
			break;
	}
	/* The last partial page too, byte by byte would be slow: 64 bytes. */
	for (int i = 0; i < 4096 / 64; i++)
		if (write(fd, buf, 64) < 64)
			break;
	close(fd);
}

static void full_tmpfs_monitoring_goes_on(void **state)
{
	(void)state;
	char coord[ITEST_PATH_MAX], filler[ITEST_PATH_MAX];
	itest_path(&H, "coordination", coord);
	/* The harness made coordination/config with the policies: keep them. */
	char *hb = itest_read_file(&H, "coordination/config/heartbeat-policy.json");
	char *rp = itest_read_file(&H, "coordination/config/worker-restart-policy.json");
	char *ap = itest_read_file(&H, "coordination/config/auto-fix-policy.json");
	if (mount("tmpfs", coord, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0) {
		OBSERVED("full tmpfs: cannot mount a tmpfs here (%s): test skipped", strerror(errno));
		free(hb);
		free(rp);
		free(ap);
		skip();
	}
	snprintf(mounted, sizeof mounted, "%s", coord);
	itest_write_file(&H, "coordination/config/heartbeat-policy.json", hb);
	itest_write_file(&H, "coordination/config/worker-restart-policy.json", rp);
	itest_write_file(&H, "coordination/config/auto-fix-policy.json", ap);
	free(hb);
	free(rp);
	free(ap);
	itest_vigild_start(&H);
	pid_t w[4];
	char ids[4][32];
	for (int i = 0; i < 4; i++) {
		snprintf(ids[i], sizeof ids[i], "worker-full-%03d", i + 1);
		w[i] = demo(ids[i], "full", 10);
	}
	for (int i = 0; i < 4; i++) {
		json_t *ev = registered(ids[i], 5000);
		CHECK(ev != NULL, "%s was not registered", ids[i]);
		json_decref(ev);
	}
	itest_sleep_ms(300);
	int errors_before = count_text(HB_LOG, "ERROR cannot write");
	int64_t werr_before = hb_metric("write_errors");

	/* Full. */
	itest_path(&H, "coordination/filler", filler);
	fill_fs(filler);
	struct statvfs sv;
	CHECK(statvfs(coord, &sv) == 0, "statvfs");
	OBSERVED("full tmpfs: %llu bytes free after filling", (unsigned long long)sv.f_bavail * sv.f_bsize);
	int64_t t_full = itest_now_ms();
	itest_sleep_ms(300);
	/* Detection goes on: an exit and a hang, seen in the log (which is
	 * outside coordination/) while nothing can be written inside it. */
	itest_signal(w[0], SIGKILL);
	itest_reap(w[0], 2000);
	itest_signal(w[1], SIGSTOP);
	char needle[128];
	snprintf(needle, sizeof needle, "worker_exited: worker %s", ids[0]);
	SOFT_CHECK(wait_text(HB_LOG, needle, 3000), "the SIGKILLed worker's exit was not noticed while the disk was full");
	snprintf(needle, sizeof needle, "heartbeat_missed: worker %s", ids[1]);
	SOFT_CHECK(wait_text(HB_LOG, needle, 3000), "the SIGSTOPped worker's silence was not noticed while full");
	snprintf(needle, sizeof needle, "zombie_detected: worker %s", ids[1]);
	SOFT_CHECK(wait_text(HB_LOG, needle, 3000), "the SIGSTOPped worker was not declared a zombie while full");
	itest_sleep_ms(500); /* several snapshots fail */
	SOFT_CHECK(itest_alive(H.vigild), "vigild died on a full disk");
	int errors_full = count_text(HB_LOG, "ERROR cannot write") - errors_before;
	char *log = itest_read_file(&H, HB_LOG);
	int works_again = 0;
	for (const char *s = log; s != NULL && (s = strstr(s, "writing under coordination/ works again")) != NULL; s++)
		works_again++;
	free(log);
	OBSERVED("full tmpfs: %d 'ERROR cannot write' lines and %d 'works again' lines while full", errors_full,
		 works_again);
	log = itest_read_file(&H, HB_LOG);
	for (char *line = log != NULL ? strtok(log, "\n") : NULL; line != NULL; line = strtok(NULL, "\n"))
		if (strstr(line, "cannot write") != NULL || strstr(line, "works again") != NULL)
			fprintf(stderr, "    %s\n", line);
	free(log);
	SOFT_CHECK(errors_full == 1, "%d ERROR lines about writing during one full-disk episode (want 1)", errors_full);
	/* What was there is intact and valid. */
	check_tree_files();

	/* Space returns: writing resumes, errors were counted. */
	unlink(filler);
	int64_t deadline = itest_mono_ms() + 3000;
	int64_t werr = -1, ts = 0;
	while (itest_mono_ms() < deadline) {
		json_t *m = itest_read_json(&H, HBM);
		ts = m != NULL ? itest_int(m, "timestamp_ms") : 0;
		werr = m != NULL ? itest_int(m, "write_errors") : -1;
		json_decref(m);
		if (ts > t_full + 800)
			break;
		itest_sleep_ms(20);
	}
	SOFT_CHECK(ts > t_full + 800, "the metrics were not rewritten after space returned");
	SOFT_CHECK(werr > werr_before, "write_errors did not grow (%lld, was %lld)", (long long)werr, (long long)werr_before);
	OBSERVED("full tmpfs: write_errors %lld after the episode; exits_detected %lld; zombies_detected %lld",
		 (long long)werr, (long long)hb_metric("exits_detected"), (long long)hb_metric("zombies_detected"));
	SOFT_CHECK(wait_text(HB_LOG, "writing under coordination/ works again", 8000), "no 'works again' log line");
	/* A new event is written again. */
	itest_signal(w[2], SIGKILL);
	itest_reap(w[2], 2000);
	json_t *ev = itest_wait_event(&H, HB, "worker_exited", ids[2], 3000);
	SOFT_CHECK(ev != NULL, "no worker_exited event after space returned");
	json_decref(ev);
	ev = itest_find_event(&H, HB, "worker_exited", ids[0]);
	OBSERVED("full tmpfs: the exit that happened while full is %s heartbeat-events.jsonl (it is in the log)",
		 ev != NULL ? "in" : "not in");
	json_decref(ev);
	snprintf(needle, sizeof needle, "%s.json", ids[1]);
	bool zspec = itest_exists(&H, "coordination/worker-specs/zombie/worker-full-002.json");
	OBSERVED("full tmpfs: the zombie declared while full %s a zombie/ spec after space returned",
		 zspec ? "has" : "has no");
	itest_signal(w[1], SIGCONT);
	check_tree_files();
	int rc = itest_vigild_stop(&H, 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM", rc);
	soft_done();
}

/* ==== e. kill -9 at random moments ============================================================ */

static unsigned rng_state;
static unsigned rng(unsigned n)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return n == 0 ? 0 : (rng_state >> 8) % n;
}

static void spawn_worker(const char *id, const char *type, const char *const *demo_args)
{
	const char *args[40];
	int n = 0;
	args[n++] = "spawn";
	args[n++] = "--type";
	args[n++] = type;
	args[n++] = "--task-id";
	args[n++] = "task-crash";
	args[n++] = "--id";
	args[n++] = id;
	args[n++] = "--";
	args[n++] = DEMO_WORKER_PATH;
	for (int i = 0; demo_args != NULL && demo_args[i] != NULL && n < 39; i++)
		args[n++] = demo_args[i];
	args[n] = NULL;
	char *out = NULL, *err = NULL;
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl spawn %s exited %d: %s", id, rc, err);
	free(out);
	free(err);
}

/* Live processes running for this segment, from their environment. */
static int segment_procs(pid_t *out, int max)
{
	char e[96];
	snprintf(e, sizeof e, "VIGIL_SHM=%s", H.shm);
	const char *envs[] = {e, NULL};
	return itest_procs_with_env(envs, out, max);
}

/* WORKER_ID from the process's environment (static buffer). */
static const char *proc_worker_id(pid_t pid)
{
	static char out[80];
	char path[64], buf[8192];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	snprintf(out, sizeof out, "?");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return out;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	for (ssize_t i = 0; i < n;) {
		size_t l = strnlen(buf + i, (size_t)(n - i));
		if (strncmp(buf + i, "WORKER_ID=", 10) == 0)
			snprintf(out, sizeof out, "%.*s", (int)l - 10, buf + i + 10);
		i += (ssize_t)l + 1;
	}
	return out;
}

/* The diagnostics of missing workers are printed once, for the first round. */
static int first_miss_round(int nmiss, int r)
{
	static int first = -1;
	if (r == 0)
		first = -1;
	if (nmiss > 0 && first < 0)
		first = r;
	return first;
}

/* Every live worker process appears in vigilctl status (by pid); polls a
 * little, since a worker started in the instant of the crash is published
 * by the next vigild only after its claim is judged.  Returns the pids
 * that stayed missing (0 when none). */
static int missing_from_status(int timeout_ms, pid_t *missing_out)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	int nmiss = 0;
	for (;;) {
		pid_t live[128];
		int n = segment_procs(live, 128);
		char *out = NULL, *err = NULL;
		const char *st[] = {"status", "--json", NULL};
		int rc = ctl(&out, &err, st);
		json_t *arr = rc == 0 ? json_loads(out, 0, NULL) : NULL;
		free(out);
		free(err);
		nmiss = 0;
		for (int i = 0; i < n && i < 128; i++) {
			bool found = false;
			size_t k;
			json_t *o;
			json_array_foreach(arr, k, o) found |= json_integer_value(json_object_get(o, "pid")) == live[i];
			if (!found && itest_alive(live[i]))
				missing_out[nmiss++] = live[i];
		}
		json_decref(arr);
		if (nmiss == 0 || itest_mono_ms() >= deadline)
			return nmiss;
		sleep_reaping(50);
	}
}

/* Each request_id at most once in the history. */
static int duplicate_request_ids(char *first_dup, size_t len)
{
	json_t *h = itest_read_jsonl(&H, HIST);
	json_t *seen = json_object();
	int dups = 0;
	size_t i;
	json_t *o;
	json_array_foreach(h, i, o)
	{
		const char *rid = json_string_value(json_object_get(o, "request_id"));
		if (rid == NULL || rid[0] == '\0')
			continue;
		if (json_object_get(seen, rid) != NULL) {
			if (dups++ == 0)
				snprintf(first_dup, len, "%s", rid);
		}
		json_object_set_new(seen, rid, json_true());
	}
	json_decref(seen);
	json_decref(h);
	return dups;
}

/* History lines for the request file name (request_id "<name>@<mtime>"). */
static int history_for(const char *name)
{
	json_t *h = itest_read_jsonl(&H, HIST);
	int n = 0;
	size_t i, len = strlen(name);
	json_t *o;
	json_array_foreach(h, i, o)
	{
		const char *rid = json_string_value(json_object_get(o, "request_id"));
		n += rid != NULL && strncmp(rid, name, len) == 0 && rid[len] == '@';
	}
	json_decref(h);
	return n;
}

static void kill9_rounds_nothing_forgotten_or_doubled(void **state)
{
	(void)state;
	itest_write_policy(&H, 0.1, 0.4, 1.0, P_EXTRA);
	write_restart_policy("{\"max_retries\": 1000, \"retry_interval_seconds\": 0.2, \"backoff_multiplier\": 1, "
			     "\"circuit_breaker_enabled\": false, \"kill_grace_seconds\": 0.3}\n");
	unsigned seed = getenv("VIGIL_TEST_SEED") != NULL ? (unsigned)strtoul(getenv("VIGIL_TEST_SEED"), NULL, 10)
							 : (unsigned)itest_now_ms();
	rng_state = seed;
	tmp_leftovers_allowed = true;
	tmp_leftovers = 0;
	reaper_start();
	fprintf(stderr, "crash rounds: seed %u (VIGIL_TEST_SEED=%u replays the schedule)\n", seed, seed);
	itest_vigild_start(&H);
	static const char *const HEALTHY[] = {"--beat-ms", "10", NULL};
	static const char *const CRASHER[] = {"--beat-ms", "10", "--die-after-ms", "150", "--exit-code", "3", NULL};
	const char *healthy[4] = {"worker-steady-001", "worker-steady-002", "worker-steady-003", "worker-steady-004"};
	for (int i = 0; i < 4; i++)
		spawn_worker(healthy[i], "steady", HEALTHY);
	spawn_worker("worker-crashy-001", "crashy", CRASHER);
	spawn_worker("worker-crashy-002", "crashy", CRASHER);
	for (int i = 0; i < 4; i++) {
		json_t *ev = registered(healthy[i], 5000);
		CHECK(ev != NULL, "%s was not registered", healthy[i]);
		json_decref(ev);
	}

	char names[64][64];
	int nreq = 0;
	const int rounds = 8;
	for (int r = 0; r < rounds; r++) {
		/* Requests arrive (one while vigild is down on odd rounds). */
		for (int k = 0; k < 1 + (int)rng(2) && nreq < 60; k++) {
			snprintf(names[nreq], sizeof names[nreq], "req-r%d-%d.json", r, k);
			char body[512];
			snprintf(body, sizeof body,
				 "{\n  \"worker_id\": \"%s\",\n  \"worker_type\": \"steady\",\n  \"task_id\": \"task-crash\",\n"
				 "  \"reason\": \"round-%d\",\n  \"created_at\": \"2026-11-27T10:00:00Z\"\n}\n",
				 healthy[rng(4)], r);
			write_request(QUEUE, names[nreq], body);
			nreq++;
		}
		sleep_reaping(30 + (int)rng(570));
		itest_vigild_kill9(&H);
		sleep_reaping((int)rng(150));
		if (r % 2 == 1 && nreq < 60) {
			snprintf(names[nreq], sizeof names[nreq], "req-r%d-down.json", r);
			char body[512];
			snprintf(body, sizeof body,
				 "{\"worker_id\": \"%s\", \"worker_type\": \"steady\", \"reason\": \"while-down\"}\n",
				 healthy[rng(4)]);
			write_request(QUEUE, names[nreq], body);
			nreq++;
		}
		itest_vigild_start(&H);

		/* After each restart: every history/events line one object
		 * (itest_read_jsonl fails the test otherwise), no request done
		 * twice, no live worker forgotten. */
		check_tree_files();
		char dup[256] = "";
		int dups = duplicate_request_ids(dup, sizeof dup);
		SOFT_CHECK(dups == 0, "round %d: %d request(s) carried out twice, e.g. %s", r, dups, dup);
		pid_t missing[128];
		int nmiss = missing_from_status(6000, missing);
		SOFT_CHECK(nmiss == 0, "round %d: %d live worker process(es) not in vigilctl status (first pid %d, %s)", r,
			   nmiss, nmiss > 0 ? (int)missing[0] : 0, nmiss > 0 ? proc_worker_id(missing[0]) : "");
		for (int m = 0; m < nmiss && m < 4 && r == first_miss_round(nmiss, r); m++) {
			char pidtxt[32];
			snprintf(pidtxt, sizeof pidtxt, "pid %d", (int)missing[m]);
			char stat[256] = "";
			if (itest_proc_stat(missing[m], stat, sizeof stat) == NULL)
				stat[0] = '\0';
			fprintf(stderr, "  missing: pid %d is %s: %.120s\n", (int)missing[m], proc_worker_id(missing[m]), stat);
			grep_file(RLOG, pidtxt);
			grep_file(HB_LOG, pidtxt);
			char wlog[128];
			snprintf(wlog, sizeof wlog, "agents/logs/workers/%s.log", proc_worker_id(missing[m]));
			dump_tail(wlog, wlog, 40);
		}
		for (int i = 0; i < 4; i++)
			SOFT_CHECK(itest_count_events(&H, ZE, "zombie_detected", healthy[i]) == 0,
				   "round %d: healthy %s was declared a zombie", r, healthy[i]);
		reap_orphans();
	}

	/* The crash loops survived every kill: they are still being restarted. */
	for (int c = 1; c <= 2; c++) {
		char needle[64];
		snprintf(needle, sizeof needle, "spawned worker-crashy-%03d ", c);
		int before = count_text(RLOG, needle);
		int64_t until = itest_mono_ms() + 4000;
		while (count_text(RLOG, needle) <= before && itest_mono_ms() < until)
			sleep_reaping(50);
		SOFT_CHECK(count_text(RLOG, needle) > before,
			   "worker-crashy-%03d is no longer restarted after %d vigild crashes (crash loop lost)", c, rounds);
	}

	/* Let the last vigild finish what is queued: every request exactly once. */
	int64_t deadline = itest_mono_ms() + 15000;
	int pending = nreq;
	while (itest_mono_ms() < deadline) {
		pending = 0;
		for (int i = 0; i < nreq; i++)
			pending += history_for(names[i]) == 0;
		if (pending == 0)
			break;
		sleep_reaping(50);
	}
	SOFT_CHECK(pending == 0, "%d of %d restart requests never got an outcome", pending, nreq);
	for (int i = 0; i < nreq; i++)
		SOFT_CHECK(history_for(names[i]) <= 1, "request %.64s has %d outcomes", names[i], history_for(names[i]));
	char dup[256] = "";
	SOFT_CHECK(duplicate_request_ids(dup, sizeof dup) == 0, "a request carried out twice: %s", dup);
	for (int i = 0; i < 4; i++)
		SOFT_CHECK(itest_count_events(&H, ZE, "zombie_detected", healthy[i]) == 0, "healthy %s declared a zombie",
			   healthy[i]);
	/* One process per worker id. */
	pid_t live[128];
	int n = segment_procs(live, 128);
	json_t *hist = itest_read_jsonl(&H, HIST);
	json_t *rm = itest_read_json(&H, "coordination/metrics/worker-restart-metrics.json");
	OBSERVED("crash rounds: %d rounds, %d requests, %d worker processes alive at the end, %zu history lines, "
		 "%lld restarts attempted by the last vigild",
		 rounds, nreq, n, json_array_size(hist),
		 rm != NULL ? (long long)json_integer_value(json_object_get(rm, "restarts_attempted")) : -1LL);
	json_decref(rm);
	size_t crashy_hist = 0, hi;
	json_t *o;
	json_array_foreach(hist, hi, o)
	{
		const char *t = json_string_value(json_object_get(o, "worker_type"));
		crashy_hist += t != NULL && strcmp(t, "crashy") == 0;
	}
	json_decref(hist);
	/* The next vigild removes them at its start (leftover_temp_files_swept_at_start);
	 * the check after each restart may run before that sweep. */
	OBSERVED("crash rounds: %d sightings of temporary files left by a killed vigild", tmp_leftovers);
	tmp_leftovers_allowed = false;
	OBSERVED("crash rounds: the crash-looping workers: %zu restart outcomes, %zu worker_exited, %zu spawned lines",
		 crashy_hist, itest_count_events(&H, HB, "worker_exited", "worker-crashy-001") +
				      itest_count_events(&H, HB, "worker_exited", "worker-crashy-002"),
		 (size_t)count_text(RLOG, "spawned worker-crashy"));
	if (getenv("VIGIL_TEST_VERBOSE") != NULL || soft_msgs[0] != '\0') {
		grep_file(RLOG, "crashy");
		grep_file(HB_LOG, "crashy");
	}
	for (int i = 0; i < 4; i++) {
		char e1[96], e2[96];
		snprintf(e1, sizeof e1, "VIGIL_SHM=%s", H.shm);
		snprintf(e2, sizeof e2, "WORKER_ID=%s", healthy[i]);
		const char *envs[] = {e1, e2, NULL};
		int np = itest_procs_with_env(envs, NULL, 0);
		SOFT_CHECK(np <= 1, "%d processes run as %s", np, healthy[i]);
	}
	int rc = itest_vigild_stop(&H, 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM", rc);
	reap_orphans();
	soft_done();
}

/* A worker vigild started dies while vigild is down, and its new parent
 * has not reaped it yet (a zombie process: dead, pid still held) when the
 * next vigild adopts its slot.  It is dead: worker_exited at once and, as
 * it crashed, a restart - not "not verified ... monitored by timeouts only"
 * and a zombie verdict a timeout later. */
static void worker_dead_before_adoption_is_exited_and_restarted(void **state)
{
	(void)state;
	itest_write_policy(&H, 0.1, 0.4, 1.0, P_EXTRA);
	/* A 1.5 s delay: time to read the "restarting" spec before the restart. */
	write_restart_policy("{\"max_retries\": 5, \"retry_interval_seconds\": 1.5, \"backoff_multiplier\": 1, "
			     "\"circuit_breaker_enabled\": false, \"kill_grace_seconds\": 0.3}\n");
	itest_vigild_start(&H);
	static const char *const DIES[] = {"--beat-ms", "10", "--die-after-ms", "700", "--exit-code", "3", NULL};
	spawn_worker("worker-doomed-001", "doomed", DIES);
	json_t *ev = registered("worker-doomed-001", 5000);
	CHECK(ev != NULL, "worker-doomed-001 was not registered");
	pid_t pid = (pid_t)itest_int(ev, "pid");
	json_decref(ev);
	json_t *sp = itest_read_json(&H, ACTIVE "/worker-doomed-001.json");
	CHECK(sp != NULL && json_array_size(json_object_get(sp, "command")) == 7, "the spec does not hold the command");
	char *cmd0 = json_dumps(json_object_get(sp, "command"), JSON_COMPACT);
	char *cwd0 = strdup(json_string_value(json_object_get(sp, "cwd")) != NULL
				    ? json_string_value(json_object_get(sp, "cwd"))
				    : "");
	json_decref(sp);
	itest_vigild_kill9(&H); /* the worker is now our (the subreaper's) child */
	int64_t until = itest_mono_ms() + 3000;
	while (proc_state(pid) != 'Z' && itest_mono_ms() < until)
		itest_sleep_ms(5);
	CHECK(proc_state(pid) == 'Z', "the worker did not die (state %c)", proc_state(pid));
	int64_t t0 = itest_now_ms();
	itest_vigild_start(&H);
	ev = itest_wait_event(&H, HB, "worker_exited", "worker-doomed-001", 1500);
	SOFT_CHECK(ev != NULL, "a worker that was dead (unreaped) when vigild adopted it got no worker_exited");
	if (ev != NULL)
		SOFT_CHECK(itest_int(ev, "timestamp_ms") - t0 < 1000, "its worker_exited came %lld ms after the start",
			   (long long)(itest_int(ev, "timestamp_ms") - t0));
	json_decref(ev);
	char needle[96];
	snprintf(needle, sizeof needle, "worker-doomed-001 (pid %d) not verified", (int)pid);
	if (count_text(HB_LOG, needle) > 0) {
		char *log = itest_read_file(&H, HB_LOG);
		char *line = log != NULL ? strstr(log, needle) : NULL;
		char *eol = line != NULL ? strchr(line, '\n') : NULL;
		if (eol != NULL)
			*eol = '\0';
		OBSERVED("dead before adoption: %s", line != NULL ? line : "");
		free(log);
	}
	/* Until the restart, the spec says "restarting" and still carries what
	 * vigild ran, though /proc had nothing for this vigild to read (a dead
	 * process has no cmdline or cwd there): a vigild that crashes now
	 * leaves the next one what it needs.  Regression: the adopting vigild
	 * rewrote the spec with "command": [] and "cwd": "/", and when it was
	 * killed before it handled the exit, the next one could not restart
	 * the worker (CI, TSan build: a crash loop lost after kill -9). */
	int64_t spec_until = itest_mono_ms() + 1000; /* the event line comes just before the spec */
	for (;;) {
		sp = itest_read_json(&H, ACTIVE "/worker-doomed-001.json");
		const char *st = sp != NULL ? json_string_value(json_object_get(sp, "status")) : NULL;
		if ((st != NULL && strcmp(st, "restarting") == 0) || itest_mono_ms() >= spec_until)
			break;
		json_decref(sp);
		itest_sleep_ms(5);
	}
	char *cmd1 = sp != NULL ? json_dumps(json_object_get(sp, "command"), JSON_COMPACT) : NULL;
	const char *cwd1 = sp != NULL ? json_string_value(json_object_get(sp, "cwd")) : NULL;
	SOFT_CHECK(sp != NULL && strcmp(json_string_value(json_object_get(sp, "status")) != NULL
					       ? json_string_value(json_object_get(sp, "status"))
					       : "",
				       "restarting") == 0,
		   "after the exit the spec is not \"restarting\"");
	SOFT_CHECK(cmd1 != NULL && strcmp(cmd1, cmd0) == 0, "the adopting vigild changed the spec's command from %s to %s",
		   cmd0, cmd1 != NULL ? cmd1 : "(no spec)");
	SOFT_CHECK(cwd1 != NULL && strcmp(cwd1, cwd0) == 0, "the adopting vigild changed the spec's cwd from %s to %s",
		   cwd0, cwd1 != NULL ? cwd1 : "(none)");
	free(cmd0);
	free(cmd1);
	free(cwd0);
	json_decref(sp);
	/* It crashed (exit code 3): a restart is due (retry 1.5 s). */
	int64_t deadline = itest_mono_ms() + 1500 + 2500 + itest_slack_ms();
	pid_t next = 0;
	while (itest_mono_ms() < deadline && next == 0) {
		json_t *arr = itest_read_jsonl(&H, HB);
		size_t i;
		json_t *o;
		json_array_foreach(arr, i, o)
		{
			const char *e = json_string_value(json_object_get(o, "event"));
			const char *id = json_string_value(json_object_get(o, "worker_id"));
			if (e != NULL && id != NULL && strcmp(e, "worker_registered") == 0 &&
			    strcmp(id, "worker-doomed-001") == 0 && itest_int(o, "pid") != pid)
				next = (pid_t)itest_int(o, "pid");
		}
		json_decref(arr);
		itest_sleep_ms(20);
	}
	char *spec = itest_read_file(&H, ACTIVE "/worker-doomed-001.json");
	SOFT_CHECK(next != 0, "the worker that crashed while vigild was down was never restarted; its spec now: %s",
		   spec != NULL ? spec : "(none)");
	free(spec);
	waitpid(pid, NULL, 0);
	soft_done();
}

/* vigild is killed in the instant between a spawned worker's execve() and
 * the CLAIMED -> ACTIVE publish of its slot (spawn.c's protocol).  The
 * state it leaves is built here exactly (one run in ~12 of the crash
 * rounds hits it for real): the slot CLAIMED with the spawned identity
 * (flags SPAWNED, the request's tag, pid and start time), the worker
 * running and attached to it (vigil_attach_to accepts CLAIMED), its parent
 * gone, the spawn request still queued.  The next vigild must end up
 * watching that worker (or end it), and never run a second one. */
struct window_args {
	char shm[64];
	int pipe_fd; /* the worker's pid goes there */
	int dead_parent;
};

static uint64_t fnv_tag(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h == 0 ? 1 : h;
}

static int window_setup(void *arg)
{
	const struct window_args *a = arg;
	struct vigil v;
	memset(&v, 0, sizeof v);
	if (vigil__map(&v, a->shm, 1) < 0)
		return 40;
	struct vigil_shm_header *h = v.hdr;
	uint32_t slot = h->slot_count;
	uint64_t gen = 0;
	for (uint32_t i = 0; i < h->slot_count; i++) {
		uint64_t o = atomic_load(&vigil__hot(h, i)->owner);
		if (vigil_owner_state(o) != VIGIL_SLOT_FREE)
			continue;
		gen = vigil_owner_gen(o) + 1;
		if (atomic_compare_exchange_strong(&vigil__hot(h, i)->owner, &o, vigil_owner_make(VIGIL_SLOT_CLAIMED, gen))) {
			slot = i;
			break;
		}
	}
	if (slot == h->slot_count)
		return 41;
	struct vigil_slot_cold *c = vigil__cold(h, slot);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	c->claimed_mono_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	vigil__copy_id(c->worker_id, "worker-window-001");
	vigil__copy_id(c->worker_type, "window");
	vigil__copy_id(c->task_id, "task-window");
	c->pid = 0;
	c->registrar_pid = a->dead_parent;
	c->pid_start_ticks = 0;
	c->registered_unix_ms = (uint64_t)itest_now_ms();
	c->flags = VIGIL_COLD_SPAWNED;
	c->spawn_tag = fnv_tag("worker-window-001.json");
	atomic_store(&vigil__hot(h, slot)->beat, vigil_beat_make(gen, 0, 100, 0));
	pid_t child = fork();
	if (child == 0) {
		char e_shm[96], e_slot[32], e_gen[48];
		snprintf(e_shm, sizeof e_shm, "VIGIL_SHM=%s", a->shm);
		snprintf(e_slot, sizeof e_slot, "VIGIL_SLOT=%u", slot);
		snprintf(e_gen, sizeof e_gen, "VIGIL_GEN=%llu", (unsigned long long)gen);
		char *const envp[] = {e_shm, e_slot, e_gen, (char *)"WORKER_ID=worker-window-001",
				      (char *)"WORKER_TYPE=window", (char *)"TASK_ID=task-window", NULL};
		char *const argv[] = {(char *)DEMO_WORKER_PATH, (char *)"--beat-ms", (char *)"10", NULL};
		setsid();
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (child < 0)
		return 42;
	c->pid = child;
	c->pid_start_ticks = vigil__pid_start_ticks(child);
	/* Give it time to exec and attach, as the real window requires. */
	itest_sleep_ms(100);
	if (write(a->pipe_fd, &child, sizeof child) != (ssize_t)sizeof child)
		return 43;
	return 0; /* its "vigild" is gone: the worker is an orphan */
}

static void killed_between_exec_and_publish(void **state)
{
	(void)state;
	itest_vigild_start(&H); /* makes the segment and the tree */
	pid_t dead = H.vigild;
	itest_vigild_kill9(&H);
	char body[1024];
	snprintf(body, sizeof body,
		 "{\"worker_id\":\"worker-window-001\",\"worker_type\":\"window\",\"task_id\":\"task-window\","
		 "\"command\":[\"%s\",\"--beat-ms\",\"10\"],\"cwd\":\"/\",\"tokens\":0}\n",
		 DEMO_WORKER_PATH);
	write_request("coordination/spawn/queue", "worker-window-001.json", body);
	int pfd[2];
	CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe");
	struct window_args a = {.pipe_fd = pfd[1], .dead_parent = dead};
	snprintf(a.shm, sizeof a.shm, "%s", H.shm);
	pid_t helper = fork_child(window_setup, &a);
	pid_t worker = 0;
	CHECK(read(pfd[0], &worker, sizeof worker) == (ssize_t)sizeof worker, "the window setup failed");
	close(pfd[0]);
	close(pfd[1]);
	CHECK(reap_own(helper, 5000) == 0, "the window setup failed");
	CHECK(itest_alive(worker), "the worker in the window is not running");

	itest_vigild_start(&H);
	/* Past VIGIL_CLAIM_STALE_NS (5 s): whatever vigild does with the slot
	 * has been done. */
	pid_t missing[128];
	int64_t until = itest_mono_ms() + 5600;
	while (itest_mono_ms() < until)
		sleep_reaping(100);
	int nmiss = missing_from_status(500, missing);
	bool worker_missing = false;
	for (int i = 0; i < nmiss; i++)
		worker_missing |= missing[i] == worker;
	char e1[96];
	snprintf(e1, sizeof e1, "VIGIL_SHM=%s", H.shm);
	const char *envs[] = {e1, "WORKER_ID=worker-window-001", NULL};
	pid_t procs[8];
	int np = itest_procs_with_env(envs, procs, 8);
	grep_file(HB_LOG, "worker-window-001");
	grep_file(RLOG, "worker-window-001");
	SOFT_CHECK(!worker_missing || !itest_alive(worker),
		   "the worker that was running when vigild died (pid %d, slot CLAIMED) is alive and watched by nobody",
		   (int)worker);
	SOFT_CHECK(np <= 1, "%d processes run as worker-window-001 (the spawn was carried out again)", np);
	soft_done();
}

/* ==== f. resource limits ======================================================================= */

struct selfreg_args {
	char shm[64];
	char id[32];
	int beat_ms;  /* 0: one beat, then wait */
	int gate_fd;  /* read end of a pipe: EOF means "exit now" (no detach) */
	int close_fd; /* its write end, which the child must not hold */
};

/* A self-registering worker forked from the test (it maps the segment
 * itself, so vigild can verify it); exits without a goodbye when the
 * gate closes: a crash, for vigild. */
static int selfreg(void *arg)
{
	const struct selfreg_args *a = arg;
	close(a->close_fd);
	struct vigil v;
	memset(&v, 0, sizeof v);
	int rc = vigil__map(&v, a->shm, 1);
	if (rc < 0)
		return 30;
	rc = vigil_register(&v, a->id, a->beat_ms > 0 ? "limited" : "storm", "", (int)getpid());
	if (rc == -EAGAIN)
		rc = vigil_register(&v, a->id, a->beat_ms > 0 ? "limited" : "storm", "", (int)getpid());
	if (rc < 0)
		return 31;
	vigil_beat(&v, 100, 1);
	int fl = fcntl(a->gate_fd, F_GETFL);
	if (a->beat_ms > 0)
		fcntl(a->gate_fd, F_SETFL, fl | O_NONBLOCK);
	for (unsigned i = 2;; i++) {
		char c;
		ssize_t n = read(a->gate_fd, &c, 1);
		if (n == 0)
			_exit(0); /* gate closed */
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			_exit(32);
		itest_sleep_ms(a->beat_ms);
		vigil_beat(&v, 100, i % 100);
	}
	return 0;
}

/* Forks n self-registering workers named prefix-NNN; returns the write end
 * of their gate. */
static int start_selfreg(const char *prefix, int n, int beat_ms, pid_t *pids)
{
	int gate[2];
	CHECK(pipe2(gate, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		struct selfreg_args a = {.beat_ms = beat_ms, .gate_fd = gate[0], .close_fd = gate[1]};
		snprintf(a.shm, sizeof a.shm, "%s", H.shm);
		snprintf(a.id, sizeof a.id, "%s-%03d", prefix, i);
		pids[i] = fork_child(selfreg, &a);
	}
	close(gate[0]);
	return gate[1];
}

static size_t count_prefix(const char *file, const char *event, const char *prefix, json_t *per_id)
{
	json_t *arr = itest_read_jsonl(&H, file);
	size_t n = 0, i, len = strlen(prefix);
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *ev = json_string_value(json_object_get(o, "event"));
		const char *id = json_string_value(json_object_get(o, "worker_id"));
		if (ev == NULL || id == NULL || strcmp(ev, event) != 0 || strncmp(id, prefix, len) != 0)
			continue;
		n++;
		if (per_id != NULL) {
			json_t *c = json_object_get(per_id, id);
			json_object_set_new(per_id, id, json_integer(c != NULL ? json_integer_value(c) + 1 : 1));
		}
	}
	json_decref(arr);
	return n;
}

static void low_nofile_degrades_to_timeouts(void **state)
{
	(void)state;
	const char *prefix[] = {"/usr/bin/prlimit", "--nofile=64:64", "--", NULL};
	if (access(prefix[0], X_OK) != 0) {
		OBSERVED("low RLIMIT_NOFILE: %s missing: test skipped", prefix[0]);
		skip();
	}
	itest_vigild_start_prefixed(&H, prefix, NULL);
	{
		char path[64], *lim = NULL;
		snprintf(path, sizeof path, "/proc/%d/limits", (int)H.vigild);
		FILE *lf = fopen(path, "re");
		char line[256];
		while (lf != NULL && fgets(line, sizeof line, lf) != NULL)
			if (strncmp(line, "Max open files", 14) == 0)
				lim = strdup(line);
		if (lf != NULL)
			fclose(lf);
		snprintf(path, sizeof path, "/proc/%d/fd", (int)H.vigild);
		if (lim != NULL)
			lim[strcspn(lim, "\n")] = '\0';
		OBSERVED("low RLIMIT_NOFILE: vigild '%s' with %d descriptors open before any worker",
			 lim != NULL ? lim : "?", dir_entries(path));
		free(lim);
	}
	enum { N = 80 };
	pid_t pids[N];
	int gate = start_selfreg("worker-limited", N, 20, pids);
	int64_t deadline = itest_mono_ms() + 15000;
	size_t reg = 0;
	while (itest_mono_ms() < deadline && (reg = count_prefix(HB, "worker_registered", "worker-limited", NULL)) < N)
		itest_sleep_ms(50);
	SOFT_CHECK(reg == N, "%zu of %d workers registered under RLIMIT_NOFILE 64", reg, N);
	if (getenv("VIGIL_TEST_VERBOSE") != NULL)
		dump_tail("heartbeat-monitor-daemon.log", HB_LOG, 30);
	SOFT_CHECK(itest_alive(H.vigild), "vigild died under RLIMIT_NOFILE 64");
	itest_sleep_ms(300);
	/* None of them has died yet: no exit may be reported, no slot freed. */
	int alive = 0;
	for (int i = 0; i < N; i++)
		alive += itest_alive(pids[i]);
	size_t false_exits = count_prefix(HB, "worker_exited", "worker-limited", NULL);
	int recycled = count_text(HB_LOG, "was recycled");
	SOFT_CHECK(false_exits == 0, "vigild reported worker_exited for %zu of %d workers that are all alive (%d log "
				      "lines say their pid 'was recycled'): out of descriptors, it cannot read "
				      "/proc/<pid>/stat, takes start time 0 for a recycled pid, and frees their slots",
		   false_exits, alive, recycled);
	int64_t unverified = hb_metric("workers_unverified");
	int emfile = count_text(HB_LOG, "Too many open files");
	int timeouts_only = count_text(HB_LOG, "timeouts only");
	OBSERVED("low RLIMIT_NOFILE: %zu registered; metrics workers_unverified %lld; %d log lines mention EMFILE, %d "
		 "say 'timeouts only'; write_errors %lld",
		 reg, (long long)unverified, emfile, timeouts_only, (long long)hb_metric("write_errors"));
	SOFT_CHECK(emfile > 0 || unverified > 0, "no sign in the log or metrics that workers went unwatched");
	SOFT_CHECK(count_text(HB_LOG, "not verified") > 0, "the log does not say which workers are not verified");
	/* ... and why: the descriptor limit, not the worker. */
	if (timeouts_only > 0)
		SOFT_CHECK(emfile > 0 || count_text(HB_LOG, "descriptor") > 0 || count_text(HB_LOG, "RLIMIT_NOFILE") > 0,
			   "%d workers logged as 'not verified: neither pid nor its registrar maps the segment' while "
			   "the cause is vigild's RLIMIT_NOFILE (EMFILE reading /proc/<pid>/maps): the log blames the "
			   "workers",
			   timeouts_only);
	/* Detection by timeout still works for one that hangs. */
	int64_t ticks = hb_metric("ticks");
	itest_signal(pids[N - 1], SIGSTOP);
	json_t *ev = itest_wait_event(&H, ZE, "zombie_detected", "worker-limited-079", 3000);
	SOFT_CHECK(ev != NULL, "a SIGSTOPped worker was not declared a zombie under RLIMIT_NOFILE 64");
	json_decref(ev);
	SOFT_CHECK(wait_ticks_after(ticks, 3000) > 0, "the metrics stopped advancing under RLIMIT_NOFILE 64");
	/* They all die: vigild sees the watched ones at once, the rest by timeout. */
	kill(pids[N - 1], SIGCONT);
	close(gate);
	for (int i = 0; i < N; i++)
		reap_own(pids[i], 5000);
	itest_sleep_ms(1500);
	size_t exited = count_prefix(HB, "worker_exited", "worker-limited", NULL);
	size_t zombies = count_prefix(ZE, "zombie_detected", "worker-limited", NULL);
	OBSERVED("low RLIMIT_NOFILE: after all %d died: %zu worker_exited, %zu zombie_detected", N, exited, zombies);
	SOFT_CHECK(itest_alive(H.vigild), "vigild died");
	int rc = itest_vigild_stop(&H, 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM", rc);
	soft_done();
}

static void event_storm_nothing_lost(void **state)
{
	(void)state;
	/* A long zombie threshold: this is about exits, not silence. */
	itest_write_policy(&H, 1, 5, 30, P_EXTRA);
	/* The smallest event ring vigild accepts (a VIGIL_DEBUG=1 test hook):
	 * with the default 8,191 events, 500 workers never fill it, and the
	 * ring-full path this test is named for would never be taken. */
	setenv("VIGIL_DEBUG", "1", 1);
	setenv("VIGIL_DEBUG_EVENT_RING", "16", 1);
	itest_vigild_start(&H);
	unsetenv("VIGIL_DEBUG_EVENT_RING");
	unsetenv("VIGIL_DEBUG");
	CHECK(itest_count_text(&H, "vigild.out", "debug: event ring of 16 entries") == 1,
	      "vigild did not take the 16-entry event ring (VIGIL_DEBUG_EVENT_RING)");
	enum { N = 500 };
	static pid_t pids[N];
	int gate = start_selfreg("worker-storm", N, 0, pids);
	int64_t deadline = itest_mono_ms() + 30000;
	size_t reg = 0;
	while (itest_mono_ms() < deadline && (reg = count_prefix(HB, "worker_registered", "worker-storm", NULL)) < N)
		itest_sleep_ms(50);
	CHECK(reg == N, "%zu of %d storm workers registered", reg, N);
	itest_sleep_ms(300); /* a metrics snapshot (every 0.1 s) after the registrations */
	int64_t ticks = hb_metric("ticks");
	int64_t deferred0 = hb_metric("ring_full_deferrals");
	/* All die at the same instant. */
	close(gate);
	for (int i = 0; i < N; i++)
		reap_own(pids[i], 5000);
	deadline = itest_mono_ms() + 30000;
	size_t exited = 0;
	while (itest_mono_ms() < deadline && (exited = count_prefix(HB, "worker_exited", "worker-storm", NULL)) < N)
		itest_sleep_ms(50);
	SOFT_CHECK(wait_ticks_after(ticks, 3000) > 0, "vigild stopped ticking in the storm");
	itest_sleep_ms(300);
	int64_t deferred1 = hb_metric("ring_full_deferrals");

	/* Per worker: its events in order; each kind at most once, registered
	 * and exited exactly once, registered first. */
	json_t *arr = itest_read_jsonl(&H, HB);
	json_t *seen = json_object(); /* id -> {event: count, "order": "registered,exited..."} */
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *ev = itest_str(o, "event"), *id = itest_str(o, "worker_id");
		if (strncmp(id, "worker-storm-", 13) != 0)
			continue;
		json_t *w = json_object_get(seen, id);
		if (w == NULL) {
			w = json_object();
			json_object_set_new(seen, id, w);
			json_object_set_new(w, "first", json_string(ev));
		}
		json_t *c = json_object_get(w, ev);
		json_object_set_new(w, ev, json_integer(c != NULL ? json_integer_value(c) + 1 : 1));
	}
	json_decref(arr);
	int bad = 0;
	for (int k = 0; k < N; k++) {
		char id[32];
		snprintf(id, sizeof id, "worker-storm-%03d", k);
		json_t *w = json_object_get(seen, id);
		const char *why = NULL, *kind = "";
		json_int_t twice = 0;
		if (w == NULL) {
			why = "no event at all";
		} else if (json_integer_value(json_object_get(w, "worker_registered")) != 1) {
			why = "worker_registered not exactly once";
		} else if (json_integer_value(json_object_get(w, "worker_exited")) != 1) {
			why = "worker_exited not exactly once (lost or doubled)";
		} else if (strcmp(json_string_value(json_object_get(w, "first")), "worker_registered") != 0) {
			why = "its first event is not worker_registered";
		} else {
			const char *key;
			json_t *v;
			json_object_foreach(w, key, v)
			{
				if (json_is_integer(v) && json_integer_value(v) > 1) {
					why = "an event twice";
					kind = key;
					twice = json_integer_value(v);
				}
			}
		}
		if (why != NULL && bad++ < 5) {
			char *dump = w != NULL ? json_dumps(w, JSON_COMPACT) : NULL;
			SOFT_CHECK(false, "%s: %s %s %lld: %s", id, why, kind, (long long)twice, dump != NULL ? dump : "");
			free(dump);
		}
	}
	json_decref(seen);
	OBSERVED("event storm: %d workers, 16-entry ring: %zu worker_exited; ring_full_deferrals %lld after the "
		 "registrations, %lld after the exits; ticks %lld -> %lld; workers_monitored now %lld",
		 N, exited, (long long)deferred0, (long long)deferred1, (long long)ticks, (long long)hb_metric("ticks"),
		 (long long)hb_metric("workers_monitored"));
	SOFT_CHECK(bad == 0, "%d storm workers had their events lost, doubled or out of order", bad);
	SOFT_CHECK(deferred0 >= 0 && deferred1 > deferred0,
		   "the exit storm never found the ring full (ring_full_deferrals %lld -> %lld): the test did not "
		   "exercise what it is named for",
		   (long long)deferred0, (long long)deferred1);
	SOFT_CHECK(hb_metric("workers_monitored") == 0, "workers_monitored is %lld after the storm",
		   (long long)hb_metric("workers_monitored"));
	int rc = itest_vigild_stop(&H, 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM", rc);
	soft_done();
}

/* ==== g. hostile segments ===================================================================== */

/* Creates H.shm by hand: size bytes, mode, the header of `slots` slots
 * with field overrides, owner uid. */
static void plant_segment(uint64_t size, mode_t mode, uint32_t slots, uint64_t magic, uint32_t abi, uid_t uid)
{
	shm_unlink(H.shm);
	int fd = shm_open(H.shm, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "shm_open %s: %s", H.shm, strerror(errno));
	CHECK(fchmod(fd, mode) == 0 && ftruncate(fd, (off_t)size) == 0, "size %s", H.shm);
	struct vigil_shm_header h;
	memset(&h, 0, sizeof h);
	h.magic = magic;
	h.abi_version = abi;
	h.header_size = VIGIL_HEADER_SIZE;
	h.slot_count = slots;
	h.hot_size = VIGIL_HOT_SIZE;
	h.cold_size = VIGIL_COLD_SIZE;
	h.view_size = VIGIL_VIEW_SIZE;
	h.hot_offset = VIGIL_HEADER_SIZE;
	h.cold_offset = h.hot_offset + (uint64_t)slots * VIGIL_HOT_SIZE;
	h.view_offset = h.cold_offset + (uint64_t)slots * VIGIL_COLD_SIZE;
	h.segment_size = vigil_segment_size(slots);
	if (size >= sizeof h)
		CHECK(pwrite(fd, &h, sizeof h, 0) == (ssize_t)sizeof h, "write header");
	if (uid != geteuid())
		CHECK(fchown(fd, uid, uid) == 0, "fchown: %s", strerror(errno));
	close(fd);
}

static void hostile_segments_refused(void **state)
{
	(void)state;
	struct {
		const char *what;
		uint64_t size;
		mode_t mode;
		uint32_t slots;
		uint64_t magic;
		uint32_t abi;
		uid_t uid;
		const char *says;
	} cases[] = {
		{"a bad magic", vigil_segment_size(64), 0600, 64, 0x1234, VIGIL_ABI_VERSION, 0, "bad header"},
		{"all zeroes", vigil_segment_size(64), 0600, 0, 0, 0, 0, "bad header"},
		{"the wrong size (header for 64 slots, object for 65)", vigil_segment_size(65), 0600, 64, VIGIL_MAGIC,
		 VIGIL_ABI_VERSION, 0, "bad header"},
		{"a size below one header", 100, 0600, 64, VIGIL_MAGIC, VIGIL_ABI_VERSION, 0, "size"},
		{"mode 0666", vigil_segment_size(64), 0666, 64, VIGIL_MAGIC, VIGIL_ABI_VERSION, 0, "mode"},
		{"another ABI", vigil_segment_size(64), 0600, 64, VIGIL_MAGIC, VIGIL_ABI_VERSION + 1, 0, "ABI"},
		{"another owner", vigil_segment_size(64), 0600, 64, VIGIL_MAGIC, VIGIL_ABI_VERSION, 65534, "owned by uid"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uid_t uid = cases[i].uid == 0 ? geteuid() : cases[i].uid;
		if (uid != geteuid() && geteuid() != 0) {
			OBSERVED("hostile segments: '%s' needs root: skipped", cases[i].what);
			continue;
		}
		plant_segment(cases[i].size, cases[i].mode, cases[i].slots, cases[i].magic, cases[i].abi, uid);
		char *err = NULL;
		int rc = itest_vigild_run(&H, NULL, &err, 10000);
		SOFT_CHECK(rc == 1, "segment with %s: vigild exited %d (want 1): %s", cases[i].what, rc, err != NULL ? err : "");
		SOFT_CHECK(err != NULL && strstr(err, cases[i].says) != NULL && strstr(err, H.shm) != NULL,
			   "segment with %s: the refusal does not say '%s' and the name: %s", cases[i].what, cases[i].says,
			   err != NULL ? err : "");
		if (i == 0 || i == 4 || i == 6)
			OBSERVED("hostile segments: %s: exit %d: %s", cases[i].what, rc, err != NULL ? err : "");
		free(err);
		/* Refused means untouched: no supervisor wrote itself in. */
		char path[128];
		snprintf(path, sizeof path, "/dev/shm%s", H.shm);
		struct stat st;
		SOFT_CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == cases[i].size && (st.st_mode & 0777) == cases[i].mode,
			   "segment with %s was changed or removed", cases[i].what);
		/* A worker refuses it too. */
		if (i == 0 || i == 5 || i == 6) {
			pid_t w = demo("worker-refused-001", "refused", 10);
			int wrc = itest_reap(w, 3000);
			SOFT_CHECK(wrc == 1, "a worker on a segment with %s exited %d (want 1)", cases[i].what, wrc);
		}
	}
	shm_unlink(H.shm);
	/* Our own: created 0600, owned by us, O_EXCL (a second vigild refuses). */
	itest_vigild_start(&H);
	char path[128];
	snprintf(path, sizeof path, "/dev/shm%s", H.shm);
	struct stat st;
	CHECK(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	SOFT_CHECK((st.st_mode & 0777) == 0600, "vigild's segment has mode %03o, want 600", (unsigned)(st.st_mode & 0777));
	SOFT_CHECK(st.st_uid == geteuid(), "vigild's segment is owned by uid %u", (unsigned)st.st_uid);
	char *err = NULL;
	int rc = itest_vigild_run(&H, NULL, &err, 20000); /* it waits 10 s for the first to stop */
	SOFT_CHECK(rc == 1 && err != NULL && strstr(err, "another vigild") != NULL,
		   "a second vigild on the same segment exited %d: %s", rc, err != NULL ? err : "");
	free(err);
	rc = itest_vigild_stop(&H, 10000);
	SOFT_CHECK(rc == 0, "vigild exited %d on SIGTERM", rc);
	soft_done();
}

int main(void)
{
	/* VIGIL_TEST_FILTER=full_tmpfs* runs only the matching tests. */
	if (getenv("VIGIL_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("VIGIL_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(scribbler_cannot_crash_or_misdirect_vigild, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_view_is_not_trusted, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_pid_is_never_signalled, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_ids_rejected_nothing_written_outside, setup, teardown),
		cmocka_unit_test_setup_teardown(planted_symlinks_are_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(leftover_temp_files_swept_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(full_tmpfs_monitoring_goes_on, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_rounds_nothing_forgotten_or_doubled, setup, teardown),
		cmocka_unit_test_setup_teardown(worker_dead_before_adoption_is_exited_and_restarted, setup, teardown),
		cmocka_unit_test_setup_teardown(killed_between_exec_and_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(low_nofile_degrades_to_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(event_storm_nothing_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_segments_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
