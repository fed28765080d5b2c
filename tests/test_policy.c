/*
 * test_policy.c - unit tests for src/policy.c: defaults, the runbook's
 * example files, fractional durations and derived nanoseconds, every kind
 * of malformed file (each must fail with -EINVAL, name the file and the
 * key, and leave the output struct byte for byte as it was), unknown-key
 * warnings, safe loading from a directory, and to_json round trips.
 *
 * The key lists, types and ranges below are restated from the README ("Configuration reference") and the
 * header on purpose rather than taken from policy.c, so that a change to
 * the module's tables shows up here as a failure.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"

#define HB_PATH "coordination/config/heartbeat-policy.json"
#define RS_PATH "coordination/config/worker-restart-policy.json"
#define AF_PATH "coordination/config/auto-fix-policy.json"

/* The runbook's example files, verbatim. */
static const char runbook_heartbeat[] = "{\n"
					"  \"heartbeat_interval_seconds\": 30,\n"
					"  \"heartbeat_timeout_seconds\": 120,\n"
					"  \"zombie_threshold_seconds\": 300,\n"
					"  \"health_score_decay_rate\": 5,\n"
					"  \"min_health_score\": 20\n"
					"}\n";
static const char runbook_restart[] = "{\n"
				      "  \"max_retries\": 3,\n"
				      "  \"retry_interval_seconds\": 60,\n"
				      "  \"backoff_multiplier\": 2,\n"
				      "  \"circuit_breaker_enabled\": true,\n"
				      "  \"circuit_breaker_threshold\": 5,\n"
				      "  \"circuit_breaker_reset_seconds\": 300\n"
				      "}\n";
static const char runbook_autofix[] = "{\n"
				      "  \"enabled\": true,\n"
				      "  \"min_confidence_threshold\": 0.7,\n"
				      "  \"max_fixes_per_hour\": 10,\n"
				      "  \"dry_run\": false,\n"
				      "  \"notification_enabled\": true\n"
				      "}\n";

/* ------------------------------------------------ a uniform view of kinds */

union any_policy {
	struct vigil_heartbeat_policy h;
	struct vigil_restart_policy r;
	struct vigil_autofix_policy a;
};

struct key_info {
	const char *name;
	char type; /* 'n' number, 'i' integer, 'b' boolean, 's' string or null */
};

struct kind {
	const char *path;
	const char *runbook;
	const struct key_info *keys; /* documented order, NULL-terminated */
	size_t size;
	int (*parse)(const char *, size_t, const char *, void *, char *, size_t, char *, size_t);
	int (*load)(int, const char *, const char *, void *, bool *, char *, size_t, char *, size_t);
	void (*defaults)(void *);
	json_t *(*to_json)(const void *);
};

static int hb_parse(const char *t, size_t l, const char *p, void *o, char *e, size_t el, char *w,
		    size_t wl)
{
	return vigil_policy_heartbeat_parse(t, l, p, o, e, el, w, wl);
}
static int rs_parse(const char *t, size_t l, const char *p, void *o, char *e, size_t el, char *w,
		    size_t wl)
{
	return vigil_policy_restart_parse(t, l, p, o, e, el, w, wl);
}
static int af_parse(const char *t, size_t l, const char *p, void *o, char *e, size_t el, char *w,
		    size_t wl)
{
	return vigil_policy_autofix_parse(t, l, p, o, e, el, w, wl);
}
static int hb_load(int d, const char *n, const char *p, void *o, bool *m, char *e, size_t el,
		   char *w, size_t wl)
{
	return vigil_policy_heartbeat_load(d, n, p, o, m, e, el, w, wl);
}
static int rs_load(int d, const char *n, const char *p, void *o, bool *m, char *e, size_t el,
		   char *w, size_t wl)
{
	return vigil_policy_restart_load(d, n, p, o, m, e, el, w, wl);
}
static int af_load(int d, const char *n, const char *p, void *o, bool *m, char *e, size_t el,
		   char *w, size_t wl)
{
	return vigil_policy_autofix_load(d, n, p, o, m, e, el, w, wl);
}
static void hb_defaults(void *p)
{
	vigil_policy_heartbeat_defaults(p);
}
static void rs_defaults(void *p)
{
	vigil_policy_restart_defaults(p);
}
static void af_defaults(void *p)
{
	vigil_policy_autofix_defaults(p);
}
static json_t *hb_to_json(const void *p)
{
	return vigil_policy_heartbeat_to_json(p);
}
static json_t *rs_to_json(const void *p)
{
	return vigil_policy_restart_to_json(p);
}
static json_t *af_to_json(const void *p)
{
	return vigil_policy_autofix_to_json(p);
}

static const struct key_info hb_keys[] = {
	{ "heartbeat_interval_seconds", 'n' }, { "heartbeat_timeout_seconds", 'n' },
	{ "zombie_threshold_seconds", 'n' },   { "health_score_decay_rate", 'n' },
	{ "min_health_score", 'n' },           { "tick_seconds", 'n' },
	{ "snapshot_interval_seconds", 'n' },  { "host_stall_share", 'n' },
	{ "host_stall_min_workers", 'i' },     { "progress_stall_seconds", 'n' },
	{ "spec_refresh_seconds", 'n' },
	{ NULL, 0 },
};
static const struct key_info rs_keys[] = {
	{ "max_retries", 'i' },
	{ "retry_interval_seconds", 'n' },
	{ "backoff_multiplier", 'n' },
	{ "circuit_breaker_enabled", 'b' },
	{ "circuit_breaker_threshold", 'i' },
	{ "circuit_breaker_reset_seconds", 'n' },
	{ "retry_reset_seconds", 'n' },
	{ "retry_jitter", 'n' },
	{ "token_pool", 'i' },
	{ "kill_grace_seconds", 'n' },
	{ NULL, 0 },
};
static const struct key_info af_keys[] = {
	{ "enabled", 'b' },
	{ "min_confidence_threshold", 'n' },
	{ "max_fixes_per_hour", 'i' },
	{ "dry_run", 'b' },
	{ "notification_enabled", 'b' },
	{ "notify_command", 's' },
	{ "notify_timeout_seconds", 'n' },
	{ NULL, 0 },
};

static const struct kind HB = { HB_PATH, runbook_heartbeat, hb_keys,
				sizeof(struct vigil_heartbeat_policy), hb_parse, hb_load,
				hb_defaults, hb_to_json };
static const struct kind RS = { RS_PATH, runbook_restart, rs_keys,
				sizeof(struct vigil_restart_policy), rs_parse, rs_load,
				rs_defaults, rs_to_json };
static const struct kind AF = { AF_PATH, runbook_autofix, af_keys,
				sizeof(struct vigil_autofix_policy), af_parse, af_load,
				af_defaults, af_to_json };
static const struct kind *const KINDS[] = { &HB, &RS, &AF };

/* ------------------------------------------------------------- helpers */

#define assert_contains(hay, needle)                                                       \
	do {                                                                               \
		const char *h_ = (hay), *n_ = (needle);                                    \
		if (strstr(h_, n_) == NULL)                                                \
			fail_msg("expected \"%s\" in \"%s\"", n_, h_);                     \
	} while (0)

static char last_err[2048];
static char last_warn[2048];

/* Parses text (len bytes) expecting -EINVAL.  Checks that err names the
 * path, the key (when key is not NULL) and also (when not NULL), is one
 * line, and that the output struct was not touched. */
