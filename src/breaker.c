/*
 * breaker.c - circuit breakers per worker type: the transition table, the
 * fixed-capacity table of breakers, and their JSON files.
 *
 * Everything a breaker does is one row of trans[][] below: the functions
 * around it only decide which event happened (a record, a timer that came
 * due, a restart request, an operator reset, the breakers being disabled)
 * and then apply the row's next state and actions.  There is no other code
 * that changes a breaker's state, so the table is the whole behaviour.
 *
 * The half-open state is two rows in the table, "half-open, trial
 * available" and "half-open, trial handed out", which the struct stores as
 * state HALF_OPEN plus trial_in_flight; the files show both as
 * "half_open" with "trial_in_flight".
 *
 * Storage: items[] is dense (insertion order, iterated by tick and
 * write_dirty in O(types)), index[] is an open-addressing hash of item
 * numbers with linear probing of at most VIGIL_BREAKERS_PROBES_MAX slots
 * and at most 50% load.  Types are never removed, so a lookup ends at the
 * first empty slot.  Trade-off: a fixed seed keeps tests deterministic;
 * a hostile type name chosen to collide only pushes its type into the
 * overflow breaker, which still protects it.
 */
#define _GNU_SOURCE
#include "breaker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vigil.h"

/* ------------------------------------------------------- the table */

enum row { ROW_CLOSED, ROW_OPEN, ROW_HALF_OPEN, ROW_TRIAL, ROW_N };

enum event {
	EV_SUCCESS,      /* a "success" record */
	EV_FAILURE,      /* a "failure" record, count stays below threshold (or disabled) */
	EV_FAILURE_TRIP, /* a "failure" record that brings count to the threshold */
	EV_OVER,         /* count >= threshold found by tick/check (policy changed) */
	EV_TIMER,        /* the row's timer came due: reset time (open), trial timeout (trial) */
	EV_REQUEST,      /* may a restart run? */
	EV_RESET,        /* operator reset */
	EV_DISABLED,     /* circuit_breaker_enabled is false */
	EV_CANCEL,       /* the trial handed out was not used */
	EV_N
};

enum action {
	A_INC = 1u << 0,    /* failure_count += 1 */
	A_ZERO = 1u << 1,   /* failure_count = 0 */
	A_STAMP = 1u << 2,  /* opened_at = now, opens += 1: announce */
	A_UNSTAMP = 1u << 3, /* opened_at = 0 */
	A_ALLOW = 1u << 4,  /* verdict ALLOW */
	A_TRIAL = 1u << 5,  /* verdict TRIAL, trial_started = now */
	A_DENY = 1u << 6,   /* verdict DENY, denied += 1 */
};

struct transition {
	uint8_t next;    /* enum row */
	uint8_t actions; /* enum action bits */
};

