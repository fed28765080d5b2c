/*
 * fuzz_policy.c - the three policy parsers (src/policy.h) on arbitrary text.
 *
 * Input: first byte selects the kind (heartbeat, restart, auto-fix), the
 * rest is the file's text.  Besides "no crash, no leak, no UB", it checks
 * the contract of vigil_policy_<kind>_parse:
 *   - failure: -EINVAL, *out untouched, err holds a sentence;
 *   - success: err is "", every value inside its documented range, the
 *     derived fields agree, and the policy survives to_json + dumps +
 *     parse unchanged (the file vigild writes reads back as the same policy);
 *   - the result does not depend on the size of (or the absence of) the
 *     err/warn buffers, which are always NUL-terminated.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "policy.h"

#define SENTINEL 0xA5

static void check_heartbeat(const struct vigil_heartbeat_policy *p)
{
	FUZZ_CHECK(p->heartbeat_interval_seconds >= 0.001 && p->heartbeat_interval_seconds <= 86400, "interval %g",
		   p->heartbeat_interval_seconds);
	FUZZ_CHECK(p->heartbeat_timeout_seconds >= p->heartbeat_interval_seconds && p->heartbeat_timeout_seconds <= 604800,
		   "timeout %g interval %g", p->heartbeat_timeout_seconds, p->heartbeat_interval_seconds);
	FUZZ_CHECK(p->zombie_threshold_seconds >= p->heartbeat_timeout_seconds && p->zombie_threshold_seconds <= 2592000,
		   "zombie %g timeout %g", p->zombie_threshold_seconds, p->heartbeat_timeout_seconds);
	FUZZ_CHECK(p->health_score_decay_rate >= 0 && p->health_score_decay_rate <= 100, "decay %g",
		   p->health_score_decay_rate);
	FUZZ_CHECK(p->min_health_score >= 0 && p->min_health_score <= 100, "min health %g", p->min_health_score);
	FUZZ_CHECK(p->tick_seconds >= 0.001 && p->tick_seconds <= 10, "tick %g", p->tick_seconds);
	FUZZ_CHECK(p->snapshot_interval_seconds >= 0.01 && p->snapshot_interval_seconds <= 3600, "snapshot %g",
		   p->snapshot_interval_seconds);
	FUZZ_CHECK(p->host_stall_share > 0 && p->host_stall_share <= 1, "share %g", p->host_stall_share);
	FUZZ_CHECK(p->host_stall_min_workers >= 1 && p->host_stall_min_workers <= 1000000, "min workers %u",
		   p->host_stall_min_workers);
	FUZZ_CHECK(p->progress_stall_seconds >= 0 && p->progress_stall_seconds <= 2592000, "stall %g",
		   p->progress_stall_seconds);
	/* derived */
	FUZZ_CHECK(p->interval_ns > 0 && p->interval_ns <= p->timeout_ns && p->timeout_ns <= p->zombie_ns,
		   "ns: interval %llu timeout %llu zombie %llu", (unsigned long long)p->interval_ns,
		   (unsigned long long)p->timeout_ns, (unsigned long long)p->zombie_ns);
	FUZZ_CHECK(fabs((double)p->interval_ns - p->heartbeat_interval_seconds * 1e9) <= 1.0, "interval_ns %llu",
		   (unsigned long long)p->interval_ns);
	FUZZ_CHECK(p->tick_ns >= VIGIL_POLICY_TICK_MIN_NS, "tick_ns %llu", (unsigned long long)p->tick_ns);
	FUZZ_CHECK(p->tick_ns <= (uint64_t)llround(p->tick_seconds * 1e9) + 1, "tick_ns %llu above tick %g",
		   (unsigned long long)p->tick_ns, p->tick_seconds);
	FUZZ_CHECK(p->tick_ns == VIGIL_POLICY_TICK_MIN_NS || p->tick_ns <= p->interval_ns / 4 + 1,
		   "tick_ns %llu above interval/4 (%llu)", (unsigned long long)p->tick_ns,
		   (unsigned long long)p->interval_ns / 4);
	FUZZ_CHECK(p->snapshot_ns > 0, "snapshot_ns 0");
	FUZZ_CHECK((p->progress_stall_seconds == 0) == (p->progress_stall_ns == 0), "progress_stall_ns %llu for %g",
		   (unsigned long long)p->progress_stall_ns, p->progress_stall_seconds);
}

