/*
 * scanner.c - the heartbeat scanner: what vigild does every tick.
 *
 * One thread, one epoll set: the timerfd (the tick), an eventfd (stop),
 * and one pidfd per verified worker (exits, reported at once rather than
 * at the next tick).  A tick is a sequential pass over the hot lines; per
 * slot it compares the owner word and the beat word with what it saw last,
 * and derives everything else from its own clock:
 *
 *   last_seen  = the scanner's clock when it first saw the beat word change
 *   missed     = floor((now - last_seen) / interval)
 *   health     = clamp(reported - decay * missed, 0, 100)
 *
 * The common case costs a couple of loads and compares: per slot the pass
 * first compares the owner and beat words and the virtual clock with a
 * dense 24-byte record (struct vigil_fast: the words last seen and the next
 * instant at which anything can fall due).  Unchanged and nothing due: the
 * slot is counted and skipped; a beat as expected is credited right there
 * (beat_as_expected); everything else (flags, claims, deadlines, commands,
 * exits, a new policy) takes the full path (scan_slot), which rewrites the
 * record.  Free slots above the highest slot ever used (or the header's
 * claim hint, where self-registration looks first) are visited
 * VIGIL_SCAN_SWEEP_CHUNK per tick in rotation.
 *
 * Each verdict becomes true at an instant (last_seen + threshold) and is
 * reported at the first tick at or after it: never before, and at most one
 * tick late (plus scheduling noise), which is why the tick is at most a
 * quarter of the heartbeat interval.
 *
 * Host stalls.  "now" is a virtual clock that advances by the real elapsed
 * time, except that a tick arriving later than 4 ticks after the previous
 * one (vigild was starved, stopped or suspended) advances it by one tick
 * only; the rest is credited to every worker, because the supervisor could
 * not observe during it.
 *
 * Separately, workers starved with the host (or stopped together) while
 * vigild still runs: their last beats are spread over up to one beat
 * period, so their zombie instants fall into different ticks, and a rule
 * that counted only the workers due in one tick would fire by luck.  So a
 * tick counts the workers that are silent (missed >= 1) and due to become
 * zombies within one heartbeat interval from now (already due included):
 * a fleet that stopped together is all in that window when its first
 * member falls due, a healthy fleet is not.  When a tick has a zombie
 * candidate and at least max(host_stall_min_workers, host_stall_share *
 * monitored) such silent workers, it reports host_stall_suspected (once per
 * episode) and holds every zombie verdict for one heartbeat interval from
 * then; workers that were only starved beat again in that time, those
 * still silent at its end are declared.  The episode ends when the silent
 * crowd drops below the bound.  Trade-offs: a genuine mass hang is declared
 * one interval late, and so is any worker falling due during the hold.
 *
 * Per-slot state machine (mode x what the segment shows):
 *
 *   mode \ slot    FREE       CLAIMED      ACTIVE          DETACHED     ZOMBIE
 *   IDLE           -          age claim;   track:          track, then  adopt as
 *                             free stale   REGISTERED      DETACHED     zombie
 *   LIVE           VANISHED   VANISHED     beats, verdicts DETACHED,    (ours) keep
 *                                                          free         as zombie
 *   ZOMBIE         VANISHED   VANISHED     ignore beats    DETACHED     ignore beats
 *   IGNORED        forget     forget       -               free         -
 *   any, pidfd readable: EXITED, free the slot.
 *   any, generation changed under us: VANISHED (the segment was written by
 *   someone who should not have), then treat the slot as new.
 */
#define _GNU_SOURCE
#include "scanner.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "invariant.h"
#include "log.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define TOKEN_TIMER UINT64_MAX
#define TOKEN_STOP (UINT64_MAX - 1)
#define TOKEN_CMD (UINT64_MAX - 2)
#define VIGIL_SCANNER_NICE (-10)
#define STALL_TICKS 4u /* a tick later than this many periods is a host stall */

_Static_assert((VIGIL_EV_RING_SIZE & (VIGIL_EV_RING_SIZE - 1)) == 0, "ck_ring needs a power of two");
_Static_assert((VIGIL_CMD_RING_SIZE & (VIGIL_CMD_RING_SIZE - 1)) == 0, "ck_ring needs a power of two");
_Static_assert(sizeof(struct vigil_event) % 8 == 0, "events copy as whole words");
_Static_assert(sizeof(struct vigil_watch) <= 96, "scanner memory per slot stays small");
_Static_assert(sizeof(struct vigil_fast) == 24, "the dense record is three words");

/* ---- health arithmetic ------------------------------------------------- */

uint32_t vigil_health_missed(uint64_t silence_ns, uint64_t interval_ns)
{
	if (interval_ns == 0)
		return 0;
	uint64_t m = silence_ns / interval_ns;
	return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

uint32_t vigil_health_score(uint32_t reported, double decay, uint32_t missed)
{
	if (reported > 100)
		reported = 100;
	double v = (double)reported - decay * (double)missed;
	if (!(v > 0.0))
		return 0;
	if (v >= 100.0)
		return 100;
	return (uint32_t)floor(v);
}

uint64_t vigil_health_zombie_due_ns(const struct vigil_heartbeat_policy *p, uint32_t reported)
{
	double min = p->min_health_score;
	if ((double)vigil_health_score(reported, p->health_score_decay_rate, 0) < min)
		return 0;
	uint64_t due = p->zombie_ns;
	if (p->health_score_decay_rate <= 0.0)
		return due;
	/* Smallest m with floor(r - d*m) < min, i.e. r - d*m < ceil(min). */
	double q = ((double)(reported > 100 ? 100 : reported) - ceil(min)) / p->health_score_decay_rate;
	if (q > 1e9)
		return due;
	uint64_t m = (uint64_t)floor(q) + 1;
	/* Floating-point guard: settle m exactly against the score function. */
	while (m > 1 && (double)vigil_health_score(reported, p->health_score_decay_rate, (uint32_t)(m - 1)) < min)
		m--;
	while ((double)vigil_health_score(reported, p->health_score_decay_rate, (uint32_t)m) >= min && m < 1000000000ull)
		m++;
	if (m <= due / p->interval_ns && m * p->interval_ns < due)
		due = m * p->interval_ns;
	return due;
}

/* ---- rings --------------------------------------------------------------- */

static bool emit(struct vigil_scanner *s, struct vigil_event *ev, bool *woke)
{
	if (!ck_ring_enqueue_spsc_vigil_event(&s->ev_ring, s->ev_buf, ev)) {
		atomic_fetch_add_explicit(&s->metrics.ring_full_deferrals, 1, memory_order_relaxed);
		return false;
	}
	*woke = true;
	return true;
}

bool vigil_scanner_next_event(struct vigil_scanner *s, struct vigil_event *ev)
{
	return ck_ring_dequeue_spsc_vigil_event(&s->ev_ring, s->ev_buf, ev);
}

void vigil_scanner_wake(struct vigil_scanner *s)
{
	if (s->cmdfd >= 0) {
		uint64_t one = 1;
		(void)!write(s->cmdfd, &one, sizeof one);
	}
}

bool vigil_scanner_command(struct vigil_scanner *s, const struct vigil_command *cmd)
{
	struct vigil_command c = *cmd;
	if (!ck_ring_enqueue_spsc_vigil_command(&s->cmd_ring, s->cmd_buf, &c))
		return false;
	/* Wake the scanner so the command acts now, not at the next tick (a
	 * pidfd to watch, a slot to look at).  One eventfd write per command:
	 * commands come per registration or spawn, never per beat. */
	vigil_scanner_wake(s);
	return true;
}

/* ---- failure ----------------------------------------------------------------- */

/* The scanner cannot go on (an epoll_wait or timerfd error other than
 * EINTR/EAGAIN: with our own descriptors that is a kernel or memory
 * problem, not a condition to wait out).  A vigild without a scanner would
 * look alive and see nothing, so: say why, loudly (the heartbeat log at
 * ERROR and stderr, i.e. the journal), record it for main (which then exits
 * 1, so that systemd's Restart=on-failure or the operator starts a new
 * vigild that adopts the workers), and ask for vigild's orderly stop with
 * a SIGTERM to ourselves (the action thread reads it from its signalfd:
 * final snapshot, workers keep running).  The caller then waits
 * VIGIL_SCANNER_FAIL_GRACE_MS at most for that stop (scanner_fail_wait). */
static void scanner_fail(struct vigil_scanner *s, const char *what, int err)
{
	int none = 0;
	/* Relaxed: a flag for main, read after the join (which orders it). */
	if (!atomic_compare_exchange_strong_explicit(&s->failed, &none, err != 0 ? err : EIO, memory_order_relaxed,
						     memory_order_relaxed))
		return; /* already failing */
	char line[512];
	int n = snprintf(line, sizeof line,
			 "vigild: scanner failed: %s: %s; vigild stops with exit status 1 so that it is restarted "
			 "(workers keep running)\n",
			 what, strerror(err));
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR,
		  "scanner failed: %s: %s; no worker is being watched: vigild stops with exit status 1 so that it is "
		  "restarted (workers keep running)",
		  what, strerror(err));
	kill(getpid(), SIGTERM);
}

