/*
 * check.c - `vigilctl check`: a one-line verdict for probes and monitoring
 * plugins (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include <limits.h>

enum { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_CRITICAL = 2, CHECK_UNKNOWN = 3 };
static const char *const check_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

#define CHECK_MIN_HEALTH_DEFAULT 50
/* How long check waits for one scanner tick: 2 ticks, at least this, at most 30 s. */
#define CHECK_TICK_WAIT_MIN_MS 2000 /* a loaded host may delay a tick; a probe must not flap */
#define CHECK_TICK_WAIT_MAX_MS 30000
#define CHECK_NAMES_SHOWN 3

/* Up to CHECK_NAMES_SHOWN names for a verdict, then "and N more". */
struct namelist {
	char text[400];
	size_t n;
};

static void namelist_add(struct namelist *l, const char *name)
{
	if (l->n++ < CHECK_NAMES_SHOWN) {
		size_t len = strlen(l->text);
		snprintf(l->text + len, sizeof l->text - len, "%s%s", len > 0 ? ", " : "", name);
	}
}

static const char *namelist_str(const struct namelist *l, char *out, size_t len)
{
	if (l->n > CHECK_NAMES_SHOWN)
		snprintf(out, len, "%s and %zu more", l->text, l->n - CHECK_NAMES_SHOWN);
	else
		snprintf(out, len, "%s", l->text);
	return out;
}

/* Prints the verdict line and returns its exit code. */
static int check_out(int code, const char *msg, const char *perf)
{
	printf("VIGIL %s - %s%s%s\n", check_names[code], msg, perf != NULL ? " | " : "", perf != NULL ? perf : "");
	fflush(stdout);
	return code;
}

static int check_usage_error(void)
{
	return check_out(CHECK_UNKNOWN, "invalid arguments (see vigilctl check --help)", NULL);
}

/* The scanner tick from heartbeat-monitor-metrics.json, else 0.1 s. */
static double check_tick_seconds(const struct common *c)
{
	json_t *docs[METRICS_DOCS];
	double tick = 0.1;
	if (ctl_load_metrics("check", c, docs, true) > 0) {
		json_t *t = json_object_get(docs[0], "tick_seconds");
		if (json_is_number(t) && json_number_value(t) > 0 && json_number_value(t) <= 3600)
			tick = json_number_value(t);
	}
	for (int i = 0; i < METRICS_DOCS; i++)
		json_decref(docs[i]);
	return tick;
}

/* What `vigilctl check --help` prints after the usage line. */
static void check_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "Prints one line in the monitoring-plugin convention (Nagios, Icinga,\n"
	       "Kubernetes exec probes, cron) and exits with its status:\n"
	       "  VIGIL OK - 12 workers, 0 zombies, min health 95 | workers=12 zombies=0 min_health=95 breakers_open=0\n"
	       "\n"
	       "  2 CRITICAL  the segment does not exist, no live vigild is attached to it,\n"
	       "              vigild is not ticking (the header's tick counter did not move\n"
	       "              within two scanner ticks, at least %d ms), or more than\n"
	       "              --max-zombies N zombies (default 0)\n"
	       "  1 WARNING   a worker's health is below --min-health H (default %d;\n"
	       "              101 flags every worker), a circuit breaker is open, 1..N\n"
	       "              zombies when --max-zombies N allows them, or (with\n"
	       "              --max-stale S) a worker has not beaten for more than S seconds\n"
	       "  0 OK        none of these\n"
	       "  3 UNKNOWN   cannot tell: bad arguments, or a segment that cannot be read\n"
	       "              (another owner, another ABI)\n"
	       "The reasons follow the counts, with up to %d worker ids or types each.\n"
	       "min_health is U when no worker has been scored yet.\n",
	       CHECK_TICK_WAIT_MIN_MS, CHECK_MIN_HEALTH_DEFAULT, CHECK_NAMES_SHOWN);
}

