/*
 * patterns.h - every failure vigild sees is classified into the failure
 * patterns of README "Failure patterns and auto-fix", with a confidence computed by one written rule.
 *
 * Why: the auto-fix (autofix.h) must act only when vigil is sure enough,
 * and an operator reading coordination/patterns/failure-patterns.jsonl
 * must be able to redo the arithmetic from the line's "evidence".  So the
 * confidence is not a heuristic sprinkled over the code but one formula
 * over one table (patterns.c, type_table[]).
 *
 * The confidence rule (the same text, as markdown for the README, is at
 * the top of patterns.c between README-CONFIDENCE-BEGIN/END):
 *
 *   Evidence is per worker: the worker's last 16 failures (a ring), and
 *   of those only the ones less than WINDOW = 1 hour older than the
 *   failure being classified.  Each counts with the recency weight
 *
 *       w(age) = 2^(-age / 10 min)        (1 for the failure itself)
 *
 *   For a pattern type T with per-observation reliability p(T):
 *
 *       n          = sum of w over the worker's failures similar under T
 *       strength   = 1 - (1 - p(T))^n        "independent witnesses"
 *       alikeness  = (sum of w over similar) / (sum of w over comparable)
 *                    for the repetition types crash_loop (comparable:
 *                    every death of the worker) and exit_code (every
 *                    death with an exit status); 1 for the event types,
 *                    whose evidence is in the event itself
 *       confidence = strength * alikeness, clamped to [0, 1], NaN -> 0,
 *                    rounded to 3 decimals (the value auto-fix compares
 *                    is the value written)
 *
 *   type            p     acts at 0.7 after      similar failure
 *   signal_crash    0.80  1                      exit by SEGV/BUS/ABRT/ILL/FPE
 *   hang            0.60  2                      a HANG report
 *   oom_suspected   0.50  2                      SIGKILL not sent by vigild
 *   slow_start      0.50  2                      a SLOW_START report
 *   progress_stall  0.50  2                      a PROGRESS_STALL report
 *   exit_code       0.40  3 (all alike)          same exit code / signal
 *   crash_loop      0.40  3 (all fast)           a death with uptime < fast_exit_ms,
 *                                                or a failed restart
 *   flapping        0.30  4 (about 1 min apart)  a RECOVERED report
 *
 *   ("acts at 0.7 after": that many similar failures within a minute or
 *   so.)  Monotone: one more similar failure, however old, never lowers a
 *   confidence; the same failures further in the past give a lower one.
 *
 * What is a failure: an EXIT with exit code 0 and no signal is a clean
 * exit and an EXIT with killed_by_vigil is vigild's own doing (the answer
 * to a failure already classified): both give 0 patterns and are not
 * recorded.  Every other report gives at least one pattern:
 *   EXIT/RESTART  signal_crash (crash signal), oom_suspected (SIGKILL not
 *                 by vigild) or exit_code (a non-zero code, another
 *                 signal such as an outside SIGTERM, or an unknown
 *                 termination), plus crash_loop when this death was fast
 *                 and it is at least the 2nd fast death in the window;
 *                 a RESTART (a restart attempt that failed) is always a
 *                 crash_loop and counts as a fast death whatever its
 *                 uptime; its termination is classified when known.
 *   HANG -> hang, SLOW_START -> slow_start, RECOVERED -> flapping,
 *   PROGRESS_STALL -> progress_stall.
 *
 * Memory is bounded and allocated once at init: a fixed table of
 * max_workers entries (672 bytes each, plus 8 of hash index); when it is
 * full the least recently seen worker is evicted (counted in evictions).
 * Per-type counters are lifetime totals.  Type-wide (worker_type) evidence
 * is deliberately not used for confidence: the actions act on one worker,
 * and a type that keeps failing is what the circuit breaker (breaker.h)
 * is for.  Not thread-safe: the action thread owns it.
 */
#ifndef VIGIL_PATTERNS_H
#define VIGIL_PATTERNS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* File under coordination/ (README "Failure patterns and auto-fix"). */
#define VIGIL_PATTERNS_DIR "patterns"
#define VIGIL_PATTERNS_FILE "failure-patterns.jsonl"

