/*
 * test_scanfail.c - a scanner thread that fails ends vigild, loudly (README
 * "When the scanner fails"): never a vigild that looks alive and watches
 * nothing.  The failure is injected with a test hook (VIGIL_DEBUG=1 and
 * VIGIL_DEBUG_SCANNER_FAIL_TICKS=N: after N ticks the scanner's epoll_wait
 * "returns" EIO).
 *
 *   scanfail_vigild_exits_1_workers_keep_running
 *       the real vigild with a beating worker: the scanner fails; vigild
 *       says why (stderr and the heartbeat log, at ERROR), stops in order
 *       (pid file removed, "vigild stopped because its scanner failed") and
 *       exits with status 1 by itself; the worker keeps running, and the
 *       next vigild adopts it and watches it again.
 *   scanfail_no_orderly_stop_exits_1_anyway
 *       a scanner alone in a child process where nobody answers its SIGTERM
 *       (blocked, no action thread): it ends the process with status 1
 *       after VIGIL_SCANNER_FAIL_GRACE_MS, saying so.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "policy.h"
#include "scanner.h"
#include "segment.h"
#include "util.h"

static struct itest_home H;
#include "itest_check.h"

#define HB "heartbeat-events.jsonl"
#define HB_LOG "agents/logs/system/heartbeat-monitor-daemon.log"

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 10);
	dump_tail("heartbeat-monitor-daemon.log", HB_LOG, 10);
	dump_tail("vigild.out", "vigild.out", 10);
}

static int setup(void **state)
{
	(void)state;
	itest_home_create(&H);
	itest_write_policy(&H, 0.2, 0.6, 1.0, NULL); /* tick 0.05 s */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return itest_finish(&H, NULL);
}

static void scanfail_vigild_exits_1_workers_keep_running(void **state)
{
	(void)state;
	setenv("VIGIL_DEBUG", "1", 1);
	setenv("VIGIL_DEBUG_SCANNER_FAIL_TICKS", "60", 1); /* ~3 s of ticks */
	pid_t v = itest_vigild_start(&H);
	unsetenv("VIGIL_DEBUG_SCANNER_FAIL_TICKS");
	unsetenv("VIGIL_DEBUG");
	const char *args[] = {"--beat-ms", "50", NULL};
	pid_t w = itest_worker_start(&H, "worker-scanfail-001", "scanfail", "task-1", args);
	json_t *ev = itest_wait_event(&H, HB, "worker_registered", "worker-scanfail-001", 5000);
	CHECK(ev != NULL, "the worker was not registered");
	json_decref(ev);

	/* It ends by itself: no SIGTERM from us. */
	int rc = itest_reap(v, 30000);
	H.vigild = 0;
	CHECK(rc == 1, "vigild with a failed scanner: exit status %d (want 1; -1: still running after 30 s)", rc);
	char *out = itest_read_file(&H, "vigild.out");
	CHECK(out != NULL && strstr(out, "vigild: scanner failed: epoll_wait: Input/output error") != NULL,
	      "vigild's stderr does not say the scanner failed: %s", out != NULL ? out : "(none)");
	free(out);
	CHECK(itest_count_text(&H, HB_LOG, "ERROR scanner failed: epoll_wait: Input/output error") == 1,
	      "the heartbeat log has no ERROR line for the scanner's failure");
	CHECK(itest_count_text(&H, HB_LOG, "vigild stopped because its scanner failed (exit status 1)") == 1,
	      "the heartbeat log does not end with the stop after the failure");
	CHECK(!itest_exists(&H, "vigild.pid"), "the pid file is still there: the stop was not orderly");
	CHECK(itest_alive(w), "the worker died with vigild");

	/* The next vigild watches it again. */
	itest_vigild_start(&H);
	ev = itest_wait_event(&H, HB, "worker_adopted", "worker-scanfail-001", 5000);
	CHECK(ev != NULL, "the next vigild did not adopt the worker");
	json_decref(ev);
	itest_signal(w, SIGKILL);
	ev = itest_wait_event(&H, HB, "worker_exited", "worker-scanfail-001", 5000);
	CHECK(ev != NULL, "the next vigild did not see the worker's death");
	json_decref(ev);
	rc = itest_vigild_stop(&H, 10000);
	CHECK(rc == 0, "the next vigild exited %d on SIGTERM", rc);
}

/* The child: a scanner on its own segment, nobody to stop it in order. */
static void lone_scanner_child(const char *shm, int err_fd)
{
	dup2(err_fd, STDERR_FILENO);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL); /* vigild blocks it too; here nobody reads it */
	struct vigil_segment seg;
	char err[256];
	if (vigil_segment_open(&seg, shm, 4, 0600, true, true, err, sizeof err) < 0)
		_exit(40);
	struct vigil_heartbeat_policy pol;
	vigil_policy_heartbeat_defaults(&pol);
	static struct vigil_scanner sc;
	if (vigil_scanner_init(&sc, &seg, &pol) < 0)
		_exit(41);
	sc.debug_fail_after_ticks = 1; /* the first pass is tick 1 */
	if (vigil_scanner_start(&sc) < 0)
		_exit(42);
	for (int i = 0; i < 300; i++) /* 30 s at most: the scanner must end us first */
		usleep(100000);
	_exit(43);
}

static void scanfail_no_orderly_stop_exits_1_anyway(void **state)
{
	(void)state;
	char shm[64], path[] = "/tmp/vigil-scanfail-XXXXXX";
	snprintf(shm, sizeof shm, "/vigil-sf-%d", (int)getpid());
	shm_unlink(shm);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	int64_t t0 = itest_mono_ms();
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0)
		lone_scanner_child(shm, fd);
	int st = 0;
	pid_t got = -1;
	for (int i = 0; i < 3000 && (got = waitpid(c, &st, WNOHANG)) == 0; i++)
		usleep(10000);
	if (got == 0) {
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
	}
	int64_t took = itest_mono_ms() - t0;
	shm_unlink(shm);
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (got != c || !WIFEXITED(st) || WEXITSTATUS(st) != 1)
		fail_msg("the lone failed scanner's process: waitpid %d, status %#x (want exit 1); stderr:\n%s", (int)got,
			 st, buf);
	if (strstr(buf, "vigild: scanner failed: epoll_wait: Input/output error") == NULL ||
	    strstr(buf, "did not come within 5 s: exiting now with status 1") == NULL)
		fail_msg("the lone failed scanner did not say why it ended the process:\n%s", buf);
	/* Not before the grace period: the orderly stop had its chance. */
	if (took < VIGIL_SCANNER_FAIL_GRACE_MS)
		fail_msg("the process ended %lld ms after the start, before the %d ms grace", (long long)took,
			 VIGIL_SCANNER_FAIL_GRACE_MS);
}

int main(void)
{
	if (getenv("VIGIL_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("VIGIL_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(scanfail_vigild_exits_1_workers_keep_running, setup, teardown),
		cmocka_unit_test(scanfail_no_orderly_stop_exits_1_anyway),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
