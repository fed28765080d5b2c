/*
 * prom.c - the Prometheus text exposition of vigil's metrics (see prom.h).
 *
 * Names follow the Prometheus conventions that `promtool check metrics`
 * lints: snake_case, base units (seconds), `_total` on counters and only on
 * counters, no unit abbreviations (ms, us) in names.
 */
#define _GNU_SOURCE
#include "prom.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segment.h"
#include "util.h"
#include "vigil.h"

/* ---- the table ------------------------------------------------------------------ */

enum prom_type { PROM_COUNTER, PROM_GAUGE };

struct prom_def {
	const char *key;  /* member of the JSON metrics document */
	const char *name; /* metric name */
	enum prom_type type;
	double div;       /* value / div (unit conversion to seconds); 0: as is */
	const char *help;
};

static const struct prom_def heartbeat_defs[] = {
	{"workers_monitored", "vigil_workers_monitored", PROM_GAUGE, 0, "Workers vigild monitors now."},
	{"workers_known", "vigil_workers_known", PROM_GAUGE, 0, "Workers in vigild's registry now."},
	{"workers_unverified", "vigil_workers_unverified_total", PROM_COUNTER, 0,
	 "Registrations whose identity vigild could not verify (watched by heartbeat timeouts only)."},
	{"slots", "vigil_slots", PROM_GAUGE, 0, "Worker slots in the shared-memory segment."},
	{"heartbeats_received", "vigil_heartbeats_received_total", PROM_COUNTER, 0, "Heartbeats vigild has seen."},
	{"heartbeats_missed", "vigil_heartbeats_missed_total", PROM_COUNTER, 0, "heartbeat_missed verdicts."},
	{"heartbeat_timeouts", "vigil_heartbeat_timeouts_total", PROM_COUNTER, 0, "heartbeat_timeout verdicts."},
	{"zombies_detected", "vigil_zombies_detected_total", PROM_COUNTER, 0, "zombie_detected verdicts."},
	{"exits_detected", "vigil_exits_detected_total", PROM_COUNTER, 0, "Worker exits seen through pidfds."},
	{"workers_rejected", "vigil_workers_rejected_total", PROM_COUNTER, 0,
	 "Registrations vigild refused (worker_rejected)."},
	{"stale_beats_ignored", "vigil_stale_beats_ignored_total", PROM_COUNTER, 0,
	 "Beats written through a stale handle and ignored."},
	{"ticks", "vigil_ticks_total", PROM_COUNTER, 0, "Scanner ticks."},
	{"tick_overruns", "vigil_tick_overruns_total", PROM_COUNTER, 0, "Scanner ticks that ran late."},
	{"host_stalls", "vigil_host_stalls_total", PROM_COUNTER, 0, "Suspected host stalls (host_stall_suspected)."},
	{"stall_credit_ms_total", "vigil_stall_credit_seconds_total", PROM_COUNTER, 1e3,
	 "Supervisor stall time credited to workers, in seconds."},
	{"ring_full_deferrals", "vigil_ring_full_deferrals_total", PROM_COUNTER, 0,
	 "Verdicts deferred to the next tick because the event ring was full."},
	{"events_written", "vigil_events_written_total", PROM_COUNTER, 0, "Event lines written."},
	{"specs_written", "vigil_specs_written_total", PROM_COUNTER, 0, "Worker spec files written."},
	{"write_errors", "vigil_write_errors_total", PROM_COUNTER, 0, "Failed writes under coordination/."},
	{"scan_time_last_us", "vigil_scan_time_last_seconds", PROM_GAUGE, 1e6, "Duration of the last scan, in seconds."},
	{"scan_time_max_us", "vigil_scan_time_max_seconds", PROM_GAUGE, 1e6, "Longest scan so far, in seconds."},
	{"tick_seconds", "vigil_tick_seconds", PROM_GAUGE, 0, "Effective scanner tick, in seconds."},
};

