/*
 * vigil.h - the worker side of vigil: attach to the supervisor's segment,
 * beat, detach.  Header-only C11, no dependency but libc (link -lrt on
 * glibc < 2.34 for shm_open); or, for C++ and for other languages'
 * foreign-function layers, the same code as libvigil (-lvigil, see
 * emitter/libvigil.c and the README's "Writing a worker" sections).
 *
 * Three ways to use this file:
 *   C, header-only (default): every call below is a static inline function.
 *   C with -DVIGIL_LINK: the calls are declared here and come from libvigil.
 *   C++ (C++17 or later): the calls are declared extern "C" and come from
 *     libvigil; the segment layout is not visible (it uses C11 atomics).
 * The opaque-handle calls (vigil_open, vigil_handle_beat,
 * vigil_handle_detach, vigil_close) exist only in libvigil.
 *
 * Why a header: a beat must cost a few nanoseconds, so it is a static
 * inline function that the compiler folds into the worker's loop.  Every
 * slow thing (shm_open, mmap, the slot claim) happens once, in
 * vigil_attach().
 *
 *     struct vigil v;
 *     int rc = vigil_attach(&v);            // 0 or -errno
 *     if (rc < 0) { fprintf(stderr, "vigil: %s\n", vigil_strerror(rc)); ... }
 *     for (;;) { do_work(); vigil_beat(&v, 100, pct_done); }
 *     vigil_detach(&v);                     // clean goodbye
 *
 * This file is also the ABI: the segment layout below is what vigild and
 * every worker agree on.  VIGIL_ABI_VERSION changes whenever any size,
 * offset or encoding below changes; it is checked at compile time against
 * the sizes here and at attach time against the segment header, so an
 * emitter built for another layout refuses to attach (-EPROTO) instead of
 * scribbling.
 *
 * Segment layout (all offsets from the start of the mapping):
 *
 *   [0, 4096)                       struct vigil_shm_header
 *   [hot_offset,  + 64 * slots)     struct vigil_slot_hot   one cache line each
 *   [cold_offset, + 256 * slots)    struct vigil_slot_cold  identity, rare
 *   [view_offset, + 32 * slots)     struct vigil_slot_view  vigild's verdicts
 *
 * The hot lines are contiguous so that vigild's scan is a sequential read
 * of 64 bytes per worker; identity lives elsewhere so that it never pollutes
 * that scan; verdicts live elsewhere again so that vigild's writes never
 * bounce a worker's line.
 *
 * Slot life cycle (owner word: state in bits 0-7, generation in bits 8-63):
 *
 *   FREE --claim (worker CAS, gen+1)--> CLAIMED --publish--> ACTIVE
 *   ACTIVE --vigil_detach--> DETACHED --vigild frees--> FREE
 *   ACTIVE --vigild verdict--> ZOMBIE --cleanup/exit--> FREE
 *   ACTIVE --process exits (pidfd)--> FREE
 *   CLAIMED for longer than VIGIL_CLAIM_STALE_NS --vigild--> FREE
 *
 * Every transition is a compare-and-swap on the whole owner word, so a
 * stale handle (an old owner of a reused slot) can never move the slot:
 * its generation no longer matches.  The beat word carries the low 16 bits
 * of the generation, so vigild never credits a beat written through a stale
 * handle to the slot's new owner (wraps after 65,536 reuses of one slot).
 */
#ifndef VIGIL_H
#define VIGIL_H

/* shm_open, clock_gettime and O_CLOEXEC are POSIX.1-2008.  Under a strict
 * -std=c11 this only takes effect when vigil.h is the first include. */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stddef.h>
#include <stdint.h>

#ifndef __cplusplus
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#endif

/* How the calls of the API are defined: see the three ways above. */
#if defined(VIGIL_BUILD_LIB)
#define VIGIL_API __attribute__((visibility("default")))
#define VIGIL__DEFINE_API 1
#elif defined(__cplusplus) || defined(VIGIL_LINK)
#define VIGIL__DEFINE_API 0
#else
#define VIGIL_API static inline
#define VIGIL__DEFINE_API 1
#endif

