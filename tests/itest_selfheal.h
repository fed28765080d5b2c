/*
 * itest_selfheal.h - what the self-healing suites (test_selfheal,
 * test_lifecycle) share: file names, the fast policies, and helpers over
 * vigilctl, specs, the restart history, metrics and breakers, all bound to
 * the suite's home H.
 *
 * Include after itest_check.h (it uses CHECK and H).
 */
#ifndef VIGIL_ITEST_SELFHEAL_H
#define VIGIL_ITEST_SELFHEAL_H

#include <dirent.h>
#include <stdbool.h>

#define HB "heartbeat-events.jsonl"
#define ZE "zombie-cleanup-events.jsonl"
#define HIST "coordination/metrics/worker-restart-history.jsonl"
#define RMETRICS "coordination/metrics/worker-restart-metrics.json"
#define RLOG "agents/logs/system/worker-restart-daemon.log"
#define HB_LOG "agents/logs/system/heartbeat-monitor-daemon.log"
#define QUEUE "coordination/restart/queue"
#define ACTIVE "coordination/worker-specs/active"
#define ZOMBIE "coordination/worker-specs/zombie"

/* Heartbeat policy (seconds). */
#define P_INTERVAL 0.05
#define P_TIMEOUT 0.2
#define P_ZOMBIE 0.5

static inline void write_restart_policy(double retry_interval, unsigned max_retries)
{
	char text[1024];
	snprintf(text, sizeof text,
		 "{\n  \"max_retries\": %u,\n  \"retry_interval_seconds\": %.6g,\n  \"backoff_multiplier\": 2,\n"
		 "  \"circuit_breaker_enabled\": true,\n  \"circuit_breaker_threshold\": 5,\n"
		 "  \"circuit_breaker_reset_seconds\": 1,\n  \"kill_grace_seconds\": 0.3\n}\n",
		 max_retries, retry_interval);
	itest_write_file(&H, "coordination/config/worker-restart-policy.json", text);
	/* These tests are about the restart path itself: auto-fix (which would
	 * quarantine a crash loop) is tested in test_autofix.c. */
	itest_write_file(&H, "coordination/config/auto-fix-policy.json", "{\"enabled\": false}\n");
}

/* ---- helpers ---------------------------------------------------------------------- */

/* vigilctl --home H --shm S args... ; out/err malloc'd (may be NULL). */
static inline int ctl(char **out, char **err, const char *const *args)
{
	return itest_vigilctl(&H, out, err, args);
}

/* vigilctl spawn --type T --task-id X --id ID [--tokens N] [--wait] -- DEMO args...
 * Fails the test unless it exits 0 and prints the id. */
static inline void spawn_demo(const char *id, const char *type, const char *task, const char *tokens, bool wait,
		       const char *const *demo_args)
{
	const char *args[48];
	int n = 0;
	args[n++] = "spawn";
	args[n++] = "--type";
	args[n++] = type;
	args[n++] = "--task-id";
	args[n++] = task;
	args[n++] = "--id";
	args[n++] = id;
	if (tokens != NULL) {
		args[n++] = "--tokens";
		args[n++] = tokens;
	}
	if (wait)
		args[n++] = "--wait";
	args[n++] = "--";
	args[n++] = DEMO_WORKER_PATH;
	for (int i = 0; demo_args != NULL && demo_args[i] != NULL && n < 47; i++)
		args[n++] = demo_args[i];
	args[n] = NULL;
	char *out = NULL, *err = NULL;
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl spawn %s exited %d; stdout '%s' stderr '%s'", id, rc, out, err);
	CHECK(strncmp(out, id, strlen(id)) == 0 && out[strlen(id)] == '\n', "vigilctl spawn printed '%s', want '%s'",
	      out, id);
	free(out);
	free(err);
}

static inline json_t *spec(const char *dir, const char *id)
{
	char rel[256];
	snprintf(rel, sizeof rel, "%s/%s.json", dir, id);
	return itest_read_json(&H, rel);
}

static inline int64_t json_int_or(const json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* pid in active/<id>.json, 0 when absent. */
static inline pid_t spec_pid(const char *id)
{
	json_t *s = spec(ACTIVE, id);
	pid_t p = s != NULL ? (pid_t)json_int_or(s, "pid", 0) : 0;
	json_decref(s);
	return p;
}

/* Polls (10 ms) until active/<id>.json names a live pid other than not_pid
 * (0: any); returns it, or 0. */
static inline pid_t wait_spec_pid(const char *id, pid_t not_pid, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		pid_t p = spec_pid(id);
		if (p > 0 && p != not_pid && itest_alive(p))
			return p;
		if (itest_mono_ms() >= deadline)
			return 0;
		itest_sleep_ms(10);
	}
}

/* Waits for a worker_registered (or worker_adopted with adopted) of id with
 * a pid other than not_pid; returns the event (new reference) or NULL. */
