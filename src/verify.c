/*
 * verify.c - identity checks for self-registered workers, through /proc.
 *
 * Everything here runs on the action thread (it reads files); the scanner
 * only ever receives the resulting pidfd.
 */
#define _GNU_SOURCE
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int read_proc(int32_t pid, const char *what, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return (int)n;
}

/* Field k (1-based, k >= 3) of /proc/<pid>/stat as an integer string start. */
static const char *stat_field(const char *buf, int k)
{
	const char *p = strrchr(buf, ')'); /* comm may hold spaces and ')' */
	if (p == NULL)
		return NULL;
	p++;
	for (int field = 2; field < k; field++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return NULL;
		p++;
	}
	return p;
}

uint64_t vigil_proc_start_ticks(int32_t pid)
{
	char buf[1024];
	if (pid <= 0 || read_proc(pid, "stat", buf, sizeof buf) <= 0)
		return 0;
	const char *f = stat_field(buf, 22);
	return f == NULL ? 0 : strtoull(f, NULL, 10);
}

int32_t vigil_proc_ppid(int32_t pid)
{
	char buf[1024];
	if (pid <= 0 || read_proc(pid, "stat", buf, sizeof buf) <= 0)
		return -1;
	const char *f = stat_field(buf, 4);
	return f == NULL ? -1 : (int32_t)strtol(f, NULL, 10);
}

