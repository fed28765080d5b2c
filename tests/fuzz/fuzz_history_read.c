/*
 * fuzz_history_read.c - the incremental history reader (vigil_history_read)
 * and vigil_history_has_request over a file made of the input.
 *
 * Input: [repeat:1][split:2][max_lines:1] then the payload.  The file is
 * the payload repeated 1 + repeat % 32 times (so lines longer than the
 * 64 KiB limit and reads across the 16 KiB chunks are reachable from small
 * inputs); its first `split` bytes are written, read until the reader has
 * nothing more, then the rest is appended and read again: a line cut in
 * two by the writer must be taken once, whole.
 *
 * Checks against an independent count of the file's complete lines: every
 * good line reaches on_record exactly once, every bad one on_bad exactly
 * once (with increasing line numbers), the trailing unfinished line never;
 * records are well-formed; has_request finds a request_id the reader saw.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "history.h"
#include "vigil.h"

#define NAME "worker-restart-history.jsonl"

static int dirfd_ = -1;
static struct vigil_history_reader *reader;

struct ctx {
	uint64_t ok, bad, last_bad_lineno;
	char last_request_id[VIGIL_HISTORY_REQUEST_ID_MAX_BYTES + 1];
};

static void on_record(void *p, const struct vigil_history_record *r)
{
	struct ctx *c = p;
	c->ok++;
	FUZZ_CHECK(fuzz_terminated(r->worker_id, sizeof r->worker_id) &&
			   fuzz_terminated(r->worker_type, sizeof r->worker_type) &&
			   fuzz_terminated(r->task_id, sizeof r->task_id) &&
			   fuzz_terminated(r->request_id, sizeof r->request_id) &&
			   fuzz_terminated(r->reason, sizeof r->reason),
		   "record string not terminated");
	FUZZ_CHECK(vigil_id_valid(r->worker_type), "worker_type '%s'", r->worker_type);
	if (r->request_id[0] != '\0')
		memcpy(c->last_request_id, r->request_id, sizeof c->last_request_id);
}

static void on_bad(void *p, uint64_t lineno, const char *why)
{
	struct ctx *c = p;
	c->bad++;
	FUZZ_CHECK(lineno > c->last_bad_lineno, "bad line numbers not increasing: %llu after %llu",
		   (unsigned long long)lineno, (unsigned long long)c->last_bad_lineno);
	c->last_bad_lineno = lineno;
	FUZZ_CHECK(why != NULL && why[0] != '\0', "bad line without a reason");
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* The expected verdicts, computed line by line without the reader. */
static void expect(const char *buf, size_t n, uint64_t *ok, uint64_t *bad)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != '\n')
			continue;
		size_t len = i - start;
		struct vigil_history_record r;
		if (len > VIGIL_HISTORY_LINE_MAX_BYTES)
			(*bad)++;
		else if (blank(buf + start, len))
			;
		else if (vigil_history_parse(buf + start, len, &r, NULL, 0) == 0)
			(*ok)++;
		else
			(*bad)++;
		start = i + 1;
	}
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			abort();
		p += w;
		n -= (size_t)w;
	}
}

static void read_until_done(uint32_t max_lines, struct ctx *c)
{
	/* Each call consumes at least one line or reaches the end; bounded. */
	for (int i = 0; i < 1000000; i++) {
		int rc = vigil_history_read(reader, dirfd_, NAME, max_lines, on_record, on_bad, c);
		FUZZ_CHECK(rc >= 0, "read rc %d", rc);
		if (!reader->more)
			return;
	}
	FUZZ_CHECK(0, "the reader never reached the end of the file");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dirfd_ < 0) {
		char tmpl[512];
		fuzz_mkdtemp(tmpl, sizeof tmpl, "history");
		dirfd_ = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		reader = malloc(sizeof *reader);
		if (dirfd_ < 0 || reader == NULL)
			abort();
		/* The directory stays (the harness may be killed at any moment):
		 * run.sh points TMPDIR into the build directory and empties it. */
	}
	const uint8_t *p = data;
	size_t left = size;
	unsigned repeat = 1 + (unsigned)fuzz_take(&p, &left, 1) % 32;
	size_t split = (size_t)fuzz_take(&p, &left, 2);
	uint32_t max_lines = 1 + (uint32_t)fuzz_take(&p, &left, 1) % 8;
	if (max_lines == 8)
		max_lines = 10000; /* vigild's own budget */

	size_t n = left * repeat;
	char *file = malloc(n > 0 ? n : 1);
	if (file == NULL)
		return 0;
	for (unsigned i = 0; i < repeat; i++)
		memcpy(file + (size_t)i * left, p, left);
	if (split > n)
		split = n;

	int fd = openat(dirfd_, NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		abort();
	vigil_history_reader_init(reader);
	struct ctx c;
	memset(&c, 0, sizeof c);

	write_all(fd, file, split);
	read_until_done(max_lines, &c);
	write_all(fd, file + split, n - split);
	close(fd);
	read_until_done(max_lines, &c);
	/* Nothing new: a further call finds nothing. */
	uint64_t ok0 = c.ok, bad0 = c.bad;
	read_until_done(max_lines, &c);
	FUZZ_CHECK(c.ok == ok0 && c.bad == bad0, "lines counted twice");

	uint64_t want_ok = 0, want_bad = 0;
	expect(file, n, &want_ok, &want_bad);
	FUZZ_CHECK(c.ok == want_ok && c.bad == want_bad,
		   "reader saw %llu good / %llu bad lines, the file has %llu / %llu (split %zu of %zu, budget %u)",
		   (unsigned long long)c.ok, (unsigned long long)c.bad, (unsigned long long)want_ok,
		   (unsigned long long)want_bad, split, n, max_lines);
	FUZZ_CHECK(reader->lines_ok == c.ok && reader->lines_bad == c.bad, "reader totals disagree");

	if (c.last_request_id[0] != '\0') {
		int rc = vigil_history_has_request(dirfd_, NAME, c.last_request_id);
		FUZZ_CHECK(rc == 1, "has_request('%s') = %d for an id the reader saw", c.last_request_id, rc);
	}
	int rc = vigil_history_has_request(dirfd_, NAME, "no-such-request-id-in-any-seed");
	FUZZ_CHECK(rc == 0 || rc == 1, "has_request rc %d", rc);
	free(file);
	return 0;
}
