#!/usr/bin/env bash
# The canary's reference run (issue #19): `hotswap-stress --scenario canary` at
# its normal size (each bad candidate with fallback on and off, 100 good runs),
# recording the time series. Writes
#   results/canary-stress.json         the rig's JSON (every metric, every check)
#   results/canary-stress.txt          what it printed (SUMMARY lines)
#   results/canary-stress-series.csv   candidate share and per-version errors every 10 ms
#   results/canary-stress.png          scripts/plot_canary.gp of the series
# Measurement holds /tmp/hotswap-measure.lock. Takes about 2 minutes.
# Environment: STRESS_BUILD_DIR (default build-stress/reference), STRESS_OUT (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${STRESS_BUILD_DIR:-build-stress/reference}
out=${STRESS_OUT:-results}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_SANITIZE= -DHOTSWAP_BUILD_TESTS=OFF \
  -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=ON -DHOTSWAP_BUILD_ADAPTERS=ON >/dev/null
cmake --build "$build" -j 2 --target hotswap-stress hotswap_http_apps >/dev/null
mkdir -p "$out"
exec 9>/tmp/hotswap-measure.lock
echo "canary_reference: waiting for /tmp/hotswap-measure.lock ..."
flock 9
eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_load (before the run), ...
status=0
"$build/stress/hotswap-stress" --scenario canary --scenario-arg "series=$out/canary-stress-series.csv" \
  --no-progress --json "$out/canary-stress.json" \
  --meta "git_commit=$machine_commit" --meta "git_uncommitted_files=$machine_uncommitted" \
  --meta "loadavg_before=$machine_load" \
  --meta "script=scripts/canary_reference.sh" | tee "$out/canary-stress.txt" || status=$?
after=$(python3 scripts/machine.py load)
flock -u 9
python3 - "$out/canary-stress.json" "$after" <<'PY'
import json, sys
path, after = sys.argv[1:3]
run = json.load(open(path))
run.setdefault("meta", {})["loadavg_after"] = after
json.dump(run, open(path, "w"), indent=2)
PY
gnuplot -e "datafile='$out/canary-stress-series.csv'; outfile='$out/canary-stress.png'" scripts/plot_canary.gp
echo "wrote $out/canary-stress.{json,txt,png} and $out/canary-stress-series.csv"
exit $status
