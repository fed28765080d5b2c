/*
 * util.h - clocks, timestamps and the file rules of README "What vigild writes".
 *
 * Every file vigild writes goes through two functions here:
 *   vigil_fs_replace()  a .json document: temp file in the same directory,
 *                       then renameat() over the old one.  A reader never
 *                       sees half a document; a failed write leaves the
 *                       old one intact.
 *   vigil_fs_append()   a .jsonl line: one write() on an O_APPEND fd; a
 *                       short write is cut back with ftruncate() so that a
 *                       partial line is never left behind.
 * Both work relative to directory descriptors opened with O_NOFOLLOW, so a
 * symbolic link planted inside coordination/ is never followed.
 */
#ifndef VIGIL_UTIL_H
#define VIGIL_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <dirent.h>
#include <stdint.h>

#define VIGIL_NS_PER_S 1000000000ull
#define VIGIL_NS_PER_MS 1000000ull

uint64_t vigil_mono_ns(void);
uint64_t vigil_unix_ms(void);
/* Wall clock in microseconds (event stamps finer than a millisecond). */
uint64_t vigil_unix_us(void);

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) into out (at least 21 bytes). */
void vigil_iso8601(uint64_t unix_ms, char out[static 21]);

/* Adds "timestamp" and "timestamp_ms" for unix_ms to obj; 0 or -ENOMEM. */
int vigil_json_stamp(json_t *obj, const char *key_iso, const char *key_ms, uint64_t unix_ms);

/* Opens (creating when missing, mode 0755) the directory path relative to
 * dirfd, one component at a time, never following a symbolic link.
 * Returns an O_DIRECTORY fd or -errno. */
int vigil_fs_open_dir(int dirfd, const char *path, bool create);

/* Atomic replace of name in dirfd with data.  0 or -errno. */
int vigil_fs_replace(int dirfd, const char *name, const void *data, size_t len);

/* json_dumps(JSON_COMPACT) + "\n", then vigil_fs_replace.  0 or -errno. */
int vigil_fs_replace_json(int dirfd, const char *name, const json_t *doc);

/* The same guarantee (a reader of name sees a whole document, old or new)
 * for a file rewritten again and again (worker specs): the document is
 * written over a per-file shadow ".<name>.shadow" kept in the same
 * directory, which renameat2(RENAME_EXCHANGE) then swaps with name, so the
 * shadow keeps the previous version for the next write and no inode is
 * allocated per write (on ext4 that allocation was most of the cost; see
 * bench/README.md).  Falls back to vigil_fs_replace where the exchange is
 * not available.  vigil_fs_remove removes the shadow too.  0 or -errno. */
int vigil_fs_replace_shadow(int dirfd, const char *name, const void *data, size_t len);
int vigil_fs_replace_json_shadow(int dirfd, const char *name, const json_t *doc);

/* Opens name in dirfd for appending (created 0644), O_NOFOLLOW.  fd or -errno. */
int vigil_fs_open_append(int dirfd, const char *name);

/* One line, one write(): line must end in '\n'.  0 or -errno; on a short
 * write the file is truncated back to its size before the call. */
int vigil_fs_append(int fd, const char *line, size_t len);

/* Compact JSON line of obj appended to fd.  0 or -errno. */
int vigil_fs_append_json(int fd, const json_t *obj);

/* Reads a whole regular file (not a symlink) of at most max_len bytes.
 * *out is malloc'd and NUL-terminated.  0 or -errno (-EFBIG too large,
 * -ELOOP symlink, -EINVAL not a regular file). */
int vigil_fs_read(int dirfd, const char *name, size_t max_len, char **out, size_t *out_len);

/* Unlink name in dirfd, and its shadow if it has one (see
 * vigil_fs_replace_shadow); a missing file is success.  0 or -errno. */
int vigil_fs_remove(int dirfd, const char *name);

/* A directory stream over dirfd, from its first entry, that leaves dirfd
 * itself open: closedir() it.  (A dup shares dirfd's offset, so it is
 * rewound: whoever read dirfd before may have left it at the end.)  NULL
 * with errno on failure. */
DIR *vigil_fs_opendir_at(int dirfd);

/* Removes the temporary files vigil_fs_replace() leaves when its writer is
 * killed between create and rename: ".<name>.tmp.<pid>.<n>" whose <pid> no
 * longer exists (a live writer's are left alone).  Never follows a link
 * (one named so is removed itself) and never removes a directory.  At most
 * 64 per call (more wait for the next).  Also removes a shadow
 * ".<name>.shadow" whose name is gone.  Returns how many were removed. */
int vigil_fs_sweep_tmp(int dirfd);

/* Copies a fixed 64-byte id field from the segment into a NUL-terminated
 * buffer and says whether it obeys the name rule (README "What vigild writes"). */
bool vigil_id_copy(char dst[65], const char src[64]);

/* Writes a printable, escaped rendering of untrusted bytes (for messages):
 * non [A-Za-z0-9._-] bytes become \xNN. */
void vigil_id_render(const char *src, size_t n, char *out, size_t out_len);


/* Resolves the home (README "What vigild writes"): arg, else $COMMIT_RELAY_HOME, else ".", to
 * an absolute real path in out; and the segment name: shm_arg, else
 * $VIGIL_SHM, else derived from the home.  0 or -errno with err set. */
int vigil_home_resolve(const char *home_arg, const char *shm_arg, char *home_out, size_t home_len,
		       char *shm_out, size_t shm_len, char *err, size_t err_len);

#endif /* VIGIL_UTIL_H */