#define VIGIL_ABI_VERSION 1u
/* "VIGILSHM" read as a little-endian 64-bit integer. */
#define VIGIL_MAGIC 0x4d48534c49474956ull
#define VIGIL_CACHELINE 64u
#define VIGIL_HEADER_SIZE 4096u
#define VIGIL_HOT_SIZE 64u
#define VIGIL_COLD_SIZE 256u
#define VIGIL_VIEW_SIZE 32u
#define VIGIL_ID_MAX 64u          /* bytes; an id of exactly 64 has no NUL */
#define VIGIL_SLOTS_MAX (1u << 22) /* 4,194,304 slots: 1.4 GiB segment */
#define VIGIL_CLAIM_STALE_NS 5000000000ull /* 5 s between claim and publish */

/* Slot states: bits 0-7 of vigil_slot_hot.owner. */
enum vigil_slot_state {
	VIGIL_SLOT_FREE = 0,
	VIGIL_SLOT_CLAIMED = 1,  /* a worker is writing its identity */
	VIGIL_SLOT_ACTIVE = 2,   /* identity published; beats count */
	VIGIL_SLOT_DETACHED = 3, /* clean goodbye; vigild will free it */
	VIGIL_SLOT_ZOMBIE = 4,   /* vigild's verdict; beats are ignored */
};

/* vigil_slot_view.verdict */
enum vigil_verdict {
	VIGIL_VERDICT_NONE = 0,
	VIGIL_VERDICT_OK = 1,
	VIGIL_VERDICT_MISSED = 2,
	VIGIL_VERDICT_TIMEOUT = 3,
	VIGIL_VERDICT_ZOMBIE = 4,
	VIGIL_VERDICT_EXITED = 5,
	VIGIL_VERDICT_DETACHED = 6,
	VIGIL_VERDICT_REJECTED = 7,
};

/* The segment layout and its encodings use C11 atomics: C only.  C++
 * workers go through libvigil, which is C. */
#ifndef __cplusplus

struct vigil_shm_header {
	uint64_t magic;           /* VIGIL_MAGIC */
	uint32_t abi_version;     /* VIGIL_ABI_VERSION */
	uint32_t header_size;     /* VIGIL_HEADER_SIZE */
	uint32_t slot_count;      /* 1 .. VIGIL_SLOTS_MAX */
	uint32_t hot_size;        /* VIGIL_HOT_SIZE */
	uint32_t cold_size;       /* VIGIL_COLD_SIZE */
	uint32_t view_size;       /* VIGIL_VIEW_SIZE */
	uint64_t hot_offset;
	uint64_t cold_offset;
	uint64_t view_offset;
	uint64_t segment_size;    /* must equal the object's st_size */
	/* Written by vigild only.  Workers read supervisor_pid to know whether
	 * anyone is watching; nothing depends on it for safety. */
	_Atomic uint64_t supervisor_pid;   /* 0 when no vigild is attached */
	_Atomic uint64_t supervisor_epoch; /* +1 at every vigild start */
	_Atomic uint64_t supervisor_ticks; /* +1 per scan: vigild liveness */
	/* Where the next self-registration starts looking; a hint only, so
	 * a relaxed load and store suffice and garbage here is harmless
	 * (taken modulo slot_count). */
	_Atomic uint32_t claim_hint;
	uint32_t reserved0;
	uint8_t reserved[VIGIL_HEADER_SIZE - 96];
};

/* The hot line.  Written by its worker (beat) and read by vigild every
 * tick; nothing else shares the line. */
struct vigil_slot_hot {
	_Atomic uint64_t owner; /* state | generation << 8 */
	_Atomic uint64_t beat;  /* gen16 << 48 | count32 << 16 | health << 8 | progress */
	/* vigild stores the generation it has verified here; a registrar that
	 * must stay alive until then (the shell emitter) waits on it. */
	_Atomic uint64_t ack;
	uint64_t reserved[5];
};

/* Identity, written once while CLAIMED and published by the release store
 * of ACTIVE.  vigild copies it out and validates every byte. */
struct vigil_slot_cold {
	char worker_id[VIGIL_ID_MAX];
	char worker_type[VIGIL_ID_MAX];
	char task_id[VIGIL_ID_MAX];
	int32_t pid;           /* the worker process */
	int32_t registrar_pid; /* the process that claimed the slot */
	uint64_t pid_start_ticks; /* field 22 of /proc/<pid>/stat; 0 unknown */
	uint64_t registered_unix_ms;
	uint64_t claimed_mono_ns;  /* CLOCK_MONOTONIC at claim (stale claims) */
	uint32_t flags;            /* VIGIL_COLD_* */
	uint32_t reserved0;
	uint64_t spawn_tag;        /* vigild's tag for a worker it started; 0 otherwise */
	uint8_t reserved[VIGIL_COLD_SIZE - 3 * VIGIL_ID_MAX - 48];
};
#define VIGIL_COLD_SPAWNED 0x1u /* started by vigild (written by vigild only) */

