/*
 * test_integration.c - vigil end to end: the real vigild, real workers
 * (vigil-demo-worker, bash scripts using the shell emitter), the files the
 * runbook reads, and the runbook's own jq loops.
 *
 * Policies use 0.05 s intervals (interval 0.05, timeout 0.2, zombie 0.5:
 * tick = interval / 4 = 12.5 ms) so that a whole episode takes half a
 * second.  Order is judged strictly; upper bounds get itest_slack_ms() for
 * scheduling noise (see itest.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "itest.h"
#include "vigil.h"

static struct itest_home H;
#include "itest_check.h"

#define HB "heartbeat-events.jsonl"
#define ZE "zombie-cleanup-events.jsonl"
#define HB_LOG "agents/logs/system/heartbeat-monitor-daemon.log"

/* Default test policy (seconds) and the thresholds in ms. */
#define P_INTERVAL 0.05
#define P_TIMEOUT 0.2
#define P_ZOMBIE 0.5

/* ---- diagnostics ---------------------------------------------------------- */

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 40);
	dump_tail("zombie-cleanup-events.jsonl", "coordination/events/" ZE, 20);
	dump_tail("heartbeat-monitor-daemon.log", HB_LOG, 30);
	dump_tail("vigild.out", "vigild.out", 20);
}

/* ---- helpers ----------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	itest_home_create(&H);
	itest_write_policy(&H, P_INTERVAL, P_TIMEOUT, P_ZOMBIE, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return itest_finish(&H, NULL);
}

static pid_t worker(const char *id, const char *type, const char *beat_ms, const char *health)
{
	const char *args[] = {"--beat-ms", beat_ms, health != NULL ? "--health" : NULL, health, NULL};
	return itest_worker_start(&H, id, type, "task-it", args);
}

/* Waits for worker_registered of id (3 s) and returns it. */
static json_t *registered(const char *id)
{
	json_t *ev = itest_wait_event(&H, HB, "worker_registered", id, 3000);
	if (ev == NULL) {
		char rel[128];
		snprintf(rel, sizeof rel, "worker-%s.err", id);
		dump_tail("the worker's stderr (demo workers only)", rel, 10);
	}
	CHECK(ev != NULL, "worker %s was not registered within 3 s", id);
	return ev;
}

static size_t count(const char *file, const char *event, const char *id)
{
	return itest_count_events(&H, file, event, id);
}

/* No heartbeat_missed / heartbeat_timeout / zombie_detected for id. */
static void assert_not_blamed(const char *id, bool missed_too)
{
	if (missed_too)
		CHECK(count(HB, "heartbeat_missed", id) == 0, "%s: unexpected heartbeat_missed", id);
	CHECK(count(HB, "heartbeat_timeout", id) == 0, "%s: unexpected heartbeat_timeout", id);
	CHECK(count(ZE, "zombie_detected", id) == 0, "%s: unexpected zombie_detected", id);
}

/*
 * A verdict event about a worker that went silent at t_stop (ms, realtime)
 * while beating every beat_ms: never before its instant (last_seen +
 * threshold), at most one tick late (plus the host-stall credit and the
 * slack), and last_seen is the last beat before t_stop.
 */
static void check_verdict_timing(const json_t *ev, double threshold_ms, int64_t t_stop, int beat_ms)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	int64_t ts = itest_int(ev, "timestamp_ms");
	int64_t last = itest_int(ev, "last_seen_ms");
	int64_t credit = itest_int(ev, "stall_credit_ms");
	double tick = itest_tick_ms(&H);
	int slack = itest_slack_ms();
	if (getenv("VIGIL_TEST_VERBOSE") != NULL)
		fprintf(stderr, "  %s: %lld ms after last_seen (threshold %.0f, credit %lld, tick %.1f); last_seen - stop %lld ms\n",
			name, (long long)(ts - last), threshold_ms, (long long)credit, tick, (long long)(last - t_stop));
	CHECK((double)(ts - last) >= threshold_ms - 1.0, "%s reported %lld ms after last_seen, before its threshold %.0f ms",
	      name, (long long)(ts - last), threshold_ms);
	CHECK((double)(ts - last) <= threshold_ms + (double)credit + tick + slack,
	      "%s reported %lld ms after last_seen: more than threshold %.0f + credit %lld + tick %.1f + slack %d ms", name,
	      (long long)(ts - last), threshold_ms, (long long)credit, tick, slack);
	CHECK(last >= t_stop - beat_ms - slack && (double)last <= (double)t_stop + tick + slack,
	      "%s: last_seen_ms %lld is not the last beat before the stop at %lld (beat %d ms, tick %.1f, slack %d)",
	      name, (long long)last, (long long)t_stop, beat_ms, tick, slack);
}

static char *ctl_status(bool json)
{
	const char *argv[] = {VIGILCTL_PATH, "status", "--home", H.dir, "--shm", H.shm, json ? "--json" : NULL, NULL};
	char *out = NULL, *err = NULL;
	int rc = itest_run(argv, NULL, &out, &err, 5000);
	CHECK(rc == 0, "vigilctl status exited %d: %s", rc, err);
	free(err);
	return out;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* The n-th line (0-based) of s into buf. */
static const char *line_at(const char *s, int n, char *buf, size_t len)
{
	for (int i = 0; i < n && s != NULL; i++) {
		s = strchr(s, '\n');
		if (s != NULL)
			s++;
	}
	buf[0] = '\0';
	if (s == NULL)
		return buf;
	size_t k = strcspn(s, "\n");
	snprintf(buf, len, "%.*s", (int)(k < len ? k : len - 1), s);
	return buf;
}

static bool rx_match(const char *re, const char *s)
{
	regex_t r;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

static int spec_health(const char *dir, const char *id)
{
	char rel[256];
	snprintf(rel, sizeof rel, "coordination/worker-specs/%s/%s.json", dir, id);
	json_t *spec = itest_read_json(&H, rel);
	if (spec == NULL)
		return -1;
	json_t *hb = json_object_get(spec, "heartbeat");
	json_t *v = json_object_get(hb, "health_score");
	int h = json_is_integer(v) ? (int)json_integer_value(v) : -2;
	json_decref(spec);
	return h;
}

/* The last line of the heartbeat log that contains all of a, b, c (NULL: any). */
static bool log_has(const char *a, const char *b, const char *c)
{
	char *s = itest_read_file(&H, HB_LOG);
	if (s == NULL)
		return false;
	bool found = false;
	for (char *line = strtok(s, "\n"); line != NULL && !found; line = strtok(NULL, "\n"))
		found = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL) &&
			(c == NULL || strstr(line, c) != NULL);
	free(s);
	return found;
}

static bool wait_log(const char *a, const char *b, const char *c, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		if (log_has(a, b, c))
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(5);
	}
}

