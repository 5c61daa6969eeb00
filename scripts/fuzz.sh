#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time
# (default 45 s) over a scratch copy of its committed seed corpus. Any crash,
# leak or sanitizer report fails the run; the reproducer is kept in build/fuzz/.
# Usage: scripts/fuzz.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-45}
bash scripts/setup.sh
CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DHOTSWAP_FUZZ=ON \
  -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=OFF >/dev/null
targets=()
for src in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$src" _fuzz.cpp)
  targets+=("$name")
done
cmake --build build/fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
passed=0 failed=0
for name in "${targets[@]}"; do
  work=build/fuzz/run-$name
  rm -rf "$work" && mkdir -p "$work/corpus"
  cp -r "tests/fuzz/corpus/$name/." "$work/corpus/" 2>/dev/null || true
  echo "fuzz $name: ${seconds}s"
  if (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "../tests/fuzz/fuzz_$name" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -print_final_stats=1 corpus > log.txt 2>&1); then
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$work/log.txt" | sed "s/^/  /"
    passed=$((passed + 1))
  else
    tail -40 "$work/log.txt"
    echo "fuzz $name: FAILED (reproducer and log in $work)"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
