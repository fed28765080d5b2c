/*
 * itest.h - harness for vigil's integration tests: the real vigild, real
 * worker processes (vigil-demo-worker, bash scripts using the shell
 * emitter), a throw-away home and segment per test.
 *
 * Life cycle, cmocka style:
 *
 *     static int setup(void **state)    { itest_home_create(&H); ...; return 0; }
 *     static int teardown(void **state) { itest_teardown(); return 0; }
 *
 * Cleanup guarantee.  Every process the harness starts is recorded and put
 * in its own process group (so a bash worker's children go with it); the
 * test process is a child subreaper, so orphans come back to it and are
 * reaped.  itest_teardown() sends SIGCONT then SIGKILL to every recorded
 * group, reaps everything, shm_unlink()s every segment it made or was told
 * about, and removes every temporary home (workers are dead before their
 * home goes).  It is registered with atexit() on first use and is meant
 * to be called from every test's teardown too, so that nothing leaks when
 * an assertion fails: cmocka longjmps out of the test body, but the
 * teardown still runs.
 *
 * Failures inside the harness (a process that does not start, an event
 * file with a line that is not one JSON object, ...) fail the current test
 * through cmocka's fail_msg().
 *
 * Timing.  The speed of vigil is judged by the bench, not here.  These
 * tests judge ORDER strictly (never before the instant, events in their
 * order) and judge upper BOUNDS with an allowance for scheduling noise:
 * itest_slack_ms(), from $VIGIL_TEST_SLACK_MS, default 60 ms.  Sanitizer
 * builds and loaded CI machines set it higher; no test may need it to be
 * lower.  Every wait in the harness is bounded.
 */
#ifndef VIGIL_ITEST_H
#define VIGIL_ITEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ITEST_PATH_MAX 512
/* vigild's restart log, relative to the home. */
#define ITEST_RESTART_LOG "agents/logs/system/worker-restart-daemon.log"

struct itest_home {
	char dir[ITEST_PATH_MAX];    /* /tmp/vigil-it-XXXXXX */
	char shm[64];                /* /vigil-it-<pid>-<n> */
	char pidfile[ITEST_PATH_MAX];/* <dir>/vigild.pid */
	pid_t vigild;                /* 0 when not running */
	/* The heartbeat policy last written by itest_write_policy (seconds). */
	double interval, timeout, zombie;
};

/* ---- time ------------------------------------------------------------- */

int64_t itest_now_ms(void);          /* CLOCK_REALTIME, ms (events use it) */
int64_t itest_mono_ms(void);         /* CLOCK_MONOTONIC, ms (for deadlines) */
void itest_sleep_ms(int ms);
/* Allowance for scheduling noise on upper bounds: $VIGIL_TEST_SLACK_MS or 60. */
int itest_slack_ms(void);
/* vigild's effective tick for the policy in h: min(0.1 s, interval / 4), in ms. */
double itest_tick_ms(const struct itest_home *h);

/* ---- homes, policies --------------------------------------------------- */

/* A fresh temporary home and a unique segment name (nothing is created in
 * the segment namespace yet).  Registers the cleanup with atexit(). */
void itest_home_create(struct itest_home *h);
/* "<dir>/<rel>" into buf (ITEST_PATH_MAX). */
const char *itest_path(const struct itest_home *h, const char *rel, char *buf);
/* Writes coordination/config/heartbeat-policy.json (temp file + rename)
 * with the three durations and, when extra is not NULL, more members
 * ("\"tick_seconds\": 0.01, ..." without braces).  A copy of the text is
 * kept at <dir>/heartbeat-policy.good.json for tests that edit the live
 * file and need the original. */
void itest_write_policy(struct itest_home *h, double interval, double timeout, double zombie, const char *extra);
/* Writes text to <dir>/<rel> (creating parent directories under dir). */
void itest_write_file(const struct itest_home *h, const char *rel, const char *text);
/* Contents of <dir>/<rel>, malloc'd and NUL-terminated; NULL if absent. */
char *itest_read_file(const struct itest_home *h, const char *rel);
bool itest_exists(const struct itest_home *h, const char *rel);
/* Polls every 5 ms until <dir>/<rel> exists (or, with exists=false, is
 * gone); true when it happened within timeout_ms. */
bool itest_wait_file(const struct itest_home *h, const char *rel, bool exists, int timeout_ms);
/* Parses <dir>/<rel> as one JSON document: new reference, or NULL when the
 * file is absent.  A file that exists but does not parse fails the test. */
