#!/usr/bin/env bash
# Builds hotswap-bench-kernel (Release) and runs it once for the record:
# results/bench-kernel.json (Google Benchmark JSON, with the run's context)
# and results/bench-kernel.md (tables rendered by scripts/render_bench.py).
#
# Usage: scripts/bench.sh [extra Google Benchmark flags, e.g. --benchmark_filter=^call/]
# Environment:
#   REPS=5           repetitions of every benchmark (medians are reported)
#   MIN_TIME=0.2     seconds per repetition of each throughput benchmark
#   BUILD_DIR=build-bench
#   QUIET_WAIT=120   wait up to this many seconds for the machine to be >= 85% idle
#                    before measuring (0: do not wait); the idle share is recorded
#   OUT=results/bench-kernel   output prefix (.json, .md)
#
# The run holds /tmp/hotswap-measure.lock, so it never overlaps another
# engineer's measurement (they take the same lock).
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${REPS:-5}
min_time=${MIN_TIME:-0.2}
build=${BUILD_DIR:-build-bench}
quiet_wait=${QUIET_WAIT:-120}
out=${OUT:-results/bench-kernel}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_STRESS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target hotswap-bench-kernel
bin=$build/bench/hotswap-bench-kernel
mkdir -p "$(dirname "$out")"

# Share of CPU time the machine spent idle over a 3 s window, in percent.
idle_share() {
  local a b
  read -r _ u n s i w x y z _ </proc/stat; a=$((u + n + s + i + w + x + y + z)); b=$i
  sleep 3
  read -r _ u n s i w x y z _ </proc/stat
  echo $((100 * (i - b) / (u + n + s + i + w + x + y + z - a)))
}

# Google Benchmark splits --benchmark_context on ',' and '=': keep both out of
# values. (The exact command, which has '=' in it, is added to the JSON after
# the run instead.)
clean() { tr ',=\n' ';: ' <<<"$*" | sed 's/ *$//'; }

compiler_path=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
eval "$(python3 scripts/machine.py --compiler "$compiler_path" --shell)"   # machine_commit, machine_cpu, ...
dirty=no
if [ "$machine_uncommitted" -gt 0 ]; then dirty="yes ($machine_uncommitted files: $(git status --porcelain --untracked-files=no | awk '{print $2}' | tr '\n' ' '))"; fi

args=(
  --benchmark_repetitions="$reps"
  --benchmark_report_aggregates_only=true
  --benchmark_min_time="$min_time"
  --benchmark_out="$out.json"
  --benchmark_out_format=json
)
command="scripts/bench.sh: $bin ${args[*]} $*"

measure() {
  local idle=unknown waited=0
  if [ "$quiet_wait" -gt 0 ]; then
    while :; do
      idle=$(idle_share); waited=$((waited + 3))
      [ "$idle" -ge 85 ] || [ "$waited" -ge "$quiet_wait" ] && break
    done
    echo "machine idle share before the run: ${idle}% (waited ${waited}s)" >&2
  fi
  local context
  context="commit=$(clean "$machine_commit"),dirty=$(clean "$dirty"),cpu=$(clean "$machine_cpu"),cores=$machine_cores"
  context+=",kernel=$(clean "$machine_kernel"),compiler=$(clean "$machine_compiler"),build_type=$(clean "$build_type")"
  context+=",date=$(python3 scripts/machine.py date),idle_before=${idle}%,loadavg_before=$(python3 scripts/machine.py load)"
  "$bin" "${args[@]}" "--benchmark_context=$context" "$@"
}

start=$(date +%s)
# Hold the lock for the measurement only (not the build).
exec 9>/tmp/hotswap-measure.lock
echo "waiting for /tmp/hotswap-measure.lock ..." >&2
flock 9
measure "$@"
flock -u 9
end=$(date +%s)

# Record the load after the run and the exact command next to the rest of the context.
python3 - "$out.json" "$(python3 scripts/machine.py load)" "$((end - start))" "$command" <<'PY'
import json, sys
path, load, seconds, command = sys.argv[1:5]
with open(path) as f:
    data = json.load(f)
data["context"]["loadavg_after"] = load
data["context"]["run_seconds"] = seconds
data["context"]["command"] = command
with open(path, "w") as f:
    json.dump(data, f, indent=2)
PY

python3 scripts/render_bench.py "$out.json" "$out.md"
echo "measurement took $((end - start)) s" >&2
