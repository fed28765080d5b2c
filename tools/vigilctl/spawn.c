/*
 * spawn.c - `vigilctl spawn`: queue a new worker for vigild to start.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

/*
 * Marks in used[] (VIGILCTL_ID_NUM_MAX + 1 entries) every N for which
 * dirfd holds "<prefix>N.json" with N written as "%03ld" would write it.
 * A missing directory (dirfd < 0) marks nothing.
 */
static void mark_used(int dirfd, const char *prefix, unsigned char *used)
{
	if (dirfd < 0)
		return;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	rewinddir(d); /* the dup shares dirfd's offset */
	size_t plen = strlen(prefix);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (len <= plen + 5 || strncmp(nm, prefix, plen) != 0 || strcmp(nm + len - 5, ".json") != 0)
			continue;
		char digits[16];
		size_t dl = len - plen - 5;
		if (dl >= sizeof digits)
			continue;
		memcpy(digits, nm + plen, dl);
		digits[dl] = '\0';
		long v;
		char canon[16];
		if (!ctl_parse_int(digits, 1, VIGILCTL_ID_NUM_MAX, &v))
			continue;
		snprintf(canon, sizeof canon, "%03ld", v);
		if (strcmp(canon, digits) == 0)
			used[v] = 1;
	}
	closedir(d);
}

/* The spawn request, or NULL (out of memory, a string that is not UTF-8,
 * or a document larger than vigild reads: *too_big then). */
static json_t *spawn_doc(const char *id, const char *type, const char *task, json_t *command, const char *cwd,
			 long tokens, bool has_timeout, double timeout, uint64_t now_ms, bool *too_big)
{
	char iso[21];
	vigil_iso8601(now_ms, iso);
	*too_big = false;
	json_t *doc = json_pack("{s:s, s:s, s:s, s:O, s:s, s:I, s:o, s:s, s:I}", "worker_id", id, "worker_type", type,
			 "task_id", task, "command", command, "cwd", cwd, "tokens", (json_int_t)tokens,
			 "timeout_seconds", has_timeout ? ctl_json_seconds(timeout) : json_null(), "created_at", iso,
			 "created_at_ms", (json_int_t)now_ms);
	if (doc != NULL && json_dumpb(doc, NULL, 0, JSON_COMPACT) + 1 > VIGILCTL_REQUEST_BYTES_MAX) {
		json_decref(doc);
		*too_big = true;
		return NULL;
	}
	return doc;
}

static void spawn_doc_error(bool too_big, const char *cwd)
{
	char rb[300];
	if (too_big)
		fprintf(stderr, "vigilctl spawn: the request would exceed the %d bytes vigild reads; shorten the command\n",
			VIGILCTL_REQUEST_BYTES_MAX);
	else
		fprintf(stderr, "vigilctl spawn: cannot build the request (working directory '%s' is not valid UTF-8?)\n",
			ctl_render_arg(cwd, rb, sizeof rb));
}

/* Inode and mtime of a file, to tell a fresh answer from an old one. */
struct fstamp {
	bool present;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
};

static struct fstamp stamp_at(int dirfd, const char *name)
{
	struct fstamp f;
	struct stat st;
	memset(&f, 0, sizeof f);
	if (dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		f.present = true;
		f.dev = st.st_dev;
		f.ino = st.st_ino;
		f.mtime = st.st_mtim;
	}
	return f;
}

