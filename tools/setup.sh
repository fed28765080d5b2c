#!/usr/bin/env bash
# tools/setup.sh - install what is missing (Debian 12, as root) and build.
#
#   tools/setup.sh [BUILD_DIR] [extra cmake args...]
#
# Idempotent: packages already present are not reinstalled, and the build
# is incremental.  Used by tools/demo.sh and tools/test.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${1:-$root/build}"
shift || true

# What the build and the demo need ...
packages=(build-essential cmake pkg-config liburcu-dev libck-dev libjansson-dev
          libcmocka-dev libsystemd-dev jq procps psmisc util-linux)
# ... and what every test needs (tools/test.sh sets VIGIL_SETUP_TESTS=1):
# valgrind (valgrind_smoke), prometheus (promtool: prometheus_rules, the
# .prom check), tmux (vigilctl top), clang (the libFuzzer targets of
# fuzz_smoke), systemd (systemd-analyze: systemd_units), systemd-container
# and debootstrap (container_systemd, under a real systemd).
if [[ -n "${VIGIL_SETUP_TESTS:-}" ]]; then
    packages+=(valgrind tmux prometheus clang systemd systemd-container debootstrap)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log="$(mktemp)"
if ! { cmake -S "$root" -B "$build" -DVIGIL_WERROR=ON "$@" && cmake --build "$build" -j"$(nproc)"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "setup: build failed in $build" >&2
    exit 1
fi
rm -f "$log"
echo "setup: built into $build" >&2
