/*
 * history.c - the restart history file: append one line, tail it, parse
 * untrusted lines, and look a request id up.
 *
 * Design notes (see history.h for the contract):
 *
 * - Reading is by pread() at a saved offset, so the file is never held
 *   open between calls: a rotated or truncated file is noticed by its
 *   device/inode or size at the next call and read from the start.
 * - The line splitter (feed()) is shared by the tailing reader and by
 *   vigil_history_has_request(); it owns the only copy of the "line longer
 *   than 64 KiB is dropped whole" rule, so the two can never disagree.
 * - Every loop is bounded: feed() by its chunk, the read loops by a line
 *   budget and a byte budget (reader) or by the size of the file at open
 *   (has_request), the field checks by the fixed set of keys.
 * - Trade-off: a writer of ours uses one write() per line and never leaves
 *   a partial line; others (a shell heredoc) may be caught mid-line, which
 *   is why an unterminated tail is held back rather than parsed.
 */
#define _GNU_SOURCE
#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "util.h"
#include "vigil.h"

#define READ_CHUNK_BYTES 16384u
#define JSON_SAFE_INT_MAX 9007199254740992ll /* 2^53 */

/* ------------------------------------------------------------ helpers */

static void why_set(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t why_len, const char *fmt, ...)
{
	if (why == NULL || why_len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	/* jansson quotes the offending input in its messages: keep them
	 * printable ASCII so a log line cannot be forged or garbled. */
	for (size_t i = 0; i < why_len && why[i] != '\0'; i++) {
		unsigned char c = (unsigned char)why[i];
		if (c < 0x20 || c > 0x7e)
			why[i] = '?';
	}
}

/* Copies a name field: absent/null/"" -> "" unless required, else a name. */
static int get_name(const json_t *obj, const char *key, bool required, char dst[65], char *why,
		    size_t why_len)
{
	const json_t *v = json_object_get(obj, key);
	dst[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		why_set(why, why_len, "no \"%s\"", key);
		return -EINVAL;
	}
	if (!json_is_string(v)) {
		why_set(why, why_len, "\"%s\" is not a string", key);
		return -EINVAL;
	}
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 && !required)
		return 0;
	if (n > VIGIL_ID_MAX || strlen(s) != n || !vigil_id_valid(s)) {
		why_set(why, why_len, "\"%s\" is not a name ([A-Za-z0-9._-]{1,64}, not starting with '.')",
			key);
		return -EINVAL;
	}
	memcpy(dst, s, n + 1);
	return 0;
}

/* Copies at most max bytes of src into dst (max + 1 bytes), cutting at a
 * UTF-8 character boundary. */
static void copy_utf8_cut(char *dst, const char *src, size_t n, size_t max)
{
	if (n > max) {
		n = max;
		/* Back off continuation bytes (10xxxxxx): at most 3. */
		for (int k = 0; k < 4 && n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80; k++)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10u + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned mp = m > 2 ? m - 3 : m + 9;
	unsigned doy = (153u * mp + 2u) / 5u + d - 1u;
	unsigned doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int vigil_history_parse_iso8601(const char *s, size_t len, uint64_t *out_ms)
{
	static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, se, ms = 0;

	if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) || digits(s + 11, 2, &h) ||
	    digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
		return -EINVAL;
	size_t i = 19;
	if (s[i] == '.') {
		size_t start = ++i;
		/* Bounded by len, and by 9 digits (nanoseconds). */
		while (i < len && i - start < 9 && s[i] >= '0' && s[i] <= '9') {
			if (i - start < 3)
				ms = ms * 10u + (unsigned)(s[i] - '0');
			i++;
		}
		if (i == start)
			return -EINVAL;
		for (size_t k = i - start; k < 3; k++)
			ms *= 10u;
	}
	if (len - i == 1 && s[i] == 'Z')
		;
	else if (len - i == 6 && memcmp(s + i, "+00:00", 6) == 0)
		;
	else
		return -EINVAL;
	bool leap = (y % 4u == 0 && y % 100u != 0) || y % 400u == 0;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
	    mi > 59 || se > 60)
		return -EINVAL;
	int64_t days = days_from_civil(y, mo, d);
	uint64_t secs = (uint64_t)days * 86400u + h * 3600u + mi * 60u + se;
	*out_ms = secs * 1000u + ms;
	return 0;
}

/* -------------------------------------------------------------- parse */