static bool stamp_same(const struct fstamp *a, const struct fstamp *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * --wait: until vigild has started the worker (its spec appears in
 * worker-specs/active/ - or already in zombie/), or has consumed the
 * request and reported a failure in spawn/failed/<id>.json (one that was
 * not there, or not that file, before we queued).
 */
static int spawn_wait(const struct common *c, int queue_fd, const char *id, const char *file,
		      const struct fstamp *failed_before, const struct fstamp *rejected_before)
{
	int rejected_fd = ctl_open_home_dir(c, "coordination/restart/rejected", true);
	char reason_name[192];
	snprintf(reason_name, sizeof reason_name, "%s.reason", file);
	int active_fd = ctl_open_home_dir(c, "coordination/worker-specs/active", true);
	int zombie_fd = ctl_open_home_dir(c, "coordination/worker-specs/zombie", true);
	int failed_fd = ctl_open_home_dir(c, "coordination/spawn/failed", true);
	int rc = EXIT_FAIL;
	uint64_t deadline = vigil_mono_ns() + (uint64_t)VIGILCTL_SPAWN_WAIT_S * VIGIL_NS_PER_S;
	char why[512];
	for (unsigned polls = 0;; polls++) {
		if (ctl_exists_at(active_fd, file) || ctl_exists_at(zombie_fd, file)) {
			rc = EXIT_OK;
			break;
		}
		if (!ctl_exists_at(queue_fd, file)) {
			struct fstamp now = stamp_at(failed_fd, file);
			if (now.present && !stamp_same(&now, failed_before)) {
				json_t *f = NULL;
				char msg[1024];
				int lr = ctl_load_object(failed_fd, file, &f, why, sizeof why);
				if (lr == 0) {
					const char *m = ctl_obj_str(f, "message");
					fprintf(stderr, "vigilctl spawn: vigild could not start worker %s: %s\n", id,
						ctl_safe_text(m != NULL ? m : "(no message)", msg, sizeof msg));
					json_decref(f);
				} else {
					fprintf(stderr,
						"vigilctl spawn: vigild could not start worker %s (coordination/spawn/failed/%s: %s)\n",
						id, file, why);
				}
				break;
			}
			/* A malformed request is moved to restart/rejected/ with
			 * "<file>.reason" beside it. */
			now = stamp_at(rejected_fd, reason_name);
			if (now.present && !stamp_same(&now, rejected_before)) {
				char *txt = NULL, msg[1024];
				size_t tl;
				if (vigil_fs_read(rejected_fd, reason_name, 4096, &txt, &tl) == 0) {
					txt[strcspn(txt, "\n")] = '\0';
					fprintf(stderr, "vigilctl spawn: vigild rejected the request for %s: %s\n", id,
						ctl_safe_text(txt, msg, sizeof msg));
					free(txt);
				} else {
					fprintf(stderr, "vigilctl spawn: vigild rejected the request for %s (see "
							"coordination/restart/rejected/%s)\n", id, reason_name);
				}
				break;
			}
		}
		if (polls % 25 == 24) { /* every half second: is vigild still there? */
			pid_t pid;
			if (ctl_vigild_running(c, &pid, why, sizeof why) == 0) {
				fprintf(stderr, "vigilctl: vigild is not running; the spawn request stays queued\n");
				break;
			}
		}
		if (vigil_mono_ns() >= deadline) {
			if (ctl_exists_at(queue_fd, file))
				fprintf(stderr,
					"vigilctl spawn: vigild did not take the request for %s within %d s; it stays queued\n",
					id, VIGILCTL_SPAWN_WAIT_S);
			else
				fprintf(stderr,
					"vigilctl spawn: vigild took the request for %s but worker-specs/active/%s did not "
					"appear within %d s\n",
					id, file, VIGILCTL_SPAWN_WAIT_S);
			break;
		}
		ctl_sleep_ms(VIGILCTL_POLL_MS);
	}
	if (active_fd >= 0)
		close(active_fd);
	if (zombie_fd >= 0)
		close(zombie_fd);
	if (failed_fd >= 0)
		close(failed_fd);
	if (rejected_fd >= 0)
		close(rejected_fd);
	return rc;
}

/* What `vigilctl spawn --help` prints after the usage line. */
static void spawn_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "Writes coordination/spawn/queue/<worker_id>.json; vigild starts the worker\n"
	       "when it reads it (at once if running, else when it starts), watches it, and\n"
	       "restarts it with the same command, type and task.  Prints the worker id.\n"
	       "\n"
	       "  --type T       worker type (required)\n"
	       "  --task-id X    task id (required)\n"
	       "  --timeout S    seconds the worker may run (number > 0; default none)\n"
	       "  --tokens N     token budget to allocate (integer >= 0; default 0)\n"
	       "  --cwd DIR      working directory (default: the current one)\n"
	       "  --id ID        worker id (default: worker-<T>-<NNN>, the first free NNN)\n"
	       "  --wait         wait up to %d s until vigild has started the worker;\n"
	       "                 exit 1 if it failed, is not running, or did not answer\n"
	       "\n"
	       "Ids, types and task ids: [A-Za-z0-9._-]{1,64}, not starting with '.'.\n",
	       VIGILCTL_SPAWN_WAIT_S);
}

