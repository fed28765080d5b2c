/*
 * sdnotify.c - the systemd notification protocol, with or without
 * libsystemd.  See sdnotify.h.
 */
#define _GNU_SOURCE
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static char sd_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool sd_on;

uint64_t vigil_sd_init(void)
{
	const char *p = getenv("NOTIFY_SOCKET");
	sd_on = p != NULL && (p[0] == '/' || p[0] == '@') && strlen(p) < sizeof sd_path;
	if (sd_on)
		snprintf(sd_path, sizeof sd_path, "%s", p);
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	if (!sd_on || us == NULL)
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0; /* meant for another process */
	char *end;
	unsigned long long v = strtoull(us, &end, 10);
	return *end == '\0' ? (uint64_t)v : 0;
}

bool vigil_sd_enabled(void) { return sd_on; }

int vigil_sd_notify(const char *msg)
{
	if (!sd_on)
		return 0;
#ifdef HAVE_SYSTEMD
	int rc = sd_notify(0, msg);
	return rc < 0 ? rc : 0;
#else
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t len = strlen(sd_path);
	memcpy(sa.sun_path, sd_path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
	int e = errno;
	close(fd);
	return n < 0 ? -e : 0;
#endif
}
