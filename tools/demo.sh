#!/usr/bin/env bash
# tools/demo.sh - install what is missing, build, and run vigild with a demo
# fleet of real workers on a temporary home; show the fleet healing itself
# live, once a second, until Ctrl-C (or for N seconds), then a summary of
# what happened; stop everything and remove the home and the segment.
#
#   tools/demo.sh              live until Ctrl-C
#   tools/demo.sh --for 60     60 seconds, plain frames (no screen clearing),
#                              then the summary; exit 1 if a step of the
#                              self-healing loop did not happen
#   VIGIL_BUILD_DIR=DIR tools/demo.sh ...   use an existing build (no setup)
#
# Nothing to configure.  The demo writes fast policies into its temporary
# home (heartbeat interval 1 s, timeout 3 s, zombie 6 s; restarts after 1 s;
# breaker at 3 failures) so that every step shows within the first minute;
# the product's defaults (README.md) apply everywhere else.
#
# The fleet, and what you see happen:
#   started through vigild (vigilctl spawn):
#     worker-crashy-001   crashes (SIGSEGV) at 4 s: restarted, beats again
#     worker-flaky-002    exits with code 3 after 0.7 s, every time: a crash
#                         loop, until auto-fix quarantines it (or its
#                         breaker opens)
#     worker-hangs-003    hangs at 2 s (alive, silent), holding 250 tokens:
#                         missed -> timeout -> zombie; vigild ends it, its
#                         tokens come back, and a replacement beats
#   self-registered (they attach to the segment on their own):
#     worker-implementation-004/005, worker-review-006: healthy C workers
#     worker-shell-007    a shell worker using the shell emitter
#     worker-test-008     hangs at 3 s: a zombie vigild did not start, so it
#                         is not restarted; the demo cleans it up with
#                         `vigilctl cleanup-zombies` as an operator would
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

duration=""
while (($#)); do
    case "$1" in
    --for) duration="${2:?--for needs seconds}"; shift 2 ;;
    --for=*) duration="${1#--for=}"; shift ;;
    -h | --help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if [[ -n "$duration" && ! "$duration" =~ ^[0-9]+$ ]]; then
    echo "demo: --for takes whole seconds" >&2
    exit 2
fi

if [[ -n "${VIGIL_BUILD_DIR:-}" ]]; then
    bin="$VIGIL_BUILD_DIR"
else
    "$here/setup.sh" "$root/build"
    bin="$root/build"
