/*
 * test_core.c - unit tests of the segment, the emitter, the scanner's
 * arithmetic and verdicts, and the file rules.
 *
 * The scanner tests drive vigil_scanner_tick() with a synthetic monotonic
 * clock, so "never before, at most one tick late" is checked exactly,
 * without sleeping and without depending on how busy the machine is.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "policy.h"
#include "scanner.h"
#include "segment.h"
#include "util.h"
#include "verify.h"
#include "vigil.h"

#define MS 1000000ull

static char seg_name[64];

static void make_name(void)
{
	static int n;
	snprintf(seg_name, sizeof seg_name, "/vigil-ut-%d-%d", (int)getpid(), n++);
}

static int teardown_seg(void **state)
{
	(void)state;
	shm_unlink(seg_name);
	return 0;
}

/* ---- layout ------------------------------------------------------------------ */

static void layout_sizes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct vigil_shm_header), 4096);
	assert_int_equal(sizeof(struct vigil_slot_hot), 64);
	assert_int_equal(sizeof(struct vigil_slot_cold), 256);
	assert_int_equal(sizeof(struct vigil_slot_view), 32);
	assert_int_equal(vigil_segment_size(1), 4096 + 64 + 256 + 32);
	assert_int_equal(vigil_segment_size(0), 0);
	assert_int_equal(vigil_segment_size(VIGIL_SLOTS_MAX + 1), 0);
	/* encodings round-trip at their limits */
	uint64_t b = vigil_beat_make(0x1234567ull, UINT32_MAX, 100, 100);
	assert_int_equal(vigil_beat_gen16(b), 0x4567);
	assert_int_equal(vigil_beat_count(b), UINT32_MAX);
	assert_int_equal(vigil_beat_health(b), 100);
	assert_int_equal(vigil_beat_progress(b), 100);
	uint64_t o = vigil_owner_make(VIGIL_SLOT_ZOMBIE, (1ull << 56) - 1);
	assert_int_equal(vigil_owner_state(o), VIGIL_SLOT_ZOMBIE);
	assert_true(vigil_owner_gen(o) == (1ull << 56) - 1);
}

static void header_check_rejects(void **state)
{
	(void)state;
	uint64_t size = vigil_segment_size(4);
	struct vigil_shm_header *h = calloc(1, size);
	assert_non_null(h);
	h->magic = VIGIL_MAGIC;
	h->abi_version = VIGIL_ABI_VERSION;
	h->header_size = VIGIL_HEADER_SIZE;
	h->slot_count = 4;
	h->hot_size = VIGIL_HOT_SIZE;
	h->cold_size = VIGIL_COLD_SIZE;
	h->view_size = VIGIL_VIEW_SIZE;
	h->hot_offset = VIGIL_HEADER_SIZE;
	h->cold_offset = VIGIL_HEADER_SIZE + 4 * 64;
	h->view_offset = h->cold_offset + 4 * 256;
	h->segment_size = size;
	assert_int_equal(vigil_header_check(h, size), 0);
	assert_int_equal(vigil_header_check(h, size - 1), -EBADMSG); /* size disagrees */
	assert_int_equal(vigil_header_check(h, 100), -EBADMSG);
	h->slot_count = 5;
	assert_int_equal(vigil_header_check(h, size), -EBADMSG); /* count vs size */
	h->slot_count = 0xffffffffu;
	assert_int_equal(vigil_header_check(h, size), -EBADMSG);
	h->slot_count = 4;
	h->view_offset += 64;
	assert_int_equal(vigil_header_check(h, size), -EBADMSG); /* offsets */
	h->view_offset -= 64;
	h->abi_version = VIGIL_ABI_VERSION + 1;
	assert_int_equal(vigil_header_check(h, size), -EPROTO);
	h->abi_version = VIGIL_ABI_VERSION;
	h->magic ^= 1;
	assert_int_equal(vigil_header_check(h, size), -EBADMSG);
	free(h);
}

/* Regression: vigil.h read field 21 (always 0) instead of 22 (starttime),
 * which silently disabled the recycled-pid check at registration. */
static void start_ticks_field(void **state)
{
	(void)state;
	uint64_t emitter = vigil__pid_start_ticks((int)getpid());
	assert_true(emitter != 0);
	assert_true(emitter == vigil_proc_start_ticks((int32_t)getpid()));
}

