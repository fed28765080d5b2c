/*
 * patterns.c - failure classification and its confidence rule.
 *
 * Three parts: the table of pattern types (type_table[]: name, action,
 * per-observation reliability, whether alikeness applies), the per-worker
 * store (a fixed array of rings with an open-addressing index and an LRU
 * list), and observe(), which records a failure, decides which types it
 * belongs to (classify()) and scores each with the one rule below.
 *
 * The README section, to paste as is:
 *
 * README-CONFIDENCE-BEGIN
 * ### How confident is a failure pattern?
 *
 * Every failure vigild sees (an exit, a hang or zombie verdict, a slow
 * start, a failed restart, a lapse that recovered, a progress stall) is
 * classified into one or more of the pattern types below, and each pattern
 * gets a `confidence` in [0, 1]. Auto-fix acts only when
 * `confidence >= min_confidence_threshold` (default 0.7). The confidence
 * is computed by one rule, from the `evidence` written on the same line of
 * `patterns/failure-patterns.jsonl`, so you can check it by hand.
 *
 * **Which evidence.** The same worker's earlier failures (vigil keeps its
 * last 16), counted only when *similar* under the pattern type (table) and
 * less than one hour older than the failure being classified. Each counts
 * with a recency weight that halves every 10 minutes:
 * `w = 2^(-age / 600 s)` (the failure itself has `w = 1`).
 *
 * **The rule.** For a type with per-observation reliability `p`:
 *
 * ```
 * n          = sum of w over the similar failures (evidence.similar_weighted)
 * strength   = 1 - (1 - p)^n
 * alikeness  = sum of w over similar / sum of w over the worker's deaths
 *              (crash_loop: all deaths; exit_code: deaths with an exit
 *              status; 1 for the other types)
 * confidence = strength * alikeness   (clamped to [0, 1], 3 decimals)
 * ```
 *
 * | type             | p    | similar failure                                   | action            | reaches 0.7 after |
 * |------------------|------|---------------------------------------------------|-------------------|-------------------|
 * | `signal_crash`   | 0.80 | exit by SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE  | restart           | 1                 |
 * | `hang`           | 0.60 | a heartbeat timeout or zombie verdict             | kill_then_restart | 2                 |
 * | `oom_suspected`  | 0.50 | SIGKILL that vigild did not send                  | restart           | 2                 |
 * | `slow_start`     | 0.50 | no first beat within heartbeat_timeout            | restart           | 2                 |
 * | `progress_stall` | 0.50 | beats continue, progress stuck                    | kill_then_restart | 2                 |
 * | `exit_code`      | 0.40 | the same non-zero exit code (or the same signal)  | restart           | 3, all alike      |
 * | `crash_loop`     | 0.40 | a death < 10 s after its start; a failed restart  | quarantine        | 3, all fast       |
 * | `flapping`       | 0.30 | a missed heartbeat that recovered                 | quarantine        | 4, ~1 min apart   |
 *
 * ("reaches 0.7 after": that many similar failures close together.)
 *
 * **Why these numbers.** `strength` treats each similar failure as an
 * independent witness that is right with probability `p`, so confidence
 * grows with every repetition and never falls when one more is added.
 * `p` says how much one observation tells:
 * a segfault is unambiguous about what happened (0.8: one is enough to
 * act; restarting is cheap); a hang verdict already sums up a whole
 * heartbeat timeout of silence but a long blocking call or a stalled host
 * looks the same once (0.6); an outside SIGKILL is the OOM killer or an
 * operator's `kill -9`, a slow start may be a cold cache, a progress
 * stall a long sub-task (0.5: act on the second); a single non-zero exit
 * is often the worker's deliberate answer to bad input (0.4); a crash
 * loop needs at least two fast deaths to exist and its action, quarantine,
 * stops the worker until an operator lifts it, so it needs three (0.4);
 * flapping's quarantine likewise waits for four lapses within a few
 * minutes (0.3).
 * `alikeness` applies to the two types that claim "the same thing again
 * and again": a worker whose deaths are half fast and half after hours of
 * work is not crash-looping with the same confidence as one whose deaths
 * are all fast. The other types are claims about the event itself, which
 * a different earlier failure does not weaken.
 * The 10-minute half-life keeps a restart back-off (60 s, 120 s, 240 s ...)
 * looking like one loop (three fast deaths at 0, 60 and 180 s: 0.746),
 * while failures from 20 minutes ago count a quarter or less (the same
 * three deaths, two of them 20 minutes earlier: 0.535). The one-hour cut-off
 * matches the auto-fix rate window; beyond it the weight is below 2%.
 *
 * Not failures: an exit with code 0 and no signal, and an exit that vigild
 * itself caused (its answer to a failure already classified). They give
 * no pattern.
 * README-CONFIDENCE-END
 *
 * Store: workers[] holds capacity entries, handed out in order and then
 * recycled through an LRU list (head: most recently seen); index[] is an
 * open-addressing hash (linear probing, load <= 50%, backward-shift
 * deletion, so no tombstones pile up under eviction).  Every loop is
 * bounded by the index size, the ring size or the number of types.
 */
