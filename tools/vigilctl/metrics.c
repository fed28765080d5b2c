/*
 * metrics.c - `vigilctl metrics`: vigild's metrics as JSON or Prometheus text.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include "prom.h"

static const char *const metrics_files[METRICS_DOCS] = {
	"heartbeat-monitor-metrics.json", "worker-restart-metrics.json", "auto-fix-daemon-metrics.json"};
static const char *const metrics_names[METRICS_DOCS] = {"heartbeat", "restart", "autofix"};

/* Loads the metrics documents of the home into docs (NULL where a file is
 * missing or unusable; the latter with a warning unless quiet).  Returns
 * how many were loaded, or -errno when coordination/metrics/ cannot be
 * opened (printed unless quiet). */
int ctl_load_metrics(const char *cmd, const struct common *c, json_t *docs[METRICS_DOCS], bool quiet)
{
	for (int i = 0; i < METRICS_DOCS; i++)
		docs[i] = NULL;
	int fd = ctl_open_home_dir(c, "coordination/metrics", false);
	if (fd < 0) {
		if (!quiet)
			fprintf(stderr, "vigilctl %s: cannot open %s/coordination/metrics: %s%s\n", cmd, c->home,
				strerror(-fd), fd == -ENOENT ? " (has vigild run for this home?)" : "");
		return fd;
	}
	int n = 0;
	for (int i = 0; i < METRICS_DOCS; i++) {
		char why[512];
		int rc = ctl_load_object(fd, metrics_files[i], &docs[i], why, sizeof why);
		if (rc == 0)
			n++;
		else if (rc != -ENOENT && !quiet)
			fprintf(stderr, "vigilctl: warning: skipping coordination/metrics/%s: %s\n", metrics_files[i], why);
	}
	close(fd);
	return n;
}

static void print_metric(const char *key, const json_t *v)
{
	char kb[256], vb[1024];
	ctl_safe_text(key, kb, sizeof kb);
	if (json_is_integer(v)) {
		printf("  %s: %lld\n", kb, (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		printf("  %s: %.6g\n", kb, json_real_value(v));
	} else if (json_is_string(v)) {
		printf("  %s: %s\n", kb, ctl_safe_text(json_string_value(v), vb, sizeof vb));
	} else {
		char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("  %s: %s\n", kb, txt != NULL ? ctl_safe_text(txt, vb, sizeof vb) : "?");
		free(txt);
	}
}

/* The per-type figures for --prom from the segment and the breaker files;
 * NULL (with a warning) when the segment cannot be read. */
static json_t *metrics_per_type(const struct common *c)
{
	struct vigil_segment seg;
	char err[768] = "";
	int rc = vigil_segment_open(&seg, c->shm, 1, VIGILCTL_SHM_MODE, false, false, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "vigilctl metrics: warning: per-type metrics left out: segment %s: %s\n", c->shm,
			rc == -ENOENT ? "no such segment" : err[0] != '\0' ? err : vigil_strerror(rc));
		return NULL;
	}
	int bfd = ctl_open_home_dir(c, "coordination/circuit-breakers", false);
	json_t *pt = NULL;
	rc = vigil_prom_per_type(&seg, bfd, &pt);
	if (bfd >= 0)
		close(bfd);
	vigil_segment_close(&seg);
	if (rc < 0)
		fprintf(stderr, "vigilctl metrics: warning: per-type metrics left out: %s\n", strerror(-rc));
	return pt;
}

/* What `vigilctl metrics --help` prints after the usage line. */
static void metrics_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "Reads coordination/metrics/heartbeat-monitor-metrics.json,\n"
	       "worker-restart-metrics.json and auto-fix-daemon-metrics.json and prints\n"
	       "them as 'key: value' lines under one heading per file (default), or as one\n"
	       "JSON object {\"heartbeat\":...,\"restart\":...,\"autofix\":...} with null for a\n"
	       "file not written yet (--json).\n"
	       "\n"
	       "--prom prints the Prometheus text exposition that vigild writes to\n"
	       "coordination/metrics/vigil.prom (for node_exporter's textfile collector),\n"
	       "rendered from the current files plus per-type figures read from the\n"
	       "segment: vigil_workers, vigil_zombies, vigil_health_average and\n"
	       "vigil_breaker_open, labelled worker_type.  Counters end in _total;\n"
	       "durations are in seconds.  Exit 1 when no metrics file exists yet.\n");
}

int ctl_cmd_metrics(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"prom", no_argument, NULL, 'p'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"metrics", ":h", opts, metrics_help, NULL};
	bool json = false, prom = false;
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': prom = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("metrics", opt, argv);
		}
	}
	if (ctl_no_operands("metrics", argc, argv) != EXIT_OK)
		return EXIT_USAGE;
	if (json && prom) {
		fprintf(stderr, "vigilctl metrics: --json and --prom are exclusive\n");
		return EXIT_USAGE;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	json_t *docs[METRICS_DOCS];
	int n = ctl_load_metrics("metrics", c, docs, false);
	if (n < 0)
		return EXIT_FAIL;
	if (n == 0) {
		fprintf(stderr, "vigilctl metrics: no metrics in %s/coordination/metrics yet (is vigild running?)\n",
			c->home);
		return EXIT_FAIL;
	}
	rc = EXIT_OK;
	if (prom) {
		json_t *pt = metrics_per_type(c);
		char *text = NULL;
		if (vigil_prom_render(docs[0], docs[1], docs[2], pt, &text) < 0) {
			fprintf(stderr, "vigilctl metrics: out of memory rendering the metrics\n");
			rc = EXIT_FAIL;
		} else {
			fputs(text, stdout);
			free(text);
		}
		json_decref(pt);
	} else if (json) {
		json_t *o = json_object();
		for (int i = 0; o != NULL && i < METRICS_DOCS; i++)
			json_object_set(o, metrics_names[i], docs[i] != NULL ? docs[i] : json_null());
		if (o == NULL || ctl_print_doc(o) != EXIT_OK) {
			fprintf(stderr, "vigilctl metrics: out of memory building JSON\n");
			rc = EXIT_FAIL;
		}
		json_decref(o);
	} else {
		for (int i = 0; i < METRICS_DOCS; i++) {
			if (docs[i] == NULL) {
				printf("%s: not written yet (coordination/metrics/%s)\n", metrics_names[i], metrics_files[i]);
				continue;
			}
			printf("%s (coordination/metrics/%s):\n", metrics_names[i], metrics_files[i]);
			const char *key;
			json_t *v;
			json_object_foreach(docs[i], key, v)
				print_metric(key, v);
		}
	}
	for (int i = 0; i < METRICS_DOCS; i++)
		json_decref(docs[i]);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl metrics: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

