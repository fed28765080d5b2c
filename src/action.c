/*
 * action.c - the action thread: events to files, verification, policy
 * reloads, snapshots.
 *
 * Writes follow the README ("What vigild writes"): .json documents are replaced atomically (temp
 * file + rename), .jsonl lines are one write() each.  A failed write is
 * counted and logged once per episode (not once per line: a full disk must
 * not also flood the log), and monitoring goes on: the scanner never waits
 * for this thread.
 *
 * Spec files are rewritten when their state changed (status, missed,
 * health band), at most once per snapshot interval, except for the moments
 * an operator must see at once: a new worker, a zombie moving from active/
 * to zombie/, and a worker leaving.  last_seen, beats and progress in a
 * file lag the live values (the segment, which `vigilctl status` reads) by
 * up to spec_refresh_seconds (README "Files"); that is what keeps 5,000
 * beating workers from costing 5,000 file writes a second.
 */
#define _GNU_SOURCE
#include "action.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "fixes.h"
#include "log.h"
#include "prom.h"
#include "sdnotify.h"
#include "util.h"
#include "verify.h"

#define TOK_WAKE 1
#define TOK_SIG 2
#define TOK_INO 3
#define TOK_SNAP 4
#define TOK_RESTART 5
#define TOK_WATCHDOG 6
#define TOK_ENDING VIGIL_ACTION_TOK_ENDING

static const char *const HB_POLICY = "heartbeat-policy.json";
static const char *const RESTART_POLICY = "worker-restart-policy.json";
static const char *const AUTOFIX_POLICY = "auto-fix-policy.json";

static const char *status_name(uint8_t s)
{
	switch (s) {
	case VIGIL_STATUS_ACTIVE: return "active";
	case VIGIL_STATUS_ZOMBIE: return "zombie";
	case VIGIL_STATUS_EXITED: return "exited";
	case VIGIL_STATUS_RESTARTING: return "restarting";
	default: return "active";
	}
}

/* One ERROR line per episode of write failures (a full disk must not also
 * flood the log).  On a nearly full disk small writes succeed between
 * failures, so an episode ends only after writes have worked for 5 s. */
#define WRITE_EPISODE_QUIET_MS 5000u
#define FDS_RESERVE 32u /* descriptors kept for vigild's own files */

static void note_write(struct vigil_action *a, int rc, const char *what)
{
	if (rc == 0) {
		if (a->write_error_episode && vigil_unix_ms() >= a->write_error_last_ms + WRITE_EPISODE_QUIET_MS) {
			a->write_error_episode = false;
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "writing under coordination/ works again");
		}
		return;
	}
	a->write_errors++;
	a->write_error_last_ms = vigil_unix_ms();
	if (!a->write_error_episode) {
		a->write_error_episode = true;
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR,
			  "cannot write %s: %s (further write errors are counted, not logged, until one succeeds)",
			  what, strerror(-rc));
	}
}

/* ---- JSON builders ----------------------------------------------------------- */

static json_t *spec_json(const struct vigil_action *a, const struct vigil_worker *w, uint64_t now_ms)
{
	(void)a;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	char iso[21];
	json_object_set_new(o, "worker_id", json_string(w->id));
	json_object_set_new(o, "worker_type", json_string(w->type));
	json_object_set_new(o, "task_id", json_string(w->task));
	json_object_set_new(o, "status", json_string(status_name(w->status)));
	json_object_set_new(o, "pid", json_integer(w->pid));
	/* Field 22 of /proc/<pid>/stat: with pid, which process this was (a
	 * vigild restarted after a crash checks it before it signals). */
	json_object_set_new(o, "pid_start_ticks", json_integer((json_int_t)w->pid_start_ticks));
	/* vigild was ending this process (SIGTERM sent, SIGKILL due): a vigild
	 * restarted after a crash finishes that only when this says so. */
	if (w->kill_why != VIGIL_KILL_NONE)
		json_object_set_new(o, "ending", json_true());
	json_object_set_new(o, "slot", json_integer(w->slot));
	json_t *cmd = w->command != NULL ? json_loads(w->command, 0, NULL) : NULL;
	json_object_set_new(o, "command", cmd != NULL ? cmd : json_array());
	json_t *hb = json_object();
	json_object_set_new(hb, "health_score", json_integer(w->health));
	json_object_set_new(hb, "progress", json_integer(w->progress));
	if (w->last_seen_ms != 0) {
		vigil_iso8601(w->last_seen_ms, iso);
		json_object_set_new(hb, "last_seen", json_string(iso));
		json_object_set_new(hb, "last_seen_ms", json_integer((json_int_t)w->last_seen_ms));
	} else {
		json_object_set_new(hb, "last_seen", json_null());
		json_object_set_new(hb, "last_seen_ms", json_null());
	}
	json_object_set_new(hb, "beats", json_integer((json_int_t)w->beats));
	json_object_set_new(hb, "missed", json_integer(w->missed));
	json_object_set_new(o, "heartbeat", hb);
	json_t *tb = json_object();
	json_object_set_new(tb, "allocated", json_integer((json_int_t)w->tokens));
	json_object_set_new(tb, "used", json_integer(0));
	json_object_set_new(o, "token_budget", tb);
	json_t *rs = json_object();
	json_object_set_new(rs, "attempt", json_integer(w->restart_attempt));
	json_object_set_new(o, "restart", rs);
	json_object_set_new(o, "cwd", json_string(w->cwd != NULL && w->cwd[0] != '\0' ? w->cwd : "/"));
	json_object_set_new(o, "verified", json_boolean(w->verified));
	json_object_set_new(o, "spawned", json_boolean(w->spawned));
	vigil_json_stamp(o, "created_at", "created_at_ms", w->created_unix_ms);
	vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms);
	return o;
}

