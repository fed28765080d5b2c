/*
 * scanner.h - the scanner thread: one pass over the hot lines per timerfd
 * tick, health arithmetic, verdicts, and pidfd exits.
 *
 * The scanner is the part of vigild that must never be late, so it never
 * blocks on disk, never allocates after start-up and never takes a lock.
 * It talks to the action thread through two bounded single-producer /
 * single-consumer Concurrency Kit rings:
 *
 *   events   scanner -> action   verdicts and registrations (by value)
 *   commands action  -> scanner  "watch this pidfd", "forget this slot"
 *
 * Ring full (the action thread is behind, e.g. a slow disk): the scanner
 * does not drop the event and does not wait.  A verdict's per-slot flag is
 * set only when its event is enqueued, so the same condition is found again
 * on the next tick and enqueued then; the event is late, never lost and
 * never doubled.  Each such deferral is counted (ring_full_deferrals).
 *
 * Policy: read through an RCU-protected pointer (liburcu memb flavour); the
 * action thread publishes a new one on reload and frees the old one after
 * a grace period, so a tick always sees one whole policy.
 */
#ifndef VIGIL_SCANNER_H
#define VIGIL_SCANNER_H

#include <ck_ring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"
#include "segment.h"

enum vigil_event_kind {
	VIGIL_EV_REGISTERED = 1, /* a slot became ACTIVE: identity attached */
	VIGIL_EV_ADOPTED,        /* found ACTIVE/ZOMBIE at start-up */
	VIGIL_EV_MISSED,         /* missed became >= 1 */
	VIGIL_EV_TIMEOUT,        /* silence >= heartbeat_timeout */
	VIGIL_EV_RECOVERED,      /* a beat after a miss, before zombie */
	VIGIL_EV_ZOMBIE,         /* silence >= zombie threshold or health < min */
	VIGIL_EV_EXITED,         /* pidfd: the process ended */
	VIGIL_EV_DETACHED,       /* clean goodbye */
	VIGIL_EV_HOST_STALL,     /* many workers silent together (README "How verdicts are timed") */
	VIGIL_EV_CLAIM_STALE,    /* a CLAIMED slot never published: freed */
	VIGIL_EV_VANISHED,       /* the slot changed owner behind our back */
	VIGIL_EV_TICK_LATE,      /* the supervisor lost time: credited */
	VIGIL_EV_FIRST_BEAT,     /* the worker's first beat since it registered */
	VIGIL_EV_PROGRESS_STALL, /* beats keep coming, progress has not moved */
};

/* Events travel by value (CK_RING_PROTOTYPE copies them), so the rings
 * need no allocator and no free list. */
struct vigil_event {
	uint32_t kind;
	uint32_t slot;
	uint64_t gen;
	uint64_t unix_ms;            /* when the scanner saw it */
	uint64_t unix_us;            /* the same instant in microseconds (EXITED/DETACHED
				      * through a pidfd: when epoll said it was readable) */
	uint64_t last_seen_unix_ms;  /* when the last beat was first seen */
	uint64_t due_unix_ms;        /* the instant the condition became true */
	uint64_t stall_credit_ms;    /* supervisor time credited since last_seen */
	uint64_t beats;
	uint32_t health_score;
	uint32_t reported_health;
	uint32_t progress;
	uint32_t missed;
	int32_t pid;
	int32_t registrar_pid;
	uint64_t pid_start_ticks;
	int32_t exit_code;   /* -1 when unknown (not our child) */
	int32_t exit_signal; /* 0 none, -1 unknown */
	uint32_t count_a;    /* HOST_STALL: silent workers; TICK_LATE: ms lost; PROGRESS_STALL: ms stalled */
	uint32_t count_b;    /* HOST_STALL: monitored workers */
	uint8_t zombie;      /* ADOPTED: the slot was already a zombie */
	uint8_t pad[3];
	uint32_t cold_flags; /* REGISTERED/ADOPTED: VIGIL_COLD_* (untrusted) */
	uint64_t spawn_tag;  /* REGISTERED/ADOPTED: cold spawn_tag (untrusted) */
	char worker_id[64];  /* REGISTERED/ADOPTED/DETACHED: raw, untrusted */
	char worker_type[64];
	char task_id[64];
};
CK_RING_PROTOTYPE(vigil_event, vigil_event)

