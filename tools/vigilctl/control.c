/*
 * control.c - the control requests vigild answers (cleanup-zombies,
 * breaker reset, quarantine lift) and `vigilctl breakers`.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>

/*
 * Queues coordination/control/queue/<prefix>-<ms>-<pid>.json =
 * {"request_id", "action", <fields...>, "created_at", "created_at_ms"} and
 * waits up to wait_s seconds for vigild's answer in
 * coordination/control/done/<same name>; on an answer, *done_out holds
 * it, the done file is removed, and EXIT_OK is returned (the caller looks
 * at "result").  Otherwise one line on stderr and EXIT_FAIL.
 */
static int control_request(const char *cmd, const struct common *c, const char *prefix, const char *action,
			   json_t *fields, double wait_s, json_t **done_out)
{
	*done_out = NULL;
	uint64_t now = vigil_unix_ms();
	char name[128], file[160], iso[21], why[768] = "";
	snprintf(name, sizeof name, "%s-%llu-%d", prefix, (unsigned long long)now, (int)getpid());
	snprintf(file, sizeof file, "%s.json", name);
	vigil_iso8601(now, iso);
	json_t *doc = json_pack("{s:s, s:s}", "request_id", name, "action", action);
	if (doc == NULL || json_object_update(doc, fields) < 0 ||
	    json_object_set_new(doc, "created_at", json_string(iso)) < 0 ||
	    json_object_set_new(doc, "created_at_ms", json_integer((json_int_t)now)) < 0) {
		json_decref(doc);
		fprintf(stderr, "vigilctl %s: out of memory\n", cmd);
		return EXIT_FAIL;
	}
	int qfd = ctl_open_queue_dir(cmd, c, "coordination/control/queue");
	if (qfd < 0) {
		json_decref(doc);
		return EXIT_FAIL;
	}
	int dfd = ctl_open_queue_dir(cmd, c, "coordination/control/done");
	if (dfd < 0) {
		json_decref(doc);
		close(qfd);
		return EXIT_FAIL;
	}
	int pr = ctl_publish_json(qfd, file, doc, true);
	json_decref(doc);
	if (pr < 0) {
		fprintf(stderr, "vigilctl %s: cannot write coordination/control/queue/%s: %s\n", cmd, file,
			strerror(-pr));
		goto fail;
	}
	pid_t pid;
	int running = ctl_vigild_running(c, &pid, why, sizeof why);
	if (running == 0) {
		fprintf(stderr, "vigilctl: vigild is not running; the %s request stays queued "
				"(coordination/control/queue/%s)\n", action, file);
		goto fail;
	}
	if (running < 0)
		fprintf(stderr, "vigilctl: warning: cannot tell whether vigild is running: %s\n", why);

	uint64_t deadline = vigil_mono_ns() + (uint64_t)(wait_s * 1e9);
	for (unsigned polls = 0;; polls++) {
		json_t *done = NULL;
		int lr = ctl_load_object(dfd, file, &done, why, sizeof why);
		if (lr == 0) {
			/* vigild may name the request by its file name. */
			const char *rid = ctl_obj_str(done, "request_id");
			if (rid != NULL && strcmp(rid, name) != 0 && strcmp(rid, file) != 0)
				fprintf(stderr, "vigilctl: warning: coordination/control/done/%s answers request '%s'\n",
					file, ctl_safe_text(rid, why, sizeof why));
			vigil_fs_remove(dfd, file);
			close(qfd);
			close(dfd);
			*done_out = done;
			return EXIT_OK;
		}
		if (lr != -ENOENT) {
			fprintf(stderr, "vigilctl %s: vigild's answer coordination/control/done/%s is unusable: %s\n", cmd,
				file, why);
			goto fail;
		}
		if (polls % 25 == 24 && running > 0 && ctl_vigild_running(c, &pid, why, sizeof why) == 0) {
			/* One last look: it may have answered and then stopped. */
			if (ctl_exists_at(dfd, file))
				continue;
			if (ctl_exists_at(qfd, file))
				fprintf(stderr, "vigilctl: vigild stopped before answering; the %s request stays queued\n",
					action);
			else
				fprintf(stderr, "vigilctl: vigild stopped before answering the %s request %s\n", action,
					name);
			goto fail;
		}
		if (vigil_mono_ns() >= deadline) {
			if (ctl_exists_at(qfd, file))
				fprintf(stderr, "vigilctl: no answer from vigild within %g s; the request stays queued "
						"(coordination/control/queue/%s)\n", wait_s, file);
			else
				fprintf(stderr, "vigilctl: no answer from vigild within %g s; it has taken the request: "
						"the answer will be in coordination/control/done/%s\n", wait_s, file);
			goto fail;
		}
		ctl_sleep_ms(VIGILCTL_POLL_MS);
	}
fail:
	close(qfd);
	close(dfd);
	return EXIT_FAIL;
}

