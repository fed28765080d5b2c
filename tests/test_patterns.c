/*
 * test_patterns.c - unit tests of failure classification (patterns.h) and
 * the auto-fix decision and notifications (autofix.h).
 *
 * Deterministic: every failure carries an explicit time (T0 + offsets),
 * and the rate limit and notification deadlines are driven by the now_ms
 * the tests pass.  Only the notification tests wait for real processes
 * (/bin/sh), with bounded polling.  Each pattern type is provoked by the
 * sequence of reports vigild would feed for a real worker of that kind.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autofix.h"
#include "patterns.h"
#include "policy.h"
#include "util.h"

#define T0 1795773600000ull /* 2026-11-27T10:00:00Z */
#define SEC 1000ull
#define MIN (60 * SEC)

/* ------------------------------------------------------- helpers */

static struct vigil_failure mk(uint8_t kind, const char *id, uint64_t at_ms)
{
	struct vigil_failure f;
	memset(&f, 0, sizeof f);
	f.kind = kind;
	snprintf(f.worker_id, sizeof f.worker_id, "%s", id);
	snprintf(f.worker_type, sizeof f.worker_type, "implementation");
	f.exit_code = -1;
	f.signal = 0;
	f.at_ms = at_ms;
	f.uptime_ms = 0;
	f.progress = 40;
	return f;
}

static struct vigil_failure mk_exit(const char *id, uint64_t at_ms, int32_t code, int32_t sig, uint64_t uptime_ms)
{
	struct vigil_failure f = mk(VIGIL_FAIL_EXIT, id, at_ms);
	f.exit_code = code;
	f.signal = sig;
	f.uptime_ms = uptime_ms;
	return f;
}

struct obs {
	int n;
	struct vigil_pattern pt[VIGIL_PATTERN_OUT_MAX];
};

static void obs_clear(struct obs *o)
{
	for (int i = 0; i < o->n; i++)
		vigil_pattern_clear(&o->pt[i]);
	o->n = 0;
}

/* Observes f into o (clearing what o held). */
static int observe(struct vigil_patterns *p, const struct vigil_failure *f, struct obs *o)
{
	obs_clear(o);
	int n = vigil_patterns_observe(p, f, o->pt, VIGIL_PATTERN_OUT_MAX);
	o->n = n > 0 ? n : 0;
	return n;
}

static const struct vigil_pattern *find(const struct obs *o, const char *type)
{
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->pt[i].type, type) == 0)
			return &o->pt[i];
	return NULL;
}

/* Confidence of type in o, -1 when absent. */
static double conf(const struct obs *o, const char *type)
{
	const struct vigil_pattern *pt = find(o, type);
	return pt != NULL ? pt->confidence : -1.0;
}

static json_int_t ev_int(const struct vigil_pattern *pt, const char *key)
{
	json_t *v = json_object_get(pt->evidence, key);
	assert_non_null(v);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void check_all_in_range(const struct obs *o)
{
	for (int i = 0; i < o->n; i++) {
		assert_false(isnan(o->pt[i].confidence));
		assert_true(o->pt[i].confidence >= 0.0 && o->pt[i].confidence <= 1.0);
		assert_non_null(o->pt[i].evidence);
	}
}

static int setup_pat(void **state)
{
	struct vigil_patterns *p = calloc(1, sizeof *p);
	assert_non_null(p);
	assert_int_equal(vigil_patterns_init(p, 64), 0);
	*state = p;
	return 0;
}

static int teardown_pat(void **state)
{
	vigil_patterns_destroy(*state);
	free(*state);
	return 0;
}

/* --------------------------------------------------- pattern types */

/* A crasher: exits with code 1 50 ms after each start. */
static void crasher_is_crash_loop_and_exit_code(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("crasher-1", T0, 1, 0, 50);

	assert_int_equal(observe(p, &f, &o), 1); /* one fast death is not a loop yet */
	assert_true(fabs(conf(&o, "exit_code") - 0.4) < 1e-9);
	assert_null(find(&o, "crash_loop"));

	f.at_ms = T0 + 1 * SEC;
	assert_int_equal(observe(p, &f, &o), 2);
	assert_true(conf(&o, "crash_loop") > 0.0 && conf(&o, "crash_loop") < 0.7);
	assert_true(conf(&o, "exit_code") < 0.7);

	f.at_ms = T0 + 2 * SEC;
	assert_int_equal(observe(p, &f, &o), 2);
	check_all_in_range(&o);
	/* most drastic action first */
	assert_string_equal(o.pt[0].type, "crash_loop");
	assert_string_equal(o.pt[0].recommended_action, "quarantine");
	assert_true(o.pt[0].confidence >= 0.7);
	assert_true(conf(&o, "exit_code") >= 0.7);
	assert_string_equal(find(&o, "exit_code")->recommended_action, "restart");
	const struct vigil_pattern *cl = find(&o, "crash_loop");
	assert_int_equal(ev_int(cl, "similar"), 3);
	assert_int_equal(ev_int(cl, "failures_in_window"), 3);
	assert_int_equal(ev_int(cl, "last_uptime_ms"), 50);
	assert_int_equal(ev_int(cl, "window_seconds"), 3600);
	assert_int_equal(ev_int(find(&o, "exit_code"), "same_exit_code"), 1);
	assert_string_equal(cl->worker_id, "crasher-1");
	assert_string_equal(cl->worker_type, "implementation");
	assert_int_equal(vigil_patterns_pick(o.pt, o.n, 0.7), 0);
	obs_clear(&o);
}

/* The restart back-off (60 s, then 120 s more) still looks like one loop. */
static void crash_loop_through_backoff(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	uint64_t at[] = {T0, T0 + 60 * SEC, T0 + 180 * SEC};
	for (int i = 0; i < 3; i++) {
		struct vigil_failure f = mk_exit("backoff-1", at[i], 2, 0, 120);
		observe(p, &f, &o);
	}
	assert_true(conf(&o, "crash_loop") >= 0.7);
	/* a failed restart (died before its first beat) is a crash loop too */
	struct vigil_failure r = mk(VIGIL_FAIL_RESTART, "backoff-1", T0 + 420 * SEC);
	assert_int_equal(observe(p, &r, &o), 1);
	assert_string_equal(o.pt[0].type, "crash_loop");
	assert_true(o.pt[0].confidence >= 0.7);
	/* a lone failed restart of another worker: crash_loop, low */
	r = mk(VIGIL_FAIL_RESTART, "lone-1", T0);
	assert_int_equal(observe(p, &r, &o), 1);
	assert_string_equal(o.pt[0].type, "crash_loop");
	assert_true(o.pt[0].confidence < 0.7);
	obs_clear(&o);
}

static void single_sigsegv_is_signal_crash(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("segv-1", T0, -1, SIGSEGV, 5 * MIN);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "signal_crash");
	assert_string_equal(o.pt[0].recommended_action, "restart");
	assert_true(o.pt[0].confidence >= 0.7);
	json_t *sn = json_object_get(o.pt[0].evidence, "signal_name");
	assert_string_equal(json_string_value(sn), "SIGSEGV");
	/* every crash signal */
	int sigs[] = {SIGBUS, SIGABRT, SIGILL, SIGFPE};
	for (int i = 0; i < 4; i++) {
		char id[32];
		snprintf(id, sizeof id, "crash-%d", i);
		f = mk_exit(id, T0, -1, sigs[i], 5 * MIN);
		assert_int_equal(observe(p, &f, &o), 1);
		assert_string_equal(o.pt[0].type, "signal_crash");
	}
	obs_clear(&o);
}