json_t *itest_read_json(const struct itest_home *h, const char *rel);
/* Polls until the file at <dir>/<rel> contains needle (strstr); true when
 * it did within timeout_ms. */
bool itest_wait_text(const struct itest_home *h, const char *rel, const char *needle, int timeout_ms);
/* Occurrences of needle in <dir>/<rel> (0 when the file is absent). */
int itest_count_text(const struct itest_home *h, const char *rel, const char *needle);
/* Polls every 5 ms until needle occurs at least n times; true when it did
 * within timeout_ms. */
bool itest_wait_text_count(const struct itest_home *h, const char *rel, const char *needle, int n, int timeout_ms);

/* ---- vigild -------------------------------------------------------------- */

/* Starts VIGILD_PATH --home dir --shm shm --pidfile dir/vigild.pid with
 * stdout and stderr appended to dir/vigild.out, and waits (at most 10 s)
 * until the pid file names it and a heartbeat-monitor-metrics.json written
 * by it exists.  Fails the test if vigild exits or does not get there. */
pid_t itest_vigild_start(struct itest_home *h);
/* SIGTERM, then waits up to timeout_ms; returns the exit code (0..255),
 * 128 + signal if killed by one, or -1 if it did not exit in time (it is
 * then SIGKILLed and reaped). */
int itest_vigild_stop(struct itest_home *h, int timeout_ms);
/* SIGKILL and reap (a crash, from the workers' point of view). */
void itest_vigild_kill9(struct itest_home *h);

/* ---- processes ------------------------------------------------------------ */

/* Starts DEMO_WORKER_PATH with WORKER_ID/WORKER_TYPE/TASK_ID (task may be
 * NULL) and VIGIL_SHM of h; args is a NULL-terminated list of extra
 * arguments (may be NULL).  stderr goes to dir/worker-<id>.err.  Returns
 * the pid. */
pid_t itest_worker_start(const struct itest_home *h, const char *id, const char *type, const char *task,
			 const char *const *args);
/* Starts `bash -c script` in the background with COMMIT_RELAY_HOME,
 * VIGIL_SHM, VIGILCTL and SHIM (the shell emitter's path) in its
 * environment; output to dir/bash-<n>.out.  Returns the pid of bash. */
pid_t itest_bash_start(const struct itest_home *h, const char *script);
/* Runs `bash -c script` (same environment) to completion, at most
 * timeout_ms; *out (may be NULL) receives its stdout, malloc'd.  stderr is
 * passed through to the test's stderr.  Returns the exit code, 128+signal,
 * or -1 on timeout (the script's process group is killed). */
int itest_sh(const struct itest_home *h, const char *script, char **out, int timeout_ms);
/* Runs argv (argv[0] a path) to completion with extra environment
 * entries env ("K=V", NULL-terminated, may be NULL), capturing stdout and
 * stderr (malloc'd, may be NULL).  Returns as itest_sh. */
int itest_run(const char *const *argv, const char *const *env, char **out, char **err, int timeout_ms);
/* Records a pid started elsewhere so that itest_teardown() kills it. */
void itest_track_pid(pid_t pid);
/* kill(pid, sig), failing the test on error. */
void itest_signal(pid_t pid, int sig);
/* True while pid exists and is not a zombie. */
bool itest_alive(pid_t pid);
/* /proc/<pid>/stat into buf (NUL-terminated): buf, or NULL when pid is gone. */
const char *itest_proc_stat(pid_t pid, char *buf, size_t len);
/* Polls every 5 ms until /proc/<pid>/comm starts with prefix (an exec has
 * happened); true when it did within timeout_ms (0: look once). */
bool itest_wait_comm(pid_t pid, const char *prefix, int timeout_ms);
/* Waits up to timeout_ms for our child pid to end and reaps it: returns
 * the exit code, 128 + signal, or -1 on timeout (the child is left alone). */
int itest_reap(pid_t pid, int timeout_ms);
/* SIGKILL (after SIGCONT) and reap one recorded process. */
void itest_kill(pid_t pid);

/* ---- events ------------------------------------------------------------------ */

/*
 * The lines of a .jsonl file as a JSON array of objects (new reference;
 * empty array when the file does not exist).  file is a path relative to
 * the home, or a bare name under coordination/events/.  Every complete
 * line must be one JSON object - that is a product guarantee - and a line
 * that is not fails the test.  A last fragment without its newline is a
 * write in progress (the kernel may let a reader see part of a write that
 * crosses a page) and is not returned.
 */
