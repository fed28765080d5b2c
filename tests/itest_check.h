/*
 * itest_check.h - the checks the integration suites share, and the
 * harness's calls bound to the suite's home H.
 *
 * A test file includes it after declaring `static struct itest_home H;` and
 * before defining `static void dump_state(void)` (what to show, with
 * dump_tail(), when a check fails).
 *
 *   CHECK(cond, fmt, ...)       fails the test now
 *   SOFT_CHECK(cond, fmt, ...)  records the failure and goes on, so that one
 *                               product bug does not hide what comes after;
 *                               soft_done() fails the test at its end
 */
#ifndef VIGIL_ITEST_CHECK_H
#define VIGIL_ITEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static void dump_state(void);

/* The last `lines` lines of the file rel under the home. */
static inline void dump_tail(const char *title, const char *rel, int lines)
{
	char *s = itest_read_file(&H, rel);
	if (s == NULL) {
		fprintf(stderr, "---- %s: (absent)\n", title);
		return;
	}
	size_t len = strlen(s);
	const char *p = s + len;
	int n = 0;
	while (p > s && n <= lines) {
		p--;
		if (*p == '\n')
			n++;
	}
	fprintf(stderr, "---- %s (last %d lines):\n%s\n", title, lines, p);
	free(s);
}

/* Fails the test with a message after dumping the home's files and logs. */
#define CHECK(cond, ...)                                                                                   \
	do {                                                                                               \
		if (!(cond)) {                                                                             \
			fprintf(stderr, "CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
			dump_state();                                                                      \
			fail_msg(__VA_ARGS__);                                                             \
		}                                                                                          \
	} while (0)

static char soft_msgs[8192] __attribute__((unused));
#define SOFT_CHECK(cond, ...)                                                                              \
	do {                                                                                               \
		if (!(cond)) {                                                                             \
			char m_[768];                                                                      \
			snprintf(m_, sizeof m_, __VA_ARGS__);                                              \
			fprintf(stderr, "SOFT CHECK failed at %s:%d: %s\n  %s\n", __FILE__, __LINE__, #cond, m_); \
			size_t l_ = strlen(soft_msgs);                                                     \
			snprintf(soft_msgs + l_, sizeof soft_msgs - l_, "[line %d] %s; ", __LINE__, m_);   \
		}                                                                                          \
	} while (0)

static inline void soft_done(void)
{
	if (soft_msgs[0] != '\0') {
		dump_state();
		fail_msg("%s", soft_msgs);
	}
}

/* ---- the harness on H ---------------------------------------------------- */

static inline int count_text(const char *rel, const char *needle) { return itest_count_text(&H, rel, needle); }

static inline bool wait_text_count(const char *rel, const char *needle, int n, int timeout_ms)
{
	return itest_wait_text_count(&H, rel, needle, n, timeout_ms);
}

static inline const char *str(const json_t *o, const char *key) { return itest_str(o, key); }

static inline int procs_of(const char *id, pid_t *out, int max) { return itest_procs_of(&H, id, out, max); }

/* "spawned <id> (" lines in the restart log: one per process vigild started. */
static inline int spawned_lines(const char *id)
{
	char needle[128];
	snprintf(needle, sizeof needle, "spawned %s (", id);
	return itest_count_text(&H, ITEST_RESTART_LOG, needle);
}

#endif /* VIGIL_ITEST_CHECK_H */
