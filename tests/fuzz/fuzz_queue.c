/*
 * fuzz_queue.c - the restart, spawn and control queue files, and history
 * lines appended by others, as vigild's action thread takes them.
 *
 * take_restart_request / take_spawn_request / take_control_request are
 * static in src/restart.c, so they are reached the way vigild reaches them:
 * a file lands in coordination/<queue>/ and vigil_restart_poll() runs.
 * The harness builds what main.c builds (a home, the coordination tree, a
 * segment, a scanner that is never started, the action state) once, and
 * per input:
 *   byte 0 selects where the rest goes: % 4 = restart/queue, spawn/queue
 *   (named after the input's "worker_id" when that is a valid id, so the
 *   "file name must be <worker_id>.json" check is passed), control/queue,
 *   or appended to metrics/worker-restart-history.jsonl; bit 2 makes the
 *   file look fresh (mtime now: "still being written") instead of 10 s old;
 * then one poll, and everything the poll wrote must be valid: each .json
 * file one JSON document, each .jsonl line one JSON object.  The restart
 * state is rebuilt between inputs.
 *
 * Safety: fork() is replaced in this program by one that fails with
 * EAGAIN, so a fuzzed "command" can never run; the spawn path is then
 * exercised up to and including its fork-failure handling.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "action.h"
#include "fuzz_common.h"
#include "log.h"
#include "policy.h"
#include "restart.h"
#include "scanner.h"
#include "segment.h"
#include "util.h"
#include "vigil.h"

/* No process is ever started by this harness (see above). */
pid_t fork(void)
{
	errno = EAGAIN;
	return -1;
}

static char home[512], shm_name[64];
static int home_fd = -1;
static struct vigil_segment seg;
static struct vigil_scanner scanner;
static struct vigil_action action;
static unsigned long iterations;

static const char *const TREE[] = {
	"coordination/config",         "coordination/worker-specs/active", "coordination/worker-specs/zombie",
	"coordination/events",         "coordination/patterns",            "coordination/restart/queue",
	"coordination/restart/rejected", "coordination/circuit-breakers",  "coordination/metrics",
	"agents/logs/system",
};

/* Directories whose content one input may leave behind. */
static const char *const SCRATCH[] = {
	"coordination/restart/queue",  "coordination/restart/rejected",  "coordination/spawn/queue",
	"coordination/spawn/failed",   "coordination/control/queue",     "coordination/control/done",
	"coordination/circuit-breakers", "coordination/worker-specs/active", "coordination/worker-specs/zombie",
	"agents/logs/workers",
};

static void cleanup(void)
{
	if (shm_name[0] != '\0')
		shm_unlink(shm_name);
}