#define _GNU_SOURCE
#include "patterns.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"
#include "vigil.h"

#define NONE UINT32_MAX

/* ------------------------------------------------------- the table */

enum severity { SEV_RESTART = 1, SEV_KILL_THEN_RESTART = 2, SEV_QUARANTINE = 3 };

struct type_row {
	const char *name;
	const char *action;
	uint8_t severity;
	double p;          /* per-observation reliability */
	bool alikeness;    /* repetition type: confidence scaled by alikeness */
};

/* clang-format off */
static const struct type_row type_table[VIGIL_PATTERN_TYPES] = {
	[VIGIL_PAT_CRASH_LOOP]     = {"crash_loop",     "quarantine",        SEV_QUARANTINE,        0.40, true},
	[VIGIL_PAT_HANG]           = {"hang",           "kill_then_restart", SEV_KILL_THEN_RESTART, 0.60, false},
	[VIGIL_PAT_SIGNAL_CRASH]   = {"signal_crash",   "restart",           SEV_RESTART,           0.80, false},
	[VIGIL_PAT_OOM_SUSPECTED]  = {"oom_suspected",  "restart",           SEV_RESTART,           0.50, false},
	[VIGIL_PAT_EXIT_CODE]      = {"exit_code",      "restart",           SEV_RESTART,           0.40, true},
	[VIGIL_PAT_SLOW_START]     = {"slow_start",     "restart",           SEV_RESTART,           0.50, false},
	[VIGIL_PAT_FLAPPING]       = {"flapping",       "quarantine",        SEV_QUARANTINE,        0.30, false},
	[VIGIL_PAT_PROGRESS_STALL] = {"progress_stall", "kill_then_restart", SEV_KILL_THEN_RESTART, 0.50, false},
};
/* clang-format on */

/* A crash_loop needs this many fast deaths (this one included), unless
 * the failure is a failed restart. */
#define CRASH_LOOP_MIN 2u

static const char *const kind_names[VIGIL_FAIL_KINDS] = {
	[VIGIL_FAIL_EXIT] = "exit",
	[VIGIL_FAIL_HANG] = "hang",
	[VIGIL_FAIL_SLOW_START] = "slow_start",
	[VIGIL_FAIL_RESTART] = "restart_failed",
	[VIGIL_FAIL_RECOVERED] = "recovered",
	[VIGIL_FAIL_PROGRESS_STALL] = "progress_stall",
};

const char *vigil_pattern_type_name(unsigned type)
{
	return type < VIGIL_PATTERN_TYPES ? type_table[type].name : "?";
}

static bool crash_signal(int32_t sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGILL || sig == SIGFPE;
}

static const char *signal_name(int32_t sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGABRT: return "SIGABRT";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGKILL: return "SIGKILL";
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	case SIGQUIT: return "SIGQUIT";
	case SIGPIPE: return "SIGPIPE";
	case SIGSYS: return "SIGSYS";
	case SIGTRAP: return "SIGTRAP";
	case SIGXCPU: return "SIGXCPU";
	case SIGXFSZ: return "SIGXFSZ";
	default: return NULL;
	}
}

/* --------------------------------------------------- what a death is */

