/*
 * fleet.c - scenario "fleet": N real worker processes under the real
 * vigild, its cost, and how exactly it judges them.
 *
 * A fresh home and segment; policy interval 1 s, timeout 3 s, zombie 6 s
 * (decay 5, min health 20: the zombie instant is the 6 s threshold), the
 * default tick (0.1 s) and snapshot interval (1 s), so snapshots are on.
 * Auto-fix runs in dry_run (patterns are analysed, nothing is restarted or
 * killed behind the benchmark's back).  N vigil-demo-worker processes
 * register themselves (WORKER_ID...) and beat every 100 ms (10 Hz).
 *
 * 1. Steady state.  Once vigild monitors all N and a settle time has
 *    passed, a window of --fleet-seconds: vigild's CPU (utime+stime from
 *    /proc/<pid>/stat) as % of one core, its RSS (baseline before any
 *    worker and at the end: memory per worker), and from its own metrics
 *    file the beats credited, spec files written, ticks, tick overruns and
 *    scan times.
 * 2. Injection.  At one instant T, SIGKILL k workers and SIGSTOP k others.
 *    From the event files: for kills, worker_exited.timestamp_ms - T (how
 *    fast a death is seen); for stops, each verdict's timestamp_ms - due_ms
 *    (due = last_seen + threshold, as the events carry it), p50/p99/max per
 *    verdict; verdicts before due; and every verdict about a worker that
 *    was not touched (false verdicts), over the whole run.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLEET_INTERVAL_S 1.0
#define FLEET_TIMEOUT_S 3.0
#define FLEET_ZOMBIE_S 6.0
#define FLEET_BEAT_MS 100

enum { UNTOUCHED = 0, KILLED = 1, STOPPED = 2 };

struct vlist {
	double *v;
	size_t n, cap;
};

static void vpush(struct vlist *l, double x)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		double *nv = realloc(l->v, nc * sizeof *nv);
		if (nv == NULL)
			return;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = x;
}

struct collect {
	uint32_t n;
	uint8_t *touched;
	int64_t t_kill_us, t_stop_us;
	struct vlist kill_seen;       /* worker_exited - T (ms) */
	struct vlist missed, timeout, zombie; /* detected - due (ms) */
	struct vlist ext_last_seen;   /* last_seen_ms - T_stop (ms) */
	uint32_t early;               /* verdicts before due */
	uint32_t false_by[8];
	uint32_t host_stall, supervisor_stall, registered, exited_seen, zombie_seen;
	uint8_t *got_exit, *got_zombie;
	/* Sub-millisecond view of the kills (bench/README.md, fleet): per
	 * worker index, when we sent SIGKILL, when our own pidfd said it was
	 * gone, and when the events (file tail) first showed its verdicts. */
	int64_t *kill_us, *death_us, *exit_file_us, *zombie_file_us;
	struct vlist kill_seen_us;    /* worker_exited.timestamp_us - SIGKILL (ms) */
	struct vlist kill_death;      /* our pidfd readable - SIGKILL (ms) */
	struct vlist death_seen;      /* worker_exited.timestamp_us - our pidfd readable (ms) */
	struct vlist exit_file_lag;   /* in the file - timestamp (ms) */
	struct vlist zombie_file_lag; /* in the file - timestamp (ms) */
	struct vlist zombie_file_after_stop; /* in the file - SIGSTOP (ms) */
	uint32_t zombies_by_old_read;  /* in the file by SIGSTOP + zombie + 2 s (the old fixed read) */
	uint32_t zombie_stamped_by_old_read; /* timestamp_ms by then (when vigild decided) */
	double old_read_ms;            /* that instant (unix ms) */
};

static const char *const false_names[] = {"heartbeat_missed", "heartbeat_timeout", "zombie_detected",
					   "worker_exited",    "worker_vanished",   "worker_rejected",
					   "worker_detached",  "heartbeat_recovered"};

static long id_index(const char *id, uint32_t n)
{
	unsigned idx;
	char tail;
	if (id == NULL || sscanf(id, "worker-bench-%5u%c", &idx, &tail) != 1 || idx >= n)
		return -1;
	return (long)idx;
}