/* ---- 1 ------------------------------------------------------------------------- */

static void healthy_fleet_no_false_events(void **state)
{
	(void)state;
	/* Half a second of interval: a worker starved for 50 ms on a busy host
	 * (the suite's 0.05 s policy) does miss a beat, truly; what this test
	 * is about is vigild inventing misses, so the workers get room. */
	itest_write_policy(&H, 0.5, 2.0, 5.0, NULL);
	itest_vigild_start(&H);
	const char *ids[4] = {"worker-fleet-001", "worker-fleet-002", "worker-fleet-003", "worker-fleet-004"};
	for (int i = 0; i < 4; i++)
		worker(ids[i], "fleet", "5", NULL);
	for (int i = 0; i < 4; i++)
		json_decref(registered(ids[i]));
	itest_sleep_ms(3000);

	json_t *evs = itest_read_jsonl(&H, HB);
	size_t i, reg = 0;
	json_t *o;
	json_array_foreach(evs, i, o)
	{
		const char *name = json_string_value(json_object_get(o, "event"));
		CHECK(name != NULL, "event line without an event name");
		if (strcmp(name, "worker_registered") == 0) {
			reg++;
			continue;
		}
		/* A starved supervisor says so; that is not a worker event. */
		CHECK(strcmp(name, "supervisor_stall") == 0, "healthy fleet: unexpected event %s about %s", name,
		      json_string_value(json_object_get(o, "worker_id")));
	}
	json_decref(evs);
	CHECK(reg == 4, "expected exactly 4 worker_registered, got %zu", reg);
	for (int k = 0; k < 4; k++)
		CHECK(count(HB, "worker_registered", ids[k]) == 1, "%s registered %zu times", ids[k],
		      count(HB, "worker_registered", ids[k]));
	CHECK(count(ZE, NULL, NULL) == 0, "healthy fleet: zombie-cleanup events exist");

	for (int k = 0; k < 4; k++)
		CHECK(spec_health("active", ids[k]) == 100, "active/%s.json health_score is %d, not 100", ids[k],
		      spec_health("active", ids[k]));
	json_t *m = itest_read_json(&H, "coordination/metrics/heartbeat-monitor-metrics.json");
	CHECK(m != NULL, "no heartbeat-monitor-metrics.json");
	CHECK(itest_int(m, "workers_monitored") == 4, "workers_monitored is %lld, not 4",
	      (long long)itest_int(m, "workers_monitored"));
	json_decref(m);
}

/* ---- 2 ---------------------------------------------------------------------------- */

static void sigstop_missed_timeout_zombie_in_order(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-hang-001", *ok = "worker-ok-001";
	pid_t p = worker(id, "hang", "5", NULL);
	worker(ok, "ok", "5", NULL);
	json_decref(registered(id));
	json_decref(registered(ok));
	itest_sleep_ms(100);

	itest_signal(p, SIGSTOP);
	int64_t t_stop = itest_now_ms();
	json_t *z = itest_wait_event(&H, ZE, "zombie_detected", id, 5000);
	CHECK(z != NULL, "no zombie_detected for %s within 5 s of SIGSTOP", id);
	json_t *m = itest_find_event(&H, HB, "heartbeat_missed", id);
	json_t *t = itest_find_event(&H, HB, "heartbeat_timeout", id);
	CHECK(m != NULL, "no heartbeat_missed before zombie_detected");
	CHECK(t != NULL, "no heartbeat_timeout before zombie_detected");
	CHECK(count(HB, "heartbeat_missed", id) == 1, "heartbeat_missed %zu times", count(HB, "heartbeat_missed", id));
	CHECK(count(HB, "heartbeat_timeout", id) == 1, "heartbeat_timeout %zu times",
	      count(HB, "heartbeat_timeout", id));
	CHECK(count(ZE, "zombie_detected", id) == 1, "zombie_detected %zu times", count(ZE, "zombie_detected", id));

	int64_t tm = itest_int(m, "timestamp_ms"), tt = itest_int(t, "timestamp_ms"), tz = itest_int(z, "timestamp_ms");
	CHECK(tm <= tt && tt <= tz && tm < tz, "out of order: missed %lld, timeout %lld, zombie %lld", (long long)tm,
	      (long long)tt, (long long)tz);
	check_verdict_timing(m, P_INTERVAL * 1000, t_stop, 5);
	check_verdict_timing(t, P_TIMEOUT * 1000, t_stop, 5);
	check_verdict_timing(z, P_ZOMBIE * 1000, t_stop, 5);

	CHECK(itest_wait_file(&H, "coordination/worker-specs/zombie/worker-hang-001.json", true, 1000),
	      "zombie/%s.json did not appear", id);
	CHECK(itest_wait_file(&H, "coordination/worker-specs/active/worker-hang-001.json", false, 1000),
	      "active/%s.json is still there", id);
	json_t *spec = itest_read_json(&H, "coordination/worker-specs/zombie/worker-hang-001.json");
	CHECK(spec != NULL && json_string_value(json_object_get(spec, "status")) != NULL &&
		      strcmp(json_string_value(json_object_get(spec, "status")), "zombie") == 0,
	      "zombie spec status is not \"zombie\"");
	json_decref(spec);
	assert_not_blamed(ok, true);
	json_decref(m);
	json_decref(t);
	json_decref(z);
	itest_signal(p, SIGCONT);
	itest_kill(p);
}

/* ---- 3 ------------------------------------------------------------------------------- */

static void sigkill_reported_within_a_tick(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-kill-001";
	pid_t p = worker(id, "kill", "5", NULL);
	json_t *r = registered(id);
	CHECK(json_is_true(json_object_get(r, "verified")), "demo worker not verified: no pidfd watch");
	json_decref(r);
	CHECK(itest_wait_file(&H, "coordination/worker-specs/active/worker-kill-001.json", true, 1000),
	      "no active spec");
	itest_sleep_ms(100);

	int64_t t_kill = itest_now_ms();
	itest_signal(p, SIGKILL);
	json_t *ev = itest_wait_event(&H, HB, "worker_exited", id, 3000);
	CHECK(ev != NULL, "no worker_exited within 3 s of SIGKILL");
	int64_t dt = itest_int(ev, "timestamp_ms") - t_kill;
	if (getenv("VIGIL_TEST_VERBOSE") != NULL)
		fprintf(stderr, "  worker_exited %lld ms after SIGKILL\n", (long long)dt);
	CHECK(dt >= -1, "worker_exited stamped %lld ms before the kill", (long long)dt);
	CHECK((double)dt <= itest_tick_ms(&H) + itest_slack_ms(), "worker_exited %lld ms after SIGKILL (tick %.1f, slack %d)",
	      (long long)dt, itest_tick_ms(&H), itest_slack_ms());
	json_decref(ev);
	CHECK(itest_wait_file(&H, "coordination/worker-specs/active/worker-kill-001.json", false, 1000),
	      "active spec still there after worker_exited");
	assert_not_blamed(id, true);
	itest_reap(p, 1000);
}