enum vigil_command_kind {
	VIGIL_CMD_WATCH = 1,  /* fd: pidfd to watch for exit (or -1: already gone) */
	VIGIL_CMD_FORGET = 2, /* stop reporting this slot/gen (rejected identity) */
	VIGIL_CMD_LOOK = 3,   /* just spawned: look at this slot/gen now, then every
			       * VIGIL_LOOK_POLL_NS until its first beat (<= VIGIL_LOOK_NS_MAX) */
};
struct vigil_command {
	uint32_t kind;
	uint32_t slot;
	uint64_t gen;
	int32_t fd;
	int32_t pad;
};
CK_RING_PROTOTYPE(vigil_command, vigil_command)

/* Counters the scanner writes (relaxed; single writer) and the action
 * thread reads for the metrics files.  Kept on their own lines so that
 * the reader never slows the writer's cache line... beyond one miss. */
struct vigil_scan_metrics {
	_Atomic uint64_t ticks;
	_Atomic uint64_t tick_overruns;       /* ticks later than the stall bound */
	_Atomic uint64_t scan_ns_last;
	_Atomic uint64_t scan_ns_max;
	_Atomic uint64_t heartbeats_received; /* beat-word changes credited */
	_Atomic uint64_t workers_monitored;   /* live at the last tick */
	_Atomic uint64_t zombies_detected;
	_Atomic uint64_t heartbeat_timeouts;
	_Atomic uint64_t heartbeats_missed;
	_Atomic uint64_t exits_detected;
	_Atomic uint64_t ring_full_deferrals;
	_Atomic uint64_t stall_credit_ms_total;
	_Atomic uint64_t host_stalls;
	_Atomic uint64_t stale_beats_ignored;  /* beats written through an old generation */
	_Atomic uint64_t last_tick_mono_ns;
	/* Wall-clock start of the last completed full tick that handed all it
	 * saw to the ring (a tick that found it full does not move this):
	 * every slot was looked at since then, and the events of those looks
	 * are in the ring (stored with release after them).  Verdicts of the action thread
	 * about what the scanner has or has not seen ("no first beat by its
	 * deadline") wait until this reaches the deadline: a stalled or
	 * preempted scanner is not evidence. */
	_Atomic uint64_t seen_through_mono_ms;
} __attribute__((aligned(64)));

/* Per-slot private state: the scanner's memory of each slot. */
struct vigil_watch {
	uint64_t owner;          /* owner word when we started tracking */
	uint64_t beat;           /* last beat word seen */
	uint64_t last_seen_v;    /* virtual clock at last_seen */
	uint64_t last_seen_unix_ms;
	uint64_t credit_at_seen_ns; /* credit total when last seen */
	uint64_t beats;
	uint64_t first_seen_v;   /* CLAIMED: when we first saw the claim */
	uint64_t progress_v;     /* virtual clock when progress last moved */
	int32_t pidfd;           /* -1 none */
	uint16_t flags;
	uint8_t mode;            /* enum vigil_watch_mode */
	uint8_t reported_health;
	uint8_t progress;
	uint8_t view_verdict;
	uint16_t view_health;
	uint32_t view_missed;
};

/* The scanner's dense record per slot: what a tick compares first.  With
 * the slot's owner and beat words equal to these and the virtual clock
 * before next_v, nothing about the slot can be due (no interval missed, no
 * progress stall, no flag, no command): the tick counts it and moves on,
 * without touching its vigil_watch.  Anything else takes the full path,
 * which then writes this record again.  next_v 0: always the full path. */
struct vigil_fast {
	uint64_t owner;
	uint64_t beat;
	uint64_t next_v;
};

enum vigil_watch_mode {
	VIGIL_WATCH_IDLE = 0,  /* nothing tracked */
	VIGIL_WATCH_LIVE,      /* ACTIVE, monitored */
	VIGIL_WATCH_ZOMBIE,    /* declared; waiting for exit or cleanup */
	VIGIL_WATCH_IGNORED,   /* identity rejected by the action thread */
};

