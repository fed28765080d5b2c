/*
 * runbook.c - scenario "runbook": the runbook's own monitor against
 * `vigilctl status`, over the same fleet.
 *
 * A real vigild with N registered workers (registered by the harness
 * process itself through vigil_register(), so the measurement is not
 * disturbed by N beating processes; the policy is slow so nothing changes
 * while it runs) writes N spec files into worker-specs/active/.  Then, median
 * of 3 passes each, wall time around the whole process:
 *
 *   runbook   bash -c '<the "Check Heartbeat Status" loop, verbatim>'
 *             (three jq processes per spec, then sort)
 *   vigilctl  vigilctl status (reads the segment, one process)
 *
 * Both outputs are counted to show that both saw every worker.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vigil.h"

/* shared/runbook/self-healing.md, "Check Heartbeat Status", verbatim. */
static const char RUNBOOK_LOOP[] =
	"# View worker heartbeats\n"
	"for spec in $COMMIT_RELAY_HOME/coordination/worker-specs/active/worker-*.json; do\n"
	"    if [[ -f \"$spec\" ]]; then\n"
	"        ID=$(jq -r '.worker_id' \"$spec\")\n"
	"        HEALTH=$(jq -r '.heartbeat.health_score // 0' \"$spec\")\n"
	"        LAST=$(jq -r '.heartbeat.last_seen // \"never\"' \"$spec\")\n"
	"        echo \"$HEALTH% | $ID | $LAST\"\n"
	"    fi\n"
	"done | sort -rn\n";

static long count_lines(const char *path, const char *must_contain)
{
	char *t = bench_read_file(path, NULL);
	if (t == NULL)
		return -1;
	long n = 0;
	for (char *line = t; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strstr(line, must_contain) != NULL)
			n++;
		if (!nl)
			break;
		line = nl + 1;
	}
	free(t);
	return n;
}

