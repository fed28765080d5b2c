/*
 * fixes.c - failures -> patterns -> auto-fix decisions -> the restart path.
 * See fixes.h.  Runs on the action thread.
 */
#define _GNU_SOURCE
#include "fixes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "action.h"
#include "autofix.h"
#include "log.h"
#include "util.h"

#define PATTERN_WORKERS 65536u /* per-worker failure histories kept */

int vigil_fixes_init(struct vigil_action *a)
{
	a->patterns_fd = a->fix_history_fd = -1;
	int rc = vigil_patterns_init(&a->pat, PATTERN_WORKERS);
	if (rc < 0)
		return rc;
	vigil_autofix_init(&a->af);
	int dir = vigil_fs_open_dir(a->home_fd, "coordination/patterns", true);
	if (dir < 0)
		return dir;
	a->patterns_fd = vigil_fs_open_append(dir, VIGIL_PATTERNS_FILE);
	close(dir);
	if (a->patterns_fd < 0)
		return a->patterns_fd;
	a->fix_history_fd = vigil_fs_open_append(a->rs.metrics_fd, VIGIL_AUTOFIX_HISTORY_FILE);
	return a->fix_history_fd < 0 ? a->fix_history_fd : 0;
}

void vigil_fixes_destroy(struct vigil_action *a)
{
	vigil_autofix_destroy(&a->af);
	vigil_patterns_destroy(&a->pat);
	if (a->patterns_fd >= 0)
		close(a->patterns_fd);
	if (a->fix_history_fd >= 0)
		close(a->fix_history_fd);
	a->patterns_fd = a->fix_history_fd = -1;
}

static void notify(struct vigil_action *a, json_t *event, uint64_t now_ms)
{
	const struct vigil_autofix_policy *p = &a->autofix;
	if (!p->notification_enabled || event == NULL)
		return;
	vigil_json_stamp(event, "timestamp", "timestamp_ms", now_ms);
	char *txt = json_dumps(event, JSON_COMPACT);
	vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_WARN, "notify: %s", txt != NULL ? txt : "(out of memory)");
	free(txt);
	if (p->notify_command[0] != '\0') {
		int rc = vigil_notify_start(&a->af, p->notify_command, event, p->notify_timeout_seconds, now_ms);
		if (rc < 0)
			vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_WARN, "notify_command not run: %s",
				  rc == -EBUSY ? "8 already running" : strerror(-rc));
	}
}

void vigil_fixes_breaker_opened(struct vigil_action *a, const char *worker_type, uint32_t failure_count,
				uint64_t now_ms)
{
	json_t *ev = json_object();
	if (ev == NULL)
		return;
	json_object_set_new(ev, "event", json_string("circuit_breaker_opened"));
	json_object_set_new(ev, "worker_type", json_string(worker_type));
	json_object_set_new(ev, "failure_count", json_integer(failure_count));
	notify(a, ev, now_ms);
	json_decref(ev);
}

/* Applies an APPLY decision through the restart path.  Returns false when
 * it could not (logged). */
static bool apply(struct vigil_action *a, const struct vigil_pattern *pt, const struct vigil_fix_decision *d,
		  uint64_t now_ms)
{
	char reason[96];
	snprintf(reason, sizeof reason, "auto_fix:%.23s", pt->type);
	if (strcmp(d->action, "quarantine") == 0) {
		char why[160];
		snprintf(why, sizeof why, "%.23s (confidence %.3f)", pt->type, pt->confidence);
		return vigil_restart_quarantine(a, pt->worker_id, pt->worker_type, why, now_ms) == 0;
	}
	/* restart and kill_then_restart are the same request: the restart
	 * path ends a worker that is still running before it starts anew. */
	return vigil_restart_request(a, pt->worker_id, pt->worker_type, reason, now_ms) == 0;
}