/* The README's example: a SIGSEGV that is the 3rd fast crash in a row. */
static void third_fast_segv_is_both(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	for (int i = 0; i < 3; i++) {
		struct vigil_failure f = mk_exit("segv-loop", T0 + (uint64_t)i * SEC, -1, SIGSEGV, 30);
		observe(p, &f, &o);
	}
	assert_int_equal(o.n, 2);
	assert_string_equal(o.pt[0].type, "crash_loop");
	assert_string_equal(o.pt[1].type, "signal_crash");
	assert_true(o.pt[0].confidence >= 0.7 && o.pt[1].confidence >= 0.7);
	assert_int_equal(ev_int(&o.pt[1], "same_signal"), 3);
	/* max_out 1: the most drastic one */
	struct vigil_failure f = mk_exit("segv-loop", T0 + 3 * SEC, -1, SIGSEGV, 30);
	struct vigil_pattern one;
	assert_int_equal(vigil_patterns_observe(p, &f, &one, 1), 1);
	assert_string_equal(one.type, "crash_loop");
	vigil_pattern_clear(&one);
	assert_int_equal(vigil_patterns_observe(p, &f, NULL, 0), 0);
	obs_clear(&o);
}

static void sigkill_from_outside_is_oom_suspected(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("oom-1", T0, -1, SIGKILL, 20 * MIN);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "oom_suspected");
	assert_string_equal(o.pt[0].recommended_action, "restart");
	assert_true(o.pt[0].confidence > 0.0 && o.pt[0].confidence < 0.7); /* kill -9 or OOM: ambiguous */
	f.at_ms = T0 + 2 * MIN; /* the restarted worker is killed again */
	observe(p, &f, &o);
	assert_true(conf(&o, "oom_suspected") >= 0.7);
	obs_clear(&o);
}

static void sigkill_by_vigil_is_not_oom(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("killed-1", T0, -1, SIGKILL, 20 * MIN);
	f.killed_by_vigil = true;
	assert_int_equal(observe(p, &f, &o), 0);
	f.signal = SIGTERM;
	assert_int_equal(observe(p, &f, &o), 0);
	assert_int_equal(p->vigil_kills, 2);
	/* not recorded: the next outside SIGKILL is the first */
	f = mk_exit("killed-1", T0 + SEC, -1, SIGKILL, 20 * MIN);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "oom_suspected");
	assert_int_equal(ev_int(&o.pt[0], "similar"), 1);
	obs_clear(&o);
}

static void hang_is_hang(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk(VIGIL_FAIL_HANG, "hung-1", T0);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "hang");
	assert_string_equal(o.pt[0].recommended_action, "kill_then_restart");
	assert_true(o.pt[0].confidence < 0.7);
	/* the zombie verdict of the same silence, 3 minutes later */
	f.at_ms = T0 + 3 * MIN;
	observe(p, &f, &o);
	assert_true(conf(&o, "hang") >= 0.7);
	obs_clear(&o);
}

static void slow_start_is_slow_start(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk(VIGIL_FAIL_SLOW_START, "slow-1", T0);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "slow_start");
	assert_string_equal(o.pt[0].recommended_action, "restart");
	assert_true(o.pt[0].confidence > 0.0 && o.pt[0].confidence < 0.7);
	f.at_ms = T0 + 2 * MIN;
	observe(p, &f, &o);
	assert_true(conf(&o, "slow_start") >= 0.7);
	obs_clear(&o);
}