static int spec_file_name(const struct vigil_worker *w, char *out, size_t len)
{
	int n = snprintf(out, len, "%s.json", w->id);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

static void spec_write(struct vigil_action *a, struct vigil_worker *w, uint64_t now_ms)
{
	char name[80];
	if (spec_file_name(w, name, sizeof name) < 0)
		return;
	json_t *o = spec_json(a, w, now_ms);
	if (o == NULL) {
		note_write(a, -ENOMEM, name);
		return;
	}
	int dir = w->status == VIGIL_STATUS_ZOMBIE ? a->zombie_fd : a->active_fd;
	/* Written over the spec's shadow and swapped in (no inode allocated
	 * per write; see vigil_fs_replace_shadow). */
	int rc = vigil_fs_replace_json_shadow(dir, name, o);
	json_decref(o);
	note_write(a, rc, name);
	if (rc == 0) {
		a->specs_written++;
		w->spec_written = true;
		w->w_status = w->status;
		w->w_health = w->health;
		w->w_progress = w->progress;
		w->w_missed = w->missed;
		w->w_last_seen_ms = w->last_seen_ms;
		w->w_beats = w->beats;
		w->w_written_ms = now_ms;
	}
}

void vigil_action_spec_now(struct vigil_action *a, struct vigil_worker *w, uint64_t now_ms)
{
	spec_write(a, w, now_ms);
}

void vigil_action_spec_provisional(struct vigil_action *a, const char *id, const char *type, const char *task,
				   const char *argv_json, const char *cwd, int32_t pid, uint32_t slot, uint64_t tokens,
				   uint64_t now_ms)
{
	struct vigil_worker *w = calloc(1, sizeof *w);
	if (w == NULL)
		return;
	snprintf(w->id, sizeof w->id, "%s", id);
	snprintf(w->type, sizeof w->type, "%s", type);
	snprintf(w->task, sizeof w->task, "%s", task);
	w->command = (char *)(argv_json != NULL ? argv_json : "[]"); /* borrowed for this write */
	w->cwd = (char *)(cwd != NULL ? cwd : "/");
	w->pid = pid;
	w->slot = slot;
	w->tokens = tokens;
	w->health = 100;
	w->verified = true;
	w->spawned = true;
	w->created_unix_ms = now_ms;
	w->status = VIGIL_STATUS_ACTIVE;
	spec_write(a, w, now_ms);
	free(w); /* command and cwd were borrowed */
}

/* A removal that works says nothing about whether writing works again (a
 * full disk still lets files go): only its failures are noted. */
static void note_remove(struct vigil_action *a, int rc, const char *what)
{
	if (rc < 0)
		note_write(a, rc, what);
}

static void spec_remove_zombie(struct vigil_action *a, const struct vigil_worker *w)
{
	char name[80];
	if (spec_file_name(w, name, sizeof name) == 0)
		note_remove(a, vigil_fs_remove(a->zombie_fd, name), name);
}

static void spec_remove(struct vigil_action *a, const struct vigil_worker *w, bool zombie_too)
{
	char name[80];
	if (spec_file_name(w, name, sizeof name) < 0)
		return;
	note_remove(a, vigil_fs_remove(a->active_fd, name), name);
	if (zombie_too)
		spec_remove_zombie(a, w);
}

/* The common part of every worker event line. */
static json_t *event_json(const char *name, const struct vigil_worker *w, const struct vigil_event *ev)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "event", json_string(name));
	if (w != NULL) {
		json_object_set_new(o, "worker_id", json_string(w->id));
		json_object_set_new(o, "worker_type", json_string(w->type));
		json_object_set_new(o, "task_id", json_string(w->task));
		json_object_set_new(o, "pid", json_integer(w->pid));
	}
	json_object_set_new(o, "slot", json_integer(ev->slot));
	json_object_set_new(o, "health_score", json_integer(ev->health_score));
	json_object_set_new(o, "reported_health", json_integer(ev->reported_health));
	json_object_set_new(o, "progress", json_integer(ev->progress));
	json_object_set_new(o, "missed", json_integer(ev->missed));
	json_object_set_new(o, "beats", json_integer((json_int_t)ev->beats));
	if (ev->last_seen_unix_ms != 0)
		vigil_json_stamp(o, "last_seen", "last_seen_ms", ev->last_seen_unix_ms);
	if (ev->due_unix_ms != 0) {
		json_object_set_new(o, "due_ms", json_integer((json_int_t)ev->due_unix_ms));
		json_object_set_new(o, "stall_credit_ms", json_integer((json_int_t)ev->stall_credit_ms));
	}
	vigil_json_stamp(o, "timestamp", "timestamp_ms", ev->unix_ms);
	if (ev->unix_us != 0) /* exits and detaches: when the pidfd woke the scanner */
		json_object_set_new(o, "timestamp_us", json_integer((json_int_t)ev->unix_us));
	return o;
}

static void append_event(struct vigil_action *a, int fd, json_t *o, const char *file)
{
	if (o == NULL) {
		note_write(a, -ENOMEM, file);
		return;
	}
	int rc = vigil_fs_append_json(fd, o);
	json_decref(o);
	note_write(a, rc, file);
	if (rc == 0)
		a->events_written++;
}

#define HB_FILE "events/heartbeat-events.jsonl"
#define ZOMBIE_FILE "events/zombie-cleanup-events.jsonl"

/* ---- event handlers --------------------------------------------------------- */

static void reject(struct vigil_action *a, const struct vigil_event *ev, const char *why)
{
	char rid[300];
	vigil_id_render(ev->worker_id, sizeof ev->worker_id, rid, sizeof rid);
	vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR, "slot %u: registration of worker '%s' (pid %d) rejected: %s",
		  ev->slot, rid, ev->pid, why);
	json_t *o = json_object();
	if (o != NULL) {
		json_object_set_new(o, "event", json_string("worker_rejected"));
		json_object_set_new(o, "worker_id", json_string(rid));
		json_object_set_new(o, "slot", json_integer(ev->slot));
		json_object_set_new(o, "pid", json_integer(ev->pid));
		json_object_set_new(o, "reason", json_string(why));
		vigil_json_stamp(o, "timestamp", "timestamp_ms", ev->unix_ms);
	}
	append_event(a, a->hb_events_fd, o, HB_FILE);
	a->workers_rejected++;
	struct vigil_command c = {.kind = VIGIL_CMD_FORGET, .slot = ev->slot, .gen = ev->gen, .fd = -1};
	/* The command ring is as large as the event ring's drain batch, so
	 * full is not expected; if it is, the slot stays monitored under a
	 * rejected id with no spec file, which is harmless. */
	if (!vigil_scanner_command(a->scanner, &c))
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "command ring full: slot %u not forgotten", ev->slot);
}

