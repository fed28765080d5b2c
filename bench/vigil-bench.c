/*
 * vigil-bench - vigil's benchmark harness (issue 5).
 *
 *   vigil-bench [--quick] [--scenario NAME[,NAME...]] [--out DIR]
 *               [--vigild PATH] [--vigilctl PATH] [--worker PATH]
 *               [--fleet-sizes N,N] [--fleet-seconds S] [--inject K]
 *               [--scan-sizes N,N,...] [--runbook-sizes N,N]
 *               [--restart-iterations N] [--verbose]
 *
 * Scenarios, in order: beat, scan, fleet, restart, runbook (default: all).
 * Writes DIR/result-<UTC date>.json (machine, kernel, date, git commit,
 * every figure, the targets of issue 5 with met/missed), DIR/summary.md,
 * and, when gnuplot is installed, DIR/beat.png and DIR/scan.png.
 * --quick runs every scenario at tiny sizes in well under a minute (the
 * test suite's smoke test; no figure is judged there).
 *
 * See bench/README.md for what each scenario measures and why it is fair.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "vigil.h"

#ifndef VIGIL_SOURCE_DIR
#define VIGIL_SOURCE_DIR ""
#endif
#ifndef VIGIL_BENCH_PLOT
#define VIGIL_BENCH_PLOT ""
#endif

#define SC_BEAT 0x1u
#define SC_SCAN 0x2u
#define SC_FLEET 0x4u
#define SC_RESTART 0x8u
#define SC_RUNBOOK 0x10u
#define SC_ALL 0x1fu

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vigil-bench [--quick] [--scenario NAME[,NAME...]] [--out DIR]\n"
		"                   [--vigild PATH] [--vigilctl PATH] [--worker PATH]\n"
		"                   [--fleet-sizes N[,N...]] [--fleet-seconds S] [--inject K] [--fleet-no-default]\n"
		"                   [--spec-refresh S]\n"
		"                   [--scan-sizes N[,N...]] [--runbook-sizes N[,N...]]\n"
		"                   [--restart-iterations N] [--verbose]\n"
		"\n"
		"Scenarios: beat, scan, fleet, restart, runbook, all (default).\n"
		"  --quick          every scenario at tiny sizes, in under a minute (smoke test)\n"
		"  --out DIR        where result-<date>.json, summary.md and the plots go (default .)\n"
		"  --vigild/--vigilctl/--worker PATH\n"
		"                   binaries (default: next to the build dir of vigil-bench, i.e.\n"
		"                   <dir of vigil-bench>/../vigild, then <dir>/vigild, then PATH)\n"
		"  --fleet-sizes    worker counts of the fleet scenario (default 1000,5000,20000; quick 50)\n"
		"  --fleet-seconds  steady-state window (default 60; quick 3)\n"
		"  --inject K       workers SIGKILLed and as many SIGSTOPped (default 10; quick 2)\n"
		"  --fleet-no-default  skip the largest fleet's extra run under the runbook default policy\n"
		"  --spec-refresh S spec_refresh_seconds in the fleet's heartbeat policy (default: vigild's, 60)\n"
		"  --scan-sizes     slot counts (default 1000,10000,100000,1000000; quick 1000,10000)\n"
		"  --runbook-sizes  spec files for the runbook loop (default 100,1000; quick 20)\n"
		"  --restart-iterations  restarts measured per tick setting (default 40; quick 3)\n"
		"  --verbose        progress of the slow waits on stderr\n"
		"Run as a user who may create /dev/shm objects; the machine should be quiet.\n");
}

static int parse_list(const char *s, uint32_t *out, int max)
{
	int n = 0;
	char *dup = strdup(s), *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t != NULL && n < max; t = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v = strtoul(t, &end, 10);
		if (*end != '\0' || v == 0 || v > VIGIL_SLOTS_MAX) {
			free(dup);
			return -1;
		}
		out[n++] = (uint32_t)v;
	}
	free(dup);
	return n;
}

static unsigned parse_scenarios(const char *s)
{
	unsigned m = 0;
	char *dup = strdup(s), *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "beat") == 0)
			m |= SC_BEAT;
		else if (strcmp(t, "scan") == 0)
			m |= SC_SCAN;
		else if (strcmp(t, "fleet") == 0)
			m |= SC_FLEET;
		else if (strcmp(t, "restart") == 0)
			m |= SC_RESTART;
		else if (strcmp(t, "runbook") == 0)
			m |= SC_RUNBOOK;
		else if (strcmp(t, "all") == 0)
			m |= SC_ALL;
		else {
			free(dup);
			return 0;
		}
	}
	free(dup);
	return m;
}

/* <dir of our executable>/../name, then <dir>/name, then PATH. */
static void default_binary(const char *name, char *out)
{
	char exe[BENCH_PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	out[0] = '\0';
	if (n > 0) {
		exe[n] = '\0';
		char *dir = dirname(exe);
		char cand[BENCH_PATH_MAX * 2];
		snprintf(cand, sizeof cand, "%s/../%s", dir, name);
		if (access(cand, X_OK) == 0) {
			char *r = realpath(cand, NULL);
			int w = snprintf(out, BENCH_PATH_MAX, "%s", r ? r : cand);
			free(r);
			if (w < BENCH_PATH_MAX)
				return;
		}
		snprintf(cand, sizeof cand, "%s/%s", dir, name);
		if (access(cand, X_OK) == 0 && snprintf(out, BENCH_PATH_MAX, "%s", cand) < BENCH_PATH_MAX)
			return;
	}
	bench_which(name, out);
}

static void absolutize(char *path)
{
	if (path[0] == '\0' || path[0] == '/')
		return;
	char *r = realpath(path, NULL);
	if (r != NULL) {
		snprintf(path, BENCH_PATH_MAX, "%s", r);
		free(r);
	}
}

/* ---- machine --------------------------------------------------------------------- */

static char *first_line_of_cmd(const char *const *argv)
{
	char out[BENCH_PATH_MAX + 32];
	snprintf(out, sizeof out, "%s/cmd.out", g_opts.tmproot);
	unlink(out);
	struct bench_spawn sp = {.argv = argv, .stdout_path = out, .pgroup = -1};
	int st;
	bench_run_timed(&sp, 10000, &st);
	char *t = bench_read_file(out, NULL);
	unlink(out);
	if (t == NULL || st != 0) {
		free(t);
		return NULL;
	}
	char *nl = strchr(t, '\n');
	if (nl)
		*nl = '\0';
	return t;
}

static json_t *machine_json(const char *date)
{
	json_t *m = json_object();
	char *ci = bench_read_file("/proc/cpuinfo", NULL);
	char model[256] = "unknown";
	if (ci != NULL) {
		char *p = strstr(ci, "model name");
		if (p != NULL && (p = strchr(p, ':')) != NULL) {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			size_t l = strcspn(p, "\n");
			snprintf(model, sizeof model, "%.*s", (int)l, p);
		}
		free(ci);
	}
	json_object_set_new(m, "cpu_model", json_string(model));
	json_object_set_new(m, "nproc", json_integer(bench_ncpus()));
	struct utsname u;
	if (uname(&u) == 0) {
		char k[600];
		snprintf(k, sizeof k, "%s %s %s %s", u.sysname, u.release, u.version, u.machine);
		json_object_set_new(m, "kernel", json_string(k));
		json_object_set_new(m, "hostname", json_string(u.nodename));
	}
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	json_object_set_new(m, "memory_mib", json_integer((json_int_t)((double)pages * psz / 1048576.0)));
	json_object_set_new(m, "date", json_string(date));
	char *commit = NULL, *dirty = NULL;
	char git[BENCH_PATH_MAX];
	/* VIGIL_BENCH_COMMIT wins when set: for a build from an export (`git
	 * archive`), where git would find no repository, or a parent's. */
	const char *env_commit = getenv("VIGIL_BENCH_COMMIT");
	if (env_commit != NULL && env_commit[0] != '\0') {
		commit = strdup(env_commit);
		json_object_set_new(m, "git_commit_from", json_string("VIGIL_BENCH_COMMIT"));
	} else if (VIGIL_SOURCE_DIR[0] != '\0' && bench_which("git", git)) {
		const char *a1[] = {git, "-C", VIGIL_SOURCE_DIR, "rev-parse", "HEAD", NULL};
		commit = first_line_of_cmd(a1);
		const char *a2[] = {git, "-C", VIGIL_SOURCE_DIR, "status", "--porcelain", "--untracked-files=no", NULL};
		dirty = first_line_of_cmd(a2);
	}
	json_object_set_new(m, "git_commit", json_string(commit && commit[0] ? commit : "unknown"));
	json_object_set_new(m, "git_dirty",
			    commit && env_commit == NULL ? json_boolean(dirty != NULL && dirty[0] != '\0') : json_null());
	free(commit);
	free(dirty);
#ifdef __OPTIMIZE__
	json_object_set_new(m, "optimized_build", json_true());
#else
	json_object_set_new(m, "optimized_build", json_false());
#endif
#ifdef HAVE_SYSTEMD
	json_object_set_new(m, "libsystemd", json_true());
#else
	json_object_set_new(m, "libsystemd", json_false());
#endif
	json_object_set_new(m, "loadavg_1min_at_start", json_real(bench_loadavg1()));
	return m;
}

/* ---- targets (issue 5) --------------------------------------------------------------- */

static json_t *find_mech(json_t *beat, const char *name)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(beat, "mechanisms"), i, m)
	{
		const char *n = json_string_value(json_object_get(m, "name"));
		if (n && strcmp(n, name) == 0)
			return m;
	}
	return NULL;
}

