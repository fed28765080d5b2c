/*
 * test_selfheal.c - vigil's self-healing end to end: spawning, the restart
 * queue with backoff, circuit breakers, exactly-once across a vigild crash,
 * zombie cleanup through pidfds, bad requests.  The real vigild, real
 * worker processes (vigil-demo-worker), and the files and events an
 * operator reads - the runbook's own heredocs and jq loops where it has
 * them.
 *
 * Policies: heartbeat interval 0.05 s, timeout 0.2 s, zombie 0.5 s (tick
 * 12.5 ms); restart retry_interval 0.2 s (delays 0.2, 0.4, 0.8 s),
 * backoff 2, max_retries 3, breaker threshold 5, breaker reset 1 s, kill
 * grace 0.3 s.  Order is judged strictly; upper bounds get
 * itest_slack_ms() for scheduling noise (see itest.h).
 *
 * Cleanup: workers that vigild spawned are not the harness's children (they
 * run in sessions of their own and outlive a vigild killed with -9), so the
 * teardown also kills every process whose environment names this test's
 * segment (itest_kill_segment_users) before itest_teardown() reaps them.
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
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
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

/* ---- diagnostics ------------------------------------------------------------ */

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 30);
	dump_tail("zombie-cleanup-events.jsonl", "coordination/events/" ZE, 10);
	dump_tail("worker-restart-history.jsonl", HIST, 15);
	dump_tail("worker-restart-daemon.log", RLOG, 30);
	dump_tail("vigild.out", "vigild.out", 15);
}

/* ---- fixtures ------------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	soft_msgs[0] = '\0';
	itest_home_create(&H);
	itest_write_policy(&H, P_INTERVAL, P_TIMEOUT, P_ZOMBIE, NULL);
	write_restart_policy(0.2, 3);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return itest_finish(&H, NULL);
}

static const char RUNBOOK_RESTART_REQUEST[] =
	"# Manually create restart request\n"
	"WORKER_ID=\"worker-test-001\"\n"
	"cat > $COMMIT_RELAY_HOME/coordination/restart/queue/${WORKER_ID}-restart.json << EOF\n"
	"{\n"
	"  \"worker_id\": \"$WORKER_ID\",\n"
	"  \"worker_type\": \"test-worker\",\n"
	"  \"task_id\": \"test-task\",\n"
	"  \"reason\": \"manual_test\",\n"
	"  \"created_at\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"\n"
	"}\n"
	"EOF\n";

/* The runbook's "Test Circuit Breaker" loop, verbatim. */
static const char RUNBOOK_BREAKER_FAILURES[] =
	"# Trigger multiple failures\n"
	"for i in {1..6}; do\n"
	"    cat >> $COMMIT_RELAY_HOME/coordination/metrics/worker-restart-history.jsonl << EOF\n"
	"{\"worker_type\":\"test-worker\",\"result\":\"failure\",\"timestamp\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}\n"
	"EOF\n"
	"done\n";

/* The runbook's "Circuit Breakers" status loop, verbatim. */
static const char RUNBOOK_BREAKERS[] =
	"for cb in $COMMIT_RELAY_HOME/coordination/circuit-breakers/*.json; do\n"
	"    if [[ -f \"$cb\" ]]; then\n"
	"        TYPE=$(jq -r '.worker_type' \"$cb\")\n"
	"        STATE=$(jq -r '.state' \"$cb\")\n"
	"        COUNT=$(jq -r '.failure_count' \"$cb\")\n"
	"        echo \"$TYPE: $STATE ($COUNT failures)\"\n"
	"    fi\n"
	"done\n";

/* The runbook's "Restart History" success count. */
static const char RUNBOOK_SUCCESS_COUNT[] =
	"SUCCESS=$(grep -c '\"result\":\"success\"' "
	"$COMMIT_RELAY_HOME/coordination/metrics/worker-restart-history.jsonl)\n"
	"echo $SUCCESS\n";

static const char *const BEAT10[] = {"--beat-ms", "10", NULL};

/* ---- 1 ---------------------------------------------------------------------------- */

static void runbook_test_auto_restart(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t old = spawn_registered("worker-test-001", "test-worker", "test-task", BEAT10);
	CHECK(wait_spec_pid("worker-test-001", 0, 3000) == old, "active/worker-test-001.json does not name pid %d",
	      (int)old);

	char *out = NULL;
	int rc = itest_sh(&H, RUNBOOK_RESTART_REQUEST, &out, 10000);
	free(out);
	CHECK(rc == 0, "the runbook's restart request heredoc exited %d", rc);
	int64_t t_req = itest_now_ms();

	/* The old process ends: it is stopped (SIGTERM) before the restart. */
	CHECK(wait_gone(old, 3000), "the old process %d is still there 3 s after the restart request", (int)old);
	pid_t neu = wait_spec_pid("worker-test-001", old, 5000);
	CHECK(neu > 0, "no new live pid in active/worker-test-001.json within 5 s");
	CHECK(wait_dir_count(QUEUE, ".json", 0, 5000), "the request is still in restart/queue/ 5 s later");

	json_t *lines = history_where("request_id", "worker-test-001-restart.json");
	CHECK(json_array_size(lines) == 1, "%zu history lines for request worker-test-001-restart.json, want 1",
	      json_array_size(lines));
	json_t *l = json_array_get(lines, 0);
	CHECK(strcmp(str(l, "result"), "success") == 0 && strcmp(str(l, "worker_id"), "worker-test-001") == 0 &&
		      strcmp(str(l, "worker_type"), "test-worker") == 0 && strcmp(str(l, "task_id"), "test-task") == 0,
	      "history line: result '%s', worker '%s', type '%s', task '%s'", str(l, "result"), str(l, "worker_id"),
	      str(l, "worker_type"), str(l, "task_id"));
	CHECK(itest_int(l, "timestamp_ms") >= t_req - 1000, "the history line is older than the request");
	json_decref(lines);
	/* grep-able as the runbook greps it: no spaces. */
	CHECK(count_text(HIST, "\"result\":\"success\"") == 1, "'\"result\":\"success\"' is not in the history once");
	rc = itest_sh(&H, RUNBOOK_SUCCESS_COUNT, &out, 10000);
	CHECK(rc == 0 && atoi(out) == 1, "the runbook's success count printed '%s' (exit %d)", out, rc);
	free(out);

	CHECK(count_text(RLOG, "worker-test-001") > 0, "worker-restart-daemon.log never mentions worker-test-001");
	/* The new process is the same worker: same type and task, registered. */
	json_t *r2 = wait_registered("worker-test-001", old, 2000);
	CHECK(r2 != NULL && itest_int(r2, "pid") == neu, "no worker_registered for the new pid %d", (int)neu);
	CHECK(strcmp(str(r2, "worker_type"), "test-worker") == 0 && strcmp(str(r2, "task_id"), "test-task") == 0,
	      "the new process registered as type '%s' task '%s'", str(r2, "worker_type"), str(r2, "task_id"));
	json_decref(r2);
	CHECK(spawned_lines("worker-test-001") == 2, "%d 'spawned' lines for worker-test-001, want 2",
	      spawned_lines("worker-test-001"));
}

/* ---- 2 ---------------------------------------------------------------------------- */

