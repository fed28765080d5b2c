/*
 * lifecycle.c - the worker lifecycle table, its one writer, and the record
 * each lineage keeps in coordination/lifecycle/.  See lifecycle.h for what
 * it is and why; the README's "Worker lifecycle" prints the same table.
 *
 * The table is state x event -> next state.  X marks what the design says
 * cannot happen; the callers check the conditions that make a cell
 * reachable (restart.c: "one restart at a time", "a quarantine closes the
 * pending request first"), and the table is where those rules are written
 * down and enforced.  Like breaker.c's trans[][], it is data, not control
 * flow, so that it can be read, printed and tested cell by cell.
 *
 * One cell needs a word: (running, spawned) -> starting.  A vigild that
 * restarts finds the process a request of its predecessor spawned already
 * running (adopted, so "running"); when it takes that request again, the
 * process is the attempt, awaiting its first beat.
 */
#define _GNU_SOURCE
#include "lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "util.h"
#include "vigil.h"

#define X (-1)
enum { R = VIGIL_LIFE_RUNNING, SG = VIGIL_LIFE_STOPPING, W = VIGIL_LIFE_WAITING, ST = VIGIL_LIFE_STARTING,
       S = VIGIL_LIFE_STOPPED, F = VIGIL_LIFE_FINISHED, G = VIGIL_LIFE_GAVE_UP, Q = VIGIL_LIFE_QUARANTINED };

/* Columns: the events in enum order.
 *                REQ REQ_IDLE ENDED SPAWNED BEAT ATT_FAIL FAILED FINISHED GIVE_UP REFUSED QUAR LIFT ADOPTED STARTED */
static const signed char trans[VIGIL_LIFE_STATES][VIGIL_LE_EVENTS] = {
	[R] =  {SG, W,       X,    ST,     X,   X,       S,     F,       G,      R,      Q,   X,   R,      X},
	[SG] = {X,  X,       W,    X,      X,   X,       X,     X,       X,      S,      X,   X,   X,      X},
	[W] =  {X,  X,       X,    ST,     X,   S,       X,     X,       G,      S,      X,   X,   X,      X},
	[ST] = {X,  X,       X,    X,      R,   S,       X,     X,       G,      X,      X,   X,   X,      X},
	[S] =  {SG, W,       X,    X,      X,   X,       X,     X,       G,      S,      Q,   X,   R,      R},
	[F] =  {SG, W,       X,    X,      X,   X,       X,     X,       G,      F,      Q,   X,   R,      R},
	[G] =  {SG, W,       X,    X,      X,   X,       X,     X,       G,      G,      Q,   X,   G,      R},
	[Q] =  {X,  X,       X,    X,      X,   X,       X,     X,       X,      Q,      Q,   S,   Q,      X},
};
_Static_assert(sizeof trans[0] == VIGIL_LE_EVENTS, "one column per event");
_Static_assert(sizeof trans / sizeof trans[0] == VIGIL_LIFE_STATES, "one row per state");

static const char *const state_names[VIGIL_LIFE_STATES] = {
	[R] = "running", [SG] = "stopping", [W] = "waiting", [ST] = "starting",
	[S] = "stopped", [F] = "finished", [G] = "gave_up", [Q] = "quarantined",
};

static const char *const event_names[VIGIL_LE_EVENTS] = {
	[VIGIL_LE_REQUEST] = "request",
	[VIGIL_LE_REQUEST_IDLE] = "request_idle",
	[VIGIL_LE_ENDED] = "ended",
	[VIGIL_LE_SPAWNED] = "spawned",
	[VIGIL_LE_FIRST_BEAT] = "first_beat",
	[VIGIL_LE_ATTEMPT_FAILED] = "attempt_failed",
	[VIGIL_LE_FAILED] = "failed",
	[VIGIL_LE_FINISHED] = "finished",
	[VIGIL_LE_GIVE_UP] = "give_up",
	[VIGIL_LE_REFUSED] = "refused",
	[VIGIL_LE_QUARANTINE] = "quarantine",
	[VIGIL_LE_LIFT] = "lift",
	[VIGIL_LE_ADOPTED] = "adopted",
	[VIGIL_LE_STARTED] = "started",
};