static const struct prom_def restart_defs[] = {
	{"restarts_attempted", "vigil_restarts_attempted_total", PROM_COUNTER, 0, "Worker restarts attempted."},
	{"restarts_succeeded", "vigil_restarts_succeeded_total", PROM_COUNTER, 0, "Worker restarts that succeeded."},
	{"restarts_failed", "vigil_restarts_failed_total", PROM_COUNTER, 0, "Worker restarts that failed."},
	{"restarts_denied_by_breaker", "vigil_restarts_denied_by_breaker_total", PROM_COUNTER, 0,
	 "Restarts refused because the type's circuit breaker was open."},
	{"workers_given_up", "vigil_workers_given_up_total", PROM_COUNTER, 0,
	 "Workers given up on after max_retries."},
	{"spawns", "vigil_spawns_total", PROM_COUNTER, 0, "Worker processes started."},
	{"spawn_failures", "vigil_spawn_failures_total", PROM_COUNTER, 0, "Worker processes that could not be started."},
	{"requests_rejected", "vigil_requests_rejected_total", PROM_COUNTER, 0, "Malformed requests rejected."},
	{"history_lines_skipped", "vigil_history_lines_skipped_total", PROM_COUNTER, 0,
	 "Unusable lines skipped in worker-restart-history.jsonl."},
	{"zombies_cleaned", "vigil_zombies_cleaned_total", PROM_COUNTER, 0, "Zombie workers cleaned up."},
	{"breakers_open", "vigil_breakers_open", PROM_GAUGE, 0, "Circuit breakers open now."},
	{"tokens_pool", "vigil_tokens_pool", PROM_GAUGE, 0, "Size of the token pool."},
	{"tokens_allocated", "vigil_tokens_allocated", PROM_GAUGE, 0, "Tokens allocated to live workers."},
	{"tokens_available", "vigil_tokens_available", PROM_GAUGE, 0, "Tokens left in the pool."},
};

static const struct prom_def autofix_defs[] = {
	{"patterns_detected", "vigil_patterns_detected_total", PROM_COUNTER, 0, "Failure patterns detected."},
	{"decisions", "vigil_fix_decisions_total", PROM_COUNTER, 0, "Auto-fix decisions taken."},
	{"fixes_applied", "vigil_fixes_applied_total", PROM_COUNTER, 0, "Automatic fixes applied."},
	{"fixes_dry_run", "vigil_fixes_dry_run_total", PROM_COUNTER, 0, "Fixes logged but not applied (dry run)."},
	{"fixes_skipped", "vigil_fixes_skipped_total", PROM_COUNTER, 0,
	 "Fixes skipped, whatever the reason (rate-limited ones included)."},
	{"fixes_rate_limited", "vigil_fixes_rate_limited_total", PROM_COUNTER, 0,
	 "Fixes skipped because of max_fixes_per_hour."},
	{"fixes_in_last_hour", "vigil_fixes_in_last_hour", PROM_GAUGE, 0,
	 "Fixes applied in the last hour (what max_fixes_per_hour limits)."},
	{"notifications_sent", "vigil_notifications_sent_total", PROM_COUNTER, 0, "Operator notifications started."},
	{"notifications_failed", "vigil_notifications_failed_total", PROM_COUNTER, 0,
	 "Notifications that could not start or ended in failure."},
	{"notifications_killed", "vigil_notifications_killed_total", PROM_COUNTER, 0,
	 "Notifications killed after notify_timeout_seconds."},
	{"notifications_dropped", "vigil_notifications_dropped_total", PROM_COUNTER, 0,
	 "Notifications not started because too many were running."},
	{"notifications_truncated", "vigil_notifications_truncated_total", PROM_COUNTER, 0,
	 "Notifications whose event did not fit the pipe."},
	{"notifications_in_flight", "vigil_notifications_in_flight", PROM_GAUGE, 0, "Notification commands running now."},
};

