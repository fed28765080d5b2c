/*
 * prom.h - vigil's metrics in the Prometheus text exposition format
 * (version 0.0.4), for node_exporter's textfile collector
 * (coordination/metrics/vigil.prom) and `vigilctl metrics --prom`.
 *
 * The numbers are the ones in the JSON metrics files (README "What vigild writes"); this module
 * only renames and types them:
 *
 *   - counters end in `_total` (heartbeats_received ->
 *     vigil_heartbeats_received_total), gauges do not
 *     (workers_monitored -> vigil_workers_monitored);
 *   - durations are converted to the base unit, seconds
 *     (scan_time_last_us -> vigil_scan_time_last_seconds,
 *     stall_credit_ms_total -> vigil_stall_credit_seconds_total);
 *   - per worker type: vigil_workers{worker_type="T"},
 *     vigil_zombies{worker_type="T"}, vigil_health_average{worker_type="T"},
 *     vigil_breaker_open{worker_type="T"} (1 open, 0 otherwise).
 *
 * Every family has its HELP and TYPE lines and passes
 * `promtool check metrics` (its lint included).  Only the keys in the
 * table of prom.c are exported: a key added to a metrics file needs a row
 * there (name, type, unit), because a wrong type is worse than a missing
 * metric.  Keys that are absent, or not numbers, are skipped, as are
 * families left without samples.  The output is deterministic: families in
 * table order, worker types sorted bytewise.
 */
#ifndef VIGIL_PROM_H
#define VIGIL_PROM_H

#include <jansson.h>

struct vigil_segment;

/* File name under coordination/metrics/. */
#define VIGIL_PROM_FILE "vigil.prom"
/* Most worker types vigil_prom_per_type() reports one by one; the others
 * are summed under worker_type="_overflow" (label cardinality). */
#define VIGIL_PROM_TYPES_MAX 1024
#define VIGIL_PROM_OVERFLOW_TYPE "_overflow"

/*
 * vigil_prom_render - the exposition text for the three metrics documents
 * (heartbeat-monitor-metrics.json, worker-restart-metrics.json,
 * auto-fix-daemon-metrics.json; any may be NULL) and per_type (NULL, or an
 * object worker_type -> {"workers": n, "zombies": n, "breaker_state":
 * "open"|"closed"|"half_open", "health_avg": x}, members optional).
 * *out is malloc'd, NUL-terminated, ends in a newline unless empty.
 * 0 or -errno (-ENOMEM).
 */
int vigil_prom_render(const json_t *heartbeat_metrics, const json_t *restart_metrics, const json_t *autofix_metrics,
		      const json_t *per_type, char **out);

/* Atomic replace of vigil.prom in metrics_dirfd with text (temp file in the
 * same directory, then rename: vigil_fs_replace).  0 or -errno. */
int vigil_prom_write(int metrics_dirfd, const char *text);

/*
 * vigil_prom_per_type - the per_type object for vigil_prom_render, from a
 * mapped segment (read only; live ACTIVE and ZOMBIE slots, health from the
 * view when it describes the slot's generation) and, when breakers_dirfd
 * >= 0, the breaker files <type>.json in coordination/circuit-breakers/
 * (types with a breaker file but no live worker are listed with 0
 * workers).  Worker types that break the name rule are counted under
 * "_invalid".  *out is a new reference.  0 or -errno.
 */
int vigil_prom_per_type(const struct vigil_segment *seg, int breakers_dirfd, json_t **out);

#endif /* VIGIL_PROM_H */
