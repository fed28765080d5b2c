#!/usr/bin/env bash
# worker-heartbeat-emitter.sh - heartbeats for shell workers (SPEC §6).
#
# A shell script cannot include vigil.h, so this shim hands each beat to
# `vigilctl emit`, which registers the worker on its first beat and beats
# its slot afterwards.  Two ways to use it, as in the runbook:
#
#   source worker-heartbeat-emitter.sh
#   emit_heartbeat "$WORKER_ID" "$HEALTH_SCORE" "$PROGRESS"
#       The worker is the shell that sourced this file ($$; from a subshell
#       that is still the top-level shell).
#
#   worker-heartbeat-emitter.sh WORKER_ID HEALTH PROGRESS
#       The worker is the process that ran the script ($PPID).  The script
#       execs vigilctl so that vigilctl is that process's direct child,
#       which is how vigild verifies a self-registered worker.
#
# HEALTH and PROGRESS are integers 0..100.  WORKER_TYPE and TASK_ID in the
# environment name the worker's type and task; VIGIL_SHM or
# COMMIT_RELAY_HOME select the segment.  vigilctl is $VIGILCTL, else
# `vigilctl` on PATH, else the build tree next to this file.  The exit code
# is vigilctl's: 0 ok, 1 failure, 2 usage.

# Sets the caller's variable _vigil_hb_ctl (declared local there; bash
# scoping is dynamic) to the vigilctl to run.  Runs no subprocess.
_vigil_hb_find() {
	local here=${BASH_SOURCE[0]%/*} cand
	[[ "$here" == "${BASH_SOURCE[0]}" ]] && here=.
	if [[ -n "${VIGILCTL:-}" ]]; then
		if [[ -x "$VIGILCTL" ]] || command -v -- "$VIGILCTL" >/dev/null 2>&1; then
			_vigil_hb_ctl=$VIGILCTL
			return 0
		fi
		printf 'worker-heartbeat-emitter: VIGILCTL=%q is not an executable\n' "$VIGILCTL" >&2
		return 1
	fi
	if command -v vigilctl >/dev/null 2>&1; then
		_vigil_hb_ctl=vigilctl
		return 0
	fi
	for cand in "$here/vigilctl" "$here/../build/vigilctl" "$here/../build/tools/vigilctl"; do
		if [[ -f "$cand" && -x "$cand" ]]; then
			_vigil_hb_ctl=$cand
			return 0
		fi
	done
	printf 'worker-heartbeat-emitter: vigilctl not found (set VIGILCTL, put vigilctl on PATH, or build it in %s/../build)\n' "$here" >&2
	return 1
}

# emit_heartbeat WORKER_ID HEALTH PROGRESS: one beat for the calling shell.
emit_heartbeat() {
	local _vigil_hb_ctl=
	_vigil_hb_find || return 1
	"$_vigil_hb_ctl" emit --pid "$$" "$@"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	# Executed: the worker is whoever ran us.
	_vigil_hb_ctl=
	_vigil_hb_find || exit 1
	exec "$_vigil_hb_ctl" emit --pid "$PPID" "$@"
fi
