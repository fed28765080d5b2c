#!/usr/bin/env bash
# tools/test.sh - install what is missing, build, and run the whole suite:
# once plain (-O2, warnings as errors), once under ASan+UBSan, once under
# TSan.  Each run goes through ctest, whose summary line closes it.
#
#   tools/test.sh            everything (what .ci/run does)
#   VIGIL_TEST_QUICK=1 tools/test.sh   the plain build only
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

status=0
export VIGIL_SETUP_TESTS=1 # setup.sh installs what every test needs, not only the build
run_suite() {
    local name="$1" dir="$2" slack="$3" exclude="$4"
    shift 4
    echo "=== $name ==="
    "$here/setup.sh" "$dir" "$@"
    # Sanitizers slow everything: widen the allowance for scheduling noise
    # (the tests judge order strictly and time with this allowance).
    if ! (cd "$dir" && VIGIL_TEST_SLACK_MS="$slack" ctest --output-on-failure --timeout 900 ${exclude:+-E "$exclude"}); then
        status=1
    fi
}

# The fuzzers (built with clang's own sanitizers), the bench smoke, the
# container test under a real systemd (it boots a whole system) and the
# one-minute demo run once, in the plain build; the sanitizer builds run
# every other test.
run_suite "plain build" "$root/build" 60 ""
if [[ -z "${VIGIL_TEST_QUICK:-}" ]]; then
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    run_suite "ASan+UBSan" "$root/build-asan" 250 "fuzz_smoke|bench_smoke|container_systemd|demo_heals" -DVIGIL_ASAN=ON -DCMAKE_BUILD_TYPE=Debug
    unset ASAN_OPTIONS UBSAN_OPTIONS
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"
    run_suite "TSan" "$root/build-tsan" 250 "fuzz_smoke|bench_smoke|container_systemd|demo_heals" -DVIGIL_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
fi
exit $status