/* After scanner_fail: wait for vigil_scanner_stop (the orderly stop), at
 * most VIGIL_SCANNER_FAIL_GRACE_MS; past that (the action thread is stuck)
 * end the process here, with status 1, as a kill -9 would (vigild's state
 * on disk and in the segment is built to survive that). */
static void scanner_fail_wait(struct vigil_scanner *s)
{
	struct pollfd pf = {.fd = s->stopfd, .events = POLLIN};
	int64_t until = (int64_t)(vigil_mono_ns() / VIGIL_NS_PER_MS) + VIGIL_SCANNER_FAIL_GRACE_MS;
	/* Bounded: each round either returns or sleeps until the deadline. */
	for (int i = 0; i < 1000; i++) {
		int64_t left = until - (int64_t)(vigil_mono_ns() / VIGIL_NS_PER_MS);
		if (left <= 0)
			break;
		int r = poll(&pf, 1, (int)left);
		if (r > 0)
			return; /* vigil_scanner_stop: main is stopping vigild */
		if (r < 0 && errno != EINTR)
			break;
	}
	static const char msg[] = "vigild: the orderly stop after the scanner's failure did not come within 5 s: "
				  "exiting now with status 1\n";
	_Static_assert(VIGIL_SCANNER_FAIL_GRACE_MS == 5000, "the message says 5 s");
	(void)!write(STDERR_FILENO, msg, sizeof msg - 1);
	vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR,
		  "the orderly stop after the scanner's failure did not come within 5 s: exiting now with status 1");
	_exit(1);
}

/* ---- per-slot helpers ------------------------------------------------------ */

static void watch_reset(struct vigil_watch *w)
{
	if (w->pidfd >= 0)
		close(w->pidfd); /* also removes it from the epoll set */
	memset(w, 0, sizeof *w);
	w->pidfd = -1;
}

/* Something outside a tick's pass changed the slot's watch (an exit, a
 * command, a look, a verdict): its next look takes the full path. */
static inline void fast_forget(struct vigil_scanner *s, uint32_t slot)
{
	s->fast[slot].next_v = 0;
}

static void view_set(struct vigil_scanner *s, uint32_t slot, struct vigil_watch *w, uint32_t verdict,
		     uint32_t health, uint32_t missed)
{
	struct vigil_slot_view *v = &s->seg->view[slot];
	/* Relaxed: readers (vigilctl) want a recent value, not a consistent
	 * snapshot across fields; each field is individually atomic. */
	if (w->view_verdict != verdict) {
		atomic_store_explicit(&v->verdict, (uint8_t)verdict, memory_order_relaxed);
		w->view_verdict = (uint8_t)verdict;
	}
	if (w->view_health != health) {
		atomic_store_explicit(&v->health_score, (uint16_t)health, memory_order_relaxed);
		w->view_health = (uint16_t)health;
	}
	if (w->view_missed != missed) {
		atomic_store_explicit(&v->missed, missed, memory_order_relaxed);
		w->view_missed = missed;
	}
}

static void event_base(struct vigil_event *ev, uint32_t kind, uint32_t slot, const struct vigil_watch *w,
		       uint64_t real_ms)
{
	memset(ev, 0, sizeof *ev);
	ev->kind = kind;
	ev->slot = slot;
	ev->gen = vigil_owner_gen(w->owner);
	ev->unix_ms = real_ms;
	ev->last_seen_unix_ms = w->last_seen_unix_ms;
	ev->beats = w->beats;
	ev->reported_health = w->reported_health;
	ev->progress = w->progress;
	ev->exit_code = -1;
	ev->exit_signal = -1;
}

/* The instant on the wall clock at which virtual time due_v was reached. */
static uint64_t due_to_unix_ms(const struct vigil_scanner *s, uint64_t due_v, uint64_t real_ms)
{
	uint64_t late_ms = (s->vclock_ns - due_v) / VIGIL_NS_PER_MS;
	return late_ms < real_ms ? real_ms - late_ms : real_ms;
}

/* real_us: when the exit was learnt (the pidfd's epoll wake-up, or the
 * tick that retries a deferred one), stamped into the event to the
 * microsecond so that SIGKILL -> worker_exited can be measured below a
 * millisecond (bench/README.md). */
static bool report_exit(struct vigil_scanner *s, uint32_t slot, uint64_t real_us, bool *woke)
{
	const uint64_t real_ms = real_us / 1000u;
	struct vigil_watch *w = &s->watch[slot];
	struct vigil_event ev;
	/* A goodbye written before the exit is a detach, whichever of the
	 * pidfd and the slot's state the scanner sees first: a worker that
	 * calls vigil_detach and exits at once usually wakes the pidfd before
	 * the next tick reads its slot.  The acquire pairs with the release
	 * of vigil_detach's CAS, which happened before the process ended. */
	uint64_t o = atomic_load_explicit(&s->seg->hot[slot].owner, memory_order_acquire);
	bool goodbye = vigil_owner_gen(o) == vigil_owner_gen(w->owner) && vigil_owner_state(o) == VIGIL_SLOT_DETACHED;
	event_base(&ev, goodbye ? VIGIL_EV_DETACHED : VIGIL_EV_EXITED, slot, w, real_ms);
	ev.unix_us = real_us;
	ev.health_score = w->view_health;
	ev.missed = w->view_missed;
	if (w->pidfd >= 0) {
		/* Only our own children can be waited for; for other workers
		 * the exit status is unknowable (ECHILD) and stays -1. */
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0) {
			if (si.si_code == CLD_EXITED) {
				ev.exit_code = si.si_status;
				ev.exit_signal = 0;
			} else {
				ev.exit_signal = si.si_status;
			}
		}
	}
	if (!emit(s, &ev, woke))
		return false;
	atomic_fetch_add_explicit(&s->metrics.exits_detected, 1, memory_order_relaxed);
	o = atomic_load_explicit(&s->seg->hot[slot].owner, memory_order_acquire);
	if (vigil_owner_gen(o) == vigil_owner_gen(w->owner) && vigil_owner_state(o) != VIGIL_SLOT_FREE)
		vigil_segment_slot_free(s->seg, slot, o);
	view_set(s, slot, w, goodbye ? VIGIL_VERDICT_DETACHED : VIGIL_VERDICT_EXITED, w->view_health, w->view_missed);
	watch_reset(w);
	fast_forget(s, slot);
	return true;
}

static void look_add(struct vigil_scanner *s, uint32_t slot, uint64_t gen)
{
	if (slot >= s->seg->slots || s->nlooks >= VIGIL_LOOKS_MAX)
		return; /* the tick will see it */
	for (uint32_t i = 0; i < s->nlooks; i++)
		if (s->looks[i].slot == slot) {
			s->looks[i].gen = gen;
			return;
		}
	s->looks[s->nlooks++] = (struct vigil_look){.slot = slot, .gen = gen,
						    .until_ns = vigil_mono_ns() + VIGIL_LOOK_NS_MAX};
}

