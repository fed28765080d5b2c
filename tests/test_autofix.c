/*
 * test_autofix.c - failure patterns and auto-fix end to end (README "Failure patterns and auto-fix", "What vigild writes";
 * issue 4): the real vigild, real worker processes (vigil-demo-worker,
 * bash workers using the shell emitter), provoked into each failure
 * pattern, judged by what an operator reads:
 * coordination/patterns/failure-patterns.jsonl,
 * coordination/metrics/auto-fix-history.jsonl,
 * coordination/metrics/auto-fix-daemon-metrics.json, the event files and
 * the logs.
 *
 * Policies: heartbeat interval 0.05 s, timeout 0.2 s, zombie 0.5 s,
 * progress_stall_seconds 0.5 (tick 12.5 ms); restart retry_interval 0.1 s,
 * backoff 2, max_retries 5, breaker threshold 50 (never opens here), kill
 * grace 0.3 s; auto-fix enabled, min_confidence_threshold 0.7,
 * max_fixes_per_hour 10, dry_run false, notification_enabled true.
 *
 * What the tests lean on (src/patterns.h, src/fixes.c, src/restart.c):
 * - the confidence rule: confidence = (1 - (1 - p)^n) * alikeness with
 *   n the recency-weighted count of similar failures; every pattern line
 *   is checked against its own evidence (check_pattern);
 * - a pattern line and the decision taken on that failure carry the same
 *   timestamp_ms (both are stamped with the failure's instant), which is
 *   how a decision is matched to its failure (decision_for);
 * - one decision per failure, on the most drastic pattern at or above the
 *   threshold (vigil_patterns_pick), else on the top one;
 * - vigild restarts the workers it spawned by itself when they die or hang,
 *   so auto-fix's restart decisions for those say
 *   "restart_already_underway", while quarantine still applies.
 *
 * Order is judged strictly; upper bounds get itest_slack_ms() for
 * scheduling noise (see itest.h).
 *
 * Cleanup: workers vigild spawned are not the harness's children (they run
 * in sessions of their own), so the teardown also kills every process whose
 * environment names this test's segment (itest_kill_segment_users), and
 * any notify_command still running under vigild, before itest_teardown().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "itest.h"

static struct itest_home H;
#include "itest_check.h"

#define HB "heartbeat-events.jsonl"
#define ZE "zombie-cleanup-events.jsonl"
#define PATTERNS "coordination/patterns/failure-patterns.jsonl"
#define FIXES "coordination/metrics/auto-fix-history.jsonl"
#define AFMETRICS "coordination/metrics/auto-fix-daemon-metrics.json"
#define HIST "coordination/metrics/worker-restart-history.jsonl"
#define AFLOG "agents/logs/system/auto-fix-daemon.log"
#define PLOG "agents/logs/system/failure-pattern-daemon.log"
#define RLOG "agents/logs/system/worker-restart-daemon.log"
#define HB_LOG "agents/logs/system/heartbeat-monitor-daemon.log"
#define QUEUE "coordination/restart/queue"
#define AF_POLICY "coordination/config/auto-fix-policy.json"

/* Heartbeat policy (seconds). */
#define P_INTERVAL 0.05
#define P_TIMEOUT 0.2
#define P_ZOMBIE 0.5
#define THRESHOLD 0.7

/* ---- diagnostics ------------------------------------------------------------ */

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("failure-patterns.jsonl", PATTERNS, 16);
	dump_tail("auto-fix-history.jsonl", FIXES, 16);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 16);
	dump_tail("worker-restart-history.jsonl", HIST, 10);
	dump_tail("auto-fix-daemon.log", AFLOG, 16);
	dump_tail("worker-restart-daemon.log", RLOG, 20);
	dump_tail("vigild.out", "vigild.out", 10);
}

/* A check whose failure is recorded but lets the test go on, so that one
 * product bug does not hide the behaviour after it; soft_done() fails the
 * test at its end if any was recorded. */

/* ---- processes under vigild (notify_command) ---------------------------------- */

static pid_t ppid_of(pid_t pid)
{
	char buf[512];
	const char *p = itest_proc_stat(pid, buf, sizeof buf) != NULL ? strrchr(buf, ')') : NULL;
	int ppid = 0;
	if (p == NULL || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/* /proc/PID/cmdline with NULs as spaces ("" when gone). */
static void cmdline_of(pid_t pid, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (out[i] == '\0')
			out[i] = ' ';
	while (n > 0 && out[n - 1] == ' ')
		out[--n] = '\0';
}

static bool descends_from(pid_t pid, pid_t ancestor)
{
	for (int depth = 0; depth < 8 && pid > 1; depth++) {
		pid = ppid_of(pid);
		if (pid == ancestor)
			return true;
	}
	return false;
}

/* Live processes below ancestor whose command line starts with prefix
 * (NULL: any); up to max into out; returns how many matched. */
static int procs_below(pid_t ancestor, const char *prefix, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 1 || pid == (long)getpid())
			continue;
		char cmd[256];
		cmdline_of((pid_t)pid, cmd, sizeof cmd);
		if (prefix != NULL && strncmp(cmd, prefix, strlen(prefix)) != 0)
			continue;
		if (!descends_from((pid_t)pid, ancestor) || !itest_alive((pid_t)pid))
			continue;
		if (out != NULL && n < max)
			out[n] = (pid_t)pid;
		n++;
	}
	closedir(d);
	return n;
}

/* ---- fixtures ------------------------------------------------------------------ */

static void write_restart_policy(unsigned max_retries)
{
	char text[1024];
	snprintf(text, sizeof text,
		 "{\n  \"max_retries\": %u,\n  \"retry_interval_seconds\": 0.1,\n  \"backoff_multiplier\": 2,\n"
		 "  \"circuit_breaker_enabled\": true,\n  \"circuit_breaker_threshold\": 50,\n"
		 "  \"circuit_breaker_reset_seconds\": 300,\n  \"kill_grace_seconds\": 0.3\n}\n",
		 max_retries);
	itest_write_file(&H, "coordination/config/worker-restart-policy.json", text);
}

/* auto-fix-policy.json; notify_command NULL: the key is left out. */
static void write_autofix_policy(bool enabled, double threshold, bool dry_run, const char *notify_command,
				 double notify_timeout)
{
	json_t *o = json_object();
	json_object_set_new(o, "enabled", json_boolean(enabled));
	json_object_set_new(o, "min_confidence_threshold", json_real(threshold));
	json_object_set_new(o, "max_fixes_per_hour", json_integer(10));
	json_object_set_new(o, "dry_run", json_boolean(dry_run));
	json_object_set_new(o, "notification_enabled", json_true());
	if (notify_command != NULL) {
		json_object_set_new(o, "notify_command", json_string(notify_command));
		json_object_set_new(o, "notify_timeout_seconds", json_real(notify_timeout));
	}
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(o);
	CHECK(s != NULL, "cannot render the auto-fix policy");
	size_t n = strlen(s);
	char *t = malloc(n + 2);
	CHECK(t != NULL, "out of memory");
	memcpy(t, s, n);
	t[n] = '\n';
	t[n + 1] = '\0';
	itest_write_file(&H, AF_POLICY, t);
	free(t);
	free(s);
}

static int setup(void **state)
{
	(void)state;
	soft_msgs[0] = '\0';
	itest_home_create(&H);
	itest_write_policy(&H, P_INTERVAL, P_TIMEOUT, P_ZOMBIE, "\"progress_stall_seconds\": 0.5");
	write_restart_policy(5);
	write_autofix_policy(true, THRESHOLD, false, NULL, 0);
	return 0;
}

static pid_t notify_left[32];
static int notify_left_n;

static void kill_notify_left(void)
{
	for (int i = 0; i < notify_left_n; i++) {
		if (itest_alive(notify_left[i])) {
			kill(notify_left[i], SIGCONT);
			kill(notify_left[i], SIGKILL);
		}
	}
	notify_left_n = 0;
}

static int teardown(void **state)
{
	(void)state;
	/* notify_command children run under vigild, in groups of their own,
	 * without VIGIL_SHM: vigild ends them when it stops; whatever is left
	 * is killed (by pid, found under this vigild while it runs). */
	notify_left_n = 0;
	if (H.vigild > 0) {
		pid_t below[64];
		int n = procs_below(H.vigild, NULL, below, 64);
		for (int i = 0; i < n && i < 64; i++) {
			char cmd[256];
			cmdline_of(below[i], cmd, sizeof cmd);
			if ((strncmp(cmd, "sh -c", 5) == 0 || strncmp(cmd, "sleep", 5) == 0 || strncmp(cmd, "cat", 3) == 0) &&
			    notify_left_n < 32)
				notify_left[notify_left_n++] = below[i];
		}
	}
	return itest_finish(&H, kill_notify_left);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* vigilctl --home H --shm S args... ; out/err malloc'd (may be NULL). */
static int ctl(char **out, char **err, const char *const *args)
{
	return itest_vigilctl(&H, out, err, args);
}

/* vigilctl spawn --type T --task-id task-<type> --id ID -- CMD...  Fails
 * the test unless it exits 0 and prints the id. */
static void spawn_cmd(const char *id, const char *type, const char *const *cmd)
{
	char task[96];
	snprintf(task, sizeof task, "task-%s", type);
	const char *args[48];
	int n = 0;
	args[n++] = "spawn";
	args[n++] = "--type";
	args[n++] = type;
	args[n++] = "--task-id";
	args[n++] = task;
	args[n++] = "--id";
	args[n++] = id;
	args[n++] = "--";
	for (int i = 0; cmd[i] != NULL && n < 47; i++)
		args[n++] = cmd[i];
	args[n] = NULL;
	char *out = NULL, *err = NULL;
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl spawn %s exited %d; stdout '%s' stderr '%s'", id, rc, out, err);
	CHECK(strncmp(out, id, strlen(id)) == 0 && out[strlen(id)] == '\n', "vigilctl spawn printed '%s', want '%s'",
	      out, id);
	free(out);
	free(err);
}

/* vigilctl spawn ... -- vigil-demo-worker demo_args... */
static void spawn_demo(const char *id, const char *type, const char *const *demo_args)
{
	const char *cmd[32];
	int n = 0;
	cmd[n++] = DEMO_WORKER_PATH;
	for (int i = 0; demo_args != NULL && demo_args[i] != NULL && n < 31; i++)
		cmd[n++] = demo_args[i];
	cmd[n] = NULL;
	spawn_cmd(id, type, cmd);
}

static double dbl(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static int64_t int_or(const json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* Lines of a .jsonl file about worker id (NULL: any) whose string member
 * key equals val (key NULL: no filter).  New array. */
static json_t *lines_about(const char *file, const char *id, const char *key, const char *val)
{
	json_t *arr = itest_read_jsonl(&H, file);
	json_t *res = json_array();
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		if (id != NULL && strcmp(str(o, "worker_id"), id) != 0)
			continue;
		if (key != NULL && strcmp(str(o, key), val) != 0)
			continue;
		json_array_append(res, o);
	}
	json_decref(arr);
	return res;
}

/* Pattern lines of worker id (and type, unless NULL). */
static json_t *pattern_lines(const char *id, const char *type)
{
	return lines_about(PATTERNS, id, type != NULL ? "type" : NULL, type);
}

/* Waits for the nth (1-based) pattern line of worker id and type whose
 * confidence is >= min_conf (< 0: any); new reference or NULL. */
static json_t *wait_pattern(const char *id, const char *type, double min_conf, int nth, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *arr = pattern_lines(id, type);
		json_t *found = NULL, *o;
		size_t i;
		int k = 0;
		json_array_foreach(arr, i, o)
		{
			if (min_conf >= 0 && !(dbl(o, "confidence") >= min_conf))
				continue;
			if (++k == nth) {
				found = json_incref(o);
				break;
			}
		}
		json_decref(arr);
		if (found != NULL || itest_mono_ms() >= deadline)
			return found;
		itest_sleep_ms(10);
	}
}

/* The decision taken on the failure that produced pattern line p: the
 * auto-fix-history line of the same worker stamped with the same instant.
 * Waits up to 3 s; new reference or NULL. */
static json_t *decision_for(const json_t *p)
{
	int64_t at = int_or(p, "timestamp_ms", -1);
	int64_t deadline = itest_mono_ms() + 3000;
	for (;;) {
		json_t *arr = lines_about(FIXES, str(p, "worker_id"), NULL, NULL);
		json_t *found = NULL, *o;
		size_t i;
		json_array_foreach(arr, i, o)
		{
			if (int_or(o, "timestamp_ms", -2) == at) {
				found = json_incref(o);
				break;
			}
		}
		json_decref(arr);
		if (found != NULL || itest_mono_ms() >= deadline)
			return found;
		itest_sleep_ms(10);
	}
}

/* Waits for the first decision line of worker id with the given result and
 * reason (NULL: any); new reference or NULL. */
static json_t *wait_decision(const char *id, const char *result, const char *reason, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *arr = lines_about(FIXES, id, NULL, NULL);
		json_t *found = NULL, *o;
		size_t i;
		json_array_foreach(arr, i, o)
		{
			if ((result == NULL || strcmp(str(o, "result"), result) == 0) &&
			    (reason == NULL || strcmp(str(o, "reason"), reason) == 0)) {
				found = json_incref(o);
				break;
			}
		}
		json_decref(arr);
		if (found != NULL || itest_mono_ms() >= deadline)
			return found;
		itest_sleep_ms(10);
	}
}

