/*
 * main.c - vigild: the self-healing supervisor, in the foreground.
 *
 *   vigild [--home DIR] [--shm NAME] [--slots N] [--pidfile PATH] [--check-config]
 *
 * Start-up order matters and each step says no clearly: policies first
 * (bad configuration exits 2 before anything is touched), then the
 * coordination tree, the segment (refused if another user owns it, if its
 * header is wrong, or if another vigild is attached), the pid file, the
 * first scan (adopting the workers already there without blaming them for
 * the time we were away), and only then the two threads.
 *
 * Exit codes: 0 clean stop, 1 failure, 2 usage or configuration.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "action.h"
#include "log.h"
#include "policy.h"
#include "scanner.h"
#include "sdnotify.h"
#include "segment.h"
#include "spawn.h"
#include "trust.h"
#include "util.h"

#define VIGILD_VERSION "0.1.0"
#define DEFAULT_SLOTS 4096u

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vigild [--home DIR] [--shm NAME] [--slots N] [--pidfile PATH] [--check-config]\n"
		"\n"
		"Self-healing supervisor for worker processes. Runs in the foreground.\n"
		"  --home DIR      home directory (default $COMMIT_RELAY_HOME, else the current directory)\n"
		"  --shm NAME      shared-memory segment (default $VIGIL_SHM, else derived from the home)\n"
		"  --slots N       slots when creating the segment (default %u, max %u)\n"
		"  --pidfile PATH  write our pid there (e.g. /tmp/cortex-heartbeat.pid)\n"
		"  --check-config  validate the policy files and exit (0 good, 2 bad)\n"
		"  --help, --version\n"
		"Signals: TERM/INT stop (workers keep running), HUP rereads the policies.\n"
		"Exit codes: 0 clean stop, 1 failure, 2 usage or configuration.\n",
		DEFAULT_SLOTS, VIGIL_SLOTS_MAX);
}

static int load_policies(int home_fd, bool write_missing, struct vigil_heartbeat_policy *hb,
			 struct vigil_restart_policy *rp, struct vigil_autofix_policy *ap)
{
	int cfg = vigil_fs_open_dir(home_fd, "coordination/config", write_missing);
	char err[512], warn[512];
	bool missing[3] = {true, true, true};
	int bad = 0;
	vigil_policy_heartbeat_defaults(hb);
	vigil_policy_restart_defaults(rp);
	vigil_policy_autofix_defaults(ap);
	if (cfg < 0 && cfg != -ENOENT) {
		vigil_log_say(VIGIL_LOG_ERROR, "coordination/config: %s", strerror(-cfg));
		return -1;
	}
	if (cfg >= 0) {
		err[0] = warn[0] = '\0';
		if (vigil_policy_heartbeat_load(cfg, "heartbeat-policy.json", "coordination/config/heartbeat-policy.json",
						hb, &missing[0], err, sizeof err, warn, sizeof warn) < 0) {
			vigil_log_say(VIGIL_LOG_ERROR, "%s", err);
			bad++;
		} else if (warn[0] != '\0') {
			vigil_log_say(VIGIL_LOG_WARN, "%s", warn);
		}
		err[0] = warn[0] = '\0';
		if (vigil_policy_restart_load(cfg, "worker-restart-policy.json",
					      "coordination/config/worker-restart-policy.json", rp, &missing[1], err,
					      sizeof err, warn, sizeof warn) < 0) {
			vigil_log_say(VIGIL_LOG_ERROR, "%s", err);
			bad++;
		} else if (warn[0] != '\0') {
			vigil_log_say(VIGIL_LOG_WARN, "%s", warn);
		}
		err[0] = warn[0] = '\0';
		if (vigil_policy_autofix_load(cfg, "auto-fix-policy.json", "coordination/config/auto-fix-policy.json", ap,
					      &missing[2], err, sizeof err, warn, sizeof warn) < 0) {
			vigil_log_say(VIGIL_LOG_ERROR, "%s", err);
			bad++;
		} else if (warn[0] != '\0') {
			vigil_log_say(VIGIL_LOG_WARN, "%s", warn);
		}
	}
	if (bad == 0 && write_missing && cfg >= 0) {
		/* "vigild creates what is missing": the defaults, as files an
		 * operator can read with the runbook's `cat ... | jq .`. */
		json_t *docs[3] = {missing[0] ? vigil_policy_heartbeat_to_json(hb) : NULL,
				   missing[1] ? vigil_policy_restart_to_json(rp) : NULL,
				   missing[2] ? vigil_policy_autofix_to_json(ap) : NULL};
		const char *names[3] = {"heartbeat-policy.json", "worker-restart-policy.json", "auto-fix-policy.json"};
		for (int i = 0; i < 3; i++) {
			if (docs[i] == NULL)
				continue;
			char *s = NULL;
			/* vigil_policy_dumps prints 0.7 as 0.7, not 0.69999999999999996 */
			if (vigil_policy_dumps(docs[i], JSON_INDENT(2) | JSON_PRESERVE_ORDER, &s) == 0 && s != NULL) {
				size_t n = strlen(s);
				s = realloc(s, n + 2);
				if (s != NULL) {
					s[n] = '\n';
					vigil_fs_replace(cfg, names[i], s, n + 1);
				}
			}
			free(s);
			json_decref(docs[i]);
		}
	}
	if (cfg >= 0)
		close(cfg);
	return bad == 0 ? 0 : -1;
}

