/*
 * test_stall.c - the host-stall guard (README "How verdicts are timed"):
 * a fleet that stops together gets host_stall_suspected and no mass zombie
 * verdicts, a lone hang among a healthy fleet is still declared within one
 * tick of its instant.  Issue 10, item 11: the guard used to count only
 * the workers due in one tick, but a stopped fleet's last beats are spread
 * over a beat period, so their zombie instants fall into different ticks
 * and the guard fired by luck.
 *
 * Two halves, the same scenario (nine workers beating every 50 ms, interval
 * 0.5 s, zombie threshold 1.5 s, tick 0.1 s, host_stall defaults: share 0.5,
 * at least 4):
 *
 *   On a synthetic clock (vigil_scanner_tick driven directly, as in
 *   test_core): every stop instant across a whole tick period, in 1 ms
 *   beats, so the outcome is exact and cannot depend on luck:
 *     stall_spread_stop_resumed_no_verdict   six stop together, resume
 *         within the hold: one host_stall_suspected (6 silent of 9), no
 *         zombie; one of the six that stays stopped is declared at the end
 *         of the hold, not before
 *     stall_spread_stop_longer_declared_after_hold   six stop and stay
 *         stopped: host_stall_suspected, then all six declared exactly one
 *         interval after it; the three that beat are never blamed
 *     stall_lone_hang_caught_in_one_tick   one of nine stops: declared at
 *         the first tick at or after its instant; no host_stall_suspected
 *
 *   Against the real vigild with real worker processes and SIGSTOP, five
 *   rounds each (VIGIL_TEST_FILTER=<glob> picks tests):
 *     stall_real_six_stopped_together_resume   SIGSTOP six, SIGCONT them
 *         once host_stall_suspected is written: no zombie_detected, ever
 *     stall_real_six_stopped_longer   they stay stopped: host_stall_suspected
 *         first, then six zombie_detected, none before the hold ends
 *     stall_real_lone_hang   one of nine stopped: zombie_detected no later
 *         than one tick (plus itest_slack_ms()) after its due_ms, and no
 *         host_stall_suspected
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "itest.h"
#include "policy.h"
#include "scanner.h"
#include "segment.h"
#include "util.h"
#include "vigil.h"

static struct itest_home H;
#include "itest_check.h"

#define MS 1000000ull
#define NW 9     /* the fleet */
#define NSTOP 6  /* stopped together: above max(4, 0.5 * 9) */
#define BEAT_MS 50
#define TICK_MS 100
#define INTERVAL_MS 500
#define ZOMBIE_MS 1500

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("heartbeat-events.jsonl", "coordination/events/heartbeat-events.jsonl", 30);
	dump_tail("zombie-cleanup-events.jsonl", "coordination/events/zombie-cleanup-events.jsonl", 10);
	dump_tail("vigild.out", "vigild.out", 10);
}

/* ==== on a synthetic clock ================================================================== */

struct sim {
	char name[64];
	struct vigil_segment seg;
	struct vigil_scanner sc;
	struct vigil_heartbeat_policy pol;
	struct vigil w[NW];
	uint64_t t;                 /* synthetic monotonic ns, 1 ms steps */
	uint64_t next_tick;
	uint64_t last_beat[NW];     /* when each last beat */
	bool stopped[NW];
	/* What the scanner said, with the synthetic instant of the tick. */
	int stalls, zombies[NW];
	uint64_t stall_t, zombie_t[NW];
	uint32_t stall_silent, stall_monitored;
};

static void sim_up(struct sim *s)
{
	static int n;
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "/vigil-st-%d-%d", (int)getpid(), n++);
	char err[256];
	assert_int_equal(vigil_segment_open(&s->seg, s->name, 16, 0600, true, true, err, sizeof err), 0);
	const char *pol = "{\"heartbeat_interval_seconds\":0.5,\"heartbeat_timeout_seconds\":1.0,"
			  "\"zombie_threshold_seconds\":1.5}";
	assert_int_equal(vigil_policy_heartbeat_parse(pol, strlen(pol), "t", &s->pol, err, sizeof err, NULL, 0), 0);
	assert_true(s->pol.tick_ns == TICK_MS * MS);
	assert_true(s->pol.host_stall_share == 0.5 && s->pol.host_stall_min_workers == 4);
	assert_int_equal(vigil_scanner_init(&s->sc, &s->seg, &s->pol), 0);
	s->t = 1000000000000ull;
	s->sc.prev_mono_ns = s->t;
	s->sc.vclock_ns = s->t;
	vigil_scanner_tick(&s->sc, s->t); /* first pass: empty */
	s->next_tick = s->t + TICK_MS * MS;
	for (int i = 0; i < NW; i++) {
		char id[32];
		snprintf(id, sizeof id, "worker-sim-%03d", i);
		assert_int_equal(vigil__map(&s->w[i], s->name, 1), 0);
		assert_int_equal(vigil_register(&s->w[i], id, "sim", "task-1", (int)getpid()), 0);
	}
}