static void runbook_test_circuit_breaker(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-test-002";
	pid_t old = spawn_registered(id, "test-worker", "test-task", BEAT10);

	/* The runbook's lines carry whole-second timestamps, and vigild dates
	 * the opening by the record's own time (on_history_record), so the
	 * breaker may count its 1 s reset from up to 999 ms before it really
	 * opened.  Start the loop just after a second boundary so that the
	 * refused request below certainly falls inside the open period. */
	while (itest_now_ms() % 1000 > 30)
		itest_sleep_ms(1);
	int64_t t_loop = itest_now_ms();
	char *out = NULL;
	int rc = itest_sh(&H, RUNBOOK_BREAKER_FAILURES, &out, 10000);
	free(out);
	CHECK(rc == 0, "the runbook's failure loop exited %d", rc);
	CHECK(wait_breaker("test-worker", "open", 3000), "circuit-breakers/test-worker.json is not open 3 s after six failures");
	json_t *bf = itest_read_json(&H, "coordination/circuit-breakers/test-worker.json");
	CHECK(bf != NULL, "circuit-breakers/test-worker.json vanished");
	int64_t t_open = itest_int(bf, "opened_at_ms");
	int64_t t_reset = itest_int(bf, "reset_at_ms");
	json_decref(bf);
	CHECK(t_open >= t_loop - 1000 && t_open <= itest_now_ms(), "opened_at_ms %lld is not when the failures came (%lld)",
	      (long long)t_open, (long long)t_loop);
	CHECK(t_reset == t_open + 1000, "reset_at_ms %lld is not opened_at_ms + 1 s (%lld)", (long long)t_reset,
	      (long long)t_open);

	/* A restart of that type is refused while the breaker is open. */
	const char *req1 = ctl_restart(id, "breaker_test");
	char st[32];
	int64_t failures;
	breaker("test-worker", st, &failures);
	CHECK(failures >= 5, "failure_count %lld after six failures", (long long)failures);
	rc = itest_sh(&H, RUNBOOK_BREAKERS, &out, 10000);
	CHECK(rc == 0, "the runbook's breaker loop exited %d", rc);
	int n = -1;
	CHECK(sscanf(out, "test-worker: open (%d failures)", &n) == 1 && n >= 5,
	      "the runbook's breaker loop printed '%s'", out);
	free(out);

	json_t *h1 = wait_history("request_id", req1, 1, 3000);
	CHECK(json_array_size(h1) == 1, "no history line for the refused request %s within 3 s", req1);
	json_t *l = json_array_get(h1, 0);
	CHECK(strcmp(str(l, "result"), "failure") == 0 && strcmp(str(l, "reason"), "circuit_breaker_open") == 0,
	      "request %s while open: result '%s' reason '%s'", req1, str(l, "result"), str(l, "reason"));
	int64_t t_denied = itest_int(l, "timestamp_ms");
	CHECK(t_denied < t_open + 1000, "the refusal came %lld ms after the breaker opened: after the reset time",
	      (long long)(t_denied - t_open));
	json_decref(h1);
	CHECK(count_text(HIST, "\"result\":\"failure\",\"reason\":\"circuit_breaker_open\"") == 1,
	      "'\"result\":\"failure\",\"reason\":\"circuit_breaker_open\"' is not in the history once");
	CHECK(wait_rmetric("restarts_denied_by_breaker", 1, true, 3000), "restarts_denied_by_breaker is %lld, want >= 1",
	      (long long)rmetric("restarts_denied_by_breaker"));
	CHECK(spawned_lines(id) == 1, "a refused restart spawned a process (%d 'spawned' lines)", spawned_lines(id));
	CHECK(count_since(HB, "worker_registered", id, 0) == 1, "a refused restart registered a new process");
	/* Nothing ran: the worker the operator wanted restarted should not have
	 * been ended for a restart that was then refused. */
	SOFT_CHECK(itest_alive(old),
		   "the running worker (pid %d) was killed by a restart request that the open breaker then refused: "
		   "the worker is now down and not restarted",
		   (int)old);

	/* After the reset time the breaker lets one trial through. */
	CHECK(wait_breaker("test-worker", "half_open", 3000), "the breaker is not half_open 3 s after it opened");
	CHECK(itest_now_ms() >= t_reset, "half_open %lld ms before its reset_at_ms", (long long)(t_reset - itest_now_ms()));
	/* A request of the runbook's format under a name of its own: vigilctl
	 * would reuse "<ID>-restart.json", which vigild takes for the refused
	 * request already carried out (see repeated_request_name_runs_again),
	 * and it needs --type when the refused restart took the worker down. */
	const char *req2 = "worker-test-002-restart-trial.json";
	itest_write_file(&H, QUEUE "/worker-test-002-restart-trial.json",
			 "{\"worker_id\": \"worker-test-002\", \"worker_type\": \"test-worker\", \"task_id\": \"test-task\", "
			 "\"reason\": \"breaker_trial\", \"created_at\": \"2026-01-01T00:00:00Z\"}\n");
	json_t *h2 = wait_history("request_id", req2, 1, 5000);
	CHECK(json_array_size(h2) == 1, "no history line for the trial request %s within 5 s", req2);
	l = json_array_get(h2, 0);
	CHECK(strcmp(str(l, "result"), "success") == 0, "the trial restart: result '%s' reason '%s'", str(l, "result"),
	      str(l, "reason"));
	CHECK(json_is_true(json_object_get(l, "breaker_trial")), "the trial's history line does not say breaker_trial");
	json_decref(h2);
	pid_t neu = wait_spec_pid(id, old, 3000);
	CHECK(neu > 0 && neu != old, "no new process after the trial");
	CHECK(wait_breaker("test-worker", "closed", 3000), "the breaker is not closed after the trial succeeded");
	breaker("test-worker", st, &failures);
	CHECK(failures == 0, "failure_count %lld after a successful trial, want 0", (long long)failures);
	rc = itest_sh(&H, RUNBOOK_BREAKERS, &out, 10000);
	CHECK(rc == 0 && strcmp(out, "test-worker: closed (0 failures)\n") == 0, "the runbook's loop printed '%s'", out);
	free(out);
	soft_done();
}

/* ---- 3 ---------------------------------------------------------------------------- */

static void crash_loop_backoff_then_give_up(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-crash-001";
	/* --die-after-ms 0 exits before the first beat (the exit is checked
	 * before the beat in the demo worker's loop). */
	const char *args[] = {"--die-after-ms", "0", "--exit-code", "1", NULL};
	spawn_demo(id, "crash", "crash-task", NULL, false, args);

	/* Wait for the give-up. */
	int64_t deadline = itest_mono_ms() + 10000;
	json_t *lines = NULL;
	for (;;) {
		json_decref(lines);
		lines = history_where("worker_id", id);
		bool done = false;
		size_t i;
		json_t *o;
		json_array_foreach(lines, i, o) if (strcmp(str(o, "reason"), "max_retries_exceeded") == 0) done = true;
		if (done || itest_mono_ms() >= deadline)
			break;
		itest_sleep_ms(20);
	}
	json_t *ex = itest_find_event(&H, HB, "worker_exited", id);
	CHECK(ex != NULL, "no worker_exited for the first process of %s", id);
	int64_t t_prev = itest_int(ex, "timestamp_ms");
	json_decref(ex);

	size_t nl = json_array_size(lines);
	CHECK(nl == 3 || nl == 4, "%zu history lines for %s, want 3 attempts (+ a give-up line)", nl, id);
	const double delays[3] = {0.2, 0.4, 0.8};
	double tick = itest_tick_ms(&H);
	int slack = itest_slack_ms();
	for (size_t k = 0; k < 3; k++) {
		json_t *o = json_array_get(lines, k);
		CHECK(itest_int(o, "attempt") == (int64_t)k + 1, "history line %zu: attempt %lld, want %zu", k,
		      (long long)itest_int(o, "attempt"), k + 1);
		CHECK(strcmp(str(o, "result"), "failure") == 0, "history line %zu: result '%s'", k, str(o, "result"));
		json_t *d = json_object_get(o, "delay_seconds");
		CHECK(json_is_number(d) && fabs(json_number_value(d) - delays[k]) < 1e-6,
		      "history line %zu: delay_seconds %g, want %g", k, json_number_value(d), delays[k]);
		int64_t t = itest_int(o, "timestamp_ms");
		double gap = (double)(t - t_prev), want = delays[k] * 1000.0;
		if (getenv("VIGIL_TEST_VERBOSE") != NULL)
			fprintf(stderr, "  attempt %zu: %.0f ms after the previous failure (delay %.0f)\n", k + 1, gap, want);
		CHECK(gap >= want - tick, "attempt %zu failed %.0f ms after the previous failure: before its delay %.0f ms",
		      k + 1, gap, want);
		CHECK(gap <= want + P_TIMEOUT * 1000.0 + tick + slack,
		      "attempt %zu failed %.0f ms after the previous failure: more than delay %.0f + timeout %.0f + tick "
		      "%.1f + slack %d ms",
		      k + 1, gap, want, P_TIMEOUT * 1000.0, tick, slack);
		t_prev = t;
	}
	json_t *last = json_array_get(lines, nl - 1);
	CHECK(strcmp(str(last, "reason"), "max_retries_exceeded") == 0 && strcmp(str(last, "result"), "failure") == 0,
	      "the last history line: result '%s' reason '%s'", str(last, "result"), str(last, "reason"));
	CHECK(itest_int(last, "attempt") >= 3, "max_retries_exceeded at attempt %lld", (long long)itest_int(last, "attempt"));
	json_decref(lines);
	CHECK(count_text(HIST, "\"reason\":\"max_retries_exceeded\"") == 1,
	      "'\"reason\":\"max_retries_exceeded\"' is not in the history once");

	/* The first process and three restarts; then nothing more. */
	int spawned = spawned_lines(id);
	CHECK(spawned == 4, "%d 'spawned' lines for %s, want 4 (the first start and 3 attempts)", spawned, id);
	size_t exits = count_since(HB, "worker_exited", id, 0);
	itest_sleep_ms(2000);
	CHECK(spawned_lines(id) == spawned, "%s was spawned again after the give-up (%d -> %d)", id, spawned,
	      spawned_lines(id));
	CHECK(count_since(HB, "worker_exited", id, 0) == exits, "more processes of %s exited after the give-up", id);
	CHECK(json_array_size(lines = history_where("worker_id", id)) == nl, "more history lines after the give-up");
	json_decref(lines);
	CHECK(count_dir(QUEUE, ".json") == 0, "restart/queue/ is not empty after the give-up");
	CHECK(procs_of(id, NULL, 0) == 0, "a process of %s is still running", id);
	/* Those failures are consecutive failures of the type, below the
	 * breaker's threshold of 5. */
	char st[32];
	int64_t f;
	breaker("crash", st, &f);
	CHECK(strcmp(st, "closed") == 0 && f == (int64_t)nl, "breaker crash: %s (%lld failures), want closed (%zu)", st,
	      (long long)f, nl);
}

/* ---- 4 ---------------------------------------------------------------------------- */

/* After vigild #2 has settled: one outcome line for req, one process of id
 * alive (the one in its spec), nothing queued. */