static bool is_death(const struct vigil_pattern_fail *r)
{
	return r->kind == VIGIL_FAIL_EXIT || r->kind == VIGIL_FAIL_RESTART;
}

static bool termination_known(const struct vigil_pattern_fail *r)
{
	return r->signal > 0 || r->exit_code >= 0;
}

/* Exit code 0 and no signal.  Only a RESTART gets into the ring with it
 * (a clean EXIT is not a failure): it is a fast death, not an exit code. */
static bool clean_exit(const struct vigil_pattern_fail *r)
{
	return r->exit_code == 0 && r->signal <= 0;
}

/* Does the death r carry a termination that exit_code compares?  An exit
 * by a non-zero code or a signal, or an EXIT whose termination is
 * unknown; not a clean one, not a restart that never ran. */
static bool has_exit_code(const struct vigil_pattern_fail *r)
{
	if (!is_death(r) || clean_exit(r))
		return false;
	return r->kind == VIGIL_FAIL_EXIT || termination_known(r);
}

/* How a death ended, as one comparable number: the exit code (>= 0), 1000
 * + the signal, or -1 unknown. */
static int64_t termination(const struct vigil_pattern_fail *r)
{
	if (r->signal > 0)
		return 1000 + (int64_t)r->signal;
	if (r->exit_code >= 0)
		return r->exit_code;
	return -1;
}

static bool is_fast(const struct vigil_patterns *p, const struct vigil_pattern_fail *r)
{
	if (r->kind == VIGIL_FAIL_RESTART)
		return true;
	return r->kind == VIGIL_FAIL_EXIT && r->uptime_ms > 0 && r->uptime_ms < p->fast_exit_ms;
}

/* Is r similar to cur under type t? (cur itself always is.) */
static bool similar(const struct vigil_patterns *p, unsigned t, const struct vigil_pattern_fail *r,
		    const struct vigil_pattern_fail *cur)
{
	switch (t) {
	case VIGIL_PAT_CRASH_LOOP:
		return is_death(r) && is_fast(p, r);
	case VIGIL_PAT_SIGNAL_CRASH:
		return is_death(r) && crash_signal(r->signal);
	case VIGIL_PAT_OOM_SUSPECTED:
		return is_death(r) && r->signal == SIGKILL && !r->killed_by_vigil;
	case VIGIL_PAT_EXIT_CODE:
		return has_exit_code(r) && !r->killed_by_vigil && termination(r) == termination(cur);
	case VIGIL_PAT_HANG:
		return r->kind == VIGIL_FAIL_HANG;
	case VIGIL_PAT_SLOW_START:
		return r->kind == VIGIL_FAIL_SLOW_START;
	case VIGIL_PAT_FLAPPING:
		return r->kind == VIGIL_FAIL_RECOVERED;
	case VIGIL_PAT_PROGRESS_STALL:
		return r->kind == VIGIL_FAIL_PROGRESS_STALL;
	default:
		return false;
	}
}

/* The denominator of alikeness (repetition types only): every death;
 * for exit_code every death that has an exit code to compare. */
static bool comparable(unsigned t, const struct vigil_pattern_fail *r)
{
	if (t == VIGIL_PAT_EXIT_CODE)
		return has_exit_code(r);
	return is_death(r);
}

/* ----------------------------------------------------- the store */

static uint32_t hash_id(const char *s)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < 64 && s[i] != '\0'; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

int vigil_patterns_init(struct vigil_patterns *p, uint32_t max_workers)
{
	if (p == NULL)
		return -EINVAL;
	memset(p, 0, sizeof *p);
	if (max_workers == 0 || max_workers > VIGIL_PATTERN_WORKERS_MAX)
		return -EINVAL;
	uint32_t slots = 2;
	while (slots < 2u * max_workers) /* bounded: at most 22 doublings */
		slots <<= 1;
	p->workers = calloc(max_workers, sizeof *p->workers);
	p->index = calloc(slots, sizeof *p->index);
	if (p->workers == NULL || p->index == NULL) {
		free(p->workers);
		free(p->index);
		memset(p, 0, sizeof *p);
		return -ENOMEM;
	}
	p->capacity = max_workers;
	p->mask = slots - 1;
	p->lru_head = p->lru_tail = p->free_head = NONE;
	p->fast_exit_ms = VIGIL_PATTERN_FAST_EXIT_MS;
	return 0;
}