/* ---- a growing string ------------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (int pass = 0; pass < 2; pass++) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = b->cap - b->len;
		int n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap == 0 ? 4096 : b->cap;
		while (ncap < b->len + (size_t)n + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

/* A label value, escaped per the format: backslash, double quote, newline. */
static void sb_label_value(struct sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\\': sb_printf(b, "\\\\"); break;
		case '"': sb_printf(b, "\\\""); break;
		case '\n': sb_printf(b, "\\n"); break;
		default: sb_printf(b, "%c", *s); break;
		}
	}
}

/* v as an integer when it is one, else the shortest %g rendering that
 * reads back as v. */
static void fmt_double(double v, char out[40])
{
	if (isnan(v)) {
		snprintf(out, 40, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, 40, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (fabs(v) < 1e15 && v == trunc(v)) {
		snprintf(out, 40, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, 40, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* The sample value of a JSON number divided by div (0: as is); false when
 * j is not a number.  Dividing by an exact power of ten rounds correctly
 * (1795873074136 / 1000 prints as 1795873074.136). */
static bool value_text(const json_t *j, double div, char out[40])
{
	if (json_is_integer(j) && div == 0) {
		snprintf(out, 40, "%lld", (long long)json_integer_value(j));
		return true;
	}
	if (!json_is_number(j))
		return false;
	double v = json_number_value(j);
	fmt_double(div != 0 ? v / div : v, out);
	return true;
}

static void family_head(struct sbuf *b, const char *name, enum prom_type type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type == PROM_COUNTER ? "counter" : "gauge");
}

static void render_table(struct sbuf *b, const json_t *doc, const struct prom_def *defs, size_t n)
{
	if (!json_is_object(doc))
		return;
	for (size_t i = 0; i < n; i++) {
		char val[40];
		if (!value_text(json_object_get(doc, defs[i].key), defs[i].div, val))
			continue;
		family_head(b, defs[i].name, defs[i].type, defs[i].help);
		sb_printf(b, "%s %s\n", defs[i].name, val);
	}
}

/* ---- per worker type ------------------------------------------------------------- */

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum { PT_WORKERS, PT_ZOMBIES, PT_HEALTH, PT_BREAKER };

static void render_per_type(struct sbuf *b, const json_t *per_type)
{
	static const struct {
		const char *name;
		const char *help;
	} fam[] = {
		[PT_WORKERS] = {"vigil_workers", "Live workers (active or zombie) of this type."},
		[PT_ZOMBIES] = {"vigil_zombies", "Workers of this type held as zombies now."},
		[PT_HEALTH] = {"vigil_health_average", "Average health score (0..100) of the scored workers of this type."},
		[PT_BREAKER] = {"vigil_breaker_open", "1 when the circuit breaker of this type is open, else 0."},
	};
	if (!json_is_object(per_type) || json_object_size(per_type) == 0)
		return;
	size_t n = json_object_size(per_type), k = 0;
	const char **keys = malloc(n * sizeof *keys);
	if (keys == NULL) {
		b->oom = true;
		return;
	}
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)per_type, key, val) {
		if (k < n && json_is_object(val))
			keys[k++] = key;
	}
	qsort(keys, k, sizeof *keys, str_cmp);
	for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
		bool head = false;
		for (size_t i = 0; i < k; i++) {
			const json_t *o = json_object_get(per_type, keys[i]);
			char v[40];
			if (f == PT_BREAKER) {
				const char *st = json_string_value(json_object_get(o, "breaker_state"));
				snprintf(v, sizeof v, "%d", st != NULL && strcmp(st, "open") == 0);
			} else {
				const char *member = f == PT_WORKERS ? "workers" : f == PT_ZOMBIES ? "zombies" : "health_avg";
				if (!value_text(json_object_get(o, member), 0, v))
					continue;
			}
			if (!head) {
				family_head(b, fam[f].name, PROM_GAUGE, fam[f].help);
				head = true;
			}
			sb_printf(b, "%s{worker_type=\"", fam[f].name);
			sb_label_value(b, keys[i]);
			sb_printf(b, "\"} %s\n", v);
		}
	}
	free(keys);
}

/* ---- render, write ---------------------------------------------------------------- */

int vigil_prom_render(const json_t *heartbeat_metrics, const json_t *restart_metrics, const json_t *autofix_metrics,
		      const json_t *per_type, char **out)
{
	struct sbuf b = {0};
	*out = NULL;
	sb_printf(&b, "%s", "");
	render_table(&b, heartbeat_metrics, heartbeat_defs, sizeof heartbeat_defs / sizeof heartbeat_defs[0]);
	render_table(&b, restart_metrics, restart_defs, sizeof restart_defs / sizeof restart_defs[0]);
	render_table(&b, autofix_metrics, autofix_defs, sizeof autofix_defs / sizeof autofix_defs[0]);
	render_per_type(&b, per_type);

	/* When each document was written: staleness is visible to alerts. */
	static const char *const src[] = {"heartbeat", "restart", "autofix"};
	const json_t *docs[] = {heartbeat_metrics, restart_metrics, autofix_metrics};
	bool head = false;
	for (size_t i = 0; i < 3; i++) {
		char v[40];
		if (!json_is_object(docs[i]) || !value_text(json_object_get(docs[i], "timestamp_ms"), 1e3, v))
			continue;
		if (!head) {
			family_head(&b, "vigil_metrics_timestamp_seconds", PROM_GAUGE,
				    "When vigild last wrote each metrics file, in seconds since the Unix epoch.");
			head = true;
		}
		sb_printf(&b, "vigil_metrics_timestamp_seconds{source=\"%s\"} %s\n", src[i], v);
	}
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	return 0;
}

int vigil_prom_write(int metrics_dirfd, const char *text)
{
	if (text == NULL)
		return -EINVAL;
	return vigil_fs_replace(metrics_dirfd, VIGIL_PROM_FILE, text, strlen(text));
}

/* ---- per-type figures from the segment ----------------------------------------------- */

struct tstat {
	char type[VIGIL_ID_MAX + 1]; /* "" free entry */
	uint64_t workers, zombies, health_n;
	double health_sum;
	char breaker[16];
};

#define TTAB_SIZE 2048 /* power of two, > VIGIL_PROM_TYPES_MAX + 2 */

struct ttab {
	struct tstat *e;
	size_t used;
};

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* The entry of type, created when new; the overflow entry once the table
 * holds VIGIL_PROM_TYPES_MAX types. */
static struct tstat *ttab_get(struct ttab *t, const char *type)
{
	for (int round = 0; round < 2; round++) {
		uint32_t i = fnv1a(type) & (TTAB_SIZE - 1);
		for (uint32_t probe = 0; probe < TTAB_SIZE; probe++, i = (i + 1) & (TTAB_SIZE - 1)) {
			if (t->e[i].type[0] == '\0') {
				bool special = strcmp(type, VIGIL_PROM_OVERFLOW_TYPE) == 0;
				if (t->used >= VIGIL_PROM_TYPES_MAX && !special)
					break; /* full: fold into the overflow entry */
				snprintf(t->e[i].type, sizeof t->e[i].type, "%s", type);
				t->used++;
				return &t->e[i];
			}
			if (strcmp(t->e[i].type, type) == 0)
				return &t->e[i];
		}
		type = VIGIL_PROM_OVERFLOW_TYPE;
	}
	return NULL; /* not reached: the table has room for the overflow entry */
}

static void read_breakers(struct ttab *t, int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (nm[0] == '.' || len <= 5 || strcmp(nm + len - 5, ".json") != 0)
			continue;
		char *buf;
		size_t n;
		if (vigil_fs_read(dirfd, nm, 1u << 16, &buf, &n) < 0)
			continue;
		json_t *doc = json_loadb(buf, n, 0, NULL);
		free(buf);
		const char *wt = json_string_value(json_object_get(doc, "worker_type"));
		const char *st = json_string_value(json_object_get(doc, "state"));
		char stem[VIGIL_ID_MAX + 1] = "";
		if (wt == NULL && len - 5 <= VIGIL_ID_MAX) {
			memcpy(stem, nm, len - 5);
			stem[len - 5] = '\0';
			wt = stem;
		}
		if (wt != NULL && st != NULL && (vigil_id_valid(wt) || strcmp(wt, VIGIL_PROM_OVERFLOW_TYPE) == 0)) {
			struct tstat *e = ttab_get(t, wt);
			/* Folded types: open wins, so an open breaker is never hidden. */
			if (e != NULL && (e->breaker[0] == '\0' || strcmp(st, "open") == 0))
				snprintf(e->breaker, sizeof e->breaker, "%s", st);
		}
		json_decref(doc);
	}
	closedir(d);
}

