#!/usr/bin/env bash
# The fleet scenarios as a result (issue #22): runs tests/fleet (3 etcd members,
# 8 hotswap-httpd hosts with agents, the exact-counting client over all hosts)
# with HOTSWAP_FLEET_RESULTS, then writes results/fleet.{json,md,png}.
# Usage: scripts/fleet_results.sh   (FLEET_BUILD_DIR: default build/test, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FLEET_BUILD_DIR:-build/test}
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
machine=$(python3 scripts/machine.py --shell)
HOTSWAP_FLEET_RESULTS=$raw "$build/tests/fleet/fleet_tests"
python3 scripts/render_fleet.py "$raw" results/fleet --command "scripts/fleet_results.sh" --machine "$machine"
rm -f results/fleet.dat
echo "fleet_results: wrote results/fleet.md, fleet.json, fleet.png"