void vigil_patterns_destroy(struct vigil_patterns *p)
{
	if (p == NULL)
		return;
	free(p->workers);
	free(p->index);
	memset(p, 0, sizeof *p);
}

/* Index slot holding worker_id, or NONE (then *empty is where it would go). */
static uint32_t index_find(const struct vigil_patterns *p, const char *id, uint32_t h, uint32_t *empty)
{
	for (uint32_t probe = 0; probe <= p->mask; probe++) {
		uint32_t s = (h + probe) & p->mask;
		uint32_t e = p->index[s];
		if (e == 0) {
			if (empty != NULL)
				*empty = s;
			return NONE;
		}
		const struct vigil_pattern_worker *w = &p->workers[e - 1];
		if (w->hash == h && strcmp(w->worker_id, id) == 0)
			return s;
	}
	if (empty != NULL)
		*empty = NONE; /* cannot happen at load <= 50% */
	return NONE;
}

/* Backward-shift deletion of index slot s: every entry after the hole,
 * up to the next empty slot, moves back into the hole when its home slot
 * is not between the hole and itself.  Bounded by the index size. */
static void index_delete(struct vigil_patterns *p, uint32_t s)
{
	uint32_t i = s, j = s;
	for (uint32_t n = 0; n < p->mask; n++) {
		j = (j + 1) & p->mask;
		uint32_t e = p->index[j];
		if (e == 0)
			break;
		uint32_t home = p->workers[e - 1].hash & p->mask;
		bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!in_range) {
			p->index[i] = e;
			i = j;
		}
	}
	p->index[i] = 0;
}

static void lru_unlink(struct vigil_patterns *p, uint32_t w)
{
	struct vigil_pattern_worker *x = &p->workers[w];
	if (x->lru_prev != NONE)
		p->workers[x->lru_prev].lru_next = x->lru_next;
	else
		p->lru_head = x->lru_next;
	if (x->lru_next != NONE)
		p->workers[x->lru_next].lru_prev = x->lru_prev;
	else
		p->lru_tail = x->lru_prev;
	x->lru_prev = x->lru_next = NONE;
}

static void lru_push_front(struct vigil_patterns *p, uint32_t w)
{
	struct vigil_pattern_worker *x = &p->workers[w];
	x->lru_prev = NONE;
	x->lru_next = p->lru_head;
	if (p->lru_head != NONE)
		p->workers[p->lru_head].lru_prev = w;
	p->lru_head = w;
	if (p->lru_tail == NONE)
		p->lru_tail = w;
}

/* Removes worker entry w (in the index at slot s) and returns it unused. */
static void worker_remove(struct vigil_patterns *p, uint32_t w, uint32_t s)
{
	index_delete(p, s);
	lru_unlink(p, w);
	p->count--;
}

static uint32_t worker_get(struct vigil_patterns *p, const char *id)
{
	uint32_t h = hash_id(id), empty = NONE;
	uint32_t s = index_find(p, id, h, &empty);
	if (s != NONE) {
		uint32_t w = p->index[s] - 1;
		lru_unlink(p, w);
		lru_push_front(p, w);
		return w;
	}
	uint32_t w;
	if (p->free_head != NONE) {
		w = p->free_head;
		p->free_head = p->workers[w].lru_next;
	} else if (p->used_entries < p->capacity) {
		w = p->used_entries++;
	} else {
		/* Full: evict the least recently seen worker. */
		w = p->lru_tail;
		struct vigil_pattern_worker *old = &p->workers[w];
		uint32_t os = index_find(p, old->worker_id, old->hash, NULL);
		if (os == NONE)
			return NONE; /* cannot happen: every listed worker is indexed */
		worker_remove(p, w, os);
		p->evictions++;
		index_find(p, id, h, &empty); /* the deletion may have moved the hole */
	}
	if (empty == NONE)
		return NONE;
	struct vigil_pattern_worker *x = &p->workers[w];
	memset(x, 0, sizeof *x);
	snprintf(x->worker_id, sizeof x->worker_id, "%s", id);
	x->hash = h;
	x->lru_prev = x->lru_next = NONE;
	p->index[empty] = w + 1;
	lru_push_front(p, w);
	p->count++;
	return w;
}

