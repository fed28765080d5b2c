/*
 * restart.c - `vigilctl restart`: queue a restart request for a worker.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"
#include "queuefile.h"

/* worker_type and task_id of worker id from its spec in worker-specs/active/
 * or zombie/: 1 found (strings copied), 0 no spec, -1 a spec that cannot
 * be used (why set). */
static int spec_identity(const struct common *c, const char *id, char type[VIGIL_ID_MAX + 1],
			 char task[VIGIL_ID_MAX + 1], char *why, size_t why_len)
{
	/* A worker vigild gave up on, or one quarantined, has no spec any
	 * more, but its lifecycle record names it (README, "Worker lifecycle"). */
	static const char *const dirs[] = {"coordination/worker-specs/active", "coordination/worker-specs/zombie",
					   "coordination/lifecycle"};
	char file[VIGIL_ID_MAX + 8];
	snprintf(file, sizeof file, "%s.json", id);
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		int fd = ctl_open_home_dir(c, dirs[i], false);
		if (fd < 0)
			continue;
		json_t *spec = NULL;
		char err[512];
		int rc = ctl_load_object(fd, file, &spec, err, sizeof err);
		close(fd);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			snprintf(why, why_len, "%s/%s: %s", dirs[i], file, err);
			return -1;
		}
		const char *t = ctl_obj_str(spec, "worker_type"), *k = ctl_obj_str(spec, "task_id");
		if (t == NULL || !vigil_id_valid(t) || (k != NULL && k[0] != '\0' && !vigil_id_valid(k))) {
			snprintf(why, why_len, "%s/%s: no valid worker_type/task_id", dirs[i], file);
			json_decref(spec);
			return -1;
		}
		snprintf(type, VIGIL_ID_MAX + 1, "%s", t);
		snprintf(task, VIGIL_ID_MAX + 1, "%s", k != NULL ? k : "");
		json_decref(spec);
		return 1;
	}
	return 0;
}

/* What `vigilctl restart --help` prints after the usage line. */
static void restart_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "Writes the runbook's restart request coordination/restart/queue/<ID>-restart.json\n"
	       "(<ID>-restart-<ms>.json when one is already queued) and prints its path.\n"
	       "vigild carries it out under the restart policy and circuit breaker, and\n"
	       "records the outcome in coordination/metrics/worker-restart-history.jsonl.\n"
	       "\n"
	       "  --reason R     why (default 'manual')\n"
	       "  --type T       worker type (default: from the worker's spec)\n"
	       "  --task-id X    task id (default: from the worker's spec)\n");
}

int ctl_cmd_restart(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"reason", required_argument, NULL, 'r'},
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"restart", ":h", opts, restart_help, NULL};
	const char *reason = "manual", *type_arg = NULL, *task_arg = NULL;
	char rb[300];
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'r': reason = optarg; break;
		case 't': type_arg = optarg; break;
		case 'k': task_arg = optarg; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("restart", opt, argv);
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "vigilctl restart: expected one worker ID, got %d argument%s (see vigilctl restart --help)\n",
			argc - optind, argc - optind == 1 ? "" : "s");
		return EXIT_USAGE;
	}
	const char *id = argv[optind];
	if (!vigil_id_valid(id)) {
		fprintf(stderr, "vigilctl restart: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (type_arg != NULL && !vigil_id_valid(type_arg)) {
		fprintf(stderr, "vigilctl restart: invalid worker type '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(type_arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (task_arg != NULL && task_arg[0] != '\0' && !vigil_id_valid(task_arg)) {
		fprintf(stderr, "vigilctl restart: invalid task id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(task_arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (reason[0] == '\0' || strlen(reason) > 1024) {
		fprintf(stderr, "vigilctl restart: --reason must be 1..1024 bytes\n");
		return EXIT_USAGE;
	}
	json_t *reason_j = json_string(reason);
	if (reason_j == NULL) {
		fprintf(stderr, "vigilctl restart: --reason '%s' is not valid UTF-8\n", ctl_render_arg(reason, rb, sizeof rb));
		return EXIT_USAGE;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK) {
		json_decref(reason_j);
		return rc;
	}
	char type[VIGIL_ID_MAX + 1] = "", task[VIGIL_ID_MAX + 1] = "", why[768] = "";
	if (type_arg == NULL || task_arg == NULL) {
		int found = spec_identity(c, id, type, task, why, sizeof why);
		if (found < 0 && type_arg == NULL) {
			fprintf(stderr, "vigilctl restart: cannot read the spec of worker %s (%s): give --type\n", id, why);
			json_decref(reason_j);
			return EXIT_FAIL;
		}
		if (found <= 0 && type_arg == NULL) {
			fprintf(stderr, "vigilctl restart: unknown worker ID: give --type (no spec for %s in "
					"coordination/worker-specs/active/ or zombie/, no coordination/lifecycle/ record)\n", id);
			json_decref(reason_j);
			return EXIT_FAIL;
		}
		if (found <= 0)
			task[0] = '\0'; /* --type given, worker unknown: no task id unless --task-id */
	}
	if (type_arg != NULL)
		snprintf(type, sizeof type, "%s", type_arg);
	if (task_arg != NULL)
		snprintf(task, sizeof task, "%s", task_arg);

	int qfd = ctl_open_queue_dir("restart", c, "coordination/restart/queue");
	if (qfd < 0) {
		json_decref(reason_j);
		return EXIT_FAIL;
	}
	uint64_t now = vigil_unix_ms();
	/* The same document vigild writes for its own retries (queuefile.c);
	 * an operator's request has no "source". */
	json_t *doc = vigil_queue_restart_doc(id, type, task, reason, NULL, now);
	json_decref(reason_j);
	if (doc == NULL) {
		fprintf(stderr, "vigilctl restart: out of memory\n");
		close(qfd);
		return EXIT_FAIL;
	}
	char file[VIGIL_ID_MAX + 64];
	int pr = -EEXIST;
	snprintf(file, sizeof file, "%s-restart.json", id);
	pr = ctl_publish_json(qfd, file, doc, true);
	if (pr == -EEXIST) {
		fprintf(stderr, "vigilctl restart: note: a restart request for %s is already queued; adding another\n", id);
		/* Bounded: one name per millisecond from now on. */
		for (uint64_t ms = now; pr == -EEXIST && ms < now + 1000; ms++) {
			snprintf(file, sizeof file, "%s-restart-%llu.json", id, (unsigned long long)ms);
			pr = ctl_publish_json(qfd, file, doc, true);
		}
	}
	json_decref(doc);
	close(qfd);
	if (pr < 0) {
		fprintf(stderr, "vigilctl restart: cannot write coordination/restart/queue/%s: %s\n", file, strerror(-pr));
		return EXIT_FAIL;
	}
	printf("%s/coordination/restart/queue/%s\n", c->home, file);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl restart: cannot write output: %s (the request is queued)\n", strerror(errno));
		return EXIT_FAIL;
	}
	pid_t pid;
	if (ctl_vigild_running(c, &pid, why, sizeof why) == 0)
		fprintf(stderr, "vigilctl: note: vigild is not running; the restart request stays queued\n");
	return EXIT_OK;
}

