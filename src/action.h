/*
 * action.h - the action thread: everything slow.
 *
 * It drains the scanner's event ring and turns events into files: the
 * jsonl event logs, worker specs (active/ and zombie/), metrics, component
 * logs.  It verifies new workers through /proc and hands their pidfds to
 * the scanner.  It reloads policies (SIGHUP, inotify on coordination/config)
 * and publishes them to the scanner through RCU.  It owns signals: SIGTERM
 * and SIGINT stop vigild cleanly, leaving the workers running.
 *
 * Later issues hang the restart queue, circuit breakers and auto-fix off
 * this loop (they are slow, file-driven, and must never delay a tick).
 */
#ifndef VIGIL_ACTION_H
#define VIGIL_ACTION_H

#include <stdbool.h>
#include <stdint.h>

#include "autofix.h"
#include "patterns.h"
#include "policy.h"
#include "registry.h"
#include "restart.h"
#include "scanner.h"
#include "segment.h"

/* The action thread's epoll token for the pidfds of processes being ended
 * (restart.c adds and removes them): one exited, look at the endings. */
#define VIGIL_ACTION_TOK_ENDING 7u

struct vigil_action {
	int home_fd;
	int config_fd;
	int active_fd, zombie_fd, events_fd, metrics_fd;
	int hb_events_fd;      /* events/heartbeat-events.jsonl */
	int zombie_events_fd;  /* events/zombie-cleanup-events.jsonl */
	int epfd, sigfd, inofd, snapfd;
	struct vigil_segment *seg;
	struct vigil_scanner *scanner;
	struct vigil_registry reg;
	struct vigil_heartbeat_policy hb;
	struct vigil_restart_policy restart;
	struct vigil_autofix_policy autofix;
	uint64_t snapshot_ns;  /* current snapshot period */
	uint64_t events_written;
	uint64_t write_errors;
	uint64_t specs_written;
	uint64_t workers_rejected;
	uint64_t unverified_workers;
	bool write_error_episode; /* log write failures once per episode */
	uint64_t write_error_last_ms;
	/* File descriptors: what vigild had at start, its soft limit, and the
	 * pidfds it holds (2 per verified worker: the scanner's and ours). */
	uint32_t fds_base, fds_limit, pidfds_held;
	bool stop;
	int ino_config_wd;     /* inotify watch of coordination/config */
	int wdfd;              /* systemd watchdog timer, -1 without one */
	uint64_t wd_last_ticks;
	bool debug;            /* VIGIL_DEBUG=1: test hooks accepted */
	struct vigil_restart rs; /* spawning, restarts, breakers, cleanup */
	struct vigil_patterns pat; /* failure classification */
	struct vigil_autofix af;   /* fix decisions, notifications */
	int patterns_fd, fix_history_fd;
};

/* Opens the coordination tree (which main created), the event logs and
 * the epoll set; 0 or -errno. */
int vigil_action_init(struct vigil_action *a, int home_fd, struct vigil_segment *seg,
		      struct vigil_scanner *scanner, const struct vigil_heartbeat_policy *hb,
		      const struct vigil_restart_policy *rp, const struct vigil_autofix_policy *ap);
/* systemd: ping WATCHDOG=1 every watchdog_usec / 3 while the scanner ticks. */
int vigil_action_watchdog(struct vigil_action *a, uint64_t watchdog_usec);
/* systemd STATUS= line with live counts. */
void vigil_action_sd_status(struct vigil_action *a);

/* Processes the events now in the ring, at most one ring's worth (start-up
 * adoption uses it too).  True when the ring was left empty. */
bool vigil_action_drain(struct vigil_action *a);

/* At start-up: removes the temp files of writers killed mid-write (see
 * vigil_fs_sweep_tmp) in the directories vigild and vigilctl write. */
void vigil_action_sweep_leftovers(struct vigil_action *a);

/* Specs (active/ and zombie/) of workers that are not in the segment, left
 * by a previous run for workers that ended while vigild was down: a worker
 * vigild spawned gets its restart (spec in active/ as "restarting", a
 * lingering process it was ending is ended first); the others' go. */
void vigil_action_prune_stale_specs(struct vigil_action *a);

/* Runs until SIGTERM/SIGINT; then drains, writes a final snapshot and
 * returns 0. */
int vigil_action_run(struct vigil_action *a);

/* Which policy files a reload rereads. */
#define VIGIL_POLICY_HEARTBEAT 1u
#define VIGIL_POLICY_RESTART 2u
#define VIGIL_POLICY_AUTOFIX 4u
#define VIGIL_POLICY_ALL 7u
/* Rereads the policy files in `files` (SIGHUP: all; a file that changed:
 * that one only, so that copying two files at once never reads the second
 * half-written because the first one changed).  A bad file is reported and
 * the policy in force stays; a good one is logged as reloaded or unchanged.
 * Returns 0 when every file read was good. */
int vigil_action_reload(struct vigil_action *a, const char *why, unsigned files);

void vigil_action_snapshot(struct vigil_action *a, bool force);

/* Rewrites w's spec now, not at the next snapshot: for a change a crash of
 * vigild must not lose (the start of its ending). */
void vigil_action_spec_now(struct vigil_action *a, struct vigil_worker *w, uint64_t now_ms);
/* Writes active/<id>.json for a worker just spawned, before the scanner has
 * seen it register (then the full spec replaces it). */
void vigil_action_spec_provisional(struct vigil_action *a, const char *id, const char *type, const char *task,
				   const char *argv_json, const char *cwd, int32_t pid, uint32_t slot, uint64_t tokens,
				   uint64_t now_ms);
void vigil_action_destroy(struct vigil_action *a);

#endif /* VIGIL_ACTION_H */
