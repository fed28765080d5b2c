/*
 * fuzz_header.c - the segment header check (vigil_header_check in
 * emitter/vigil.h) and both sides' attach path over a hostile segment.
 *
 * Input: [size selector:1][slot:4][gen:2] then the segment's first bytes
 * (the header and whatever follows).  The segment is a real POSIX shm
 * object of the selected size with those bytes at its start, mode 0600:
 *   - vigil_header_check on the header alone, against the selected size;
 *   - vigild's vigil_segment_open (attach, writable), which must refuse
 *     with a sentence or produce a segment whose every slot lies inside
 *     the mapping (the last hot line, cold part and view are read);
 *   - the emitter's vigil_attach_to (the slot and generation from the
 *     input) and vigil__map + vigil_register + vigil_beat + vigil_detach.
 * A header that passes the check must describe exactly the mapping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "segment.h"
#include "vigil.h"

#define MAX_OBJECT (1u << 20)

static char shm_name[64];

static void unlink_shm(void)
{
	if (shm_name[0] != '\0')
		shm_unlink(shm_name);
}

static void check_valid_header(const struct vigil_shm_header *h, uint64_t size)
{
	uint64_t n = h->slot_count;
	FUZZ_CHECK(h->magic == VIGIL_MAGIC && h->abi_version == VIGIL_ABI_VERSION, "magic/abi");
	FUZZ_CHECK(n >= 1 && n <= VIGIL_SLOTS_MAX, "slot_count %llu accepted", (unsigned long long)n);
	FUZZ_CHECK(h->hot_offset == VIGIL_HEADER_SIZE && h->cold_offset == h->hot_offset + n * VIGIL_HOT_SIZE &&
			   h->view_offset == h->cold_offset + n * VIGIL_COLD_SIZE &&
			   h->view_offset + n * VIGIL_VIEW_SIZE == size && h->segment_size == size,
		   "accepted a header that does not tile %llu bytes", (unsigned long long)size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (shm_name[0] == '\0') {
		snprintf(shm_name, sizeof shm_name, "/vigil-fuzz-hdr-%d", (int)getpid());
		atexit(unlink_shm);
	}
	const uint8_t *p = data;
	size_t left = size;
	unsigned sel = (unsigned)fuzz_take(&p, &left, 1);
	uint32_t slot = (uint32_t)fuzz_take(&p, &left, 4);
	uint64_t gen = fuzz_take(&p, &left, 2);

	/* The header on its own, zero-padded to a page. */
	struct vigil_shm_header *h = calloc(1, sizeof *h);
	if (h == NULL)
		return 0;
	memcpy(h, p, left < sizeof *h ? left : sizeof *h);
	uint64_t mapped;
	switch (sel % 5) {
	case 0: mapped = h->segment_size; break;
	case 1: mapped = vigil_segment_size(h->slot_count); break;
	case 2: mapped = left; break;
	case 3: mapped = sel / 5; break; /* smaller than a header */
	default: mapped = h->segment_size ^ ((uint64_t)sel << 56); break;
	}
	int rc = vigil_header_check(h, mapped);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO, "header_check rc %d", rc);
	if (rc == 0)
		check_valid_header(h, mapped);

	/* A real object: the selected size when it is reasonable. */
	uint64_t objsize = mapped >= VIGIL_HEADER_SIZE && mapped <= MAX_OBJECT ? mapped : left;
	if (objsize > MAX_OBJECT)
		objsize = MAX_OBJECT;
	int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)objsize) < 0)
		abort();
	size_t n = left < objsize ? left : (size_t)objsize;
	if (n > 0 && pwrite(fd, p, n, 0) != (ssize_t)n)
		abort();
	close(fd);
	free(h);

	struct vigil_segment seg;
	char err[512];
	err[0] = '\0';
	rc = vigil_segment_open(&seg, shm_name, 1, 0600, false, true, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTO || rc == -ENOMEM || rc == -EINVAL,
		   "segment_open rc %d: %s", rc, err);
	if (rc == 0) {
		FUZZ_CHECK(seg.size == objsize && seg.slots >= 1 && vigil_segment_size(seg.slots) == seg.size,
			   "attached %u slots over %llu bytes", seg.slots, (unsigned long long)seg.size);
		volatile uint64_t sink = 0;
		sink += atomic_load_explicit(&seg.hot[seg.slots - 1].owner, memory_order_relaxed);
		sink += (uint64_t)seg.cold[seg.slots - 1].reserved[sizeof seg.cold[0].reserved - 1];
		sink += atomic_load_explicit(&seg.view[seg.slots - 1].missed, memory_order_relaxed);
		(void)sink;
		vigil_segment_close(&seg);
	} else {
		FUZZ_CHECK(err[0] != '\0', "refused (%d) without a sentence", rc);
	}

	/* The worker's side: a prepared slot, then self-registration. */
	struct vigil v;
	rc = vigil_attach_to(&v, shm_name, slot % 64 == 63 ? slot : slot % 64, gen);
	if (rc == 0) {
		FUZZ_CHECK((char *)v.hot >= (char *)v.hdr + VIGIL_HEADER_SIZE &&
				   (char *)(v.hot + 1) <= (char *)v.hdr + v.map_size,
			   "attach_to gave a line outside the mapping");
		vigil_beat(&v, 100, 1);
		vigil_detach(&v);
	}
	memset(&v, 0, sizeof v);
	rc = vigil__map(&v, shm_name, 1);
	if (rc == 0) {
		rc = vigil_register(&v, "worker-fuzz-001", "fuzz", "task-1", (int)getpid());
		if (rc == 0) {
			FUZZ_CHECK((char *)v.hot >= (char *)v.hdr + VIGIL_HEADER_SIZE &&
					   (char *)(v.hot + 1) <= (char *)v.hdr + v.map_size,
				   "register gave a line outside the mapping");
			vigil_beat(&v, 50, 50);
			vigil_detach(&v);
		} else {
			munmap(v.hdr, v.map_size);
		}
	}
	return 0;
}