/* ---- 3b --------------------------------------------------------------------------------- */

/* A spec's moving field (last_seen) as written, or -1. */
static int64_t spec_last_seen(const char *id)
{
	char rel[256];
	snprintf(rel, sizeof rel, "coordination/worker-specs/active/%s.json", id);
	json_t *spec = itest_read_json(&H, rel);
	if (spec == NULL)
		return -1;
	json_t *v = json_object_get(json_object_get(spec, "heartbeat"), "last_seen_ms");
	int64_t ms = json_is_integer(v) ? (int64_t)json_integer_value(v) : -2;
	json_decref(spec);
	return ms;
}

static int64_t spec_int(const char *id, const char *key)
{
	char rel[256];
	snprintf(rel, sizeof rel, "coordination/worker-specs/active/%s.json", id);
	json_t *spec = itest_read_json(&H, rel);
	json_t *v = json_object_get(json_object_get(spec, "heartbeat"), key);
	int64_t n = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
	json_decref(spec);
	return n;
}

/* README "Files": the moving fields of every spec are refreshed within
 * 1.5 x spec_refresh_seconds (+ a snapshot interval), whatever the number
 * of workers; a state change (the first beat, a missed interval) is written
 * at the next snapshot even when the bound is long; and what a reader of
 * active/ finds is only whole specs (the shadows are dot files). */
static void specs_follow_state_and_refresh_bound(void **state)
{
	(void)state;
	enum { N = 24 };
	itest_write_policy(&H, 0.5, 2.0, 5.0, "\"snapshot_interval_seconds\": 0.1, \"spec_refresh_seconds\": 0.5");
	itest_vigild_start(&H);
	char ids[N][32];
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "worker-refresh-%03d", i);
		pids[i] = worker(ids[i], "refresh", "20", NULL);
	}
	for (int i = 0; i < N; i++)
		json_decref(registered(ids[i]));
	/* The first beat is a state: in the file at the next snapshot. */
	int64_t deadline = itest_mono_ms() + 1000 + itest_slack_ms();
	for (int i = 0; i < N; i++)
		while (spec_int(ids[i], "beats") <= 0 && itest_mono_ms() < deadline)
			itest_sleep_ms(10);
	for (int i = 0; i < N; i++)
		CHECK(spec_int(ids[i], "beats") > 0, "%s: spec still says 0 beats", ids[i]);
	/* Every spec's last_seen moves within 1.5 x 0.5 s + 0.1 s. */
	int64_t seen0[N];
	for (int i = 0; i < N; i++)
		seen0[i] = spec_last_seen(ids[i]);
	itest_sleep_ms(900 + itest_slack_ms());
	for (int i = 0; i < N; i++) {
		int64_t s1 = spec_last_seen(ids[i]);
		CHECK(s1 > seen0[i], "%s: last_seen in the spec did not move in %d ms (%lld -> %lld), bound 0.85 s", ids[i],
		      900 + itest_slack_ms(), (long long)seen0[i], (long long)s1);
	}
	/* Only whole specs match *.json; everything else is a dot file. */
	char dir[ITEST_PATH_MAX];
	DIR *d = opendir(itest_path(&H, "coordination/worker-specs/active", dir));
	CHECK(d != NULL, "cannot open active/");
	int specs = 0;
	for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.')
			continue;
		CHECK(l > 5 && strcmp(de->d_name + l - 5, ".json") == 0, "active/%s: not a spec", de->d_name);
		char rel[300];
		snprintf(rel, sizeof rel, "coordination/worker-specs/active/%s", de->d_name);
		json_t *o = itest_read_json(&H, rel);
		CHECK(o != NULL, "active/%s is not valid JSON", de->d_name);
		json_decref(o);
		specs++;
	}
	closedir(d);
	CHECK(specs == N, "%d specs in active/, want %d", specs, N);

	/* A long bound: beating workers' moving fields stay as written, and
	 * a missed interval is still in the file at once. */
	itest_write_policy(&H, 0.5, 2.0, 5.0, "\"snapshot_interval_seconds\": 0.1, \"spec_refresh_seconds\": 600");
	itest_signal(H.vigild, SIGHUP);
	CHECK(wait_log("heartbeat policy reloaded", NULL, NULL, 2000 + itest_slack_ms()), "policy not reloaded");
	itest_sleep_ms(200); /* a pass under the old bound that was under way is done */
	int64_t kept = spec_last_seen(ids[1]);
	itest_signal(pids[0], SIGSTOP);
	int64_t t_stop = itest_mono_ms();
	deadline = t_stop + 500 + 100 + 100 + itest_slack_ms();
	while (spec_int(ids[0], "missed") < 1 && itest_mono_ms() < deadline)
		itest_sleep_ms(10);
	CHECK(spec_int(ids[0], "missed") >= 1, "a stopped worker's spec shows missed %lld %lld ms after SIGSTOP",
	      (long long)spec_int(ids[0], "missed"), (long long)(itest_mono_ms() - t_stop));
	itest_sleep_ms(1000);
	CHECK(spec_last_seen(ids[1]) == kept, "%s: last_seen rewritten (%lld -> %lld) under a 600 s bound", ids[1],
	      (long long)kept, (long long)spec_last_seen(ids[1]));
	itest_signal(pids[0], SIGCONT);
	for (int i = 0; i < N; i++) {
		itest_signal(pids[i], SIGKILL);
		itest_reap(pids[i], 1000);
	}
}

/* ---- 4 ---------------------------------------------------------------------------------- */

/* Shell workers fork/exec vigilctl for every beat (a few ms each), so this
 * test uses a generous policy: interval 0.2 s, timeout 0.8 s, zombie 2 s
 * (tick 50 ms). */
