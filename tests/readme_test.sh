#!/usr/bin/env bash
# tests/readme_test.sh SOURCE_DIR BUILD_DIR - runs every shell block of
# README.md marked for testing, as written:
#
#   <!-- readme-test: begin ... -->
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
work="$(mktemp -d /tmp/vigil-readme-XXXXXX)"
cleanup() {
    rm -f /dev/shm/vigil-demo
    rm -rf /tmp/vigil-home "$work"
}
trap cleanup EXIT
ln -s "$build" "$work/build"
ln -s "$src/emitter" "$work/emitter"
awk '/readme-example: begin/{on=1; next} /readme-example: end/{on=0} on && !/^```/' "$readme" >"$work/worker.c"

# Split the marked blocks into block-N.sh.
awk -v dir="$work" '
    /<!-- readme-test: begin/ { inblk = 1; n++; next }
    /<!-- readme-test: end/ { inblk = 0; next }
    inblk && /^```/ { next }
    inblk { print > (dir "/block-" n ".sh") }
' "$readme"
blocks=("$work"/block-*.sh)
if [[ ! -e "${blocks[0]}" ]]; then
    echo "FAIL: no readme-test blocks in $readme"
    exit 1
fi
status=0
for b in "${blocks[@]}"; do
    rm -f /dev/shm/vigil-demo
    rm -rf /tmp/vigil-home
    echo "=== $(basename "$b"):"
    sed 's/^/    /' "$b"
    # Its own session and process group (setsid; timeout keeps it), so
    # that whatever the block leaves running (a vigild, if it failed half
    # way) is ended with it.
    (cd "$work" && exec setsid timeout 120 bash -euo pipefail "$b") >"$b.out" 2>&1 &
    leader=$!
    wait "$leader"
    rc=$?
    kill -KILL -- "-$leader" 2>/dev/null || true
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
