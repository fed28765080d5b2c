/*
 * libvigil.c - the emitter as a library (libvigil.so, libvigil.a) for
 * workers that cannot inline vigil.h: C++ (vigil.h declares the calls
 * extern "C" there), and every language with a foreign-function layer
 * (Python's ctypes module python/vigil.py, Node, Go, Rust ...).
 *
 * The code is vigil.h's own: included with VIGIL_BUILD_LIB, each call of
 * the API becomes an exported function instead of a static inline one, so
 * the library and a header-only worker can never disagree about the
 * segment.  Exported, and versioned, are exactly the names in
 * emitter/libvigil.map (tests/lib_symbols.sh checks it).
 *
 * Added here: the opaque-handle form.  A foreign-function layer holds a
 * pointer and never needs struct vigil's layout (contracts in vigil.h).
 */
#define VIGIL_BUILD_LIB 1
#include "vigil.h"

struct vigil_handle {
	struct vigil v;
};

VIGIL_API struct vigil_handle *vigil_open(int *err)
{
	struct vigil_handle *h = calloc(1, sizeof *h);
	int rc = h != NULL ? vigil_attach(&h->v) : -ENOMEM;
	if (rc < 0) {
		free(h);
		h = NULL;
	}
	if (err != NULL)
		*err = rc;
	return h;
}

/* The beat through a handle: one test more than vigil_beat (NULL). */
VIGIL_API int vigil_handle_beat(struct vigil_handle *h, unsigned health, unsigned progress)
{
	if (h == NULL)
		return -ENOTCONN;
	return vigil_beat(&h->v, health, progress);
}

VIGIL_API int vigil_handle_detach(struct vigil_handle *h)
{
	if (h == NULL)
		return -ENOTCONN;
	return vigil_detach(&h->v);
}

/* Unmaps without a goodbye when still attached (see vigil.h). */
VIGIL_API void vigil_close(struct vigil_handle *h)
{
	if (h == NULL)
		return;
	if (h->v.hdr != NULL)
		munmap(h->v.hdr, h->v.map_size);
	free(h);
}