static void shell_worker_monitored_like_c(void **state)
{
	(void)state;
	itest_write_policy(&H, 0.2, 0.8, 2.0, NULL);
	itest_vigild_start(&H);
	pid_t b1 = itest_bash_start(&H, "source \"$SHIM\"; while true; do emit_heartbeat worker-shell-001 90 50; "
					"sleep 0.01; done");
	pid_t b2 = itest_bash_start(&H, "source \"$SHIM\"; for i in 1 2 3; do emit_heartbeat worker-shell-002 70 10; "
					"sleep 0.01; done; sleep 100");
	pid_t b3 = itest_bash_start(&H, "\"$SHIM\" worker-shell-003 80 10; sleep 5");

	json_t *r1 = registered("worker-shell-001");
	CHECK(json_is_true(json_object_get(r1, "verified")), "shell worker 001 not verified");
	CHECK(itest_int(r1, "pid") == b1, "worker-shell-001 registered with pid %lld, the bash is %d",
	      (long long)itest_int(r1, "pid"), (int)b1);
	json_decref(r1);
	json_t *r3 = registered("worker-shell-003");
	CHECK(itest_int(r3, "pid") == b3, "worker-shell-003 (executed shim) registered with pid %lld, the bash is %d",
	      (long long)itest_int(r3, "pid"), (int)b3);
	CHECK(json_is_true(json_object_get(r3, "verified")), "shell worker 003 not verified");
	json_decref(r3);
	json_t *r2 = registered("worker-shell-002");
	CHECK(itest_int(r2, "pid") == b2, "worker-shell-002 registered with pid %lld, the bash is %d",
	      (long long)itest_int(r2, "pid"), (int)b2);
	json_decref(r2);

	/* health 90 in the spec after a snapshot (default snapshot 1 s). */
	int64_t deadline = itest_mono_ms() + 1500;
	int h;
	while ((h = spec_health("active", "worker-shell-001")) != 90 && itest_mono_ms() < deadline)
		itest_sleep_ms(10);
	CHECK(h == 90, "active/worker-shell-001.json health_score %d, want 90", h);

	/* The silent one is seen; the beating one is not blamed. */
	json_t *m2 = itest_wait_event(&H, HB, "heartbeat_missed", "worker-shell-002", 3000);
	CHECK(m2 != NULL, "worker-shell-002 stopped beating but got no heartbeat_missed");
	json_decref(m2);
	itest_sleep_ms(1000);
	CHECK(itest_alive(b1), "the shell worker loop died");
	assert_not_blamed("worker-shell-001", true);
	CHECK(count(HB, "worker_exited", "worker-shell-001") == 0, "worker-shell-001 reported exited while alive");

	int64_t t_kill = itest_now_ms();
	itest_signal(b1, SIGKILL);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", "worker-shell-001", 3000);
	CHECK(ex != NULL, "no worker_exited for the killed bash worker");
	int64_t dt = itest_int(ex, "timestamp_ms") - t_kill;
	if (getenv("VIGIL_TEST_VERBOSE") != NULL)
		fprintf(stderr, "  bash worker_exited %lld ms after SIGKILL\n", (long long)dt);
	CHECK(dt >= -1 && (double)dt <= itest_tick_ms(&H) + itest_slack_ms(),
	      "worker_exited for the bash worker %lld ms after SIGKILL (tick %.1f, slack %d)", (long long)dt,
	      itest_tick_ms(&H), itest_slack_ms());
	json_decref(ex);

	CHECK(itest_alive(b2), "worker-shell-002's bash is gone");
	CHECK(count(HB, "worker_exited", "worker-shell-002") == 0, "worker-shell-002 reported exited while alive");
	CHECK(itest_alive(b3), "worker-shell-003's bash is gone");
	CHECK(count(HB, "worker_exited", "worker-shell-003") == 0, "worker-shell-003 reported exited while alive");
}

/* ---- 5 ------------------------------------------------------------------------------------ */

/* Verbatim from runbook/self-healing.md, "Check Heartbeat Status". */
static const char RUNBOOK_STATUS[] =
	"# View worker heartbeats\n"
	"for spec in $COMMIT_RELAY_HOME/coordination/worker-specs/active/worker-*.json; do\n"
	"    if [[ -f \"$spec\" ]]; then\n"
	"        ID=$(jq -r '.worker_id' \"$spec\")\n"
	"        HEALTH=$(jq -r '.heartbeat.health_score // 0' \"$spec\")\n"
	"        LAST=$(jq -r '.heartbeat.last_seen // \"never\"' \"$spec\")\n"
	"        echo \"$HEALTH% | $ID | $LAST\"\n"
	"    fi\n"
	"done | sort -rn\n";

/* Verbatim from runbook/self-healing.md, "View Zombies". */
static const char RUNBOOK_ZOMBIES[] =
	"# Get zombie details\n"
	"for spec in $COMMIT_RELAY_HOME/coordination/worker-specs/zombie/worker-*.json; do\n"
	"    if [[ -f \"$spec\" ]]; then\n"
	"        ID=$(jq -r '.worker_id' \"$spec\")\n"
	"        TYPE=$(jq -r '.worker_type' \"$spec\")\n"
	"        ALLOCATED=$(jq -r '.token_budget.allocated // 0' \"$spec\")\n"
	"        echo \"$ID | $TYPE | $ALLOCATED tokens\"\n"
	"    fi\n"
	"done\n";

static const char RUNBOOK_TIMEOUTS[] =
	"# Find timeout events\n"
	"grep \"timeout\\|missed\" $COMMIT_RELAY_HOME/coordination/events/heartbeat-events.jsonl | tail -10\n";

static const char RUNBOOK_CLEANUP_EVENTS[] =
	"# Recent cleanup events\n"
	"grep \"zombie_cleanup\\|zombie_detected\" $COMMIT_RELAY_HOME/coordination/events/zombie-cleanup-events.jsonl | "
	"tail -10 | jq .\n";

static void runbook_jq_loops(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t z = worker("worker-rbz-001", "stuck", "5", NULL);
	worker("worker-rb-001", "impl", "5", NULL);
	worker("worker-rb-002", "impl", "5", NULL);
	json_decref(registered("worker-rbz-001"));
	json_decref(registered("worker-rb-001"));
	json_decref(registered("worker-rb-002"));
	itest_signal(z, SIGSTOP);
	json_t *ze = itest_wait_event(&H, ZE, "zombie_detected", "worker-rbz-001", 5000);
	CHECK(ze != NULL, "no zombie_detected for the stopped worker");
	json_decref(ze);
	CHECK(itest_wait_file(&H, "coordination/worker-specs/active/worker-rbz-001.json", false, 1000),
	      "zombie still in active/");
	CHECK(itest_wait_file(&H, "coordination/worker-specs/zombie/worker-rbz-001.json", true, 1000),
	      "zombie not in zombie/");

	char *out = NULL;
	int rc = itest_sh(&H, RUNBOOK_STATUS, &out, 10000);
	CHECK(rc == 0, "status loop exited %d", rc);
	CHECK(count_lines(out) == 2, "status loop printed %d lines, want 2:\n%s", count_lines(out), out);
	char l0[512], l1[512];
	line_at(out, 0, l0, sizeof l0);
	line_at(out, 1, l1, sizeof l1);
	/* sort -rn: equal numbers, then the whole line in reverse (C locale). */
	static const char re2[] = "^100% \\| worker-rb-002 \\| [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";
	static const char re1[] = "^100% \\| worker-rb-001 \\| [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";
	CHECK(rx_match(re2, l0) && rx_match(re1, l1), "status loop output not as expected:\n%s", out);
	free(out);

	rc = itest_sh(&H, RUNBOOK_ZOMBIES, &out, 10000);
	CHECK(rc == 0, "zombie loop exited %d", rc);
	CHECK(strcmp(out, "worker-rbz-001 | stuck | 0 tokens\n") == 0, "zombie loop printed:\n%s", out);
	free(out);

	rc = itest_sh(&H, RUNBOOK_TIMEOUTS, &out, 10000);
	CHECK(rc == 0 && count_lines(out) >= 2, "timeout grep exited %d, printed:\n%s", rc, out);
	CHECK(strstr(out, "\"heartbeat_timeout\"") != NULL && strstr(out, "\"heartbeat_missed\"") != NULL,
	      "timeout grep misses the episode:\n%s", out);
	free(out);

	rc = itest_sh(&H, RUNBOOK_CLEANUP_EVENTS, &out, 10000);
	CHECK(rc == 0, "cleanup-events pipeline (jq) exited %d", rc);
	CHECK(strstr(out, "\"event\": \"zombie_detected\"") != NULL && strstr(out, "worker-rbz-001") != NULL,
	      "cleanup-events pipeline printed:\n%s", out);
	free(out);
}