bool vigil_patterns_forget(struct vigil_patterns *p, const char *worker_id)
{
	if (p == NULL || p->workers == NULL || worker_id == NULL || !vigil_id_valid(worker_id))
		return false;
	uint32_t s = index_find(p, worker_id, hash_id(worker_id), NULL);
	if (s == NONE)
		return false;
	uint32_t w = p->index[s] - 1;
	worker_remove(p, w, s);
	memset(&p->workers[w], 0, sizeof p->workers[w]);
	p->workers[w].lru_prev = NONE;
	p->workers[w].lru_next = p->free_head;
	p->free_head = w;
	return true;
}

/* -------------------------------------------------- the confidence */

struct tally {
	uint32_t in_window;   /* all the worker's failures in the window */
	uint32_t similar;     /* count, this one included */
	uint32_t comparable;
	double similar_w, comparable_w;
	uint64_t prev_age_ms; /* of the most recent earlier similar one; UINT64_MAX none */
	uint64_t first_age_ms;/* of the oldest similar one in the window */
	uint32_t same_signal; /* signal_crash: similar with the very same signal */
};

static double weight(uint64_t age_ms)
{
	return exp2(-(double)age_ms / (double)VIGIL_PATTERN_HALF_LIFE_MS);
}

static void tally(const struct vigil_patterns *p, const struct vigil_pattern_worker *w, unsigned t,
		  const struct vigil_pattern_fail *cur, struct tally *out)
{
	memset(out, 0, sizeof *out);
	out->prev_age_ms = UINT64_MAX;
	for (uint32_t i = 0; i < w->count && i < VIGIL_PATTERN_RING; i++) {
		const struct vigil_pattern_fail *r = &w->ring[(w->head + VIGIL_PATTERN_RING - i) % VIGIL_PATTERN_RING];
		/* A report out of order (at_ms later than cur's) counts as now. */
		uint64_t age = cur->at_ms > r->at_ms ? cur->at_ms - r->at_ms : 0;
		if (age >= VIGIL_PATTERN_WINDOW_MS)
			continue;
		double wt = i == 0 ? 1.0 : weight(age);
		out->in_window++;
		if (type_table[t].alikeness && comparable(t, r)) {
			out->comparable++;
			out->comparable_w += wt;
		}
		if (!similar(p, t, r, cur) && i != 0)
			continue;
		out->similar++;
		out->similar_w += wt;
		if (i > 0 && out->prev_age_ms == UINT64_MAX)
			out->prev_age_ms = age;
		if (age > out->first_age_ms)
			out->first_age_ms = age;
		if (t == VIGIL_PAT_SIGNAL_CRASH && r->signal == cur->signal)
			out->same_signal++;
	}
}

static double round3(double x)
{
	if (!(x > 0.0)) /* NaN too */
		return 0.0;
	if (x >= 1.0)
		return 1.0;
	return floor(x * 1000.0 + 0.5) / 1000.0;
}

struct score {
	double strength, alikeness, confidence;
};

static struct score score(unsigned t, const struct tally *ty)
{
	struct score s;
	double p = type_table[t].p;
	s.strength = 1.0 - pow(1.0 - p, ty->similar_w);
	s.alikeness = 1.0;
	if (type_table[t].alikeness && ty->comparable_w > 0.0)
		s.alikeness = ty->similar_w / ty->comparable_w;
	if (!(s.alikeness <= 1.0))
		s.alikeness = 1.0; /* cur is always comparable for these types; guard anyway */
	s.confidence = round3(s.strength * s.alikeness);
	return s;
}

/* ------------------------------------------------------ evidence */

static int set_u64(json_t *o, const char *k, uint64_t v)
{
	return json_object_set_new(o, k, json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? INT64_MAX : v)));
}

static int set_i64(json_t *o, const char *k, int64_t v)
{
	return json_object_set_new(o, k, json_integer((json_int_t)v));
}

static int set_real3(json_t *o, const char *k, double v)
{
	double r = isfinite(v) ? floor(v * 1000.0 + 0.5) / 1000.0 : 0.0;
	return json_object_set_new(o, k, json_real(r));
}