void vigil_fixes_failure(struct vigil_action *a, const struct vigil_failure *f)
{
	struct vigil_pattern pts[VIGIL_PATTERN_OUT_MAX];
	memset(pts, 0, sizeof pts);
	int n = vigil_patterns_observe(&a->pat, f, pts, VIGIL_PATTERN_OUT_MAX);
	if (n <= 0)
		return;
	uint64_t now = f->at_ms;
	for (int i = 0; i < n; i++) {
		if (vigil_pattern_append(a->patterns_fd, &pts[i], now) < 0)
			a->write_errors++;
		vigil_log(VIGIL_LOG_PATTERN, VIGIL_LOG_INFO, "pattern %s for %s (type %s): confidence %.3f, recommends %s",
			  pts[i].type, pts[i].worker_id, pts[i].worker_type[0] ? pts[i].worker_type : "-",
			  pts[i].confidence, pts[i].recommended_action);
	}
	const struct vigil_autofix_policy *p = &a->autofix; /* the policy in force now */
	int k = vigil_patterns_pick(pts, n, p->min_confidence_threshold);
	if (k < 0 || k >= n)
		k = 0;
	const struct vigil_pattern *pt = &pts[k];
	const struct vigil_breaker *br = pt->worker_type[0] ? vigil_breakers_find(&a->rs.breakers, pt->worker_type) : NULL;
	bool breaker_open = br != NULL && br->state != VIGIL_BREAKER_CLOSED;
	bool underway = vigil_restart_underway(a, pt->worker_id);
	bool quarantined = vigil_restart_quarantined(a, pt->worker_id);
	bool command = vigil_restart_command_known(a, pt->worker_id);
	struct vigil_fix_decision d;
	/* One retry budget per worker: once vigild gave up on it, auto-fix
	 * does not get round that (only an operator's request does). */
	if (vigil_restart_given_up(a, pt->worker_id))
		vigil_autofix_skip(&a->af, pt, "given_up", &d);
	else
		vigil_autofix_decide(&a->af, p, pt, breaker_open, underway, quarantined, command, now, &d);
	bool applied = d.verdict == VIGIL_FIX_APPLY && apply(a, pt, &d, now);
	if (d.verdict == VIGIL_FIX_APPLY && !applied) {
		snprintf(d.skipped_because, sizeof d.skipped_because, "apply_failed");
		d.verdict = VIGIL_FIX_SKIP;
	}
	if (vigil_fix_decision_append(a->fix_history_fd, &d, pt, &a->af, p, now) < 0)
		a->write_errors++;
	vigil_log(VIGIL_LOG_AUTOFIX, d.verdict == VIGIL_FIX_SKIP ? VIGIL_LOG_INFO : VIGIL_LOG_WARN,
		  "%s %s for %s (pattern %s, confidence %.3f)%s%s", vigil_fix_result_name(d.verdict), d.action,
		  pt->worker_id, pt->type, pt->confidence, d.skipped_because[0] ? ": " : "", d.skipped_because);
	if (applied) {
		json_t *ev = json_object();
		if (ev != NULL) {
			json_object_set_new(ev, "event", json_string("auto_fix_applied"));
			json_object_set_new(ev, "worker_id", json_string(pt->worker_id));
			json_object_set_new(ev, "worker_type", json_string(pt->worker_type));
			json_object_set_new(ev, "pattern", json_string(pt->type));
			json_object_set_new(ev, "confidence", json_real(pt->confidence));
			json_object_set_new(ev, "action", json_string(d.action));
			notify(a, ev, now);
			json_decref(ev);
		}
	}
	for (int i = 0; i < n; i++)
		vigil_pattern_clear(&pts[i]);
}

uint64_t vigil_fixes_poll(struct vigil_action *a, uint64_t now_ms)
{
	return vigil_notify_reap(&a->af, now_ms);
}

json_t *vigil_fixes_write_metrics(struct vigil_action *a, uint64_t now_ms)
{
	json_t *o = vigil_autofix_metrics_to_json(&a->af, a->pat.patterns_detected, now_ms);
	if (o == NULL)
		return NULL;
	if (vigil_fs_replace_json(a->rs.metrics_fd, VIGIL_AUTOFIX_METRICS_FILE, o) < 0)
		a->write_errors++;
	return o;
}
