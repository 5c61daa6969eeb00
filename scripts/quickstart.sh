#!/usr/bin/env bash
# The main job: install, build Release, run the swap-under-load stress
# verification of every backend and print its summary. Extra arguments go to
# hotswap-stress (e.g. --seconds 10 --swap-interval 100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target hotswap-stress
exec build/release/stress/hotswap-stress --backend all --scenario all "$@"
