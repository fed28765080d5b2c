#!/usr/bin/env bash
# tools/demo.sh - install what is missing, build, and run vigild with a demo
# fleet of real workers on a temporary home; show their health live until
# Ctrl-C, then stop everything and remove the home and the segment.
#
# Nothing to configure.  The demo writes a fast heartbeat policy into its
# temporary home (interval 1 s, timeout 3 s, zombie 6 s) so that every
# verdict shows within seconds; the product's defaults (30/120/300 s) apply
# everywhere else.
#
# The fleet: four C workers beating at different health, one shell worker
# using the shell emitter, one worker that hangs after 3 s (missed ->
# timeout -> zombie), one that exits after 5 s (worker_exited, at once).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
"$here/setup.sh" "$root/build"
bin="$root/build"

home="$(mktemp -d /tmp/vigil-demo-XXXXXX)"
shm="/vigil-demo-$$"
pids=()
vigild_pid=""
cleanup() {
    trap - EXIT INT TERM
    exec 2>/dev/null # no "Killed" job notices
    echo
    echo "demo: stopping the fleet and vigild"
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
    if [[ -n "$vigild_pid" ]]; then kill -TERM "$vigild_pid" 2>/dev/null || true; wait "$vigild_pid" 2>/dev/null || true; fi
    rm -f "/dev/shm$shm"
    rm -rf "$home"
    echo "demo: removed $home and segment $shm"
}
trap cleanup EXIT INT TERM

mkdir -p "$home/coordination/config"
cat > "$home/coordination/config/heartbeat-policy.json" <<'JSON'
{
  "heartbeat_interval_seconds": 1,
  "heartbeat_timeout_seconds": 3,
  "zombie_threshold_seconds": 6,
  "health_score_decay_rate": 5,
  "min_health_score": 20,
  "snapshot_interval_seconds": 0.5
}
JSON
export COMMIT_RELAY_HOME="$home" VIGIL_SHM="$shm" VIGILCTL="$bin/vigilctl"
"$bin/vigild" --home "$home" --shm "$shm" --pidfile "$home/vigild.pid" 2>"$home/vigild.err" &
vigild_pid=$!
for _ in $(seq 100); do [[ -f "$home/vigild.pid" ]] && break; sleep 0.05; done

start() { # id type args...
    local id="$1" type="$2"; shift 2
    WORKER_ID="$id" WORKER_TYPE="$type" TASK_ID="task-$id" "$bin/vigil-demo-worker" "$@" 2>/dev/null &
    pids+=($!)
}
start worker-implementation-001 implementation --beat-ms 200
start worker-implementation-002 implementation --beat-ms 200 --health 90
start worker-review-003 review --beat-ms 300 --health 75
start worker-review-004 review --beat-ms 250 --progress-step 3
start worker-test-005 test --beat-ms 200 --hang-after-ms 3000
start worker-build-006 build --beat-ms 200 --die-after-ms 5000 --exit-code 3
SHIM="$root/emitter/worker-heartbeat-emitter.sh" WORKER_TYPE=shell \
    bash -c 'source "$SHIM"; while :; do emit_heartbeat worker-shell-007 95 50 || true; sleep 0.5; done' &
pids+=($!)

events="$home/coordination/events"
while :; do
    out="$(
        echo "vigil demo - home $home - segment $shm - Ctrl-C to stop"
        echo "policy: interval 1 s, timeout 3 s, zombie 6 s (a worker hangs at 3 s, another exits at 5 s)"
        echo
        echo "HEALTH% | ID | LAST_SEEN | TYPE | PID | STATE        (vigilctl status)"
        "$bin/vigilctl" status 2>/dev/null || true
        echo
        echo "zombies (coordination/worker-specs/zombie/): $(ls "$home/coordination/worker-specs/zombie" 2>/dev/null | tr '\n' ' ')"
        echo
        echo "latest events (coordination/events/*.jsonl):"
        cat "$events"/heartbeat-events.jsonl "$events"/zombie-cleanup-events.jsonl 2>/dev/null |
            jq -r -s 'sort_by(.timestamp_ms) | .[-10:][] | "\(.timestamp)  \(.event)  \(.worker_id // "")  health=\(.health_score // "-")"' 2>/dev/null || true
    )"
    if [[ -t 1 ]]; then printf '\033[H\033[2J%s\n' "$out"; else printf '%s\n\n' "$out"; fi
    sleep 1
done
