/*
 * test_breaker.c - unit tests of the restart history (reader, writer,
 * request lookup) and the circuit breakers.
 *
 * Every test runs in its own mkdtemp directory and passes the time
 * explicitly (now_ms), so the breaker's timers are checked to the
 * millisecond without sleeping.  The runbook's "Test Circuit Breaker" is
 * replayed byte for byte: six heredoc lines appended with plain write(),
 * then the breaker file is read with jansson and, when jq is installed,
 * with the runbook's own jq expressions.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "breaker.h"
#include "history.h"
#include "policy.h"
#include "util.h"

#define T0 1795773600000ull /* 2026-11-27T10:00:00Z */
#define HIST VIGIL_HISTORY_FILE

struct fixture {
	char dir[64];
	int dirfd;      /* stands for coordination/metrics */
	int cbfd;       /* coordination/circuit-breakers */
	struct vigil_history_reader *rd;
	struct vigil_breakers br;
	struct vigil_restart_policy pol;
	/* callback state */
	uint64_t now_ms;
	uint32_t records, bad, opened;
	uint64_t bad_lines[32];
	char last_why[256];
	struct vigil_history_record last;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vigil-breaker-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd >= 0);
	f->cbfd = vigil_fs_open_dir(f->dirfd, VIGIL_BREAKERS_DIR, true);
	assert_true(f->cbfd >= 0);
	f->rd = malloc(sizeof *f->rd);
	assert_non_null(f->rd);
	vigil_history_reader_init(f->rd);
	assert_int_equal(vigil_breakers_init(&f->br, 1024), 0);
	vigil_policy_restart_defaults(&f->pol);
	assert_true(f->pol.circuit_breaker_enabled);
	assert_int_equal(f->pol.circuit_breaker_threshold, 5);
	f->now_ms = T0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	vigil_breakers_destroy(&f->br);
	free(f->rd);
	close(f->cbfd);
	close(f->dirfd);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers ----------------------------------------------------------------- */