static void id_rule(void **state)
{
	(void)state;
	char long64[65], long65[66];
	memset(long64, 'a', 64);
	long64[64] = '\0';
	memset(long65, 'a', 65);
	long65[65] = '\0';
	assert_true(vigil_id_valid("worker-implementation-001"));
	assert_true(vigil_id_valid("ok.1_2-3"));
	assert_true(vigil_id_valid(long64));
	assert_false(vigil_id_valid(long65));
	assert_false(vigil_id_valid(""));
	assert_false(vigil_id_valid(NULL));
	assert_false(vigil_id_valid(".hidden"));
	assert_false(vigil_id_valid("../etc"));
	assert_false(vigil_id_valid("a/b"));
	assert_false(vigil_id_valid("sp ace"));
	assert_false(vigil_id_valid("nl\n"));
	assert_false(vigil_id_valid("\xc3\xa9"));
	/* a 64-byte field without NUL from the segment */
	char field[64];
	memset(field, 'x', sizeof field);
	char out[65];
	assert_true(vigil_id_copy(out, field));
	assert_int_equal(strlen(out), 64);
	field[3] = '/';
	assert_false(vigil_id_copy(out, field));
}

/* ---- health arithmetic ------------------------------------------------------- */

static void health_boundaries(void **state)
{
	(void)state;
	assert_int_equal(vigil_health_missed(0, 50 * MS), 0);
	assert_int_equal(vigil_health_missed(50 * MS - 1, 50 * MS), 0);
	assert_int_equal(vigil_health_missed(50 * MS, 50 * MS), 1);
	assert_int_equal(vigil_health_missed(UINT64_MAX, 1), UINT32_MAX);
	assert_int_equal(vigil_health_missed(5, 0), 0);
	assert_int_equal(vigil_health_score(100, 5, 0), 100);
	assert_int_equal(vigil_health_score(100, 5, 1), 95);
	assert_int_equal(vigil_health_score(100, 5, 20), 0);
	assert_int_equal(vigil_health_score(100, 5, 21), 0);
	assert_int_equal(vigil_health_score(100, 5, UINT32_MAX), 0);
	assert_int_equal(vigil_health_score(250, 5, 0), 100); /* reported clamps */
	assert_int_equal(vigil_health_score(0, 5, 0), 0);
	assert_int_equal(vigil_health_score(85, 0, 1000), 85);
	assert_int_equal(vigil_health_score(100, 2.5, 3), 92); /* floor(92.5) */

	struct vigil_heartbeat_policy p;
	vigil_policy_heartbeat_defaults(&p);
	/* defaults: 100 - 5m < 20 at m = 17 (510 s) > zombie 300 s */
	assert_true(vigil_health_zombie_due_ns(&p, 100) == 300ull * 1000 * MS);
	/* reported below min: zombie at once */
	assert_true(vigil_health_zombie_due_ns(&p, 19) == 0);
	assert_true(vigil_health_zombie_due_ns(&p, 20) > 0);
	/* decay 10, min 20, interval 1 s: 100 - 10m < 20 first at m = 9 */
	p.health_score_decay_rate = 10;
	p.interval_ns = 1000 * MS;
	p.zombie_ns = 100000 * MS;
	assert_true(vigil_health_zombie_due_ns(&p, 100) == 9000 * MS);
	/* fractional minimum: floor(100 - 10m) < 20.5 first at m = 8 */
	p.min_health_score = 20.5;
	assert_true(vigil_health_zombie_due_ns(&p, 100) == 8000 * MS);
	/* decay 0: only the zombie threshold */
	p.health_score_decay_rate = 0;
	assert_true(vigil_health_zombie_due_ns(&p, 100) == 100000 * MS);
}

/* ---- segment ------------------------------------------------------------------- */