/* A flapper: misses beats, recovers, again and again (a minute apart). */
static void flapping_needs_four(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	double c[4];
	for (int i = 0; i < 4; i++) {
		struct vigil_failure f = mk(VIGIL_FAIL_RECOVERED, "flapper-1", T0 + (uint64_t)i * MIN);
		assert_int_equal(observe(p, &f, &o), 1);
		assert_string_equal(o.pt[0].type, "flapping");
		assert_string_equal(o.pt[0].recommended_action, "quarantine");
		c[i] = o.pt[0].confidence;
	}
	assert_true(c[0] < 0.7 && c[1] < 0.7 && c[2] < 0.7);
	assert_true(c[3] >= 0.7);
	/* heartbeat timeouts between the recoveries do not dilute it */
	for (int i = 0; i < 4; i++) {
		struct vigil_failure h = mk(VIGIL_FAIL_HANG, "flapper-2", T0 + (uint64_t)i * MIN);
		observe(p, &h, &o);
		struct vigil_failure f = mk(VIGIL_FAIL_RECOVERED, "flapper-2", T0 + (uint64_t)i * MIN + 10 * SEC);
		observe(p, &f, &o);
	}
	assert_true(conf(&o, "flapping") >= 0.7);
	obs_clear(&o);
}

static void progress_stall_is_progress_stall(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk(VIGIL_FAIL_PROGRESS_STALL, "stuck-1", T0);
	f.stalled_ms = 10 * MIN;
	f.progress = 37;
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "progress_stall");
	assert_string_equal(o.pt[0].recommended_action, "kill_then_restart");
	assert_int_equal(ev_int(&o.pt[0], "stalled_ms"), 10 * MIN);
	assert_int_equal(ev_int(&o.pt[0], "progress"), 37);
	obs_clear(&o);
}

static void clean_exit_is_nothing(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("done-1", T0, 0, 0, 50);
	assert_int_equal(observe(p, &f, &o), 0);
	f.signal = -1; /* code 0, signal unknown: still clean */
	assert_int_equal(observe(p, &f, &o), 0);
	assert_int_equal(p->not_failures, 2);
	assert_int_equal(p->count, 0);
}

/* Every failure is at least one type: other signals and unknown ends. */
static void every_failure_is_classified(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("term-1", T0, -1, SIGTERM, 30 * MIN);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "exit_code");
	assert_int_equal(ev_int(&o.pt[0], "same_signal"), SIGTERM);
	f = mk_exit("unknown-1", T0, -1, -1, 0);
	assert_int_equal(observe(p, &f, &o), 1);
	assert_string_equal(o.pt[0].type, "exit_code");
	assert_true(json_is_null(json_object_get(o.pt[0].evidence, "same_exit_code")));
	/* every kind, fed at random, is classified */
	for (uint8_t k = 0; k < VIGIL_FAIL_KINDS; k++) {
		struct vigil_failure g = mk(k, "any-1", T0 + k * SEC);
		g.exit_code = 3;
		assert_true(observe(p, &g, &o) >= 1);
	}
	obs_clear(&o);
}

static void invalid_reports(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	struct vigil_failure f = mk_exit("../etc", T0, 1, 0, 5);
	assert_int_equal(observe(p, &f, &o), -EINVAL);
	f = mk_exit("ok-1", T0, 1, 0, 5);
	f.kind = 42;
	assert_int_equal(observe(p, &f, &o), -EINVAL);
	f = mk_exit("ok-1", T0, 1, 0, 5);
	snprintf(f.worker_type, sizeof f.worker_type, "bad type");
	assert_int_equal(observe(p, &f, &o), -EINVAL);
	memset(f.worker_id, 'a', sizeof f.worker_id); /* no NUL */
	assert_int_equal(observe(p, &f, &o), -EINVAL);
	assert_int_equal(vigil_patterns_observe(p, NULL, NULL, 0), -EINVAL);
	assert_int_equal(p->invalid, 5);
	assert_int_equal(p->count, 0);
	f = mk_exit("ok-1", T0, 1, 0, 5);
	f.worker_type[0] = '\0'; /* type unknown is fine */
	assert_int_equal(observe(p, &f, &o), 1);
	obs_clear(&o);
}

/* ------------------------------------------------ confidence laws */

static void confidence_monotone_in_count(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	double prev_exit = 0.0, prev_loop = 0.0;
	for (int i = 0; i < 20; i++) {
		struct vigil_failure f = mk_exit("mono-1", T0 + (uint64_t)i * 10 * SEC, 7, 0, 80);
		observe(p, &f, &o);
		check_all_in_range(&o);
		double ce = conf(&o, "exit_code");
		assert_true(ce >= prev_exit);
		if (i < 6)
			assert_true(ce > prev_exit);
		prev_exit = ce;
		if (i >= 1) {
			double cl = conf(&o, "crash_loop");
			assert_true(cl >= prev_loop);
			if (i < 6)
				assert_true(cl > prev_loop);
			prev_loop = cl;
		}
	}
	/* an earlier unlike death lowers a repetition type (alikeness)... */
	struct vigil_failure a = mk_exit("mixed-1", T0, 9, 0, 5 * 3600 * SEC);
	observe(p, &a, &o);
	for (int i = 1; i <= 3; i++) {
		struct vigil_failure f = mk_exit("mixed-1", T0 + (uint64_t)i * SEC, 1, 0, 50);
		observe(p, &f, &o);
	}
	double mixed = conf(&o, "exit_code");
	assert_true(mixed > 0.0 && mixed < 0.7);
	/* ...but not an event type: a segfault after two hangs is still one */
	struct vigil_failure h = mk(VIGIL_FAIL_HANG, "mixed-2", T0);
	observe(p, &h, &o);
	h.at_ms += SEC;
	observe(p, &h, &o);
	struct vigil_failure s = mk_exit("mixed-2", T0 + 2 * SEC, -1, SIGSEGV, 10 * MIN);
	observe(p, &s, &o);
	assert_true(conf(&o, "signal_crash") >= 0.7);
	obs_clear(&o);
}

static double third_exit_after(struct vigil_patterns *p, const char *id, uint64_t gap_ms)
{
	struct obs o = {0};
	struct vigil_failure f = mk_exit(id, T0, 1, 0, 50);
	observe(p, &f, &o);
	f.at_ms = T0 + SEC;
	observe(p, &f, &o);
	f.at_ms = T0 + SEC + gap_ms;
	observe(p, &f, &o);
	double c = conf(&o, "exit_code");
	obs_clear(&o);
	return c;
}