static bool iso_timestamp_ok(const char *s)
{
	if (strlen(s) != 20)
		return false;
	for (int i = 0; i < 20; i++) {
		char c = s[i];
		bool digit = c >= '0' && c <= '9';
		switch (i) {
		case 4: case 7: if (c != '-') return false; break;
		case 10: if (c != 'T') return false; break;
		case 13: case 16: if (c != ':') return false; break;
		case 19: if (c != 'Z') return false; break;
		default: if (!digit) return false; break;
		}
	}
	return true;
}

/* The §8 table as patterns.c documents it: action and per-observation p. */
static void type_row(const char *type, const char **action, double *p)
{
	static const struct {
		const char *type, *action;
		double p;
	} rows[] = {
		{"crash_loop", "quarantine", 0.40},	 {"hang", "kill_then_restart", 0.60},
		{"signal_crash", "restart", 0.80},	 {"oom_suspected", "restart", 0.50},
		{"exit_code", "restart", 0.40},		 {"slow_start", "restart", 0.50},
		{"flapping", "quarantine", 0.30},	 {"progress_stall", "kill_then_restart", 0.50},
	};
	*action = NULL;
	*p = NAN;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (strcmp(rows[i].type, type) == 0) {
			*action = rows[i].action;
			*p = rows[i].p;
		}
	}
}

/* A pattern line: the documented keys, its type and worker, and a
 * confidence that is the documented rule applied to its own evidence. */
static void check_pattern(const json_t *p, const char *type, const char *id, const char *wtype)
{
	CHECK(p != NULL, "no %s pattern for %s", type, id);
	CHECK(strcmp(str(p, "type"), type) == 0 && strcmp(str(p, "worker_id"), id) == 0 &&
		      strcmp(str(p, "worker_type"), wtype) == 0,
	      "pattern line: type '%s' worker '%s' worker_type '%s', want %s / %s / %s", str(p, "type"),
	      str(p, "worker_id"), str(p, "worker_type"), type, id, wtype);
	double c = dbl(p, "confidence");
	CHECK(c >= 0.0 && c <= 1.0, "%s confidence %g is not in [0, 1]", type, c);
	const char *action;
	double po;
	type_row(type, &action, &po);
	CHECK(strcmp(str(p, "recommended_action"), action) == 0, "%s recommends '%s', the table says '%s'", type,
	      str(p, "recommended_action"), action);
	CHECK(iso_timestamp_ok(str(p, "timestamp")) && json_is_integer(json_object_get(p, "timestamp_ms")),
	      "pattern line timestamp '%s' / timestamp_ms missing", str(p, "timestamp"));
	json_t *ev = json_object_get(p, "evidence");
	CHECK(json_is_object(ev), "%s pattern line has no evidence object", type);
	double n = dbl(ev, "similar_weighted"), per = dbl(ev, "per_observation");
	double strength = dbl(ev, "strength"), alike = dbl(ev, "alikeness");
	CHECK(fabs(per - po) < 1e-9, "%s evidence per_observation %g, the documented p is %g", type, per, po);
	CHECK(n > 0 && int_or(ev, "similar", 0) >= 1, "%s evidence: similar %lld, similar_weighted %g", type,
	      (long long)int_or(ev, "similar", 0), n);
	double want_strength = 1.0 - pow(1.0 - po, n);
	CHECK(fabs(strength - want_strength) <= 0.002, "%s evidence strength %g, the rule gives 1-(1-%g)^%g = %.4f",
	      type, strength, po, n, want_strength);
	CHECK(alike > 0 && alike <= 1.0, "%s evidence alikeness %g", type, alike);
	CHECK(fabs(c - strength * alike) <= 0.002, "%s confidence %g is not strength %g x alikeness %g", type, c,
	      strength, alike);
}

/* A decision line about pattern p with the given result and reason. */
static void check_decision(const json_t *d, const json_t *p, double threshold, const char *result,
			   const char *reason)
{
	CHECK(d != NULL, "no auto-fix decision line for the %s pattern of %s at %lld", str(p, "type"),
	      str(p, "worker_id"), (long long)int_or(p, "timestamp_ms", 0));
	CHECK(strcmp(str(d, "worker_id"), str(p, "worker_id")) == 0 &&
		      strcmp(str(d, "worker_type"), str(p, "worker_type")) == 0 &&
		      strcmp(str(d, "pattern"), str(p, "type")) == 0 &&
		      fabs(dbl(d, "confidence") - dbl(p, "confidence")) < 1e-9 &&
		      strcmp(str(d, "action"), str(p, "recommended_action")) == 0,
	      "decision on %s: worker '%s' pattern '%s' confidence %g action '%s', want %s %s %g %s", str(p, "type"),
	      str(d, "worker_id"), str(d, "pattern"), dbl(d, "confidence"), str(d, "action"), str(p, "worker_id"),
	      str(p, "type"), dbl(p, "confidence"), str(p, "recommended_action"));
	CHECK(strcmp(str(d, "result"), result) == 0 && strcmp(str(d, "reason"), reason) == 0,
	      "decision on %s %s (confidence %g): result '%s' reason '%s', want '%s' '%s'", str(p, "worker_id"),
	      str(p, "type"), dbl(p, "confidence"), str(d, "result"), str(d, "reason"), result, reason);
	CHECK(fabs(dbl(d, "threshold") - threshold) < 1e-9, "decision threshold %g, want %g", dbl(d, "threshold"),
	      threshold);
	CHECK(int_or(d, "max_fixes_per_hour", -1) == 10 && int_or(d, "fixes_in_last_hour", -1) >= 0 &&
		      int_or(d, "fixes_in_last_hour", -1) <= 10,
	      "decision max_fixes_per_hour %lld fixes_in_last_hour %lld", (long long)int_or(d, "max_fixes_per_hour", -1),
	      (long long)int_or(d, "fixes_in_last_hour", -1));
	CHECK(iso_timestamp_ok(str(d, "timestamp")), "decision timestamp '%s'", str(d, "timestamp"));
}

/* Integer member of auto-fix-daemon-metrics.json (-1 when absent). */
static int64_t afmetric(const char *key)
{
	json_t *m = itest_read_json(&H, AFMETRICS);
	int64_t v = m != NULL ? int_or(m, key, -1) : -1;
	json_decref(m);
	return v;
}

static bool wait_afmetric(const char *key, int64_t want, bool at_least, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		int64_t v = afmetric(key);
		if (at_least ? v >= want : v == want)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(20);
	}
}

/* Waits for the first event named event about id with timestamp_ms >=
 * since_ms; new reference or NULL. */
static json_t *wait_event_since(const char *file, const char *event, const char *id, int64_t since_ms,
				int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *arr = itest_read_jsonl(&H, file);
		json_t *found = NULL, *o;
		size_t i;
		json_array_foreach(arr, i, o)
		{
			if (strcmp(str(o, "event"), event) == 0 && (id == NULL || strcmp(str(o, "worker_id"), id) == 0) &&
			    int_or(o, "timestamp_ms", 0) >= since_ms) {
				found = json_incref(o);
				break;
			}
		}
		json_decref(arr);
		if (found != NULL || itest_mono_ms() >= deadline)
			return found;
		itest_sleep_ms(5);
	}
}

/* Events named event about id with since_ms <= timestamp_ms <= until_ms. */
static size_t count_events_between(const char *file, const char *event, const char *id, int64_t since_ms,
				   int64_t until_ms)
{
	json_t *arr = itest_read_jsonl(&H, file);
	size_t n = 0, i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		int64_t t = int_or(o, "timestamp_ms", 0);
		if (strcmp(str(o, "event"), event) == 0 && (id == NULL || strcmp(str(o, "worker_id"), id) == 0) &&
		    t >= since_ms && t <= until_ms)
			n++;
	}
	json_decref(arr);
	return n;
}

/* pid of the worker_registered event of id (the first with a pid other
 * than not_pid); 0 when none came within timeout_ms. */
static pid_t wait_registered_pid(const char *id, pid_t not_pid, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *arr = lines_about("coordination/events/" HB, id, "event", "worker_registered");
		pid_t found = 0;
		size_t i;
		json_t *o;
		json_array_foreach(arr, i, o)
		{
			pid_t p = (pid_t)int_or(o, "pid", 0);
			if (p > 0 && p != not_pid) {
				found = p;
				break;
			}
		}
		json_decref(arr);
		if (found > 0 || itest_mono_ms() >= deadline)
			return found;
		itest_sleep_ms(5);
	}
}

/* History lines of restart request name (its id is "<name>@<mtime>"). */
static json_t *history_of_request(const char *name)
{
	json_t *arr = itest_read_jsonl(&H, HIST);
	json_t *res = json_array();
	size_t i, n = strlen(name);
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *rid = str(o, "request_id");
		if (strncmp(rid, name, n) == 0 && (rid[n] == '@' || rid[n] == '\0'))
			json_array_append(res, o);
	}
	json_decref(arr);
	return res;
}

