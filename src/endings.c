/*
 * endings.c - ending a worker's process, and waiting for it to be gone.
 *
 * What it is: the one place vigild sends a signal to a worker.  Always
 * through the worker's pidfd (so a pid recycled after the worker died is
 * never hit), always SIGTERM first (with SIGCONT, so a stopped process can
 * act on it) and SIGKILL when kill_grace_seconds is over.  A process that
 * says goodbye (vigil_detach) but does not exit while it is being ended
 * leaves the registry with its slot; its pidfd moves to the table of
 * endings here, so that the grace's SIGKILL still comes and no replacement
 * of the same worker id starts until it is gone.  A child of vigild that
 * detached and runs on is kept here too, only to be reaped when it exits.
 *
 * Why a file of its own: restart.c decides *whether* a worker is ended
 * (a restart, a zombie, a cleanup, a task deadline); this file is *how*,
 * with its own bounded table (VIGIL_ENDINGS_MAX) and its own clock
 * (monotonic: a wall-clock step neither shortens nor lengthens a grace).
 */
#define _GNU_SOURCE
#include "endings.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3 /* waitid on a pidfd: Linux 5.4 */
#endif

#include "action.h"
#include "log.h"
#include "util.h"
#include "verify.h"

#define ENDING_GIVE_UP_MS 5000u /* after SIGKILL: a process still there is in D state */
#define ENDING_POLL_MS 10u      /* how often a lingering process being ended is looked at */
#define ENDING_REAP_POLL_MS 1000u /* and a detached child that runs on */

static uint64_t mono_ms(void) { return vigil_mono_ns() / VIGIL_NS_PER_MS; }
static const struct vigil_restart_policy *policy(struct vigil_action *a) { return &a->restart; }

/* ---- ending processes ------------------------------------------------------------ */

bool vigil_restart_kill(struct vigil_action *a, struct vigil_worker *w, uint8_t why, uint64_t now_ms)
{
	if (!w->verified || w->sig_pidfd < 0)
		return false;
	if (w->kill_why != VIGIL_KILL_NONE)
		return true; /* already being ended; the first reason stands */
	w->kill_why = why;
	w->kill_signal = SIGTERM;
	w->kill_sent_ms = now_ms;
	w->kill_due_ms = mono_ms() + (uint64_t)llround(policy(a)->kill_grace_seconds * 1000.0); /* monotonic */
	/* On disk before the signal ("ending": true): the process may detach
	 * and the scanner free its slot at once, and a vigild killed then must
	 * still find, from the spec alone, a process it has to finish ending. */
	vigil_action_spec_now(a, w, now_ms);
	/* Through the pidfd: if the process is gone, this fails with ESRCH
	 * and no recycled pid is ever hit. */
	if (pidfd_send_signal(w->sig_pidfd, SIGTERM, NULL, 0) < 0 && errno == ESRCH) {
		w->kill_why = VIGIL_KILL_NONE; /* already gone: its exit event is on its way */
		return true;
	}
	pidfd_send_signal(w->sig_pidfd, SIGCONT, NULL, 0); /* a stopped one can act on TERM */
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "sent SIGTERM to %s (pid %d); SIGKILL in %.3f s if it is still there",
		  w->id, w->pid, policy(a)->kill_grace_seconds);
	return true;
}

void vigil_endings_escalate(struct vigil_action *a, uint64_t now, uint64_t *next)
{
	for (uint32_t i = 0; i < a->reg.slots; i++) {
		struct vigil_worker *w = a->reg.by_slot[i];
		if (w == NULL || w->kill_why == VIGIL_KILL_NONE || w->kill_signal == SIGKILL)
			continue;
		if (now >= w->kill_due_ms) {
			if (pidfd_send_signal(w->sig_pidfd, SIGKILL, NULL, 0) == 0)
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN, "sent SIGKILL to %s (pid %d) after the grace",
					  w->id, w->pid);
			w->kill_signal = SIGKILL;
		} else if (w->kill_due_ms < *next) {
			*next = w->kill_due_ms;
		}
	}
}

