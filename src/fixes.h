/*
 * fixes.h - from failures to patterns to fixes: the glue between what the
 * scanner and the restart path see, the classifier (patterns.c) and the
 * auto-fix engine (autofix.c).
 *
 *   failure  ->  every pattern it fits, one line each in
 *                coordination/patterns/failure-patterns.jsonl
 *            ->  one decision, on the pattern vigil_patterns_pick chooses
 *                (so one failure never spends two fixes), one line in
 *                coordination/metrics/auto-fix-history.jsonl
 *            ->  applied through the same restart path as everything else
 *                (breakers and retry limits still apply), or quarantine
 *
 * Each death is reported once: as a failed restart when it was a restart
 * attempt that died before its first beat, otherwise as an exit.
 */
#ifndef VIGIL_FIXES_H
#define VIGIL_FIXES_H

#include <stdint.h>

#include <jansson.h>

#include "patterns.h"

struct vigil_action;

int vigil_fixes_init(struct vigil_action *a);
void vigil_fixes_destroy(struct vigil_action *a);

/* Classify f, record the patterns, decide and apply.  f->at_ms is now. */
void vigil_fixes_failure(struct vigil_action *a, const struct vigil_failure *f);

/* A circuit breaker just opened: log and notify. */
void vigil_fixes_breaker_opened(struct vigil_action *a, const char *worker_type, uint32_t failure_count,
				uint64_t now_ms);

/* Reap notifications; returns the next instant (ms) it wants a call, 0 none. */
uint64_t vigil_fixes_poll(struct vigil_action *a, uint64_t now_ms);
/* Writes auto-fix-daemon-metrics.json; returns the document (new reference). */
json_t *vigil_fixes_write_metrics(struct vigil_action *a, uint64_t now_ms);

#endif /* VIGIL_FIXES_H */
