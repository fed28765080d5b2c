/*
 * restart.c - spawning, restarts with backoff, circuit breakers, zombie
 * cleanup, the token pool.  See restart.h for the files involved.  What a
 * lineage's state may do is lifecycle.c's table; how a process is ended is
 * endings.c; how a queue file is read and judged is queuefile.c.
 *
 * A lineage is one worker id over its successive processes.  Its state
 * changes only through lin_step(), that is through the lifecycle table
 * (lifecycle.c; the README's "Worker lifecycle"), and every step is saved
 * in coordination/lifecycle/<id>.json so that a vigild that restarts,
 * even after kill -9, knows what its predecessor knew.
 *
 * "failure" means: record the outcome, then either queue the next attempt
 * (a request file vigild writes itself, so that a crash of vigild loses
 * nothing) or, after max_retries, give up with "max_retries_exceeded".
 * Attempt n waits retry_interval * backoff_multiplier^(n-1), spread by
 * retry_jitter.  Breakers are fed from the history file itself (our lines
 * and anyone else's), so there is one source of truth for failure counts.
 *
 * Trade-offs, said plainly:
 * - vigild restarts on its own only the workers it spawned (it knows their
 *   command, directory and tokens).  A request naming a self-registered
 *   worker runs the command line and directory recorded from /proc at its
 *   registration, with vigild's environment: the worker's own environment
 *   is not knowable.  A worker with no known command gets a failure ("no
 *   command known") rather than a guess.
 * - Lineages are kept in a flat array searched linearly: restarts are rare
 *   events and the array is bounded (VIGIL_LINEAGES_MAX).
 */
#define _GNU_SOURCE
#include "restart.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3 /* waitid on a pidfd: Linux 5.4 */
#endif

#include "action.h"
#include "fixes.h"
#include "endings.h"
#include "queuefile.h"
#include "log.h"
#include "spawn.h"
#include "trust.h"
#include "util.h"
#include "invariant.h"
#include "verify.h"

#define VIGIL_LINEAGES_MAX 16384u
#define QUEUE_BATCH 256u        /* files taken per directory per poll */
#define HISTORY_BATCH 10000u    /* history lines read per poll */
#define HISTORY_FILE "worker-restart-history.jsonl"
#define ENDING_POLL_MS 10u      /* how often a lingering process being ended is looked at */

/* ---- small helpers ------------------------------------------------------------ */

/* In-memory deadlines (restart delays, first-beat deadlines, kill graces,
 * task deadlines, the retry reset) are on this clock, so that a step of the
 * wall clock changes no restart; wall-clock time (vigil_unix_ms) is only
 * what is written into files or compared with them. */
static uint64_t mono_ms(void) { return vigil_mono_ns() / VIGIL_NS_PER_MS; }

static uint64_t tag_of(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h == 0 ? 1 : h;
}

static struct vigil_lineage *lin_find(struct vigil_restart *r, const char *id)
{
	for (uint32_t i = 0; i < r->nlin; i++)
		if (strcmp(r->lin[i]->id, id) == 0)
			return r->lin[i];
	return NULL;
}

static struct vigil_lineage *lin_new(struct vigil_restart *r, const char *id, const char *type, const char *task,
				     const char *argv_json, const char *cwd, uint64_t tokens)
{
	struct vigil_lineage *l = lin_find(r, id);
	if (l == NULL) {
		if (r->nlin >= r->cap)
			return NULL;
		l = calloc(1, sizeof *l);
		if (l == NULL)
			return NULL;
		l->pidfd = -1;
		l->state = VIGIL_LIFE_STOPPED;
		r->lin[r->nlin++] = l;
	}
	snprintf(l->id, sizeof l->id, "%s", id);
	snprintf(l->type, sizeof l->type, "%s", type);
	snprintf(l->task, sizeof l->task, "%s", task);
	if (argv_json != NULL) {
		char *s = strdup(argv_json);
		if (s != NULL) {
			free(l->argv_json);
			l->argv_json = s;
		}
	}
	if (cwd != NULL) {
		char *s = strdup(cwd);
		if (s != NULL) {
			free(l->cwd);
			l->cwd = s;
		}
	}
	l->tokens = tokens;
	return l;
}

/* Rewrites coordination/lifecycle/<id>.json (or removes it for a lineage
 * with nothing to keep).  A failure is logged: the lineage goes on in
 * memory, and the next step writes it again. */
static void lin_save(struct vigil_action *a, const struct vigil_lineage *l)
{
	struct vigil_restart *r = &a->rs;
	char name[80];
	snprintf(name, sizeof name, "%s.json", l->id);
	if (!vigil_life_kept(l)) {
		vigil_fs_remove(r->lifecycle_fd, name);
		return;
	}
	json_t *o = vigil_life_to_json(l, mono_ms(), vigil_unix_ms());
	int rc = o != NULL ? vigil_fs_replace_json(r->lifecycle_fd, name, o) : -ENOMEM;
	json_decref(o);
	if (rc < 0)
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "cannot write coordination/lifecycle/%s: %s", name,
			  strerror(-rc));
}

/* The one door to a lineage's state: the table's cell, then the record. */
static void lin_step(struct vigil_action *a, struct vigil_lineage *l, uint8_t event)
{
	vigil_life_step(l, event);
	lin_save(a, l);
}

/* Reads "command" and "cwd" of a worker spec file in active/ or zombie/. */
static bool spec_command(struct vigil_action *a, const char *id, char **argv_json, char **cwd, uint64_t *tokens)
{
	char name[80], why[200];
	snprintf(name, sizeof name, "%s.json", id);
	json_t *o = vigil_queue_read(a->active_fd, name, why, sizeof why);
	if (o == NULL)
		o = vigil_queue_read(a->zombie_fd, name, why, sizeof why);
	if (o == NULL)
		return false;
	json_t *cmd = json_object_get(o, "command");
	json_t *dir = json_object_get(o, "cwd");
	json_t *tb = json_object_get(json_object_get(o, "token_budget"), "allocated");
	bool ok = vigil_queue_command_ok(cmd) && json_is_string(dir) && json_string_value(dir)[0] == '/';
	if (ok) {
		*argv_json = json_dumps(cmd, JSON_COMPACT);
		*cwd = strdup(json_string_value(dir));
		*tokens = json_is_integer(tb) && json_integer_value(tb) > 0 ? (uint64_t)json_integer_value(tb) : 0;
		ok = *argv_json != NULL && *cwd != NULL;
		if (!ok) {
			free(*argv_json);
			free(*cwd);
		}
	}
	json_decref(o);
	return ok;
}

/* Did the previous vigild verify this very process (its spec in active/
 * or zombie/ says "verified" with the same pid and start time)?  A spec is
 * vigild's own file; the start time, which /proc confirms again before
 * anything is trusted, says it is the same process. */
static bool spec_verified(struct vigil_action *a, const char *id, int32_t pid, uint64_t start_ticks)
{
	char name[80], why[200];
	snprintf(name, sizeof name, "%s.json", id);
	json_t *o = vigil_queue_read(a->active_fd, name, why, sizeof why);
	if (o == NULL)
		o = vigil_queue_read(a->zombie_fd, name, why, sizeof why);
	json_t *p = json_object_get(o, "pid"), *t = json_object_get(o, "pid_start_ticks");
	bool yes = o != NULL && json_is_true(json_object_get(o, "verified")) && json_is_integer(p) &&
		   json_integer_value(p) == pid && json_is_integer(t) && start_ticks != 0 &&
		   (uint64_t)json_integer_value(t) == start_ticks;
	json_decref(o);
	return yes;
}

static const struct vigil_restart_policy *policy(struct vigil_action *a) { return &a->restart; }

static uint64_t next_rand(struct vigil_restart *r)
{
	/* xorshift64: jitter needs spread, not cryptographic quality */
	uint64_t x = r->seq ^ 0x9e3779b97f4a7c15ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	r->seq = x;
	return x;
}

static uint64_t backoff_ms(struct vigil_action *a, uint32_t attempt)
{
	const struct vigil_restart_policy *p = policy(a);
	double d = p->retry_interval_seconds * pow(p->backoff_multiplier, attempt > 0 ? (double)(attempt - 1) : 0.0);
	if (p->retry_jitter > 0) {
		double u = (double)(next_rand(&a->rs) >> 11) / 9007199254740992.0;
		d *= 1.0 + p->retry_jitter * u;
	}
	if (d > 30.0 * 86400.0)
		d = 30.0 * 86400.0; /* a month is "never" enough */
	return (uint64_t)llround(d * 1000.0);
}

/* ---- history and outcomes ----------------------------------------------------- */

static void on_history_record(void *ctx, const struct vigil_history_record *rec)
{
	struct vigil_action *a = ctx;
	uint64_t now = vigil_unix_ms();
	uint64_t at = rec->timestamp_ms != 0 && rec->timestamp_ms < now ? rec->timestamp_ms : now;
	if (vigil_breakers_record(&a->rs.breakers, policy(a), rec, at)) {
		struct vigil_breaker *b = vigil_breakers_get(&a->rs.breakers, rec->worker_type);
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
			  "circuit breaker for worker type %s opened after %u consecutive failures: no restart of that "
			  "type runs for %.0f s",
			  rec->worker_type, b != NULL ? b->failure_count : 0, policy(a)->circuit_breaker_reset_seconds);
		vigil_fixes_breaker_opened(a, rec->worker_type, b != NULL ? b->failure_count : 0, now);
	}
}

static void on_history_bad(void *ctx, uint64_t lineno, const char *why)
{
	struct vigil_action *a = ctx;
	a->rs.history_bad_lines++;
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
		  "metrics/worker-restart-history.jsonl line %llu skipped: %s", (unsigned long long)lineno, why);
}

static void read_history(struct vigil_action *a)
{
	vigil_history_read(&a->rs.hreader, a->rs.metrics_fd, HISTORY_FILE, HISTORY_BATCH, on_history_record,
			   on_history_bad, a);
}

static void write_auto_request(struct vigil_action *a, struct vigil_lineage *l, uint32_t attempt, const char *reason,
			       uint64_t now);