static void segment_create_attach_refuse(void **state)
{
	(void)state;
	make_name();
	struct vigil_segment a, b;
	char err[512];
	assert_int_equal(vigil_segment_open(&a, seg_name, 8, 0600, false, true, err, sizeof err), -ENOENT);
	assert_int_equal(vigil_segment_open(&a, seg_name, 8, 0600, true, true, err, sizeof err), 0);
	assert_true(a.created);
	assert_int_equal(a.slots, 8);
	/* attach: keeps the existing slot count whatever is asked */
	assert_int_equal(vigil_segment_open(&b, seg_name, 99, 0600, true, false, err, sizeof err), 0);
	assert_false(b.created);
	assert_int_equal(b.slots, 8);
	vigil_segment_close(&b);

	char path[128];
	snprintf(path, sizeof path, "/dev/shm%s", seg_name);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* wider mode than asked: refused */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(vigil_segment_open(&b, seg_name, 8, 0600, true, true, err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "mode"));
	assert_int_equal(chmod(path, 0600), 0);

	/* another ABI: refused by vigild and by the emitter, with the reason */
	a.hdr->abi_version = VIGIL_ABI_VERSION + 7;
	assert_int_equal(vigil_segment_open(&b, seg_name, 8, 0600, true, true, err, sizeof err), -EPROTO);
	assert_non_null(strstr(err, "ABI"));
	setenv("VIGIL_SHM", seg_name, 1);
	setenv("WORKER_ID", "worker-test-001", 1);
	unsetenv("VIGIL_SLOT");
	unsetenv("VIGIL_GEN");
	struct vigil v;
	int rc = vigil_attach(&v);
	assert_int_equal(rc, -EPROTO);
	assert_non_null(strstr(vigil_strerror(rc), "ABI"));
	a.hdr->abi_version = VIGIL_ABI_VERSION;

	/* bad magic */
	a.hdr->magic = 0;
	assert_int_equal(vigil_segment_open(&b, seg_name, 8, 0600, true, true, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "bad header"));
	assert_int_equal(vigil_attach(&v), -EBADMSG);
	a.hdr->magic = VIGIL_MAGIC;

	/* size that disagrees with the header */
	int fd = shm_open(seg_name, O_RDWR, 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)a.size + 4096), 0);
	assert_int_equal(vigil_segment_open(&b, seg_name, 8, 0600, true, true, err, sizeof err), -EBADMSG);
	assert_int_equal(ftruncate(fd, (off_t)a.size), 0);
	close(fd);
	assert_int_equal(vigil_segment_open(&b, seg_name, 8, 0600, true, true, err, sizeof err), 0);
	vigil_segment_close(&b);
	vigil_segment_close(&a);

	/* names */
	assert_int_equal(vigil_segment_name_check("/ok-name_1.2"), 0);
	assert_int_equal(vigil_segment_name_check("noslash"), -EINVAL);
	assert_int_equal(vigil_segment_name_check("/a/b"), -EINVAL);
	assert_int_equal(vigil_segment_name_check("/"), -EINVAL);
	assert_int_equal(vigil_segment_name_check("/.hidden"), -EINVAL);
	char n1[64], n2[64];
	assert_int_equal(vigil_segment_name_for_home("/tmp", n1, sizeof n1), 0);
	assert_int_equal(vigil_segment_name_for_home("/tmp/../tmp/.", n2, sizeof n2), 0);
	assert_string_equal(n1, n2); /* real path, not spelling */
	assert_int_equal(vigil_segment_name_check(n1), 0);
}

struct claim_arg {
	const char *name;
	int tries;
	int ok, full;
	uint32_t slots[64];
};

static void *claim_thread(void *p)
{
	struct claim_arg *a = p;
	for (int i = 0; i < a->tries; i++) {
		struct vigil v;
		memset(&v, 0, sizeof v);
		if (vigil__map(&v, a->name, 1) < 0)
			continue;
		char id[32];
		snprintf(id, sizeof id, "worker-t-%p-%d", p, i);
		int rc = vigil_register(&v, id, "claim", "task-1", (int)getpid());
		if (rc == 0)
			a->slots[a->ok++] = v.slot;
		else if (rc == -ENOSPC)
			a->full++;
		munmap(v.hdr, v.map_size); /* keep the claim; drop only our mapping */
	}
	return NULL;
}