/* As `cat >> FILE << EOF ... EOF` does: open O_APPEND, one write, close. */
static void append_raw(struct fixture *f, const void *data, size_t len)
{
	int fd = openat(f->dirfd, HIST, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void append_str(struct fixture *f, const char *s)
{
	append_raw(f, s, strlen(s));
}

/* The runbook's heredoc line, with $(date -u +%Y-%m-%dT%H:%M:%SZ). */
static void heredoc_line(struct fixture *f, const char *type, const char *result)
{
	char iso[21], line[256];
	vigil_iso8601(vigil_unix_ms(), iso);
	snprintf(line, sizeof line, "{\"worker_type\":\"%s\",\"result\":\"%s\",\"timestamp\":\"%s\"}\n", type,
		 result, iso);
	append_str(f, line);
}

static void on_record(void *ctx, const struct vigil_history_record *rec)
{
	struct fixture *f = ctx;
	f->records++;
	f->last = *rec;
	f->opened += vigil_breakers_record(&f->br, &f->pol, rec, f->now_ms);
}

static void on_bad(void *ctx, uint64_t lineno, const char *why)
{
	struct fixture *f = ctx;
	if (f->bad < 32)
		f->bad_lines[f->bad] = lineno;
	f->bad++;
	snprintf(f->last_why, sizeof f->last_why, "%s", why);
}

static int read_hist(struct fixture *f, uint32_t max_lines)
{
	return vigil_history_read(f->rd, f->dirfd, HIST, max_lines, on_record, on_bad, f);
}

static void feed(struct fixture *f, const char *type, bool success, uint64_t now_ms)
{
	struct vigil_history_record rec;
	memset(&rec, 0, sizeof rec);
	snprintf(rec.worker_type, sizeof rec.worker_type, "%s", type);
	rec.success = success;
	f->now_ms = now_ms;
	f->opened += vigil_breakers_record(&f->br, &f->pol, &rec, now_ms);
}

static const struct vigil_breaker *find(struct fixture *f, const char *type)
{
	const struct vigil_breaker *b = vigil_breakers_find(&f->br, type);
	assert_non_null(b);
	return b;
}

static json_t *load_breaker_file(struct fixture *f, const char *type)
{
	char path[256];
	json_error_t err;
	snprintf(path, sizeof path, "%s/%s/%s.json", f->dir, VIGIL_BREAKERS_DIR, type);
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (doc == NULL)
		fail_msg("%s: %s", path, err.text);
	assert_true(json_is_object(doc));
	return doc;
}

static const char *jstr(const json_t *doc, const char *key)
{
	const json_t *v = json_object_get(doc, key);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_int_t jint(const json_t *doc, const char *key)
{
	const json_t *v = json_object_get(doc, key);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

/* ---- the runbook's "Test Circuit Breaker" ------------------------------------ */

static void runbook_breaker_test(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 6; i++)
		heredoc_line(f, "test-worker", "failure");

	/* One line per read, one second apart: the 5th line opens it. */
	for (int i = 1; i <= 6; i++) {
		f->now_ms = T0 + (uint64_t)i * 1000;
		assert_int_equal(read_hist(f, 1), 1);
		const struct vigil_breaker *b = find(f, "test-worker");
		assert_int_equal(b->failure_count, i);
		assert_int_equal(b->state, i < 5 ? VIGIL_BREAKER_CLOSED : VIGIL_BREAKER_OPEN);
		assert_int_equal(f->opened, i < 5 ? 0 : 1);
		assert_true(f->last.timestamp_ms > 0); /* parsed from "timestamp" */
	}
	assert_int_equal(read_hist(f, 100), 0);
	assert_false(f->rd->more);
	assert_int_equal(f->bad, 0);
	const struct vigil_breaker *b = find(f, "test-worker");
	assert_int_equal(b->opened_at_ms, T0 + 5000);

	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + 7000), VIGIL_BREAKER_DENY);
	assert_int_equal(b->denied, 1);
	assert_int_equal(vigil_breakers_open_count(&f->br), 1);

	assert_int_equal(vigil_breakers_write_dirty(&f->br, f->cbfd, &f->pol, T0 + 7000), 0);
	assert_false(b->dirty);
	json_t *doc = load_breaker_file(f, "test-worker");
	assert_string_equal(jstr(doc, "worker_type"), "test-worker");
	assert_string_equal(jstr(doc, "state"), "open");
	assert_int_equal(jint(doc, "failure_count"), 6);
	assert_string_equal(jstr(doc, "opened_at"), "2026-11-27T10:00:05Z");
	assert_int_equal(jint(doc, "opened_at_ms"), T0 + 5000);
	assert_string_equal(jstr(doc, "reset_at"), "2026-11-27T10:05:05Z");
	assert_int_equal(jint(doc, "threshold"), 5);
	assert_int_equal(jint(doc, "denied_restarts"), 1);
	assert_string_equal(jstr(doc, "timestamp"), "2026-11-27T10:00:07Z");
	assert_int_equal(jint(doc, "timestamp_ms"), T0 + 7000);
	json_decref(doc);

	/* Nothing but the documents in the directory (atomic replace). */
	struct stat st;
	assert_int_equal(fstatat(f->cbfd, "test-worker.json", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));

	/* The runbook's jq expressions, when jq is here. */
	if (access("/usr/bin/jq", X_OK) == 0) {
		char cmd[512], out[128] = "";
		snprintf(cmd, sizeof cmd,
			 "cb=%s/%s/test-worker.json; "
			 "echo \"$(jq -r '.worker_type' \"$cb\"): $(jq -r '.state' \"$cb\") "
			 "($(jq -r '.failure_count' \"$cb\") failures)\"",
			 f->dir, VIGIL_BREAKERS_DIR);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		assert_non_null(fgets(out, sizeof out, p));
		assert_int_equal(pclose(p), 0);
		assert_string_equal(out, "test-worker: open (6 failures)\n");
	}
}

/* ---- half-open ------------------------------------------------------------------ */

static void open_test_worker(struct fixture *f, uint64_t at_ms)
{
	for (int i = 0; i < 5; i++)
		feed(f, "test-worker", false, at_ms);
	assert_int_equal(find(f, "test-worker")->state, VIGIL_BREAKER_OPEN);
	assert_int_equal(f->opened, 1);
}

static void half_open_trial_success(void **state)
{
	struct fixture *f = *state;
	const uint64_t reset = 300000;
	open_test_worker(f, T0);
	const struct vigil_breaker *b = find(f, "test-worker");

	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + reset - 1), VIGIL_BREAKER_DENY);
	assert_int_equal(b->state, VIGIL_BREAKER_OPEN);

	/* tick alone moves it, so the file says half_open */
	assert_int_equal(vigil_breakers_write_dirty(&f->br, f->cbfd, &f->pol, T0), 0);
	vigil_breakers_tick(&f->br, &f->pol, T0 + reset);
	assert_int_equal(b->state, VIGIL_BREAKER_HALF_OPEN);
	assert_true(b->dirty);
	assert_int_equal(vigil_breakers_write_dirty(&f->br, f->cbfd, &f->pol, T0 + reset), 0);
	json_t *doc = load_breaker_file(f, "test-worker");
	assert_string_equal(jstr(doc, "state"), "half_open");
	json_decref(doc);

	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + reset), VIGIL_BREAKER_TRIAL);
	assert_true(b->trial_in_flight);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + reset + 1), VIGIL_BREAKER_DENY);
	assert_int_equal(b->denied, 2);

	feed(f, "test-worker", true, T0 + reset + 5000);
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	assert_int_equal(b->failure_count, 0);
	assert_int_equal(b->opened_at_ms, 0);
	assert_false(b->trial_in_flight);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + reset + 6000), VIGIL_BREAKER_ALLOW);
	assert_int_equal(vigil_breakers_open_count(&f->br), 0);

	assert_int_equal(vigil_breakers_write_dirty(&f->br, f->cbfd, &f->pol, T0 + reset + 6000), 0);
	doc = load_breaker_file(f, "test-worker");
	assert_string_equal(jstr(doc, "state"), "closed");
	assert_int_equal(jint(doc, "failure_count"), 0);
	assert_true(json_is_null(json_object_get(doc, "opened_at")));
	assert_true(json_is_null(json_object_get(doc, "opened_at_ms")));
	assert_true(json_is_null(json_object_get(doc, "reset_at")));
	json_decref(doc);
}