static void confidence_decays_with_age(void **state)
{
	struct vigil_patterns *p = *state;
	double near = third_exit_after(p, "age-1", SEC);
	double ten = third_exit_after(p, "age-2", 10 * MIN);
	double twenty = third_exit_after(p, "age-3", 20 * MIN);
	double hour = third_exit_after(p, "age-4", 3600 * SEC); /* outside the window */
	assert_true(near >= 0.7);
	assert_true(ten < near);
	assert_true(twenty < ten);
	assert_true(twenty < 0.7);
	assert_true(hour < twenty);
	assert_true(fabs(hour - 0.4) < 1e-9); /* as if it were the first */
}

/* Random reports (time going back and forth, every kind, odd codes):
 * confidence is always a number in [0, 1] and the JSON line is whole. */
static void confidence_always_in_range(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		char id[16];
		snprintf(id, sizeof id, "w%u", (unsigned)(x % 200));
		struct vigil_failure f = mk((uint8_t)(x % VIGIL_FAIL_KINDS), id, T0 + (x >> 20) % (7200 * SEC));
		f.exit_code = (int32_t)((x >> 8) % 5) - 1;
		f.signal = (int32_t)((x >> 12) % 12) - 1;
		f.uptime_ms = (x >> 16) % 20000;
		f.killed_by_vigil = ((x >> 24) & 7) == 0;
		f.progress = (uint32_t)(x >> 30) % 300;
		int n = observe(p, &f, &o);
		assert_true(n >= 0);
		check_all_in_range(&o);
		for (int k = 0; k < o.n; k++) {
			json_t *line = vigil_pattern_to_json(&o.pt[k], T0);
			assert_non_null(line);
			double c = json_real_value(json_object_get(line, "confidence"));
			assert_true(c >= 0.0 && c <= 1.0);
			json_decref(line);
		}
	}
	obs_clear(&o);
}

/* ---------------------------------------------------------- memory */

static void bounded_memory_and_eviction(void **state)
{
	(void)state;
	struct vigil_patterns p;
	assert_int_equal(vigil_patterns_init(&p, 1000), 0);
	void *workers = p.workers, *index = p.index;
	struct obs o = {0};
	char id[32];
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(id, sizeof id, "worker-%06u", i);
		struct vigil_failure f = mk_exit(id, T0 + i, 1, 0, 50);
		assert_int_equal(observe(&p, &f, &o), 1);
		assert_true(p.count <= 1000);
	}
	obs_clear(&o);
	/* no growth: the same two allocations, full, evictions counted */
	assert_ptr_equal(p.workers, workers);
	assert_ptr_equal(p.index, index);
	assert_int_equal(p.count, 1000);
	assert_int_equal(p.evictions, 99000);
	/* the least recently seen went: the last 1000 are all there */
	for (unsigned i = 99000; i < 100000; i++) {
		snprintf(id, sizeof id, "worker-%06u", i);
		assert_true(vigil_patterns_forget(&p, id));
	}
	assert_int_equal(p.count, 0);
	snprintf(id, sizeof id, "worker-%06u", 5u);
	assert_false(vigil_patterns_forget(&p, id));
	/* a worker seen again keeps its place (LRU, not FIFO) */
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "again-%u", i);
		struct vigil_failure f = mk_exit(id, T0, 1, 0, 50);
		observe(&p, &f, &o);
	}
	struct vigil_failure keep = mk_exit("again-0", T0 + SEC, 1, 0, 50);
	observe(&p, &keep, &o); /* again-0 is now the most recent */
	struct vigil_failure newcomer = mk_exit("newcomer", T0 + SEC, 1, 0, 50);
	observe(&p, &newcomer, &o); /* evicts again-1 */
	keep.at_ms = T0 + 2 * SEC;
	observe(&p, &keep, &o);
	assert_int_equal(ev_int(find(&o, "exit_code"), "similar"), 3);
	struct vigil_failure gone = mk_exit("again-1", T0 + 2 * SEC, 1, 0, 50);
	observe(&p, &gone, &o);
	assert_int_equal(ev_int(find(&o, "exit_code"), "similar"), 1);
	obs_clear(&o);
	json_t *m = vigil_patterns_metrics_to_json(&p);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "workers_tracked")), 1000);
	assert_true(json_integer_value(json_object_get(json_object_get(m, "by_type"), "exit_code")) > 100000);
	json_decref(m);
	vigil_patterns_destroy(&p);
	assert_int_equal(vigil_patterns_init(&p, 0), -EINVAL);
	assert_int_equal(vigil_patterns_init(&p, VIGIL_PATTERN_WORKERS_MAX + 1), -EINVAL);
}

static void forget_clears_history(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	for (int i = 0; i < 3; i++) {
		struct vigil_failure f = mk_exit("lifted-1", T0 + (uint64_t)i * SEC, 1, 0, 50);
		observe(p, &f, &o);
	}
	assert_true(conf(&o, "crash_loop") >= 0.7);
	assert_true(vigil_patterns_forget(p, "lifted-1"));
	struct vigil_failure f = mk_exit("lifted-1", T0 + 4 * SEC, 1, 0, 50);
	observe(p, &f, &o);
	assert_null(find(&o, "crash_loop"));
	assert_true(fabs(conf(&o, "exit_code") - 0.4) < 1e-9);
	obs_clear(&o);
}

