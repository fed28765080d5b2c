/*
 * trust.h - whether vigild may act on a file in its home, by who owns it
 * and who could have written it (like sshd's StrictModes).
 *
 * vigild runs commands named in files: spawn and restart requests, the
 * specs it restarts from, notify_command in a policy.  Run as root, a
 * queue that anyone can write into would run anyone's command as root.  So
 * a file is acted on only when
 *   - it is a regular file, not a symbolic link (checked on the name, and
 *     the name must still be the opened file);
 *   - it is owned by vigild's effective user or by root, and is not
 *     writable by group or others;
 *   - its directory is owned by vigild's effective user or by root and is
 *     not writable by group or others (else anyone could have put it there
 *     or swapped it).
 * vigild also refuses to start on a home whose coordination/ directories
 * fail the directory rule, naming the path and the fix (README.md,
 * "Trust: who may write into the home").
 */
#ifndef VIGIL_TRUST_H
#define VIGIL_TRUST_H

#include <stdbool.h>
#include <stddef.h>

/* The file `name` in the directory dirfd, already opened as fd (O_NOFOLLOW),
 * may be acted on: 0.  -EPERM (foreign owner, group/world writable file or
 * directory, a name that is now something else), -EINVAL (not a regular
 * file) or another -errno (fstat failed), with one sentence in why
 * (always terminated when why_len > 0).  Reads only metadata; never
 * follows a link; no allocation. */
int vigil_trust_file(int dirfd, const char *name, int fd, char *why, size_t why_len);

/* The directory dirfd (shown as `shown` in the sentence) is owned by
 * vigild's effective user or root and not writable by group or others: 0,
 * else -EPERM with the reason and the fix ("chmod go-w PATH", "chown ...")
 * in why. */
int vigil_trust_dir(int dirfd, const char *shown, char *why, size_t why_len);

/* At start: the home itself and each of rel[0..n) under home_fd that
 * exists (absent ones are skipped: vigild creates them itself).  0, or the
 * first failure of vigil_trust_dir with its sentence; `home` is the path
 * shown. */
int vigil_trust_tree(int home_fd, const char *home, const char *const *rel, size_t n, char *why, size_t why_len);

#endif /* VIGIL_TRUST_H */