static void on_event(json_t *o, void *ctx)
{
	struct collect *c = ctx;
	const char *ev = json_string_value(json_object_get(o, "event"));
	if (ev == NULL)
		return;
	if (strcmp(ev, "host_stall_suspected") == 0) {
		c->host_stall++;
		return;
	}
	if (strcmp(ev, "supervisor_stall") == 0) {
		c->supervisor_stall++;
		return;
	}
	if (strcmp(ev, "worker_registered") == 0 || strcmp(ev, "worker_adopted") == 0) {
		c->registered++;
		return;
	}
	long idx = id_index(json_string_value(json_object_get(o, "worker_id")), c->n);
	double ts = bench_json_num(o, "timestamp_ms");
	double due = bench_json_num(o, "due_ms");
	double last = bench_json_num(o, "last_seen_ms");
	int t = idx >= 0 ? c->touched[idx] : UNTOUCHED;
	if (t == UNTOUCHED) {
		for (size_t i = 0; i < sizeof false_names / sizeof false_names[0]; i++)
			if (strcmp(ev, false_names[i]) == 0)
				c->false_by[i]++;
		return;
	}
	if (t == KILLED && strcmp(ev, "worker_exited") == 0 && !c->got_exit[idx]) {
		c->got_exit[idx] = 1;
		c->exited_seen++;
		/* Event stamps are whole milliseconds (truncated): compare with
		 * the millisecond the kill was sent in, so 0 means "the same
		 * millisecond" and the figure is never negative by rounding. */
		vpush(&c->kill_seen, ts - floor((double)c->t_kill_us / 1000.0));
		double us = bench_json_num(o, "timestamp_us");
		if (isfinite(us)) {
			vpush(&c->kill_seen_us, (us - (double)c->kill_us[idx]) / 1000.0);
			if (c->death_us[idx] > 0)
				vpush(&c->death_seen, (us - (double)c->death_us[idx]) / 1000.0);
		}
		if (c->death_us[idx] > 0)
			vpush(&c->kill_death, (double)(c->death_us[idx] - c->kill_us[idx]) / 1000.0);
		if (c->exit_file_us[idx] > 0)
			vpush(&c->exit_file_lag, (double)c->exit_file_us[idx] / 1000.0 - ts);
		return;
	}
	if (t != STOPPED || !isfinite(due))
		return;
	double d = ts - due;
	if (d < 0)
		c->early++;
	if (strcmp(ev, "heartbeat_missed") == 0) {
		vpush(&c->missed, d);
		if (isfinite(last))
			vpush(&c->ext_last_seen, last - (double)c->t_stop_us / 1000.0);
	} else if (strcmp(ev, "heartbeat_timeout") == 0) {
		vpush(&c->timeout, d);
	} else if (strcmp(ev, "zombie_detected") == 0 && !c->got_zombie[idx]) {
		c->got_zombie[idx] = 1;
		c->zombie_seen++;
		vpush(&c->zombie, d);
		c->zombie_stamped_by_old_read += ts <= c->old_read_ms;
		if (c->zombie_file_us[idx] > 0) {
			vpush(&c->zombie_file_lag, (double)c->zombie_file_us[idx] / 1000.0 - ts);
			vpush(&c->zombie_file_after_stop, (double)(c->zombie_file_us[idx] - c->t_stop_us) / 1000.0);
			c->zombies_by_old_read += (double)c->zombie_file_us[idx] / 1000.0 <= c->old_read_ms;
		}
	}
}

/* ---- the harness's own pidfds: when did each killed worker really die? ----
 * A SIGKILLed process is gone only once it has run its exit path, which on
 * a host saturated by the fleet waits for a CPU like any other task.  A
 * thread of ours (SCHED_FIFO when allowed, so that it is not itself the one
 * waiting) stamps the instant each pidfd becomes readable: SIGKILL -> gone is
 * the kernel's and the victim's share, gone -> worker_exited is vigild's. */
struct deathwatch {
	int epfd;
	uint32_t n;           /* pidfds in the set */
	int64_t *death_us;    /* per worker index */
	_Atomic bool stop;
	pthread_t th;
	bool started;
	char sched[32];       /* what priority the thread got */
};

static void *deathwatch_main(void *arg)
{
	struct deathwatch *d = arg;
	uint32_t left = d->n;
	/* Bounded: ends when every pidfd fired or the harness says stop. */
	while (left > 0 && !atomic_load(&d->stop)) {
		struct epoll_event evs[16];
		int r = epoll_wait(d->epfd, evs, 16, 50);
		int64_t now = bench_real_us();
		for (int i = 0; i < r; i++) {
			uint32_t idx = (uint32_t)evs[i].data.u64;
			if (d->death_us[idx] == 0) {
				d->death_us[idx] = now;
				left--;
			}
			epoll_ctl(d->epfd, EPOLL_CTL_DEL, (int)(evs[i].data.u64 >> 32), NULL);
		}
	}
	return NULL;
}

/* An incremental reader of a .jsonl file: stamps when each line of
 * interest (a verdict about a touched worker) first appears. */
struct tail {
	char path[BENCH_PATH_MAX + 64];
	off_t off;
};