static json_t *runbook_one(uint32_t n)
{
	json_t *o = json_object();
	json_object_set_new(o, "workers", json_integer(n));
	if (g_opts.jq[0] == '\0') {
		json_object_set_new(o, "skipped", json_string("jq is not installed"));
		return o;
	}
	char tag[32];
	snprintf(tag, sizeof tag, "runbook%u", n);
	struct bench_home h;
	struct vigil base;
	memset(&base, 0, sizeof base);
	if (bench_home_create(&h, tag, (n + 64 + 63) & ~63u) < 0) {
		json_object_set_new(o, "error", json_string("setup failed"));
		return o;
	}
	bench_home_policy(&h, "heartbeat-policy.json",
			  "{\"heartbeat_interval_seconds\": 3600, \"heartbeat_timeout_seconds\": 7200, "
			  "\"zombie_threshold_seconds\": 14400}\n");
	if (bench_home_start(&h) < 0) {
		json_object_set_new(o, "error", json_string("vigild did not start"));
		goto out;
	}
	int rc = vigil__map(&base, h.shm, 1);
	if (rc < 0) {
		json_object_set_new(o, "error", json_string(vigil_strerror(rc)));
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct vigil w = base;
		char id[64], task[64];
		snprintf(id, sizeof id, "worker-bench-%05u", i);
		snprintf(task, sizeof task, "runbook-%05u", i);
		rc = vigil_register(&w, id, "bench", task, (int)getpid());
		if (rc < 0) {
			bench_log("runbook: register %s: %s", id, vigil_strerror(rc));
			json_object_set_new(o, "error", json_string(vigil_strerror(rc)));
			goto out;
		}
		vigil_beat(&w, (unsigned)(50 + i % 51), (unsigned)(i % 101));
	}
	char active[BENCH_PATH_MAX + 64];
	bench_home_path(&h, "coordination/worker-specs/active", active, sizeof active);
	uint64_t deadline = bench_mono_ns() + 60000000000ull;
	long have = 0;
	while (bench_mono_ns() < deadline && (have = bench_count_dir(active, "worker-", ".json")) < (long)n) {
		bench_vlog("runbook %u: %ld specs written", n, have);
		bench_sleep_ms(50);
	}
	if (have < (long)n) {
		json_object_set_new(o, "error", json_string("vigild did not write every spec in time"));
		goto out;
	}
	bench_sleep_ms(1500); /* a snapshot with the beats in it */

	char env_home[BENCH_PATH_MAX + 32], env_path[BENCH_PATH_MAX + 16], outf[BENCH_PATH_MAX + 64];
	snprintf(env_home, sizeof env_home, "COMMIT_RELAY_HOME=%s", h.dir);
	const char *path = getenv("PATH");
	snprintf(env_path, sizeof env_path, "PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	snprintf(outf, sizeof outf, "%s/monitor.out", h.dir);
	const char *envp[] = {env_home, env_path, "LC_ALL=C", NULL};
	const int reps = 3;
	double loop_ms[3], ctl_ms[3];
	long loop_lines = -1, ctl_lines = -1;
	for (int r = 0; r < reps; r++) {
		const char *argv[] = {"/bin/bash", "-c", RUNBOOK_LOOP, NULL};
		unlink(outf);
		struct bench_spawn sp = {.argv = argv, .envp = envp, .stdout_path = outf, .pgroup = -1};
		int st;
		uint64_t ns = bench_run_timed(&sp, 600000, &st);
		loop_ms[r] = st == 0 ? (double)ns / 1e6 : NAN;
		loop_lines = count_lines(outf, "| worker-bench-");
		bench_vlog("runbook %u: jq loop pass %d: %.1f ms", n, r + 1, loop_ms[r]);
	}
	for (int r = 0; r < reps; r++) {
		const char *argv[] = {g_opts.vigilctl, "status", "--home", h.dir, "--shm", h.shm, NULL};
		unlink(outf);
		struct bench_spawn sp = {.argv = argv, .envp = envp, .stdout_path = outf, .pgroup = -1};
		int st;
		uint64_t ns = bench_run_timed(&sp, 60000, &st);
		ctl_ms[r] = st == 0 ? (double)ns / 1e6 : NAN;
		ctl_lines = count_lines(outf, "worker-bench-");
	}
	double lm[3], cm[3];
	memcpy(lm, loop_ms, sizeof lm);
	memcpy(cm, ctl_ms, sizeof cm);
	double lmed = bench_median(lm, reps), cmed = bench_median(cm, reps);
	json_object_set_new(o, "runbook_loop_ms", bench_stats_json(loop_ms, reps, false));
	json_object_set_new(o, "vigilctl_status_ms", bench_stats_json(ctl_ms, reps, false));
	json_object_set_new(o, "runbook_loop_ms_per_worker", json_real(lmed / n));
	json_object_set_new(o, "vigilctl_status_ms_per_worker", json_real(cmed / n));
	json_object_set_new(o, "ratio_runbook_vs_vigilctl", json_real(lmed / cmed));
	json_object_set_new(o, "runbook_lines", json_integer(loop_lines));
	json_object_set_new(o, "vigilctl_lines", json_integer(ctl_lines));
	bench_log("runbook %u: jq loop %.1f ms, vigilctl status %.2f ms (x%.0f); lines %ld / %ld", n, lmed, cmed,
		  lmed / cmed, loop_lines, ctl_lines);
out:
	bench_home_stop(&h);
	if (base.hdr != NULL)
		munmap(base.hdr, base.map_size);
	bench_kill_all();
	bench_home_destroy(&h);
	return o;
}

json_t *bench_runbook(void)
{
	json_t *arr = json_array();
	for (int i = 0; i < g_opts.n_runbook_sizes; i++)
		json_array_append_new(arr, runbook_one(g_opts.runbook_sizes[i]));
	json_t *o = json_object();
	json_object_set_new(o, "runs", arr);
	json_object_set_new(o, "loop", json_string(RUNBOOK_LOOP));
	return o;
}
