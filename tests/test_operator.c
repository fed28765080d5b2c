/*
 * test_operator.c - the operator's tools end to end: `vigilctl top` (one
 * plain frame, and the live screen driven through tmux), `vigilctl check`
 * exit codes for healthy, degraded, zombie and supervisor-less fleets,
 * `vigilctl metrics` and the Prometheus text (prom.c), validated with
 * `promtool check metrics` (Debian package prometheus).
 *
 * Every test runs the real vigild and real workers on a throw-away home
 * (itest.h).  The tmux server runs on its own socket inside the home
 * (-S <home>/tmux.sock, session vigil-op-<pid>) and is killed in the
 * teardown, before the harness reaps what is left and removes the home.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#include "prom.h"
#include "util.h"
#include "vigil.h"

static struct itest_home H;
static char tmux_sock[ITEST_PATH_MAX]; /* its socket (in the home); "" none started */

#define ZE "zombie-cleanup-events.jsonl"
#define TMUX "/usr/bin/tmux"
#define PROMTOOL "/usr/bin/promtool"

/* ---- helpers ------------------------------------------------------------------ */

#include "itest_check.h"

static void dump_state(void) { dump_tail("vigild.out", "vigild.out", 40); }

/* Runs vigilctl ARGS... --home H --shm S; stdout in *out (may be NULL). */
static int ctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
	const char *argv[16];
	int n = 0;
	argv[n++] = VIGILCTL_PATH;
	const char *args[] = {a1, a2, a3, a4, a5};
	for (size_t i = 0; i < 5; i++)
		if (args[i] != NULL)
			argv[n++] = args[i];
	argv[n++] = "--home";
	argv[n++] = H.dir;
	argv[n++] = "--shm";
	argv[n++] = H.shm;
	argv[n] = NULL;
	char *err = NULL;
	int rc = itest_run(argv, NULL, out, &err, 40000);
	if (err != NULL && err[0] != '\0')
		fprintf(stderr, "[vigilctl %s stderr] %s", a1, err);
	free(err);
	return rc;
}

/* Starts a demo worker beating every 50 ms with health h. */
static pid_t worker(const char *id, const char *type, const char *health)
{
	const char *args[] = {"--health", health, "--beat-ms", "50", NULL};
	return itest_worker_start(&H, id, type, "task-op", args);
}

/* Waits until `vigilctl status --json` shows n workers, all scored
 * (health_score not null). */
static void wait_scored(size_t n)
{
	int64_t deadline = itest_mono_ms() + 10000;
	for (;;) {
		char *out = NULL;
		int rc = ctl(&out, "status", "--json", NULL, NULL, NULL);
		json_t *arr = rc == 0 ? json_loads(out, 0, NULL) : NULL;
		free(out);
		size_t scored = 0, i;
		json_t *w;
		json_array_foreach(arr, i, w) {
			if (json_is_integer(json_object_get(w, "health_score")))
				scored++;
		}
		size_t total = json_array_size(arr);
		json_decref(arr);
		if (total == n && scored == n)
			return;
		CHECK(itest_mono_ms() < deadline, "fleet not scored within 10 s: %zu of %zu (want %zu)", scored, total, n);
		itest_sleep_ms(20);
	}
}

/* The worker rows of a `top` frame: the lines after the column header
 * ("HEALTH ..."), up to the key line or the end.  Returns how many (at
 * most max), each a malloc'd copy. */
static size_t top_rows(const char *frame, char **rows, size_t max)
{
	size_t n = 0;
	bool in = false;
	const char *p = frame;
	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (in) {
			if (len == 0 || strncmp(p, "q quit", 6) == 0)
				break;
			if (n < max)
				rows[n++] = strndup(p, len);
		} else if (strncmp(p, "HEALTH ", 7) == 0) {
			in = true;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return n;
}

static void free_rows(char **rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i]);
}

/* Asserts that row starts with bar and contains " id " and " type ". */
static void check_row(const char *row, const char *bar, const char *id, const char *type, const char *state)
{
	char want_id[96], want_type[96], want_state[96];
	snprintf(want_id, sizeof want_id, " %s ", id);
	snprintf(want_type, sizeof want_type, " %s ", type);
	snprintf(want_state, sizeof want_state, " %s ", state);
	CHECK(strncmp(row, bar, strlen(bar)) == 0, "row '%s' does not start with '%s'", row, bar);
	CHECK(strstr(row, want_id) != NULL, "row '%s' is not worker %s", row, id);
	CHECK(strstr(row, want_type) != NULL, "row '%s' lacks type %s", row, type);
	CHECK(strstr(row, want_state) != NULL, "row '%s' lacks state %s", row, state);
}

/* Starts vigild with a relaxed policy and the known fleet:
 * op-a health 40 (review), op-b 100 (impl), op-c 70 (impl). */