static inline json_t *wait_registered(const char *id, pid_t not_pid, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *arr = itest_read_jsonl(&H, HB);
		json_t *found = NULL, *o;
		size_t i;
		json_array_foreach(arr, i, o)
		{
			const char *ev = json_string_value(json_object_get(o, "event"));
			const char *wid = json_string_value(json_object_get(o, "worker_id"));
			if (ev != NULL && wid != NULL && strcmp(ev, "worker_registered") == 0 && strcmp(wid, id) == 0 &&
			    json_int_or(o, "pid", 0) != not_pid) {
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

/* Spawns id (a demo worker with args) through vigilctl and returns its pid
 * once vigild has registered it (fails the test after 5 s). */
static inline pid_t spawn_registered(const char *id, const char *type, const char *task, const char *const *args)
{
	spawn_demo(id, type, task, NULL, false, args);
	json_t *reg = wait_registered(id, 0, 5000);
	CHECK(reg != NULL, "%s was not registered within 5 s of vigilctl spawn", id);
	pid_t pid = (pid_t)itest_int(reg, "pid");
	json_decref(reg);
	return pid;
}

/* Events named event about id with timestamp_ms >= since_ms. */
static inline size_t count_since(const char *file, const char *event, const char *id, int64_t since_ms)
{
	json_t *arr = itest_read_jsonl(&H, file);
	size_t n = 0, i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *ev = json_string_value(json_object_get(o, "event"));
		const char *wid = json_string_value(json_object_get(o, "worker_id"));
		if (ev != NULL && strcmp(ev, event) == 0 && (id == NULL || (wid != NULL && strcmp(wid, id) == 0)) &&
		    json_int_or(o, "timestamp_ms", 0) >= since_ms)
			n++;
	}
	json_decref(arr);
	return n;
}

/* History lines (new array) whose key equals value. */
static inline json_t *history_where(const char *key, const char *value)
{
	json_t *arr = itest_read_jsonl(&H, HIST);
	json_t *res = json_array();
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *v = json_string_value(json_object_get(o, key));
		/* A request's id is "<file name>@<created_at>": file names
		 * repeat (the runbook reuses ${WORKER_ID}-restart.json). */
		size_t n = strlen(value);
		bool match = v != NULL && (strcmp(v, value) == 0 ||
					   (strcmp(key, "request_id") == 0 && strncmp(v, value, n) == 0 && v[n] == '@'));
		if (match)
			json_array_append(res, o);
	}
	json_decref(arr);
	return res;
}

/* Waits until at least n history lines have key == value; returns them. */
static inline json_t *wait_history(const char *key, const char *value, size_t n, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		json_t *l = history_where(key, value);
		if (json_array_size(l) >= n || itest_mono_ms() >= deadline)
			return l;
		json_decref(l);
		itest_sleep_ms(10);
	}
}

/* Request files (*.json, not hidden) in a directory under the home. */
static inline int count_dir(const char *rel, const char *suffix)
{
	char p[ITEST_PATH_MAX];
	DIR *d = opendir(itest_path(&H, rel, p));
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *de;
	size_t sl = strlen(suffix);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] != '.' && l > sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static inline bool wait_dir_count(const char *rel, const char *suffix, int n, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		if (count_dir(rel, suffix) == n)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(10);
	}
}

static inline bool wait_gone(pid_t pid, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	while (itest_alive(pid)) {
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(10);
	}
	return true;
}

/* Integer member of worker-restart-metrics.json (-1 when absent). */
static inline int64_t rmetric(const char *key)
{
	json_t *m = itest_read_json(&H, RMETRICS);
	int64_t v = m != NULL ? json_int_or(m, key, -1) : -1;
	json_decref(m);
	return v;
}

static inline bool wait_rmetric(const char *key, int64_t want, bool at_least, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		int64_t v = rmetric(key);
		if (at_least ? v >= want : v == want)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(20);
	}
}

/* state and failure_count of circuit-breakers/<type>.json ("" / -1 when absent). */
static inline void breaker(const char *type, char state[32], int64_t *failures)
{
	char rel[256];
	snprintf(rel, sizeof rel, "coordination/circuit-breakers/%s.json", type);
	json_t *b = itest_read_json(&H, rel);
	snprintf(state, 32, "%s", b != NULL ? str(b, "state") : "");
	*failures = b != NULL ? json_int_or(b, "failure_count", -1) : -1;
	json_decref(b);
}

static inline bool wait_breaker(const char *type, const char *want_state, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		char st[32];
		int64_t f;
		breaker(type, st, &f);
		if (strcmp(st, want_state) == 0)
			return true;
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(10);
	}
}

static inline const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s != NULL ? s + 1 : path;
}

/* vigilctl restart [--type T --task-id X] --reason R ID; returns the
 * request's file name (static). */
static inline const char *ctl_restart_as(const char *id, const char *reason, const char *type, const char *task)
{
	static char name[256];
	char *out = NULL, *err = NULL;
	const char *args[] = {"restart", "--reason", reason, id, NULL, NULL, NULL, NULL, NULL};
	if (type != NULL) {
		args[3] = "--type";
		args[4] = type;
		args[5] = "--task-id";
		args[6] = task;
		args[7] = id;
	}
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl restart %s exited %d: %s", id, rc, err);
	out[strcspn(out, "\n")] = '\0';
	snprintf(name, sizeof name, "%s", base_name(out));
	CHECK(strstr(name, ".json") != NULL, "vigilctl restart printed '%s', not a request file", out);
	free(out);
	free(err);
	return name;
}

static inline const char *ctl_restart(const char *id, const char *reason)
{
	return ctl_restart_as(id, reason, NULL, NULL);
}

/* vigilctl restart id; waits until vigild has taken the request and the
 * old process has ended.  Copies the request's name into req; returns the
 * monotonic instant of the request. */
static inline int64_t restart_and_await_end(const char *id, pid_t old, const char *reason, char *req, size_t req_len)
{
	snprintf(req, req_len, "%s", ctl_restart(id, reason));
	int64_t t_req = itest_mono_ms();
	char needle[128];
	snprintf(needle, sizeof needle, "restart of %s requested", id);
	CHECK(wait_text_count(RLOG, needle, 1, 3000), "vigild did not take %s", req);
	CHECK(wait_gone(old, 3000), "the old process %d did not end for the restart", (int)old);
	return t_req;
}

/* The runbook's "Test Auto-Restart" request, verbatim. */

#endif /* VIGIL_ITEST_SELFHEAL_H */