int vigil_history_parse(const char *line, size_t len, struct vigil_history_record *out, char *why,
			size_t why_len)
{
	if (why != NULL && why_len > 0)
		why[0] = '\0';
	memset(out, 0, sizeof *out);
	if (len > VIGIL_HISTORY_LINE_MAX_BYTES) {
		why_set(why, why_len, "line longer than %u bytes", VIGIL_HISTORY_LINE_MAX_BYTES);
		return -EINVAL;
	}
	/* json_loadb stops at a NUL and would take "{...}\0garbage". */
	const char *nul = memchr(line, '\0', len);
	if (nul != NULL) {
		why_set(why, why_len, "NUL byte at column %zu", (size_t)(nul - line) + 1);
		return -EINVAL;
	}
	json_error_t err;
	json_t *doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
	if (doc == NULL) {
		why_set(why, why_len, "not JSON: %s (column %d)", err.text, err.column);
		return -EINVAL;
	}
	int rc = -EINVAL;
	if (!json_is_object(doc)) {
		why_set(why, why_len, "not a JSON object");
		goto out;
	}

	const json_t *v = json_object_get(doc, "result");
	if (v == NULL) {
		why_set(why, why_len, "no \"result\"");
		goto out;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "success") == 0 && json_string_length(v) == 7)
		out->success = true;
	else if (json_is_string(v) && strcmp(json_string_value(v), "failure") == 0 &&
		 json_string_length(v) == 7)
		out->success = false;
	else {
		why_set(why, why_len, "\"result\" is not \"success\" or \"failure\"");
		goto out;
	}

	if (get_name(doc, "worker_type", true, out->worker_type, why, why_len) < 0 ||
	    get_name(doc, "worker_id", false, out->worker_id, why, why_len) < 0 ||
	    get_name(doc, "task_id", false, out->task_id, why, why_len) < 0)
		goto out;

	v = json_object_get(doc, "request_id");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) > VIGIL_HISTORY_REQUEST_ID_MAX_BYTES) {
			why_set(why, why_len, "\"request_id\" is not a string of at most %u bytes",
				VIGIL_HISTORY_REQUEST_ID_MAX_BYTES);
			goto out;
		}
		memcpy(out->request_id, json_string_value(v), json_string_length(v) + 1);
	}

	v = json_object_get(doc, "reason");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			why_set(why, why_len, "\"reason\" is not a string");
			goto out;
		}
		copy_utf8_cut(out->reason, json_string_value(v), json_string_length(v),
			      VIGIL_HISTORY_REASON_MAX_BYTES);
	}

	v = json_object_get(doc, "attempt");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > (json_int_t)UINT32_MAX) {
			why_set(why, why_len, "\"attempt\" is not an integer in [0, 4294967295]");
			goto out;
		}
		out->attempt = (uint32_t)json_integer_value(v);
	}

	v = json_object_get(doc, "timestamp_ms");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > JSON_SAFE_INT_MAX) {
			why_set(why, why_len, "\"timestamp_ms\" is not an integer in [0, 2^53]");
			goto out;
		}
		out->timestamp_ms = (uint64_t)json_integer_value(v);
	} else {
		v = json_object_get(doc, "timestamp");
		uint64_t ms;
		if (json_is_string(v) &&
		    vigil_history_parse_iso8601(json_string_value(v), json_string_length(v), &ms) == 0)
			out->timestamp_ms = ms;
	}
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------- append */

static json_t *number(double x)
{
	/* Integral values print as integers (60, not 60.0); no libm needed. */
	if (x > -9007199254740992.0 && x < 9007199254740992.0 && x == (double)(json_int_t)x)
		return json_integer((json_int_t)x);
	return json_real(x);
}

static bool name_or_empty(const char *s)
{
	return s[0] == '\0' || vigil_id_valid(s);
}