#define VIGIL_PATTERN_RING 16u                   /* failures kept per worker */
#define VIGIL_PATTERN_WINDOW_MS 3600000ull       /* evidence older than this is ignored */
#define VIGIL_PATTERN_HALF_LIFE_MS 600000ull     /* recency weight halves every 10 min */
#define VIGIL_PATTERN_FAST_EXIT_MS 10000ull      /* default of vigil_patterns.fast_exit_ms */
#define VIGIL_PATTERN_WORKERS_MAX (1u << 20)     /* largest max_workers */
#define VIGIL_PATTERN_TYPES 8u
#define VIGIL_PATTERN_OUT_MAX 3                  /* most patterns one failure yields */

enum vigil_failure_kind {
	VIGIL_FAIL_EXIT,           /* process ended: exit_code >= 0, or signal > 0, or both unknown (-1) */
	VIGIL_FAIL_HANG,           /* alive but silent: heartbeat_timeout or zombie verdict */
	VIGIL_FAIL_SLOW_START,     /* (re)started but no first beat within heartbeat_timeout */
	VIGIL_FAIL_RESTART,        /* a restart attempt failed (spawn failed, died before its first beat) */
	VIGIL_FAIL_RECOVERED,      /* a beat after a miss: a lapse that recovered (for flapping) */
	VIGIL_FAIL_PROGRESS_STALL, /* beats keep coming but progress has not moved for progress_stall_seconds */
	VIGIL_FAIL_KINDS
};

struct vigil_failure {
	uint8_t kind;             /* enum vigil_failure_kind */
	char worker_id[65], worker_type[65]; /* id: a name (README "What vigild writes"); type: a name or "" */
	int32_t exit_code;        /* -1 unknown */
	int32_t signal;           /* 0 none, -1 unknown */
	bool killed_by_vigil;     /* vigild itself sent the signal (cleanup, restart): never oom_suspected */
	uint64_t at_ms;           /* unix ms */
	uint64_t uptime_ms;       /* how long the process had run when it failed (0 unknown) */
	uint32_t progress;        /* last reported progress 0..100 */
	uint64_t stalled_ms;      /* PROGRESS_STALL: how long progress has not moved */
};

/* Pattern types, in type_table[] order. */
enum vigil_pattern_type {
	VIGIL_PAT_CRASH_LOOP,
	VIGIL_PAT_HANG,
	VIGIL_PAT_SIGNAL_CRASH,
	VIGIL_PAT_OOM_SUSPECTED,
	VIGIL_PAT_EXIT_CODE,
	VIGIL_PAT_SLOW_START,
	VIGIL_PAT_FLAPPING,
	VIGIL_PAT_PROGRESS_STALL,
};

struct vigil_pattern {
	char type[24];            /* crash_loop | hang | signal_crash | oom_suspected | exit_code | slow_start | flapping | progress_stall */
	double confidence;        /* [0, 1], 3 decimals */
	char worker_id[65], worker_type[65];
	char recommended_action[24]; /* restart | kill_then_restart | quarantine */
	json_t *evidence;         /* owned (NULL only when out of memory) */
};

/* One recorded failure (internal, in the per-worker ring). */
struct vigil_pattern_fail {
	uint64_t at_ms, uptime_ms;
	int32_t exit_code, signal;
	uint8_t kind;
	bool killed_by_vigil;
};

struct vigil_pattern_worker {
	char worker_id[65], worker_type[65];
	uint32_t hash;
	uint32_t lru_prev, lru_next;    /* indices; UINT32_MAX none.  Free entries chain through lru_next. */
	uint8_t head, count;            /* ring[head] is the newest */
	uint64_t failures;              /* recorded since it entered the table */
	struct vigil_pattern_fail ring[VIGIL_PATTERN_RING];
};

