/*
 * bench.h - vigil-bench: shared helpers of the benchmark harness.
 *
 * The harness measures vigil next to its peers in the same run (see
 * bench/README.md).  Every scenario returns one JSON object (jansson) that
 * vigil-bench.c puts into the result file and renders as markdown.
 *
 * Cleanup guarantee: every process the harness starts, every segment name
 * it uses and its one temporary directory are recorded here; bench_cleanup()
 * kills and reaps the processes (and, because the harness is a child
 * subreaper, every orphan they leave, e.g. workers vigild spawned),
 * shm_unlink()s the segments and removes the directory.  It runs from
 * atexit() and from the SIGINT/SIGTERM/SIGHUP handler, and only uses
 * async-signal-safe calls.
 */
#ifndef VIGIL_BENCH_H
#define VIGIL_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_PATH_MAX 1024

/* ---- options ------------------------------------------------------------- */

struct bench_opts {
	bool quick;
	char vigild[BENCH_PATH_MAX];
	char vigilctl[BENCH_PATH_MAX];
	char worker[BENCH_PATH_MAX];
	char jq[BENCH_PATH_MAX];      /* "" when jq is not installed */
	char tmproot[BENCH_PATH_MAX]; /* the run's temporary directory */
	/* fleet */
	uint32_t fleet_sizes[8];
	int n_fleet_sizes;
	double fleet_seconds;
	uint32_t fleet_inject;        /* k: SIGKILL k, SIGSTOP k */
	bool fleet_no_default;
	double fleet_spec_refresh;    /* --spec-refresh S: spec_refresh_seconds in the fleet's policy (0: vigild's default) */        /* --fleet-no-default: skip the runbook-default-policy run */
	/* scan */
	uint32_t scan_sizes[8];
	int n_scan_sizes;
	/* runbook */
	uint32_t runbook_sizes[8];
	int n_runbook_sizes;
	/* restart */
	uint32_t restart_iterations;
	bool verbose;
};

extern struct bench_opts g_opts;

/* ---- time ------------------------------------------------------------------- */

uint64_t bench_mono_ns(void);
int64_t bench_real_ms(void);
int64_t bench_real_us(void);
void bench_sleep_ms(double ms);

/* ---- logging (stderr) ------------------------------------------------------- */

void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* --verbose only */

/* ---- cleanup registry ------------------------------------------------------- */

void bench_cleanup_init(void);  /* subreaper, handlers, atexit */
void bench_cleanup(void);       /* idempotent; async-signal-safe */
void bench_track_pid(pid_t pid);
void bench_untrack_pid(pid_t pid);
void bench_track_segment(const char *name);
void bench_untrack_segment(const char *name);
/* Kills (SIGKILL) every tracked process and every child we have, reaps. */
void bench_kill_all(void);
/* Removes a directory tree (async-signal-safe; no symlinks followed). */
int bench_rmtree(const char *path);
/* Reaps whatever exited, without blocking; returns how many. */
int bench_reap_nohang(void);

/* ---- processes -------------------------------------------------------------- */

struct bench_spawn {
	const char *const *argv;
	const char *const *envp;  /* NULL: our environment */
	const char *stdin_path;   /* NULL: /dev/null */
	const char *stdout_path;  /* NULL: /dev/null; appended */
	const char *stderr_path;  /* NULL: /dev/null; appended */
	pid_t pgroup;             /* -1 none, 0 new group, >0 join */
};
/* posix_spawn; the pid is tracked for cleanup.  -errno on failure. */
pid_t bench_spawn(const struct bench_spawn *sp);
/* Waits up to timeout_ms for pid; returns the wait status, or -ETIMEDOUT.
 * The pid stops being tracked once reaped. */
int bench_wait(pid_t pid, int timeout_ms);
/* SIGTERM, wait up to grace_ms, then SIGKILL; returns the wait status. */
int bench_stop(pid_t pid, int grace_ms);
/* Runs argv to completion (stdout/stderr to the given files or /dev/null),
 * returns the wall time in ns, or 0 on failure; *status gets the status. */
uint64_t bench_run_timed(const struct bench_spawn *sp, int timeout_ms, int *status);

