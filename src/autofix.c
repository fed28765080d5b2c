/*
 * autofix.c - the auto-fix decision, its rate ring, its history line, and
 * notify_command runs that never block vigild.
 *
 * The decision is checks[] below walked in order: the first check that
 * holds gives the verdict SKIP and its reason; when none holds the
 * verdict is DRY_RUN or APPLY.  The table is the whole behaviour; the
 * header shows the same table for readers of the interface.
 *
 * Notifications: why the JSON is written before the child exists.  A
 * pipe holds 64 KiB (raised with F_SETPIPE_SZ when an event is larger, up
 * to /proc/sys/fs/pipe-max-size), and while we hold its read end a write
 * can neither block (O_NONBLOCK) nor fail with EPIPE and raise SIGPIPE -
 * whatever vigild's SIGPIPE disposition and however fast the command
 * exits.  Then the write end is closed and the read end becomes the
 * child's stdin: the command reads the event, then EOF.
 *
 * Why fork + execve and not posix_spawn: the project's own src/spawn.h
 * shadows the system <spawn.h> on the include path (-Isrc), and fork is
 * what spawn.c already does safely: every signal blocked around fork, and
 * in the child only async-signal-safe calls - dispositions to default,
 * setpgid (a process group of its own, so a timeout kills the shell's
 * children too), stdin from the pipe, stdout/stderr to /dev/null, every
 * other fd close-on-exec, an empty mask, execve.  fork's cost is copying
 * vigild's page tables, well under a millisecond (spawn.c measured it).
 * An execve that fails is _exit(127): a failure counted at the reap, so
 * the parent never waits for the child, not even for its exec.  pidfd_open
 * follows fork: safe, because nobody else reaps vigild's children
 * (spawn.h), so the pid cannot be reused between the two.
 */
#define _GNU_SOURCE
#include "autofix.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

/* ------------------------------------------------------ the ring */

int vigil_autofix_init(struct vigil_autofix *af)
{
	if (af == NULL)
		return -EINVAL;
	memset(af, 0, sizeof *af);
	for (uint32_t i = 0; i < VIGIL_NOTIFY_MAX_IN_FLIGHT; i++)
		af->notify[i].pidfd = -1;
	return 0;
}

/* Is t in the trailing hour before now?  Times more than an hour in the
 * future (the clock went back) are not. */
static bool in_window(uint64_t t, uint64_t now)
{
	if (t > now)
		return t - now < VIGIL_AUTOFIX_WINDOW_MS;
	return now - t < VIGIL_AUTOFIX_WINDOW_MS;
}

/* Drops expired entries from the head.  Entries are in decision order; a
 * clock step back can put a younger entry behind an older one, which then
 * waits until the head has expired (at most an hour late: in_window). */
static void ring_prune(struct vigil_autofix *af, uint64_t now)
{
	for (uint32_t n = af->count; n > 0; n--) {
		if (in_window(af->fix_ms[af->head], now))
			break;
		af->head = (af->head + 1) % af->cap;
		af->count--;
	}
	if (af->count == 0)
		af->head = 0;
}

/* Room for one more entry, growing up to limit.  0 or -ENOMEM. */
static int ring_reserve(struct vigil_autofix *af, uint32_t limit)
{
	if (af->count < af->cap)
		return 0;
	uint32_t want = af->cap < 16 ? 16 : af->cap * 2;
	if (want > limit)
		want = limit;
	if (want > VIGIL_AUTOFIX_RING_MAX)
		want = VIGIL_AUTOFIX_RING_MAX;
	if (want <= af->cap)
		return -ENOMEM;
	uint64_t *n = malloc((size_t)want * sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < af->count; i++) /* linearise, oldest first */
		n[i] = af->fix_ms[(af->head + i) % af->cap];
	free(af->fix_ms);
	af->fix_ms = n;
	af->cap = want;
	af->head = 0;
	return 0;
}

static void ring_push(struct vigil_autofix *af, uint64_t now)
{
	af->fix_ms[(af->head + af->count) % af->cap] = now;
	af->count++;
}