struct vigil_patterns {
	struct vigil_pattern_worker *workers; /* capacity entries */
	uint32_t *index;                      /* mask + 1 entries: 0 empty, else worker index + 1 */
	uint32_t capacity, count, mask;
	uint32_t lru_head, lru_tail;          /* most / least recently seen; UINT32_MAX none */
	uint32_t free_head;                   /* forgotten entries */
	uint32_t used_entries;                /* high-water mark of workers[] */
	/* A death with 0 < uptime_ms < fast_exit_ms is "fast" (crash_loop).
	 * Default VIGIL_PATTERN_FAST_EXIT_MS; the caller may set it. */
	uint64_t fast_exit_ms;
	/* lifetime counters */
	uint64_t observed;                    /* reports given to observe */
	uint64_t not_failures;                /* clean exits */
	uint64_t vigil_kills;                 /* exits vigild caused, not classified */
	uint64_t invalid;                     /* rejected reports (-EINVAL) */
	uint64_t evictions;                   /* workers evicted to make room */
	uint64_t patterns_detected;           /* patterns classified (all types) */
	uint64_t detected[VIGIL_PATTERN_TYPES]; /* per pattern type */
};

/* max_workers in [1, VIGIL_PATTERN_WORKERS_MAX].  Allocates everything.
 * 0, -EINVAL or -ENOMEM. */
int vigil_patterns_init(struct vigil_patterns *p, uint32_t max_workers);
void vigil_patterns_destroy(struct vigil_patterns *p);

/*
 * vigil_patterns_observe - records f and classifies it.
 *
 * Returns the number of patterns written to out (0..max_out), or -EINVAL
 * (NULL, unknown kind, worker_id not a name, worker_type neither "" nor a
 * name; nothing recorded).  For example a SIGSEGV that is the 3rd fast
 * crash in a row yields both signal_crash and crash_loop.  out is sorted:
 * most drastic recommended action first (quarantine, kill_then_restart,
 * restart), then highest confidence; when more than max_out were
 * classified, the first max_out are written (the rest still count in the
 * counters).  At most VIGIL_PATTERN_OUT_MAX.  Each written pattern owns
 * its evidence: vigil_pattern_clear() it.  Allocates only the evidence.
 */
int vigil_patterns_observe(struct vigil_patterns *p, const struct vigil_failure *f, struct vigil_pattern *out,
			   int max_out);

/*
 * vigil_patterns_pick - which of n patterns (as observe sorted them) to
 * hand to auto-fix: the first with confidence >= threshold (the most
 * drastic actionable one), else 0 (the top one, so the skip is recorded);
 * -1 when n <= 0.  One decision per failure keeps a crash_loop's
 * quarantine and its signal_crash's restart from both running, and one
 * failure from using two fixes of the hourly budget.
 */
int vigil_patterns_pick(const struct vigil_pattern *pts, int n, double threshold);

/* Forgets a worker's history (e.g. when an operator lifts a quarantine,
 * so its old crash loop does not quarantine it again on the next death).
 * true when it was known. */
bool vigil_patterns_forget(struct vigil_patterns *p, const char *worker_id);

/* Decrefs the evidence; the pattern is zeroed. */
void vigil_pattern_clear(struct vigil_pattern *pt);

/*
 * The line for coordination/patterns/failure-patterns.jsonl:
 * {"type","confidence","worker_type","worker_id","evidence":{...},
 *  "recommended_action","timestamp","timestamp_ms"}.  New reference
 * (the evidence is shared, not copied), NULL on allocation failure.
 */
json_t *vigil_pattern_to_json(const struct vigil_pattern *pt, uint64_t now_ms);

/* vigil_pattern_to_json as one compact line appended to fd, reals in their
 * short form (0.784, not 0.78400000000000003).  0 or -errno. */
int vigil_pattern_append(int fd, const struct vigil_pattern *pt, uint64_t now_ms);

/* Compact line of obj, short reals, appended with vigil_fs_append (shared
 * with autofix.c).  0 or -errno. */
int vigil_json_append_short(int fd, const json_t *obj);

/* "crash_loop"... for enum vigil_pattern_type; "?" otherwise. */
const char *vigil_pattern_type_name(unsigned type);

/* {"observed","patterns_detected","not_failures","vigil_kills","invalid",
 *  "evictions","workers_tracked","capacity","by_type":{"crash_loop":n,...}}.
 *  New reference or NULL. */
json_t *vigil_patterns_metrics_to_json(const struct vigil_patterns *p);

#endif /* VIGIL_PATTERNS_H */
