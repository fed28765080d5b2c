/*
 * verify.h - is the process a slot names really the worker that registered?
 *
 * README "Trust: the segment is untrusted input": vigild never signals a pid merely because a slot names it.  A
 * worker is "verified" when, with a pidfd already open on the pid:
 *   - the process belongs to our user, its start time matches the one the
 *     registrar recorded (so the pid was not recycled), and
 *   - it maps our segment itself (a C worker), or the registrar that wrote
 *     the slot is still alive, maps our segment, and is a child of the pid
 *     (the shell emitter: vigilctl emit run by the worker shell);
 *   - and the pidfd still refers to a live process after those reads, so
 *     /proc/<pid> described the same process throughout.
 * Only verified workers are watched through their pidfd (and, later,
 * signalled through it).  Others are monitored by heartbeat timeouts only.
 */
#ifndef VIGIL_VERIFY_H
#define VIGIL_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vigil_verify_result {
	int pidfd;      /* open when verified; else -1 */
	bool gone;      /* the registered process no longer exists */
	bool verified;
	char reason[160];
};

/* shm_name is the segment's name ("/vigil-...").  known: a previous vigild
 * verified this process (its spec says so, with this pid and start time):
 * then the segment-mapping check is not asked again (a shell worker's
 * registrar, vigilctl emit, is long gone by then), but everything that says
 * it is the same process still is (owner, start time, alive), so a recycled
 * pid is never taken for it.  Never fails; see result. */
void vigil_verify_worker(const char *shm_name, int32_t pid, int32_t registrar_pid, uint64_t start_ticks, bool known,
			 struct vigil_verify_result *out);

/* Field 22 of /proc/<pid>/stat (0 unknown) and field 4 (ppid, -1 unknown). */
uint64_t vigil_proc_start_ticks(int32_t pid);
int32_t vigil_proc_ppid(int32_t pid);
/* Does /proc/<pid>/maps show /dev/shm<shm_name>?  Bounded read. */
bool vigil_proc_maps_segment(int32_t pid, const char *shm_name);
/* The exit status of a process that has ended but is not reaped yet by its
 * parent (state Z), read from /proc/<pid>/stat (field 52), if its start
 * time is start_ticks (so a recycled pid is never read).  Sets *code
 * (exit code or -1) and *sig (signal or 0); false when unknowable. */
bool vigil_proc_exit_status(int32_t pid, uint64_t start_ticks, int32_t *code, int32_t *sig);
/* Is `entry` ("NAME=value") one of the variables pid started with
 * (/proc/<pid>/environ, first 64 KiB; readable for our own processes only)? */
bool vigil_proc_environ_has(int32_t pid, const char *entry);
/* The working directory of pid into out ("" when unknown). */
void vigil_proc_cwd(int32_t pid, char *out, size_t out_len);
/* argv of pid as a compact JSON array text into out ("[]" when unknown). */
void vigil_proc_cmdline_json(int32_t pid, char *out, size_t out_len);

#endif /* VIGIL_VERIFY_H */