static void init_once(void)
{
	urcu_memb_register_thread();
	setenv("PATH", "/nonexistent-vigil-fuzz", 1);
	fuzz_mkdtemp(home, sizeof home, "queue");
	home_fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home_fd < 0)
		abort();
	for (size_t i = 0; i < sizeof TREE / sizeof TREE[0]; i++) {
		int fd = vigil_fs_open_dir(home_fd, TREE[i], true);
		if (fd < 0)
			abort();
		close(fd);
	}
	vigil_log_open(home_fd);
	snprintf(shm_name, sizeof shm_name, "/vigil-fuzz-queue-%d", (int)getpid());
	shm_unlink(shm_name);
	atexit(cleanup);
	char err[512];
	if (vigil_segment_open(&seg, shm_name, 16, 0600, true, true, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	struct vigil_heartbeat_policy hb;
	struct vigil_restart_policy rp;
	struct vigil_autofix_policy ap;
	vigil_policy_heartbeat_defaults(&hb);
	vigil_policy_restart_defaults(&rp);
	vigil_policy_autofix_defaults(&ap);
	rp.retry_interval_seconds = 0; /* restarts are due at once: the spawn path runs (and its fork fails) */
	ap.notification_enabled = false;
	if (vigil_scanner_init(&scanner, &seg, &hb) < 0 ||
	    vigil_action_init(&action, home_fd, &seg, &scanner, &hb, &rp, &ap) < 0)
		abort();
}

static void clear_dir(const char *rel)
{
	int fd = vigil_fs_open_dir(home_fd, rel, false);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

static void truncate_file(const char *rel)
{
	int fd = openat(home_fd, rel, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
}

/* Every string member named "timestamp" or "*_at" is README "What vigild writes"'s form. */
static void check_stamps(const json_t *o, const char *where)
{
	const char *key;
	json_t *v;
	if (!json_is_object(o))
		return;
	json_object_foreach((json_t *)o, key, v) {
		size_t n = strlen(key);
		if (json_is_string(v) && (strcmp(key, "timestamp") == 0 || (n > 3 && strcmp(key + n - 3, "_at") == 0)))
			FUZZ_CHECK(fuzz_iso8601_ok(json_string_value(v)), "%s: \"%s\" is '%s'", where, key,
				   json_string_value(v));
		check_stamps(v, where);
	}
}

/* Every .json file vigild wrote in rel is one JSON document. */
static void check_json_dir(const char *rel)
{
	int fd = vigil_fs_open_dir(home_fd, rel, false);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		if (strcmp(rel, "coordination/restart/rejected") == 0 || strcmp(rel, "coordination/restart/queue") == 0 ||
		    strcmp(rel, "coordination/spawn/queue") == 0 || strcmp(rel, "coordination/control/queue") == 0)
			continue; /* the input itself, moved or left */
		char *buf;
		size_t len;
		if (vigil_fs_read(dirfd(d), de->d_name, 1 << 20, &buf, &len) < 0)
			continue;
		json_error_t e;
		json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
		FUZZ_CHECK(o != NULL, "%s/%s is not JSON (%s): %.*s", rel, de->d_name, e.text, (int)len, buf);
		check_stamps(o, de->d_name);
		json_decref(o);
		free(buf);
	}
	closedir(d);
}

/* Every complete line of rel is one JSON object. */
static void check_jsonl(const char *rel, bool appended_by_us)
{
	int fd = openat(home_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size > (1 << 24)) {
		close(fd);
		return;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = buf != NULL ? pread(fd, buf, (size_t)st.st_size, 0) : -1;
	close(fd);
	if (n <= 0) {
		free(buf);
		return;
	}
	size_t start = 0;
	for (size_t i = 0; i < (size_t)n; i++) {
		if (buf[i] != '\n')
			continue;
		json_error_t e;
		json_t *o = json_loadb(buf + start, i - start, JSON_REJECT_DUPLICATES, &e);
		FUZZ_CHECK(appended_by_us || (o != NULL && json_is_object(o)), "%s: a line is not one object (%s): %.*s",
			   rel, e.text, (int)(i - start), buf + start);
		if (!appended_by_us)
			check_stamps(o, rel);
		json_decref(o);
		start = i + 1;
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (home_fd < 0)
		init_once();
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	const char *dir;
	char name[128] = "worker-fuzz-001-restart.json";
	switch (sel % 4) {
	case 0: dir = "coordination/restart/queue"; break;
	case 1: {
		dir = "coordination/spawn/queue";
		snprintf(name, sizeof name, "worker-fuzz-001.json");
		json_t *o = json_loadb(text, len, 0, NULL);
		const char *id = json_string_value(json_object_get(o, "worker_id"));
		if (id != NULL && vigil_id_valid(id))
			snprintf(name, sizeof name, "%s.json", id);
		json_decref(o);
		break;
	}
	case 2:
		dir = "coordination/control/queue";
		snprintf(name, sizeof name, "ctl-%lu.json", iterations % 4);
		break;
	default:
		dir = "coordination/metrics";
		snprintf(name, sizeof name, "worker-restart-history.jsonl");
		break;
	}
	iterations++;

	int dfd = vigil_fs_open_dir(home_fd, dir, true);
	if (dfd < 0)
		abort();
	int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (sel % 4 == 3 ? O_APPEND : O_TRUNC);
	int fd = openat(dfd, name, flags, 0644);
	if (fd < 0)
		abort();
	if (len > 0 && write(fd, text, len) != (ssize_t)len)
		abort();
	if ((sel & 4) == 0) {
		struct timespec old[2];
		clock_gettime(CLOCK_REALTIME, &old[0]);
		old[0].tv_sec -= 10;
		old[1] = old[0];
		futimens(fd, old);
	}
	close(fd);
	close(dfd);

	vigil_restart_poll(&action);

	/* What vigild wrote must follow README "What vigild writes". */
	check_json_dir("coordination/circuit-breakers");
	check_json_dir("coordination/spawn/failed");
	check_json_dir("coordination/control/done");
	check_json_dir("coordination/worker-specs/active");
	check_json_dir("coordination/metrics");
	check_jsonl("coordination/events/heartbeat-events.jsonl", false);
	check_jsonl("coordination/metrics/worker-restart-history.jsonl", sel % 4 == 3);

	/* Back to a fresh state for the next input (the restart state; the
	 * failure patterns and auto-fix state are not touched by queue files,
	 * and rebuilding them costs more than the rest of an input). */
	vigil_restart_destroy(&action);
	for (size_t i = 0; i < sizeof SCRATCH / sizeof SCRATCH[0]; i++)
		clear_dir(SCRATCH[i]);
	truncate_file("coordination/metrics/worker-restart-history.jsonl");
	truncate_file("coordination/metrics/auto-fix-history.jsonl");
	truncate_file("coordination/events/heartbeat-events.jsonl");
	if (iterations % 256 == 0) {
		static const char *const logs[] = {"heartbeat-monitor-daemon.log", "failure-pattern-daemon.log",
						   "auto-fix-daemon.log", "worker-restart-daemon.log"};
		for (size_t i = 0; i < 4; i++) {
			char rel[128];
			snprintf(rel, sizeof rel, "agents/logs/system/%s", logs[i]);
			truncate_file(rel);
		}
	}
	if (vigil_restart_init(&action) < 0)
		abort();
	return 0;
}
