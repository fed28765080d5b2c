/*
 * breaker.h - one circuit breaker per worker type (README "Self-healing"), and the files
 * coordination/circuit-breakers/<worker_type>.json that show them.
 *
 * Why: a worker type that fails every time it starts would otherwise be
 * restarted forever, burning tokens and flooding the logs.  The breaker
 * counts consecutive restart failures of a type, as found in the restart
 * history (history.h) - lines vigild wrote and lines others appended
 * alike - and at circuit_breaker_threshold it opens: no restart of that
 * type runs.  After circuit_breaker_reset_seconds it is half-open and lets
 * exactly one trial restart through; the trial's success closes it, its
 * failure opens it again for another reset period.
 *
 * The breaker is an explicit state x event table (breaker.c), so every
 * transition is one line you can read and test:
 *
 *   row \ event     success   failure       failure that   timer due       request          operator  disabled
 *                                           reaches thr                                     reset
 *   closed          closed 0  closed +1     OPEN +1 @now   -               ALLOW            closed 0  -
 *   open            closed 0  open +1       open +1        half_open       DENY             closed 0  closed
 *   half_open       closed 0  OPEN +1 @now  OPEN +1 @now   -               TRIAL -> trial   closed 0  closed
 *   half_open+trial closed 0  OPEN +1 @now  OPEN +1 @now   half_open       DENY             closed 0  closed
 *
 *   0: failure_count := 0;  +1: failure_count += 1;  @now: opened_at := now
 *   (announce).  Timer: open -> the reset time has passed since opened_at;
 *   trial -> trial_timeout_ms has passed without an outcome.  Also: closed
 *   with failure_count already >= threshold (the policy changed) -> OPEN
 *   @now; a trial given back unused (trial_cancel) -> half_open.
 *
 * Failures while open add to failure_count but do not move opened_at, so
 * a stream of failures appended by others cannot hold a breaker open
 * forever.  A success - in any state - means the type can run, so it
 * closes the breaker and zeroes failure_count (README, "Self-healing": failure_count is the
 * number of *consecutive* failures).  A failure line that only records a
 * restart the breaker refused ("reason":"circuit_breaker_open") is no
 * event: nothing ran.  With circuit_breaker_enabled false every restart
 * is allowed and every breaker shows "closed", while failure_count is
 * still counted.
 *
 * The table is fixed-capacity, allocated once at init: no allocation
 * after that, bounded probing, and when it is full (or a probe run is too
 * long) new types share one overflow breaker named "_overflow" - safe
 * (they are still protected, collectively) and counted.  Not thread-safe:
 * the action thread owns it.
 */
#ifndef VIGIL_BREAKER_H
#define VIGIL_BREAKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "history.h"
#include "policy.h"

/* Directory under coordination/ (README "What vigild writes"). */
#define VIGIL_BREAKERS_DIR "circuit-breakers"

/* Name (and file name stem) of the shared breaker of types that did not fit. */
#define VIGIL_BREAKER_OVERFLOW_NAME "_overflow"

/* The "reason" of the history line vigild writes for a restart it refused
 * because the breaker was open.  Such a line is not a failure of the type
 * (nothing ran) and is ignored by vigil_breakers_record. */
#define VIGIL_BREAKER_DENIED_REASON "circuit_breaker_open"

/* Largest capacity vigil_breakers_init accepts. */
#define VIGIL_BREAKERS_CAPACITY_MAX (1u << 20)

/* Longest probe run in the hash index. */
#define VIGIL_BREAKERS_PROBES_MAX 32u

/* Default for vigil_breakers.trial_timeout_ms (10 minutes). */
#define VIGIL_BREAKER_TRIAL_TIMEOUT_MS 600000ull

enum vigil_breaker_state { VIGIL_BREAKER_CLOSED, VIGIL_BREAKER_OPEN, VIGIL_BREAKER_HALF_OPEN };
enum vigil_breaker_verdict { VIGIL_BREAKER_ALLOW, VIGIL_BREAKER_TRIAL, VIGIL_BREAKER_DENY };

struct vigil_breaker {
	char worker_type[65];
	uint8_t state;             /* enum vigil_breaker_state */
	bool trial_in_flight;      /* half-open and its one trial was handed out */
	bool dirty;                /* file needs rewriting */
	bool overflow;             /* the shared "_overflow" breaker */
	uint32_t failure_count;    /* consecutive failures (saturates) */
	uint64_t opened_at_ms;     /* when it last opened; 0 while closed */
	uint64_t trial_started_ms; /* when the trial was handed out */
	uint64_t last_failure_ms, last_success_ms; /* record's time, else when read; 0 never */
	uint64_t denied;           /* restarts denied, lifetime */
	uint64_t opens;            /* times it opened, lifetime */
	uint64_t overflow_lookups; /* overflow breaker only: lookups of types that did not fit */
};