static void known_fleet(void)
{
	/* Beats every 50 ms against a 2 s interval: no missed interval, so the
	 * health stays exactly as reported even on a loaded machine. */
	itest_write_policy(&H, 2, 6, 12, NULL);
	itest_vigild_start(&H);
	worker("op-a", "review", "40");
	worker("op-b", "impl", "100");
	worker("op-c", "impl", "70");
	wait_scored(3);
}

/* tmux on our own socket. */
static int tmux(char **out, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
		const char *a6)
{
	const char *argv[16];
	int n = 0;
	argv[n++] = TMUX;
	argv[n++] = "-S";
	argv[n++] = tmux_sock;
	const char *args[] = {a1, a2, a3, a4, a5, a6};
	for (size_t i = 0; i < 6; i++)
		if (args[i] != NULL)
			argv[n++] = args[i];
	argv[n] = NULL;
	const char *env[] = {"TERM=xterm-256color", NULL};
	char *err = NULL;
	int rc = itest_run(argv, env, out, &err, 10000);
	free(err);
	return rc;
}

static char *capture(const char *session)
{
	char *out = NULL;
	int rc = tmux(&out, "capture-pane", "-p", "-t", session, NULL, NULL);
	CHECK(rc == 0, "tmux capture-pane failed (%d)", rc);
	return out;
}

/* Polls the pane until it contains needle; the last capture, or fails. */
static char *wait_screen(const char *session, const char *needle, int timeout_ms)
{
	int64_t deadline = itest_mono_ms() + timeout_ms;
	for (;;) {
		char *s = capture(session);
		if (strstr(s, needle) != NULL)
			return s;
		if (itest_mono_ms() >= deadline) {
			fprintf(stderr, "---- screen:\n%s\n", s);
			free(s);
			fail_msg("the screen did not show '%s' within %d ms", needle, timeout_ms);
		}
		free(s);
		itest_sleep_ms(50);
	}
}

static char *pane_format(const char *session, const char *fmt)
{
	char *out = NULL;
	int rc = tmux(&out, "display-message", "-p", "-t", session, fmt, NULL);
	CHECK(rc == 0, "tmux display-message failed (%d)", rc);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* Runs a shell command line with the home's environment; its exit code. */
static int sh(const char *script, char **out)
{
	return itest_sh(&H, script, out, 30000);
}

static void require_promtool(void)
{
	if (access(PROMTOOL, X_OK) != 0)
		fail_msg("promtool is missing (%s): install the Debian package 'prometheus' "
			 "(apt-get install -y prometheus); tools/setup.sh installs it", PROMTOOL);
}

/* promtool check metrics on text; its exit code, its output in *report. */
static int promtool_check(const char *text, char **report)
{
	itest_write_file(&H, "check.prom", text);
	char script[ITEST_PATH_MAX + 64];
	snprintf(script, sizeof script, PROMTOOL " check metrics < '%s/check.prom' 2>&1", H.dir);
	return sh(script, report);
}

/* ---- fixtures ------------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	memset(&H, 0, sizeof H);
	itest_home_create(&H);
	tmux_sock[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (tmux_sock[0] != '\0') {
		/* Before the harness reaps: the server is our orphan (subreaper). */
		tmux(NULL, "kill-server", NULL, NULL, NULL, NULL, NULL);
		tmux_sock[0] = '\0';
	}
	return itest_finish(&H, NULL);
}

/* ---- top ---------------------------------------------------------------------- */

