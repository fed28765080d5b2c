/*
 * test_deploy.c - vigild as operators deploy it (README.md "Under systemd",
 * "Trust: who may write into the home"): the real vigild and real workers
 * on a temporary home, with the environment systemd gives a service.
 *
 *   spawned_worker_env_is_clean
 *       vigild started with systemd's NOTIFY_SOCKET, WATCHDOG_PID/USEC,
 *       LISTEN_FDS/PID/FDNAMES, INVOCATION_ID and JOURNAL_STREAM: a worker
 *       started through `vigilctl spawn` has none of them, and keeps an
 *       ordinary variable of vigild's.
 *   journal_lines_have_priorities
 *       stderr is "the journal" (JOURNAL_STREAM names stderr's dev:ino):
 *       vigild's lines reach stderr as "<N>component: message", warnings
 *       as <4>; the component log keeps its timestamped format.  With a
 *       JOURNAL_STREAM that is not stderr, nothing is prefixed.
 *   world_writable_queue_refused
 *       a root vigild on a home whose coordination/spawn/queue is 0777 and
 *       holds a spawn request written by `nobody`: vigild does not start
 *       (exit 2), names the path and the fix (chmod go-w), and the command
 *       never runs.  The same request written by root in a 0755 queue runs
 *       (the request itself is good).
 *   foreign_owned_tree_and_policy_refused
 *       a coordination/config owned by nobody, then a policy file owned by
 *       nobody in a good directory: vigild and `vigild --check-config` (what
 *       the units' ExecReload runs) refuse with exit 2 and the reason.
 *   ps_finds_the_runbook_daemons
 *       `ps aux | grep heartbeat-monitor-daemon` (worker-restart-daemon,
 *       auto-fix-daemon, grep -E "heartbeat|pattern|auto-fix") lists vigild;
 *       pgrep -x vigild too.
 *   failed_start_leaves_no_segment
 *       vigild that cannot write its --pidfile exits 1 and removes the
 *       segment it had just created.
 *   nobody_request_in_trusted_dir_not_executed
 *       a request file owned by nobody, in a queue that was writable when it
 *       was written and is fixed since: not executed (needs the queue
 *       readers to call vigil_trust_file; skipped until they do).
 *
 * VIGIL_TEST_FILTER=<glob> runs some tests only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "itest.h"

static struct itest_home H;

#include "itest_check.h"

static void dump_state(void)
{
	dump_tail("vigild.out", "vigild.out", 40);
	dump_tail("heartbeat-monitor-daemon.log", "agents/logs/system/heartbeat-monitor-daemon.log", 20);
	dump_tail("worker-restart-daemon.log", ITEST_RESTART_LOG, 20);
}

static int setup(void **state)
{
	(void)state;
	memset(&H, 0, sizeof H);
	itest_home_create(&H);
	itest_write_policy(&H, 0.2, 1, 2, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	itest_kill_segment_users(H.shm);
	return itest_finish(&H, NULL);
}

/* ---- environment ---------------------------------------------------------------- */

static const char *const SYSTEMD_ENV[] = {
	"NOTIFY_SOCKET=/nonexistent/notify", "WATCHDOG_PID=1",      "WATCHDOG_USEC=30000000",
	"LISTEN_FDS=2",                      "LISTEN_PID=1",        "LISTEN_FDNAMES=a:b",
	"INVOCATION_ID=0123456789abcdef",    "JOURNAL_STREAM=1:2",  "VIGIL_DEPLOY_KEEP=kept",
};
#define N_SYSTEMD_ENV (sizeof SYSTEMD_ENV / sizeof SYSTEMD_ENV[0])

static void spawned_worker_env_is_clean(void **state)
{
	(void)state;
	const char *prefix[N_SYSTEMD_ENV + 2];
	size_t n = 0;
	prefix[n++] = "/usr/bin/env";
	for (size_t i = 0; i < N_SYSTEMD_ENV; i++)
		prefix[n++] = SYSTEMD_ENV[i];
	prefix[n] = NULL;
	itest_vigild_start_prefixed(&H, prefix, NULL);

	char script[4 * ITEST_PATH_MAX];
	snprintf(script, sizeof script, "env > %s/worker.env.tmp && mv %s/worker.env.tmp %s/worker.env; exec sleep 30",
		 H.dir, H.dir, H.dir);
	const char *args[] = {"spawn", "--type", "envcheck", "--task-id", "t1", "--", "/bin/bash", "-c", script, NULL};
	char *out = NULL, *err = NULL;
	int rc = itest_vigilctl(&H, &out, &err, args);
	CHECK(rc == 0, "vigilctl spawn exited %d: %s %s", rc, out, err);
	free(out);
	free(err);
	CHECK(itest_wait_file(&H, "worker.env", true, 10000), "the spawned worker did not write its environment");
	char *env = itest_read_file(&H, "worker.env");
	CHECK(env != NULL, "worker.env unreadable");
	static const char *const gone[] = {"NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "LISTEN_FDS=",
					   "LISTEN_PID=",    "LISTEN_FDNAMES=", "INVOCATION_ID=", "JOURNAL_STREAM="};
	for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
		char needle[64];
		snprintf(needle, sizeof needle, "\n%s", gone[i]);
		SOFT_CHECK(strstr(env, needle) == NULL && strncmp(env, gone[i], strlen(gone[i])) != 0,
			   "the worker inherited vigild's %s", gone[i]);
	}
	SOFT_CHECK(strstr(env, "VIGIL_DEPLOY_KEEP=kept\n") != NULL, "an ordinary variable of vigild's was lost");
	SOFT_CHECK(strstr(env, "WORKER_ID=") != NULL && strstr(env, "VIGIL_SLOT=") != NULL,
		   "the worker lacks vigil's own variables");
	free(env);
	soft_done();
}