struct vigil_breakers {
	struct vigil_breaker *items; /* capacity entries; [0, count) in use */
	uint32_t *index;             /* slot_mask + 1 entries: 0 empty, else item index + 1 */
	uint32_t capacity, count, slot_mask;
	uint32_t seed;               /* hash seed */
	struct vigil_breaker overflow;
	bool overflow_used;
	/* A trial whose outcome has not been recorded after this long is
	 * taken as lost (e.g. the caller never ran it) and the breaker goes
	 * back to plain half-open, so a new trial may be handed out.  0: never.
	 * Set it above the longest a restart can take to report. */
	uint64_t trial_timeout_ms;
};

/* capacity in [1, VIGIL_BREAKERS_CAPACITY_MAX].  0, -EINVAL or -ENOMEM. */
int vigil_breakers_init(struct vigil_breakers *b, uint32_t capacity);
void vigil_breakers_destroy(struct vigil_breakers *b);

/* The breaker of worker_type, created (closed, dirty) when new; the
 * overflow breaker when the table has no room; NULL when worker_type is
 * not a name (README "What vigild writes").  A type literally named "_overflow" is the
 * overflow breaker. */
struct vigil_breaker *vigil_breakers_get(struct vigil_breakers *b, const char *worker_type);

/* Lookup without creating: the breaker, or NULL when the type has none. */
const struct vigil_breaker *vigil_breakers_find(const struct vigil_breakers *b, const char *worker_type);

/* Feeds one history record at now_ms (the time it was read, or for a
 * replay the record's own time).  A failure whose reason is
 * VIGIL_BREAKER_DENIED_REASON is ignored (see there).  Returns true when
 * this record left the breaker newly open (closed -> open, or half-open ->
 * open): announce it. */
bool vigil_breakers_record(struct vigil_breakers *b, const struct vigil_restart_policy *p,
			   const struct vigil_history_record *rec, uint64_t now_ms);

/* May a restart of worker_type run now?  Fires due timers first (open ->
 * half-open after the reset time).  closed: ALLOW; open: DENY; half-open:
 * TRIAL once, then DENY until the trial's outcome is recorded.  Denials
 * are counted.  ALLOW when the breaker is disabled; DENY (uncounted) when
 * worker_type is not a name. */
enum vigil_breaker_verdict vigil_breakers_check(struct vigil_breakers *b, const struct vigil_restart_policy *p,
						const char *worker_type, uint64_t now_ms);

/* Gives back a TRIAL that was not used (the restart did not run after
 * all); the breaker is half-open again.  No effect otherwise. */
void vigil_breakers_trial_cancel(struct vigil_breakers *b, const char *worker_type);

/* Time- and policy-driven transitions of every breaker, so the files stay
 * current: open -> half-open after the reset time, lost trials, closed with
 * failure_count >= threshold -> open (after a policy reload lowered the
 * threshold or enabled the breakers), everything closed when disabled.
 * Returns how many breakers it opened (to announce). */
uint32_t vigil_breakers_tick(struct vigil_breakers *b, const struct vigil_restart_policy *p, uint64_t now_ms);

/* Operator reset ("vigilctl breaker reset TYPE"): closed, failure_count 0.
 * Only in memory: a vigild that restarts rebuilds breakers from the
 * history file. */
void vigil_breakers_reset(struct vigil_breakers *b, const char *worker_type, uint64_t now_ms);

/* {"worker_type","state":"closed"|"open"|"half_open","failure_count",
 *  "opened_at" (ISO or null),"opened_at_ms" (or null),"reset_at","reset_at_ms"
 *  (when it half-opens / half-opened; null while closed),"threshold","enabled",
 *  "trial_in_flight","denied_restarts","opens","last_failure_at","last_failure_ms",
 *  "last_success_at","last_success_ms" (null when never),
 *  ["overflow":true,"overflow_lookups" for the overflow breaker],
 *  "timestamp","timestamp_ms"}.  New reference, NULL on allocation failure. */
json_t *vigil_breaker_to_json(const struct vigil_breaker *br, const struct vigil_restart_policy *p,
			      uint64_t now_ms);

/* Writes <worker_type>.json into breakers_dirfd (the coordination/
 * circuit-breakers directory) for every dirty breaker, by atomic replace;
 * a breaker stays dirty when its write fails.  0 or the first -errno. */
int vigil_breakers_write_dirty(struct vigil_breakers *b, int breakers_dirfd,
			       const struct vigil_restart_policy *p, uint64_t now_ms);

/* Breakers not closed (open or half-open): the "breakers_open" metric. */
uint32_t vigil_breakers_open_count(const struct vigil_breakers *b);

/* "closed", "open", "half_open" ("?" for anything else). */
const char *vigil_breaker_state_name(uint8_t state);

#endif /* VIGIL_BREAKER_H */