static void test_top_once(void **state)
{
	(void)state;
	known_fleet();
	char *out = NULL, *rows[8];
	int rc = ctl(&out, "top", "--once", NULL, NULL, NULL);
	CHECK(rc == 0, "top --once exited %d", rc);
	CHECK(strchr(out, '\033') == NULL, "top --once printed an escape sequence:\n%s", out);
	CHECK(strstr(out, "workers 3  zombies 0") != NULL, "totals missing:\n%s", out);
	CHECK(strstr(out, "breakers open: none") != NULL, "breaker line missing:\n%s", out);
	CHECK(strstr(out, "vigild pid ") != NULL && strstr(out, "ticks/s") != NULL, "vigild line missing:\n%s", out);
	size_t n = top_rows(out, rows, 8);
	CHECK(n == 3, "want 3 rows, got %zu:\n%s", n, out);
	/* Worst first, health bars right. */
	check_row(rows[0], "[####------]  40", "op-a", "review", "active");
	check_row(rows[1], "[#######---]  70", "op-c", "impl", "active");
	check_row(rows[2], "[##########] 100", "op-b", "impl", "active");
	/* Beat rates are known (two samples): about 20/s; at least "x.y". */
	for (size_t i = 0; i < n; i++) {
		const char *last = strrchr(rows[i], ' ');
		CHECK(last != NULL && strchr(last, '.') != NULL, "row '%s' has no beat rate", rows[i]);
	}
	free_rows(rows, n);
	free(out);

	/* --sort id, --reverse, --type. */
	rc = ctl(&out, "top", "--once", "--sort", "id", NULL);
	CHECK(rc == 0, "top --once --sort id exited %d", rc);
	n = top_rows(out, rows, 8);
	CHECK(n == 3 && strstr(rows[0], " op-a ") && strstr(rows[1], " op-b ") && strstr(rows[2], " op-c "),
	      "--sort id order wrong:\n%s", out);
	free_rows(rows, n);
	free(out);
	rc = ctl(&out, "top", "--once", "--reverse", NULL, NULL);
	CHECK(rc == 0, "top --once --reverse exited %d", rc);
	n = top_rows(out, rows, 8);
	CHECK(n == 3 && strstr(rows[0], " op-b ") && strstr(rows[2], " op-a "), "--reverse order wrong:\n%s", out);
	free_rows(rows, n);
	free(out);
	rc = ctl(&out, "top", "--once", "--type", "impl", NULL);
	CHECK(rc == 0, "top --once --type impl exited %d", rc);
	n = top_rows(out, rows, 8);
	CHECK(n == 2 && strstr(rows[0], " op-c ") && strstr(rows[1], " op-b "), "--type impl rows wrong:\n%s", out);
	CHECK(strstr(out, "workers 3 ") != NULL, "totals must count every type:\n%s", out);
	free_rows(rows, n);
	free(out);

	/* Usage errors. */
	CHECK(ctl(NULL, "top", "--once", "--sort", "bogus", NULL) == 2, "bad --sort must exit 2");
	CHECK(ctl(NULL, "top", "--once", "--type", "../x", NULL) == 2, "bad --type must exit 2");
	/* Live mode needs a terminal. */
	CHECK(ctl(NULL, "top", NULL, NULL, NULL, NULL) == 2, "top without a terminal must exit 2");
}

static void test_top_zombie_and_breaker(void **state)
{
	(void)state;
	itest_write_policy(&H, 0.1, 0.3, 0.6, NULL);
	itest_vigild_start(&H);
	worker("ok-1", "impl", "100");
	pid_t hung = worker("hung-1", "review", "100");
	wait_scored(2);
	itest_write_file(&H, "coordination/circuit-breakers/impl.json",
			 "{\"worker_type\":\"impl\",\"state\":\"open\",\"failure_count\":5}\n");
	itest_signal(hung, SIGSTOP);
	json_t *ev = itest_wait_event(&H, ZE, "zombie_detected", "hung-1", 5000);
	CHECK(ev != NULL, "no zombie_detected for hung-1");
	json_decref(ev);
	char *out = NULL, *rows[8];
	int rc = ctl(&out, "top", "--once", NULL, NULL, NULL);
	CHECK(rc == 0, "top --once exited %d", rc);
	CHECK(strstr(out, "zombies 1") != NULL, "zombie not counted:\n%s", out);
	CHECK(strstr(out, "breakers open: 1 (impl)") != NULL, "open breaker not shown:\n%s", out);
	size_t n = top_rows(out, rows, 8);
	CHECK(n == 2, "want 2 rows:\n%s", out);
	CHECK(strstr(rows[0], " hung-1 ") != NULL && strstr(rows[0], " zombie ") != NULL, "zombie not first:\n%s", out);
	free_rows(rows, n);
	free(out);
	itest_signal(hung, SIGCONT);
}

