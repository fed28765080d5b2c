/*
 * log.h - one human-readable log per component (README "What vigild writes"):
 *   agents/logs/system/heartbeat-monitor-daemon.log   scanner verdicts
 *   agents/logs/system/failure-pattern-daemon.log     classification
 *   agents/logs/system/auto-fix-daemon.log            fix decisions
 *   agents/logs/system/worker-restart-daemon.log      spawns, restarts
 * Line format: "2026-11-28T13:00:00Z INFO message".  Only ERROR lines say
 * "ERROR", so the runbook's `grep -i error *daemon.log` finds problems and
 * nothing else.  Written by the action thread (and by main before the
 * threads start); never by the scanner.
 */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stdbool.h>

enum vigil_log_component {
	VIGIL_LOG_HEARTBEAT = 0,
	VIGIL_LOG_PATTERN = 1,
	VIGIL_LOG_AUTOFIX = 2,
	VIGIL_LOG_RESTART = 3,
	VIGIL_LOG_COMPONENTS = 4,
};

enum vigil_log_level { VIGIL_LOG_INFO, VIGIL_LOG_WARN, VIGIL_LOG_ERROR };

/* Opens (creating) the four logs under home_fd; 0 or -errno.  Until then,
 * and if it fails, lines go to stderr only. */
int vigil_log_open(int home_fd);
void vigil_log_close(void);
/* Also copy lines to stderr (vigild in the foreground). */
void vigil_log_set_stderr(int on);
/* Whether stderr is systemd's journal stream ($JOURNAL_STREAM names
 * stderr's device and inode); decided once.  Then every vigil_log line is
 * also written to stderr as "<N>component: message" (sd-daemon(3)
 * priorities), the component files unchanged. */
bool vigil_log_stderr_is_journal(void);
/* One "vigild: ..." line to stderr, with the "<N>" priority prefix when
 * stderr is the journal: main's start-up diagnostics. */
__attribute__((format(printf, 2, 3))) void vigil_log_say(enum vigil_log_level l, const char *fmt, ...);

__attribute__((format(printf, 3, 4))) void vigil_log(enum vigil_log_component c, enum vigil_log_level l,
						       const char *fmt, ...);

#endif /* VIGIL_LOG_H */