static void drain_commands(struct vigil_scanner *s)
{
	struct vigil_command c;
	/* Bounded by the ring's capacity: the producer cannot outrun us by more. */
	for (uint32_t i = 0; i < VIGIL_CMD_RING_SIZE; i++) {
		if (!ck_ring_dequeue_spsc_vigil_command(&s->cmd_ring, s->cmd_buf, &c))
			break;
		struct vigil_watch *w = c.slot < s->seg->slots ? &s->watch[c.slot] : NULL;
		if (w != NULL) {
			fast_forget(s, c.slot);
			if (c.slot >= s->high_water)
				s->high_water = c.slot + 1; /* vigild spawned into it: visit it every tick */
		}
		bool match = w != NULL && w->mode != VIGIL_WATCH_IDLE && vigil_owner_gen(w->owner) == c.gen;
		if (c.kind == VIGIL_CMD_WATCH) {
			if (!match || w->pidfd >= 0) {
				if (c.fd >= 0)
					close(c.fd);
				continue;
			}
			if (c.fd < 0) {
				w->flags |= VIGIL_WF_EXIT; /* gone before we could watch it */
				continue;
			}
			struct epoll_event e = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = c.slot};
			if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c.fd, &e) < 0) {
				close(c.fd);
				continue;
			}
			w->pidfd = c.fd;
		} else if (c.kind == VIGIL_CMD_FORGET) {
			if (c.fd >= 0)
				close(c.fd);
			if (!match)
				continue;
			if (w->pidfd >= 0) {
				close(w->pidfd);
				w->pidfd = -1;
			}
			w->mode = VIGIL_WATCH_IGNORED;
			view_set(s, c.slot, w, VIGIL_VERDICT_REJECTED, 0, 0);
		} else if (c.kind == VIGIL_CMD_LOOK) {
			if (c.fd >= 0)
				close(c.fd);
			look_add(s, c.slot, c.gen);
		} else if (c.fd >= 0) {
			close(c.fd);
		}
	}
}

static void start_tracking(struct vigil_scanner *s, uint32_t slot, uint64_t o, uint64_t real_ms, bool *woke)
{
	struct vigil_watch *w = &s->watch[slot];
	const struct vigil_slot_cold *c = &s->seg->cold[slot];
	uint32_t st = vigil_owner_state(o);
	uint64_t b = atomic_load_explicit(&s->seg->hot[slot].beat, memory_order_acquire);
	bool gen_ok = vigil_beat_gen16(b) == (vigil_owner_gen(o) & 0xffffu);
	struct vigil_watch nw;
	memset(&nw, 0, sizeof nw);
	nw.pidfd = -1;
	nw.owner = o;
	nw.beat = b;
	nw.last_seen_v = s->vclock_ns;
	nw.last_seen_unix_ms = real_ms;
	nw.credit_at_seen_ns = s->credit_ns_total;
	nw.reported_health = (uint8_t)(gen_ok ? (vigil_beat_health(b) > 100 ? 100 : vigil_beat_health(b)) : 100);
	nw.progress = (uint8_t)(gen_ok ? (vigil_beat_progress(b) > 100 ? 100 : vigil_beat_progress(b)) : 0);
	nw.mode = st == VIGIL_SLOT_ZOMBIE ? VIGIL_WATCH_ZOMBIE : VIGIL_WATCH_LIVE;
	nw.progress_v = s->vclock_ns;

	struct vigil_event ev;
	event_base(&ev, (s->first_pass || st == VIGIL_SLOT_ZOMBIE) ? VIGIL_EV_ADOPTED : VIGIL_EV_REGISTERED, slot,
		   &nw, real_ms);
	ev.zombie = st == VIGIL_SLOT_ZOMBIE;
	ev.health_score = nw.reported_health;
	/* The identity is copied raw; the action thread validates it.  A
	 * worker rewriting it right now can only produce garbage that fails
	 * validation: copying fixed-size arrays never reads out of bounds. */
	memcpy(ev.worker_id, c->worker_id, sizeof ev.worker_id);
	memcpy(ev.worker_type, c->worker_type, sizeof ev.worker_type);
	memcpy(ev.task_id, c->task_id, sizeof ev.task_id);
	ev.pid = c->pid;
	ev.registrar_pid = c->registrar_pid;
	ev.pid_start_ticks = c->pid_start_ticks;
	ev.cold_flags = c->flags;
	ev.spawn_tag = c->spawn_tag;
	if (!emit(s, &ev, woke))
		return; /* retried next tick: nothing changed */
	if (gen_ok && vigil_beat_count(b) > 0 && st == VIGIL_SLOT_ACTIVE && !s->first_pass) {
		/* It beat before we first looked (a spawned worker attaches and
		 * beats while vigild publishes its slot): that beat counts, so a
		 * restart's success is not held back to the next beat.  Not for
		 * workers adopted at start-up: their restart state is rebuilt
		 * after the first pass, so their next beat is the one to count. */
		struct vigil_event fb;
		event_base(&fb, VIGIL_EV_FIRST_BEAT, slot, &nw, real_ms);
		fb.health_score = nw.reported_health;
		if (emit(s, &fb, woke))
			nw.beats = 1;
		else
			nw.beat = ~b; /* ring full: the next look sees this beat as new and reports it */
	}
	*w = nw;
	struct vigil_slot_view *v = &s->seg->view[slot];
	atomic_store_explicit(&v->generation_low, (uint32_t)vigil_owner_gen(o), memory_order_relaxed);
	atomic_store_explicit(&v->last_seen_unix_ms, real_ms, memory_order_relaxed);
	atomic_store_explicit(&v->beats, 0, memory_order_relaxed);
	atomic_store_explicit(&v->progress, w->progress, memory_order_relaxed);
	w->view_verdict = 0xff; /* force the first view_set */
	w->view_health = 0xffff;
	w->view_missed = UINT32_MAX;
	view_set(s, slot, w, w->mode == VIGIL_WATCH_ZOMBIE ? VIGIL_VERDICT_ZOMBIE : VIGIL_VERDICT_OK,
		 w->reported_health, 0);
}

struct tick_ctx {
	const struct vigil_heartbeat_policy *p;
	uint64_t real_ms;
	uint64_t real_us; /* the same instant as real_ms */
	uint32_t live;
	uint32_t ncand;   /* zombie candidates (s->candidates) */
	uint32_t nsilent; /* silent, and zombies within one interval (candidates included) */
	uint64_t beats;
	bool woke;
};