static void test_top_tmux(void **state)
{
	(void)state;
	if (access(TMUX, X_OK) != 0)
		fail_msg("tmux is missing (%s): install the Debian package 'tmux'", TMUX);
	known_fleet();
	char session[64], top_cmd[3 * ITEST_PATH_MAX], cmd[8 * ITEST_PATH_MAX];
	itest_path(&H, "tmux.sock", tmux_sock);
	snprintf(session, sizeof session, "vigil-op-%d", (int)getpid());
	snprintf(top_cmd, sizeof top_cmd, "'%s' top --home '%s' --shm '%s'", VIGILCTL_PATH, H.dir, H.shm);
	/* The shell in the pane runs top twice (ended by q, then by SIGTERM)
	 * and reports each exit status and whether the terminal modes came
	 * back as they were. */
	/* A watchdog in the pane ends the server if this program dies without
	 * its teardown (a ctest timeout). */
	snprintf(cmd, sizeof cmd,
		 "(sleep 120; " TMUX " -S '%s' kill-server) >/dev/null 2>&1 & "
		 "s0=$(stty -g); for n in 1 2; do %s; rc=$?; "
		 "if [ \"$(stty -g)\" = \"$s0\" ]; then t=restored; else t=changed; fi; "
		 "echo \"TOP$n EXIT=$rc TTY=$t\"; read -r _; done; exec sleep 120",
		 tmux_sock, top_cmd);
	const char *argv[] = {TMUX, "-S", tmux_sock, "new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd,
			      NULL};
	const char *env[] = {"TERM=xterm-256color", NULL};
	int rc = itest_run(argv, env, NULL, NULL, 10000);
	CHECK(rc == 0, "tmux new-session failed (%d)", rc);

	char *s = wait_screen(session, "op-b", 5000);
	char *rows[64];
	size_t n = top_rows(s, rows, 64);
	CHECK(n == 3, "want 3 rows on screen, got %zu:\n%s", n, s);
	check_row(rows[0], "[####------]  40", "op-a", "review", "active");
	check_row(rows[1], "[#######---]  70", "op-c", "impl", "active");
	check_row(rows[2], "[##########] 100", "op-b", "impl", "active");
	free_rows(rows, n);
	CHECK(strstr(s, "workers 3  zombies 0") != NULL, "totals missing:\n%s", s);
	CHECK(strstr(s, "rows 1-3 of 3") != NULL, "position missing:\n%s", s);
	CHECK(strstr(s, "q quit") != NULL, "key line missing:\n%s", s);
	free(s);
	char *modes = pane_format(session, "#{alternate_on} #{cursor_flag}");
	CHECK(strcmp(modes, "1 0") == 0, "while running: want alternate screen, no cursor (1 0), got '%s'", modes);
	free(modes);

	/* s: sort by id. */
	tmux(NULL, "send-keys", "-t", session, "s", NULL, NULL);
	s = wait_screen(session, "sort: id", 3000);
	n = top_rows(s, rows, 64);
	CHECK(n == 3 && strstr(rows[0], " op-a ") && strstr(rows[1], " op-b ") && strstr(rows[2], " op-c "),
	      "sort by id wrong:\n%s", s);
	free_rows(rows, n);
	free(s);
	/* t: the first type (impl); r reverses. */
	tmux(NULL, "send-keys", "-t", session, "t", NULL, NULL);
	s = wait_screen(session, "type: impl", 3000);
	n = top_rows(s, rows, 64);
	CHECK(n == 2 && strstr(rows[0], " op-b ") && strstr(rows[1], " op-c "), "type filter impl wrong:\n%s", s);
	free_rows(rows, n);
	free(s);
	tmux(NULL, "send-keys", "-t", session, "r", NULL, NULL);
	s = wait_screen(session, "reversed", 3000);
	n = top_rows(s, rows, 64);
	CHECK(n == 2 && strstr(rows[0], " op-c ") && strstr(rows[1], " op-b "), "reverse wrong:\n%s", s);
	free_rows(rows, n);
	free(s);
	/* t again: review; then all. */
	tmux(NULL, "send-keys", "-t", session, "t", NULL, NULL);
	s = wait_screen(session, "type: review", 3000);
	free(s);
	tmux(NULL, "send-keys", "-t", session, "t", NULL, NULL);
	s = wait_screen(session, "type: all", 3000);
	free(s);

	/* q: exit 0, terminal restored, normal screen. */
	tmux(NULL, "send-keys", "-t", session, "q", NULL, NULL);
	s = wait_screen(session, "TOP1 EXIT=", 3000);
	CHECK(strstr(s, "TOP1 EXIT=0 TTY=restored") != NULL, "after q:\n%s", s);
	free(s);

	/* The second top (after Enter): SIGTERM restores the terminal too,
	 * then top dies of it. */
	tmux(NULL, "send-keys", "-t", session, "Enter", NULL, NULL);
	s = wait_screen(session, "op-b", 5000);
	free(s);
	char *pane = pane_format(session, "#{pane_pid}");
	char rel[128];
	snprintf(rel, sizeof rel, "/proc/%s/task/%s/children", pane, pane);
	free(pane);
	FILE *f = fopen(rel, "r");
	CHECK(f != NULL, "cannot read %s", rel);
	int top_pid = 0, child;
	while (top_pid == 0 && fscanf(f, "%d", &child) == 1)
		if (itest_wait_comm(child, "vigilctl", 0))
			top_pid = child;
	fclose(f);
	CHECK(top_pid > 1, "no vigilctl among the children of the pane's shell (%s)", rel);
	CHECK(kill(top_pid, SIGTERM) == 0, "kill(%d, SIGTERM): %s", top_pid, strerror(errno));
	s = wait_screen(session, "TOP2 EXIT=", 3000);
	CHECK(strstr(s, "TOP2 EXIT=143 TTY=restored") != NULL, "after SIGTERM:\n%s", s);
	free(s);
	modes = pane_format(session, "#{alternate_on} #{cursor_flag}");
	CHECK(strcmp(modes, "0 1") == 0, "after exit: want normal screen, cursor on (0 1), got '%s'", modes);
	free(modes);
}

/* ---- check -------------------------------------------------------------------- */

static int check_cmd(char **out, const char *a1, const char *a2, const char *a3, const char *a4)
{
	return ctl(out, "check", a1, a2, a3, a4);
}