/* ---- 6 ------------------------------------------------------------------------------------- */

static void restart_adopts_without_blame(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *ids[3] = {"worker-adopt-001", "worker-adopt-002", "worker-adopt-003"};
	for (int i = 0; i < 3; i++)
		worker(ids[i], "adopt", "5", NULL);
	for (int i = 0; i < 3; i++)
		json_decref(registered(ids[i]));
	itest_sleep_ms(200);

	itest_vigild_kill9(&H);
	itest_sleep_ms(1000); /* twice the zombie threshold */
	itest_vigild_start(&H);
	itest_sleep_ms(1500);

	for (int i = 0; i < 3; i++) {
		CHECK(count(HB, "worker_adopted", ids[i]) == 1, "%s adopted %zu times after the restart", ids[i],
		      count(HB, "worker_adopted", ids[i]));
		assert_not_blamed(ids[i], true);
	}
	for (int i = 0; i < 3; i++)
		CHECK(spec_health("active", ids[i]) == 100, "active/%s.json health %d after the restart", ids[i],
		      spec_health("active", ids[i]));
	char *out = ctl_status(false);
	CHECK(count_lines(out) == 3, "vigilctl status printed %d lines, want 3:\n%s", count_lines(out), out);
	for (int i = 0; i < 3; i++) {
		char l[512];
		line_at(out, i, l, sizeof l);
		CHECK(strncmp(l, "100% | worker-adopt-00", 22) == 0, "vigilctl status line %d: '%s'", i, l);
	}
	free(out);
}

/* ---- 7 ----------------------------------------------------------------------------------------- */

static void host_stall_not_blamed(void **state)
{
	(void)state;
	pid_t v = itest_vigild_start(&H);
	const char *ids[3] = {"worker-stall-001", "worker-stall-002", "worker-stall-003"};
	for (int i = 0; i < 3; i++)
		worker(ids[i], "stall", "5", NULL);
	for (int i = 0; i < 3; i++)
		json_decref(registered(ids[i]));
	itest_sleep_ms(100);

	itest_signal(v, SIGSTOP);
	itest_sleep_ms(1500);
	itest_signal(v, SIGCONT);
	itest_sleep_ms(1000);

	for (int i = 0; i < 3; i++)
		assert_not_blamed(ids[i], false); /* a missed around the resume is allowed */
	/* Sanitizer builds may report small incidental stalls too: the one
	 * that matters is the 1.5 s stop. */
	json_t *all = itest_read_jsonl(&H, HB);
	CHECK(all != NULL, "cannot read %s", HB);
	long long lost_max = -1;
	size_t i_ev;
	json_t *ev;
	json_array_foreach(all, i_ev, ev)
	{
		const char *name = json_string_value(json_object_get(ev, "event"));
		if (name != NULL && strcmp(name, "supervisor_stall") == 0 && itest_int(ev, "lost_ms") > lost_max)
			lost_max = itest_int(ev, "lost_ms");
	}
	json_decref(all);
	CHECK(lost_max >= 0, "no supervisor_stall event after vigild was stopped for 1.5 s");
	CHECK(lost_max >= 1000, "largest supervisor_stall lost_ms %lld < 1000", lost_max);
	for (int i = 0; i < 3; i++) {
		char rel[256];
		snprintf(rel, sizeof rel, "coordination/worker-specs/active/%s.json", ids[i]);
		CHECK(itest_exists(&H, rel), "%s left active/", ids[i]);
	}
}

/* ---- 8 ----------------------------------------------------------------------------------------- */

static void sigterm_leaves_workers_running(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t a = worker("worker-term-001", "term", "5", NULL);
	pid_t b = worker("worker-term-002", "term", "5", NULL);
	json_decref(registered("worker-term-001"));
	json_decref(registered("worker-term-002"));
	itest_sleep_ms(100);

	int64_t t_term = itest_now_ms();
	int rc = itest_vigild_stop(&H, 5000);
	CHECK(rc == 0, "vigild exited %d on SIGTERM (-1: not within 5 s)", rc);
	/* The final snapshot. */
	json_t *m = itest_read_json(&H, "coordination/metrics/heartbeat-monitor-metrics.json");
	CHECK(m != NULL && itest_int(m, "timestamp_ms") >= t_term, "no final metrics snapshot at stop");
	json_decref(m);
	CHECK(spec_health("active", "worker-term-001") == 100 && spec_health("active", "worker-term-002") == 100,
	      "the workers' specs are not in active/ after the stop");
	itest_sleep_ms(50);
	CHECK(itest_alive(a) && itest_alive(b), "a worker died with vigild");
	CHECK(!itest_exists(&H, "vigild.pid"), "the pid file is still there");
	char *log = itest_read_file(&H, HB_LOG);
	CHECK(log != NULL, "no heartbeat-monitor-daemon.log");
	size_t n = strlen(log);
	while (n > 0 && log[n - 1] == '\n')
		log[--n] = '\0';
	char *last = strrchr(log, '\n');
	last = last != NULL ? last + 1 : log;
	CHECK(strstr(last, "vigild stopped") != NULL, "the log's last line is '%s'", last);
	free(log);
}

/* ---- 9 ------------------------------------------------------------------------------------------- */

