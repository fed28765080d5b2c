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
#include <math.h>
#include <signal.h>
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
	if (pids == NULL || c.touched == NULL || c.got_exit == NULL || c.got_zombie == NULL ||
	    bench_home_create(&h, tag, slots) < 0) {
		json_object_set_new(o, "error", json_string("setup failed"));
		goto out;
	}
	char pol[512];
	snprintf(pol, sizeof pol,
		 "{\"heartbeat_interval_seconds\": %g, \"heartbeat_timeout_seconds\": %g, "
		 "\"zombie_threshold_seconds\": %g, \"health_score_decay_rate\": 5, \"min_health_score\": 20}\n",
		 interval, timeout, zombie);
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
	c.t_kill_us = bench_real_us();
	for (uint32_t i = 0; i < n; i++)
		if (c.touched[i] == KILLED)
			kill(pids[i], SIGKILL);
	c.t_stop_us = bench_real_us();
	for (uint32_t i = 0; i < n; i++)
		if (c.touched[i] == STOPPED)
			kill(pids[i], SIGSTOP);
	bench_log("fleet %u: killed %u and stopped %u workers; waiting for the verdicts", n, k, k);
	uint64_t iend = bench_mono_ns() + (uint64_t)((zombie + 2.0) * 1e9);
	while (bench_mono_ns() < iend) {
		bench_reap_nohang();
		bench_sleep_ms(100);
	}
	char p1s[BENCH_PATH_MAX + 64], p2s[BENCH_PATH_MAX + 64];
	bench_home_path(&h, "coordination/events/heartbeat-events.jsonl", p1s, sizeof p1s);
	bench_home_path(&h, "coordination/events/zombie-cleanup-events.jsonl", p2s, sizeof p2s);
	bench_jsonl_each(p1s, on_event, &c);
	bench_jsonl_each(p2s, on_event, &c);

	json_t *inj = json_object();
	json_object_set_new(inj, "killed", json_integer(k));
	json_object_set_new(inj, "stopped", json_integer(k));
	json_object_set_new(inj, "kill_to_worker_exited_ms", lat_json(&c.kill_seen));
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
	return o;
}

json_t *bench_fleet(void)
{
	json_t *arr = json_array();
	uint32_t biggest = 0;
	for (int i = 0; i < g_opts.n_fleet_sizes; i++) {
		json_array_append_new(arr, fleet_one(g_opts.fleet_sizes[i], g_opts.fleet_seconds, g_opts.fleet_inject, false));
		if (g_opts.fleet_sizes[i] > biggest)
			biggest = g_opts.fleet_sizes[i];
	}
	/* The same fleet under the runbook's default policy: the cost of the
	 * scan and of the files that really change, without a rewrite of
	 * every spec every second. */
	if (!g_opts.quick && biggest > 0)
		json_array_append_new(arr, fleet_one(biggest, g_opts.fleet_seconds, 0, true));
	json_t *o = json_object();
	json_object_set_new(o, "runs", arr);
	return o;
}