static void scan_slot(struct vigil_scanner *s, uint32_t slot, struct tick_ctx *t)
{
	struct vigil_slot_hot *hot = &s->seg->hot[slot];
	struct vigil_watch *w = &s->watch[slot];
	const struct vigil_heartbeat_policy *p = t->p;
	const uint64_t v = s->vclock_ns;
	uint64_t o = atomic_load_explicit(&hot->owner, memory_order_acquire);
	uint32_t st = vigil_owner_state(o);

	if (w->flags & VIGIL_WF_EXIT) {
		if (report_exit(s, slot, t->real_us, &t->woke))
			return;
	}
	if (w->mode != VIGIL_WATCH_IDLE &&
	    (vigil_owner_gen(o) != vigil_owner_gen(w->owner) || st == VIGIL_SLOT_FREE || st == VIGIL_SLOT_CLAIMED)) {
		if (w->mode != VIGIL_WATCH_IGNORED) {
			struct vigil_event ev;
			event_base(&ev, VIGIL_EV_VANISHED, slot, w, t->real_ms);
			if (!emit(s, &ev, &t->woke))
				return;
		}
		watch_reset(w);
	}

	switch (st) {
	case VIGIL_SLOT_FREE:
		w->owner = o;
		return;
	case VIGIL_SLOT_CLAIMED:
		if (s->first_pass && (s->seg->cold[slot].flags & VIGIL_COLD_SPAWNED) && s->seg->cold[slot].pid > 1) {
			/* A previous vigild was killed between a spawn's exec and
			 * its publish: the worker may well be running.  Publish it,
			 * so it is adopted (and found gone if it is) rather than
			 * freed as a stale claim and started a second time. */
			if (vigil_segment_slot_set(s->seg, slot, o, VIGIL_SLOT_ACTIVE)) {
				o = vigil_owner_make(VIGIL_SLOT_ACTIVE, vigil_owner_gen(o));
				start_tracking(s, slot, o, t->real_ms, &t->woke);
				return;
			}
		}
		/* A claim that is never published (the worker died between
		 * the CAS and the publish) would leak the slot: free it after
		 * VIGIL_CLAIM_STALE_NS of our own clock.  The worker's own
		 * claimed_mono_ns is not trusted. */
		if (w->owner != o || w->first_seen_v == 0) {
			w->owner = o;
			w->first_seen_v = v;
		} else if (v - w->first_seen_v >= VIGIL_CLAIM_STALE_NS) {
			struct vigil_event ev;
			event_base(&ev, VIGIL_EV_CLAIM_STALE, slot, w, t->real_ms);
			if (emit(s, &ev, &t->woke)) {
				vigil_segment_slot_free(s->seg, slot, o);
				w->first_seen_v = 0;
			}
		}
		return;
	case VIGIL_SLOT_ACTIVE:
	case VIGIL_SLOT_DETACHED:
	case VIGIL_SLOT_ZOMBIE:
		break;
	default:
		return; /* garbage state byte: not ours to interpret */
	}

	if (w->mode == VIGIL_WATCH_IDLE) {
		start_tracking(s, slot, o, t->real_ms, &t->woke);
		return;
	}
	if (w->mode == VIGIL_WATCH_IGNORED) {
		if (st == VIGIL_SLOT_DETACHED && vigil_segment_slot_free(s->seg, slot, o))
			watch_reset(w);
		return;
	}
	if (st == VIGIL_SLOT_DETACHED) {
		struct vigil_event ev;
		event_base(&ev, VIGIL_EV_DETACHED, slot, w, t->real_ms);
		ev.health_score = w->view_health;
		if (!emit(s, &ev, &t->woke))
			return;
		view_set(s, slot, w, VIGIL_VERDICT_DETACHED, w->view_health, w->view_missed);
		vigil_segment_slot_free(s->seg, slot, o);
		watch_reset(w);
		return;
	}
	if (w->mode == VIGIL_WATCH_ZOMBIE)
		return; /* beats of a zombie are not credited until cleanup */

	/* LIVE.  Did the beat word change? */
	uint64_t b = atomic_load_explicit(&hot->beat, memory_order_acquire);
	if (b != w->beat) {
		if (vigil_beat_gen16(b) == (vigil_owner_gen(w->owner) & 0xffffu)) {
			uint32_t h = vigil_beat_health(b), pr = vigil_beat_progress(b);
			if (w->flags & VIGIL_WF_MISSED) {
				struct vigil_event ev;
				event_base(&ev, VIGIL_EV_RECOVERED, slot, w, t->real_ms);
				ev.reported_health = h > 100 ? 100 : h;
				ev.health_score = ev.reported_health;
				ev.progress = pr > 100 ? 100 : pr;
				ev.missed = w->view_missed;
				ev.last_seen_unix_ms = t->real_ms;
				ev.due_unix_ms = t->real_ms;
				if (!emit(s, &ev, &t->woke))
					return; /* the beat is seen again next tick */
				w->flags &= (uint16_t)~(VIGIL_WF_MISSED | VIGIL_WF_TIMEOUT);
			}
			if (w->beats == 0) {
				/* A restart succeeds on the new process's first beat. */
				struct vigil_event ev;
				event_base(&ev, VIGIL_EV_FIRST_BEAT, slot, w, t->real_ms);
				ev.reported_health = h > 100 ? 100 : h;
				ev.health_score = ev.reported_health;
				ev.progress = pr > 100 ? 100 : pr;
				ev.last_seen_unix_ms = t->real_ms;
				if (!emit(s, &ev, &t->woke))
					return; /* seen again next tick (recovered is not repeated) */
			}
			w->last_seen_v = v;
			w->last_seen_unix_ms = t->real_ms;
			w->credit_at_seen_ns = s->credit_ns_total;
			w->beats++;
			t->beats++;
			w->reported_health = (uint8_t)(h > 100 ? 100 : h);
			if ((pr > 100 ? 100 : pr) != w->progress || w->progress_v == 0) {
				w->progress_v = v; /* progress moved: a new stall episode may start */
				w->flags &= (uint16_t)~VIGIL_WF_STALL;
			}
			w->progress = (uint8_t)(pr > 100 ? 100 : pr);
			w->flags &= (uint16_t)~(VIGIL_WF_MISSED | VIGIL_WF_TIMEOUT);
			struct vigil_slot_view *vw = &s->seg->view[slot];
			atomic_store_explicit(&vw->last_seen_unix_ms, t->real_ms, memory_order_relaxed);
			atomic_store_explicit(&vw->beats, w->beats, memory_order_relaxed);
			atomic_store_explicit(&vw->progress, w->progress, memory_order_relaxed);
		} else {
			atomic_fetch_add_explicit(&s->metrics.stale_beats_ignored, 1, memory_order_relaxed);
		}
		w->beat = b;
	}

	uint64_t silence = v - w->last_seen_v;
	if (silence < p->interval_ns && w->flags == 0) {
		/* The common case, kept free of divisions and floating point: a
		 * worker heard from within the interval has missed nothing and
		 * its health is what it reports. */
		uint32_t h = w->reported_health;
		if (p->progress_stall_ns == 0 || w->progress >= 100 || v - w->progress_v < p->progress_stall_ns) {
			if ((double)h >= p->min_health_score) {
				t->live++;
				if (w->view_verdict != VIGIL_VERDICT_OK || w->view_health != h || w->view_missed != 0)
					view_set(s, slot, w, VIGIL_VERDICT_OK, h, 0);
				return;
			}
		}
	}
	uint32_t missed = vigil_health_missed(silence, p->interval_ns);
	uint32_t health = vigil_health_score(w->reported_health, p->health_score_decay_rate, missed);
	uint64_t credit_ms = (s->credit_ns_total - w->credit_at_seen_ns) / VIGIL_NS_PER_MS;
	uint32_t verdict = VIGIL_VERDICT_OK;

	if (missed >= 1) {
		verdict = VIGIL_VERDICT_MISSED;
		if (!(w->flags & VIGIL_WF_MISSED)) {
			struct vigil_event ev;
			event_base(&ev, VIGIL_EV_MISSED, slot, w, t->real_ms);
			ev.health_score = health;
			ev.missed = missed;
			ev.due_unix_ms = due_to_unix_ms(s, w->last_seen_v + p->interval_ns, t->real_ms);
			ev.stall_credit_ms = credit_ms;
			if (emit(s, &ev, &t->woke)) {
				w->flags |= VIGIL_WF_MISSED;
				atomic_fetch_add_explicit(&s->metrics.heartbeats_missed, 1, memory_order_relaxed);
			}
		}
	}
	if (silence >= p->timeout_ns) {
		verdict = VIGIL_VERDICT_TIMEOUT;
		if (!(w->flags & VIGIL_WF_TIMEOUT) && (w->flags & VIGIL_WF_MISSED)) {
			struct vigil_event ev;
			event_base(&ev, VIGIL_EV_TIMEOUT, slot, w, t->real_ms);
			ev.health_score = health;
			ev.missed = missed;
			ev.due_unix_ms = due_to_unix_ms(s, w->last_seen_v + p->timeout_ns, t->real_ms);
			ev.stall_credit_ms = credit_ms;
			if (emit(s, &ev, &t->woke)) {
				w->flags |= VIGIL_WF_TIMEOUT;
				atomic_fetch_add_explicit(&s->metrics.heartbeat_timeouts, 1, memory_order_relaxed);
			}
		}
	}
	/* Beats keep coming but progress is stuck (100 % is "done", not stuck). */
	if (p->progress_stall_ns > 0 && missed == 0 && w->progress < 100 && w->progress_v != 0 &&
	    !(w->flags & VIGIL_WF_STALL) && v - w->progress_v >= p->progress_stall_ns) {
		struct vigil_event ev;
		event_base(&ev, VIGIL_EV_PROGRESS_STALL, slot, w, t->real_ms);
		ev.health_score = health;
		uint64_t stalled_ms = (v - w->progress_v) / VIGIL_NS_PER_MS;
		ev.count_a = stalled_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)stalled_ms;
		ev.due_unix_ms = due_to_unix_ms(s, w->progress_v + p->progress_stall_ns, t->real_ms);
		if (emit(s, &ev, &t->woke))
			w->flags |= VIGIL_WF_STALL;
	}
	if (silence >= p->zombie_ns || (double)health < p->min_health_score) {
		VIGIL_ASSERT(t->ncand < s->seg->slots); /* one entry per slot per tick */
		s->candidates[t->ncand++] = slot;
		t->nsilent += missed >= 1;
	} else if (missed >= 1 && (silence + p->interval_ns >= p->zombie_ns ||
				   (missed < UINT32_MAX &&
				    (double)vigil_health_score(w->reported_health, p->health_score_decay_rate, missed + 1) <
					    p->min_health_score))) {
		/* Silent, and a zombie one interval from now: the window the
		 * host-stall guard counts (see the top of this file).  Only on
		 * this path, taken by silent workers alone. */
		t->nsilent++;
	}
	t->live++;
	view_set(s, slot, w, verdict, health, missed);
}

