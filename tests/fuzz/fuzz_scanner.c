/*
 * fuzz_scanner.c - the supervisor's reading of the segment: the scanner
 * (src/scanner.h) ticking over a segment whose every byte, header
 * included, comes from the input and keeps changing between ticks.
 *
 * README "Trust: the segment is untrusted input": "The supervisor treats every byte of the segment as untrusted
 * ... it can never crash, stall or hang the supervisor ... or make it read
 * past the segment."  The segment is a real shm object (128 slots, so that
 * its size is a whole number of pages) re-mapped between two PROT_NONE
 * guard pages: a read or write past either end faults at once.  The
 * scanner was opened on the segment before the bytes were scribbled, so
 * (as in vigild) it sizes everything from its own copy of the slot count.
 *
 * Input: [policy:1][image length:2][image] then operations, each a byte
 * and its operands, applied in order:
 *   0 tick       advance the synthetic clock (2 bytes x unit from the op
 *                byte: 1 ms, 100 ms, 10 s) and tick
 *   1 write      offset:3 len:1 bytes: scribble anywhere in the segment
 *   2 owner      slot:1 state:1 gen:2: a plausible owner word
 *   3 beat       slot:1 health:1 progress:1: a beat in the owner's generation
 *   4 identity   slot:1 pid:4 then valid or garbage ids (op bits)
 *   5 command    slot:1 gen:2: the action thread's WATCH (gone, or a pidfd
 *                of this process) or FORGET
 *   6 drain      take every event out of the ring
 * Events must name a slot inside the segment and a known kind; the tick
 * count is bounded (64 per input), so every input ends quickly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "fuzz_common.h"
#include "policy.h"
#include "scanner.h"
#include "segment.h"
#include "vigil.h"

#define SLOTS 128u /* 4096 + 128 * 352 = 12 pages exactly */
#define MAX_TICKS 64

static struct vigil_segment seg;
static char shm_name[64];
static struct vigil_heartbeat_policy policies[4];
static int self_pidfd = -1;

static void cleanup(void)
{
	if (shm_name[0] != '\0')
		shm_unlink(shm_name);
}

static void parse_policy(struct vigil_heartbeat_policy *p, const char *text)
{
	char err[512];
	if (vigil_policy_heartbeat_parse(text, strlen(text), "fuzz", p, err, sizeof err, NULL, 0) < 0) {
		fprintf(stderr, "fuzz: bad built-in policy: %s\n", err);
		abort();
	}
}

