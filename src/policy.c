/*
 * policy.c - parse, validate, load and write the three policy files.
 *
 * One engine, three tables.  Each policy kind is a table of fields (key,
 * kind, range, default, offset into the struct); the same table gives the
 * defaults, drives validation, lists the known keys for the unknown-key
 * warnings, and orders the keys of to_json.  A key's name is the struct
 * member's name, so a table row cannot drift from the header.
 *
 * What it guards against: text that is not JSON, not an object, empty,
 * truncated, or holds a NUL byte (jansson stops at a raw NUL and may accept
 * what came before it, so NULs are refused before jansson sees the text);
 * duplicate keys (which one wins would be jansson's choice, not the
 * operator's); values of the wrong type, out of range, or non-integral for
 * integer keys; thresholds out of order, including a default that an
 * explicit value has overtaken; symlinks, FIFOs (opened non-blocking so the
 * open cannot hang), directories and oversized files in place of a policy;
 * and control characters or invalid UTF-8 from the file ending up in the
 * log, since every untrusted byte quoted in a message is escaped.
 *
 * Parsing works on a private copy and copies it out only when everything
 * passed, so a failed reload leaves the policy in force untouched.
 */
#define _GNU_SOURCE
#include "policy.h"
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h> /* isfinite only: no libm needed */
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(json_int_t) == sizeof(int64_t), "json_int_t holds every uint32 and int64");

enum field_kind {
	FIELD_NUMBER, /* double */
	FIELD_U32,    /* uint32_t, JSON integer or integral real */
	FIELD_U64,    /* uint64_t, same; max must stay below 2^53 */
	FIELD_BOOL,   /* bool, JSON true/false only */
	FIELD_STRING, /* char[size], JSON string or null (null means "") */
};

struct field {
	const char *key;
	enum field_kind kind;
	size_t offset;
	size_t size;         /* of the member; the buffer size for strings */
	double min, max;     /* numeric kinds */
	bool min_open;       /* the range is (min, max] */
	double def;          /* numeric kinds and bool; strings default to "" */
	const char *at_least; /* key of an earlier number this one may not be below */
};

struct policy_kind {
	const struct field *fields;
	size_t n_fields;
	size_t size;
	void (*derive)(void *p);
};

#define ROW(type, member, kind_, lo, hi, def_)                                          \
	.key = #member, .kind = (kind_), .offset = offsetof(type, member),              \
	.size = sizeof(((type *)0)->member), .min = (lo), .max = (hi), .def = (def_)

#define HB struct vigil_heartbeat_policy
#define RS struct vigil_restart_policy
#define AF struct vigil_autofix_policy

/* Order matters: runbook keys first, then vigil's (to_json order), and an
 * at_least key must come before the key that names it. */
static const struct field heartbeat_fields[] = {
	{ ROW(HB, heartbeat_interval_seconds, FIELD_NUMBER, 0.001, 86400, 30) },
	{ ROW(HB, heartbeat_timeout_seconds, FIELD_NUMBER, 0.001, 604800, 120),
	  .at_least = "heartbeat_interval_seconds" },
	{ ROW(HB, zombie_threshold_seconds, FIELD_NUMBER, 0.001, 2592000, 300),
	  .at_least = "heartbeat_timeout_seconds" },
	{ ROW(HB, health_score_decay_rate, FIELD_NUMBER, 0, 100, 5) },
	{ ROW(HB, min_health_score, FIELD_NUMBER, 0, 100, 20) },
	{ ROW(HB, tick_seconds, FIELD_NUMBER, 0.001, 10, 0.1) },
	{ ROW(HB, snapshot_interval_seconds, FIELD_NUMBER, 0.01, 3600, 1) },
	{ ROW(HB, host_stall_share, FIELD_NUMBER, 0, 1, 0.5), .min_open = true },
	{ ROW(HB, host_stall_min_workers, FIELD_U32, 1, 1000000, 4) },
	{ ROW(HB, progress_stall_seconds, FIELD_NUMBER, 0, 2592000, 600) },
	{ ROW(HB, spec_refresh_seconds, FIELD_NUMBER, 0.01, 86400, 60) },
};

