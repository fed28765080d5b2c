#!/usr/bin/env bash
# tests/prometheus/check_rules.sh SOURCE_DIR - `promtool check rules` on
# the shipped alerting rules, then their unit tests (vigil-alerts.test.yml).
# Exit 77 (skipped, for ctest) when promtool is not installed.
set -euo pipefail
src="$1"
if ! command -v promtool >/dev/null; then
    echo "SKIP: promtool not installed (apt-get install prometheus; tools/setup.sh does)"
    exit 77
fi
promtool check rules "$src/tools/prometheus/vigil-alerts.yml"
promtool test rules "$src/tests/prometheus/vigil-alerts.test.yml"
