/*
 * test_model.c - a model-based test of the worker lifecycle: a seeded
 * random sequence of what happens to a real fleet (workers that beat, die,
 * hang, detach; kill -9 and SIGSTOP from outside; restart requests in the
 * runbook's format; quarantine lifts; vigild stopped, killed -9 and started
 * again; restart policies rewritten; auto-fix on), and after every step the
 * invariants an operator relies on:
 *
 *   I1 at most one live process per worker id;
 *   I2 no restart beyond the budget: no outcome line of an attempt that ran
 *      (not "refused") above the largest max_retries ever in force;
 *   I3 every request exactly one outcome line (request_id unique);
 *   I4 a goodbye is never a failure: no worker_exited for a pid that
 *      said goodbye (worker_detached).  (A "bye" worker may still fail for
 *      real here: the run stops and kills it too.  That a goodbye makes no
 *      pattern is test_lifecycle's detach_then_exit_is_detached.)
 *   I5 metrics add up: restarts_attempted = succeeded + failed + in flight
 *      (worker-restart-metrics.json, one document);
 *   I6 every file valid: each .json under coordination/ one JSON document,
 *      each .jsonl line one object (the harness fails the test otherwise).
 *
 * VIGIL_TEST_SEED replays a run; VIGIL_MODEL_STEPS sets its length (CI: 30;
 * the README gives the long run).  On a failure the seed and the step are
 * printed with the state.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "itest.h"
#include "vigil.h"

static struct itest_home H;
#include "itest_check.h"

#include "itest_selfheal.h"

#define NIDS 4

static uint64_t seed, rng;
static int step_no;

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== model run: seed %llu (VIGIL_TEST_SEED=%llu replays it), step %d; home %s\n",
		(unsigned long long)seed, (unsigned long long)seed, step_no, H.dir);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 20);
	dump_tail("worker-restart-history.jsonl", HIST, 20);
	dump_tail("worker-restart-daemon.log", RLOG, 30);
	dump_tail("vigild.out", "vigild.out", 10);
}

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: a replayable sequence, nothing more. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 33) % n;
}

static int setup(void **state)
{
	(void)state;
	soft_msgs[0] = '\0';
	itest_home_create(&H);
	itest_write_policy(&H, P_INTERVAL, P_TIMEOUT, P_ZOMBIE, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return itest_finish(&H, NULL);
}

static unsigned max_retries_ever;

static void write_policies(unsigned max_retries)
{
	write_restart_policy(0.1, max_retries);
	if (max_retries > max_retries_ever)
		max_retries_ever = max_retries;
	itest_write_file(&H, "coordination/config/auto-fix-policy.json",
			 "{\"enabled\": true, \"min_confidence_threshold\": 0.5, \"max_fixes_per_hour\": 20,"
			 " \"dry_run\": false, \"notification_enabled\": false}\n");
}

static void id_of(int i, char out[32]) { snprintf(out, 32, "worker-m-%03d", i); }

/* ---- the invariants ----------------------------------------------------------------- */

static void check_invariants(void)
{
	char id[32];
	for (int i = 0; i < NIDS; i++) {
		id_of(i, id);
		int n = procs_of(id, NULL, 0);
		CHECK(n <= 1, "I1: %d live processes of %s", n, id);
	}
	json_t *hist = itest_read_jsonl(&H, HIST);
	size_t k, j;
	json_t *o, *p;
	json_array_foreach(hist, k, o)
	{
		/* A refused request (given up, quarantined, breaker) ran nothing. */
		CHECK(json_is_true(json_object_get(o, "refused")) || itest_int(o, "attempt") <= (int64_t)max_retries_ever,
		      "I2: an outcome of %s at attempt %lld, above max_retries %u", str(o, "worker_id"),
		      (long long)itest_int(o, "attempt"), max_retries_ever);
		const char *rid = str(o, "request_id");
		if (rid[0] == '\0')
			continue;
		json_array_foreach(hist, j, p) if (j > k && strcmp(str(p, "request_id"), rid) == 0)
			CHECK(false, "I3: request %s has two outcome lines", rid);
	}
	json_decref(hist);
	json_t *ev = itest_read_jsonl(&H, HB);
	json_array_foreach(ev, k, o)
	{
		if (strcmp(str(o, "event"), "worker_detached") != 0)
			continue;
		json_array_foreach(ev, j, p) if (strcmp(str(p, "event"), "worker_exited") == 0 &&
						 itest_int(p, "pid") == itest_int(o, "pid") &&
						 strcmp(str(p, "worker_id"), str(o, "worker_id")) == 0)
			CHECK(false, "I4: pid %lld of %s said goodbye and was reported exited", (long long)itest_int(o, "pid"),
			      str(o, "worker_id"));
	}
	json_decref(ev);
	json_t *m = itest_read_json(&H, RMETRICS);
	if (m != NULL) {
		int64_t att = itest_int(m, "restarts_attempted"), ok = itest_int(m, "restarts_succeeded"),
			bad = itest_int(m, "restarts_failed"), fly = itest_int(m, "restarts_in_flight");
		CHECK(att == ok + bad + fly, "I5: restarts_attempted %lld != succeeded %lld + failed %lld + in flight %lld",
		      (long long)att, (long long)ok, (long long)bad, (long long)fly);
		json_decref(m);
	}
	/* I6: every .json under the tree parses (itest_read_json fails the test otherwise). */
	static const char *const dirs[] = {"coordination/worker-specs/active", "coordination/worker-specs/zombie",
					   "coordination/lifecycle", "coordination/circuit-breakers", "coordination/metrics"};
	for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
		char path[ITEST_PATH_MAX];
		DIR *dir = opendir(itest_path(&H, dirs[d], path));
		struct dirent *de;
		while (dir != NULL && (de = readdir(dir)) != NULL) {
			size_t l = strlen(de->d_name);
			if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
				continue;
			char rel[ITEST_PATH_MAX];
			snprintf(rel, sizeof rel, "%s/%s", dirs[d], de->d_name);
			json_decref(itest_read_json(&H, rel));
		}
		if (dir != NULL)
			closedir(dir);
	}
}

