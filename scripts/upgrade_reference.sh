#!/usr/bin/env bash
# The host upgrade reference run (issue #21): `hotswap-stress --scenario upgrade`
# with REQUESTS requests per server: hotswap-httpd upgraded to a new binary
# every 500 ms (alternating hotswap-httpd and hotswap-httpd-alt), nginx's binary
# upgrade (USR2, WINCH, QUIT) and HAProxy's hitless reload (-W, expose-fd
# listeners) on the same schedule, the same exact-counting client (16
# keep-alive + 4 new-connection threads). Writes
#   results/upgrade-stress.json   the rig's JSON (every metric, every check)
#   results/upgrade-stress.md     the table
#   results/upgrade-stress.png    lost requests per upgrade, by server
# Measurement holds /tmp/hotswap-measure.lock.
# Usage: scripts/upgrade_reference.sh [requests-per-server (1000000)]
# Environment: STRESS_BUILD_DIR (default build-stress/reference), STRESS_OUT (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-1000000}
build=${STRESS_BUILD_DIR:-build-stress/reference}
out=${STRESS_OUT:-results}
if [ -z "${STRESS_BUILD_DIR:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_SANITIZE= -DHOTSWAP_BUILD_TESTS=OFF \
    -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=ON -DHOTSWAP_BUILD_ADAPTERS=ON >/dev/null
fi
cmake --build "$build" -j 2 --target hotswap-stress >/dev/null
mkdir -p "$out"
exec 9>/tmp/hotswap-measure.lock
echo "upgrade_reference: waiting for /tmp/hotswap-measure.lock ..."
flock 9
eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_load (before the run), ...
status=0
"$build/stress/hotswap-stress" --scenario upgrade --scenario-arg "requests=$requests" --seconds 60 --no-progress \
  --json "$out/upgrade-stress.json" --meta "git_commit=$machine_commit" \
  --meta "git_uncommitted_files=$machine_uncommitted" --meta "loadavg_before=$machine_load" \
  --meta "build=$(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" | cut -d= -f2)" \
  --meta "script=scripts/upgrade_reference.sh $requests" | tee "$out/upgrade-stress.txt" || status=$?
after=$(python3 scripts/machine.py load)
flock -u 9
python3 - "$out/upgrade-stress.json" "$after" <<'PY'
import json, sys
path, after = sys.argv[1:3]
run = json.load(open(path))
run.setdefault("meta", {})["loadavg_after"] = after
json.dump(run, open(path, "w"), indent=2)
PY
python3 scripts/render_host_scenario.py "$out/upgrade-stress.json" "$out/upgrade-stress.md" \
  --title "Binary upgrade under load: hotswap-httpd, nginx, HAProxy (reference run)" --image upgrade-stress.png \
  --note "Each server upgraded to a new binary every 500 ms while 16 keep-alive and 4 new-connection client threads (probe_client: every failure counted, never retried) send GET /. hotswap: POST /admin/upgrade alternating hotswap-httpd and hotswap-httpd-alt, 2 worker threads. nginx 1.22 (2 workers): USR2, WINCH, QUIT. HAProxy 2.6 (master-worker, nbthread 2, expose-fd listeners): SIGUSR2 to the master. lost = socket errors + non-2xx; the hotswap case also checks that the server's carried request count equals the clients'."
python3 - "$out/upgrade-stress.json" >"$out/upgrade-stress.dat" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
for c in run["host_scenarios"]:
    m = c.get("metrics", {})
    if m:
        print(c["case"], m["lost_per_upgrade"], int(m["upgrades"]), int(m["requests"]))
PY
gnuplot -e "datafile='$out/upgrade-stress.dat'; outfile='$out/upgrade-stress.png'" scripts/plot_upgrade.gp
rm -f "$out/upgrade-stress.dat"
echo "upgrade_reference: wrote $out/upgrade-stress.{json,md,txt,png}"
exit "$status"