static json_t *evidence(const struct vigil_patterns *p, unsigned t, const struct vigil_failure *f,
			const struct vigil_pattern_worker *w, const struct tally *ty, const struct score *s)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int rc = 0;
	rc |= json_object_set_new(o, "failure", json_string(kind_names[f->kind]));
	rc |= set_u64(o, "failures_in_window", ty->in_window);
	rc |= set_u64(o, "window_seconds", VIGIL_PATTERN_WINDOW_MS / 1000);
	rc |= set_u64(o, "half_life_seconds", VIGIL_PATTERN_HALF_LIFE_MS / 1000);
	rc |= set_u64(o, "similar", ty->similar);
	rc |= set_real3(o, "similar_weighted", ty->similar_w);
	if (type_table[t].alikeness) {
		rc |= set_u64(o, "comparable", ty->comparable);
		rc |= set_real3(o, "comparable_weighted", ty->comparable_w);
	}
	rc |= set_real3(o, "per_observation", type_table[t].p);
	rc |= set_real3(o, "strength", s->strength);
	rc |= set_real3(o, "alikeness", s->alikeness);
	if (ty->prev_age_ms != UINT64_MAX)
		rc |= set_u64(o, "previous_similar_age_ms", ty->prev_age_ms);
	else
		rc |= json_object_set_new(o, "previous_similar_age_ms", json_null());
	rc |= set_u64(o, "first_similar_age_ms", ty->first_age_ms);
	rc |= set_u64(o, "worker_failures_recorded", w->failures);
	if (f->kind == VIGIL_FAIL_EXIT || f->kind == VIGIL_FAIL_RESTART) {
		rc |= json_object_set_new(o, "exit_code", f->exit_code >= 0 ? json_integer(f->exit_code) : json_null());
		rc |= json_object_set_new(o, "signal", f->signal > 0 ? json_integer(f->signal) : json_null());
		const char *sn = signal_name(f->signal);
		if (sn != NULL)
			rc |= json_object_set_new(o, "signal_name", json_string(sn));
		rc |= json_object_set_new(o, "killed_by_vigil", json_boolean(f->killed_by_vigil));
		rc |= set_u64(o, "last_uptime_ms", f->uptime_ms);
	}
	switch (t) {
	case VIGIL_PAT_CRASH_LOOP:
		rc |= set_u64(o, "fast_exit_ms", p->fast_exit_ms);
		break;
	case VIGIL_PAT_EXIT_CODE:
		if (f->signal > 0)
			rc |= set_i64(o, "same_signal", f->signal);
		else if (f->exit_code >= 0)
			rc |= set_i64(o, "same_exit_code", f->exit_code);
		else
			rc |= json_object_set_new(o, "same_exit_code", json_null()); /* termination unknown */
		break;
	case VIGIL_PAT_SIGNAL_CRASH:
		rc |= set_u64(o, "same_signal", ty->same_signal);
		break;
	case VIGIL_PAT_PROGRESS_STALL:
		rc |= set_u64(o, "stalled_ms", f->stalled_ms);
		break;
	default:
		break;
	}
	rc |= set_u64(o, "progress", f->progress > 100 ? 100 : f->progress);
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ------------------------------------------------------- observe */

/* The types f belongs to, given the worker's ring with f already in it.
 * Returns how many were written to types[] (at most VIGIL_PATTERN_OUT_MAX). */
