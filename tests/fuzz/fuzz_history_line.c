/*
 * fuzz_history_line.c - one restart-history line (vigil_history_parse), the
 * timestamp parser, and the writer's round trip.
 *
 * History lines are appended by anyone (README "What vigild writes", "Self-healing": the runbook's breaker
 * test appends six by hand), so every byte is untrusted.  Checks:
 *   - parse returns 0 or -EINVAL; on success every string of the record is
 *     terminated inside its buffer, worker_type is a name (README "What vigild writes"),
 *     worker_id/task_id are "" or names;
 *   - a record that parsed, written back by vigil_history_append (as vigild
 *     writes its own lines), is one compact line that parses to the same
 *     record;
 *     (with a "timestamp" of README "What vigild writes"'s form, whatever timestamp_ms says);
 *   - vigil_history_parse_iso8601 on the raw bytes never reads past them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "history.h"
#include "vigil.h"

static int memfd = -1;

static void check_record(const struct vigil_history_record *r)
{
	FUZZ_CHECK(fuzz_terminated(r->worker_id, sizeof r->worker_id) &&
			   fuzz_terminated(r->worker_type, sizeof r->worker_type) &&
			   fuzz_terminated(r->task_id, sizeof r->task_id) &&
			   fuzz_terminated(r->request_id, sizeof r->request_id) &&
			   fuzz_terminated(r->reason, sizeof r->reason),
		   "a record string is not terminated");
	FUZZ_CHECK(vigil_id_valid(r->worker_type), "worker_type '%s' is not a name", r->worker_type);
	FUZZ_CHECK(r->worker_id[0] == '\0' || vigil_id_valid(r->worker_id), "worker_id '%s'", r->worker_id);
	FUZZ_CHECK(r->task_id[0] == '\0' || vigil_id_valid(r->task_id), "task_id '%s'", r->task_id);
	FUZZ_CHECK(r->timestamp_ms <= (1ull << 53), "timestamp_ms %llu", (unsigned long long)r->timestamp_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz-history", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
	}
	char *line = malloc(size > 0 ? size : 1); /* exactly size bytes: ASan sees overreads */
	if (line == NULL)
		return 0;
	memcpy(line, data, size);

	uint64_t ms = 0;
	int irc = vigil_history_parse_iso8601(line, size, &ms);
	FUZZ_CHECK(irc == 0 || irc == -EINVAL, "iso8601 rc %d", irc);

	struct vigil_history_record rec;
	char why[160];
	memset(why, 'x', sizeof why);
	int rc = vigil_history_parse(line, size, &rec, why, sizeof why);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "parse rc %d", rc);
	FUZZ_CHECK(fuzz_terminated(why, sizeof why), "why not terminated");
	if (rc != 0) {
		FUZZ_CHECK(why[0] != '\0', "a bad line without a reason");
		free(line);
		return 0;
	}
	check_record(&rec);
	free(line);

	/* Write it back the way vigild writes its own lines, and read that. */
	if (ftruncate(memfd, 0) < 0 || lseek(memfd, 0, SEEK_SET) < 0)
		abort();
	int arc = vigil_history_append(memfd, &rec, 1.5, NULL);
	if (arc != 0) {
		/* Only what the header lists; a reason or request_id with bytes
		 * that are not UTF-8 can make jansson refuse the string. */
		FUZZ_CHECK(arc == -EINVAL || arc == -E2BIG, "append rc %d", arc);
		return 0;
	}
	off_t end = lseek(memfd, 0, SEEK_END);
	FUZZ_CHECK(end > 1, "append wrote nothing");
	char *out = malloc((size_t)end + 1);
	if (out == NULL)
		return 0;
	FUZZ_CHECK(pread(memfd, out, (size_t)end, 0) == end, "pread");
	out[end] = '\0';
	FUZZ_CHECK(out[end - 1] == '\n' && memchr(out, '\n', (size_t)end - 1) == NULL,
		   "append did not write exactly one line");
	struct vigil_history_record back;
	rc = vigil_history_parse(out, (size_t)end - 1, &back, why, sizeof why);
	FUZZ_CHECK(rc == 0, "vigild's own line does not parse back: %s: %.*s", why, (int)end, out);
	FUZZ_CHECK(strcmp(back.worker_id, rec.worker_id) == 0 && strcmp(back.worker_type, rec.worker_type) == 0 &&
			   strcmp(back.task_id, rec.task_id) == 0 && back.success == rec.success &&
			   back.attempt == rec.attempt && strcmp(back.reason, rec.reason) == 0 &&
			   strcmp(back.request_id, rec.request_id) == 0,
		   "round trip changed the record: %.*s", (int)end, out);
	FUZZ_CHECK(rec.timestamp_ms == 0 || back.timestamp_ms == rec.timestamp_ms, "timestamp %llu -> %llu",
		   (unsigned long long)rec.timestamp_ms, (unsigned long long)back.timestamp_ms);
	FUZZ_CHECK(strstr(out, "\"result\":\"") != NULL, "not compact: %.*s", (int)end, out);
	/* README "What vigild writes": every record's "timestamp" is YYYY-MM-DDTHH:MM:SSZ. */
	json_t *doc = json_loadb(out, (size_t)end - 1, 0, NULL);
	const char *ts = json_string_value(json_object_get(doc, "timestamp"));
	FUZZ_CHECK(ts != NULL && fuzz_iso8601_ok(ts), "\"timestamp\" is '%s' in %.*s", ts != NULL ? ts : "(none)",
		   (int)end, out);
	json_decref(doc);
	free(out);
	return 0;
}
