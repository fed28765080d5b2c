/*
 * queuefile.c - the files of vigild's request queues (restart/queue,
 * spawn/queue, control/queue) and of its own records read back
 * (worker specs, coordination/lifecycle): listing, reading, validating.
 *
 * What it is: the codec every reader of those directories goes through, so
 * that one set of rules holds for all of them: names ([^.]*.json, < 128
 * bytes), size (64 KiB), no NUL byte, one JSON object, no duplicate keys,
 * ids as the README's "Names" says, a command as a non-empty list of
 * strings; a file that is a symbolic link, not a regular file, or not
 * trusted (trust.h) is a lasting fault, rejected at once; a file that does
 * not parse yet may still be being written (the runbook's `cat > file <<
 * EOF`), so it is judged only once it has been left alone for 2 s.
 */
#define _GNU_SOURCE
#include "queuefile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"
#include "util.h"
#include "vigil.h"

#define REQUEST_MAX_BYTES 65536u

bool vigil_queue_name_ok(const char *n)
{
	size_t len = strlen(n);
	return n[0] != '.' && len > 5 && len < 128 && strcmp(n + len - 5, ".json") == 0;
}

static int cmp_names(const void *x, const void *y)
{
	return strcmp((const char *)x, (const char *)y);
}

/* Lists up to max request files of a directory, sorted (oldest names
 * first for the formats vigil writes).  Returns the count. */
uint32_t vigil_queue_list(int dirfd, char (*names)[128], uint32_t max)
{
	DIR *d = vigil_fs_opendir_at(dirfd);
	if (d == NULL)
		return 0;
	uint32_t n = 0;
	struct dirent *de;
	while (n < max && (de = readdir(d)) != NULL)
		if (vigil_queue_name_ok(de->d_name))
			memcpy(names[n++], de->d_name, strlen(de->d_name) + 1); /* < 128 bytes: vigil_queue_name_ok */
	closedir(d);
	qsort(names, n, 128, cmp_names);
	return n;
}

/* Reads and parses a small JSON object file; NULL with why set. */
json_t *vigil_queue_read(int dirfd, const char *name, char *why, size_t why_len)
{
	/* Acted on only when vigild's user (or root) wrote it into a directory
	 * nobody else can write (trust.h): a queue made world-writable after
	 * start must not let anyone's request run as vigild's user. */
	int tfd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (tfd >= 0) {
		char twhy[200];
		int trc = vigil_trust_file(dirfd, name, tfd, twhy, sizeof twhy);
		close(tfd);
		if (trc == -EPERM) {
			snprintf(why, why_len, "not trusted: %s", twhy);
			return NULL;
		}
	}
	char *buf;
	size_t len;
	int rc = vigil_fs_read(dirfd, name, REQUEST_MAX_BYTES, &buf, &len);
	/* Lasting faults of the file itself are worded apart from "cannot
	 * read" (a transient failure, retried): see vigil_queue_should_reject(). */
	if (rc == -ELOOP)
		snprintf(why, why_len, "a symbolic link (never followed)");
	else if (rc == -EINVAL)
		snprintf(why, why_len, "not a regular file");
	else if (rc == -EFBIG)
		snprintf(why, why_len, "larger than 64 KiB");
	else if (rc < 0)
		snprintf(why, why_len, "cannot read: %s", strerror(-rc));
	if (rc < 0)
		return NULL;
	if (memchr(buf, '\0', len) != NULL) {
		free(buf);
		snprintf(why, why_len, "contains a NUL byte");
		return NULL;
	}
	json_error_t je;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (o == NULL) {
		snprintf(why, why_len, "not valid JSON (line %d column %d: %s)", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(why, why_len, "not a JSON object");
		return NULL;
	}
	return o;
}

/* An id field: absent (opt) or a valid name; copies into out. */
bool vigil_queue_get_id(json_t *o, const char *key, bool required, char out[65], char *why, size_t why_len)
{
	json_t *v = json_object_get(o, key);
	out[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		if (required)
			snprintf(why, why_len, "key '%s' is missing", key);
		return !required;
	}
	if (!json_is_string(v) || (json_string_length(v) > 0 && !vigil_id_valid(json_string_value(v))) ||
	    (required && json_string_length(v) == 0)) {
		snprintf(why, why_len, "key '%s' must be a string matching [A-Za-z0-9._-]{1,64}, not starting with '.'",
			 key);
		return false;
	}
	snprintf(out, 65, "%s", json_string_value(v));
	return true;
}

/* A command array: non-empty, strings only, bounded. */
bool vigil_queue_command_ok(json_t *cmd)
{
	if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > 256)
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(cmd, i, v) if (!json_is_string(v) || json_string_length(v) > 4096 ||
					  memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) return false;
	return true;
}

/* A request still being written (the runbook's `cat > file << EOF` makes
 * the file before it fills it) is not malformed yet: judge it once it has
 * been left alone for 2 s. */
bool vigil_queue_still_written(int qfd, const char *name)
{
	struct stat st;
	if (fstatat(qfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return true; /* gone meanwhile: nothing to judge */
	uint64_t mtime_ms = (uint64_t)st.st_mtim.tv_sec * 1000ull + (uint64_t)st.st_mtim.tv_nsec / 1000000ull;
	return mtime_ms + 2000 > vigil_unix_ms();
}

/* Whether a queue file that could not be taken (why) goes to rejected/ now:
 * never for a transient read failure; at once for a link or a non-regular
 * file (nobody is writing those); else once its writer has had time to
 * finish (a file still growing is not yet malformed). */
bool vigil_queue_should_reject(int qfd, const char *name, const char *why)
{
	if (strncmp(why, "cannot read", 11) == 0)
		return false;
	if (strncmp(why, "a symbolic link", 15) == 0 || strncmp(why, "not a regular file", 18) == 0 ||
	    strncmp(why, "not trusted", 11) == 0)
		return true; /* nobody is still writing those; never run */
	return !vigil_queue_still_written(qfd, name);
}

json_t *vigil_queue_restart_doc(const char *worker_id, const char *worker_type, const char *task_id,
				const char *reason, const char *source, uint64_t now_ms)
{
	json_t *r = json_string(reason);
	if (r == NULL)
		return NULL;
	json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "worker_id", worker_id, "worker_type", worker_type, "task_id",
			      task_id, "reason", r);
	if (o == NULL)
		return NULL;
	if (vigil_json_stamp(o, "created_at", "created_at_ms", now_ms) < 0 ||
	    (source != NULL && json_object_set_new(o, "source", json_string(source)) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}