#define T(n, a) {ROW_##n, (a)}
/* clang-format off */
static const struct transition trans[ROW_N][EV_N] = {
	[ROW_CLOSED] = {
		[EV_SUCCESS]      = T(CLOSED, A_ZERO),
		[EV_FAILURE]      = T(CLOSED, A_INC),
		[EV_FAILURE_TRIP] = T(OPEN, A_INC | A_STAMP),
		[EV_OVER]         = T(OPEN, A_STAMP),
		[EV_TIMER]        = T(CLOSED, 0),
		[EV_REQUEST]      = T(CLOSED, A_ALLOW),
		[EV_RESET]        = T(CLOSED, A_ZERO),
		[EV_DISABLED]     = T(CLOSED, 0),
		[EV_CANCEL]       = T(CLOSED, 0),
	},
	[ROW_OPEN] = {
		[EV_SUCCESS]      = T(CLOSED, A_ZERO | A_UNSTAMP),
		[EV_FAILURE]      = T(OPEN, A_INC),
		[EV_FAILURE_TRIP] = T(OPEN, A_INC),
		[EV_OVER]         = T(OPEN, 0),
		[EV_TIMER]        = T(HALF_OPEN, 0),
		[EV_REQUEST]      = T(OPEN, A_DENY),
		[EV_RESET]        = T(CLOSED, A_ZERO | A_UNSTAMP),
		[EV_DISABLED]     = T(CLOSED, A_UNSTAMP),
		[EV_CANCEL]       = T(OPEN, 0),
	},
	[ROW_HALF_OPEN] = {
		[EV_SUCCESS]      = T(CLOSED, A_ZERO | A_UNSTAMP),
		[EV_FAILURE]      = T(OPEN, A_INC | A_STAMP),
		[EV_FAILURE_TRIP] = T(OPEN, A_INC | A_STAMP),
		[EV_OVER]         = T(HALF_OPEN, 0),
		[EV_TIMER]        = T(HALF_OPEN, 0),
		[EV_REQUEST]      = T(TRIAL, A_TRIAL),
		[EV_RESET]        = T(CLOSED, A_ZERO | A_UNSTAMP),
		[EV_DISABLED]     = T(CLOSED, A_UNSTAMP),
		[EV_CANCEL]       = T(HALF_OPEN, 0),
	},
	[ROW_TRIAL] = {
		[EV_SUCCESS]      = T(CLOSED, A_ZERO | A_UNSTAMP),
		[EV_FAILURE]      = T(OPEN, A_INC | A_STAMP),
		[EV_FAILURE_TRIP] = T(OPEN, A_INC | A_STAMP),
		[EV_OVER]         = T(TRIAL, 0),
		[EV_TIMER]        = T(HALF_OPEN, 0),
		[EV_REQUEST]      = T(TRIAL, A_DENY),
		[EV_RESET]        = T(CLOSED, A_ZERO | A_UNSTAMP),
		[EV_DISABLED]     = T(CLOSED, A_UNSTAMP),
		[EV_CANCEL]       = T(HALF_OPEN, 0),
	},
};
/* clang-format on */
#undef T

static enum row row_of(const struct vigil_breaker *br)
{
	switch (br->state) {
	case VIGIL_BREAKER_OPEN:
		return ROW_OPEN;
	case VIGIL_BREAKER_HALF_OPEN:
		return br->trial_in_flight ? ROW_TRIAL : ROW_HALF_OPEN;
	default:
		return ROW_CLOSED;
	}
}

/* Applies event ev at now_ms; returns the actions taken. */
static unsigned apply(struct vigil_breaker *br, enum event ev, uint64_t now_ms)
{
	enum row from = row_of(br);
	const struct transition *t = &trans[from][ev];
	unsigned a = t->actions;

	if (a & A_INC) {
		if (br->failure_count < UINT32_MAX)
			br->failure_count++;
	}
	if (a & A_ZERO)
		br->failure_count = 0;
	if (a & A_STAMP) {
		br->opened_at_ms = now_ms;
		br->opens++;
	}
	if (a & A_UNSTAMP)
		br->opened_at_ms = 0;
	if (a & A_TRIAL)
		br->trial_started_ms = now_ms;
	if (a & A_DENY)
		br->denied++;

	switch ((enum row)t->next) {
	case ROW_OPEN:
		br->state = VIGIL_BREAKER_OPEN;
		br->trial_in_flight = false;
		break;
	case ROW_HALF_OPEN:
		br->state = VIGIL_BREAKER_HALF_OPEN;
		br->trial_in_flight = false;
		break;
	case ROW_TRIAL:
		br->state = VIGIL_BREAKER_HALF_OPEN;
		br->trial_in_flight = true;
		break;
	default:
		br->state = VIGIL_BREAKER_CLOSED;
		br->trial_in_flight = false;
		break;
	}
	if (t->next != from || (a & ~(unsigned)A_ALLOW) != 0)
		br->dirty = true;
	return a;
}

/* ------------------------------------------------------- policy helpers */

static uint64_t reset_ms(const struct vigil_restart_policy *p)
{
	double ms = p->circuit_breaker_reset_seconds * 1000.0;
	if (!(ms > 0.0))
		return 0; /* also NaN */
	if (ms > 1e15)
		ms = 1e15;
	return (uint64_t)(ms + 0.5); /* no libm: callers link without -lm */
}

static uint32_t threshold(const struct vigil_restart_policy *p)
{
	return p->circuit_breaker_threshold > 0 ? p->circuit_breaker_threshold : 1;
}

/*
 * Brings br up to date with the policy and the clock before an event: the
 * disabled rule, the row's timer if it is due, or a count already at the
 * threshold (the policy changed).  At most one transition.  Returns true
 * when it opened the breaker.
 */