static void half_open_trial_failure(void **state)
{
	struct fixture *f = *state;
	const uint64_t reset = 300000;
	open_test_worker(f, T0);
	const struct vigil_breaker *b = find(f, "test-worker");

	uint64_t t = T0 + reset + 10;
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t), VIGIL_BREAKER_TRIAL);
	feed(f, "test-worker", false, t + 2000);
	assert_int_equal(b->state, VIGIL_BREAKER_OPEN);
	assert_int_equal(b->opened_at_ms, t + 2000);
	assert_int_equal(b->failure_count, 6);
	assert_int_equal(f->opened, 2); /* announced again */
	assert_false(b->trial_in_flight);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t + 2000 + reset - 1),
			 VIGIL_BREAKER_DENY);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t + 2000 + reset),
			 VIGIL_BREAKER_TRIAL);
}

/* Failures while open count but do not move opened_at; a success closes. */
static void open_failures_keep_opened_at(void **state)
{
	struct fixture *f = *state;
	open_test_worker(f, T0);
	const struct vigil_breaker *b = find(f, "test-worker");
	for (int i = 0; i < 10; i++)
		feed(f, "test-worker", false, T0 + 1000 * (uint64_t)(i + 1));
	assert_int_equal(b->failure_count, 15);
	assert_int_equal(b->opened_at_ms, T0);
	assert_int_equal(f->opened, 1);
	feed(f, "test-worker", true, T0 + 20000);
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	assert_int_equal(b->failure_count, 0);
}

/* A trial nobody reports on, or one given back, frees the half-open state. */
static void trial_cancel_and_timeout(void **state)
{
	struct fixture *f = *state;
	const uint64_t reset = 300000;
	open_test_worker(f, T0);
	const struct vigil_breaker *b = find(f, "test-worker");
	uint64_t t = T0 + reset;
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t), VIGIL_BREAKER_TRIAL);
	vigil_breakers_trial_cancel(&f->br, "test-worker");
	assert_false(b->trial_in_flight);
	assert_int_equal(b->state, VIGIL_BREAKER_HALF_OPEN);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t + 1), VIGIL_BREAKER_TRIAL);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker",
					      t + 1 + f->br.trial_timeout_ms - 1),
			 VIGIL_BREAKER_DENY);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t + 1 + f->br.trial_timeout_ms),
			 VIGIL_BREAKER_TRIAL);
}

/* vigild's own line for a refused restart is not a failure of the type:
 * read back during a trial it must neither count nor re-open. */