static double mech_median(json_t *beat, const char *name)
{
	return bench_json_num(json_object_get(find_mech(beat, name), "ns_per_beat"), "median");
}

static void target(json_t *arr, const char *what, const char *goal, double measured, const char *unit, int met,
		   const char *note)
{
	json_t *t = json_object();
	json_object_set_new(t, "target", json_string(what));
	json_object_set_new(t, "goal", json_string(goal));
	json_object_set_new(t, "measured", isfinite(measured) ? json_real(measured) : json_null());
	json_object_set_new(t, "unit", json_string(unit));
	json_object_set_new(t, "met", met < 0 || !isfinite(measured) ? json_null() : json_boolean(met));
	if (note)
		json_object_set_new(t, "note", json_string(note));
	json_array_append_new(arr, t);
}

static json_t *targets_json(json_t *sc)
{
	json_t *a = json_array();
	json_t *beat = json_object_get(sc, "beat");
	if (beat) {
		double vb = mech_median(beat, "vigil_beat"), bare = mech_median(beat, "bare_store"),
		       sd = mech_median(beat, "sd_notify");
		target(a, "vigil_beat median", "<= 1 ns", vb, "ns", vb <= 1.0, NULL);
		target(a, "vigil_beat vs bare store", "<= 4x", vb / bare, "x", vb / bare <= 4.0, NULL);
		target(a, "sd_notify vs vigil_beat", ">= 5000x", sd / vb, "x", sd / vb >= 5000.0,
		       isfinite(sd) ? NULL : "sd_notify not measured (no libsystemd)");
	}
	json_t *scan = json_object_get(sc, "scan");
	if (scan) {
		double worst = NAN, at100k = NAN;
		size_t i;
		json_t *s;
		json_array_foreach(json_object_get(scan, "sizes"), i, s)
		{
			double r = bench_json_num(s, "ratio_scan_vs_bare");
			if (isfinite(r) && (!isfinite(worst) || r > worst))
				worst = r;
			if (bench_json_num(s, "slots") == 100000)
				at100k = bench_json_num(json_object_get(s, "scanner_tick_us"), "median") / 1000.0;
		}
		target(a, "scan vs bare read, worst size", "<= 2x", worst, "x", worst <= 2.0, NULL);
		target(a, "scan tick at 100,000 slots", "<= 0.2 ms", at100k, "ms", at100k <= 0.2,
		       isfinite(at100k) ? NULL : "100,000 slots not in this run");
	}
	json_t *fleet = json_object_get(sc, "fleet");
	if (fleet) {
		json_t *runs = json_object_get(fleet, "runs");
		json_t *big = NULL;
		size_t i;
		json_t *r;
		json_t *dflt = NULL;
		json_array_foreach(runs, i, r)
		{
			const char *var = json_string_value(json_object_get(r, "variant"));
			if (var != NULL && strcmp(var, "runbook_default_policy") == 0) {
				if (json_object_get(r, "steady"))
					dflt = r;
				continue;
			}
			if (json_object_get(r, "steady") &&
			    (big == NULL || bench_json_num(r, "workers") > bench_json_num(big, "workers")))
				big = r;
		}
		if (big != NULL) {
			char what[160];
			double nw = bench_json_num(big, "workers");
			json_t *st = json_object_get(big, "steady");
			json_t *inj = json_object_get(big, "inject");
			snprintf(what, sizeof what, "vigild CPU, %.0f workers at 10 Hz, snapshots on", nw);
			double cpu = bench_json_num(st, "vigild_cpu_pct_of_one_core");
			target(a, what, "<= 3% of one core (5,000 workers)", cpu, "% of one core", nw >= 5000 ? cpu <= 3.0 : -1,
			       nw >= 5000 ? NULL : "fewer than 5,000 workers in this run: not judged");
			if (dflt != NULL) {
				double nd = bench_json_num(dflt, "workers");
				double c2 = bench_json_num(json_object_get(dflt, "steady"), "vigild_cpu_pct_of_one_core");
				snprintf(what, sizeof what,
					 "vigild CPU, %.0f workers at 10 Hz, runbook default policy (30/120/300 s)", nd);
				target(a, what, "<= 3% of one core (5,000 workers)", c2, "% of one core",
				       nd >= 5000 ? c2 <= 3.0 : -1,
				       "same fleet, progress constant: specs rewritten only when they change");
			}
			double ov = bench_json_num(st, "tick_overruns");
			target(a, "tick overruns in the window", "0", ov, "ticks", ov == 0, NULL);
			double worst = NAN;
			json_t *v = json_object_get(inj, "stop_detected_minus_due_ms");
			const char *k;
			json_t *x;
			json_object_foreach(v, k, x)
			{
				double mx = bench_json_num(x, "max");
				if (isfinite(mx) && (!isfinite(worst) || mx > worst))
					worst = mx;
			}
			target(a, "verdict detected - due, worst", "<= one tick (100 ms, +1 ms stamp resolution), never before due",
			       worst, "ms", worst <= 101.0 && bench_json_num(inj, "verdicts_before_due") == 0, NULL);
			double fv = bench_json_num(inj, "false_verdicts");
			target(a, "false verdicts among untouched workers", "0", fv, "", fv == 0, NULL);
			double p99 = bench_json_num(json_object_get(inj, "kill_to_worker_exited_us_stamp_ms"), "p99");
			bool us = isfinite(p99);
			if (!us)
				p99 = bench_json_num(json_object_get(inj, "kill_to_worker_exited_ms"), "p99");
			target(a, "death seen (SIGKILL -> worker_exited) p99", "<= 2 ms", p99, "ms", p99 <= 2.0,
			       us ? "timestamp_us; SIGKILL -> gone (the victim's own exit) is split out in the fleet table"
				  : "event timestamps have 1 ms resolution");
			double p99v = bench_json_num(json_object_get(inj, "death_to_worker_exited_ms"), "p99");
			if (isfinite(p99v))
				target(a, "death seen by vigild (process gone -> worker_exited) p99", "<= 5 ms", p99v, "ms",
				       p99v <= 5.0, "gone = the harness's own pidfd, SCHED_FIFO thread");
			double apw = bench_json_num(st, "anon_bytes_per_worker");
			target(a, "vigild memory per monitored worker (anon RSS delta / workers)", "<= 1 KiB", apw, "bytes",
			       apw <= 1024.0, NULL);
		}
	}
	json_t *rs = json_object_get(sc, "restart");
	if (rs) {
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(rs, "runs"), i, r)
		{
			char what[160];
			snprintf(what, sizeof what, "restart latency beyond delay p99 (tick %.3g s)",
				 bench_json_num(r, "tick_seconds"));
			double p99 = bench_json_num(json_object_get(r, "beyond_delay_ms"), "p99");
			target(a, what, "<= 20 ms", p99, "ms", p99 <= 20.0, NULL);
		}
	}
	target(a, "segment bytes per slot, hot part", "64 bytes", VIGIL_HOT_SIZE, "bytes", VIGIL_HOT_SIZE == 64,
	       "by construction (vigil.h ABI); the whole slot is 64 hot + 256 cold + 32 view = 352 bytes");
	return a;
}