/* ---- processes that detached while being ended ------------------------------------ */

static bool pidfd_exited(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	return poll(&p, 1, 0) > 0; /* POLLIN: the process has exited (pidfd_open(2)) */
}

/* The kill entry for id (a replacement waits for it), or -1. */
int vigil_ending_find(const struct vigil_restart *r, const char *id)
{
	if (r->nendings == 0)
		return -1;
	for (int i = 0; i < VIGIL_ENDINGS_MAX; i++)
		if (r->endings[i].pidfd >= 0 && r->endings[i].kill && strcmp(r->endings[i].id, id) == 0)
			return i;
	return -1;
}

/* Reaps a child of ours through its pidfd if it has exited (ECHILD for one
 * that is not ours: harmless). */
static void reap_pidfd(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG);
}

static void ending_free(struct vigil_action *a, struct vigil_ending *e)
{
	if (e->child)
		reap_pidfd(e->pidfd);
	/* Explicitly: the scanner may hold a dup of this pidfd (the same open
	 * file), and an epoll entry lives as long as any fd of its file does;
	 * a stale one would report the exit for ever. */
	if (e->watched)
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, e->pidfd, NULL);
	e->watched = false;
	close(e->pidfd);
	e->pidfd = -1;
	a->rs.nendings--;
	if (a->pidfds_held >= 1)
		a->pidfds_held--;
}

static bool ending_add(struct vigil_action *a, int pidfd, int32_t pid, bool kill, bool child, int signal,
		       uint64_t due_ms, const char *id)
{
	struct vigil_restart *r = &a->rs;
	for (int i = 0; i < VIGIL_ENDINGS_MAX; i++) {
		struct vigil_ending *e = &r->endings[i];
		if (e->pidfd >= 0)
			continue;
		e->pidfd = pidfd;
		e->pid = pid;
		e->kill = kill;
		e->child = child;
		e->signal = signal;
		e->due_ms = due_ms;
		snprintf(e->id, sizeof e->id, "%s", id);
		/* Its exit wakes the action thread; should epoll refuse (ENOMEM,
		 * ENOSPC at max_user_watches), it is polled instead. */
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VIGIL_ACTION_TOK_ENDING};
		e->watched = a->epfd >= 0 && epoll_ctl(a->epfd, EPOLL_CTL_ADD, pidfd, &ev) == 0;
		r->nendings++;
		return true;
	}
	return false;
}

/* The worker said goodbye: its slot goes, its process may not.  Takes
 * w->sig_pidfd over when the process is still there and either vigild was
 * ending it (the grace's SIGKILL still comes, a replacement waits) or it is
 * our child (reaped when it exits). */
void vigil_ending_take(struct vigil_action *a, struct vigil_worker *w)
{
	if (w->sig_pidfd < 0)
		return;
	bool child = vigil_proc_ppid(w->pid) == (int32_t)getpid();
	if (pidfd_exited(w->sig_pidfd)) {
		if (child)
			reap_pidfd(w->sig_pidfd);
		return;
	}
	bool kill = w->kill_why != VIGIL_KILL_NONE;
	if (!kill && !child)
		return;
	if (ending_add(a, w->sig_pidfd, w->pid, kill, child, w->kill_signal, w->kill_due_ms, w->id)) {
		w->sig_pidfd = -1; /* the entry's now */
		if (kill)
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO,
				  "%s (pid %d) detached but has not exited: waiting for it (SIGKILL at the end of the grace)",
				  w->id, w->pid);
		return;
	}
	if (!kill)
		return; /* full: this child is reaped when vigild exits */
	/* Full: no grace for this one, rather than one nobody watches. */
	pidfd_send_signal(w->sig_pidfd, SIGKILL, NULL, 0);
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
		  "%s (pid %d) detached but has not exited, and %u others are being waited for: sent SIGKILL now",
		  w->id, w->pid, (unsigned)VIGIL_ENDINGS_MAX);
}