/* After the full path: when the slot is in a state in which, with its
 * words unchanged, nothing falls due before a known instant, record that
 * instant (see struct vigil_fast).  o and b are the words the pass read
 * before the full path: if the slot changed since, they differ from the
 * slot and the next tick takes the full path again (never the reverse). */
static void fast_refresh(struct vigil_scanner *s, uint32_t slot, uint64_t o, uint64_t b, const struct tick_ctx *t)
{
	const struct vigil_watch *w = &s->watch[slot];
	struct vigil_fast *f = &s->fast[slot];
	const struct vigil_heartbeat_policy *p = t->p;
	uint32_t st = vigil_owner_state(o);
	uint64_t next = 0;
	if ((w->flags & ~VIGIL_WF_STALL) != 0 || o != w->owner) {
		next = 0; /* a verdict under way, an exit to report, an owner we have not taken in */
	} else if (w->mode == VIGIL_WATCH_IDLE && st == VIGIL_SLOT_FREE) {
		next = UINT64_MAX; /* free: only a claim (the owner word) changes that */
	} else if (w->mode == VIGIL_WATCH_ZOMBIE && st == VIGIL_SLOT_ZOMBIE) {
		next = UINT64_MAX; /* declared: only an exit, a goodbye or cleanup changes that */
	} else if (w->mode == VIGIL_WATCH_LIVE && st == VIGIL_SLOT_ACTIVE && b == w->beat &&
		   (double)w->reported_health >= p->min_health_score && w->view_verdict == VIGIL_VERDICT_OK &&
		   w->view_missed == 0 && w->view_health == w->reported_health) {
		/* The common case of scan_slot holds until an interval is missed
		 * or progress has stalled long enough to report. */
		next = w->last_seen_v + p->interval_ns;
		/* A stall already reported (VIGIL_WF_STALL) is not due again
		 * until progress moves, which a changed beat word shows. */
		if (p->progress_stall_ns > 0 && w->progress < 100 && !(w->flags & VIGIL_WF_STALL)) {
			uint64_t ps = w->progress_v + p->progress_stall_ns;
			if (ps < next)
				next = ps;
		}
	}
	f->owner = o;
	f->beat = b;
	f->next_v = next;
}

/* A LIVE slot in the common case (its fast record current, nothing due)
 * whose beat word changed as a worker's beat changes it: same generation,
 * not its first beat, health still above the minimum.  Credits the beat
 * exactly as scan_slot would (last_seen, beats, progress, the view) and
 * moves the record's deadline; false when anything else is the case, and
 * the full path then looks. */
static bool beat_as_expected(struct vigil_scanner *s, uint32_t slot, uint64_t o, uint64_t b, struct tick_ctx *t)
{
	struct vigil_watch *w = &s->watch[slot];
	const struct vigil_heartbeat_policy *p = t->p;
	if (vigil_owner_state(o) != VIGIL_SLOT_ACTIVE || vigil_beat_gen16(b) != (vigil_owner_gen(o) & 0xffffu) ||
	    w->beats == 0)
		return false;
	uint32_t h = vigil_beat_health(b), pr = vigil_beat_progress(b);
	h = h > 100 ? 100 : h;
	pr = pr > 100 ? 100 : pr;
	if ((double)h < p->min_health_score)
		return false;
	const uint64_t v = s->vclock_ns;
	w->last_seen_v = v;
	w->last_seen_unix_ms = t->real_ms;
	w->credit_at_seen_ns = s->credit_ns_total;
	w->beats++;
	t->beats++;
	w->reported_health = (uint8_t)h;
	if (pr != w->progress) {
		w->progress_v = v; /* progress moved: a new stall episode may start */
		w->flags &= (uint16_t)~VIGIL_WF_STALL;
	}
	w->progress = (uint8_t)pr;
	w->beat = b;
	struct vigil_slot_view *vw = &s->seg->view[slot];
	/* Relaxed, as in scan_slot: vigilctl wants recent values. */
	atomic_store_explicit(&vw->last_seen_unix_ms, t->real_ms, memory_order_relaxed);
	atomic_store_explicit(&vw->beats, w->beats, memory_order_relaxed);
	atomic_store_explicit(&vw->progress, w->progress, memory_order_relaxed);
	if (w->view_health != h)
		view_set(s, slot, w, VIGIL_VERDICT_OK, h, 0);
	uint64_t next = v + p->interval_ns;
	if (p->progress_stall_ns > 0 && pr < 100 && !(w->flags & VIGIL_WF_STALL) &&
	    w->progress_v + p->progress_stall_ns < next)
		next = w->progress_v + p->progress_stall_ns;
	struct vigil_fast *f = &s->fast[slot];
	f->beat = b;
	f->next_v = next;
	t->live++;
	return true;
}

/* The pass over slots [from, to): the dense compare first, the full path
 * only where a word changed or a deadline came (or all_full). */
static void scan_range(struct vigil_scanner *s, uint32_t from, uint32_t to, bool all_full, struct tick_ctx *t)
{
	const uint64_t v = s->vclock_ns;
	struct vigil_fast *const fast = s->fast;
	const struct vigil_slot_hot *const hot = s->seg->hot;
	uint32_t live = 0;
	for (uint32_t i = from; i < to; i++) {
		/* Acquire on the owner word as in scan_slot (a plain load on
		 * x86); relaxed on the beat: in the fast case nothing it
		 * publishes is read. */
		uint64_t o = atomic_load_explicit(&hot[i].owner, memory_order_acquire);
		uint64_t b = atomic_load_explicit(&hot[i].beat, memory_order_relaxed);
		struct vigil_fast *f = &fast[i];
		if (o == f->owner && v < f->next_v && !all_full) {
			if (b == f->beat) {
				live += vigil_owner_state(o) == VIGIL_SLOT_ACTIVE;
				continue;
			}
			if (beat_as_expected(s, i, o, b, t))
				continue;
		}
		scan_slot(s, i, t);
		if (vigil_owner_state(o) != VIGIL_SLOT_FREE && i >= s->high_water)
			s->high_water = i + 1;
		fast_refresh(s, i, o, b, t);
	}
	t->live += live;
}