static void on_register(struct vigil_action *a, const struct vigil_event *ev)
{
	bool adopted = ev->kind == VIGIL_EV_ADOPTED;
	struct vigil_worker *w = calloc(1, sizeof *w);
	if (w == NULL) {
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR, "out of memory registering slot %u", ev->slot);
		return;
	}
	bool ok_id = vigil_id_copy(w->id, ev->worker_id);
	bool ok_type = vigil_id_copy(w->type, ev->worker_type);
	bool ok_task = vigil_id_copy(w->task, ev->task_id) || w->task[0] == '\0';
	if (!ok_id || !ok_type || !ok_task) {
		free(w);
		reject(a, ev, !ok_id ? "worker_id must match [A-Za-z0-9._-]{1,64}, not starting with '.'"
			      : !ok_type ? "worker_type must match [A-Za-z0-9._-]{1,64}, not starting with '.'"
					 : "task_id must match [A-Za-z0-9._-]{1,64}, not starting with '.'");
		return;
	}
	w->slot = ev->slot;
	w->gen = ev->gen;
	w->pid = ev->pid;
	w->registrar_pid = ev->registrar_pid;
	w->pid_start_ticks = ev->pid_start_ticks;
	w->created_unix_ms = ev->unix_ms;
	w->last_seen_ms = ev->last_seen_unix_ms;
	w->health = ev->health_score;
	w->progress = ev->progress;
	w->status = ev->zombie ? VIGIL_STATUS_ZOMBIE : VIGIL_STATUS_ACTIVE;
	w->sig_pidfd = -1;
	w->cleanup_idx = -1;
	{
		char cmd[4096];
		vigil_proc_cmdline_json(w->pid, cmd, sizeof cmd);
		w->command = strdup(cmd); /* exact size: memory per worker stays small */
	}
	if (vigil_registry_add(&a->reg, w) < 0) {
		char why[160];
		urcu_memb_read_lock();
		struct vigil_worker *other = vigil_registry_find(&a->reg, w->id);
		snprintf(why, sizeof why, "worker id is already registered (slot %u, pid %d)",
			 other != NULL ? other->slot : 0u, other != NULL ? other->pid : 0);
		urcu_memb_read_unlock();
		free(w->command);
		free(w);
		reject(a, ev, why);
		return;
	}

	bool spawned_here = vigil_restart_on_registered(a, w, ev);
	if (spawned_here) {
		w->fds_held = w->sig_pidfd >= 0 ? 2 : 1; /* ours (if any) and the scanner's */
		a->pidfds_held += w->fds_held;
	}
	/* Keep FDS_RESERVE descriptors for vigild's own files: past that,
	 * workers are monitored by timeouts only (and the log says why). */
	if (!spawned_here && a->fds_base + a->pidfds_held + 2 + FDS_RESERVE > a->fds_limit) {
		a->unverified_workers++;
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "worker %s (pid %d) not verified: file descriptors would run out (limit %u, "
			  "%u held): monitored by timeouts only",
			  w->id, w->pid, a->fds_limit, a->fds_base + a->pidfds_held);
	} else if (!spawned_here) {
		struct vigil_verify_result vr;
		vigil_verify_worker(a->seg->name, w->pid, w->registrar_pid, ev->pid_start_ticks,
				    adopted && w->verified_before, &vr);
		w->verified = vr.verified;
		if (vr.verified) {
			w->sig_pidfd = fcntl(vr.pidfd, F_DUPFD_CLOEXEC, 0); /* ours, to signal through */
			w->fds_held = w->sig_pidfd >= 0 ? 2 : 1;   /* and the scanner's */
			a->pidfds_held += w->fds_held;
		}
		struct vigil_command c = {.kind = VIGIL_CMD_WATCH, .slot = w->slot, .gen = w->gen, .fd = vr.pidfd};
		if (vr.verified || vr.gone) {
			if (!vigil_scanner_command(a->scanner, &c) && c.fd >= 0)
				close(c.fd);
		}
		if (!vr.verified && !vr.gone) {
			a->unverified_workers++;
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "worker %s (pid %d) not verified: %s", w->id,
				  w->pid, vr.reason);
		}
		char dir[4096];
		vigil_proc_cwd(w->pid, dir, sizeof dir);
		if (dir[0] != '\0' && w->cwd == NULL) /* else the spec's (see vigil_restart_on_registered) */
			w->cwd = strdup(dir);
	}
	/* Tell a waiting registrar (the shell emitter) that it may exit: the
	 * one write vigild makes to a worker's line, once per registration. */
	atomic_store_explicit(&a->seg->hot[w->slot].ack, w->gen, memory_order_release);

	json_t *o = event_json(adopted ? "worker_adopted" : "worker_registered", w, ev);
	if (o != NULL) {
		json_object_set_new(o, "verified", json_boolean(w->verified));
		if (ev->zombie)
			json_object_set_new(o, "status", json_string("zombie"));
	}
	append_event(a, a->hb_events_fd, o, HB_FILE);
	vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "%s worker %s type %s task %s pid %d slot %u%s",
		  adopted ? "adopted" : "registered", w->id, w->type, w->task[0] ? w->task : "-", w->pid, w->slot,
		  w->verified ? " (verified)" : "");
	spec_write(a, w, ev->unix_ms);
}

/* Reports a failure of w to the classifier and auto-fix. */
static void failure(struct vigil_action *a, const struct vigil_worker *w, uint8_t kind, const struct vigil_event *ev)
{
	struct vigil_failure f;
	memset(&f, 0, sizeof f);
	f.kind = kind;
	snprintf(f.worker_id, sizeof f.worker_id, "%s", w->id);
	snprintf(f.worker_type, sizeof f.worker_type, "%s", w->type);
	f.exit_code = ev->exit_code;
	f.signal = ev->exit_signal;
	f.killed_by_vigil = w->kill_why != VIGIL_KILL_NONE;
	f.at_ms = vigil_unix_ms();
	f.uptime_ms = f.at_ms > w->created_unix_ms ? f.at_ms - w->created_unix_ms : 0;
	f.progress = ev->progress;
	f.stalled_ms = kind == VIGIL_FAIL_PROGRESS_STALL ? ev->count_a : 0;
	vigil_fixes_failure(a, &f);
}

static void on_verdict(struct vigil_action *a, const struct vigil_event *ev)
{
	struct vigil_worker *w = vigil_registry_at(&a->reg, ev->slot);
	if (w == NULL || w->gen != ev->gen)
		return; /* rejected or already gone */
	const char *name = NULL;
	switch (ev->kind) {
	case VIGIL_EV_MISSED: name = "heartbeat_missed"; break;
	case VIGIL_EV_TIMEOUT: name = "heartbeat_timeout"; break;
	case VIGIL_EV_RECOVERED: name = "heartbeat_recovered"; break;
	default: return;
	}
	w->health = ev->health_score;
	w->missed = ev->missed;
	w->progress = ev->progress;
	if (ev->kind == VIGIL_EV_RECOVERED)
		w->last_seen_ms = ev->last_seen_unix_ms;
	append_event(a, a->hb_events_fd, event_json(name, w, ev), HB_FILE);
	vigil_log(VIGIL_LOG_HEARTBEAT, ev->kind == VIGIL_EV_RECOVERED ? VIGIL_LOG_INFO : VIGIL_LOG_WARN,
		  "%s: worker %s pid %d health %u missed %u", name, w->id, w->pid, ev->health_score, ev->missed);
	if (ev->kind == VIGIL_EV_RECOVERED)
		failure(a, w, VIGIL_FAIL_RECOVERED, ev); /* a lapse that recovered: flapping evidence */
}

static void on_zombie(struct vigil_action *a, const struct vigil_event *ev)
{
	struct vigil_worker *w = vigil_registry_at(&a->reg, ev->slot);
	if (w == NULL || w->gen != ev->gen)
		return;
	w->health = ev->health_score;
	w->missed = ev->missed;
	w->status = VIGIL_STATUS_ZOMBIE;
	json_t *o = event_json("zombie_detected", w, ev);
	append_event(a, a->zombie_events_fd, o, ZOMBIE_FILE);
	vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "zombie_detected: worker %s pid %d silent since %llu ms, health %u",
		  w->id, w->pid, (unsigned long long)(ev->unix_ms - ev->last_seen_unix_ms), ev->health_score);
	/* zombie/ first, then out of active/: the worker is never in neither. */
	spec_write(a, w, ev->unix_ms);
	char name[80];
	if (spec_file_name(w, name, sizeof name) == 0)
		note_remove(a, vigil_fs_remove(a->active_fd, name), name);
	vigil_restart_on_zombie(a, w);
	failure(a, w, VIGIL_FAIL_HANG, ev);
}