static const struct field restart_fields[] = {
	{ ROW(RS, max_retries, FIELD_U32, 0, 1000, 3) },
	{ ROW(RS, retry_interval_seconds, FIELD_NUMBER, 0, 604800, 60) },
	{ ROW(RS, backoff_multiplier, FIELD_NUMBER, 1, 100, 2) },
	{ ROW(RS, circuit_breaker_enabled, FIELD_BOOL, 0, 0, 1) },
	{ ROW(RS, circuit_breaker_threshold, FIELD_U32, 1, 100000, 5) },
	{ ROW(RS, circuit_breaker_reset_seconds, FIELD_NUMBER, 0, 2592000, 300) },
	{ ROW(RS, retry_reset_seconds, FIELD_NUMBER, 0, 2592000, 600) },
	{ ROW(RS, retry_jitter, FIELD_NUMBER, 0, 1, 0) },
	{ ROW(RS, token_pool, FIELD_U64, 0, 1e15, 1000000) },
	{ ROW(RS, kill_grace_seconds, FIELD_NUMBER, 0, 3600, 5) },
};

static const struct field autofix_fields[] = {
	{ ROW(AF, enabled, FIELD_BOOL, 0, 0, 1) },
	{ ROW(AF, min_confidence_threshold, FIELD_NUMBER, 0, 1, 0.7) },
	{ ROW(AF, max_fixes_per_hour, FIELD_U32, 0, 1000000, 10) },
	{ ROW(AF, dry_run, FIELD_BOOL, 0, 0, 0) },
	{ ROW(AF, notification_enabled, FIELD_BOOL, 0, 0, 1) },
	{ ROW(AF, notify_command, FIELD_STRING, 0, 0, 0) },
	{ ROW(AF, notify_timeout_seconds, FIELD_NUMBER, 0.1, 300, 5) },
};

#undef HB
#undef RS
#undef AF
#undef ROW

static void heartbeat_derive(void *p);

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct policy_kind heartbeat_kind = {
	heartbeat_fields, N_ELEMS(heartbeat_fields), sizeof(struct vigil_heartbeat_policy),
	heartbeat_derive,
};
static const struct policy_kind restart_kind = {
	restart_fields, N_ELEMS(restart_fields), sizeof(struct vigil_restart_policy), NULL,
};
static const struct policy_kind autofix_kind = {
	autofix_fields, N_ELEMS(autofix_fields), sizeof(struct vigil_autofix_policy), NULL,
};

/* Room for a private copy of any of the three. */
union policy_any {
	struct vigil_heartbeat_policy heartbeat;
	struct vigil_restart_policy restart;
	struct vigil_autofix_policy autofix;
};

/* ---------------------------------------------------------------- text */

__attribute__((format(printf, 3, 4)))
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	if (err == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* An append-only message buffer that ends in "..." when it overflows. */
struct msgbuf {
	char *buf;
	size_t len;
	size_t used;
	bool full;
};

__attribute__((format(printf, 2, 3)))
static void msg_append(struct msgbuf *m, const char *fmt, ...)
{
	if (m->buf == NULL || m->len == 0 || m->full)
		return;
	size_t room = m->len - m->used;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(m->buf + m->used, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		m->buf[m->used] = '\0';
		return;
	}
	if ((size_t)n < room) {
		m->used += (size_t)n;
		return;
	}
	m->full = true;
	m->used = m->len - 1;
	if (m->len >= 4)
		memcpy(m->buf + m->len - 4, "...", 4);
}

/* Copies untrusted bytes for a message: printable ASCII as is, anything
 * else as \xNN, and at most max_show input bytes (then "..."). */
static void sanitize(char *dst, size_t dst_len, const char *src, size_t src_len, size_t max_show)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dst_len == 0)
		return;
	for (size_t i = 0; i < src_len && i < max_show; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f) {
			if (o + 1 >= dst_len)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dst_len)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	if (src_len > max_show && o + 3 < dst_len) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* Whether v is a whole number small enough for int64 (no libm needed). */