/* ---- journal -------------------------------------------------------------------- */

/* "JOURNAL_STREAM=dev:ino" of the home's vigild.out (created empty first). */
static void journal_stream_of_out(char *buf, size_t len)
{
	itest_write_file(&H, "vigild.out", "");
	char path[ITEST_PATH_MAX];
	struct stat st;
	CHECK(stat(itest_path(&H, "vigild.out", path), &st) == 0, "stat vigild.out: %s", strerror(errno));
	snprintf(buf, len, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

static void journal_lines_have_priorities(void **state)
{
	(void)state;
	char js[96];
	journal_stream_of_out(js, sizeof js);
	/* An unknown key in a policy makes a warning at start. */
	itest_write_policy(&H, 0.2, 1, 2, "\"deploy_test_unknown_key\": 1");
	const char *prefix[] = {"/usr/bin/env", js, NULL};
	itest_vigild_start_prefixed(&H, prefix, NULL);
	CHECK(itest_wait_text(&H, "vigild.out", "<6>heartbeat-monitor: vigild ", 5000),
	      "no '<6>heartbeat-monitor: vigild ... started' line on stderr");
	SOFT_CHECK(itest_wait_text(&H, "vigild.out", "<4>vigild: ", 2000) &&
			   itest_wait_text(&H, "vigild.out", "deploy_test_unknown_key", 10),
		   "the start-up warning has no <4> prefix");
	char *log = itest_read_file(&H, "agents/logs/system/heartbeat-monitor-daemon.log");
	CHECK(log != NULL, "no heartbeat-monitor-daemon.log");
	SOFT_CHECK(strstr(log, "<6>") == NULL && strstr(log, "Z INFO vigild ") != NULL,
		   "the component log changed format: %.200s", log);
	free(log);
	itest_vigild_stop(&H, 5000);

	/* JOURNAL_STREAM inherited but stderr elsewhere: no prefixes. */
	itest_write_file(&H, "vigild.out", "");
	const char *prefix2[] = {"/usr/bin/env", "JOURNAL_STREAM=1:1", NULL};
	itest_vigild_start_prefixed(&H, prefix2, NULL);
	char *out = itest_read_file(&H, "vigild.out");
	SOFT_CHECK(out == NULL || strstr(out, "<6>") == NULL, "prefixes without the journal: %s", out);
	free(out);
	soft_done();
}

/* ---- trust ---------------------------------------------------------------------- */

static uid_t nobody_uid(void)
{
	struct passwd *pw = getpwnam("nobody");
	if (pw == NULL)
		skip();
	return pw->pw_uid;
}

/* A valid spawn request for worker_id whose command creates marker under
 * the home, written by vigilctl while no vigild runs, moved to rel. */
static void make_request(const char *worker_id, const char *marker, const char *rel)
{
	char script[2 * ITEST_PATH_MAX];
	snprintf(script, sizeof script, "id -u > %s/%s; exec sleep 30", H.dir, marker);
	const char *args[] = {"spawn", "--type", "evil", "--task-id", "t1", "--id", worker_id, "--", "/bin/bash",
			      "-c", script, NULL};
	char *out = NULL, *err = NULL;
	(void)itest_vigilctl(&H, &out, &err, args); /* "vigild is not running; the spawn request stays queued" */
	free(out);
	free(err);
	char from[ITEST_PATH_MAX], to[ITEST_PATH_MAX], q[ITEST_PATH_MAX + 64];
	snprintf(q, sizeof q, "coordination/spawn/queue/%s.json", worker_id);
	CHECK(itest_exists(&H, q), "vigilctl spawn did not queue %s", q);
	CHECK(rename(itest_path(&H, q, from), itest_path(&H, rel, to)) == 0, "rename: %s", strerror(errno));
}

static void world_writable_queue_refused(void **state)
{
	(void)state;
	uid_t nobody = nobody_uid();
	/* The tree exists (a first vigild made it), then someone widens it. */
	itest_vigild_start(&H);
	CHECK(itest_vigild_stop(&H, 5000) == 0, "vigild did not stop cleanly");
	make_request("worker-evil-001", "pwned", "request.json");
	char p[ITEST_PATH_MAX], q[ITEST_PATH_MAX];
	CHECK(chmod(H.dir, 0755) == 0 && chmod(itest_path(&H, "coordination", q), 0755) == 0 &&
		      chmod(itest_path(&H, "request.json", p), 0644) == 0,
	      "chmod");
	CHECK(chmod(itest_path(&H, "coordination/spawn/queue", q), 0777) == 0, "chmod 0777 queue");
	char script[12 * ITEST_PATH_MAX];
	snprintf(script, sizeof script,
		 "setpriv --reuid=%u --regid=65534 --clear-groups sh -c 'cat %s > %s/worker-evil-001.json' && "
		 "stat -c %%u %s/worker-evil-001.json",
		 (unsigned)nobody, p, q, q);
	char *owner = NULL;
	int rc = itest_sh(&H, script, &owner, 10000);
	CHECK(rc == 0 && owner != NULL && (uid_t)atoi(owner) == nobody, "nobody could not write the request: %d %s", rc,
	      owner);
	free(owner);

	char *err = NULL;
	rc = itest_vigild_run(&H, NULL, &err, 10000);
	CHECK(rc == 2, "vigild on a 0777 queue exited %d, want 2; stderr: %s", rc, err);
	SOFT_CHECK(err != NULL && strstr(err, "coordination/spawn/queue") != NULL && strstr(err, "chmod go-w") != NULL,
		   "the refusal does not name the path and the fix: %s", err);
	free(err);
	itest_sleep_ms(300);
	SOFT_CHECK(!itest_exists(&H, "pwned"), "nobody's request was executed");

	/* Control: the same request by root in a 0755 queue runs. */
	CHECK(unlink(itest_path(&H, "coordination/spawn/queue/worker-evil-001.json", p)) == 0, "unlink");
	CHECK(chmod(q, 0755) == 0, "chmod 0755");
	make_request("worker-good-002", "ran", "request2.json");
	CHECK(rename(itest_path(&H, "request2.json", p), itest_path(&H, "coordination/spawn/queue/worker-good-002.json", q)) ==
		      0,
	      "rename");
	itest_vigild_start(&H);
	SOFT_CHECK(itest_wait_file(&H, "ran", true, 10000), "the same request written by root did not run");
	SOFT_CHECK(!itest_exists(&H, "pwned"), "nobody's request was executed");
	soft_done();
}

static void foreign_owned_tree_and_policy_refused(void **state)
{
	(void)state;
	uid_t nobody = nobody_uid();
	itest_vigild_start(&H);
	CHECK(itest_vigild_stop(&H, 5000) == 0, "vigild did not stop cleanly");
	char cfg[ITEST_PATH_MAX], pol[ITEST_PATH_MAX];
	itest_path(&H, "coordination/config", cfg);
	itest_path(&H, "coordination/config/heartbeat-policy.json", pol);

	CHECK(chown(cfg, nobody, (gid_t)-1) == 0, "chown config");
	char *err = NULL;
	int rc = itest_vigild_run(&H, NULL, &err, 10000);
	SOFT_CHECK(rc == 2 && err != NULL && strstr(err, "coordination/config is owned by uid") != NULL &&
			   strstr(err, "chown") != NULL,
		   "a nobody-owned config/: exit %d, stderr %s", rc, err);
	free(err);
	const char *check[] = {"--check-config", NULL};
	err = NULL;
	rc = itest_vigild_run(&H, check, &err, 10000);
	SOFT_CHECK(rc == 2, "--check-config on a nobody-owned config/ exited %d (%s)", rc, err);
	free(err);

	CHECK(chown(cfg, 0, (gid_t)-1) == 0 && chown(pol, nobody, (gid_t)-1) == 0, "chown policy");
	err = NULL;
	rc = itest_vigild_run(&H, check, &err, 10000);
	SOFT_CHECK(rc == 2 && err != NULL && strstr(err, "heartbeat-policy.json: not trusted") != NULL,
		   "--check-config with a nobody-owned policy: exit %d, stderr %s", rc, err);
	free(err);
	err = NULL;
	rc = itest_vigild_run(&H, NULL, &err, 10000);
	SOFT_CHECK(rc == 2, "vigild with a nobody-owned policy exited %d (%s)", rc, err);
	free(err);

	CHECK(chown(pol, 0, (gid_t)-1) == 0 && chmod(pol, 0666) == 0, "chmod policy");
	err = NULL;
	rc = itest_vigild_run(&H, check, &err, 10000);
	SOFT_CHECK(rc == 2 && err != NULL && strstr(err, "writable by group or others") != NULL,
		   "--check-config with a 0666 policy: exit %d, stderr %s", rc, err);
	free(err);
	CHECK(chmod(pol, 0644) == 0, "chmod policy back");
	err = NULL;
	rc = itest_vigild_run(&H, check, &err, 10000);
	SOFT_CHECK(rc == 0, "--check-config on a good tree exited %d (%s)", rc, err);
	free(err);
	soft_done();
}

static void nobody_request_in_trusted_dir_not_executed(void **state)
{
	(void)state;
	/* The queue readers (restart.c) call vigil_trust_file on every
	 * request before acting on it. */
	uid_t nobody = nobody_uid();
	itest_vigild_start(&H);
	CHECK(itest_vigild_stop(&H, 5000) == 0, "vigild did not stop cleanly");
	make_request("worker-evil-003", "pwned", "request.json");
	char p[ITEST_PATH_MAX], q[ITEST_PATH_MAX];
	itest_path(&H, "coordination/spawn/queue/worker-evil-003.json", q);
	CHECK(rename(itest_path(&H, "request.json", p), q) == 0 && chown(q, nobody, (gid_t)-1) == 0, "plant");
	itest_vigild_start(&H);
	SOFT_CHECK(itest_wait_text(&H, ITEST_RESTART_LOG, "worker-evil-003", 5000),
		   "the refusal of nobody's request is not logged");
	itest_sleep_ms(500);
	SOFT_CHECK(!itest_exists(&H, "pwned"), "nobody's request was executed");
	SOFT_CHECK(!itest_exists(&H, "coordination/spawn/queue/worker-evil-003.json"),
		   "nobody's request was left in the queue, not moved aside");
	soft_done();
}

/* The runbook's `ps aux | grep heartbeat-monitor-daemon` (and the other two
 * daemons) finds vigild; `pgrep vigild` (comm) still does. */
static void ps_finds_the_runbook_daemons(void **state)
{
	(void)state;
	pid_t pid = itest_vigild_start(&H);
	char script[1024];
	snprintf(script, sizeof script,
		 "for d in heartbeat-monitor-daemon worker-restart-daemon auto-fix-daemon; do "
		 "ps aux | grep \"$d\" | grep -v grep | awk '{print $2}' | grep -qx %d || { echo \"$d\"; exit 1; }; done; "
		 "ps aux | grep -E \"heartbeat|pattern|auto-fix\" | awk '{print $2}' | grep -qx %d || exit 2; "
		 "pgrep -x vigild | grep -qx %d || exit 3",
		 (int)pid, (int)pid, (int)pid);
	char *out = NULL;
	int rc = itest_sh(&H, script, &out, 10000);
	CHECK(rc == 0, "ps does not find vigild as the runbook looks for it (rc %d, %s)", rc, out != NULL ? out : "");
	free(out);
}

/* A start that fails on its pid file (a unit run as a user who cannot write
 * there) leaves no segment behind. */
static void failed_start_leaves_no_segment(void **state)
{
	(void)state;
	const char *extra[] = {"--pidfile", "/nonexistent-dir/vigild.pid", NULL};
	char *err = NULL;
	int rc = itest_vigild_run(&H, extra, &err, 10000);
	CHECK(rc == 1 && err != NULL && strstr(err, "--pidfile /nonexistent-dir/vigild.pid") != NULL,
	      "vigild with an unwritable pid file: exit %d, stderr %s", rc, err);
	free(err);
	char path[128];
	snprintf(path, sizeof path, "/dev/shm%s", H.shm);
	CHECK(access(path, F_OK) != 0, "the failed start left its segment %s behind", path);
}

int main(void)
{
	const char *filter = getenv("VIGIL_TEST_FILTER");
	const struct CMUnitTest all[] = {
		cmocka_unit_test_setup_teardown(spawned_worker_env_is_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(journal_lines_have_priorities, setup, teardown),
		cmocka_unit_test_setup_teardown(world_writable_queue_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(foreign_owned_tree_and_policy_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(nobody_request_in_trusted_dir_not_executed, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_start_leaves_no_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(ps_finds_the_runbook_daemons, setup, teardown),
	};
	struct CMUnitTest tests[sizeof all / sizeof all[0]];
	size_t n = 0;
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (filter == NULL || fnmatch(filter, all[i].name, 0) == 0)
			tests[n++] = all[i];
	return _cmocka_run_group_tests("test_deploy", tests, n, NULL, NULL);
}