static json_t *wait_request_outcome(const char *name, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *h = history_of_request(name);
		if (json_array_size(h) > 0) {
			json_t *l = json_incref(json_array_get(h, 0));
			json_decref(h);
			return l;
		}
		json_decref(h);
		if (itest_mono_ms() >= deadline)
			return NULL;
		itest_sleep_ms(10);
	}
}

/* Drops the runbook's restart request format as restart/queue/<name>. */
static void request_restart(const char *name, const char *id, const char *type, const char *reason)
{
	char rel[256], text[512];
	snprintf(rel, sizeof rel, QUEUE "/%s", name);
	snprintf(text, sizeof text,
		 "{\"worker_id\": \"%s\", \"worker_type\": \"%s\", \"task_id\": \"task-%s\", \"reason\": \"%s\", "
		 "\"created_at\": \"2026-01-01T00:00:00Z\"}\n",
		 id, type, type, reason);
	itest_write_file(&H, rel, text);
}

/* "ASAN_OPTIONS=...:handle_segv=0", set by main(): under AddressSanitizer
 * a demo worker's own SEGV handler would turn a SIGSEGV into exit 1. */
static char asan_env[512];
/* The same for ThreadSanitizer's handler. */
static char tsan_env[512];

/* As spawn_demo, for a worker that must die of SIGSEGV: started through
 * env(1) (which execs it, so the pid is the worker's) with ASan's SEGV
 * handler off.  Harmless in other builds. */
static void spawn_demo_segv(const char *id, const char *type, const char *const *demo_args)
{
	const char *cmd[32];
	int n = 0;
	cmd[n++] = "/usr/bin/env";
	cmd[n++] = asan_env;
	cmd[n++] = tsan_env;
	cmd[n++] = DEMO_WORKER_PATH;
	for (int i = 0; demo_args != NULL && demo_args[i] != NULL && n < 31; i++)
		cmd[n++] = demo_args[i];
	cmd[n] = NULL;
	spawn_cmd(id, type, cmd);
}

static const char *const BEAT10[] = {"--beat-ms", "10", NULL};
/* Dies 60 ms after start with exit 1, after a few beats (so each start is
 * a successful restart and each death an exit with its code). */
static const char *const CRASHER[] = {"--beat-ms", "10", "--die-after-ms", "60", "--exit-code", "1", NULL};

/* Spawns id as a crasher and waits until a crash_loop at or above the
 * threshold is classified; returns that pattern line. */
static json_t *crash_loop_until_quarantine(const char *id, const char *type)
{
	spawn_demo(id, type, CRASHER);
	json_t *p = wait_pattern(id, "crash_loop", THRESHOLD, 1, 10000);
	CHECK(p != NULL, "no crash_loop pattern >= %.1f for %s within 10 s (%d spawns so far)", THRESHOLD, id,
	      spawned_lines(id));
	return p;
}

/* ---- 1: crash_loop --------------------------------------------------------------- */

static void crash_loop_quarantined(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-crash-001";
	json_t *cl = crash_loop_until_quarantine(id, "crash");
	check_pattern(cl, "crash_loop", id, "crash");
	json_t *ev = json_object_get(cl, "evidence");
	int64_t t_q = int_or(cl, "timestamp_ms", 0);
	CHECK(int_or(ev, "similar", 0) == 3, "the first crash_loop >= 0.7 counts %lld fast deaths, want 3 (0.784)",
	      (long long)int_or(ev, "similar", 0));
	CHECK(fabs(dbl(cl, "confidence") - 0.784) <= 0.002, "crash_loop after 3 fast deaths: confidence %g, want 0.784",
	      dbl(cl, "confidence"));
	/* It was the 3rd death. */
	size_t deaths = count_events_between(HB, "worker_exited", id, 0, t_q);
	CHECK(deaths == 3, "%zu worker_exited events up to the crash_loop >= 0.7, want 3", deaths);

	/* Before it: exit_code patterns (the same code 1), rising, and at the
	 * 2nd death a crash_loop below the threshold. */
	json_t *ec = pattern_lines(id, "exit_code");
	CHECK(json_array_size(ec) >= 1, "no exit_code pattern for %s", id);
	double prev = 0;
	size_t i;
	json_t *o;
	json_array_foreach(ec, i, o)
	{
		if (int_or(o, "timestamp_ms", 0) > t_q)
			break;
		check_pattern(o, "exit_code", id, "crash");
		json_t *e = json_object_get(o, "evidence");
		CHECK(int_or(e, "same_exit_code", -1) == 1 && int_or(e, "exit_code", -1) == 1,
		      "exit_code evidence: same_exit_code %lld exit_code %lld, want 1", (long long)int_or(e, "same_exit_code", -1),
		      (long long)int_or(e, "exit_code", -1));
		CHECK(dbl(o, "confidence") > prev, "exit_code confidence did not rise: %g after %g", dbl(o, "confidence"),
		      prev);
		prev = dbl(o, "confidence");
	}
	json_decref(ec);
	json_t *cls = pattern_lines(id, "crash_loop");
	json_t *first = json_array_get(cls, 0);
	CHECK(first != NULL && dbl(first, "confidence") < THRESHOLD && int_or(first, "timestamp_ms", 0) < t_q,
	      "the first crash_loop (at the 2nd fast death) should be below the threshold: %g",
	      first != NULL ? dbl(first, "confidence") : -1.0);
	json_t *d0 = decision_for(first);
	check_decision(d0, first, THRESHOLD, "skipped", "below_threshold");
	json_decref(d0);
	json_decref(cls);

	/* The decision: quarantine, applied. */
	json_t *d = decision_for(cl);
	check_decision(d, cl, THRESHOLD, "applied", "");
	CHECK(int_or(d, "fixes_in_last_hour", -1) == 1, "fixes_in_last_hour %lld after the first fix",
	      (long long)int_or(d, "fixes_in_last_hour", -1));
	json_decref(d);
	CHECK(count_text(FIXES, "\"result\":\"applied\"") == 1, "'\"result\":\"applied\"' is not in the history once");
	char needle[160];
	snprintf(needle, sizeof needle, "quarantined %s", id);
	CHECK(wait_text_count(AFLOG, needle, 1, 2000), "auto-fix-daemon.log does not say '%s'", needle);
	snprintf(needle, sizeof needle, "%s quarantined by auto-fix", id);
	CHECK(count_text(RLOG, needle) == 1, "worker-restart-daemon.log does not say '%s'", needle);
	snprintf(needle, sizeof needle, "pattern crash_loop for %s", id);
	CHECK(count_text(PLOG, needle) >= 1, "failure-pattern-daemon.log does not mention '%s'", needle);

	/* No more spawns: the restart vigild queued for the 3rd death, and
	 * anyone else's request, is answered "quarantined". */
	request_restart("worker-crash-001-after-quarantine.json", id, "crash", "operator_test");
	json_t *h = wait_request_outcome("worker-crash-001-after-quarantine.json", 3000);
	CHECK(h != NULL, "no outcome for a restart request of the quarantined %s within 3 s", id);
	CHECK(strcmp(str(h, "result"), "failure") == 0 && strncmp(str(h, "reason"), "quarantined: crash_loop", 23) == 0,
	      "restart request for the quarantined worker: result '%s' reason '%s', want failure 'quarantined: crash_loop...'",
	      str(h, "result"), str(h, "reason"));
	json_decref(h);
	itest_sleep_ms(500);
	CHECK(spawned_lines(id) == 3, "%d spawns of %s, want 3 (none after the quarantine)", spawned_lines(id));
	CHECK(count_events_between(HB, "worker_registered", id, t_q + 1, INT64_MAX) == 0,
	      "%s registered again after its quarantine", id);
	CHECK(wait_afmetric("fixes_applied", 1, false, 3000), "auto-fix-daemon-metrics.json fixes_applied %lld, want 1",
	      (long long)afmetric("fixes_applied"));
	CHECK(afmetric("patterns_detected") >= 5, "patterns_detected %lld, want >= 5 (3 exit_code + 2 crash_loop)",
	      (long long)afmetric("patterns_detected"));
	json_decref(cl);
}

/* ---- 2: signal_crash --------------------------------------------------------------- */

static void signal_crash_sigsegv(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-segv-002";
	const char *args[] = {"--beat-ms", "10", "--signal-after-ms", "100", "--signal", "SEGV", NULL};
	spawn_demo_segv(id, "segv", args);
	json_t *p = wait_pattern(id, "signal_crash", -1, 1, 5000);
	CHECK(p != NULL, "no signal_crash pattern for %s within 5 s", id);
	check_pattern(p, "signal_crash", id, "segv");
	json_t *ev = json_object_get(p, "evidence");
	CHECK(int_or(ev, "signal", 0) == SIGSEGV && strcmp(str(ev, "signal_name"), "SIGSEGV") == 0 &&
		      json_is_false(json_object_get(ev, "killed_by_vigil")),
	      "signal_crash evidence: signal %lld name '%s'", (long long)int_or(ev, "signal", 0), str(ev, "signal_name"));
	CHECK(fabs(dbl(p, "confidence") - 0.8) < 1e-9, "one SIGSEGV: confidence %g, want 0.8 (>= 0.7 at once)",
	      dbl(p, "confidence"));
	/* Only that pattern for the first death (one death is no crash loop).
	 * A lapse that recovered before it (a worker starved on a loaded host:
	 * CI under TSan) is a true "flapping" observation, not about the death. */
	json_t *all = pattern_lines(id, NULL);
	for (size_t k = json_array_size(all); k-- > 0;)
		if (strcmp(str(json_array_get(all, k), "type"), "flapping") == 0)
			json_array_remove(all, k);
	CHECK(json_array_size(all) >= 1 && strcmp(str(json_array_get(all, 0), "type"), "signal_crash") == 0,
	      "the first pattern of %s is '%s'", id, str(json_array_get(all, 0), "type"));
	CHECK(json_array_size(all) < 2 || int_or(json_array_get(all, 1), "timestamp_ms", 0) != int_or(p, "timestamp_ms", 1),
	      "the first SIGSEGV gave more than one pattern");
	json_decref(all);
	json_t *exited = itest_find_event(&H, HB, "worker_exited", id);
	CHECK(exited != NULL && int_or(exited, "signal", 0) == SIGSEGV, "worker_exited of %s does not say signal 11", id);
	json_decref(exited);
	/* vigild restarts the worker it spawned by itself: auto-fix's restart
	 * would be a duplicate, and the decision says so. */
	json_t *d = decision_for(p);
	check_decision(d, p, THRESHOLD, "skipped", "restart_already_underway");
	json_decref(d);
	char needle[128];
	snprintf(needle, sizeof needle, "queued restart of %s (attempt 1)", id);
	CHECK(wait_text_count(RLOG, needle, 1, 2000), "vigild did not queue its own restart of %s", id);
	json_decref(p);
}

/* ---- 3: oom_suspected --------------------------------------------------------------- */

/* SIGKILL from outside to a worker vigild spawned (so its exit status is
 * known): oom_suspected, below the threshold once, above it twice. */
