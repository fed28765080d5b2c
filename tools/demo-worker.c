/*
 * demo-worker.c - vigil-demo-worker, a real worker process for the demo and
 * the tests.
 *
 * It uses nothing but emitter/vigil.h, exactly as a third-party worker
 * would, and can be told to misbehave in each way vigild must notice: hang
 * (alive, silent), die (exit code, or a signal), detach cleanly, flap
 * (beat, lapse, beat again) or stall its progress while still beating.
 * Every behaviour is scheduled from one monotonic start time and the
 * worker sleeps (ppoll with a timeout) until the next thing to do, so it never
 * spins.
 *
 *   vigil-demo-worker [--beat-ms N] [--health H] [--progress-step P]
 *                     [--hang-after-ms N] [--die-after-ms N] [--exit-code C]
 *                     [--signal-after-ms N --signal SIG] [--detach-after-ms N]
 *                     [--stall-progress] [--flap-ms N] [--linger-ms N]
 *
 * Attaches with vigil_attach(): VIGIL_SHM plus VIGIL_SLOT/VIGIL_GEN (a
 * worker vigild started) or WORKER_ID/WORKER_TYPE/TASK_ID (registers
 * itself).  SIGTERM or SIGINT: detach cleanly and exit 0.  After any
 * detach, --linger-ms keeps the process alive and deaf for a while: a
 * worker whose shutdown hangs after its goodbye, which vigild must still see
 * to the end (and reap) before it starts a replacement.
 */
#define _GNU_SOURCE
#include "vigil.h"

#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PROG "vigil-demo-worker"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* SIGTERM and SIGINT stay blocked except while sleeping, so a stop request
 * that arrives between the check of stop_requested and the sleep is not
 * lost: ppoll() unblocks them atomically and returns at once. */
static sigset_t sleep_mask;

/* Sleeps until monotonic time `until_ms`; returns early on a signal. */
static void sleep_until(uint64_t until_ms)
{
	uint64_t now = now_ms();
	uint64_t d = until_ms > now ? until_ms - now : 0;
	struct timespec ts = {(time_t)(d / 1000u), (long)(d % 1000u) * 1000000L};
	ppoll(NULL, 0, &ts, &sleep_mask);
}

/* Every planned exit.  _exit: the worker holds nothing to free or flush
 * beyond stdio, and a sanitizer build's exit-time leak check (LSan's
 * StopTheWorld, which now and then hangs for good: google/sanitizers#1330,
 * seen here in CI as a worker that detached and never exited) has no place
 * in a fixture whose exit the tests time.  vigild's own checks stay on. */
static _Noreturn void quit(int code)
{
	fflush(NULL);
	_exit(code);
}

/* After the goodbye: stay ms more, deaf (SIGTERM and SIGINT stay blocked
 * outside ppoll, and nanosleep does not unblock them). */
