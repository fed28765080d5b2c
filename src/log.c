/*
 * log.c - the component logs.  Each line is one write() on an O_APPEND fd
 * so lines from a restarted vigild never interleave mid-line.  A log that
 * cannot be written (disk full) does not stop the supervisor: the line
 * goes to stderr and the failure is counted.
 *
 * The journal.  Under systemd, stderr is a stream to journald and systemd
 * says so in $JOURNAL_STREAM ("<dev>:<ino>" of that stream, see
 * systemd.exec(5)); a child that inherited the variable but not the fd
 * (stderr redirected) must not believe it, so the pair is compared with
 * fstat(2).  When it matches, every line also goes to stderr with the
 * sd-daemon(3) priority prefix ("<6>" info, "<4>" warning, "<3>" error)
 * and without our timestamp (the journal stamps it): `journalctl -u vigild
 * -p warning` shows vigild's warnings.  The files under agents/logs/system
 * stay exactly as they are.
 */
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
static int log_journal = -1; /* -1 not yet decided, 0 no, 1 stderr is the journal */
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

bool vigil_log_stderr_is_journal(void)
{
	if (log_journal >= 0)
		return log_journal == 1;
	log_journal = 0;
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev = 0, ino = 0;
	char tail;
	struct stat st;
	if (js != NULL && sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		log_journal = 1;
	return log_journal == 1;
}

/* "<N>" for a level (sd-daemon(3): 6 info, 4 warning, 3 error). */
static const char *journal_prefix(enum vigil_log_level l)
{
	static const char *const prefixes[] = {"<6>", "<4>", "<3>"};
	return (l >= VIGIL_LOG_INFO && l <= VIGIL_LOG_ERROR) ? prefixes[l] : "<6>";
}

static const char *const component_names[VIGIL_LOG_COMPONENTS] = {
	"heartbeat-monitor", "failure-pattern", "auto-fix", "worker-restart",
};

void vigil_log_say(enum vigil_log_level l, const char *fmt, ...)
{
	char line[2048];
	bool journal = vigil_log_stderr_is_journal();
	int n = snprintf(line, sizeof line, "%svigild: ", journal ? journal_prefix(l) : "");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

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
	bool file_ok = fd >= 0 && vigil_fs_append(fd, line, len) == 0;
	if (fd >= 0 && !file_ok)
		atomic_fetch_add_explicit(&log_write_failures, 1, memory_order_relaxed);
	if (vigil_log_stderr_is_journal()) {
		/* "<4>worker-restart: message": the journal's own timestamp
		 * replaces ours (the first n bytes), one write per line. */
		char jline[sizeof line + 32];
		const char *comp = (c >= 0 && c < VIGIL_LOG_COMPONENTS) ? component_names[c] : "vigild";
		int jn = snprintf(jline, sizeof jline, "%s%s: ", journal_prefix(l), comp);
		size_t body = len - (size_t)n;
		if (jn > 0 && (size_t)jn + body <= sizeof jline) {
			memcpy(jline + jn, line + n, body);
			(void)!write(STDERR_FILENO, jline, (size_t)jn + body);
		}
	} else if (log_stderr || !file_ok) {
		(void)!write(STDERR_FILENO, line, len);
	}
}
