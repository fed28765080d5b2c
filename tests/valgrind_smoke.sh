#!/usr/bin/env bash
# valgrind_smoke.sh BUILD_DIR - vigild under valgrind memcheck through a
# whole life: start, self-registered and spawned workers, a crash that is
# restarted, a hang that becomes a zombie and is cleaned up, a policy
# reload, SIGTERM.  Fails on any memcheck error or definite leak.
# (Timing is relaxed: valgrind slows vigild ~20x; verdicts are not timed.)
set -euo pipefail
build="$1"
command -v valgrind >/dev/null || { echo "valgrind_smoke: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
home="$(mktemp -d /tmp/vigil-vg-XXXXXX)"
shm="/vigil-vg-$$"
vg_pid=""
cleanup() {
    set +e
    exec 2>/dev/null # no "Killed" job notices
    [[ -n "$vg_pid" ]] && kill -KILL "$vg_pid" 2>/dev/null
    for f in "$home"/pids.*; do [[ -f $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null; done
    pkill -KILL -f "VIGIL_SHM=$shm" 2>/dev/null
    for p in /proc/[0-9]*; do
        grep -qz "^VIGIL_SHM=$shm\$" "$p/environ" 2>/dev/null && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    rm -f "/dev/shm$shm"
    rm -rf "$home"
}
trap cleanup EXIT
[[ -n "${VG_KEEP:-}" ]] && trap - EXIT
mkdir -p "$home/coordination/config"
cat > "$home/coordination/config/heartbeat-policy.json" <<'JSON'
{"heartbeat_interval_seconds": 0.5, "heartbeat_timeout_seconds": 1, "zombie_threshold_seconds": 2,
 "snapshot_interval_seconds": 0.5}
JSON
cat > "$home/coordination/config/worker-restart-policy.json" <<'JSON'
{"max_retries": 2, "retry_interval_seconds": 0.2, "kill_grace_seconds": 0.5}
JSON
export COMMIT_RELAY_HOME="$home" VIGIL_SHM="$shm" VIGILCTL="$build/vigilctl"
valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-fds=no --log-file="$home/valgrind.log" \
    "$build/vigild" --home "$home" --shm "$shm" --pidfile "$home/vigild.pid" 2>"$home/vigild.err" &
vg_pid=$!
for _ in $(seq 300); do [[ -f "$home/vigild.pid" ]] && break; sleep 0.1; done
[[ -f "$home/vigild.pid" ]] || { echo "valgrind_smoke: vigild did not start"; cat "$home/valgrind.log"; exit 1; }
wait_for() { # file pattern seconds
    for _ in $(seq $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "valgrind_smoke: '$2' did not appear in $1" >&2; return 1
}
ev="$home/coordination/events/heartbeat-events.jsonl"
ze="$home/coordination/events/zombie-cleanup-events.jsonl"
# valgrind 3.19 does not know pidfd_open (syscall 434): under it vigild
# takes its no-pidfd paths (workers unverified, exits seen as timeouts).
# vigilctl sees vigild's process named memcheck-*: it warns, the requests
# stay queued for vigild all the same.
WORKER_ID=worker-vg-001 WORKER_TYPE=vg "$build/vigil-demo-worker" --beat-ms 100 2>/dev/null & echo $! > "$home/pids.1"
WORKER_ID=worker-vg-002 WORKER_TYPE=vg "$build/vigil-demo-worker" --beat-ms 100 --hang-after-ms 500 2>/dev/null & echo $! > "$home/pids.2"
"$build/vigilctl" spawn --type vgc --task-id t1 --id worker-vgc-001 -- "$build/vigil-demo-worker" --beat-ms 100 --die-after-ms 400 --exit-code 3 >/dev/null 2>&1
wait_for "$ev" 'worker-vg-001' 30
wait_for "$ev" '"worker_id":"worker-vgc-001"' 60
wait_for "$ze" '"zombie_detected","worker_id":"worker-vg-002"' 60
wait_for "$ze" '"zombie_detected","worker_id":"worker-vgc-001"' 60
"$build/vigilctl" restart worker-vgc-001 --reason valgrind >/dev/null 2>&1 || true
wait_for "$home/coordination/metrics/worker-restart-history.jsonl" 'worker-vgc-001' 60
"$build/vigilctl" cleanup-zombies --wait-seconds 1 worker-vg-002 >/dev/null 2>&1 || true
wait_for "$ze" '"zombie_cleanup","worker_id":"worker-vg-002"' 60
printf '%s\n' "bad json" > "$home/coordination/restart/queue/garbage.json"
echo '{"heartbeat_interval_seconds": 0.5, "heartbeat_timeout_seconds": 1.5, "zombie_threshold_seconds": 3}' \
    > "$home/coordination/config/heartbeat-policy.json.new"
mv "$home/coordination/config/heartbeat-policy.json.new" "$home/coordination/config/heartbeat-policy.json"
wait_for "$home/agents/logs/system/heartbeat-monitor-daemon.log" "heartbeat policy reloaded" 30
wait_for "$home/agents/logs/system/worker-restart-daemon.log" "garbage.json rejected" 30
sleep 1
kill -TERM "$vg_pid"
set +e
wait "$vg_pid"
rc=$?
set -e
vg_pid=""
if [[ $rc -ne 0 ]] || ! grep -q "ERROR SUMMARY: 0 errors" "$home/valgrind.log"; then
    echo "valgrind_smoke: vigild exited $rc; memcheck says:" >&2
    cat "$home/valgrind.log" >&2
    exit 1
fi
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$home/valgrind.log" | sed 's/^==[0-9]*== //'
echo "valgrind_smoke: 0 errors, no definite leaks"
