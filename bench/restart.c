/*
 * restart.c - scenario "restart": from a worker's death to the first beat
 * of its replacement, minus the configured delay.
 *
 * vigild spawns one worker (vigilctl spawn ... -- vigil-demo-worker
 * --beat-ms 10 --die-after-ms 200 --exit-code 1): it beats every 10 ms and
 * dies with code 1 after 200 ms, again and again.  The restart policy
 * waits retry_interval_seconds 0.1 with backoff_multiplier 1 (so every
 * attempt of the one lineage waits the same 0.1 s; max_retries is high and
 * the breaker is off so the loop is never cut), auto-fix is dry_run (a
 * crash loop would otherwise be quarantined, rightly).
 *
 * For each restart: worker_exited.timestamp_ms (the pidfd saw the death)
 * to the history line "result":"success" (vigild saw the replacement's
 * first beat), minus delay_seconds of that line.  The first beat is seen
 * by the scanner's tick, so the tick bounds this figure from below; it is
 * measured at the default tick (0.1 s) and, in a full run, at 0.01 s.
 * The split exit -> worker_registered (the replacement exists) shows where
 * the time goes.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RS_ID "worker-benchrestart-001"

struct rs_ev {
	double ts;
	int kind; /* 0 exited, 1 registered, 2 success, 3 failure */
	double delay_ms;
};

struct rs_collect {
	struct rs_ev *v;
	size_t n, cap;
};

static void rs_push(struct rs_collect *c, struct rs_ev e)
{
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 128;
		struct rs_ev *nv = realloc(c->v, nc * sizeof *nv);
		if (nv == NULL)
			return;
		c->v = nv;
		c->cap = nc;
	}
	c->v[c->n++] = e;
}

static void on_hb(json_t *o, void *ctx)
{
	const char *ev = json_string_value(json_object_get(o, "event"));
	const char *id = json_string_value(json_object_get(o, "worker_id"));
	if (ev == NULL || id == NULL || strcmp(id, RS_ID) != 0)
		return;
	double ts = bench_json_num(o, "timestamp_ms");
	if (strcmp(ev, "worker_exited") == 0)
		rs_push(ctx, (struct rs_ev){ts, 0, 0});
	else if (strcmp(ev, "worker_registered") == 0)
		rs_push(ctx, (struct rs_ev){ts, 1, 0});
}

static void on_hist(json_t *o, void *ctx)
{
	const char *id = json_string_value(json_object_get(o, "worker_id"));
	const char *res = json_string_value(json_object_get(o, "result"));
	if (id == NULL || res == NULL || strcmp(id, RS_ID) != 0)
		return;
	double d = bench_json_num(o, "delay_seconds");
	rs_push(ctx, (struct rs_ev){bench_json_num(o, "timestamp_ms"), strcmp(res, "success") == 0 ? 2 : 3,
				    isfinite(d) ? d * 1000.0 : 0});
}

static int cmp_ev(const void *a, const void *b)
{
	const struct rs_ev *x = a, *y = b;
	if (x->ts != y->ts)
		return (x->ts > y->ts) - (x->ts < y->ts);
	return x->kind - y->kind;
}

static long count_success(const char *hist)
{
	char *t = bench_read_file(hist, NULL);
	if (t == NULL)
		return 0;
	long n = 0;
	for (char *p = t; (p = strstr(p, "\"result\":\"success\"")) != NULL; p++)
		n++;
	free(t);
	return n;
}