static void bad_n(const struct kind *k, const char *text, size_t len, const char *key,
		  const char *also)
{
	union any_policy out, before;
	int r;

	memset(&out, 0xa5, sizeof(out));
	memcpy(&before, &out, sizeof(out));
	memset(last_err, 'x', sizeof(last_err));
	r = k->parse(text, len, k->path, &out, last_err, sizeof(last_err), last_warn,
		     sizeof(last_warn));
	if (r != -EINVAL)
		fail_msg("%s: parsing '%.*s' returned %d (err '%s'), expected -EINVAL", k->path,
			 (int)len, text, r, r == 0 ? "" : last_err);
	if (memcmp(&out, &before, sizeof(out)) != 0)
		fail_msg("%s: parsing '%.*s' failed but modified *out", k->path, (int)len, text);
	if (memchr(last_err, '\0', sizeof(last_err)) == NULL)
		fail_msg("err not terminated");
	assert_contains(last_err, k->path);
	if (key != NULL) {
		char q[256];
		snprintf(q, sizeof(q), "key '%s'", key);
		assert_contains(last_err, q);
	}
	if (also != NULL)
		assert_contains(last_err, also);
	if (strchr(last_err, '\n') != NULL)
		fail_msg("err has a newline: '%s'", last_err);
}

static void bad(const struct kind *k, const char *text, const char *key, const char *also)
{
	bad_n(k, text, strlen(text), key, also);
}

/* Parses text expecting success into *out; warn goes to last_warn. */
static void good(const struct kind *k, const char *text, void *out)
{
	char err[1024];
	int r = k->parse(text, strlen(text), k->path, out, err, sizeof(err), last_warn,
			 sizeof(last_warn));
	if (r != 0)
		fail_msg("%s: parsing '%s' returned %d: %s", k->path, text, r, err);
	assert_string_equal(err, "");
}

/* {"key": value} with optional extra members before it. */
static void one_key(char *buf, size_t len, const char *extra, const char *key, const char *value)
{
	snprintf(buf, len, "{%s\"%s\": %s}", extra != NULL ? extra : "", key, value);
}

/* --------------------------------------------------------------- defaults */

static void test_heartbeat_defaults(void **state)
{
	(void)state;
	struct vigil_heartbeat_policy p;
	memset(&p, 0xa5, sizeof(p));
	vigil_policy_heartbeat_defaults(&p);
	assert_true(p.heartbeat_interval_seconds == 30);
	assert_true(p.heartbeat_timeout_seconds == 120);
	assert_true(p.zombie_threshold_seconds == 300);
	assert_true(p.health_score_decay_rate == 5);
	assert_true(p.min_health_score == 20);
	assert_true(p.tick_seconds == 0.1);
	assert_true(p.snapshot_interval_seconds == 1);
	assert_true(p.host_stall_share == 0.5);
	assert_int_equal(p.host_stall_min_workers, 4);
	assert_int_equal(p.interval_ns, 30000000000ull);
	assert_int_equal(p.timeout_ns, 120000000000ull);
	assert_int_equal(p.zombie_ns, 300000000000ull);
	assert_int_equal(p.tick_ns, 100000000ull);
	assert_int_equal(p.snapshot_ns, 1000000000ull);
}

static void test_restart_defaults(void **state)
{
	(void)state;
	struct vigil_restart_policy p;
	memset(&p, 0xa5, sizeof(p));
	vigil_policy_restart_defaults(&p);
	assert_int_equal(p.max_retries, 3);
	assert_true(p.retry_interval_seconds == 60);
	assert_true(p.backoff_multiplier == 2);
	assert_true(p.circuit_breaker_enabled);
	assert_int_equal(p.circuit_breaker_threshold, 5);
	assert_true(p.circuit_breaker_reset_seconds == 300);
	assert_true(p.retry_reset_seconds == 600);
	assert_true(p.retry_jitter == 0);
	assert_true(p.kill_grace_seconds == 5);
	assert_int_equal(p.token_pool, 1000000);
}

static void test_autofix_defaults(void **state)
{
	(void)state;
	struct vigil_autofix_policy p;
	memset(&p, 0xa5, sizeof(p));
	vigil_policy_autofix_defaults(&p);
	assert_true(p.enabled);
	assert_true(p.min_confidence_threshold == 0.7);
	assert_int_equal(p.max_fixes_per_hour, 10);
	assert_false(p.dry_run);
	assert_true(p.notification_enabled);
	assert_string_equal(p.notify_command, "");
	assert_true(p.notify_timeout_seconds == 5);
}

/* The runbook's files, and "{}", give exactly the defaults, with no warning. */
static void test_runbook_examples_parse_to_defaults(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		union any_policy out, def;
		memset(&out, 0xa5, sizeof(out));
		memset(&def, 0, sizeof(def));
		k->defaults(&def);
		good(k, k->runbook, &out);
		assert_memory_equal(&out, &def, k->size);
		assert_string_equal(last_warn, "");
		memset(&out, 0xa5, sizeof(out));
		good(k, "{}", &out);
		assert_memory_equal(&out, &def, k->size);
		memset(&out, 0xa5, sizeof(out));
		good(k, " \n\t{ }\r\n ", &out);
		assert_memory_equal(&out, &def, k->size);
	}
}

/* The runbook's "Too Many False Positives" edit: timeout 180, zombie 600. */
static void test_runbook_false_positive_edit(void **state)
{
	(void)state;
	struct vigil_heartbeat_policy p;
	good(&HB,
	     "{\"heartbeat_interval_seconds\":30,\"heartbeat_timeout_seconds\":180,"
	     "\"zombie_threshold_seconds\":600,\"health_score_decay_rate\":5,\"min_health_score\":20}",
	     &p);
	assert_true(p.heartbeat_timeout_seconds == 180);
	assert_int_equal(p.timeout_ns, 180000000000ull);
	assert_int_equal(p.zombie_ns, 600000000000ull);
}

/* -------------------------------------------- fractional and derived ns */

static void test_heartbeat_fractional_and_tick_clamp(void **state)
{
	(void)state;
	struct vigil_heartbeat_policy p;

	good(&HB,
	     "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.2,"
	     "\"zombie_threshold_seconds\":0.5}",
	     &p);
	assert_true(p.heartbeat_interval_seconds == 0.05);
	assert_int_equal(p.interval_ns, 50000000ull);
	assert_int_equal(p.timeout_ns, 200000000ull);
	assert_int_equal(p.zombie_ns, 500000000ull);
	assert_true(p.tick_seconds == 0.1); /* as written; the effective tick is clamped */
	assert_int_equal(p.tick_ns, 12500000ull);

	/* a tick shorter than interval/4 is kept */
	good(&HB, "{\"tick_seconds\":0.005,\"snapshot_interval_seconds\":0.01}", &p);
	assert_int_equal(p.tick_ns, 5000000ull);
	assert_int_equal(p.snapshot_ns, 10000000ull);

	/* a quarter of the interval even at the shortest interval (README "How verdicts are timed") */
	good(&HB, "{\"heartbeat_interval_seconds\":0.001,\"tick_seconds\":0.001}", &p);
	assert_int_equal(p.interval_ns, 1000000ull);
	assert_int_equal(p.tick_ns, 250000ull);

	/* exactly a quarter */
	good(&HB, "{\"heartbeat_interval_seconds\":0.4,\"tick_seconds\":0.1}", &p);
	assert_int_equal(p.tick_ns, 100000000ull);
	good(&HB, "{\"heartbeat_interval_seconds\":0.3,\"tick_seconds\":0.1}", &p);
	assert_int_equal(p.tick_ns, 75000000ull);

	/* rounding to the nearest nanosecond */
	good(&HB, "{\"heartbeat_interval_seconds\":1.0000000004,\"heartbeat_timeout_seconds\":1.0000000006}",
	     &p);
	assert_int_equal(p.interval_ns, 1000000000ull);
	assert_int_equal(p.timeout_ns, 1000000001ull);

	/* the largest values fit */
	good(&HB, "{\"heartbeat_interval_seconds\":86400,\"heartbeat_timeout_seconds\":604800,"
		  "\"zombie_threshold_seconds\":2592000}",
	     &p);
	assert_int_equal(p.zombie_ns, 2592000000000000ull);
	assert_int_equal(p.tick_ns, 100000000ull);
}

