/*
 * lifecycle.h - one worker's life over its successive processes: the one
 * state machine that every restart source goes through, and its record on
 * disk, which outlives vigild.
 *
 * A worker id that vigild can restart (it spawned it, or a request named
 * it) has one struct vigil_lineage.  Its `state` is written by exactly one
 * function, vigil_life_step(), which looks the (state, event) cell up in
 * one table (lifecycle.c, printed in the README's "Worker lifecycle"):
 * every feature that wants something of a worker (the scanner's verdicts,
 * an exit seen through a pidfd, a restart request from an operator, from
 * auto-fix or from vigild itself, a breaker, a quarantine and its lift, a
 * start-up of vigild) becomes an event into that table.  A cell that the
 * design says cannot happen stops vigild (VIGIL_ASSERT): a lifecycle that
 * is wrong must not go on restarting processes.
 *
 * One retry budget.  `attempt` counts the failed attempts of the current
 * failure streak, whoever asked for them.  At max_retries the lineage is
 * GAVE_UP, and only an operator (a request whose source is neither vigild
 * nor auto-fix) brings it back; auto-fix and vigild's own retries are
 * refused with one outcome line each.  A worker that runs healthy for
 * retry_reset_seconds starts its next streak at attempt 1.
 *
 * Kept across vigild.  Every step that changes what a restart of vigild
 * must know (state, attempt, the request being served and its absolute due
 * time, quarantine, the command) rewrites
 * coordination/lifecycle/<worker_id>.json (temp file + rename, like every
 * file vigild writes); vigild reads them back at start-up before it adopts
 * anything.  A worker that finished (a goodbye, exit 0, an end on purpose)
 * has nothing left to keep: its file goes.
 *
 * Times: in-memory deadlines (due_ms, spawned_ms, healthy_since_ms,
 * deadline_ms) are CLOCK_MONOTONIC milliseconds, so a step of the wall
 * clock changes no restart; the file holds wall-clock instants (due_at_ms),
 * converted on the way in and out, since the monotonic clock does not
 * survive a reboot and means nothing to an operator.
 */
#ifndef VIGIL_LIFECYCLE_H
#define VIGIL_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

enum vigil_life_state {
	VIGIL_LIFE_RUNNING = 0, /* a process runs (or is not yet seen to fail) */
	VIGIL_LIFE_STOPPING,    /* being ended for a restart */
	VIGIL_LIFE_WAITING,     /* a restart is due at due_ms */
	VIGIL_LIFE_STARTING,    /* spawned; success on its first beat before due_ms */
	VIGIL_LIFE_STOPPED,     /* no process: failed (its retry queued) or refused */
	VIGIL_LIFE_FINISHED,    /* no process: it ended well or on purpose */
	VIGIL_LIFE_GAVE_UP,     /* max_retries failed: until an operator acts */
	VIGIL_LIFE_QUARANTINED, /* auto-fix stopped its restarts: until lifted */
	VIGIL_LIFE_STATES
};

enum vigil_life_event {
	VIGIL_LE_REQUEST = 0,   /* a restart request accepted, the process runs: end it first */
	VIGIL_LE_REQUEST_IDLE,  /* a restart request accepted, no process: wait the delay */
	VIGIL_LE_ENDED,         /* the process being ended is gone */
	VIGIL_LE_SPAWNED,       /* the delay is over and the process started */
	VIGIL_LE_FIRST_BEAT,    /* the new process beat in time: success */
	VIGIL_LE_ATTEMPT_FAILED,/* spawn failed, died or stayed silent; or the breaker refused */
	VIGIL_LE_FAILED,        /* a running process failed (exit != 0, signal, zombie ended) */
	VIGIL_LE_FINISHED,      /* a running process ended well or was ended on purpose */
	VIGIL_LE_GIVE_UP,       /* the budget is spent */
	VIGIL_LE_REFUSED,       /* a request refused (given up, quarantined, unknown, breaker) */
	VIGIL_LE_QUARANTINE,    /* auto-fix: no more restarts */
	VIGIL_LE_LIFT,          /* an operator lifted the quarantine */
	VIGIL_LE_ADOPTED,       /* a process of it runs (found at start-up) */
	VIGIL_LE_STARTED,       /* a spawn request started it anew (attempt 0) */
	VIGIL_LE_EVENTS
};

struct vigil_lineage {
	char id[65], type[65], task[65];
	char *argv_json;         /* JSON array text; NULL unknown */
	char *cwd;
	uint64_t tokens;
	double timeout_seconds;  /* spawn --timeout: task deadline; 0 none */
	uint8_t state;           /* enum vigil_life_state: vigil_life_step() only */
	bool trial;              /* this attempt is a circuit-breaker trial */
	bool counted;            /* this attempt is in restarts_attempted */
	uint32_t attempt;        /* attempts in the current failure streak */
	uint64_t due_ms;         /* monotonic. WAITING: spawn at; STARTING: first beat by */
	uint64_t delay_ms;       /* the delay this attempt waited */
	uint64_t spawned_ms;     /* monotonic */
	uint64_t healthy_since_ms; /* monotonic, 0 not running */
	uint64_t deadline_ms;    /* monotonic: spawned_ms + timeout, 0 none */
	int32_t pid;
	uint32_t slot;
	uint64_t gen;
	int pidfd;               /* ours until the worker registers */
	uint64_t adopted_tag;    /* adopted: spawn_tag of the request it was spawned for */
	bool queued;             /* a restart request for it is queued, not yet taken */
	char quarantine_why[160];
	char request[128];       /* queue file being served, "" none */
	char request_id[129];    /* its id: file name @ mtime (names repeat) */
	char reason[129];        /* of the request being served */
	char failure[160];       /* why the last attempt failed */
	/* Read back from the file at start-up: the request that was being
	 * served and its wall-clock due instant, so that the same request seen
	 * again keeps its absolute due time and its attempt number. */
	char resumed_request_id[129];
	uint64_t resumed_due_unix_ms;
	uint32_t resumed_attempt;
};

/* The table's cell for (state, event): the next state, or -1 when the
 * design says the event cannot happen in that state. */
int vigil_life_next(uint8_t state, uint8_t event);

/* The one writer of l->state.  Applies the cell; stops vigild (with
 * file:line of the caller's event) on an impossible one.  Returns the
 * state left, for the caller's log. */
uint8_t vigil_life_step(struct vigil_lineage *l, uint8_t event);

const char *vigil_life_state_name(uint8_t state);
const char *vigil_life_event_name(uint8_t event);
/* Is a request from this source an operator's?  (Not vigild's own retry,
 * not auto-fix.) */
bool vigil_life_source_is_operator(const char *source);
/* May a request from `source` be carried out in `state`?  false: it is
 * refused (given up or quarantined and the source is not an operator, or
 * quarantined whoever asks: a lift comes first). */
bool vigil_life_request_allowed(uint8_t state, const char *source);

/* The record kept in coordination/lifecycle/<id>.json (new reference).
 * now_mono_ms/now_unix_ms convert due_ms to a wall-clock instant. */
json_t *vigil_life_to_json(const struct vigil_lineage *l, uint64_t now_mono_ms, uint64_t now_unix_ms);
/* Fills a zeroed l from such a record; 0 or -EINVAL with why. */
int vigil_life_from_json(struct vigil_lineage *l, const json_t *o, char *why, size_t why_len);
/* Should this lineage have a file at all?  (A finished one has none.) */
bool vigil_life_kept(const struct vigil_lineage *l);

#endif /* VIGIL_LIFECYCLE_H */