static void policy_reload_bad_kept_good_applied(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t a = worker("worker-pol-001", "pol", "5", NULL);
	pid_t b = worker("worker-pol-002", "pol", "5", NULL);
	json_decref(registered("worker-pol-001"));
	json_decref(registered("worker-pol-002"));

	/* Overwritten in place, as the runbook's `cat > ... << 'EOF'` does. */
	char *out = NULL;
	int rc = itest_sh(&H,
			  "cat > $COMMIT_RELAY_HOME/coordination/config/heartbeat-policy.json << 'EOF'\n"
			  "{\"heartbeat_interval_seconds\": \"fast\"}\n"
			  "EOF\n",
			  &out, 10000);
	free(out);
	CHECK(rc == 0, "writing the bad policy exited %d", rc);
	CHECK(wait_log("ERROR", "coordination/config/heartbeat-policy.json", "heartbeat_interval_seconds", 2000),
	      "no ERROR line naming the file and the key within 2 s of a bad policy");

	/* Monitoring goes on under the OLD policy (0.05 / 0.2 / 0.5). */
	itest_sleep_ms(50);
	itest_signal(a, SIGSTOP);
	int64_t t_stop = itest_now_ms();
	json_t *z = itest_wait_event(&H, ZE, "zombie_detected", "worker-pol-001", 5000);
	CHECK(z != NULL, "no zombie after a bad policy: monitoring stopped?");
	check_verdict_timing(z, P_ZOMBIE * 1000, t_stop, 5);
	json_decref(z);
	json_t *t = itest_find_event(&H, HB, "heartbeat_timeout", "worker-pol-001");
	CHECK(t != NULL, "no heartbeat_timeout under the old policy");
	check_verdict_timing(t, P_TIMEOUT * 1000, t_stop, 5);
	json_decref(t);

	/* The runbook's way: jq into a temporary file, then mv over the policy. */
	rc = itest_sh(&H,
			  "jq '.heartbeat_timeout_seconds = 0.3 | .zombie_threshold_seconds = 0.6' "
			  "$COMMIT_RELAY_HOME/heartbeat-policy.good.json > $COMMIT_RELAY_HOME/policy.json && "
			  "mv $COMMIT_RELAY_HOME/policy.json "
			  "$COMMIT_RELAY_HOME/coordination/config/heartbeat-policy.json",
			  &out, 10000);
	free(out);
	CHECK(rc == 0, "jq + mv exited %d", rc);
	CHECK(wait_log("heartbeat policy reloaded", NULL, NULL, 2000), "no 'heartbeat policy reloaded' within 2 s");

	/* ... and the new thresholds apply: timeout 0.3, zombie 0.6. */
	itest_sleep_ms(50);
	itest_signal(b, SIGSTOP);
	t_stop = itest_now_ms();
	z = itest_wait_event(&H, ZE, "zombie_detected", "worker-pol-002", 5000);
	CHECK(z != NULL, "no zombie under the new policy");
	check_verdict_timing(z, 600, t_stop, 5);
	json_decref(z);
	t = itest_find_event(&H, HB, "heartbeat_timeout", "worker-pol-002");
	CHECK(t != NULL, "no heartbeat_timeout under the new policy");
	check_verdict_timing(t, 300, t_stop, 5);
	json_decref(t);
}

/* SIGHUP rereads the policies: a change that the file watcher cannot see
 * (written through a descriptor still open, so no close-write event yet)
 * is applied on SIGHUP; and a SIGHUP is acknowledged in the log even when
 * nothing changed, so an operator knows it was received. */
static void sighup_rereads_policy(void **state)
{
	(void)state;
	pid_t v = itest_vigild_start(&H);
	char path[ITEST_PATH_MAX];
	itest_path(&H, "coordination/config/heartbeat-policy.json", path);
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	static const char text[] = "{\"heartbeat_interval_seconds\": 0.05, \"heartbeat_timeout_seconds\": 0.35, "
				   "\"zombie_threshold_seconds\": 0.5}\n";
	CHECK(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1), "write policy");
	itest_sleep_ms(100);
	CHECK(!log_has("heartbeat policy reloaded", NULL, NULL), "reloaded before SIGHUP?");
	itest_signal(v, SIGHUP);
	bool reloaded = wait_log("heartbeat policy reloaded", "SIGHUP", "0.350", 2000);
	close(fd);
	CHECK(reloaded, "no 'heartbeat policy reloaded (SIGHUP)' line with the new timeout within 2 s of SIGHUP");

	/* Unchanged file: still a line saying the SIGHUP was handled. */
	itest_sleep_ms(200); /* let the close-write reload pass */
	char *before = itest_read_file(&H, HB_LOG);
	size_t nb = before != NULL ? strlen(before) : 0;
	free(before);
	itest_signal(v, SIGHUP);
	int64_t deadline = itest_mono_ms() + 2000;
	bool acked = false;
	while (!acked && itest_mono_ms() < deadline) {
		char *now = itest_read_file(&H, HB_LOG);
		acked = now != NULL && strlen(now) > nb && strstr(now + nb, "SIGHUP") != NULL;
		free(now);
		if (!acked)
			itest_sleep_ms(5);
	}
	CHECK(acked, "SIGHUP with an unchanged policy left no line mentioning SIGHUP in the log within 2 s");
}

/* ---- 10 ------------------------------------------------------------------------------------------- */

static int check_config(char **err)
{
	const char *argv[] = {VIGILD_PATH, "--check-config", "--home", H.dir, NULL};
	return itest_run(argv, NULL, NULL, err, 10000);
}

static void check_config_exit_codes(void **state)
{
	(void)state;
	char *err = NULL;
	int rc = check_config(&err);
	CHECK(rc == 0, "--check-config on a good home exited %d: %s", rc, err);
	free(err);

	itest_write_file(&H, "coordination/config/heartbeat-policy.json",
			 "{\"heartbeat_timeout_seconds\": 1, \"heartbeat_interval_seconds\": 5}\n");
	rc = check_config(&err);
	CHECK(rc == 2, "--check-config with timeout < interval exited %d, want 2", rc);
	CHECK(strstr(err, "heartbeat-policy.json") != NULL && strstr(err, "heartbeat_timeout_seconds") != NULL,
	      "stderr does not name the file and the key: %s", err);
	free(err);

	itest_write_file(&H, "coordination/config/heartbeat-policy.json", "heartbeat_interval_seconds = 30\n");
	rc = check_config(&err);
	CHECK(rc == 2, "--check-config with a non-JSON policy exited %d, want 2", rc);
	CHECK(strstr(err, "heartbeat-policy.json") != NULL, "stderr does not name the file: %s", err);
	free(err);
	/* Nothing was created by a check. */
	CHECK(!itest_exists(&H, "coordination/events"), "--check-config created coordination/events");
}

/* ---- 11 --------------------------------------------------------------------------------------------- */

static int run_vigild_on(const char *shm, char **err)
{
	const char *argv[] = {VIGILD_PATH, "--home", H.dir, "--shm", shm, NULL};
	return itest_run(argv, NULL, NULL, err, 20000); /* a refusal comes after vigild's 10 s wait */
}

