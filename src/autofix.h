/*
 * autofix.h - the auto-fix decision (README "Failure patterns and auto-fix"): given a classified failure
 * pattern (patterns.h), the auto-fix policy and what the caller knows of
 * the worker, decide whether to apply the pattern's recommended action,
 * only record it (dry run), or skip it and say why; keep the trailing-hour
 * record behind max_fixes_per_hour; and run notify_command without ever
 * blocking the supervisor.
 *
 * Why a pure decision: applying (restart, kill then restart, quarantine)
 * is the restart path's job (restart.h), where breakers and retry limits
 * still apply, so auto-fix can never do more than the rest of vigild may.
 * This module only answers "should we, and if not, why not", in a fixed
 * order of checks that is the table below, and writes the answer as one
 * line of coordination/metrics/auto-fix-history.jsonl.
 *
 *   check (in order)          skipped_because              applies to
 *   budget spent (fixes.c)    given_up                     all
 *   policy enabled false      disabled                     all
 *   confidence < threshold    below_threshold              all (NaN is below)
 *   worker quarantined        quarantined                  all
 *   breaker open              breaker_open                 restart, kill_then_restart
 *   restart already queued    restart_already_underway     restart, kill_then_restart
 *   no command to run         no_command                   restart, kill_then_restart
 *   >= max fixes in 3600 s    rate_limited                 all
 *   dry_run                   dry_run (verdict DRY_RUN)    all
 *   otherwise                 "" (verdict APPLY)           all
 *
 * (A pattern with an unknown action is skipped as "invalid_pattern".)
 * Quarantine is not stopped by an open breaker, a queued restart or a
 * missing command: quarantine is what stops those restarts.
 *
 * The rate limit: a ring of the times of applied fixes, pruned of those
 * 3600 s old or older at every decision, so "fewer than max_fixes_per_hour
 * fixes in the last 3600 s" is exact to the millisecond.  The ring grows
 * lazily (doubling, from 16) up to what the policy in force needs, at
 * most max_fixes_per_hour <= 1,000,000 entries (8 MB); it never shrinks.
 * If it cannot grow (out of memory), the fix is rate_limited: no memory is
 * no licence to act without a limit.  A time more than an hour in the
 * future (the clock stepped back) is dropped too, so a clock step cannot
 * block auto-fix for longer than an hour.  DRY_RUN does not count.
 *
 * Policy is read at call time (a reload applies to the very next
 * decision).  Not thread-safe: the action thread owns it.
 */
#ifndef VIGIL_AUTOFIX_H
#define VIGIL_AUTOFIX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "patterns.h"
#include "policy.h"

/* Files under coordination/metrics/ (README "Failure patterns and auto-fix", "What vigild writes"). */
#define VIGIL_AUTOFIX_HISTORY_FILE "auto-fix-history.jsonl"
#define VIGIL_AUTOFIX_METRICS_FILE "auto-fix-daemon-metrics.json"

#define VIGIL_AUTOFIX_WINDOW_MS 3600000ull    /* the trailing hour of max_fixes_per_hour */
#define VIGIL_AUTOFIX_RING_MAX 1000000u       /* max_fixes_per_hour's largest value */
#define VIGIL_NOTIFY_MAX_IN_FLIGHT 8u
/* After SIGKILL, how soon vigil_notify_reap wants to be called again to
 * reap the child. */
#define VIGIL_NOTIFY_REAP_RETRY_MS 10u

enum vigil_fix_verdict { VIGIL_FIX_APPLY, VIGIL_FIX_DRY_RUN, VIGIL_FIX_SKIP };

struct vigil_fix_decision {
	uint8_t verdict;          /* enum vigil_fix_verdict */
	char action[24];          /* restart | kill_then_restart | quarantine */
	char skipped_because[48]; /* "" | disabled | below_threshold | rate_limited | breaker_open |
				   * restart_already_underway | quarantined | no_command | dry_run |
				   * invalid_pattern */
};

/* One notify_command run in flight. */
struct vigil_notify_child {
	bool used;
	bool killed;              /* SIGKILLed after its timeout, not reaped yet */
	int pidfd;                /* -1 only where pidfd_open is missing (then pid is used) */
	pid_t pid;
	uint64_t started_ms;
	uint64_t deadline_ms;     /* kill at (killed: retry the reap at) */
};

struct vigil_autofix {
	/* ring of applied fix times (ms, as passed to decide) */
	uint64_t *fix_ms;
	uint32_t cap, head, count;            /* fix_ms[head] is the oldest */
	/* counters for auto-fix-daemon-metrics.json (patterns_detected is the
	 * patterns module's, see vigil_autofix_metrics_to_json) */
	uint64_t decisions;
	uint64_t fixes_applied;
	uint64_t fixes_dry_run;
	uint64_t fixes_rate_limited;          /* included in fixes_skipped */
	uint64_t fixes_skipped;               /* every SKIP, whatever the reason */
	uint64_t notifications_sent;          /* command started with the event on its stdin */
	uint64_t notifications_failed;        /* could not start, or ended by a non-zero exit or a signal not ours */
	uint64_t notifications_killed;        /* SIGKILLed after notify_timeout_seconds (not also failed) */
	uint64_t notifications_dropped;       /* VIGIL_NOTIFY_MAX_IN_FLIGHT already running: not started */
	uint64_t notifications_truncated;     /* event larger than the pipe could take: the rest was dropped */
	struct vigil_notify_child notify[VIGIL_NOTIFY_MAX_IN_FLIGHT];
	uint32_t notify_in_flight;
};

