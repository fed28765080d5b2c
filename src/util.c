/*
 * util.c - clocks, timestamps, and the atomic file writes of README "What vigild writes".
 *
 * Trade-off: vigil_fs_replace() does not fsync.  The rule it serves is that
 * a reader never sees half a document; durability across a power cut of a
 * worker spec that is rewritten every second anyway is not worth ~1 ms of
 * disk flush per file.  Files whose loss would lose work (queues, history)
 * are appended, and their callers decide about fsync.
 */
#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "vigil.h"

uint64_t vigil_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * VIGIL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t vigil_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / VIGIL_NS_PER_MS;
}

uint64_t vigil_unix_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000ull;
}

void vigil_iso8601(uint64_t unix_ms, char out[static 21])
{
	/* Past 9999-12-31T23:59:59Z the format needs more than 4 year digits
	 * (and strftime would leave out unterminated): clamp.  Such times only
	 * come from garbage (a scribbled segment, a forged history line). */
	if (unix_ms > 253402300799999ull)
		unix_ms = 253402300799999ull;
	time_t t = (time_t)(unix_ms / 1000ull);
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 21, "1970-01-01T00:00:00Z");
}

int vigil_json_stamp(json_t *obj, const char *key_iso, const char *key_ms, uint64_t unix_ms)
{
	char iso[21];
	vigil_iso8601(unix_ms, iso);
	if (json_object_set_new(obj, key_iso, json_string(iso)) < 0 ||
	    json_object_set_new(obj, key_ms, json_integer((json_int_t)unix_ms)) < 0)
		return -ENOMEM;
	return 0;
}

int vigil_fs_open_dir(int dirfd, const char *path, bool create)
{
	char buf[1024];
	if (strlen(path) >= sizeof buf)
		return -ENAMETOOLONG;
	snprintf(buf, sizeof buf, "%s", path);
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	char *save = NULL;
	/* Bounded by the path length: one iteration per component. */
	for (char *comp = strtok_r(buf, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save)) {
		if (strcmp(comp, "..") == 0) {
			close(fd);
			return -EINVAL;
		}
		int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				int e = -errno;
				close(fd);
				return e;
			}
			next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0) {
			int e = -errno;
			close(fd);
			/* ENOTDIR also covers a symlink under O_NOFOLLOW|O_DIRECTORY. */
			return e;
		}
		close(fd);
		fd = next;
	}
	return fd;
}

int vigil_fs_replace(int dirfd, const char *name, const void *data, size_t len)
{
	char tmp[320];
	static _Atomic unsigned long seq; /* distinct temp names per process */
	int n = snprintf(tmp, sizeof tmp, ".%s.tmp.%d.%lu", name, (int)getpid(),
			 atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed));
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -ENAMETOOLONG;
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	const char *p = data;
	size_t left = len;
	int rc = 0;
	/* Bounded: each pass writes at least one byte or fails. */
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	/* renameat replaces a symlink named `name` itself, never its target. */
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

/* The shadow of name: ".<name>.shadow" (a dot file: never matched by a
 * reader's `*.json`). */
static int shadow_name(const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, ".%s.shadow", name);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* Opens the shadow for rewriting: an existing regular file with one link
 * (ours from the last write), else a fresh one.  Anything else found under
 * that name (a link, a FIFO, a hard link to another file, a directory) is
 * not written through: it is unlinked and a new file made.  fd or -errno. */
static int shadow_open(int dirfd, const char *shadow, bool *fresh)
{
	/* O_NONBLOCK: a FIFO planted under the name must not block the open;
	 * no O_TRUNC before we know what the file is. */
	int fd = openat(dirfd, shadow, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) {
			*fresh = false;
			return fd;
		}
		close(fd);
	}
	if (fd >= 0 || errno != ENOENT)
		(void)unlinkat(dirfd, shadow, 0); /* EISDIR: the create below fails and the caller falls back */
	*fresh = true;
	fd = openat(dirfd, shadow, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	return fd >= 0 ? fd : -errno;
}