static void on_gone(struct vigil_action *a, const struct vigil_event *ev_in)
{
	struct vigil_worker *w = vigil_registry_at(&a->reg, ev_in->slot);
	if (w == NULL || w->gen != ev_in->gen)
		return;
	struct vigil_event evc = *ev_in;
	const struct vigil_event *ev = &evc;
	/* Not our child: its status may still be readable while its parent
	 * has not reaped it (SIGKILL from outside shows as signal 9). */
	if (evc.kind == VIGIL_EV_EXITED && evc.exit_code < 0 && evc.exit_signal < 0 &&
	    !vigil_proc_exit_status(w->pid, w->pid_start_ticks, &evc.exit_code, &evc.exit_signal)) {
		evc.exit_code = -1;
		evc.exit_signal = -1;
	}
	bool zombie = w->status == VIGIL_STATUS_ZOMBIE;
	uint32_t held = w->fds_held;
	bool had_sig = w->sig_pidfd >= 0;
	/* The event first, then what follows from it (a restart's outcome, a
	 * retry queued): readers see causes before their effects. */
	if (ev->kind == VIGIL_EV_EXITED) {
		json_t *o = event_json("worker_exited", w, ev);
		if (o != NULL) {
			json_object_set_new(o, "exit_code", ev->exit_code >= 0 && ev->exit_signal == 0
								  ? json_integer(ev->exit_code)
								  : json_null());
			json_object_set_new(o, "signal", ev->exit_signal > 0 ? json_integer(ev->exit_signal) : json_null());
			json_object_set_new(o, "status", json_string(zombie ? "zombie" : "active"));
		}
		append_event(a, a->hb_events_fd, o, HB_FILE);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "worker_exited: worker %s pid %d%s", w->id, w->pid,
			  zombie ? " (was a zombie)" : "");
	} else if (ev->kind == VIGIL_EV_DETACHED) {
		append_event(a, a->hb_events_fd, event_json("worker_detached", w, ev), HB_FILE);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "worker_detached: worker %s pid %d", w->id, w->pid);
	}
	/* The restart path: it decides whether a successor is coming (and may
	 * keep our pidfd of a process that detached but lives on). */
	bool was_restart = vigil_restart_on_exit(a, w, ev, ev->kind == VIGIL_EV_DETACHED);
	if (had_sig && w->sig_pidfd < 0 && held > 0)
		held--; /* the ending table keeps ours (and counts it) */
	bool successor = !was_restart && ev->kind != VIGIL_EV_VANISHED && vigil_restart_underway(a, w->id);
	if (ev->kind == VIGIL_EV_EXITED) {
		/* A zombie's spec stays in zombie/ for the operator (cleanup
		 * takes it out and returns its tokens) unless vigild ended it to
		 * restart it (its cleanup: restart.c removed it); a live one
		 * leaves, unless a restart is coming: then it says "restarting"
		 * (README, "Worker spec") and keeps the command, so a vigild crash
		 * in between loses nothing. */
		if (successor) {
			w->status = VIGIL_STATUS_RESTARTING;
			spec_write(a, w, ev->unix_ms);
		} else {
			spec_remove(a, w, false);
		}
	} else if (ev->kind == VIGIL_EV_DETACHED) {
		/* Replaced in one rename, never removed first: a vigild crash
		 * in between would lose the restart and the process it waits for. */
		if (successor) {
			w->status = VIGIL_STATUS_RESTARTING;
			spec_write(a, w, ev->unix_ms);
			spec_remove_zombie(a, w);
		} else {
			spec_remove(a, w, true);
		}
	} else {
		json_t *o = event_json("worker_vanished", w, ev);
		if (o != NULL)
			json_object_set_new(o, "reason", json_string("slot changed owner without vigild (segment overwritten?)"));
		append_event(a, a->hb_events_fd, o, HB_FILE);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR,
			  "slot %u of worker %s changed owner behind vigild's back (segment overwritten?): forgotten",
			  ev->slot, w->id);
		spec_remove(a, w, false);
	}
	if (ev->kind == VIGIL_EV_EXITED && !was_restart)
		failure(a, w, VIGIL_FAIL_EXIT, ev); /* a clean exit yields no pattern */
	a->pidfds_held = a->pidfds_held >= held ? a->pidfds_held - held : 0;
	vigil_registry_remove(&a->reg, w);
}

static void on_host(struct vigil_action *a, const struct vigil_event *ev)
{
	json_t *o = json_object();
	if (o == NULL)
		return;
	if (ev->kind == VIGIL_EV_HOST_STALL) {
		json_object_set_new(o, "event", json_string("host_stall_suspected"));
		json_object_set_new(o, "silent_workers", json_integer(ev->count_a));
		json_object_set_new(o, "monitored_workers", json_integer(ev->count_b));
		json_object_set_new(o, "hold_seconds", json_real(a->hb.heartbeat_interval_seconds));
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "host_stall_suspected: %u of %u workers silent at once; zombie verdicts held for %.3f s",
			  ev->count_a, ev->count_b, a->hb.heartbeat_interval_seconds);
	} else {
		json_object_set_new(o, "event", json_string("supervisor_stall"));
		json_object_set_new(o, "lost_ms", json_integer(ev->count_a));
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "supervisor_stall: vigild could not observe for %u ms; not held against any worker", ev->count_a);
	}
	vigil_json_stamp(o, "timestamp", "timestamp_ms", ev->unix_ms);
	append_event(a, a->hb_events_fd, o, HB_FILE);
}

static void handle_event(struct vigil_action *a, const struct vigil_event *ev)
{
	switch (ev->kind) {
	case VIGIL_EV_REGISTERED:
	case VIGIL_EV_ADOPTED:
		on_register(a, ev);
		break;
	case VIGIL_EV_MISSED:
	case VIGIL_EV_TIMEOUT:
	case VIGIL_EV_RECOVERED:
		on_verdict(a, ev);
		break;
	case VIGIL_EV_ZOMBIE:
		on_zombie(a, ev);
		break;
	case VIGIL_EV_EXITED:
	case VIGIL_EV_DETACHED:
	case VIGIL_EV_VANISHED:
		on_gone(a, ev);
		break;
	case VIGIL_EV_HOST_STALL:
	case VIGIL_EV_TICK_LATE:
		on_host(a, ev);
		break;
	case VIGIL_EV_PROGRESS_STALL: {
		struct vigil_worker *w = vigil_registry_at(&a->reg, ev->slot);
		if (w == NULL || w->gen != ev->gen)
			break;
		json_t *o = event_json("progress_stall", w, ev);
		if (o != NULL)
			json_object_set_new(o, "stalled_ms", json_integer(ev->count_a));
		append_event(a, a->hb_events_fd, o, HB_FILE);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "progress_stall: worker %s pid %d beats but progress has stayed at %u%% for %u ms", w->id, w->pid,
			  ev->progress, ev->count_a);
		failure(a, w, VIGIL_FAIL_PROGRESS_STALL, ev);
		break;
	}
	case VIGIL_EV_FIRST_BEAT: {
		struct vigil_worker *w = vigil_registry_at(&a->reg, ev->slot);
		if (w != NULL && w->gen == ev->gen) {
			w->beat_seen = true; /* the scanner reports it once: a late restart state needs it */
			vigil_restart_on_first_beat(a, w);
		}
		break;
	}
	case VIGIL_EV_CLAIM_STALE:
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "slot %u was claimed but never published for %llu s: freed", ev->slot,
			  (unsigned long long)(VIGIL_CLAIM_STALE_NS / VIGIL_NS_PER_S));
		break;
	default:
		break;
	}
}