/* ---- markdown ---------------------------------------------------------------------------- */

static const char *fmtn(char *buf, double v)
{
	if (!isfinite(v))
		return "n/a";
	double a = fabs(v);
	if (a < 1)
		snprintf(buf, 32, "%.3f", v);
	else if (a < 100)
		snprintf(buf, 32, "%.2f", v);
	else if (a < 10000)
		snprintf(buf, 32, "%.1f", v);
	else
		snprintf(buf, 32, "%.0f", v);
	return buf;
}

#define F(v) fmtn((char[32]){0}, (v))

static void md_machine(FILE *f, json_t *scen)
{
	json_t *m = json_object_get(scen, "machine_during");
	if (m == NULL)
		return;
	fprintf(f, "\nMachine during this scenario (%s s): all CPUs %s%% busy (this harness and its workers included), "
		   "%s%% stolen by the hypervisor, load average %s at the end.\n",
		F(bench_json_num(m, "seconds")), F(bench_json_num(m, "busy_pct_all_cpus")),
		F(bench_json_num(m, "steal_pct")), F(bench_json_num(m, "loadavg_1min_at_end")));
}

static void md_beat(FILE *f, json_t *beat)
{
	fprintf(f, "\n## 1. Beat cost (worker on CPU %s, receiver on CPU %s)\n\n",
		json_is_integer(json_object_get(beat, "worker_cpu")) ? "0" : "?",
		json_is_integer(json_object_get(beat, "receiver_cpu")) ? "1" : "(unpinned)");
	fprintf(f, "| mechanism | ns/beat (median) | min | max | x bare store | x bare store (minima) | x vigil_beat | reps x beats |\n");
	fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(beat, "mechanisms"), i, m)
	{
		const char *name = json_string_value(json_object_get(m, "name"));
		if (json_object_get(m, "skipped")) {
			fprintf(f, "| %s | skipped: %s | | | | | | |\n", name,
				json_string_value(json_object_get(m, "skipped")));
			continue;
		}
		json_t *s = json_object_get(m, "ns_per_beat");
		fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %lld x %lld |\n", name, F(bench_json_num(s, "median")),
			F(bench_json_num(s, "min")), F(bench_json_num(s, "max")),
			F(bench_json_num(m, "ratio_vs_bare_store")), F(bench_json_num(m, "ratio_vs_bare_store_of_minima")),
			F(bench_json_num(m, "ratio_vs_vigil_beat")),
			(long long)bench_json_num(m, "reps"), (long long)bench_json_num(m, "beats_per_rep"));
	}
}