/* ---- files ------------------------------------------------------------------ */

int bench_mkdirs(const char *path); /* mkdir -p, 0700 */
int bench_write_file(const char *path, const char *text); /* temp + rename */
char *bench_read_file(const char *path, size_t *len);    /* malloc'd, NUL-terminated */
bool bench_exists(const char *path);
/* Number of entries of dir whose name starts with prefix and ends with suffix. */
long bench_count_dir(const char *dir, const char *prefix, const char *suffix);
/* Calls fn for each line of a .jsonl file that parses as a JSON object. */
int bench_jsonl_each(const char *path, void (*fn)(json_t *o, void *ctx), void *ctx);
/* Full path of an executable found in PATH, or "" (out has BENCH_PATH_MAX). */
bool bench_which(const char *name, char *out);

/* ---- /proc ------------------------------------------------------------------ */

struct bench_proc {
	uint64_t utime_ticks, stime_ticks;
	uint64_t vm_rss_kb, rss_anon_kb, rss_file_kb, rss_shmem_kb, vm_hwm_kb;
	int threads;
};
int bench_proc_read(pid_t pid, struct bench_proc *out);
/* CPU seconds of the thread whose tid is the pid (vigild: the action
 * thread) and of all the other threads (vigild: the scanner). */
int bench_proc_thread_cpu(pid_t pid, double *main_s, double *others_s, int *nthreads);
/* Busy and total jiffies of the whole machine (from /proc/stat). */
void bench_machine_cpu(uint64_t *busy, uint64_t *total);
/* Snapshot of /proc/stat; bench_machine_since() says how busy the machine
 * was since (all CPUs, %), how much time the hypervisor stole, and the load
 * average now: how noisy the figures taken meanwhile are. */
struct bench_machine_snap {
	uint64_t busy, steal, total;
};
void bench_machine_snap(struct bench_machine_snap *s);
json_t *bench_machine_since(const struct bench_machine_snap *s0);
double bench_loadavg1(void);

/* ---- CPU pinning ------------------------------------------------------------ */

int bench_ncpus(void);
int bench_pin_self(int cpu);      /* calling thread; -errno */
void bench_unpin_self(void);      /* back to the mask we started with */

/* ---- statistics --------------------------------------------------------------- */

void bench_sort(double *v, size_t n);
double bench_median(double *v, size_t n); /* sorts v */
double bench_pct(double *v, size_t n, double p); /* nearest rank; sorts v */
/* {"median","min","max","n"} (+ "p99" when with_p99) from n samples. */
json_t *bench_stats_json(double *v, size_t n, bool with_p99);

/* ---- vigild homes -------------------------------------------------------------- */

struct bench_home {
	char dir[BENCH_PATH_MAX];
	char shm[128];
	pid_t vigild;
	uint32_t slots;
};
/* A fresh home under tmproot and a segment name /vigil-bench-<pid>-<tag>. */
int bench_home_create(struct bench_home *h, const char *tag, uint32_t slots);
/* Writes coordination/config/<file> with text. */
int bench_home_policy(const struct bench_home *h, const char *file, const char *json_text);
/* Starts vigild on the home and waits until it has written its metrics. */
int bench_home_start(struct bench_home *h);
/* SIGTERM (clean stop), then SIGKILL if it does not go. */
void bench_home_stop(struct bench_home *h);
/* Stops vigild, kills what remains, unlinks the segment, removes the home. */
void bench_home_destroy(struct bench_home *h);
/* "<dir>/<rel>" */
const char *bench_home_path(const struct bench_home *h, const char *rel, char *buf, size_t len);
/* coordination/metrics/heartbeat-monitor-metrics.json, or NULL. */
json_t *bench_home_metrics(const struct bench_home *h);
double bench_json_num(json_t *o, const char *key); /* NAN when absent */

/* ---- scenarios ------------------------------------------------------------------ */

json_t *bench_beat(void);
json_t *bench_scan(void);
json_t *bench_fleet(void);
json_t *bench_restart(void);
json_t *bench_runbook(void);

#endif /* VIGIL_BENCH_H */
