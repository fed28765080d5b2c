/*
 * scan.c - scenario "scan": what one scanner tick costs per slot, against
 * the memory limit, at 1,000 .. 1,000,000 slots.
 *
 * The segment is real (vigil_segment_open) and every slot is ACTIVE, with
 * an identity, adopted by the real scanner (vigil_scanner_init / _tick, the
 * code vigild runs).  Between two measured passes a "workers" thread on
 * the other CPU writes a new beat word into every slot, as 10 Hz workers
 * do between two 100 ms ticks, so each measured tick does its real work:
 * sees every beat change, credits it, updates last_seen and the view.  The
 * tick runs on a synthetic clock (advanced by one tick per call) and its
 * event ring is drained between ticks, as the action thread would.
 *
 * The peer, in the same run, on the same lines: a bare sequential pass
 * that loads each slot's owner and beat words and compares the beat with
 * a private copy (8 bytes per slot): the least any scanner of this layout
 * can do.  Both passes start from the same cache state (lines just written
 * by the other CPU).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "policy.h"
#include "scanner.h"
#include "segment.h"
#include "vigil.h"

/* ---- the "workers": one thread that rewrites every beat word -------------------- */

struct beater {
	struct vigil_slot_hot *hot;
	uint32_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t asked, done;
	bool stop;
	pthread_t th;
	uint32_t count;
};

static void *beater_main(void *arg)
{
	struct beater *b = arg;
	if (bench_ncpus() >= 2) {
		cpu_set_t m;
		CPU_ZERO(&m);
		CPU_SET(1, &m);
		pthread_setaffinity_np(pthread_self(), sizeof m, &m);
	}
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (b->asked == b->done && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->stop)
			break;
		pthread_mutex_unlock(&b->mu);
		uint32_t c = ++b->count;
		for (uint32_t i = 0; i < b->n; i++)
			atomic_store_explicit(&b->hot[i].beat, vigil_beat_make(1, c, 100, c & 63), memory_order_release);
		pthread_mutex_lock(&b->mu);
		b->done++;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* Every slot gets a new beat word; returns when it is written. */
static void beat_all(struct beater *b)
{
	pthread_mutex_lock(&b->mu);
	uint64_t want = ++b->asked;
	pthread_cond_broadcast(&b->cv);
	while (b->done < want)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
}

/* ---- the peer: bare read-and-compare ------------------------------------------------ */

__attribute__((noinline)) static uint64_t bare_pass(const struct vigil_slot_hot *hot, uint64_t *prev, uint32_t n)
{
	uint64_t changed = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t o = atomic_load_explicit(&hot[i].owner, memory_order_acquire);
		uint64_t b = atomic_load_explicit(&hot[i].beat, memory_order_acquire);
		if (vigil_owner_state(o) == VIGIL_SLOT_ACTIVE && b != prev[i]) {
			prev[i] = b;
			changed++;
		}
	}
	return changed;
}

static uint32_t drain(struct vigil_scanner *s)
{
	struct vigil_event ev;
	uint32_t n = 0;
	while (vigil_scanner_next_event(s, &ev))
		n++;
	return n;
}