static bool is_integral(double v)
{
	return v > -9.2e18 && v < 9.2e18 && v == (double)(int64_t)v;
}

/* v for a message: integers as integers (604800, not 6.048e+05), other
 * values in the shortest %.*g form that reads back as v. */
static void format_number(char *buf, size_t len, double v)
{
	if (!isfinite(v)) {
		snprintf(buf, len, "%g", v);
		return;
	}
	if (is_integral(v) && v > -1e16 && v < 1e16) {
		snprintf(buf, len, "%.0f", v == 0 ? 0.0 : v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* What was found, for "got ...": a value's text when short, else its type. */
static void describe_value(char *buf, size_t len, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		snprintf(buf, len, "an object");
		break;
	case JSON_ARRAY:
		snprintf(buf, len, "an array");
		break;
	case JSON_STRING: {
		size_t n = json_string_length(v);
		if (n > 40) {
			snprintf(buf, len, "a string of %zu bytes", n);
		} else {
			char s[4 * 40 + 8];
			sanitize(s, sizeof(s), json_string_value(v), n, 40);
			snprintf(buf, len, "\"%s\"", s);
		}
		break;
	}
	case JSON_INTEGER:
	case JSON_REAL:
		format_number(buf, len, json_number_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, len, "true");
		break;
	case JSON_FALSE:
		snprintf(buf, len, "false");
		break;
	case JSON_NULL:
	default:
		snprintf(buf, len, "null");
		break;
	}
}

static const char *describe_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
	default:
		return "null";
	}
}

/* ---------------------------------------------------------- the engine */

static double get_number(const void *base, const struct field *f)
{
	const char *p = (const char *)base + f->offset;
	switch (f->kind) {
	case FIELD_NUMBER:
		return *(const double *)p;
	case FIELD_U32:
		return (double)*(const uint32_t *)p;
	case FIELD_U64:
		return (double)*(const uint64_t *)p;
	case FIELD_BOOL:
		return *(const bool *)p ? 1 : 0;
	case FIELD_STRING:
	default:
		return 0;
	}
}

/* v has been validated against the field's range (and is integral for
 * the integer kinds), so the conversions are exact. */
static void put_number(void *base, const struct field *f, double v)
{
	char *p = (char *)base + f->offset;
	switch (f->kind) {
	case FIELD_NUMBER:
		*(double *)p = v == 0 ? 0.0 : v; /* no -0 */
		break;
	case FIELD_U32:
		*(uint32_t *)p = (uint32_t)v;
		break;
	case FIELD_U64:
		*(uint64_t *)p = (uint64_t)v;
		break;
	case FIELD_BOOL:
		*(bool *)p = v != 0;
		break;
	case FIELD_STRING:
	default:
		break;
	}
}

static const struct field *find_field(const struct policy_kind *k, const char *key, size_t before)
{
	for (size_t i = 0; i < k->n_fields && i < before; i++)
		if (strcmp(k->fields[i].key, key) == 0)
			return &k->fields[i];
	return NULL;
}

static void apply_defaults(const struct policy_kind *k, void *p)
{
	memset(p, 0, k->size); /* padding and derived fields too: memcmp-able */
	for (size_t i = 0; i < k->n_fields; i++) {
		const struct field *f = &k->fields[i];
		if (f->kind == FIELD_STRING)
			((char *)p + f->offset)[0] = '\0';
		else
			put_number(p, f, f->def);
	}
	if (k->derive != NULL)
		k->derive(p);
}

/* round(s * 1e9) without libm: below 2^52 adding 0.5 is exact, above it
 * every double is already an integer. */
