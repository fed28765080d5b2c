#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS BUILD_DIR [TARGET...]
#
# Builds every libFuzzer harness of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined, the daemon's sources compiled in
# directly) into BUILD_DIR, then, per target:
#   - replays each known crash, corpus/<target>/regress-*, on its own (a
#     crash found once stays a failing regression test until it is fixed);
#   - fuzzes for SECONDS seconds from a scratch copy of the other seeds in
#     corpus/<target>/ (the working corpus, under BUILD_DIR).
# Exit 0 when no harness found a crash, leak, timeout or out-of-memory;
# 1 otherwise (the artifacts are listed); 77 (ctest: skipped) when no clang
# with libFuzzer is available.
#
# Environment: CLANG (default: clang, then clang-14..19), FUZZ_JOBS (harnesses
# run at once, default 1), FUZZ_KEEP_CORPUS=1 keeps the working corpora.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-20}"
out="${2:-$root/build/fuzz}"
shift 2 2>/dev/null || shift $#
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=()
    for f in "$here"/fuzz_*.c; do
        t="$(basename "$f" .c)"
        targets+=("${t#fuzz_}")
    done
fi
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "run.sh: SECONDS must be an integer, got '$secs'" >&2; exit 2; }

cc="${CLANG:-}"
if [[ -z "$cc" ]]; then
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null 2>&1; then cc="$c"; break; fi
    done
fi
if [[ -z "$cc" ]]; then
    echo "run.sh: no clang found: fuzzing skipped" >&2
    exit 77
fi
if ! mkdir -p "$out/obj" "$out/bin" "$out/tmp" "$out/artifacts" "$out/work"; then
    echo "run.sh: cannot use $out as the build directory" >&2
    exit 2
fi

# libFuzzer present?  (Debian: libclang-rt-NN-dev)
probe="$out/obj/probe.c"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' >"$probe"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/obj/probe" 2>"$out/obj/probe.err"; then
    echo "run.sh: $cc cannot build a libFuzzer target (install libclang-rt-dev): fuzzing skipped" >&2
    cat "$out/obj/probe.err" >&2
    exit 77
fi

pkgs="jansson liburcu-memb liburcu-cds ck"
if ! pc_cflags="$(pkg-config --cflags $pkgs)" || ! pc_libs="$(pkg-config --libs $pkgs)"; then
    echo "run.sh: pkg-config cannot find $pkgs" >&2
    exit 2
fi
# As CMakeLists.txt: libsystemd's sd_notify when present.
if pkg-config --exists libsystemd 2>/dev/null; then
    pc_cflags="$pc_cflags -DHAVE_SYSTEMD=1 $(pkg-config --cflags libsystemd)"
    pc_libs="$pc_libs $(pkg-config --libs libsystemd)"
fi
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# -include stddef.h: src/sdnotify.c's own protocol (no libsystemd) uses
# offsetof without including <stddef.h>.
cflags="-std=gnu11 -g -O1 $san -include stddef.h -I$root/src -I$root/shm -I$root/emitter $pc_cflags"