static void denial_lines_ignored(void **state)
{
	struct fixture *f = *state;
	const uint64_t reset = 300000;
	open_test_worker(f, T0);
	const struct vigil_breaker *b = find(f, "test-worker");
	uint64_t t = T0 + reset;
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t), VIGIL_BREAKER_TRIAL);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", t), VIGIL_BREAKER_DENY);

	int fd = vigil_fs_open_append(f->dirfd, HIST);
	assert_true(fd >= 0);
	struct vigil_history_record r;
	memset(&r, 0, sizeof r);
	strcpy(r.worker_id, "worker-test-worker-002");
	strcpy(r.worker_type, "test-worker");
	strcpy(r.reason, VIGIL_BREAKER_DENIED_REASON);
	r.timestamp_ms = t;
	assert_int_equal(vigil_history_append(fd, &r, 0, NULL), 0);
	f->now_ms = t + 1;
	assert_int_equal(read_hist(f, 10), 1);
	assert_int_equal(b->state, VIGIL_BREAKER_HALF_OPEN);
	assert_true(b->trial_in_flight);
	assert_int_equal(b->failure_count, 5);
	assert_int_equal(b->opened_at_ms, T0);

	/* the trial's own failure does re-open */
	strcpy(r.reason, "spawn_failed");
	assert_int_equal(vigil_history_append(fd, &r, 0, NULL), 0);
	f->now_ms = t + 2;
	assert_int_equal(read_hist(f, 10), 1);
	assert_int_equal(b->state, VIGIL_BREAKER_OPEN);
	assert_int_equal(b->opened_at_ms, t + 2);
	assert_int_equal(b->failure_count, 6);
	assert_int_equal(f->opened, 2);
	close(fd);
}

static void operator_reset(void **state)
{
	struct fixture *f = *state;
	open_test_worker(f, T0);
	const struct vigil_breaker *b = find(f, "test-worker");
	vigil_breakers_reset(&f->br, "test-worker", T0 + 1);
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	assert_int_equal(b->failure_count, 0);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + 2), VIGIL_BREAKER_ALLOW);
	for (int i = 0; i < 4; i++)
		feed(f, "test-worker", false, T0 + 3);
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	feed(f, "test-worker", false, T0 + 4);
	assert_int_equal(b->state, VIGIL_BREAKER_OPEN);
}

/* ---- counting ------------------------------------------------------------------ */

static void success_resets_count(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 4; i++)
		heredoc_line(f, "test-worker", "failure");
	heredoc_line(f, "test-worker", "success");
	for (int i = 0; i < 4; i++)
		heredoc_line(f, "test-worker", "failure");
	assert_int_equal(read_hist(f, 100), 9);
	const struct vigil_breaker *b = find(f, "test-worker");
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	assert_int_equal(b->failure_count, 4);
	assert_true(b->last_success_ms > 0);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0), VIGIL_BREAKER_ALLOW);
	/* other types do not interfere */
	heredoc_line(f, "other", "failure");
	heredoc_line(f, "other", "success");
	heredoc_line(f, "test-worker", "failure");
	assert_int_equal(read_hist(f, 100), 3);
	assert_int_equal(b->state, VIGIL_BREAKER_OPEN);
	assert_int_equal(b->failure_count, 5);
	assert_int_equal(find(f, "other")->failure_count, 0);
}

static void disabled_always_allows(void **state)
{
	struct fixture *f = *state;
	f->pol.circuit_breaker_enabled = false;
	for (int i = 0; i < 12; i++)
		feed(f, "test-worker", false, T0 + (uint64_t)i);
	const struct vigil_breaker *b = find(f, "test-worker");
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	assert_int_equal(b->failure_count, 12);
	assert_int_equal(f->opened, 0);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + 100), VIGIL_BREAKER_ALLOW);
	assert_int_equal(b->denied, 0);
	assert_int_equal(vigil_breakers_write_dirty(&f->br, f->cbfd, &f->pol, T0 + 100), 0);
	json_t *doc = load_breaker_file(f, "test-worker");
	assert_string_equal(jstr(doc, "state"), "closed");
	assert_int_equal(jint(doc, "failure_count"), 12);
	assert_true(json_is_false(json_object_get(doc, "enabled")));
	json_decref(doc);

	/* enabled again (policy reload): the count already past the threshold opens it */
	f->pol.circuit_breaker_enabled = true;
	assert_int_equal(vigil_breakers_tick(&f->br, &f->pol, T0 + 200), 1);
	assert_int_equal(b->state, VIGIL_BREAKER_OPEN);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + 201), VIGIL_BREAKER_DENY);
	/* and disabled again: closed, count kept */
	f->pol.circuit_breaker_enabled = false;
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "test-worker", T0 + 202), VIGIL_BREAKER_ALLOW);
	assert_int_equal(b->state, VIGIL_BREAKER_CLOSED);
	assert_int_equal(b->failure_count, 12);
}

/* ---- bad input ------------------------------------------------------------------ */