static uint64_t seconds_to_ns(double s)
{
	double ns = s * 1e9;
	if (!(ns > 0))
		return 0;
	if (ns >= 18446744073709551616.0)
		return UINT64_MAX;
	if (ns >= 4503599627370496.0)
		return (uint64_t)ns;
	return (uint64_t)(ns + 0.5);
}

static void heartbeat_derive(void *v)
{
	struct vigil_heartbeat_policy *p = v;

	p->interval_ns = seconds_to_ns(p->heartbeat_interval_seconds);
	p->timeout_ns = seconds_to_ns(p->heartbeat_timeout_seconds);
	p->zombie_ns = seconds_to_ns(p->zombie_threshold_seconds);
	p->snapshot_ns = seconds_to_ns(p->snapshot_interval_seconds);
	p->progress_stall_ns = seconds_to_ns(p->progress_stall_seconds);
	p->spec_refresh_ns = seconds_to_ns(p->spec_refresh_seconds);
	uint64_t tick = seconds_to_ns(p->tick_seconds);
	if (tick > p->interval_ns / 4)
		tick = p->interval_ns / 4;
	if (tick < VIGIL_POLICY_TICK_MIN_NS)
		tick = VIGIL_POLICY_TICK_MIN_NS;
	p->tick_ns = tick;
}

/* "a number in [0.05, 604800]" for a numeric field with lower bound lo. */
static void describe_range(char *buf, size_t len, const struct field *f, double lo)
{
	char a[32], b[32];
	format_number(a, sizeof(a), lo);
	format_number(b, sizeof(b), f->max);
	snprintf(buf, len, "%s in %c%s, %s]", f->kind == FIELD_NUMBER ? "a number" : "an integer",
		 f->min_open ? '(' : '[', a, b);
}

/* Validates the value v (NULL: key absent) of field i into tmp. */
static int check_field(const struct policy_kind *k, size_t i, const json_t *v, void *tmp,
		       const char *path, char *err, size_t err_len)
{
	const struct field *f = &k->fields[i];
	char got[256];

	if (v != NULL)
		describe_value(got, sizeof(got), v);

	switch (f->kind) {
	case FIELD_BOOL:
		if (v == NULL)
			return 0;
		if (!json_is_boolean(v)) {
			seterr(err, err_len, "%s: key '%s': expected true or false, got %s", path,
			       f->key, got);
			return -EINVAL;
		}
		put_number(tmp, f, json_is_true(v) ? 1 : 0);
		return 0;

	case FIELD_STRING: {
		size_t max = f->size - 1;
		if (v == NULL)
			return 0;
		if (json_is_null(v)) {
			((char *)tmp + f->offset)[0] = '\0';
			return 0;
		}
		if (!json_is_string(v)) {
			seterr(err, err_len,
			       "%s: key '%s': expected a string of at most %zu bytes or null, got %s",
			       path, f->key, max, got);
			return -EINVAL;
		}
		size_t n = json_string_length(v);
		if (n > max) {
			seterr(err, err_len,
			       "%s: key '%s': expected a string of at most %zu bytes or null, got a string of %zu bytes",
			       path, f->key, max, n);
			return -EINVAL;
		}
		/* jansson refuses \u0000 without JSON_ALLOW_NUL, so n == strlen */
		memcpy((char *)tmp + f->offset, json_string_value(v), n);
		((char *)tmp + f->offset)[n] = '\0';
		return 0;
	}

	case FIELD_NUMBER:
	case FIELD_U32:
	case FIELD_U64:
	default: {
		const struct field *floor_field = NULL;
		double lo = f->min;
		char range[128], note[128] = "";

		if (f->at_least != NULL) {
			floor_field = find_field(k, f->at_least, i);
			if (floor_field != NULL) {
				double other = get_number(tmp, floor_field);
				if (other > lo)
					lo = other;
				snprintf(note, sizeof(note), " (at least %s)", floor_field->key);
			}
		}
		describe_range(range, sizeof(range), f, lo);

		if (v == NULL) {
			/* Absent: the default holds unless an explicit value overtook it. */
			double def = get_number(tmp, f);
			if (floor_field != NULL && def < lo) {
				char d[32], o[32];
				format_number(d, sizeof(d), def);
				format_number(o, sizeof(o), lo);
				seterr(err, err_len,
				       "%s: key '%s' is missing and its default %s is less than %s (%s): set it to %s",
				       path, f->key, d, floor_field->key, o, range);
				return -EINVAL;
			}
			return 0;
		}
		if (!json_is_number(v)) {
			seterr(err, err_len, "%s: key '%s': expected %s%s, got %s", path, f->key,
			       range, note, got);
			return -EINVAL;
		}
		double x = json_number_value(v);
		bool ok = (f->min_open ? x > lo : x >= lo) && x <= f->max;
		if (ok && f->kind != FIELD_NUMBER && !is_integral(x))
			ok = false;
		if (!ok) {
			seterr(err, err_len, "%s: key '%s': expected %s%s, got %s", path, f->key,
			       range, note, got);
			return -EINVAL;
		}
		put_number(tmp, f, x);
		return 0;
	}
	}
}