static char *read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return NULL;
	char *buf = calloc(1, 4 << 20);
	size_t n = fread(buf, 1, (4 << 20) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void pattern_line(void **state)
{
	struct vigil_patterns *p = *state;
	struct obs o = {0};
	for (int i = 0; i < 3; i++) {
		struct vigil_failure f = mk_exit("line-1", T0 + (uint64_t)i * SEC, 1, 0, 50);
		observe(p, &f, &o);
	}
	const struct vigil_pattern *cl = find(&o, "crash_loop");
	json_t *line = vigil_pattern_to_json(cl, T0 + 3 * SEC);
	const char *keys[] = {"type", "confidence", "worker_type", "worker_id", "evidence", "recommended_action",
			      "timestamp", "timestamp_ms"};
	assert_int_equal(json_object_size(line), 8);
	for (size_t i = 0; i < 8; i++)
		assert_non_null(json_object_get(line, keys[i]));
	assert_string_equal(json_string_value(json_object_get(line, "timestamp")), "2026-11-27T10:00:03Z");
	json_decref(line);

	char path[] = "/tmp/vigil-patterns-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(vigil_pattern_append(fd, cl, T0), 0);
	close(fd);
	char *text = read_all(path);
	unlink(path);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"type\":\"crash_loop\",\"confidence\":0.784,"));
	assert_non_null(strstr(text, "\"recommended_action\":\"quarantine\""));
	assert_int_equal(text[strlen(text) - 1], '\n');
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1); /* one line */
	free(text);
	obs_clear(&o);
}

/* ------------------------------------------------------- auto-fix */

static struct vigil_pattern mkpat(const char *type, const char *action, double c)
{
	struct vigil_pattern pt;
	memset(&pt, 0, sizeof pt);
	snprintf(pt.type, sizeof pt.type, "%s", type);
	snprintf(pt.recommended_action, sizeof pt.recommended_action, "%s", action);
	snprintf(pt.worker_id, sizeof pt.worker_id, "worker-a");
	snprintf(pt.worker_type, sizeof pt.worker_type, "implementation");
	pt.confidence = c;
	return pt;
}

struct afx {
	struct vigil_autofix af;
	struct vigil_autofix_policy pol;
};

static int setup_af(void **state)
{
	struct afx *x = calloc(1, sizeof *x);
	assert_non_null(x);
	assert_int_equal(vigil_autofix_init(&x->af), 0);
	vigil_policy_autofix_defaults(&x->pol);
	*state = x;
	return 0;
}

static int teardown_af(void **state)
{
	struct afx *x = *state;
	vigil_autofix_destroy(&x->af);
	free(x);
	return 0;
}

/* decide with the usual facts: breaker closed, nothing queued, command known */
static struct vigil_fix_decision decide(struct afx *x, const struct vigil_pattern *pt, uint64_t now)
{
	struct vigil_fix_decision d;
	vigil_autofix_decide(&x->af, &x->pol, pt, false, false, false, true, now, &d);
	return d;
}

static void autofix_disabled_and_threshold(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern pt = mkpat("signal_crash", "restart", 0.8);
	x->pol.enabled = false;
	struct vigil_fix_decision d = decide(x, &pt, T0);
	assert_int_equal(d.verdict, VIGIL_FIX_SKIP);
	assert_string_equal(d.skipped_because, "disabled");
	x->pol.enabled = true;
	pt.confidence = 0.69;
	d = decide(x, &pt, T0);
	assert_int_equal(d.verdict, VIGIL_FIX_SKIP);
	assert_string_equal(d.skipped_because, "below_threshold");
	pt.confidence = NAN;
	d = decide(x, &pt, T0);
	assert_string_equal(d.skipped_because, "below_threshold");
	pt.confidence = 0.7; /* >= threshold */
	d = decide(x, &pt, T0);
	assert_int_equal(d.verdict, VIGIL_FIX_APPLY);
	assert_string_equal(d.action, "restart");
	assert_string_equal(d.skipped_because, "");
	pt = mkpat("signal_crash", "reboot", 0.9);
	d = decide(x, &pt, T0);
	assert_string_equal(d.skipped_because, "invalid_pattern");
	assert_int_equal(x->af.fixes_applied, 1);
	assert_int_equal(x->af.fixes_skipped, 4);
}

static void autofix_rate_limit(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern pt = mkpat("crash_loop", "quarantine", 0.9);
	x->pol.max_fixes_per_hour = 10;
	for (uint64_t i = 0; i < 10; i++) {
		struct vigil_fix_decision d = decide(x, &pt, T0 + i * MIN);
		assert_int_equal(d.verdict, VIGIL_FIX_APPLY);
	}
	struct vigil_fix_decision d = decide(x, &pt, T0 + 30 * MIN);
	assert_int_equal(d.verdict, VIGIL_FIX_SKIP);
	assert_string_equal(d.skipped_because, "rate_limited");
	json_t *line = vigil_fix_decision_to_json(&d, &pt, &x->af, &x->pol, T0 + 30 * MIN);
	assert_string_equal(json_string_value(json_object_get(line, "result")), "skipped");
	assert_string_equal(json_string_value(json_object_get(line, "reason")), "rate_limited");
	assert_int_equal(json_integer_value(json_object_get(line, "fixes_in_last_hour")), 10);
	assert_int_equal(json_integer_value(json_object_get(line, "max_fixes_per_hour")), 10);
	json_decref(line);
	assert_int_equal(x->af.fixes_rate_limited, 1);
	/* the first fix leaves the window exactly 3600 s after it */
	d = decide(x, &pt, T0 + 3600 * SEC - 1);
	assert_string_equal(d.skipped_because, "rate_limited");
	d = decide(x, &pt, T0 + 3600 * SEC);
	assert_int_equal(d.verdict, VIGIL_FIX_APPLY);
	d = decide(x, &pt, T0 + 3600 * SEC + 1);
	assert_string_equal(d.skipped_because, "rate_limited");
	/* an hour after the last one, all ten are free again */
	for (uint64_t i = 0; i < 10; i++) {
		d = decide(x, &pt, T0 + 2 * 3600 * SEC + i);
		assert_int_equal(d.verdict, VIGIL_FIX_APPLY);
	}
	assert_int_equal(vigil_autofix_fixes_in_last_hour(&x->af, T0 + 2 * 3600 * SEC + 10), 10);
	/* max 0: nothing is ever applied */
	x->pol.max_fixes_per_hour = 0;
	d = decide(x, &pt, T0 + 10 * 3600 * SEC);
	assert_string_equal(d.skipped_because, "rate_limited");
}