static void test_check_healthy(void **state)
{
	(void)state;
	itest_write_policy(&H, 2, 6, 12, NULL);
	itest_vigild_start(&H);
	worker("h-1", "impl", "100");
	worker("h-2", "impl", "100");
	worker("h-3", "review", "100");
	wait_scored(3);
	char *out = NULL;
	int rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	CHECK(rc == 0, "healthy fleet: check exited %d: %s", rc, out);
	CHECK(strcmp(out, "VIGIL OK - 3 workers, 0 zombies, min health 100 | workers=3 zombies=0 min_health=100 "
			  "breakers_open=0\n") == 0,
	      "healthy fleet: unexpected line: %s", out);
	free(out);
	/* --max-stale that nobody exceeds. */
	rc = check_cmd(&out, "--max-stale", "5", NULL, NULL);
	CHECK(rc == 0, "--max-stale 5: exited %d: %s", rc, out);
	free(out);
	/* Usage errors: 3 UNKNOWN. */
	rc = check_cmd(&out, "--min-health", "abc", NULL, NULL);
	CHECK(rc == 3 && strncmp(out, "VIGIL UNKNOWN - ", 16) == 0, "bad --min-health: exit %d, %s", rc, out);
	free(out);
	rc = check_cmd(&out, "--no-such-option", NULL, NULL, NULL);
	CHECK(rc == 3, "unknown option: exit %d", rc);
	free(out);
	/* An open breaker is a WARNING. */
	itest_write_file(&H, "coordination/circuit-breakers/ghost.json",
			 "{\"worker_type\":\"ghost\",\"state\":\"open\",\"failure_count\":5}\n");
	rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	CHECK(rc == 1 && strncmp(out, "VIGIL WARNING - ", 16) == 0 && strstr(out, "breaker open: ghost") != NULL &&
		      strstr(out, "breakers_open=1") != NULL,
	      "open breaker: exit %d, %s", rc, out);
	free(out);
}

static void test_check_degraded(void **state)
{
	(void)state;
	/* min_health_score 5: a worker at 10 is degraded, not a zombie. */
	itest_write_file(&H, "coordination/config/heartbeat-policy.json",
			 "{\"heartbeat_interval_seconds\": 2, \"heartbeat_timeout_seconds\": 6,\n"
			 " \"zombie_threshold_seconds\": 12, \"health_score_decay_rate\": 5, \"min_health_score\": 5}\n");
	H.interval = 2;
	H.timeout = 6;
	H.zombie = 12;
	itest_vigild_start(&H);
	worker("d-ok", "impl", "100");
	worker("d-low", "impl", "10");
	wait_scored(2);
	char *out = NULL;
	int rc = check_cmd(&out, "--min-health", "50", NULL, NULL);
	CHECK(rc == 1, "degraded fleet: want 1, got %d: %s", rc, out);
	CHECK(strncmp(out, "VIGIL WARNING - 2 workers, 0 zombies, min health 10", 51) == 0 &&
		      strstr(out, "d-low (10)") != NULL && strstr(out, "| workers=2 zombies=0 min_health=10") != NULL,
	      "degraded fleet: unexpected line: %s", out);
	free(out);
	rc = check_cmd(&out, "--min-health", "10", NULL, NULL);
	CHECK(rc == 0, "--min-health 10: want 0, got %d: %s", rc, out);
	free(out);
}

static void test_check_zombie(void **state)
{
	(void)state;
	itest_write_policy(&H, 0.1, 0.3, 0.6, NULL);
	itest_vigild_start(&H);
	const char *fast[] = {"--beat-ms", "20", NULL};
	itest_worker_start(&H, "z-ok", "impl", "t", fast);
	pid_t hung = itest_worker_start(&H, "z-hung", "impl", "t", fast);
	wait_scored(2);
	itest_signal(hung, SIGSTOP);
	json_t *ev = itest_wait_event(&H, ZE, "zombie_detected", "z-hung", 5000);
	CHECK(ev != NULL, "no zombie_detected for z-hung");
	json_decref(ev);
	char *out = NULL;
	int rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	CHECK(rc == 2, "zombie fleet: want 2, got %d: %s", rc, out);
	CHECK(strncmp(out, "VIGIL CRITICAL - 2 workers, 1 zombie,", 37) == 0 && strstr(out, "z-hung") != NULL &&
		      strstr(out, "zombies=1") != NULL,
	      "zombie fleet: unexpected line: %s", out);
	free(out);
	/* Allowed zombies: WARNING. */
	rc = check_cmd(&out, "--max-zombies", "1", "--min-health", "0");
	CHECK(rc == 1 && strncmp(out, "VIGIL WARNING - ", 16) == 0, "--max-zombies 1: want 1, got %d: %s", rc, out);
	free(out);
	itest_signal(hung, SIGCONT);
}

