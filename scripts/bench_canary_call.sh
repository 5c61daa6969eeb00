#!/usr/bin/env bash
# The canary's call path beside the plain module slot call, in one run:
# builds hotswap-bench-module (Release), runs the call benchmarks (plain slot
# call, the slot's keyed call and the canary's call without a canary, with one at 1%, 50%, 100%; inlined and
# through the out-of-line copies) with interleaved repetitions, disassembles
# the out-of-line copies, and renders results/bench-canary-call.{json,md}.
# Holds /tmp/hotswap-measure.lock while measuring. REPS (10), MIN_TIME (0.2).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-bench}
out=${OUT:-results/bench-canary-call}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_STRESS=OFF >/dev/null
cmake --build "$build" -j 2 --target hotswap-bench-module
bin=$build/bench/hotswap-bench-module
for f in hotswap_bench_module_slot_call hotswap_bench_module_slot_routed_call hotswap_bench_canary_call; do
  # The symbol's address without its leading zeros (16 hex digits would read as a commit name).
  objdump -d --no-show-raw-insn --disassemble="$f" "$bin" | sed -n "/<$f>:/,\$p" | sed 's/^0*\([0-9a-f]* <\)/\1/'
done >"$out.asm.txt"
exec 9>/tmp/hotswap-measure.lock
flock 9
mapfile -t machine < <(python3 scripts/machine.py --benchmark-context)   # commit, cpu, ..., load before the run
filter='^BM_call_(direct_add|direct_pick_add|slot_add|slot_add_noinline|slot_routed_add|slot_routed_add_noinline|canary_none_add|canary_none_add_noinline|canary_add|canary_add_noinline)(/|$)'
"$bin" --benchmark_filter="$filter" --benchmark_repetitions="${REPS:-10}" --benchmark_min_time="${MIN_TIME:-0.2}" \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
  --benchmark_out="$out.json" --benchmark_out_format=json \
  "${machine[@]}" \
  --benchmark_context=command="scripts/bench_canary_call.sh (REPS ${REPS:-10} MIN_TIME ${MIN_TIME:-0.2})" >/dev/null
flock -u 9
python3 - "$out.json" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
data["context"]["loadavg_after"] = sys.argv[2]
json.dump(data, open(sys.argv[1], "w"), indent=2)
PY
python3 scripts/render_canary_call.py "$out.json" "$out.asm.txt" "$out.md"
echo "wrote $out.json, $out.asm.txt and $out.md"