/* Prints done as one compact JSON line. */
int ctl_print_doc(const json_t *done)
{
	char *txt = json_dumps(done, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (txt == NULL)
		return EXIT_FAIL;
	printf("%s\n", txt);
	free(txt);
	return EXIT_OK;
}

/* Exit status and message of a control answer; prints the message (stdout
 * on success, stderr otherwise). */
static int control_result(const char *cmd, const json_t *done, bool quiet)
{
	const char *res = ctl_obj_str(done, "result"), *msg = ctl_obj_str(done, "message");
	bool ok = res != NULL && strcmp(res, "success") == 0;
	char buf[2048];
	if (!quiet) {
		if (ok && msg != NULL && msg[0] != '\0')
			printf("%s\n", ctl_safe_text(msg, buf, sizeof buf));
		else if (!ok)
			fprintf(stderr, "vigilctl %s: vigild: %s\n", cmd,
				msg != NULL && msg[0] != '\0' ? ctl_safe_text(msg, buf, sizeof buf) : "failed (no message)");
	} else if (!ok) {
		fprintf(stderr, "vigilctl %s: vigild answered %s\n", cmd,
			res != NULL ? ctl_safe_text(res, buf, sizeof buf) : "without a result");
	}
	return ok ? EXIT_OK : EXIT_FAIL;
}

/* Parses --wait-seconds: a number in [0, 86400]. */
static bool wait_arg(const char *cmd, const char *s, double *out)
{
	char rb[300];
	if (!ctl_parse_seconds(s, 0, 86400, out)) {
		fprintf(stderr, "vigilctl %s: invalid --wait-seconds '%s': want a number of seconds 0..86400\n", cmd,
			ctl_render_arg(s, rb, sizeof rb));
		return false;
	}
	return true;
}

/* What `vigilctl cleanup-zombies --help` prints after the usage line. */
static void cleanup_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "Asks vigild (control request in coordination/control/queue/) to clean up\n"
	       "every zombie worker, or only ID: the process is ended through its pidfd\n"
	       "(SIGTERM, then SIGKILL after a grace), its slot freed, its spec removed from\n"
	       "worker-specs/zombie/, its tokens returned.  Waits for vigild's answer, up to\n"
	       "--wait-seconds W (default %g), and prints one line per worker\n"
	       "  ID: RESULT (SIGNAL, N tokens returned)\n"
	       "then vigild's message (--json: the answer as JSON).  Exit 0 when vigild\n"
	       "reports success; 1 on failure, or when vigild is not running or does not\n"
	       "answer in time (the request then stays queued).\n",
	       VIGILCTL_CONTROL_WAIT_S);
}