int vigil_fs_replace_shadow(int dirfd, const char *name, const void *data, size_t len)
{
	char shadow[320];
	if (shadow_name(name, shadow, sizeof shadow) < 0)
		return vigil_fs_replace(dirfd, name, data, len);
	bool fresh;
	int fd = shadow_open(dirfd, shadow, &fresh);
	if (fd < 0)
		return vigil_fs_replace(dirfd, name, data, len);
	const char *p = data;
	size_t left = len;
	off_t off = 0;
	int rc = 0;
	/* Bounded: each pass writes at least one byte or fails.  Over the old
	 * content from offset 0, then cut to length: the file keeps its
	 * blocks, nothing is allocated when the size stays about the same. */
	while (left > 0) {
		ssize_t w = pwrite(fd, p, left, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		p += w;
		off += w;
		left -= (size_t)w;
	}
	if (rc == 0 && !fresh && ftruncate(fd, (off_t)len) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		(void)unlinkat(dirfd, shadow, 0);
		return vigil_fs_replace(dirfd, name, data, len);
	}
	/* One atomic step: name now holds the new document and the shadow the
	 * old one (kept for the next write).  A reader of name sees the old or
	 * the new document, never a mix.  A symbolic link or anything else
	 * planted as name ends up as the shadow, where the next write unlinks
	 * it (shadow_open): it is never followed. */
	if (renameat2(dirfd, shadow, dirfd, name, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno == ENOENT && renameat(dirfd, shadow, dirfd, name) == 0)
		return 0; /* first write of name: no old document to keep */
	/* No RENAME_EXCHANGE here (EINVAL: the file system lacks it), or name
	 * is a directory: the temp-file path, as before. */
	(void)unlinkat(dirfd, shadow, 0);
	return vigil_fs_replace(dirfd, name, data, len);
}

/* doc as one compact line ending in '\n', handed to write (one of the two
 * replace paths); 0 or -errno. */
static int replace_json_with(int dirfd, const char *name, const json_t *doc,
			     int (*write)(int, const char *, const void *, size_t))
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s == NULL)
		return -ENOMEM;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (line == NULL) {
		free(s);
		return -ENOMEM;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	int rc = write(dirfd, name, line, n + 1);
	free(line);
	return rc;
}

int vigil_fs_replace_json_shadow(int dirfd, const char *name, const json_t *doc)
{
	return replace_json_with(dirfd, name, doc, vigil_fs_replace_shadow);
}

/* The writer's pid in a name made by vigil_fs_replace(), or 0. */
static long tmp_name_pid(const char *name)
{
	if (name[0] != '.')
		return 0;
	const char *t = NULL;
	for (const char *p = strstr(name, ".tmp."); p != NULL; p = strstr(p + 1, ".tmp."))
		t = p; /* the last one: <name> itself may contain ".tmp." */
	if (t == NULL)
		return 0;
	char *end;
	errno = 0;
	long pid = strtol(t + 5, &end, 10);
	if (errno != 0 || end == t + 5 || *end != '.' || pid <= 0)
		return 0;
	const char *q = end + 1;
	if (*q == '\0')
		return 0;
	for (; *q != '\0'; q++)
		if (*q < '0' || *q > '9')
			return 0;
	return pid;
}

DIR *vigil_fs_opendir_at(int dirfd)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	rewinddir(d);
	return d;
}

