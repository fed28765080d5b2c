/*
 * fuzz_common.h - helpers shared by the libFuzzer harnesses in tests/fuzz/.
 *
 * A harness checks the documented contract of what it drives, not only
 * that nothing crashes: FUZZ_CHECK aborts (which libFuzzer reports as a
 * crash and saves as an artifact) when a promise of the header is broken.
 */
#ifndef VIGIL_FUZZ_COMMON_H
#define VIGIL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                       \
	do {                                                                                        \
		if (!(cond)) {                                                                      \
			fprintf(stderr, "fuzz: contract broken at %s:%d: %s\n  ", __FILE__, __LINE__, \
				#cond);                                                             \
			fprintf(stderr, __VA_ARGS__);                                               \
			fputc('\n', stderr);                                                        \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

/* A NUL-terminated string that fits its buffer. */
static inline int fuzz_terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* Reads a little-endian integer of n bytes from *p (advancing it), 0 past
 * the end: lets a harness take parameters from the front of its input. */
static inline uint64_t fuzz_take(const uint8_t **p, size_t *left, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = 0;
		if (*left > 0) {
			b = **p;
			(*p)++;
			(*left)--;
		}
		v |= b << (8 * i);
	}
	return v;
}

/* README "What vigild writes": "timestamp" is YYYY-MM-DDTHH:MM:SSZ (what date -u +%Y-%m-%dT%H:%M:%SZ
 * prints and jq's fromdateiso8601 reads). */
static inline int fuzz_iso8601_ok(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
	if (strlen(s) != sizeof pat - 1)
		return 0;
	for (size_t i = 0; i < sizeof pat - 1; i++) {
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return 0;
	}
	return 1;
}

/* mkdtemp under $TMPDIR (run.sh points it into the build directory), else
 * /tmp; the path is written into buf.  Aborts on failure. */
static inline void fuzz_mkdtemp(char *buf, size_t len, const char *what)
{
	const char *t = getenv("TMPDIR");
	snprintf(buf, len, "%s/vigil-fuzz-%s-XXXXXX", t != NULL && t[0] == '/' ? t : "/tmp", what);
	if (mkdtemp(buf) == NULL) {
		perror("fuzz: mkdtemp");
		abort();
	}
}

#endif /* VIGIL_FUZZ_COMMON_H */
