/*
 * restart.h - self-healing: spawning, the restart queue with backoff,
 * circuit breakers, zombie cleanup and the token pool.
 *
 * Everything here runs on the action thread and is driven by files, so that
 * it survives a vigild crash: a request is a file in a queue directory and
 * stays there until its outcome is recorded.
 *
 *   coordination/spawn/queue/<id>.json     vigilctl spawn        -> a new worker
 *   coordination/spawn/failed/<id>.json    why a spawn failed
 *   coordination/restart/queue/<name>.json anyone (the runbook's format), and
 *                                          vigild itself for failures it saw
 *   coordination/restart/rejected/         malformed requests, with a .reason
 *   coordination/control/queue/<name>.json vigilctl cleanup-zombies, breaker reset
 *   coordination/control/done/<name>.json  their answers
 *   coordination/metrics/worker-restart-history.jsonl   one line per outcome
 *   coordination/circuit-breakers/<type>.json           one per worker type
 *   coordination/metrics/worker-restart-metrics.json
 *   agents/logs/workers/<id>.log           stdout/stderr of spawned workers
 *
 * Exactly once: a request's id is its file name.  The outcome line carries
 * it; a request found at start-up whose id is already in the history is
 * only removed; one whose worker is already alive in the segment (spawned
 * by the previous vigild under the request's tag) is adopted, not spawned
 * again.
 */
#ifndef VIGIL_RESTART_H
#define VIGIL_RESTART_H

#include <stdbool.h>
#include <stdint.h>

#include "breaker.h"
#include "history.h"
#include "lifecycle.h"
#include "registry.h"
#include "scanner.h"

struct vigil_action;

#define VIGIL_CLEANUPS_MAX 16
struct vigil_cleanup {
	bool used;
	char request[128];
	char worker_id[65];      /* "" all */
	uint32_t pending;        /* workers still being ended */
	json_t *workers;         /* array of per-worker results */
	uint64_t started_ms;
};

/* A process that left its slot (detached) but has not exited.  Two kinds:
 * - kill: vigild was ending it (a shutdown that hangs after its goodbye):
 *   SIGKILL still comes when the grace ends, and no replacement of the same
 *   worker id starts until the pidfd says the process is gone;
 * - reap only: a child vigild spawned that detached and runs on: vigild
 *   reaps it when it exits, so it never stays <defunct>.
 * Bounded: when the table is full, a kill entry's SIGKILL goes at once (no
 * grace, but nothing untracked); a reap-only child is then left to be
 * reaped when vigild exits. */
#define VIGIL_ENDINGS_MAX 64
struct vigil_ending {
	int pidfd;               /* -1: entry unused */
	int32_t pid;
	int signal;              /* kill: the last one sent */
	bool kill;               /* being ended (else: only waited for, to reap) */
	bool child;              /* ours to reap */
	bool watched;            /* in the action thread's epoll: its exit wakes us (else polled) */
	uint64_t due_ms;         /* kill: SIGKILL at; then give up at due_ms + ENDING_GIVE_UP_MS */
	char id[65];
};

struct vigil_restart {
	struct vigil_lineage **lin;
	uint32_t nlin, cap;
	struct vigil_breakers breakers;
	struct vigil_history_reader hreader;
	int history_fd;          /* append */
	int metrics_fd, queue_fd, rejected_fd, spawn_queue_fd, spawn_failed_fd;
	int control_queue_fd, control_done_fd, breakers_fd, worker_logs_fd;
	int lifecycle_fd;        /* coordination/lifecycle: one record per lineage */
	int timerfd;
	uint64_t tokens_allocated;
	/* attempted = succeeded + failed + (lineages STARTING): an attempt is a
	 * spawn tried; a request refused before one is `refused`. */
	uint64_t attempted, succeeded, failed, refused, denied, gave_up, spawned, spawn_failures;
	uint64_t rejected_requests, history_bad_lines, zombies_cleaned;
	struct vigil_cleanup cleanups[VIGIL_CLEANUPS_MAX];
	struct vigil_ending endings[VIGIL_ENDINGS_MAX];
	uint32_t nendings;       /* entries in use */
	uint64_t seq;            /* for auto request names */
	uint64_t last_prune_min;
};

int vigil_restart_init(struct vigil_action *a);
void vigil_restart_destroy(struct vigil_action *a);

/* Hooks from the event handlers (action.c). */
/* A registration: true when it is a worker we spawned (verified; its
 * pidfd handed to the scanner here). */
bool vigil_restart_on_registered(struct vigil_action *a, struct vigil_worker *w, const struct vigil_event *ev);
void vigil_restart_on_first_beat(struct vigil_action *a, struct vigil_worker *w);
void vigil_restart_on_zombie(struct vigil_action *a, struct vigil_worker *w);
/* Called before the record is removed.  Returns true when this death was a
 * restart attempt dying before its first beat (already reported as a
 * failed restart; the caller must not report it again as an exit).  A
 * worker that detaches while being ended may take over w->sig_pidfd (set to
 * -1 then): see struct vigil_ending. */
bool vigil_restart_on_exit(struct vigil_action *a, struct vigil_worker *w, const struct vigil_event *ev,
			   bool detached);

/* For auto-fix (fixes.c). */
int vigil_restart_request(struct vigil_action *a, const char *worker_id, const char *worker_type, const char *reason,
			  uint64_t now_ms);
/* The same request, saying who asked ("autofix", "vigild"). */
int vigil_restart_request_from(struct vigil_action *a, const char *worker_id, const char *worker_type,
			       const char *reason, const char *source, uint64_t now_ms);
int vigil_restart_quarantine(struct vigil_action *a, const char *worker_id, const char *worker_type, const char *why,
			     uint64_t now_ms);
bool vigil_restart_underway(struct vigil_action *a, const char *worker_id);
/* Does restart/queue/ hold a request naming worker_id (any author)?  Reads
 * up to 256 small files: for start-up, not for a hot path. */
bool vigil_restart_queued_for(struct vigil_action *a, const char *worker_id);
/* At start-up, for the spec ("ending": true) of a worker whose restart is
 * coming and whose process may outlive the vigild that was ending it (it
 * detached and lingers): when /proc confirms pid is that worker (start time,
 * owner, WORKER_ID), it is ended (SIGTERM, SIGKILL after the grace) before
 * its replacement starts.  true when it is being waited for. */
bool vigil_restart_resume_ending(struct vigil_action *a, const char *id, int32_t pid, uint64_t start_ticks);
bool vigil_restart_quarantined(struct vigil_action *a, const char *worker_id);
/* Has its budget been spent (max_retries), with no operator's request since? */
bool vigil_restart_given_up(struct vigil_action *a, const char *worker_id);
bool vigil_restart_command_known(struct vigil_action *a, const char *worker_id);

/* Everything time- and file-driven: queues, history, due restarts, kill
 * escalations, breakers.  Drains the scanner's events first (verdicts on
 * what the scanner has not seen need what it has).  Cheap when there is
 * nothing to do. */
void vigil_restart_poll(struct vigil_action *a);
/* Writes worker-restart-metrics.json; returns the document (new reference). */
json_t *vigil_restart_write_metrics(struct vigil_action *a, uint64_t now_ms);

/* Ends a verified worker: SIGTERM (and SIGCONT, so a stopped one can act on
 * it) through its pidfd now, SIGKILL after kill_grace_seconds.  false when
 * it cannot be signalled (not verified). */
bool vigil_restart_kill(struct vigil_action *a, struct vigil_worker *w, uint8_t why, uint64_t now_ms);

#endif /* VIGIL_RESTART_H */
