/*
 * log.c - the component logs.  Each line is one write() on an O_APPEND fd
 * so lines from a restarted vigild never interleave mid-line.  A log that
 * cannot be written (disk full) does not stop the supervisor: the line
 * goes to stderr and the failure is counted.
 */
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char *const log_names[VIGIL_LOG_COMPONENTS] = {
	"heartbeat-monitor-daemon.log",
	"failure-pattern-daemon.log",
	"auto-fix-daemon.log",
	"worker-restart-daemon.log",
};
static int log_fds[VIGIL_LOG_COMPONENTS] = {-1, -1, -1, -1};
static int log_stderr;
static atomic_ulong log_write_failures;

int vigil_log_open(int home_fd)
{
	int dir = vigil_fs_open_dir(home_fd, "agents/logs/system", true);
	if (dir < 0)
		return dir;
	int rc = 0;
	for (int i = 0; i < VIGIL_LOG_COMPONENTS; i++) {
		int fd = vigil_fs_open_append(dir, log_names[i]);
		if (fd < 0) {
			rc = fd;
			continue;
		}
		if (log_fds[i] >= 0)
			close(log_fds[i]);
		log_fds[i] = fd;
	}
	close(dir);
	return rc;
}

void vigil_log_close(void)
{
	for (int i = 0; i < VIGIL_LOG_COMPONENTS; i++) {
		if (log_fds[i] >= 0)
			close(log_fds[i]);
		log_fds[i] = -1;
	}
}

void vigil_log_set_stderr(int on) { log_stderr = on; }

void vigil_log(enum vigil_log_component c, enum vigil_log_level l, const char *fmt, ...)
{
	static const char *const levels[] = {"INFO", "WARN", "ERROR"};
	char line[2048];
	char iso[21];
	vigil_iso8601(vigil_unix_ms(), iso);
	int n = snprintf(line, sizeof line, "%s %s ", iso, levels[l]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	/* Untrusted text (ids from the segment) is rendered before it gets
	 * here; a stray newline would still split a line, so flatten them. */
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	int fd = (c >= 0 && c < VIGIL_LOG_COMPONENTS) ? log_fds[c] : -1;
	if (fd < 0 || vigil_fs_append(fd, line, len) < 0) {
		if (fd >= 0)
			atomic_fetch_add_explicit(&log_write_failures, 1, memory_order_relaxed);
		if (!log_stderr)
			(void)!write(STDERR_FILENO, line, len);
	}
	if (log_stderr)
		(void)!write(STDERR_FILENO, line, len);
}