bool vigil_action_drain(struct vigil_action *a)
{
	struct vigil_event ev;
	/* Bounded per call so that signals and snapshots are not starved by
	 * an event storm; the wake eventfd stays readable while work remains. */
	for (uint32_t i = 0; i < VIGIL_EV_RING_SIZE; i++) {
		if (!vigil_scanner_next_event(a->scanner, &ev))
			return true;
		handle_event(a, &ev);
	}
	return false;
}

/* ---- snapshots and metrics ------------------------------------------------- */

static json_t *metrics_write(struct vigil_action *a, uint64_t now_ms)
{
	const struct vigil_scan_metrics *m = &a->scanner->metrics;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
#define M(k, f) json_object_set_new(o, k, json_integer((json_int_t)atomic_load_explicit(&m->f, memory_order_relaxed)))
	M("workers_monitored", workers_monitored);
	M("heartbeats_received", heartbeats_received);
	M("zombies_detected", zombies_detected);
	M("heartbeat_timeouts", heartbeat_timeouts);
	M("heartbeats_missed", heartbeats_missed);
	M("exits_detected", exits_detected);
	M("ticks", ticks);
	M("tick_overruns", tick_overruns);
	M("ring_full_deferrals", ring_full_deferrals);
	M("host_stalls", host_stalls);
	M("stall_credit_ms_total", stall_credit_ms_total);
	M("stale_beats_ignored", stale_beats_ignored);
#undef M
	json_object_set_new(o, "scan_time_last_us",
			    json_real((double)atomic_load_explicit(&m->scan_ns_last, memory_order_relaxed) / 1e3));
	json_object_set_new(o, "scan_time_max_us",
			    json_real((double)atomic_load_explicit(&m->scan_ns_max, memory_order_relaxed) / 1e3));
	json_object_set_new(o, "tick_seconds", json_real((double)a->hb.tick_ns / 1e9));
	json_object_set_new(o, "slots", json_integer(a->seg->slots));
	json_object_set_new(o, "workers_known", json_integer(a->reg.count));
	json_object_set_new(o, "workers_rejected", json_integer((json_int_t)a->workers_rejected));
	json_object_set_new(o, "workers_unverified", json_integer((json_int_t)a->unverified_workers));
	json_object_set_new(o, "events_written", json_integer((json_int_t)a->events_written));
	json_object_set_new(o, "specs_written", json_integer((json_int_t)a->specs_written));
	json_object_set_new(o, "write_errors", json_integer((json_int_t)a->write_errors));
	vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms);
	int rc = vigil_fs_replace_json(a->metrics_fd, "heartbeat-monitor-metrics.json", o);
	note_write(a, rc, "metrics/heartbeat-monitor-metrics.json");
	return o;
}

/* The health band a spec's rewrite follows at once: tens of points (a
 * worker reporting 97, 95, 98 is not rewritten for each).  The exact
 * figure is refreshed with the moving fields. */
static uint32_t health_band(uint32_t h)
{
	return h >= 100 ? 10 : h / 10;
}

/* How many specs whose moving fields alone are stale a snapshot pass may
 * refresh: twice the steady rate (count x snapshot interval / bound), so
 * that a fleet registered at once is spread over half a bound instead of
 * rewritten in one burst every bound, and any backlog drains. */
static uint32_t refresh_budget(const struct vigil_action *a)
{
	uint64_t bound_ns = a->hb.spec_refresh_ns > 0 ? a->hb.spec_refresh_ns : 1;
	uint64_t per = ((uint64_t)a->reg.count * a->hb.snapshot_ns + bound_ns - 1) / bound_ns;
	per = per * 2 + 1;
	return per > UINT32_MAX ? UINT32_MAX : (uint32_t)per;
}

/* Events are handed to their files between spec writes, every this many:
 * a verdict must not wait for a pass over thousands of specs. */
#define SNAPSHOT_DRAIN_EVERY 64u

void vigil_action_snapshot(struct vigil_action *a, bool force)
{
	uint64_t now_ms = vigil_unix_ms();
	uint64_t bound_ms = a->hb.spec_refresh_ns / VIGIL_NS_PER_MS;
	uint32_t budget = force ? UINT32_MAX : refresh_budget(a);
	uint32_t written = 0;
	/* Where the last pass's refreshes stopped: refreshes go round the
	 * slots, so that a budget smaller than the stale crowd serves the
	 * oldest first in turn.  One action thread: a static is enough. */
	static uint32_t cursor;
	const uint32_t nslots = a->reg.slots;
	if (cursor >= nslots)
		cursor = 0;
	const uint32_t start = cursor;
	/* Bounded: one visit per slot, from where the refreshes stopped. */
	for (uint32_t k = 0; k < nslots; k++) {
		uint32_t i = start + k < nslots ? start + k : start + k - nslots;
		struct vigil_worker *w = a->reg.by_slot[i];
		if (w == NULL)
			continue;
		const struct vigil_slot_view *v = &a->seg->view[i];
		if (atomic_load_explicit(&v->generation_low, memory_order_relaxed) == (uint32_t)w->gen) {
			w->health = atomic_load_explicit(&v->health_score, memory_order_relaxed);
			w->missed = atomic_load_explicit(&v->missed, memory_order_relaxed);
			w->progress = atomic_load_explicit(&v->progress, memory_order_relaxed);
			w->beats = atomic_load_explicit(&v->beats, memory_order_relaxed);
			uint64_t seen = atomic_load_explicit(&v->last_seen_unix_ms, memory_order_relaxed);
			/* The view is in shared memory: anyone may have written it.
			 * A last_seen in the future is not believed. */
			if (seen <= now_ms + 60000)
				w->last_seen_ms = seen;
			if (w->health > 100)
				w->health = 100;
			if (w->progress > 100)
				w->progress = 100;
		}
		/* A change of state (status, missed, health band, the first
		 * beat: "has not beaten yet" is a state) is written in
		 * this pass.  The moving fields (last_seen, beats, progress, the
		 * exact health) are refreshed once they are spec_refresh_seconds
		 * old, within the pass's budget (README, "Files"); the live values
		 * are in the segment (vigilctl status/top).  That is what keeps
		 * 5,000 beating, progressing workers from costing 5,000 file
		 * writes a second. */
		bool state = !w->spec_written || w->status != w->w_status || w->missed != w->w_missed ||
			     health_band(w->health) != health_band(w->w_health) || (w->beats > 0) != (w->w_beats > 0);
		bool moving = w->progress != w->w_progress || w->last_seen_ms != w->w_last_seen_ms ||
			      w->health != w->w_health;
		bool refresh = moving && budget > 0 && now_ms >= w->w_written_ms + (bound_ms > 0 ? bound_ms : 1);
		if (state || refresh || force) {
			if (!state && !force) {
				budget--;
				cursor = i + 1;
			}
			spec_write(a, w, now_ms);
			/* Not in the forced passes of start and stop: there the
			 * scanner is not running, the caller drained already. */
			if (!force && ++written % SNAPSHOT_DRAIN_EVERY == 0)
				vigil_action_drain(a); /* may remove workers: by_slot is read afresh each turn */
		}
	}
	json_t *hb = metrics_write(a, now_ms);
	json_t *rs = vigil_restart_write_metrics(a, now_ms);
	json_t *af = vigil_fixes_write_metrics(a, now_ms);
	/* The same figures for node_exporter's textfile collector. */
	json_t *per_type = NULL;
	vigil_prom_per_type(a->seg, a->rs.breakers_fd, &per_type);
	char *txt = NULL;
	if (hb != NULL && rs != NULL && vigil_prom_render(hb, rs, af, per_type, &txt) == 0) {
		note_write(a, vigil_prom_write(a->metrics_fd, txt), "metrics/vigil.prom");
		free(txt);
	}
	json_decref(per_type);
	json_decref(hb);
	json_decref(rs);
	json_decref(af);
}