static void sim_down(struct sim *s)
{
	vigil_scanner_destroy(&s->sc);
	for (int i = 0; i < NW; i++)
		munmap(s->w[i].hdr, s->w[i].map_size);
	vigil_segment_close(&s->seg);
	shm_unlink(s->name);
}

/* Runs the world up to t: every ms, the workers that are not stopped beat
 * on their phase (worker i at i * 5 ms + 1 into each 50 ms, so the fleet's
 * beats are spread over the whole beat period), then the scanner ticks when
 * a tick is due, and what it says is recorded. */
static void sim_run_to(struct sim *s, uint64_t t)
{
	while (s->t < t) {
		s->t += MS;
		uint64_t ms = s->t / MS;
		for (int i = 0; i < NW; i++)
			if (!s->stopped[i] && ms % BEAT_MS == (uint64_t)(i * 5 + 1)) {
				vigil_beat(&s->w[i], 100, 10);
				s->last_beat[i] = s->t;
			}
		if (s->t < s->next_tick)
			continue;
		vigil_scanner_tick(&s->sc, s->t);
		s->next_tick += TICK_MS * MS;
		struct vigil_event ev;
		while (vigil_scanner_next_event(&s->sc, &ev)) {
			if (ev.kind == VIGIL_EV_HOST_STALL) {
				s->stalls++;
				s->stall_t = s->t;
				s->stall_silent = ev.count_a;
				s->stall_monitored = ev.count_b;
			} else if (ev.kind == VIGIL_EV_ZOMBIE) {
				assert_true(ev.slot < NW);
				s->zombies[ev.slot]++;
				s->zombie_t[ev.slot] = s->t;
			}
		}
	}
}

static int sim_zombies(const struct sim *s)
{
	int n = 0;
	for (int i = 0; i < NW; i++)
		n += s->zombies[i];
	return n;
}

/* Every stop instant across one tick period, 1 ms apart. */
#define ROUNDS TICK_MS

static void stall_spread_stop_resumed_no_verdict(void **state)
{
	(void)state;
	int guarded = 0;
	for (int r = 0; r < ROUNDS; r++) {
		struct sim s;
		sim_up(&s);
		sim_run_to(&s, s.t + 1000 * MS + (uint64_t)r * MS); /* settle; the stop lands r ms into a tick */
		assert_int_equal(sim_zombies(&s), 0);
		uint64_t stop = s.t;
		/* The last of the six stays stopped in odd rounds: a real hang
		 * inside a host stall, declared when the hold ends. */
		bool one_hangs = r % 2 == 1;
		for (int i = 0; i < NSTOP; i++)
			s.stopped[i] = true;
		/* Resumed 0.2 s past the zombie threshold: inside the hold,
		 * which starts at the first zombie instant (>= stop - 50 ms +
		 * 1.5 s) and lasts one interval. */
		sim_run_to(&s, stop + (ZOMBIE_MS + 200) * MS);
		for (int i = 0; i < NSTOP - (one_hangs ? 1 : 0); i++)
			s.stopped[i] = false;
		sim_run_to(&s, stop + (ZOMBIE_MS + 3 * INTERVAL_MS) * MS);
		if (s.stalls != 1 || s.stall_silent != NSTOP || s.stall_monitored != NW)
			fail_msg("round %d (stop %d ms into a tick): %d host stalls (want 1), silent %u monitored %u", r,
				 (int)((stop / MS) % TICK_MS), s.stalls, s.stall_silent, s.stall_monitored);
		for (int i = 0; i < NW; i++) {
			bool hung = one_hangs && i == NSTOP - 1;
			if (s.zombies[i] != (hung ? 1 : 0))
				fail_msg("round %d (stop %d ms into a tick): worker %d has %d zombie verdicts (want %d)", r,
					 (int)((stop / MS) % TICK_MS), i, s.zombies[i], hung ? 1 : 0);
			if (hung && s.zombie_t[i] != s.stall_t + INTERVAL_MS * MS)
				fail_msg("round %d: the hung one was declared %lld ms after host_stall_suspected, want %d", r,
					 (long long)(s.zombie_t[i] - s.stall_t) / (long long)MS, INTERVAL_MS);
		}
		guarded++;
		sim_down(&s);
	}
	assert_int_equal(guarded, ROUNDS);
}

