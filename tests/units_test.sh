#!/usr/bin/env bash
# tests/units_test.sh BUILD_DIR - the systemd units as `cmake --install`
# writes them (README.md "Installing", "Under systemd"):
#   - installed under two prefixes, each unit's ExecStart=/ExecReload= name
#     that prefix's vigild (not a hard-coded /usr/local);
#   - `systemd-analyze verify` has nothing to say about any of them (unknown
#     keys, bad values, a missing executable);
#   - the system unit keeps what a fresh install needs (StateDirectory=,
#     RuntimeDirectory=, the pid file under it, ExecReload validating
#     first) and not KillMode=process;
#   - the pid file's and the home's places in ExecStart= are the ones
#     vigild --check-config accepts (ExecReload's command runs for real on
#     a home with a bad policy: exit 2).
# A missing systemd-analyze skips only the verify step, with a SKIP line.
set -uo pipefail
build="$1"
tmp="$(mktemp -d /tmp/vigil-units-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for prefix in "$tmp/opt/vigil" "$tmp/usr"; do
    if ! cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
        cat "$tmp/install.log"
        bad "cmake --install --prefix $prefix failed"
        continue
    fi
    sys="$prefix/lib/systemd/system"
    for u in "$sys/vigild.service" "$sys/vigild@.service" "$prefix/lib/systemd/user/vigild.service"; do
        [[ -f "$u" ]] || { bad "not installed: $u"; continue; }
        grep -q "^ExecStart=$prefix/bin/vigild " "$u" || bad "$u: ExecStart= is not $prefix/bin/vigild: $(grep ^ExecStart= "$u")"
        grep -q "^ExecReload=$prefix/bin/vigild --check-config --home " "$u" || bad "$u: ExecReload= does not validate first"
        grep -q '^KillMode=process' "$u" && bad "$u: KillMode=process"
        grep -q '@[A-Z_]*@' "$u" && bad "$u: unreplaced @VAR@: $(grep -o '@[A-Z_]*@' "$u" | head -1)"
    done
    [[ -f "$prefix/share/vigil/prometheus/vigil-alerts.yml" ]] || bad "alerting rules not installed under $prefix"
done
u="$tmp/opt/vigil/lib/systemd/system/vigild.service"
for want in '^StateDirectory=vigil$' '^RuntimeDirectory=vigild$' '--pidfile %t/vigild/vigild.pid' '--home %S/vigil( |$)' \
            '^Type=notify$' '^WatchdogSec=' '^AmbientCapabilities=CAP_SYS_NICE$' '^Environment=VIGIL_WORKER_SCOPE=system$' \
            '^RestartPreventExitStatus=2$'; do
    grep -Eq -- "$want" "$u" || bad "vigild.service lacks $want"
done
for never in '^RestrictAddressFamilies=' '^ProtectHome=' '^ProtectSystem=' '^NoNewPrivileges=' '^PrivateTmp=' '^PrivateNetwork='; do
    grep -Eq -- "$never" "$u" && bad "vigild.service sets $never, which workers would inherit"
done

if command -v systemd-analyze >/dev/null; then
    prefix="$tmp/opt/vigil"
    cp "$prefix/lib/systemd/system/vigild@.service" "$tmp/vigild@agent.service"
    for f in "$prefix/lib/systemd/system/vigild.service" "$tmp/vigild@agent.service"; do
        out="$(systemd-analyze verify --man=no "$f" 2>&1)"
        [[ -z "$out" ]] || bad "systemd-analyze verify $(basename "$f"): $out"
    done
    mkdir -m 0700 "$tmp/xdg"
    out="$(XDG_RUNTIME_DIR="$tmp/xdg" systemd-analyze --user verify --man=no "$prefix/lib/systemd/user/vigild.service" 2>&1)"
    [[ -z "$out" ]] || bad "systemd-analyze --user verify vigild.service: $out"
else
    echo "SKIP: systemd-analyze not installed: the units were not verified (apt-get install systemd)"
fi

# ExecReload's command on a bad policy: the reload fails.
home="$tmp/home"
mkdir -p "$home/coordination/config"
echo '{"heartbeat_interval_seconds": "often"}' >"$home/coordination/config/heartbeat-policy.json"
"$tmp/opt/vigil/bin/vigild" --check-config --home "$home" >"$tmp/check.out" 2>&1
rc=$?
((rc == 2)) || bad "vigild --check-config on a bad policy exited $rc: $(cat "$tmp/check.out")"
echo '{"heartbeat_interval_seconds": 30}' >"$home/coordination/config/heartbeat-policy.json"
"$tmp/opt/vigil/bin/vigild" --check-config --home "$home" >"$tmp/check.out" 2>&1 || bad "--check-config on a good policy: $(cat "$tmp/check.out")"

((fail == 0)) && echo "units: installed for their prefix, verified, reload validates"
exit $fail