uint32_t vigil_autofix_fixes_in_last_hour(const struct vigil_autofix *af, uint64_t now_ms)
{
	if (af == NULL)
		return 0;
	uint32_t n = 0;
	for (uint32_t i = 0; i < af->count; i++)
		n += in_window(af->fix_ms[(af->head + i) % af->cap], now_ms);
	return n;
}

/* -------------------------------------------------- the decision */

enum action_bit { ACT_RESTART = 1u << 0, ACT_KILL_THEN_RESTART = 1u << 1, ACT_QUARANTINE = 1u << 2 };
#define ACT_RESTARTS (ACT_RESTART | ACT_KILL_THEN_RESTART)
#define ACT_ALL (ACT_RESTARTS | ACT_QUARANTINE)

static const struct {
	const char *name;
	uint8_t bit;
} actions[] = {
	{"restart", ACT_RESTART},
	{"kill_then_restart", ACT_KILL_THEN_RESTART},
	{"quarantine", ACT_QUARANTINE},
};

struct facts {
	const struct vigil_autofix_policy *p;
	const struct vigil_pattern *pt;
	bool breaker_open, restart_underway, quarantined, command_known;
	bool rate_limited; /* computed before the walk */
};

static bool f_disabled(const struct facts *x) { return !x->p->enabled; }
static bool f_below(const struct facts *x) { return !(x->pt->confidence >= x->p->min_confidence_threshold); }
static bool f_quarantined(const struct facts *x) { return x->quarantined; }
static bool f_breaker(const struct facts *x) { return x->breaker_open; }
static bool f_underway(const struct facts *x) { return x->restart_underway; }
static bool f_no_command(const struct facts *x) { return !x->command_known; }
static bool f_rate(const struct facts *x) { return x->rate_limited; }

/* The order of checks (autofix.h). */
static const struct check {
	bool (*holds)(const struct facts *);
	uint8_t applies_to; /* action bits */
	const char *reason;
} checks[] = {
	{f_disabled, ACT_ALL, "disabled"},
	{f_below, ACT_ALL, "below_threshold"},
	{f_quarantined, ACT_ALL, "quarantined"},
	{f_breaker, ACT_RESTARTS, "breaker_open"},
	{f_underway, ACT_RESTARTS, "restart_already_underway"},
	{f_no_command, ACT_RESTARTS, "no_command"},
	{f_rate, ACT_ALL, "rate_limited"},
};

static void skip(struct vigil_autofix *af, struct vigil_fix_decision *out, const char *why)
{
	out->verdict = VIGIL_FIX_SKIP;
	snprintf(out->skipped_because, sizeof out->skipped_because, "%s", why);
	if (af != NULL) {
		af->fixes_skipped++;
		if (strcmp(why, "rate_limited") == 0)
			af->fixes_rate_limited++;
	}
}

void vigil_autofix_skip(struct vigil_autofix *af, const struct vigil_pattern *pt, const char *why,
			struct vigil_fix_decision *out)
{
	if (out == NULL)
		return;
	memset(out, 0, sizeof *out);
	if (af != NULL)
		af->decisions++;
	if (pt != NULL)
		snprintf(out->action, sizeof out->action, "%s", pt->recommended_action);
	skip(af, out, why);
}

void vigil_autofix_decide(struct vigil_autofix *af, const struct vigil_autofix_policy *p,
			  const struct vigil_pattern *pt, bool breaker_open, bool restart_underway, bool quarantined,
			  bool command_known, uint64_t now_ms, struct vigil_fix_decision *out)
{
	if (out == NULL)
		return;
	memset(out, 0, sizeof *out);
	if (af == NULL || p == NULL || pt == NULL) {
		skip(af, out, "invalid_pattern");
		return;
	}
	af->decisions++;
	uint8_t bit = 0;
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		if (strncmp(pt->recommended_action, actions[i].name, sizeof pt->recommended_action) == 0)
			bit = actions[i].bit;
	if (bit == 0) {
		skip(af, out, "invalid_pattern");
		return;
	}
	snprintf(out->action, sizeof out->action, "%s", pt->recommended_action);

	ring_prune(af, now_ms);
	struct facts x = {
		.p = p,
		.pt = pt,
		.breaker_open = breaker_open,
		.restart_underway = restart_underway,
		.quarantined = quarantined,
		.command_known = command_known,
		.rate_limited = af->count >= p->max_fixes_per_hour,
	};
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		if ((checks[i].applies_to & bit) != 0 && checks[i].holds(&x)) {
			skip(af, out, checks[i].reason);
			return;
		}
	}
	if (p->dry_run) {
		out->verdict = VIGIL_FIX_DRY_RUN;
		snprintf(out->skipped_because, sizeof out->skipped_because, "dry_run");
		af->fixes_dry_run++;
		return;
	}
	/* Room to record this fix; without it there is no limit to keep, so
	 * the fix is rate limited (the ring grows only here). */
	if (ring_reserve(af, p->max_fixes_per_hour) < 0) {
		skip(af, out, "rate_limited");
		return;
	}
	out->verdict = VIGIL_FIX_APPLY;
	ring_push(af, now_ms);
	af->fixes_applied++;
}