static void md_scan(FILE *f, json_t *scan)
{
	fprintf(f, "\n## 2. Scan cost per tick (all slots ACTIVE; beating: every beat word rewritten by the other CPU "
		   "between ticks; idle: no beat changed)\n\n");
	fprintf(f, "| slots | scanner ns/slot | scanner us/tick | bare read ns/slot | scan / bare | beats credited/tick | "
		   "idle: scanner ns/slot | idle: bare ns/slot | idle: scan / bare |\n");
	fprintf(f, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(scan, "sizes"), i, s)
	{
		if (json_object_get(s, "error")) {
			fprintf(f, "| %.0f | error: %s | | | | |\n", bench_json_num(s, "slots"),
				json_string_value(json_object_get(s, "error")));
			continue;
		}
		fprintf(f, "| %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n", bench_json_num(s, "slots"),
			F(bench_json_num(json_object_get(s, "scanner_ns_per_slot"), "median")),
			F(bench_json_num(json_object_get(s, "scanner_tick_us"), "median")),
			F(bench_json_num(json_object_get(s, "bare_ns_per_slot"), "median")),
			F(bench_json_num(s, "ratio_scan_vs_bare")), F(bench_json_num(s, "beats_credited_per_tick")),
			F(bench_json_num(json_object_get(s, "idle_scanner_ns_per_slot"), "median")),
			F(bench_json_num(json_object_get(s, "idle_bare_ns_per_slot"), "median")),
			F(bench_json_num(s, "idle_ratio_scan_vs_bare")));
	}
}

static void md_fleet(FILE *f, json_t *fleet)
{
	fprintf(f, "\n## 3. Fleet under the real vigild (workers beat at 10 Hz; tick 0.1 s; snapshots every 1 s)\n\n");
	fprintf(f, "| workers | policy (interval/timeout/zombie s) | window s | vigild CPU %% of one core | action thread %% | "
		   "scanner %% | RSS kB (base -> end) | anon B/worker | specs written/s | action CPU us/spec | "
		   "beats credited/s (sent) | ticks | overruns | scan last / max us | machine busy %% |\n");
	fprintf(f, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(fleet, "runs"), i, r)
	{
		json_t *st = json_object_get(r, "steady");
		json_t *pol = json_object_get(r, "policy");
		char pdesc[96];
		snprintf(pdesc, sizeof pdesc, "%g/%g/%g, progress %s", bench_json_num(pol, "heartbeat_interval_seconds"),
			 bench_json_num(pol, "heartbeat_timeout_seconds"), bench_json_num(pol, "zombie_threshold_seconds"),
			 json_string_value(json_object_get(r, "worker_progress")) ? json_string_value(json_object_get(r, "worker_progress")) : "?");
		if (st == NULL) {
			json_t *sk = json_object_get(r, "skipped");
			fprintf(f, "| %.0f | %s | %s: %s | | | | | | | | | | | | |\n", bench_json_num(r, "workers"), pdesc,
				sk ? "skipped" : "error", json_string_value(sk ? sk : json_object_get(r, "error")));
			continue;
		}
		json_t *rss = json_object_get(st, "rss_kb");
		fprintf(f, "| %.0f | %s | %s | %s | %s | %s | %.0f -> %.0f | %s | %s | %s | %s (%s) | %.0f | %.0f | %s / %s | %s |\n",
			bench_json_num(r, "workers"), pdesc, F(bench_json_num(st, "elapsed_seconds")),
			F(bench_json_num(st, "vigild_cpu_pct_of_one_core")), F(bench_json_num(st, "action_thread_cpu_pct")),
			F(bench_json_num(st, "other_threads_cpu_pct")), bench_json_num(rss, "baseline"),
			bench_json_num(rss, "end"), F(bench_json_num(st, "anon_bytes_per_worker")),
			F(bench_json_num(st, "specs_written_per_second")),
			F(bench_json_num(st, "action_cpu_us_per_spec_written")),
			F(bench_json_num(st, "heartbeats_credited_per_second")),
			F(bench_json_num(st, "heartbeats_expected_per_second")), bench_json_num(st, "ticks"),
			bench_json_num(st, "tick_overruns"), F(bench_json_num(st, "scan_time_last_us")),
			F(bench_json_num(st, "scan_time_max_us_since_start")),
			F(bench_json_num(st, "machine_busy_pct_all_cpus")));
	}
	fprintf(f, "\nInjection (SIGKILL k and SIGSTOP k workers at one instant), in ms:\n\n");
	fprintf(f, "| workers | measure | n | p50 | p99 | max |\n| ---: | --- | ---: | ---: | ---: | ---: |\n");
	json_array_foreach(json_object_get(fleet, "runs"), i, r)
	{
		json_t *inj = json_object_get(r, "inject");
		if (inj == NULL)
			continue;
		double nw = bench_json_num(r, "workers");
		struct {
			const char *label;
			json_t *s;
		} rows[] = {
			{"SIGKILL -> worker_exited (1 ms stamps)", json_object_get(inj, "kill_to_worker_exited_ms")},
			{"SIGKILL -> worker_exited (timestamp_us)", json_object_get(inj, "kill_to_worker_exited_us_stamp_ms")},
			{"  of which SIGKILL -> gone (harness's own pidfd)", json_object_get(inj, "kill_to_death_own_pidfd_ms")},
			{"  of which gone -> seen by vigild", json_object_get(inj, "death_to_worker_exited_ms")},
			{"worker_exited: in its file - stamp", json_object_get(inj, "worker_exited_in_file_after_stamp_ms")},
			{"zombie_detected: in its file - stamp", json_object_get(inj, "zombie_in_file_after_stamp_ms")},
			{"heartbeat_missed: detected - due", json_object_get(json_object_get(inj, "stop_detected_minus_due_ms"), "heartbeat_missed")},
			{"heartbeat_timeout: detected - due", json_object_get(json_object_get(inj, "stop_detected_minus_due_ms"), "heartbeat_timeout")},
			{"zombie_detected: detected - due", json_object_get(json_object_get(inj, "stop_detected_minus_due_ms"), "zombie_detected")},
			{"last_seen - SIGSTOP (sanity)", json_object_get(inj, "last_seen_minus_sigstop_ms")},
		};
		for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
			fprintf(f, "| %.0f | %s | %.0f | %s | %s | %s |\n", nw, rows[k].label, bench_json_num(rows[k].s, "n"),
				F(bench_json_num(rows[k].s, "p50")), F(bench_json_num(rows[k].s, "p99")),
				F(bench_json_num(rows[k].s, "max")));
		fprintf(f, "| %.0f | zombies in the file by SIGSTOP + zombie + 2 s (the old fixed read) / stamped by then | "
			   "%.0f / %.0f | | | |\n",
			nw, bench_json_num(inj, "zombies_in_file_by_sigstop_plus_zombie_plus_2s"),
			bench_json_num(inj, "zombies_stamped_by_sigstop_plus_zombie_plus_2s"));
		fprintf(f, "| %.0f | verdicts before due / false verdicts (untouched) / kills unreported / stops not "
			   "zombie / host_stall events | %.0f / %.0f / %.0f / %.0f / %.0f | | | |\n",
			nw, bench_json_num(inj, "verdicts_before_due"), bench_json_num(inj, "false_verdicts"),
			bench_json_num(inj, "kills_not_reported"), bench_json_num(inj, "stops_not_declared_zombie"),
			bench_json_num(inj, "host_stall_suspected_events"));
	}
}