/* vigild's live verdict per slot, for vigilctl status/top.  Written by
 * vigild's scanner only when a value changes; workers never write it. */
struct vigil_slot_view {
	_Atomic uint64_t last_seen_unix_ms;
	_Atomic uint64_t beats;
	_Atomic uint32_t generation_low; /* low 32 bits of the gen it describes */
	_Atomic uint16_t health_score;
	_Atomic uint8_t progress;
	_Atomic uint8_t verdict;         /* enum vigil_verdict */
	_Atomic uint32_t missed;
	uint32_t reserved;
};

_Static_assert(sizeof(struct vigil_shm_header) == VIGIL_HEADER_SIZE, "header is one page");
_Static_assert(offsetof(struct vigil_shm_header, supervisor_pid) == 64, "abi: header");
_Static_assert(offsetof(struct vigil_shm_header, claim_hint) == 88, "abi: header");
_Static_assert(sizeof(struct vigil_slot_hot) == VIGIL_HOT_SIZE, "hot part is one line");
_Static_assert(VIGIL_HOT_SIZE == VIGIL_CACHELINE, "hot part is one line");
_Static_assert(offsetof(struct vigil_slot_hot, beat) == 8, "abi: hot");
_Static_assert(offsetof(struct vigil_slot_hot, ack) == 16, "abi: hot");
_Static_assert(sizeof(struct vigil_slot_cold) == VIGIL_COLD_SIZE, "cold part size");
_Static_assert(VIGIL_COLD_SIZE % VIGIL_CACHELINE == 0, "cold part is whole lines");
_Static_assert(offsetof(struct vigil_slot_cold, pid) == 192, "abi: cold");
_Static_assert(offsetof(struct vigil_slot_cold, flags) == 224, "abi: cold");
_Static_assert(offsetof(struct vigil_slot_cold, spawn_tag) == 232, "abi: cold");
_Static_assert(sizeof(struct vigil_slot_view) == VIGIL_VIEW_SIZE, "view size");
_Static_assert(offsetof(struct vigil_slot_view, missed) == 24, "abi: view");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "lock-free 64-bit atomics");

/* ---- encodings (shared with vigild) ---------------------------------- */

static inline uint32_t vigil_owner_state(uint64_t owner) { return (uint32_t)(owner & 0xffu); }
static inline uint64_t vigil_owner_gen(uint64_t owner) { return owner >> 8; }
static inline uint64_t vigil_owner_make(uint32_t state, uint64_t gen)
{
	return (gen << 8) | (state & 0xffu);
}
static inline uint64_t vigil_beat_make(uint64_t gen, uint32_t count, uint32_t health,
				       uint32_t progress)
{
	return ((gen & 0xffffu) << 48) | ((uint64_t)count << 16) | ((uint64_t)(health & 0xffu) << 8) |
	       (uint64_t)(progress & 0xffu);
}
static inline uint32_t vigil_beat_gen16(uint64_t beat) { return (uint32_t)(beat >> 48); }
static inline uint32_t vigil_beat_count(uint64_t beat) { return (uint32_t)(beat >> 16); }
static inline uint32_t vigil_beat_health(uint64_t beat) { return (uint32_t)((beat >> 8) & 0xffu); }
static inline uint32_t vigil_beat_progress(uint64_t beat) { return (uint32_t)(beat & 0xffu); }

/* Segment size for a slot count; 0 when out of range. */
static inline uint64_t vigil_segment_size(uint32_t slots)
{
	if (slots == 0 || slots > VIGIL_SLOTS_MAX)
		return 0;
	return (uint64_t)VIGIL_HEADER_SIZE +
	       (uint64_t)slots * (VIGIL_HOT_SIZE + VIGIL_COLD_SIZE + VIGIL_VIEW_SIZE);
}

/* Validates a mapped header against the mapping's size: 0 or -errno.
 * -EPROTO: another ABI; -EBADMSG: not a vigil segment or inconsistent. */