/* How a request ends.  SUCCESS and FAILED close an attempt (a spawn was
 * tried: counted in restarts_attempted); REFUSED closes a request that
 * never became one (quarantined, given up, unknown, breaker open) unless an
 * attempt was already under way, which then failed; GIVE_UP refuses
 * because the budget is spent. */
enum outcome_kind { OUT_SUCCESS, OUT_FAILED, OUT_REFUSED, OUT_GIVE_UP };

/* Records the outcome of the request l is serving (one history line) and
 * moves l on through the lifecycle table. */
static void outcome(struct vigil_action *a, struct vigil_lineage *l, enum outcome_kind kind, const char *reason,
		    uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	const struct vigil_restart_policy *p = policy(a);
	bool success = kind == OUT_SUCCESS;
	bool last = kind == OUT_GIVE_UP || (kind == OUT_FAILED && l->attempt >= p->max_retries);
	/* The give-up names the failure that spent the budget, never "". */
	const char *cause = reason[0] != '\0' ? reason : l->failure[0] != '\0' ? l->failure : "unspecified";
	struct vigil_history_record rec;
	memset(&rec, 0, sizeof rec);
	snprintf(rec.worker_id, sizeof rec.worker_id, "%s", l->id);
	snprintf(rec.worker_type, sizeof rec.worker_type, "%s", l->type);
	snprintf(rec.task_id, sizeof rec.task_id, "%s", l->task);
	snprintf(rec.request_id, sizeof rec.request_id, "%s", l->request_id);
	snprintf(rec.reason, sizeof rec.reason, "%.128s", last ? "max_retries_exceeded" : cause);
	rec.success = success;
	rec.attempt = l->attempt;
	rec.timestamp_ms = now;
	json_t *extra = json_object();
	if (extra != NULL) {
		if (l->pid > 0)
			json_object_set_new(extra, "pid", json_integer(l->pid));
		if (last)
			json_object_set_new(extra, "cause", json_string(cause));
		if (l->reason[0] != '\0')
			json_object_set_new(extra, "requested_because", json_string(l->reason));
		if (l->trial)
			json_object_set_new(extra, "breaker_trial", json_true());
		if (!l->counted && !success)
			json_object_set_new(extra, "refused", json_true());
	}
	int rc = vigil_history_append(r->history_fd, &rec, (double)l->delay_ms / 1000.0, extra);
	json_decref(extra);
	/* The table's event for how the request ended, from where it stands. */
	uint8_t ev = success ? VIGIL_LE_FIRST_BEAT
			     : (l->state == VIGIL_LIFE_STARTING || (l->state == VIGIL_LIFE_WAITING && l->counted))
				       ? VIGIL_LE_ATTEMPT_FAILED
				       : VIGIL_LE_REFUSED;
	if (rc < 0) {
		/* The request stays queued: its outcome is not recorded, so it is
		 * not finished.  It is taken again on the next poll, and its
		 * attempt is counted again then. */
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR,
			  "cannot append to metrics/worker-restart-history.jsonl: %s; request %s stays queued",
			  strerror(-rc), l->request);
		if (l->counted && r->attempted > 0)
			r->attempted--;
		l->counted = false;
		l->request[0] = '\0';
		lin_step(a, l, success ? VIGIL_LE_ATTEMPT_FAILED : ev);
		return;
	}
	if (l->counted)
		success ? r->succeeded++ : r->failed++;
	else
		r->refused++;
	l->counted = false;
	vigil_log(VIGIL_LOG_RESTART, success ? VIGIL_LOG_INFO : VIGIL_LOG_WARN,
		  "restart of %s (type %s, task %s) attempt %u after %.3f s: %s%s%s", l->id, l->type,
		  l->task[0] ? l->task : "-", l->attempt, (double)l->delay_ms / 1000.0, success ? "success" : "failure",
		  success ? "" : ": ", success ? "" : (last ? "max_retries_exceeded" : cause));
	if (l->request[0] != '\0')
		vigil_fs_remove(r->queue_fd, l->request);
	l->request[0] = '\0';
	l->request_id[0] = '\0';
	l->reason[0] = '\0';
	l->trial = false;
	read_history(a); /* breakers see this outcome at once */
	if (success) {
		l->healthy_since_ms = mono_ms();
		lin_step(a, l, ev);
		return;
	}
	if (kind == OUT_FAILED)
		snprintf(l->failure, sizeof l->failure, "%s", cause);
	lin_step(a, l, ev);
	if (last || kind != OUT_FAILED) {
		/* Nothing more will run: a "restarting" spec left for it goes. */
		urcu_memb_read_lock();
		bool live = vigil_registry_find(&a->reg, l->id) != NULL;
		urcu_memb_read_unlock();
		if (!live) {
			char spec[80];
			snprintf(spec, sizeof spec, "%s.json", l->id);
			vigil_fs_remove(a->active_fd, spec);
		}
	}
	if (last) {
		r->gave_up++;
		lin_step(a, l, VIGIL_LE_GIVE_UP);
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR,
			  "giving up on %s after attempt %u (max_retries %u; last failure: %s): no more restarts until an "
			  "operator asks (vigilctl restart %s)",
			  l->id, l->attempt, p->max_retries, l->failure[0] ? l->failure : cause, l->id);
	} else if (kind == OUT_FAILED) {
		write_auto_request(a, l, l->attempt + 1, cause, now);
	}
	if (kind != OUT_FAILED)
		return;
	/* A failed attempt is a failure to classify, after the retry is queued
	 * (so auto-fix sees the restart already under way; once: the death of a
	 * restart attempt is reported here, not again as an exit). */
	bool slow = strncmp(cause, "no_first_beat", 13) == 0;
	if (slow || strncmp(cause, "died before", 11) == 0 || strncmp(cause, "spawn_failed", 12) == 0) {
		struct vigil_failure f;
		memset(&f, 0, sizeof f);
		f.kind = slow ? VIGIL_FAIL_SLOW_START : VIGIL_FAIL_RESTART;
		snprintf(f.worker_id, sizeof f.worker_id, "%s", l->id);
		snprintf(f.worker_type, sizeof f.worker_type, "%s", l->type);
		f.exit_code = -1;
		f.signal = -1;
		f.at_ms = now;
		uint64_t m = mono_ms();
		f.uptime_ms = l->spawned_ms > 0 && m > l->spawned_ms ? m - l->spawned_ms : 0;
		vigil_fixes_failure(a, &f);
	}
}

/* A failure vigild found itself enters the same path as anyone's request:
 * a file in restart/queue, which survives a crash of vigild. */
static void write_auto_request(struct vigil_action *a, struct vigil_lineage *l, uint32_t attempt, const char *reason,
			       uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	VIGIL_ASSERT(l->state != VIGIL_LIFE_QUARANTINED && l->state != VIGIL_LIFE_GAVE_UP);
	json_t *o = vigil_queue_restart_doc(l->id, l->type, l->task, reason, "vigild", now);
	if (o == NULL)
		return;
	l->queued = true;
	json_object_set_new(o, "attempt", json_integer(attempt));
	if (l->argv_json != NULL) {
		json_t *cmd = json_loads(l->argv_json, 0, NULL);
		if (cmd != NULL)
			json_object_set_new(o, "command", cmd);
	}
	if (l->cwd != NULL)
		json_object_set_new(o, "cwd", json_string(l->cwd));
	json_object_set_new(o, "tokens", json_integer((json_int_t)l->tokens));
	char name[96];
	snprintf(name, sizeof name, "%.64s-auto-%llu-%llu.json", l->id, (unsigned long long)now,
		 (unsigned long long)(r->seq++ & 0xffff));
	int rc = vigil_fs_replace_json(r->queue_fd, name, o);
	json_decref(o);
	if (rc < 0)
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "cannot queue a restart of %s: %s", l->id, strerror(-rc));
	else
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "queued restart of %s (attempt %u): %s", l->id, attempt,
			  reason);
}

/* ---- cleanup ----------------------------------------------------------------------- */

static void cleanup_event(struct vigil_action *a, const char *id, const char *type, int32_t pid, const char *sig,
			  uint64_t tokens, const char *result, uint64_t now)
{
	json_t *o = json_object();
	if (o == NULL)
		return;
	json_object_set_new(o, "event", json_string("zombie_cleanup"));
	json_object_set_new(o, "worker_id", json_string(id));
	json_object_set_new(o, "worker_type", json_string(type));
	json_object_set_new(o, "pid", pid > 0 ? json_integer(pid) : json_null());
	json_object_set_new(o, "signal", sig != NULL ? json_string(sig) : json_null());
	json_object_set_new(o, "tokens_returned", json_integer((json_int_t)tokens));
	json_object_set_new(o, "result", json_string(result));
	vigil_json_stamp(o, "timestamp", "timestamp_ms", now);
	if (vigil_fs_append_json(a->zombie_events_fd, o) == 0)
		a->events_written++;
	json_decref(o);
}

static void cleanup_done(struct vigil_action *a, struct vigil_cleanup *c, uint64_t now)
{
	size_t n = json_array_size(c->workers);
	bool ok = n > 0 || c->worker_id[0] == '\0';
	json_t *o = json_object();
	if (o != NULL) {
		char msg[200];
		if (n == 0)
			snprintf(msg, sizeof msg, c->worker_id[0] ? "no zombie named %s" : "no zombies to clean up",
				 c->worker_id);
		else
			snprintf(msg, sizeof msg, "%zu zombie%s cleaned up", n, n == 1 ? "" : "s");
		json_object_set_new(o, "request_id", json_string(c->request));
		json_object_set_new(o, "action", json_string("cleanup_zombies"));
		json_object_set_new(o, "result", json_string(ok ? "success" : "failure"));
		json_object_set_new(o, "message", json_string(msg));
		json_object_set(o, "workers", c->workers);
		vigil_json_stamp(o, "timestamp", "timestamp_ms", now);
		vigil_fs_replace_json(a->rs.control_done_fd, c->request, o);
		json_decref(o);
	}
	vigil_fs_remove(a->rs.control_queue_fd, c->request);
	json_decref(c->workers);
	memset(c, 0, sizeof *c);
}