int ctl_cmd_cleanup(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"wait-seconds", required_argument, NULL, 'W'},
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"cleanup-zombies", ":h", opts, cleanup_help, NULL};
	double wait_s = VIGILCTL_CONTROL_WAIT_S;
	bool json = false;
	char rb[300];
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'W':
			if (!wait_arg("cleanup-zombies", optarg, &wait_s))
				return EXIT_USAGE;
			break;
		case 'j': json = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("cleanup-zombies", opt, argv);
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "vigilctl cleanup-zombies: expected at most one worker ID, got %d arguments "
				"(see vigilctl cleanup-zombies --help)\n", argc - optind);
		return EXIT_USAGE;
	}
	const char *id = optind < argc ? argv[optind] : NULL;
	if (id != NULL && !vigil_id_valid(id)) {
		fprintf(stderr, "vigilctl cleanup-zombies: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(id, rb, sizeof rb));
		return EXIT_USAGE;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	json_t *fields = json_pack("{s:o}", "worker_id", id != NULL ? json_string(id) : json_null());
	json_t *done = NULL;
	rc = fields == NULL ? EXIT_FAIL
			    : control_request("cleanup-zombies", c, "cleanup", "cleanup_zombies", fields, wait_s, &done);
	json_decref(fields);
	if (rc != EXIT_OK)
		return rc;
	if (json) {
		ctl_print_doc(done);
	} else {
		json_t *workers = json_object_get(done, "workers");
		size_t i;
		json_t *w;
		json_array_foreach(workers, i, w) {
			if (!json_is_object(w))
				continue;
			char wid[300], res[128], sig[64];
			const char *s_id = ctl_obj_str(w, "worker_id"), *s_res = ctl_obj_str(w, "result"),
				   *s_sig = ctl_obj_str(w, "signal");
			json_t *tok = json_object_get(w, "tokens_returned");
			vigil_id_render(s_id != NULL ? s_id : "?", s_id != NULL ? strlen(s_id) : 1, wid, sizeof wid);
			vigil_id_render(s_res != NULL ? s_res : "?", s_res != NULL ? strlen(s_res) : 1, res, sizeof res);
			if (s_sig != NULL)
				vigil_id_render(s_sig, strlen(s_sig), sig, sizeof sig);
			else
				snprintf(sig, sizeof sig, "no signal");
			printf("%s: %s (%s, %lld tokens returned)\n", wid, res, sig,
			       json_is_integer(tok) ? (long long)json_integer_value(tok) : 0LL);
		}
	}
	rc = control_result("cleanup-zombies", done, json);
	json_decref(done);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl cleanup-zombies: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

/* ---- breakers ----------------------------------------------------------- */

struct breaker {
	char type[300]; /* worker_type, else the file's name without .json */
	json_t *doc;
};

static int breaker_cmp(const void *a, const void *b)
{
	return strcmp(((const struct breaker *)a)->type, ((const struct breaker *)b)->type);
}

/* What `vigilctl breakers --help` prints after the usage line. */
static void breakers_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "Reads coordination/circuit-breakers/*.json and prints, sorted by type,\n"
	       "  TYPE: STATE (N failures)\n"
	       "(STATE closed, open or half_open; '?' where a file lacks the key).  Files\n"
	       "that are not JSON objects are skipped with a warning.  --json prints an\n"
	       "array of the breaker objects, in the same order.\n");
}

int ctl_cmd_breakers(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"breakers", ":h", opts, breakers_help, NULL};
	bool json = false;
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("breakers", opt, argv);
		}
	}
	int rc = ctl_no_operands("breakers", argc, argv);
	if (rc == EXIT_OK)
		rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	struct breaker *bs = NULL;
	size_t n = 0, cap = 0;
	int fd = ctl_open_home_dir(c, "coordination/circuit-breakers", false);
	if (fd < 0 && fd != -ENOENT) {
		fprintf(stderr, "vigilctl breakers: cannot open %s/coordination/circuit-breakers: %s\n", c->home,
			strerror(-fd));
		return EXIT_FAIL;
	}
	rc = EXIT_OK;
	if (fd >= 0) {
		int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		if (d == NULL) {
			fprintf(stderr, "vigilctl breakers: cannot read coordination/circuit-breakers: %s\n",
				strerror(errno));
			if (dfd >= 0)
				close(dfd);
			close(fd);
			return EXIT_FAIL;
		}
		rewinddir(d); /* the dup shares fd's offset */
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			const char *nm = de->d_name;
			size_t len = strlen(nm);
			if (nm[0] == '.' || len <= 5 || strcmp(nm + len - 5, ".json") != 0)
				continue;
			char why[512], rn[300];
			json_t *doc = NULL;
			int lr = ctl_load_object(fd, nm, &doc, why, sizeof why);
			if (lr < 0) {
				if (lr != -ENOENT) /* gone meanwhile: not a problem */
					fprintf(stderr, "vigilctl: warning: skipping coordination/circuit-breakers/%s: %s\n",
						ctl_render_arg(nm, rn, sizeof rn), why);
				continue;
			}
			if (n == cap) {
				size_t ncap = cap == 0 ? 16 : cap * 2;
				struct breaker *nb = realloc(bs, ncap * sizeof *nb);
				if (nb == NULL) {
					json_decref(doc);
					fprintf(stderr, "vigilctl breakers: out of memory\n");
					rc = EXIT_FAIL;
					break;
				}
				bs = nb;
				cap = ncap;
			}
			const char *t = ctl_obj_str(doc, "worker_type");
			if (t != NULL)
				vigil_id_render(t, strlen(t), bs[n].type, sizeof bs[n].type);
			else
				vigil_id_render(nm, len - 5, bs[n].type, sizeof bs[n].type);
			bs[n].doc = doc;
			n++;
		}
		closedir(d);
		close(fd);
	}
	if (n > 1)
		qsort(bs, n, sizeof *bs, breaker_cmp);
	if (rc == EXIT_OK && json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr != NULL && i < n; i++)
			json_array_append(arr, bs[i].doc);
		if (arr == NULL || ctl_print_doc(arr) != EXIT_OK) {
			fprintf(stderr, "vigilctl breakers: out of memory building JSON\n");
			rc = EXIT_FAIL;
		}
		json_decref(arr);
	} else if (rc == EXIT_OK) {
		for (size_t i = 0; i < n; i++) {
			const char *st = ctl_obj_str(bs[i].doc, "state");
			json_t *fc = json_object_get(bs[i].doc, "failure_count");
			char state[128], count[32];
			if (st != NULL)
				vigil_id_render(st, strlen(st), state, sizeof state);
			else
				snprintf(state, sizeof state, "?");
			if (json_is_integer(fc))
				snprintf(count, sizeof count, "%lld", (long long)json_integer_value(fc));
			else
				snprintf(count, sizeof count, "?");
			printf("%s: %s (%s failures)\n", bs[i].type, state, count);
		}
	}
	for (size_t i = 0; i < n; i++)
		json_decref(bs[i].doc);
	free(bs);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl breakers: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