static inline int vigil_header_check(const struct vigil_shm_header *h, uint64_t mapped_size)
{
	if (mapped_size < VIGIL_HEADER_SIZE || h->magic != VIGIL_MAGIC)
		return -EBADMSG;
	if (h->abi_version != VIGIL_ABI_VERSION)
		return -EPROTO;
	if (h->header_size != VIGIL_HEADER_SIZE || h->hot_size != VIGIL_HOT_SIZE ||
	    h->cold_size != VIGIL_COLD_SIZE || h->view_size != VIGIL_VIEW_SIZE)
		return -EBADMSG;
	uint64_t n = h->slot_count;
	if (vigil_segment_size(h->slot_count) != mapped_size || h->segment_size != mapped_size)
		return -EBADMSG;
	if (h->hot_offset != VIGIL_HEADER_SIZE || h->cold_offset != h->hot_offset + n * VIGIL_HOT_SIZE ||
	    h->view_offset != h->cold_offset + n * VIGIL_COLD_SIZE)
		return -EBADMSG;
	return 0;
}


static inline struct vigil_slot_hot *vigil__hot(struct vigil_shm_header *h, uint32_t slot)
{
	return (struct vigil_slot_hot *)((char *)h + h->hot_offset) + slot;
}
static inline struct vigil_slot_cold *vigil__cold(struct vigil_shm_header *h, uint32_t slot)
{
	return (struct vigil_slot_cold *)((char *)h + h->cold_offset) + slot;
}
static inline struct vigil_slot_view *vigil__view(struct vigil_shm_header *h, uint32_t slot)
{
	return (struct vigil_slot_view *)((char *)h + h->view_offset) + slot;
}

#endif /* !__cplusplus: the layout */

/* ---- the worker's handle ---------------------------------------------- */

#ifdef __cplusplus
struct vigil_slot_hot;
struct vigil_shm_header;
#endif

/* The same layout in C and C++ (plain pointers and integers), so that a C++
 * worker can hold one and pass it to libvigil. */
struct vigil {
	struct vigil_slot_hot *hot;   /* this worker's line */
	struct vigil_shm_header *hdr; /* NULL when not attached */
	size_t map_size;
	uint64_t gen;   /* generation of the claim */
	uint32_t slot;
	uint32_t count; /* beats so far; the worker owns it, no atomics */
};

/* libvigil's opaque handle: a struct vigil that foreign-function layers
 * hold by pointer without knowing its layout. */
struct vigil_handle;

#ifdef __cplusplus
extern "C" {
#endif

#if !VIGIL__DEFINE_API || defined(VIGIL_BUILD_LIB)
/* The API, from libvigil (C++ and -DVIGIL_LINK), or its prototypes while
 * libvigil itself is built.  Contracts: at the definitions below. */
const char *vigil_strerror(int err);
int vigil_beat(struct vigil *v, unsigned health, unsigned progress);
int vigil_attach_to(struct vigil *v, const char *shm_name, uint32_t slot, uint64_t gen);
int vigil_attach(struct vigil *v);
int vigil_detach(struct vigil *v);
#endif

/*
 * The opaque-handle form, in libvigil only (emitter/libvigil.c).
 *
 * vigil_open: vigil_attach() into a new handle; NULL on failure with the
 *   -errno in *err (err may be NULL); *err is 0 on success.
 * vigil_handle_beat: vigil_beat() through the handle; -ENOTCONN for NULL
 *   or a detached handle.
 * vigil_handle_detach: vigil_detach() (the clean goodbye); the handle stays
 *   valid (and detached) until vigil_close.
 * vigil_close: frees the handle.  A handle still attached is unmapped
 *   WITHOUT a goodbye: the slot stays the process's, and vigild reports it
 *   as it would a worker that stopped beating or exited.  NULL is a no-op.
 * One thread at a time per handle, like struct vigil.
 */
struct vigil_handle *vigil_open(int *err);
int vigil_handle_beat(struct vigil_handle *h, unsigned health, unsigned progress);
int vigil_handle_detach(struct vigil_handle *h);
void vigil_close(struct vigil_handle *h);

#ifdef __cplusplus
}
#endif

/* ---- the C implementation ---------------------------------------------- */

#ifndef __cplusplus