static void test_check_vigild_down(void **state)
{
	(void)state;
	char *out = NULL;
	/* No segment at all. */
	int rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	CHECK(rc == 2 && strncmp(out, "VIGIL CRITICAL - no segment", 27) == 0, "no segment: exit %d, %s", rc, out);
	free(out);

	itest_write_policy(&H, 2, 6, 12, NULL);
	pid_t vd = itest_vigild_start(&H);
	worker("v-1", "impl", "100");
	wait_scored(1);
	rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	CHECK(rc == 0, "before the stop: want 0, got %d: %s", rc, out);
	free(out);

	/* Stopped (SIGSTOP): not ticking. */
	itest_signal(vd, SIGSTOP);
	rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	itest_signal(vd, SIGCONT);
	CHECK(rc == 2 && strstr(out, "not ticking") != NULL, "vigild SIGSTOPped: exit %d, %s", rc, out);
	free(out);

	/* Gone (SIGTERM, clean stop). */
	rc = itest_vigild_stop(&H, 10000);
	CHECK(rc == 0, "vigild stop exited %d", rc);
	rc = check_cmd(&out, NULL, NULL, NULL, NULL);
	CHECK(rc == 2 && strncmp(out, "VIGIL CRITICAL - ", 17) == 0 && strstr(out, "not running") != NULL,
	      "vigild stopped: exit %d, %s", rc, out);
	free(out);
	itest_track_segment(H.shm);
}

/* ---- metrics, Prometheus ---------------------------------------------------------- */