/* One control request naming one thing: `vigilctl breaker reset TYPE`,
 * `vigilctl quarantine lift ID`.  what: "breaker"; verb: "reset"; key: the
 * request's field ("worker_type"); noun: how the argument is called. */
struct simple_control {
	const char *what, *verb, *key, *noun, *prefix, *action, *help;
};

/* What `vigilctl breaker --help` and `vigilctl quarantine --help` print
 * after the usage line: the command's own paragraph, then the waiting. */
static void simple_control_help(const void *ctx)
{
	const struct simple_control *sc = ctx;
	printf("\n%s\nWaits for vigild's answer up to --wait-seconds W (default %g) and prints its\n"
	       "message (--json: the answer as JSON).  Exit 0 on success; 1 on failure, or\n"
	       "when vigild is not running or does not answer in time (the request then\n"
	       "stays queued).\n",
	       sc->help, VIGILCTL_CONTROL_WAIT_S);
}

static int run_simple_control(const struct simple_control *sc, int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"wait-seconds", required_argument, NULL, 'W'},
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	const struct ctl_opts parse = {sc->what, ":h", opts, simple_control_help, sc};
	double wait_s = VIGILCTL_CONTROL_WAIT_S;
	bool json = false;
	char rb[300], label[64];
	snprintf(label, sizeof label, "%s %s", sc->what, sc->verb);
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'W':
			if (!wait_arg(sc->what, optarg, &wait_s))
				return EXIT_USAGE;
			break;
		case 'j': json = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option(sc->what, opt, argv);
		}
	}
	if (optind >= argc || strcmp(argv[optind], sc->verb) != 0) {
		fprintf(stderr, "vigilctl %s: expected '%s %s' (see vigilctl %s --help)\n", sc->what, sc->verb, sc->noun,
			sc->what);
		return EXIT_USAGE;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "vigilctl %s: expected one %s, got %d arguments (see vigilctl %s --help)\n", label,
			sc->noun, argc - optind - 1, sc->what);
		return EXIT_USAGE;
	}
	const char *arg = argv[optind + 1];
	if (!vigil_id_valid(arg)) {
		fprintf(stderr, "vigilctl %s: invalid %s '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n", label,
			sc->noun, ctl_render_arg(arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	json_t *fields = json_pack("{s:s}", sc->key, arg);
	json_t *done = NULL;
	rc = fields == NULL ? EXIT_FAIL : control_request(label, c, sc->prefix, sc->action, fields, wait_s, &done);
	json_decref(fields);
	if (rc != EXIT_OK)
		return rc;
	if (json)
		ctl_print_doc(done);
	rc = control_result(label, done, json);
	json_decref(done);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl %s: cannot write output: %s\n", label, strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

int ctl_cmd_breaker(int argc, char **argv, struct common *c)
{
	static const struct simple_control sc = {
		"breaker", "reset", "worker_type", "worker TYPE", "breaker-reset", "breaker_reset",
		"Asks vigild (control request in coordination/control/queue/) to close the\n"
		"circuit breaker of worker type TYPE and clear its failure count."};
	return run_simple_control(&sc, argc, argv, c);
}

int ctl_cmd_quarantine(int argc, char **argv, struct common *c)
{
	static const struct simple_control sc = {
		"quarantine", "lift", "worker_id", "worker ID", "quarantine-lift", "quarantine_lift",
		"Asks vigild to lift the quarantine auto-fix put on worker ID (no restarts\n"
		"while quarantined): its restart count and failure history start afresh."};
	return run_simple_control(&sc, argc, argv, c);
}