/* Name rule for worker ids, types and task ids (they become file names). */
static inline int vigil_id_valid(const char *s)
{
	size_t n = 0;
	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '.' || c == '_' || c == '-';
		if (!ok || n >= VIGIL_ID_MAX)
			return 0;
	}
	return 1;
}

/* ---- attach (slow path, once) ---------------------------------------- */

static inline int vigil__map(struct vigil *v, const char *shm_name, int writable)
{
	int fd = shm_open(shm_name, writable ? O_RDWR : O_RDONLY, 0);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (st.st_uid != geteuid()) {
		close(fd);
		return -EPERM;
	}
	if ((uint64_t)st.st_size < VIGIL_HEADER_SIZE) {
		close(fd);
		return -EBADMSG;
	}
	void *p = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		       fd, 0);
	int e = -errno;
	close(fd);
	if (p == MAP_FAILED)
		return e;
	int rc = vigil_header_check((const struct vigil_shm_header *)p, (uint64_t)st.st_size);
	if (rc < 0) {
		munmap(p, (size_t)st.st_size);
		return rc;
	}
	v->hdr = (struct vigil_shm_header *)p;
	v->map_size = (size_t)st.st_size;
	return 0;
}

/* Reads /proc/<pid>/stat: its state letter (field 3) and start time in
 * clock ticks since boot (field 22).  0, or -1 when it cannot be read. */
static inline int vigil__proc_stat(int pid, char *state, uint64_t *start_ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may contain spaces and parens */
	if (p == NULL || p[1] != ' ' || p[2] == '\0')
		return -1;
	*state = p[2];
	/* after ")" each space starts the next field: the 1st starts field 3,
	 * the 20th field 22 (starttime).  Stop right after that space. */
	int field = 2;
	for (p++; *p != '\0' && field < 22; p++)
		if (*p == ' ')
			field++;
	*start_ticks = strtoull(p, NULL, 10);
	return 0;
}

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/<pid>/stat); 0 when unknown.  vigild compares it so that a pid
 * recycled before it looked is never mistaken for the worker. */
static inline uint64_t vigil__pid_start_ticks(int pid)
{
	char state;
	uint64_t ticks;
	return vigil__proc_stat(pid, &state, &ticks) == 0 ? ticks : 0;
}

/* Whether the process a slot names still runs: pid exists, is not a
 * zombie (it ended; only its parent has not reaped it yet), and, when the
 * slot knows its start time, is the same process and not a reuse of its
 * pid.  Without /proc, kill(pid, 0) decides. */
static inline int vigil__pid_live(int32_t pid, uint64_t start_ticks)
{
	if (pid <= 0)
		return 0;
	char state;
	uint64_t ticks;
	if (vigil__proc_stat(pid, &state, &ticks) == 0)
		return state != 'Z' && state != 'X' && (start_ticks == 0 || ticks == start_ticks);
	return kill(pid, 0) == 0 || errno == EPERM;
}

/*
 * vigil__id_live - whether worker id is live in the segment: some slot
 * holds it (ACTIVE, ZOMBIE, or CLAIMED by vigild for a worker it is
 * starting), vigild has not rejected that registration, and its process
 * still runs (vigil__pid_live).  vigild refuses a registration whose id it
 * already has registered (worker_rejected); this is the same rule seen from
 * the segment, so that a second worker with a live id is refused at once
 * (-EEXIST) instead of beating into a slot vigild ignores.  A race between
 * two registrants is still settled by vigild.
 *
 * Reads n slots (the caller bounds n by its mapping).  The identity is read
 * between two loads of the owner word and ignored if the slot changed hands
 * meanwhile.  Returns 1 (with the slot and pid, either pointer may be NULL)
 * or 0.
 */