static void warn_unknown_keys(const struct policy_kind *k, json_t *root, const char *path,
			      char *warn, size_t warn_len)
{
	struct msgbuf m = { warn, warn_len, 0, false };
	const char *key;
	json_t *value;
	size_t n = 0;

	json_object_foreach(root, key, value) {
		(void)value;
		if (find_field(k, key, k->n_fields) != NULL)
			continue;
		char shown[4 * 64 + 8];
		sanitize(shown, sizeof(shown), key, strlen(key), 64);
		if (n++ == 0)
			msg_append(&m, "%s: unknown key '%s' ignored", path, shown);
		else
			msg_append(&m, "; unknown key '%s' ignored", shown);
	}
}

/* The name of the duplicate key.  jansson's error position is just past
 * the key's closing quote (its text names the key only when it is short),
 * so walk back to the opening quote, the first one not escaped, and let
 * jansson decode the string.  0, or -EINVAL when that fails. */
static int duplicate_key_name(char *buf, size_t len, const char *text, size_t text_len,
			      int position)
{
	size_t end, i;
	json_t *key;

	if (position < 2 || (size_t)position > text_len || text[position - 1] != '"')
		return -EINVAL;
	end = (size_t)position - 1;
	for (i = end; i-- > 0;) {
		size_t slashes = 0;
		if (text[i] != '"')
			continue;
		while (slashes < i && text[i - 1 - slashes] == '\\')
			slashes++;
		if (slashes % 2 == 0)
			break;
	}
	if (i == (size_t)-1)
		return -EINVAL;
	key = json_loadb(text + i, end + 1 - i, JSON_DECODE_ANY, NULL);
	if (!json_is_string(key)) {
		json_decref(key);
		return -EINVAL;
	}
	sanitize(buf, len, json_string_value(key), json_string_length(key), 64);
	json_decref(key);
	return 0;
}

static bool only_whitespace(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
			return false;
	return true;
}