bool vigil_restart_resume_ending(struct vigil_action *a, const char *id, int32_t pid, uint64_t start_ticks)
{
	if (pid <= 0 || start_ticks == 0 || vigil_ending_find(&a->rs, id) >= 0)
		return false;
	int fd = (int)pidfd_open(pid, 0);
	if (fd < 0)
		return false; /* gone (or not ours to see): nothing to wait for */
	/* The spec is a file: trust it only as far as /proc confirms it.  The
	 * pidfd is open first, so the pid cannot be recycled under the reads;
	 * the start time says it is the process the spec was written for, the
	 * owner and environment that it is our worker of that id. */
	char path[64], e_id[VIGIL_ID_MAX + 16];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	snprintf(e_id, sizeof e_id, "WORKER_ID=%s", id);
	bool same = stat(path, &st) == 0 && st.st_uid == geteuid() && vigil_proc_start_ticks(pid) == start_ticks &&
		    vigil_proc_environ_has(pid, e_id) && !pidfd_exited(fd);
	uint64_t due = mono_ms() + (uint64_t)llround(policy(a)->kill_grace_seconds * 1000.0);
	if (!same || !ending_add(a, fd, pid, true, false, SIGTERM, due, id)) {
		close(fd);
		return false;
	}
	a->pidfds_held++;
	/* It was sent SIGTERM by the vigild before us; again, and SIGCONT, in
	 * case that one died before it could. */
	pidfd_send_signal(fd, SIGTERM, NULL, 0);
	pidfd_send_signal(fd, SIGCONT, NULL, 0);
	vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
		  "%s (pid %d) was being ended for a restart when the previous vigild stopped, and has not exited: "
		  "SIGTERM again, SIGKILL in %.3f s; its replacement waits",
		  id, (int)pid, policy(a)->kill_grace_seconds);
	return true;
}

void vigil_endings_poll(struct vigil_action *a, uint64_t now, uint64_t *next)
{
	struct vigil_restart *r = &a->rs;
	for (int i = 0; i < VIGIL_ENDINGS_MAX && r->nendings > 0; i++) {
		struct vigil_ending *e = &r->endings[i];
		if (e->pidfd < 0)
			continue;
		if (pidfd_exited(e->pidfd)) {
			if (e->kill)
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_INFO, "%s (pid %d) has exited after detaching",
					  e->id, e->pid);
			ending_free(a, e);
			continue;
		}
		if (e->kill && e->signal != SIGKILL && now >= e->due_ms) {
			if (pidfd_send_signal(e->pidfd, SIGKILL, NULL, 0) == 0)
				vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_WARN,
					  "sent SIGKILL to %s (pid %d) after the grace (it had detached, not exited)",
					  e->id, e->pid);
			e->signal = SIGKILL;
			e->due_ms = now;
		} else if (e->kill && e->signal == SIGKILL && now >= e->due_ms + ENDING_GIVE_UP_MS) {
			vigil_log(VIGIL_LOG_RESTART, VIGIL_LOG_ERROR,
				  "%s (pid %d) is still there %u ms after SIGKILL (uninterruptible sleep?): "
				  "no longer waiting for it",
				  e->id, e->pid, ENDING_GIVE_UP_MS);
			ending_free(a, e);
			continue;
		}
		/* Watched: its exit wakes us; what is left is the clock (the
		 * SIGKILL at the end of the grace, the give-up after it).  Not
		 * watched: a replacement waits on a kill entry, so look often; a
		 * child that detached and runs on only needs reaping some time. */
		uint64_t at;
		if (!e->watched)
			at = now + (e->kill ? ENDING_POLL_MS : ENDING_REAP_POLL_MS);
		else if (e->kill)
			at = e->signal == SIGKILL ? e->due_ms + ENDING_GIVE_UP_MS : e->due_ms;
		else
			continue; /* nothing to do until it exits */
		if (at <= now)
			at = now + 1;
		if (at < *next)
			*next = at;
	}
}