static void declare_zombie(struct vigil_scanner *s, uint32_t slot, struct tick_ctx *t)
{
	struct vigil_watch *w = &s->watch[slot];
	const struct vigil_heartbeat_policy *p = t->p;
	/* Candidates are LIVE slots found this tick, and nothing between the
	 * pass and here changes a watch; the virtual clock never goes back. */
	VIGIL_ASSERT(slot < s->seg->slots && w->mode == VIGIL_WATCH_LIVE && w->last_seen_v <= s->vclock_ns);
	/* Missed and timeout come first, in that order, in the same tick if
	 * need be: an operator reading the log sees the episode in order. */
	uint64_t silence = s->vclock_ns - w->last_seen_v;
	if ((silence >= p->interval_ns && !(w->flags & VIGIL_WF_MISSED)) ||
	    (silence >= p->timeout_ns && !(w->flags & VIGIL_WF_TIMEOUT)))
		return; /* their events were deferred (ring full): next tick */
	uint32_t missed = vigil_health_missed(silence, p->interval_ns);
	uint32_t health = vigil_health_score(w->reported_health, p->health_score_decay_rate, missed);
	uint64_t due_ns = vigil_health_zombie_due_ns(p, w->reported_health);
	struct vigil_event ev;
	event_base(&ev, VIGIL_EV_ZOMBIE, slot, w, t->real_ms);
	ev.health_score = health;
	ev.missed = missed;
	ev.due_unix_ms = due_to_unix_ms(s, w->last_seen_v + due_ns, t->real_ms);
	ev.stall_credit_ms = (s->credit_ns_total - w->credit_at_seen_ns) / VIGIL_NS_PER_MS;
	if (!emit(s, &ev, &t->woke))
		return;
	vigil_segment_slot_set(s->seg, slot, w->owner, VIGIL_SLOT_ZOMBIE);
	w->owner = vigil_owner_make(VIGIL_SLOT_ZOMBIE, vigil_owner_gen(w->owner));
	w->mode = VIGIL_WATCH_ZOMBIE;
	fast_forget(s, slot);
	atomic_fetch_add_explicit(&s->metrics.zombies_detected, 1, memory_order_relaxed);
	view_set(s, slot, w, VIGIL_VERDICT_ZOMBIE, health, missed);
}

void vigil_scanner_tick(struct vigil_scanner *s, uint64_t now_ns)
{
	uint64_t t0 = vigil_mono_ns();
	struct vigil_heartbeat_policy pol;
	urcu_memb_read_lock();
	/* One whole policy per tick: copy it out of the read-side section.
	 * Acquire pairs with the release exchange in set_policy (C11, so that
	 * TSan sees it too; rcu_dereference would be equivalent on x86). */
	pol = *atomic_load_explicit(&s->policy, memory_order_acquire);
	urcu_memb_read_unlock();
	const uint64_t real_us = vigil_unix_us();
	struct tick_ctx t = {.p = &pol, .real_ms = real_us / 1000u, .real_us = real_us};
	/* Single writer (this thread): a change means this tick could not hand
	 * over everything it saw (ring full), so it does not count as "seen". */
	const uint64_t deferred0 = atomic_load_explicit(&s->metrics.ring_full_deferrals, memory_order_relaxed);

	drain_commands(s);
	if (pol.tick_ns != s->tick_ns && s->timerfd >= 0) {
		struct itimerspec its = {
			.it_interval = {.tv_sec = (time_t)(pol.tick_ns / VIGIL_NS_PER_S),
					.tv_nsec = (long)(pol.tick_ns % VIGIL_NS_PER_S)},
		};
		its.it_value = its.it_interval;
		if (timerfd_settime(s->timerfd, 0, &its, NULL) < 0)
			scanner_fail(s, "timerfd_settime", errno); /* ticks at a wrong rate break every verdict's timing */
		s->tick_ns = pol.tick_ns;
	}

	uint64_t step = now_ns > s->prev_mono_ns ? now_ns - s->prev_mono_ns : 0;
	s->prev_mono_ns = now_ns;
	if (!s->first_pass && step > STALL_TICKS * pol.tick_ns) {
		/* We could not observe for step - tick: credit it to everyone. */
		uint64_t credit = step - pol.tick_ns;
		s->vclock_ns += pol.tick_ns;
		s->credit_ns_total += credit;
		atomic_fetch_add_explicit(&s->metrics.tick_overruns, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->metrics.stall_credit_ms_total, credit / VIGIL_NS_PER_MS,
					  memory_order_relaxed);
		struct vigil_event ev;
		memset(&ev, 0, sizeof ev);
		ev.kind = VIGIL_EV_TICK_LATE;
		ev.unix_ms = t.real_ms;
		ev.count_a = (uint32_t)(credit / VIGIL_NS_PER_MS > UINT32_MAX ? UINT32_MAX : credit / VIGIL_NS_PER_MS);
		emit(s, &ev, &t.woke); /* informational; dropping it when full is fine */
	} else {
		s->vclock_ns += step;
	}

	/* A new policy moves every deadline: one full pass computes them again. */
	bool all_full = pol.interval_ns != s->fast_interval_ns || pol.progress_stall_ns != s->fast_stall_ns ||
			pol.min_health_score != s->fast_min_health;
	s->fast_interval_ns = pol.interval_ns;
	s->fast_stall_ns = pol.progress_stall_ns;
	s->fast_min_health = pol.min_health_score;
	const uint32_t n = s->seg->slots;
	/* Relaxed: a hint (untrusted, clamped), not a publication. */
	uint32_t hint = atomic_load_explicit(&s->seg->hdr->claim_hint, memory_order_relaxed);
	uint32_t limit = s->high_water > hint ? s->high_water : hint;
	if (s->first_pass || limit > n)
		limit = n;
	scan_range(s, 0, limit, all_full, &t);
	if (limit < n) {
		/* Above the high water: a chunk per tick, round the rest. */
		if (s->sweep_pos < limit || s->sweep_pos >= n)
			s->sweep_pos = limit;
		uint32_t end = n - s->sweep_pos > VIGIL_SCAN_SWEEP_CHUNK ? s->sweep_pos + VIGIL_SCAN_SWEEP_CHUNK : n;
		scan_range(s, s->sweep_pos, end, all_full, &t);
		s->sweep_pos = end;
	}

	/* Mass silence (see the top of this file): say so before declaring
	 * any of them, and hold every verdict for one interval. */
	VIGIL_ASSERT(t.ncand <= t.live && t.nsilent <= t.live);
	uint32_t need = pol.host_stall_min_workers;
	uint32_t share = (uint32_t)ceil(pol.host_stall_share * (double)t.live);
	if (share > need)
		need = share;
	bool crowd = t.nsilent >= need && t.nsilent > 0;
	bool hold = s->vclock_ns < s->stall_hold_until_v;
	if (crowd && t.ncand > 0 && !s->stall_episode) {
		struct vigil_event ev;
		memset(&ev, 0, sizeof ev);
		ev.kind = VIGIL_EV_HOST_STALL;
		ev.unix_ms = t.real_ms;
		ev.count_a = t.nsilent;
		ev.count_b = t.live;
		if (emit(s, &ev, &t.woke)) {
			s->stall_episode = true;
			s->stall_hold_until_v = s->vclock_ns + pol.interval_ns;
			atomic_fetch_add_explicit(&s->metrics.host_stalls, 1, memory_order_relaxed);
		}
		hold = true; /* said now, or (ring full) to be said first next tick */
	}
	if (!crowd)
		s->stall_episode = false;
	if (!hold)
		for (uint32_t i = 0; i < t.ncand; i++)
			declare_zombie(s, s->candidates[i], &t);

	s->first_pass = false;
	uint64_t t1 = vigil_mono_ns();
	uint64_t scan = t1 - t0;
	atomic_store_explicit(&s->metrics.scan_ns_last, scan, memory_order_relaxed);
	if (scan > atomic_load_explicit(&s->metrics.scan_ns_max, memory_order_relaxed))
		atomic_store_explicit(&s->metrics.scan_ns_max, scan, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->metrics.heartbeats_received, t.beats, memory_order_relaxed);
	atomic_store_explicit(&s->metrics.workers_monitored, t.live, memory_order_relaxed);
	atomic_store_explicit(&s->metrics.last_tick_mono_ns, now_ns, memory_order_relaxed);
	/* release: the events this tick emitted are in the ring before a
	 * reader of this instant drains it (see vigil_scanner_seen_through_ms).
	 * Not after a tick that deferred events: what it saw is not all there. */
	if (atomic_load_explicit(&s->metrics.ring_full_deferrals, memory_order_relaxed) == deferred0)
		atomic_store_explicit(&s->metrics.seen_through_mono_ms, now_ns / VIGIL_NS_PER_MS, memory_order_release);
	atomic_fetch_add_explicit(&s->metrics.ticks, 1, memory_order_relaxed);
	/* Liveness for vigilctl check and the systemd watchdog: only a
	 * completed scan moves it. */
	atomic_fetch_add_explicit(&s->seg->hdr->supervisor_ticks, 1, memory_order_relaxed);
	if (t.woke && s->wakefd >= 0) {
		uint64_t one = 1;
		(void)!write(s->wakefd, &one, sizeof one);
	}
}