json_t *itest_read_jsonl(const struct itest_home *h, const char *file);
/* The first event named event (and, when worker_id is not NULL, about that
 * worker) in file: new reference or NULL. */
json_t *itest_find_event(const struct itest_home *h, const char *file, const char *event, const char *worker_id);
/* Polls every 5 ms, at most timeout_ms, for itest_find_event. */
json_t *itest_wait_event(const struct itest_home *h, const char *file, const char *event, const char *worker_id,
			 int timeout_ms);
/* How many events named event (NULL: any) about worker_id (NULL: any). */
size_t itest_count_events(const struct itest_home *h, const char *file, const char *event, const char *worker_id);
/* Integer member of an object (fails the test when missing or not an integer). */
int64_t itest_int(const json_t *obj, const char *key);
/* String member of an object, "" when missing or not a string. */
const char *itest_str(const json_t *obj, const char *key);

/* ---- cleanup ------------------------------------------------------------------- */

/* Scans what the processes of h printed (vigild.out, worker-*.err,
 * bash-*.out) for sanitizer reports (AddressSanitizer, LeakSanitizer,
 * ThreadSanitizer, UBSan "runtime error:"); prints each file that has one
 * to stderr and returns how many did.  A ThreadSanitizer race does not
 * stop vigild, so a test's teardown calls this to fail the test on it. */
int itest_sanitizer_reports(const struct itest_home *h);

/* Kills and reaps every process started, unlinks every segment, removes
 * every home.  Idempotent; safe from atexit(). */
void itest_teardown(void);
/* The end of a test with a home: stops vigild politely (so that a sanitizer
 * build prints its exit-time reports), kills the workers still on h's
 * segment, scans for sanitizer reports, runs before_files_go (may be NULL:
 * a test's own cleanup that needs the processes dead and the files still
 * there), then itest_teardown() and clears h.  0, or -1 when a sanitizer
 * reported (a cmocka teardown's return value). */
int itest_finish(struct itest_home *h, void (*before_files_go)(void));
/* Also unlink this segment name at teardown (a segment a test made itself). */
void itest_track_segment(const char *name);

/* ---- additions (self-healing tests) --------------------------------------------- */

/* As itest_vigild_start, with extra vigild arguments (NULL-terminated, may
 * be NULL), e.g. {"--slots", "1", NULL}. */
pid_t itest_vigild_start_args(struct itest_home *h, const char *const *extra);
/* Live (not zombie) processes whose initial environment (/proc/PID/environ)
 * holds every entry of envs ("K=V", NULL-terminated), this process
 * excluded.  Up to max pids into out (may be NULL); returns how many
 * matched. */
int itest_procs_with_env(const char *const *envs, pid_t *out, int max);
/* SIGCONT + SIGKILL to every process whose environment has VIGIL_SHM=shm:
 * the workers vigild started live in sessions of their own and outlive a
 * vigild that was stopped or killed, so the harness's own list does not
 * know them.  Call it from a teardown before itest_teardown() (which then
 * reaps those that were handed to us as orphans).  Returns how many were
 * signalled. */
int itest_kill_segment_users(const char *shm);
/* The live processes of worker_id on h's segment (by VIGIL_SHM and
 * WORKER_ID in their environment), as itest_procs_with_env. */
int itest_procs_of(const struct itest_home *h, const char *worker_id, pid_t *out, int max);

/* ---- additions (hostile tests) ------------------------------------------------------------------ */

/* As itest_vigild_start_args, with vigild run through a wrapper command
 * that execs it (prefix: NULL-terminated, e.g. {"/usr/bin/prlimit",
 * "--nofile=64:64", "--", NULL}); the wrapper's pid is vigild's. */
/* vigilctl --home --shm of h, then args (NULL-ended); out/err malloc'd
 * (may be NULL); exit code, as itest_run. */
int itest_vigilctl(const struct itest_home *h, char **out, char **err, const char *const *args);
pid_t itest_vigild_start_prefixed(struct itest_home *h, const char *const *prefix, const char *const *extra);
/* Runs vigild (same --home/--shm/--pidfile, plus extra) to completion, at
 * most timeout_ms, for start-up refusals: returns its exit code (as
 * itest_run) and its stderr in *err (malloc'd, may be NULL). */
int itest_vigild_run(const struct itest_home *h, const char *const *extra, char **err, int timeout_ms);

#endif /* VIGIL_ITEST_H */