static void claim_many_threads(void **state)
{
	(void)state;
	make_name();
	struct vigil_segment seg;
	char err[256];
	enum { SLOTS = 64, THREADS = 8, TRIES = 16 };
	assert_int_equal(vigil_segment_open(&seg, seg_name, SLOTS, 0600, true, true, err, sizeof err), 0);
	pthread_t th[THREADS];
	static struct claim_arg args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		memset(&args[i], 0, sizeof args[i]);
		args[i].name = seg_name;
		args[i].tries = TRIES;
		assert_int_equal(pthread_create(&th[i], NULL, claim_thread, &args[i]), 0);
	}
	int ok = 0, full = 0;
	int seen[SLOTS] = {0};
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
		full += args[i].full;
		for (int k = 0; k < args[i].ok; k++)
			seen[args[i].slots[k]]++;
	}
	/* every slot handed out exactly once, none lost, the rest refused */
	assert_int_equal(ok, SLOTS);
	assert_int_equal(full, THREADS * TRIES - SLOTS);
	for (int s = 0; s < SLOTS; s++) {
		assert_int_equal(seen[s], 1);
		uint64_t o = atomic_load(&seg.hot[s].owner);
		assert_int_equal(vigil_owner_state(o), VIGIL_SLOT_ACTIVE);
		assert_true(vigil_owner_gen(o) == 1);
	}
	vigil_segment_close(&seg);
}

/* ---- scanner, on a synthetic clock ------------------------------------------- */

struct rig {
	struct vigil_segment seg;
	struct vigil_scanner sc;
	struct vigil_heartbeat_policy pol;
	uint64_t t; /* synthetic monotonic ns */
	int first_beats;
};

static void rig_up(struct rig *r, uint32_t slots)
{
	make_name();
	char err[256];
	assert_int_equal(vigil_segment_open(&r->seg, seg_name, slots, 0600, true, true, err, sizeof err), 0);
	const char *pol = "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.2,"
			  "\"zombie_threshold_seconds\":0.5,\"progress_stall_seconds\":0.3}";
	char e2[256];
	assert_int_equal(vigil_policy_heartbeat_parse(pol, strlen(pol), "t", &r->pol, e2, sizeof e2, NULL, 0), 0);
	assert_true(r->pol.tick_ns == 12500000ull);
	assert_int_equal(vigil_scanner_init(&r->sc, &r->seg, &r->pol), 0);
	r->t = 1000000000000ull;
	r->sc.prev_mono_ns = r->t;
	r->sc.vclock_ns = r->t;
	vigil_scanner_tick(&r->sc, r->t); /* first pass: empty */
}

static void rig_down(struct rig *r)
{
	vigil_scanner_destroy(&r->sc);
	vigil_segment_close(&r->seg);
}

/* Drains the ring; FIRST_BEAT events are counted in r->first_beats and
 * not returned, so that verdict tests read as the spec's event list. */
static int rig_events(struct rig *r, struct vigil_event *out, int max)
{
	int n = 0;
	struct vigil_event ev;
	while (vigil_scanner_next_event(&r->sc, &ev)) {
		if (ev.kind == VIGIL_EV_FIRST_BEAT)
			r->first_beats++;
		else if (n < max)
			out[n++] = ev;
	}
	return n;
}

/* Ticks every tick_ns up to t, the last tick landing exactly on t: a
 * healthy vigild.  (A single jump of more than 4 ticks is a supervisor
 * stall, which rig_jump_to() simulates.) */
static void rig_tick_to(struct rig *r, uint64_t t)
{
	while (r->t + r->pol.tick_ns < t) {
		r->t += r->pol.tick_ns;
		vigil_scanner_tick(&r->sc, r->t);
	}
	r->t = t;
	vigil_scanner_tick(&r->sc, t);
}

static void rig_jump_to(struct rig *r, uint64_t t)
{
	r->t = t;
	vigil_scanner_tick(&r->sc, t);
}

static void register_worker(struct rig *r, struct vigil *v, const char *id)
{
	memset(v, 0, sizeof *v);
	assert_int_equal(vigil__map(v, seg_name, 1), 0);
	assert_int_equal(vigil_register(v, id, "test", "task-1", (int)getpid()), 0);
	(void)r;
}