static void cleanup_note(struct vigil_cleanup *c, const char *id, int32_t pid, const char *sig, uint64_t tokens,
			 const char *result)
{
	json_t *w = json_object();
	if (w == NULL)
		return;
	json_object_set_new(w, "worker_id", json_string(id));
	json_object_set_new(w, "pid", pid > 0 ? json_integer(pid) : json_null());
	json_object_set_new(w, "signal", sig != NULL ? json_string(sig) : json_null());
	json_object_set_new(w, "tokens_returned", json_integer((json_int_t)tokens));
	json_object_set_new(w, "result", json_string(result));
	json_array_append_new(c->workers, w);
}

static void tokens_return(struct vigil_restart *r, uint64_t n)
{
	r->tokens_allocated = n > r->tokens_allocated ? 0 : r->tokens_allocated - n;
}

/* Zombie specs whose process is already gone (their record left with it). */
static void cleanup_leftovers(struct vigil_action *a, struct vigil_cleanup *c, uint64_t now)
{
	char names[64][128];
	uint32_t n = vigil_queue_list(a->zombie_fd, names, 64);
	for (uint32_t i = 0; i < n; i++) {
		char id[80];
		snprintf(id, sizeof id, "%.*s", (int)(strlen(names[i]) - 5), names[i]);
		if (c->worker_id[0] != '\0' && strcmp(c->worker_id, id) != 0)
			continue;
		urcu_memb_read_lock();
		bool live = vigil_registry_find(&a->reg, id) != NULL;
		urcu_memb_read_unlock();
		if (live)
			continue;
		char why[200];
		uint64_t tokens = 0;
		char type[65] = "";
		json_t *o = vigil_queue_read(a->zombie_fd, names[i], why, sizeof why);
		if (o != NULL) {
			json_t *tb = json_object_get(json_object_get(o, "token_budget"), "allocated");
			if (json_is_integer(tb) && json_integer_value(tb) > 0)
				tokens = (uint64_t)json_integer_value(tb);
			json_t *t = json_object_get(o, "worker_type");
			if (json_is_string(t) && vigil_id_valid(json_string_value(t)))
				snprintf(type, sizeof type, "%s", json_string_value(t));
			json_decref(o);
		}
		vigil_fs_remove(a->zombie_fd, names[i]);
		tokens_return(&a->rs, tokens);
		a->rs.zombies_cleaned++;
		cleanup_note(c, id, 0, NULL, tokens, "success (process already gone)");
		cleanup_event(a, id, type, 0, NULL, tokens, "success", now);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "zombie_cleanup: %s (process already gone), %llu tokens back",
			  id, (unsigned long long)tokens);
	}
}

static void start_cleanup(struct vigil_action *a, const char *name, const char *worker_id, uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	int idx = -1;
	for (int i = 0; i < VIGIL_CLEANUPS_MAX; i++) {
		if (r->cleanups[i].used && strcmp(r->cleanups[i].request, name) == 0)
			return; /* in progress */
		if (!r->cleanups[i].used && idx < 0)
			idx = i;
	}
	if (idx < 0)
		return; /* all busy: stays queued */
	struct vigil_cleanup *c = &r->cleanups[idx];
	memset(c, 0, sizeof *c);
	c->used = true;
	c->workers = json_array();
	c->started_ms = now;
	snprintf(c->request, sizeof c->request, "%.127s", name);
	snprintf(c->worker_id, sizeof c->worker_id, "%s", worker_id);
	for (uint32_t i = 0; i < a->reg.slots; i++) {
		struct vigil_worker *w = a->reg.by_slot[i];
		if (w == NULL || w->status != VIGIL_STATUS_ZOMBIE || (worker_id[0] && strcmp(worker_id, w->id) != 0))
			continue;
		struct vigil_lineage *l = lin_find(r, w->id);
		if (l != NULL && l->request[0] != '\0' &&
		    (l->state == VIGIL_LIFE_WAITING || l->state == VIGIL_LIFE_STOPPING || l->state == VIGIL_LIFE_STARTING))
			outcome(a, l, OUT_REFUSED, "cleaned_up: the operator cleaned the zombie up", now);
		if (w->kill_why != VIGIL_KILL_NONE || vigil_restart_kill(a, w, VIGIL_KILL_CLEANUP, now)) {
			w->kill_why = VIGIL_KILL_CLEANUP;
			w->cleanup_idx = (int16_t)idx;
			c->pending++;
			continue;
		}
		/* Not verified: it is never signalled.  Its slot is freed and
		 * its beats are no longer credited (the generation moves on). */
		struct vigil_command cmd = {.kind = VIGIL_CMD_FORGET, .slot = w->slot, .gen = w->gen, .fd = -1};
		vigil_scanner_command(a->scanner, &cmd);
		vigil_segment_slot_free(a->seg, w->slot, vigil_owner_make(VIGIL_SLOT_ZOMBIE, w->gen));
		char spec[80];
		snprintf(spec, sizeof spec, "%s.json", w->id);
		vigil_fs_remove(a->zombie_fd, spec);
		tokens_return(r, w->tokens);
		r->zombies_cleaned++;
		cleanup_note(c, w->id, w->pid, NULL, w->tokens, "slot freed; process not signalled (identity not verified)");
		cleanup_event(a, w->id, w->type, w->pid, NULL, w->tokens, "slot_freed_unverified", now);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "zombie_cleanup: %s pid %d not signalled (identity not verified); slot %u freed", w->id, w->pid,
			  w->slot);
		vigil_registry_remove(&a->reg, w);
	}
	cleanup_leftovers(a, c, now);
	if (c->pending == 0)
		cleanup_done(a, c, now);
}

/* ---- spawning ------------------------------------------------------------------------ */

static bool spawn_lineage(struct vigil_action *a, struct vigil_lineage *l, uint64_t tag, char *why, size_t why_len)
{
	struct vigil_restart *r = &a->rs;
	if (l->argv_json == NULL) {
		snprintf(why, why_len, "no command known for %s", l->id);
		return false;
	}
	if (l->tokens > 0 && r->tokens_allocated + l->tokens > policy(a)->token_pool) {
		snprintf(why, why_len, "token pool exhausted: %llu requested, %llu of %llu available",
			 (unsigned long long)l->tokens, (unsigned long long)(policy(a)->token_pool - r->tokens_allocated),
			 (unsigned long long)policy(a)->token_pool);
		return false;
	}
	json_t *cmd = json_loads(l->argv_json, 0, NULL);
	if (!vigil_queue_command_ok(cmd)) {
		json_decref(cmd);
		snprintf(why, why_len, "command of %s is not a list of strings", l->id);
		return false;
	}
	size_t argc = json_array_size(cmd);
	const char **argv = calloc(argc + 1, sizeof *argv);
	if (argv == NULL) {
		json_decref(cmd);
		snprintf(why, why_len, "out of memory");
		return false;
	}
	for (size_t i = 0; i < argc; i++)
		argv[i] = json_string_value(json_array_get(cmd, i));
	struct vigil_spawn_req req = {
		.worker_id = l->id,
		.worker_type = l->type,
		.task_id = l->task,
		.argv = argv,
		.cwd = l->cwd,
		.log_dirfd = r->worker_logs_fd,
		.spawn_tag = tag,
		.tokens = l->tokens,
	};
	struct vigil_spawn_result res;
	int rc = vigil_spawn(a->seg, a->seg->name, &req, &res);
	free(argv);
	json_decref(cmd);
	if (rc < 0 || res.err < 0) {
		r->spawn_failures++;
		snprintf(why, why_len, "%s", res.msg[0] ? res.msg : strerror(-(rc < 0 ? rc : res.err)));
		return false;
	}
	if (l->pidfd >= 0)
		close(l->pidfd);
	l->pid = res.pid;
	l->pidfd = res.pidfd;
	l->slot = res.slot;
	l->gen = res.gen;
	l->spawned_ms = mono_ms();
	l->deadline_ms = l->timeout_seconds > 0 ? l->spawned_ms + (uint64_t)llround(l->timeout_seconds * 1000.0) : 0;
	r->tokens_allocated += l->tokens;
	r->spawned++;
	/* The spec exists before anything says "spawned" (the log, the queue
	 * file's removal): readers never find a spawned worker without one. */
	vigil_action_spec_provisional(a, l->id, l->type, l->task, l->argv_json, l->cwd, l->pid, l->slot, l->tokens,
				      vigil_unix_ms());
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "spawned %s (type %s, task %s) pid %d slot %u", l->id, l->type,
		  l->task[0] ? l->task : "-", res.pid, res.slot);
	/* Ask the scanner to look at the slot now and watch for the first
	 * beat, instead of at its next tick (a full ring: the tick sees it). */
	struct vigil_command look = {.kind = VIGIL_CMD_LOOK, .slot = res.slot, .gen = res.gen, .fd = -1};
	(void)vigil_scanner_command(a->scanner, &look);
	return true;
}

/* ---- queues (the files' codec: queuefile.c) ----------------------------------------------- */

/* Moves a request that cannot be taken to rejected/ with a .reason file
 * beside it (a control or spawn request to that same directory). */
static void reject_request(struct vigil_action *a, int qfd, const char *name, const char *why)
{
	struct vigil_restart *r = &a->rs;
	r->rejected_requests++;
	char reason[128];
	snprintf(reason, sizeof reason, "%s.reason", name);
	char line[512];
	int n = snprintf(line, sizeof line, "%s\n", why);
	vigil_fs_replace(r->rejected_fd, reason, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
	if (renameat(qfd, name, r->rejected_fd, name) < 0)
		vigil_fs_remove(qfd, name);
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "request %s rejected (moved to restart/rejected/): %s", name, why);
}