static void oom_suspected_outside_sigkill(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-oom-003";
	spawn_demo(id, "oom", BEAT10);
	pid_t p1 = wait_registered_pid(id, 0, 5000);
	CHECK(p1 > 0, "%s did not register", id);
	itest_sleep_ms(100);
	CHECK(kill(p1, SIGKILL) == 0, "kill(%d, SIGKILL): %s", (int)p1, strerror(errno));
	json_t *o1 = wait_pattern(id, "oom_suspected", -1, 1, 5000);
	CHECK(o1 != NULL, "no oom_suspected pattern after an outside SIGKILL of %s", id);
	check_pattern(o1, "oom_suspected", id, "oom");
	json_t *ev = json_object_get(o1, "evidence");
	CHECK(int_or(ev, "signal", 0) == SIGKILL && json_is_false(json_object_get(ev, "killed_by_vigil")),
	      "oom_suspected evidence: signal %lld killed_by_vigil %s", (long long)int_or(ev, "signal", 0),
	      json_is_true(json_object_get(ev, "killed_by_vigil")) ? "true" : "false/absent");
	CHECK(fabs(dbl(o1, "confidence") - 0.5) < 1e-9, "one outside SIGKILL: confidence %g, want 0.5 (below 0.7)",
	      dbl(o1, "confidence"));
	json_t *d1 = decision_for(o1);
	check_decision(d1, o1, THRESHOLD, "skipped", "below_threshold");
	json_decref(d1);

	/* vigild restarts it; a second outside SIGKILL crosses the threshold. */
	pid_t p2 = wait_registered_pid(id, p1, 5000);
	CHECK(p2 > 0, "%s was not restarted after the SIGKILL", id);
	itest_sleep_ms(100);
	CHECK(kill(p2, SIGKILL) == 0, "kill(%d, SIGKILL): %s", (int)p2, strerror(errno));
	json_t *o2 = wait_pattern(id, "oom_suspected", -1, 2, 5000);
	CHECK(o2 != NULL, "no second oom_suspected pattern for %s", id);
	check_pattern(o2, "oom_suspected", id, "oom");
	CHECK(dbl(o2, "confidence") >= THRESHOLD, "two outside SIGKILLs: confidence %g, want >= 0.7 (0.75)",
	      dbl(o2, "confidence"));
	json_t *d2 = decision_for(o2);
	CHECK(d2 != NULL && strcmp(str(d2, "pattern"), "oom_suspected") == 0,
	      "the decision on the 2nd SIGKILL is about '%s', want oom_suspected (the crash_loop of 2 is below 0.7)",
	      d2 != NULL ? str(d2, "pattern") : "-");
	check_decision(d2, o2, THRESHOLD, "skipped", "restart_already_underway");
	json_decref(d2);
	json_decref(o1);
	json_decref(o2);
}

/* SIGKILL from outside to a worker that registered itself. */
static void oom_suspected_self_registered(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-oom-self-003";
	pid_t w = itest_worker_start(&H, id, "oomself", "task-oomself", BEAT10);
	json_t *reg = itest_wait_event(&H, HB, "worker_registered", id, 5000);
	CHECK(reg != NULL && json_is_true(json_object_get(reg, "verified")), "%s not registered (verified)", id);
	json_decref(reg);
	itest_sleep_ms(100);
	/* Not reaped until vigild has seen it: it stays a zombie process
	 * meanwhile, as under a shell that has not waited yet. */
	itest_signal(w, SIGKILL);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", id, 3000);
	CHECK(ex != NULL, "no worker_exited for %s", id);
	json_t *first = NULL;
	int64_t deadline = itest_mono_ms() + 3000;
	while (first == NULL && itest_mono_ms() < deadline) {
		json_t *all = pattern_lines(id, NULL);
		if (json_array_size(all) > 0)
			first = json_incref(json_array_get(all, 0));
		json_decref(all);
		if (first == NULL)
			itest_sleep_ms(10);
	}
	CHECK(first != NULL, "the death of %s gave no pattern at all", id);
	json_t *fev = json_object_get(first, "evidence");
	SOFT_CHECK(strcmp(str(first, "type"), "oom_suspected") == 0,
		   "a self-registered worker killed with SIGKILL from outside (kill -9 pid %d, as the OOM killer does) is "
		   "classified '%s' (evidence signal %s, exit_code %s), not oom_suspected; its worker_exited event has "
		   "signal %s: vigild reports the exit status of workers it did not spawn as unknown",
		   (int)w, str(first, "type"), json_is_null(json_object_get(fev, "signal")) ? "null" : "set",
		   json_is_null(json_object_get(fev, "exit_code")) ? "null" : "set",
		   json_is_null(json_object_get(ex, "signal")) ? "null" : "set");
	if (strcmp(str(first, "type"), "oom_suspected") == 0) {
		/* One is below the threshold: the documented side. */
		check_pattern(first, "oom_suspected", id, "oomself");
		CHECK(dbl(first, "confidence") < THRESHOLD, "one outside SIGKILL: confidence %g", dbl(first, "confidence"));
		json_t *d = decision_for(first);
		check_decision(d, first, THRESHOLD, "skipped", "below_threshold");
		json_decref(d);
	}
	json_decref(ex);
	itest_reap(w, 2000);
	json_decref(first);
	soft_done();
}

/* A worker that vigild itself ends with SIGKILL (after the kill grace,
 * because it ignores SIGTERM) is not an oom_suspected: vigild's own kills
 * are not classified at all.  Twice: a worker vigild spawned (its hang
 * is restarted by vigild, which ends it first) and a self-registered one
 * ended by `vigilctl cleanup-zombies`. */
static void vigild_sigkill_not_oom(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *sid = "worker-ign-003", *rid = "worker-ign-self-003";
	/* Beats a few times through the shell emitter, then goes silent in a
	 * process that ignores SIGTERM (SIG_IGN survives exec). */
	char script[1024];
	snprintf(script, sizeof script,
		 "trap '' TERM; export VIGILCTL='%s'; . '%s'; "
		 "for i in 1 2 3 4 5 6; do emit_heartbeat \"$WORKER_ID\" 100 $i || exit 3; sleep 0.02; done; "
		 "exec sleep 1000",
		 VIGILCTL_PATH, SHIM_PATH);
	const char *cmd[] = {"/bin/bash", "-c", script, NULL};
	spawn_cmd(sid, "ign", cmd);
	char self_script[1024];
	snprintf(self_script, sizeof self_script,
		 "trap '' TERM; export WORKER_TYPE=ignself; . \"$SHIM\"; "
		 "for i in 1 2 3 4 5 6; do emit_heartbeat %s 100 $i || exit 3; sleep 0.02; done; exec sleep 1000",
		 rid);
	pid_t b = itest_bash_start(&H, self_script);

	/* The spawned one: zombie, ended by vigild for its restart: SIGTERM is
	 * ignored, SIGKILL after the 0.3 s grace. */
	json_t *zc = itest_wait_event(&H, ZE, "zombie_cleanup", sid, 8000);
	CHECK(zc != NULL, "vigild did not end the hung %s within 8 s", sid);
	CHECK(strcmp(str(zc, "signal"), "SIGKILL") == 0, "%s was ended by %s, want SIGKILL (it ignores SIGTERM)", sid,
	      str(zc, "signal"));
	json_decref(zc);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", sid, 3000);
	CHECK(ex != NULL && int_or(ex, "signal", 0) == SIGKILL, "worker_exited of %s: signal %lld, want 9", sid,
	      ex != NULL ? (long long)int_or(ex, "signal", 0) : -1LL);
	int64_t t_exit = int_or(ex, "timestamp_ms", 0);
	json_decref(ex);

	/* The self-registered one: zombie, then cleaned up by the operator. */
	json_t *zd = itest_wait_event(&H, ZE, "zombie_detected", rid, 8000);
	CHECK(zd != NULL, "%s never became a zombie", rid);
	json_decref(zd);
	char *out = NULL, *err = NULL;
	const char *args[] = {"cleanup-zombies", rid, NULL};
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl cleanup-zombies %s exited %d: %s %s", rid, rc, out, err);
	free(out);
	free(err);
	json_t *zc2 = itest_wait_event(&H, ZE, "zombie_cleanup", rid, 5000);
	CHECK(zc2 != NULL && strcmp(str(zc2, "signal"), "SIGKILL") == 0, "cleanup of %s: signal '%s', want SIGKILL", rid,
	      zc2 != NULL ? str(zc2, "signal") : "(no zombie_cleanup)");
	json_decref(zc2);
	CHECK(itest_reap(b, 3000) == 128 + SIGKILL, "the self-registered worker did not die of SIGKILL");

	itest_sleep_ms(300); /* classification is synchronous with the exit; a margin anyway */
	const char *ids[] = {sid, rid};
	for (int k = 0; k < 2; k++) {
		json_t *all = pattern_lines(ids[k], NULL);
		size_t i;
		json_t *o;
		json_array_foreach(all, i, o)
		{
			CHECK(strcmp(str(o, "type"), "oom_suspected") != 0, "vigild's own SIGKILL of %s was classified oom_suspected",
			      ids[k]);
			CHECK(strcmp(str(json_object_get(o, "evidence"), "failure"), "exit") != 0 ||
				      (k == 0 && int_or(o, "timestamp_ms", 0) > t_exit),
			      "vigild's own kill of %s was classified as a failure: %s", ids[k], str(o, "type"));
		}
		json_decref(all);
	}
	/* Both hung before: a hang pattern each. */
	for (int k = 0; k < 2; k++) {
		json_t *hp = wait_pattern(ids[k], "hang", -1, 1, 1000);
		CHECK(hp != NULL, "no hang pattern for %s", ids[k]);
		json_decref(hp);
	}
}

/* ---- 4: hang ------------------------------------------------------------------------ */

static void hang_zombie(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-hang-004";
	const char *args[] = {"--beat-ms", "10", "--hang-after-ms", "100", NULL};
	spawn_demo(id, "hang", args);
	json_t *h1 = wait_pattern(id, "hang", -1, 1, 5000);
	CHECK(h1 != NULL, "no hang pattern for %s within 5 s", id);
	check_pattern(h1, "hang", id, "hang");
	CHECK(strcmp(str(json_object_get(h1, "evidence"), "failure"), "hang") == 0, "hang evidence failure '%s'",
	      str(json_object_get(h1, "evidence"), "failure"));
	CHECK(fabs(dbl(h1, "confidence") - 0.6) < 1e-9, "one hang: confidence %g, want 0.6", dbl(h1, "confidence"));
	json_t *z = itest_find_event(&H, ZE, "zombie_detected", id);
	CHECK(z != NULL && int_or(z, "timestamp_ms", 0) <= int_or(h1, "timestamp_ms", 0),
	      "the hang pattern came before the zombie_detected event");
	json_decref(z);
	json_t *d1 = decision_for(h1);
	check_decision(d1, h1, THRESHOLD, "skipped", "below_threshold");
	json_decref(d1);

	/* vigild ends the zombie and restarts it; it hangs again. */
	json_t *h2 = wait_pattern(id, "hang", -1, 2, 8000);
	CHECK(h2 != NULL, "no second hang pattern for %s within 8 s", id);
	check_pattern(h2, "hang", id, "hang");
	CHECK(dbl(h2, "confidence") >= THRESHOLD, "two hangs: confidence %g, want >= 0.7 (0.84)", dbl(h2, "confidence"));
	json_t *d2 = decision_for(h2);
	check_decision(d2, h2, THRESHOLD, "skipped", "restart_already_underway");
	json_decref(d2);
	json_decref(h1);
	json_decref(h2);
}