static void scanner_verdicts_exact(void **state)
{
	(void)state;
	struct rig r;
	memset(&r, 0, sizeof r);
	rig_up(&r, 4);
	struct vigil v;
	register_worker(&r, &v, "worker-test-001");
	struct vigil_event ev[64];
	uint64_t t0 = r.t + 1000; /* registration seen here */
	rig_tick_to(&r, t0);
	int n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_REGISTERED);
	assert_string_equal(ev[0].worker_id, "worker-test-001");

	/* silent: nothing before 50 ms, missed at exactly 50 ms */
	rig_tick_to(&r, t0 + 50 * MS - 1);
	assert_int_equal(rig_events(&r, ev, 64), 0);
	rig_tick_to(&r, t0 + 50 * MS);
	n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_MISSED);
	assert_int_equal(ev[0].missed, 1);
	assert_int_equal(ev[0].health_score, 95);
	/* reported once per episode */
	rig_tick_to(&r, t0 + 60 * MS);
	assert_int_equal(rig_events(&r, ev, 64), 0);

	/* a beat after the miss: recovered, and the episode ends */
	vigil_beat(&v, 80, 42);
	rig_tick_to(&r, t0 + 70 * MS);
	n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_RECOVERED);
	assert_int_equal(ev[0].reported_health, 80);
	assert_int_equal(ev[0].progress, 42);
	assert_int_equal(r.first_beats, 1); /* the first beat is announced once */
	uint64_t seen = t0 + 70 * MS;

	/* timeout at exactly 200 ms after last_seen, preceded by missed */
	rig_tick_to(&r, seen + 50 * MS);
	n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_MISSED);
	assert_int_equal(ev[0].health_score, 75);
	rig_tick_to(&r, seen + 200 * MS - 1);
	assert_int_equal(rig_events(&r, ev, 64), 0);
	rig_tick_to(&r, seen + 200 * MS);
	n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_TIMEOUT);
	assert_int_equal(ev[0].missed, 4);
	/* zombie at exactly 500 ms; the slot becomes ZOMBIE */
	rig_tick_to(&r, seen + 500 * MS - 1);
	assert_int_equal(rig_events(&r, ev, 64), 0);
	rig_tick_to(&r, seen + 500 * MS);
	n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_ZOMBIE);
	assert_int_equal(ev[0].health_score, 30);
	assert_int_equal(vigil_owner_state(atomic_load(&r.seg.hot[v.slot].owner)), VIGIL_SLOT_ZOMBIE);
	assert_int_equal(atomic_load(&r.seg.view[v.slot].verdict), VIGIL_VERDICT_ZOMBIE);
	/* beats of a zombie are not credited, and nothing more is reported */
	vigil_beat(&v, 100, 1);
	rig_tick_to(&r, seen + 600 * MS);
	assert_int_equal(rig_events(&r, ev, 64), 0);
	/* a zombie that detaches cleanly is freed */
	assert_int_equal(vigil_detach(&v), 0);
	rig_tick_to(&r, seen + 610 * MS);
	n = rig_events(&r, ev, 64);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_DETACHED);
	assert_int_equal(vigil_owner_state(atomic_load(&r.seg.hot[0].owner)), VIGIL_SLOT_FREE);
	rig_down(&r);
}

static void scanner_low_health_is_zombie(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 2);
	struct vigil v;
	register_worker(&r, &v, "worker-test-002");
	vigil_beat(&v, 10, 0); /* reports health below min_health_score (20) */
	struct vigil_event ev[8];
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 8), 1); /* registered (with the first word) */
	vigil_beat(&v, 10, 0);
	rig_tick_to(&r, r.t + MS);
	int n = rig_events(&r, ev, 8);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_ZOMBIE);
	assert_int_equal(ev[0].health_score, 10);
	rig_down(&r);
}