static void take_restart_request(struct vigil_action *a, const char *name, uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	for (uint32_t i = 0; i < r->nlin; i++)
		if (strcmp(r->lin[i]->request, name) == 0)
			return; /* being served */
	char why[300];
	json_t *o = vigil_queue_read(r->queue_fd, name, why, sizeof why);
	if (o == NULL) {
		if (vigil_queue_should_reject(r->queue_fd, name, why))
			reject_request(a, r->queue_fd, name, why);
		return;
	}
	char id[65], type[65], task[65];
	bool ok = vigil_queue_get_id(o, "worker_id", true, id, why, sizeof why) && vigil_queue_get_id(o, "worker_type", false, type, why, sizeof why) &&
		  vigil_queue_get_id(o, "task_id", false, task, why, sizeof why);
	json_t *reason_v = json_object_get(o, "reason");
	if (ok && reason_v != NULL && !json_is_string(reason_v) && !json_is_null(reason_v)) {
		snprintf(why, sizeof why, "key 'reason' must be a string");
		ok = false;
	}
	json_t *attempt_v = json_object_get(o, "attempt");
	if (ok && attempt_v != NULL && (!json_is_integer(attempt_v) || json_integer_value(attempt_v) < 1 ||
					json_integer_value(attempt_v) > 100000)) {
		snprintf(why, sizeof why, "key 'attempt' must be an integer >= 1");
		ok = false;
	}
	json_t *cmd = json_object_get(o, "command");
	if (ok && cmd != NULL && !vigil_queue_command_ok(cmd)) {
		snprintf(why, sizeof why, "key 'command' must be a non-empty list of strings");
		ok = false;
	}
	json_t *cwd = json_object_get(o, "cwd");
	if (ok && cwd != NULL && (!json_is_string(cwd) || json_string_value(cwd)[0] != '/')) {
		snprintf(why, sizeof why, "key 'cwd' must be an absolute path");
		ok = false;
	}
	json_t *tok = json_object_get(o, "tokens");
	if (ok && tok != NULL && (!json_is_integer(tok) || json_integer_value(tok) < 0)) {
		snprintf(why, sizeof why, "key 'tokens' must be an integer >= 0");
		ok = false;
	}
	if (!ok) {
		json_decref(o);
		reject_request(a, r->queue_fd, name, why);
		return;
	}
	char reason[129];
	snprintf(reason, sizeof reason, "%.128s", json_is_string(reason_v) ? json_string_value(reason_v) : "unspecified");
	/* The id of this request: its file name, which the runbook reuses
	 * (${WORKER_ID}-restart.json), qualified by the file's modification
	 * time: the same file seen again after a crash has the same id, a new
	 * file of the same name (even within the same second) another. */
	char rid[129];
	struct stat st;
	if (fstatat(r->queue_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		snprintf(rid, sizeof rid, "%.100s@%lld.%09ld", name, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	else
		snprintf(rid, sizeof rid, "%.100s", name);
	char source[32];
	snprintf(source, sizeof source, "%.31s",
		 json_is_string(json_object_get(o, "source")) ? json_string_value(json_object_get(o, "source")) : "");
	bool operator = vigil_life_source_is_operator(source);
	uint32_t attempt_req = attempt_v != NULL ? (uint32_t)json_integer_value(attempt_v) : 0;

	/* Done before a crash?  Then only the file is left to remove. */
	if (vigil_history_has_request(r->metrics_fd, HISTORY_FILE, rid) == 1) {
		json_decref(o);
		vigil_fs_remove(r->queue_fd, name);
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "request %s was already carried out: removed", name);
		return;
	}

	struct vigil_lineage *l = lin_find(r, id);
	if (l == NULL || l->argv_json == NULL) {
		char *argv_json = NULL, *dir = NULL;
		uint64_t tokens = tok != NULL ? (uint64_t)json_integer_value(tok) : 0;
		if (cmd != NULL) {
			argv_json = json_dumps(cmd, JSON_COMPACT);
			dir = strdup(cwd != NULL ? json_string_value(cwd) : "/");
		} else {
			spec_command(a, id, &argv_json, &dir, &tokens);
		}
		if (type[0] == '\0' && l != NULL)
			snprintf(type, sizeof type, "%s", l->type);
		if (type[0] == '\0') {
			free(argv_json);
			free(dir);
			json_decref(o);
			reject_request(a, r->queue_fd, name, "key 'worker_type' is missing and the worker is unknown");
			return;
		}
		l = lin_new(r, id, type, task, argv_json, dir, tokens);
		free(argv_json);
		free(dir);
		if (l == NULL) {
			json_decref(o);
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "too many workers to track; request %s waits", name);
			return;
		}
	}
	json_decref(o);
	if (l->state == VIGIL_LIFE_WAITING || l->state == VIGIL_LIFE_STARTING || l->state == VIGIL_LIFE_STOPPING)
		return; /* one restart at a time per worker: this one waits its turn */
	if (l->pidfd >= 0 && l->pid > 0) {
		/* Spawned, not registered yet (that takes a tick): this request
		 * waits for it, so that "end it, then start anew" ends the right
		 * process. */
		return;
	}
	l->queued = false;
	snprintf(l->request, sizeof l->request, "%.127s", name);
	snprintf(l->request_id, sizeof l->request_id, "%s", rid);
	snprintf(l->reason, sizeof l->reason, "%s", reason);
	l->delay_ms = 0;
	l->counted = false;
	if (!vigil_life_request_allowed(l->state, source)) {
		/* One budget per worker, whoever asks: once it is spent, or while
		 * auto-fix holds the worker in quarantine, only an operator brings
		 * it back (a lift first, for a quarantine). */
		char msg[300];
		if (l->state == VIGIL_LIFE_QUARANTINED)
			snprintf(msg, sizeof msg, "quarantined: %s (vigilctl quarantine lift %s)", l->quarantine_why, id);
		else
			snprintf(msg, sizeof msg, "given_up: max_retries spent (last failure: %.100s); only an operator's "
				 "request restarts it", l->failure[0] ? l->failure : "unspecified");
		outcome(a, l, OUT_REFUSED, msg, now);
		return;
	}
	if (l->argv_json == NULL) {
		/* Nothing to run: say so once, do not retry what cannot work. */
		char msg[160];
		snprintf(msg, sizeof msg, "unknown_worker: no command known for %s (not started by vigild, no spec)", id);
		outcome(a, l, OUT_REFUSED, msg, now);
		return;
	}
	/* The request a previous vigild was serving when it stopped keeps its
	 * attempt and its absolute due time (lifecycle.h). */
	bool resumed = l->resumed_request_id[0] != '\0' && strcmp(l->resumed_request_id, rid) == 0;
	if (resumed)
		l->attempt = l->resumed_attempt;
	else if (attempt_req > 0)
		l->attempt = attempt_req;
	else if (operator && l->state == VIGIL_LIFE_GAVE_UP)
		l->attempt = 1; /* an operator's request after a give-up starts afresh */
	else
		l->attempt++;   /* auto-fix, vigild and operators share one budget */

	/* The restart the previous vigild spawned for this very request? */
	urcu_memb_read_lock();
	struct vigil_worker *w = vigil_registry_find(&a->reg, id);
	urcu_memb_read_unlock();
	if (w != NULL && w->spawned && l->gen == w->gen && l->slot == w->slot && l->pid == w->pid && l->pid > 0 &&
	    l->state == VIGIL_LIFE_RUNNING && l->adopted_tag == tag_of(rid)) {
		l->counted = true;
		r->attempted++;
		l->resumed_request_id[0] = '\0';
		lin_step(a, l, VIGIL_LE_SPAWNED);
		l->due_ms = mono_ms() + a->hb.timeout_ns / VIGIL_NS_PER_MS;
		if (w->beat_seen) {
			/* It beat after we adopted it and before this request was
			 * read (the scanner reports that first beat once, and it
			 * may come first on a busy host): that beat is the success. */
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO,
				  "request %s: its worker was already spawned before vigild restarted and beats", name);
			outcome(a, l, OUT_SUCCESS, "first_beat", now);
			return;
		}
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO,
			  "request %s: its worker was already spawned before vigild restarted; awaiting its first beat",
			  name);
		return;
	}
	if (l->attempt > policy(a)->max_retries) {
		outcome(a, l, OUT_GIVE_UP, l->failure, now);
		return;
	}
	/* An open breaker refuses now, before anything is ended: a refused
	 * restart must leave a running worker alone. */
	const struct vigil_breaker *br = vigil_breakers_find(&r->breakers, l->type);
	if (policy(a)->circuit_breaker_enabled && br != NULL && br->state == VIGIL_BREAKER_OPEN &&
	    now < br->opened_at_ms + (uint64_t)llround(policy(a)->circuit_breaker_reset_seconds * 1000.0)) {
		r->denied++;
		l->delay_ms = 0;
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
			  "restart of %s refused: the circuit breaker for type %s is open", l->id, l->type);
		outcome(a, l, OUT_REFUSED, "circuit_breaker_open", now);
		return;
	}
	/* The record may come from a spec file (a worker this vigild did not
	 * start): it tracks the process that is running now. */
	if (w != NULL && (l->gen != w->gen || l->slot != w->slot)) {
		l->pid = w->pid;
		l->slot = w->slot;
		l->gen = w->gen;
	}
	uint64_t mono = mono_ms();
	if (resumed) {
		/* Due when its predecessor said (a wall-clock instant in the
		 * file), not a whole delay from now. */
		uint64_t due_unix = l->resumed_due_unix_ms, now_unix = vigil_unix_ms(); /* read with mono, not the
											   * poll's start */
		l->due_ms = mono + (due_unix > now_unix ? due_unix - now_unix : 0);
		if (l->delay_ms == 0)
			l->delay_ms = backoff_ms(a, l->attempt);
	} else {
		l->delay_ms = backoff_ms(a, l->attempt);
		l->due_ms = mono + l->delay_ms;
	}
	l->resumed_request_id[0] = '\0';
	if (w != NULL && w->status != VIGIL_STATUS_EXITED && w->kill_why == VIGIL_KILL_NONE &&
	    vigil_restart_kill(a, w, VIGIL_KILL_RESTART, now))
		lin_step(a, l, VIGIL_LE_REQUEST); /* restart = end it, then start it */
	else
		lin_step(a, l, VIGIL_LE_REQUEST_IDLE);
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "restart of %s requested (%s, %s%s%s): attempt %u in %.3f s", id,
		  name, reason, source[0] ? ", from " : "", source, l->attempt,
		  (double)(l->due_ms > mono ? l->due_ms - mono : 0) / 1000.0);
}