static void test_ordering_equal_accepted(void **state)
{
	(void)state;
	struct vigil_heartbeat_policy p;
	good(&HB,
	     "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.05,"
	     "\"zombie_threshold_seconds\":0.05}",
	     &p);
	assert_int_equal(p.interval_ns, 50000000ull);
	assert_int_equal(p.timeout_ns, 50000000ull);
	assert_int_equal(p.zombie_ns, 50000000ull);
	good(&HB, "{\"heartbeat_timeout_seconds\":30}", &p); /* == default interval */
	good(&HB, "{\"zombie_threshold_seconds\":120}", &p); /* == default timeout */
	/* key order in the file does not matter */
	good(&HB,
	     "{\"zombie_threshold_seconds\":3,\"heartbeat_timeout_seconds\":2,"
	     "\"heartbeat_interval_seconds\":1}",
	     &p);
	assert_int_equal(p.zombie_ns, 3000000000ull);
}

static void test_ordering_violations(void **state)
{
	(void)state;
	bad(&HB, "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.01}",
	    "heartbeat_timeout_seconds", "at least heartbeat_interval_seconds");
	assert_string_equal(last_err,
			    HB_PATH ": key 'heartbeat_timeout_seconds': expected a number in "
				    "[0.05, 604800] (at least heartbeat_interval_seconds), got 0.01");

	bad(&HB,
	    "{\"heartbeat_interval_seconds\":10,\"heartbeat_timeout_seconds\":20,"
	    "\"zombie_threshold_seconds\":19.999}",
	    "zombie_threshold_seconds", "at least heartbeat_timeout_seconds");
	assert_contains(last_err, "[20, 2592000]");
	assert_contains(last_err, "got 19.999");

	/* against a default: interval defaults to 30 */
	bad(&HB, "{\"heartbeat_timeout_seconds\":29.5}", "heartbeat_timeout_seconds",
	    "at least heartbeat_interval_seconds");
	/* a default overtaken by an explicit value */
	bad(&HB, "{\"heartbeat_interval_seconds\":200}", "heartbeat_timeout_seconds", "missing");
	assert_contains(last_err, "default 120");
	assert_contains(last_err, "heartbeat_interval_seconds");
	bad(&HB, "{\"heartbeat_timeout_seconds\":400}", "zombie_threshold_seconds", "missing");
	assert_contains(last_err, "default 300");
}

/* ------------------------------------------------------- ranges per key */

struct range_case {
	const struct kind *k;
	const char *key;
	const char *lo, *hi;       /* accepted */
	const char *below, *above; /* rejected, naming key */
	const char *extra_lo;      /* other members needed for lo and below */
	const char *extra_hi;      /* ... and for hi and above */
};

static const struct range_case range_cases[] = {
	{ &HB, "heartbeat_interval_seconds", "0.001", "86400", "0.0009", "86400.001", NULL,
	  "\"heartbeat_timeout_seconds\":86400,\"zombie_threshold_seconds\":86400," },
	{ &HB, "heartbeat_timeout_seconds", "0.001", "604800", "0.0009", "604800.5",
	  "\"heartbeat_interval_seconds\":0.001,", "\"zombie_threshold_seconds\":604800," },
	{ &HB, "zombie_threshold_seconds", "0.001", "2592000", "0.0009", "2592000.5",
	  "\"heartbeat_interval_seconds\":0.001,\"heartbeat_timeout_seconds\":0.001,", NULL },
	{ &HB, "health_score_decay_rate", "0", "100", "-0.001", "100.001", NULL, NULL },
	{ &HB, "min_health_score", "0", "100", "-1", "101", NULL, NULL },
	{ &HB, "tick_seconds", "0.001", "10", "0.0009", "10.001", NULL, NULL },
	{ &HB, "snapshot_interval_seconds", "0.01", "3600", "0.0099", "3600.001", NULL, NULL },
	{ &HB, "host_stall_share", "1e-9", "1", "0", "1.0001", NULL, NULL },
	{ &HB, "host_stall_min_workers", "1", "1000000", "0", "1000001", NULL, NULL },
	{ &HB, "progress_stall_seconds", "0", "2592000", "-1", "2592000.5", NULL, NULL },
	{ &HB, "spec_refresh_seconds", "0.01", "86400", "0.0099", "86400.5", NULL, NULL },
	{ &RS, "max_retries", "0", "1000", "-1", "1001", NULL, NULL },
	{ &RS, "retry_interval_seconds", "0", "604800", "-0.5", "604800.5", NULL, NULL },
	{ &RS, "backoff_multiplier", "1", "100", "0.99", "100.01", NULL, NULL },
	{ &RS, "circuit_breaker_threshold", "1", "100000", "0", "100001", NULL, NULL },
	{ &RS, "circuit_breaker_reset_seconds", "0", "2592000", "-1", "2592001", NULL, NULL },
	{ &RS, "retry_reset_seconds", "0", "2592000", "-1", "2592000.5", NULL, NULL },
	{ &RS, "kill_grace_seconds", "0", "3600", "-0.001", "3600.5", NULL, NULL },
	{ &RS, "retry_jitter", "0", "1", "-0.01", "1.01", NULL, NULL },
	{ &RS, "token_pool", "0", "1000000000000000", "-1", "1000000000000001", NULL, NULL },
	{ &AF, "min_confidence_threshold", "0", "1", "-0.1", "1.1", NULL, NULL },
	{ &AF, "max_fixes_per_hour", "0", "1000000", "-1", "1000001", NULL, NULL },
	{ &AF, "notify_timeout_seconds", "0.1", "300", "0.09", "300.1", NULL, NULL },
};

static void accept_value(const struct kind *k, const char *extra, const char *key, const char *v)
{
	char text[512];
	union any_policy out;
	json_t *obj, *got;

	one_key(text, sizeof(text), extra, key, v);
	memset(&out, 0xa5, sizeof(out));
	good(k, text, &out);
	obj = k->to_json(&out); /* read the stored value back through to_json */
	assert_non_null(obj);
	got = json_object_get(obj, key);
	if (got == NULL || !json_is_number(got) || json_number_value(got) != strtod(v, NULL))
		fail_msg("%s: %s = %s was not stored", k->path, key, v);
	json_decref(obj);
}

