#!/usr/bin/env bash
# The kernel benchmark of two commits in one run: is this tree's hot path
# slower than BASE's? Builds hotswap-bench-kernel (Release) for BASE (from a
# `git archive` of it, in a temporary directory) and for this checkout, then
# runs the two binaries in turn, ROUNDS times (A B A B ...), each round one
# repetition of every benchmark the filter selects. The machine's drift then
# lands on both sides alike; the report gives per-benchmark medians over the
# rounds and their ratio (this tree / BASE: above 1 is slower).
#
#   scripts/bench_ab.sh BASE [filter (default ^call/slot)]
#   results/<OUT>.json   every round's numbers, the commands, commits, machine, load
#   results/<OUT>.md     the table
# Environment: ROUNDS (default 7), MIN_TIME (default 0.2 s per benchmark and
# round), OUT (default bench-ab), AB_DIR (default /tmp/hotswap-bench-ab: the
# builds, kept between runs). Holds /tmp/hotswap-measure.lock while measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,15p "$0" >&2; exit 2; }
base=$(git rev-parse --verify "$1^{commit}")
filter=${2:-^call/slot}
rounds=${ROUNDS:-7}
min_time=${MIN_TIME:-0.2}
out=results/${OUT:-bench-ab}
dir=${AB_DIR:-/tmp/hotswap-bench-ab}
mkdir -p "$dir"

build() {  # source-dir build-dir
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_STRESS=OFF >/dev/null
  nice -n 10 cmake --build "$2" -j "$(nproc)" --target hotswap-bench-kernel >/dev/null
}
if [ ! -x "$dir/base-$base/build/bench/hotswap-bench-kernel" ]; then
  rm -rf "$dir/base-$base"
  mkdir -p "$dir/base-$base/src"
  git archive "$base" | tar -x -C "$dir/base-$base/src"
  build "$dir/base-$base/src" "$dir/base-$base/build"
fi
build . "$dir/head"
bins=("$dir/base-$base/build/bench/hotswap-bench-kernel" "$dir/head/bench/hotswap-bench-kernel")

eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_cpu, ...
# What the head build was made from beyond its commit (results/ never goes into a binary).
uncommitted=$(git status --porcelain --untracked-files=no -- . ':!results' | wc -l)
exec 9>/tmp/hotswap-measure.lock
echo "bench_ab: waiting for /tmp/hotswap-measure.lock ..." >&2
flock 9
started=$(date +%s)
for round in $(seq "$rounds"); do
  for side in 0 1; do
    "${bins[$side]}" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
      --benchmark_out="$dir/round-$round-$side.json" --benchmark_out_format=json >/dev/null
    echo "bench_ab: round $round of $rounds, $([ "$side" = 0 ] && echo base || echo this tree) done" >&2
  done
done
load_after=$(python3 scripts/machine.py load)
elapsed=$(( $(date +%s) - started ))
flock -u 9

mkdir -p "$(dirname "$out")"
python3 - "$dir" "$out" "$rounds" "$base" "$machine_commit" "$uncommitted" "$machine_cpu" "$machine_cores" \
  "$machine_kernel" "$machine_date" "$machine_load" "$load_after" "$elapsed" "$filter" "$min_time" <<'PY'
import json, statistics, sys
(d, out, rounds, base, head, uncommitted, cpu, cores, kernel, date, load_before, load_after, elapsed, flt,
 min_time) = sys.argv[1:16]
sides = ("base", "head")
runs = {s: {} for s in sides}  # side -> benchmark -> [real ns per round]
for r in range(1, int(rounds) + 1):
    for i, side in enumerate(sides):
        for b in json.load(open(f"{d}/round-{r}-{i}.json"))["benchmarks"]:
            scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
            runs[side].setdefault(b["name"], []).append(b["real_time"] * scale)
command = f"ROUNDS={rounds} MIN_TIME={min_time} scripts/bench_ab.sh {base[:7]} '{flt}'"
meta = {"command": command, "base": base, "head": head, "uncommitted_files": int(uncommitted), "cpu": cpu,
        "cores": int(cores), "kernel": kernel, "date": date, "loadavg_before": load_before,
        "loadavg_after": load_after, "measure_seconds": int(elapsed)}
rows = []
for name in runs["head"]:
    if name not in runs["base"]:
        continue
    b, h = statistics.median(runs["base"][name]), statistics.median(runs["head"][name])
    wins = sum(1 for x, y in zip(runs["base"][name], runs["head"][name]) if y <= x)
    rows.append({"name": name, "base_ns": b, "head_ns": h, "ratio": h / b, "head_not_slower_rounds": wins,
                 "base_rounds_ns": runs["base"][name], "head_rounds_ns": runs["head"][name]})
json.dump({"meta": meta, "benchmarks": rows}, open(f"{out}.json", "w"), indent=2)
lines = [f"# Kernel benchmark, {head[:7]} against {base[:7]} in one run", "",
         f"`{command}` at commit `{head}`{f' (and {uncommitted} changed files outside results/)' if int(uncommitted) else ''}, {date}, "
         f"{cpu} ({cores} cores), {kernel}. Load average {load_before} before, {load_after} after "
         f"({elapsed} s measuring). Each round runs the base binary, then this tree's, one repetition of each "
         f"benchmark ({min_time} s); medians over {rounds} rounds, real time per call.", "",
         "| benchmark | base ns | this tree ns | this tree / base | rounds this tree was not slower |",
         "|---|---:|---:|---:|---:|"]
lines += [f"| {r['name']} | {r['base_ns']:.2f} | {r['head_ns']:.2f} | {r['ratio']:.3f} | "
          f"{r['head_not_slower_rounds']} of {rounds} |" for r in rows]
open(f"{out}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