static json_t *scan_one(uint32_t slots, int reps)
{
	json_t *o = json_object();
	json_object_set_new(o, "slots", json_integer(slots));
	char err[256];
	char shm[128];
	snprintf(shm, sizeof shm, "/vigil-bench-%d-scan", (int)getpid());
	bench_track_segment(shm);
	shm_unlink(shm);
	struct vigil_segment seg;
	int rc = vigil_segment_open(&seg, shm, slots, 0600, true, true, err, sizeof err);
	if (rc < 0) {
		bench_log("scan: cannot create a segment of %u slots: %s", slots, err);
		json_object_set_new(o, "error", json_string(err));
		bench_untrack_segment(shm);
		return o;
	}
	/* Identities first (cold part), as registration writes them. */
	int me = (int)getpid();
	for (uint32_t i = 0; i < slots; i++) {
		struct vigil_slot_cold *c = &seg.cold[i];
		snprintf(c->worker_id, sizeof c->worker_id, "worker-bench-%07u", i);
		snprintf(c->worker_type, sizeof c->worker_type, "bench");
		snprintf(c->task_id, sizeof c->task_id, "task-%u", i);
		c->pid = me;
		c->registrar_pid = me;
		atomic_store_explicit(&seg.hot[i].beat, vigil_beat_make(1, 0, 100, 0), memory_order_relaxed);
	}

	struct vigil_heartbeat_policy pol;
	vigil_policy_heartbeat_defaults(&pol);
	struct vigil_scanner *s = calloc(1, sizeof *s);
	uint64_t *prev = calloc(slots, sizeof *prev);
	if (s == NULL || prev == NULL || (rc = vigil_scanner_init(s, &seg, &pol)) < 0) {
		json_object_set_new(o, "error", json_string("scanner init failed"));
		free(s);
		free(prev);
		vigil_segment_close(&seg);
		shm_unlink(shm);
		bench_untrack_segment(shm);
		return o;
	}
	const uint64_t tick = pol.tick_ns;
	uint64_t now = 1000000000ull;

	/* Activate in batches the event ring can take (8191 registrations per
	 * tick), so adoption costs a few cheap ticks over mostly free slots. */
	const uint32_t batch = VIGIL_EV_RING_SIZE - 64;
	for (uint32_t base = 0; base < slots; base += batch) {
		uint32_t end = base + batch < slots ? base + batch : slots;
		for (uint32_t i = base; i < end; i++)
			atomic_store_explicit(&seg.hot[i].owner, vigil_owner_make(VIGIL_SLOT_ACTIVE, 1),
					      memory_order_release);
		vigil_scanner_tick(s, now += tick);
		drain(s);
	}
	for (int i = 0; i < 1000 && atomic_load(&s->metrics.workers_monitored) < slots; i++) {
		vigil_scanner_tick(s, now += tick);
		drain(s);
	}
	uint64_t monitored = atomic_load(&s->metrics.workers_monitored);
	if (monitored != slots)
		bench_log("scan: only %llu of %u slots monitored", (unsigned long long)monitored, slots);

	struct beater b;
	memset(&b, 0, sizeof b);
	b.hot = seg.hot;
	b.n = slots;
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	pthread_create(&b.th, NULL, beater_main, &b);

	double *scan_ns = calloc((size_t)reps, sizeof *scan_ns);
	double *bare_ns = calloc((size_t)reps, sizeof *bare_ns);
	double *scan_tick_us = calloc((size_t)reps, sizeof *scan_tick_us);
	uint64_t events = 0, bare_changed = 0;
	uint64_t hb0 = 0;
	volatile uint64_t sink = 0;
	/* Warm-up until a beating tick emits nothing: the first beat of every
	 * slot is an event (first_beat), and the ring takes 8191 per tick, so
	 * 1,000,000 fresh slots need ~123 ticks before the steady state. */
	uint32_t warm_ticks = 0;
	for (int i = 0; i < 2000; i++) {
		beat_all(&b);
		vigil_scanner_tick(s, now += tick);
		warm_ticks++;
		uint32_t ev = drain(s);
		sink += bare_pass(seg.hot, prev, slots);
		if (ev == 0 && i >= 1)
			break;
	}
	json_object_set_new(o, "warmup_ticks", json_integer(warm_ticks));
	const int warm = 1;
	for (int r = -warm; r < reps; r++) {
		beat_all(&b);
		if (r == 0)
			hb0 = atomic_load(&s->metrics.heartbeats_received);
		uint64_t t0 = bench_mono_ns();
		vigil_scanner_tick(s, now += tick);
		uint64_t t1 = bench_mono_ns();
		uint32_t ev = drain(s);
		beat_all(&b);
		uint64_t t2 = bench_mono_ns();
		uint64_t ch = bare_pass(seg.hot, prev, slots);
		uint64_t t3 = bench_mono_ns();
		sink += ch;
		if (r >= 0) {
			scan_ns[r] = (double)(t1 - t0) / slots;
			scan_tick_us[r] = (double)(t1 - t0) / 1e3;
			bare_ns[r] = (double)(t3 - t2) / slots;
			events += ev;
			bare_changed += ch;
		}
	}
	uint64_t credited = atomic_load(&s->metrics.heartbeats_received) - hb0;
	/* Idle: no beat changed since the last pass (workers slower than the
	 * tick), lines not written by the other CPU: the per-slot work alone. */
	double *idle_scan = calloc((size_t)reps, sizeof *idle_scan);
	double *idle_bare = calloc((size_t)reps, sizeof *idle_bare);
	for (int r = -1; r < reps; r++) {
		uint64_t t0 = bench_mono_ns();
		vigil_scanner_tick(s, now += tick);
		uint64_t t1 = bench_mono_ns();
		drain(s);
		uint64_t t2 = bench_mono_ns();
		sink += bare_pass(seg.hot, prev, slots);
		uint64_t t3 = bench_mono_ns();
		if (r >= 0) {
			idle_scan[r] = (double)(t1 - t0) / slots;
			idle_bare[r] = (double)(t3 - t2) / slots;
		}
	}
	pthread_mutex_lock(&b.mu);
	b.stop = true;
	pthread_cond_broadcast(&b.cv);
	pthread_mutex_unlock(&b.mu);
	pthread_join(b.th, NULL);

	double sm, bm;
	{
		double t[256];
		memcpy(t, scan_ns, sizeof(double) * (size_t)reps);
		sm = bench_median(t, (size_t)reps);
		memcpy(t, bare_ns, sizeof(double) * (size_t)reps);
		bm = bench_median(t, (size_t)reps);
	}
	json_object_set_new(o, "reps", json_integer(reps));
	json_object_set_new(o, "scanner_ns_per_slot", bench_stats_json(scan_ns, (size_t)reps, false));
	json_object_set_new(o, "bare_ns_per_slot", bench_stats_json(bare_ns, (size_t)reps, false));
	json_object_set_new(o, "scanner_tick_us", bench_stats_json(scan_tick_us, (size_t)reps, false));
	json_object_set_new(o, "ratio_scan_vs_bare", json_real(sm / bm));
	{
		double t[256];
		memcpy(t, idle_scan, sizeof(double) * (size_t)reps);
		double ism = bench_median(t, (size_t)reps);
		memcpy(t, idle_bare, sizeof(double) * (size_t)reps);
		double ibm = bench_median(t, (size_t)reps);
		json_object_set_new(o, "idle_scanner_ns_per_slot", bench_stats_json(idle_scan, (size_t)reps, false));
		json_object_set_new(o, "idle_bare_ns_per_slot", bench_stats_json(idle_bare, (size_t)reps, false));
		json_object_set_new(o, "idle_ratio_scan_vs_bare", json_real(ism / ibm));
	}
	free(idle_scan);
	free(idle_bare);
	json_object_set_new(o, "workers_monitored", json_integer((json_int_t)monitored));
	/* Sanity: each measured tick credited one beat per slot, no verdicts. */
	json_object_set_new(o, "beats_credited_per_tick", json_real((double)credited / reps));
	json_object_set_new(o, "bare_changes_per_pass", json_real((double)bare_changed / reps));
	json_object_set_new(o, "events_in_measured_ticks", json_integer((json_int_t)events));
	json_object_set_new(o, "scanner_private_bytes_per_slot",
			    json_integer((json_int_t)(sizeof(struct vigil_watch) + sizeof(uint32_t))));
	bench_log("scan: %8u slots  scanner %7.3f ns/slot (%9.1f us/tick)  bare %7.3f ns/slot  ratio %.2f", slots, sm,
		  sm * slots / 1e3, bm, sm / bm);
	(void)sink;

	free(scan_ns);
	free(bare_ns);
	free(scan_tick_us);
	free(prev);
	vigil_scanner_destroy(s);
	free(s);
	vigil_segment_close(&seg);
	shm_unlink(shm);
	bench_untrack_segment(shm);
	return o;
}

json_t *bench_scan(void)
{
	json_t *out = json_object();
	urcu_memb_register_thread();
	bench_pin_self(0);
	json_object_set_new(out, "scanner_cpu", json_integer(0));
	json_object_set_new(out, "writer_cpu", bench_ncpus() >= 2 ? json_integer(1) : json_null());
	json_object_set_new(out, "hot_bytes_per_slot", json_integer(VIGIL_HOT_SIZE));
	json_object_set_new(out, "segment_bytes_per_slot",
			    json_integer(VIGIL_HOT_SIZE + VIGIL_COLD_SIZE + VIGIL_VIEW_SIZE));
	json_t *arr = json_array();
	for (int i = 0; i < g_opts.n_scan_sizes; i++) {
		uint32_t n = g_opts.scan_sizes[i];
		int reps = g_opts.quick ? 5 : (n >= 1000000 ? 9 : 15);
		json_array_append_new(arr, scan_one(n, reps));
	}
	json_object_set_new(out, "sizes", arr);
	bench_unpin_self();
	urcu_memb_unregister_thread();
	return out;
}
