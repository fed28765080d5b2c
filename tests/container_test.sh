#!/usr/bin/env bash
# tests/container_test.sh SOURCE_DIR BUILD_DIR - vigild under a real systemd:
# a minimal Debian 12 booted with systemd as PID 1 in a container
# (systemd-nspawn -b), the project installed into it with `cmake --install`,
# and what an operator meets checked there (README.md "Under systemd"):
#
#   1. a fresh install starts: systemctl start vigild (home and pid file made
#      by systemd);
#   2. a worker spawned through vigild opens a TCP socket and writes under
#      /home, and runs in a scope of its own (vigil-*.scope);
#   3. a worker of the service's user attaches (root's vigild.service, and
#      vigild@agent.service with a worker run as agent);
#   4. systemctl restart vigild keeps the spawned worker (same pid), with no
#      false event and no "left-over process" from systemd;
#   5. a stalled scanner (VIGIL_DEBUG's stall hook) makes systemd restart
#      vigild through the watchdog, and the worker is adopted with its pid;
#   6. systemctl reload with a bad policy fails, and the good policy stays;
#   7. vigild's own warnings are in journalctl -u vigild with their priority;
#   8. a spawned worker does not see vigild's NOTIFY_SOCKET.
#
# Runs where it can: root, systemd-nspawn and debootstrap installed, the
# Debian archive reachable for the first run (the base system is cached in
# $VIGIL_CONTAINER_CACHE, default /var/cache/vigil-container, and copied per
# run).  Otherwise it prints one "SKIP: <why>" line and exits 77, which ctest
# counts as skipped.
set -uo pipefail
src="$1"
build="$2"
cache="${VIGIL_CONTAINER_CACHE:-/var/cache/vigil-container}"
mirror="${VIGIL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

skip() { echo "SKIP: $*"; exit 77; }
((EUID == 0)) || skip "not root (systemd-nspawn needs root)"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn not installed (apt-get install systemd-container)"
command -v nsenter >/dev/null || skip "nsenter not installed (util-linux)"

# ---- the base system, once --------------------------------------------------
if [[ ! -x "$cache/rootfs/lib/systemd/systemd" ]]; then
    command -v debootstrap >/dev/null || skip "debootstrap not installed and no cached base system in $cache"
    mkdir -p "$cache"
    rm -rf "$cache/rootfs.tmp"
    echo "container: debootstrap bookworm into $cache (once)"
    if ! debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,libpam-systemd,libjansson4,liburcu8,libck0,procps,iproute2 \
        bookworm "$cache/rootfs.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -5 "$cache/debootstrap.log"
        rm -rf "$cache/rootfs.tmp"
        skip "debootstrap failed (package archive $mirror unreachable?); see $cache/debootstrap.log"
    fi
    mv "$cache/rootfs.tmp" "$cache/rootfs"
fi

# A cache made before the user unit was tested lacks pam_systemd (the
# user manager needs it).
if [[ ! -e "$cache/rootfs/lib/x86_64-linux-gnu/security/pam_systemd.so" ]]; then
    cp /etc/resolv.conf "$cache/rootfs/etc/resolv.conf"
    if ! chroot "$cache/rootfs" env DEBIAN_FRONTEND=noninteractive bash -c \
        'apt-get update -qq && apt-get install -y -qq --no-install-recommends libpam-systemd && apt-get clean' \
        >"$cache/apt.log" 2>&1; then
        skip "cannot add libpam-systemd to the cached base system (archive unreachable?); see $cache/apt.log"
    fi
fi

