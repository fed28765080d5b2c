/*
 * invariant.h - VIGIL_ASSERT: vigild's own invariants, checked at run time
 * in every build (not only debug ones).
 *
 * What it is for: facts about vigild's private state that no input can
 * break (a lifecycle cell that cannot be reached, a count that cannot go
 * negative).  When one is false, vigild has a bug, and carrying on would
 * make it act on state it no longer understands (signal the wrong process,
 * restart beyond a budget).  So it says where, file:line and the condition,
 * on stderr and ends with abort(): systemd (Restart=) or the operator
 * starts a fresh vigild, which adopts the workers from the segment.
 *
 * What it is NOT for: anything read from outside.  Shared memory, queue
 * files, policies, history lines appended by others are untrusted input:
 * handle them, report them, never assert on them.
 */
#ifndef VIGIL_INVARIANT_H
#define VIGIL_INVARIANT_H

#include <stdio.h>
#include <stdlib.h>

#define VIGIL_ASSERT(cond)                                                                                        \
	do {                                                                                                          \
		if (__builtin_expect(!(cond), 0)) {                                                                   \
			fprintf(stderr, "vigild: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

#endif /* VIGIL_INVARIANT_H */