static void garbage_lines_skipped(void **state)
{
	struct fixture *f = *state;
	static const char nul_mid[] = "{\"worker_type\":\"g\",\"re\0sult\":\"failure\"}\n";
	static const char nul_tail[] = "{\"worker_type\":\"g\",\"result\":\"failure\"}\0garbage\n";
	heredoc_line(f, "g", "failure");                                          /* 1 ok */
	append_str(f, "this is not json\n");                                     /* 2 */
	append_str(f, "[{\"worker_type\":\"g\",\"result\":\"failure\"}]\n");     /* 3 */
	append_raw(f, nul_mid, sizeof nul_mid - 1);                              /* 4 */
	append_raw(f, nul_tail, sizeof nul_tail - 1);                            /* 5 */
	append_str(f, "{\"worker_type\":\"g\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n"); /* 6 */
	append_str(f, "{\"worker_type\":\"g\",\"result\":\"maybe\"}\n");         /* 7 */
	append_str(f, "{\"worker_type\":\"../x\",\"result\":\"failure\"}\n");    /* 8 */
	size_t big = 100 * 1024;
	char *line = malloc(big + 64);
	assert_non_null(line);
	int n = snprintf(line, 64, "{\"worker_type\":\"g\",\"result\":\"failure\",\"pad\":\"");
	memset(line + n, 'a', big);
	memcpy(line + n + big, "\"}\n", 3);
	append_raw(f, line, (size_t)n + big + 3);                                /* 9 */
	free(line);
	append_str(f, "\n");                                                     /* 10 blank: ignored */
	append_str(f, "{\"worker_type\":\"g\",\"result\":\"failure\",\"result\":\"success\"}\n"); /* 11 dup */
	append_str(f, "{\"worker_type\":\"g\",\"result\":\"failure\"} {}\n");    /* 12 trailing */
	append_str(f, "{\"worker_type\":\".hidden\",\"result\":\"failure\"}\n"); /* 13 */
	append_str(f, "{\"worker_type\":\"g\",\"result\":\"failure\",\"worker_id\":\"a/b\"}\n"); /* 14 */
	append_str(f, "{\"worker_type\":\"g\",\"result\":\"failure\",\"attempt\":-1}\n"); /* 15 */
	append_str(f, "{\"worker_type\":\"g\",\"result\":\"failure\",\"worker_id\":\"\",\"reason\":null}\n"); /* 16 ok */
	heredoc_line(f, "g", "failure");                                          /* 17 ok */

	assert_int_equal(read_hist(f, 1000), 3);
	static const uint64_t want[] = {2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15};
	assert_int_equal(f->bad, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_int_equal(f->bad_lines[i], want[i]);
	assert_int_equal(f->rd->lines_bad, f->bad);
	assert_int_equal(f->rd->lines_ok, 3);
	assert_int_equal(f->rd->lineno, 17);
	assert_int_equal(find(f, "g")->failure_count, 3);
	assert_null(vigil_breakers_find(&f->br, "../x"));

	/* the reasons say what was wrong */
	char why[256];
	struct vigil_history_record rec;
	assert_int_equal(vigil_history_parse(nul_tail, sizeof nul_tail - 2, &rec, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "NUL"));
	const char *maybe = "{\"worker_type\":\"g\",\"result\":\"maybe\"}";
	assert_int_equal(vigil_history_parse(maybe, strlen(maybe), &rec, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "result"));
	const char *arr = "[1]";
	assert_int_equal(vigil_history_parse(arr, strlen(arr), &rec, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "object"));
	const char *ctl = "\x01\x02{";
	assert_int_equal(vigil_history_parse(ctl, strlen(ctl), &rec, why, sizeof why), -EINVAL);
	for (const char *p = why; *p; p++)
		assert_true(*p >= 0x20 && *p <= 0x7e);
}

static void partial_line_waits(void **state)
{
	struct fixture *f = *state;
	heredoc_line(f, "p", "failure");
	append_str(f, "{\"worker_type\":\"p\",\"result\":\"fail");
	assert_int_equal(read_hist(f, 100), 1);
	assert_int_equal(read_hist(f, 100), 0); /* still unterminated: not a record */
	assert_int_equal(f->bad, 0);
	assert_int_equal(find(f, "p")->failure_count, 1);
	append_str(f, "ure\"}\n");
	assert_int_equal(read_hist(f, 100), 1);
	assert_int_equal(find(f, "p")->failure_count, 2);
	assert_false(f->last.success);
	assert_int_equal(f->rd->lineno, 2);

	/* an over-long partial line is dropped whole once it ends */
	char *chunk = malloc(40000);
	assert_non_null(chunk);
	memset(chunk, 'x', 40000);
	append_raw(f, chunk, 40000);
	assert_int_equal(read_hist(f, 100), 0);
	append_raw(f, chunk, 40000);
	assert_int_equal(read_hist(f, 100), 0);
	append_str(f, "\n");
	heredoc_line(f, "p", "failure");
	assert_int_equal(read_hist(f, 100), 1);
	assert_int_equal(f->bad, 1);
	assert_int_equal(f->bad_lines[0], 3);
	assert_non_null(strstr(f->last_why, "longer"));
	assert_int_equal(find(f, "p")->failure_count, 3);
	free(chunk);
}

static void truncation_restarts(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 3; i++)
		heredoc_line(f, "t", "failure");
	assert_int_equal(read_hist(f, 100), 3);
	uint64_t before = f->rd->offset;
	assert_true(before > 0);

	/* rewritten shorter, same inode */
	int fd = openat(f->dirfd, HIST, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	heredoc_line(f, "t", "success");
	assert_int_equal(read_hist(f, 100), 1);
	assert_int_equal(f->rd->restarts, 1);
	assert_true(f->last.success);
	assert_int_equal(f->rd->lineno, 1);
	assert_int_equal(find(f, "t")->failure_count, 0);

	/* replaced by rename (rotation), even when not shorter */
	char buf[4096] = "";
	for (int i = 0; i < 3; i++)
		strcat(buf, "{\"worker_type\":\"t\",\"result\":\"failure\",\"timestamp\":\"2026-11-27T10:00:00Z\"}\n");
	assert_int_equal(vigil_fs_replace(f->dirfd, HIST, buf, strlen(buf)), 0);
	assert_int_equal(read_hist(f, 100), 3);
	assert_int_equal(f->rd->restarts, 2);
	assert_int_equal(f->last.timestamp_ms, T0);
	assert_int_equal(find(f, "t")->failure_count, 3);

	/* missing file: nothing, no error, state kept */
	assert_int_equal(unlinkat(f->dirfd, HIST, 0), 0);
	assert_int_equal(read_hist(f, 100), 0);
}

static void budget_and_special_files(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 10; i++)
		heredoc_line(f, "b", "failure");
	assert_int_equal(read_hist(f, 3), 3);
	assert_true(f->rd->more);
	assert_int_equal(read_hist(f, 0), 0);
	int total = 3, guard = 0;
	while (f->rd->more && guard++ < 10)
		total += read_hist(f, 3);
	assert_int_equal(total, 10);
	assert_false(f->rd->more);

	/* a symlink is not followed; a FIFO does not block */
	assert_int_equal(symlinkat("/etc/passwd", f->dirfd, "link.jsonl"), 0);
	assert_int_equal(vigil_history_read(f->rd, f->dirfd, "link.jsonl", 10, on_record, on_bad, f), -ELOOP);
	assert_int_equal(mkfifoat(f->dirfd, "fifo.jsonl", 0600), 0);
	assert_int_equal(vigil_history_read(f->rd, f->dirfd, "fifo.jsonl", 10, on_record, on_bad, f), -EINVAL);
	assert_int_equal(vigil_history_has_request(f->dirfd, "fifo.jsonl", "r"), -EINVAL);
}