static void autofix_ring_grows_to_policy(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern pt = mkpat("hang", "kill_then_restart", 0.9);
	x->pol.max_fixes_per_hour = 1000000;
	for (uint64_t i = 0; i < 5000; i++)
		assert_int_equal(decide(x, &pt, T0 + i).verdict, VIGIL_FIX_APPLY);
	assert_int_equal(x->af.count, 5000);
	assert_true(x->af.cap >= 5000 && x->af.cap <= 8192);
	/* lowering the limit applies at once */
	x->pol.max_fixes_per_hour = 4999;
	assert_string_equal(decide(x, &pt, T0 + 6000).skipped_because, "rate_limited");
	x->pol.max_fixes_per_hour = 5001;
	assert_int_equal(decide(x, &pt, T0 + 6001).verdict, VIGIL_FIX_APPLY);
	/* a clock stepped back by more than an hour does not block fixes */
	x->pol.max_fixes_per_hour = 10;
	assert_int_equal(decide(x, &pt, T0 - 2 * 3600 * SEC).verdict, VIGIL_FIX_APPLY);
}

static void autofix_dry_run(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern pt = mkpat("crash_loop", "quarantine", 0.95);
	x->pol.dry_run = true;
	x->pol.max_fixes_per_hour = 3;
	for (uint64_t i = 0; i < 20; i++) {
		struct vigil_fix_decision d = decide(x, &pt, T0 + i * SEC);
		assert_int_equal(d.verdict, VIGIL_FIX_DRY_RUN);
		assert_string_equal(d.skipped_because, "dry_run");
		assert_string_equal(d.action, "quarantine");
	}
	assert_int_equal(vigil_autofix_fixes_in_last_hour(&x->af, T0 + 20 * SEC), 0);
	assert_int_equal(x->af.fixes_dry_run, 20);
	struct vigil_fix_decision d = decide(x, &pt, T0 + 21 * SEC);
	json_t *line = vigil_fix_decision_to_json(&d, &pt, &x->af, &x->pol, T0);
	assert_string_equal(json_string_value(json_object_get(line, "result")), "dry_run");
	assert_string_equal(json_string_value(json_object_get(line, "reason")), "dry_run");
	json_decref(line);
	/* policy reload: the very next decision applies */
	x->pol.dry_run = false;
	for (int i = 0; i < 3; i++)
		assert_int_equal(decide(x, &pt, T0 + 30 * SEC).verdict, VIGIL_FIX_APPLY);
	assert_string_equal(decide(x, &pt, T0 + 31 * SEC).skipped_because, "rate_limited");
	/* dry run still says when the limit would stop it */
	x->pol.dry_run = true;
	assert_string_equal(decide(x, &pt, T0 + 32 * SEC).skipped_because, "rate_limited");
}

static void autofix_worker_state(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern restart = mkpat("signal_crash", "restart", 0.8);
	struct vigil_pattern kill = mkpat("hang", "kill_then_restart", 0.84);
	struct vigil_pattern quar = mkpat("crash_loop", "quarantine", 0.8);
	struct vigil_fix_decision d;
	const struct vigil_pattern *restarts[] = {&restart, &kill};
	for (int i = 0; i < 2; i++) {
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], true, false, false, true, T0, &d);
		assert_string_equal(d.skipped_because, "breaker_open");
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], false, true, false, true, T0, &d);
		assert_string_equal(d.skipped_because, "restart_already_underway");
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], false, false, true, true, T0, &d);
		assert_string_equal(d.skipped_because, "quarantined");
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], false, false, false, false, T0, &d);
		assert_string_equal(d.skipped_because, "no_command");
		/* order: quarantined before breaker_open before underway before no_command */
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], true, true, true, false, T0, &d);
		assert_string_equal(d.skipped_because, "quarantined");
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], true, true, false, false, T0, &d);
		assert_string_equal(d.skipped_because, "breaker_open");
		vigil_autofix_decide(&x->af, &x->pol, restarts[i], false, true, false, false, T0, &d);
		assert_string_equal(d.skipped_because, "restart_already_underway");
	}
	/* quarantine is what stops those restarts: not stopped by them */
	vigil_autofix_decide(&x->af, &x->pol, &quar, true, true, false, false, T0, &d);
	assert_int_equal(d.verdict, VIGIL_FIX_APPLY);
	vigil_autofix_decide(&x->af, &x->pol, &quar, false, false, true, true, T0, &d);
	assert_string_equal(d.skipped_because, "quarantined");
	/* disabled and below_threshold come first of all */
	x->pol.enabled = false;
	vigil_autofix_decide(&x->af, &x->pol, &restart, true, true, true, false, T0, &d);
	assert_string_equal(d.skipped_because, "disabled");
	x->pol.enabled = true;
	restart.confidence = 0.1;
	vigil_autofix_decide(&x->af, &x->pol, &restart, true, true, true, false, T0, &d);
	assert_string_equal(d.skipped_because, "below_threshold");
}

static void autofix_policy_change_next_call(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern pt = mkpat("exit_code", "restart", 0.64);
	assert_string_equal(decide(x, &pt, T0).skipped_because, "below_threshold");
	x->pol.min_confidence_threshold = 0.6;
	assert_int_equal(decide(x, &pt, T0 + 1).verdict, VIGIL_FIX_APPLY);
	x->pol.min_confidence_threshold = 0.9;
	assert_string_equal(decide(x, &pt, T0 + 2).skipped_because, "below_threshold");
	x->pol.enabled = false;
	x->pol.min_confidence_threshold = 0.0;
	assert_string_equal(decide(x, &pt, T0 + 3).skipped_because, "disabled");
}