static const char *const TREE[] = {
	"coordination/config",
	"coordination/worker-specs/active",
	"coordination/worker-specs/zombie",
	"coordination/events",
	"coordination/patterns",
	"coordination/restart/queue",
	"coordination/restart/rejected",
	"coordination/circuit-breakers",
	"coordination/metrics",
	"agents/logs/system",
};

/* The directories whose files vigild acts on (requests, specs, policies)
 * or that hold them: each must be vigild's own (or root's) and writable by
 * no one else, or vigild does not start (README.md, "Trust"). */
static const char *const TRUSTED[] = {
	"coordination",
	"coordination/config",
	"coordination/worker-specs",
	"coordination/worker-specs/active",
	"coordination/worker-specs/zombie",
	"coordination/events",
	"coordination/patterns",
	"coordination/restart",
	"coordination/restart/queue",
	"coordination/restart/rejected",
	"coordination/spawn",
	"coordination/spawn/queue",
	"coordination/spawn/failed",
	"coordination/control",
	"coordination/control/queue",
	"coordination/control/done",
	"coordination/lifecycle",
	"coordination/circuit-breakers",
	"coordination/metrics",
};

static int write_pidfile(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
	char dir[4096], base[4096];
	snprintf(dir, sizeof dir, "%s", path);
	snprintf(base, sizeof base, "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int rc = vigil_fs_replace(dfd, basename(base), buf, (size_t)n);
	close(dfd);
	return rc;
}

/* The runbook checks its daemons with `ps aux | grep heartbeat-monitor-daemon`
 * (and worker-restart-daemon, auto-fix-daemon, failure-pattern-daemon):
 * vigild is all four, and says so in its command line, as sshd and
 * postgres do, by writing over the memory of argv (and of the environment
 * strings right after it, copied elsewhere first).  /proc/PID/comm (and so
 * `pgrep vigild`, `ps -C vigild`, the thread names) is unchanged.  Called
 * once, before any thread, after every use of argv's strings. */
static char **volatile title_env; /* volatile: a store never read is otherwise dropped */
static void set_title(int argc, char **argv, const char *home)
{
	extern char **environ;
	if (argc < 1 || argv[0] == NULL)
		return;
	char *start = argv[0], *end = argv[0] + strlen(argv[0]) + 1;
	/* The area: argv's strings, then environ's, as long as they are contiguous. */
	for (int i = 1; i < argc && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	size_t n_env = 0;
	while (environ != NULL && environ[n_env] != NULL && n_env < (1u << 20))
		n_env++;
	char **env_copy = calloc(n_env + 1, sizeof *env_copy);
	if (env_copy == NULL)
		return;
	for (size_t i = 0; i < n_env; i++) {
		env_copy[i] = strdup(environ[i]);
		if (env_copy[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(env_copy[j]);
			free(env_copy);
			return;
		}
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
	}
	/* The copies live as long as the process: environ points at them
	 * (and title_env, so that leak checkers see them reachable). */
	title_env = env_copy;
	environ = env_copy;
	char title[4400];
	snprintf(title, sizeof title,
		 "vigild: heartbeat-monitor-daemon worker-restart-daemon failure-pattern-daemon auto-fix-daemon "
		 "(home %s)",
		 home);
	size_t room = (size_t)(end - start);
	memset(start, 0, room);
	memcpy(start, title, strnlen(title, room - 1));
}

static void raise_nofile(void)
{
	/* One pidfd per verified worker: take the hard limit when allowed.
	 * If the soft limit stays low, pidfd_open fails with EMFILE and those
	 * workers are monitored by timeouts only (logged per worker). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* How long a starting vigild waits for one that holds the segment to stop
 * (README, "Running vigild"): the runbook's `kill $(cat pidfile) && vigild`
 * starts the new one while the old one writes its final snapshot. */
#define PREDECESSOR_WAIT_MS 10000u

static void predecessor_wait_note(pid_t holder)
{
	fprintf(stderr, "vigild: vigild (pid %d) holds the segment; waiting up to %u s for it to stop\n", (int)holder,
		PREDECESSOR_WAIT_MS / 1000);
}

int main(int argc, char **argv)
{
	const char *home_arg = NULL, *shm_arg = NULL, *pidfile = NULL;
	unsigned long slots = DEFAULT_SLOTS;
	bool check_only = false;
	(void)vigil_log_stderr_is_journal(); /* decided once, before any thread */
	static const struct option opts[] = {
		{"home", required_argument, NULL, 'H'},   {"shm", required_argument, NULL, 's'},
		{"slots", required_argument, NULL, 'n'},  {"pidfile", required_argument, NULL, 'p'},
		{"check-config", no_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H': home_arg = optarg; break;
		case 's': shm_arg = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'c': check_only = true; break;
		case 'n': {
			char *end;
			errno = 0;
			slots = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || slots == 0 || slots > VIGIL_SLOTS_MAX) {
				vigil_log_say(VIGIL_LOG_ERROR, "--slots '%s': expected an integer in [1, %u]", optarg,
					VIGIL_SLOTS_MAX);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		case 'V': printf("vigild %s (ABI %u)\n", VIGILD_VERSION, VIGIL_ABI_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		vigil_log_say(VIGIL_LOG_ERROR, "unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}

	char home[4096], shm[VIGIL_SHM_NAME_MAX + 1], err[600];
	if (vigil_home_resolve(home_arg, shm_arg, home, sizeof home, shm, sizeof shm, err, sizeof err) < 0) {
		vigil_log_say(VIGIL_LOG_ERROR, "%s", err);
		return 2;
	}
	int home_fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home_fd < 0) {
		vigil_log_say(VIGIL_LOG_ERROR, "home %s: %s", home, strerror(errno));
		return 2;
	}
	/* Our own files and directories are never group/world writable,
	 * whatever umask we were started with (a login shell's 002 would make
	 * the tree we create fail our own trust check next time); workers get
	 * the umask we were given back. */
	mode_t given_umask = umask(022);
	umask(given_umask | 022);
	vigil_spawn_umask = (int)given_umask;
	if (vigil_trust_tree(home_fd, home, TRUSTED, sizeof TRUSTED / sizeof TRUSTED[0], err, sizeof err) < 0) {
		vigil_log_say(VIGIL_LOG_ERROR, "not starting: %s", err);
		close(home_fd);
		return 2;
	}
	struct vigil_heartbeat_policy hb;
	struct vigil_restart_policy rp;
	struct vigil_autofix_policy ap;
	if (check_only) {
		int rc = load_policies(home_fd, false, &hb, &rp, &ap);
		close(home_fd);
		if (rc < 0)
			return 2;
		printf("vigild: configuration under %s/coordination/config is valid\n", home);
		return 0;
	}

	for (size_t i = 0; i < sizeof TREE / sizeof TREE[0]; i++) {
		int fd = vigil_fs_open_dir(home_fd, TREE[i], true);
		if (fd < 0) {
			vigil_log_say(VIGIL_LOG_ERROR, "cannot create %s/%s: %s", home, TREE[i], strerror(-fd));
			return 1;
		}
		close(fd);
	}
	if (vigil_log_open(home_fd) < 0)
		vigil_log_say(VIGIL_LOG_WARN, "cannot open the logs under %s/agents/logs/system", home);
	if (load_policies(home_fd, true, &hb, &rp, &ap) < 0) {
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR, "bad configuration: not starting (see stderr)");
		return 2;
	}

	/* Signals: the action thread takes TERM/INT/HUP through a signalfd;
	 * block them before any thread exists so every thread inherits it. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	struct vigil_segment seg;
	if (vigil_segment_open(&seg, shm, (uint32_t)slots, 0600, true, true, err, sizeof err) < 0) {
		if (!vigil_log_stderr_is_journal()) /* the journal gets the log line */
			vigil_log_say(VIGIL_LOG_ERROR, "%s", err);
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_ERROR, "%s", err);
		return 1;
	}
	/* One vigild per segment: the lock, not the header's pid (see
	 * vigil_segment_lock).  Held until we exit; the fd stays open. */
	pid_t other = 0;
	int lock_fd = vigil_segment_lock_wait(shm, PREDECESSOR_WAIT_MS, &other, predecessor_wait_note);
	if (lock_fd < 0) {
		if (lock_fd == -EAGAIN && other > 0)
			vigil_log_say(VIGIL_LOG_ERROR,
				      "another vigild (pid %d) supervises segment %s and has not stopped within %u s; not "
				      "starting a second",
				      (int)other, shm, PREDECESSOR_WAIT_MS / 1000);
		else if (lock_fd == -EAGAIN)
			vigil_log_say(VIGIL_LOG_ERROR,
				"another vigild (its pid not visible here) supervises segment %s; not starting a "
				      "second",
				      shm);
		else
			vigil_log_say(VIGIL_LOG_ERROR, "cannot lock segment %s: %s", shm, strerror(-lock_fd));
		vigil_segment_close(&seg);
		return 1;
	}
	if (!seg.created && seg.slots != slots && slots != DEFAULT_SLOTS)
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN,
			  "segment %s exists with %u slots; --slots %lu applies only when it is created", shm, seg.slots,
			  slots);
	atomic_store_explicit(&seg.hdr->supervisor_pid, (uint64_t)getpid(), memory_order_release);
	atomic_fetch_add_explicit(&seg.hdr->supervisor_epoch, 1, memory_order_relaxed);
	char pidfile_buf[4096];
	if (pidfile != NULL) {
		/* argv's memory becomes the title below: keep our own copy. */
		snprintf(pidfile_buf, sizeof pidfile_buf, "%s", pidfile);
		pidfile = pidfile_buf;
		int rc = write_pidfile(pidfile);
		if (rc < 0) {
			vigil_log_say(VIGIL_LOG_ERROR, "--pidfile %s: %s", pidfile, strerror(-rc));
			atomic_store_explicit(&seg.hdr->supervisor_pid, 0, memory_order_release);
			bool created = seg.created;
			vigil_segment_close(&seg);
			/* A segment this failed start created (a bad --pidfile is a
			 * configuration error that repeats) is not left behind; one
			 * we re-attached keeps its workers for the next vigild. */
			if (created)
				vigil_segment_unlink(shm);
			return 1;
		}
	}

	set_title(argc, argv, home);
	urcu_memb_register_thread();
	struct vigil_scanner scanner;
	struct vigil_action action;
	int rc = vigil_scanner_init(&scanner, &seg, &hb);
	if (rc == 0)
		rc = vigil_action_init(&action, home_fd, &seg, &scanner, &hb, &rp, &ap);
	if (rc < 0) {
		vigil_log_say(VIGIL_LOG_ERROR, "start-up failed: %s", strerror(-rc));
		return 1;
	}
	vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_INFO,
		  "vigild %s started: pid %d home %s segment %s (%u slots, %s) interval %.3f s timeout %.3f s zombie "
		  "%.3f s tick %.4f s",
		  VIGILD_VERSION, (int)getpid(), home, shm, seg.slots, seg.created ? "created" : "re-attached",
		  hb.heartbeat_interval_seconds, hb.heartbeat_timeout_seconds, hb.zombie_threshold_seconds,
		  (double)hb.tick_ns / 1e9);

	/* The first pass adopts whatever the segment holds, on this thread,
	 * before anything else runs: their clocks start now. */
	uint64_t now = vigil_mono_ns();
	scanner.prev_mono_ns = now;
	scanner.vclock_ns = now;
	vigil_scanner_tick(&scanner, now);
	vigil_action_drain(&action);
	vigil_action_sweep_leftovers(&action);
	vigil_action_prune_stale_specs(&action);
	vigil_restart_poll(&action); /* requests left while we were down */
	vigil_action_snapshot(&action, true);

	rc = vigil_scanner_start(&scanner);
	if (rc < 0) {
		vigil_log_say(VIGIL_LOG_ERROR, "cannot start the scanner: %s", strerror(-rc));
		return 1;
	}
	uint64_t wd_usec = vigil_sd_init();
	if (vigil_action_watchdog(&action, wd_usec) < 0)
		vigil_log(VIGIL_LOG_HEARTBEAT, VIGIL_LOG_WARN, "cannot arm the systemd watchdog timer");
	vigil_sd_notify("READY=1");
	vigil_action_sd_status(&action);
	rc = vigil_action_run(&action);
	vigil_sd_notify("STOPPING=1");
	vigil_scanner_stop(&scanner);
	/* A scanner that failed asked for this stop (SIGTERM) after saying
	 * why: exit 1, so that systemd (Restart=on-failure) or the operator
	 * starts a vigild with a working scanner.  Read after the join. */
	int scan_err = vigil_scanner_failed(&scanner);
	if (scan_err != 0)
		rc = -scan_err;
	vigil_action_drain(&action);
	vigil_action_snapshot(&action, true);
	atomic_store_explicit(&seg.hdr->supervisor_pid, 0, memory_order_release);
	vigil_log(VIGIL_LOG_HEARTBEAT, scan_err != 0 ? VIGIL_LOG_ERROR : VIGIL_LOG_INFO,
		  "vigild stopped%s: %u workers left running, segment %s kept",
		  scan_err != 0 ? " because its scanner failed (exit status 1)" : "", action.reg.count, shm);
	if (pidfile != NULL)
		unlink(pidfile);
	vigil_action_destroy(&action);
	vigil_scanner_destroy(&scanner);
	urcu_memb_unregister_thread();
	vigil_segment_close(&seg);
	close(lock_fd); /* the next vigild may start */
	vigil_log_close();
	close(home_fd);
	return rc < 0 ? 1 : 0;
}