int vigil_prom_per_type(const struct vigil_segment *seg, int breakers_dirfd, json_t **out)
{
	*out = NULL;
	struct ttab t = {.e = calloc(TTAB_SIZE, sizeof(struct tstat)), .used = 0};
	if (t.e == NULL)
		return -ENOMEM;
	/* Bounded by the slot count copied at open, never by the header. */
	for (uint32_t i = 0; seg != NULL && i < seg->slots; i++) {
		const struct vigil_slot_hot *hot = &seg->hot[i];
		uint64_t o = atomic_load_explicit(&hot->owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE)
			continue;
		uint64_t gen = vigil_owner_gen(o);
		char type[VIGIL_ID_MAX + 1];
		bool valid = vigil_id_copy(type, seg->cold[i].worker_type);
		struct vigil_slot_view *v = &seg->view[i];
		uint32_t vgen = atomic_load_explicit(&v->generation_low, memory_order_acquire);
		uint32_t health = atomic_load_explicit(&v->health_score, memory_order_relaxed);
		uint32_t verdict = atomic_load_explicit(&v->verdict, memory_order_relaxed);
		uint32_t vgen2 = atomic_load_explicit(&v->generation_low, memory_order_acquire);
		if (atomic_load_explicit(&hot->owner, memory_order_acquire) != o)
			continue; /* changed hands while we read it */
		bool trusted = gen != 0 && vgen == (uint32_t)gen && vgen2 == vgen;
		if (trusted && verdict == VIGIL_VERDICT_REJECTED)
			continue; /* a registration vigild refused is not a worker */
		struct tstat *e = ttab_get(&t, valid ? type : "_invalid");
		if (e == NULL)
			continue;
		e->workers++;
		if (st == VIGIL_SLOT_ZOMBIE || (trusted && verdict == VIGIL_VERDICT_ZOMBIE))
			e->zombies++;
		if (trusted) {
			e->health_n++;
			e->health_sum += health > 100 ? 100 : health;
		}
	}
	if (breakers_dirfd >= 0)
		read_breakers(&t, breakers_dirfd);

	json_t *obj = json_object();
	int rc = obj != NULL ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < TTAB_SIZE; i++) {
		const struct tstat *e = &t.e[i];
		if (e->type[0] == '\0')
			continue;
		json_t *o = json_pack("{s:I, s:I}", "workers", (json_int_t)e->workers, "zombies", (json_int_t)e->zombies);
		if (o != NULL && e->health_n > 0)
			json_object_set_new(o, "health_avg", json_real(e->health_sum / (double)e->health_n));
		if (o != NULL)
			json_object_set_new(o, "breaker_state", json_string(e->breaker[0] != '\0' ? e->breaker : "closed"));
		if (o == NULL || json_object_set_new(obj, e->type, o) < 0)
			rc = -ENOMEM;
	}
	free(t.e);
	if (rc < 0) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return 0;
}