static void test_metrics_prom(void **state)
{
	(void)state;
	require_promtool();
	known_fleet();
	itest_write_file(&H, "coordination/circuit-breakers/ghost.json",
			 "{\"worker_type\":\"ghost\",\"state\":\"open\",\"failure_count\":5}\n");
	/* A snapshot that has seen the three workers. */
	int64_t deadline = itest_mono_ms() + 5000;
	for (;;) {
		json_t *m = itest_read_json(&H, "coordination/metrics/heartbeat-monitor-metrics.json");
		json_int_t wm = json_integer_value(json_object_get(m, "workers_monitored"));
		json_decref(m);
		if (wm == 3)
			break;
		CHECK(itest_mono_ms() < deadline, "workers_monitored did not reach 3");
		itest_sleep_ms(20);
	}
	char *out = NULL;
	int rc = ctl(&out, "metrics", "--prom", NULL, NULL, NULL);
	CHECK(rc == 0, "metrics --prom exited %d", rc);
	static const char *const want[] = {
		"# HELP vigil_heartbeats_received_total ",
		"# TYPE vigil_heartbeats_received_total counter\nvigil_heartbeats_received_total ",
		"# TYPE vigil_zombies_detected_total counter\nvigil_zombies_detected_total 0\n",
		"# TYPE vigil_heartbeat_timeouts_total counter\n",
		"# TYPE vigil_ticks_total counter\n",
		"# TYPE vigil_workers_monitored gauge\nvigil_workers_monitored 3\n",
		"# TYPE vigil_scan_time_last_seconds gauge\n",
		"# TYPE vigil_scan_time_max_seconds gauge\n",
		"# TYPE vigil_restarts_attempted_total counter\nvigil_restarts_attempted_total 0\n",
		"# TYPE vigil_restarts_succeeded_total counter\n",
		"# TYPE vigil_restarts_failed_total counter\n",
		"# TYPE vigil_restarts_denied_by_breaker_total counter\n",
		"# TYPE vigil_breakers_open gauge\n",
		"# TYPE vigil_tokens_allocated gauge\n",
		"# TYPE vigil_workers gauge\n",
		"vigil_workers{worker_type=\"impl\"} 2\n",
		"vigil_workers{worker_type=\"review\"} 1\n",
		"vigil_workers{worker_type=\"ghost\"} 0\n",
		"vigil_zombies{worker_type=\"impl\"} 0\n",
		"vigil_health_average{worker_type=\"impl\"} 85\n",
		"vigil_health_average{worker_type=\"review\"} 40\n",
		"vigil_breaker_open{worker_type=\"ghost\"} 1\n",
		"vigil_breaker_open{worker_type=\"impl\"} 0\n",
		"vigil_metrics_timestamp_seconds{source=\"heartbeat\"} ",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		CHECK(strstr(out, want[i]) != NULL, "metrics --prom lacks '%s':\n%s", want[i], out);
	CHECK(strstr(out, "_us") == NULL && strstr(out, "_ms") == NULL, "unit abbreviations in names:\n%s", out);
	char *report = NULL;
	rc = promtool_check(out, &report);
	CHECK(rc == 0, "promtool check metrics exited %d:\n%s\n---- input:\n%s", rc, report, out);
	free(report);
	free(out);

	/* --json: one object, autofix null until vigild writes it. */
	rc = ctl(&out, "metrics", "--json", NULL, NULL, NULL);
	CHECK(rc == 0, "metrics --json exited %d", rc);
	json_t *j = json_loads(out, 0, NULL);
	CHECK(json_is_object(j) && json_is_object(json_object_get(j, "heartbeat")) &&
		      json_is_object(json_object_get(j, "restart")) && json_object_get(j, "autofix") != NULL,
	      "metrics --json: %s", out);
	CHECK(json_integer_value(json_object_get(json_object_get(j, "heartbeat"), "workers_monitored")) == 3,
	      "metrics --json workers_monitored: %s", out);
	json_decref(j);
	free(out);
	/* Default: key: value under a heading per file. */
	rc = ctl(&out, "metrics", NULL, NULL, NULL, NULL);
	CHECK(rc == 0 && strstr(out, "heartbeat (coordination/metrics/heartbeat-monitor-metrics.json):\n") != NULL &&
		      strstr(out, "  workers_monitored: 3\n") != NULL &&
		      strstr(out, "  restarts_attempted: 0\n") != NULL,
	      "metrics: exit %d\n%s", rc, out);
	free(out);
	CHECK(ctl(NULL, "metrics", "--json", "--prom", NULL, NULL) == 2, "--json --prom must exit 2");
}

/* vigil_prom_render and vigil_prom_write without vigild. */
static void test_prom_render(void **state)
{
	(void)state;
	require_promtool();
	json_t *hb = json_pack("{s:i, s:i, s:i, s:f, s:i, s:s, s:I}", "workers_monitored", 2, "heartbeats_received",
			       1234, "stall_credit_ms_total", 1500, "scan_time_last_us", 12.5, "ticks", 99,
			       "zombies_detected", "not a number", "timestamp_ms", (json_int_t)1700000000123LL);
	json_t *rs = json_pack("{s:i, s:i}", "restarts_attempted", 3, "breakers_open", 1);
	json_t *af = json_pack("{s:i, s:i, s:i, s:i}", "patterns_detected", 4, "fixes_applied", 1, "fixes_dry_run", 2,
			       "fixes_rate_limited", 0);
	json_t *pt = json_pack("{s:{s:i, s:i, s:s, s:f}, s:{s:i, s:i, s:s}}", "we\"ird\\type\nx", "workers", 1,
			       "zombies", 0, "breaker_state", "open", "health_avg", 72.5, "alpha", "workers", 3, "zombies",
			       1, "breaker_state", "closed");
	assert_non_null(hb);
	assert_non_null(rs);
	assert_non_null(af);
	assert_non_null(pt);
	char *text = NULL;
	assert_int_equal(vigil_prom_render(hb, rs, af, pt, &text), 0);
	static const char *const want[] = {
		"# HELP vigil_workers_monitored ",
		"# TYPE vigil_workers_monitored gauge\nvigil_workers_monitored 2\n",
		"# TYPE vigil_heartbeats_received_total counter\nvigil_heartbeats_received_total 1234\n",
		"vigil_stall_credit_seconds_total 1.5\n",
		"vigil_scan_time_last_seconds 1.25e-05\n",
		"vigil_ticks_total 99\n",
		"vigil_restarts_attempted_total 3\n",
		"vigil_breakers_open 1\n",
		"vigil_patterns_detected_total 4\n",
		"vigil_fixes_applied_total 1\n",
		"vigil_fixes_dry_run_total 2\n",
		"vigil_fixes_rate_limited_total 0\n",
		"vigil_workers{worker_type=\"alpha\"} 3\n",
		"vigil_workers{worker_type=\"we\\\"ird\\\\type\\nx\"} 1\n",
		"vigil_zombies{worker_type=\"alpha\"} 1\n",
		"vigil_health_average{worker_type=\"we\\\"ird\\\\type\\nx\"} 72.5\n",
		"vigil_breaker_open{worker_type=\"alpha\"} 0\n",
		"vigil_breaker_open{worker_type=\"we\\\"ird\\\\type\\nx\"} 1\n",
		"vigil_metrics_timestamp_seconds{source=\"heartbeat\"} 1700000000.123\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (strstr(text, want[i]) == NULL)
			fail_msg("render lacks '%s':\n%s", want[i], text);
	if (strstr(text, "zombies_detected") != NULL)
		fail_msg("a non-number was rendered:\n%s", text);
	/* alpha sorts before the other type. */
	const char *a = strstr(text, "vigil_workers{worker_type=\"alpha\"}");
	const char *w = strstr(text, "vigil_workers{worker_type=\"we");
	if (a == NULL || w == NULL || a > w)
		fail_msg("per-type samples not sorted by type:\n%s", text);
	/* No health_avg for alpha: no sample. */
	if (strstr(text, "vigil_health_average{worker_type=\"alpha\"}") != NULL)
		fail_msg("health average without a value:\n%s", text);
	char *report = NULL;
	int rc = promtool_check(text, &report);
	if (rc != 0)
		fail_msg("promtool check metrics exited %d:\n%s\n---- input:\n%s", rc, report, text);
	free(report);

	/* Atomic write. */
	char dir[ITEST_PATH_MAX];
	itest_path(&H, "metrics", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(vigil_prom_write(dfd, text), 0);
	assert_int_equal(vigil_prom_write(dfd, text), 0); /* replaces */
	char *back = itest_read_file(&H, "metrics/vigil.prom");
	assert_non_null(back);
	assert_string_equal(back, text);
	free(back);
	char *ls = NULL;
	char script[ITEST_PATH_MAX + 32];
	snprintf(script, sizeof script, "ls -A '%s'", dir);
	assert_int_equal(sh(script, &ls), 0);
	if (strcmp(ls, "vigil.prom\n") != 0)
		fail_msg("temporary files left behind: %s", ls);
	free(ls);
	close(dfd);
	free(text);

	/* Nothing at all: empty text, still valid. */
	assert_int_equal(vigil_prom_render(NULL, NULL, NULL, NULL, &text), 0);
	assert_string_equal(text, "");
	free(text);
	json_decref(hb);
	json_decref(rs);
	json_decref(af);
	json_decref(pt);
}

/* ---- help, version, usage errors ------------------------------------------------------ */

/* Runs argv; exit code, stdout and stderr (malloc'd) into the outputs. */
static int run_cli(const char *const *argv, char **out, char **err)
{
	*out = *err = NULL;
	int rc = itest_run(argv, NULL, out, err, 20000);
	if (*out == NULL)
		*out = strdup("");
	if (*err == NULL)
		*err = strdup("");
	return rc;
}

/* Every command and subcommand answers --help on stdout with exit 0; both
 * programs answer --version; operands and options a command does not take
 * are usage errors (exit 2; 3 "UNKNOWN" for check, the plugin convention)
 * with the reason on stderr. */
static void test_cli_help_version_usage(void **state)
{
	(void)state;
	static const char *const cmds[] = {"status",	"top",		   "check",    "metrics",
					   "emit",	"spawn",	   "restart",  "cleanup-zombies",
					   "breakers", "breaker",	   "quarantine"};
	char *out, *err;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		const char *argv[] = {VIGILCTL_PATH, cmds[i], "--help", NULL};
		int rc = run_cli(argv, &out, &err);
		char want[64];
		snprintf(want, sizeof want, "usage: vigilctl %s", cmds[i]);
		CHECK(rc == 0 && strncmp(out, want, strlen(want)) == 0 && err[0] == '\0',
		      "vigilctl %s --help: exit %d, stdout '%.80s', stderr '%s'", cmds[i], rc, out, err);
		CHECK(strlen(out) > strlen(want) + 40, "vigilctl %s --help says too little: '%s'", cmds[i], out);
		free(out);
		free(err);
	}
	const char *const tops[][3] = {
		{VIGILCTL_PATH, "--help", "usage: vigilctl "},
		{VIGILCTL_PATH, "--version", "vigilctl "},
		{VIGILD_PATH, "--help", "usage: vigild "},
		{VIGILD_PATH, "--version", "vigild "},
	};
	for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
		const char *argv[] = {tops[i][0], tops[i][1], NULL};
		int rc = run_cli(argv, &out, &err);
		CHECK(rc == 0 && strncmp(out, tops[i][2], strlen(tops[i][2])) == 0,
		      "%s %s: exit %d, stdout '%.80s', stderr '%s'", tops[i][0], tops[i][1], rc, out, err);
		free(out);
		free(err);
	}
	/* Operands where none is taken. */
	static const char *const no_operand[] = {"status", "top", "metrics", "breakers"};
	for (size_t i = 0; i < sizeof no_operand / sizeof no_operand[0]; i++) {
		const char *argv[] = {VIGILCTL_PATH, no_operand[i], "--home", H.dir, "extra", NULL};
		int rc = run_cli(argv, &out, &err);
		CHECK(rc == 2 && strstr(err, "unexpected argument 'extra'") != NULL,
		      "vigilctl %s extra: exit %d, stderr '%s'", no_operand[i], rc, err);
		free(out);
		free(err);
	}
	{
		const char *argv[] = {VIGILCTL_PATH, "check", "--home", H.dir, "extra", NULL};
		int rc = run_cli(argv, &out, &err);
		CHECK(rc == 3 && strncmp(out, "VIGIL UNKNOWN", 13) == 0 && strstr(err, "unexpected argument") != NULL,
		      "vigilctl check extra: exit %d, stdout '%s', stderr '%s'", rc, out, err);
		free(out);
		free(err);
	}
	/* An unknown option, an option without its value, an unknown command. */
	const char *const bad[][4] = {
		{"status", "--bogus", "unknown option '--bogus'"},
		{"restart", "--reason", "needs an argument"},
		{"no-such-command", NULL, "no-such-command"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *argv[] = {VIGILCTL_PATH, bad[i][0], bad[i][1], NULL};
		int rc = run_cli(argv, &out, &err);
		CHECK(rc == 2 && strstr(err, bad[i][2]) != NULL, "vigilctl %s %s: exit %d, stderr '%s'", bad[i][0],
		      bad[i][1] != NULL ? bad[i][1] : "", rc, err);
		free(out);
		free(err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prom_render, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_zombie_and_breaker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_tmux, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_healthy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_degraded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_zombie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_vigild_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_prom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_help_version_usage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
