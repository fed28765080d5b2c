/*
 * policy.h - the three policy files under coordination/config/: parse,
 * validate, load safely, and write back as JSON.
 *
 * Operators edit these files by hand and with jq (runbook "Configuration"
 * and "Too Many False Positives"), so every mistake in them has to come
 * back as one sentence that names the file, the key, what was expected and
 * what was found, and must never take down a running vigild: a parse either
 * fills the whole struct or leaves it exactly as it was, so the caller can
 * keep the policy in force when a reload fails.  Missing keys take the
 * runbook's defaults; unknown keys are reported as warnings, not errors,
 * so a newer file still loads in an older vigild.
 *
 * The three parsers share one table-driven validation engine (policy.c);
 * the same tables drive to_json, so the key order of a written file is the
 * runbook's keys first, then vigil's own.
 */
#ifndef VIGIL_POLICY_H
#define VIGIL_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* File names under coordination/config/ (README "What vigild writes"). */
#define VIGIL_POLICY_HEARTBEAT_FILE "heartbeat-policy.json"
#define VIGIL_POLICY_RESTART_FILE "worker-restart-policy.json"
#define VIGIL_POLICY_AUTOFIX_FILE "auto-fix-policy.json"

/* A policy file larger than this is refused by the load functions. */
#define VIGIL_POLICY_FILE_MAX_BYTES 65536

/* Size of notify_command including its NUL: at most 1023 bytes of text. */
#define VIGIL_POLICY_NOTIFY_COMMAND_SIZE 1024

/* The effective tick never goes below this, whatever the interval. */
#define VIGIL_POLICY_TICK_MIN_NS 250000ull /* a quarter of the shortest interval (1 ms): README "How verdicts are timed" */

struct vigil_heartbeat_policy {
	double heartbeat_interval_seconds;   /* default 30,  range [0.001, 86400] */
	double heartbeat_timeout_seconds;    /* default 120, range [interval, 604800] */
	double zombie_threshold_seconds;     /* default 300, range [timeout, 2592000] */
	double health_score_decay_rate;      /* default 5,   range [0, 100] */
	double min_health_score;             /* default 20,  range [0, 100] */
	/* vigil's own keys */
	double tick_seconds;                 /* default 0.1, range [0.001, 10]; effective tick = max(0.25 ms, min(tick, interval/4)) */
	double snapshot_interval_seconds;    /* default 1,   range [0.01, 3600] */
	double host_stall_share;             /* default 0.5, range (0, 1] */
	uint32_t host_stall_min_workers;     /* default 4,   integer range [1, 1000000] */
	double progress_stall_seconds;       /* default 600, range [0, 2592000]; 0 = off */
	double spec_refresh_seconds;         /* default 60, range [0.01, 86400]: how stale a spec's moving
					      * fields (last_seen, beats, progress) may get (README) */
	/* derived, filled by parse/defaults/load: round(seconds * 1e9) */
	uint64_t interval_ns, timeout_ns, zombie_ns;
	uint64_t tick_ns;     /* effective: max(0.25 ms, min(tick_seconds, interval / 4)) */
	uint64_t snapshot_ns;
	uint64_t progress_stall_ns; /* 0 = off */
	uint64_t spec_refresh_ns;
};

struct vigil_restart_policy {
	uint32_t max_retries;                /* default 3, integer [0, 1000] */
	double retry_interval_seconds;       /* default 60, [0, 604800] */
	double backoff_multiplier;           /* default 2, [1, 100] */
	bool circuit_breaker_enabled;        /* default true, JSON boolean only */
	uint32_t circuit_breaker_threshold;  /* default 5, integer [1, 100000] */
	double circuit_breaker_reset_seconds;/* default 300, [0, 2592000] */
	/* vigil's own keys */
	double retry_reset_seconds;          /* default 600, [0, 2592000] */
	double retry_jitter;                 /* default 0, [0, 1] */
	uint64_t token_pool;                 /* default 1000000, integer [0, 1e15] */
	double kill_grace_seconds;           /* default 5, [0, 3600]: SIGTERM, then SIGKILL after this */
};

struct vigil_autofix_policy {
	bool enabled;                        /* default true */
	double min_confidence_threshold;     /* default 0.7, [0, 1] */
	uint32_t max_fixes_per_hour;         /* default 10, integer [0, 1000000] */
	bool dry_run;                        /* default false */
	bool notification_enabled;           /* default true */
	/* vigil's own keys */
	char notify_command[VIGIL_POLICY_NOTIFY_COMMAND_SIZE]; /* default ""; string or null */
	double notify_timeout_seconds;       /* default 5, [0.1, 300] */
};

void vigil_policy_heartbeat_defaults(struct vigil_heartbeat_policy *p);
void vigil_policy_restart_defaults(struct vigil_restart_policy *p);
void vigil_policy_autofix_defaults(struct vigil_autofix_policy *p);