static void segment_refused(void **state)
{
	(void)state;
	/* Garbage with the right name. */
	char name[96];
	CHECK(snprintf(name, sizeof name, "%s-garbage", H.shm) < (int)sizeof name, "name");
	itest_track_segment(name);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "shm_open: %s", strerror(errno));
	CHECK(fchmod(fd, 0600) == 0 && ftruncate(fd, 8192) == 0, "size the segment");
	unsigned char garbage[8192];
	for (size_t i = 0; i < sizeof garbage; i++)
		garbage[i] = (unsigned char)(i * 131u + 7u);
	CHECK(pwrite(fd, garbage, sizeof garbage, 0) == (ssize_t)sizeof garbage, "fill the segment");

	char *err = NULL;
	int rc = run_vigild_on(name, &err);
	CHECK(rc == 1, "vigild on a garbage segment exited %d, want 1; stderr: %s", rc, err);
	CHECK(strstr(err, "bad header") != NULL, "stderr does not say 'bad header': %s", err);
	free(err);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == 8192 && (st.st_mode & 0777) == 0600,
	      "the refused segment changed size or mode");
	unsigned char now[8192];
	CHECK(pread(fd, now, sizeof now, 0) == (ssize_t)sizeof now && memcmp(now, garbage, sizeof now) == 0,
	      "the refused segment's bytes changed");
	close(fd);

	/* A valid segment, but readable and writable by everyone. */
	CHECK(snprintf(name, sizeof name, "%s-wide", H.shm) < (int)sizeof name, "name");
	itest_track_segment(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "shm_open: %s", strerror(errno));
	uint64_t size = vigil_segment_size(16);
	CHECK(ftruncate(fd, (off_t)size) == 0, "size the segment");
	struct vigil_shm_header hdr;
	memset(&hdr, 0, sizeof hdr);
	hdr.magic = VIGIL_MAGIC;
	hdr.abi_version = VIGIL_ABI_VERSION;
	hdr.header_size = VIGIL_HEADER_SIZE;
	hdr.slot_count = 16;
	hdr.hot_size = VIGIL_HOT_SIZE;
	hdr.cold_size = VIGIL_COLD_SIZE;
	hdr.view_size = VIGIL_VIEW_SIZE;
	hdr.hot_offset = VIGIL_HEADER_SIZE;
	hdr.cold_offset = VIGIL_HEADER_SIZE + 16ull * VIGIL_HOT_SIZE;
	hdr.view_offset = hdr.cold_offset + 16ull * VIGIL_COLD_SIZE;
	hdr.segment_size = size;
	CHECK(vigil_header_check(&hdr, size) == 0, "test bug: the header is not valid");
	CHECK(pwrite(fd, &hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr, "write the header");
	CHECK(fchmod(fd, 0666) == 0, "fchmod 0666");
	rc = run_vigild_on(name, &err);
	CHECK(rc == 1, "vigild on a mode 0666 segment exited %d, want 1; stderr: %s", rc, err);
	CHECK(strstr(err, "mode") != NULL || strstr(err, "0666") != NULL || strstr(err, "666") != NULL,
	      "stderr does not name the mode: %s", err);
	free(err);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0666 && (uint64_t)st.st_size == size,
	      "the refused segment changed mode or size");
	struct vigil_shm_header after;
	CHECK(pread(fd, &after, sizeof after, 0) == (ssize_t)sizeof after && memcmp(&after, &hdr, sizeof hdr) == 0,
	      "the refused segment's header changed (supervisor_pid written?)");
	close(fd);
}

/* ---- 12 ------------------------------------------------------------------------------------------------ */

static void vigilctl_status_lists_fleet(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	worker("worker-ctl-001", "ctl", "5", NULL);
	worker("worker-ctl-002", "ctl", "5", "70");
	json_decref(registered("worker-ctl-001"));
	json_decref(registered("worker-ctl-002"));

	/* Until vigild has scored a worker its health shows '-'; give it a
	 * few ticks. */
	char *out = NULL;
	int64_t deadline = itest_mono_ms() + 2000;
	for (;;) {
		free(out);
		out = ctl_status(false);
		char l0[512], l1[512];
		line_at(out, 0, l0, sizeof l0);
		line_at(out, 1, l1, sizeof l1);
		if ((count_lines(out) == 2 && strncmp(l0, "100% | ", 7) == 0 && strncmp(l1, "70% | ", 6) == 0) ||
		    itest_mono_ms() >= deadline)
			break;
		itest_sleep_ms(20);
	}
	char l0[512], l1[512];
	line_at(out, 0, l0, sizeof l0);
	line_at(out, 1, l1, sizeof l1);
	CHECK(count_lines(out) == 2, "vigilctl status printed %d lines:\n%s", count_lines(out), out);
	CHECK(rx_match("^100% \\| worker-ctl-001 \\| [0-9T:-]+Z \\| ctl \\| [0-9]+ \\| active$", l0),
	      "first line: '%s'", l0);
	CHECK(rx_match("^70% \\| worker-ctl-002 \\| [0-9T:-]+Z \\| ctl \\| [0-9]+ \\| active$", l1), "second line: '%s'",
	      l1);
	free(out);

	out = ctl_status(true);
	json_error_t e;
	json_t *arr = json_loads(out, 0, &e);
	CHECK(arr != NULL && json_is_array(arr) && json_array_size(arr) == 2, "vigilctl status --json: %s", out);
	int64_t h0 = itest_int(json_array_get(arr, 0), "health_score");
	int64_t h1 = itest_int(json_array_get(arr, 1), "health_score");
	CHECK(h0 == 100 && h1 == 70, "--json health_score values %lld, %lld", (long long)h0, (long long)h1);
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(arr, 1), "worker_id")), "worker-ctl-002") == 0,
	      "--json order");
	json_decref(arr);
	free(out);
}

/* ---- 13 ---------------------------------------------------------------------------------------------- */

static void second_vigild_refused(void **state)
{
	(void)state;
	pid_t first = itest_vigild_start(&H);
	char *err = NULL;
	int rc = run_vigild_on(H.shm, &err);
	CHECK(rc == 1, "a second vigild on the same home and segment exited %d, want 1; stderr: %s", rc, err);
	char want[64];
	snprintf(want, sizeof want, "another vigild (pid %d)", (int)first);
	CHECK(strstr(err, want) != NULL, "stderr does not say '%s': %s", want, err);
	free(err);
	CHECK(itest_alive(first), "the first vigild died");
	char *pid = itest_read_file(&H, "vigild.pid");
	CHECK(pid != NULL && atoi(pid) == first, "the first vigild's pid file was changed");
	free(pid);
}