static void spawn_failed(struct vigil_action *a, const char *name, const char *id, const char *type, const char *why,
			 uint64_t now);

static void take_spawn_request(struct vigil_action *a, const char *name, uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	char why[300];
	json_t *o = vigil_queue_read(r->spawn_queue_fd, name, why, sizeof why);
	if (o == NULL) {
		if (vigil_queue_should_reject(r->spawn_queue_fd, name, why))
			reject_request(a, r->spawn_queue_fd, name, why);
		return;
	}
	char id[65], type[65], task[65];
	bool ok = vigil_queue_get_id(o, "worker_id", true, id, why, sizeof why) && vigil_queue_get_id(o, "worker_type", true, type, why, sizeof why) &&
		  vigil_queue_get_id(o, "task_id", false, task, why, sizeof why);
	json_t *cmd = json_object_get(o, "command"), *cwd = json_object_get(o, "cwd");
	json_t *tok = json_object_get(o, "tokens"), *tmo = json_object_get(o, "timeout_seconds");
	char stem[80];
	snprintf(stem, sizeof stem, "%s.json", id);
	if (ok && strcmp(stem, name) != 0) {
		snprintf(why, sizeof why, "file name must be <worker_id>.json");
		ok = false;
	}
	if (ok && !vigil_queue_command_ok(cmd)) {
		snprintf(why, sizeof why, "key 'command' must be a non-empty list of strings");
		ok = false;
	}
	if (ok && cwd != NULL && (!json_is_string(cwd) || json_string_value(cwd)[0] != '/')) {
		snprintf(why, sizeof why, "key 'cwd' must be an absolute path");
		ok = false;
	}
	if (ok && tok != NULL && !json_is_null(tok) && (!json_is_integer(tok) || json_integer_value(tok) < 0)) {
		snprintf(why, sizeof why, "key 'tokens' must be an integer >= 0");
		ok = false;
	}
	if (ok && tmo != NULL && !json_is_null(tmo) && (!json_is_number(tmo) || !(json_number_value(tmo) > 0))) {
		snprintf(why, sizeof why, "key 'timeout_seconds' must be a number > 0 or null");
		ok = false;
	}
	if (!ok) {
		json_decref(o);
		reject_request(a, r->spawn_queue_fd, name, why);
		return;
	}
	urcu_memb_read_lock();
	bool live = vigil_registry_find(&a->reg, id) != NULL;
	urcu_memb_read_unlock();
	struct vigil_lineage *l = lin_find(r, id);
	if (live && l != NULL && l->adopted_tag == tag_of(name)) {
		/* Spawned for this very request before vigild restarted. */
		json_decref(o);
		vigil_fs_remove(r->spawn_queue_fd, name);
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "spawn request %s was carried out before a restart: removed",
			  name);
		return;
	}
	if (l != NULL && l->state == VIGIL_LIFE_QUARANTINED && !live) {
		json_decref(o);
		spawn_failed(a, name, id, type, "worker id is quarantined: lift it first (vigilctl quarantine lift)", now);
		return;
	}
	if (live || (l != NULL && l->state != VIGIL_LIFE_STOPPED && l->state != VIGIL_LIFE_FINISHED &&
		     l->state != VIGIL_LIFE_GAVE_UP)) {
		json_decref(o);
		spawn_failed(a, name, id, type, "worker id is already in use", now);
		return;
	}
	if (vigil_ending_find(r, id) >= 0) {
		/* The last process of that id said goodbye but is still being
		 * ended: the request waits in the queue (taken again when that
		 * process's exit wakes the poll), so two never run side by side. */
		json_decref(o);
		return;
	}
	char *argv_json = json_dumps(cmd, JSON_COMPACT);
	double timeout_seconds = json_is_number(tmo) ? json_number_value(tmo) : 0; /* before o goes */
	l = lin_new(r, id, type, task, argv_json, cwd != NULL ? json_string_value(cwd) : "/",
		    json_is_integer(tok) ? (uint64_t)json_integer_value(tok) : 0);
	free(argv_json);
	json_decref(o);
	if (l == NULL)
		return;
	l->timeout_seconds = timeout_seconds;
	l->attempt = 0;
	l->delay_ms = 0;
	l->failure[0] = '\0';
	if (spawn_lineage(a, l, tag_of(name), why, sizeof why)) {
		lin_step(a, l, VIGIL_LE_STARTED);
		/* spawn_lineage wrote the spec before the request goes: an id is
		 * never free in between (vigilctl picks ids from both). */
		vigil_fs_remove(r->spawn_queue_fd, name);
		return;
	}
	spawn_failed(a, name, id, type, why, now); /* its state stays where it was: nothing runs */
}

static void spawn_failed(struct vigil_action *a, const char *name, const char *id, const char *type, const char *why,
			 uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	json_t *f = json_object();
	if (f != NULL) {
		json_object_set_new(f, "worker_id", json_string(id));
		json_object_set_new(f, "result", json_string("failure"));
		json_object_set_new(f, "message", json_string(why));
		vigil_json_stamp(f, "timestamp", "timestamp_ms", now);
		vigil_fs_replace_json(r->spawn_failed_fd, name, f);
		json_t *ev = json_deep_copy(f);
		json_decref(f);
		if (ev != NULL) {
			json_object_set_new(ev, "event", json_string("worker_spawn_failed"));
			json_object_set_new(ev, "worker_type", json_string(type));
			vigil_fs_append_json(a->hb_events_fd, ev);
			json_decref(ev);
		}
	}
	vigil_fs_remove(r->spawn_queue_fd, name);
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "spawn of %s failed: %s", id, why);
}

static int quarantine_lift(struct vigil_action *a, const char *worker_id);

static void take_control_request(struct vigil_action *a, const char *name, uint64_t now)
{
	struct vigil_restart *r = &a->rs;
	char why[300];
	json_t *o = vigil_queue_read(r->control_queue_fd, name, why, sizeof why);
	if (o == NULL) {
		if (vigil_queue_should_reject(r->control_queue_fd, name, why))
			reject_request(a, r->control_queue_fd, name, why);
		return;
	}
	json_t *act = json_object_get(o, "action");
	char id[65], type[65];
	if (json_is_string(act) && strcmp(json_string_value(act), "cleanup_zombies") == 0 &&
	    vigil_queue_get_id(o, "worker_id", false, id, why, sizeof why)) {
		start_cleanup(a, name, id, now);
	} else if (json_is_string(act) && strcmp(json_string_value(act), "breaker_reset") == 0 &&
		   vigil_queue_get_id(o, "worker_type", true, type, why, sizeof why)) {
		vigil_breakers_reset(&r->breakers, type, now);
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "circuit breaker for %s reset to closed by an operator", type);
		json_t *d = json_object();
		if (d != NULL) {
			char msg[160];
			snprintf(msg, sizeof msg, "circuit breaker for %s reset to closed", type);
			json_object_set_new(d, "request_id", json_string(name));
			json_object_set_new(d, "action", json_string("breaker_reset"));
			json_object_set_new(d, "result", json_string("success"));
			json_object_set_new(d, "message", json_string(msg));
			vigil_json_stamp(d, "timestamp", "timestamp_ms", now);
			vigil_fs_replace_json(r->control_done_fd, name, d);
			json_decref(d);
		}
		vigil_fs_remove(r->control_queue_fd, name);
	} else if (json_is_string(act) && strcmp(json_string_value(act), "quarantine_lift") == 0 &&
		   vigil_queue_get_id(o, "worker_id", true, id, why, sizeof why)) {
		int rc = quarantine_lift(a, id);
		json_t *d = json_object();
		if (d != NULL) {
			char msg[160];
			snprintf(msg, sizeof msg, rc == 0 ? "quarantine of %s lifted" : "%s is not quarantined", id);
			json_object_set_new(d, "request_id", json_string(name));
			json_object_set_new(d, "action", json_string("quarantine_lift"));
			json_object_set_new(d, "result", json_string(rc == 0 ? "success" : "failure"));
			json_object_set_new(d, "message", json_string(msg));
			vigil_json_stamp(d, "timestamp", "timestamp_ms", now);
			vigil_fs_replace_json(r->control_done_fd, name, d);
			json_decref(d);
		}
		vigil_fs_remove(r->control_queue_fd, name);
	} else if (a->debug && json_is_string(act) && strcmp(json_string_value(act), "debug_stall_scanner") == 0 &&
		   json_is_number(json_object_get(o, "seconds"))) {
		/* Test hook, only with VIGIL_DEBUG=1: stall the scanner. */
		double sec = json_number_value(json_object_get(o, "seconds"));
		if (sec > 60)
			sec = 60;
		if (sec < 0)
			sec = 0;
		atomic_store_explicit(&a->scanner->debug_stall_until_ns, vigil_mono_ns() + (uint64_t)(sec * 1e9),
				      memory_order_relaxed);
		/* Wake the scanner and wait (bounded: 1 s) until it is inside the
		 * stall, so that the log line below is a barrier a test can
		 * trust: nothing the scanner would see after it is seen until the
		 * stall ends.  A debug hook may block this thread briefly. */
		vigil_scanner_wake(a->scanner);
		bool in = false;
		for (int i = 0; i < 1000 && !(in = atomic_load_explicit(&a->scanner->debug_stalled, memory_order_relaxed));
		     i++) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "debug: scanner stalled for %.3f s on request%s", sec,
			  in ? "" : " (not yet inside the stall after 1 s)");
		vigil_fs_remove(r->control_queue_fd, name);
	} else {
		if (!json_is_string(act))
			snprintf(why, sizeof why, "key 'action' must be \"cleanup_zombies\" or \"breaker_reset\"");
		reject_request(a, r->control_queue_fd, name, why);
	}
	json_decref(o);
}

/* ---- hooks ------------------------------------------------------------------------------- */