work="$(mktemp -d /var/tmp/vigil-container-XXXXXX)"
root="$work/root"
nspawn_pid=""
leader=""
cleanup() {
    if [[ -n "$leader" ]]; then
        nsenter -t "$leader" -a -- systemctl poweroff --no-block >/dev/null 2>&1 || true
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    [[ -n "$nspawn_pid" ]] && kill -KILL "$nspawn_pid" 2>/dev/null
    [[ -n "$nspawn_pid" ]] && wait "$nspawn_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cp -a --reflink=auto "$cache/rootfs" "$root" || skip "cannot copy the base system"

# ---- the project, installed as an operator would -------------------------------
DESTDIR="$root" cmake --install "$build" --prefix /usr/local >"$work/install.log" 2>&1 || {
    cat "$work/install.log"; echo "FAIL: cmake --install"; exit 1; }
chroot "$root" useradd -m -s /bin/bash agent
mkdir -p "$root/home/agent/proj"
chroot "$root" chown agent: /home/agent/proj
echo vigiltest >"$root/etc/hostname"

# ---- boot ----------------------------------------------------------------------
systemd-nspawn -D "$root" -b --register=no --keep-unit --machine="vigiltest-$$" --console=passive >"$work/boot.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 300); do
    leader="$(pgrep -P "$nspawn_pid" -x systemd | head -1)"
    [[ -z "$leader" ]] && leader="$(ps -o pid= --ppid "$(pgrep -P "$nspawn_pid" | head -1)" 2>/dev/null | head -1 | tr -d ' ')"
    [[ -n "$leader" ]] && [[ "$(cat /proc/"$leader"/comm 2>/dev/null)" == systemd ]] && break
    leader=""
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$leader" ]]; then
    tail -20 "$work/boot.log"
    skip "systemd-nspawn -b did not boot here (see the lines above)"
fi
cin() { nsenter -t "$leader" -a -- "$@"; }
for _ in $(seq 600); do cin test -S /run/systemd/private 2>/dev/null && break; sleep 0.1; done
state="$(cin timeout 120 systemctl is-system-running --wait 2>&1)"
echo "container: booted (pid 1 is host pid $leader): $state"
case "$state" in running | degraded) ;; *) tail -20 "$work/boot.log"; echo "FAIL: the container did not boot: $state"; exit 1 ;; esac