int vigil_history_append(int fd, const struct vigil_history_record *r, double delay_seconds,
			 const json_t *extra)
{
	if (r == NULL || !vigil_id_valid(r->worker_type) || !name_or_empty(r->worker_id) ||
	    !name_or_empty(r->task_id) || !isfinite(delay_seconds) ||
	    (extra != NULL && !json_is_object(extra)) ||
	    memchr(r->request_id, '\0', sizeof r->request_id) == NULL ||
	    memchr(r->reason, '\0', sizeof r->reason) == NULL)
		return -EINVAL;

	json_t *o = json_object();
	if (o == NULL)
		return -ENOMEM;
	int rc = -EINVAL; /* json_string* fail on bytes that are not UTF-8 */
	if (json_object_set_new(o, "worker_id", json_string(r->worker_id)) < 0 ||
	    json_object_set_new(o, "worker_type", json_string(r->worker_type)) < 0 ||
	    json_object_set_new(o, "task_id", json_string(r->task_id)) < 0 ||
	    json_object_set_new(o, "attempt", json_integer(r->attempt)) < 0 ||
	    json_object_set_new(o, "delay_seconds", number(delay_seconds)) < 0 ||
	    json_object_set_new(o, "result", json_string(r->success ? "success" : "failure")) < 0 ||
	    json_object_set_new(o, "reason", json_string(r->reason)) < 0 ||
	    (r->request_id[0] != '\0' &&
	     json_object_set_new(o, "request_id", json_string(r->request_id)) < 0))
		goto out;
	if (extra != NULL) {
		const char *key;
		json_t *v;
		/* Bounded by extra's size.  Our keys and the stamp win. */
		json_object_foreach((json_t *)extra, key, v) {
			if (json_object_get(o, key) != NULL || strcmp(key, "timestamp") == 0 ||
			    strcmp(key, "timestamp_ms") == 0)
				continue;
			if (json_object_set(o, key, v) < 0) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	rc = vigil_json_stamp(o, "timestamp", "timestamp_ms",
			      r->timestamp_ms != 0 ? r->timestamp_ms : vigil_unix_ms());
	if (rc < 0)
		goto out;

	char *s = NULL;
	rc = vigil_policy_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER, &s);
	if (rc < 0)
		goto out;
	size_t n = strlen(s);
	if (n > VIGIL_HISTORY_LINE_MAX_BYTES) {
		free(s);
		rc = -E2BIG;
		goto out;
	}
	char *line = realloc(s, n + 2);
	if (line == NULL) {
		free(s);
		rc = -ENOMEM;
		goto out;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	rc = vigil_fs_append(fd, line, n + 1);
	free(line);
out:
	json_decref(o);
	return rc;
}

/* ------------------------------------------------------------- reader */

void vigil_history_reader_init(struct vigil_history_reader *r)
{
	r->offset = 0;
	r->dev = r->ino = 0;
	r->lineno = 0;
	r->lines_ok = r->lines_bad = 0;
	r->restarts = 0;
	r->more = false;
	r->skipping = false;
	r->partial_len = 0;
}

/* Called for each completed line; too_long lines have len 0. */
typedef void (*line_fn)(struct vigil_history_reader *r, const char *line, size_t len, bool too_long,
			void *arg);

/*
 * Splits buf[0..n) into lines, continuing r's unfinished line.  Stops after
 * *lines reaches max_lines.  Returns the bytes consumed (the rest, from the
 * start of the next line, is for a later call).
 */
static size_t feed(struct vigil_history_reader *r, const char *buf, size_t n, uint32_t max_lines,
		   uint32_t *lines, line_fn fn, void *arg)
{
	size_t pos = 0;
	/* Bounded: each pass consumes at least one byte or ends the loop. */
	while (pos < n && *lines < max_lines) {
		const char *nl = memchr(buf + pos, '\n', n - pos);
		size_t seg = nl != NULL ? (size_t)(nl - (buf + pos)) : n - pos;
		if (!r->skipping) {
			if (r->partial_len + seg > VIGIL_HISTORY_LINE_MAX_BYTES) {
				r->skipping = true;
				r->partial_len = 0;
			} else {
				memcpy(r->partial + r->partial_len, buf + pos, seg);
				r->partial_len += seg;
			}
		}
		pos += seg;
		if (nl == NULL)
			break;
		pos++; /* the '\n' */
		r->lineno++;
		(*lines)++;
		fn(r, r->partial, r->skipping ? 0 : r->partial_len, r->skipping, arg);
		r->skipping = false;
		r->partial_len = 0;
	}
	return pos;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

struct tail_arg {
	void (*on_record)(void *ctx, const struct vigil_history_record *rec);
	void (*on_bad)(void *ctx, uint64_t lineno, const char *why);
	void *ctx;
	int records;
};

static void tail_line(struct vigil_history_reader *r, const char *line, size_t len, bool too_long, void *arg)
{
	struct tail_arg *a = arg;
	char why[192];
	struct vigil_history_record rec;

	if (too_long) {
		why_set(why, sizeof why, "line longer than %u bytes", VIGIL_HISTORY_LINE_MAX_BYTES);
	} else if (blank(line, len)) {
		return; /* an empty line is not a record, nor an error */
	} else if (vigil_history_parse(line, len, &rec, why, sizeof why) == 0) {
		r->lines_ok++;
		a->records++;
		if (a->on_record != NULL)
			a->on_record(a->ctx, &rec);
		return;
	}
	r->lines_bad++;
	if (a->on_bad != NULL)
		a->on_bad(a->ctx, r->lineno, why);
}

static int open_regular(int dirfd, const char *name, struct stat *st)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static ssize_t pread_retry(int fd, char *buf, size_t n, uint64_t off)
{
	ssize_t got;
	int tries = 0;
	/* Bounded: a few retries on EINTR. */
	do
		got = pread(fd, buf, n, (off_t)off);
	while (got < 0 && errno == EINTR && ++tries < 16);
	return got < 0 ? -errno : got;
}

int vigil_history_read(struct vigil_history_reader *r, int dirfd, const char *name, uint32_t max_lines,
		       void (*on_record)(void *ctx, const struct vigil_history_record *rec),
		       void (*on_bad)(void *ctx, uint64_t lineno, const char *why), void *ctx)
{
	struct stat st;
	r->more = false;
	int fd = open_regular(dirfd, name, &st);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;

	bool known = r->dev != 0 || r->ino != 0;
	if ((known && ((uint64_t)st.st_dev != r->dev || (uint64_t)st.st_ino != r->ino)) ||
	    (uint64_t)st.st_size < r->offset) {
		r->offset = 0;
		r->lineno = 0;
		r->partial_len = 0;
		r->skipping = false;
		r->restarts++;
	}
	r->dev = (uint64_t)st.st_dev;
	r->ino = (uint64_t)st.st_ino;

	struct tail_arg a = {on_record, on_bad, ctx, 0};
	char buf[READ_CHUNK_BYTES];
	uint32_t lines = 0;
	size_t bytes = 0;
	int rc = 0;
	/* Bounded by the line budget and the byte budget. */
	while (lines < max_lines) {
		if (bytes >= VIGIL_HISTORY_READ_MAX_BYTES) {
			r->more = true;
			break;
		}
		size_t want = VIGIL_HISTORY_READ_MAX_BYTES - bytes;
		if (want > sizeof buf)
			want = sizeof buf;
		ssize_t got = pread_retry(fd, buf, want, r->offset);
		if (got < 0) {
			rc = (int)got;
			break;
		}
		if (got == 0)
			break;
		size_t used = feed(r, buf, (size_t)got, max_lines, &lines, tail_line, &a);
		r->offset += used;
		bytes += used;
		if (used < (size_t)got) {
			r->more = true;
			break;
		}
	}
	if (rc == 0 && lines >= max_lines && r->offset < (uint64_t)st.st_size)
		r->more = true;
	close(fd);
	return rc < 0 ? rc : a.records;
}

/* ---------------------------------------------------------- has_request */

struct find_arg {
	const char *id;
	size_t id_len;
	bool found;
};

static void find_line(struct vigil_history_reader *r, const char *line, size_t len, bool too_long, void *arg)
{
	struct find_arg *a = arg;
	struct vigil_history_record rec;
	(void)r;
	if (too_long || a->found)
		return;
	/* Without a backslash, a JSON string's bytes appear verbatim in the
	 * line: a line that does not contain the id cannot carry it. */
	if (memchr(line, '\\', len) == NULL && memmem(line, len, a->id, a->id_len) == NULL)
		return;
	if (vigil_history_parse(line, len, &rec, NULL, 0) == 0 && strcmp(rec.request_id, a->id) == 0)
		a->found = true;
}

int vigil_history_has_request(int dirfd, const char *name, const char *request_id)
{
	if (request_id == NULL)
		return -EINVAL;
	size_t id_len = strnlen(request_id, VIGIL_HISTORY_REQUEST_ID_MAX_BYTES + 1);
	if (id_len == 0 || id_len > VIGIL_HISTORY_REQUEST_ID_MAX_BYTES)
		return -EINVAL;

	struct stat st;
	int fd = open_regular(dirfd, name, &st);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	struct vigil_history_reader *r = malloc(sizeof *r);
	if (r == NULL) {
		close(fd);
		return -ENOMEM;
	}
	vigil_history_reader_init(r);

	struct find_arg a = {request_id, id_len, false};
	char buf[READ_CHUNK_BYTES];
	uint64_t size = (uint64_t)st.st_size;
	int rc = 0;
	/* Bounded by the file's size at open: lines appended meanwhile are
	 * outcomes recorded after this call began. */
	while (r->offset < size && !a.found) {
		size_t want = size - r->offset < sizeof buf ? (size_t)(size - r->offset) : sizeof buf;
		ssize_t got = pread_retry(fd, buf, want, r->offset);
		if (got < 0) {
			rc = (int)got;
			break;
		}
		if (got == 0)
			break; /* shrank under us */
		uint32_t lines = 0;
		r->offset += feed(r, buf, (size_t)got, UINT32_MAX, &lines, find_line, &a);
	}
	free(r);
	close(fd);
	if (rc < 0)
		return rc;
	return a.found ? 1 : 0;
}