static void tail_poll(struct tail *t, struct collect *c, const char *event, int64_t *seen_us, uint32_t *count)
{
	int fd = open(t->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	static char buf[1 << 20];
	int64_t now = bench_real_us();
	/* Bounded by the file's growth since the last poll (1 MiB per pass). */
	ssize_t r = pread(fd, buf, sizeof buf - 1, t->off);
	close(fd);
	if (r <= 0)
		return;
	buf[r] = '\0';
	char *end = memrchr(buf, '\n', (size_t)r);
	if (end == NULL)
		return; /* a line still being written: next poll */
	t->off += end - buf + 1;
	for (char *line = buf; line < end;) {
		char *nl = memchr(line, '\n', (size_t)(end - line) + 1);
		*nl = '\0';
		if (strstr(line, event) != NULL) {
			json_t *o = json_loads(line, 0, NULL);
			const char *ev = json_string_value(json_object_get(o, "event"));
			long idx = id_index(json_string_value(json_object_get(o, "worker_id")), c->n);
			if (ev != NULL && strcmp(ev, event) == 0 && idx >= 0 && c->touched[idx] != UNTOUCHED &&
			    seen_us[idx] == 0) {
				seen_us[idx] = now;
				(*count)++;
			}
			json_decref(o);
		}
		line = nl + 1;
	}
}

static json_t *lat_json(struct vlist *l)
{
	return bench_stats_json(l->v, l->n, true);
}

static double proc_cpu_s(const struct bench_proc *p)
{
	return (double)(p->utime_ticks + p->stime_ticks) / (double)sysconf(_SC_CLK_TCK);
}

static double mdelta(json_t *a, json_t *b, const char *k)
{
	return bench_json_num(b, k) - bench_json_num(a, k);
}

/* Can this host run n workers at once?  NULL, or why not (for the result's
 * "skipped" line): pid_max, the fd limit vigild inherits (one pidfd per
 * worker), memory (about 1 MB per worker process, kernel structures
 * included, with room to spare). */
static const char *fleet_cannot(uint32_t n, char *why, size_t len)
{
	long pid_max = 0;
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	if (f != NULL) {
		if (fscanf(f, "%ld", &pid_max) != 1)
			pid_max = 0;
		fclose(f);
	}
	if (pid_max > 0 && (uint64_t)pid_max < (uint64_t)n + 2000) {
		snprintf(why, len, "kernel.pid_max is %ld: %u workers and the rest of the host do not fit", pid_max, n);
		return why;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)n + 1024) {
		snprintf(why, len, "RLIMIT_NOFILE is %llu (hard %llu): vigild needs one pidfd per worker (%u + its own)",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, n);
		return why;
	}
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)n + 500 &&
	    geteuid() != 0) {
		snprintf(why, len, "RLIMIT_NPROC is %llu: %u worker processes do not fit", (unsigned long long)rl.rlim_cur,
			 n);
		return why;
	}
	long avail_kb = 0;
	f = fopen("/proc/meminfo", "r");
	if (f != NULL) {
		char line[256];
		while (fgets(line, sizeof line, f) != NULL)
			if (sscanf(line, "MemAvailable: %ld kB", &avail_kb) == 1)
				break;
		fclose(f);
	}
	if (avail_kb > 0 && (uint64_t)avail_kb < (uint64_t)n * 1024) {
		snprintf(why, len, "MemAvailable is %ld MiB: %u workers need about %u MiB", avail_kb / 1024, n, n);
		return why;
	}
	return NULL;
}

/* defaults: the runbook's default policy (30/120/300 s) and workers whose
 * progress does not move, steady window only: what the spec rewrites cost. */