static int parse_policy(const struct policy_kind *k, const char *text, size_t len,
			const char *path, void *out, char *err, size_t err_len, char *warn,
			size_t warn_len)
{
	union policy_any tmp;
	json_error_t jerr;
	json_t *root;
	const char *nul;
	int r = 0;

	if (path == NULL)
		path = "(policy)";
	if (err != NULL && err_len > 0)
		err[0] = '\0';
	if (warn != NULL && warn_len > 0)
		warn[0] = '\0';
	if (out == NULL || (text == NULL && len > 0)) {
		seterr(err, err_len, "%s: internal error: no text or no policy to fill", path);
		return -EINVAL;
	}
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3; /* a UTF-8 BOM, as some editors write */
		len -= 3;
	}
	if (len == 0) {
		seterr(err, err_len, "%s: empty file, expected a JSON object", path);
		return -EINVAL;
	}
	if ((nul = memchr(text, '\0', len)) != NULL) {
		seterr(err, err_len, "%s: not valid JSON: a NUL byte at offset %zu", path,
		       (size_t)(nul - text));
		return -EINVAL;
	}
	if (only_whitespace(text, len)) {
		seterr(err, err_len, "%s: empty file (only whitespace), expected a JSON object", path);
		return -EINVAL;
	}

	/* INT_AS_REAL: an integer too big for json_int_t becomes a real that
	 * the range check names with its key, rather than a parse error.
	 * Every in-range integer is below 2^53, so none loses precision. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
			  &jerr);
	if (root == NULL) {
		char shown[4 * 160 + 8];
		if (json_error_code(&jerr) == json_error_duplicate_key &&
		    duplicate_key_name(shown, sizeof(shown), text, len, jerr.position) == 0) {
			seterr(err, err_len,
			       "%s: key '%s' appears more than once (line %d column %d), and duplicate keys are not allowed",
			       path, shown, jerr.line, jerr.column);
		} else if (json_error_code(&jerr) == json_error_duplicate_key) {
			seterr(err, err_len,
			       "%s: a key appears more than once (line %d column %d), and duplicate keys are not allowed",
			       path, jerr.line, jerr.column);
		} else {
			sanitize(shown, sizeof(shown), jerr.text, strlen(jerr.text), 160);
			seterr(err, err_len, "%s: not valid JSON at line %d column %d: %s", path,
			       jerr.line, jerr.column, shown);
		}
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		seterr(err, err_len, "%s: expected a JSON object at the top level, got %s", path,
		       describe_type(root));
		json_decref(root);
		return -EINVAL;
	}

	warn_unknown_keys(k, root, path, warn, warn_len);

	apply_defaults(k, &tmp);
	for (size_t i = 0; i < k->n_fields && r == 0; i++)
		r = check_field(k, i, json_object_get(root, k->fields[i].key), &tmp, path, err,
				err_len);
	json_decref(root);
	if (r < 0)
		return r;
	if (k->derive != NULL)
		k->derive(&tmp);
	memcpy(out, &tmp, k->size);
	return 0;
}

/* ---------------------------------------------------------------- load */

static const char *file_type_name(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	return "not a regular file";
}