static inline int vigil__id_live(struct vigil_shm_header *h, uint32_t n, const char *id, uint32_t *slot_out,
				 int32_t *pid_out)
{
	for (uint32_t i = 0; i < n; i++) {
		struct vigil_slot_hot *hot = vigil__hot(h, i);
		/* acquire: the identity below was published by this store. */
		uint64_t o = atomic_load_explicit(&hot->owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		const struct vigil_slot_cold *c = vigil__cold(h, i);
		if (st == VIGIL_SLOT_CLAIMED) {
			if (!(c->flags & VIGIL_COLD_SPAWNED))
				continue; /* a registration in progress: vigild settles races */
		} else if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE) {
			continue;
		}
		if (strncmp(c->worker_id, id, VIGIL_ID_MAX) != 0)
			continue;
		struct vigil_slot_view *view = vigil__view(h, i);
		/* relaxed: a hint from vigild; the owner re-read below bounds it. */
		if (atomic_load_explicit(&view->verdict, memory_order_relaxed) == VIGIL_VERDICT_REJECTED &&
		    atomic_load_explicit(&view->generation_low, memory_order_relaxed) == (uint32_t)vigil_owner_gen(o))
			continue;
		int32_t pid = c->pid;
		uint64_t ticks = c->pid_start_ticks;
		/* acquire: pairs with the next owner's claim; a change means the
		 * identity we copied may be a mix of two. */
		if (atomic_load_explicit(&hot->owner, memory_order_acquire) != o)
			continue;
		if (!vigil__pid_live(pid, ticks))
			continue;
		if (slot_out != NULL)
			*slot_out = i;
		if (pid_out != NULL)
			*pid_out = pid;
		return 1;
	}
	return 0;
}

static inline void vigil__copy_id(char dst[VIGIL_ID_MAX], const char *src)
{
	size_t n = strlen(src);
	memset(dst, 0, VIGIL_ID_MAX);
	memcpy(dst, src, n < VIGIL_ID_MAX ? n : VIGIL_ID_MAX);
}

/*
 * vigil_register - claim a free slot and publish an identity.
 *
 * For workers that vigild did not start.  pid is the process that the
 * supervisor watches (normally getpid(); the shell emitter passes the
 * calling shell).  Refuses an id that is live in the segment
 * (vigil__id_live: another slot holds it and its process runs) with
 * -EEXIST.  Claims with a compare-and-swap on the owner word, so
 * concurrent registrations never get the same slot; the loops are bounded
 * by the slot count, itself bounded by the mapping.  The identity is
 * written while CLAIMED and published by a release CAS to ACTIVE, so vigild
 * (which acquires the owner word) never reads a half-written identity from
 * a well-behaved worker.
 * Returns 0, -EINVAL (bad id), -EEXIST (id live), -ENOSPC (full),
 * -EBADMSG (the header was rewritten since it was mapped), -EAGAIN (claim
 * reclaimed as stale before we published, i.e. we stalled for > 5 s: retry).
 */
static inline int vigil_register(struct vigil *v, const char *worker_id, const char *worker_type,
				 const char *task_id, int pid)
{
	if (!vigil_id_valid(worker_id) || !vigil_id_valid(worker_type) ||
	    (task_id != NULL && task_id[0] != '\0' && !vigil_id_valid(task_id)) || pid <= 0)
		return -EINVAL;
	struct vigil_shm_header *h = v->hdr;
	/* Any process of the user may rewrite the header: offsets and the
	 * slot count are trusted only as far as they fit the mapping. */
	if (vigil_header_check(h, v->map_size) < 0)
		return -EBADMSG;
	uint32_t n = h->slot_count;
	if (n == 0 || vigil_segment_size(n) > v->map_size)
		return -EBADMSG;
	if (vigil__id_live(h, n, worker_id, NULL, NULL))
		return -EEXIST;
	uint32_t start = atomic_load_explicit(&h->claim_hint, memory_order_relaxed) % n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot = (start + i) % n;
		struct vigil_slot_hot *hot = vigil__hot(h, slot);
		uint64_t o = atomic_load_explicit(&hot->owner, memory_order_relaxed);
		if (vigil_owner_state(o) != VIGIL_SLOT_FREE)
			continue;
		uint64_t gen = vigil_owner_gen(o) + 1;
		uint64_t claimed = vigil_owner_make(VIGIL_SLOT_CLAIMED, gen);
		/* acquire on success: our identity writes below must not be
		 * reordered before we own the slot. */
		if (!atomic_compare_exchange_strong_explicit(&hot->owner, &o, claimed, memory_order_acquire,
							     memory_order_relaxed))
			continue;
		atomic_store_explicit(&h->claim_hint, slot + 1, memory_order_relaxed);
		struct vigil_slot_cold *c = vigil__cold(h, slot);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		c->claimed_mono_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		vigil__copy_id(c->worker_id, worker_id);
		vigil__copy_id(c->worker_type, worker_type);
		vigil__copy_id(c->task_id, task_id != NULL ? task_id : "");
		c->pid = pid;
		c->registrar_pid = (int32_t)getpid();
		c->pid_start_ticks = vigil__pid_start_ticks(pid);
		clock_gettime(CLOCK_REALTIME, &ts);
		c->registered_unix_ms = (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
		c->flags = 0;
		c->spawn_tag = 0;
		atomic_store_explicit(&hot->ack, 0, memory_order_relaxed);
		atomic_store_explicit(&hot->beat, vigil_beat_make(gen, 0, 100, 0), memory_order_relaxed);
		/* release: publishes identity and the first beat word with ACTIVE. */
		uint64_t expect = claimed;
		if (!atomic_compare_exchange_strong_explicit(&hot->owner, &expect,
							     vigil_owner_make(VIGIL_SLOT_ACTIVE, gen),
							     memory_order_release, memory_order_relaxed))
			return -EAGAIN;
		v->hot = hot;
		v->gen = gen;
		v->slot = slot;
		v->count = 0;
		return 0;
	}
	return -ENOSPC;
}