static void linger(long ms)
{
	uint64_t until = now_ms() + (uint64_t)ms;
	for (uint64_t n = now_ms(); ms > 0 && n < until; n = now_ms()) {
		uint64_t d = until - n; /* one clock read: never wraps */
		struct timespec ts = {(time_t)(d / 1000u), (long)(d % 1000u) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " [--beat-ms N] [--health H] [--progress-step P]\n"
		"       [--hang-after-ms N] [--die-after-ms N] [--exit-code C]\n"
		"       [--signal-after-ms N --signal SIG] [--detach-after-ms N]\n"
		"       [--stall-progress] [--flap-ms N] [--linger-ms N]\n"
		"\n"
		"A vigil worker for demos and tests.  Attaches from the environment\n"
		"(VIGIL_SHM with VIGIL_SLOT/VIGIL_GEN, or WORKER_ID/WORKER_TYPE/TASK_ID),\n"
		"then beats every --beat-ms (100) with health --health (100) and progress\n"
		"advancing by --progress-step (1), wrapping after 100.\n"
		"  --hang-after-ms N    stop beating after N ms but keep running\n"
		"  --die-after-ms N     exit with --exit-code (1) after N ms, without detaching\n"
		"  --signal-after-ms N  raise --signal SIG (number or name) after N ms\n"
		"  --detach-after-ms N  detach cleanly and exit 0 after N ms\n"
		"  --stall-progress     keep progress fixed\n"
		"  --flap-ms N          alternate N ms beating and N ms silent\n"
		"  --linger-ms N        after detaching (SIGTERM/SIGINT or --detach-after-ms),\n"
		"                       stay N ms, deaf to SIGTERM/SIGINT, before exiting\n"
		"SIGTERM/SIGINT: detach cleanly and exit 0.\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (s[0] == '\0' || errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {
		{"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"TRAP", SIGTRAP},
		{"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
		{"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
		{"STOP", SIGSTOP}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"SYS", SIGSYS},
	};
	long n;
	if (parse_long(s, 1, 64, &n))
		return (int)n;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sig;
	return -1;
}

/* The worker id of our slot, printable. */
static void slot_id(const struct vigil *v, char out[VIGIL_ID_MAX + 1])
{
	const struct vigil_slot_cold *c = vigil__cold(v->hdr, v->slot);
	memcpy(out, c->worker_id, VIGIL_ID_MAX);
	out[VIGIL_ID_MAX] = '\0';
	for (char *p = out; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e)
			*p = '?';
}

/* An "after N ms" option: -1 when unset. */
struct when {
	long ms;
	bool done;
};

static bool due(const struct when *w, uint64_t elapsed)
{
	return w->ms >= 0 && !w->done && elapsed >= (uint64_t)w->ms;
}

/* The next instant (absolute ms) an event needs attention, or UINT64_MAX. */
static uint64_t next_at(const struct when *w, uint64_t start)
{
	return w->ms >= 0 && !w->done ? start + (uint64_t)w->ms : UINT64_MAX;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"beat-ms", required_argument, NULL, 'b'},
		{"health", required_argument, NULL, 'H'},
		{"progress-step", required_argument, NULL, 'p'},
		{"hang-after-ms", required_argument, NULL, 'g'},
		{"die-after-ms", required_argument, NULL, 'd'},
		{"exit-code", required_argument, NULL, 'e'},
		{"signal-after-ms", required_argument, NULL, 'A'},
		{"signal", required_argument, NULL, 's'},
		{"detach-after-ms", required_argument, NULL, 'D'},
		{"stall-progress", no_argument, NULL, 'S'},
		{"flap-ms", required_argument, NULL, 'f'},
		{"linger-ms", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long beat_ms = 100, health = 100, step = 1, exit_code = 1, flap_ms = 0, linger_ms = 0;
	struct when hang = {-1, false}, die = {-1, false}, sig_at = {-1, false}, detach = {-1, false};
	int sig = 0;
	bool stall = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		long *dst = NULL, lo = 0, hi = INT_MAX;
		const char *name = NULL;
		switch (opt) {
		case 'b': dst = &beat_ms; lo = 1; name = "--beat-ms"; break;
		case 'H': dst = &health; hi = 100; name = "--health"; break;
		case 'p': dst = &step; hi = 100; name = "--progress-step"; break;
		case 'g': dst = &hang.ms; name = "--hang-after-ms"; break;
		case 'd': dst = &die.ms; name = "--die-after-ms"; break;
		case 'e': dst = &exit_code; hi = 255; name = "--exit-code"; break;
		case 'A': dst = &sig_at.ms; name = "--signal-after-ms"; break;
		case 'D': dst = &detach.ms; name = "--detach-after-ms"; break;
		case 'f': dst = &flap_ms; lo = 1; name = "--flap-ms"; break;
		case 'L': dst = &linger_ms; name = "--linger-ms"; break;
		case 'S': stall = true; break;
		case 's':
			sig = parse_signal(optarg);
			if (sig < 0) {
				fprintf(stderr, PROG ": --signal: unknown signal '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (dst != NULL && !parse_long(optarg, lo, hi, dst)) {
			fprintf(stderr, PROG ": %s: want an integer %ld..%ld, got '%s'\n", name, lo, hi, optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if ((sig_at.ms >= 0) != (sig != 0)) {
		fprintf(stderr, PROG ": --signal-after-ms and --signal go together\n");
		return 2;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop; /* no SA_RESTART: the sleep returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t stops;
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigprocmask(SIG_BLOCK, &stops, &sleep_mask);
	sigdelset(&sleep_mask, SIGTERM);
	sigdelset(&sleep_mask, SIGINT);

	struct vigil v;
	int rc = vigil_attach(&v);
	if (rc < 0) {
		fprintf(stderr, PROG ": attach: %s\n", vigil_strerror(rc));
		return 1;
	}
	char id[VIGIL_ID_MAX + 1];
	slot_id(&v, id);
	fprintf(stderr, PROG " %s pid %d slot %u\n", id, (int)getpid(), v.slot);

	const uint64_t start = now_ms();
	uint64_t next_beat = start;
	long progress = 0;
	bool hung = false;
	for (;;) {
		if (stop_requested) {
			vigil_detach(&v);
			linger(linger_ms);
			quit(0);
		}
		uint64_t now = now_ms();
		uint64_t elapsed = now - start;
		if (due(&die, elapsed))
			_exit((int)exit_code); /* no goodbye: vigild sees the exit */
		if (due(&sig_at, elapsed)) {
			sig_at.done = true;
			raise(sig); /* a handled or ignored signal comes back here */
			continue;
		}
		if (due(&detach, elapsed)) {
			rc = vigil_detach(&v);
			if (rc < 0)
				fprintf(stderr, PROG " %s: detach: %s\n", id, vigil_strerror(rc));
			linger(linger_ms);
			quit(rc < 0 ? 1 : 0);
		}
		if (due(&hang, elapsed)) {
			hang.done = true;
			hung = true;
		}
		if (!hung && now >= next_beat) {
			bool silent = flap_ms > 0 && (elapsed / (uint64_t)flap_ms) % 2 == 1;
			if (!silent) {
				vigil_beat(&v, (unsigned)health, (unsigned)progress);
				if (!stall)
					progress = (progress + step) % 101;
			}
			/* Stay on the original grid so that beats do not drift. */
			next_beat += (uint64_t)beat_ms;
			if (next_beat <= now)
				next_beat = now + (uint64_t)beat_ms - (now - next_beat) % (uint64_t)beat_ms;
		}
		uint64_t wake = hung ? UINT64_MAX : next_beat;
		uint64_t t;
		if ((t = next_at(&die, start)) < wake)
			wake = t;
		if ((t = next_at(&sig_at, start)) < wake)
			wake = t;
		if ((t = next_at(&detach, start)) < wake)
			wake = t;
		if ((t = next_at(&hang, start)) < wake)
			wake = t;
		if (wake == UINT64_MAX)
			wake = now_ms() + 3600u * 1000u; /* hung: sleep; signals wake us */
		sleep_until(wake);
	}
}