int vigil_life_next(uint8_t state, uint8_t event)
{
	if (state >= VIGIL_LIFE_STATES || event >= VIGIL_LE_EVENTS)
		return X;
	return trans[state][event];
}

uint8_t vigil_life_step(struct vigil_lineage *l, uint8_t event)
{
	int next = vigil_life_next(l->state, event);
	if (next < 0)
		fprintf(stderr, "vigild: lifecycle of %s: event %s in state %s\n", l->id,
			event < VIGIL_LE_EVENTS ? event_names[event] : "?", vigil_life_state_name(l->state));
	VIGIL_ASSERT(next >= 0);
	l->state = (uint8_t)next;
	return l->state;
}

const char *vigil_life_state_name(uint8_t state)
{
	return state < VIGIL_LIFE_STATES ? state_names[state] : "?";
}

const char *vigil_life_event_name(uint8_t event)
{
	return event < VIGIL_LE_EVENTS ? event_names[event] : "?";
}

bool vigil_life_source_is_operator(const char *source)
{
	return source == NULL || (strcmp(source, "vigild") != 0 && strcmp(source, "autofix") != 0);
}

bool vigil_life_request_allowed(uint8_t state, const char *source)
{
	if (state == VIGIL_LIFE_QUARANTINED)
		return false;
	if (state == VIGIL_LIFE_GAVE_UP)
		return vigil_life_source_is_operator(source);
	return true;
}

bool vigil_life_kept(const struct vigil_lineage *l)
{
	return l->state != VIGIL_LIFE_FINISHED;
}

static int state_from_name(const char *s)
{
	for (int i = 0; i < VIGIL_LIFE_STATES; i++)
		if (strcmp(state_names[i], s) == 0)
			return i;
	return -1;
}

json_t *vigil_life_to_json(const struct vigil_lineage *l, uint64_t now_mono_ms, uint64_t now_unix_ms)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "worker_id", json_string(l->id));
	json_object_set_new(o, "worker_type", json_string(l->type));
	json_object_set_new(o, "task_id", json_string(l->task));
	json_object_set_new(o, "state", json_string(vigil_life_state_name(l->state)));
	json_object_set_new(o, "attempt", json_integer(l->attempt));
	json_t *cmd = l->argv_json != NULL ? json_loads(l->argv_json, 0, NULL) : NULL;
	json_object_set_new(o, "command", cmd != NULL ? cmd : json_null());
	json_object_set_new(o, "cwd", l->cwd != NULL ? json_string(l->cwd) : json_null());
	json_object_set_new(o, "tokens", json_integer((json_int_t)l->tokens));
	json_object_set_new(o, "timeout_seconds", json_real(l->timeout_seconds));
	json_object_set_new(o, "quarantine_reason",
			    l->state == VIGIL_LIFE_QUARANTINED ? json_string(l->quarantine_why) : json_null());
	json_object_set_new(o, "last_failure", l->failure[0] ? json_string(l->failure) : json_null());
	if (l->request_id[0] != '\0') {
		json_object_set_new(o, "request", json_string(l->request));
		json_object_set_new(o, "request_id", json_string(l->request_id));
		json_object_set_new(o, "reason", json_string(l->reason));
		if (l->state == VIGIL_LIFE_WAITING || l->state == VIGIL_LIFE_STOPPING) {
			uint64_t due_unix = l->due_ms > now_mono_ms ? now_unix_ms + (l->due_ms - now_mono_ms) : now_unix_ms;
			vigil_json_stamp(o, "due_at", "due_at_ms", due_unix);
		}
		json_object_set_new(o, "delay_seconds", json_real((double)l->delay_ms / 1000.0));
	}
	vigil_json_stamp(o, "timestamp", "timestamp_ms", now_unix_ms);
	return o;
}