bool vigil_restart_on_registered(struct vigil_action *a, struct vigil_worker *w, const struct vigil_event *ev)
{
	struct vigil_restart *r = &a->rs;
	w->sig_pidfd = -1;
	w->cleanup_idx = -1;
	struct vigil_lineage *l = lin_find(r, w->id);
	bool spawned_here = (ev->cold_flags & VIGIL_COLD_SPAWNED) && l != NULL && l->pidfd >= 0 && l->slot == ev->slot &&
			    l->gen == ev->gen && l->pid == ev->pid;
	if (spawned_here) {
		/* We started it: identity is known, no /proc check needed. */
		w->verified = true;
		w->spawned = true;
		w->tokens = l->tokens;
		w->sig_pidfd = l->pidfd;
		w->restart_attempt = l->attempt;
		l->pidfd = -1;
		free(w->cwd);
		w->cwd = l->cwd != NULL ? strdup(l->cwd) : NULL;
		if (l->argv_json != NULL) {
			free(w->command);
			w->command = strdup(l->argv_json);
		}
		int fd = fcntl(w->sig_pidfd, F_DUPFD_CLOEXEC, 0);
		struct vigil_command c = {.kind = VIGIL_CMD_WATCH, .slot = w->slot, .gen = w->gen, .fd = fd};
		if (fd >= 0 && !vigil_scanner_command(a->scanner, &c))
			close(fd);
		return true;
	}
	/* Adopted from a previous vigild: tokens and, for workers it spawned,
	 * the command come back from the spec file. */
	char *argv_json = NULL, *dir = NULL;
	uint64_t tokens = 0;
	bool have = spec_command(a, w->id, &argv_json, &dir, &tokens);
	if (ev->kind == VIGIL_EV_ADOPTED)
		w->verified_before = spec_verified(a, w->id, ev->pid, ev->pid_start_ticks);
	if (ev->kind == VIGIL_EV_ADOPTED) {
		w->tokens = tokens;
		r->tokens_allocated += tokens;
		/* The spec keeps what the previous vigild knew: for a worker it
		 * spawned, what it ran (not what /proc shows now); for any, what
		 * /proc no longer shows (a process that died before this vigild
		 * came has neither cmdline nor cwd there).  Rewriting the spec
		 * from /proc would lose the command for the next vigild if this
		 * one crashes before it handles the exit. */
		bool spawned = (ev->cold_flags & VIGIL_COLD_SPAWNED) != 0;
		if (have && (spawned || w->command == NULL || strcmp(w->command, "[]") == 0)) {
			free(w->command);
			w->command = strdup(argv_json);
		}
		if (have && (spawned || w->cwd == NULL)) {
			free(w->cwd);
			w->cwd = strdup(dir);
		}
		struct vigil_lineage *old = lin_find(r, w->id);
		if ((ev->cold_flags & VIGIL_COLD_SPAWNED) && have && old != NULL &&
		    vigil_life_next(old->state, VIGIL_LE_ADOPTED) < 0) {
			/* The slot says so, but this lineage is mid-restart (a slot is
			 * untrusted: a scribbled one can claim anything): it is a
			 * worker like any other, not the lineage's process. */
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
				  "slot %u claims to be %s spawned by vigild, but %s is %s: not taken as its process",
				  w->slot, w->id, w->id, vigil_life_state_name(old->state));
		} else if ((ev->cold_flags & VIGIL_COLD_SPAWNED) && have) {
			w->spawned = true;
			struct vigil_lineage *nl = lin_new(r, w->id, w->type, w->task, argv_json, dir, tokens);
			if (nl != NULL) {
				lin_step(a, nl, VIGIL_LE_ADOPTED);
				w->restart_attempt = nl->attempt;
				nl->pid = w->pid;
				nl->slot = w->slot;
				nl->gen = w->gen;
				nl->adopted_tag = ev->spawn_tag; /* the request it was spawned for */
				nl->healthy_since_ms = mono_ms();
			}
		}
	}
	free(argv_json);
	free(dir);
	return false;
}

void vigil_restart_on_first_beat(struct vigil_action *a, struct vigil_worker *w)
{
	struct vigil_lineage *l = lin_find(&a->rs, w->id);
	if (l == NULL || l->state != VIGIL_LIFE_STARTING || l->slot != w->slot || l->gen != w->gen)
		return;
	outcome(a, l, OUT_SUCCESS, "first_beat", vigil_unix_ms());
}

void vigil_restart_on_zombie(struct vigil_action *a, struct vigil_worker *w)
{
	struct vigil_lineage *l = lin_find(&a->rs, w->id);
	if (l == NULL || l->state != VIGIL_LIFE_RUNNING || !w->spawned)
		return;
	/* A hung worker vigild restarts: end it first, then the exit takes the
	 * restart path with reason "zombie". */
	if (l->state == VIGIL_LIFE_QUARANTINED || l->state == VIGIL_LIFE_GAVE_UP)
		return; /* left as a zombie for the operator */
	if (!vigil_restart_kill(a, w, VIGIL_KILL_ZOMBIE, vigil_unix_ms()))
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN, "zombie %s cannot be ended (identity not verified)", w->id);
	else
		l->queued = true; /* its restart is under way: auto-fix must not add one */
}

bool vigil_restart_on_exit(struct vigil_action *a, struct vigil_worker *w, const struct vigil_event *ev, bool detached)
{
	struct vigil_restart *r = &a->rs;
	uint64_t now = vigil_unix_ms();
	if (detached)
		vigil_ending_take(a, w);
	if (w->cleanup_idx >= 0 && w->cleanup_idx < VIGIL_CLEANUPS_MAX && r->cleanups[w->cleanup_idx].used) {
		struct vigil_cleanup *c = &r->cleanups[w->cleanup_idx];
		const char *sig = w->kill_signal == SIGKILL ? "SIGKILL" : "SIGTERM";
		char spec[80];
		snprintf(spec, sizeof spec, "%s.json", w->id);
		vigil_fs_remove(a->zombie_fd, spec);
		tokens_return(r, w->tokens);
		r->zombies_cleaned++;
		cleanup_note(c, w->id, w->pid, sig, w->tokens, "success");
		cleanup_event(a, w->id, w->type, w->pid, sig, w->tokens, "success", now);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "zombie_cleanup: %s pid %d ended (%s), %llu tokens back",
			  w->id, w->pid, sig, (unsigned long long)w->tokens);
		if (c->pending > 0 && --c->pending == 0)
			cleanup_done(a, c, now);
	} else if (w->status == VIGIL_STATUS_ZOMBIE && w->kill_why == VIGIL_KILL_ZOMBIE) {
		/* vigild ended this zombie to restart it: that is its cleanup. */
		const char *sig = w->kill_signal == SIGKILL ? "SIGKILL" : "SIGTERM";
		char spec[80];
		snprintf(spec, sizeof spec, "%s.json", w->id);
		vigil_fs_remove(a->zombie_fd, spec);
		tokens_return(r, w->tokens);
		r->zombies_cleaned++;
		cleanup_event(a, w->id, w->type, w->pid, sig, w->tokens, "success", now);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "zombie_cleanup: %s pid %d ended (%s) to restart it", w->id,
			  w->pid, sig);
	} else if (w->status != VIGIL_STATUS_ZOMBIE) {
		tokens_return(r, w->tokens); /* a zombie's tokens wait for cleanup */
	}

	struct vigil_lineage *l = lin_find(r, w->id);
	if (l == NULL || l->gen != w->gen || l->slot != w->slot)
		return false;
	l->pid = 0;
	char why[160];
	if (detached)
		snprintf(why, sizeof why, "detached");
	else if (ev->exit_signal > 0)
		snprintf(why, sizeof why, "killed by signal %d", ev->exit_signal);
	else if (ev->exit_code >= 0)
		snprintf(why, sizeof why, "exited with code %d", ev->exit_code);
	else
		snprintf(why, sizeof why, "exited (status unknown)");
	switch (l->state) {
	case VIGIL_LIFE_STARTING: {
		char msg[200];
		snprintf(msg, sizeof msg, "died before its first beat: %s", why);
		outcome(a, l, OUT_FAILED, msg, now);
		return true;
	}
	case VIGIL_LIFE_STOPPING:
		lin_step(a, l, VIGIL_LE_ENDED);
		if (l->due_ms < mono_ms())
			l->due_ms = mono_ms();
		break;
	case VIGIL_LIFE_RUNNING:
		if (w->kill_why == VIGIL_KILL_ZOMBIE) {
			snprintf(l->failure, sizeof l->failure, "zombie");
			write_auto_request(a, l, l->attempt + 1, "zombie", now);
			lin_step(a, l, VIGIL_LE_FAILED);
		} else if (detached || w->kill_why == VIGIL_KILL_CLEANUP || w->kill_why == VIGIL_KILL_DEADLINE ||
			   (ev->exit_code == 0 && ev->exit_signal == 0)) {
			lin_step(a, l, VIGIL_LE_FINISHED); /* finished, or ended on purpose */
		} else {
			snprintf(l->failure, sizeof l->failure, "%s", why);
			write_auto_request(a, l, l->attempt + 1, why, now);
			lin_step(a, l, VIGIL_LE_FAILED);
		}
		break;
	default:
		break;
	}
	return false;
}

/* ---- auto-fix's door into the restart path ------------------------------------- */

int vigil_restart_request(struct vigil_action *a, const char *worker_id, const char *worker_type, const char *reason,
			  uint64_t now_ms)
{
	return vigil_restart_request_from(a, worker_id, worker_type, reason, "autofix", now_ms);
}

int vigil_restart_request_from(struct vigil_action *a, const char *worker_id, const char *worker_type,
			       const char *reason, const char *source, uint64_t now_ms)
{
	struct vigil_restart *r = &a->rs;
	struct vigil_lineage *l = lin_find(r, worker_id);
	json_t *o = vigil_queue_restart_doc(worker_id, l != NULL ? l->type : worker_type, l != NULL ? l->task : "",
					    reason, source, now_ms);
	if (o == NULL)
		return -ENOMEM;
	char name[128];
	snprintf(name, sizeof name, "%.64s-%.16s-%llu-%llu.json", worker_id, source, (unsigned long long)now_ms,
		 (unsigned long long)(r->seq++ & 0xffff));
	int rc = vigil_fs_replace_json(r->queue_fd, name, o);
	json_decref(o);
	if (rc == 0 && l != NULL)
		l->queued = true;
	if (rc < 0)
		vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_ERROR, "cannot queue a restart of %s: %s", worker_id, strerror(-rc));
	return rc;
}