static void scanner_generation_reuse(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 1); /* one slot: reuse is certain */
	struct vigil a, stale;
	register_worker(&r, &a, "worker-old-001");
	stale = a; /* the old owner keeps a handle (and its mapping) */
	struct vigil_event ev[8];
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 8), 1);
	/* old owner says goodbye; vigild frees the slot */
	struct vigil_slot_hot *hot = a.hot;
	uint64_t gen_a = a.gen;
	uint64_t expect = vigil_owner_make(VIGIL_SLOT_ACTIVE, gen_a);
	assert_true(atomic_compare_exchange_strong(&hot->owner, &expect, vigil_owner_make(VIGIL_SLOT_DETACHED, gen_a)));
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 8), 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_DETACHED);
	/* a new worker gets the same slot with the next generation */
	struct vigil b;
	register_worker(&r, &b, "worker-new-001");
	assert_int_equal(b.slot, a.slot);
	assert_true(b.gen == gen_a + 1);
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 8), 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_REGISTERED);
	uint64_t reg_t = r.t;
	/* the old owner keeps beating through its stale handle: never credited */
	for (int i = 0; i < 5; i++) {
		vigil_beat(&stale, 100, 50);
		rig_tick_to(&r, r.t + 10 * MS);
	}
	assert_true(atomic_load(&r.sc.metrics.stale_beats_ignored) >= 1);
	assert_int_equal(atomic_load(&r.seg.view[b.slot].beats), 0);
	rig_tick_to(&r, reg_t + 50 * MS);
	int n = rig_events(&r, ev, 8);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_MISSED); /* b is silent, whatever a writes */
	/* the stale handle cannot detach the new owner */
	assert_int_equal(vigil_detach(&stale), -ESTALE);
	assert_int_equal(vigil_owner_state(atomic_load(&r.seg.hot[b.slot].owner)), VIGIL_SLOT_ACTIVE);
	rig_down(&r);
	munmap(b.hdr, b.map_size);
}

static void scanner_supervisor_stall_credited(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 2);
	struct vigil v;
	register_worker(&r, &v, "worker-test-003");
	struct vigil_event ev[16];
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 16), 1);
	vigil_beat(&v, 100, 1);
	rig_tick_to(&r, r.t + 12 * MS);
	/* vigild could not run for 2 s (stopped, starved): not the worker's fault */
	rig_jump_to(&r, r.t + 2000 * MS);
	int n = rig_events(&r, ev, 16);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_TICK_LATE);
	assert_true(ev[0].count_a >= 1980);
	/* the worker beats again right after: no verdict at all */
	vigil_beat(&v, 100, 2);
	rig_tick_to(&r, r.t + 12 * MS);
	assert_int_equal(rig_events(&r, ev, 16), 0);
	/* a real silence afterwards is still caught, with the credit reported */
	rig_tick_to(&r, r.t + 50 * MS);
	n = rig_events(&r, ev, 16);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_MISSED);
	assert_int_equal(ev[0].stall_credit_ms, 0);
	rig_down(&r);
}

static void scanner_mass_silence_says_so_first(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 8);
	struct vigil v[6];
	char id[32];
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof id, "worker-mass-%03d", i);
		register_worker(&r, &v[i], id);
	}
	struct vigil_event ev[64];
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 64), 6);
	uint64_t t0 = r.t;
	/* everyone silent; tick every 12.5 ms up to the zombie threshold */
	int zombies = 0, stalls = 0, first_zombie_idx = -1, stall_idx = -1, idx = 0;
	for (uint64_t t = t0 + 12500000ull; t <= t0 + 600 * MS; t += 12500000ull) {
		rig_tick_to(&r, t);
		int n = rig_events(&r, ev, 64);
		for (int i = 0; i < n; i++, idx++) {
			if (ev[i].kind == VIGIL_EV_HOST_STALL) {
				stalls++;
				stall_idx = idx;
				assert_int_equal(ev[i].count_a, 6);
			}
			if (ev[i].kind == VIGIL_EV_ZOMBIE) {
				zombies++;
				if (first_zombie_idx < 0) {
					first_zombie_idx = idx;
					/* held for one interval after the 500 ms mark */
					assert_true(t >= t0 + 550 * MS);
				}
			}
		}
	}
	assert_int_equal(stalls, 1);
	assert_int_equal(zombies, 6);
	assert_true(stall_idx < first_zombie_idx);
	rig_down(&r);
}