/* ---- the thread ------------------------------------------------------------ */

/* woken_us: the wall clock right after epoll_wait returned, i.e. when the
 * scanner learnt that these pidfds were readable. */
static void handle_exits(struct vigil_scanner *s, const struct epoll_event *evs, int n, uint64_t woken_us)
{
	bool woke = false;
	for (int i = 0; i < n; i++) {
		uint64_t tok = evs[i].data.u64;
		if (tok == TOKEN_TIMER || tok == TOKEN_STOP || tok == TOKEN_CMD || tok >= s->seg->slots)
			continue;
		struct vigil_watch *w = &s->watch[tok];
		if (w->pidfd < 0 || w->mode == VIGIL_WATCH_IDLE)
			continue;
		w->flags |= VIGIL_WF_EXIT;
		fast_forget(s, (uint32_t)tok);
		report_exit(s, (uint32_t)tok, woken_us, &woke); /* if the ring is full, the tick retries */
	}
	if (woke && s->wakefd >= 0) {
		uint64_t one = 1;
		(void)!write(s->wakefd, &one, sizeof one);
	}
}

/* Between ticks: the slots just spawned (see struct vigil_look).  The
 * virtual clock is brought to now first, as a tick would, so that what
 * scan_slot stamps is the instant of sight; the next tick then adds only
 * the time since.  A look never runs a stall's accounting: when more than
 * a tick has passed, it leaves everything to the tick that is due. */
static void look_pass(struct vigil_scanner *s, uint64_t now_ns)
{
	if (s->nlooks == 0 || now_ns < s->prev_mono_ns || now_ns - s->prev_mono_ns > s->tick_ns)
		return;
	struct vigil_heartbeat_policy pol;
	urcu_memb_read_lock();
	pol = *atomic_load_explicit(&s->policy, memory_order_acquire);
	urcu_memb_read_unlock();
	s->vclock_ns += now_ns - s->prev_mono_ns;
	s->prev_mono_ns = now_ns;
	const uint64_t real_us = vigil_unix_us();
	struct tick_ctx t = {.p = &pol, .real_ms = real_us / 1000u, .real_us = real_us};
	for (uint32_t i = 0; i < s->nlooks;) {
		struct vigil_look *l = &s->looks[i];
		uint64_t o = atomic_load_explicit(&s->seg->hot[l->slot].owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		const struct vigil_watch *w = &s->watch[l->slot];
		bool done = vigil_owner_gen(o) != l->gen || (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_CLAIMED) ||
			    now_ns >= l->until_ns;
		if (!done && st == VIGIL_SLOT_ACTIVE) {
			t.ncand = 0; /* zombie candidates are the tick's business */
			scan_slot(s, l->slot, &t);
			fast_forget(s, l->slot);
			done = w->mode != VIGIL_WATCH_LIVE || w->beats > 0;
		}
		if (done)
			s->looks[i] = s->looks[--s->nlooks]; /* order does not matter */
		else
			i++;
	}
	atomic_fetch_add_explicit(&s->metrics.heartbeats_received, t.beats, memory_order_relaxed);
	if (t.woke && s->wakefd >= 0) {
		uint64_t one = 1;
		(void)!write(s->wakefd, &one, sizeof one);
	}
}

static void *scanner_main(void *arg)
{
	struct vigil_scanner *s = arg;
	/* The thread that must see a death within milliseconds sleeps almost
	 * all the time and never touches the disk: ask for a better nice than
	 * the action thread's, so that a host saturated by its workers still
	 * runs it first.  Needs root or CAP_SYS_NICE; without, it stays at the
	 * daemon's nice (nothing else changes).  Not SCHED_FIFO: a million-slot
	 * tick takes tens of milliseconds, which a real-time thread would take
	 * from everyone. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), VIGIL_SCANNER_NICE);
	urcu_memb_register_thread();
	if (s->prev_mono_ns == 0) { /* nobody ran the first pass for us */
		s->prev_mono_ns = vigil_mono_ns();
		s->vclock_ns = s->prev_mono_ns;
		vigil_scanner_tick(s, s->prev_mono_ns); /* adopt what is already there */
	}
	struct epoll_event evs[64];
	bool running = true;
	while (running && vigil_scanner_failed(s) == 0) {
		/* Pending looks: wake every VIGIL_LOOK_POLL_NS (bounded by
		 * VIGIL_LOOK_NS_MAX per look); otherwise sleep until an event. */
		VIGIL_ASSERT(s->nlooks <= VIGIL_LOOKS_MAX);
		int n = epoll_wait(s->epfd, evs, 64, s->nlooks > 0 ? (int)(VIGIL_LOOK_POLL_NS / VIGIL_NS_PER_MS) : -1);
		const uint64_t woken_us = vigil_unix_us(); /* the instant exits are stamped with */
		if (n >= 0 && s->debug_fail_after_ticks != 0 &&
		    atomic_load_explicit(&s->metrics.ticks, memory_order_relaxed) >= s->debug_fail_after_ticks) {
			n = -1; /* test hook (VIGIL_DEBUG=1): fail as a broken epoll would */
			errno = EIO;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			scanner_fail(s, "epoll_wait", errno); /* EBADF/EINVAL/...: not with our own fds */
			break;
		}
		VIGIL_ASSERT(n <= 64);
		bool tick = false;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == TOKEN_TIMER) {
				uint64_t expirations;
				/* EAGAIN: the expiration was consumed already (a spurious
				 * wake-up); anything else means the timer is broken. */
				if (read(s->timerfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN &&
				    errno != EINTR) {
					scanner_fail(s, "read(timerfd)", errno);
					running = false;
					break;
				}
				tick = true;
			} else if (evs[i].data.u64 == TOKEN_STOP) {
				running = false;
			} else if (evs[i].data.u64 == TOKEN_CMD) {
				uint64_t queued;
				(void)!read(s->cmdfd, &queued, sizeof queued);
				drain_commands(s);
			}
		}
		if (vigil_scanner_failed(s) != 0)
			break;
		handle_exits(s, evs, n, woken_us);
		if (tick)
			vigil_scanner_tick(s, vigil_mono_ns());
		else if (s->nlooks > 0)
			look_pass(s, vigil_mono_ns());
		uint64_t until = atomic_load_explicit(&s->debug_stall_until_ns, memory_order_relaxed);
		if (until != 0) {
			/* Debug only (see the field): bounded by the request, 60 s.
			 * debug_stalled tells the requester the stall has begun. */
			atomic_store_explicit(&s->debug_stalled, true, memory_order_relaxed);
			for (int i = 0; i < 6000 && vigil_mono_ns() < until; i++) {
				struct timespec ts = {0, 10000000};
				nanosleep(&ts, NULL);
			}
			/* A request that came meanwhile moved the deadline: keep it
			 * (the next pass stalls again) rather than wipe it. */
			atomic_compare_exchange_strong_explicit(&s->debug_stall_until_ns, &until, 0, memory_order_relaxed,
								memory_order_relaxed);
			atomic_store_explicit(&s->debug_stalled, false, memory_order_relaxed);
		}
	}
	urcu_memb_unregister_thread();
	if (vigil_scanner_failed(s) != 0)
		scanner_fail_wait(s);
	return NULL;
}