static void stall_spread_stop_longer_declared_after_hold(void **state)
{
	(void)state;
	for (int r = 0; r < ROUNDS; r += 7) {
		struct sim s;
		sim_up(&s);
		sim_run_to(&s, s.t + 1000 * MS + (uint64_t)r * MS);
		uint64_t stop = s.t;
		for (int i = 0; i < NSTOP; i++)
			s.stopped[i] = true;
		sim_run_to(&s, stop + (ZOMBIE_MS + 4 * INTERVAL_MS) * MS);
		if (s.stalls != 1)
			fail_msg("round %d: %d host stalls, want 1", r, s.stalls);
		/* The hold began at the first zombie instant, one tick at most
		 * after the earliest last beat + 1.5 s. */
		uint64_t first_beat = UINT64_MAX;
		for (int i = 0; i < NSTOP; i++)
			if (s.last_beat[i] < first_beat)
				first_beat = s.last_beat[i];
		if (s.stall_t < first_beat + ZOMBIE_MS * MS || s.stall_t > first_beat + (ZOMBIE_MS + TICK_MS) * MS)
			fail_msg("round %d: host_stall_suspected %lld ms after the earliest last beat", r,
				 (long long)(s.stall_t - first_beat) / (long long)MS);
		for (int i = 0; i < NW; i++) {
			int want = i < NSTOP ? 1 : 0;
			if (s.zombies[i] != want)
				fail_msg("round %d: worker %d has %d zombie verdicts (want %d)", r, i, s.zombies[i], want);
			if (want && s.zombie_t[i] != s.stall_t + INTERVAL_MS * MS)
				fail_msg("round %d: worker %d declared %lld ms after host_stall_suspected, want %d", r, i,
					 (long long)(s.zombie_t[i] - s.stall_t) / (long long)MS, INTERVAL_MS);
		}
		sim_down(&s);
	}
}

static void stall_lone_hang_caught_in_one_tick(void **state)
{
	(void)state;
	for (int r = 0; r < ROUNDS; r++) {
		struct sim s;
		sim_up(&s);
		sim_run_to(&s, s.t + 1000 * MS + (uint64_t)r * MS);
		int lone = r % NW;
		s.stopped[lone] = true;
		sim_run_to(&s, s.t + (ZOMBIE_MS + 2 * INTERVAL_MS) * MS);
		if (s.stalls != 0)
			fail_msg("round %d: host_stall_suspected for a lone hang", r);
		for (int i = 0; i < NW; i++)
			if (s.zombies[i] != (i == lone))
				fail_msg("round %d: worker %d has %d zombie verdicts", r, i, s.zombies[i]);
		/* Its instant: last seen (the first tick at or after its last
		 * beat) + 1.5 s, itself a tick: declared at that tick. */
		uint64_t seen = s.last_beat[lone];
		if (seen % (TICK_MS * MS) != 0)
			seen += TICK_MS * MS - seen % (TICK_MS * MS);
		if (s.zombie_t[lone] != seen + ZOMBIE_MS * MS)
			fail_msg("round %d: the lone hang declared %lld ms after its last beat, want its instant (%lld)", r,
				 (long long)(s.zombie_t[lone] - s.last_beat[lone]) / (long long)MS,
				 (long long)(seen + ZOMBIE_MS * MS - s.last_beat[lone]) / (long long)MS);
		sim_down(&s);
	}
}

/* ==== against the real vigild ================================================================ */

#define HB "heartbeat-events.jsonl"
#define ZE "zombie-cleanup-events.jsonl"
#define REAL_ROUNDS 5