static void check_exactly_once(const char *id, const char *req, int64_t t_start2, int want_spawned,
			       size_t want_registered_after)
{
	json_t *h = wait_history("request_id", req, 1, 8000);
	SOFT_CHECK(json_array_size(h) >= 1, "no history line for %s within 8 s of vigild's restart", req);
	json_decref(h);
	/* Let anything that would happen twice happen: the delay, a start, a
	 * first-beat timeout. */
	itest_sleep_ms(1500 + itest_slack_ms());
	h = history_where("request_id", req);
	size_t n = json_array_size(h);
	json_t *l = json_array_get(h, 0);
	SOFT_CHECK(n == 1, "%zu history lines for request %s, want exactly 1", n, req);
	SOFT_CHECK(l != NULL && strcmp(str(l, "result"), "success") == 0,
		   "request %s after a vigild crash: result '%s' reason '%s'", req, l != NULL ? str(l, "result") : "",
		   l != NULL ? str(l, "reason") : "");
	json_decref(h);
	json_t *all = history_where("worker_id", id);
	SOFT_CHECK(json_array_size(all) == 1, "%zu history lines for %s in all, want 1 (no follow-up restarts)",
		   json_array_size(all), id);
	json_decref(all);
	SOFT_CHECK(count_dir(QUEUE, ".json") == 0, "restart/queue/ still holds %d request(s)", count_dir(QUEUE, ".json"));
	pid_t pids[8];
	int np = procs_of(id, pids, 8);
	SOFT_CHECK(np == 1, "%d live processes of %s, want exactly 1", np, id);
	pid_t sp = spec_pid(id);
	SOFT_CHECK(np < 1 || sp == pids[0], "active/%s.json names pid %d, the live process is %d", id, (int)sp,
		   np > 0 ? (int)pids[0] : 0);
	int spawned = spawned_lines(id);
	SOFT_CHECK(spawned == want_spawned, "%d 'spawned' lines for %s, want %d", spawned, id, want_spawned);
	size_t regs = count_since(HB, "worker_registered", id, t_start2);
	SOFT_CHECK(regs == want_registered_after, "%zu worker_registered for %s after vigild's restart, want %zu", regs,
		   id, want_registered_after);
}

static void kill9_vigild_with_pending_restart_exactly_once(void **state)
{
	(void)state;
	write_restart_policy(1.0, 3);
	itest_vigild_start(&H);
	const char *id = "worker-kx-001";
	pid_t old = spawn_registered(id, "kx", "kx-task", BEAT10);

	char req[256];
	int64_t t_req = restart_and_await_end(id, old, "kill9_test", req, sizeof req);
	itest_sleep_ms(50);
	/* The delay is 1 s: the restart is pending now. */
	CHECK(itest_mono_ms() - t_req < 800, "too slow to kill vigild inside the restart's delay (%lld ms)",
	      (long long)(itest_mono_ms() - t_req));
	itest_vigild_kill9(&H);
	CHECK(spawned_lines(id) == 1, "the restart was already spawned before vigild was killed");
	CHECK(count_dir(QUEUE, ".json") == 1, "the pending request is not in restart/queue/ after the crash");

	int64_t t_start2 = itest_now_ms();
	itest_vigild_start(&H);
	check_exactly_once(id, req, t_start2, 2, 1);
	soft_done();
}

static void kill9_vigild_right_after_respawn_exactly_once(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-kx-002";
	pid_t old = spawn_registered(id, "kx", "kx-task", BEAT10);

	char req[256];
	snprintf(req, sizeof req, "%s", ctl_restart(id, "kill9_test"));
	/* Poll the log tightly for the second 'spawned' line, then crash vigild. */
	int64_t deadline = itest_mono_ms() + 5000;
	while (spawned_lines(id) < 2 && itest_mono_ms() < deadline)
		itest_sleep_ms(1);
	CHECK(spawned_lines(id) == 2, "the restart was not spawned within 5 s");
	itest_vigild_kill9(&H);
	json_t *h = history_where("request_id", req);
	fprintf(stderr, "  (vigild killed %s the restart's outcome was recorded)\n",
		json_array_size(h) > 0 ? "after" : "before");
	json_decref(h);
	CHECK(!itest_alive(old), "the old process %d is still alive", (int)old);

	int64_t t_start2 = itest_now_ms();
	itest_vigild_start(&H);
	/* The new process was spawned by the first vigild: adopted, not
	 * registered again, and not spawned a third time. */
	check_exactly_once(id, req, t_start2, 2, 0);
	soft_done();
}

/* ---- 5 ---------------------------------------------------------------------------- */