/* ---- policies ------------------------------------------------------------------ */

int vigil_action_reload(struct vigil_action *a, const char *why, unsigned files)
{
	char err[512], warn[512];
	int bad = 0;
	struct vigil_heartbeat_policy hb;
	bool missing = false;
	err[0] = warn[0] = '\0';
	if (!(files & VIGIL_POLICY_HEARTBEAT)) {
		/* not asked */
	} else if (vigil_policy_heartbeat_load(a->config_fd, HB_POLICY, "coordination/config/heartbeat-policy.json", &hb,
					&missing, err, sizeof err, warn, sizeof warn) < 0) {
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR, "policy not reloaded (%s): %s; the policy in force stays",
			  why, err);
		bad++;
	} else {
		if (warn[0] != '\0')
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "%s", warn);
		if (memcmp(&hb, &a->hb, sizeof hb) == 0)
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO, "heartbeat policy reread (%s): unchanged", why);
		if (memcmp(&hb, &a->hb, sizeof hb) != 0) {
			struct vigil_heartbeat_policy *copy = malloc(sizeof *copy);
			if (copy != NULL) {
				*copy = hb;
				a->hb = hb;
				vigil_scanner_set_policy(a->scanner, copy);
				vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO,
					  "heartbeat policy reloaded (%s): interval %.3f s, timeout %.3f s, zombie %.3f s, "
					  "decay %g, min health %g, tick %.4f s",
					  why, hb.heartbeat_interval_seconds, hb.heartbeat_timeout_seconds,
					  hb.zombie_threshold_seconds, hb.health_score_decay_rate, hb.min_health_score,
					  (double)hb.tick_ns / 1e9);
				if (hb.snapshot_ns != a->snapshot_ns) {
					struct itimerspec its = {
						.it_interval = {.tv_sec = (time_t)(hb.snapshot_ns / VIGIL_NS_PER_S),
								.tv_nsec = (long)(hb.snapshot_ns % VIGIL_NS_PER_S)}};
					its.it_value = its.it_interval;
					timerfd_settime(a->snapfd, 0, &its, NULL);
					a->snapshot_ns = hb.snapshot_ns;
				}
			}
		}
	}
	struct vigil_restart_policy rp;
	err[0] = warn[0] = '\0';
	if (!(files & VIGIL_POLICY_RESTART)) {
		/* not asked */
	} else if (vigil_policy_restart_load(a->config_fd, RESTART_POLICY, "coordination/config/worker-restart-policy.json",
					     &rp, &missing, err, sizeof err, warn, sizeof warn) < 0) {
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR, "policy not reloaded (%s): %s; the policy in force stays", why,
			  err);
		bad++;
	} else {
		if (warn[0] != '\0')
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN, "%s", warn);
		bool same = memcmp(&rp, &a->restart, sizeof rp) == 0;
		a->restart = rp;
		vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO,
			  "restart policy %s (%s): max_retries %u, retry interval %.3f s, backoff x%g, breaker %s at %u "
			  "for %.3f s",
			  same ? "reread, unchanged" : "reloaded", why, rp.max_retries, rp.retry_interval_seconds,
			  rp.backoff_multiplier, rp.circuit_breaker_enabled ? "on" : "off", rp.circuit_breaker_threshold,
			  rp.circuit_breaker_reset_seconds);
	}
	struct vigil_autofix_policy ap;
	err[0] = warn[0] = '\0';
	if (!(files & VIGIL_POLICY_AUTOFIX)) {
		/* not asked */
	} else if (vigil_policy_autofix_load(a->config_fd, AUTOFIX_POLICY, "coordination/config/auto-fix-policy.json", &ap,
					     &missing, err, sizeof err, warn, sizeof warn) < 0) {
		vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_ERROR, "policy not reloaded (%s): %s; the policy in force stays", why,
			  err);
		bad++;
	} else {
		if (warn[0] != '\0')
			vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_WARN, "%s", warn);
		bool same = memcmp(&ap, &a->autofix, sizeof ap) == 0;
		a->autofix = ap;
		vigil_log(VIGIL_LOG_AUTOFIX, VIGIL_LOG_INFO, "auto-fix policy %s (%s): %s, threshold %g, %u fixes an hour%s",
			  same ? "reread, unchanged" : "reloaded", why, ap.enabled ? "enabled" : "disabled",
			  ap.min_confidence_threshold, ap.max_fixes_per_hour, ap.dry_run ? ", dry run" : "");
	}
	return bad == 0 ? 0 : -EINVAL;
}

/* ---- the loop ------------------------------------------------------------------ */

/* The policy file an inotify event of coordination/config says is complete:
 * written and closed (cp, an editor writing in place), renamed in (an
 * atomic writer) or deleted.  IN_CREATE and IN_MODIFY are not: the file is
 * still being written then (a cp of two files made vigild read the second
 * one empty and log a false "policy not reloaded"). */
static unsigned policy_file_bit(const struct inotify_event *ie)
{
	if (!(ie->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE)))
		return 0;
	if (strcmp(ie->name, HB_POLICY) == 0)
		return VIGIL_POLICY_HEARTBEAT;
	if (strcmp(ie->name, RESTART_POLICY) == 0)
		return VIGIL_POLICY_RESTART;
	if (strcmp(ie->name, AUTOFIX_POLICY) == 0)
		return VIGIL_POLICY_AUTOFIX;
	return 0;
}