int ctl_cmd_check(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"max-zombies", required_argument, NULL, 'z'},
		{"min-health", required_argument, NULL, 'm'},
		{"max-stale", required_argument, NULL, 's'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"check", ":h", opts, check_help, NULL};
	long max_zombies = 0, min_health = CHECK_MIN_HEALTH_DEFAULT;
	double max_stale = 0;
	char rb[300];
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'z':
			if (!ctl_parse_int(optarg, 0, INT_MAX, &max_zombies)) {
				fprintf(stderr, "vigilctl check: invalid --max-zombies '%s': want an integer >= 0\n",
					ctl_render_arg(optarg, rb, sizeof rb));
				return check_usage_error();
			}
			break;
		case 'm':
			if (!ctl_parse_int(optarg, 0, 101, &min_health)) {
				fprintf(stderr, "vigilctl check: invalid --min-health '%s': want an integer 0..101\n",
					ctl_render_arg(optarg, rb, sizeof rb));
				return check_usage_error();
			}
			break;
		case 's':
			if (!ctl_parse_seconds(optarg, 0, 1e9, &max_stale) || max_stale <= 0) {
				fprintf(stderr, "vigilctl check: invalid --max-stale '%s': want a number of seconds > 0\n",
					ctl_render_arg(optarg, rb, sizeof rb));
				return check_usage_error();
			}
			break;
		case CTL_OPT_HELP: return EXIT_OK;
		default:
			ctl_bad_option("check", opt, argv);
			return check_usage_error();
		}
	}
	if (ctl_no_operands("check", argc, argv) != EXIT_OK)
		return check_usage_error();
	if (ctl_resolve(c) != EXIT_OK)
		return check_out(CHECK_UNKNOWN, "cannot resolve the home or the segment name", NULL);

	char msg[8192];
	struct vigil_segment seg;
	char err[768] = "";
	int rc = vigil_segment_open(&seg, c->shm, 1, VIGILCTL_SHM_MODE, false, false, err, sizeof err);
	if (rc == -ENOENT) {
		snprintf(msg, sizeof msg, "no segment %s: vigild is not running for %s", c->shm, c->home);
		return check_out(CHECK_CRITICAL, msg, NULL);
	}
	if (rc < 0) {
		snprintf(msg, sizeof msg, "segment %s: %s", c->shm, err[0] != '\0' ? err : vigil_strerror(rc));
		return check_out(CHECK_UNKNOWN, msg, NULL);
	}
	pid_t sp = ctl_supervisor_alive(&seg);
	if (sp == 0) {
		vigil_segment_close(&seg);
		snprintf(msg, sizeof msg, "vigild is not running (no live supervisor on segment %s)", c->shm);
		return check_out(CHECK_CRITICAL, msg, NULL);
	}

	/* Liveness: the scanner bumps supervisor_ticks every tick. */
	double tick = check_tick_seconds(c);
	double wait_ms = 2 * tick * 1000.0;
	if (wait_ms < CHECK_TICK_WAIT_MIN_MS)
		wait_ms = CHECK_TICK_WAIT_MIN_MS;
	if (wait_ms > CHECK_TICK_WAIT_MAX_MS)
		wait_ms = CHECK_TICK_WAIT_MAX_MS;
	uint64_t t0 = atomic_load_explicit(&seg.hdr->supervisor_ticks, memory_order_relaxed);
	uint64_t deadline = vigil_mono_ns() + (uint64_t)(wait_ms * 1e6);
	bool ticking = false;
	while (!ticking) {
		ticking = atomic_load_explicit(&seg.hdr->supervisor_ticks, memory_order_relaxed) != t0;
		if (ticking || vigil_mono_ns() >= deadline)
			break;
		ctl_sleep_ms(5);
	}
	if (!ticking) {
		vigil_segment_close(&seg);
		char pb[24];
		snprintf(msg, sizeof msg, "vigild (pid %s) is not ticking: no scan in %.1f s", ctl_pid_text(sp, pb),
			 wait_ms / 1000.0);
		return check_out(CHECK_CRITICAL, msg, NULL);
	}

	size_t workers = 0, zombies = 0;
	int lowest = -1;
	struct namelist zl, low, stale, brk;
	memset(&zl, 0, sizeof zl);
	memset(&low, 0, sizeof low);
	memset(&stale, 0, sizeof stale);
	memset(&brk, 0, sizeof brk);
	uint64_t now_ms = vigil_unix_ms();
	for (uint32_t i = 0; i < seg.slots; i++) {
		struct row r;
		if (!ctl_read_slot(&seg, i, &r))
			continue;
		workers++;
		if (strcmp(r.state, "zombie") == 0) {
			zombies++;
			namelist_add(&zl, r.id);
		}
		if (r.health >= 0) {
			if (lowest < 0 || r.health < lowest)
				lowest = r.health;
			if (r.health < min_health) {
				char item[340];
				snprintf(item, sizeof item, "%s (%d)", r.id, r.health);
				namelist_add(&low, item);
			}
		}
		if (max_stale > 0 && r.last_seen_ms != 0 && now_ms > r.last_seen_ms &&
		    (double)(now_ms - r.last_seen_ms) > max_stale * 1000.0) {
			char item[340];
			snprintf(item, sizeof item, "%s (%.1f s)", r.id, (double)(now_ms - r.last_seen_ms) / 1000.0);
			namelist_add(&stale, item);
		}
	}
	vigil_segment_close(&seg);

	char open_types[CHECK_NAMES_SHOWN][VIGIL_ID_MAX + 1];
	size_t nopen = 0;
	int bfd = ctl_open_home_dir(c, "coordination/circuit-breakers", false);
	if (bfd >= 0) {
		nopen = ctl_read_open_breakers(bfd, open_types, CHECK_NAMES_SHOWN);
		close(bfd);
		for (size_t i = 0; i < nopen; i++)
			namelist_add(&brk, i < CHECK_NAMES_SHOWN ? open_types[i] : "");
	}

	int code = CHECK_OK;
	char health_s[16], reasons[1600] = "", names[600];
	if (lowest >= 0)
		snprintf(health_s, sizeof health_s, "%d", lowest);
	else
		snprintf(health_s, sizeof health_s, "U");
	size_t rl = 0;