# ---- build: the daemon's modules once (instrumented for coverage), then
# one binary per harness.  Objects are rebuilt only when a source or header
# changed since.
srcs=("$root/shm/segment.c")
for f in "$root"/src/*.c; do
    [[ "$(basename "$f")" == main.c ]] && continue
    srcs+=("$f")
done
newest_header="$(ls -t "$root"/src/*.h "$root"/shm/*.h "$root"/emitter/vigil.h | head -1)"
build_one() { # src obj
    if [[ ! -f "$2" || "$1" -nt "$2" || "$newest_header" -nt "$2" ]]; then
        "$cc" $cflags -fsanitize=fuzzer-no-link -c "$1" -o "$2" || return 1
    fi
}
export -f build_one
export cc cflags newest_header
t0=$SECONDS
objs=()
for s in "${srcs[@]}"; do
    objs+=("$out/obj/$(basename "$s" .c).o")
done
if ! printf '%s\n' "${srcs[@]}" | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} \
        bash -c 'build_one "$1" "$2/obj/$(basename "$1" .c).o"' _ {} "$out"; then
    echo "run.sh: building the daemon's sources failed" >&2
    exit 1
fi
rm -f "$out/obj/libvigil_fuzz.a"
ar rcs "$out/obj/libvigil_fuzz.a" "${objs[@]}"
for t in "${targets[@]}"; do
    src="$here/fuzz_$t.c"
    [[ -f "$src" ]] || { echo "run.sh: no harness $src" >&2; exit 2; }
    if ! "$cc" $cflags -fsanitize=fuzzer "$src" "$out/obj/libvigil_fuzz.a" $pc_libs -lpthread -lm \
            -o "$out/bin/fuzz_$t"; then
        echo "run.sh: building fuzz_$t failed" >&2
        exit 1
    fi
done
echo "run.sh: built ${#targets[@]} harnesses with $cc in $((SECONDS - t0)) s"

# ---- run
export TMPDIR="$out/tmp"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
declare -A max_len=([history_read]=8192 [scanner]=65536 [header]=16384 [queue]=8192 [policy]=4096 [history_line]=4096)
status=0
run_one() {
    local t="$1"
    local seeds="$here/corpus/$t" work="$out/work/$t" art="$out/artifacts/$t/"
    rm -rf "$work" "$art" "$TMPDIR/$t"
    mkdir -p "$work" "$art" "$seeds" "$TMPDIR/$t"
    local ml="${max_len[$t]:-4096}" bad=0 f
    # 1. Every known crash (corpus/<t>/regress-*) replayed on its own, so
    #    that each one is reported, not only the first.
    for f in "$seeds"/regress-*; do
        [[ -f "$f" ]] || continue
        if ! TMPDIR="$TMPDIR/$t" "$out/bin/fuzz_$t" -runs=1 -timeout=5 -rss_limit_mb=2048 "$f" \
                >"$out/fuzz_$t.$(basename "$f").log" 2>&1; then
            echo "FAIL fuzz_$t: regression $(basename "$f") still fails:"
            grep -m3 -E 'contract broken|ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer' \
                "$out/fuzz_$t.$(basename "$f").log" | sed 's/^/    /'
            grep -m4 -E '^ +#[0-9]+ .* in [a-z_]+ /' "$out/fuzz_$t.$(basename "$f").log" | sed 's/^/    /'
            bad=1
        fi
    done
    # 2. The campaign: the other seeds, copied, are the working corpus.
    for f in "$seeds"/*; do
        [[ -f "$f" && "$(basename "$f")" != regress-* ]] && cp "$f" "$work/"
    done
    TMPDIR="$TMPDIR/$t" "$out/bin/fuzz_$t" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
        -max_len="$ml" -print_final_stats=1 -artifact_prefix="$art" "$work" \
        >"$out/fuzz_$t.log" 2>&1
    local rc=$?
    local found execs
    found="$(ls -A "$art" 2>/dev/null)"
    execs="$(grep -m1 'stat::number_of_executed_units' "$out/fuzz_$t.log" | awk '{print $2}')"
    if [[ $rc -ne 0 || -n "$found" ]]; then
        echo "FAIL fuzz_$t (exit $rc, ${execs:-?} runs): new artifact(s) in $art: ${found:-none}"
        grep -m3 -E 'contract broken|ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer|ERROR: libFuzzer' \
            "$out/fuzz_$t.log" | sed 's/^/    /'
        grep -m4 -E '^ +#[0-9]+ .* in [a-z_]+ /' "$out/fuzz_$t.log" | sed 's/^/    /'
        echo "    full log: $out/fuzz_$t.log; keep the input as $seeds/regress-<what> once understood"
        bad=1
    else
        echo "ok   fuzz_$t: ${execs:-?} runs in ${secs} s, corpus $(ls "$work" | wc -l) (from $(ls "$seeds" | wc -l) checked-in files)"
    fi
    [[ -n "${FUZZ_KEEP_CORPUS:-}" ]] || rm -rf "$work"
    rm -rf "$TMPDIR/$t"
    return $bad
}
jobs_max="${FUZZ_JOBS:-1}"
pids=()
for t in "${targets[@]}"; do
    if [[ "$jobs_max" -le 1 ]]; then
        run_one "$t" || status=1
    else
        run_one "$t" &
        pids+=($!)
        while [[ $(jobs -rp | wc -l) -ge $jobs_max ]]; do sleep 0.2; done
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
# Segments a killed harness could not unlink.
rm -f /dev/shm/vigil-fuzz-* 2>/dev/null
exit $status