/*
 * vigil_policy_<kind>_parse - parse and validate the text of a policy file.
 *
 * text is len bytes, not necessarily NUL-terminated; a leading UTF-8 BOM is
 * skipped.  path is only used in messages.  On success fills *out
 * (derived fields included) and returns 0.  On any error returns -EINVAL,
 * leaves *out untouched, and writes one sentence into err naming the file,
 * the key when there is one, what was expected and what was found:
 *
 *   "coordination/config/heartbeat-policy.json: key 'heartbeat_timeout_seconds':
 *    expected a number in [0.05, 604800] (at least heartbeat_interval_seconds), got 0.01"
 *
 * Errors: empty or whitespace-only text, a NUL byte, invalid JSON (jansson
 * rejects NaN, Infinity and literals that overflow a double), a duplicate
 * key, a top level that is not an object, a value of the wrong type or
 * outside its range, a non-integral value for an integer key, timeout <
 * interval or zombie < timeout (also when one side is a default).
 * Missing keys take their defaults.  Unknown keys are not errors: warn
 * receives "PATH: unknown key 'foo' ignored; unknown key 'bar' ignored"
 * (or "" when there are none; it is written on failure too).  err and warn
 * may be NULL; err is "" on success.  Untrusted bytes are escaped in both.
 */
int vigil_policy_heartbeat_parse(const char *text, size_t len, const char *path,
				 struct vigil_heartbeat_policy *out, char *err, size_t err_len,
				 char *warn, size_t warn_len);
int vigil_policy_restart_parse(const char *text, size_t len, const char *path,
			       struct vigil_restart_policy *out, char *err, size_t err_len,
			       char *warn, size_t warn_len);
int vigil_policy_autofix_parse(const char *text, size_t len, const char *path,
			       struct vigil_autofix_policy *out, char *err, size_t err_len,
			       char *warn, size_t warn_len);

/*
 * vigil_policy_<kind>_load - read name relative to dirfd and parse it.
 *
 * Opens with openat(O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK) and refuses
 * anything but a regular file of at most VIGIL_POLICY_FILE_MAX_BYTES:
 * a symbolic link (-ELOOP, "is a symbolic link, not followed"), a
 * directory (-EISDIR), a FIFO, socket or device (-EINVAL), a larger file
 * (-EFBIG).  A missing file (ENOENT) is not an error: *out gets the
 * defaults, *missing (may be NULL) is set to true and 0 is returned.
 * display_path (NULL: name) is used in messages.  Returns 0, -EINVAL for
 * content errors (see parse), or the -errno of open/read/fstat; err is set
 * on every failure and *out is left untouched.
 */
int vigil_policy_heartbeat_load(int dirfd, const char *name, const char *display_path,
				struct vigil_heartbeat_policy *out, bool *missing,
				char *err, size_t err_len, char *warn, size_t warn_len);
int vigil_policy_restart_load(int dirfd, const char *name, const char *display_path,
			      struct vigil_restart_policy *out, bool *missing,
			      char *err, size_t err_len, char *warn, size_t warn_len);
int vigil_policy_autofix_load(int dirfd, const char *name, const char *display_path,
			      struct vigil_autofix_policy *out, bool *missing,
			      char *err, size_t err_len, char *warn, size_t warn_len);

/*
 * vigil_policy_<kind>_to_json - the policy as a JSON object with exactly
 * the documented keys, runbook keys first, then vigil's.  Integral values
 * are JSON integers (so the default heartbeat file says 30, not 30.0),
 * fractional ones reals; notify_command is always a string.  Derived
 * fields are not written.  New reference; NULL on allocation failure, or
 * for what no parse produces: a NaN or infinity, or a notify_command that
 * is not UTF-8, put into the struct by hand.  Write the text with
 * vigil_policy_dumps() for reals in their short form.
 */
json_t *vigil_policy_heartbeat_to_json(const struct vigil_heartbeat_policy *p);
json_t *vigil_policy_restart_to_json(const struct vigil_restart_policy *p);
json_t *vigil_policy_autofix_to_json(const struct vigil_autofix_policy *p);

/*
 * vigil_policy_dumps - json_dumps(policy, flags) with the smallest real
 * precision at which every real in policy reads back as the same double,
 * so that values a person wrote print as written (0.7, where jansson's
 * default gives 0.69999999999999996); one value that needs 17 digits makes
 * all of them print with 17, still exact.  Any JSON_REAL_PRECISION in flags
 * is replaced.  On success *out is a malloc'd string for the caller to
 * free().  0, -EINVAL or -ENOMEM.
 */
int vigil_policy_dumps(const json_t *policy, size_t flags, char **out);

#endif /* VIGIL_POLICY_H */