static void test_ranges_boundaries(void **state)
{
	(void)state;
	char text[512];
	for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
		const struct range_case *c = &range_cases[i];
		accept_value(c->k, c->extra_lo, c->key, c->lo);
		accept_value(c->k, c->extra_hi, c->key, c->hi);
		char got[64], hi[64];
		snprintf(hi, sizeof(hi), ", %s]", c->hi);
		one_key(text, sizeof(text), c->extra_lo, c->key, c->below);
		bad(c->k, text, c->key, "expected ");
		snprintf(got, sizeof(got), "got %s", c->below);
		assert_contains(last_err, got);
		assert_contains(last_err, hi); /* the range is stated */
		one_key(text, sizeof(text), c->extra_hi, c->key, c->above);
		bad(c->k, text, c->key, "expected ");
		snprintf(got, sizeof(got), "got %s", c->above);
		assert_contains(last_err, got);
		assert_contains(last_err, hi);
	}
	/* an open lower bound is shown as such */
	bad(&HB, "{\"host_stall_share\":0}", "host_stall_share", "expected a number in (0, 1], got 0");
	bad(&RS, "{\"max_retries\":1001}", "max_retries", "expected an integer in [0, 1000], got 1001");
}

static void test_negative_values(void **state)
{
	(void)state;
	char text[256];
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		for (const struct key_info *ki = k->keys; ki->name != NULL; ki++) {
			if (ki->type != 'n' && ki->type != 'i')
				continue;
			one_key(text, sizeof(text), NULL, ki->name, "-1");
			bad(k, text, ki->name, "got -1");
			one_key(text, sizeof(text), NULL, ki->name, "-1e-300");
			bad(k, text, ki->name, "got -1e-300");
		}
	}
}

static void test_zero_where_not_allowed(void **state)
{
	(void)state;
	static const struct {
		const struct kind *k;
		const char *key;
	} zeros[] = {
		{ &HB, "heartbeat_interval_seconds" }, { &HB, "heartbeat_timeout_seconds" },
		{ &HB, "zombie_threshold_seconds" },   { &HB, "tick_seconds" },
		{ &HB, "snapshot_interval_seconds" },  { &HB, "host_stall_share" },
		{ &HB, "host_stall_min_workers" },     { &RS, "backoff_multiplier" },
		{ &RS, "circuit_breaker_threshold" },  { &AF, "notify_timeout_seconds" },
	};
	char text[256];
	for (size_t i = 0; i < sizeof(zeros) / sizeof(zeros[0]); i++) {
		one_key(text, sizeof(text), NULL, zeros[i].key, "0");
		bad(zeros[i].k, text, zeros[i].key, "got 0");
		one_key(text, sizeof(text), NULL, zeros[i].key, "0.0");
		bad(zeros[i].k, text, zeros[i].key, "got 0");
		one_key(text, sizeof(text), NULL, zeros[i].key, "-0");
		bad(zeros[i].k, text, zeros[i].key, NULL);
	}
	/* and zero where it is allowed */
	struct vigil_restart_policy r;
	good(&RS, "{\"max_retries\":0,\"retry_interval_seconds\":0,\"retry_jitter\":-0,\"token_pool\":0}", &r);
	assert_int_equal(r.max_retries, 0);
	assert_true(r.retry_jitter == 0 && !signbit(r.retry_jitter)); /* -0 stored as 0 */
	assert_int_equal(r.token_pool, 0);
}

/* ---------------------------------------------------------- wrong types */

static void test_wrong_types_every_key(void **state)
{
	(void)state;
	static const char *const for_numbers[] = { "\"30\"", "\"\"",   "true", "false", "null",
						    "[]",     "[30]",   "{}",   "{\"v\":30}" };
	static const char *const for_bools[] = { "0",      "1",  "0.0", "\"yes\"", "\"true\"",
						  "\"\"",   "null", "[]",  "[true]",  "{}" };
	static const char *const for_strings[] = { "5", "0", "true", "false", "[]",
						    "[\"echo\"]", "{}", "{\"cmd\":\"x\"}" };
	char text[256];

	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		for (const struct key_info *ki = k->keys; ki->name != NULL; ki++) {
			const char *const *vals;
			size_t n;
			if (ki->type == 'b') {
				vals = for_bools;
				n = sizeof(for_bools) / sizeof(for_bools[0]);
			} else if (ki->type == 's') {
				vals = for_strings;
				n = sizeof(for_strings) / sizeof(for_strings[0]);
			} else {
				vals = for_numbers;
				n = sizeof(for_numbers) / sizeof(for_numbers[0]);
			}
			for (size_t v = 0; v < n; v++) {
				one_key(text, sizeof(text), NULL, ki->name, vals[v]);
				bad(k, text, ki->name, "expected ");
				assert_contains(last_err, ", got ");
			}
		}
	}
	/* what was found is shown */
	bad(&RS, "{\"circuit_breaker_enabled\":\"yes\"}", "circuit_breaker_enabled",
	    "expected true or false, got \"yes\"");
	assert_string_equal(last_err,
			    RS_PATH ": key 'circuit_breaker_enabled': expected true or false, got \"yes\"");
	bad(&RS, "{\"circuit_breaker_enabled\":1}", "circuit_breaker_enabled",
	    "expected true or false, got 1");
	bad(&AF, "{\"dry_run\":0}", "dry_run", "expected true or false, got 0");
	bad(&HB, "{\"heartbeat_interval_seconds\":\"30\"}", "heartbeat_interval_seconds",
	    "expected a number in [0.001, 86400], got \"30\"");
	bad(&HB, "{\"min_health_score\":[1,2]}", "min_health_score", "got an array");
	bad(&HB, "{\"min_health_score\":{}}", "min_health_score", "got an object");
	bad(&HB, "{\"min_health_score\":null}", "min_health_score", "got null");
	bad(&RS, "{\"max_retries\":true}", "max_retries", "expected an integer in [0, 1000], got true");
	bad(&AF, "{\"notify_command\":5}", "notify_command",
	    "expected a string of at most 1023 bytes or null, got 5");
	/* untrusted text in a message is escaped and bounded */
	bad(&HB, "{\"tick_seconds\":\"a\\nb\\u0001\\u00e9\"}", "tick_seconds", "got \"a\\x0ab\\x01\\xc3\\xa9\"");
	char longer[128] = "{\"tick_seconds\":\"";
	memset(longer + strlen(longer), 'x', 71);
	strcat(longer, "\"}");
	bad(&HB, longer, "tick_seconds", "got a string of 71 bytes");
	bad(&HB, "{\"tick_seconds\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", "tick_seconds",
	    "got \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\""); /* 40: shown */
}

/* ------------------------------------------------------- integer keys */

static void test_integer_keys(void **state)
{
	(void)state;
	static const struct {
		const struct kind *k;
		const char *key;
		const char *frac;
	} cases[] = {
		{ &RS, "max_retries", "3.5" },
		{ &RS, "circuit_breaker_threshold", "5.5" },
		{ &RS, "token_pool", "1.5" },
		{ &AF, "max_fixes_per_hour", "0.5" },
		{ &HB, "host_stall_min_workers", "4.000001" },
	};
	char text[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		one_key(text, sizeof(text), NULL, cases[i].key, cases[i].frac);
		bad(cases[i].k, text, cases[i].key, "expected an integer in [");
		assert_contains(last_err, cases[i].frac);
	}
	/* integral reals are integers */
	struct vigil_restart_policy r;
	good(&RS, "{\"max_retries\":3.0,\"circuit_breaker_threshold\":1e3,\"token_pool\":1e15}", &r);
	assert_int_equal(r.max_retries, 3);
	assert_int_equal(r.circuit_breaker_threshold, 1000);
	assert_int_equal(r.token_pool, 1000000000000000ull);
	good(&RS, "{\"token_pool\":999999999999999}", &r);
	assert_int_equal(r.token_pool, 999999999999999ull);
}

