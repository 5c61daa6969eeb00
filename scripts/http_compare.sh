#!/usr/bin/env bash
# hotswap-httpd beside nginx-light under the same wrk load, on 127.0.0.1:
# each server is measured steady, then while it is changed every 50 ms
# (hotswap-httpd: POST /admin/swap alternating greeting-1/greeting-2;
# nginx: `nginx -s reload`), with keep-alive connections and with a new
# connection per request (Connection: close). Records wrk's requests/s,
# latency percentiles, socket errors and non-2xx responses side by side:
#   results/http-compare.json   every run, with command, commit, machine, date
#   results/http-compare.md     the table
# Usage: scripts/http_compare.sh [seconds-per-run (default 5)] [workers (default 1)] [connections (default 16)]
# Environment: HTTP_BUILD_DIR (default build-http-compare), HTTP_OUT (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
workers=${2:-1}
connections=${3:-16}
build=${HTTP_BUILD_DIR:-build-http-compare}
out=${HTTP_OUT:-results}
interval=0.05
for tool in wrk nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "http_compare: $tool is not installed (scripts/setup.sh)"; exit 1; }
done

[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_BUILD_TESTS=OFF \
  -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=OFF >/dev/null
nice -n 10 cmake --build "$build" -j2 --target hotswap-httpd >/dev/null

work=$(mktemp -d /tmp/hotswap-http-compare.XXXXXX)
chmod 700 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$(cat "$work/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port, asked of the kernel.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- hotswap-httpd --------------------------------------------------------------
mkdir -m 700 "$work/plugins"
cp "$build"/adapters/http/apps/greeting-{1,2}.so "$work/plugins/"
chmod 644 "$work"/plugins/*.so
head -c 32 /dev/urandom | base64 | tr -d '\n/+=' > "$work/token"
chmod 600 "$work/token"
hs_port=$(free_port)
admin_port=$(free_port)
"$build/adapters/http/hotswap-httpd" --listen "127.0.0.1:$hs_port" --admin-listen "127.0.0.1:$admin_port" \
  --threads "$workers" --plugin-dir "$work/plugins" --shadow-dir "$work/shadow" --admin-token-file "$work/token" \
  --route "/=greeting:greeting-1.so" 2>"$work/httpd.log" &
pids+=($!)

# --- nginx-light, an equivalent tiny response --------------------------------------
ng_port=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ng_port reuseport;
    location / { default_type text/plain; return 200 "hello from greeting-1\n"; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr" &
pids+=($!)

for port in "$hs_port" "$ng_port"; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
done

# No process per iteration but the change itself (curl, nginx -s reload): the
# token is read once and the pause is bash's own `read -t` on a pipe nobody
# writes to. With a subshell and a `sleep` per iteration, on 2 cores saturated
# by wrk and the server, the loop itself managed ~24 iterations in 5 s even
# when it only asked GET /admin/status: it measured fork/exec, not the server.
swap_loop() {  # $1: hotswap | nginx; runs until killed, counts into $work/$1.changes
  local i=0 auth pause
  auth="Authorization: Bearer $(cat "$work/token")"
  exec {pause}<> <(:)
  while :; do
    if [ "$1" = hotswap ]; then
      curl -fs -o /dev/null -H "$auth" \
        -d "{\"module\":\"greeting\",\"file\":\"greeting-$((i % 2 + 1)).so\"}" \
        "http://127.0.0.1:$admin_port/admin/swap" && echo >>"$work/$1.changes"
    else
      nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s reload 2>/dev/null && echo >>"$work/$1.changes"
    fi
    i=$((i + 1))
    read -rt "$interval" -u "$pause" _ || true
  done
}

runs=()
measure() {  # server port mode changing
  local server=$1 port=$2 mode=$3 changing=$4 header=()
  [ "$mode" = new-connection ] && header=(-H "Connection: close")
  : >"$work/$server.changes"
  local loop=
  if [ "$changing" = yes ]; then swap_loop "$server" & loop=$!; fi
  wrk -t1 -c"$connections" -d"${seconds}s" --latency "${header[@]}" "http://127.0.0.1:$port/" >"$work/wrk.txt" 2>&1 || true
  if [ -n "$loop" ]; then kill "$loop"; wait "$loop" 2>/dev/null || true; fi
  local changes
  changes=$(wc -l <"$work/$server.changes")
  local name="$server-$mode-$([ "$changing" = yes ] && echo changing || echo steady)"
  cp "$work/wrk.txt" "$work/$name.wrk"
  runs+=("$name:$changes")
  echo "$name: $(grep -E 'Requests/sec' "$work/wrk.txt" | tr -s ' ') changes=$changes"
}

for mode in keepalive new-connection; do
  for changing in no yes; do
    measure hotswap "$hs_port" "$mode" "$changing"
    measure nginx "$ng_port" "$mode" "$changing"
  done
done

mkdir -p "$out"
commit=$(git rev-parse --short HEAD)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
python3 - "$work" "$out" "$commit" "$cpu" "$(nproc)" "$seconds" "$workers" "$connections" "$interval" "${runs[@]}" <<'PY'
import json, re, sys, datetime, subprocess
work, out, commit, cpu, cores, seconds, workers, conns, interval = sys.argv[1:10]
runs = []
def to_us(v, unit):
    return float(v) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
for item in sys.argv[10:]:
    name, changes = item.rsplit(":", 1)
    text = open(f"{work}/{name}.wrk").read()
    server, rest = name.split("-", 1)
    mode, phase = rest.rsplit("-", 1)
    r = {"server": server, "mode": mode, "phase": phase, "changes": int(changes)}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["requests_per_s"] = float(m.group(1)) if m else 0.0
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        r[f"p{p}_us"] = to_us(m.group(1), m.group(2)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = dict(zip(["connect", "read", "write", "timeout"], map(int, m.groups()))) if m else \
        {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    r["wrk_output"] = text
    runs.append(r)
meta = {
    "command": f"scripts/http_compare.sh {seconds} {workers} {conns}",
    "commit": commit, "cpu": cpu, "cores": int(cores),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "wrk": f"wrk -t1 -c{conns} -d{seconds}s --latency (new-connection: -H 'Connection: close')",
    "change_interval_s": float(interval),
    "workers": int(workers),
    "note": "machine shared with other engineers' builds and tests while this ran: absolute numbers are "
            "noisy; compare the columns of one run only",
}
json.dump({"meta": meta, "runs": runs}, open(f"{out}/http-compare.json", "w"), indent=2)
lines = [
    "# hotswap-httpd beside nginx-light, changed every 50 ms under wrk", "",
    f"`{meta['command']}` at commit `{commit}`, {meta['date']}, {cpu} ({cores} cores), {workers} worker(s) each, "
    f"{meta['wrk']}. hotswap-httpd swaps its application (POST /admin/swap, greeting-1 <-> greeting-2); "
    f"nginx-light runs `nginx -s reload`; both every {interval} s plus the time the request takes.", "",
    f"**{meta['note']}.**", "",
    "| server | connections | phase | requests | req/s | p50 us | p90 us | p99 us | socket errors (c/r/w/t) | non-2xx | swaps/reloads |",
    "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
]
fmt = lambda v: "-" if v is None else f"{v:.0f}"
for r in runs:
    e = r["socket_errors"]
    lines.append(f"| {r['server']} | {r['mode']} | {r['phase']} | {r['requests']} | {r['requests_per_s']:.0f} | "
                 f"{fmt(r['p50_us'])} | {fmt(r['p90_us'])} | {fmt(r['p99_us'])} | "
                 f"{e['connect']}/{e['read']}/{e['write']}/{e['timeout']} | {r['non_2xx']} | {r['changes']} |")
def find(server, mode, phase):
    return next(r for r in runs if (r["server"], r["mode"], r["phase"]) == (server, mode, phase))
lines += ["", "| connections | hotswap req/s changing / steady | hotswap p99 changing / steady | hotswap / nginx req/s (steady) |",
          "|---|---:|---:|---:|"]
for mode in ("keepalive", "new-connection"):
    hs, hc, ns = find("hotswap", mode, "steady"), find("hotswap", mode, "changing"), find("nginx", mode, "steady")
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
    lines.append(f"| {mode} | {ratio(hc['requests_per_s'], hs['requests_per_s'])} | {ratio(hc['p99_us'], hs['p99_us'])} | "
                 f"{ratio(hs['requests_per_s'], ns['requests_per_s'])} |")
open(f"{out}/http-compare.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