/* ---- 5: slow_start ------------------------------------------------------------------- */

static void slow_start_silent_restart(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-slow-005";
	const char *cmd[] = {"/bin/sleep", "30", NULL};
	spawn_cmd(id, "slow", cmd);
	char needle[128];
	snprintf(needle, sizeof needle, "spawned %s (", id);
	CHECK(wait_text_count(RLOG, needle, 1, 5000), "%s was not spawned", id);
	char rel[160];
	snprintf(rel, sizeof rel, "coordination/worker-specs/active/%s.json", id);
	json_t *spec = itest_read_json(&H, rel);
	pid_t p0 = spec != NULL ? (pid_t)int_or(spec, "pid", 0) : 0;
	json_decref(spec);
	CHECK(p0 > 0 && itest_alive(p0), "no live pid in active/%s.json", id);
	/* Its slot is published at spawn: wait until vigild has registered it,
	 * so that the restart below ends it first (see
	 * slow_start_not_blamed_on_early_restart for the other order). */
	CHECK(wait_registered_pid(id, 0, 5000) == p0, "%s (pid %d) was not registered", id, (int)p0);

	/* A restart whose new process never beats within heartbeat_timeout. */
	request_restart("worker-slow-005-restart.json", id, "slow", "slow_test");
	json_t *s1 = wait_pattern(id, "slow_start", -1, 1, 5000);
	CHECK(s1 != NULL, "no slow_start pattern for %s within 5 s of its restart", id);
	check_pattern(s1, "slow_start", id, "slow");
	CHECK(strcmp(str(json_object_get(s1, "evidence"), "failure"), "slow_start") == 0, "slow_start evidence failure '%s'",
	      str(json_object_get(s1, "evidence"), "failure"));
	CHECK(fabs(dbl(s1, "confidence") - 0.5) < 1e-9, "one slow start: confidence %g, want 0.5", dbl(s1, "confidence"));
	json_t *h = wait_request_outcome("worker-slow-005-restart.json", 2000);
	CHECK(h != NULL && strcmp(str(h, "result"), "failure") == 0 &&
		      strcmp(str(h, "reason"), "no_first_beat_within_heartbeat_timeout") == 0,
	      "the restart's outcome: '%s' '%s'", h != NULL ? str(h, "result") : "none", h != NULL ? str(h, "reason") : "-");
	json_decref(h);
	json_t *d1 = decision_for(s1);
	check_decision(d1, s1, THRESHOLD, "skipped", "below_threshold");
	json_decref(d1);
	/* "restart = end it, then start it": the process the restart replaced
	 * (it never beat; vigild published its slot at spawn) is not left
	 * running. */
	int64_t gone_by = itest_mono_ms() + 1300;
	while (itest_alive(p0) && itest_mono_ms() < gone_by)
		itest_sleep_ms(10);
	CHECK(!itest_alive(p0), "after the restart of %s, its first process (pid %d, `sleep 30`) is still running", id,
	      (int)p0);

	/* vigild retries; the retry stays silent too. */
	json_t *s2 = wait_pattern(id, "slow_start", -1, 2, 5000);
	CHECK(s2 != NULL, "no second slow_start pattern for %s", id);
	check_pattern(s2, "slow_start", id, "slow");
	CHECK(dbl(s2, "confidence") >= THRESHOLD, "two slow starts: confidence %g, want >= 0.7 (0.75)",
	      dbl(s2, "confidence"));
	json_t *d2 = decision_for(s2);
	CHECK(d2 != NULL, "no decision on the second slow_start");
	CHECK(strcmp(str(d2, "pattern"), "slow_start") == 0 && strcmp(str(d2, "action"), "restart") == 0,
	      "decision on the 2nd slow start: pattern '%s' action '%s'", str(d2, "pattern"), str(d2, "action"));
	/* vigild queues its own retry of that failed attempt: an auto-fix
	 * restart on top is a duplicate (autofix.h: "restart already queued,
	 * waiting or starting (so one more would be a duplicate)"). */
	char retry[128];
	snprintf(retry, sizeof retry, "queued restart of %s (attempt 3)", id);
	bool vigild_retried = wait_text_count(RLOG, retry, 1, 2000);
	CHECK(vigild_retried, "vigild did not queue its retry (attempt 3) after the 2nd failed attempt");
	SOFT_CHECK(strcmp(str(d2, "result"), "skipped") == 0 && strcmp(str(d2, "reason"), "restart_already_underway") == 0,
		   "the 2nd slow_start of %s (confidence %g) was decided '%s' '%s', while vigild queued its own retry for "
		   "the same failed attempt ('%s'): auto-fix queued a second restart request (restart/queue/<id>-autofix-*.json, "
		   "reason auto_fix:slow_start) on top of it, so one failure is answered by two restarts",
		   id, dbl(s2, "confidence"), str(d2, "result"), str(d2, "reason"), retry);
	json_decref(d2);
	json_decref(s1);
	json_decref(s2);
	soft_done();
}

/* A healthy worker whose restart request is taken before vigild has seen
 * its registration (deterministic here: the spawn and the restart request
 * are both queued while vigild is down, and vigild takes them in one
 * poll).  The restart must end the running process before it starts the
 * new one; a slow_start must not be blamed on a worker that beats. */
static void slow_start_not_blamed_on_early_restart(void **state)
{
	(void)state;
	const char *id = "worker-early-005";
	spawn_demo(id, "early", BEAT10); /* vigild down: queued */
	request_restart("worker-early-005-restart.json", id, "early", "early_test");
	itest_vigild_start(&H);
	json_t *h = wait_request_outcome("worker-early-005-restart.json", 5000);
	CHECK(h != NULL, "no outcome for the restart request within 5 s");
	SOFT_CHECK(strcmp(str(h, "result"), "success") == 0,
		   "the restart of a healthy worker (beating every 10 ms) taken in the same poll as its spawn: '%s' '%s'; "
		   "the running process was not ended before the new one started, and the new one's registration was "
		   "rejected ('worker id is already registered': %zu worker_rejected event(s))",
		   str(h, "result"), str(h, "reason"), itest_count_events(&H, HB, "worker_rejected", id));
	json_decref(h);
	itest_sleep_ms(1000); /* vigild's own retries, if any, settle */
	json_t *ss = pattern_lines(id, "slow_start");
	SOFT_CHECK(json_array_size(ss) == 0,
		   "%zu slow_start pattern(s) for %s, a worker that beats every 10 ms from its first instant", json_array_size(ss),
		   id);
	json_decref(ss);
	pid_t pids[8];
	int n = procs_of(id, pids, 8);
	char list[128] = "";
	for (int i = 0; i < n && i < 8; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), " %d", (int)pids[i]);
	SOFT_CHECK(n == 1, "%d live processes of %s (pids%s) after one spawn and one restart, want 1: a process "
		   "vigild started is running unsupervised (its slot was rejected)", n, id, list);
	soft_done();
}

/* ---- 6: exit_code ------------------------------------------------------------------- */

static void exit_code_repeated(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-exit-006";
	const char *args[] = {"--beat-ms", "10", "--die-after-ms", "100", "--exit-code", "3", NULL};
	spawn_demo(id, "exitc", args);
	json_t *e3 = wait_pattern(id, "exit_code", -1, 3, 8000);
	CHECK(e3 != NULL, "fewer than 3 exit_code patterns for %s within 8 s", id);
	json_decref(e3);
	json_t *ec = pattern_lines(id, "exit_code");
	const double want[3] = {0.4, 0.64, 0.784};
	for (size_t i = 0; i < 3; i++) {
		json_t *o = json_array_get(ec, i);
		check_pattern(o, "exit_code", id, "exitc");
		json_t *ev = json_object_get(o, "evidence");
		CHECK(int_or(ev, "same_exit_code", -1) == 3 && int_or(ev, "exit_code", -1) == 3,
		      "exit_code #%zu evidence: same_exit_code %lld exit_code %lld, want 3", i + 1,
		      (long long)int_or(ev, "same_exit_code", -1), (long long)int_or(ev, "exit_code", -1));
		CHECK(int_or(ev, "similar", 0) == (int64_t)i + 1 && fabs(dbl(ev, "alikeness") - 1.0) < 1e-9,
		      "exit_code #%zu evidence: similar %lld alikeness %g, want %zu and 1", i + 1,
		      (long long)int_or(ev, "similar", 0), dbl(ev, "alikeness"), i + 1);
		CHECK(fabs(dbl(o, "confidence") - want[i]) <= 0.002, "exit_code #%zu: confidence %g, want %g", i + 1,
		      dbl(o, "confidence"), want[i]);
		CHECK((i < 2) == (dbl(o, "confidence") < THRESHOLD), "exit_code #%zu (%g) on the wrong side of 0.7", i + 1,
		      dbl(o, "confidence"));
	}
	/* The first (a single exit 1 is ambiguous) is skipped below the
	 * threshold; the third is decided on the most drastic pattern at or
	 * above it: the crash_loop's quarantine (fast deaths). */
	json_t *p1 = json_array_get(ec, 0);
	json_t *d1 = decision_for(p1);
	check_decision(d1, p1, THRESHOLD, "skipped", "below_threshold");
	json_decref(d1);
	json_t *p3 = json_array_get(ec, 2);
	json_t *d3 = decision_for(p3);
	CHECK(d3 != NULL && strcmp(str(d3, "pattern"), "crash_loop") == 0 && strcmp(str(d3, "action"), "quarantine") == 0 &&
		      strcmp(str(d3, "result"), "applied") == 0,
	      "decision at the 3rd exit 3: pattern '%s' action '%s' result '%s', want crash_loop quarantine applied",
	      d3 != NULL ? str(d3, "pattern") : "-", d3 != NULL ? str(d3, "action") : "-", d3 != NULL ? str(d3, "result") : "-");
	json_decref(d3);
	json_decref(ec);
}

/* ---- 7: flapping -------------------------------------------------------------------- */

static void flapping_quarantined(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-flap-007";
	const char *args[] = {"--beat-ms", "10", "--flap-ms", "150", NULL};
	spawn_demo(id, "flap", args);
	json_t *f = wait_pattern(id, "flapping", THRESHOLD, 1, 8000);
	CHECK(f != NULL, "no flapping pattern >= 0.7 for %s within 8 s", id);
	check_pattern(f, "flapping", id, "flap");
	json_t *ev = json_object_get(f, "evidence");
	CHECK(int_or(ev, "similar", 0) == 4, "flapping reached 0.7 after %lld lapses, want 4",
	      (long long)int_or(ev, "similar", 0));
	int64_t t = int_or(f, "timestamp_ms", 0);
	size_t rec = count_events_between(HB, "heartbeat_recovered", id, 0, t);
	CHECK(rec == 4, "%zu heartbeat_recovered events up to the flapping >= 0.7, want 4", rec);
	/* Rising below the threshold before. */
	json_t *fl = pattern_lines(id, "flapping");
	const double want[3] = {0.3, 0.51, 0.657};
	for (size_t i = 0; i < 3; i++) {
		json_t *o = json_array_get(fl, i);
		check_pattern(o, "flapping", id, "flap");
		CHECK(fabs(dbl(o, "confidence") - want[i]) <= 0.002, "flapping #%zu: confidence %g, want %g", i + 1,
		      dbl(o, "confidence"), want[i]);
	}
	json_decref(fl);
	json_t *d = decision_for(f);
	check_decision(d, f, THRESHOLD, "applied", "");
	json_decref(d);
	char needle[128];
	snprintf(needle, sizeof needle, "quarantined %s", id);
	CHECK(wait_text_count(AFLOG, needle, 1, 2000), "auto-fix-daemon.log does not say '%s'", needle);
	/* The next lapse: already quarantined. */
	json_t *f5 = wait_pattern(id, "flapping", THRESHOLD, 2, 3000);
	CHECK(f5 != NULL, "no 5th flapping pattern");
	json_t *d5 = decision_for(f5);
	check_decision(d5, f5, THRESHOLD, "skipped", "quarantined");
	json_decref(d5);
	json_decref(f5);
	json_decref(f);
}