/* ----------------------------------------------- huge and NaN-like text */

static void test_huge_numbers(void **state)
{
	(void)state;
	static const char *const huge[] = { "1e300", "-1e300", "18446744073709551616",
					    "-18446744073709551616", "9223372036854775807",
					    "1.7976931348623157e308" };
	char text[256];
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		for (const struct key_info *ki = k->keys; ki->name != NULL; ki++) {
			if (ki->type != 'n' && ki->type != 'i')
				continue;
			for (size_t h = 0; h < sizeof(huge) / sizeof(huge[0]); h++) {
				one_key(text, sizeof(text), NULL, ki->name, huge[h]);
				bad(k, text, ki->name, "expected ");
			}
		}
	}
	bad(&RS, "{\"max_retries\":18446744073709551616}", "max_retries",
	    "got 1.8446744073709552e+19");
	bad(&HB, "{\"tick_seconds\":1e300}", "tick_seconds", "got 1e+300");
}

static void test_nan_like_is_not_json(void **state)
{
	(void)state;
	static const char *const nans[] = { "NaN", "nan", "Infinity", "-Infinity", "inf",
					    "1e999", "-1e999", "0x10", "+1", "01", ".5", "1." };
	char text[256];
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		for (size_t n = 0; n < sizeof(nans) / sizeof(nans[0]); n++) {
			one_key(text, sizeof(text), NULL, k->keys[1].name, nans[n]);
			bad(k, text, NULL, "not valid JSON at line 1 column ");
		}
	}
}

/* ------------------------------------------------------ malformed files */

static void test_not_json(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"hello",
		"{heartbeat_interval_seconds: 30}",
		"{'max_retries': 3}",
		"{\"max_retries\": 3,}",
		"{\"max_retries\" 3}",
		"{\"max_retries\": 3} {}",
		"{} x",
		"{\"max_retries\": 3 /* comment */}",
		"{\"max_retries\": \"\xff\"}",
		"{\"max_retries\": \"\\u0000\"}",
		"{\"notify_command\": \"a\\u0000b\"}",
	};
	for (size_t i = 0; i < 3; i++)
		for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
			bad(KINDS[i], texts[t], NULL, "not valid JSON at line ");
	/* jansson's text follows, with raw bytes escaped */
	bad(&RS, "{\"max_retries\": \x01}", NULL, "invalid token near '\\x01'");
	assert_null(strchr(last_err, '\x01'));
	bad(&RS, "{\"max_retries\": \xff}", NULL, "0xff");
	assert_null(strchr(last_err, '\xff'));
}

static void test_truncated_json(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const char *rb = KINDS[i]->runbook;
		size_t full = strlen(rb);
		/* every proper prefix that is not just whitespace fails */
		for (size_t len = 1; len <= full - 2; len++) {
			bad_n(KINDS[i], rb, len, NULL, "not valid JSON at line ");
		}
	}
	bad(&HB, "{\"heartbeat_interval_seconds\": 30", NULL, "line 1 column ");
}

static void test_empty_and_whitespace(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		bad_n(k, "", 0, NULL, "empty file");
		bad_n(k, NULL, 0, NULL, "empty file");
		bad(k, " ", NULL, "empty file");
		bad(k, " \n\t\r\n  ", NULL, "only whitespace");
		bad(k, "\xef\xbb\xbf", NULL, "empty file");
	}
}

static void test_top_level_not_object(void **state)
{
	(void)state;
	static const struct {
		const char *text, *got;
	} cases[] = {
		{ "[]", "got an array" },  { "[{\"max_retries\":3}]", "got an array" },
		{ "\"str\"", "got a string" }, { "42", "got a number" },
		{ "3.5", "got a number" }, { "null", "got null" },
		{ "true", "got true" },    { "false", "got false" },
	};
	for (size_t i = 0; i < 3; i++)
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
			bad(KINDS[i], cases[c].text, NULL, "expected a JSON object at the top level");
			assert_contains(last_err, cases[c].got);
		}
	bad(&HB, "[1]", NULL, NULL);
	assert_string_equal(last_err, HB_PATH ": expected a JSON object at the top level, got an array");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	bad(&RS, "{\"max_retries\":3,\"max_retries\":4}", "max_retries", "more than once");
	bad(&RS, "{\"max_retries\":3,\"max_retries\":3}", "max_retries", "more than once");
	bad(&HB, "{\"foo\":1,\"foo\":2}", "foo", "more than once"); /* unknown keys too */
	bad(&AF, "{\"enabled\":true,\n\"dry_run\":false,\n\"enabled\":false}", "enabled", "line 3");
	/* long keys (jansson's own text leaves them out), escapes, spacing */
	bad(&HB, "{\"heartbeat_interval_seconds\": 30,\n \"heartbeat_interval_seconds\" : 31}",
	    "heartbeat_interval_seconds", "more than once (line 2 column ");
	bad(&HB, "{\"tick_seconds\":0.5,\"tick_\\u0073econds\":0.5}", "tick_seconds",
	    "more than once");
	bad(&HB, "{\"a\\\"b\\\\\":1,\"a\\\"b\\\\\":2}", "a\"b\\", "more than once");
	bad(&HB, "{\"a\\u0001\":1,\"a\\u0001\":2}", "a\\x01", "more than once");
	bad(&HB, "\xef\xbb\xbf{\"\":1,\"\":2}", "", "more than once");
}

static void test_embedded_nul(void **state)
{
	(void)state;
	static const char t1[] = "{\"max_retries\":3}\0";
	static const char t2[] = "{\"max_retries\":\0 3}";
	static const char t3[] = "{\"max_retries\":1\0}";
	static const char t4[] = "\0{}";
	for (size_t i = 0; i < 3; i++) {
		bad_n(KINDS[i], t1, sizeof(t1) - 1, NULL, "NUL byte at offset 17");
		bad_n(KINDS[i], t2, sizeof(t2) - 1, NULL, "NUL byte");
		bad_n(KINDS[i], t3, sizeof(t3) - 1, NULL, "NUL byte");
		bad_n(KINDS[i], t4, sizeof(t4) - 1, NULL, "NUL byte at offset 0");
	}
}

static void test_not_nul_terminated(void **state)
{
	(void)state;
	/* len bytes only: what follows must not be read */
	char buf[] = "{\"max_retries\":7}garbage";
	struct vigil_restart_policy r;
	assert_int_equal(vigil_policy_restart_parse(buf, 17, RS_PATH, &r, NULL, 0, NULL, 0), 0);
	assert_int_equal(r.max_retries, 7);
	char *heap = malloc(17);
	assert_non_null(heap);
	memcpy(heap, "{\"max_retries\":8}", 17);
	assert_int_equal(vigil_policy_restart_parse(heap, 17, RS_PATH, &r, NULL, 0, NULL, 0), 0);
	assert_int_equal(r.max_retries, 8);
	free(heap);
}

static void test_bom_accepted(void **state)
{
	(void)state;
	struct vigil_restart_policy r;
	good(&RS, "\xef\xbb\xbf{\"max_retries\":9}", &r);
	assert_int_equal(r.max_retries, 9);
}

/* --------------------------------------------------- unknown keys warn */