/* ---- the steps ------------------------------------------------------------------------ */

static void step_spawn(int i)
{
	char id[32], ms[16];
	id_of(i, id);
	snprintf(ms, sizeof ms, "%u", 100 + rnd(400));
	const char *type = "model";
	const char *args[32] = {"spawn", "--type", NULL, "--task-id", "model", "--id", id, "--", DEMO_WORKER_PATH,
				"--beat-ms", "10"};
	int n = 11;
	switch (rnd(4)) {
	case 0: break; /* beats until told otherwise */
	case 1:
		args[n++] = "--die-after-ms";
		args[n++] = ms;
		args[n++] = "--exit-code";
		args[n++] = "3";
		break;
	case 2:
		args[n++] = "--hang-after-ms";
		args[n++] = ms;
		break;
	default:
		type = "bye";
		args[n++] = "--detach-after-ms";
		args[n++] = ms;
		break;
	}
	args[2] = type;
	args[n] = NULL;
	fprintf(stderr, "  step %d: spawn %s (%s%s%s)\n", step_no, id, type, n > 11 ? " " : "", n > 11 ? args[11] : "");
	ctl(NULL, NULL, args); /* an id in use is refused: that is an event too */
}

static void step_signal(int i, int sig)
{
	char id[32];
	id_of(i, id);
	pid_t pids[4];
	int n = procs_of(id, pids, 4);
	fprintf(stderr, "  step %d: signal %d to %s (%d process%s)\n", step_no, sig, id, n, n == 1 ? "" : "es");
	for (int k = 0; k < n && k < 4; k++)
		kill(pids[k], sig);
}

static void step_request(int i)
{
	char id[32], rel[128], text[512];
	id_of(i, id);
	snprintf(rel, sizeof rel, QUEUE "/%s-model-%d.json", id, step_no);
	snprintf(text, sizeof text,
		 "{\"worker_id\":\"%s\",\"worker_type\":\"model\",\"task_id\":\"model\",\"reason\":\"model_step_%d\","
		 "\"created_at\":\"2026-12-04T00:00:00Z\"}\n",
		 id, step_no);
	fprintf(stderr, "  step %d: restart request for %s\n", step_no, id);
	itest_write_file(&H, rel, text);
}

static void step_lift(int i)
{
	char id[32];
	id_of(i, id);
	fprintf(stderr, "  step %d: quarantine lift %s\n", step_no, id);
	const char *args[] = {"quarantine", "lift", id, NULL};
	ctl(NULL, NULL, args);
}

static void model_run(void **state)
{
	(void)state;
	const char *s = getenv("VIGIL_TEST_SEED");
	seed = s != NULL ? strtoull(s, NULL, 10) : (uint64_t)itest_now_ms();
	rng = seed * 2654435761ull + 1;
	int steps = getenv("VIGIL_MODEL_STEPS") != NULL ? atoi(getenv("VIGIL_MODEL_STEPS")) : 30;
	fprintf(stderr, "model: seed %llu, %d steps (VIGIL_TEST_SEED=%llu VIGIL_MODEL_STEPS=%d replays it)\n",
		(unsigned long long)seed, steps, (unsigned long long)seed, steps);
	write_policies(3);
	itest_vigild_start(&H);
	for (step_no = 1; step_no <= steps; step_no++) {
		int i = (int)rnd(NIDS);
		switch (rnd(12)) {
		case 0: case 1: case 2: step_spawn(i); break;
		case 3: step_signal(i, SIGKILL); break;
		case 4: step_signal(i, SIGSTOP); break;
		case 5: step_signal(i, SIGCONT); break;
		case 6: case 7: step_request(i); break;
		case 8: step_lift(i); break;
		case 9:
			fprintf(stderr, "  step %d: vigild SIGTERM, start\n", step_no);
			CHECK(itest_vigild_stop(&H, 15000) == 0, "vigild did not stop cleanly");
			itest_vigild_start(&H);
			break;
		case 10:
			fprintf(stderr, "  step %d: vigild kill -9, start\n", step_no);
			itest_vigild_kill9(&H);
			itest_vigild_start(&H);
			break;
		default: {
			unsigned mr = 1 + rnd(4);
			fprintf(stderr, "  step %d: restart policy max_retries %u\n", step_no, mr);
			write_policies(mr);
			break;
		}
		}
		itest_sleep_ms(100 + (int)rnd(400));
		check_invariants();
	}
	/* Let everything settle (SIGCONT all, no more events) and check once more. */
	for (int i = 0; i < NIDS; i++)
		step_signal(i, SIGCONT);
	itest_sleep_ms(1500);
	check_invariants();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(model_run, setup, teardown),
	};
	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