/* A child that only waits to be killed (default dispositions: SIGTERM kills it). */
static pid_t fork_sleeper(void)
{
	fflush(stdout);
	fflush(stderr);
	pid_t p = fork();
	if (p < 0)
		fail_msg("fork: %s", strerror(errno));
	if (p == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				signal(s, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (;;)
			pause();
	}
	setpgid(p, p);
	return p;
}

/* Makes a new child whose pid is target (a pid that is free now) by
 * writing target - 1 to ns_last_pid before forking; retries when another
 * process on the machine takes the pid first.  Returns the child (tracked
 * for teardown) or 0. */
static pid_t recycle_pid(pid_t target)
{
	for (int i = 0; i < 2000; i++) {
		int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
		CHECK(fd >= 0, "open /proc/sys/kernel/ns_last_pid: %s (the test needs root in the initial pid namespace)",
		      strerror(errno));
		char b[32];
		int n = snprintf(b, sizeof b, "%d", (int)target - 1);
		ssize_t w = write(fd, b, (size_t)n);
		int e = errno;
		close(fd);
		CHECK(w == n, "write ns_last_pid: %s", strerror(e));
		pid_t d = fork_sleeper();
		if (d == target) {
			itest_track_pid(d);
			return d;
		}
		kill(d, SIGKILL);
		waitpid(d, NULL, 0);
	}
	return 0;
}

static void pidfd_never_hits_recycled_pid(void **state)
{
	(void)state;
	/* (a) The mechanism, in this process: a pidfd outlives its pid. */
	pid_t c = fork_sleeper();
	int pfd = pidfd_open(c, 0);
	CHECK(pfd >= 0, "pidfd_open(%d): %s", (int)c, strerror(errno));
	kill(c, SIGKILL);
	CHECK(waitpid(c, NULL, 0) == c, "reap the first child");
	pid_t d = recycle_pid(c);
	CHECK(d == c, "could not recycle pid %d into a new process in 2000 tries", (int)c);
	errno = 0;
	int r = pidfd_send_signal(pfd, SIGKILL, NULL, 0);
	int e = errno;
	close(pfd);
	CHECK(r < 0 && e == ESRCH, "pidfd_send_signal on the dead child's pidfd returned %d (%s), want ESRCH", r,
	      strerror(e));
	itest_sleep_ms(20);
	CHECK(itest_alive(d), "the process that got the recycled pid %d died", (int)d);
	CHECK(kill(c, 0) == 0, "kill(%d, 0) failed: the pid was not recycled after all?", (int)c);
	itest_kill(d);

	/* (b) End to end: a zombie dies and its pid is recycled while vigild
	 * cannot look; the cleanup must not hit the new owner. */
	pid_t v = itest_vigild_start(&H);
	const char *id = "worker-pid-001";
	pid_t w = itest_worker_start(&H, id, "pidt", "pid-task", BEAT10);
	json_t *reg = itest_wait_event(&H, HB, "worker_registered", id, 5000);
	CHECK(reg != NULL, "%s was not registered", id);
	CHECK(json_is_true(json_object_get(reg, "verified")), "%s is not verified: vigild would never signal it", id);
	json_decref(reg);
	itest_signal(w, SIGSTOP);
	json_t *z = itest_wait_event(&H, ZE, "zombie_detected", id, 5000);
	CHECK(z != NULL, "no zombie_detected for the stopped %s", id);
	json_decref(z);
	CHECK(itest_wait_file(&H, ZOMBIE "/worker-pid-001.json", true, 2000), "no zombie/%s.json", id);

	itest_signal(v, SIGSTOP);
	itest_signal(w, SIGKILL);
	CHECK(itest_reap(w, 3000) == 128 + SIGKILL, "the zombie worker did not die of SIGKILL");
	pid_t innocent = recycle_pid(w);
	CHECK(innocent == w, "could not recycle pid %d in 2000 tries", (int)w);
	pid_t bash = itest_bash_start(&H, "\"$VIGILCTL\" --home \"$COMMIT_RELAY_HOME\" --shm \"$VIGIL_SHM\" "
					  "cleanup-zombies worker-pid-001 > \"$COMMIT_RELAY_HOME/cleanup.out\" 2>&1; "
					  "echo \"rc=$?\" >> \"$COMMIT_RELAY_HOME/cleanup.out\"");
	CHECK(wait_dir_count("coordination/control/queue", ".json", 1, 5000), "vigilctl did not queue its cleanup request");
	itest_signal(v, SIGCONT);
	CHECK(itest_reap(bash, 20000) == 0, "vigilctl cleanup-zombies did not finish within 20 s");
	char *out = itest_read_file(&H, "cleanup.out");
	CHECK(out != NULL && strstr(out, "rc=0") != NULL && strstr(out, id) != NULL,
	      "vigilctl cleanup-zombies %s: '%s'", id, out);
	free(out);
	CHECK(itest_wait_file(&H, ZOMBIE "/worker-pid-001.json", false, 2000), "zombie/%s.json is still there", id);
	json_t *ce = itest_wait_event(&H, ZE, "zombie_cleanup", id, 2000);
	CHECK(ce != NULL, "no zombie_cleanup event for %s", id);
	json_decref(ce);
	/* Past the kill grace: no SIGTERM, no late SIGKILL reached the new owner. */
	itest_sleep_ms(300 + 200 + itest_slack_ms());
	CHECK(itest_alive(innocent), "the innocent process %d that got the zombie's pid was killed", (int)innocent);
	char st[512];
	snprintf(st, sizeof st, "sent SIGTERM to %s (pid %d)", id, (int)innocent);
	CHECK(count_text(RLOG, st) == 0, "vigild says it '%s'", st);
	CHECK(itest_alive(v), "vigild died");
}

/* ---- 6 ---------------------------------------------------------------------------- */

static void cleanup_sigstopped_zombie(void **state)
{
	(void)state;
	/* max_retries 0: a zombie vigild ends is not started again (part B). */
	write_restart_policy(0.2, 0);
	const char *slots[] = {"--slots", "1", NULL};
	itest_vigild_start_args(&H, slots);

	/* A. The runbook's manual cleanup of a stopped (hung) worker. */
	const char *id1 = "worker-zc-001";
	pid_t w1 = itest_worker_start(&H, id1, "zc", "zc-task", BEAT10);
	json_t *reg = itest_wait_event(&H, HB, "worker_registered", id1, 5000);
	CHECK(reg != NULL && json_is_true(json_object_get(reg, "verified")), "%s not registered (verified)", id1);
	int64_t slot1 = itest_int(reg, "slot");
	json_decref(reg);
	itest_signal(w1, SIGSTOP);
	json_t *z = itest_wait_event(&H, ZE, "zombie_detected", id1, 5000);
	CHECK(z != NULL, "no zombie_detected for the stopped %s", id1);
	json_decref(z);
	CHECK(itest_wait_file(&H, ZOMBIE "/worker-zc-001.json", true, 2000), "no zombie/%s.json", id1);
	char *out = NULL, *err = NULL;
	const char *args[] = {"cleanup-zombies", id1, NULL};
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl cleanup-zombies %s exited %d: %s %s", id1, rc, out, err);
	CHECK(strstr(out, id1) != NULL, "vigilctl cleanup-zombies did not name %s: %s", id1, out);
	free(out);
	free(err);
	/* It was stopped: SIGTERM with SIGCONT (it detaches, exit 0) or SIGKILL after the grace. */
	int code = itest_reap(w1, 3000);
	CHECK(code == 0 || code == 128 + SIGKILL, "the stopped zombie ended with %d (-1: still there)", code);
	CHECK(!itest_exists(&H, ZOMBIE "/worker-zc-001.json"), "zombie/%s.json is still there after cleanup", id1);
	CHECK(!itest_exists(&H, ACTIVE "/worker-zc-001.json"), "active/%s.json is there after cleanup", id1);
	json_t *ce = itest_wait_event(&H, ZE, "zombie_cleanup", id1, 2000);
	CHECK(ce != NULL && strcmp(str(ce, "result"), "success") == 0, "no successful zombie_cleanup for %s", id1);
	json_decref(ce);

	/* The slot is free again, and a new worker in it is monitored afresh. */
	const char *id2 = "worker-zc-002";
	pid_t w2 = itest_worker_start(&H, id2, "zc", "zc-task", BEAT10);
	reg = itest_wait_event(&H, HB, "worker_registered", id2, 5000);
	CHECK(reg != NULL, "%s could not register in the freed slot", id2);
	CHECK(itest_int(reg, "slot") == slot1, "%s got slot %lld, the zombie had %lld", id2,
	      (long long)itest_int(reg, "slot"), (long long)slot1);
	json_decref(reg);
	itest_sleep_ms(300);
	CHECK(count_since(HB, "heartbeat_missed", id2, 0) == 0, "%s (beating) got heartbeat_missed", id2);
	CHECK(count_since(ZE, "zombie_detected", id2, 0) == 0, "%s inherited the zombie verdict", id2);
	itest_signal(w2, SIGSTOP);
	int64_t t_stop = itest_now_ms();
	json_t *m = itest_wait_event(&H, HB, "heartbeat_missed", id2, 3000);
	CHECK(m != NULL, "no heartbeat_missed for %s after SIGSTOP", id2);
	CHECK(itest_int(m, "timestamp_ms") >= t_stop, "heartbeat_missed for %s before it was stopped", id2);
	json_decref(m);
	itest_kill(w2);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", id2, 3000);
	CHECK(ex != NULL, "no worker_exited for %s", id2);
	json_decref(ex);

	/* B. Tokens: a spawned worker with a budget of 100 that hangs.  vigild
	 * ends a hung worker it spawned itself; its tokens go back. */
	CHECK(wait_rmetric("tokens_allocated", 0, false, 3000), "tokens_allocated is %lld before any budget",
	      (long long)rmetric("tokens_allocated"));
	const char *id3 = "worker-zc-003";
	spawn_demo(id3, "zcs", "zc-task", "100", false, BEAT10);
	reg = wait_registered(id3, 0, 5000);
	CHECK(reg != NULL, "%s was not registered", id3);
	pid_t w3 = (pid_t)itest_int(reg, "pid");
	json_decref(reg);
	json_t *s = spec(ACTIVE, id3);
	CHECK(s != NULL && json_int_or(json_object_get(s, "token_budget"), "allocated", -1) == 100,
	      "active/%s.json: token_budget.allocated is not 100", id3);
	json_decref(s);
	CHECK(wait_rmetric("tokens_allocated", 100, false, 3000), "tokens_allocated is %lld with one budget of 100",
	      (long long)rmetric("tokens_allocated"));
	itest_signal(w3, SIGSTOP);
	z = itest_wait_event(&H, ZE, "zombie_detected", id3, 5000);
	CHECK(z != NULL, "no zombie_detected for the stopped %s", id3);
	json_decref(z);
	ce = itest_wait_event(&H, ZE, "zombie_cleanup", id3, 3000);
	CHECK(ce != NULL, "no zombie_cleanup for %s", id3);
	CHECK(itest_int(ce, "tokens_returned") == 100, "zombie_cleanup of %s returned %lld tokens, want 100", id3,
	      (long long)itest_int(ce, "tokens_returned"));
	json_decref(ce);
	CHECK(wait_gone(w3, 3000), "the stopped %s (pid %d) is still there", id3, (int)w3);
	CHECK(itest_wait_file(&H, ZOMBIE "/worker-zc-003.json", false, 2000), "zombie/%s.json is still there", id3);
	CHECK(wait_rmetric("tokens_allocated", 0, false, 3000), "tokens_allocated is %lld after the cleanup, want 0",
	      (long long)rmetric("tokens_allocated"));
	json_t *h = wait_history("worker_id", id3, 1, 3000);
	CHECK(json_array_size(h) == 1 && strcmp(str(json_array_get(h, 0), "reason"), "max_retries_exceeded") == 0,
	      "with max_retries 0 the hung %s should be given up on", id3);
	json_decref(h);
	CHECK(spawned_lines(id3) == 1, "%s was started again with max_retries 0", id3);
	CHECK(itest_alive(H.vigild), "vigild died");
}

/* ---- 7 ---------------------------------------------------------------------------- */

static void spawn_exec_failure_reported(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	char *out = NULL, *err = NULL;
	const char *args[] = {"spawn", "--wait", "--type", "x", "--task-id", "y", "--", "/no/such/program", NULL};
	int rc = ctl(&out, &err, args);
	CHECK(rc == 1, "vigilctl spawn --wait of /no/such/program exited %d, want 1; stdout '%s' stderr '%s'", rc, out,
	      err);
	CHECK(strstr(err, "worker-x-001") != NULL && (strstr(err, "/no/such/program") != NULL ||
						       strstr(err, "No such file") != NULL),
	      "the message does not name the worker and the problem: '%s'", err);
	free(out);
	free(err);
	json_t *f = itest_read_json(&H, "coordination/spawn/failed/worker-x-001.json");
	CHECK(f != NULL, "no coordination/spawn/failed/worker-x-001.json");
	CHECK(strcmp(str(f, "result"), "failure") == 0 && strlen(str(f, "message")) > 0,
	      "spawn/failed/worker-x-001.json: result '%s' message '%s'", str(f, "result"), str(f, "message"));
	json_decref(f);
	json_t *ev = itest_wait_event(&H, HB, "worker_spawn_failed", "worker-x-001", 2000);
	CHECK(ev != NULL, "no worker_spawn_failed event");
	CHECK(strcmp(str(ev, "worker_type"), "x") == 0, "worker_spawn_failed: worker_type '%s'", str(ev, "worker_type"));
	json_decref(ev);
	itest_sleep_ms(200);
	CHECK(count_since(HB, "worker_exited", "worker-x-001", 0) == 0, "worker_exited for a worker that never ran");
	CHECK(count_since(HB, "worker_registered", "worker-x-001", 0) == 0, "worker_registered for a worker that never ran");
	CHECK(!itest_exists(&H, ACTIVE "/worker-x-001.json"), "active/worker-x-001.json exists");
	CHECK(count_dir("coordination/spawn/queue", ".json") == 0, "the spawn request is still queued");
}

/* ---- 8 ---------------------------------------------------------------------------- */

static void malformed_request_rejected(void **state)
{
	(void)state;
	pid_t v = itest_vigild_start(&H);
	int64_t t0 = itest_now_ms();
	itest_write_file(&H, QUEUE "/evil.json", "{\"worker_id\":\"../etc\"}\n");
	itest_write_file(&H, QUEUE "/garbage.json", "not json\n");

	CHECK(itest_wait_file(&H, "coordination/restart/rejected/evil.json.reason", true, 3000),
	      "evil.json was not rejected within 3 s");
	CHECK(itest_exists(&H, "coordination/restart/rejected/evil.json"), "evil.json was not moved to rejected/");
	char *why = itest_read_file(&H, "coordination/restart/rejected/evil.json.reason");
	CHECK(why != NULL && strstr(why, "worker_id") != NULL, "evil.json.reason does not name worker_id: '%s'", why);
	free(why);

	/* A file that is not JSON may still be being written: judged after 2 s. */
	int64_t deadline = itest_mono_ms() + 6000;
	while (!itest_exists(&H, "coordination/restart/rejected/garbage.json.reason") && itest_mono_ms() < deadline)
		itest_sleep_ms(10);
	int64_t t_rej = itest_now_ms();
	CHECK(itest_exists(&H, "coordination/restart/rejected/garbage.json.reason"),
	      "garbage.json was not rejected within 6 s");
	CHECK(t_rej - t0 >= 2000 - 20, "garbage.json rejected %lld ms after it was written: inside the 2 s grace",
	      (long long)(t_rej - t0));
	CHECK(itest_exists(&H, "coordination/restart/rejected/garbage.json"), "garbage.json was not moved to rejected/");
	why = itest_read_file(&H, "coordination/restart/rejected/garbage.json.reason");
	CHECK(why != NULL && strstr(why, "JSON") != NULL, "garbage.json.reason does not say it is not JSON: '%s'", why);
	free(why);

	CHECK(count_dir(QUEUE, ".json") == 0, "restart/queue/ is not empty");
	CHECK(count_text(RLOG, "spawned ") == 0, "something was spawned");
	json_t *h = itest_read_jsonl(&H, HIST);
	CHECK(json_array_size(h) == 0, "a rejected request left a history line");
	json_decref(h);
	CHECK(itest_alive(v) && kill(v, 0) == 0, "vigild died");
	CHECK(wait_rmetric("requests_rejected", 2, false, 3000), "requests_rejected is %lld, want 2",
	      (long long)rmetric("requests_rejected"));
}

/* ---- 9 ---------------------------------------------------------------------------- */

static void spawn_queued_while_down(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	const char *args[] = {"spawn", "--type", "q", "--task-id", "q-task", "--", DEMO_WORKER_PATH, "--beat-ms", "10", NULL};
	int rc = ctl(&out, &err, args);
	CHECK(rc == 0, "vigilctl spawn with vigild down exited %d: %s", rc, err);
	CHECK(strcmp(out, "worker-q-001\n") == 0, "vigilctl spawn printed '%s', want 'worker-q-001'", out);
	free(out);
	free(err);
	CHECK(count_dir("coordination/spawn/queue", ".json") == 1, "no spawn request queued");

	itest_vigild_start(&H);
	json_t *reg = wait_registered("worker-q-001", 0, 5000);
	CHECK(reg != NULL, "worker-q-001 did not register within 5 s of vigild's start");
	pid_t p = (pid_t)itest_int(reg, "pid");
	CHECK(strcmp(str(reg, "worker_type"), "q") == 0 && strcmp(str(reg, "task_id"), "q-task") == 0,
	      "registered as type '%s' task '%s'", str(reg, "worker_type"), str(reg, "task_id"));
	json_decref(reg);
	CHECK(count_dir("coordination/spawn/queue", ".json") == 0, "the spawn request is still queued");
	/* It beats: its spec counts beats and shows full health. */
	int64_t deadline = itest_mono_ms() + 3000;
	int64_t beats = 0, health = 0;
	for (;;) {
		json_t *s = spec(ACTIVE, "worker-q-001");
		json_t *hb = s != NULL ? json_object_get(s, "heartbeat") : NULL;
		beats = json_int_or(hb, "beats", 0);
		health = json_int_or(hb, "health_score", 0);
		CHECK(s == NULL || json_int_or(s, "pid", 0) == p, "active/worker-q-001.json names another pid");
		json_decref(s);
		if ((beats > 0 && health == 100) || itest_mono_ms() >= deadline)
			break;
		itest_sleep_ms(20);
	}
	CHECK(beats > 0 && health == 100, "active/worker-q-001.json: beats %lld health %lld", (long long)beats,
	      (long long)health);
	itest_sleep_ms(200);
	CHECK(count_since(HB, "heartbeat_missed", "worker-q-001", 0) == 0, "worker-q-001 missed beats");
	CHECK(itest_alive(p), "worker-q-001 died");
}

/* ---- 10 --------------------------------------------------------------------------- */

/* restart.c: "A request naming a self-registered worker runs the command
 * line and directory recorded from /proc at its registration". */
static void restart_self_registered_worker(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-self-001";
	pid_t w = itest_worker_start(&H, id, "self", "self-task", BEAT10);
	json_t *reg = itest_wait_event(&H, HB, "worker_registered", id, 5000);
	CHECK(reg != NULL && json_is_true(json_object_get(reg, "verified")), "%s not registered (verified)", id);
	json_decref(reg);
	json_t *s = NULL;
	int64_t deadline = itest_mono_ms() + 2000;
	while ((s = spec(ACTIVE, id)) == NULL && itest_mono_ms() < deadline)
		itest_sleep_ms(10);
	CHECK(s != NULL && json_array_size(json_object_get(s, "command")) == 3,
	      "active/%s.json does not record the command line", id);
	json_decref(s);

	const char *req = ctl_restart(id, "self_test");
	/* The old process is ended for the restart (SIGTERM: it detaches). */
	int code = itest_reap(w, 3000);
	CHECK(code == 0 || code == 128 + SIGKILL, "the old process ended with %d (-1: still there)", code);
	json_t *h = wait_history("request_id", req, 1, 5000);
	SOFT_CHECK(json_array_size(h) == 1, "no outcome for request %s within 5 s of the old process ending: "
		   "the request is stuck (restart/queue/ holds %d file(s)) and the worker is down",
		   req, count_dir(QUEUE, ".json"));
	json_t *l = json_array_get(h, 0);
	SOFT_CHECK(l != NULL && strcmp(str(l, "result"), "success") == 0, "restart of the self-registered %s: '%s' (%s)", id,
		   l != NULL ? str(l, "result") : "none", l != NULL ? str(l, "reason") : "-");
	json_decref(h);
	pid_t neu = wait_spec_pid(id, w, 2000);
	SOFT_CHECK(neu > 0, "no new process of %s after its restart", id);
	SOFT_CHECK(count_dir(QUEUE, ".json") == 0, "restart/queue/ still holds the request");
	soft_done();
}

/* ---- 11 --------------------------------------------------------------------------- */

/* The runbook names its request ${WORKER_ID}-restart.json, and so does
 * vigilctl restart when none is queued: the same name comes back for every
 * restart of a worker.  Each is a new request and must run. */
static void repeated_request_name_runs_again(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t p0 = spawn_registered("worker-test-001", "test-worker", "test-task", BEAT10);

	char *out = NULL;
	CHECK(itest_sh(&H, RUNBOOK_RESTART_REQUEST, &out, 10000) == 0, "the runbook's request heredoc failed");
	free(out);
	json_t *h = wait_history("request_id", "worker-test-001-restart.json", 1, 5000);
	CHECK(json_array_size(h) == 1 && strcmp(str(json_array_get(h, 0), "result"), "success") == 0,
	      "the first restart did not succeed");
	json_decref(h);
	pid_t p1 = wait_spec_pid("worker-test-001", p0, 3000);
	CHECK(p1 > 0, "no new process after the first restart");
	CHECK(wait_dir_count(QUEUE, ".json", 0, 3000), "the first request is still queued");

	/* The same runbook snippet, later: a second restart. */
	itest_sleep_ms(200);
	CHECK(itest_sh(&H, RUNBOOK_RESTART_REQUEST, &out, 10000) == 0, "the runbook's request heredoc failed");
	free(out);
	h = wait_history("request_id", "worker-test-001-restart.json", 2, 5000);
	SOFT_CHECK(json_array_size(h) == 2,
		   "the runbook's restart request, dropped a second time, did not run: %zu outcome line(s) for "
		   "worker-test-001-restart.json (the log says: '%s')",
		   json_array_size(h),
		   count_text(RLOG, "request worker-test-001-restart.json was already carried out") > 0
			   ? "request worker-test-001-restart.json was already carried out: removed"
			   : "-");
	json_decref(h);
	SOFT_CHECK(wait_gone(p1, 2000), "the running process %d was not restarted by the second request", (int)p1);
	SOFT_CHECK(spawned_lines("worker-test-001") == 3, "%d 'spawned' lines, want 3 (start + 2 restarts)",
		   spawned_lines("worker-test-001"));
	soft_done();
}

/* ---- 12 --------------------------------------------------------------------------- */

/* Offset of the last occurrence of needle in the file <home>/<rel>, -1 when
 * absent: the log is append-only, so offsets order its lines. */
static long last_offset(const char *rel, const char *needle)
{
	char *s = itest_read_file(&H, rel);
	long at = -1;
	for (const char *p = s; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		at = (long)(p - s);
	free(s);
	return at;
}

/* Waits until /proc/<pid> is gone: the process exited and was reaped (a
 * zombie still has its entry).  False after timeout_ms. */
static bool wait_reaped(pid_t pid, int timeout_ms)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	int64_t deadline = itest_mono_ms() + timeout_ms;
	struct stat st;
	while (stat(path, &st) == 0) {
		if (itest_mono_ms() >= deadline)
			return false;
		itest_sleep_ms(10);
	}
	return true;
}

/* Spawns id as a demo worker that stays 60 s after its goodbye (deaf to
 * SIGTERM); returns its pid once registered. */
static pid_t spawn_lingerer(const char *id)
{
	static const char *const LINGER[] = {"--beat-ms", "10", "--linger-ms", "60000", NULL};
	return spawn_registered(id, "linger", "linger-task", LINGER);
}

/* Order, from the log an operator reads: SIGKILL to the old process of
 * id, its end, then (and only then) the next spawn; and at the end only the
 * new process runs. */
static void check_killed_then_alone(const char *id, pid_t old, pid_t neu)
{
	char kill_line[128], spawn_line[128];
	snprintf(kill_line, sizeof kill_line, "sent SIGKILL to %s (pid %d)", id, (int)old);
	snprintf(spawn_line, sizeof spawn_line, "spawned %s (", id);
	long at_kill = last_offset(RLOG, kill_line), at_spawn = last_offset(RLOG, spawn_line);
	CHECK(at_kill >= 0, "the restart log never says '%s'", kill_line);
	CHECK(at_spawn > at_kill, "the next process was spawned (offset %ld) before the old one was killed (%ld)",
	      at_spawn, at_kill);
	pid_t live[8];
	int n = procs_of(id, live, 8);
	CHECK(n == 1 && live[0] == neu, "%d live process(es) of %s, want only the new %d", n, id, (int)neu);
}

/* After a restart request (file req) of id, whose old process lingers
 * after its goodbye: the old process is gone within gone_ms (plus the
 * allowance) and reaped, the restart succeeded, the log says SIGKILL to the old pid
 * before the replacement's spawn, and only the replacement runs. */
static void check_ended_then_replaced(const char *id, pid_t old, const char *req, int gone_ms, bool vigild_child)
{
	CHECK(wait_gone(old, gone_ms + itest_slack_ms()),
	      "the old process %d of %s (detached, lingering) is still there %d ms later: nobody ended it", (int)old,
	      id, gone_ms);
	/* ... and not left <defunct> either, when it was vigild's child (after a
	 * kill -9 of vigild it is the harness's, the subreaper's). */
	if (!vigild_child)
		itest_reap(old, 1000);
	CHECK(wait_reaped(old, 2000 + itest_slack_ms()), "the old process %d of %s was never reaped", (int)old, id);
	pid_t neu = wait_spec_pid(id, old, 5000);
	CHECK(neu > 0, "no new process of %s after the restart", id);
	json_t *h = wait_history("request_id", req, 1, 5000);
	CHECK(json_array_size(h) == 1 && strcmp(str(json_array_get(h, 0), "result"), "success") == 0,
	      "restart of %s: %zu outcome line(s), first '%s'", id, json_array_size(h),
	      json_array_size(h) > 0 ? str(json_array_get(h, 0), "result") : "-");
	json_decref(h);
	check_killed_then_alone(id, old, neu);
	CHECK(spawned_lines(id) == 2, "%d 'spawned' lines for %s, want 2", spawned_lines(id), id);
}

/* A worker whose shutdown hangs after its goodbye: it detaches on SIGTERM
 * and stays.  A restart must still end it (SIGKILL when the grace is over)
 * and must not start the replacement beside it.  Regression: vigild took
 * the goodbye for the end, forgot the process and spawned the replacement
 * at once; CI's sanitizer build hit it when a worker's exit-time leak check
 * hung after the detach and two processes of one worker ran on. */
static void restart_ends_a_worker_that_detaches_but_lingers(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-linger-001";
	pid_t old = spawn_lingerer(id);

	const char *req = ctl_restart(id, "linger_test");
	/* It detaches at once (worker_detached), but lives on deaf. */
	json_t *det = itest_wait_event(&H, HB, "worker_detached", id, 3000);
	CHECK(det != NULL, "no worker_detached for %s after SIGTERM", id);
	json_decref(det);
	/* Grace 0.3 s, then SIGKILL. */
	check_ended_then_replaced(id, old, req, 300 + 2000, true);
}

/* ---- 13 --------------------------------------------------------------------------- */

/* Restarts with a 3 s kill grace: room for a kill -9 of vigild between
 * the SIGTERM and the SIGKILL. */
static void write_long_grace_policy(void)
{
	itest_write_file(&H, "coordination/config/worker-restart-policy.json",
			 "{\"max_retries\": 3, \"retry_interval_seconds\": 0.2, \"backoff_multiplier\": 2, "
			 "\"circuit_breaker_enabled\": false, \"kill_grace_seconds\": 3}\n");
}

/* The same lingering worker, with vigild killed (-9) after the worker said
 * goodbye and before the grace ran out: the next vigild finds the
 * "restarting" spec, confirms from /proc that its pid is still that worker
 * (start time, owner, WORKER_ID), ends it, and only then starts the
 * replacement. */
static void kill9_vigild_while_a_detached_worker_lingers(void **state)
{
	(void)state;
	write_long_grace_policy();
	itest_vigild_start(&H);
	const char *id = "worker-linger-002";
	pid_t old = spawn_lingerer(id);

	const char *req = ctl_restart(id, "linger_crash_test");
	/* The goodbye is recorded as a "restarting" spec naming the old pid. */
	int64_t deadline = itest_mono_ms() + 3000;
	bool restarting = false;
	while (!restarting && itest_mono_ms() < deadline) {
		json_t *sp = spec(ACTIVE, id);
		restarting = sp != NULL && strcmp(str(sp, "status"), "restarting") == 0 &&
			     json_int_or(sp, "pid", 0) == old && json_int_or(sp, "pid_start_ticks", 0) > 0;
		json_decref(sp);
		if (!restarting)
			itest_sleep_ms(5);
	}
	CHECK(restarting, "active/%s.json never said \"restarting\" with pid %d and its start time", id, (int)old);
	itest_vigild_kill9(&H);
	CHECK(itest_alive(old), "the old process %d ended before the grace: the test proves nothing", (int)old);
	CHECK(spawned_lines(id) == 1, "a replacement was spawned before the crash (%d 'spawned' lines)",
	      spawned_lines(id));

	itest_vigild_start(&H);
	check_ended_then_replaced(id, old, req, 3000 + 2000, false);
}

/* ---- 14 --------------------------------------------------------------------------- */

/* A restart succeeds on the replacement's first beat, and vigild sees that
 * between its ticks: after a spawn the scanner looks at the new slot at
 * once and then every millisecond until the first beat (bounded).  With a
 * 10 s tick, every step below would otherwise wait for a tick (0 to 10 s);
 * each is allowed 2 s plus the scheduling allowance.  The bench measures
 * the real latency (bench/README.md, restart). */
static void restart_first_beat_seen_between_ticks(void **state)
{
	(void)state;
	itest_write_policy(&H, 40, 120, 300, "\"tick_seconds\": 10");
	itest_vigild_start(&H);
	const char *id = "worker-quick-001";
	static const char *const QUICK[] = {"--beat-ms", "10", "--die-after-ms", "400", "--exit-code", "3", NULL};
	int64_t t0 = itest_now_ms();
	spawn_demo(id, "quick", "quick-task", NULL, false, QUICK);
	const int64_t allow = 2000 + itest_slack_ms();
	json_t *reg = wait_registered(id, 0, (int)allow + 1000);
	CHECK(reg != NULL, "%s was not registered within %lld ms of vigilctl spawn (tick 10 s)", id,
	      (long long)allow + 1000);
	int64_t t_reg = itest_int(reg, "timestamp_ms");
	pid_t first = (pid_t)itest_int(reg, "pid");
	json_decref(reg);
	CHECK(t_reg >= t0 && t_reg - t0 <= allow, "registered %lld ms after the spawn request (allowed %lld)",
	      (long long)(t_reg - t0), (long long)allow);

	/* It dies after 400 ms (code 3): seen through its pidfd. */
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", id, 400 + (int)allow);
	CHECK(ex != NULL && itest_int(ex, "pid") == first, "no worker_exited for %s pid %d", id, (int)first);
	int64_t t_exit = itest_int(ex, "timestamp_ms");
	json_decref(ex);
	CHECK(t_exit > t_reg && t_exit - t_reg <= 400 + allow, "worker_exited %lld ms after registration",
	      (long long)(t_exit - t_reg));

	/* Restart after 0.2 s; success on the replacement's first beat. */
	json_t *h = wait_history("worker_id", id, 1, 200 + (int)allow + 1000);
	CHECK(json_array_size(h) >= 1, "no restart outcome for %s", id);
	json_t *l = json_array_get(h, 0);
	int64_t t_ok = itest_int(l, "timestamp_ms");
	CHECK(strcmp(str(l, "result"), "success") == 0, "restart of %s: %s (%s)", id, str(l, "result"),
	      str(l, "reason"));
	CHECK(t_ok > t_exit && t_ok - t_exit <= 200 + allow,
	      "the restart's success came %lld ms after the death (delay 200 ms, tick 10 s, allowed %lld)",
	      (long long)(t_ok - t_exit), (long long)(200 + allow));
	json_decref(h);
}

/* ---- 15 --------------------------------------------------------------------------- */

/* What a vigild killed -9 at one moment leaves: it saw a worker it spawned
 * exit, freed the slot and queued the restart, and died before it rewrote
 * the spec as "restarting".  Built here from files: the request in
 * restart/queue/, the spec still "active" and "spawned", a fresh segment.
 * The next vigild restarts the worker once; it must not queue a second
 * restart for the spec (which would end the replacement and start another).
 * Regression (found by reading, noted by the previous session). */
static void queued_restart_not_doubled_after_crash(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-once-001";
	pid_t pid = spawn_registered(id, "once", "once-task", BEAT10);
	CHECK(wait_spec_pid(id, 0, 3000) == pid, "active/%s.json does not name pid %d", id, (int)pid);
	json_t *sp = spec(ACTIVE, id);
	CHECK(sp != NULL && json_is_true(json_object_get(sp, "spawned")), "the spec does not say spawned");
	itest_vigild_stop(&H, 5000); /* its workers keep running, its specs stay */
	itest_signal(pid, SIGKILL);  /* ours now (the harness is the subreaper) */
	itest_reap(pid, 3000);
	shm_unlink(H.shm); /* the slot is gone too: the next vigild makes a fresh segment */

	json_t *req = json_object();
	int64_t now = itest_now_ms();
	json_object_set_new(req, "worker_id", json_string(id));
	json_object_set_new(req, "worker_type", json_string("once"));
	json_object_set_new(req, "task_id", json_string("once-task"));
	json_object_set_new(req, "reason", json_string("killed by signal 9"));
	json_object_set_new(req, "created_at", json_string("2026-11-28T10:00:00Z"));
	json_object_set_new(req, "created_at_ms", json_integer(now));
	json_object_set_new(req, "attempt", json_integer(1));
	json_object_set_new(req, "source", json_string("vigild"));
	json_object_set(req, "command", json_object_get(sp, "command"));
	json_object_set(req, "cwd", json_object_get(sp, "cwd"));
	json_object_set_new(req, "tokens", json_integer(0));
	char *text = json_dumps(req, JSON_COMPACT);
	char name[160];
	snprintf(name, sizeof name, QUEUE "/%s-auto-%lld-1.json", id, (long long)now);
	itest_write_file(&H, name, text);
	free(text);
	json_decref(req);
	json_decref(sp);

	itest_vigild_start(&H);
	json_t *h = wait_history("worker_id", id, 1, 5000);
	CHECK(json_array_size(h) >= 1 && strcmp(str(json_array_get(h, 0), "result"), "success") == 0,
	      "the queued restart of %s did not succeed", id);
	json_decref(h);
	/* A second restart would be under way within a second (retry 0.2 s,
	 * grace 0.3 s): give it two. */
	itest_sleep_ms(2000);
	h = history_where("worker_id", id);
	SOFT_CHECK(json_array_size(h) == 1, "%zu restart outcomes for %s, want 1 (a second restart was queued)",
		   json_array_size(h), id);
	json_decref(h);
	SOFT_CHECK(spawned_lines(id) == 2, "%d 'spawned' lines for %s, want 2 (the start and one restart)",
		   spawned_lines(id), id);
	SOFT_CHECK(count_text(RLOG, "its restart is already queued") == 1,
		   "the log does not say that the restart was already queued");
	soft_done();
}

/* ---- 16 --------------------------------------------------------------------------- */

/* vigilctl spawn of an id whose last process said goodbye but is still
 * being ended (past its --timeout, detached, lingering): the spawn waits
 * until that process is gone (SIGKILL after the grace), so two processes of
 * one id never run side by side. */
static void spawn_waits_for_a_lingering_predecessor(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-linger-003";
	const char *first[] = {"spawn", "--type", "linger", "--task-id", "linger-task", "--id", id, "--timeout", "0.3",
			       "--", DEMO_WORKER_PATH, "--beat-ms", "10", "--linger-ms", "60000", NULL};
	char *out = NULL, *err = NULL;
	int rc = ctl(&out, &err, first);
	CHECK(rc == 0, "vigilctl spawn --timeout exited %d: %s", rc, err);
	free(out);
	free(err);
	json_t *reg = wait_registered(id, 0, 5000);
	CHECK(reg != NULL, "%s was not registered", id);
	pid_t old = (pid_t)itest_int(reg, "pid");
	json_decref(reg);
	/* Past its timeout it is sent SIGTERM: it detaches and lingers. */
	json_t *det = itest_wait_event(&H, HB, "worker_detached", id, 3000);
	CHECK(det != NULL, "no worker_detached for %s after its --timeout", id);
	json_decref(det);
	CHECK(itest_alive(old), "the old process %d is already gone: the test proves nothing", (int)old);

	spawn_demo(id, "linger", "linger-task", NULL, false, BEAT10);
	CHECK(wait_gone(old, 300 + 2000 + itest_slack_ms()), "the old process %d is still there", (int)old);
	pid_t neu = wait_spec_pid(id, old, 5000);
	CHECK(neu > 0, "the second spawn of %s never ran", id);
	check_killed_then_alone(id, old, neu);
}

/* ---- 17 --------------------------------------------------------------------------- */

/* A worker vigild spawned that detaches and exits is vigild's child: it is
 * reaped, never left <defunct> until vigild exits.  Regression: nothing
 * waited for a child that said goodbye. */
static void detached_child_is_reaped(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-bye-001";
	/* It stays 500 ms after its goodbye: vigild sees the goodbye first. */
	static const char *const BYE[] = {"--beat-ms", "10", "--detach-after-ms", "300", "--linger-ms", "500", NULL};
	pid_t pid = spawn_registered(id, "bye", "bye-task", BYE);
	json_t *det = itest_wait_event(&H, HB, "worker_detached", id, 3000);
	CHECK(det != NULL, "no worker_detached for %s", id);
	json_decref(det);
	CHECK(itest_alive(pid), "pid %d ended before its goodbye was seen: the test proves nothing", (int)pid);
	/* It exits 500 ms after the goodbye; its pidfd wakes vigild, which
	 * reaps it at once (500 ms allowed for that, plus the slack). */
	CHECK(wait_reaped(pid, 500 + 500 + itest_slack_ms()), "pid %d (%s) exited but stays <defunct>", (int)pid, id);
	CHECK(itest_alive(H.vigild), "vigild is gone");
}

/* ---- 18 --------------------------------------------------------------------------- */

/* A restarted vigild ends a process named by a "restarting" spec only when
 * the spec says vigild was ending it ("ending": true): a worker that said
 * goodbye on its own while a restart was queued is not killed later by the
 * next vigild.  Both specs are planted for live processes whose
 * environment names the worker, as a worker's would. */
static void restarting_spec_ends_only_what_was_being_ended(void **state)
{
	(void)state;
	pid_t p[2];
	const char *ids[2] = {"worker-bystander-001", "worker-ending-001"};
	for (int i = 0; i < 2; i++) {
		char script[160];
		snprintf(script, sizeof script, "export WORKER_ID=%s; exec sleep 60", ids[i]);
		p[i] = itest_bash_start(&H, script);
	}
	for (int i = 0; i < 2; i++) {
		/* Wait for the exec: /proc/<pid>/environ then names the worker. */
		CHECK(itest_wait_comm(p[i], "sleep", 3000), "pid %d never became sleep within 3 s", (int)p[i]);
		unsigned long long ticks = (unsigned long long)vigil__pid_start_ticks(p[i]);
		CHECK(ticks > 0, "no start time in /proc/%d/stat", (int)p[i]);
		char spec_text[768], rel[160];
		snprintf(spec_text, sizeof spec_text,
			 "{\"worker_id\":\"%s\",\"worker_type\":\"bystander\",\"task_id\":\"t\",\"status\":\"restarting\","
			 "\"pid\":%d,\"pid_start_ticks\":%llu,%s\"slot\":0,\"command\":[\"sleep\",\"60\"],\"cwd\":\"/\","
			 "\"spawned\":false}\n",
			 ids[i], (int)p[i], ticks, i == 1 ? "\"ending\":true," : "");
		snprintf(rel, sizeof rel, ACTIVE "/%s.json", ids[i]);
		itest_write_file(&H, rel, spec_text);
	}
	itest_vigild_start(&H);
	/* Grace 0.3 s: the one being ended is gone well within 2 s. */
	CHECK(wait_gone(p[1], 300 + 2000 + itest_slack_ms()), "the process of the \"ending\" spec was not ended");
	itest_sleep_ms(500);
	CHECK(itest_alive(p[0]), "the process of a \"restarting\" spec without \"ending\" was killed");
}

/* ---- 19 --------------------------------------------------------------------------- */

/* A restart's "no first beat within heartbeat_timeout" is a verdict on what
 * the scanner saw: while the scanner cannot look (here stalled by the test
 * hook; in CI it was TSan on a loaded host, the scanner preempted past the
 * deadline), the action thread's clock passing the deadline proves nothing.
 * The replacement beats during the stall: the restart succeeds once the
 * scanner looks again, and nothing is restarted a second time.
 * Regression: the action thread declared the failure on its own clock, then
 * ended the healthy replacement and started a third process (found by CI,
 * kill9_vigild_right_after_respawn_exactly_once under TSan, 11 of 20 runs
 * with two CPU hogs). */
static void restart_verdict_waits_for_a_stalled_scanner(void **state)
{
	(void)state;
	write_restart_policy(2.0, 3);
	setenv("VIGIL_DEBUG", "1", 1);
	itest_vigild_start(&H);
	unsetenv("VIGIL_DEBUG");
	const char *id = "worker-stall-001";
	pid_t old = spawn_registered(id, "stall", "stall-task", BEAT10);

	char req[256];
	int64_t t_req = restart_and_await_end(id, old, "stall_test", req, sizeof req);
	/* The replacement starts 2 s after the request.  Stall the scanner
	 * from now for 3 s: the spawn (action thread) and the 0.2 s first-beat
	 * deadline both fall inside the stall.  The log line comes once the
	 * scanner is inside the stall. */
	itest_write_file(&H, "coordination/control/queue/debug-stall.json",
			 "{\"action\":\"debug_stall_scanner\",\"seconds\":3}\n");
	CHECK(itest_wait_text(&H, HB_LOG, "debug: scanner stalled", 3000), "the stall request was not taken");
	int64_t t_stall = itest_mono_ms();
	CHECK(t_stall - t_req < 1800, "too slow to stall the scanner before the restart's spawn (%lld ms)",
	      (long long)(t_stall - t_req));
	CHECK(wait_text_count(RLOG, "spawned worker-stall-001 (", 2, 4000), "the replacement was not spawned");
	json_t *h = wait_history("request_id", req, 1, 3000 + 3000 + itest_slack_ms());
	CHECK(json_array_size(h) == 1, "no outcome for %s", req);
	json_t *l = json_array_get(h, 0);
	SOFT_CHECK(strcmp(str(l, "result"), "success") == 0, "restart through a scanner stall: result '%s' reason '%s'",
		   str(l, "result"), str(l, "reason"));
	json_decref(h);
	/* Anything that would follow a false failure: a retry, a third start. */
	itest_sleep_ms(1000 + 400 + itest_slack_ms());
	json_t *all = history_where("worker_id", id);
	SOFT_CHECK(json_array_size(all) == 1, "%zu history lines for %s, want 1", json_array_size(all), id);
	json_decref(all);
	int spawned = spawned_lines(id);
	SOFT_CHECK(spawned == 2, "%d 'spawned' lines for %s, want 2", spawned, id);
	pid_t pids[4];
	int np = procs_of(id, pids, 4);
	SOFT_CHECK(np == 1 && spec_pid(id) == pids[0], "%d live processes of %s (spec names %d)", np, id,
		   (int)spec_pid(id));
	soft_done();
}

/* ---- 20 --------------------------------------------------------------------------- */

/* vigild killed -9 after it sent a restart's SIGTERM and before it handled
 * the goodbye: the worker detached (its slot goes: here the segment goes,
 * the next vigild makes a fresh one) and lingers.  The spec must already
 * say "ending" (written before the signal), and the next vigild, which
 * finds the restart queued and no slot for the id, must end that process
 * before it starts the replacement.  The scanner is stalled (debug hook) so
 * that the goodbye is certainly not handled before the kill.  Regression:
 * the spec was rewritten with "ending" only when the goodbye was handled,
 * and a spec that was not yet "restarting" never had its process ended:
 * two processes of one worker ran on. */
static void kill9_vigild_between_sigterm_and_goodbye(void **state)
{
	(void)state;
	write_long_grace_policy();
	setenv("VIGIL_DEBUG", "1", 1);
	itest_vigild_start(&H);
	unsetenv("VIGIL_DEBUG");
	const char *id = "worker-linger-003";
	pid_t old = spawn_lingerer(id);
	CHECK(wait_spec_pid(id, 0, 3000) == old, "active/%s.json does not name pid %d", id, (int)old);

	itest_write_file(&H, "coordination/control/queue/debug-stall.json",
			 "{\"action\":\"debug_stall_scanner\",\"seconds\":10}\n");
	CHECK(itest_wait_text(&H, HB_LOG, "debug: scanner stalled", 3000), "the stall request was not taken");
	const char *req = ctl_restart(id, "linger_gap_test");
	char sent[96];
	snprintf(sent, sizeof sent, "sent SIGTERM to %s (pid %d)", id, (int)old);
	CHECK(wait_text_count(RLOG, sent, 1, 2500), "vigild did not send the restart's SIGTERM");
	itest_vigild_kill9(&H);
	CHECK(itest_count_events(&H, HB, "worker_detached", id) == 0,
	      "the goodbye was handled before the crash: the test proves nothing");
	json_t *sp = spec(ACTIVE, id);
	SOFT_CHECK(sp != NULL && json_is_true(json_object_get(sp, "ending")) && json_int_or(sp, "pid", 0) == old,
		   "active/%s.json does not say \"ending\" for pid %d after the SIGTERM", id, (int)old);
	json_decref(sp);
	CHECK(itest_alive(old), "the old process %d ended: the test proves nothing", (int)old);
	shm_unlink(H.shm);

	itest_vigild_start(&H);
	check_ended_then_replaced(id, old, req, 3000 + 2000, false);
	soft_done();
}

/* ---- 21 --------------------------------------------------------------------------- */

/* zombie/ specs of workers that are no longer in the segment (the segment
 * went: a reboot, or it was removed by hand): a worker vigild spawned is
 * restarted like one whose active/ spec was left, and its spec moves to
 * active/; another worker's spec is removed.  Regression: start-up looked
 * at active/ only, so these specs stayed in zombie/ for ever (the
 * runbook's zombie loop listed dead workers) and the spawned one was never
 * restarted.  Found by a review of the start-up path. */
static void zombie_specs_of_gone_workers_restarted_or_removed(void **state)
{
	(void)state;
	char text[1024];
	snprintf(text, sizeof text,
		 "{\"worker_id\":\"worker-zs-001\",\"worker_type\":\"zs\",\"task_id\":\"zs-task\",\"status\":\"zombie\","
		 "\"pid\":0,\"pid_start_ticks\":0,\"slot\":0,\"command\":[\"%s\",\"--beat-ms\",\"10\"],\"cwd\":\"/\","
		 "\"spawned\":true}\n",
		 DEMO_WORKER_PATH);
	itest_write_file(&H, ZOMBIE "/worker-zs-001.json", text);
	itest_write_file(&H, ZOMBIE "/worker-zs-002.json",
			 "{\"worker_id\":\"worker-zs-002\",\"worker_type\":\"zs\",\"task_id\":\"t\",\"status\":\"zombie\","
			 "\"pid\":0,\"pid_start_ticks\":0,\"slot\":1,\"command\":[\"sleep\",\"60\"],\"cwd\":\"/\","
			 "\"spawned\":false}\n");
	itest_vigild_start(&H);
	json_t *h = wait_history("worker_id", "worker-zs-001", 1, 5000);
	CHECK(json_array_size(h) == 1 && strcmp(str(json_array_get(h, 0), "result"), "success") == 0,
	      "the spawned zombie's restart: %zu outcome line(s)", json_array_size(h));
	json_decref(h);
	pid_t neu = wait_spec_pid("worker-zs-001", 0, 3000);
	CHECK(neu > 0, "active/worker-zs-001.json does not name a live process after the restart");
	CHECK(count_dir(ZOMBIE, ".json") == 0, "zombie/ still holds %d spec(s) of workers not in the segment",
	      count_dir(ZOMBIE, ".json"));
	json_t *other = spec(ACTIVE, "worker-zs-002");
	CHECK(other == NULL, "the other worker's spec moved to active/");
	json_decref(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(runbook_test_auto_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(runbook_test_circuit_breaker, setup, teardown),
		cmocka_unit_test_setup_teardown(crash_loop_backoff_then_give_up, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_vigild_with_pending_restart_exactly_once, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_vigild_right_after_respawn_exactly_once, setup, teardown),
		cmocka_unit_test_setup_teardown(pidfd_never_hits_recycled_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(cleanup_sigstopped_zombie, setup, teardown),
		cmocka_unit_test_setup_teardown(spawn_exec_failure_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_request_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(spawn_queued_while_down, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_self_registered_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(repeated_request_name_runs_again, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_ends_a_worker_that_detaches_but_lingers, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_vigild_while_a_detached_worker_lingers, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_first_beat_seen_between_ticks, setup, teardown),
		cmocka_unit_test_setup_teardown(queued_restart_not_doubled_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(spawn_waits_for_a_lingering_predecessor, setup, teardown),
		cmocka_unit_test_setup_teardown(detached_child_is_reaped, setup, teardown),
		cmocka_unit_test_setup_teardown(restarting_spec_ends_only_what_was_being_ended, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_verdict_waits_for_a_stalled_scanner, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_vigild_between_sigterm_and_goodbye, setup, teardown),
		cmocka_unit_test_setup_teardown(zombie_specs_of_gone_workers_restarted_or_removed, setup, teardown),
	};
	/* VIGIL_TEST_FILTER=restart_* runs only the matching tests. */
	if (getenv("VIGIL_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("VIGIL_TEST_FILTER"));
	return cmocka_run_group_tests_name("selfheal", tests, NULL, NULL);
}