static void test_unknown_keys_warn(void **state)
{
	(void)state;
	union any_policy out, def;
	char warn[16];

	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		memset(&def, 0, sizeof(def));
		k->defaults(&def);
		memset(&out, 0xa5, sizeof(out));
		good(k, "{\"foo\":1,\"bar\":[1,{\"x\":null}]}", &out);
		assert_memory_equal(&out, &def, k->size);
		char expect[512];
		snprintf(expect, sizeof(expect),
			 "%s: unknown key 'foo' ignored; unknown key 'bar' ignored", k->path);
		assert_string_equal(last_warn, expect);
	}
	/* a known key beside an unknown one is still applied */
	struct vigil_restart_policy r;
	good(&RS, "{\"max_retries\":5,\"Max_Retries\":6}", &r);
	assert_int_equal(r.max_retries, 5);
	assert_string_equal(last_warn, RS_PATH ": unknown key 'Max_Retries' ignored");
	/* warn may be NULL */
	assert_int_equal(vigil_policy_restart_parse("{\"x\":1}", 7, RS_PATH, &r, NULL, 0, NULL, 0), 0);
	/* small buffer: truncated, terminated, marked */
	assert_int_equal(vigil_policy_restart_parse("{\"x\":1}", 7, RS_PATH, &r, NULL, 0, warn,
						    sizeof(warn)),
			 0);
	assert_int_equal(strlen(warn), sizeof(warn) - 1);
	assert_string_equal(warn + sizeof(warn) - 4, "...");
	/* keys are escaped */
	good(&HB, "{\"a\\nb\\u0007\":1}", &out);
	assert_string_equal(last_warn, HB_PATH ": unknown key 'a\\x0ab\\x07' ignored");
	/* no warnings: empty string, also on the error path */
	good(&HB, "{}", &out);
	assert_string_equal(last_warn, "");
	bad(&HB, "{\"foo\":1,\"tick_seconds\":99}", "tick_seconds", NULL);
	assert_contains(last_warn, "unknown key 'foo'");
}

/* ----------------------------------------------------- notify_command */

static void test_notify_command(void **state)
{
	(void)state;
	struct vigil_autofix_policy a;
	char *text = malloc(2200);
	assert_non_null(text);

	good(&AF, "{\"notify_command\":\"logger -t vigil\"}", &a);
	assert_string_equal(a.notify_command, "logger -t vigil");
	good(&AF, "{\"notify_command\":null}", &a);
	assert_string_equal(a.notify_command, "");
	good(&AF, "{\"notify_command\":\"\"}", &a);
	assert_string_equal(a.notify_command, "");

	/* 1023 bytes: the longest accepted */
	strcpy(text, "{\"notify_command\":\"");
	memset(text + strlen(text), 'c', 1023);
	strcpy(text + 19 + 1023, "\"}");
	good(&AF, text, &a);
	assert_int_equal(strlen(a.notify_command), 1023);

	/* 1024 bytes: refused, the limit and the length said */
	strcpy(text, "{\"notify_command\":\"");
	memset(text + strlen(text), 'c', 1024);
	strcpy(text + 19 + 1024, "\"}");
	bad(&AF, text, "notify_command", "at most 1023 bytes");
	assert_contains(last_err, "got a string of 1024 bytes");

	/* multibyte: the limit is in bytes (1022 + 2 = 1024) */
	strcpy(text, "{\"notify_command\":\"");
	memset(text + strlen(text), 'c', 1022);
	strcpy(text + 19 + 1022, "\xc3\xa9\"}");
	bad(&AF, text, "notify_command", "1024 bytes");
	free(text);
}

/* ---------------------------------------------------- err and warn NULL */

static void test_null_buffers(void **state)
{
	(void)state;
	struct vigil_heartbeat_policy h;
	char err[8];
	assert_int_equal(vigil_policy_heartbeat_parse("[", 1, HB_PATH, &h, NULL, 0, NULL, 0),
			 -EINVAL);
	assert_int_equal(vigil_policy_heartbeat_parse("[", 1, NULL, &h, err, sizeof(err), NULL, 0),
			 -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(vigil_policy_heartbeat_parse("{}", 2, HB_PATH, NULL, err, sizeof(err), NULL, 0),
			 -EINVAL);
	assert_int_equal(vigil_policy_heartbeat_parse(NULL, 5, HB_PATH, &h, err, sizeof(err), NULL, 0),
			 -EINVAL);
}

/* -------------------------------------------------------------- load */

struct tmpdir {
	char path[64];
	int fd;
};

static void tmpdir_make(struct tmpdir *t)
{
	strcpy(t->path, "/tmp/vigil-test-policy-XXXXXX");
	assert_non_null(mkdtemp(t->path));
	t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t->fd >= 0);
}

