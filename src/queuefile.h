/*
 * queuefile.h - listing, reading and validating the files of vigild's
 * queues and of its own records (queuefile.c).  Action thread only; no
 * state.
 */
#ifndef VIGIL_QUEUEFILE_H
#define VIGIL_QUEUEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A request's file name: not hidden, "*.json", shorter than 128 bytes. */
bool vigil_queue_name_ok(const char *n);
/* Up to max request names of the directory, sorted; returns how many. */
uint32_t vigil_queue_list(int dirfd, char (*names)[128], uint32_t max);
/* The file as one JSON object (new reference), or NULL with one sentence in
 * why: "not trusted: ...", "a symbolic link ...", "not a regular file",
 * "larger than 64 KiB", "cannot read: ..." (transient), "contains a NUL
 * byte", "not valid JSON (...)", "not a JSON object". */
json_t *vigil_queue_read(int dirfd, const char *name, char *why, size_t why_len);
/* The id member key ([A-Za-z0-9._-]{1,64}, not starting with '.') into out;
 * absent is fine unless required.  false with why. */
bool vigil_queue_get_id(json_t *o, const char *key, bool required, char out[65], char *why, size_t why_len);
/* A command: a non-empty list (<= 256) of strings (<= 4096 bytes, no NUL). */
bool vigil_queue_command_ok(json_t *cmd);
/* Modified less than 2 s ago (or gone meanwhile): maybe still being written. */
bool vigil_queue_still_written(int qfd, const char *name);
/* Whether a file that could not be taken (why, from vigil_queue_read) is
 * moved aside now: never for a transient read failure; at once for a link,
 * a non-regular or an untrusted file; else once it has been left alone. */
bool vigil_queue_should_reject(int qfd, const char *name, const char *why);

/* A restart request in the runbook's format, the one document every writer
 * of restart/queue/ makes (vigilctl restart, vigild's own retries,
 * auto-fix): worker_id, worker_type, task_id, reason, created_at and
 * created_at_ms, and source when not NULL ("vigild", "autofix"; an
 * operator's request has none: README, "Worker lifecycle").  New reference,
 * NULL when out of memory or when reason is not valid UTF-8. */
json_t *vigil_queue_restart_doc(const char *worker_id, const char *worker_type, const char *task_id,
				const char *reason, const char *source, uint64_t now_ms);

#endif /* VIGIL_QUEUEFILE_H */