#define VIGIL_WF_MISSED 0x1u     /* heartbeat_missed reported this episode */
#define VIGIL_WF_TIMEOUT 0x2u    /* heartbeat_timeout reported */
#define VIGIL_WF_EXIT 0x4u       /* pidfd readable, exit not yet enqueued */
#define VIGIL_WF_CANDIDATE 0x8u  /* zombie candidate this tick */
#define VIGIL_WF_STALL 0x10u     /* progress_stall reported this episode */

/* A freshly spawned slot the scanner looks at between ticks.  Why: a
 * restart succeeds on the replacement's first beat, and at the default
 * 0.1 s tick waiting for the next tick to see the slot and then its beat
 * added up to a tick to every restart (bench: p99 103 ms beyond the delay).
 * A look costs one slot read per VIGIL_LOOK_POLL_NS, for at most
 * VIGIL_LOOK_NS_MAX; past VIGIL_LOOKS_MAX pending, the tick handles it. */
struct vigil_look {
	uint32_t slot;
	uint64_t gen;
	uint64_t until_ns;       /* monotonic */
};
#define VIGIL_LOOKS_MAX 64u
#define VIGIL_LOOK_POLL_NS 1000000ull     /* 1 ms */
#define VIGIL_LOOK_NS_MAX 1000000000ull   /* 1 s */

struct vigil_scanner {
	struct vigil_segment *seg;
	struct vigil_watch *watch;       /* seg->slots entries */
	struct vigil_fast *fast;         /* seg->slots entries, dense: the common case reads only these */
	/* 1 + the highest slot ever seen in use.  Slots from max(high_water,
	 * the header's claim hint) up are free as far as we know: a tick
	 * visits them only VIGIL_SCAN_SWEEP_CHUNK at a time (sweep_pos), so a
	 * claim there is still found, within n / chunk ticks. */
	uint32_t high_water;
	uint32_t sweep_pos;
	/* The policy the fast records' next_v were computed with. */
	uint64_t fast_interval_ns, fast_stall_ns;
	double fast_min_health;
	uint32_t *candidates;            /* seg->slots entries */
	struct ck_ring ev_ring;
	struct vigil_event *ev_buf;      /* ev_ring_size entries */
	uint32_t ev_ring_size;           /* VIGIL_EV_RING_SIZE, or smaller under VIGIL_DEBUG=1 */
	struct ck_ring cmd_ring;
	struct vigil_command *cmd_buf;
	/* Published with a release exchange, read with acquire inside an RCU
	 * read-side section; freed only after an RCU grace period. */
	struct vigil_heartbeat_policy *_Atomic policy;
	struct vigil_scan_metrics metrics;
	int epfd, timerfd, stopfd, wakefd; /* wakefd: tells the action thread */
	int cmdfd;                       /* the action thread tells us: a command is queued */
	struct vigil_look looks[VIGIL_LOOKS_MAX];
	uint32_t nlooks;
	uint64_t tick_ns;                /* current timerfd period */
	uint64_t vclock_ns;              /* virtual clock: real time less stalls */
	uint64_t prev_mono_ns;
	uint64_t credit_ns_total;
	uint64_t stall_hold_until_v;     /* all zombie verdicts held until then */
	bool stall_episode;              /* host_stall_suspected said; ends when the silent crowd thins */
	bool first_pass;                 /* adopt what is already there */
	/* Test hook (vigild run with VIGIL_DEBUG=1): the scanner sleeps until
	 * this monotonic instant, to show that the watchdog stops. */
	_Atomic uint64_t debug_stall_until_ns;
	_Atomic bool debug_stalled;      /* the scanner is inside that stall now */
	/* Test hook (VIGIL_DEBUG=1 and VIGIL_DEBUG_SCANNER_FAIL_TICKS=N): after
	 * N ticks the thread fails as if epoll_wait had returned EIO.  0: off. */
	uint64_t debug_fail_after_ticks;
	/* 0, or the errno with which the scanner thread failed (see
	 * vigil_scanner_failed).  Written once by the scanner thread. */
	_Atomic int failed;
	pthread_t thread;
};