static void md_restart(FILE *f, json_t *rs)
{
	fprintf(f, "\n## 4. Restart latency (death -> first beat of the replacement, minus the configured 100 ms "
		   "delay), in ms\n\n");
	fprintf(f, "| tick s | restarts | beyond delay p50 | p99 | max | death -> first beat p50 | "
		   "death -> respawned, beyond delay, p50 | respawned -> first beat seen p50 |\n");
	fprintf(f, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(rs, "runs"), i, r)
	{
		json_t *b = json_object_get(r, "beyond_delay_ms");
		fprintf(f, "| %s | %.0f | %s | %s | %s | %s | %s | %s |\n", F(bench_json_num(r, "tick_seconds")),
			bench_json_num(r, "restarts_measured"), F(bench_json_num(b, "p50")), F(bench_json_num(b, "p99")),
			F(bench_json_num(b, "max")),
			F(bench_json_num(json_object_get(r, "death_to_first_beat_ms"), "p50")),
			F(bench_json_num(json_object_get(r, "death_to_registered_beyond_delay_ms"), "p50")),
			F(bench_json_num(json_object_get(r, "registered_to_first_beat_seen_ms"), "p50")));
	}
}

static void md_runbook(FILE *f, json_t *rb)
{
	fprintf(f, "\n## 5. The runbook's \"Check Heartbeat Status\" loop vs `vigilctl status` (median of 3)\n\n");
	fprintf(f, "| workers | runbook jq loop ms | per worker ms | vigilctl status ms | x faster | lines (loop / vigilctl) |\n");
	fprintf(f, "| ---: | ---: | ---: | ---: | ---: | ---: |\n");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(rb, "runs"), i, r)
	{
		if (json_object_get(r, "skipped") || json_object_get(r, "error")) {
			json_t *why = json_object_get(r, "skipped") ? json_object_get(r, "skipped") : json_object_get(r, "error");
			fprintf(f, "| %.0f | %s | | | | |\n", bench_json_num(r, "workers"), json_string_value(why));
			continue;
		}
		fprintf(f, "| %.0f | %s | %s | %s | %s | %.0f / %.0f |\n", bench_json_num(r, "workers"),
			F(bench_json_num(json_object_get(r, "runbook_loop_ms"), "median")),
			F(bench_json_num(r, "runbook_loop_ms_per_worker")),
			F(bench_json_num(json_object_get(r, "vigilctl_status_ms"), "median")),
			F(bench_json_num(r, "ratio_runbook_vs_vigilctl")), bench_json_num(r, "runbook_lines"),
			bench_json_num(r, "vigilctl_lines"));
	}
}

static void md_targets(FILE *f, json_t *targets)
{
	fprintf(f, "\n## Targets of issue 5\n\n| target | goal | measured | verdict |\n| --- | --- | ---: | --- |\n");
	size_t i;
	json_t *t;
	json_array_foreach(targets, i, t)
	{
		json_t *met = json_object_get(t, "met");
		const char *note = json_string_value(json_object_get(t, "note"));
		fprintf(f, "| %s | %s | %s %s | %s%s%s |\n", json_string_value(json_object_get(t, "target")),
			json_string_value(json_object_get(t, "goal")), F(bench_json_num(t, "measured")),
			json_string_value(json_object_get(t, "unit")),
			json_is_true(met) ? "met" : json_is_false(met) ? "**missed**" : "not judged", note ? "; " : "",
			note ? note : "");
	}
}