static int setup(void **state)
{
	(void)state;
	itest_home_create(&H);
	itest_write_policy(&H, INTERVAL_MS / 1000.0, 1.0, ZOMBIE_MS / 1000.0, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return itest_finish(&H, NULL);
}

static pid_t fleet_worker(const char *prefix, int i)
{
	char id[64];
	snprintf(id, sizeof id, "%s-%03d", prefix, i);
	const char *args[] = {"--beat-ms", "50", NULL};
	pid_t p = itest_worker_start(&H, id, "stall", "task-stall", args);
	json_t *ev = itest_wait_event(&H, HB, "worker_registered", id, 5000);
	CHECK(ev != NULL, "%s was not registered within 5 s", id);
	json_decref(ev);
	return p;
}

static size_t events_about(const char *file, const char *event, const char *prefix)
{
	json_t *all = itest_read_jsonl(&H, file);
	size_t i, n = 0, len = prefix != NULL ? strlen(prefix) : 0;
	json_t *o;
	json_array_foreach(all, i, o)
	{
		if (strcmp(itest_str(o, "event"), event) != 0)
			continue;
		if (prefix == NULL || strncmp(itest_str(o, "worker_id"), prefix, len) == 0)
			n++;
	}
	json_decref(all);
	return n;
}

/* Waits (bounded) until host stalls reach n or a zombie appears; returns
 * the number of host_stall_suspected events then. */
static size_t wait_stall_or_zombie(size_t n, int timeout_ms)
{
	int64_t until = itest_mono_ms() + timeout_ms;
	for (;;) {
		size_t stalls = events_about(HB, "host_stall_suspected", NULL);
		if (stalls >= n || events_about(ZE, "zombie_detected", NULL) > 0 || itest_mono_ms() >= until)
			return stalls;
		itest_sleep_ms(10);
	}
}

/* Every worker of the fleet beat again after the round: a heartbeat_recovered
 * for each stopped one, n of them in all so far. */
static void wait_recovered(size_t n)
{
	int64_t until = itest_mono_ms() + 10000;
	while (events_about(HB, "heartbeat_recovered", "worker-spread") < n && itest_mono_ms() < until)
		itest_sleep_ms(20);
	CHECK(events_about(HB, "heartbeat_recovered", "worker-spread") >= n, "%zu heartbeat_recovered, want %zu",
	      events_about(HB, "heartbeat_recovered", "worker-spread"), n);
}

static void stall_real_six_stopped_together_resume(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t p[NW];
	for (int i = 0; i < NW; i++)
		p[i] = fleet_worker("worker-spread", i);
	itest_sleep_ms(300);
	size_t recovered = 0;
	for (int r = 0; r < REAL_ROUNDS; r++) {
		for (int i = 0; i < NSTOP; i++)
			itest_signal(p[i], SIGSTOP);
		/* Resumed as soon as the guard speaks: just past the zombie
		 * threshold, and well within the one-interval hold. */
		size_t stalls = wait_stall_or_zombie((size_t)r + 1, ZOMBIE_MS + 5000);
		for (int i = 0; i < NSTOP; i++)
			itest_signal(p[i], SIGCONT);
		CHECK(events_about(ZE, "zombie_detected", NULL) == 0,
		      "round %d: six workers stopped together got zombie_detected (%zu) and %zu host_stall_suspected",
		      r + 1, events_about(ZE, "zombie_detected", NULL), stalls);
		CHECK(stalls == (size_t)r + 1, "round %d: %zu host_stall_suspected after six stopped together", r + 1,
		      stalls);
		recovered += NSTOP;
		wait_recovered(recovered);
		itest_sleep_ms(300);
	}
	CHECK(events_about(ZE, "zombie_detected", NULL) == 0, "%zu zombie_detected after the rounds",
	      events_about(ZE, "zombie_detected", NULL));
	json_t *all = itest_read_jsonl(&H, HB);
	size_t i;
	json_t *o;
	json_array_foreach(all, i, o)
	{
		if (strcmp(itest_str(o, "event"), "host_stall_suspected") != 0)
			continue;
		CHECK(itest_int(o, "silent_workers") >= NSTOP && itest_int(o, "monitored_workers") == NW,
		      "host_stall_suspected says %lld silent of %lld", (long long)itest_int(o, "silent_workers"),
		      (long long)itest_int(o, "monitored_workers"));
	}
	json_decref(all);
	for (int k = 0; k < NW; k++)
		CHECK(itest_alive(p[k]), "worker %d died", k);
}

/* The earliest timestamp_ms of event (about workers whose id starts with
 * prefix; "" for any) in file, -1 if none; *count receives how many. */
static int64_t first_ts(const char *file, const char *event, const char *prefix, size_t *count)
{
	json_t *all = itest_read_jsonl(&H, file);
	size_t i, len = strlen(prefix);
	int64_t first = -1;
	*count = 0;
	json_t *o;
	json_array_foreach(all, i, o)
	{
		if (strcmp(itest_str(o, "event"), event) != 0)
			continue;
		const char *id = itest_str(o, "worker_id");
		if (prefix[0] != '\0' && strncmp(id, prefix, len) != 0)
			continue;
		(*count)++;
		int64_t ts = itest_int(o, "timestamp_ms");
		if (first < 0 || ts < first)
			first = ts;
	}
	json_decref(all);
	return first;
}

static void stall_real_six_stopped_longer(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	size_t zombies_so_far = 0;
	for (int r = 0; r < REAL_ROUNDS; r++) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "worker-long%d", r);
		pid_t p[NW];
		for (int i = 0; i < NW; i++)
			p[i] = fleet_worker(prefix, i);
		itest_sleep_ms(300);
		for (int i = 0; i < NSTOP; i++)
			itest_signal(p[i], SIGSTOP);
		int64_t until = itest_mono_ms() + ZOMBIE_MS + INTERVAL_MS + 8000;
		size_t z = 0;
		while (itest_mono_ms() < until && (z = events_about(ZE, "zombie_detected", prefix)) < NSTOP)
			itest_sleep_ms(20);
		itest_sleep_ms(3 * TICK_MS);
		size_t stalls, zs;
		int64_t t_stall = first_ts(HB, "host_stall_suspected", "", &stalls);
		int64_t t_zombie = first_ts(ZE, "zombie_detected", prefix, &zs);
		CHECK(zs == NSTOP, "round %d: %zu zombie_detected for six workers that stayed stopped", r + 1, zs);
		CHECK(stalls == (size_t)r + 1, "round %d: %zu host_stall_suspected in all", r + 1, stalls);
		/* the latest host stall is this round's */
		json_t *all = itest_read_jsonl(&H, HB);
		size_t i;
		json_t *o;
		json_array_foreach(all, i, o)
		{
			if (strcmp(itest_str(o, "event"), "host_stall_suspected") == 0)
				t_stall = itest_int(o, "timestamp_ms");
		}
		json_decref(all);
		/* Held one interval (the hold is on vigild's clock: allow one
		 * tick of rounding, never less). */
		CHECK(t_zombie >= t_stall + INTERVAL_MS - TICK_MS,
		      "round %d: the first zombie_detected came %lld ms after host_stall_suspected (hold: %d ms)", r + 1,
		      (long long)(t_zombie - t_stall), INTERVAL_MS);
		for (int k = NSTOP; k < NW; k++) {
			char id[64];
			snprintf(id, sizeof id, "%s-%03d", prefix, k);
			CHECK(itest_count_events(&H, ZE, "zombie_detected", id) == 0, "round %d: %s (beating) blamed",
			      r + 1, id);
		}
		zombies_so_far += zs;
		for (int k = 0; k < NW; k++)
			itest_kill(p[k]);
		itest_sleep_ms(300);
	}
	CHECK(zombies_so_far == (size_t)REAL_ROUNDS * NSTOP, "%zu zombies in all", zombies_so_far);
}