static void autofix_history_line(void **state)
{
	struct afx *x = *state;
	struct vigil_pattern pt = mkpat("crash_loop", "quarantine", 0.784);
	struct vigil_fix_decision d = decide(x, &pt, T0);
	json_t *line = vigil_fix_decision_to_json(&d, &pt, &x->af, &x->pol, T0);
	const char *keys[] = {"worker_id", "worker_type", "pattern", "confidence", "action", "result", "reason",
			      "threshold", "fixes_in_last_hour", "max_fixes_per_hour", "timestamp", "timestamp_ms"};
	assert_int_equal(json_object_size(line), sizeof keys / sizeof keys[0]);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		assert_non_null(json_object_get(line, keys[i]));
	char *compact = json_dumps(line, JSON_COMPACT);
	assert_non_null(strstr(compact, "\"result\":\"applied\""));
	assert_non_null(strstr(compact, "\"reason\":\"\""));
	free(compact);
	json_decref(line);

	char path[] = "/tmp/vigil-autofix-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(vigil_fix_decision_append(fd, &d, &pt, &x->af, &x->pol, T0), 0);
	x->pol.enabled = false;
	d = decide(x, &pt, T0 + 1);
	assert_int_equal(vigil_fix_decision_append(fd, &d, &pt, &x->af, &x->pol, T0 + 1), 0);
	close(fd);
	char *text = read_all(path);
	unlink(path);
	assert_non_null(strstr(text, "{\"worker_id\":\"worker-a\",\"worker_type\":\"implementation\","
				     "\"pattern\":\"crash_loop\",\"confidence\":0.784,\"action\":\"quarantine\","
				     "\"result\":\"applied\",\"reason\":\"\",\"threshold\":0.7,"
				     "\"fixes_in_last_hour\":1,\"max_fixes_per_hour\":10,"
				     "\"timestamp\":\"2026-11-27T10:00:00Z\",\"timestamp_ms\":1795773600000}\n"));
	assert_non_null(strstr(text, "\"result\":\"skipped\",\"reason\":\"disabled\""));
	free(text);

	json_t *m = vigil_autofix_metrics_to_json(&x->af, 7, T0);
	assert_int_equal(json_integer_value(json_object_get(m, "patterns_detected")), 7);
	assert_int_equal(json_integer_value(json_object_get(m, "fixes_applied")), 1);
	assert_int_equal(json_integer_value(json_object_get(m, "fixes_skipped")), 1);
	assert_non_null(json_object_get(m, "fixes_dry_run"));
	assert_non_null(json_object_get(m, "fixes_rate_limited"));
	assert_non_null(json_object_get(m, "notifications_killed"));
	json_decref(m);
}