static int write_summary(const char *path, json_t *root)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	json_t *m = json_object_get(root, "machine");
	json_t *sc = json_object_get(root, "scenarios");
	fprintf(f, "# vigil-bench results\n\n");
	fprintf(f, "- command: `%s`\n", json_string_value(json_object_get(root, "command")));
	fprintf(f, "- mode: %s\n", json_is_true(json_object_get(root, "quick")) ? "quick (smoke sizes: not figures to quote)" : "full");
	fprintf(f, "- machine: %s, %.0f CPUs, %.0f MiB; kernel %s\n", json_string_value(json_object_get(m, "cpu_model")),
		bench_json_num(m, "nproc"), bench_json_num(m, "memory_mib"), json_string_value(json_object_get(m, "kernel")));
	fprintf(f, "- date: %s; git commit %s%s; load average (1 min) %.2f at start, %.2f at end\n",
		json_string_value(json_object_get(m, "date")), json_string_value(json_object_get(m, "git_commit")),
		json_is_true(json_object_get(m, "git_dirty")) ? " (with local changes)" : "",
		bench_json_num(m, "loadavg_1min_at_start"), bench_json_num(m, "loadavg_1min_at_end"));
	fprintf(f, "- total run time: %.0f s\n", bench_json_num(root, "run_seconds"));
	json_t *targets = json_object_get(root, "targets");
	if (targets && json_array_size(targets) > 0)
		md_targets(f, targets);
	static const struct {
		const char *name;
		void (*fn)(FILE *, json_t *);
	} md_tab[] = {{"beat", md_beat}, {"scan", md_scan}, {"fleet", md_fleet}, {"restart", md_restart}, {"runbook", md_runbook}};
	for (size_t i = 0; i < sizeof md_tab / sizeof md_tab[0]; i++) {
		json_t *x = json_object_get(sc, md_tab[i].name);
		if (x != NULL) {
			md_tab[i].fn(f, x);
			md_machine(f, x);
		}
	}
	const char *plot = json_string_value(json_object_get(root, "plots"));
	fprintf(f, "\n## Plots\n\n%s\n", plot ? plot : "none");
	return fclose(f) == 0 ? 0 : -errno;
}

/* ---- plots ------------------------------------------------------------------------------------ */

static const char *make_plots(const char *outdir, json_t *sc, char *note, size_t nlen)
{
	json_t *beat = json_object_get(sc, "beat"), *scan = json_object_get(sc, "scan");
	if (beat == NULL && scan == NULL) {
		snprintf(note, nlen, "no plot: neither beat nor scan ran");
		return note;
	}
	char path[BENCH_PATH_MAX * 2];
	if (beat) {
		snprintf(path, sizeof path, "%s/beat.dat", outdir);
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "# mechanism median_ns min_ns max_ns\n");
			size_t i;
			json_t *m;
			json_array_foreach(json_object_get(beat, "mechanisms"), i, m)
			{
				json_t *s = json_object_get(m, "ns_per_beat");
				if (s == NULL)
					continue;
				fprintf(f, "%s %.6g %.6g %.6g\n", json_string_value(json_object_get(m, "name")),
					bench_json_num(s, "median"), bench_json_num(s, "min"), bench_json_num(s, "max"));
			}
			fclose(f);
		}
	}
	if (scan) {
		snprintf(path, sizeof path, "%s/scan.dat", outdir);
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "# slots scanner_ns_per_slot bare_ns_per_slot idle_scanner_ns_per_slot idle_bare_ns_per_slot\n");
			size_t i;
			json_t *s;
			json_array_foreach(json_object_get(scan, "sizes"), i, s)
			{
				if (json_object_get(s, "error"))
					continue;
				fprintf(f, "%.0f %.6g %.6g %.6g %.6g\n", bench_json_num(s, "slots"),
					bench_json_num(json_object_get(s, "scanner_ns_per_slot"), "median"),
					bench_json_num(json_object_get(s, "bare_ns_per_slot"), "median"),
					bench_json_num(json_object_get(s, "idle_scanner_ns_per_slot"), "median"),
					bench_json_num(json_object_get(s, "idle_bare_ns_per_slot"), "median"));
			}
			fclose(f);
		}
	}
	char gnuplot[BENCH_PATH_MAX];
	if (!bench_which("gnuplot", gnuplot)) {
		snprintf(note, nlen,
			 "no plot: gnuplot is not installed (apt-get install gnuplot-nox); the data is in %s next to this "
			 "file",
			 beat && scan ? "beat.dat and scan.dat" : beat ? "beat.dat" : "scan.dat");
		return note;
	}
	const char *script = VIGIL_BENCH_PLOT;
	if (script[0] == '\0' || !bench_exists(script)) {
		snprintf(note, nlen, "no plot: plot script %s not found; the data is in beat.dat and scan.dat",
			 script[0] ? script : "(none compiled in)");
		return note;
	}
	char expr[BENCH_PATH_MAX * 2 + 32];
	snprintf(expr, sizeof expr, "dir='%s'", outdir);
	char log[BENCH_PATH_MAX + 32];
	snprintf(log, sizeof log, "%s/gnuplot.log", g_opts.tmproot);
	const char *argv[] = {gnuplot, "-e", expr, script, NULL};
	struct bench_spawn sp = {.argv = argv, .stdout_path = log, .stderr_path = log, .pgroup = -1};
	int st;
	bench_run_timed(&sp, 60000, &st);
	if (st != 0) {
		char *t = bench_read_file(log, NULL);
		snprintf(note, nlen, "no plot: gnuplot failed: %.300s", t ? t : "");
		free(t);
		return note;
	}
	snprintf(note, nlen, "%s%s%s", beat ? "![beat cost per mechanism](beat.png)" : "", beat && scan ? "\n\n" : "",
		 scan ? "![scan cost per slot](scan.png)" : "");
	return note;
}

/* ---- self-check -------------------------------------------------------------------------------- */

/* Reports every "error" member under o (a scenario that could not run as
 * designed); returns how many.  Timing is never judged here. */
