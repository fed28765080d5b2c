/*
 * history.h - coordination/metrics/worker-restart-history.jsonl: one line
 * per restart outcome, written by vigild and read back by vigild.
 *
 * Why a reader at all, when vigild writes the file itself?  Because the
 * file is also an input (README "What vigild writes", "Self-healing"): operators and their scripts append
 * lines with a shell heredoc (the runbook's "Test Circuit Breaker" appends
 * six failures), and those lines count toward the circuit breakers exactly
 * like vigild's own.  So the history file, not vigild's memory, is the
 * source of truth for "consecutive failures of a type", and a restarted
 * vigild rebuilds its breakers by reading it from the start.
 *
 * The writer keeps README "What vigild writes"'s rules: one compact JSON object per line
 * ("result":"success" with no spaces, which the runbook greps for), written
 * by one write() so a line is never torn.
 *
 * The reader tails the file by byte offset, with bounded work per call (a
 * line budget and a byte budget), so the action thread can poll it every
 * tick without ever stalling on a huge or hostile file.  Lines appended by
 * others are untrusted (README "Reliability"): every byte goes through jansson, a NUL
 * byte is refused before jansson sees it (json_loadb would stop at it and
 * accept "{...}\0garbage"), and a line that is not a well-formed record is
 * reported to a callback with its line number and reason, counted, and
 * skipped; the lines around it still count.  A trailing line with no '\n'
 * yet is held back until its writer finishes it: a half-written line is
 * never taken for a record.  A file that shrank or was replaced (rotated,
 * truncated, rewritten) is read again from its start.
 */
#ifndef VIGIL_HISTORY_H
#define VIGIL_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* File name under coordination/metrics/ (README "What vigild writes"). */
#define VIGIL_HISTORY_FILE "worker-restart-history.jsonl"

/* A line longer than this (not counting its '\n') is bad and skipped whole. */
#define VIGIL_HISTORY_LINE_MAX_BYTES 65536u

/* At most this many bytes are read by one vigil_history_read() call. */
#define VIGIL_HISTORY_READ_MAX_BYTES (4u * 1024u * 1024u)

/* Longest request_id (bytes); a longer one makes the line bad. */
#define VIGIL_HISTORY_REQUEST_ID_MAX_BYTES 128u

/* Longest reason kept (bytes); a longer one is cut at a UTF-8 boundary. */
#define VIGIL_HISTORY_REASON_MAX_BYTES 128u

struct vigil_history_record {
	char worker_id[65], worker_type[65], task_id[65]; /* "" when absent */
	char request_id[VIGIL_HISTORY_REQUEST_ID_MAX_BYTES + 1]; /* "" when absent */
	char reason[VIGIL_HISTORY_REASON_MAX_BYTES + 1];        /* "" when absent */
	bool success;          /* "result":"success" -> true, "failure" -> false */
	uint32_t attempt;      /* 0 when absent */
	uint64_t timestamp_ms; /* "timestamp_ms", else parsed "timestamp", else 0 */
};

/*
 * vigil_history_parse - one line (len bytes, without its '\n') into *out.
 *
 * Returns 0, or -EINVAL with a short reason in why (may be NULL) and *out
 * unspecified.  A line is bad when it:
 *   - is longer than VIGIL_HISTORY_LINE_MAX_BYTES, or contains a NUL byte;
 *   - is not JSON (jansson; a duplicate key is an error too, since
 *     {"result":"success","result":"failure"} has no one meaning), or its
 *     top level is not an object;
 *   - has no "result", or one that is not the string "success"/"failure";
 *   - has no "worker_type", or one that is not a name (README "What vigild writes":
 *     [A-Za-z0-9._-]{1,64}, not starting with '.');
 *   - has a "worker_id" or "task_id" that is neither null, "" nor a name;
 *   - has a "request_id" that is neither null nor a string of at most
 *     VIGIL_HISTORY_REQUEST_ID_MAX_BYTES bytes;
 *   - has a "reason" that is neither null nor a string;
 *   - has an "attempt" that is not an integer in [0, 2^32-1], or a
 *     "timestamp_ms" that is not an integer in [0, 2^53].
 * "timestamp" is informational: when it is not "YYYY-MM-DDTHH:MM:SSZ"
 * (optionally with a fraction of a second, or "+00:00" for "Z") and there
 * is no "timestamp_ms", timestamp_ms is 0 (unknown); the line still counts.
 * Unknown keys are ignored.
 */