#define REASON(...) (rl += (size_t)snprintf(reasons + rl, rl < sizeof reasons ? sizeof reasons - rl : 0, __VA_ARGS__), \
		     rl = rl < sizeof reasons ? rl : sizeof reasons - 1)
	if (zombies > (size_t)max_zombies) {
		code = CHECK_CRITICAL;
		REASON("; %zu zombie%s (more than %ld): %s", zombies, zombies == 1 ? "" : "s", max_zombies,
		       namelist_str(&zl, names, sizeof names));
	} else if (zombies > 0) {
		code = CHECK_WARNING;
		REASON("; %zu zombie%s (at most %ld allowed): %s", zombies, zombies == 1 ? "" : "s", max_zombies,
		       namelist_str(&zl, names, sizeof names));
	}
	if (low.n > 0) {
		if (code < CHECK_WARNING)
			code = CHECK_WARNING;
		REASON("; %zu below health %ld: %s", low.n, min_health, namelist_str(&low, names, sizeof names));
	}
	if (stale.n > 0) {
		if (code < CHECK_WARNING)
			code = CHECK_WARNING;
		REASON("; %zu silent for more than %g s: %s", stale.n, max_stale, namelist_str(&stale, names, sizeof names));
	}
	if (brk.n > 0) {
		if (code < CHECK_WARNING)
			code = CHECK_WARNING;
		REASON("; %zu breaker%s open: %s", brk.n, brk.n == 1 ? "" : "s", namelist_str(&brk, names, sizeof names));
	}
#undef REASON
	char perf[256];
	snprintf(msg, sizeof msg, "%zu worker%s, %zu zombie%s, min health %s%s", workers, workers == 1 ? "" : "s",
		 zombies, zombies == 1 ? "" : "s", lowest >= 0 ? health_s : "-", reasons);
	snprintf(perf, sizeof perf, "workers=%zu zombies=%zu min_health=%s breakers_open=%zu", workers, zombies,
		 health_s, nopen);
	return check_out(code, msg, perf);
}