fi
for t in vigild vigilctl vigil-demo-worker; do
    [[ -x "$bin/$t" ]] || { echo "demo: $bin/$t is missing (build first)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "demo: jq is missing (apt-get install jq)" >&2; exit 1; }

home="$(mktemp -d /tmp/vigil-demo-XXXXXX)"
shm="/vigil-demo-$$"
pids=()
vigild_pid=""
cleanup() {
    trap - EXIT INT TERM
    exec 2>/dev/null # no "Killed" job notices
    echo
    echo "demo: stopping the fleet and vigild"
    if [[ -n "$vigild_pid" ]]; then kill -TERM "$vigild_pid" 2>/dev/null || true; wait "$vigild_pid" 2>/dev/null || true; fi
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
    # The workers vigild started live in sessions of their own.
    for p in $(grep -lz "^VIGIL_SHM=$shm\$" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -f "/dev/shm$shm"
    rm -rf "$home"
    echo "demo: removed $home and segment $shm"
}
trap cleanup EXIT INT TERM

cfg="$home/coordination/config"
mkdir -p "$cfg"
chmod 0755 "$home" "$home/coordination" "$cfg"
cat > "$cfg/heartbeat-policy.json" <<'JSON'
{
  "heartbeat_interval_seconds": 1,
  "heartbeat_timeout_seconds": 3,
  "zombie_threshold_seconds": 6,
  "health_score_decay_rate": 5,
  "min_health_score": 20,
  "snapshot_interval_seconds": 0.5
}
JSON
cat > "$cfg/worker-restart-policy.json" <<'JSON'
{
  "max_retries": 10,
  "retry_interval_seconds": 1,
  "backoff_multiplier": 1,
  "circuit_breaker_enabled": true,
  "circuit_breaker_threshold": 3,
  "circuit_breaker_reset_seconds": 300,
  "kill_grace_seconds": 1
}
JSON
cat > "$cfg/auto-fix-policy.json" <<'JSON'
{
  "enabled": true,
  "min_confidence_threshold": 0.7,
  "max_fixes_per_hour": 10,
  "dry_run": false,
  "notification_enabled": false
}
JSON
export COMMIT_RELAY_HOME="$home" VIGIL_SHM="$shm" VIGILCTL="$bin/vigilctl"
"$bin/vigild" --home "$home" --shm "$shm" --pidfile "$home/vigild.pid" 2>"$home/vigild.err" &
vigild_pid=$!
for _ in $(seq 200); do [[ -f "$home/vigild.pid" ]] && break; sleep 0.05; done
if [[ ! -f "$home/vigild.pid" ]]; then
    echo "demo: vigild did not start:" >&2
    cat "$home/vigild.err" >&2
    exit 1
fi

ctl() { "$bin/vigilctl" --home "$home" --shm "$shm" "$@"; }
worker="$bin/vigil-demo-worker"
# The first run of a worker misbehaves, its replacements do not: a marker
# file under the home says "already happened" (bash exec keeps the pid).
once() { # marker misbehaving-args... -- normal-args...
    local marker="$home/$1"; shift
    local bad=() good=()
    while (($#)) && [[ "$1" != "--" ]]; do bad+=("$1"); shift; done
    shift
    good=("$@")
    echo "if [ -e '$marker' ]; then exec '$worker' ${good[*]}; else : > '$marker'; exec '$worker' ${bad[*]}; fi"
}
ctl spawn --type crashy --task-id task-crash --id worker-crashy-001 -- \
    bash -c "$(once crashed --beat-ms 200 --signal-after-ms 4000 --signal SEGV -- --beat-ms 200)" >/dev/null
ctl spawn --type flaky --task-id task-loop --id worker-flaky-002 -- \
    "$worker" --beat-ms 100 --die-after-ms 700 --exit-code 3 >/dev/null
ctl spawn --type hangs --task-id task-hang --id worker-hangs-003 --tokens 250 -- \
    bash -c "$(once hung --beat-ms 200 --hang-after-ms 2000 -- --beat-ms 200 --health 95)" >/dev/null

start() { # id type args...
    local id="$1" type="$2"; shift 2
    WORKER_ID="$id" WORKER_TYPE="$type" TASK_ID="task-$id" "$worker" "$@" 2>/dev/null &
    pids+=($!)
}
start worker-implementation-004 implementation --beat-ms 200
start worker-implementation-005 implementation --beat-ms 200 --health 90
start worker-review-006 review --beat-ms 300 --health 75 --progress-step 3
SHIM="$root/emitter/worker-heartbeat-emitter.sh" WORKER_TYPE=shell \
    bash -c 'source "$SHIM"; while :; do emit_heartbeat worker-shell-007 95 50 || true; sleep 0.5; done' &
pids+=($!)
start worker-test-008 test --beat-ms 200 --hang-after-ms 3000

ev="$home/coordination/events"
met="$home/coordination/metrics"
# Everything that happened, one line per record, oldest first.
timeline() {
    {
        cat "$ev/heartbeat-events.jsonl" "$ev/zombie-cleanup-events.jsonl" 2>/dev/null
        jq -c '. + {event: ("restart " + .result + (if .reason then " (" + .reason + ")" else "" end))}' \
            "$met/worker-restart-history.jsonl" 2>/dev/null
        jq -c '. + {event: ("auto-fix " + .action + " " + .result + " (" + .pattern + ")")}' \
            "$met/auto-fix-history.jsonl" 2>/dev/null
    } | jq -r -s 'sort_by(.timestamp_ms) | .[] |
        "\(.timestamp[11:19])  \(.event)  \(.worker_id // "")" +
        (if .tokens_returned then "  tokens_returned=\(.tokens_returned)" else "" end)' 2>/dev/null || true
}
cleaned_008=""
interrupted=""
trap 'interrupted=1' INT # Ctrl-C: the summary, then the cleanup
t0=$SECONDS
frame() {
    local el=$((SECONDS - t0))
    local how="Ctrl-C for the summary"
    [[ -n "$duration" ]] && how="$duration s run"
    echo "vigil demo - ${el}s - home $home - segment $shm - $how"
    echo "policy: interval 1 s, timeout 3 s, zombie 6 s; restart after 1 s; breaker at 3 failures; auto-fix on"
    echo
    echo "HEALTH% | ID | LAST_SEEN | TYPE | PID | STATE        (vigilctl status)"
    ctl status 2>/dev/null || true
    echo
    echo "zombies: $(ls "$home/coordination/worker-specs/zombie" 2>/dev/null | tr '\n' ' ')"
    echo "breakers: $(ctl breakers 2>/dev/null | tr '\n' ' ')"
    echo "tokens: $(jq -r '"allocated \(.tokens_allocated) available \(.tokens_available)"' "$met/worker-restart-metrics.json" 2>/dev/null)"
    echo
    echo "latest events, restarts and fixes:"
    timeline | tail -14
}
while :; do
    out="$(frame)"
    if [[ -z "$duration" && -t 1 ]]; then printf '\033[H\033[2J%s\n' "$out"; else printf '%s\n\n' "$out"; fi
    # The operator's part: a zombie vigild did not start is cleaned up by hand.
    if [[ -z "$cleaned_008" && -f "$home/coordination/worker-specs/zombie/worker-test-008.json" ]]; then
        echo ">>> vigilctl cleanup-zombies worker-test-008"
        ctl cleanup-zombies worker-test-008 || true
        cleaned_008=1
    fi
    if [[ -n "$duration" ]] && ((SECONDS - t0 >= duration)); then break; fi
    [[ -n "$interrupted" ]] && break
    sleep 1 || true
    [[ -n "$interrupted" ]] && break
done
trap cleanup INT

# ---- the summary ----------------------------------------------------------
tl="$(timeline)"
ok=0
check() { # description, grep -E pattern over the timeline
    if grep -qE "$2" <<<"$tl"; then echo "  [x] $1"; else echo "  [ ] $1"; ok=1; fi
}
echo "==== what happened ===="
check "worker-crashy-001 crashed and was restarted" 'restart success.*worker-crashy-001'
if ctl status 2>/dev/null | grep -q 'worker-crashy-001.*active'; then echo "  [x] worker-crashy-001 beats again"; else echo "  [ ] worker-crashy-001 beats again"; ok=1; fi
check "worker-flaky-002 crash-looped until auto-fix quarantined it or its breaker opened" \
    'auto-fix quarantine applied.*worker-flaky-002|restart failure \(circuit_breaker_open\).*worker-flaky-002'
check "worker-hangs-003 hung and became a zombie" 'zombie_detected.*worker-hangs-003'
check "worker-hangs-003 was ended, its 250 tokens returned" 'zombie_cleanup.*worker-hangs-003.*tokens_returned=250'
check "worker-hangs-003 was replaced" 'restart success.*worker-hangs-003'
check "worker-test-008 (self-registered) became a zombie and was cleaned up" 'zombie_cleanup.*worker-test-008'
echo
echo "events: $(grep -oE '  [a-z_]+(  |$)' <<<"$tl" | tr -d ' ' | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')"
echo "restarts: $(grep -c 'restart success' <<<"$tl" || true) succeeded, $(grep -c 'restart failure' <<<"$tl" || true) failed"
echo "auto-fix: $(grep -c 'auto-fix .* applied' <<<"$tl" || true) fixes applied"
[[ -n "$duration" ]] && exit $ok
exit 0