/* The header's supervisor_pid is only a number: after a kill -9 it names a
 * dead vigild, and the pid may be given to another process, even one
 * called vigild (another home's).  Whether a vigild supervises the segment
 * is the segment's lock, which the kernel drops with its holder.
 * Regression: vigild read the header's pid, found a live process named
 * vigild there and refused to start (CI, ASan build: a restart after
 * kill -9 refused with "another vigild (pid N) supervises segment"). */
static void stale_supervisor_pid_does_not_block_a_start(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	itest_vigild_kill9(&H);
	/* A live process called vigild that holds no lock: sleep, renamed. */
	char fake[ITEST_PATH_MAX + 16], script[2 * ITEST_PATH_MAX + 64];
	snprintf(fake, sizeof fake, "%s/vigild", H.dir);
	snprintf(script, sizeof script, "cp /bin/sleep '%s' && exec '%s' 60", fake, fake);
	pid_t impostor = itest_bash_start(&H, script);
	CHECK(itest_wait_comm(impostor, "vigild", 3000), "the impostor %d is not called vigild within 3 s",
	      (int)impostor);
	int fd = shm_open(H.shm, O_RDWR, 0);
	CHECK(fd >= 0, "shm_open %s: %s", H.shm, strerror(errno));
	uint64_t pid64 = (uint64_t)impostor;
	ssize_t w = pwrite(fd, &pid64, sizeof pid64, offsetof(struct vigil_shm_header, supervisor_pid));
	close(fd);
	CHECK(w == (ssize_t)sizeof pid64, "write supervisor_pid");

	char *out = NULL, *err = NULL;
	const char *check[] = {"check", NULL};
	int rc = itest_vigilctl(&H, &out, &err, check);
	CHECK(rc == 2 && strstr(out, "not running") != NULL,
	      "vigilctl check with only an impostor's pid in the header: exit %d, '%s'", rc, out);
	free(out);
	free(err);
	pid_t second = itest_vigild_start(&H); /* fails the test if it refuses */
	out = err = NULL;
	rc = itest_vigilctl(&H, &out, &err, check);
	CHECK(rc == 0, "vigilctl check after the restart: exit %d, '%s'", rc, out);
	free(out);
	free(err);
	CHECK(itest_alive(impostor) && second != impostor, "the impostor is gone");
}

/* ---- systemd notification ------------------------------------------------------ */

struct notify_rx {
	int fd;
	int64_t last_watchdog_ms;
	int watchdogs;
	bool ready;
	bool status;
	int64_t max_gap_ms; /* longest gap between WATCHDOG=1 pings seen */
};

static void notify_drain(struct notify_rx *rx, int ms)
{
	int64_t end = itest_mono_ms() + ms;
	while (itest_mono_ms() < end) {
		struct pollfd pfd = {.fd = rx->fd, .events = POLLIN};
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		char buf[512];
		ssize_t n = recv(rx->fd, buf, sizeof buf - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, "READY=1") != NULL)
			rx->ready = true;
		if (strstr(buf, "STATUS=") != NULL)
			rx->status = true;
		if (strstr(buf, "WATCHDOG=1") != NULL) {
			int64_t now = itest_mono_ms();
			if (rx->last_watchdog_ms > 0 && now - rx->last_watchdog_ms > rx->max_gap_ms)
				rx->max_gap_ms = now - rx->last_watchdog_ms;
			rx->last_watchdog_ms = now;
			rx->watchdogs++;
		}
	}
}

/* READY, STATUS and WATCHDOG reach a NOTIFY_SOCKET; WATCHDOG=1 stops while
 * the scanner is stalled (a test hook, VIGIL_DEBUG=1) and comes back after. */
static void systemd_notify_and_watchdog(void **state)
{
	(void)state;
	/* sun_path is 108 bytes: keep the socket in a short directory */
	char sock[108];
	snprintf(sock, sizeof sock, "/tmp/vigil-it-notify-%d.sock", (int)getpid());
	unlink(sock);
	struct notify_rx rx = {.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
	CHECK(rx.fd >= 0, "socket: %s", strerror(errno));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	CHECK(bind(rx.fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s: %s", sock, strerror(errno));
	setenv("NOTIFY_SOCKET", sock, 1);
	setenv("WATCHDOG_USEC", "300000", 1); /* ping every 100 ms */
	setenv("VIGIL_DEBUG", "1", 1);
	itest_vigild_start(&H);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("VIGIL_DEBUG");
	worker("worker-sd-001", "sd", "10", NULL);
	json_decref(registered("worker-sd-001"));
	notify_drain(&rx, 1200);
	CHECK(rx.ready, "no READY=1 received");
	CHECK(rx.status, "no STATUS= received");
	CHECK(rx.watchdogs >= 5, "only %d WATCHDOG=1 pings in 1.2 s (expected one per 100 ms)", rx.watchdogs);
	/* stall the scanner for 1.5 s: the pings must stop meanwhile */
	itest_write_file(&H, "coordination/control/queue/debug-stall.json",
			 "{\"action\":\"debug_stall_scanner\",\"seconds\":1.5}\n");
	CHECK(itest_wait_text(&H, HB_LOG, "debug: scanner stalled", 3000), "the stall request was not taken");
	rx.max_gap_ms = 0;
	notify_drain(&rx, 2500);
	CHECK(rx.max_gap_ms >= 1000,
	      "WATCHDOG=1 kept coming while the scanner was stalled (longest gap %lld ms)", (long long)rx.max_gap_ms);
	int before = rx.watchdogs;
	notify_drain(&rx, 800);
	CHECK(rx.watchdogs > before, "WATCHDOG=1 did not resume after the stall");
	CHECK(itest_wait_text(&H, HB_LOG, "WATCHDOG=1 withheld", 100), "the withheld ping was not logged");
	close(rx.fd);
	unlink(sock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(healthy_fleet_no_false_events, setup, teardown),
		cmocka_unit_test_setup_teardown(sigstop_missed_timeout_zombie_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(sigkill_reported_within_a_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(specs_follow_state_and_refresh_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(shell_worker_monitored_like_c, setup, teardown),
		cmocka_unit_test_setup_teardown(runbook_jq_loops, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_adopts_without_blame, setup, teardown),
		cmocka_unit_test_setup_teardown(host_stall_not_blamed, setup, teardown),
		cmocka_unit_test_setup_teardown(sigterm_leaves_workers_running, setup, teardown),
		cmocka_unit_test_setup_teardown(policy_reload_bad_kept_good_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(sighup_rereads_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(check_config_exit_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(segment_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(vigilctl_status_lists_fleet, setup, teardown),
		cmocka_unit_test_setup_teardown(second_vigild_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(stale_supervisor_pid_does_not_block_a_start, setup, teardown),
		cmocka_unit_test_setup_teardown(systemd_notify_and_watchdog, setup, teardown),
	};
	return cmocka_run_group_tests_name("integration", tests, NULL, NULL);
}