sdver="$(cin systemctl --version | head -1 | awk '{print $2}')"
fail=0
# grep that reads all of its input (grep -q would stop early, and under
# pipefail the writer's SIGPIPE would fail the pipeline).
has() { grep "$@" >/dev/null; }
bad() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok: $*"; }
wait_for() { # seconds, command...
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
H=/var/lib/vigil
ctl() { cin /usr/local/bin/vigilctl --home "$H" "$@"; }
events() { cin cat "$H/coordination/events/heartbeat-events.jsonl"; }

# 1. a fresh install starts
cin systemctl daemon-reload
if cin systemctl start vigild && wait_for 10 cin test -f /run/vigild/vigild.pid; then
    ok "fresh install: systemctl start vigild; home $H, pid file /run/vigild/vigild.pid"
else
    cin systemctl status vigild --no-pager | tail -15
    bad "systemctl start vigild on a fresh install"
    exit 1
fi
pid1="$(cin systemctl show -p MainPID --value vigild)"

# 2. spawned worker: TCP, /home, own scope; 8. no NOTIFY_SOCKET
id="$(ctl spawn --type net --task-id t1 -- bash -c \
    'env > /home/agent/proj/env.txt; (exec 3<>/dev/tcp/127.0.0.1/9) 2>/home/agent/proj/tcp.err; touch /home/agent/proj/out.txt; exec /usr/local/bin/vigil-demo-worker --beat-ms 200')"
if wait_for 10 cin test -f /home/agent/proj/out.txt; then
    ok "spawned worker $id wrote under /home"
else
    bad "spawned worker could not write under /home: $(cin cat "$H/agents/logs/workers/$id.log" 2>&1 | tail -3)"
fi
tcp="$(cin cat /home/agent/proj/tcp.err 2>&1)"
if grep -qi "address family" <<<"$tcp"; then bad "spawned worker cannot open a TCP socket: $tcp"; else ok "spawned worker opened a TCP socket ($(tr '\n' ' ' <<<"${tcp:-connected}"))"; fi
if cin grep -q '^NOTIFY_SOCKET=' /home/agent/proj/env.txt; then bad "spawned worker has vigild's NOTIFY_SOCKET"; else ok "spawned worker has no NOTIFY_SOCKET"; fi
wait_for 10 bash -c "nsenter -t $leader -a -- /usr/local/bin/vigilctl --home $H status | grep -q '$id.*active'" || bad "$id not active"
wpid="$(ctl status | awk -F' [|] ' -v id="$id" '$2 == id {print $5}')"
scope="$(cin systemctl list-units --plain --no-legend 'vigil-*.scope' | awk '{print $1}' | head -1)"
if [[ -n "$scope" ]] && cin systemctl show -p ControlGroup --value "$scope" | has vigil.slice; then
    ok "worker pid $wpid runs in $scope (vigil.slice)"
    cin systemctl show -p Before --value "$scope" | has vigild.service && ok "$scope is ordered Before=vigild.service (stopped after vigild at shutdown)" ||
        bad "$scope is not ordered Before=vigild.service"
    cin systemctl show -p After --value "$scope" | has local-fs.target && ok "$scope is ordered After=local-fs.target (stopped before unmounting)" ||
        bad "$scope is not ordered After=local-fs.target"
else
    bad "worker is not in a vigil-*.scope: $(cin cat /proc/"$wpid"/cgroup 2>&1 | tail -1)"
fi

# 3. a worker of the service's user attaches (root here; agent below)
cin env COMMIT_RELAY_HOME="$H" bash -c 'source /usr/local/share/vigil/worker-heartbeat-emitter.sh; emit_heartbeat worker-root-001 90 10; sleep 2' &&
    wait_for 5 bash -c "nsenter -t $leader -a -- grep -q '\"worker_registered\",\"worker_id\":\"worker-root-001\"' $H/coordination/events/heartbeat-events.jsonl" &&
    ok "a root worker attached to vigild.service" || bad "a root worker could not attach to vigild.service"
if cin systemctl start vigild@agent && wait_for 10 cin test -f /run/vigild-agent/vigild.pid; then
    if cin runuser -u agent -- env COMMIT_RELAY_HOME=/var/lib/vigil-agent bash -c \
        'source /usr/local/share/vigil/worker-heartbeat-emitter.sh; emit_heartbeat worker-agent-001 90 10; sleep 2' &&
        wait_for 5 bash -c "nsenter -t $leader -a -- grep -q 'worker-agent-001' /var/lib/vigil-agent/coordination/events/heartbeat-events.jsonl"; then
        ok "a worker of user agent attached to vigild@agent.service"
    else
        bad "agent's worker could not attach to vigild@agent"
    fi
    [[ "$(cin stat -c %U /var/lib/vigil-agent)" == agent ]] || bad "/var/lib/vigil-agent is not agent's"
    cin systemctl stop vigild@agent
else
    cin systemctl status vigild@agent --no-pager | tail -10
    bad "vigild@agent.service did not start"
fi

# 4. restart keeps the worker, no false events, no left-over warnings
before="$(events | wc -l)"
cin systemctl restart vigild
wait_for 10 bash -c "[ \"\$(nsenter -t $leader -a -- systemctl show -p MainPID --value vigild)\" != $pid1 ]" || bad "MainPID unchanged after restart"
pid2="$(cin systemctl show -p MainPID --value vigild)"
sleep 3
if cin kill -0 "$wpid" 2>/dev/null && ctl status | has "$id.*$wpid.*active"; then
    ok "systemctl restart vigild: worker $id kept (pid $wpid), vigild $pid1 -> $pid2"
else
    bad "the worker did not survive systemctl restart vigild: $(ctl status)"
fi
after="$(events | tail -n +"$((before + 1))")"
if grep -E "\"event\":\"(worker_exited|heartbeat_timeout|zombie_detected|heartbeat_missed)\",\"worker_id\":\"$id\"" <<<"$after"; then
    bad "false events for $id across the restart"
else
    ok "no false event across the restart ($(grep -c worker_adopted <<<"$after") adoptions)"
fi
if cin journalctl -u vigild --no-pager | has -i "left-over process"; then bad "systemd found left-over processes"; else ok "no 'left-over process' in the journal"; fi

# 5. a stalled scanner: the watchdog restarts vigild, the worker is adopted
cin mkdir -p /etc/systemd/system/vigild.service.d
printf '[Service]\nEnvironment=VIGIL_DEBUG=1\n' | cin tee /etc/systemd/system/vigild.service.d/debug.conf >/dev/null
cin systemctl daemon-reload
cin systemctl restart vigild
wait_for 10 cin test -f /run/vigild/vigild.pid
pid3="$(cin systemctl show -p MainPID --value vigild)"
cin bash -c "printf '{\"action\":\"debug_stall_scanner\",\"seconds\":30}' > $H/coordination/control/.stall.tmp && mv $H/coordination/control/.stall.tmp $H/coordination/control/queue/stall.json"
if wait_for 40 bash -c "p=\$(nsenter -t $leader -a -- systemctl show -p MainPID --value vigild); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $pid3 ]"; then
    if cin journalctl -u vigild --no-pager | has -i "watchdog timeout"; then
        ok "a stalled scanner: systemd's watchdog restarted vigild ($pid3 -> $(cin systemctl show -p MainPID --value vigild))"
    else
        bad "vigild was restarted, but not by the watchdog"
    fi
    sleep 2
    cin kill -0 "$wpid" 2>/dev/null && ctl status | has "$id.*$wpid" && ok "worker $id adopted again with pid $wpid" || bad "worker lost after the watchdog restart"
else
    bad "a stalled scanner did not make systemd restart vigild"
fi
cin rm -f /etc/systemd/system/vigild.service.d/debug.conf
cin systemctl daemon-reload

# 6. reload with a bad policy fails; the policy in force stays
P="$H/coordination/config/heartbeat-policy.json"
cin cp "$P" /root/policy.good
cin bash -c "echo '{\"heartbeat_interval_seconds\": \"often\"}' > $P"
if cin systemctl reload vigild 2>/dev/null; then bad "systemctl reload succeeded with a bad policy"; else ok "systemctl reload fails with a bad policy"; fi
cin systemctl is-active -q vigild || bad "vigild is not active after the failed reload"
cin cp /root/policy.good "$P"
cin systemctl reload vigild && ok "systemctl reload with the good policy succeeds" || bad "reload with the good policy failed"

# 7. vigild's warnings in the journal, with their priority
if cin journalctl -u vigild -p warning --no-pager -o cat | has "heartbeat_interval_seconds"; then
    ok "vigild's warnings are in journalctl -u vigild -p warning"
else
    bad "the bad policy's lines are not in journalctl -u vigild -p warning"
    cin journalctl -u vigild --no-pager | tail -20
fi
cin journalctl -u vigild -o cat --no-pager | has "heartbeat-monitor: vigild .* started" && ok "vigild's start line is in the journal" || bad "no start line in the journal"

# stop: the worker stays (in its scope), vigild stops cleanly
cin systemctl stop vigild
cin kill -0 "$wpid" 2>/dev/null && ok "systemctl stop vigild: worker $wpid keeps running in its scope" || bad "the worker died with systemctl stop vigild"

# 9. the user unit: agent's own manager (lingering), a spawned worker in a
#    user scope that survives a restart of the user's vigild
cin loginctl enable-linger agent
uid="$(cin id -u agent)"
asagent() { cin runuser -u agent -- env XDG_RUNTIME_DIR=/run/user/"$uid" "$@"; }
if wait_for 30 cin test -S /run/user/"$uid"/systemd/private && asagent systemctl --user daemon-reload &&
    asagent systemctl --user start vigild && wait_for 10 cin test -f /run/user/"$uid"/vigild/vigild.pid; then
    uh="$(asagent systemctl --user show -p Environment --value vigild | tr ' ' '\n' | sed -n 's/^COMMIT_RELAY_HOME=//p')"
    ok "user unit: systemctl --user start vigild as agent (home $uh)"
    uid_w="$(asagent /usr/local/bin/vigilctl --home "$uh" spawn --type mine --task-id t9 -- /usr/local/bin/vigil-demo-worker --beat-ms 200)"
    if wait_for 10 bash -c "nsenter -t $leader -a -- runuser -u agent -- /usr/local/bin/vigilctl --home $uh status | grep -q '$uid_w.*active'"; then
        upid="$(asagent /usr/local/bin/vigilctl --home "$uh" status | awk -F' [|] ' -v id="$uid_w" '$2 == id {print $5}')"
        cin grep -q 'vigil.slice/vigil-' /proc/"$upid"/cgroup && ok "agent's spawned worker $upid runs in a user scope" ||
            bad "agent's spawned worker is not in a user scope: $(cin cat /proc/"$upid"/cgroup | tail -1)"
        asagent systemctl --user restart vigild
        sleep 2
        asagent /usr/local/bin/vigilctl --home "$uh" status | has "$uid_w.*$upid.*active" &&
            ok "systemctl --user restart vigild kept agent's worker $upid" || bad "agent's worker lost across a user restart"
    else
        bad "agent's spawned worker did not start: $(asagent /usr/local/bin/vigilctl --home "$uh" status 2>&1)"
        cin journalctl --no-pager -n 20 _UID="$uid"
    fi
    asagent systemctl --user stop vigild
else
    bad "the user unit did not start for agent"
    cin journalctl --no-pager -n 30
fi

# 10. shutdown: vigild stops first, then the worker's scope (SIGTERM), in
#     order; read from the container's persistent journal after poweroff
cin mkdir -p /var/log/journal
cin journalctl --flush >/dev/null 2>&1
cin systemctl start vigild
wait_for 10 cin test -f /run/vigild/vigild.pid
cin systemctl poweroff --no-block
for _ in $(seq 600); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$nspawn_pid" 2>/dev/null; then
    bad "the container did not power off within 60 s"
else
    leader=""
    wait "$nspawn_pid" 2>/dev/null
    nspawn_pid=""
    jl="$(journalctl -D "$root/var/log/journal" --no-pager -o cat -b 0 2>/dev/null)"
    stop_vigild="$(grep -n 'Stopped vigild.service' <<<"$jl" | tail -1 | cut -d: -f1)"
    stop_scope="$(grep -nE 'Stopped vigil-worker-net-001-.*\.scope|vigil-worker-net-001-.*\.scope: Deactivated' <<<"$jl" | tail -1 | cut -d: -f1)"
    stop_scope="${stop_scope:-$(grep -nE 'Stopping vigil-worker-net-001-.*\.scope' <<<"$jl" | tail -1 | cut -d: -f1)}"
    umount="$(grep -nE 'Unmounting|Stopped target local-fs.target|Reached target umount.target' <<<"$jl" | head -1 | cut -d: -f1)"
    if [[ -n "$stop_vigild" && -n "$stop_scope" ]] && ((stop_vigild < stop_scope)); then
        ok "shutdown: vigild stopped (journal line $stop_vigild) before the worker's scope (line $stop_scope)"
    else
        bad "shutdown order: vigild stopped at line ${stop_vigild:-?}, the worker's scope at ${stop_scope:-?}"
        grep -nE 'vigild|vigil-worker|Unmounting|local-fs' <<<"$jl" | tail -20
    fi
    if [[ -n "$umount" && -n "$stop_scope" ]] && ((stop_scope < umount)); then
        ok "shutdown: the worker's scope stopped (line $stop_scope) before unmounting (line $umount)"
    elif [[ -z "$umount" ]]; then
        echo "note: no unmount line in the container's journal to order against"
    else
        bad "shutdown: the worker's scope stopped at line $stop_scope, after unmounting began at line $umount"
    fi
fi

if ((fail)); then
    [[ -z "$leader" ]] && exit 1
    echo "---- journalctl -u vigild (last 40)"
    cin journalctl -u vigild --no-pager | tail -40
    exit 1
fi
echo "container: every check passed under systemd $sdver"