static void write_file(struct tmpdir *t, const char *name, const char *data, size_t len)
{
	int fd = openat(t->fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void tmpdir_remove(struct tmpdir *t, const char *const *names)
{
	for (; *names != NULL; names++)
		if (unlinkat(t->fd, *names, 0) < 0)
			(void)unlinkat(t->fd, *names, AT_REMOVEDIR);
	close(t->fd);
	assert_int_equal(rmdir(t->path), 0);
}

/* Loads name expecting error rc; checks err, the display path and *out. */
static void load_bad(const struct kind *k, int dirfd, const char *name, int rc, const char *also)
{
	union any_policy out, before;
	char err[512], warn[512];
	bool missing = true;
	int r;

	memset(&out, 0xa5, sizeof(out));
	memcpy(&before, &out, sizeof(out));
	r = k->load(dirfd, name, k->path, &out, &missing, err, sizeof(err), warn, sizeof(warn));
	if (r != rc)
		fail_msg("loading %s returned %d (%s), expected %d", name, r, err, rc);
	assert_false(missing);
	assert_memory_equal(&out, &before, sizeof(out));
	assert_contains(err, k->path);
	if (also != NULL)
		assert_contains(err, also);
}

static void test_load_missing_gives_defaults(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		union any_policy out, def;
		char err[256] = "x", warn[256] = "x";
		bool missing = false;
		memset(&out, 0xa5, sizeof(out));
		memset(&def, 0, sizeof(def));
		k->defaults(&def);
		assert_int_equal(k->load(t.fd, "nope.json", k->path, &out, &missing, err, sizeof(err),
					 warn, sizeof(warn)),
				 0);
		assert_true(missing);
		assert_memory_equal(&out, &def, k->size);
		assert_string_equal(err, "");
		assert_string_equal(warn, "");
		/* missing may be NULL */
		assert_int_equal(k->load(t.fd, "nope.json", NULL, &out, NULL, NULL, 0, NULL, 0), 0);
	}
	static const char *const none[] = { NULL };
	tmpdir_remove(&t, none);
}

static void test_load_valid_files(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	write_file(&t, VIGIL_POLICY_HEARTBEAT_FILE,
		   "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.2,"
		   "\"zombie_threshold_seconds\":0.5,\"later\":1}\n",
		   strlen("{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.2,"
			  "\"zombie_threshold_seconds\":0.5,\"later\":1}\n"));
	write_file(&t, VIGIL_POLICY_RESTART_FILE, runbook_restart, strlen(runbook_restart));
	write_file(&t, VIGIL_POLICY_AUTOFIX_FILE, "{\"dry_run\":true}", 16);

	struct vigil_heartbeat_policy h;
	struct vigil_restart_policy r, rdef;
	struct vigil_autofix_policy a;
	char err[256], warn[256];
	bool missing = true;

	assert_int_equal(vigil_policy_heartbeat_load(t.fd, VIGIL_POLICY_HEARTBEAT_FILE, HB_PATH, &h,
						     &missing, err, sizeof(err), warn, sizeof(warn)),
			 0);
	assert_false(missing);
	assert_int_equal(h.interval_ns, 50000000ull);
	assert_int_equal(h.tick_ns, 12500000ull);
	assert_string_equal(warn, HB_PATH ": unknown key 'later' ignored");

	missing = true;
	assert_int_equal(vigil_policy_restart_load(t.fd, VIGIL_POLICY_RESTART_FILE, RS_PATH, &r,
						   &missing, err, sizeof(err), warn, sizeof(warn)),
			 0);
	assert_false(missing);
	vigil_policy_restart_defaults(&rdef);
	assert_memory_equal(&r, &rdef, sizeof(r));

	assert_int_equal(vigil_policy_autofix_load(t.fd, VIGIL_POLICY_AUTOFIX_FILE, NULL, &a,
						   &missing, err, sizeof(err), warn, sizeof(warn)),
			 0);
	assert_true(a.dry_run);

	/* content errors come back as -EINVAL with the display path */
	write_file(&t, "bad.json", "{\"max_retries\":\"3\"}", 19);
	load_bad(&RS, t.fd, "bad.json", -EINVAL, "key 'max_retries'");
	write_file(&t, "empty.json", "", 0);
	load_bad(&RS, t.fd, "empty.json", -EINVAL, "empty file");
	/* without a display path, the name is used */
	assert_int_equal(vigil_policy_restart_load(t.fd, "bad.json", NULL, &r, NULL, err, sizeof(err),
						   NULL, 0),
			 -EINVAL);
	assert_contains(err, "bad.json: key 'max_retries'");

	static const char *const names[] = { VIGIL_POLICY_HEARTBEAT_FILE, VIGIL_POLICY_RESTART_FILE,
					     VIGIL_POLICY_AUTOFIX_FILE, "bad.json", "empty.json",
					     NULL };
	tmpdir_remove(&t, names);
}

static void test_load_refuses_non_regular(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	write_file(&t, "real.json", runbook_heartbeat, strlen(runbook_heartbeat));
	assert_int_equal(symlinkat("real.json", t.fd, "link.json"), 0);
	assert_int_equal(symlinkat("does-not-exist.json", t.fd, "dangling.json"), 0);
	assert_int_equal(mkdirat(t.fd, "dir.json", 0755), 0);
	assert_int_equal(mkfifoat(t.fd, "fifo.json", 0644), 0);

	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		load_bad(k, t.fd, "link.json", -ELOOP, "is a symbolic link, not followed");
		load_bad(k, t.fd, "dangling.json", -ELOOP, "is a symbolic link, not followed");
		load_bad(k, t.fd, "dir.json", -EISDIR, "is a directory");
		load_bad(k, t.fd, "fifo.json", -EINVAL, "is a FIFO, not a regular file");
	}
	static const char *const names[] = { "real.json", "link.json", "dangling.json", "dir.json",
					     "fifo.json", NULL };
	tmpdir_remove(&t, names);
}

static void test_load_size_limit(void **state)
{
	(void)state;
	struct tmpdir t;
	size_t max = VIGIL_POLICY_FILE_MAX_BYTES;
	char *data = malloc(max + 2);
	assert_non_null(data);
	assert_int_equal(max, 65536);
	tmpdir_make(&t);

	/* exactly the limit: a valid object padded with spaces is accepted */
	memset(data, ' ', max + 1);
	memcpy(data, "{\"max_retries\":2}", 17);
	write_file(&t, "max.json", data, max);
	struct vigil_restart_policy r;
	char err[256];
	assert_int_equal(vigil_policy_restart_load(t.fd, "max.json", RS_PATH, &r, NULL, err,
						   sizeof(err), NULL, 0),
			 0);
	assert_int_equal(r.max_retries, 2);

	/* one byte more is refused */
	write_file(&t, "big.json", data, max + 1);
	for (size_t i = 0; i < 3; i++)
		load_bad(KINDS[i], t.fd, "big.json", -EFBIG, "65537 bytes");
	free(data);
	static const char *const names[] = { "max.json", "big.json", NULL };
	tmpdir_remove(&t, names);
}

static void test_load_bad_dirfd(void **state)
{
	(void)state;
	struct vigil_restart_policy r;
	char err[256];
	assert_int_equal(vigil_policy_restart_load(-1, "x.json", RS_PATH, &r, NULL, err, sizeof(err),
						   NULL, 0),
			 -EBADF);
	assert_contains(err, RS_PATH);
	assert_int_equal(vigil_policy_restart_load(AT_FDCWD, NULL, RS_PATH, &r, NULL, err,
						   sizeof(err), NULL, 0),
			 -EINVAL);
}

/* ------------------------------------------------------------- to_json */

static void check_keys_in_order(const struct kind *k, json_t *obj)
{
	const char *key;
	json_t *v;
	size_t n = 0;
	json_object_foreach(obj, key, v) {
		(void)v;
		assert_non_null(k->keys[n].name);
		assert_string_equal(key, k->keys[n].name);
		n++;
	}
	assert_null(k->keys[n].name);
}

static void test_to_json_keys_and_types(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const struct kind *k = KINDS[i];
		union any_policy def;
		k->defaults(&def);
		json_t *obj = k->to_json(&def);
		assert_non_null(obj);
		check_keys_in_order(k, obj);

		/* the runbook's keys and values, with the runbook's types */
		json_error_t jerr;
		json_t *rb = json_loads(k->runbook, 0, &jerr);
		assert_non_null(rb);
		const char *key;
		json_t *v;
		json_object_foreach(rb, key, v) {
			json_t *ours = json_object_get(obj, key);
			assert_non_null(ours);
			if (!json_equal(v, ours))
				fail_msg("%s: key %s differs from the runbook", k->path, key);
		}
		json_decref(rb);
		json_decref(obj);
	}

	struct vigil_heartbeat_policy h;
	vigil_policy_heartbeat_defaults(&h);
	json_t *obj = vigil_policy_heartbeat_to_json(&h);
	assert_true(json_is_integer(json_object_get(obj, "heartbeat_interval_seconds")));
	assert_true(json_is_real(json_object_get(obj, "tick_seconds")));
	char *text = NULL;
	assert_int_equal(vigil_policy_dumps(obj, JSON_INDENT(2), &text), 0);
	assert_contains(text, "\"heartbeat_interval_seconds\": 30,");
	assert_contains(text, "\"tick_seconds\": 0.1,");
	assert_contains(text, "\"host_stall_share\": 0.5,");
	free(text);
	json_decref(obj);

	struct vigil_autofix_policy a;
	vigil_policy_autofix_defaults(&a);
	obj = vigil_policy_autofix_to_json(&a);
	assert_int_equal(vigil_policy_dumps(obj, JSON_COMPACT, &text), 0);
	assert_string_equal(text, "{\"enabled\":true,\"min_confidence_threshold\":0.7,"
				  "\"max_fixes_per_hour\":10,\"dry_run\":false,"
				  "\"notification_enabled\":true,\"notify_command\":\"\","
				  "\"notify_timeout_seconds\":5}");
	free(text);
	json_decref(obj);

	/* the default heartbeat file, as vigild would write it */
	vigil_policy_heartbeat_defaults(&h);
	obj = vigil_policy_heartbeat_to_json(&h);
	assert_int_equal(vigil_policy_dumps(obj, JSON_INDENT(2), &text), 0);
	assert_string_equal(text, "{\n"
				  "  \"heartbeat_interval_seconds\": 30,\n"
				  "  \"heartbeat_timeout_seconds\": 120,\n"
				  "  \"zombie_threshold_seconds\": 300,\n"
				  "  \"health_score_decay_rate\": 5,\n"
				  "  \"min_health_score\": 20,\n"
				  "  \"tick_seconds\": 0.1,\n"
				  "  \"snapshot_interval_seconds\": 1,\n"
				  "  \"host_stall_share\": 0.5,\n"
				  "  \"host_stall_min_workers\": 4,\n"
				  "  \"progress_stall_seconds\": 600,\n"
				  "  \"spec_refresh_seconds\": 60\n"
				  "}");
	free(text);
	json_decref(obj);
}