static unsigned classify(const struct vigil_patterns *p, const struct vigil_failure *f,
			 const struct vigil_pattern_worker *w, const struct vigil_pattern_fail *cur,
			 unsigned types[VIGIL_PATTERN_OUT_MAX])
{
	unsigned n = 0;
	switch (f->kind) {
	case VIGIL_FAIL_EXIT:
	case VIGIL_FAIL_RESTART: {
		bool vigil = f->killed_by_vigil; /* only a RESTART gets here with it */
		if (f->signal > 0 && crash_signal(f->signal))
			types[n++] = VIGIL_PAT_SIGNAL_CRASH;
		else if (f->signal == SIGKILL && !vigil)
			types[n++] = VIGIL_PAT_OOM_SUSPECTED;
		else if (!vigil && has_exit_code(cur))
			types[n++] = VIGIL_PAT_EXIT_CODE;
		if (is_fast(p, cur)) {
			struct tally ty;
			tally(p, w, VIGIL_PAT_CRASH_LOOP, cur, &ty);
			if (f->kind == VIGIL_FAIL_RESTART || ty.similar >= CRASH_LOOP_MIN)
				types[n++] = VIGIL_PAT_CRASH_LOOP;
		}
		break;
	}
	case VIGIL_FAIL_HANG:
		types[n++] = VIGIL_PAT_HANG;
		break;
	case VIGIL_FAIL_SLOW_START:
		types[n++] = VIGIL_PAT_SLOW_START;
		break;
	case VIGIL_FAIL_RECOVERED:
		types[n++] = VIGIL_PAT_FLAPPING;
		break;
	case VIGIL_FAIL_PROGRESS_STALL:
		types[n++] = VIGIL_PAT_PROGRESS_STALL;
		break;
	default:
		break;
	}
	return n;
}

static bool ranks_before(const struct vigil_pattern *a, unsigned ta, const struct vigil_pattern *b, unsigned tb)
{
	if (type_table[ta].severity != type_table[tb].severity)
		return type_table[ta].severity > type_table[tb].severity;
	return a->confidence > b->confidence;
}

int vigil_patterns_observe(struct vigil_patterns *p, const struct vigil_failure *f, struct vigil_pattern *out,
			   int max_out)
{
	if (p == NULL || p->workers == NULL)
		return -EINVAL;
	p->observed++;
	if (f == NULL || f->kind >= VIGIL_FAIL_KINDS || max_out < 0 || (out == NULL && max_out > 0) ||
	    memchr(f->worker_id, '\0', sizeof f->worker_id) == NULL || !vigil_id_valid(f->worker_id) ||
	    memchr(f->worker_type, '\0', sizeof f->worker_type) == NULL ||
	    (f->worker_type[0] != '\0' && !vigil_id_valid(f->worker_type))) {
		p->invalid++;
		return -EINVAL;
	}
	if (f->kind == VIGIL_FAIL_EXIT && f->killed_by_vigil) {
		p->vigil_kills++;
		return 0;
	}
	if (f->kind == VIGIL_FAIL_EXIT && f->exit_code == 0 && f->signal <= 0) {
		p->not_failures++;
		return 0;
	}
	uint32_t wi = worker_get(p, f->worker_id);
	if (wi == NONE)
		return -ENOMEM; /* not reachable: the index never fills */
	struct vigil_pattern_worker *w = &p->workers[wi];
	if (f->worker_type[0] != '\0')
		snprintf(w->worker_type, sizeof w->worker_type, "%s", f->worker_type);
	w->head = (uint8_t)((w->head + 1) % VIGIL_PATTERN_RING);
	if (w->count < VIGIL_PATTERN_RING)
		w->count++;
	w->failures++;
	struct vigil_pattern_fail *cur = &w->ring[w->head];
	*cur = (struct vigil_pattern_fail){
		.at_ms = f->at_ms,
		.uptime_ms = f->uptime_ms,
		.exit_code = f->exit_code,
		.signal = f->signal,
		.kind = f->kind,
		.killed_by_vigil = f->killed_by_vigil,
	};

	unsigned types[VIGIL_PATTERN_OUT_MAX];
	unsigned nt = classify(p, f, w, cur, types);
	struct vigil_pattern found[VIGIL_PATTERN_OUT_MAX];
	unsigned ftype[VIGIL_PATTERN_OUT_MAX];
	for (unsigned i = 0; i < nt; i++) {
		unsigned t = types[i];
		struct tally ty;
		tally(p, w, t, cur, &ty);
		struct score s = score(t, &ty);
		struct vigil_pattern *pt = &found[i];
		memset(pt, 0, sizeof *pt);
		snprintf(pt->type, sizeof pt->type, "%s", type_table[t].name);
		snprintf(pt->recommended_action, sizeof pt->recommended_action, "%s", type_table[t].action);
		snprintf(pt->worker_id, sizeof pt->worker_id, "%s", w->worker_id);
		snprintf(pt->worker_type, sizeof pt->worker_type, "%s", w->worker_type);
		pt->confidence = s.confidence;
		pt->evidence = evidence(p, t, f, w, &ty, &s);
		ftype[i] = t;
		p->detected[t]++;
		p->patterns_detected++;
	}
	/* Insertion sort of at most VIGIL_PATTERN_OUT_MAX entries. */
	for (unsigned i = 1; i < nt; i++) {
		for (unsigned j = i; j > 0 && ranks_before(&found[j], ftype[j], &found[j - 1], ftype[j - 1]); j--) {
			struct vigil_pattern tp = found[j];
			found[j] = found[j - 1];
			found[j - 1] = tp;
			unsigned tt = ftype[j];
			ftype[j] = ftype[j - 1];
			ftype[j - 1] = tt;
		}
	}
	int written = 0;
	for (unsigned i = 0; i < nt; i++) {
		if (written < max_out)
			out[written++] = found[i];
		else
			vigil_pattern_clear(&found[i]);
	}
	return written;
}

