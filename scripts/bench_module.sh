#!/usr/bin/env bash
# Builds hotswap-bench-module (Release) and records results/bench-module.json
# and .md: swap latency (copy + dlopen + startup + publish), drain-to-unload,
# sustained swaps/s under callers, and calls into a plugin through a slot vs a
# direct call. Holds /tmp/hotswap-measure.lock while measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-bench}
out=${OUT:-results/bench-module}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_STRESS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target hotswap-bench-module
bin=$build/bench/hotswap-bench-module
exec 9>/tmp/hotswap-measure.lock
flock 9
mapfile -t machine < <(python3 scripts/machine.py --benchmark-context)   # commit, cpu, ..., load before the run
"$bin" --benchmark_repetitions="${REPS:-3}" --benchmark_report_aggregates_only=true \
  --benchmark_out="$out.json" --benchmark_out_format=json \
  "${machine[@]}" \
  --benchmark_context=command="scripts/bench_module.sh (REPS ${REPS:-3})" >/dev/null
flock -u 9
python3 scripts/render_module_bench.py "$out.json" "$out.md"
echo "wrote $out.json and $out.md"