int ctl_cmd_spawn(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"type", required_argument, NULL, 't'},
		{"task-id", required_argument, NULL, 'k'},
		{"timeout", required_argument, NULL, 'T'},
		{"tokens", required_argument, NULL, 'n'},
		{"cwd", required_argument, NULL, 'C'},
		{"id", required_argument, NULL, 'i'},
		{"wait", no_argument, NULL, 'w'},
		COMMON_OPTIONS,
	};
	/* "+": options stop at CMD even without "--". */
	static const struct ctl_opts parse = {"spawn", "+:h", opts, spawn_help, NULL};
	const char *type = NULL, *task = NULL, *timeout_s = NULL, *tokens_s = NULL, *cwd_arg = NULL, *id_arg = NULL;
	bool wait = false;
	char rb[300];
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 't': type = optarg; break;
		case 'k': task = optarg; break;
		case 'T': timeout_s = optarg; break;
		case 'n': tokens_s = optarg; break;
		case 'C': cwd_arg = optarg; break;
		case 'i': id_arg = optarg; break;
		case 'w': wait = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("spawn", opt, argv);
		}
	}
	if (type == NULL || task == NULL) {
		fprintf(stderr, "vigilctl spawn: --type and --task-id are required (see vigilctl spawn --help)\n");
		return EXIT_USAGE;
	}
	if (!vigil_id_valid(type)) {
		fprintf(stderr, "vigilctl spawn: invalid worker type '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(type, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (!vigil_id_valid(task)) {
		fprintf(stderr, "vigilctl spawn: invalid task id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(task, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (id_arg != NULL && !vigil_id_valid(id_arg)) {
		fprintf(stderr, "vigilctl spawn: invalid worker id '%s': want [A-Za-z0-9._-]{1,64}, not starting with '.'\n",
			ctl_render_arg(id_arg, rb, sizeof rb));
		return EXIT_USAGE;
	}
	double timeout = 0;
	if (timeout_s != NULL && (!ctl_parse_seconds(timeout_s, 0, 1e9, &timeout) || timeout <= 0)) {
		fprintf(stderr, "vigilctl spawn: invalid --timeout '%s': want a number of seconds > 0\n",
			ctl_render_arg(timeout_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	long tokens = 0;
	if (tokens_s != NULL && !ctl_parse_int(tokens_s, 0, LONG_MAX, &tokens)) {
		fprintf(stderr, "vigilctl spawn: invalid --tokens '%s': want an integer >= 0\n",
			ctl_render_arg(tokens_s, rb, sizeof rb));
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		fprintf(stderr, "vigilctl spawn: no command given: want -- CMD [ARGS...] (see vigilctl spawn --help)\n");
		return EXIT_USAGE;
	}
	if (argv[optind][0] == '\0') {
		fprintf(stderr, "vigilctl spawn: the command is an empty string\n");
		return EXIT_USAGE;
	}
	if (argc - optind > VIGILCTL_CMD_ARGS_MAX) {
		fprintf(stderr, "vigilctl spawn: the command has %d words; vigild accepts at most %d\n", argc - optind,
			VIGILCTL_CMD_ARGS_MAX);
		return EXIT_USAGE;
	}
	json_t *command = json_array();
	if (command == NULL) {
		fprintf(stderr, "vigilctl spawn: out of memory\n");
		return EXIT_FAIL;
	}
	for (int i = optind; i < argc; i++) {
		if (strlen(argv[i]) > VIGILCTL_CMD_ARG_BYTES_MAX) {
			fprintf(stderr, "vigilctl spawn: command argument %d is %zu bytes long; vigild accepts at most %d\n",
				i - optind, strlen(argv[i]), VIGILCTL_CMD_ARG_BYTES_MAX);
			json_decref(command);
			return EXIT_USAGE;
		}
		json_t *a = json_string(argv[i]);
		if (a == NULL) {
			fprintf(stderr, "vigilctl spawn: command argument %d '%s' is not valid UTF-8\n", i - optind,
				ctl_render_arg(argv[i], rb, sizeof rb));
			json_decref(command);
			return EXIT_USAGE;
		}
		json_array_append_new(command, a);
	}

	/* The working directory, absolute and resolved. */
	char *cwd = realpath(cwd_arg != NULL ? cwd_arg : ".", NULL);
	struct stat st;
	if (cwd == NULL || stat(cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		int e = cwd == NULL ? errno : ENOTDIR;
		fprintf(stderr, "vigilctl spawn: working directory '%s': %s\n",
			cwd_arg != NULL ? cwd_arg : ".", strerror(e));
		free(cwd);
		json_decref(command);
		return EXIT_FAIL;
	}
	int rc = ctl_resolve(c);
	if (rc != EXIT_OK) {
		free(cwd);
		json_decref(command);
		return rc;
	}
	int queue_fd = ctl_open_queue_dir("spawn", c, "coordination/spawn/queue");
	if (queue_fd < 0) {
		free(cwd);
		json_decref(command);
		return EXIT_FAIL;
	}
	int active_fd = ctl_open_home_dir(c, "coordination/worker-specs/active", false);
	int zombie_fd = ctl_open_home_dir(c, "coordination/worker-specs/zombie", false);
	int failed_fd = ctl_open_home_dir(c, "coordination/spawn/failed", false);
	int rejected_fd = ctl_open_home_dir(c, "coordination/restart/rejected", false);

	char id[128] = "", file[160];
	struct fstamp failed_before, rejected_before;
	char reason_name[192];
	memset(&failed_before, 0, sizeof failed_before);
	memset(&rejected_before, 0, sizeof rejected_before);
	rc = EXIT_FAIL;
	if (id_arg != NULL) {
		snprintf(id, sizeof id, "%s", id_arg);
		snprintf(file, sizeof file, "%s.json", id);
		if (ctl_exists_at(active_fd, file) || ctl_exists_at(zombie_fd, file)) {
			fprintf(stderr, "vigilctl spawn: worker %s already exists (coordination/worker-specs/%s/%s)\n", id,
				ctl_exists_at(active_fd, file) ? "active" : "zombie", file);
			goto out;
		}
		failed_before = stamp_at(failed_fd, file);
		snprintf(reason_name, sizeof reason_name, "%s.reason", file);
		rejected_before = stamp_at(rejected_fd, reason_name);
		uint64_t now = vigil_unix_ms();
		bool too_big;
		json_t *doc = spawn_doc(id, type, task, command, cwd, tokens, timeout_s != NULL, timeout, now, &too_big);
		if (doc == NULL) {
			spawn_doc_error(too_big, cwd);
			goto out;
		}
		int pr = ctl_publish_json(queue_fd, file, doc, true);
		json_decref(doc);
		if (pr == -EEXIST) {
			fprintf(stderr, "vigilctl spawn: a spawn request for worker %s is already queued "
					"(coordination/spawn/queue/%s)\n", id, file);
			goto out;
		}
		if (pr < 0) {
			fprintf(stderr, "vigilctl spawn: cannot write coordination/spawn/queue/%s: %s\n", file,
				strerror(-pr));
			goto out;
		}
	} else {
		/* The smallest free worker-<T>-<NNN>.  Concurrent spawns may pick
		 * the same number: linkat() lets exactly one of them have it,
		 * and the others move on to the next. */
		char prefix[VIGIL_ID_MAX + 16];
		snprintf(prefix, sizeof prefix, "worker-%s-", type);
		if (strlen(prefix) + 3 > VIGIL_ID_MAX) {
			fprintf(stderr, "vigilctl spawn: worker type '%s' is too long for a generated id (%s<NNN> exceeds %d "
					"characters); give --id\n", type, prefix, VIGIL_ID_MAX);
			goto out;
		}
		unsigned char *used = calloc(VIGILCTL_ID_NUM_MAX + 1, 1);
		if (used == NULL) {
			fprintf(stderr, "vigilctl spawn: out of memory\n");
			goto out;
		}
		mark_used(active_fd, prefix, used);
		mark_used(zombie_fd, prefix, used);
		mark_used(queue_fd, prefix, used);
		bool done = false, reported = false;
		for (long n = 1; n <= VIGILCTL_ID_NUM_MAX && !done; n++) {
			if (used[n])
				continue;
			char cand[128];
			snprintf(cand, sizeof cand, "%s%03ld", prefix, n);
			if (!vigil_id_valid(cand))
				break; /* too long from here on */
			snprintf(file, sizeof file, "%s.json", cand);
			/* Looked again: vigild may have started one meanwhile. */
			if (ctl_exists_at(active_fd, file) || ctl_exists_at(zombie_fd, file))
				continue;
			failed_before = stamp_at(failed_fd, file);
			snprintf(reason_name, sizeof reason_name, "%s.reason", file);
			rejected_before = stamp_at(rejected_fd, reason_name);
			uint64_t now = vigil_unix_ms();
			bool too_big;
			json_t *doc = spawn_doc(cand, type, task, command, cwd, tokens, timeout_s != NULL, timeout, now,
						&too_big);
			if (doc == NULL) {
				spawn_doc_error(too_big, cwd);
				reported = true;
				break;
			}
			int pr = ctl_publish_json(queue_fd, file, doc, true);
			json_decref(doc);
			if (pr == -EEXIST)
				continue;
			if (pr < 0) {
				fprintf(stderr, "vigilctl spawn: cannot write coordination/spawn/queue/%s: %s\n", file,
					strerror(-pr));
				reported = true;
				break;
			}
			snprintf(id, sizeof id, "%s", cand);
			done = true;
		}
		free(used);
		if (!done) {
			if (!reported)
				fprintf(stderr, "vigilctl spawn: no free worker id %s<NNN> (NNN up to %d)\n", prefix,
					VIGILCTL_ID_NUM_MAX);
			goto out;
		}
	}

	printf("%s\n", id);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl spawn: cannot write output: %s (worker %s is queued)\n", strerror(errno), id);
		goto out;
	}
	pid_t pid;
	char why[768] = "";
	int running = ctl_vigild_running(c, &pid, why, sizeof why);
	if (running == 0) {
		fprintf(stderr, "vigilctl: vigild is not running; the spawn request stays queued\n");
		rc = wait ? EXIT_FAIL : EXIT_OK;
		goto out;
	}
	if (running < 0)
		fprintf(stderr, "vigilctl: warning: cannot tell whether vigild is running: %s\n", why);
	rc = wait ? spawn_wait(c, queue_fd, id, file, &failed_before, &rejected_before) : EXIT_OK;
out:
	close(queue_fd);
	if (active_fd >= 0)
		close(active_fd);
	if (zombie_fd >= 0)
		close(zombie_fd);
	if (failed_fd >= 0)
		close(failed_fd);
	if (rejected_fd >= 0)
		close(rejected_fd);
	free(cwd);
	json_decref(command);
	return rc;
}