static void init_once(void)
{
	urcu_memb_register_thread();
	snprintf(shm_name, sizeof shm_name, "/vigil-fuzz-scan-%d", (int)getpid());
	shm_unlink(shm_name);
	atexit(cleanup);
	char err[512];
	if (vigil_segment_open(&seg, shm_name, SLOTS, 0600, true, true, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	if (seg.size % 4096 != 0)
		abort();
	/* Re-map between guard pages. */
	size_t page = 4096;
	char *area = mmap(NULL, seg.size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = shm_open(shm_name, O_RDWR | O_CLOEXEC, 0);
	if (area == MAP_FAILED || fd < 0)
		abort();
	char *base = mmap(area + page, seg.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		abort();
	munmap(seg.hdr, seg.size);
	seg.hdr = (struct vigil_shm_header *)base;
	seg.hot = (struct vigil_slot_hot *)(base + VIGIL_HEADER_SIZE);
	seg.cold = (struct vigil_slot_cold *)(base + VIGIL_HEADER_SIZE + (size_t)SLOTS * VIGIL_HOT_SIZE);
	seg.view = (struct vigil_slot_view *)(base + VIGIL_HEADER_SIZE +
					      (size_t)SLOTS * (VIGIL_HOT_SIZE + VIGIL_COLD_SIZE));
	parse_policy(&policies[0], "{\"heartbeat_interval_seconds\":0.05,\"heartbeat_timeout_seconds\":0.2,"
				   "\"zombie_threshold_seconds\":0.5,\"host_stall_min_workers\":2,"
				   "\"progress_stall_seconds\":0.3}");
	parse_policy(&policies[1], "{\"heartbeat_interval_seconds\":0.001,\"heartbeat_timeout_seconds\":0.001,"
				   "\"zombie_threshold_seconds\":0.001,\"health_score_decay_rate\":100,"
				   "\"min_health_score\":100,\"host_stall_share\":1,\"host_stall_min_workers\":1}");
	parse_policy(&policies[2], "{\"heartbeat_interval_seconds\":86400,\"heartbeat_timeout_seconds\":604800,"
				   "\"zombie_threshold_seconds\":2592000,\"health_score_decay_rate\":0,"
				   "\"min_health_score\":0,\"progress_stall_seconds\":0,\"tick_seconds\":10}");
	parse_policy(&policies[3], "{\"heartbeat_interval_seconds\":1,\"heartbeat_timeout_seconds\":3,"
				   "\"zombie_threshold_seconds\":6,\"health_score_decay_rate\":0.37,"
				   "\"min_health_score\":99.5,\"host_stall_min_workers\":1000000}");
	self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
}

static void drain(struct vigil_scanner *s)
{
	struct vigil_event ev;
	for (unsigned i = 0; i < VIGIL_EV_RING_SIZE && vigil_scanner_next_event(s, &ev); i++) {
		FUZZ_CHECK(ev.kind >= VIGIL_EV_REGISTERED && ev.kind <= VIGIL_EV_PROGRESS_STALL, "event kind %u",
			   ev.kind);
		if (ev.kind != VIGIL_EV_HOST_STALL && ev.kind != VIGIL_EV_TICK_LATE)
			FUZZ_CHECK(ev.slot < SLOTS, "event %u for slot %u of %u", ev.kind, ev.slot, SLOTS);
		FUZZ_CHECK(ev.health_score <= 100 && ev.reported_health <= 100 && ev.progress <= 100,
			   "event %u health %u reported %u progress %u", ev.kind, ev.health_score, ev.reported_health,
			   ev.progress);
	}
}

static void put_id(char dst[VIGIL_ID_MAX], const uint8_t **p, size_t *left, bool garbage, const char *fallback)
{
	memset(dst, 0, VIGIL_ID_MAX);
	if (garbage) {
		for (unsigned i = 0; i < VIGIL_ID_MAX; i++)
			dst[i] = (char)fuzz_take(p, left, 1);
	} else {
		snprintf(dst, VIGIL_ID_MAX, "%s-%u", fallback, (unsigned)fuzz_take(p, left, 1));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (self_pidfd == -1 && shm_name[0] == '\0')
		init_once();
	const uint8_t *p = data;
	size_t left = size;
	const struct vigil_heartbeat_policy *pol = &policies[fuzz_take(&p, &left, 1) % 4];

	/* A clean segment as vigild made it, then the scanner opened on it. */
	memset(seg.hdr, 0, seg.size);
	struct vigil_shm_header *h = seg.hdr;
	h->magic = VIGIL_MAGIC;
	h->abi_version = VIGIL_ABI_VERSION;
	h->header_size = VIGIL_HEADER_SIZE;
	h->slot_count = SLOTS;
	h->hot_size = VIGIL_HOT_SIZE;
	h->cold_size = VIGIL_COLD_SIZE;
	h->view_size = VIGIL_VIEW_SIZE;
	h->hot_offset = VIGIL_HEADER_SIZE;
	h->cold_offset = VIGIL_HEADER_SIZE + (uint64_t)SLOTS * VIGIL_HOT_SIZE;
	h->view_offset = h->cold_offset + (uint64_t)SLOTS * VIGIL_COLD_SIZE;
	h->segment_size = seg.size;
	struct vigil_scanner s;
	if (vigil_scanner_init(&s, &seg, pol) < 0)
		abort();

	/* Then every byte the input has for it, header first. */
	size_t image = (size_t)fuzz_take(&p, &left, 2);
	if (image > left)
		image = left;
	if (image > seg.size)
		image = (size_t)seg.size;
	memcpy(seg.hdr, p, image);
	p += image;
	left -= image;

	uint64_t now = 1000000000000ull;
	s.prev_mono_ns = now;
	s.vclock_ns = now;
	vigil_scanner_tick(&s, now);
	int ticks = 1;
	while (left > 0 && ticks < MAX_TICKS) {
		unsigned op = (unsigned)fuzz_take(&p, &left, 1);
		unsigned slot = 0;
		switch (op % 7) {
		case 0: {
			static const uint64_t units[4] = {1000000ull, 100000000ull, 10000000000ull, 1ull};
			now += fuzz_take(&p, &left, 2) * units[(op / 7) % 4];
			vigil_scanner_tick(&s, now);
			ticks++;
			break;
		}
		case 1: {
			size_t off = (size_t)(fuzz_take(&p, &left, 3) % seg.size);
			size_t n = (size_t)fuzz_take(&p, &left, 1);
			if (n > left)
				n = left;
			if (n > seg.size - off)
				n = (size_t)seg.size - off;
			memcpy((char *)seg.hdr + off, p, n);
			p += n;
			left -= n;
			break;
		}
		case 2: {
			slot = (unsigned)fuzz_take(&p, &left, 1) % SLOTS;
			uint32_t st = (uint32_t)fuzz_take(&p, &left, 1) % 6;
			uint64_t gen = fuzz_take(&p, &left, 2);
			atomic_store(&seg.hot[slot].owner, vigil_owner_make(st, gen));
			break;
		}
		case 3: {
			slot = (unsigned)fuzz_take(&p, &left, 1) % SLOTS;
			uint32_t health = (uint32_t)fuzz_take(&p, &left, 1);
			uint32_t progress = (uint32_t)fuzz_take(&p, &left, 1);
			uint64_t o = atomic_load(&seg.hot[slot].owner);
			uint64_t b = atomic_load(&seg.hot[slot].beat);
			atomic_store(&seg.hot[slot].beat,
				     vigil_beat_make(vigil_owner_gen(o), vigil_beat_count(b) + 1, health, progress));
			break;
		}
		case 4: {
			slot = (unsigned)fuzz_take(&p, &left, 1) % SLOTS;
			struct vigil_slot_cold *c = &seg.cold[slot];
			bool garbage = (op / 7) % 2 == 1;
			put_id(c->worker_id, &p, &left, garbage, "worker-fuzz");
			put_id(c->worker_type, &p, &left, garbage && (op / 14) % 2 == 1, "fuzz");
			put_id(c->task_id, &p, &left, garbage && (op / 28) % 2 == 1, "task");
			c->pid = (int32_t)fuzz_take(&p, &left, 4);
			c->registrar_pid = c->pid;
			c->pid_start_ticks = fuzz_take(&p, &left, 1);
			c->flags = (uint32_t)fuzz_take(&p, &left, 1);
			c->spawn_tag = fuzz_take(&p, &left, 1);
			break;
		}
		case 5: {
			struct vigil_command c;
			memset(&c, 0, sizeof c);
			c.slot = (uint32_t)fuzz_take(&p, &left, 1);
			if ((op / 7) % 4 == 3)
				c.slot |= (uint32_t)fuzz_take(&p, &left, 3) << 8; /* out of range too */
			c.gen = fuzz_take(&p, &left, 2);
			if ((op / 7) % 2 == 0) {
				/* WATCH on the generation the scanner tracks, usually */
				c.kind = VIGIL_CMD_WATCH;
				if ((op / 14) % 2 == 0 && c.slot < SLOTS)
					c.gen = vigil_owner_gen(atomic_load(&seg.hot[c.slot].owner));
				c.fd = (op / 28) % 2 == 0 || self_pidfd < 0 ? -1 : fcntl(self_pidfd, F_DUPFD_CLOEXEC, 0);
			} else {
				c.kind = VIGIL_CMD_FORGET;
				c.fd = -1;
				if ((op / 14) % 2 == 0 && c.slot < SLOTS)
					c.gen = vigil_owner_gen(atomic_load(&seg.hot[c.slot].owner));
			}
			if (!vigil_scanner_command(&s, &c) && c.fd >= 0)
				close(c.fd);
			break;
		}
		default:
			drain(&s);
			break;
		}
	}
	/* A few quiet ticks at the end: verdicts that were due come out. */
	for (int i = 0; i < 3; i++) {
		now += pol->timeout_ns;
		vigil_scanner_tick(&s, now);
	}
	drain(&s);
	uint64_t live = atomic_load(&s.metrics.workers_monitored);
	FUZZ_CHECK(live <= SLOTS, "workers_monitored %llu > %u slots", (unsigned long long)live, SLOTS);
	vigil_scanner_destroy(&s);
	return 0;
}