static void check_restart(const struct vigil_restart_policy *p)
{
	FUZZ_CHECK(p->max_retries <= 1000, "max_retries %u", p->max_retries);
	FUZZ_CHECK(p->retry_interval_seconds >= 0 && p->retry_interval_seconds <= 604800, "retry %g",
		   p->retry_interval_seconds);
	FUZZ_CHECK(p->backoff_multiplier >= 1 && p->backoff_multiplier <= 100, "backoff %g", p->backoff_multiplier);
	FUZZ_CHECK(p->circuit_breaker_threshold >= 1 && p->circuit_breaker_threshold <= 100000, "threshold %u",
		   p->circuit_breaker_threshold);
	FUZZ_CHECK(p->circuit_breaker_reset_seconds >= 0 && p->circuit_breaker_reset_seconds <= 2592000, "reset %g",
		   p->circuit_breaker_reset_seconds);
	FUZZ_CHECK(p->retry_reset_seconds >= 0 && p->retry_reset_seconds <= 2592000, "retry_reset %g",
		   p->retry_reset_seconds);
	FUZZ_CHECK(p->retry_jitter >= 0 && p->retry_jitter <= 1, "jitter %g", p->retry_jitter);
	FUZZ_CHECK(p->token_pool <= 1000000000000000ull, "token_pool %llu", (unsigned long long)p->token_pool);
	FUZZ_CHECK(p->kill_grace_seconds >= 0 && p->kill_grace_seconds <= 3600, "grace %g", p->kill_grace_seconds);
}

static void check_autofix(const struct vigil_autofix_policy *p)
{
	FUZZ_CHECK(p->min_confidence_threshold >= 0 && p->min_confidence_threshold <= 1, "confidence %g",
		   p->min_confidence_threshold);
	FUZZ_CHECK(p->max_fixes_per_hour <= 1000000, "max fixes %u", p->max_fixes_per_hour);
	FUZZ_CHECK(fuzz_terminated(p->notify_command, sizeof p->notify_command), "notify_command not terminated");
	FUZZ_CHECK(p->notify_timeout_seconds >= 0.1 && p->notify_timeout_seconds <= 300, "notify timeout %g",
		   p->notify_timeout_seconds);
}

#define SAME(f) FUZZ_CHECK(a->f == b->f, "round trip changed " #f)
static void same_heartbeat(const struct vigil_heartbeat_policy *a, const struct vigil_heartbeat_policy *b)
{
	SAME(heartbeat_interval_seconds); SAME(heartbeat_timeout_seconds); SAME(zombie_threshold_seconds);
	SAME(health_score_decay_rate); SAME(min_health_score); SAME(tick_seconds); SAME(snapshot_interval_seconds);
	SAME(host_stall_share); SAME(host_stall_min_workers); SAME(progress_stall_seconds);
	SAME(interval_ns); SAME(timeout_ns); SAME(zombie_ns); SAME(tick_ns); SAME(snapshot_ns); SAME(progress_stall_ns);
}
static void same_restart(const struct vigil_restart_policy *a, const struct vigil_restart_policy *b)
{
	SAME(max_retries); SAME(retry_interval_seconds); SAME(backoff_multiplier); SAME(circuit_breaker_enabled);
	SAME(circuit_breaker_threshold); SAME(circuit_breaker_reset_seconds); SAME(retry_reset_seconds);
	SAME(retry_jitter); SAME(token_pool); SAME(kill_grace_seconds);
}
static void same_autofix(const struct vigil_autofix_policy *a, const struct vigil_autofix_policy *b)
{
	SAME(enabled); SAME(min_confidence_threshold); SAME(max_fixes_per_hour); SAME(dry_run);
	SAME(notification_enabled); SAME(notify_timeout_seconds);
	FUZZ_CHECK(strcmp(a->notify_command, b->notify_command) == 0, "round trip changed notify_command");
}
#undef SAME

/* One parser behind a common signature. */
typedef int (*parse_fn)(const char *, size_t, const char *, void *, char *, size_t, char *, size_t);