const char *vigil_fix_result_name(uint8_t verdict)
{
	switch (verdict) {
	case VIGIL_FIX_APPLY: return "applied";
	case VIGIL_FIX_DRY_RUN: return "dry_run";
	default: return "skipped";
	}
}

/* ---------------------------------------------------------- JSON */

static double clamp01(double c)
{
	if (!(c >= 0.0))
		return 0.0;
	return c > 1.0 ? 1.0 : c;
}

json_t *vigil_fix_decision_to_json(const struct vigil_fix_decision *d, const struct vigil_pattern *pt,
				   const struct vigil_autofix *af, const struct vigil_autofix_policy *p,
				   uint64_t now_ms)
{
	if (d == NULL || pt == NULL || p == NULL)
		return NULL;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int rc = 0;
	rc |= json_object_set_new(o, "worker_id", json_string(pt->worker_id));
	rc |= json_object_set_new(o, "worker_type", json_string(pt->worker_type));
	rc |= json_object_set_new(o, "pattern", json_string(pt->type));
	rc |= json_object_set_new(o, "confidence", json_real(clamp01(pt->confidence)));
	rc |= json_object_set_new(o, "action", json_string(d->action));
	rc |= json_object_set_new(o, "result", json_string(vigil_fix_result_name(d->verdict)));
	rc |= json_object_set_new(o, "reason", json_string(d->verdict == VIGIL_FIX_APPLY ? "" : d->skipped_because));
	rc |= json_object_set_new(o, "threshold", json_real(clamp01(p->min_confidence_threshold)));
	rc |= json_object_set_new(o, "fixes_in_last_hour",
				  json_integer(af != NULL ? vigil_autofix_fixes_in_last_hour(af, now_ms) : 0));
	rc |= json_object_set_new(o, "max_fixes_per_hour", json_integer(p->max_fixes_per_hour));
	if (rc != 0 || vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int vigil_fix_decision_append(int fd, const struct vigil_fix_decision *d, const struct vigil_pattern *pt,
			      const struct vigil_autofix *af, const struct vigil_autofix_policy *p, uint64_t now_ms)
{
	json_t *o = vigil_fix_decision_to_json(d, pt, af, p, now_ms);
	if (o == NULL)
		return -ENOMEM;
	int rc = vigil_json_append_short(fd, o);
	json_decref(o);
	return rc;
}

json_t *vigil_autofix_metrics_to_json(const struct vigil_autofix *af, uint64_t patterns_detected,
				      uint64_t now_ms)
{
	if (af == NULL)
		return NULL;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	const struct {
		const char *key;
		uint64_t v;
	} rows[] = {
		{"patterns_detected", patterns_detected},
		{"fixes_applied", af->fixes_applied},
		{"fixes_dry_run", af->fixes_dry_run},
		{"fixes_rate_limited", af->fixes_rate_limited},
		{"fixes_skipped", af->fixes_skipped},
		{"decisions", af->decisions},
		{"fixes_in_last_hour", vigil_autofix_fixes_in_last_hour(af, now_ms)},
		{"notifications_sent", af->notifications_sent},
		{"notifications_failed", af->notifications_failed},
		{"notifications_killed", af->notifications_killed},
		{"notifications_dropped", af->notifications_dropped},
		{"notifications_truncated", af->notifications_truncated},
		{"notifications_in_flight", af->notify_in_flight},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		rc |= json_object_set_new(o, rows[i].key,
					  json_integer((json_int_t)(rows[i].v > INT64_MAX ? INT64_MAX : rows[i].v)));
	if (rc != 0 || vigil_json_stamp(o, "timestamp", "timestamp_ms", now_ms) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* -------------------------------------------------- notifications */

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Writes all of buf into the (non-blocking) pipe w, raising its size when
 * needed.  Returns true when everything fit. */
static bool fill_pipe(int w, const char *buf, size_t len)
{
	if (len > 65536) {
		int want = len > (size_t)(1 << 30) ? (1 << 30) : (int)len;
		(void)fcntl(w, F_SETPIPE_SZ, want); /* best effort: pipe-max-size */
	}
	size_t off = 0;
	/* Bounded: each round writes something or stops; EINTR a few times. */
	for (unsigned round = 0; off < len && round < 64; round++) {
		ssize_t n = write(w, buf + off, len - off);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			break; /* EAGAIN: full */
	}
	return off == len;
}

static void notify_kill(struct vigil_notify_child *c)
{
	/* The group first (a shell's children), while the leader is unreaped
	 * so its pid - the group id - cannot have been reused. */
	if (c->pid > 0)
		(void)kill(-c->pid, SIGKILL);
	if (c->pidfd >= 0)
		(void)pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
	else if (c->pid > 0)
		(void)kill(c->pid, SIGKILL);
}

/* Reaps c if it ended.  flags: WNOHANG or 0.  true when reaped. */
static bool notify_try_reap(struct vigil_autofix *af, struct vigil_notify_child *c, int flags)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int rc;
	unsigned tries = 0;
	do {
		rc = c->pidfd >= 0 ? waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED | flags)
				   : waitid(P_PID, (id_t)c->pid, &si, WEXITED | flags);
	} while (rc < 0 && errno == EINTR && ++tries < 16);
	if (rc < 0) {
		if (errno != ECHILD)
			return false;
		/* Already reaped by someone else (a caller breaking spawn.h's
		 * rule): nothing more to wait for. */
	} else if (si.si_pid == 0) {
		return false; /* still running */
	} else if (!c->killed && !(si.si_code == CLD_EXITED && si.si_status == 0)) {
		af->notifications_failed++;
	}
	close_fd(&c->pidfd);
	memset(c, 0, sizeof *c);
	c->pidfd = -1;
	af->notify_in_flight--;
	return true;
}

/* The child, between fork and execve: async-signal-safe calls only
 * (vigild has other threads).  Every signal is blocked on entry (the
 * parent blocked them around fork), so no vigild handler runs here. */
static _Noreturn void notify_child(int in_fd, int null_fd, char *const argv[])
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &dfl, NULL); /* glibc's internal ones: EINVAL, harmless */
	(void)setpgid(0, 0);
	/* in_fd and null_fd are >= 3 (above_stdio), so no dup2 meets itself
	 * and each clears close-on-exec on 0, 1, 2. */
	if (dup2(in_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0)
		_exit(127);
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 65536; fd++) /* bounded fallback (kernels < 5.11) */
			(void)close(fd);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve("/bin/sh", argv, environ);
	_exit(127); /* counted as a failure when reaped */
}

/* fd moved to >= 3 (close-on-exec), so the child's dup2 onto 0..2 never
 * meets itself.  The old fd is closed.  fd or -errno. */
static int above_stdio(int fd)
{
	if (fd >= 3)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int e = errno;
	close(fd);
	return n >= 0 ? n : -e;
}

int vigil_notify_start(struct vigil_autofix *af, const char *command, const json_t *event, double timeout_seconds,
		       uint64_t now_ms)
{
	if (af == NULL || command == NULL || command[0] == '\0' || event == NULL)
		return -EINVAL;
	struct vigil_notify_child *c = NULL;
	for (uint32_t i = 0; i < VIGIL_NOTIFY_MAX_IN_FLIGHT && c == NULL; i++)
		if (!af->notify[i].used)
			c = &af->notify[i];
	if (c == NULL) {
		af->notifications_dropped++;
		return -EBUSY;
	}
	if (!(timeout_seconds > 0.0) || !isfinite(timeout_seconds))
		timeout_seconds = 5.0;
	if (timeout_seconds > 86400.0)
		timeout_seconds = 86400.0;

	char *text = NULL;
	int rc = vigil_policy_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER, &text);
	if (rc < 0) {
		af->notifications_failed++;
		return rc;
	}
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL: the line is len + 1 bytes */

	int fds[2] = {-1, -1}, null_fd = -1;
	pid_t pid = -1;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = above_stdio(fds[0])) < 0) {
		fds[0] = -1;
		goto fail;
	}
	fds[0] = rc;
	if (fcntl(fds[1], F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!fill_pipe(fds[1], text, len + 1))
		af->notifications_truncated++;
	close_fd(&fds[1]);
	free(text);
	text = NULL;
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = above_stdio(null_fd)) < 0) {
		null_fd = -1;
		goto fail;
	}
	null_fd = rc;

	char *argv[] = {(char *)"sh", (char *)"-c", (char *)command, NULL};
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0)
		notify_child(fds[0], null_fd, argv); /* does not return */
	int fork_errno = errno;
	if (pid > 0)
		(void)setpgid(pid, pid); /* both sides, so no kill can beat it; EACCES after exec is fine */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close_fd(&fds[0]);
	close_fd(&null_fd);
	if (pid < 0) {
		rc = -fork_errno;
		goto fail;
	}
	/* Nobody else reaps our children (spawn.h), so pid is still this
	 * child, dead or alive. */
	int pidfd = pidfd_open(pid, 0);
	if (pidfd < 0 && errno != ENOSYS) {
		rc = -errno;
		/* Cannot watch it: end and reap it now (immediate for a fresh,
		 * SIGKILLed child). */
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		goto fail;
	}
	*c = (struct vigil_notify_child){
		.used = true,
		.pidfd = pidfd,
		.pid = pid,
		.started_ms = now_ms,
		.deadline_ms = now_ms + (uint64_t)ceil(timeout_seconds * 1000.0),
	};
	af->notify_in_flight++;
	af->notifications_sent++;
	return 0;