/* ---- writer -------------------------------------------------------------------- */

static void append_round_trip(void **state)
{
	struct fixture *f = *state;
	int fd = vigil_fs_open_append(f->dirfd, HIST);
	assert_true(fd >= 0);
	struct vigil_history_record r;
	memset(&r, 0, sizeof r);
	strcpy(r.worker_id, "worker-implementation-001");
	strcpy(r.worker_type, "implementation");
	strcpy(r.task_id, "task-42");
	strcpy(r.request_id, "worker-implementation-001-restart.json@1795773600000");
	strcpy(r.reason, "heartbeat_timeout");
	r.success = true;
	r.attempt = 2;
	r.timestamp_ms = T0 + 123;
	json_t *extra = json_pack("{s:i, s:s, s:s}", "exit_code", 1, "result", "overridden?", "timestamp", "x");
	assert_non_null(extra);
	assert_int_equal(vigil_history_append(fd, &r, 0.05, extra), 0);
	json_decref(extra);

	char *text;
	size_t len;
	assert_int_equal(vigil_fs_read(f->dirfd, HIST, 1 << 20, &text, &len), 0);
	assert_true(len > 0 && text[len - 1] == '\n');
	assert_ptr_equal(memchr(text, '\n', len), text + len - 1); /* exactly one line */
	assert_non_null(strstr(text, "\"result\":\"success\""));
	assert_non_null(strstr(text, "\"timestamp\":\"2026-11-27T10:00:00Z\""));
	assert_non_null(strstr(text, "\"timestamp_ms\":1795773600123"));
	assert_non_null(strstr(text, "\"delay_seconds\":0.05,"));
	assert_non_null(strstr(text, "\"exit_code\":1"));
	assert_null(strstr(text, "overridden"));
	assert_null(strstr(text, ": "));
	assert_null(strstr(text, ", "));
	free(text);

	assert_int_equal(read_hist(f, 10), 1);
	assert_string_equal(f->last.worker_id, r.worker_id);
	assert_string_equal(f->last.worker_type, r.worker_type);
	assert_string_equal(f->last.task_id, r.task_id);
	assert_string_equal(f->last.request_id, r.request_id);
	assert_string_equal(f->last.reason, r.reason);
	assert_true(f->last.success);
	assert_int_equal(f->last.attempt, 2);
	assert_int_equal(f->last.timestamp_ms, T0 + 123);

	/* a failure with no ids, integral delay, no extra */
	struct vigil_history_record r2;
	memset(&r2, 0, sizeof r2);
	strcpy(r2.worker_type, "implementation");
	strcpy(r2.reason, "max_retries_exceeded");
	r2.attempt = 3;
	assert_int_equal(vigil_history_append(fd, &r2, 240, NULL), 0);
	assert_int_equal(read_hist(f, 10), 1);
	assert_false(f->last.success);
	assert_string_equal(f->last.worker_id, "");
	assert_string_equal(f->last.request_id, "");
	assert_true(f->last.timestamp_ms >= vigil_unix_ms() - 60000); /* now */
	assert_int_equal(f->bad, 0);

	/* refused: bad names, non-finite delay, a line too long for readers */
	struct vigil_history_record bad = r2;
	strcpy(bad.worker_type, "../etc");
	assert_int_equal(vigil_history_append(fd, &bad, 1, NULL), -EINVAL);
	bad = r2;
	strcpy(bad.worker_id, ".x");
	assert_int_equal(vigil_history_append(fd, &bad, 1, NULL), -EINVAL);
	assert_int_equal(vigil_history_append(fd, &r2, 0.0 / 0.0, NULL), -EINVAL);
	char *huge = malloc(70000);
	assert_non_null(huge);
	memset(huge, 'h', 69999);
	huge[69999] = '\0';
	extra = json_pack("{s:s}", "blob", huge);
	free(huge);
	assert_int_equal(vigil_history_append(fd, &r2, 1, extra), -E2BIG);
	json_decref(extra);
	close(fd);

	/* exactly-once lookups */
	assert_int_equal(vigil_history_has_request(f->dirfd, HIST, r.request_id), 1);
	assert_int_equal(vigil_history_has_request(f->dirfd, HIST, "worker-implementation-001-restart.json"), 0);
	assert_int_equal(vigil_history_has_request(f->dirfd, HIST, "nope"), 0);
	assert_int_equal(vigil_history_has_request(f->dirfd, HIST, ""), -EINVAL);
	assert_int_equal(vigil_history_has_request(f->dirfd, "missing.jsonl", "nope"), 0);
	/* a bad line carrying the id does not count; an escaped one does */
	append_str(f, "{\"worker_type\":\"x\",\"result\":\"maybe\",\"request_id\":\"req-bad\"}\n");
	assert_int_equal(vigil_history_has_request(f->dirfd, HIST, "req-bad"), 0);
	append_str(f, "{\"worker_type\":\"x\",\"result\":\"failure\",\"request_id\":\"req\\u002desc\"}\n");
	assert_int_equal(vigil_history_has_request(f->dirfd, HIST, "req-esc"), 1);
}