static json_t *fleet_one(uint32_t n, double seconds, uint32_t k, bool defaults)
{
	json_t *o = json_object();
	json_object_set_new(o, "workers", json_integer(n));
	json_object_set_new(o, "variant", json_string(defaults ? "runbook_default_policy" : "fast_policy"));
	json_object_set_new(o, "window_seconds", json_real(seconds));
	json_object_set_new(o, "beat_ms", json_integer(FLEET_BEAT_MS));
	const double interval = defaults ? 30.0 : FLEET_INTERVAL_S, timeout = defaults ? 120.0 : FLEET_TIMEOUT_S,
		     zombie = defaults ? 300.0 : FLEET_ZOMBIE_S;
	json_object_set_new(o, "policy", json_pack("{s:f,s:f,s:f,s:i,s:i,s:f,s:f,s:s}", "heartbeat_interval_seconds",
						  interval, "heartbeat_timeout_seconds", timeout,
						  "zombie_threshold_seconds", zombie, "health_score_decay_rate",
						  5, "min_health_score", 20, "tick_seconds", 0.1,
						  "snapshot_interval_seconds", 1.0, "auto_fix", "dry_run"));
	json_object_set_new(o, "worker_progress", json_string(defaults ? "constant" : "+1 per beat"));
	{
		char why[256];
		if (fleet_cannot(n, why, sizeof why) != NULL) {
			bench_log("fleet %u: skipped: %s", n, why);
			json_object_set_new(o, "skipped", json_string(why));
			return o;
		}
	}
	char tag[32];
	snprintf(tag, sizeof tag, "fleet%u%s", n, defaults ? "d" : "");
	struct bench_home h;
	memset(&h, 0, sizeof h);
	pid_t pgid = 0;
	uint32_t slots = (n + 64 + 63) & ~63u;
	pid_t *pids = calloc(n, sizeof *pids);
	struct collect c;
	memset(&c, 0, sizeof c);
	c.n = n;
	c.touched = calloc(n, 1);
	c.got_exit = calloc(n, 1);
	c.got_zombie = calloc(n, 1);
	c.kill_us = calloc(n, sizeof *c.kill_us);
	c.death_us = calloc(n, sizeof *c.death_us);
	c.exit_file_us = calloc(n, sizeof *c.exit_file_us);
	c.zombie_file_us = calloc(n, sizeof *c.zombie_file_us);
	if (pids == NULL || c.touched == NULL || c.got_exit == NULL || c.got_zombie == NULL || c.kill_us == NULL ||
	    c.death_us == NULL || c.exit_file_us == NULL || c.zombie_file_us == NULL ||
	    bench_home_create(&h, tag, slots) < 0) {
		json_object_set_new(o, "error", json_string("setup failed"));
		goto out;
	}
	char pol[512], refresh[64] = "";
	if (g_opts.fleet_spec_refresh > 0) {
		snprintf(refresh, sizeof refresh, ", \"spec_refresh_seconds\": %g", g_opts.fleet_spec_refresh);
		json_object_set_new(json_object_get(o, "policy"), "spec_refresh_seconds",
				    json_real(g_opts.fleet_spec_refresh));
	}
	snprintf(pol, sizeof pol,
		 "{\"heartbeat_interval_seconds\": %g, \"heartbeat_timeout_seconds\": %g, "
		 "\"zombie_threshold_seconds\": %g, \"health_score_decay_rate\": 5, \"min_health_score\": 20%s}\n",
		 interval, timeout, zombie, refresh);
	bench_home_policy(&h, "heartbeat-policy.json", pol);
	bench_home_policy(&h, "auto-fix-policy.json", "{\"enabled\": true, \"dry_run\": true}\n");
	if (bench_home_start(&h) < 0) {
		json_object_set_new(o, "error", json_string("vigild did not start"));
		goto out;
	}
	bench_sleep_ms(g_opts.quick ? 300 : 1000);
	struct bench_proc base;
	bench_proc_read(h.vigild, &base);

	/* ---- start the fleet ---- */
	bench_log("fleet %u: starting %u workers", n, n);
	uint64_t s0 = bench_mono_ns();
	char shm_env[160];
	snprintf(shm_env, sizeof shm_env, "VIGIL_SHM=%s", h.shm);
	uint32_t started = 0;
	for (uint32_t i = 0; i < n; i++) {
		char id[64], task[64];
		snprintf(id, sizeof id, "WORKER_ID=worker-bench-%05u", i);
		snprintf(task, sizeof task, "TASK_ID=fleet-%05u", i);
		const char *envp[] = {shm_env, id, "WORKER_TYPE=bench", task, NULL};
		const char *argv[] = {g_opts.worker, "--beat-ms", "100", "--progress-step", defaults ? "0" : "1", NULL};
		struct bench_spawn sp = {.argv = argv, .envp = envp, .pgroup = pgid};
		pid_t p = bench_spawn(&sp);
		if (p < 0) {
			bench_log("fleet %u: cannot start worker %u: %s", n, i, strerror((int)-p));
			break;
		}
		if (pgid == 0)
			pgid = p;
		pids[i] = p;
		started++;
	}
	uint64_t s1 = bench_mono_ns();
	json_object_set_new(o, "workers_started", json_integer(started));
	json_object_set_new(o, "spawn_seconds", json_real((double)(s1 - s0) / 1e9));
	if (started != n) {
		json_object_set_new(o, "error", json_string("could not start every worker"));
		goto out;
	}
	/* ---- wait until vigild monitors all of them ---- */
	uint64_t deadline = s0 + (uint64_t)(60e9 + n * 20e6);
	double monitored = 0;
	while (bench_mono_ns() < deadline) {
		json_t *m = bench_home_metrics(&h);
		monitored = bench_json_num(m, "workers_monitored");
		json_decref(m);
		if (monitored >= n)
			break;
		bench_vlog("fleet %u: vigild monitors %g", n, monitored);
		bench_reap_nohang();
		bench_sleep_ms(100);
	}
	uint64_t s2 = bench_mono_ns();
	json_object_set_new(o, "all_monitored_after_seconds", json_real((double)(s2 - s0) / 1e9));
	bench_log("fleet %u: %g monitored after %.1f s", n, monitored, (double)(s2 - s0) / 1e9);
	if (!(monitored >= n)) {
		json_object_set_new(o, "error", json_string("vigild did not monitor every worker in time"));
		goto out;
	}
	bench_sleep_ms(g_opts.quick ? 1000 : 3000); /* settle: first specs written, startup work done */

	/* ---- steady-state window ---- */
	json_t *m0 = bench_home_metrics(&h);
	struct bench_proc p0, p1, pmax;
	double th_main0, th_other0, th_main1, th_other1;
	int nth;
	bench_proc_thread_cpu(h.vigild, &th_main0, &th_other0, &nth);
	bench_proc_read(h.vigild, &p0);
	pmax = p0;
	uint64_t busy0, total0, busy1, total1;
	bench_machine_cpu(&busy0, &total0);
	uint64_t w0 = bench_mono_ns();
	uint64_t wend = w0 + (uint64_t)(seconds * 1e9);
	while (bench_mono_ns() < wend) {
		uint64_t left = wend - bench_mono_ns();
		bench_sleep_ms(left > 1000000000ull ? 1000.0 : (double)left / 1e6);
		struct bench_proc p;
		if (bench_proc_read(h.vigild, &p) == 0 && p.vm_rss_kb > pmax.vm_rss_kb)
			pmax = p;
		bench_vlog("fleet %u: window, %.0f s left, vigild RSS %llu kB", n, (double)(wend - bench_mono_ns()) / 1e9,
			   (unsigned long long)p.vm_rss_kb);
		bench_reap_nohang();
	}
	bench_proc_read(h.vigild, &p1);
	bench_proc_thread_cpu(h.vigild, &th_main1, &th_other1, &nth);
	uint64_t w1 = bench_mono_ns();
	bench_machine_cpu(&busy1, &total1);
	json_t *m1 = bench_home_metrics(&h);
	double el = (double)(w1 - w0) / 1e9;
	double cpu_s = proc_cpu_s(&p1) - proc_cpu_s(&p0);
	json_t *w = json_object();
	json_object_set_new(w, "elapsed_seconds", json_real(el));
	json_object_set_new(w, "vigild_cpu_pct_of_one_core", json_real(100.0 * cpu_s / el));
	json_object_set_new(w, "vigild_user_seconds",
			    json_real((double)(p1.utime_ticks - p0.utime_ticks) / (double)sysconf(_SC_CLK_TCK)));
	json_object_set_new(w, "vigild_sys_seconds",
			    json_real((double)(p1.stime_ticks - p0.stime_ticks) / (double)sysconf(_SC_CLK_TCK)));
	json_object_set_new(w, "vigild_threads", json_integer(p1.threads));
	/* vigild has two threads: main = the action thread (files, events,
	 * restarts), the other = the scanner. */
	json_object_set_new(w, "action_thread_cpu_pct", json_real(100.0 * (th_main1 - th_main0) / el));
	json_object_set_new(w, "other_threads_cpu_pct", json_real(100.0 * (th_other1 - th_other0) / el));
	json_object_set_new(w, "rss_kb", json_pack("{s:I,s:I,s:I,s:I}", "baseline", (json_int_t)base.vm_rss_kb, "end",
						  (json_int_t)p1.vm_rss_kb, "max", (json_int_t)pmax.vm_rss_kb, "hwm",
						  (json_int_t)p1.vm_hwm_kb));
	json_object_set_new(w, "rss_anon_kb", json_pack("{s:I,s:I}", "baseline", (json_int_t)base.rss_anon_kb, "end",
						       (json_int_t)p1.rss_anon_kb));
	json_object_set_new(w, "rss_shmem_kb", json_pack("{s:I,s:I}", "baseline", (json_int_t)base.rss_shmem_kb,
							"end", (json_int_t)p1.rss_shmem_kb));
	json_object_set_new(w, "rss_file_kb", json_integer((json_int_t)p1.rss_file_kb));
	double anon_pw = ((double)p1.rss_anon_kb - (double)base.rss_anon_kb) * 1024.0 / n;
	double rss_pw = ((double)p1.vm_rss_kb - (double)base.vm_rss_kb) * 1024.0 / n;
	json_object_set_new(w, "anon_bytes_per_worker", json_real(anon_pw));
	json_object_set_new(w, "rss_bytes_per_worker", json_real(rss_pw));
	json_object_set_new(w, "heartbeats_credited_per_second", json_real(mdelta(m0, m1, "heartbeats_received") / el));
	json_object_set_new(w, "heartbeats_expected_per_second", json_real(n * 1000.0 / FLEET_BEAT_MS));
	json_object_set_new(w, "specs_written_per_second", json_real(mdelta(m0, m1, "specs_written") / el));
	/* vigild does not time its snapshots; the action thread's CPU per spec
	 * written is an upper bound of what one spec write costs it. */
	{
		double specs = mdelta(m0, m1, "specs_written");
		json_object_set_new(w, "action_cpu_us_per_spec_written",
				    specs > 0 ? json_real((th_main1 - th_main0) * 1e6 / specs) : json_null());
	}
	json_object_set_new(w, "events_written", json_real(mdelta(m0, m1, "events_written")));
	json_object_set_new(w, "ticks", json_real(mdelta(m0, m1, "ticks")));
	json_object_set_new(w, "tick_overruns", json_real(mdelta(m0, m1, "tick_overruns")));
	json_object_set_new(w, "tick_overruns_total", json_real(bench_json_num(m1, "tick_overruns")));
	json_object_set_new(w, "ring_full_deferrals", json_real(mdelta(m0, m1, "ring_full_deferrals")));
	json_object_set_new(w, "write_errors", json_real(mdelta(m0, m1, "write_errors")));
	json_object_set_new(w, "scan_time_last_us", json_real(bench_json_num(m1, "scan_time_last_us")));
	json_object_set_new(w, "scan_time_max_us_since_start", json_real(bench_json_num(m1, "scan_time_max_us")));
	json_object_set_new(w, "workers_unverified", json_real(bench_json_num(m1, "workers_unverified")));
	json_object_set_new(w, "machine_busy_pct_all_cpus",
			    json_real(total1 > total0 ? 100.0 * (double)(busy1 - busy0) / (double)(total1 - total0) : NAN));
	json_object_set_new(w, "loadavg_1min", json_real(bench_loadavg1()));
	json_object_set_new(o, "steady", w);
	bench_log("fleet %u%s: vigild %.2f%% of one core (action %.2f%%, scanner %.2f%%), %.0f specs/s, RSS %llu kB "
		  "(+%.0f B/worker anon), overruns %g",
		  n, defaults ? " (runbook default policy)" : "", 100.0 * cpu_s / el, 100.0 * (th_main1 - th_main0) / el,
		  100.0 * (th_other1 - th_other0) / el, mdelta(m0, m1, "specs_written") / el, (unsigned long long)p1.vm_rss_kb, anon_pw,
		  mdelta(m0, m1, "tick_overruns"));
	json_decref(m0);
	json_decref(m1);

	if (defaults)
		goto out; /* verdicts would take minutes under this policy */
	/* ---- injection ---- */
	if (k * 2 > n)
		k = n / 2;
	uint32_t step = n / (2 * k);
	if (step == 0)
		step = 1;
	for (uint32_t j = 0; j < k; j++) {
		c.touched[(2 * j) * step] = KILLED;
		c.touched[(2 * j + 1) * step] = STOPPED;
	}
	/* Our own pidfds on the victims, watched by a thread of ours. */
	struct deathwatch dw;
	memset(&dw, 0, sizeof dw);
	dw.epfd = epoll_create1(EPOLL_CLOEXEC);
	dw.death_us = c.death_us;
	snprintf(dw.sched, sizeof dw.sched, "none");
	int pfds[64];
	uint32_t npfd = 0;
	for (uint32_t i = 0; i < n && dw.epfd >= 0; i++) {
		if (c.touched[i] != KILLED || npfd >= 64)
			continue;
		int fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
		if (fd < 0)
			continue;
		struct epoll_event e = {.events = EPOLLIN, .data.u64 = ((uint64_t)(uint32_t)fd << 32) | i};
		if (epoll_ctl(dw.epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			close(fd);
			continue;
		}
		pfds[npfd++] = fd;
	}
	dw.n = npfd;
	if (npfd > 0 && pthread_create(&dw.th, NULL, deathwatch_main, &dw) == 0) {
		dw.started = true;
		struct sched_param sp = {.sched_priority = 1};
		if (pthread_setschedparam(dw.th, SCHED_FIFO, &sp) == 0)
			snprintf(dw.sched, sizeof dw.sched, "SCHED_FIFO 1");
		else
			snprintf(dw.sched, sizeof dw.sched, "SCHED_OTHER");
	}
	struct tail t_hb, t_z;
	memset(&t_hb, 0, sizeof t_hb);
	memset(&t_z, 0, sizeof t_z);
	bench_home_path(&h, "coordination/events/heartbeat-events.jsonl", t_hb.path, sizeof t_hb.path);
	bench_home_path(&h, "coordination/events/zombie-cleanup-events.jsonl", t_z.path, sizeof t_z.path);
	/* Registrations are not of interest: start the tails at the end,
	 * before the first kill. */
	{
		struct stat st;
		if (stat(t_hb.path, &st) == 0)
			t_hb.off = st.st_size;
		if (stat(t_z.path, &st) == 0)
			t_z.off = st.st_size;
	}
	bench_sleep_ms(20); /* the watcher is in epoll_wait before the first kill */
	c.t_kill_us = bench_real_us();
	for (uint32_t i = 0; i < n; i++)
		if (c.touched[i] == KILLED) {
			c.kill_us[i] = bench_real_us();
			kill(pids[i], SIGKILL);
		}
	c.t_stop_us = bench_real_us();
	for (uint32_t i = 0; i < n; i++)
		if (c.touched[i] == STOPPED)
			kill(pids[i], SIGSTOP);
	bench_log("fleet %u: killed %u and stopped %u workers; waiting for the verdicts", n, k, k);
	/* Wait for the conditions, not a fixed time: every kill reported and
	 * every stop declared a zombie in the files, or a generous deadline.
	 * At least zombie + 2 s in any case (the window in which false
	 * verdicts are looked for).  The files are tailed meanwhile, so that
	 * how late a verdict reached its file is measured, not guessed. */
	c.old_read_ms = (double)c.t_stop_us / 1000.0 + (zombie + 2.0) * 1000.0;
	uint32_t exits_in_file = 0, zombies_in_file = 0;
	uint64_t imin = bench_mono_ns() + (uint64_t)((zombie + 2.0) * 1e9);
	uint64_t iend = bench_mono_ns() + (uint64_t)((zombie + 30.0) * 1e9);
	uint64_t ilast = 0;
	while ((ilast = bench_mono_ns()) < iend) {
		tail_poll(&t_hb, &c, "worker_exited", c.exit_file_us, &exits_in_file);
		tail_poll(&t_z, &c, "zombie_detected", c.zombie_file_us, &zombies_in_file);
		if (ilast >= imin && exits_in_file >= k && zombies_in_file >= k)
			break;
		bench_reap_nohang();
		bench_sleep_ms(20);
	}
	atomic_store(&dw.stop, true);
	if (dw.started)
		pthread_join(dw.th, NULL);
	for (uint32_t i = 0; i < npfd; i++)
		close(pfds[i]);
	if (dw.epfd >= 0)
		close(dw.epfd);
	char p1s[BENCH_PATH_MAX + 64], p2s[BENCH_PATH_MAX + 64];
	bench_home_path(&h, "coordination/events/heartbeat-events.jsonl", p1s, sizeof p1s);
	bench_home_path(&h, "coordination/events/zombie-cleanup-events.jsonl", p2s, sizeof p2s);
	bench_jsonl_each(p1s, on_event, &c);
	bench_jsonl_each(p2s, on_event, &c);

	json_t *inj = json_object();
	json_object_set_new(inj, "killed", json_integer(k));
	json_object_set_new(inj, "stopped", json_integer(k));
	json_object_set_new(inj, "kill_to_worker_exited_ms", lat_json(&c.kill_seen));
	json_object_set_new(inj, "kill_to_worker_exited_us_stamp_ms", lat_json(&c.kill_seen_us));
	json_object_set_new(inj, "kill_to_death_own_pidfd_ms", lat_json(&c.kill_death));
	json_object_set_new(inj, "death_to_worker_exited_ms", lat_json(&c.death_seen));
	json_object_set_new(inj, "own_pidfd_thread", json_string(dw.sched));
	json_object_set_new(inj, "worker_exited_in_file_after_stamp_ms", lat_json(&c.exit_file_lag));
	json_object_set_new(inj, "zombie_in_file_after_stamp_ms", lat_json(&c.zombie_file_lag));
	json_object_set_new(inj, "zombie_in_file_after_sigstop_ms", lat_json(&c.zombie_file_after_stop));
	json_object_set_new(inj, "zombies_in_file_by_sigstop_plus_zombie_plus_2s", json_integer(c.zombies_by_old_read));
	json_object_set_new(inj, "zombies_stamped_by_sigstop_plus_zombie_plus_2s",
			    json_integer(c.zombie_stamped_by_old_read));
	json_object_set_new(inj, "waited_after_sigstop_seconds",
			    json_real((double)(bench_real_us() - c.t_stop_us) / 1e6));
	json_t *v = json_object();
	json_object_set_new(v, "heartbeat_missed", lat_json(&c.missed));
	json_object_set_new(v, "heartbeat_timeout", lat_json(&c.timeout));
	json_object_set_new(v, "zombie_detected", lat_json(&c.zombie));
	json_object_set_new(inj, "stop_detected_minus_due_ms", v);
	json_object_set_new(inj, "last_seen_minus_sigstop_ms", lat_json(&c.ext_last_seen));
	json_object_set_new(inj, "verdicts_before_due", json_integer(c.early));
	json_object_set_new(inj, "kills_not_reported", json_integer(k - c.exited_seen));
	json_object_set_new(inj, "stops_not_declared_zombie", json_integer(k - c.zombie_seen));
	json_t *fv = json_object();
	uint32_t ftotal = 0;
	for (size_t i = 0; i < sizeof false_names / sizeof false_names[0]; i++) {
		json_object_set_new(fv, false_names[i], json_integer(c.false_by[i]));
		ftotal += c.false_by[i];
	}
	json_object_set_new(inj, "false_verdicts_by_event", fv);
	json_object_set_new(inj, "false_verdicts", json_integer(ftotal));
	json_object_set_new(inj, "host_stall_suspected_events", json_integer(c.host_stall));
	json_object_set_new(inj, "supervisor_stall_events", json_integer(c.supervisor_stall));
	json_object_set_new(inj, "registrations_seen", json_integer(c.registered));
	json_object_set_new(o, "inject", inj);
	{
		struct vlist *ls[] = {&c.kill_seen, &c.missed, &c.timeout, &c.zombie};
		double mx[4];
		for (int i = 0; i < 4; i++)
			mx[i] = ls[i]->n ? bench_pct(ls[i]->v, ls[i]->n, 100) : NAN;
		bench_log("fleet %u: kill seen max %.0f ms; detected-due max: missed %.0f, timeout %.0f, zombie %.0f ms; "
			  "false verdicts %u",
			  n, mx[0], mx[1], mx[2], mx[3], ftotal);
		double kd = c.kill_death.n ? bench_pct(c.kill_death.v, c.kill_death.n, 100) : NAN;
		double ds = c.death_seen.n ? bench_pct(c.death_seen.v, c.death_seen.n, 100) : NAN;
		double ks = c.kill_seen_us.n ? bench_pct(c.kill_seen_us.v, c.kill_seen_us.n, 100) : NAN;
		double zl = c.zombie_file_lag.n ? bench_pct(c.zombie_file_lag.v, c.zombie_file_lag.n, 100) : NAN;
		bench_log("fleet %u: max SIGKILL->worker_exited %.3f ms = SIGKILL->gone (own pidfd, %s) %.3f + gone->seen "
			  "%.3f; zombies in file by stop+zombie+2s %u of %u (stamped by then %u), zombie file lag max %.0f ms",
			  n, ks, dw.sched, kd, ds, c.zombies_by_old_read, k, c.zombie_stamped_by_old_read, zl);
	}

out:
	/* Everything dies, whatever happened. */
	if (pgid > 0)
		kill(-pgid, SIGKILL);
	for (uint32_t i = 0; i < n && pids != NULL; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	{
		uint64_t t0 = bench_mono_ns();
		bench_home_stop(&h);
		json_object_set_new(o, "vigild_stop_seconds", json_real((double)(bench_mono_ns() - t0) / 1e9));
	}
	bench_kill_all();
	bench_home_destroy(&h);
	free(pids);
	free(c.touched);
	free(c.got_exit);
	free(c.got_zombie);
	free(c.kill_seen.v);
	free(c.missed.v);
	free(c.timeout.v);
	free(c.zombie.v);
	free(c.ext_last_seen.v);
	free(c.kill_us);
	free(c.death_us);
	free(c.exit_file_us);
	free(c.zombie_file_us);
	free(c.kill_seen_us.v);
	free(c.kill_death.v);
	free(c.death_seen.v);
	free(c.exit_file_lag.v);
	free(c.zombie_file_lag.v);
	free(c.zombie_file_after_stop.v);
	return o;
}

json_t *bench_fleet(void)
{
	json_t *arr = json_array();
	uint32_t biggest = 0;
	for (int i = 0; i < g_opts.n_fleet_sizes; i++) {
		json_t *r = fleet_one(g_opts.fleet_sizes[i], g_opts.fleet_seconds, g_opts.fleet_inject, false);
		/* The default-policy run takes the largest fleet the host ran. */
		if (json_object_get(r, "skipped") == NULL && g_opts.fleet_sizes[i] > biggest)
			biggest = g_opts.fleet_sizes[i];
		json_array_append_new(arr, r);
	}
	/* The same fleet under the runbook's default policy: the cost of the
	 * scan and of the files that really change, without a rewrite of
	 * every spec every second. */
	if (!g_opts.quick && !g_opts.fleet_no_default && biggest > 0)
		json_array_append_new(arr, fleet_one(biggest, g_opts.fleet_seconds, 0, true));
	json_t *o = json_object();
	json_object_set_new(o, "runs", arr);
	return o;
}
