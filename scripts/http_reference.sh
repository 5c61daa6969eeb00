#!/usr/bin/env bash
# The HTTP adapter's reference run (issue #10): `hotswap-stress --scenario http`
# with 500,000 requests per phase (steady, then swapping every 50 ms), so each
# case (keep-alive, new-connection) carries 1,000,000 requests and the
# swapping phase at least 100 swaps, all checked by the rig's exact-counting
# client. Writes
#   results/http-stress-reference.json   the rig's JSON (every metric, every check)
#   results/http-stress-reference.md     the table
#   results/http-stress-reference.png    throughput and latency, steady vs swapping
# Measurement holds /tmp/hotswap-measure.lock. Takes 3-5 minutes.
# Usage: scripts/http_reference.sh [requests-per-phase (500000)] [min-swaps (100)]
# Environment: STRESS_BUILD_DIR (default build-stress/reference), STRESS_OUT (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-500000}
swaps=${2:-100}
build=${STRESS_BUILD_DIR:-build-stress/reference}
out=${STRESS_OUT:-results}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_SANITIZE= -DHOTSWAP_BUILD_TESTS=OFF \
  -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=ON -DHOTSWAP_BUILD_ADAPTERS=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target hotswap-stress hotswap_http_apps >/dev/null
mkdir -p "$out"
exec 9>/tmp/hotswap-measure.lock
echo "http_reference: waiting for /tmp/hotswap-measure.lock ..."
flock 9
eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_load (before the run), ...
status=0
"$build/stress/hotswap-stress" --scenario http --scenario-arg "requests=$requests" --scenario-arg "min_swaps=$swaps" \
  --seconds 30 --no-progress --json "$out/http-stress-reference.json" \
  --meta "git_commit=$machine_commit" --meta "git_uncommitted_files=$machine_uncommitted" \
  --meta "loadavg_before=$machine_load" \
  --meta "script=scripts/http_reference.sh $requests $swaps" | tee "$out/http-stress-reference.txt" || status=$?
after=$(python3 scripts/machine.py load)
flock -u 9
python3 - "$out/http-stress-reference.json" "$after" <<'PY'
import json, sys
path, after = sys.argv[1:3]
run = json.load(open(path))
run.setdefault("meta", {})["loadavg_after"] = after
json.dump(run, open(path, "w"), indent=2)
PY
python3 scripts/render_host_scenario.py "$out/http-stress-reference.json" "$out/http-stress-reference.md" \
  --title "hotswap-httpd under load, application swapped every 50 ms (reference run)" \
  --image http-stress-reference.png \
  --note "Server: 1 worker thread, in the rig's process on 127.0.0.1. Clients: 2 greeting threads, 1 pinned-connection thread and 1 slow-request thread (keep-alive case). Each case runs $requests requests steady, then $requests while greeting and slow are swapped every 50 ms; rps_ratio and p99_ratio compare the two phases of one case."
python3 - "$out/http-stress-reference.json" >"$out/http-stress-reference.dat" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
print("case rps_steady rps_swapping p50_steady p50_swapping p99_steady p99_swapping p999_steady p999_swapping")
for c in run["host_scenarios"]:
    m = c["metrics"]
    print(c["case"], *(m[k] for k in ("rps_steady", "rps_swapping", "p50_us_steady", "p50_us_swapping",
                                      "p99_us_steady", "p99_us_swapping", "p999_us_steady", "p999_us_swapping")))
PY
gnuplot -e "datafile='$out/http-stress-reference.dat'; outfile='$out/http-stress-reference.png'" scripts/plot_http_stress.gp
rm -f "$out/http-stress-reference.dat"
echo "http_reference: wrote $out/http-stress-reference.{json,md,txt,png}"
exit "$status"