int vigil_fs_sweep_tmp(int dirfd)
{
	enum { SWEEP_MAX = 64 };
	DIR *d = vigil_fs_opendir_at(dirfd);
	if (d == NULL)
		return 0;
	static char names[SWEEP_MAX][256]; /* start-up only, one thread */
	int n = 0;
	struct dirent *de;
	/* Collect, then unlink: never change a directory while reading it. */
	while (n < SWEEP_MAX && (de = readdir(d)) != NULL) {
		size_t dl = strlen(de->d_name);
		if (dl > 8 && de->d_name[0] == '.' && strcmp(de->d_name + dl - 7, ".shadow") == 0) {
			/* A shadow whose document is gone (vigild was killed between
			 * removing a spec and its shadow): nothing will reuse it. */
			char doc[256];
			snprintf(doc, sizeof doc, "%.*s", (int)(dl - 8), de->d_name + 1);
			struct stat st;
			if (fstatat(dirfd, doc, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
				snprintf(names[n++], sizeof names[0], "%s", de->d_name);
			continue;
		}
		long pid = tmp_name_pid(de->d_name);
		/* Our own pid too: no write of ours is in flight at start-up, so
		 * such a file is a predecessor's (a vigild that had our pid). */
		if (pid <= 0 || pid > INT32_MAX)
			continue;
		if (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue; /* its writer lives (or we may not know): not ours to judge */
		snprintf(names[n++], sizeof names[0], "%s", de->d_name);
	}
	closedir(d);
	int removed = 0;
	for (int i = 0; i < n; i++)
		removed += unlinkat(dirfd, names[i], 0) == 0; /* a directory fails with EISDIR: kept */
	return removed;
}

int vigil_fs_replace_json(int dirfd, const char *name, const json_t *doc)
{
	return replace_json_with(dirfd, name, doc, vigil_fs_replace);
}

int vigil_fs_open_append(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int vigil_fs_append(int fd, const char *line, size_t len)
{
	if (len == 0 || line[len - 1] != '\n')
		return -EINVAL;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	ssize_t w;
	do
		w = write(fd, line, len);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)len)
		return 0;
	int e = w < 0 ? -errno : -ENOSPC;
	/* Cut a partial line back off.  Another appender may have written
	 * after st_size in between; the history files have few writers and
	 * a torn line there is skipped by readers, so this is best effort. */
	if (w > 0 && ftruncate(fd, st.st_size) < 0)
		e = -errno;
	return e;
}

int vigil_fs_append_json(int fd, const json_t *obj)
{
	char buf[4096];
	size_t n = json_dumpb(obj, buf, sizeof buf - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (n == 0)
		return -EINVAL;
	if (n < sizeof buf - 1) {
		buf[n] = '\n';
		return vigil_fs_append(fd, buf, n + 1);
	}
	char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s == NULL)
		return -ENOMEM;
	size_t len = strlen(s);
	char *line = realloc(s, len + 2);
	if (line == NULL) {
		free(s);
		return -ENOMEM;
	}
	line[len] = '\n';
	int rc = vigil_fs_append(fd, line, len + 1);
	free(line);
	return rc;
}

int vigil_fs_read(int dirfd, const char *name, size_t max_len, char **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max_len) {
		close(fd);
		return -EFBIG;
	}
	char *buf = malloc(max_len + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	/* Bounded by max_len: the file may grow while we read; stop there. */
	while (got <= max_len) {
		ssize_t r = read(fd, buf + got, max_len + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			free(buf);
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got > max_len) {
			free(buf);
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*out_len = got;
	return 0;
}

int vigil_fs_remove(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	/* Its shadow goes with it (vigil_fs_replace_shadow), if it has one. */
	char shadow[320];
	if (shadow_name(name, shadow, sizeof shadow) == 0)
		(void)unlinkat(dirfd, shadow, 0);
	return 0;
}

bool vigil_id_copy(char dst[65], const char src[64])
{
	memcpy(dst, src, 64);
	dst[64] = '\0';
	return vigil_id_valid(dst);
}

void vigil_id_render(const char *src, size_t n, char *out, size_t out_len)
{
	size_t o = 0;
	if (out_len == 0)
		return;
	for (size_t i = 0; i < n && src[i] != '\0' && o + 5 < out_len; i++) {
		unsigned char c = (unsigned char)src[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			     c == '.' || c == '_' || c == '-';
		if (plain)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

int vigil_home_resolve(const char *home_arg, const char *shm_arg, char *home_out, size_t home_len,
		       char *shm_out, size_t shm_len, char *err, size_t err_len)
{
	const char *home = home_arg;
	if (home == NULL || home[0] == '\0')
		home = getenv("COMMIT_RELAY_HOME");
	if (home == NULL || home[0] == '\0')
		home = ".";
	char real[4096];
	if (realpath(home, real) == NULL) {
		int e = -errno;
		snprintf(err, err_len, "home '%s': %s", home, strerror(-e));
		return e;
	}
	if (strlen(real) >= home_len) {
		snprintf(err, err_len, "home '%s': path too long", home);
		return -ENAMETOOLONG;
	}
	snprintf(home_out, home_len, "%s", real);
	const char *shm = shm_arg;
	if (shm == NULL || shm[0] == '\0')
		shm = getenv("VIGIL_SHM");
	if (shm != NULL && shm[0] != '\0') {
		if (vigil_segment_name_check(shm) < 0 || strlen(shm) >= shm_len) {
			snprintf(err, err_len,
				 "segment name '%s' is invalid: want '/' followed by 1..%d of [A-Za-z0-9._-]", shm,
				 VIGIL_SHM_NAME_MAX - 1);
			return -EINVAL;
		}
		snprintf(shm_out, shm_len, "%s", shm);
		return 0;
	}
	int rc = vigil_segment_name_for_home(real, shm_out, shm_len);
	if (rc < 0)
		snprintf(err, err_len, "cannot derive a segment name for '%s': %s", real, strerror(-rc));
	return rc;
}