static void iso8601_parse(void **state)
{
	(void)state;
	uint64_t ms;
#define ISO(s) vigil_history_parse_iso8601(s, strlen(s), &ms)
	assert_int_equal(ISO("2026-11-27T10:00:00Z"), 0);
	assert_int_equal(ms, T0);
	assert_int_equal(ISO("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(ISO("2024-02-29T23:59:59.5Z"), 0);
	assert_int_equal(ms, 1709251199500ull);
	assert_int_equal(ISO("2026-11-27T10:00:00.123456+00:00"), 0);
	assert_int_equal(ms, T0 + 123);
	assert_int_equal(ISO("2023-02-29T00:00:00Z"), -EINVAL);
	assert_int_equal(ISO("2026-11-27 10:00:00Z"), -EINVAL);
	assert_int_equal(ISO("2026-11-27T10:00:00"), -EINVAL);
	assert_int_equal(ISO("2026-11-27T24:00:00Z"), -EINVAL);
	assert_int_equal(ISO("2026-11-27T10:00:00+01:00"), -EINVAL);
	assert_int_equal(ISO("1969-12-31T23:59:59Z"), -EINVAL);
	assert_int_equal(ISO("2026-11-27T10:00:00.Z"), -EINVAL);
	assert_int_equal(ISO("Fri Nov 27 10:00:00 UTC 2026"), -EINVAL);
	for (uint64_t t = 0; t < 4102444800000ull; t += 86399999ull * 7) {
		char iso[21];
		vigil_iso8601(t, iso);
		assert_int_equal(ISO(iso), 0);
		assert_int_equal(ms, t / 1000 * 1000);
	}
#undef ISO
	/* a line with an unreadable timestamp still counts, with time 0 */
	struct vigil_history_record rec;
	const char *l = "{\"worker_type\":\"x\",\"result\":\"failure\",\"timestamp\":\"yesterday\"}";
	assert_int_equal(vigil_history_parse(l, strlen(l), &rec, NULL, 0), 0);
	assert_int_equal(rec.timestamp_ms, 0);
}

/* ---- many types ---------------------------------------------------------------- */

static void many_types_overflow(void **state)
{
	struct fixture *f = *state;
	vigil_breakers_destroy(&f->br);
	assert_int_equal(vigil_breakers_init(&f->br, 0), -EINVAL);
	assert_int_equal(vigil_breakers_init(&f->br, VIGIL_BREAKERS_CAPACITY_MAX + 1), -EINVAL);
	assert_int_equal(vigil_breakers_init(&f->br, 8), 0);
	char type[65];
	for (int i = 0; i < 100; i++) {
		snprintf(type, sizeof type, "type-%03d", i);
		feed(f, type, false, T0 + (uint64_t)i);
	}
	assert_int_equal(f->br.count, 8);
	assert_true(f->br.overflow_used);
	assert_int_equal(f->br.overflow.overflow_lookups, 92);
	assert_int_equal(vigil_breakers_find(&f->br, "type-000")->failure_count, 1);
	assert_null(vigil_breakers_find(&f->br, "type-099"));
	/* the overflow breaker protects the rest, collectively */
	assert_int_equal(f->br.overflow.state, VIGIL_BREAKER_OPEN);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "type-050", T0 + 200), VIGIL_BREAKER_DENY);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "type-000", T0 + 200), VIGIL_BREAKER_ALLOW);
	assert_int_equal(vigil_breakers_check(&f->br, &f->pol, "../x", T0 + 200), VIGIL_BREAKER_DENY);
	assert_null(vigil_breakers_get(&f->br, ""));
	assert_int_equal(vigil_breakers_open_count(&f->br), 1);

	assert_int_equal(vigil_breakers_write_dirty(&f->br, f->cbfd, &f->pol, T0 + 300), 0);
	json_t *doc = load_breaker_file(f, VIGIL_BREAKER_OVERFLOW_NAME);
	assert_string_equal(jstr(doc, "worker_type"), "_overflow");
	assert_true(json_is_true(json_object_get(doc, "overflow")));
	assert_int_equal(jint(doc, "overflow_lookups"), 93);
	json_decref(doc);
	doc = load_breaker_file(f, "type-007");
	assert_string_equal(jstr(doc, "state"), "closed");
	json_decref(doc);

	/* a large table: every type gets its own breaker, lookups stay exact */
	vigil_breakers_destroy(&f->br);
	assert_int_equal(vigil_breakers_init(&f->br, 1024), 0);
	for (int i = 0; i < 1024; i++) {
		snprintf(type, sizeof type, "t%d", i);
		assert_false(vigil_breakers_get(&f->br, type)->overflow);
	}
	for (int i = 0; i < 1024; i++) {
		snprintf(type, sizeof type, "t%d", i);
		assert_string_equal(vigil_breakers_find(&f->br, type)->worker_type, type);
	}
	assert_true(vigil_breakers_get(&f->br, "one-more")->overflow);
	assert_int_equal(vigil_breakers_tick(&f->br, &f->pol, T0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(runbook_breaker_test, setup, teardown),
		cmocka_unit_test_setup_teardown(half_open_trial_success, setup, teardown),
		cmocka_unit_test_setup_teardown(half_open_trial_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(open_failures_keep_opened_at, setup, teardown),
		cmocka_unit_test_setup_teardown(trial_cancel_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(denial_lines_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(operator_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(success_resets_count, setup, teardown),
		cmocka_unit_test_setup_teardown(disabled_always_allows, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage_lines_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(partial_line_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(truncation_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(budget_and_special_files, setup, teardown),
		cmocka_unit_test_setup_teardown(append_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(iso8601_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(many_types_overflow, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
