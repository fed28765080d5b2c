/*
 * segment.h - the supervisor's side of the shared-memory segment: create,
 * attach, validate, unlink, and slot transitions that only vigild makes.
 *
 * The layout itself is the ABI and lives in emitter/vigil.h, so that a
 * worker needs one file.  This module adds what a worker never does:
 * creating the object with O_EXCL and mode 0600, refusing one that another
 * user owns or whose header is wrong, and freeing slots.
 *
 * Trust: after vigil_segment_open() validates the header, nothing is ever
 * read from it again for sizing.  The slot count and offsets are copied
 * into struct vigil_segment, because a worker may scribble over the header
 * at any moment and the supervisor must not follow it out of bounds.
 */
#ifndef VIGIL_SEGMENT_H
#define VIGIL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vigil.h"

#define VIGIL_SHM_NAME_MAX 240 /* NAME_MAX minus room for "/dev/shm/" */

struct vigil_segment {
	struct vigil_shm_header *hdr; /* the mapping; never trusted for sizes */
	struct vigil_slot_hot *hot;   /* private copies of the offsets ... */
	struct vigil_slot_cold *cold;
	struct vigil_slot_view *view;
	uint64_t size;                /* ... and of the size and count */
	uint32_t slots;
	bool created;                 /* this open created the object */
	bool writable;
	char name[VIGIL_SHM_NAME_MAX + 1];
};

/* Default segment name for a home: "/vigil-" + 16 hex digits of the FNV-1a
 * hash of the home's real path, so that two homes never share a segment
 * and the same home always finds its own.  0 or -errno. */
int vigil_segment_name_for_home(const char *home, char *out, size_t out_len);

/* Checks a name given by --shm or VIGIL_SHM: "/" then 1..VIGIL_SHM_NAME_MAX
 * of [A-Za-z0-9._-].  0 or -EINVAL. */
int vigil_segment_name_check(const char *name);

/*
 * vigil_segment_open - open (and with create, make) the named segment.
 *
 * create: when the object is missing, create it with O_EXCL, mode, and
 * slots slots; when it exists, attach to it whatever its slot count (the
 * workers in it matter more than the flag) after checking that this user
 * owns it, that no one outside mode can open it, and that the header and
 * size agree.  writable=false maps read-only (vigilctl status).
 * Returns 0 or -errno: -EPERM another owner or a mode wider than asked,
 * -EBADMSG bad header or size, -EPROTO another ABI, -ENOENT missing.
 * err receives a sentence for the operator.
 */
int vigil_segment_open(struct vigil_segment *seg, const char *name, uint32_t slots, mode_t mode,
		       bool create, bool writable, char *err, size_t err_len);

void vigil_segment_close(struct vigil_segment *seg);

/* shm_unlink; 0 or -errno. */
int vigil_segment_unlink(const char *name);

/*
 * One vigild per segment.  vigild holds a POSIX write lock on the first
 * byte of the segment's object for its whole life.  The kernel drops it
 * when vigild dies, kill -9 included, and a fork child never holds it; so,
 * unlike the header's supervisor_pid (a number a dead vigild leaves behind,
 * which the next process may be given), it cannot go stale.
 *
 * vigil_segment_lock: takes the lock; returns the fd that holds it (keep it
 * open: closing any fd of this object in the same process drops the lock),
 * or -EAGAIN with *holder the pid of the vigild that has it (0 when it went
 * between the two calls or is not visible here), or -errno.
 *
 * vigil_segment_supervisor: the pid of the vigild holding the lock, 0 when
 * none does, -EBUSY when one does whose pid this pid namespace cannot see,
 * or -errno (-ENOENT: no such segment).  Read-only: it needs only read
 * access to the object.
 */
int vigil_segment_lock(const char *name, pid_t *holder);
/* As vigil_segment_lock, but while another vigild holds the lock, tries
 * again every 20 ms for up to wait_ms: the runbook restarts vigild with
 * `kill $(cat pidfile) && vigild ... &`, and the vigild it stops takes from
 * a few ms to a second or more (its final snapshot) to let go.  on_wait
 * (may be NULL) is called once, with the holder's pid, before the first
 * wait.  A vigild still holding the lock after wait_ms is running: -EAGAIN
 * with *holder, as vigil_segment_lock. */
int vigil_segment_lock_wait(const char *name, uint32_t wait_ms, pid_t *holder, void (*on_wait)(pid_t holder));
pid_t vigil_segment_supervisor(const char *name);

/* Moves slot from exactly `expect` (state and generation) to FREE with the
 * same generation (the next claim increments it).  false when the slot
 * moved meanwhile, which is not an error: someone else acted first. */
bool vigil_segment_slot_free(struct vigil_segment *seg, uint32_t slot, uint64_t expect);

/* Moves slot from exactly `expect` to `state` with the same generation. */
bool vigil_segment_slot_set(struct vigil_segment *seg, uint32_t slot, uint64_t expect, uint32_t state);

#endif /* VIGIL_SEGMENT_H */