int vigil_restart_quarantine(struct vigil_action *a, const char *worker_id, const char *worker_type, const char *why,
			     uint64_t now_ms)
{
	struct vigil_lineage *l = lin_find(&a->rs, worker_id);
	if (l == NULL)
		l = lin_new(&a->rs, worker_id, worker_type, "", NULL, NULL, 0);
	if (l == NULL)
		return -ENOMEM;
	if (l->state == VIGIL_LIFE_QUARANTINED)
		return 0;
	/* A request under way is closed first, with its one outcome line
	 * (the table has no quarantine cell for a lineage mid-restart). */
	if (l->state == VIGIL_LIFE_WAITING || l->state == VIGIL_LIFE_STOPPING || l->state == VIGIL_LIFE_STARTING) {
		char msg[200];
		snprintf(msg, sizeof msg, "quarantined: %s", why);
		outcome(a, l, OUT_REFUSED, msg, now_ms);
	}
	snprintf(l->quarantine_why, sizeof l->quarantine_why, "%s", why);
	lin_step(a, l, VIGIL_LE_QUARANTINE);
	vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_WARN,
		  "quarantined %s: no more restarts until an operator lifts it (vigilctl quarantine lift %s): %s",
		  worker_id, worker_id, why);
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN, "%s quarantined by auto-fix: %s", worker_id, why);
	return 0;
}

static int quarantine_lift(struct vigil_action *a, const char *worker_id)
{
	struct vigil_lineage *l = lin_find(&a->rs, worker_id);
	if (l == NULL || l->state != VIGIL_LIFE_QUARANTINED)
		return -ENOENT;
	l->quarantine_why[0] = '\0';
	l->attempt = 0;
	lin_step(a, l, VIGIL_LE_LIFT);
	/* Quarantined while its process ran: that process is the lineage's
	 * again, so that its failure is restarted like any other. */
	urcu_memb_read_lock();
	struct vigil_worker *w = vigil_registry_find(&a->reg, worker_id);
	bool ours = w != NULL && w->spawned && w->gen == l->gen && w->slot == l->slot;
	urcu_memb_read_unlock();
	if (ours)
		lin_step(a, l, VIGIL_LE_ADOPTED);
	vigil_patterns_forget(&a->pat, worker_id); /* or the old history quarantines it again */
	vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_INFO, "quarantine of %s lifted by an operator", worker_id);
	return 0;
}

bool vigil_restart_queued_for(struct vigil_action *a, const char *worker_id)
{
	char names[QUEUE_BATCH][128];
	uint32_t n = vigil_queue_list(a->rs.queue_fd, names, QUEUE_BATCH);
	for (uint32_t i = 0; i < n; i++) {
		char why[200];
		json_t *o = vigil_queue_read(a->rs.queue_fd, names[i], why, sizeof why);
		const char *id = json_string_value(json_object_get(o, "worker_id"));
		bool same = id != NULL && strcmp(id, worker_id) == 0;
		json_decref(o);
		if (same)
			return true;
	}
	return false;
}

bool vigil_restart_underway(struct vigil_action *a, const char *worker_id)
{
	struct vigil_lineage *l = lin_find(&a->rs, worker_id);
	return l != NULL && (l->queued || l->state == VIGIL_LIFE_WAITING || l->state == VIGIL_LIFE_STARTING ||
			     l->state == VIGIL_LIFE_STOPPING);
}

bool vigil_restart_quarantined(struct vigil_action *a, const char *worker_id)
{
	struct vigil_lineage *l = lin_find(&a->rs, worker_id);
	return l != NULL && l->state == VIGIL_LIFE_QUARANTINED;
}

bool vigil_restart_given_up(struct vigil_action *a, const char *worker_id)
{
	struct vigil_lineage *l = lin_find(&a->rs, worker_id);
	return l != NULL && l->state == VIGIL_LIFE_GAVE_UP;
}

bool vigil_restart_command_known(struct vigil_action *a, const char *worker_id)
{
	struct vigil_lineage *l = lin_find(&a->rs, worker_id);
	if (l != NULL && l->argv_json != NULL)
		return true;
	char *argv_json = NULL, *dir = NULL;
	uint64_t tokens = 0;
	bool ok = spec_command(a, worker_id, &argv_json, &dir, &tokens);
	if (ok) {
		free(argv_json);
		free(dir);
	}
	return ok;
}

/* ---- the poll ----------------------------------------------------------------------------- */

/* now: wall clock, for what is written; mono: for the deadlines; seen_ms
 * (monotonic): the scanner has looked at every slot through that instant,
 * and what it saw has been drained (see vigil_restart_poll). *next is
 * monotonic. */
static void lineages_due(struct vigil_action *a, uint64_t now, uint64_t mono, uint64_t seen_ms, uint64_t *next)
{
	struct vigil_restart *r = &a->rs;
	const struct vigil_restart_policy *p = policy(a);
	for (uint32_t i = 0; i < r->nlin; i++) {
		struct vigil_lineage *l = r->lin[i];
		char why[300];
		switch (l->state) {
		case VIGIL_LIFE_WAITING:
			if (mono < l->due_ms) {
				if (l->due_ms < *next)
					*next = l->due_ms;
				break;
			}
			int ei = vigil_ending_find(r, l->id);
			if (ei >= 0) {
				/* Its predecessor detached but still runs: a
				 * replacement never runs beside it.  Its exit wakes
				 * us when watched; else look again soon. */
				if (!r->endings[ei].watched && mono + ENDING_POLL_MS < *next)
					*next = mono + ENDING_POLL_MS;
				break;
			}
			switch (vigil_breakers_check(&r->breakers, p, l->type, now)) {
			case VIGIL_BREAKER_DENY:
				r->denied++;
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
					  "restart of %s refused: the circuit breaker for type %s is open", l->id, l->type);
				outcome(a, l, OUT_REFUSED, "circuit_breaker_open", now);
				continue;
			case VIGIL_BREAKER_TRIAL:
				l->trial = true;
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO,
					  "breaker for type %s is half-open: restart of %s is the trial", l->type, l->id);
				break;
			default:
				break;
			}
			l->counted = true; /* an attempt: a spawn is tried */
			r->attempted++;
			if (spawn_lineage(a, l, tag_of(l->request_id), why, sizeof why)) {
				lin_step(a, l, VIGIL_LE_SPAWNED);
				l->due_ms = mono + a->hb.timeout_ns / VIGIL_NS_PER_MS;
				if (l->due_ms < *next)
					*next = l->due_ms;
			} else {
				char msg[340];
				snprintf(msg, sizeof msg, "spawn_failed: %s", why);
				outcome(a, l, OUT_FAILED, msg, now);
			}
			break;
		case VIGIL_LIFE_STARTING:
			if (mono >= l->due_ms && seen_ms < l->due_ms) {
				/* Due, but the scanner has not looked since (stalled,
				 * preempted mid-tick, the host busy): no beat seen is
				 * not yet no beat.  Ask again after its next tick. */
				uint64_t tick_ms = a->hb.tick_ns / VIGIL_NS_PER_MS + 1;
				if (mono + tick_ms < *next)
					*next = mono + tick_ms;
			} else if (mono >= l->due_ms) {
				urcu_memb_read_lock();
				struct vigil_worker *w = vigil_registry_find(&a->reg, l->id);
				urcu_memb_read_unlock();
				if (w != NULL && w->gen == l->gen && w->slot == l->slot)
					vigil_restart_kill(a, w, VIGIL_KILL_NO_BEAT, now);
				else if (l->pidfd >= 0)
					pidfd_send_signal(l->pidfd, SIGKILL, NULL, 0);
				outcome(a, l, OUT_FAILED, "no_first_beat_within_heartbeat_timeout", now);
			} else if (l->due_ms < *next) {
				*next = l->due_ms;
			}
			break;
		case VIGIL_LIFE_RUNNING:
			if (l->attempt > 0 && l->healthy_since_ms > 0 &&
			    mono >= l->healthy_since_ms + (uint64_t)llround(p->retry_reset_seconds * 1000.0)) {
				l->attempt = 0; /* healthy long enough: the next failure is attempt 1 again */
				l->failure[0] = '\0';
				lin_save(a, l);
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "%s ran healthy for %.0f s: retry count reset",
					  l->id, p->retry_reset_seconds);
			}
			if (l->deadline_ms > 0 && mono >= l->deadline_ms) {
				urcu_memb_read_lock();
				struct vigil_worker *w = vigil_registry_find(&a->reg, l->id);
				urcu_memb_read_unlock();
				if (w != NULL && w->gen == l->gen && w->slot == l->slot &&
				    vigil_restart_kill(a, w, VIGIL_KILL_DEADLINE, now))
					vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
						  "%s ran past its --timeout of %.3f s: ending it", l->id, l->timeout_seconds);
				l->deadline_ms = 0;
			} else if (l->deadline_ms > 0 && l->deadline_ms < *next) {
				*next = l->deadline_ms;
			}
			break;
		default:
			break;
		}
	}
}

static void cleanups_timeout(struct vigil_action *a, uint64_t now)
{
	uint64_t limit = (uint64_t)llround(policy(a)->kill_grace_seconds * 1000.0) + 5000;
	for (int i = 0; i < VIGIL_CLEANUPS_MAX; i++) {
		struct vigil_cleanup *c = &a->rs.cleanups[i];
		if (c->used && now > c->started_ms + limit) {
			cleanup_note(c, "-", 0, NULL, 0, "some processes did not end in time");
			for (uint32_t s = 0; s < a->reg.slots; s++)
				if (a->reg.by_slot[s] != NULL && a->reg.by_slot[s]->cleanup_idx == i)
					a->reg.by_slot[s]->cleanup_idx = -1;
			cleanup_done(a, c, now);
		}
	}
}