static int report_errors(json_t *o, const char *path)
{
	int n = 0;
	char sub[512];
	if (json_is_object(o)) {
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v)
		{
			if (strcmp(k, "error") == 0 && json_is_string(v)) {
				fprintf(stderr, "vigil-bench: %s: %s\n", path, json_string_value(v));
				n++;
				continue;
			}
			snprintf(sub, sizeof sub, "%s.%s", path, k);
			n += report_errors(v, sub);
		}
	} else if (json_is_array(o)) {
		size_t i;
		json_t *v;
		json_array_foreach(o, i, v)
		{
			snprintf(sub, sizeof sub, "%s[%zu]", path, i);
			n += report_errors(v, sub);
		}
	}
	return n;
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"quick", no_argument, NULL, 'q'},
		{"scenario", required_argument, NULL, 's'},
		{"out", required_argument, NULL, 'o'},
		{"vigild", required_argument, NULL, 'D'},
		{"vigilctl", required_argument, NULL, 'C'},
		{"worker", required_argument, NULL, 'W'},
		{"fleet-sizes", required_argument, NULL, 'F'},
		{"fleet-seconds", required_argument, NULL, 'S'},
		{"inject", required_argument, NULL, 'K'},
		{"fleet-no-default", no_argument, NULL, 'P'},
		{"spec-refresh", required_argument, NULL, 'Z'},
		{"scan-sizes", required_argument, NULL, 'N'},
		{"runbook-sizes", required_argument, NULL, 'R'},
		{"restart-iterations", required_argument, NULL, 'I'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *outdir = ".", *scen = "all", *fleet_s = NULL, *scan_s = NULL, *rb_s = NULL;
	double fleet_secs = -1;
	long inject = -1, iters = -1;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q': g_opts.quick = true; break;
		case 's': scen = optarg; break;
		case 'o': outdir = optarg; break;
		case 'D': snprintf(g_opts.vigild, BENCH_PATH_MAX, "%s", optarg); break;
		case 'C': snprintf(g_opts.vigilctl, BENCH_PATH_MAX, "%s", optarg); break;
		case 'W': snprintf(g_opts.worker, BENCH_PATH_MAX, "%s", optarg); break;
		case 'F': fleet_s = optarg; break;
		case 'S': fleet_secs = strtod(optarg, NULL); break;
		case 'K': inject = strtol(optarg, NULL, 10); break;
		case 'P': g_opts.fleet_no_default = true; break;
		case 'Z': g_opts.fleet_spec_refresh = strtod(optarg, NULL); break;
		case 'N': scan_s = optarg; break;
		case 'R': rb_s = optarg; break;
		case 'I': iters = strtol(optarg, NULL, 10); break;
		case 'v': g_opts.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vigil-bench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	unsigned which = parse_scenarios(scen);
	if (which == 0) {
		fprintf(stderr, "vigil-bench: unknown scenario in '%s' (beat, scan, fleet, restart, runbook, all)\n", scen);
		return 2;
	}
	const bool q = g_opts.quick;
	/* sizes */
	if (fleet_s) {
		if ((g_opts.n_fleet_sizes = parse_list(fleet_s, g_opts.fleet_sizes, 8)) <= 0) {
			fprintf(stderr, "vigil-bench: --fleet-sizes: want N[,N...]\n");
			return 2;
		}
	} else if (q) {
		g_opts.fleet_sizes[0] = 50;
		g_opts.n_fleet_sizes = 1;
	} else {
		g_opts.fleet_sizes[0] = 1000;
		g_opts.fleet_sizes[1] = 5000;
		g_opts.fleet_sizes[2] = 20000; /* skipped with a reason where the host cannot (fleet.c) */
		g_opts.n_fleet_sizes = 3;
	}
	if (scan_s) {
		if ((g_opts.n_scan_sizes = parse_list(scan_s, g_opts.scan_sizes, 8)) <= 0) {
			fprintf(stderr, "vigil-bench: --scan-sizes: want N[,N...]\n");
			return 2;
		}
	} else {
		uint32_t d[] = {1000, 10000, 100000, 1000000};
		g_opts.n_scan_sizes = q ? 2 : 4;
		memcpy(g_opts.scan_sizes, d, sizeof d);
	}
	if (rb_s) {
		if ((g_opts.n_runbook_sizes = parse_list(rb_s, g_opts.runbook_sizes, 8)) <= 0) {
			fprintf(stderr, "vigil-bench: --runbook-sizes: want N[,N...]\n");
			return 2;
		}
	} else if (q) {
		g_opts.runbook_sizes[0] = 20;
		g_opts.n_runbook_sizes = 1;
	} else {
		g_opts.runbook_sizes[0] = 100;
		g_opts.runbook_sizes[1] = 1000;
		g_opts.n_runbook_sizes = 2;
	}
	g_opts.fleet_seconds = fleet_secs > 0 ? fleet_secs : (q ? 3.0 : 60.0);
	g_opts.fleet_inject = inject > 0 ? (uint32_t)inject : (q ? 2u : 10u);
	g_opts.restart_iterations = iters > 0 ? (uint32_t)iters : (q ? 3u : 40u);

	/* binaries */
	if (g_opts.vigild[0] == '\0')
		default_binary("vigild", g_opts.vigild);
	if (g_opts.vigilctl[0] == '\0')
		default_binary("vigilctl", g_opts.vigilctl);
	if (g_opts.worker[0] == '\0')
		default_binary("vigil-demo-worker", g_opts.worker);
	absolutize(g_opts.vigild);
	absolutize(g_opts.vigilctl);
	absolutize(g_opts.worker);
	bench_which("jq", g_opts.jq);
	if (which & (SC_FLEET | SC_RESTART | SC_RUNBOOK)) {
		struct {
			const char *name;
			const char *path;
			unsigned need;
		} bins[] = {{"vigild", g_opts.vigild, SC_FLEET | SC_RESTART | SC_RUNBOOK},
			    {"vigilctl", g_opts.vigilctl, SC_RESTART | SC_RUNBOOK},
			    {"vigil-demo-worker", g_opts.worker, SC_FLEET | SC_RESTART}};
		for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++)
			if ((which & bins[i].need) && (bins[i].path[0] == '\0' || access(bins[i].path, X_OK) != 0)) {
				fprintf(stderr, "vigil-bench: %s not found (%s); give it with --%s PATH\n", bins[i].name,
					bins[i].path[0] ? bins[i].path : "not next to vigil-bench nor in PATH",
					strcmp(bins[i].name, "vigil-demo-worker") == 0 ? "worker" : bins[i].name);
				return 2;
			}
	}
	if (bench_mkdirs(outdir) < 0) {
		fprintf(stderr, "vigil-bench: cannot create %s: %s\n", outdir, strerror(errno));
		return 2;
	}
	char outabs[BENCH_PATH_MAX];
	snprintf(outabs, sizeof outabs, "%s", outdir);
	absolutize(outabs);

	/* vigild speaks sd_notify when NOTIFY_SOCKET is set: the vigilds we
	 * start must never talk to a real service manager. */
	unsetenv("NOTIFY_SOCKET");
	bench_cleanup_init();
	const char *tmpd = getenv("TMPDIR");
	snprintf(g_opts.tmproot, sizeof g_opts.tmproot, "%s/vigil-bench-XXXXXX", tmpd && tmpd[0] ? tmpd : "/tmp");
	if (mkdtemp(g_opts.tmproot) == NULL) {
		fprintf(stderr, "vigil-bench: mkdtemp %s: %s\n", g_opts.tmproot, strerror(errno));
		g_opts.tmproot[0] = '\0';
		return 1;
	}
	/* Raise the fd limit for vigild's pidfds (inherited): to the hard
	 * limit, and above it (root only) to what the largest fleet needs. */
	{
		struct rlimit rl;
		uint32_t biggest = 0;
		for (int i = 0; i < g_opts.n_fleet_sizes; i++)
			if (g_opts.fleet_sizes[i] > biggest)
				biggest = g_opts.fleet_sizes[i];
		rlim_t want = (rlim_t)biggest + 4096;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
				struct rlimit up = {.rlim_cur = want, .rlim_max = want};
				if (setrlimit(RLIMIT_NOFILE, &up) == 0)
					rl = up;
			}
			if (rl.rlim_cur < rl.rlim_max) {
				rl.rlim_cur = rl.rlim_max;
				setrlimit(RLIMIT_NOFILE, &rl);
			}
		}
	}

	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char date[32], stamp[32];
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);

	json_t *root = json_object();
	{
		char cmd[4096] = "vigil-bench";
		for (int i = 1; i < argc; i++) {
			size_t l = strlen(cmd);
			snprintf(cmd + l, sizeof cmd - l, " %s", argv[i]);
		}
		json_object_set_new(root, "command", json_string(cmd));
	}
	json_object_set_new(root, "quick", json_boolean(q));
	json_object_set_new(root, "machine", machine_json(date));
	json_object_set_new(root, "binaries", json_pack("{s:s,s:s,s:s,s:s}", "vigild", g_opts.vigild, "vigilctl",
						       g_opts.vigilctl, "worker", g_opts.worker, "jq",
						       g_opts.jq[0] ? g_opts.jq : "(not installed)"));
	json_t *sc = json_object();
	json_object_set_new(root, "scenarios", sc);
	uint64_t t0 = bench_mono_ns();
	bench_log("%s run; output in %s; scratch in %s", q ? "quick" : "full", outabs, g_opts.tmproot);
	static const struct {
		unsigned bit;
		const char *name;
		json_t *(*fn)(void);
	} scen_tab[] = {{SC_BEAT, "beat", bench_beat},
			{SC_SCAN, "scan", bench_scan},
			{SC_FLEET, "fleet", bench_fleet},
			{SC_RESTART, "restart", bench_restart},
			{SC_RUNBOOK, "runbook", bench_runbook}};
	for (size_t i = 0; i < sizeof scen_tab / sizeof scen_tab[0]; i++) {
		if (!(which & scen_tab[i].bit))
			continue;
		struct bench_machine_snap ms;
		bench_machine_snap(&ms);
		uint64_t s0 = bench_mono_ns();
		json_t *r = scen_tab[i].fn();
		/* How noisy the machine was meanwhile (this harness included). */
		json_t *mach = bench_machine_since(&ms);
		json_object_set_new(mach, "seconds", json_real((double)(bench_mono_ns() - s0) / 1e9));
		json_object_set_new(r, "machine_during", mach);
		json_object_set_new(sc, scen_tab[i].name, r);
	}
	json_object_set_new(root, "run_seconds", json_real((double)(bench_mono_ns() - t0) / 1e9));
	json_object_set_new(json_object_get(root, "machine"), "loadavg_1min_at_end", json_real(bench_loadavg1()));
	json_object_set_new(root, "targets", targets_json(sc));

	char note[1024];
	json_object_set_new(root, "plots", json_string(make_plots(outabs, sc, note, sizeof note)));

	char rpath[BENCH_PATH_MAX + 64], spath[BENCH_PATH_MAX + 64];
	snprintf(rpath, sizeof rpath, "%s/result-%s.json", outabs, stamp);
	snprintf(spath, sizeof spath, "%s/summary.md", outabs);
	int rc = 0;
	if (json_dump_file(root, rpath, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) < 0) {
		fprintf(stderr, "vigil-bench: cannot write %s\n", rpath);
		rc = 1;
	}
	if (write_summary(spath, root) < 0) {
		fprintf(stderr, "vigil-bench: cannot write %s\n", spath);
		rc = 1;
	}
	/* The smoke test's criterion: the file is valid JSON and every
	 * scenario ran as designed. */
	if (rc == 0) {
		json_error_t jerr;
		json_t *back = json_load_file(rpath, 0, &jerr);
		if (back == NULL) {
			fprintf(stderr, "vigil-bench: %s is not valid JSON: %s (line %d)\n", rpath, jerr.text, jerr.line);
			rc = 1;
		} else {
			if (report_errors(json_object_get(back, "scenarios"), "scenarios") > 0)
				rc = 1;
			json_decref(back);
		}
	}
	json_decref(root);
	bench_cleanup();
	char *t = bench_read_file(spath, NULL);
	if (t != NULL) {
		fputs(t, stdout);
		printf("\nresult: %s\nsummary: %s\n", rpath, spath);
	}
	free(t);
	if (rc != 0)
		fprintf(stderr, "vigil-bench: FAILED (see above; results, if any, in %s)\n", outabs);
	return rc;
}