/* 0 (never fails: the ring is allocated by the first fix). */
int vigil_autofix_init(struct vigil_autofix *af);
/* Frees the ring; SIGKILLs and reaps every notification still running
 * (blocking only on processes already SIGKILLed). */
void vigil_autofix_destroy(struct vigil_autofix *af);

/*
 * vigil_autofix_decide - the decision for pt now (table above).
 *
 * The caller tells what it knows about the worker: its breaker is open
 * (or would deny a restart), a restart of it is already queued, waiting
 * or starting (so one more would be a duplicate), it is quarantined, its
 * command (argv) is known so it can be started again.  APPLY records now_ms
 * in the rate ring; DRY_RUN does not count against the limit.  out is
 * always filled.  now_ms: unix ms (the same clock for every call).
 */
void vigil_autofix_decide(struct vigil_autofix *af, const struct vigil_autofix_policy *p,
			  const struct vigil_pattern *pt, bool breaker_open, bool restart_underway, bool quarantined,
			  bool command_known, uint64_t now_ms, struct vigil_fix_decision *out);

/*
 * vigil_autofix_skip - a decision to skip pt for a reason the caller found
 * before the table: "given_up" (fixes.c: the worker's restart budget is
 * spent, and only an operator brings it back, so auto-fix neither restarts
 * nor quarantines it).  Counted like any skip; out is always filled.
 */
void vigil_autofix_skip(struct vigil_autofix *af, const struct vigil_pattern *pt, const char *why,
			struct vigil_fix_decision *out);

/* Applied fixes in the 3600 s before now_ms (what the next decision will
 * compare with max_fixes_per_hour). */
uint32_t vigil_autofix_fixes_in_last_hour(const struct vigil_autofix *af, uint64_t now_ms);

/*
 * The line for coordination/metrics/auto-fix-history.jsonl:
 * {"worker_id","worker_type","pattern","confidence","action",
 *  "result":"applied"|"dry_run"|"skipped","reason" (skipped_because, "" when
 *  applied),"threshold","fixes_in_last_hour","max_fixes_per_hour",
 *  "timestamp","timestamp_ms"}.  New reference or NULL.
 */
json_t *vigil_fix_decision_to_json(const struct vigil_fix_decision *d, const struct vigil_pattern *pt,
				   const struct vigil_autofix *af, const struct vigil_autofix_policy *p,
				   uint64_t now_ms);

/* vigil_fix_decision_to_json as one compact line appended to fd (short
 * reals: "threshold":0.7).  0 or -errno. */
int vigil_fix_decision_append(int fd, const struct vigil_fix_decision *d, const struct vigil_pattern *pt,
			      const struct vigil_autofix *af, const struct vigil_autofix_policy *p, uint64_t now_ms);

/* "applied", "dry_run", "skipped". */
const char *vigil_fix_result_name(uint8_t verdict);

/*
 * auto-fix-daemon-metrics.json: {"patterns_detected","fixes_applied",
 * "fixes_dry_run","fixes_rate_limited","fixes_skipped","decisions",
 * "fixes_in_last_hour","notifications_sent","notifications_failed",
 * "notifications_killed","notifications_dropped","notifications_truncated",
 * "notifications_in_flight","timestamp","timestamp_ms"}.
 * patterns_detected is passed in (vigil_patterns.patterns_detected).
 */
json_t *vigil_autofix_metrics_to_json(const struct vigil_autofix *af, uint64_t patterns_detected,
				      uint64_t now_ms);

/*
 * Notifications.
 *
 * vigil_notify_start runs `/bin/sh -c command` with the compact JSON of
 * event (plus "\n") on its standard input and returns at once: the JSON
 * is written into a pipe before the child exists (a non-blocking write;
 * if it does not fit even after raising the pipe size, the rest is given
 * up and counted in notifications_truncated), the write end is closed,
 * and fork + execve start the child with that pipe as stdin, stdout and
 * stderr on /dev/null, every other fd closed, all signals at their
 * default disposition and unblocked, in a process group of its own.  So no
 * write can block or raise SIGPIPE, and a command that never reads its
 * input does not matter.  A pidfd is held for the child.
 *
 * now_ms and the clock of vigil_notify_reap must be the same.
 * timeout_seconds: the policy's notify_timeout_seconds (NaN or <= 0: 5 s).
 * Returns 0 (started; notifications_sent), -EBUSY (already
 * VIGIL_NOTIFY_MAX_IN_FLIGHT in flight: dropped and counted), -EINVAL
 * (no command or event), or the -errno of pipe/open/fork/pidfd_open
 * (counted in notifications_failed).
 */
int vigil_notify_start(struct vigil_autofix *af, const char *command, const json_t *event, double timeout_seconds,
		       uint64_t now_ms);

/*
 * vigil_notify_reap - call every poll.  Reaps the children that ended
 * (waitid P_PIDFD, WNOHANG), counting a non-zero exit or a signal as a
 * failure; SIGKILLs those past their deadline - their whole process group
 * (safe: the leader is not reaped yet, so its pid cannot be reused) and
 * the leader through its pidfd - counts them in notifications_killed and
 * reaps them now or at a later call.  Never blocks.  Returns the earliest
 * time (ms) at which it wants to be called again, 0 when nothing is in
 * flight.
 */
uint64_t vigil_notify_reap(struct vigil_autofix *af, uint64_t now_ms);

#endif /* VIGIL_AUTOFIX_H */