/* -------------------------------------------------- notifications */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static uint64_t mono_ms(void)
{
	return vigil_mono_ns() / VIGIL_NS_PER_MS;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Reaps with a fixed fake now until nothing is in flight (at most ~5 s). */
static void reap_all(struct vigil_autofix *af, uint64_t now)
{
	for (int i = 0; i < 5000 && af->notify_in_flight > 0; i++) {
		vigil_notify_reap(af, now);
		if (af->notify_in_flight > 0)
			sleep_ms(1);
	}
	assert_int_equal(af->notify_in_flight, 0);
}

static void no_children_left(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void notify_delivers_json(void **state)
{
	struct afx *x = *state;
	int fds_before = count_fds();
	char dir[] = "/tmp/vigil-notify-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cmd[256], file[200];
	snprintf(file, sizeof file, "%s/event.json", dir);
	snprintf(cmd, sizeof cmd, "cat > '%s'", file);
	json_t *ev = json_pack("{s:s,s:s,s:f,s:s}", "event", "auto_fix_applied", "worker_id", "worker-a",
			       "confidence", 0.784, "action", "quarantine");
	assert_int_equal(vigil_notify_start(&x->af, cmd, ev, 5.0, T0), 0);
	assert_int_equal(x->af.notify_in_flight, 1);
	assert_true(vigil_notify_reap(&x->af, T0) == T0 + 5000 || x->af.notify_in_flight == 0);
	reap_all(&x->af, T0);
	char *text = read_all(file);
	assert_non_null(text);
	assert_string_equal(text, "{\"event\":\"auto_fix_applied\",\"worker_id\":\"worker-a\","
				  "\"confidence\":0.784,\"action\":\"quarantine\"}\n");
	free(text);
	assert_int_equal(x->af.notifications_sent, 1);
	assert_int_equal(x->af.notifications_failed, 0);

	/* a large event: the pipe is raised to fit it */
	json_t *big = json_object();
	char *blob = malloc(200001);
	memset(blob, 'x', 200000);
	blob[200000] = '\0';
	json_object_set_new(big, "blob", json_string(blob));
	free(blob);
	assert_int_equal(vigil_notify_start(&x->af, cmd, big, 5.0, T0), 0);
	reap_all(&x->af, T0);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_size, 200000 + 12);
	assert_int_equal(x->af.notifications_truncated, 0);
	json_decref(big);

	/* a failing command is counted */
	assert_int_equal(vigil_notify_start(&x->af, "exit 3", ev, 5.0, T0), 0);
	reap_all(&x->af, T0);
	assert_int_equal(x->af.notifications_failed, 1);
	/* its own signal too */
	assert_int_equal(vigil_notify_start(&x->af, "kill -TERM $$", ev, 5.0, T0), 0);
	reap_all(&x->af, T0);
	assert_int_equal(x->af.notifications_failed, 2);
	/* a command that never reads its input is fine */
	assert_int_equal(vigil_notify_start(&x->af, "true", ev, 5.0, T0), 0);
	reap_all(&x->af, T0);
	assert_int_equal(x->af.notifications_failed, 2);
	assert_int_equal(vigil_notify_start(&x->af, "", ev, 5.0, T0), -EINVAL);
	assert_int_equal(vigil_notify_reap(&x->af, T0), 0);
	json_decref(ev);
	unlink(file);
	rmdir(dir);
	no_children_left();
	assert_int_equal(count_fds(), fds_before);
}

/* Processes of process group pgid that are not zombies (from /proc). */
static int live_in_group(pid_t pgid)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *fp = fopen(path, "r");
		if (fp == NULL)
			continue;
		size_t len = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		const char *rp = strrchr(buf, ')'); /* comm may hold spaces */
		char st = 0;
		int ppid = 0, pgrp = 0;
		if (rp != NULL && sscanf(rp + 1, " %c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid && st != 'Z')
			n++;
	}
	closedir(d);
	return n;
}

static void notify_sleeper_is_killed(void **state)
{
	struct afx *x = *state;
	int fds_before = count_fds();
	json_t *ev = json_pack("{s:s}", "event", "breaker_opened");
	/* "; :" keeps the shell from exec'ing sleep: the group kill must get
	 * the shell's child too */
	uint64_t t0 = mono_ms();
	int rc = vigil_notify_start(&x->af, "sleep 1000; :", ev, 0.5, T0);
	uint64_t took = mono_ms() - t0;
	assert_int_equal(rc, 0);
	assert_true(took < 200); /* does not wait for the command */
	pid_t leader = x->af.notify[0].pid;
	assert_true(leader > 0);
	for (int i = 0; i < 400 && live_in_group(leader) < 2; i++)
		sleep_ms(5); /* let the shell fork sleep */
	assert_int_equal(live_in_group(leader), 2);
	assert_int_equal(vigil_notify_reap(&x->af, T0 + 499), T0 + 500);
	assert_int_equal(x->af.notifications_killed, 0);
	t0 = mono_ms();
	uint64_t next = vigil_notify_reap(&x->af, T0 + 500);
	assert_true(mono_ms() - t0 < 200); /* the kill does not wait either */
	assert_int_equal(x->af.notifications_killed, 1);
	assert_true(next == 0 || next == T0 + 500 + VIGIL_NOTIFY_REAP_RETRY_MS);
	reap_all(&x->af, T0 + 510);
	assert_int_equal(x->af.notifications_killed, 1);
	assert_int_equal(x->af.notifications_failed, 0);
	/* the whole group is dead, sleep included (a killed grandchild may
	 * stay a zombie until init reaps it, which some inits do lazily) */
	for (int i = 0; i < 200 && live_in_group(leader) > 0; i++)
		sleep_ms(5);
	assert_int_equal(live_in_group(leader), 0);
	json_decref(ev);
	no_children_left();
	assert_int_equal(count_fds(), fds_before);
}

static void notify_ninth_is_dropped(void **state)
{
	struct afx *x = *state;
	int fds_before = count_fds();
	json_t *ev = json_pack("{s:s}", "event", "auto_fix_applied");
	uint64_t t0 = mono_ms();
	for (int i = 0; i < 8; i++)
		assert_int_equal(vigil_notify_start(&x->af, "sleep 1000", ev, 60.0, T0 + (uint64_t)i), 0);
	assert_true(mono_ms() - t0 < 8 * 200);
	assert_int_equal(vigil_notify_start(&x->af, "sleep 1000", ev, 60.0, T0 + 8), -EBUSY);
	assert_int_equal(x->af.notifications_dropped, 1);
	assert_int_equal(x->af.notify_in_flight, 8);
	assert_int_equal(vigil_notify_reap(&x->af, T0 + 10), T0 + 60000); /* the earliest deadline */
	json_t *m = vigil_autofix_metrics_to_json(&x->af, 0, T0);
	assert_int_equal(json_integer_value(json_object_get(m, "notifications_dropped")), 1);
	assert_int_equal(json_integer_value(json_object_get(m, "notifications_in_flight")), 8);
	json_decref(m);
	/* teardown's destroy would do this; do it here to check what is left */
	vigil_autofix_destroy(&x->af);
	assert_int_equal(x->af.notify_in_flight, 0);
	assert_int_equal(vigil_autofix_init(&x->af), 0);
	json_decref(ev);
	no_children_left();
	assert_int_equal(count_fds(), fds_before);
}

int main(void)
{
	/* SIGPIPE keeps its default here (vigild ignores it): notify must not
	 * depend on that. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(crasher_is_crash_loop_and_exit_code, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(crash_loop_through_backoff, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(single_sigsegv_is_signal_crash, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(third_fast_segv_is_both, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(sigkill_from_outside_is_oom_suspected, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(sigkill_by_vigil_is_not_oom, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(hang_is_hang, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(slow_start_is_slow_start, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(flapping_needs_four, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(progress_stall_is_progress_stall, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(clean_exit_is_nothing, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(every_failure_is_classified, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(invalid_reports, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(confidence_monotone_in_count, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(confidence_decays_with_age, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(confidence_always_in_range, setup_pat, teardown_pat),
		cmocka_unit_test(bounded_memory_and_eviction),
		cmocka_unit_test_setup_teardown(forget_clears_history, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(pattern_line, setup_pat, teardown_pat),
		cmocka_unit_test_setup_teardown(autofix_disabled_and_threshold, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(autofix_rate_limit, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(autofix_ring_grows_to_policy, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(autofix_dry_run, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(autofix_worker_state, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(autofix_policy_change_next_call, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(autofix_history_line, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(notify_delivers_json, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(notify_sleeper_is_killed, setup_af, teardown_af),
		cmocka_unit_test_setup_teardown(notify_ninth_is_dropped, setup_af, teardown_af),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