fail:
	close_fd(&fds[0]);
	close_fd(&fds[1]);
	close_fd(&null_fd);
	free(text);
	af->notifications_failed++;
	return rc;
}

uint64_t vigil_notify_reap(struct vigil_autofix *af, uint64_t now_ms)
{
	if (af == NULL)
		return 0;
	uint64_t next = 0;
	for (uint32_t i = 0; i < VIGIL_NOTIFY_MAX_IN_FLIGHT; i++) {
		struct vigil_notify_child *c = &af->notify[i];
		if (!c->used)
			continue;
		if (notify_try_reap(af, c, WNOHANG))
			continue;
		if (!c->killed && now_ms >= c->deadline_ms) {
			notify_kill(c);
			c->killed = true;
			af->notifications_killed++;
			if (notify_try_reap(af, c, WNOHANG))
				continue;
		}
		if (c->killed)
			c->deadline_ms = now_ms + VIGIL_NOTIFY_REAP_RETRY_MS;
		if (next == 0 || c->deadline_ms < next)
			next = c->deadline_ms;
	}
	return next;
}

void vigil_autofix_destroy(struct vigil_autofix *af)
{
	if (af == NULL)
		return;
	for (uint32_t i = 0; i < VIGIL_NOTIFY_MAX_IN_FLIGHT; i++) {
		struct vigil_notify_child *c = &af->notify[i];
		if (!c->used)
			continue;
		if (notify_try_reap(af, c, WNOHANG))
			continue;
		notify_kill(c);
		c->killed = true;
		if (!notify_try_reap(af, c, 0)) { /* SIGKILLed: ends promptly */
			close_fd(&c->pidfd);
			memset(c, 0, sizeof *c);
			c->pidfd = -1;
			af->notify_in_flight--;
		}
	}
	free(af->fix_ms);
	af->fix_ms = NULL;
	af->cap = af->count = af->head = 0;
}
