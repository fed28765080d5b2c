/*
 * segment.c - create, attach, validate and unlink the vigil segment.
 *
 * What it guards against: a name pre-created by another user (refused,
 * never used), a leftover object from another ABI or of a size that does
 * not match its header (refused with the reason), a crash between
 * shm_open(O_CREAT|O_EXCL) and initialising the header (the header's magic
 * is written last, so a half-made segment fails validation and the
 * operator is told to remove it), and a racing creator (EEXIST: attach).
 */
#define _GNU_SOURCE
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct vigil_shm_header) % VIGIL_CACHELINE == 0, "slots start on a line");
_Static_assert(VIGIL_HEADER_SIZE % VIGIL_CACHELINE == 0, "hot array is line aligned");
_Static_assert((VIGIL_HOT_SIZE * 1ull) % VIGIL_CACHELINE == 0, "hot slots never share a line");
_Static_assert(VIGIL_VIEW_SIZE * 2 == VIGIL_CACHELINE, "two views per line, written by vigild only");

static void seterr(char *err, size_t len, const char *fmt, ...)
{
	if (err == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

int vigil_segment_name_check(const char *name)
{
	if (name == NULL || name[0] != '/' || name[1] == '\0')
		return -EINVAL;
	size_t n = strlen(name + 1);
	if (n > VIGIL_SHM_NAME_MAX - 1)
		return -EINVAL;
	for (const char *p = name + 1; *p != '\0'; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		if (!ok)
			return -EINVAL;
	}
	if (name[1] == '.')
		return -EINVAL;
	return 0;
}

int vigil_segment_name_for_home(const char *home, char *out, size_t out_len)
{
	char real[4096];
	if (realpath(home, real) == NULL)
		return -errno;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64: tiny, stable, enough for names */
	for (const unsigned char *p = (const unsigned char *)real; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	int n = snprintf(out, out_len, "/vigil-%016llx", (unsigned long long)h);
	if (n < 0 || (size_t)n >= out_len)
		return -ENAMETOOLONG;
	return 0;
}

static void set_views(struct vigil_segment *seg)
{
	char *base = (char *)seg->hdr;
	uint64_t n = seg->slots;
	seg->hot = (struct vigil_slot_hot *)(base + VIGIL_HEADER_SIZE);
	seg->cold = (struct vigil_slot_cold *)(base + VIGIL_HEADER_SIZE + n * VIGIL_HOT_SIZE);
	seg->view = (struct vigil_slot_view *)(base + VIGIL_HEADER_SIZE + n * (VIGIL_HOT_SIZE + VIGIL_COLD_SIZE));
}

static int create_new(struct vigil_segment *seg, const char *name, uint32_t slots, mode_t mode, char *err,
		      size_t err_len)
{
	uint64_t size = vigil_segment_size(slots);
	if (size == 0) {
		seterr(err, err_len, "slot count %u out of range 1..%u", slots, VIGIL_SLOTS_MAX);
		return -EINVAL;
	}
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno; /* EEXIST is handled by the caller */
	/* shm_open applies the umask; set the mode we were asked for. */
	if (fchmod(fd, mode) < 0 || ftruncate(fd, (off_t)size) < 0) {
		int e = -errno;
		seterr(err, err_len, "cannot size segment %s to %llu bytes: %s", name, (unsigned long long)size,
		       strerror(-e));
		close(fd);
		shm_unlink(name);
		return e;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = -errno;
	close(fd);
	if (p == MAP_FAILED) {
		seterr(err, err_len, "cannot map segment %s: %s", name, strerror(-e));
		shm_unlink(name);
		return e;
	}
	struct vigil_shm_header *h = p;
	/* ftruncate gave zeroes: every slot is FREE with generation 0. */
	h->abi_version = VIGIL_ABI_VERSION;
	h->header_size = VIGIL_HEADER_SIZE;
	h->slot_count = slots;
	h->hot_size = VIGIL_HOT_SIZE;
	h->cold_size = VIGIL_COLD_SIZE;
	h->view_size = VIGIL_VIEW_SIZE;
	h->hot_offset = VIGIL_HEADER_SIZE;
	h->cold_offset = VIGIL_HEADER_SIZE + (uint64_t)slots * VIGIL_HOT_SIZE;
	h->view_offset = h->cold_offset + (uint64_t)slots * VIGIL_COLD_SIZE;
	h->segment_size = size;
	/* The magic goes last, with a release store: a worker that maps the
	 * object early sees either no magic (-EBADMSG, retry) or a complete
	 * header.  (The field is a plain uint64_t in the ABI; the builtin
	 * gives it release semantics without changing the layout.) */
	__atomic_store_n(&h->magic, VIGIL_MAGIC, __ATOMIC_RELEASE);
	seg->hdr = h;
	seg->size = size;
	seg->slots = slots;
	seg->created = true;
	seg->writable = true;
	set_views(seg);
	return 0;
}

int vigil_segment_open(struct vigil_segment *seg, const char *name, uint32_t slots, mode_t mode,
		       bool create, bool writable, char *err, size_t err_len)
{
	memset(seg, 0, sizeof *seg);
	if (vigil_segment_name_check(name) < 0) {
		seterr(err, err_len, "invalid segment name '%s': want '/' then [A-Za-z0-9._-]", name);
		return -EINVAL;
	}
	snprintf(seg->name, sizeof seg->name, "%s", name);
	/* Two attempts: if a racing creator wins O_EXCL, attach to its object. */
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = shm_open(name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0);
		if (fd < 0 && errno == ENOENT && create) {
			int rc = create_new(seg, name, slots, mode, err, err_len);
			if (rc == -EEXIST)
				continue;
			if (rc < 0 && err != NULL && err[0] == '\0')
				seterr(err, err_len, "cannot create segment %s: %s", name, strerror(-rc));
			return rc;
		}
		if (fd < 0) {
			int e = -errno;
			seterr(err, err_len, "cannot open segment %s: %s", name, strerror(-e));
			return e;
		}
		struct stat st;
		if (fstat(fd, &st) < 0) {
			int e = -errno;
			close(fd);
			seterr(err, err_len, "cannot stat segment %s: %s", name, strerror(-e));
			return e;
		}
		if (st.st_uid != geteuid()) {
			close(fd);
			seterr(err, err_len,
			       "segment %s is owned by uid %u, not by us (uid %u): refusing to use it; "
			       "remove it (rm /dev/shm%s) or choose another name with --shm",
			       name, (unsigned)st.st_uid, (unsigned)geteuid(), name);
			return -EPERM;
		}
		if ((st.st_mode & 0777 & ~mode) != 0) {
			close(fd);
			seterr(err, err_len, "segment %s has mode %03o, wider than %03o: refusing to use it", name,
			       (unsigned)(st.st_mode & 0777), (unsigned)mode);
			return -EPERM;
		}
		if ((uint64_t)st.st_size < VIGIL_HEADER_SIZE || (uint64_t)st.st_size > vigil_segment_size(VIGIL_SLOTS_MAX)) {
			close(fd);
			seterr(err, err_len, "segment %s has size %lld, not a vigil segment: refusing it", name,
			       (long long)st.st_size);
			return -EBADMSG;
		}
		void *p = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
			       fd, 0);
		int e = -errno;
		close(fd);
		if (p == MAP_FAILED) {
			seterr(err, err_len, "cannot map segment %s: %s", name, strerror(-e));
			return e;
		}
		int rc = vigil_header_check(p, (uint64_t)st.st_size);
		if (rc < 0) {
			const struct vigil_shm_header *h = p;
			if (rc == -EPROTO)
				seterr(err, err_len, "segment %s has ABI version %u, this vigil speaks %u: refusing it",
				       name, h->abi_version, VIGIL_ABI_VERSION);
			else
				seterr(err, err_len,
				       "segment %s has a bad header (magic, sizes or offsets do not match its "
				       "%lld bytes): refusing it; remove it (rm /dev/shm%s) if no worker uses it",
				       name, (long long)st.st_size, name);
			munmap(p, (size_t)st.st_size);
			return rc;
		}
		seg->hdr = p;
		seg->size = (uint64_t)st.st_size;
		seg->slots = ((const struct vigil_shm_header *)p)->slot_count;
		seg->writable = writable;
		set_views(seg);
		return 0;
	}
	seterr(err, err_len, "segment %s appeared and vanished while opening it", name);
	return -EAGAIN;
}

void vigil_segment_close(struct vigil_segment *seg)
{
	if (seg->hdr != NULL)
		munmap(seg->hdr, seg->size);
	memset(seg, 0, sizeof *seg);
}

int vigil_segment_unlink(const char *name)
{
	if (vigil_segment_name_check(name) < 0)
		return -EINVAL;
	return shm_unlink(name) < 0 ? -errno : 0;
}

/* The byte the lock covers; any fixed range would do. */
static const struct flock supervisor_lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

static pid_t lock_holder(int fd)
{
	struct flock q = supervisor_lock;
	if (fcntl(fd, F_GETLK, &q) < 0)
		return -errno;
	if (q.l_type == F_UNLCK)
		return 0;
	/* Held, by a process of another pid namespace (l_pid 0): still held. */
	return q.l_pid > 0 ? q.l_pid : -EBUSY;
}

int vigil_segment_lock(const char *name, pid_t *holder)
{
	*holder = 0;
	if (vigil_segment_name_check(name) < 0)
		return -EINVAL;
	int fd = shm_open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0)
		return -errno;
	struct flock l = supervisor_lock;
	if (fcntl(fd, F_SETLK, &l) == 0)
		return fd;
	int e = errno;
	if (e == EAGAIN || e == EACCES) { /* POSIX allows either for "held" */
		pid_t h = lock_holder(fd);
		*holder = h > 0 ? h : 0;
		e = EAGAIN;
	}
	close(fd);
	return -e;
}

int vigil_segment_lock_wait(const char *name, uint32_t wait_ms, pid_t *holder, void (*on_wait)(pid_t holder))
{
	/* Bounded: wait_ms / 20 + 1 tries. */
	for (uint32_t waited_ms = 0;; waited_ms += 20) {
		int fd = vigil_segment_lock(name, holder);
		if (fd != -EAGAIN || waited_ms >= wait_ms)
			return fd;
		if (waited_ms == 0 && on_wait != NULL)
			on_wait(*holder);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

pid_t vigil_segment_supervisor(const char *name)
{
	if (vigil_segment_name_check(name) < 0)
		return -EINVAL;
	int fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0)
		return -errno;
	pid_t h = lock_holder(fd);
	close(fd);
	return h;
}

bool vigil_segment_slot_free(struct vigil_segment *seg, uint32_t slot, uint64_t expect)
{
	return vigil_segment_slot_set(seg, slot, expect, VIGIL_SLOT_FREE);
}

bool vigil_segment_slot_set(struct vigil_segment *seg, uint32_t slot, uint64_t expect, uint32_t state)
{
	if (slot >= seg->slots || !seg->writable)
		return false;
	/* acq_rel: the identity we read before deciding must not be reordered
	 * past the release of the slot to a new claimant, and a later
	 * claimant's writes must not move before our CAS. */
	return atomic_compare_exchange_strong_explicit(&seg->hot[slot].owner, &expect,
						       vigil_owner_make(state, vigil_owner_gen(expect)),
						       memory_order_acq_rel, memory_order_relaxed);
}