#if VIGIL__DEFINE_API

/* Messages for the -errno values that vigil_* return. */
VIGIL_API const char *vigil_strerror(int err)
{
	switch (-err) {
	case 0: return "success";
	case ENOENT: return "no vigil segment (is vigild running for this home? VIGIL_SHM unset?)";
	case EPROTO: return "the segment was made for another vigil ABI version; rebuild the worker against this vigil.h";
	case EBADMSG: return "not a valid vigil segment (bad magic, size or layout)";
	case EPERM: return "the segment belongs to another user";
	case ENOSPC: return "no free slot in the segment (raise vigild --slots)";
	case EINVAL: return "invalid argument (ids must match [A-Za-z0-9._-]{1,64}, not starting with '.')";
	case ESTALE: return "the slot in VIGIL_SLOT/VIGIL_GEN is no longer ours";
	case EAGAIN: return "slot claim raced with cleanup; try again";
	case ENOTCONN: return "not attached";
	case ENXIO: return "WORKER_ID is not set (and no VIGIL_SLOT/VIGIL_GEN from vigild)";
	case EEXIST: return "this WORKER_ID is live in the segment: another running process is registered with it "
			    "(vigild would reject a second one; stop the other or choose another id)";
	default: return strerror(-err);
	}
}

/*
 * vigil_beat - publish one heartbeat.
 *
 * Contract: wait-free, no system call, no lock, no clock read.  One 64-bit
 * store into this worker's own line.  health and progress are clamped to
 * 0..100.  Returns 0, or -ENOTCONN for a handle that is not attached.
 *
 * Memory order: release, so that anything the worker wrote before the beat
 * is visible to a reader that acquires the beat (free on x86-64: a plain
 * mov).  vigild notices the beat by the change of the word, so the count
 * (not a timestamp) is what makes successive beats distinct.
 */
VIGIL_API int vigil_beat(struct vigil *v, unsigned health, unsigned progress)
{
	if (v->hot == NULL)
		return -ENOTCONN;
	if (health > 100)
		health = 100;
	if (progress > 100)
		progress = 100;
	v->count++;
	atomic_store_explicit(&v->hot->beat, vigil_beat_make(v->gen, v->count, health, progress),
			      memory_order_release);
	return 0;
}

/*
 * vigil_attach_to - map segment shm_name and take over an existing slot.
 *
 * For a slot vigild prepared (spawned workers: VIGIL_SLOT, VIGIL_GEN) or
 * one this worker registered earlier.  Fails with -ESTALE when the slot is
 * not ACTIVE (or, for a worker vigild is still starting, CLAIMED) with that
 * generation any more.
 */
VIGIL_API int vigil_attach_to(struct vigil *v, const char *shm_name, uint32_t slot, uint64_t gen)
{
	memset(v, 0, sizeof *v);
	int rc = vigil__map(v, shm_name, 1);
	if (rc < 0)
		return rc;
	if (slot >= v->hdr->slot_count) {
		munmap(v->hdr, v->map_size);
		memset(v, 0, sizeof *v);
		return -EINVAL;
	}
	struct vigil_slot_hot *hot = vigil__hot(v->hdr, slot);
	uint64_t o = atomic_load_explicit(&hot->owner, memory_order_acquire);
	/* CLAIMED too: vigild publishes ACTIVE only once it knows the exec
	 * succeeded, and the worker may attach before that. */
	if (o != vigil_owner_make(VIGIL_SLOT_ACTIVE, gen) && o != vigil_owner_make(VIGIL_SLOT_CLAIMED, gen)) {
		munmap(v->hdr, v->map_size);
		memset(v, 0, sizeof *v);
		return -ESTALE;
	}
	v->hot = hot;
	v->gen = gen;
	v->slot = slot;
	v->count = vigil_beat_count(atomic_load_explicit(&hot->beat, memory_order_relaxed));
	return 0;
}