/* Answers nobody collected (vigilctl gave up waiting) go after 10 minutes. */
static void prune_done(struct vigil_action *a, uint64_t now)
{
	char names[64][128];
	uint32_t n = vigil_queue_list(a->rs.control_done_fd, names, 64);
	for (uint32_t i = 0; i < n; i++) {
		struct stat st;
		if (fstatat(a->rs.control_done_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (uint64_t)st.st_mtime * 1000ull + 600000ull < now)
			vigil_fs_remove(a->rs.control_done_fd, names[i]);
	}
}

void vigil_restart_poll(struct vigil_action *a)
{
	struct vigil_restart *r = &a->rs;
	uint64_t now = vigil_unix_ms(); /* for what is written */
	uint64_t mono = mono_ms();      /* for the deadlines, and the wake below */
	uint64_t next = mono + 1000;
	char names[QUEUE_BATCH][128];
	/* In this order: what the scanner has seen through seen_ms is drained
	 * before any verdict that rests on what it has not seen. */
	uint64_t seen_ms = vigil_scanner_seen_through_ms(a->scanner);
	if (!vigil_action_drain(a))
		seen_ms = 0; /* an event storm: what it saw is not all in hand yet */
	read_history(a);
	/* Endings first: a process that has just exited frees its entry, and a
	 * spawn request that waited for it is taken in this same pass. */
	vigil_endings_poll(a, mono, &next);
	uint32_t n = vigil_queue_list(r->spawn_queue_fd, names, QUEUE_BATCH);
	for (uint32_t i = 0; i < n; i++)
		take_spawn_request(a, names[i], now);
	n = vigil_queue_list(r->queue_fd, names, QUEUE_BATCH);
	for (uint32_t i = 0; i < n; i++)
		take_restart_request(a, names[i], now);
	n = vigil_queue_list(r->control_queue_fd, names, QUEUE_BATCH);
	for (uint32_t i = 0; i < n; i++)
		take_control_request(a, names[i], now);
	lineages_due(a, now, mono, seen_ms, &next);
	vigil_endings_escalate(a, mono, &next);
	cleanups_timeout(a, now);
	if (now / 60000 != a->rs.last_prune_min) {
		a->rs.last_prune_min = now / 60000;
		prune_done(a, now);
	}
	vigil_breakers_tick(&r->breakers, policy(a), now);
	vigil_breakers_write_dirty(&r->breakers, r->breakers_fd, policy(a), now);
	uint64_t notify_next = vigil_fixes_poll(a, now); /* wall clock */
	if (notify_next != 0 && mono + (notify_next > now ? notify_next - now : 0) < next)
		next = mono + (notify_next > now ? notify_next - now : 0);
	/* Wake for the earliest due instant; 1 ms resolution is plenty. */
	uint64_t in_ms = next > mono ? next - mono : 1;
	struct itimerspec its = {.it_value = {.tv_sec = (time_t)(in_ms / 1000), .tv_nsec = (long)(in_ms % 1000) * 1000000L}};
	timerfd_settime(r->timerfd, 0, &its, NULL);
}

json_t *vigil_restart_write_metrics(struct vigil_action *a, uint64_t now_ms)
{
	struct vigil_restart *r = &a->rs;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
#define M(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	M("restarts_attempted", r->attempted);
	M("restarts_succeeded", r->succeeded);
	M("restarts_failed", r->failed);
	uint64_t in_flight = 0;
	for (uint32_t i = 0; i < r->nlin; i++)
		in_flight += r->lin[i]->counted;
	M("restarts_in_flight", in_flight);
	M("restart_requests_refused", r->refused);
	M("restarts_denied_by_breaker", r->denied);
	M("breakers_open", vigil_breakers_open_count(&r->breakers));
	M("workers_given_up", r->gave_up);
	M("spawns", r->spawned);
	M("spawn_failures", r->spawn_failures);
	M("requests_rejected", r->rejected_requests);
	M("history_lines_skipped", r->history_bad_lines);
	M("zombies_cleaned", r->zombies_cleaned);
	M("tokens_pool", policy(a)->token_pool);
	M("tokens_allocated", r->tokens_allocated);
	M("tokens_available", policy(a)->token_pool > r->tokens_allocated ? policy(a)->token_pool - r->tokens_allocated : 0);
#undef M
	vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms);
	vigil_fs_replace_json(r->metrics_fd, "worker-restart-metrics.json", o);
	return o;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

/* At start-up, before anything is adopted: the lineages a previous vigild
 * kept (lifecycle.h).  A record that does not parse is moved aside to
 * <name>.bad with the reason logged, never guessed at. */
static void lineages_load(struct vigil_action *a)
{
	struct vigil_restart *r = &a->rs;
	DIR *d = vigil_fs_opendir_at(r->lifecycle_fd);
	if (d == NULL)
		return;
	uint32_t loaded = 0, bad = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && r->nlin < r->cap) {
		if (!vigil_queue_name_ok(de->d_name))
			continue;
		char why[200];
		json_t *o = vigil_queue_read(r->lifecycle_fd, de->d_name, why, sizeof why);
		struct vigil_lineage *l = calloc(1, sizeof *l);
		int rc = o == NULL ? -EINVAL : l == NULL ? -ENOMEM : vigil_life_from_json(l, o, why, sizeof why);
		json_decref(o);
		char stem[80];
		if (rc == 0) {
			snprintf(stem, sizeof stem, "%s.json", l->id);
			if (strcmp(stem, de->d_name) != 0 || lin_find(r, l->id) != NULL) {
				snprintf(why, sizeof why, "file name is not <worker_id>.json");
				rc = -EINVAL;
			}
		}
		if (rc < 0) {
			if (l != NULL) {
				free(l->argv_json);
				free(l->cwd);
				free(l);
			}
			if (rc == -ENOMEM)
				break;
			char aside[160];
			snprintf(aside, sizeof aside, "%.120s.bad", de->d_name);
			renameat(r->lifecycle_fd, de->d_name, r->lifecycle_fd, aside);
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "coordination/lifecycle/%s set aside as %s: %s",
				  de->d_name, aside, why);
			bad++;
			continue;
		}
		l->pidfd = -1;
		r->lin[r->nlin++] = l;
		loaded++;
		if (l->state == VIGIL_LIFE_GAVE_UP || l->state == VIGIL_LIFE_QUARANTINED)
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "%s is still %s (attempt %u%s%s)", l->id,
				  vigil_life_state_name(l->state), l->attempt, l->quarantine_why[0] ? ": " : "",
				  l->quarantine_why);
	}
	closedir(d);
	if (loaded > 0 || bad > 0)
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "lifecycle of %u workers read back (%u records set aside)",
			  loaded, bad);
}

int vigil_restart_init(struct vigil_action *a)
{
	struct vigil_restart *r = &a->rs;
	memset(r, 0, sizeof *r);
	r->history_fd = r->metrics_fd = r->queue_fd = r->rejected_fd = r->spawn_queue_fd = r->spawn_failed_fd = -1;
	r->control_queue_fd = r->control_done_fd = r->breakers_fd = r->worker_logs_fd = r->timerfd = -1;
	r->lifecycle_fd = -1;
	r->seq = (uint64_t)getpid() ^ vigil_mono_ns();
	for (int i = 0; i < VIGIL_ENDINGS_MAX; i++)
		r->endings[i].pidfd = -1;
	r->cap = VIGIL_LINEAGES_MAX;
	r->lin = calloc(r->cap, sizeof *r->lin);
	if (r->lin == NULL)
		return -ENOMEM;
	int rc = vigil_breakers_init(&r->breakers, 1024);
	if (rc < 0)
		return rc;
	vigil_history_reader_init(&r->hreader);
	struct {
		int *fd;
		const char *path;
	} dirs[] = {
		{&r->metrics_fd, "coordination/metrics"},
		{&r->queue_fd, "coordination/restart/queue"},
		{&r->rejected_fd, "coordination/restart/rejected"},
		{&r->spawn_queue_fd, "coordination/spawn/queue"},
		{&r->spawn_failed_fd, "coordination/spawn/failed"},
		{&r->control_queue_fd, "coordination/control/queue"},
		{&r->control_done_fd, "coordination/control/done"},
		{&r->breakers_fd, "coordination/circuit-breakers"},
		{&r->worker_logs_fd, "agents/logs/workers"},
		{&r->lifecycle_fd, "coordination/lifecycle"},
	};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		*dirs[i].fd = vigil_fs_open_dir(a->home_fd, dirs[i].path, true);
		if (*dirs[i].fd < 0)
			return *dirs[i].fd;
	}
	r->history_fd = vigil_fs_open_append(r->metrics_fd, HISTORY_FILE);
	if (r->history_fd < 0)
		return r->history_fd;
	r->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (r->timerfd < 0)
		return -errno;
	lineages_load(a);
	return 0;
}

void vigil_restart_destroy(struct vigil_action *a)
{
	struct vigil_restart *r = &a->rs;
	int fds[] = {r->history_fd, r->metrics_fd, r->queue_fd, r->rejected_fd, r->spawn_queue_fd, r->spawn_failed_fd,
		     r->control_queue_fd, r->control_done_fd, r->breakers_fd, r->worker_logs_fd, r->timerfd,
		     r->lifecycle_fd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (uint32_t i = 0; i < r->nlin; i++) {
		if (r->lin[i]->pidfd >= 0)
			close(r->lin[i]->pidfd);
		free(r->lin[i]->argv_json);
		free(r->lin[i]->cwd);
		free(r->lin[i]);
	}
	for (int i = 0; i < VIGIL_CLEANUPS_MAX; i++)
		if (r->cleanups[i].used)
			json_decref(r->cleanups[i].workers);
	for (int i = 0; i < VIGIL_ENDINGS_MAX; i++)
		if (r->endings[i].pidfd >= 0)
			close(r->endings[i].pidfd);
	free(r->lin);
	vigil_breakers_destroy(&r->breakers);
	memset(r, 0, sizeof *r);
}
