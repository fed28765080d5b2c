#!/usr/bin/env bash
# tests/readme_test.sh SOURCE_DIR BUILD_DIR - runs every shell block of
# README.md marked for testing, as written:
#
#   <!-- readme-test: begin [expect=timeout-events] ... -->
#   ```sh
#   ...
#   ```
#   <!-- readme-test: end -->
#
# Each block runs under `bash -euo pipefail` in a fresh directory that
# looks like a built checkout: `build/` is BUILD_DIR, `emitter/` the
# source's, and `worker.c` the README's C example (its readme-example
# block).  A block that fails fails the test, with its output.
set -uo pipefail
src="$1"
build="$2"
readme="$src/README.md"
work="$(mktemp -d /var/tmp/vigil-readme-XXXXXX)"
# The blocks use fixed names (/tmp/vigil-home, segment /vigil-demo), as a
# reader would.  As root, each block gets a private /tmp and /dev/shm (a
# mount namespace with tmpfs over both), so that a reader's demo or another
# run of this test on the machine is neither seen nor touched; otherwise the
# blocks run as they are.
private=""
if ((EUID == 0)) && unshare --mount --propagation private true 2>/dev/null; then
    private=1
fi
cleanup() {
    if [[ -z "$private" ]]; then
        rm -f /dev/shm/vigil-demo
        rm -rf /tmp/vigil-home
    fi
    rm -rf "$work"
}
trap cleanup EXIT
ln -s "$build" "$work/build"
ln -s "$src/emitter" "$work/emitter"
awk '/readme-example: begin/{on=1; next} /readme-example: end/{on=0} on && !/^```/' "$readme" >"$work/worker.c"

# Split the marked blocks into block-N.sh.
awk -v dir="$work" '
    /<!-- readme-test: begin/ {
        inblk = 1; n++
        if (match($0, /expect=[a-z-]+/)) print substr($0, RSTART + 7, RLENGTH - 7) > (dir "/block-" n ".sh.expect")
        next
    }
    /<!-- readme-test: end/ { inblk = 0; next }
    inblk && /^```/ { next }
    inblk { print > (dir "/block-" n ".sh") }
' "$readme"
blocks=("$work"/block-*.sh)
if [[ ! -e "${blocks[0]}" ]]; then
    echo "FAIL: no readme-test blocks in $readme"
    exit 1
fi
# A home with real events for the blocks that read one: a vigild, a worker
# that beats, one that hangs (missed, timeout), one that exits.
home="$work/home"
mkdir -p "$home/coordination/config"
echo '{"heartbeat_interval_seconds": 0.2, "heartbeat_timeout_seconds": 0.6, "zombie_threshold_seconds": 30}' \
    >"$home/coordination/config/heartbeat-policy.json"
shm="/vigil-readme-$$"
"$build/vigild" --home "$home" --shm "$shm" --pidfile "$home/vigild.pid" 2>"$home/vigild.err" &
vpid=$!
for _ in $(seq 100); do [[ -f "$home/vigild.pid" ]] && break; sleep 0.05; done
VIGIL_SHM="$shm" WORKER_ID=worker-ok-001 "$build/vigil-demo-worker" --beat-ms 50 2>/dev/null &
w1=$!
VIGIL_SHM="$shm" WORKER_ID=worker-hang-002 "$build/vigil-demo-worker" --beat-ms 50 --hang-after-ms 300 2>/dev/null &
w2=$!
VIGIL_SHM="$shm" WORKER_ID=worker-exit-003 "$build/vigil-demo-worker" --beat-ms 50 --die-after-ms 300 2>/dev/null &
w3=$!
for _ in $(seq 100); do grep -q heartbeat_timeout "$home/coordination/events/heartbeat-events.jsonl" 2>/dev/null && break; sleep 0.1; done
kill "$w1" "$w2" "$w3" 2>/dev/null
wait "$w1" "$w2" "$w3" 2>/dev/null
kill "$vpid"
wait "$vpid"
rm -f "/dev/shm$shm"
export COMMIT_RELAY_HOME="$home"

status=0
for b in "${blocks[@]}"; do
    if [[ -z "$private" ]]; then
        rm -f /dev/shm/vigil-demo
        rm -rf /tmp/vigil-home
    fi
    echo "=== $(basename "$b"):"
    sed 's/^/    /' "$b"
    # Its own session and process group (setsid; timeout keeps it), so
    # that whatever the block leaves running (a vigild, if it failed half
    # way) is ended with it.
    if [[ -n "$private" ]]; then
        (cd "$work" && exec setsid timeout 120 unshare --mount --propagation private bash -c \
            'mount -t tmpfs -o mode=1777 tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /dev/shm &&
             exec bash -euo pipefail "$0"' "$b") >"$b.out" 2>&1 &
    else
        (cd "$work" && exec setsid timeout 120 bash -euo pipefail "$b") >"$b.out" 2>&1 &
    fi
    leader=$!
    wait "$leader"
    rc=$?
    kill -KILL -- "-$leader" 2>/dev/null || true
    # expect=timeout-events: the output is the timeout and missed events of
    # the home, at least one timeout, and nothing else.
    if ((rc == 0)) && [[ "$(cat "$b.expect" 2>/dev/null)" == timeout-events ]]; then
        if ! grep -q heartbeat_timeout "$b.out" || grep -vqE '"event":"heartbeat_(timeout|missed)"' "$b.out"; then
            echo "--- FAILED: the timeout grep found other events or none:"
            sed 's/^/    /' "$b.out"
            status=1
            continue
        fi
    fi
    if ((rc == 0)); then
        echo "--- ok"
        sed 's/^/    /' "$b.out" | tail -5
    else
        echo "--- FAILED (exit $rc):"
        sed 's/^/    /' "$b.out"
        status=1
    fi
done
exit $status
