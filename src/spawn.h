/*
 * spawn.h - start a worker with a slot of its own and know at once whether
 * its exec worked (README "Trust: the segment is untrusted input", "Self-healing").
 *
 * vigil_spawn() claims a slot for the worker (CLAIMED, gen+1), writes its
 * identity, forks, and publishes the slot as ACTIVE only once the child's
 * execve() has succeeded.  On any failure nothing is left behind: no slot,
 * no child, no fd.  See spawn.c for the protocol and its trade-offs.
 *
 * Threading: call from one thread at a time (vigild's action thread).  The
 * caller must not reap children with waitpid(-1) elsewhere, and SIGCHLD
 * must not be SIG_IGN (that makes the kernel auto-reap, and the pidfd
 * could no longer report the exit status).
 */
#ifndef VIGIL_SPAWN_H
#define VIGIL_SPAWN_H

#include <stdint.h>

#include "segment.h"

/* How long vigil_spawn waits for the child's execve() before it kills the
 * child and gives up (-ETIMEDOUT).  Below VIGIL_CLAIM_STALE_NS, so the
 * scanner never reclaims a slot we are still starting. */
#define VIGIL_SPAWN_EXEC_TIMEOUT_MS 3000

struct vigil_spawn_req {
	/* validated by the caller with vigil_id_valid (task may be "" or NULL);
	 * checked again here (-EINVAL) */
	const char *worker_id, *worker_type, *task_id;
	/* NULL-terminated; argv[0] is the program: with a '/', used as is
	 * (a relative one is resolved in the child's cwd, after chdir);
	 * else searched in the absolute entries of vigild's PATH (default
	 * "/bin:/usr/bin"), in the parent, before anything is claimed. */
	const char *const *argv;
	const char *cwd;    /* NULL: leave as is */
	int log_dirfd;      /* -1: stdout/stderr -> /dev/null; else appended to
			     * "<worker_id>.log" in that directory (O_NOFOLLOW) */
	uint64_t spawn_tag; /* written into cold.spawn_tag */
	uint64_t tokens;    /* exported to the child as VIGIL_TOKENS */
	/* 0: the child inherits vigild's RLIMIT_NOFILE.  Else its soft limit
	 * (clamped to the hard one): vigild raises its own soft limit for
	 * pidfds, and workers that use select() want the usual 1024 back. */
	uint64_t nofile_soft;
};

struct vigil_spawn_result {
	int32_t pid;       /* > 0 on success; 0 on failure */
	/* pidfd of the child (pidfd_open right after fork), owned by the
	 * caller on success; -1 on failure, and on success only where the
	 * kernel has no pidfd_open (ENOSYS: valgrind < 3.20, some seccomp
	 * profiles; never on the kernels vigil targets): the caller then
	 * reaps with waitpid(pid), which is safe because the child is ours. */
	int pidfd;
	uint32_t slot;     /* valid on success */
	uint64_t gen;      /* valid on success */
	uint64_t start_ticks; /* cold.pid_start_ticks written for the child (0 unknown) */
	/* 0, or -errno: -EINVAL (request), -ENOENT/-EACCES/-ENAMETOOLONG
	 * (program lookup, nothing claimed), -ELOOP/-ENXIO/-EINVAL...
	 * (log file: a symlink, a FIFO, not a regular file; nothing
	 * claimed), -ENOSPC (no free slot), -EAGAIN/-ENOMEM (fork),
	 * -ENOENT/-EACCES/-ENOEXEC/... (the child's chdir or execve),
	 * -EPIPE/-ECONNRESET (the child was killed before execve),
	 * -ETIMEDOUT (execve did not finish in VIGIL_SPAWN_EXEC_TIMEOUT_MS;
	 * the child was killed), -ESTALE (the slot was taken from us while
	 * the child started; the child was killed).  On every failure no
	 * slot, child or fd is left behind. */
	int err;
	char msg[256];     /* one sentence for logs on failure, e.g.
			    * "exec /no/such: No such file or directory" */
};

/* 0 or -errno (also in out->err).  See spawn.c. */
int vigil_spawn(struct vigil_segment *seg, const char *shm_name, const struct vigil_spawn_req *req,
		struct vigil_spawn_result *out);

/* Test hook: when > 0, the Nth fork from now fails with EAGAIN
 * (SQLite-style fault injection).  Counts down on every fork attempt and
 * stays at 0 afterwards.  Not thread-safe, like vigil_spawn itself. */
extern int vigil_spawn_fail_fork_at;

/* The umask a worker starts with, when >= 0 (else the caller's).  vigild
 * keeps 022 or narrower for its own files (its home must not become group
 * writable, README.md "Trust") and gives workers back the umask it was
 * started with.  Set once by main before any spawn. */
extern int vigil_spawn_umask;

#endif /* VIGIL_SPAWN_H */
