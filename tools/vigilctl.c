/*
 * vigilctl.c - the operator's and the shell worker's command-line tool.
 *
 * vigild keeps its live state in the shared-memory segment and its history
 * in coordination/; vigilctl is how a human or a script reads the former
 * (`status`) and how a worker that cannot include vigil.h - a shell
 * script - publishes heartbeats (`emit`, wrapped by
 * emitter/worker-heartbeat-emitter.sh).
 *
 * Trust: the segment is shared with every worker of this user, so after
 * vigil_segment_open() has validated the header, every loop is bounded by
 * the slot count copied at open (seg.slots), never by header fields read
 * later, and every byte copied out of a slot (ids, pids, verdicts) is
 * checked or rendered safely before it is printed.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage; `check` follows the monitoring-
 * plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 *
 * Layout: this file is the table of commands and main(), which parses the
 * global --home/--shm and dispatches on the command's name; each command
 * is in tools/vigilctl/ (status.c, top.c, check.c, metrics.c, emit.c,
 * spawn.c, restart.c, control.c for cleanup-zombies, breakers, breaker and
 * quarantine), and what they share - the --home/--shm preamble, usage
 * errors, the segment and the files under the home - is ctl.h/common.c.
 */
#include "vigilctl/ctl.h"

/* The table of commands: `vigilctl NAME` runs fn; args and help are its
 * synopsis and one line, for `vigilctl --help` and `vigilctl NAME --help`.
 * The order is the order of `vigilctl --help`. */
static const struct cmd cmds[] = {
	{"status", ctl_cmd_status, "[--json] [--home DIR] [--shm NAME]",
	 "list live workers: HEALTH% | ID | LAST_SEEN | TYPE | PID | STATE"},
	{"top", ctl_cmd_top, "[--once] [--type T] [--sort health|id|age|type] [--reverse] [--home DIR] [--shm NAME]",
	 "live full-screen view of the workers, worst first (--once: one plain frame)"},
	{"check", ctl_cmd_check, "[--max-zombies N] [--min-health H] [--max-stale S] [--home DIR] [--shm NAME]",
	 "one-line verdict for probes and monitoring plugins: exit 0 OK, 1 WARNING, 2 CRITICAL"},
	{"metrics", ctl_cmd_metrics, "[--json | --prom] [--home DIR] [--shm NAME]",
	 "print vigild's metrics (JSON files, or Prometheus text as in vigil.prom)"},
	{"emit", ctl_cmd_emit, "[--pid PID] [--type T] [--task-id X] [--home DIR] [--shm NAME] {ID HEALTH PROGRESS | --stdin | --detach ID}",
	 "publish one heartbeat for a worker that cannot include vigil.h"},
	{"spawn", ctl_cmd_spawn,
	 "--type T --task-id X [--timeout S] [--tokens N] [--cwd DIR] [--id ID] [--wait] [--home DIR] [--shm NAME] -- CMD [ARGS...]",
	 "queue a new worker for vigild to start; prints its worker id"},
	{"restart", ctl_cmd_restart, "[--reason R] [--type T] [--task-id X] [--home DIR] [--shm NAME] ID",
	 "queue a restart request for worker ID; prints the request file"},
	{"cleanup-zombies", ctl_cmd_cleanup, "[--wait-seconds W] [--json] [--home DIR] [--shm NAME] [ID]",
	 "ask vigild to end zombie workers (all, or ID) and return their tokens"},
	{"breakers", ctl_cmd_breakers, "[--json] [--home DIR] [--shm NAME]",
	 "list circuit breakers: TYPE: STATE (N failures)"},
	{"breaker", ctl_cmd_breaker, "reset [--wait-seconds W] [--json] [--home DIR] [--shm NAME] TYPE",
	 "ask vigild to close the circuit breaker of worker type TYPE"},
	{"quarantine", ctl_cmd_quarantine, "lift [--wait-seconds W] [--json] [--home DIR] [--shm NAME] ID",
	 "ask vigild to lift auto-fix's quarantine of worker ID"},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

/* ---- usage ----------------------------------------------------------- */

/* `vigilctl --help`, or the usage error of a bare `vigilctl`, to out. */
static void usage_main(FILE *out)
{
	fprintf(out,
		"usage: vigilctl [--home DIR] [--shm NAME] COMMAND [ARGS...]\n"
		"       vigilctl --help | --version\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(out, "  %-16s %s\n", cmds[i].name, cmds[i].help);
	fprintf(out,
		"\n"
		"Every command takes --home DIR (else $COMMIT_RELAY_HOME, else the current\n"
		"directory) and --shm NAME (else $VIGIL_SHM, else derived from the home).\n"
		"'vigilctl COMMAND --help' describes a command.  Exit codes: 0 ok, 1 failure,\n"
		"2 usage; except check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot tell,\n"
		"including usage errors), the monitoring-plugin convention.\n");
}

/* Contract in vigilctl/ctl.h. */
void ctl_usage_cmd(FILE *out, const struct cmd *cmd)
{
	fprintf(out, "usage: vigilctl %s %s\n%s\n", cmd->name, cmd->args, cmd->help);
}

/* Contract in vigilctl/ctl.h. */
const struct cmd *ctl_find_cmd(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* ---- main -------------------------------------------------------------- */

/* Parses the global options (--home and --shm before the command, --help,
 * --version), then runs the command named next with the rest of argv (its
 * name as argv[0]) through the table; the command's code is the exit code. */
int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"home", required_argument, NULL, 'H'},
		{"shm", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct common c;
	memset(&c, 0, sizeof c);
	int opt;
	opterr = 0;
	/* '+': stop at the subcommand; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'H': c.home_arg = optarg; break;
		case 'S': c.shm_arg = optarg; break;
		case 'h': usage_main(stdout); return EXIT_OK;
		case 'V': printf("vigilctl " VIGILCTL_VERSION "\n"); return EXIT_OK;
		default:
			if (opt == ':')
				fprintf(stderr, "vigilctl: option '%s' needs an argument (see vigilctl --help)\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "vigilctl: unknown option '%s' (see vigilctl --help)\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	const struct cmd *cmd = ctl_find_cmd(argv[optind]);
	if (cmd == NULL) {
		char rb[300];
		fprintf(stderr, "vigilctl: unknown command '%s' (see vigilctl --help)\n",
			ctl_render_arg(argv[optind], rb, sizeof rb));
		return EXIT_USAGE;
	}
	return cmd->fn(argc - optind, argv + optind, &c);
}