static void scanner_progress_stall(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 2);
	struct vigil v;
	register_worker(&r, &v, "worker-stall-001");
	struct vigil_event ev[8];
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 8), 1);
	vigil_beat(&v, 100, 7);
	rig_tick_to(&r, r.t + 10 * MS);
	uint64_t moved = r.t; /* progress became 7 here */
	/* beats keep coming, progress stays at 7: nothing before 300 ms */
	while (r.t + 10 * MS < moved + 300 * MS) {
		vigil_beat(&v, 100, 7);
		rig_tick_to(&r, r.t + 10 * MS);
		assert_int_equal(rig_events(&r, ev, 8), 0);
	}
	vigil_beat(&v, 100, 7);
	rig_tick_to(&r, moved + 300 * MS);
	int n = rig_events(&r, ev, 8);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_PROGRESS_STALL);
	assert_true(ev[0].count_a >= 300);
	/* once per episode */
	vigil_beat(&v, 100, 7);
	rig_tick_to(&r, r.t + 10 * MS);
	assert_int_equal(rig_events(&r, ev, 8), 0);
	/* progress moves: a new episode can start later */
	vigil_beat(&v, 100, 8);
	rig_tick_to(&r, r.t + 10 * MS);
	moved = r.t;
	while (r.t + 10 * MS < moved + 300 * MS) {
		vigil_beat(&v, 100, 8);
		rig_tick_to(&r, r.t + 10 * MS);
	}
	vigil_beat(&v, 100, 8);
	rig_tick_to(&r, moved + 300 * MS);
	n = rig_events(&r, ev, 8);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_PROGRESS_STALL);
	rig_down(&r);
}

static void scanner_ring_full_defers(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 2);
	struct vigil v;
	register_worker(&r, &v, "worker-test-004");
	struct vigil_event ev[4];
	rig_tick_to(&r, r.t + MS);
	assert_int_equal(rig_events(&r, ev, 4), 1);
	uint64_t t0 = r.t;
	/* fill the ring as a stalled action thread would leave it */
	struct vigil_event filler;
	memset(&filler, 0, sizeof filler);
	filler.kind = VIGIL_EV_TICK_LATE;
	int filled = 0;
	while (ck_ring_enqueue_spsc_vigil_event(&r.sc.ev_ring, r.sc.ev_buf, &filler))
		filled++;
	assert_int_equal(filled, VIGIL_EV_RING_SIZE - 1);
	rig_tick_to(&r, t0 + 50 * MS);
	assert_true(atomic_load(&r.sc.metrics.ring_full_deferrals) >= 1);
	/* drain: the deferred verdict comes on the next tick, once */
	struct vigil_event e;
	while (vigil_scanner_next_event(&r.sc, &e))
		;
	rig_tick_to(&r, t0 + 60 * MS);
	int n = rig_events(&r, ev, 4);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_MISSED);
	rig_tick_to(&r, t0 + 70 * MS);
	assert_int_equal(rig_events(&r, ev, 4), 0);
	rig_down(&r);
}

static void scanner_stale_claim_freed(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 2);
	/* a worker claimed slot 0 and died before publishing */
	uint64_t o = atomic_load(&r.seg.hot[0].owner);
	uint64_t claimed = vigil_owner_make(VIGIL_SLOT_CLAIMED, vigil_owner_gen(o) + 1);
	atomic_store(&r.seg.hot[0].owner, claimed);
	struct vigil_event ev[4];
	uint64_t t0 = r.t;
	for (uint64_t t = t0 + 100 * MS; t < t0 + VIGIL_CLAIM_STALE_NS; t += 100 * MS) {
		rig_tick_to(&r, t);
		assert_int_equal(rig_events(&r, ev, 4), 0);
	}
	rig_tick_to(&r, t0 + VIGIL_CLAIM_STALE_NS + 200 * MS);
	int n = rig_events(&r, ev, 4);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VIGIL_EV_CLAIM_STALE);
	assert_true(atomic_load(&r.seg.hot[0].owner) == vigil_owner_make(VIGIL_SLOT_FREE, vigil_owner_gen(claimed)));
	rig_down(&r);
}

static void scanner_garbage_segment(void **state)
{
	(void)state;
	struct rig r = {0};
	rig_up(&r, 16);
	/* random bytes over every slot, header fields included: the scanner
	 * must neither crash nor read out of bounds (run under ASan). */
	unsigned seed = 12345;
	struct vigil_event ev[64];
	for (int round = 0; round < 200; round++) {
		unsigned char *p = (unsigned char *)r.seg.hdr;
		for (uint64_t i = 0; i < r.seg.size; i++) {
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 7 == 0)
				p[i] = (unsigned char)(seed >> 8);
		}
		rig_tick_to(&r, r.t + 12500000ull);
		rig_events(&r, ev, 64);
	}
	assert_true(atomic_load(&r.sc.metrics.ticks) >= 200);
	rig_down(&r);
}

/* ---- file rules ------------------------------------------------------------------ */

