#!/usr/bin/env bash
# A local fleet on loopback, for trying hotswap-fleet by hand (adapters/fleet/README.md):
# a 3-member etcd cluster (clients on 127.0.0.1:2379, 22379, 32379), N hotswap-httpd hosts
# (h0..h{N-1} on 127.0.0.1:8101.., each with its settings file DIR/hN/httpd.toml) each with
# its hotswap-fleet-agent, service `web`, module `greeting` (greeting-1.so at start), and a
# shared artifact store. Everything lives in DIR and stops on Ctrl-C (or SIGTERM).
# Usage: scripts/fleet_local.sh [hosts (8)] [dir (/tmp/hotswap-fleet)]
# Environment: FLEET_BUILD_DIR (default build/fleet; configured if new, its targets built if stale)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/httpd_settings.sh
n=${1:-8}
dir=${2:-/tmp/hotswap-fleet}
build=${FLEET_BUILD_DIR:-build/fleet}
command -v etcd >/dev/null || { echo "fleet_local: etcd is missing (scripts/setup.sh installs etcd-server)" >&2; exit 1; }
if [ ! -f "$build/CMakeCache.txt" ]; then  # an existing build directory keeps its configuration
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_BENCH=OFF \
    -DHOTSWAP_BUILD_STRESS=OFF -DHOTSWAP_BUILD_ADAPTERS=ON >/dev/null
fi
cmake --build "$build" -j 2 --target hotswap-httpd hotswap-fleet-agent hotswap-fleet hotswap_http_apps >/dev/null
apps="$build/adapters/http/apps"
rm -rf "$dir" && mkdir -m 700 -p "$dir/store"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

cluster="m0=http://127.0.0.1:2380,m1=http://127.0.0.1:22380,m2=http://127.0.0.1:32380"
for i in 0 1 2; do
  c=$(( i == 0 ? 2379 : i * 10000 + 12379 )); p=$(( c + 1 ))
  etcd --name "m$i" --data-dir "$dir/etcd/m$i" --listen-client-urls "http://127.0.0.1:$c" \
    --advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
    --initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "$cluster" \
    --initial-cluster-state new --log-level warn --logger zap >"$dir/etcd-m$i.log" 2>&1 &
  pids+=($!)
done
endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
for _ in $(seq 100); do etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

for i in $(seq 0 $((n - 1))); do
  h="$dir/h$i"; mkdir -m 700 -p "$h/plugins"
  install -m 644 "$apps/greeting-1.so" "$h/plugins/"
  head -c 32 /dev/urandom | base64 > "$h/admin.token" && chmod 600 "$h/admin.token"
  port=$((8101 + i))
  httpd_settings "$port" 0 1 "$h/plugins" "$h/shadow" "$h/admin.token" \
    "admin.socket = $(toml_string "$h/admin.sock")" "admin.uids = [$(id -u)]" >"$h/httpd.toml"
  "$build/adapters/http/hotswap-httpd" --config "$h/httpd.toml" 2>"$h/httpd.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$h/admin.sock" ] && break; sleep 0.05; done
  "$build/adapters/fleet/hotswap-fleet-agent" --etcd "$endpoints" --service web --host "h$i" --module greeting \
    --address "127.0.0.1:$port" --admin-socket "$h/admin.sock" --plugin-dir "$h/plugins" --store "$dir/store" \
    2>"$h/agent.log" &
  pids+=($!)
done
cat <<MSG
fleet_local: $n hosts on 127.0.0.1:8101..$((8100 + n)), etcd at $endpoints, logs in $dir. Try:
  $build/adapters/fleet/hotswap-fleet --etcd $endpoints status web
  $build/adapters/fleet/hotswap-fleet --etcd $endpoints rollout web greeting $apps/greeting-2.so --store $dir/store --waves 1,25%,100%
  curl -si 127.0.0.1:8101/ | grep X-Hotswap-Build
Ctrl-C stops everything.
MSG
wait