static int add_fd(int epfd, int fd, uint64_t tok)
{
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = tok};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int vigil_action_init(struct vigil_action *a, int home_fd, struct vigil_segment *seg, struct vigil_scanner *scanner,
		      const struct vigil_heartbeat_policy *hb, const struct vigil_restart_policy *rp,
		      const struct vigil_autofix_policy *ap)
{
	memset(a, 0, sizeof *a);
	a->home_fd = home_fd;
	a->config_fd = a->active_fd = a->zombie_fd = a->events_fd = a->metrics_fd = -1;
	a->hb_events_fd = a->zombie_events_fd = a->epfd = a->sigfd = a->inofd = a->snapfd = -1;
	a->wdfd = -1;
	a->patterns_fd = a->fix_history_fd = -1;
	{
		struct rlimit rl;
		a->fds_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < UINT32_MAX ? (uint32_t)rl.rlim_cur
											      : UINT32_MAX;
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		uint32_t n = 0;
		while (d != NULL && (de = readdir(d)) != NULL && n < 1000000)
			n += de->d_name[0] != '.';
		if (d != NULL)
			closedir(d);
		/* + the descriptors this function is about to open */
		a->fds_base = n + 24;
	}
	a->debug = getenv("VIGIL_DEBUG") != NULL && strcmp(getenv("VIGIL_DEBUG"), "1") == 0;
	a->seg = seg;
	a->scanner = scanner;
	a->hb = *hb;
	a->restart = *rp;
	a->autofix = *ap;
	int rc = vigil_registry_init(&a->reg, seg->slots);
	if (rc < 0)
		return rc;
	a->config_fd = vigil_fs_open_dir(home_fd, "coordination/config", true);
	a->active_fd = vigil_fs_open_dir(home_fd, "coordination/worker-specs/active", true);
	a->zombie_fd = vigil_fs_open_dir(home_fd, "coordination/worker-specs/zombie", true);
	a->events_fd = vigil_fs_open_dir(home_fd, "coordination/events", true);
	a->metrics_fd = vigil_fs_open_dir(home_fd, "coordination/metrics", true);
	if (a->config_fd < 0 || a->active_fd < 0 || a->zombie_fd < 0 || a->events_fd < 0 || a->metrics_fd < 0)
		return a->config_fd < 0 ? a->config_fd : a->active_fd < 0 ? a->active_fd : a->zombie_fd < 0 ? a->zombie_fd : a->events_fd < 0 ? a->events_fd : a->metrics_fd;
	a->hb_events_fd = vigil_fs_open_append(a->events_fd, "heartbeat-events.jsonl");
	a->zombie_events_fd = vigil_fs_open_append(a->events_fd, "zombie-cleanup-events.jsonl");
	if (a->hb_events_fd < 0)
		return a->hb_events_fd;
	if (a->zombie_events_fd < 0)
		return a->zombie_events_fd;

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	a->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	a->inofd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	a->snapfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (a->epfd < 0 || a->sigfd < 0 || a->inofd < 0 || a->snapfd < 0)
		return -errno;
	/* inotify takes a path: the config directory we just opened, named
	 * through /proc so that a symlink swapped in meanwhile is not used. */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", a->config_fd);
	a->ino_config_wd = inotify_add_watch(a->inofd, path, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
	if (a->ino_config_wd < 0)
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "cannot watch coordination/config for changes (%s): reload with SIGHUP", strerror(errno));
	if ((rc = vigil_restart_init(a)) < 0)
		return rc;
	if ((rc = vigil_fixes_init(a)) < 0)
		return rc;
	/* Queues and the history: a request is taken as soon as it lands
	 * (and, failing inotify, at the next snapshot). */
	int watched[] = {a->rs.queue_fd, a->rs.spawn_queue_fd, a->rs.control_queue_fd, a->rs.metrics_fd};
	for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", watched[i]);
		inotify_add_watch(a->inofd, path, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_CREATE);
	}
	a->snapshot_ns = hb->snapshot_ns;
	struct itimerspec its = {.it_interval = {.tv_sec = (time_t)(hb->snapshot_ns / VIGIL_NS_PER_S),
						 .tv_nsec = (long)(hb->snapshot_ns % VIGIL_NS_PER_S)}};
	its.it_value = its.it_interval;
	if (timerfd_settime(a->snapfd, 0, &its, NULL) < 0)
		return -errno;
	if ((rc = add_fd(a->epfd, scanner->wakefd, TOK_WAKE)) < 0 || (rc = add_fd(a->epfd, a->sigfd, TOK_SIG)) < 0 ||
	    (rc = add_fd(a->epfd, a->inofd, TOK_INO)) < 0 || (rc = add_fd(a->epfd, a->snapfd, TOK_SNAP)) < 0 ||
	    (rc = add_fd(a->epfd, a->rs.timerfd, TOK_RESTART)) < 0)
		return rc;
	return 0;
}

int vigil_action_watchdog(struct vigil_action *a, uint64_t watchdog_usec)
{
	if (watchdog_usec == 0)
		return 0;
	uint64_t period_ns = watchdog_usec * 1000ull / 3;
	if (period_ns < 1000000ull)
		period_ns = 1000000ull;
	a->wdfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (a->wdfd < 0)
		return -errno;
	struct itimerspec its = {.it_interval = {.tv_sec = (time_t)(period_ns / VIGIL_NS_PER_S),
						 .tv_nsec = (long)(period_ns % VIGIL_NS_PER_S)}};
	its.it_value = its.it_interval;
	if (timerfd_settime(a->wdfd, 0, &its, NULL) < 0)
		return -errno;
	a->wd_last_ticks = atomic_load_explicit(&a->scanner->metrics.ticks, memory_order_relaxed);
	return add_fd(a->epfd, a->wdfd, TOK_WATCHDOG);
}

static void watchdog_ping(struct vigil_action *a)
{
	uint64_t t = atomic_load_explicit(&a->scanner->metrics.ticks, memory_order_relaxed);
	if (t == a->wd_last_ticks) {
		/* The scanner has not completed a tick since the last ping: let
		 * systemd's watchdog notice instead of vouching for it. */
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "scanner made no progress: WATCHDOG=1 withheld");
		return;
	}
	a->wd_last_ticks = t;
	vigil_sd_notify("WATCHDOG=1");
}

void vigil_action_sd_status(struct vigil_action *a)
{
	if (!vigil_sd_enabled())
		return;
	uint32_t zombies = 0, missed = 0;
	for (uint32_t i = 0; i < a->reg.slots; i++) {
		const struct vigil_worker *w = a->reg.by_slot[i];
		if (w == NULL)
			continue;
		zombies += w->status == VIGIL_STATUS_ZOMBIE;
		missed += w->missed > 0 && w->status != VIGIL_STATUS_ZOMBIE;
	}
	char msg[200];
	snprintf(msg, sizeof msg, "STATUS=%u workers, %u zombies, %u missing beats, %u breakers open", a->reg.count,
		 zombies, missed, vigil_breakers_open_count(&a->rs.breakers));
	vigil_sd_notify(msg);
}

void vigil_action_sweep_leftovers(struct vigil_action *a)
{
	const struct vigil_restart *r = &a->rs;
	const int dirs[] = {a->active_fd,	 a->zombie_fd,	   a->metrics_fd,     r->metrics_fd,
			    r->queue_fd,	 r->rejected_fd,   r->spawn_queue_fd, r->spawn_failed_fd,
			    r->control_queue_fd, r->control_done_fd, r->breakers_fd};
	int removed = 0;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (dirs[i] >= 0)
			removed += vigil_fs_sweep_tmp(dirs[i]);
	if (removed > 0)
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO,
			  "removed %d temporary file(s) left by a writer killed between create and rename", removed);
}

