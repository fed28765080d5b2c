#!/usr/bin/env bash
# worker-heartbeat-emitter.sh - heartbeats for shell workers (README,
# "Writing a worker in shell").
#
# A shell script cannot include vigil.h, so this shim hands each beat to
# vigilctl, which registers the worker on its first beat and beats its slot
# afterwards.  Two ways to use it, as in the runbook:
#
#   source worker-heartbeat-emitter.sh
#   emit_heartbeat "$WORKER_ID" "$HEALTH_SCORE" "$PROGRESS"
#       The worker is the shell that sourced this file ($$; from a subshell
#       that is still the top-level shell).  No fork per beat: the first
#       call starts one `vigilctl emit --stdin --pid $$` as a coprocess of
#       the calling shell (a subshell gets its own), and each beat is one
#       line written to it and one line (the exit code) read back.
#
#   emit_detach "$WORKER_ID"
#       The clean goodbye (vigild reports worker_detached, not
#       worker_exited), before the shell ends.
#
#   worker-heartbeat-emitter.sh WORKER_ID HEALTH PROGRESS
#   worker-heartbeat-emitter.sh --detach WORKER_ID
#       The worker is the process that ran the script ($PPID).  The script
#       execs vigilctl so that vigilctl is that process's direct child,
#       which is how vigild verifies a self-registered worker.
#
# HEALTH and PROGRESS are integers 0..100.  WORKER_TYPE and TASK_ID in the
# environment name the worker's type and task; VIGIL_SHM or
# COMMIT_RELAY_HOME select the segment.  vigilctl is $VIGILCTL, else
# `vigilctl` on PATH, else the build tree next to this file.  The exit code
# is vigilctl's: 0 ok, 1 failure, 2 usage.  VIGIL_EMIT_FORK=1 (or bash older
# than 4.3) runs one vigilctl per beat instead of the coprocess.

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

# One beat by a vigilctl of its own (the executed form's way, and the
# fallback): a fork and an exec.
_vigil_hb_once() {
	local _vigil_hb_ctl=
	_vigil_hb_find || return 1
	"$_vigil_hb_ctl" emit --pid "$$" "$@"
}

# Closes this shell's coprocess, if it has one: at end of input it exits.
_vigil_hb_stop() {
	if [[ "${_vigil_hb_owner:-}" == "$BASHPID" ]]; then
		[[ -n "${_vigil_hb_in:-}" ]] && exec {_vigil_hb_in}>&-
		[[ -n "${_vigil_hb_out:-}" ]] && exec {_vigil_hb_out}<&-
	fi 2>/dev/null
	_vigil_hb_owner= _vigil_hb_pid= _vigil_hb_in= _vigil_hb_out=
}

# Starts this shell's coprocess: `vigilctl emit --stdin --pid $$`, a child
# of this shell (vigild verifies the worker through it, so it must descend
# from $$).  Its file descriptors are close-on-exec (bash makes them so):
# the worker's own commands do not inherit them.  Disowned, so that the
# script's `wait` does not wait for it; it ends with the shell (end of
# input, or vigilctl sees $$ end).
_vigil_hb_start() {
	local _vigil_hb_ctl=
	_vigil_hb_find || return 1
	_vigil_hb_stop
	coproc _vigil_hb { exec "$_vigil_hb_ctl" emit --stdin --pid "$$"; }
	_vigil_hb_pid=$_vigil_hb_PID
	_vigil_hb_in=${_vigil_hb[1]}
	_vigil_hb_out=${_vigil_hb[0]}
	_vigil_hb_owner=$BASHPID
	disown "$_vigil_hb_pid" 2>/dev/null
	return 0
}

# Whether this shell may use the coprocess (bash >= 4.3, not turned off).
_vigil_hb_coproc_ok() {
	[[ -z "${VIGIL_EMIT_FORK:-}" ]] &&
		((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 3)))
}

# Sends one line ($1) to this shell's coprocess (started if need be) and
# returns the exit code it answers.  A bounded wait for the answer:
# registration waits at most 2 s for vigild.  No answer (the coprocess died,
# or ended at once without reading: seen twice in CI on a loaded host): this
# one beat goes the forking way with the rest of the arguments ("$@" after
# $1, vigilctl emit's own), so that it is not lost and a lasting fault is
# worded by vigilctl; the next call starts a new coprocess.
_vigil_hb_ask() {
	local _vigil_hb_line=$1
	shift
	if [[ "${_vigil_hb_owner:-}" != "$BASHPID" ]] || ! kill -0 "$_vigil_hb_pid" 2>/dev/null; then
		_vigil_hb_start || return 1
	fi
	local _vigil_hb_rc=
	if ! printf '%s\n' "$_vigil_hb_line" >&"$_vigil_hb_in" ||
		! read -r -t 30 -u "$_vigil_hb_out" _vigil_hb_rc || [[ "$_vigil_hb_rc" != [0-9] ]]; then
		printf 'worker-heartbeat-emitter: the emitter coprocess (pid %s) did not answer; this beat by a vigilctl of its own, a new coprocess on the next one\n' \
			"${_vigil_hb_pid:-?}" >&2
		_vigil_hb_stop
		_vigil_hb_once "$@"
		return
	fi
	return "$_vigil_hb_rc"
}

# emit_heartbeat WORKER_ID HEALTH PROGRESS: one beat for the calling shell.
emit_heartbeat() {
	# Arguments the line protocol cannot carry (blanks, empty, not three)
	# and old shells go the forking way, so that vigilctl words the error
	# exactly as before.
	if (($# != 3)) || [[ -z "$1" || -z "$2" || -z "$3" || "$1$2$3" == *[[:space:]]* ]] || ! _vigil_hb_coproc_ok; then
		_vigil_hb_once "$@"
		return
	fi
	_vigil_hb_ask "$1 $2 $3" "$1" "$2" "$3"
}

# emit_detach WORKER_ID: the calling shell's clean goodbye, as vigil_detach
# in C: vigild reports worker_detached (not worker_exited) and frees the
# slot.  A later emit_heartbeat registers the worker anew.
emit_detach() {
	if (($# != 1)) || [[ -z "$1" || "$1" == *[[:space:]]* ]] || ! _vigil_hb_coproc_ok ||
		[[ "${_vigil_hb_owner:-}" != "$BASHPID" ]]; then
		_vigil_hb_once --detach "$@"
		return
	fi
	_vigil_hb_ask "$1 detach" --detach "$1"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	# Executed: the worker is whoever ran us.
	_vigil_hb_ctl=
	_vigil_hb_find || exit 1
	exec "$_vigil_hb_ctl" emit --pid "$PPID" "$@"
fi