bool vigil_proc_maps_segment(int32_t pid, const char *shm_name)
{
	char path[64], needle[300];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	snprintf(needle, sizeof needle, " /dev/shm%s", shm_name);
	size_t nlen = strlen(needle);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	char line[4352];
	bool found = false;
	/* Bounded: a process with more than 1M mappings is not checked further. */
	for (int i = 0; i < 1000000 && fgets(line, sizeof line, f) != NULL; i++) {
		char *hit = strstr(line, needle);
		if (hit != NULL && (hit[nlen] == '\n' || hit[nlen] == '\0' || hit[nlen] == ' ')) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

bool vigil_proc_exit_status(int32_t pid, uint64_t start_ticks, int32_t *code, int32_t *sig)
{
	char buf[1024];
	if (pid <= 1 || start_ticks == 0 || read_proc(pid, "stat", buf, sizeof buf) <= 0)
		return false;
	const char *st = stat_field(buf, 3);
	const char *start = stat_field(buf, 22);
	const char *ec = stat_field(buf, 52);
	if (st == NULL || start == NULL || ec == NULL || *st != 'Z' || strtoull(start, NULL, 10) != start_ticks)
		return false;
	int status = (int)strtol(ec, NULL, 10); /* a wait status */
	if (WIFEXITED(status)) {
		*code = WEXITSTATUS(status);
		*sig = 0;
	} else if (WIFSIGNALED(status)) {
		*code = -1;
		*sig = WTERMSIG(status);
	} else {
		return false;
	}
	return true;
}

bool vigil_proc_environ_has(int32_t pid, const char *entry)
{
	enum { ENVIRON_BYTES_MAX = 65536 };
	if (pid <= 0 || entry == NULL || entry[0] == '\0')
		return false;
	char *buf = malloc(ENVIRON_BYTES_MAX); /* rare (start-up): not worth a static */
	if (buf == NULL)
		return false;
	int n = read_proc(pid, "environ", buf, ENVIRON_BYTES_MAX);
	bool found = false;
	/* NUL-separated; read_proc ends the buffer with one more NUL. */
	for (int at = 0; n > 0 && at < n && !found; at += (int)strlen(buf + at) + 1)
		found = strcmp(buf + at, entry) == 0;
	free(buf);
	return found;
}

void vigil_proc_cwd(int32_t pid, char *out, size_t out_len)
{
	char path[64];
	out[0] = '\0';
	if (pid <= 0 || out_len < 2)
		return;
	snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
	ssize_t n = readlink(path, out, out_len - 1);
	out[n > 0 ? n : 0] = '\0';
	if (n > 0 && ((size_t)n >= out_len - 1 || out[0] != '/'))
		out[0] = '\0'; /* truncated or not a path: unknown */
}

void vigil_proc_cmdline_json(int32_t pid, char *out, size_t out_len)
{
	char buf[4096];
	snprintf(out, out_len, "[]");
	int n = pid > 0 ? read_proc(pid, "cmdline", buf, sizeof buf) : -1;
	if (n <= 0)
		return;
	json_t *arr = json_array();
	if (arr == NULL)
		return;
	/* Bounded by n: each argument ends in a NUL. */
	for (int i = 0; i < n;) {
		size_t len = strnlen(buf + i, (size_t)(n - i));
		json_t *s = json_stringn(buf + i, len);
		if (s == NULL) {
			/* not UTF-8 (jansson insists): keep ASCII, mark the rest */
			for (size_t k = 0; k < len; k++)
				if ((unsigned char)buf[i + (int)k] >= 0x80 || buf[i + (int)k] < 0x20)
					buf[i + (int)k] = '?';
			s = json_stringn(buf + i, len);
		}
		if (s == NULL)
			s = json_string("?");
		json_array_append_new(arr, s);
		i += (int)len + 1;
	}
	char *txt = json_dumps(arr, JSON_COMPACT);
	if (txt != NULL && strlen(txt) < out_len)
		snprintf(out, out_len, "%s", txt);
	free(txt);
	json_decref(arr);
}

/* Is pid an ancestor of child within 8 generations?  The shell emitter may
 * run in a subshell, a pipeline or $(...), so vigilctl is a grandchild of
 * the worker shell, not always its child. */
static bool descends_from(int32_t child, int32_t pid)
{
	int32_t p = child;
	for (int depth = 0; depth < 8 && p > 1; depth++) {
		p = vigil_proc_ppid(p);
		if (p == pid)
			return true;
	}
	return false;
}

void vigil_verify_worker(const char *shm_name, int32_t pid, int32_t registrar_pid, uint64_t start_ticks, bool known,
			 struct vigil_verify_result *out)
{
	memset(out, 0, sizeof *out);
	out->pidfd = -1;
	if (pid <= 1 || pid == getpid()) {
		snprintf(out->reason, sizeof out->reason, "pid %d cannot be a worker", (int)pid);
		return;
	}
	int fd = pidfd_open(pid, 0);
	if (fd < 0) {
		if (errno == ESRCH) {
			out->gone = true;
			snprintf(out->reason, sizeof out->reason, "pid %d no longer exists", (int)pid);
		} else {
			snprintf(out->reason, sizeof out->reason, "pidfd_open(%d): %s", (int)pid, strerror(errno));
		}
		return;
	}
	char path[64];
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	if (stat(path, &st) < 0 || st.st_uid != geteuid()) {
		snprintf(out->reason, sizeof out->reason, "pid %d does not belong to our user", (int)pid);
		close(fd);
		return;
	}
	/* Already ended (it died while vigild was away and its parent has
	 * not reaped it yet): a pidfd is readable once its process exits. */
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, 0) > 0) {
		out->gone = true;
		snprintf(out->reason, sizeof out->reason, "pid %d has already exited", (int)pid);
		close(fd);
		return;
	}
	uint64_t now_ticks = vigil_proc_start_ticks(pid);
	if (now_ticks == 0) {
		/* /proc unreadable (out of file descriptors?): that proves
		 * nothing about the worker, so it is not declared gone. */
		snprintf(out->reason, sizeof out->reason, "cannot read /proc/%d/stat (%s): monitored by timeouts only",
			 (int)pid, strerror(errno));
		close(fd);
		return;
	}
	if (start_ticks != 0 && now_ticks != start_ticks) {
		out->gone = true; /* the registered process died; its pid was reused */
		snprintf(out->reason, sizeof out->reason, "pid %d was recycled (start time %llu, registered %llu)",
			 (int)pid, (unsigned long long)now_ticks, (unsigned long long)start_ticks);
		close(fd);
		return;
	}
	bool ok = (known && start_ticks != 0) || vigil_proc_maps_segment(pid, shm_name);
	if (!ok && registrar_pid > 1 && registrar_pid != pid && descends_from(registrar_pid, pid)) {
		snprintf(path, sizeof path, "/proc/%d", (int)registrar_pid);
		ok = stat(path, &st) == 0 && st.st_uid == geteuid() && vigil_proc_maps_segment(registrar_pid, shm_name);
		/* the registrar must still descend from pid after the check */
		ok = ok && descends_from(registrar_pid, pid);
	}
	if (!ok) {
		snprintf(out->reason, sizeof out->reason,
			 "neither pid %d nor its registrar %d maps the segment: monitored by timeouts only", (int)pid,
			 (int)registrar_pid);
		close(fd);
		return;
	}
	/* The pidfd still names a live process, so /proc/<pid> was that
	 * process during every read above (a pid is not reused while any
	 * process, even a zombie, holds it). */
	if (pidfd_send_signal(fd, 0, NULL, 0) < 0) {
		out->gone = errno == ESRCH;
		snprintf(out->reason, sizeof out->reason, "pid %d exited during verification", (int)pid);
		close(fd);
		return;
	}
	out->pidfd = fd;
	out->verified = true;
	snprintf(out->reason, sizeof out->reason, "verified");
}
