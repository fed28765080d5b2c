/*
 * trust.c - who may have written a file vigild acts on (see trust.h).
 *
 * Why owner and modes, not content: a request or policy is data that
 * names a command; vigild runs it with its own rights.  The only thing
 * that says the command comes from someone allowed to run it with those
 * rights is who could have written the file, which the kernel tells us
 * through the owner and the mode bits of the file and of its directory.
 * The same rule as sshd's StrictModes for authorized_keys.
 *
 * What is not checked: the directories above the home (a home under a
 * sticky /tmp is as safe as /tmp's sticky bit makes it), ACLs (an ACL
 * granting write shows as group-writable through the mask bits, which is
 * caught) and the file's link count (a hard link of a root-owned file
 * into the directory needs write access to the directory, which is
 * caught).
 */
#define _GNU_SOURCE
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void say(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t why_len, const char *fmt, ...)
{
	if (why == NULL || why_len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

/* Owned by us or by root. */
static bool owner_ok(const struct stat *st)
{
	return st->st_uid == geteuid() || st->st_uid == 0;
}

int vigil_trust_dir(int dirfd, const char *shown, char *why, size_t why_len)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0) {
		int e = errno;
		say(why, why_len, "%s: cannot stat: %s", shown, strerror(e));
		return -e;
	}
	if (!owner_ok(&st)) {
		say(why, why_len,
		    "%s is owned by uid %u, not by vigild's user (uid %u) or root: its files could be anyone's; fix: "
		    "run vigild as uid %u (vigild@USER.service), or chown %u %s",
		    shown, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)st.st_uid, (unsigned)geteuid(), shown);
		return -EPERM;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		say(why, why_len,
		    "%s is writable by %s (mode %04o): anyone who can write there could make vigild (uid %u) run "
		    "commands; fix: chmod go-w %s",
		    shown, (st.st_mode & S_IWOTH) ? "others" : "its group", (unsigned)(st.st_mode & 07777),
		    (unsigned)geteuid(), shown);
		return -EPERM;
	}
	return 0;
}

int vigil_trust_file(int dirfd, const char *name, int fd, char *why, size_t why_len)
{
	struct stat st, by_name;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		say(why, why_len, "%s: cannot stat: %s", name, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		say(why, why_len, "%s is not a regular file", name);
		return -EINVAL;
	}
	/* The name must still be this file and not a link: a swap between
	 * our open and now would otherwise lend this file's verdict to
	 * another. */
	if (fstatat(dirfd, name, &by_name, AT_SYMLINK_NOFOLLOW) < 0 || S_ISLNK(by_name.st_mode) ||
	    by_name.st_dev != st.st_dev || by_name.st_ino != st.st_ino) {
		say(why, why_len, "%s was replaced or is a symbolic link", name);
		return -EPERM;
	}
	if (!owner_ok(&st)) {
		say(why, why_len, "%s is owned by uid %u, not by vigild's user (uid %u) or root", name,
		    (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		say(why, why_len, "%s is writable by group or others (mode %04o)", name,
		    (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	char dwhy[256];
	int rc = vigil_trust_dir(dirfd, "its directory", dwhy, sizeof dwhy);
	if (rc < 0) {
		say(why, why_len, "%s: %s", name, dwhy);
		return rc;
	}
	return 0;
}

int vigil_trust_tree(int home_fd, const char *home, const char *const *rel, size_t n, char *why, size_t why_len)
{
	int rc = vigil_trust_dir(home_fd, home, why, why_len);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		int fd = openat(home_fd, rel[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue; /* absent (created by vigild) or a link (refused by the tree walk) */
		char shown[4096];
		snprintf(shown, sizeof shown, "%s/%s", home, rel[i]);
		rc = vigil_trust_dir(fd, shown, why, why_len);
		close(fd);
		if (rc < 0)
			return rc;
	}
	return 0;
}