static json_t *restart_one(double tick_s, uint32_t iterations)
{
	json_t *o = json_object();
	json_object_set_new(o, "tick_seconds", json_real(tick_s));
	json_object_set_new(o, "retry_interval_seconds", json_real(0.1));
	char tag[32];
	snprintf(tag, sizeof tag, "restart%d", (int)lround(tick_s * 1000));
	struct bench_home h;
	struct rs_collect c;
	memset(&c, 0, sizeof c);
	if (bench_home_create(&h, tag, 64) < 0) {
		json_object_set_new(o, "error", json_string("setup failed"));
		return o;
	}
	char pol[512];
	snprintf(pol, sizeof pol,
		 "{\"heartbeat_interval_seconds\": 1, \"heartbeat_timeout_seconds\": 3, "
		 "\"zombie_threshold_seconds\": 6, \"tick_seconds\": %g}\n",
		 tick_s);
	bench_home_policy(&h, "heartbeat-policy.json", pol);
	bench_home_policy(&h, "worker-restart-policy.json",
			  "{\"max_retries\": 1000, \"retry_interval_seconds\": 0.1, \"backoff_multiplier\": 1, "
			  "\"circuit_breaker_enabled\": false}\n");
	bench_home_policy(&h, "auto-fix-policy.json", "{\"enabled\": true, \"dry_run\": true}\n");
	if (bench_home_start(&h) < 0) {
		json_object_set_new(o, "error", json_string("vigild did not start"));
		bench_kill_all();
		bench_home_destroy(&h);
		return o;
	}
	char out[BENCH_PATH_MAX + 64];
	snprintf(out, sizeof out, "%s/spawn.out", h.dir);
	const char *argv[] = {g_opts.vigilctl, "spawn", "--home", h.dir, "--shm", h.shm, "--type", "benchrestart",
			      "--task-id", "restart-1", "--id", RS_ID, "--", g_opts.worker, "--beat-ms", "10",
			      "--die-after-ms", "200", "--exit-code", "1", NULL};
	struct bench_spawn sp = {.argv = argv, .stdout_path = out, .stderr_path = out, .pgroup = -1};
	int st;
	bench_run_timed(&sp, 30000, &st);
	if (st != 0) {
		char *t = bench_read_file(out, NULL);
		bench_log("restart: vigilctl spawn failed (status %d): %s", st, t ? t : "");
		free(t);
		json_object_set_new(o, "error", json_string("vigilctl spawn failed"));
	} else {
		char hist[BENCH_PATH_MAX + 64];
		bench_home_path(&h, "coordination/metrics/worker-restart-history.jsonl", hist, sizeof hist);
		uint64_t deadline = bench_mono_ns() + (uint64_t)(20e9 + iterations * 2e9);
		long got = 0;
		while (bench_mono_ns() < deadline && (got = count_success(hist)) < (long)iterations + 1) {
			bench_vlog("restart: %ld successful restarts so far", got);
			bench_sleep_ms(250);
		}
		json_object_set_new(o, "success_lines", json_integer(got));
	}
	bench_home_stop(&h);
	bench_kill_all(); /* the current worker, reparented to us */

	char hb[BENCH_PATH_MAX + 64], hist[BENCH_PATH_MAX + 64];
	bench_home_path(&h, "coordination/events/heartbeat-events.jsonl", hb, sizeof hb);
	bench_home_path(&h, "coordination/metrics/worker-restart-history.jsonl", hist, sizeof hist);
	bench_jsonl_each(hb, on_hb, &c);
	bench_jsonl_each(hist, on_hist, &c);
	qsort(c.v, c.n, sizeof *c.v, cmp_ev);
	double *beyond = calloc(c.n + 1, sizeof(double));
	double *gross = calloc(c.n + 1, sizeof(double));
	double *to_reg = calloc(c.n + 1, sizeof(double));
	double *reg_to_beat = calloc(c.n + 1, sizeof(double));
	size_t nb = 0, nr = 0, failures = 0;
	double exit_ts = NAN, reg_ts = NAN, delay = NAN;
	for (size_t i = 0; i < c.n; i++) {
		struct rs_ev *e = &c.v[i];
		if (e->kind == 0) {
			exit_ts = e->ts;
			reg_ts = NAN;
		} else if (e->kind == 1) {
			if (isfinite(exit_ts) && !isfinite(reg_ts))
				reg_ts = e->ts;
		} else if (e->kind == 3) {
			failures++;
		} else if (e->kind == 2 && isfinite(exit_ts)) {
			delay = e->delay_ms;
			beyond[nb] = e->ts - exit_ts - e->delay_ms;
			gross[nb] = e->ts - exit_ts;
			nb++;
			if (isfinite(reg_ts)) {
				to_reg[nr] = reg_ts - exit_ts - e->delay_ms;
				reg_to_beat[nr] = e->ts - reg_ts;
				nr++;
			}
			exit_ts = NAN;
		}
	}
	json_object_set_new(o, "restarts_measured", json_integer((json_int_t)nb));
	json_object_set_new(o, "restart_failures", json_integer((json_int_t)failures));
	json_object_set_new(o, "configured_delay_ms", isfinite(delay) ? json_real(delay) : json_null());
	json_object_set_new(o, "beyond_delay_ms", bench_stats_json(beyond, nb, true));
	json_object_set_new(o, "death_to_first_beat_ms", bench_stats_json(gross, nb, true));
	json_object_set_new(o, "death_to_registered_beyond_delay_ms", bench_stats_json(to_reg, nr, true));
	json_object_set_new(o, "registered_to_first_beat_seen_ms", bench_stats_json(reg_to_beat, nr, true));
	bench_log("restart (tick %.3f s): %zu restarts, beyond delay p50 %.1f ms p99 %.1f ms", tick_s, nb,
		  bench_json_num(json_object_get(o, "beyond_delay_ms"), "p50"),
		  bench_json_num(json_object_get(o, "beyond_delay_ms"), "p99"));
	free(beyond);
	free(gross);
	free(to_reg);
	free(reg_to_beat);
	free(c.v);
	bench_home_destroy(&h);
	return o;
}

json_t *bench_restart(void)
{
	json_t *arr = json_array();
	json_array_append_new(arr, restart_one(0.1, g_opts.restart_iterations));
	if (!g_opts.quick)
		json_array_append_new(arr, restart_one(0.01, g_opts.restart_iterations));
	json_t *o = json_object();
	json_object_set_new(o, "runs", arr);
	return o;
}