/* Reads the file into a malloc'd *buf.  -ENOENT without a message. */
static int read_policy_file(int dirfd, const char *name, const char *shown, char **buf,
			    size_t *len, char *err, size_t err_len)
{
	char ebuf[128];
	struct stat st;
	size_t used = 0;
	char *data;
	int fd, e;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		e = errno;
		if (e == ENOENT)
			return -ENOENT;
		if (e == ELOOP && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			seterr(err, err_len, "%s: is a symbolic link, not followed", shown);
		else
			seterr(err, err_len, "%s: cannot open: %s", shown,
			       strerror_r(e, ebuf, sizeof(ebuf)));
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		seterr(err, err_len, "%s: cannot stat: %s", shown, strerror_r(e, ebuf, sizeof(ebuf)));
		close(fd);
		return -e;
	}
	if (S_ISDIR(st.st_mode)) {
		seterr(err, err_len, "%s: is a directory, not a regular file", shown);
		close(fd);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, err_len, "%s: is %s, not a regular file", shown,
		       file_type_name(st.st_mode));
		close(fd);
		return -EINVAL;
	}
	/* A policy names a command (notify_command) vigild runs with its
	 * own rights: only from a file that no one else could have written. */
	char twhy[512];
	e = vigil_trust_file(dirfd, name, fd, twhy, sizeof twhy);
	if (e < 0) {
		seterr(err, err_len, "%s: not trusted: %s", shown, twhy);
		close(fd);
		return e;
	}
	if (st.st_size > VIGIL_POLICY_FILE_MAX_BYTES) {
		seterr(err, err_len, "%s: is %lld bytes, more than the limit of %d bytes", shown,
		       (long long)st.st_size, VIGIL_POLICY_FILE_MAX_BYTES);
		close(fd);
		return -EFBIG;
	}
	/* One byte more than the limit, to notice a file that grew since fstat. */
	data = malloc(VIGIL_POLICY_FILE_MAX_BYTES + 1);
	if (data == NULL) {
		seterr(err, err_len, "%s: cannot read: out of memory", shown);
		close(fd);
		return -ENOMEM;
	}
	while (used < VIGIL_POLICY_FILE_MAX_BYTES + 1) {
		ssize_t n = read(fd, data + used, VIGIL_POLICY_FILE_MAX_BYTES + 1 - used);
		if (n < 0) {
			e = errno;
			if (e == EINTR)
				continue;
			seterr(err, err_len, "%s: cannot read: %s", shown,
			       strerror_r(e, ebuf, sizeof(ebuf)));
			free(data);
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	if (used > VIGIL_POLICY_FILE_MAX_BYTES) {
		seterr(err, err_len, "%s: is more than the limit of %d bytes", shown,
		       VIGIL_POLICY_FILE_MAX_BYTES);
		free(data);
		return -EFBIG;
	}
	*buf = data;
	*len = used;
	return 0;
}

static int load_policy(const struct policy_kind *k, int dirfd, const char *name,
		       const char *display_path, void *out, bool *missing, char *err,
		       size_t err_len, char *warn, size_t warn_len)
{
	const char *shown = display_path != NULL ? display_path : name;
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (missing != NULL)
		*missing = false;
	if (err != NULL && err_len > 0)
		err[0] = '\0';
	if (warn != NULL && warn_len > 0)
		warn[0] = '\0';
	if (name == NULL || out == NULL) {
		seterr(err, err_len, "%s: internal error: no file name or no policy to fill",
		       shown != NULL ? shown : "(policy)");
		return -EINVAL;
	}
	r = read_policy_file(dirfd, name, shown, &buf, &len, err, err_len);
	if (r == -ENOENT) {
		apply_defaults(k, out);
		if (missing != NULL)
			*missing = true;
		return 0;
	}
	if (r < 0)
		return r;
	r = parse_policy(k, buf, len, shown, out, err, err_len, warn, warn_len);
	free(buf);
	return r;
}

/* ------------------------------------------------------------- to_json */

static json_t *number_to_json(double v)
{
	if (is_integral(v) && v >= -9007199254740992.0 && v <= 9007199254740992.0)
		return json_integer((json_int_t)v);
	return json_real(v); /* NULL for NaN and infinities */
}

static json_t *policy_to_json(const struct policy_kind *k, const void *p)
{
	json_t *obj;

	if (p == NULL)
		return NULL;
	obj = json_object();
	if (obj == NULL)
		return NULL;
	for (size_t i = 0; i < k->n_fields; i++) {
		const struct field *f = &k->fields[i];
		const char *at = (const char *)p + f->offset;
		json_t *v;

		switch (f->kind) {
		case FIELD_NUMBER:
			v = number_to_json(*(const double *)at);
			break;
		case FIELD_U32:
			v = json_integer((json_int_t)*(const uint32_t *)at);
			break;
		case FIELD_U64: {
			uint64_t u = *(const uint64_t *)at;
			v = u <= (uint64_t)INT64_MAX ? json_integer((json_int_t)u) :
							     json_real((double)u);
			break;
		}
		case FIELD_BOOL:
			v = json_boolean(*(const bool *)at);
			break;
		case FIELD_STRING:
		default:
			v = json_stringn(at, strnlen(at, f->size));
			break;
		}
		if (v == NULL || json_object_set_new(obj, f->key, v) < 0) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

static bool reals_round_trip(const json_t *j, int prec)
{
	const char *key;
	json_t *v;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_REAL: {
		char buf[40];
		snprintf(buf, sizeof(buf), "%.*g", prec, json_real_value(j));
		return strtod(buf, NULL) == json_real_value(j);
	}
	case JSON_OBJECT:
		json_object_foreach((json_t *)j, key, v)
			if (!reals_round_trip(v, prec))
				return false;
		return true;
	case JSON_ARRAY:
		json_array_foreach(j, i, v)
			if (!reals_round_trip(v, prec))
				return false;
		return true;
	default:
		return true;
	}
}

int vigil_policy_dumps(const json_t *policy, size_t flags, char **out)
{
	int prec = 17;

	if (policy == NULL || out == NULL)
		return -EINVAL;
	for (int p = 1; p < 17; p++) {
		if (reals_round_trip(policy, p)) {
			prec = p;
			break;
		}
	}
	flags &= ~(size_t)JSON_REAL_PRECISION(0x1f);
	*out = json_dumps(policy, flags | JSON_REAL_PRECISION(prec));
	return *out != NULL ? 0 : -ENOMEM;
}

/* -------------------------------------------------------------- public */

void vigil_policy_heartbeat_defaults(struct vigil_heartbeat_policy *p)
{
	apply_defaults(&heartbeat_kind, p);
}

void vigil_policy_restart_defaults(struct vigil_restart_policy *p)
{
	apply_defaults(&restart_kind, p);
}

void vigil_policy_autofix_defaults(struct vigil_autofix_policy *p)
{
	apply_defaults(&autofix_kind, p);
}

int vigil_policy_heartbeat_parse(const char *text, size_t len, const char *path,
				 struct vigil_heartbeat_policy *out, char *err, size_t err_len,
				 char *warn, size_t warn_len)
{
	return parse_policy(&heartbeat_kind, text, len, path, out, err, err_len, warn, warn_len);
}

int vigil_policy_restart_parse(const char *text, size_t len, const char *path,
			       struct vigil_restart_policy *out, char *err, size_t err_len,
			       char *warn, size_t warn_len)
{
	return parse_policy(&restart_kind, text, len, path, out, err, err_len, warn, warn_len);
}

int vigil_policy_autofix_parse(const char *text, size_t len, const char *path,
			       struct vigil_autofix_policy *out, char *err, size_t err_len,
			       char *warn, size_t warn_len)
{
	return parse_policy(&autofix_kind, text, len, path, out, err, err_len, warn, warn_len);
}

int vigil_policy_heartbeat_load(int dirfd, const char *name, const char *display_path,
				struct vigil_heartbeat_policy *out, bool *missing,
				char *err, size_t err_len, char *warn, size_t warn_len)
{
	return load_policy(&heartbeat_kind, dirfd, name, display_path, out, missing, err, err_len,
			   warn, warn_len);
}

int vigil_policy_restart_load(int dirfd, const char *name, const char *display_path,
			      struct vigil_restart_policy *out, bool *missing,
			      char *err, size_t err_len, char *warn, size_t warn_len)
{
	return load_policy(&restart_kind, dirfd, name, display_path, out, missing, err, err_len,
			   warn, warn_len);
}

int vigil_policy_autofix_load(int dirfd, const char *name, const char *display_path,
			      struct vigil_autofix_policy *out, bool *missing,
			      char *err, size_t err_len, char *warn, size_t warn_len)
{
	return load_policy(&autofix_kind, dirfd, name, display_path, out, missing, err, err_len,
			   warn, warn_len);
}

json_t *vigil_policy_heartbeat_to_json(const struct vigil_heartbeat_policy *p)
{
	return policy_to_json(&heartbeat_kind, p);
}

json_t *vigil_policy_restart_to_json(const struct vigil_restart_policy *p)
{
	return policy_to_json(&restart_kind, p);
}

json_t *vigil_policy_autofix_to_json(const struct vigil_autofix_policy *p)
{
	return policy_to_json(&autofix_kind, p);
}