/* ---- 8: progress_stall -------------------------------------------------------------- */

static void progress_stall_kill_then_restart(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-stall-008";
	const char *args[] = {"--beat-ms", "10", "--stall-progress", NULL};
	spawn_demo(id, "stall", args);
	pid_t p1 = wait_registered_pid(id, 0, 5000);
	CHECK(p1 > 0, "%s did not register", id);
	json_t *s1 = wait_pattern(id, "progress_stall", -1, 1, 5000);
	CHECK(s1 != NULL, "no progress_stall pattern for %s within 5 s", id);
	check_pattern(s1, "progress_stall", id, "stall");
	CHECK(int_or(json_object_get(s1, "evidence"), "stalled_ms", 0) >= 500, "stalled_ms %lld, want >= 500",
	      (long long)int_or(json_object_get(s1, "evidence"), "stalled_ms", 0));
	CHECK(fabs(dbl(s1, "confidence") - 0.5) < 1e-9, "one stall: confidence %g, want 0.5", dbl(s1, "confidence"));
	json_t *se = itest_find_event(&H, HB, "progress_stall", id);
	CHECK(se != NULL, "no progress_stall event for %s", id);
	int64_t late = int_or(se, "timestamp_ms", 0) - int_or(se, "due_ms", 0);
	CHECK(late >= 0 && late <= itest_tick_ms(&H) + itest_slack_ms(),
	      "progress_stall reported %lld ms after it became true (tick %.1f + slack %d)", (long long)late,
	      itest_tick_ms(&H), itest_slack_ms());
	json_decref(se);
	json_t *d1 = decision_for(s1);
	check_decision(d1, s1, THRESHOLD, "skipped", "below_threshold");
	json_decref(d1);
	CHECK(itest_alive(p1), "the stalled worker was ended although the fix was below the threshold");

	/* The operator restarts it (vigilctl restart); it stalls again: now
	 * auto-fix kills and restarts it. */
	char *out = NULL, *err = NULL;
	const char *rargs[] = {"restart", "--reason", "operator_test", "--type", "stall", "--task-id", "task-stall", id, NULL};
	int rc = ctl(&out, &err, rargs);
	CHECK(rc == 0, "vigilctl restart %s exited %d: %s", id, rc, err);
	free(out);
	free(err);
	pid_t p2 = wait_registered_pid(id, p1, 5000);
	CHECK(p2 > 0, "%s was not restarted by vigilctl restart", id);
	json_t *s2 = wait_pattern(id, "progress_stall", -1, 2, 5000);
	CHECK(s2 != NULL, "no second progress_stall for %s", id);
	check_pattern(s2, "progress_stall", id, "stall");
	CHECK(dbl(s2, "confidence") >= THRESHOLD, "two stalls: confidence %g, want >= 0.7 (0.75)", dbl(s2, "confidence"));
	json_t *d2 = decision_for(s2);
	check_decision(d2, s2, THRESHOLD, "applied", "");
	json_decref(d2);
	/* Through the restart path: a request with the auto-fix reason, which
	 * ends the stalled process and starts a new one. */
	int64_t deadline = itest_mono_ms() + 5000;
	json_t *line = NULL;
	while (line == NULL && itest_mono_ms() < deadline) {
		json_t *hl = lines_about(HIST, id, "requested_because", "auto_fix:progress_stall");
		if (json_array_size(hl) > 0)
			line = json_incref(json_array_get(hl, 0));
		json_decref(hl);
		if (line == NULL)
			itest_sleep_ms(10);
	}
	CHECK(line != NULL, "no restart outcome requested_because auto_fix:progress_stall within 5 s");
	CHECK(strcmp(str(line, "result"), "success") == 0, "the auto-fix restart: '%s' '%s'", str(line, "result"),
	      str(line, "reason"));
	json_decref(line);
	int64_t gone_by = itest_mono_ms() + 2000;
	while (itest_alive(p2) && itest_mono_ms() < gone_by)
		itest_sleep_ms(10);
	CHECK(!itest_alive(p2), "the stalled process %d is still there after kill_then_restart", (int)p2);
	CHECK(wait_registered_pid(id, p2, 100) > 0, "no new process after kill_then_restart");
	json_decref(s1);
	json_decref(s2);
}

/* ---- 9: rate limit -------------------------------------------------------------------- */

/* Eleven flapping workers, each quarantined at its 4th lapse: a fix that
 * applies whatever the restart path is doing.  The 11th in the hour is
 * rate limited. */
static void rate_limit_eleventh_fix(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *args[] = {"--beat-ms", "20", "--flap-ms", "150", NULL};
	for (int i = 1; i <= 11; i++) {
		char id[64];
		snprintf(id, sizeof id, "worker-rate-%03d", i);
		itest_worker_start(&H, id, "rate", "task-rate", args);
	}
	json_t *rl = wait_decision(NULL, "skipped", "rate_limited", 10000);
	CHECK(rl != NULL, "no rate_limited decision within 10 s of 11 flapping workers");
	CHECK(strcmp(str(rl, "pattern"), "flapping") == 0 && strcmp(str(rl, "action"), "quarantine") == 0 &&
		      dbl(rl, "confidence") >= THRESHOLD,
	      "the rate-limited decision: pattern '%s' action '%s' confidence %g", str(rl, "pattern"), str(rl, "action"),
	      dbl(rl, "confidence"));
	CHECK(int_or(rl, "fixes_in_last_hour", -1) == 10 && int_or(rl, "max_fixes_per_hour", -1) == 10,
	      "the rate-limited decision says fixes_in_last_hour %lld max_fixes_per_hour %lld, want 10 and 10",
	      (long long)int_or(rl, "fixes_in_last_hour", -1), (long long)int_or(rl, "max_fixes_per_hour", -1));
	/* Exactly 10 applied before it, in the file's order, numbered 1..10. */
	json_t *all = itest_read_jsonl(&H, FIXES);
	size_t i;
	json_t *o;
	int applied = 0;
	json_array_foreach(all, i, o)
	{
		if (strcmp(str(o, "reason"), "rate_limited") == 0)
			break;
		if (strcmp(str(o, "result"), "applied") == 0) {
			applied++;
			CHECK(int_or(o, "fixes_in_last_hour", -1) == applied, "applied fix #%d says fixes_in_last_hour %lld",
			      applied, (long long)int_or(o, "fixes_in_last_hour", -1));
		}
	}
	json_decref(all);
	CHECK(applied == 10, "%d applied fixes before the first rate_limited one, want 10", applied);
	/* The rate-limited worker was not quarantined. */
	char needle[160];
	snprintf(needle, sizeof needle, "quarantined %s:", str(rl, "worker_id"));
	itest_sleep_ms(200);
	CHECK(count_text(AFLOG, needle) == 0, "%s was quarantined although its fix was rate limited", str(rl, "worker_id"));
	CHECK(count_text(FIXES, "\"result\":\"applied\"") == 10, "%d applied fixes in the hour, want 10",
	      count_text(FIXES, "\"result\":\"applied\""));
	CHECK(count_text(FIXES, "\"result\":\"skipped\",\"reason\":\"rate_limited\"") >= 1,
	      "'\"result\":\"skipped\",\"reason\":\"rate_limited\"' is not in the history");
	CHECK(wait_afmetric("fixes_rate_limited", 1, true, 3000), "fixes_rate_limited %lld, want >= 1",
	      (long long)afmetric("fixes_rate_limited"));
	CHECK(afmetric("fixes_applied") == 10, "fixes_applied %lld, want 10", (long long)afmetric("fixes_applied"));
	CHECK(afmetric("fixes_in_last_hour") == 10, "fixes_in_last_hour %lld, want 10",
	      (long long)afmetric("fixes_in_last_hour"));
	json_decref(rl);
}

/* ---- 10: dry run ---------------------------------------------------------------------- */

static void dry_run_changes_nothing(void **state)
{
	(void)state;
	write_autofix_policy(true, THRESHOLD, true, NULL, 0);
	itest_vigild_start(&H);
	const char *id = "worker-dry-010";
	json_t *cl = crash_loop_until_quarantine(id, "dry");
	check_pattern(cl, "crash_loop", id, "dry");
	json_t *d = decision_for(cl);
	check_decision(d, cl, THRESHOLD, "dry_run", "dry_run");
	json_decref(d);
	/* vigild keeps restarting it per the restart policy (no quarantine)
	 * until max_retries: 1 start + 5 restarts. */
	char needle[128];
	snprintf(needle, sizeof needle, "giving up on %s", id);
	CHECK(wait_text_count(RLOG, needle, 1, 15000), "vigild did not give up on %s after max_retries within 15 s", id);
	CHECK(spawned_lines(id) == 6, "%d spawns of %s under dry_run, want 6 (1 + max_retries 5)", spawned_lines(id), id);
	CHECK(count_text(AFLOG, "quarantined") == 0 && count_text(RLOG, "quarantined") == 0,
	      "a dry run quarantined something");
	CHECK(count_text(FIXES, "\"result\":\"applied\"") == 0, "a dry run applied a fix");
	json_t *decs = lines_about(FIXES, id, "result", "dry_run");
	CHECK(json_array_size(decs) >= 1, "no dry_run decision");
	json_decref(decs);
	/* No restart requested by auto-fix: every restart outcome was asked for
	 * by vigild itself. */
	json_t *hist = lines_about(HIST, id, NULL, NULL);
	size_t i;
	json_t *o;
	json_array_foreach(hist, i, o)
	{
		CHECK(strncmp(str(o, "requested_because"), "auto_fix:", 9) != 0 && strstr(str(o, "request_id"), "-autofix-") == NULL,
		      "a restart requested by auto-fix under dry_run: %s", str(o, "request_id"));
		CHECK(strncmp(str(o, "reason"), "quarantined", 11) != 0, "a restart refused as quarantined under dry_run");
	}
	json_decref(hist);
	CHECK(wait_afmetric("fixes_dry_run", 1, true, 3000), "fixes_dry_run %lld, want >= 1",
	      (long long)afmetric("fixes_dry_run"));
	CHECK(afmetric("fixes_applied") == 0, "fixes_applied %lld under dry_run", (long long)afmetric("fixes_applied"));
	json_decref(cl);
}

/* ---- 11: disabled, below threshold -------------------------------------------------------- */