static void fs_rules(void **state)
{
	(void)state;
	char dir[] = "/tmp/vigil-ut-fs-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int d = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(d >= 0);
	/* replace is atomic and leaves no temp file */
	assert_int_equal(vigil_fs_replace(d, "a.json", "{}\n", 3), 0);
	assert_int_equal(vigil_fs_replace(d, "a.json", "{\"x\":1}\n", 8), 0);
	char *buf;
	size_t len;
	assert_int_equal(vigil_fs_read(d, "a.json", 100, &buf, &len), 0);
	assert_string_equal(buf, "{\"x\":1}\n");
	free(buf);
	/* a planted symlink is replaced, never followed */
	char target[128];
	snprintf(target, sizeof target, "%s/target", dir);
	int tf = open(target, O_CREAT | O_WRONLY, 0644);
	assert_true(tf >= 0);
	assert_int_equal(write(tf, "precious", 8), 8);
	close(tf);
	assert_int_equal(symlinkat(target, d, "link.json"), 0);
	assert_int_equal(vigil_fs_read(d, "link.json", 100, &buf, &len), -ELOOP);
	assert_true(vigil_fs_open_append(d, "link.json") < 0);
	assert_int_equal(vigil_fs_replace(d, "link.json", "{}\n", 3), 0);
	assert_int_equal(vigil_fs_read(d, "target", 100, &buf, &len), 0);
	assert_string_equal(buf, "precious");
	free(buf);
	/* a symlinked directory component is not followed */
	assert_int_equal(symlinkat("/etc", d, "evil"), 0);
	assert_true(vigil_fs_open_dir(d, "evil/x", true) < 0);
	assert_true(vigil_fs_open_dir(d, "ok/../x", true) < 0);
	int sub = vigil_fs_open_dir(d, "ok/deeper", true);
	assert_true(sub >= 0);
	close(sub);
	/* oversize and non-regular files are refused */
	assert_int_equal(vigil_fs_read(d, "a.json", 3, &buf, &len), -EFBIG);
	assert_int_equal(vigil_fs_read(d, "ok", 100, &buf, &len), -EINVAL);
	/* append: whole lines only */
	int af = vigil_fs_open_append(d, "e.jsonl");
	assert_true(af >= 0);
	assert_int_equal(vigil_fs_append(af, "{\"a\":1}\n", 8), 0);
	assert_int_equal(vigil_fs_append(af, "no newline", 10), -EINVAL);
	json_t *o = json_pack("{s:s}", "result", "success");
	assert_int_equal(vigil_fs_append_json(af, o), 0);
	json_decref(o);
	close(af);
	assert_int_equal(vigil_fs_read(d, "e.jsonl", 1000, &buf, &len), 0);
	assert_string_equal(buf, "{\"a\":1}\n{\"result\":\"success\"}\n");
	free(buf);
	/* timestamps */
	char iso[21];
	vigil_iso8601(1795773600000ull, iso);
	assert_string_equal(iso, "2026-11-27T10:00:00Z");
	close(d);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	urcu_memb_register_thread();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layout_sizes),
		cmocka_unit_test(header_check_rejects),
		cmocka_unit_test(id_rule),
		cmocka_unit_test(start_ticks_field),
		cmocka_unit_test(health_boundaries),
		cmocka_unit_test_teardown(segment_create_attach_refuse, teardown_seg),
		cmocka_unit_test_teardown(claim_many_threads, teardown_seg),
		cmocka_unit_test_teardown(scanner_verdicts_exact, teardown_seg),
		cmocka_unit_test_teardown(scanner_low_health_is_zombie, teardown_seg),
		cmocka_unit_test_teardown(scanner_generation_reuse, teardown_seg),
		cmocka_unit_test_teardown(scanner_supervisor_stall_credited, teardown_seg),
		cmocka_unit_test_teardown(scanner_mass_silence_says_so_first, teardown_seg),
		cmocka_unit_test_teardown(scanner_progress_stall, teardown_seg),
		cmocka_unit_test_teardown(scanner_ring_full_defers, teardown_seg),
		cmocka_unit_test_teardown(scanner_stale_claim_freed, teardown_seg),
		cmocka_unit_test_teardown(scanner_garbage_segment, teardown_seg),
		cmocka_unit_test(fs_rules),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	urcu_memb_unregister_thread();
	return rc;
}
