#!/usr/bin/env bash
# Scale in simulation (issue #22): N simulated agents (hotswap-fleet-sim, one process)
# against a real 3-member etcd on loopback, and one hotswap-fleet rollout over them
# (waves 1, 10%, 100%; --window 1). Per N: how long the rollout took, etcd writes it
# caused (revision delta over the rollout, reports included), the simulated agents'
# etcd calls, failures and call latency. Writes results/fleet-sim.{json,md}.
# Usage: scripts/fleet_sim.sh [N...]   (default: 100 300 1000; FLEET_BUILD_DIR default build/test)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FLEET_BUILD_DIR:-build/test}
sizes=("$@")
if [ $# -eq 0 ]; then sizes=(100 300 1000); fi
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
machine=$(python3 scripts/machine.py --shell)
cluster="m0=http://127.0.0.1:42380,m1=http://127.0.0.1:43380,m2=http://127.0.0.1:44380"
for i in 0 1 2; do
  c=$((42379 + i * 1000)); p=$((c + 1))
  etcd --name "m$i" --data-dir "$dir/m$i" --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "$cluster" \
    --initial-cluster-state new --log-level warn --logger zap >"$dir/m$i.log" 2>&1 &
  pids+=($!)
done
endpoints=127.0.0.1:42379,127.0.0.1:43379,127.0.0.1:44379
revision() { curl -s -X POST http://127.0.0.1:42379/v3/kv/range -d '{"key":"AA=="}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }
hosts() { etcdctl --endpoints "$endpoints" get --prefix --keys-only "/hotswap/fleet/sim$1/hosts/" | grep -c . || true; }
for _ in $(seq 100); do etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
out="$dir/runs.jsonl"
for n in "${sizes[@]}"; do
  svc="sim$n"
  "$build/adapters/fleet/hotswap-fleet-sim" --etcd "$endpoints" --service "$svc" --agents "$n" --tick-ms 1000 \
    --lease-ttl 10 --workers 16 >"$dir/sim$n.out" 2>&1 &
  sim=$!
  for _ in $(seq 600); do [ "$(hosts "$n")" -ge "$n" ] && break; sleep 0.1; done
  registered=$(hosts "$n")
  before=$(revision); start=$(date +%s.%N)
  rc=0
  "$build/adapters/fleet/hotswap-fleet" --etcd "$endpoints" rollout "$svc" greeting "$build/adapters/http/apps/greeting-2.so" \
    --store "$dir/store" --waves 1,10%,100% --window 1 --min-requests 0 --wave-timeout 120 2>"$dir/rollout$n.log" || rc=$?
  end=$(date +%s.%N); after=$(revision)
  kill "$sim"; wait "$sim" || true
  summary=$(grep SUMMARY "$dir/sim$n.out" || echo "SUMMARY missing")
  python3 - "$n" "$registered" "$rc" "$start" "$end" "$before" "$after" "$summary" "$dir/rollout$n.log" >>"$out" <<'PY'
import json, re, sys
n, reg, rc, start, end, before, after, summary, log = sys.argv[1:]
s = dict(kv.split("=") for kv in summary.split()[1:] if "=" in kv)
done = re.search(r"done in ([0-9.]+) s", open(log).read())
print(json.dumps({"agents": int(n), "registered": int(reg), "rollout_exit": int(rc),
                  "rollout_s": float(end) - float(start), "controller_done_s": float(done.group(1)) if done else None,
                  "etcd_writes_during_rollout": int(after) - int(before), "sim": s}))
PY
done
python3 - "$out" "$machine" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
m = {k.replace("machine_", ""): v.strip("'") for k, v in (l.split("=", 1) for l in sys.argv[2].split("\n") if "=" in l)}
json.dump({"command": "scripts/fleet_sim.sh", "machine": m, "runs": runs}, open("results/fleet-sim.json", "w"), indent=1)
md = ["# Fleet scale in simulation: simulated agents against a real 3-member etcd (issue #22)", "",
      f"`scripts/fleet_sim.sh`, {m['date']}, commit `{m['commit'][:7]}`; {m['cpu']}, {m['cores']} cores, {m['kernel']}. "
      f"Load average before: {m['load']} (other builds shared the machine).", "",
      "`hotswap-fleet-sim` runs N agents in one process (16 threads): each keeps a 10 s lease alive, reads its own "
      "desired key and the fleet key every second (two point reads, a connection each), installs instantly and puts "
      "its report when its state changes; no watch streams (the real agent adds two per host). One `hotswap-fleet "
      "rollout` (waves 1, 10%, 100%; `--window 1`, `--min-requests 0`) runs over them. etcd writes: the store's "
      "revision delta over the rollout (the controller's txns and every report put).", "",
      "| agents | registered | rollout exit | rollout (s) | etcd writes in rollout | agent calls | failures | call p50 (ms) | call p99 (ms) |",
      "|---|---|---|---|---|---|---|---|---|"]
for r in runs:
    s = r["sim"]
    md.append(f"| {r['agents']} | {r['registered']} | {r['rollout_exit']} | {r['rollout_s']:.1f} | {r['etcd_writes_during_rollout']:,} | "
              f"{int(s.get('calls', 0)):,} | {s.get('failures', '?')} | {s.get('call_p50_ms', '?')} | {s.get('call_p99_ms', '?')} |")
open("results/fleet-sim.md", "w").write("\n".join(md) + "\n")
PY
echo "fleet_sim: wrote results/fleet-sim.md and .json"