static void disabled_skips(void **state)
{
	(void)state;
	write_autofix_policy(false, THRESHOLD, false, NULL, 0);
	itest_vigild_start(&H);
	const char *id = "worker-off-011";
	spawn_demo_segv(id, "off", BEAT10);
	pid_t p = wait_registered_pid(id, 0, 5000);
	CHECK(p > 0, "%s did not register", id);
	itest_sleep_ms(50);
	CHECK(kill(p, SIGSEGV) == 0, "kill(%d, SIGSEGV): %s", (int)p, strerror(errno));
	json_t *s = wait_pattern(id, "signal_crash", -1, 1, 5000);
	CHECK(s != NULL, "no signal_crash pattern with auto-fix disabled (classification goes on)");
	check_pattern(s, "signal_crash", id, "off");
	CHECK(dbl(s, "confidence") >= THRESHOLD, "signal_crash confidence %g", dbl(s, "confidence"));
	json_t *d = decision_for(s);
	check_decision(d, s, THRESHOLD, "skipped", "disabled");
	json_decref(d);
	CHECK(wait_afmetric("decisions", 1, true, 3000), "decisions %lld, want >= 1", (long long)afmetric("decisions"));
	CHECK(afmetric("fixes_applied") == 0, "fixes_applied %lld with auto-fix disabled", (long long)afmetric("fixes_applied"));
	json_decref(s);
}

static void below_threshold_skips(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-once-011";
	const char *args[] = {"--beat-ms", "10", "--die-after-ms", "150", "--exit-code", "1", NULL};
	spawn_demo(id, "once", args);
	json_t *e = wait_pattern(id, "exit_code", -1, 1, 5000);
	CHECK(e != NULL, "no exit_code pattern for %s", id);
	check_pattern(e, "exit_code", id, "once");
	CHECK(fabs(dbl(e, "confidence") - 0.4) < 1e-9, "a single exit 1: confidence %g, want 0.4", dbl(e, "confidence"));
	json_t *all = pattern_lines(id, NULL);
	CHECK(strcmp(str(json_array_get(all, 0), "type"), "exit_code") == 0, "the first death gave '%s' first",
	      str(json_array_get(all, 0), "type"));
	json_decref(all);
	json_t *d = decision_for(e);
	check_decision(d, e, THRESHOLD, "skipped", "below_threshold");
	CHECK(int_or(d, "fixes_in_last_hour", -1) == 0, "fixes_in_last_hour %lld", (long long)int_or(d, "fixes_in_last_hour", -1));
	json_decref(d);
	CHECK(count_text(FIXES, "\"result\":\"skipped\",\"reason\":\"below_threshold\"") >= 1,
	      "'\"result\":\"skipped\",\"reason\":\"below_threshold\"' is not in the history");
	json_decref(e);
}

/* ---- 12: notifications ------------------------------------------------------------------ */

static void notify_command_never_blocks(void **state)
{
	(void)state;
	write_autofix_policy(true, THRESHOLD, false, "sleep 1000", 0.5);
	itest_vigild_start(&H);
	pid_t vd = H.vigild;
	/* Two healthy self-registered workers to watch while the command hangs. */
	const char *bid = "worker-watch-b-012", *cid = "worker-watch-c-012";
	pid_t b = itest_worker_start(&H, bid, "watch", "task-watch", BEAT10);
	pid_t c = itest_worker_start(&H, cid, "watch", "task-watch", BEAT10);
	CHECK(wait_registered_pid(bid, 0, 5000) == b && wait_registered_pid(cid, 0, 5000) == c,
	      "the watched workers did not register");

	/* An applied fix (a crash loop's quarantine) runs the command. */
	const char *id = "worker-notify-012";
	spawn_demo(id, "notify", CRASHER);
	json_t *d = wait_decision(id, "applied", NULL, 10000);
	CHECK(d != NULL, "no applied decision for %s within 10 s", id);
	/* While the command hangs: SIGKILL one worker, SIGSTOP the other. */
	int64_t T = itest_now_ms();
	CHECK(kill(b, SIGKILL) == 0 && kill(c, SIGSTOP) == 0, "cannot signal the watched workers");
	int64_t t_fix = int_or(d, "timestamp_ms", 0);
	json_decref(d);
	/* The command itself, for the checks at the end. */
	pid_t sleeps[8];
	int ns = 0;
	int64_t deadline = itest_mono_ms() + 1000;
	while ((ns = procs_below(vd, "sleep 1000", sleeps, 8)) == 0 && itest_mono_ms() < deadline)
		itest_sleep_ms(5);
	CHECK(ns > 0 || wait_afmetric("notifications_killed", 1, true, 3000),
	      "no `sleep 1000` under vigild within 1 s of the applied fix, and none killed");

	double tick = itest_tick_ms(&H);
	int slack = itest_slack_ms();
	json_t *ex = wait_event_since(HB, "worker_exited", bid, 0, 3000);
	CHECK(ex != NULL, "no worker_exited for %s within 3 s while the notification hangs", bid);
	int64_t t_ex = int_or(ex, "timestamp_ms", 0);
	json_decref(ex);
	CHECK(t_ex >= T, "worker_exited of %s at %lld, before the kill at %lld", bid, (long long)t_ex, (long long)T);
	CHECK(t_ex - T <= tick + slack, "worker_exited of %s came %lld ms after the SIGKILL (tick %.1f + slack %d)", bid,
	      (long long)(t_ex - T), tick, slack);
	json_t *ms = wait_event_since(HB, "heartbeat_missed", cid, T - 50, 3000);
	CHECK(ms != NULL, "no heartbeat_missed for the stopped %s within 3 s while the notification hangs", cid);
	int64_t t_ms = int_or(ms, "timestamp_ms", 0), last = int_or(ms, "last_seen_ms", 0);
	json_decref(ms);
	int64_t interval = (int64_t)llround(P_INTERVAL * 1000);
	CHECK(t_ms >= last + interval, "heartbeat_missed of %s at %lld, before last_seen %lld + interval", cid,
	      (long long)t_ms, (long long)last);
	CHECK(t_ms - last <= interval + tick + slack,
	      "heartbeat_missed of %s came %lld ms after its last beat (interval %lld + tick %.1f + slack %d)", cid,
	      (long long)(t_ms - last), (long long)interval, tick, slack);
	/* Both while the command was still within its 0.5 s: vigild did not
	 * wait for it. */
	CHECK(t_ex < t_fix + 500 && t_ms < t_fix + 500,
	      "the detections (%lld, %lld ms after the fix) were not made while the notification was running",
	      (long long)(t_ex - t_fix), (long long)(t_ms - t_fix));
	CHECK(count_text(AFLOG, "notify: {") >= 1 && count_text(AFLOG, "auto_fix_applied") >= 1,
	      "auto-fix-daemon.log does not announce the applied fix");
	/* The command is killed after notify_timeout_seconds. */
	CHECK(wait_afmetric("notifications_killed", 1, true, 5000), "notifications_killed %lld, want >= 1",
	      (long long)afmetric("notifications_killed"));
	CHECK(afmetric("notifications_sent") >= 1, "notifications_sent %lld", (long long)afmetric("notifications_sent"));
	for (int i = 0; i < ns && i < 8; i++) {
		int64_t gone_by = itest_mono_ms() + 2000;
		while (itest_alive(sleeps[i]) && itest_mono_ms() < gone_by)
			itest_sleep_ms(10);
		CHECK(!itest_alive(sleeps[i]), "`sleep 1000` (pid %d) outlived notify_timeout_seconds", (int)sleeps[i]);
	}
	kill(c, SIGCONT);
	/* None left once vigild has stopped. */
	CHECK(itest_vigild_stop(&H, 5000) == 0, "vigild did not stop cleanly");
	/* What vigild left behind would have been handed to us (subreaper). */
	int left = procs_below(vd, "sleep 1000", NULL, 0) + procs_below(getpid(), "sleep 1000", NULL, 0) +
		   procs_below(getpid(), "sh -c sleep 1000", NULL, 0);
	CHECK(left == 0, "%d `sleep 1000` process(es) left after vigild stopped", left);
	char cmd[256];
	for (int i = 0; i < ns && i < 8; i++) {
		cmdline_of(sleeps[i], cmd, sizeof cmd);
		CHECK(!itest_alive(sleeps[i]) || strcmp(cmd, "sleep 1000") != 0, "`sleep 1000` pid %d is still there",
		      (int)sleeps[i]);
	}
}

static void notify_command_gets_event_json(void **state)
{
	(void)state;
	char cmdtext[ITEST_PATH_MAX + 64];
	snprintf(cmdtext, sizeof cmdtext, "cat > %s/notified.json", H.dir);
	write_autofix_policy(true, THRESHOLD, false, cmdtext, 5);
	itest_vigild_start(&H);
	const char *id = "worker-notify-b-012";
	json_t *cl = crash_loop_until_quarantine(id, "notifyb");
	json_decref(cl);
	json_t *ev = NULL;
	int64_t deadline = itest_mono_ms() + 5000;
	while (ev == NULL && itest_mono_ms() < deadline) {
		char *s = itest_read_file(&H, "notified.json");
		if (s != NULL && s[0] != '\0' && strchr(s, '\n') != NULL)
			ev = json_loads(s, 0, NULL);
		free(s);
		if (ev == NULL)
			itest_sleep_ms(10);
	}
	char *raw = itest_read_file(&H, "notified.json");
	CHECK(ev != NULL, "notified.json is not one JSON document within 5 s: '%s'", raw != NULL ? raw : "(absent)");
	free(raw);
	CHECK(strcmp(str(ev, "event"), "auto_fix_applied") == 0 && strcmp(str(ev, "worker_id"), id) == 0 &&
		      strcmp(str(ev, "pattern"), "crash_loop") == 0 && strcmp(str(ev, "action"), "quarantine") == 0 &&
		      dbl(ev, "confidence") >= THRESHOLD && strcmp(str(ev, "worker_type"), "notifyb") == 0,
	      "notify_command got event '%s' worker '%s' pattern '%s' action '%s' confidence %g", str(ev, "event"),
	      str(ev, "worker_id"), str(ev, "pattern"), str(ev, "action"), dbl(ev, "confidence"));
	CHECK(iso_timestamp_ok(str(ev, "timestamp")) && json_is_integer(json_object_get(ev, "timestamp_ms")),
	      "the event has no timestamp/timestamp_ms");
	json_decref(ev);
	CHECK(wait_afmetric("notifications_sent", 1, true, 3000), "notifications_sent %lld",
	      (long long)afmetric("notifications_sent"));
	itest_sleep_ms(100);
	CHECK(wait_afmetric("notifications_in_flight", 0, false, 3000) && afmetric("notifications_failed") == 0 &&
		      afmetric("notifications_killed") == 0,
	      "notifications: failed %lld killed %lld in flight %lld", (long long)afmetric("notifications_failed"),
	      (long long)afmetric("notifications_killed"), (long long)afmetric("notifications_in_flight"));
}

/* ---- 13: policy reload --------------------------------------------------------------------- */

/* vigild rereads only the policy file that changed, and logs it in the
 * component's log: the auto-fix policy's reread is the barrier here. */
static int reload_lines(void)
{
	return count_text(AFLOG, "auto-fix policy reread, unchanged (file changed)") +
	       count_text(AFLOG, "auto-fix policy reloaded (file changed)");
}