static void round_trip(const struct kind *k, const void *p, size_t flags, bool ours)
{
	json_t *obj = k->to_json(p);
	char *text = NULL;
	union any_policy back;
	assert_non_null(obj);
	if (ours)
		assert_int_equal(vigil_policy_dumps(obj, flags, &text), 0);
	else
		text = json_dumps(obj, flags);
	assert_non_null(text);
	memset(&back, 0xa5, sizeof(back));
	good(k, text, &back);
	assert_string_equal(last_warn, "");
	if (memcmp(&back, p, k->size) != 0)
		fail_msg("%s: round trip changed the policy: %s", k->path, text);
	free(text);
	json_decref(obj);
}

static void test_to_json_round_trip(void **state)
{
	(void)state;
	union any_policy p[2][3];

	for (size_t i = 0; i < 3; i++)
		KINDS[i]->defaults(&p[0][i]);
	good(&HB,
	     "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.30000000000000004,"
	     "\"zombie_threshold_seconds\":0.3333333333333333,\"health_score_decay_rate\":2.5,"
	     "\"min_health_score\":0,\"tick_seconds\":0.001,\"snapshot_interval_seconds\":3600,"
	     "\"host_stall_share\":1e-9,\"host_stall_min_workers\":1000000}",
	     &p[1][0]);
	good(&RS,
	     "{\"max_retries\":0,\"retry_interval_seconds\":0.1,\"backoff_multiplier\":1.5,"
	     "\"circuit_breaker_enabled\":false,\"circuit_breaker_threshold\":100000,"
	     "\"circuit_breaker_reset_seconds\":2592000,\"retry_reset_seconds\":0.25,"
	     "\"retry_jitter\":0.123456789012345678,\"token_pool\":1e15}",
	     &p[1][1]);
	good(&AF,
	     "{\"enabled\":false,\"min_confidence_threshold\":0.95,\"max_fixes_per_hour\":0,"
	     "\"dry_run\":true,\"notification_enabled\":false,"
	     "\"notify_command\":\"/usr/bin/logger -t 'vigil \\\"x\\\"' \\u00e9\\t\","
	     "\"notify_timeout_seconds\":0.1}",
	     &p[1][2]);
	assert_string_equal(p[1][2].a.notify_command, "/usr/bin/logger -t 'vigil \"x\"' \xc3\xa9\t");

	for (size_t s = 0; s < 2; s++)
		for (size_t i = 0; i < 3; i++) {
			round_trip(KINDS[i], &p[s][i], 0, false);
			round_trip(KINDS[i], &p[s][i], JSON_INDENT(2), false);
			round_trip(KINDS[i], &p[s][i], JSON_COMPACT, true);
			round_trip(KINDS[i], &p[s][i], JSON_INDENT(4) | JSON_REAL_PRECISION(3), true);
		}

	/* a value that needs 17 digits gets them */
	json_t *obj = vigil_policy_heartbeat_to_json(&p[1][0].h);
	char *text = NULL;
	assert_int_equal(vigil_policy_dumps(obj, JSON_COMPACT, &text), 0);
	assert_contains(text, "\"heartbeat_timeout_seconds\":0.30000000000000004,");
	free(text);
	json_decref(obj);

	/* values as a person writes them print as written */
	struct vigil_heartbeat_policy h;
	good(&HB, "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.25,"
		  "\"tick_seconds\":0.001,\"host_stall_share\":0.333}", &h);
	obj = vigil_policy_heartbeat_to_json(&h);
	assert_int_equal(vigil_policy_dumps(obj, JSON_COMPACT, &text), 0);
	assert_string_equal(text, "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.25,"
				  "\"zombie_threshold_seconds\":300,\"health_score_decay_rate\":5,"
				  "\"min_health_score\":20,\"tick_seconds\":0.001,"
				  "\"snapshot_interval_seconds\":1,\"host_stall_share\":0.333,"
				  "\"host_stall_min_workers\":4,\"progress_stall_seconds\":600,"
				  "\"spec_refresh_seconds\":60}");
	free(text);
	json_decref(obj);
	assert_int_equal(vigil_policy_dumps(NULL, 0, &text), -EINVAL);
}

static void test_to_json_bad_struct(void **state)
{
	(void)state;
	struct vigil_heartbeat_policy h;
	vigil_policy_heartbeat_defaults(&h);
	h.tick_seconds = NAN;
	assert_null(vigil_policy_heartbeat_to_json(&h));
	assert_null(vigil_policy_heartbeat_to_json(NULL));
	struct vigil_autofix_policy a;
	vigil_policy_autofix_defaults(&a);
	memset(a.notify_command, 'x', sizeof(a.notify_command)); /* no NUL: bounded */
	json_t *obj = vigil_policy_autofix_to_json(&a);
	assert_non_null(obj);
	assert_int_equal(json_string_length(json_object_get(obj, "notify_command")),
			 sizeof(a.notify_command));
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heartbeat_defaults),
		cmocka_unit_test(test_restart_defaults),
		cmocka_unit_test(test_autofix_defaults),
		cmocka_unit_test(test_runbook_examples_parse_to_defaults),
		cmocka_unit_test(test_runbook_false_positive_edit),
		cmocka_unit_test(test_heartbeat_fractional_and_tick_clamp),
		cmocka_unit_test(test_ordering_equal_accepted),
		cmocka_unit_test(test_ordering_violations),
		cmocka_unit_test(test_ranges_boundaries),
		cmocka_unit_test(test_negative_values),
		cmocka_unit_test(test_zero_where_not_allowed),
		cmocka_unit_test(test_wrong_types_every_key),
		cmocka_unit_test(test_integer_keys),
		cmocka_unit_test(test_huge_numbers),
		cmocka_unit_test(test_nan_like_is_not_json),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_truncated_json),
		cmocka_unit_test(test_empty_and_whitespace),
		cmocka_unit_test(test_top_level_not_object),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_bom_accepted),
		cmocka_unit_test(test_unknown_keys_warn),
		cmocka_unit_test(test_notify_command),
		cmocka_unit_test(test_null_buffers),
		cmocka_unit_test(test_load_missing_gives_defaults),
		cmocka_unit_test(test_load_valid_files),
		cmocka_unit_test(test_load_refuses_non_regular),
		cmocka_unit_test(test_load_size_limit),
		cmocka_unit_test(test_load_bad_dirfd),
		cmocka_unit_test(test_to_json_keys_and_types),
		cmocka_unit_test(test_to_json_round_trip),
		cmocka_unit_test(test_to_json_bad_struct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