/* Test hooks, honoured only with VIGIL_DEBUG=1 (as the action thread's):
 * VIGIL_DEBUG_EVENT_RING=N, a smaller event ring (a power of two in
 * [VIGIL_EV_RING_DEBUG_MIN, VIGIL_EV_RING_SIZE]; anything else is refused
 * on stderr and the default kept); VIGIL_DEBUG_SCANNER_FAIL_TICKS=N, the
 * scanner thread fails after N ticks. */
static void debug_hooks(struct vigil_scanner *s)
{
	const char *dbg = getenv("VIGIL_DEBUG");
	if (dbg == NULL || strcmp(dbg, "1") != 0)
		return;
	const char *ring = getenv("VIGIL_DEBUG_EVENT_RING");
	if (ring != NULL) {
		char *end = NULL;
		unsigned long n = strtoul(ring, &end, 10);
		if (end != ring && *end == '\0' && n >= VIGIL_EV_RING_DEBUG_MIN && n <= VIGIL_EV_RING_SIZE &&
		    (n & (n - 1)) == 0) {
			s->ev_ring_size = (uint32_t)n;
			fprintf(stderr, "vigild: debug: event ring of %lu entries\n", n);
		} else {
			fprintf(stderr, "vigild: debug: VIGIL_DEBUG_EVENT_RING=%s ignored (a power of two in [%u, %u])\n",
				ring, VIGIL_EV_RING_DEBUG_MIN, VIGIL_EV_RING_SIZE);
		}
	}
	const char *fail = getenv("VIGIL_DEBUG_SCANNER_FAIL_TICKS");
	if (fail != NULL) {
		char *end = NULL;
		unsigned long long n = strtoull(fail, &end, 10);
		if (end != fail && *end == '\0' && n > 0)
			s->debug_fail_after_ticks = n;
	}
}

int vigil_scanner_init(struct vigil_scanner *s, struct vigil_segment *seg, const struct vigil_heartbeat_policy *policy)
{
	memset(s, 0, sizeof *s);
	s->seg = seg;
	s->epfd = s->timerfd = s->stopfd = s->wakefd = s->cmdfd = -1;
	s->first_pass = true;
	s->ev_ring_size = VIGIL_EV_RING_SIZE;
	debug_hooks(s);
	VIGIL_ASSERT(s->ev_ring_size >= VIGIL_EV_RING_DEBUG_MIN && s->ev_ring_size <= VIGIL_EV_RING_SIZE &&
		     (s->ev_ring_size & (s->ev_ring_size - 1)) == 0);
	s->watch = calloc(seg->slots, sizeof *s->watch);
	s->fast = calloc(seg->slots, sizeof *s->fast); /* next_v 0: every slot's first look is a full one */
	s->candidates = calloc(seg->slots, sizeof *s->candidates);
	s->ev_buf = aligned_alloc(64, sizeof(struct vigil_event) * s->ev_ring_size);
	s->cmd_buf = aligned_alloc(64, sizeof(struct vigil_command) * VIGIL_CMD_RING_SIZE);
	struct vigil_heartbeat_policy *p = malloc(sizeof *p);
	if (s->watch == NULL || s->fast == NULL || s->candidates == NULL || s->ev_buf == NULL || s->cmd_buf == NULL || p == NULL) {
		free(p);
		free(s->watch);
		s->watch = NULL;
		vigil_scanner_destroy(s);
		return -ENOMEM;
	}
	/* Touch the rings now: they are vigild's largest fixed allocation
	 * (~2.6 MiB), and faulting their pages in one by one later would put
	 * page faults on the scanner's path (and make RSS grow with traffic,
	 * as if it were a per-worker cost). */
	memset(s->ev_buf, 0, sizeof(struct vigil_event) * s->ev_ring_size);
	memset(s->cmd_buf, 0, sizeof(struct vigil_command) * VIGIL_CMD_RING_SIZE);
	*p = *policy;
	atomic_store_explicit(&s->policy, p, memory_order_release);
	for (uint32_t i = 0; i < seg->slots; i++)
		s->watch[i].pidfd = -1;
	ck_ring_init(&s->ev_ring, s->ev_ring_size);
	ck_ring_init(&s->cmd_ring, VIGIL_CMD_RING_SIZE);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->cmdfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->timerfd < 0 || s->stopfd < 0 || s->wakefd < 0 || s->cmdfd < 0) {
		int e = -errno;
		vigil_scanner_destroy(s);
		return e;
	}
	struct epoll_event e1 = {.events = EPOLLIN, .data.u64 = TOKEN_TIMER};
	struct epoll_event e2 = {.events = EPOLLIN, .data.u64 = TOKEN_STOP};
	struct epoll_event e3 = {.events = EPOLLIN, .data.u64 = TOKEN_CMD};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->timerfd, &e1) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stopfd, &e2) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->cmdfd, &e3) < 0) {
		int e = -errno;
		vigil_scanner_destroy(s);
		return e;
	}
	return 0;
}

int vigil_scanner_start(struct vigil_scanner *s)
{
	const struct vigil_heartbeat_policy *p = atomic_load_explicit(&s->policy, memory_order_acquire);
	struct itimerspec its = {
		.it_interval = {.tv_sec = (time_t)(p->tick_ns / VIGIL_NS_PER_S),
				.tv_nsec = (long)(p->tick_ns % VIGIL_NS_PER_S)},
	};
	its.it_value = its.it_interval;
	if (timerfd_settime(s->timerfd, 0, &its, NULL) < 0)
		return -errno;
	s->tick_ns = p->tick_ns;
	int rc = pthread_create(&s->thread, NULL, scanner_main, s);
	if (rc == 0)
		pthread_setname_np(s->thread, "vigild-scan"); /* ps -L, top -H: which thread is which */
	return -rc;
}

void vigil_scanner_stop(struct vigil_scanner *s)
{
	uint64_t one = 1;
	(void)!write(s->stopfd, &one, sizeof one);
	pthread_join(s->thread, NULL);
}

void vigil_scanner_set_policy(struct vigil_scanner *s, struct vigil_heartbeat_policy *p)
{
	struct vigil_heartbeat_policy *old = atomic_exchange_explicit(&s->policy, p, memory_order_acq_rel);
	/* Wait until no tick can still be reading the old copy. */
	urcu_memb_synchronize_rcu();
	free(old);
}

void vigil_scanner_destroy(struct vigil_scanner *s)
{
	if (s->watch != NULL)
		for (uint32_t i = 0; i < s->seg->slots; i++)
			if (s->watch[i].pidfd >= 0)
				close(s->watch[i].pidfd);
	/* Commands not yet consumed may carry pidfds. */
	if (s->cmd_buf != NULL) {
		struct vigil_command c;
		for (uint32_t i = 0; i < VIGIL_CMD_RING_SIZE; i++) {
			if (!ck_ring_dequeue_spsc_vigil_command(&s->cmd_ring, s->cmd_buf, &c))
				break;
			if (c.fd >= 0)
				close(c.fd);
		}
	}
	int fds[] = {s->epfd, s->timerfd, s->stopfd, s->wakefd, s->cmdfd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(s->watch);
	free(s->fast);
	free(s->candidates);
	free(s->ev_buf);
	free(s->cmd_buf);
	free(atomic_load_explicit(&s->policy, memory_order_relaxed));
	memset(s, 0, sizeof *s);
	s->epfd = s->timerfd = s->stopfd = s->wakefd = s->cmdfd = -1;
}