static void stall_real_lone_hang(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t p[NW];
	for (int i = 0; i < NW; i++)
		p[i] = fleet_worker("worker-lone", i);
	itest_sleep_ms(300);
	for (int r = 0; r < REAL_ROUNDS; r++) {
		int lone = r; /* a fresh one each round */
		char id[64];
		snprintf(id, sizeof id, "worker-lone-%03d", lone);
		itest_signal(p[lone], SIGSTOP);
		json_t *z = itest_wait_event(&H, ZE, "zombie_detected", id, ZOMBIE_MS + 5000);
		CHECK(z != NULL, "round %d: a lone hung worker was not declared a zombie", r + 1);
		int64_t late = itest_int(z, "timestamp_ms") - itest_int(z, "due_ms");
		json_decref(z);
		CHECK(late >= 0 && late <= TICK_MS + itest_slack_ms(),
		      "round %d: declared %lld ms after its instant (one tick: %d ms, slack %d ms)", r + 1, (long long)late,
		      TICK_MS, itest_slack_ms());
		CHECK(events_about(HB, "host_stall_suspected", NULL) == 0, "round %d: host_stall_suspected for one hang",
		      r + 1);
		CHECK(events_about(ZE, "zombie_detected", "worker-lone") == (size_t)r + 1, "round %d: %zu zombies", r + 1,
		      events_about(ZE, "zombie_detected", "worker-lone"));
		itest_kill(p[lone]);
		itest_sleep_ms(200);
	}
}

int main(void)
{
	if (getenv("VIGIL_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("VIGIL_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stall_spread_stop_resumed_no_verdict),
		cmocka_unit_test(stall_spread_stop_longer_declared_after_hold),
		cmocka_unit_test(stall_lone_hang_caught_in_one_tick),
		cmocka_unit_test_setup_teardown(stall_real_six_stopped_together_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(stall_real_six_stopped_longer, setup, teardown),
		cmocka_unit_test_setup_teardown(stall_real_lone_hang, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