static int parse_hb(const char *t, size_t n, const char *path, void *out, char *e, size_t el, char *w, size_t wl)
{
	return vigil_policy_heartbeat_parse(t, n, path, out, e, el, w, wl);
}
static int parse_rs(const char *t, size_t n, const char *path, void *out, char *e, size_t el, char *w, size_t wl)
{
	return vigil_policy_restart_parse(t, n, path, out, e, el, w, wl);
}
static int parse_af(const char *t, size_t n, const char *path, void *out, char *e, size_t el, char *w, size_t wl)
{
	return vigil_policy_autofix_parse(t, n, path, out, e, el, w, wl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned kind = data[0] % 3;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	static const char *const paths[3] = {"coordination/config/heartbeat-policy.json",
					     "coordination/config/worker-restart-policy.json",
					     "coordination/config/auto-fix-policy.json"};
	static const parse_fn fns[3] = {parse_hb, parse_rs, parse_af};
	static const size_t sizes[3] = {sizeof(struct vigil_heartbeat_policy), sizeof(struct vigil_restart_policy),
					sizeof(struct vigil_autofix_policy)};
	union {
		struct vigil_heartbeat_policy hb;
		struct vigil_restart_policy rs;
		struct vigil_autofix_policy af;
	} out, untouched, again, small;

	/* A private copy of exactly len bytes: ASan sees any read past it. */
	char *copy = malloc(len > 0 ? len : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, text, len);

	memset(&out, SENTINEL, sizeof out);
	memset(&untouched, SENTINEL, sizeof untouched);
	char err[512], warn[512];
	memset(err, 'x', sizeof err);
	memset(warn, 'x', sizeof warn);
	int rc = fns[kind](copy, len, paths[kind], &out, err, sizeof err, warn, sizeof warn);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(fuzz_terminated(err, sizeof err) && fuzz_terminated(warn, sizeof warn), "err/warn not terminated");

	/* The same verdict with tiny buffers and with none. */
	char e2[7], w2[5];
	memset(&small, SENTINEL, sizeof small);
	int rc2 = fns[kind](copy, len, paths[kind], &small, e2, sizeof e2, w2, sizeof w2);
	FUZZ_CHECK(rc2 == rc, "rc %d with small buffers, %d with large", rc2, rc);
	FUZZ_CHECK(fuzz_terminated(e2, sizeof e2) && fuzz_terminated(w2, sizeof w2), "small err/warn not terminated");
	memset(&small, SENTINEL, sizeof small);
	rc2 = fns[kind](copy, len, paths[kind], &small, NULL, 0, NULL, 0);
	FUZZ_CHECK(rc2 == rc, "rc %d without buffers, %d with", rc2, rc);

	if (rc != 0) {
		FUZZ_CHECK(memcmp(&out, &untouched, sizes[kind]) == 0, "a failed parse wrote into *out");
		FUZZ_CHECK(err[0] != '\0', "a failed parse left err empty");
		free(copy);
		return 0;
	}
	FUZZ_CHECK(err[0] == '\0', "success with err '%s'", err);

	json_t *doc = NULL;
	switch (kind) {
	case 0: check_heartbeat(&out.hb); doc = vigil_policy_heartbeat_to_json(&out.hb); break;
	case 1: check_restart(&out.rs); doc = vigil_policy_restart_to_json(&out.rs); break;
	default: check_autofix(&out.af); doc = vigil_policy_autofix_to_json(&out.af); break;
	}
	FUZZ_CHECK(doc != NULL, "to_json failed on a parsed policy");
	char *s = NULL;
	int drc = vigil_policy_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER, &s);
	FUZZ_CHECK(drc == 0 && s != NULL, "vigil_policy_dumps failed: %d", drc);
	memset(&again, SENTINEL, sizeof again);
	char err3[512];
	int rc3 = fns[kind](s, strlen(s), paths[kind], &again, err3, sizeof err3, NULL, 0);
	FUZZ_CHECK(rc3 == 0, "the written policy does not parse back: %s\n%s", err3, s);
	switch (kind) {
	case 0: same_heartbeat(&out.hb, &again.hb); break;
	case 1: same_restart(&out.rs, &again.rs); break;
	default: same_autofix(&out.af, &again.af); break;
	}
	free(s);
	json_decref(doc);
	free(copy);
	return 0;
}