int vigil_history_parse(const char *line, size_t len, struct vigil_history_record *out, char *why,
			size_t why_len);

/*
 * vigil_history_append - one compact line for r, by one write() on fd (an
 * O_APPEND fd from vigil_fs_open_append):
 *   {"worker_id","worker_type","task_id","attempt","delay_seconds",
 *    "result":"success"|"failure","reason","request_id" (when non-empty),
 *    ...extra's keys..., "timestamp","timestamp_ms"}
 * extra (may be NULL) is an object whose keys are merged in; it cannot
 * override the keys above.  The time is r->timestamp_ms, or now when that
 * is 0.  Returns 0, -EINVAL (worker_type not a name, worker_id/task_id
 * neither "" nor a name, delay_seconds not finite, extra not an object),
 * -E2BIG (the line would exceed VIGIL_HISTORY_LINE_MAX_BYTES, so readers
 * would refuse it), -ENOMEM, or the -errno of the write.
 */
int vigil_history_append(int fd, const struct vigil_history_record *r, double delay_seconds,
			 const json_t *extra);

/*
 * Incremental reader.  Holds the byte offset it has consumed up to, the
 * identity of the file it was reading, and the unfinished last line.  It
 * embeds a line buffer of VIGIL_HISTORY_LINE_MAX_BYTES, so allocate it
 * statically or on the heap, not on a small stack.  Not thread-safe: one
 * owner.
 */
struct vigil_history_reader {
	uint64_t offset;          /* bytes of the file consumed (complete lines + partial) */
	uint64_t dev, ino;        /* file being read; 0/0 before the first open */
	uint64_t lineno;          /* lines completed so far in this file */
	uint64_t lines_ok, lines_bad; /* totals over the reader's life */
	uint64_t restarts;        /* times the file shrank or was replaced */
	bool more;                /* last call stopped at a budget, not at end of file */
	bool skipping;            /* inside an over-long line: drop bytes until '\n' */
	size_t partial_len;       /* bytes of the unfinished line in partial */
	char partial[VIGIL_HISTORY_LINE_MAX_BYTES];
};

void vigil_history_reader_init(struct vigil_history_reader *r);

/*
 * vigil_history_read - read the complete lines that name (in dirfd) gained
 * since the last call: at most max_lines lines (good or bad) and at most
 * VIGIL_HISTORY_READ_MAX_BYTES bytes; r->more says whether it stopped at
 * one of those budgets (call again) rather than at the end of the file.
 *
 * Opens with openat(O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK) (a planted
 * FIFO cannot block us) and reads only a regular file (-ELOOP for a
 * symbolic link, -EINVAL for anything else).  A missing file returns 0 and
 * keeps the reader's state.  When the file is not the one read last time
 * (device/inode differ) or is shorter than the offset, reading restarts at
 * offset 0, line 1 (r->restarts counts it).
 *
 * on_record (may be NULL) gets each good record; on_bad (may be NULL) gets
 * the 1-based line number and reason of each bad line.  Returns the number
 * of records passed to on_record, or -errno (state kept: a later call
 * resumes where this one stopped).
 */
int vigil_history_read(struct vigil_history_reader *r, int dirfd, const char *name, uint32_t max_lines,
		       void (*on_record)(void *ctx, const struct vigil_history_record *rec),
		       void (*on_bad)(void *ctx, uint64_t lineno, const char *why), void *ctx);

/*
 * vigil_history_has_request - does name (in dirfd) hold a good record whose
 * request_id is request_id?  Used for exactly-once after a crash: a queued
 * restart request whose outcome is already in the history is not run
 * again.  Scans the whole file as it is at the call (bounded by its size
 * then); only lines that can contain the id are given to jansson.
 * Returns 1, 0 (also for a missing file), -EINVAL (request_id empty or
 * longer than VIGIL_HISTORY_REQUEST_ID_MAX_BYTES), or -errno.
 */
int vigil_history_has_request(int dirfd, const char *name, const char *request_id);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or "+00:00" for "Z"), a year in
 * 1970..9999, into Unix milliseconds.  0 or -EINVAL. */
int vigil_history_parse_iso8601(const char *s, size_t len, uint64_t *out_ms);

#endif /* VIGIL_HISTORY_H */