/*
 * vigil_attach - attach this process as a worker.
 *
 * From the environment vigild gives the workers it starts (VIGIL_SHM,
 * VIGIL_SLOT, VIGIL_GEN); otherwise self-registers in VIGIL_SHM with
 * WORKER_ID, WORKER_TYPE (default "worker") and TASK_ID (optional).
 * Returns 0 or -errno; print with vigil_strerror(): -ENOENT no segment,
 * -ENXIO no WORKER_ID, -EPROTO another ABI, -ENOSPC full, -EINVAL bad id,
 * -EEXIST the id is live (another running process holds it).
 */
VIGIL_API int vigil_attach(struct vigil *v)
{
	memset(v, 0, sizeof *v);
	const char *shm = getenv("VIGIL_SHM");
	if (shm == NULL || shm[0] != '/')
		return -ENOENT;
	const char *slot_s = getenv("VIGIL_SLOT"), *gen_s = getenv("VIGIL_GEN");
	if (slot_s != NULL && gen_s != NULL) {
		char *end1, *end2;
		errno = 0;
		unsigned long slot = strtoul(slot_s, &end1, 10);
		unsigned long long gen = strtoull(gen_s, &end2, 10);
		if (errno != 0 || *end1 != '\0' || *end2 != '\0' || slot >= VIGIL_SLOTS_MAX)
			return -EINVAL;
		return vigil_attach_to(v, shm, (uint32_t)slot, gen);
	}
	const char *id = getenv("WORKER_ID");
	const char *type = getenv("WORKER_TYPE");
	if (id == NULL)
		return -ENXIO;
	int rc = vigil__map(v, shm, 1);
	if (rc < 0)
		return rc;
	rc = vigil_register(v, id, type != NULL ? type : "worker", getenv("TASK_ID"), (int)getpid());
	if (rc == -EAGAIN)
		rc = vigil_register(v, id, type != NULL ? type : "worker", getenv("TASK_ID"), (int)getpid());
	if (rc < 0) {
		munmap(v->hdr, v->map_size);
		memset(v, 0, sizeof *v);
	}
	return rc;
}

/*
 * vigil_detach - clean goodbye: vigild reports worker_detached (not
 * worker_exited) and frees the slot.  Also allowed from ZOMBIE (a worker
 * that woke up and finishes cleanly) and, for a worker vigild started, from
 * CLAIMED (it finished before vigild published it).  Unmaps in every case.
 * Returns 0, -ESTALE (the slot was no longer ours), -ENOTCONN.
 */
VIGIL_API int vigil_detach(struct vigil *v)
{
	if (v->hot == NULL || v->hdr == NULL)
		return -ENOTCONN;
	int rc = -ESTALE;
	/* CLAIMED too: a spawned worker may finish before vigild publishes it. */
	uint64_t from[3] = {vigil_owner_make(VIGIL_SLOT_ACTIVE, v->gen), vigil_owner_make(VIGIL_SLOT_ZOMBIE, v->gen),
			    vigil_owner_make(VIGIL_SLOT_CLAIMED, v->gen)};
	for (int i = 0; i < 3 && rc != 0; i++) {
		uint64_t expect = from[i];
		/* release: the last beat is ordered before the goodbye. */
		if (atomic_compare_exchange_strong_explicit(&v->hot->owner, &expect,
							     vigil_owner_make(VIGIL_SLOT_DETACHED, v->gen),
							     memory_order_release, memory_order_relaxed))
			rc = 0;
	}
	munmap(v->hdr, v->map_size);
	memset(v, 0, sizeof *v);
	return rc;
}

#endif /* VIGIL__DEFINE_API */

#endif /* !__cplusplus: the implementation */

#endif /* VIGIL_H */