int vigil_patterns_pick(const struct vigil_pattern *pts, int n, double threshold)
{
	if (pts == NULL || n <= 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (pts[i].confidence >= threshold)
			return i;
	return 0;
}

void vigil_pattern_clear(struct vigil_pattern *pt)
{
	if (pt == NULL)
		return;
	json_decref(pt->evidence);
	memset(pt, 0, sizeof *pt);
}

/* ----------------------------------------------------------- JSON */

json_t *vigil_pattern_to_json(const struct vigil_pattern *pt, uint64_t now_ms)
{
	if (pt == NULL)
		return NULL;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	double c = isfinite(pt->confidence) ? pt->confidence : 0.0;
	c = c < 0.0 ? 0.0 : c > 1.0 ? 1.0 : c;
	int rc = 0;
	rc |= json_object_set_new(o, "type", json_string(pt->type));
	rc |= json_object_set_new(o, "confidence", json_real(c));
	rc |= json_object_set_new(o, "worker_type", json_string(pt->worker_type));
	rc |= json_object_set_new(o, "worker_id", json_string(pt->worker_id));
	if (pt->evidence != NULL)
		rc |= json_object_set(o, "evidence", pt->evidence);
	else
		rc |= json_object_set_new(o, "evidence", json_object());
	rc |= json_object_set_new(o, "recommended_action", json_string(pt->recommended_action));
	if (rc != 0 || vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int vigil_json_append_short(int fd, const json_t *obj)
{
	char *s = NULL;
	int rc = vigil_policy_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER, &s);
	if (rc < 0)
		return rc;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (line == NULL) {
		free(s);
		return -ENOMEM;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	rc = vigil_fs_append(fd, line, n + 1);
	free(line);
	return rc;
}

int vigil_pattern_append(int fd, const struct vigil_pattern *pt, uint64_t now_ms)
{
	json_t *o = vigil_pattern_to_json(pt, now_ms);
	if (o == NULL)
		return -ENOMEM;
	int rc = vigil_json_append_short(fd, o);
	json_decref(o);
	return rc;
}

json_t *vigil_patterns_metrics_to_json(const struct vigil_patterns *p)
{
	if (p == NULL)
		return NULL;
	json_t *o = json_object(), *by = json_object();
	if (o == NULL || by == NULL) {
		json_decref(o);
		json_decref(by);
		return NULL;
	}
	int rc = 0;
	for (unsigned t = 0; t < VIGIL_PATTERN_TYPES; t++)
		rc |= set_u64(by, type_table[t].name, p->detected[t]);
	rc |= set_u64(o, "observed", p->observed);
	rc |= set_u64(o, "patterns_detected", p->patterns_detected);
	rc |= set_u64(o, "not_failures", p->not_failures);
	rc |= set_u64(o, "vigil_kills", p->vigil_kills);
	rc |= set_u64(o, "invalid", p->invalid);
	rc |= set_u64(o, "evictions", p->evictions);
	rc |= set_u64(o, "workers_tracked", p->count);
	rc |= set_u64(o, "capacity", p->capacity);
	rc |= json_object_set_new(o, "by_type", by);
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}