#define VIGIL_EV_RING_SIZE 8192u  /* power of two; ~2.5 MiB */
#define VIGIL_SCAN_SWEEP_CHUNK 4096u /* free slots above the high water visited per tick */
#define VIGIL_CMD_RING_SIZE 4096u
/* Test hook: with VIGIL_DEBUG=1, VIGIL_DEBUG_EVENT_RING=N (a power of two
 * in [VIGIL_EV_RING_DEBUG_MIN, VIGIL_EV_RING_SIZE]) makes the event ring N
 * entries, so that a test can overflow it with a few hundred workers. */
#define VIGIL_EV_RING_DEBUG_MIN 16u
/* How long a failed scanner waits for vigild's orderly stop before it ends
 * the process itself (README "When the scanner fails"). */
#define VIGIL_SCANNER_FAIL_GRACE_MS 5000

/* Allocates everything the scanner will ever need; 0 or -errno. */
int vigil_scanner_init(struct vigil_scanner *s, struct vigil_segment *seg,
		       const struct vigil_heartbeat_policy *policy);
int vigil_scanner_start(struct vigil_scanner *s);
/* Asks the thread to stop and joins it. */
void vigil_scanner_stop(struct vigil_scanner *s);
/* 0 while the scanner thread runs (or stopped when asked); otherwise the
 * errno with which it failed.  A failed scanner has already logged why and
 * asked vigild to stop (SIGTERM to itself); vigild then exits 1. */
static inline int vigil_scanner_failed(struct vigil_scanner *s)
{
	/* Relaxed: the flag carries no data; main reads it after the join. */
	return atomic_load_explicit(&s->failed, memory_order_relaxed);
}
void vigil_scanner_destroy(struct vigil_scanner *s);

/* Action side: publish a new policy (takes ownership; frees the old one
 * after an RCU grace period). */
void vigil_scanner_set_policy(struct vigil_scanner *s, struct vigil_heartbeat_policy *p);
/* Action side: wake the scanner thread now (it drains its commands and
 * runs its loop once) rather than at its next tick. */
void vigil_scanner_wake(struct vigil_scanner *s);
/* Action side: enqueue a command and wake the scanner; false when the ring
 * is full. */
bool vigil_scanner_command(struct vigil_scanner *s, const struct vigil_command *cmd);
/* Action side: dequeue one event; false when empty. */
bool vigil_scanner_next_event(struct vigil_scanner *s, struct vigil_event *ev);

/* Action side: the monotonic instant (ms) through which the scanner
 * has looked at every slot and handed over all it saw.  Read it, then drain
 * the ring: what the scanner saw up to that instant is then in hand
 * (acquire pairs with the release at the end of vigil_scanner_tick).  A
 * tick that found the ring full does not move it: its deferred events come
 * with a later tick, which then does. */
static inline uint64_t vigil_scanner_seen_through_ms(struct vigil_scanner *s)
{
	return atomic_load_explicit(&s->metrics.seen_through_mono_ms, memory_order_acquire);
}

/* One scan at monotonic time now_ns (exposed for tests). */
void vigil_scanner_tick(struct vigil_scanner *s, uint64_t now_ns);

/* ---- health arithmetic (pure; README "How verdicts are timed") ---- */

/* floor(silence / interval); 0 for interval 0. */
uint32_t vigil_health_missed(uint64_t silence_ns, uint64_t interval_ns);
/* clamp(reported - decay * missed, 0, 100) */
uint32_t vigil_health_score(uint32_t reported, double decay, uint32_t missed);
/* Silence (ns after last_seen) at which the worker becomes a zombie:
 * min(zombie_ns, the first whole interval at which health < min_health);
 * 0 when the reported health itself is already below min_health. */
uint64_t vigil_health_zombie_due_ns(const struct vigil_heartbeat_policy *p, uint32_t reported);

#endif /* VIGIL_SCANNER_H */