static void policy_reload_next_decision(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *bid = "worker-before-013", *aid = "worker-after-013";
	spawn_demo_segv(bid, "reload", BEAT10);
	spawn_demo_segv(aid, "reload", BEAT10);
	pid_t b = wait_registered_pid(bid, 0, 5000), a = wait_registered_pid(aid, 0, 5000);
	CHECK(a > 0 && b > 0, "the workers did not register");
	itest_sleep_ms(50);
	/* Under 0.7: a SIGSEGV (0.8) passes the threshold (and is then skipped
	 * only because vigild restarts it itself). */
	CHECK(kill(b, SIGSEGV) == 0, "kill(%d, SIGSEGV): %s", (int)b, strerror(errno));
	json_t *pb = wait_pattern(bid, "signal_crash", -1, 1, 5000);
	CHECK(pb != NULL, "no signal_crash for %s", bid);
	json_t *db = decision_for(pb);
	check_decision(db, pb, THRESHOLD, "skipped", "restart_already_underway");
	json_decref(db);
	json_decref(pb);
	CHECK(wait_registered_pid(bid, b, 5000) > 0, "%s was not restarted", bid);

	/* The operator raises the threshold the runbook's way: jq into a
	 * temporary file, mv over the policy. */
	int before = reload_lines();
	json_t *tmp = itest_read_jsonl(&H, FIXES);
	size_t decisions_before = json_array_size(tmp);
	json_decref(tmp);
	char *out = NULL;
	int rc = itest_sh(&H,
			  "cd \"$COMMIT_RELAY_HOME/coordination/config\" && "
			  "jq '.min_confidence_threshold = 0.99' auto-fix-policy.json > .auto-fix-policy.json.tmp && "
			  "mv .auto-fix-policy.json.tmp auto-fix-policy.json",
			  &out, 10000);
	free(out);
	CHECK(rc == 0, "jq + mv of the policy exited %d", rc);
	int64_t dl = itest_mono_ms() + 3000;
	while (reload_lines() <= before && itest_mono_ms() < dl)
		itest_sleep_ms(5);
	CHECK(reload_lines() > before, "no reload line in auto-fix-daemon.log within 3 s of the mv");
	/* The very next failure is decided under the new threshold. */
	CHECK(kill(a, SIGSEGV) == 0, "kill(%d, SIGSEGV): %s", (int)a, strerror(errno));
	json_t *pa = wait_pattern(aid, "signal_crash", -1, 1, 5000);
	CHECK(pa != NULL, "no signal_crash for %s", aid);
	check_pattern(pa, "signal_crash", aid, "reload");
	CHECK(fabs(dbl(pa, "confidence") - 0.8) < 1e-9, "signal_crash confidence %g, want 0.8", dbl(pa, "confidence"));
	json_t *da = decision_for(pa);
	check_decision(da, pa, 0.99, "skipped", "below_threshold");
	json_decref(da);
	json_decref(pa);
	/* Every decision since the reload carries the new threshold (another
	 * may come first: on a loaded host the restarted worker can lapse). */
	json_t *all = itest_read_jsonl(&H, FIXES);
	CHECK(json_array_size(all) > decisions_before, "no decision after the reload");
	for (size_t i = decisions_before; i < json_array_size(all); i++)
		CHECK(fabs(dbl(json_array_get(all, i), "threshold") - 0.99) < 1e-9, "decision %zu after the reload says threshold %g",
		      i, dbl(json_array_get(all, i), "threshold"));
	json_decref(all);
}

/* ---- 14: quarantine lift -------------------------------------------------------------------- */

static void quarantine_lift_runs_again(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-lift-014";
	json_t *cl = crash_loop_until_quarantine(id, "lift");
	json_t *d = decision_for(cl);
	check_decision(d, cl, THRESHOLD, "applied", "");
	json_decref(d);
	json_decref(cl);
	char needle[128];
	snprintf(needle, sizeof needle, "quarantined %s", id);
	CHECK(wait_text_count(AFLOG, needle, 1, 2000), "%s was not quarantined", id);
	itest_sleep_ms(300);
	int spawns = spawned_lines(id);
	CHECK(spawns == 3, "%d spawns before the lift, want 3", spawns);

	/* Lifting a worker that is not quarantined is refused. */
	itest_write_file(&H, "coordination/control/queue/lift-other.json",
			 "{\"request_id\":\"lift-other\",\"action\":\"quarantine_lift\",\"worker_id\":\"worker-nobody-014\","
			 "\"created_at\":\"2026-01-01T00:00:00Z\"}\n");
	CHECK(itest_wait_file(&H, "coordination/control/done/lift-other.json", true, 3000), "no answer to lift-other");
	json_t *ans0 = itest_read_json(&H, "coordination/control/done/lift-other.json");
	CHECK(ans0 != NULL && strcmp(str(ans0, "result"), "failure") == 0, "lifting a worker never quarantined: '%s'",
	      ans0 != NULL ? str(ans0, "result") : "-");
	json_decref(ans0);

	char text[512];
	snprintf(text, sizeof text,
		 "{\"request_id\":\"lift-1\",\"action\":\"quarantine_lift\",\"worker_id\":\"%s\","
		 "\"created_at\":\"2026-01-01T00:00:00Z\"}\n",
		 id);
	int64_t t_lift = itest_now_ms();
	itest_write_file(&H, "coordination/control/queue/lift-1.json", text);
	CHECK(itest_wait_file(&H, "coordination/control/done/lift-1.json", true, 3000),
	      "no control/done/lift-1.json within 3 s");
	json_t *ans = itest_read_json(&H, "coordination/control/done/lift-1.json");
	CHECK(ans != NULL && strcmp(str(ans, "result"), "success") == 0 && strcmp(str(ans, "action"), "quarantine_lift") == 0,
	      "quarantine_lift answer: result '%s' action '%s' message '%s'", str(ans, "result"), str(ans, "action"),
	      str(ans, "message"));
	json_decref(ans);
	CHECK(!itest_exists(&H, "coordination/control/queue/lift-1.json"), "the lift request is still queued");
	snprintf(needle, sizeof needle, "quarantine of %s lifted", id);
	CHECK(count_text(AFLOG, needle) == 1, "auto-fix-daemon.log does not say '%s'", needle);

	/* A restart request runs again. */
	request_restart("worker-lift-014-after-lift.json", id, "lift", "after_lift");
	json_t *h = wait_request_outcome("worker-lift-014-after-lift.json", 5000);
	CHECK(h != NULL, "no outcome for the restart request after the lift");
	CHECK(strcmp(str(h, "result"), "success") == 0, "restart after the lift: '%s' '%s'", str(h, "result"),
	      str(h, "reason"));
	json_decref(h);
	CHECK(spawned_lines(id) >= 4, "no new spawn after the lift");
	/* Its old crash loop was forgotten: the next death starts afresh. */
	json_t *arr = pattern_lines(id, NULL);
	json_t *first_after = NULL, *o;
	size_t i;
	json_array_foreach(arr, i, o)
	{
		/* A lapse that recovered on a loaded host is a true flapping
		 * observation, not about the deaths (CI under TSan). */
		if (int_or(o, "timestamp_ms", 0) >= t_lift && strcmp(str(o, "type"), "flapping") != 0) {
			first_after = o;
			break;
		}
	}
	if (first_after == NULL) {
		json_decref(arr);
		json_t *p = wait_pattern(id, "exit_code", -1, 4, 3000);
		json_decref(p);
		arr = pattern_lines(id, NULL);
		json_array_foreach(arr, i, o)
		{
			if (int_or(o, "timestamp_ms", 0) >= t_lift && strcmp(str(o, "type"), "flapping") != 0) {
				first_after = o;
				break;
			}
		}
	}
	CHECK(first_after != NULL, "no pattern after the lift (the restarted crasher did not die?)");
	CHECK(strcmp(str(first_after, "type"), "exit_code") == 0 && int_or(json_object_get(first_after, "evidence"), "similar", 0) == 1,
	      "the first pattern after the lift is '%s' with %lld similar: the old history was not forgotten",
	      str(first_after, "type"), (long long)int_or(json_object_get(first_after, "evidence"), "similar", 0));
	json_t *dd = decision_for(first_after);
	check_decision(dd, first_after, THRESHOLD, "skipped", "below_threshold");
	json_decref(dd);
	json_decref(arr);

	/* It keeps crashing: quarantined again after 3 more fast deaths, and
	 * the operator's own command lifts that one. */
	json_t *cl2 = wait_pattern(id, "crash_loop", THRESHOLD, 2, 10000);
	CHECK(cl2 != NULL, "%s was not quarantined again after the lift", id);
	json_t *d2 = decision_for(cl2);
	check_decision(d2, cl2, THRESHOLD, "applied", "");
	json_decref(d2);
	json_decref(cl2);
	char *out = NULL, *err = NULL;
	const char *args[] = {"quarantine", "lift", "--wait-seconds", "5", id, NULL};
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl quarantine lift %s exited %d: '%s' '%s'", id, rc, out, err);
	free(out);
	free(err);
	CHECK(wait_text_count(AFLOG, needle, 2, 2000), "auto-fix-daemon.log does not say '%s' a second time", needle);
}

int main(void)
{
	/* SIGSEGV workers: no core files. */
	struct rlimit rl = {0, 0};
	setrlimit(RLIMIT_CORE, &rl);
	const char *ao = getenv("ASAN_OPTIONS");
	snprintf(asan_env, sizeof asan_env, "ASAN_OPTIONS=%s%shandle_segv=0", ao != NULL ? ao : "",
		 ao != NULL && ao[0] != '\0' ? ":" : "");
	const char *to = getenv("TSAN_OPTIONS");
	snprintf(tsan_env, sizeof tsan_env, "TSAN_OPTIONS=%s%shandle_segv=0", to != NULL ? to : "",
		 to != NULL && to[0] != '\0' ? " " : "");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(crash_loop_quarantined, setup, teardown),
		cmocka_unit_test_setup_teardown(signal_crash_sigsegv, setup, teardown),
		cmocka_unit_test_setup_teardown(oom_suspected_outside_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(oom_suspected_self_registered, setup, teardown),
		cmocka_unit_test_setup_teardown(vigild_sigkill_not_oom, setup, teardown),
		cmocka_unit_test_setup_teardown(hang_zombie, setup, teardown),
		cmocka_unit_test_setup_teardown(slow_start_silent_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(slow_start_not_blamed_on_early_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(exit_code_repeated, setup, teardown),
		cmocka_unit_test_setup_teardown(flapping_quarantined, setup, teardown),
		cmocka_unit_test_setup_teardown(progress_stall_kill_then_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(rate_limit_eleventh_fix, setup, teardown),
		cmocka_unit_test_setup_teardown(dry_run_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(disabled_skips, setup, teardown),
		cmocka_unit_test_setup_teardown(below_threshold_skips, setup, teardown),
		cmocka_unit_test_setup_teardown(notify_command_never_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(notify_command_gets_event_json, setup, teardown),
		cmocka_unit_test_setup_teardown(policy_reload_next_decision, setup, teardown),
		cmocka_unit_test_setup_teardown(quarantine_lift_runs_again, setup, teardown),
	};
	return cmocka_run_group_tests_name("autofix", tests, NULL, NULL);
}