static bool settle(const struct vigil_breakers *b, struct vigil_breaker *br, const struct vigil_restart_policy *p,
		   uint64_t now_ms)
{
	if (!p->circuit_breaker_enabled) {
		if (row_of(br) != ROW_CLOSED)
			apply(br, EV_DISABLED, now_ms);
		return false;
	}
	switch (row_of(br)) {
	case ROW_OPEN:
		if (now_ms >= br->opened_at_ms + reset_ms(p))
			apply(br, EV_TIMER, now_ms);
		return false;
	case ROW_TRIAL:
		if (b->trial_timeout_ms != 0 && now_ms >= br->trial_started_ms + b->trial_timeout_ms)
			apply(br, EV_TIMER, now_ms);
		return false;
	case ROW_CLOSED:
		if (br->failure_count >= threshold(p))
			return (apply(br, EV_OVER, now_ms) & A_STAMP) != 0;
		return false;
	default:
		return false;
	}
}

/* ------------------------------------------------------- the table of types */

static uint32_t hash_name(uint32_t seed, const char *s)
{
	uint32_t h = 2166136261u ^ seed;
	/* Bounded: names are at most 64 bytes (validated by the callers). */
	for (size_t i = 0; s[i] != '\0' && i < 65; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	return h;
}

static void breaker_init(struct vigil_breaker *br, const char *name, size_t len)
{
	memset(br, 0, sizeof *br);
	memcpy(br->worker_type, name, len);
	br->worker_type[len] = '\0';
	br->state = VIGIL_BREAKER_CLOSED;
	br->dirty = true;
}

int vigil_breakers_init(struct vigil_breakers *b, uint32_t capacity)
{
	memset(b, 0, sizeof *b);
	if (capacity == 0 || capacity > VIGIL_BREAKERS_CAPACITY_MAX)
		return -EINVAL;
	uint32_t slots = 16;
	/* Bounded: at most 22 doublings (capacity <= 2^20). */
	while (slots < 2u * capacity)
		slots <<= 1;
	b->items = calloc(capacity, sizeof *b->items);
	b->index = calloc(slots, sizeof *b->index);
	if (b->items == NULL || b->index == NULL) {
		free(b->items);
		free(b->index);
		memset(b, 0, sizeof *b);
		return -ENOMEM;
	}
	b->capacity = capacity;
	b->slot_mask = slots - 1;
	b->seed = 0x9e3779b9u;
	b->trial_timeout_ms = VIGIL_BREAKER_TRIAL_TIMEOUT_MS;
	breaker_init(&b->overflow, VIGIL_BREAKER_OVERFLOW_NAME, strlen(VIGIL_BREAKER_OVERFLOW_NAME));
	b->overflow.overflow = true;
	b->overflow.dirty = false; /* no file until a type lands in it */
	return 0;
}

void vigil_breakers_destroy(struct vigil_breakers *b)
{
	free(b->items);
	free(b->index);
	memset(b, 0, sizeof *b);
}

/* Looks name up in at most VIGIL_BREAKERS_PROBES_MAX slots.  Returns the
 * item number + 1, or 0 when absent; then *empty is the slot where it would
 * go, or UINT32_MAX when the probe run is full. */
static uint32_t probe(const struct vigil_breakers *b, const char *name, uint32_t *empty)
{
	uint32_t h = hash_name(b->seed, name);
	*empty = UINT32_MAX;
	if (b->index == NULL)
		return 0;
	for (uint32_t i = 0; i < VIGIL_BREAKERS_PROBES_MAX; i++) {
		uint32_t slot = (h + i) & b->slot_mask;
		uint32_t e = b->index[slot];
		if (e == 0) {
			*empty = slot; /* types are never removed: the run ends here */
			return 0;
		}
		if (strcmp(b->items[e - 1].worker_type, name) == 0)
			return e;
	}
	return 0;
}

struct vigil_breaker *vigil_breakers_get(struct vigil_breakers *b, const char *worker_type)
{
	if (worker_type == NULL || !vigil_id_valid(worker_type))
		return NULL;
	if (strcmp(worker_type, VIGIL_BREAKER_OVERFLOW_NAME) == 0) {
		b->overflow_used = true;
		return &b->overflow;
	}
	uint32_t empty;
	uint32_t e = probe(b, worker_type, &empty);
	if (e != 0)
		return &b->items[e - 1];
	if (empty != UINT32_MAX && b->count < b->capacity) {
		struct vigil_breaker *br = &b->items[b->count];
		breaker_init(br, worker_type, strlen(worker_type));
		b->index[empty] = ++b->count;
		return br;
	}
	/* No room: the type shares the overflow breaker. */
	if (!b->overflow_used)
		b->overflow.dirty = true;
	b->overflow_used = true;
	b->overflow.overflow_lookups++;
	return &b->overflow;
}

const struct vigil_breaker *vigil_breakers_find(const struct vigil_breakers *b, const char *worker_type)
{
	if (worker_type == NULL || !vigil_id_valid(worker_type))
		return NULL;
	if (strcmp(worker_type, VIGIL_BREAKER_OVERFLOW_NAME) == 0)
		return b->overflow_used ? &b->overflow : NULL;
	uint32_t empty;
	uint32_t e = probe(b, worker_type, &empty);
	return e != 0 ? &b->items[e - 1] : NULL;
}

/* ------------------------------------------------------- events */

bool vigil_breakers_record(struct vigil_breakers *b, const struct vigil_restart_policy *p,
			   const struct vigil_history_record *rec, uint64_t now_ms)
{
	/* A refused restart never ran: it says nothing about the type, and
	 * counting it would let the breaker feed itself (each denial a
	 * failure, each failure in half-open a re-open). */
	if (!rec->success && strcmp(rec->reason, VIGIL_BREAKER_DENIED_REASON) == 0)
		return false;
	struct vigil_breaker *br = vigil_breakers_get(b, rec->worker_type);
	if (br == NULL)
		return false;
	bool opened = settle(b, br, p, now_ms);
	uint64_t when_ms = rec->timestamp_ms != 0 ? rec->timestamp_ms : now_ms;
	enum event ev;
	if (rec->success) {
		br->last_success_ms = when_ms;
		ev = EV_SUCCESS;
	} else {
		br->last_failure_ms = when_ms;
		uint64_t next = (uint64_t)br->failure_count + 1;
		ev = p->circuit_breaker_enabled && next >= threshold(p) ? EV_FAILURE_TRIP : EV_FAILURE;
	}
	br->dirty = true;
	opened |= (apply(br, ev, now_ms) & A_STAMP) != 0;
	return opened && br->state == VIGIL_BREAKER_OPEN;
}

enum vigil_breaker_verdict vigil_breakers_check(struct vigil_breakers *b, const struct vigil_restart_policy *p,
						const char *worker_type, uint64_t now_ms)
{
	struct vigil_breaker *br = vigil_breakers_get(b, worker_type);
	if (br == NULL)
		return VIGIL_BREAKER_DENY;
	settle(b, br, p, now_ms);
	if (!p->circuit_breaker_enabled)
		return VIGIL_BREAKER_ALLOW;
	unsigned a = apply(br, EV_REQUEST, now_ms);
	if (a & A_ALLOW)
		return VIGIL_BREAKER_ALLOW;
	if (a & A_TRIAL)
		return VIGIL_BREAKER_TRIAL;
	return VIGIL_BREAKER_DENY;
}

void vigil_breakers_trial_cancel(struct vigil_breakers *b, const char *worker_type)
{
	struct vigil_breaker *br = vigil_breakers_get(b, worker_type);
	if (br != NULL)
		apply(br, EV_CANCEL, 0);
}

uint32_t vigil_breakers_tick(struct vigil_breakers *b, const struct vigil_restart_policy *p, uint64_t now_ms)
{
	uint32_t opened = 0;
	/* Bounded by count <= capacity. */
	for (uint32_t i = 0; i < b->count; i++)
		opened += settle(b, &b->items[i], p, now_ms);
	if (b->overflow_used)
		opened += settle(b, &b->overflow, p, now_ms);
	return opened;
}

void vigil_breakers_reset(struct vigil_breakers *b, const char *worker_type, uint64_t now_ms)
{
	struct vigil_breaker *br = vigil_breakers_get(b, worker_type);
	if (br != NULL)
		apply(br, EV_RESET, now_ms);
}

/* ------------------------------------------------------- files */

const char *vigil_breaker_state_name(uint8_t state)
{
	switch (state) {
	case VIGIL_BREAKER_CLOSED:
		return "closed";
	case VIGIL_BREAKER_OPEN:
		return "open";
	case VIGIL_BREAKER_HALF_OPEN:
		return "half_open";
	default:
		return "?";
	}
}

/* Sets key_iso/key_ms to ms, or both to null when ms is 0. */
static int stamp_or_null(json_t *o, const char *key_iso, const char *key_ms, uint64_t ms)
{
	if (ms != 0)
		return vigil_json_stamp(o, key_iso, key_ms, ms);
	if (json_object_set_new(o, key_iso, json_null()) < 0 || json_object_set_new(o, key_ms, json_null()) < 0)
		return -ENOMEM;
	return 0;
}

json_t *vigil_breaker_to_json(const struct vigil_breaker *br, const struct vigil_restart_policy *p,
			      uint64_t now_ms)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool tripped = br->state != VIGIL_BREAKER_CLOSED && br->opened_at_ms != 0;
	if (json_object_set_new(o, "worker_type", json_string(br->worker_type)) < 0 ||
	    json_object_set_new(o, "state", json_string(vigil_breaker_state_name(br->state))) < 0 ||
	    json_object_set_new(o, "failure_count", json_integer(br->failure_count)) < 0 ||
	    stamp_or_null(o, "opened_at", "opened_at_ms", tripped ? br->opened_at_ms : 0) < 0 ||
	    stamp_or_null(o, "reset_at", "reset_at_ms", tripped ? br->opened_at_ms + reset_ms(p) : 0) < 0 ||
	    json_object_set_new(o, "threshold", json_integer(threshold(p))) < 0 ||
	    json_object_set_new(o, "enabled", json_boolean(p->circuit_breaker_enabled)) < 0 ||
	    json_object_set_new(o, "trial_in_flight", json_boolean(br->trial_in_flight)) < 0 ||
	    json_object_set_new(o, "denied_restarts", json_integer((json_int_t)br->denied)) < 0 ||
	    json_object_set_new(o, "opens", json_integer((json_int_t)br->opens)) < 0 ||
	    stamp_or_null(o, "last_failure_at", "last_failure_ms", br->last_failure_ms) < 0 ||
	    stamp_or_null(o, "last_success_at", "last_success_ms", br->last_success_ms) < 0)
		goto fail;
	if (br->overflow &&
	    (json_object_set_new(o, "overflow", json_true()) < 0 ||
	     json_object_set_new(o, "overflow_lookups", json_integer((json_int_t)br->overflow_lookups)) < 0))
		goto fail;
	if (vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static int write_one(struct vigil_breaker *br, int dirfd, const struct vigil_restart_policy *p, uint64_t now_ms)
{
	char name[80];
	snprintf(name, sizeof name, "%s.json", br->worker_type);
	json_t *doc = vigil_breaker_to_json(br, p, now_ms);
	if (doc == NULL)
		return -ENOMEM;
	int rc = vigil_fs_replace_json(dirfd, name, doc);
	json_decref(doc);
	if (rc == 0)
		br->dirty = false;
	return rc;
}

int vigil_breakers_write_dirty(struct vigil_breakers *b, int breakers_dirfd,
			       const struct vigil_restart_policy *p, uint64_t now_ms)
{
	int first = 0;
	/* Bounded by count <= capacity. */
	for (uint32_t i = 0; i < b->count; i++) {
		if (!b->items[i].dirty)
			continue;
		int rc = write_one(&b->items[i], breakers_dirfd, p, now_ms);
		if (rc < 0 && first == 0)
			first = rc;
	}
	if (b->overflow_used && b->overflow.dirty) {
		int rc = write_one(&b->overflow, breakers_dirfd, p, now_ms);
		if (rc < 0 && first == 0)
			first = rc;
	}
	return first;
}

uint32_t vigil_breakers_open_count(const struct vigil_breakers *b)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < b->count; i++)
		n += b->items[i].state != VIGIL_BREAKER_CLOSED;
	if (b->overflow_used)
		n += b->overflow.state != VIGIL_BREAKER_CLOSED;
	return n;
}