int vigil_life_from_json(struct vigil_lineage *l, const json_t *o, char *why, size_t why_len)
{
	const char *id = json_string_value(json_object_get(o, "worker_id"));
	const char *type = json_string_value(json_object_get(o, "worker_type"));
	const char *task = json_string_value(json_object_get(o, "task_id"));
	const char *st = json_string_value(json_object_get(o, "state"));
	json_t *att = json_object_get(o, "attempt");
	if (id == NULL || !vigil_id_valid(id) || type == NULL || !vigil_id_valid(type) ||
	    (task != NULL && task[0] != '\0' && !vigil_id_valid(task))) {
		snprintf(why, why_len, "worker_id/worker_type/task_id missing or not [A-Za-z0-9._-]{1,64}");
		return -EINVAL;
	}
	int state = st != NULL ? state_from_name(st) : -1;
	if (state < 0) {
		snprintf(why, why_len, "key 'state' is not one of the lifecycle states");
		return -EINVAL;
	}
	if (!json_is_integer(att) || json_integer_value(att) < 0 || json_integer_value(att) > 100000) {
		snprintf(why, why_len, "key 'attempt' must be an integer 0..100000");
		return -EINVAL;
	}
	json_t *cmd = json_object_get(o, "command");
	if (cmd != NULL && !json_is_null(cmd)) {
		bool ok = json_is_array(cmd) && json_array_size(cmd) > 0 && json_array_size(cmd) <= 256;
		size_t i;
		json_t *v;
		json_array_foreach(cmd, i, v) ok = ok && json_is_string(v) && json_string_length(v) <= 4096 &&
						    memchr(json_string_value(v), '\0', json_string_length(v)) == NULL;
		if (!ok) {
			snprintf(why, why_len, "key 'command' must be a non-empty list of strings");
			return -EINVAL;
		}
		l->argv_json = json_dumps(cmd, JSON_COMPACT);
	}
	const char *cwd = json_string_value(json_object_get(o, "cwd"));
	if (cwd != NULL && cwd[0] == '/')
		l->cwd = strdup(cwd);
	snprintf(l->id, sizeof l->id, "%s", id);
	snprintf(l->type, sizeof l->type, "%s", type);
	snprintf(l->task, sizeof l->task, "%s", task != NULL ? task : "");
	json_t *tok = json_object_get(o, "tokens");
	l->tokens = json_is_integer(tok) && json_integer_value(tok) > 0 ? (uint64_t)json_integer_value(tok) : 0;
	json_t *to = json_object_get(o, "timeout_seconds");
	l->timeout_seconds = json_is_number(to) && json_number_value(to) > 0 ? json_number_value(to) : 0;
	l->attempt = (uint32_t)json_integer_value(att);
	const char *qw = json_string_value(json_object_get(o, "quarantine_reason"));
	snprintf(l->quarantine_why, sizeof l->quarantine_why, "%s", qw != NULL ? qw : "");
	const char *lf = json_string_value(json_object_get(o, "last_failure"));
	snprintf(l->failure, sizeof l->failure, "%s", lf != NULL ? lf : "");
	/* A request in flight when the previous vigild stopped: its file is
	 * still queued (it goes only with its outcome) and is taken again;
	 * what it must keep is its attempt number and its absolute due time.
	 * The lineage itself waits in STOPPED for that request. */
	const char *rid = json_string_value(json_object_get(o, "request_id"));
	json_t *due = json_object_get(o, "due_at_ms");
	if (rid != NULL && (state == VIGIL_LIFE_WAITING || state == VIGIL_LIFE_STOPPING || state == VIGIL_LIFE_STARTING)) {
		snprintf(l->resumed_request_id, sizeof l->resumed_request_id, "%s", rid);
		l->resumed_due_unix_ms = json_is_integer(due) && json_integer_value(due) > 0
						 ? (uint64_t)json_integer_value(due)
						 : 0;
		l->resumed_attempt = l->attempt;
	}
	switch (state) {
	case VIGIL_LIFE_WAITING:
	case VIGIL_LIFE_STOPPING:
	case VIGIL_LIFE_STARTING:
		state = VIGIL_LIFE_STOPPED;
		break;
	default:
		break;
	}
	l->state = (uint8_t)state;
	return 0;
}