/* One directory of specs (active/ or zombie/): what to do with the spec of
 * a worker that is not in the segment.  A zombie/ spec always leaves
 * zombie/: moved to active/ as "restarting" when its restart is coming,
 * else removed. */
static void prune_dir(struct vigil_action *a, int dirfd, bool zombie_dir)
{
	DIR *d = vigil_fs_opendir_at(dirfd);
	if (d == NULL)
		return;
	const char *dname = zombie_dir ? "zombie" : "active";
	char names[64][80];
	bool moved[64];
	int n = 0;
	struct dirent *de;
	/* Collect, then unlink: never remove from a directory while reading
	 * it.  Bounded to 64 per pass; vigild calls this once at start, so
	 * more stale files wait for the next start (and are reported). */
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 6 || len > 69 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.')
			continue; /* not a spec vigild could have written */
		char id[80];
		snprintf(id, sizeof id, "%.*s", (int)(len - 5), de->d_name);
		urcu_memb_read_lock();
		bool known = vigil_registry_find(&a->reg, id) != NULL;
		urcu_memb_read_unlock();
		if (known)
			continue;
		/* "restarting": its restart is still queued; the spec carries
		 * the command the restart will run.  A worker vigild spawned
		 * that is gone (it ended while vigild was down, or before vigild
		 * handled its exit; a zombie too, whose restart would have come
		 * with its exit) is a failure vigild found: it takes the restart
		 * path, like any exit. */
		char *buf;
		size_t blen;
		if (vigil_fs_read(dirfd, de->d_name, 65536, &buf, &blen) == 0) {
			json_t *o = json_loadb(buf, blen, 0, NULL);
			free(buf);
			const char *st = json_string_value(json_object_get(o, "status"));
			const char *type = json_string_value(json_object_get(o, "worker_type"));
			bool spawned = json_is_true(json_object_get(o, "spawned"));
			known = !zombie_dir && st != NULL && strcmp(st, "restarting") == 0;
			/* The previous vigild may have queued its restart and died
			 * before it could say "restarting": one request is enough. */
			bool queued = !known && spawned && vigil_id_valid(id) && vigil_restart_queued_for(a, id);
			if (queued) {
				known = true;
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO,
					  "%s ended while vigild was down: its restart is already queued", id);
			}
			if (!known && spawned && type != NULL && vigil_id_valid(type) && vigil_id_valid(id) &&
			    vigil_restart_request_from(a, id, type, "exited while vigild was down", "vigild",
						       vigil_unix_ms()) == 0) {
				known = true;
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN, "%s ended while vigild was down: restart queued",
					  id);
			}
			if (known && (zombie_dir || st == NULL || strcmp(st, "restarting") != 0)) {
				json_object_set_new(o, "status", json_string("restarting"));
				vigil_fs_replace_json(a->active_fd, de->d_name, o);
			}
			/* Its slot is gone, its process may not be: the previous
			 * vigild was ending it ("ending", written before the
			 * SIGTERM) and it detached and lingers.  It ends before any
			 * replacement of this id starts. */
			json_t *pid = json_object_get(o, "pid"), *ticks = json_object_get(o, "pid_start_ticks");
			if (known && json_is_true(json_object_get(o, "ending")) && json_is_integer(pid) &&
			    json_is_integer(ticks) && json_integer_value(pid) > 0 && json_integer_value(pid) <= INT32_MAX &&
			    json_integer_value(ticks) > 0)
				vigil_restart_resume_ending(a, id, (int32_t)json_integer_value(pid),
							    (uint64_t)json_integer_value(ticks));
			json_decref(o);
		}
		if ((!known || zombie_dir) && n < 64) {
			memcpy(names[n], de->d_name, len + 1);
			moved[n++] = known;
		}
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		vigil_fs_remove(dirfd, names[i]);
		if (moved[i])
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO,
				  "moved spec zombie/%s to active/ as \"restarting\": that worker is no longer in the "
				  "segment and its restart is queued",
				  names[i]);
		else
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO,
				  "removed stale spec %s/%s: that worker is no longer in the segment", dname, names[i]);
	}
}

void vigil_action_prune_stale_specs(struct vigil_action *a)
{
	prune_dir(a, a->active_fd, false);
	prune_dir(a, a->zombie_fd, true);
}

static void drain_fd(int fd)
{
	char buf[4096];
	/* Non-blocking: bounded by what is queued. */
	for (int i = 0; i < 64; i++)
		if (read(fd, buf, sizeof buf) <= 0)
			break;
}

int vigil_action_run(struct vigil_action *a)
{
	struct epoll_event evs[8];
	while (!a->stop) {
		int n = epoll_wait(a->epfd, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR, "epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u64) {
			case TOK_WAKE: {
				uint64_t v;
				(void)!read(a->scanner->wakefd, &v, sizeof v);
				vigil_action_drain(a);
				break;
			}
			case TOK_SIG: {
				struct signalfd_siginfo si;
				while (read(a->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
					if (si.ssi_signo == SIGHUP) {
						vigil_action_reload(a, "SIGHUP", VIGIL_POLICY_ALL);
					} else {
						vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO,
							  "signal %u: stopping; workers keep running", si.ssi_signo);
						a->stop = true;
					}
				}
				break;
			}
			case TOK_INO: {
				char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
				unsigned config = 0;
				bool queues = false;
				ssize_t len;
				/* Bounded: the fd is non-blocking and drained. */
				while ((len = read(a->inofd, buf, sizeof buf)) > 0) {
					for (char *p = buf; p < buf + len;) {
						struct inotify_event *ie = (struct inotify_event *)p;
						if (ie->len > 0 && ie->name[0] != '.') {
							if (ie->wd == a->ino_config_wd)
								config |= policy_file_bit(ie);
							else
								queues = true;
						}
						p += sizeof *ie + ie->len;
					}
				}
				if (config != 0)
					vigil_action_reload(a, "file changed", config);
				if (queues)
					vigil_restart_poll(a);
				break;
			}
			case TOK_SNAP:
				drain_fd(a->snapfd);
				vigil_restart_poll(a); /* drains the events first */
				vigil_action_snapshot(a, false);
				vigil_action_sd_status(a);
				break;
			case TOK_RESTART:
				drain_fd(a->rs.timerfd);
				vigil_restart_poll(a); /* drains the events first */
				break;
			case TOK_WATCHDOG:
				drain_fd(a->wdfd);
				watchdog_ping(a);
				break;
			case TOK_ENDING:
				/* Level-triggered: the entry is removed from the epoll
				 * by the poll that sees the exit. */
				vigil_restart_poll(a);
				break;
			default:
				break;
			}
		}
	}
	return 0;
}

void vigil_action_destroy(struct vigil_action *a)
{
	int fds[] = {a->config_fd, a->active_fd, a->zombie_fd, a->events_fd, a->metrics_fd, a->hb_events_fd,
		     a->zombie_events_fd, a->epfd, a->sigfd, a->inofd, a->snapfd, a->wdfd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	vigil_fixes_destroy(a);
	vigil_restart_destroy(a);
	urcu_memb_barrier(); /* run pending frees of removed records */
	vigil_registry_destroy(&a->reg);
	memset(a, 0, sizeof *a);
}
