#!/usr/bin/env bash
# tests/demo_test.sh BUILD_DIR - runs `tools/demo.sh --for 60` on the built
# binaries and checks that the demo showed the whole self-healing loop in
# its first minute: a crash restarted and beating again, a crash loop
# quarantined (or its breaker open), a hang turned zombie, ended with its
# tokens returned and replaced, a self-registered zombie cleaned up (the
# demo's summary lists each; it exits 1 when one is missing).
set -uo pipefail
build="$1"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
VIGIL_BUILD_DIR="$build" "$src/tools/demo.sh" --for 60 >"$out" 2>&1
rc=$?
sed -n '/==== what happened ====/,$p' "$out"
if ((rc != 0)); then
    echo "FAIL: tools/demo.sh --for 60 exited $rc; its last frames:"
    tail -80 "$out"
    exit 1
fi
n=$(grep -c '^  \[x\]' "$out")
if ((n != 7)) || grep -q '^  \[ \]' "$out"; then
    echo "FAIL: the summary has $n of 7 steps"
    exit 1
fi
grep -q 'demo: removed /tmp/vigil-demo-' "$out" || { echo "FAIL: the demo did not clean up"; exit 1; }
echo "demo: every step of the self-healing loop happened within 60 s"
