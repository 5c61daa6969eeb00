#!/usr/bin/env bash
# hotswap-httpd beside nginx-light under the same wrk load, on 127.0.0.1:
# each server is measured steady, then while it is changed every 50 ms, with
# keep-alive connections and with a new connection per request (Connection:
# close). Two ways to change it, each its own phase:
#   changing             a process per change: curl POST /admin/swap (greeting-1
#                        and greeting-2 in turn); `nginx -s reload`
#   changing-one-client  no process per change: one keep-alive admin connection
#                        (scripts/admin_client.py); SIGHUP to nginx's master from
#                        the loop's own `kill` (what `nginx -s reload` sends)
# and two controls, hotswap-httpd only, at the same pace without a change:
#   probing              curl GET /admin/status: the change loop's own cost
#                        (curl's start on a saturated machine)
#   probing-one-client   GET /admin/status over one admin connection
# A second hotswap-httpd runs with mimalloc preloaded (Debian's libmimalloc.so.2):
# the allocator A/B in the same run. Every (server, connections, phase) runs REPS
# times, interleaved; tables show medians. Records wrk's requests/s, latency
# percentiles, socket errors and non-2xx responses side by side:
#   results/http-compare.json   every run, with command, commit, machine, load, date
#   results/http-compare.md     the tables (medians) and the ratios against the targets
#   results/http-compare.png    requests/s and p99 per server, steady and changing
# Measurement holds /tmp/hotswap-measure.lock (never overlaps another one).
# Usage: scripts/http_compare.sh [seconds-per-run (default 5)] [workers (default 1)] [connections (default 16)]
# Environment: REPS (default 3), HTTP_BUILD_DIR (default build-http-compare), HTTP_OUT (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/httpd_settings.sh
seconds=${1:-5}
reps=${REPS:-3}
workers=${2:-1}
connections=${3:-16}
build=${HTTP_BUILD_DIR:-build-http-compare}
out=${HTTP_OUT:-results}
interval=0.05
for tool in wrk nginx curl python3 gnuplot; do
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
  kill "${loop:-}" 2>/dev/null || true
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
mimalloc=$(ls /usr/lib/*/libmimalloc.so.2 2>/dev/null | head -1)
[ -n "$mimalloc" ] || { echo "http_compare: libmimalloc.so.2 not found (apt-get install libmimalloc2.0)"; exit 1; }
declare -A port admin
start_httpd() {  # name [env...]
  local name=$1; shift
  port[$name]=$(free_port)
  admin[$name]=$(free_port)
  httpd_settings "${port[$name]}" "${admin[$name]}" "$workers" "$work/plugins" "$work/shadow-$name" "$work/token" \
    >"$work/$name.toml"
  env "$@" "$build/adapters/http/hotswap-httpd" --config "$work/$name.toml" 2>"$work/$name.log" &
  pids+=($!)
}
start_httpd hotswap
start_httpd hotswap-mimalloc LD_PRELOAD="$mimalloc"

# --- nginx-light, an equivalent tiny response --------------------------------------
port[nginx]=$(free_port)
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
    listen 127.0.0.1:${port[nginx]} reuseport;
    location / { default_type text/plain; return 200 "hello from greeting-1\n"; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr" &
pids+=($!)

for server in hotswap hotswap-mimalloc nginx; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:${port[$server]}/" >/dev/null && break; sleep 0.05; done
done

# No process per iteration but the change itself (curl, nginx -s reload; none at
# all in changing-one-client): the token is read once and the pause is bash's
# own `read -t` on a pipe nobody writes to. With a subshell and a `sleep` per
# iteration, on 2 cores saturated by wrk and the server, the loop itself managed
# ~24 iterations in 5 s even when it only asked GET /admin/status: it measured
# fork/exec, not the server.
change_loop() {  # $1: server, $2: a phase other than steady; runs until killed
  local server=$1 phase=$2 i=0 auth pause
  auth="Authorization: Bearer $(cat "$work/token")"
  local counts="$work/$server.changes"
  if [[ $phase = *-one-client && $server != nginx ]]; then
    exec python3 scripts/admin_client.py "${admin[$server]}" "$work/token" "$interval" "$counts" \
      "$([ "$phase" = probing-one-client ] && echo status || echo swap)"
  fi
  local master=
  [ "$server" = nginx ] && read -r master <"$work/nginx/nginx.pid"  # a reload keeps the master's pid
  exec {pause}<> <(:)
  while :; do
    case $server:$phase in
      nginx:changing) nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s reload 2>/dev/null && echo >>"$counts" ;;
      nginx:changing-one-client) kill -HUP "$master" && echo >>"$counts" ;;
      *:changing)
        curl -fs -o /dev/null -H "$auth" \
          -d "{\"module\":\"greeting\",\"file\":\"greeting-$((i % 2 + 1)).so\"}" \
          "http://127.0.0.1:${admin[$server]}/admin/swap" && echo >>"$counts" ;;
      *:probing) curl -fs -o /dev/null -H "$auth" "http://127.0.0.1:${admin[$server]}/admin/status" && echo >>"$counts" ;;
    esac
    i=$((i + 1))
    read -rt "$interval" -u "$pause" _ || true
  done
}

runs=()
measure() {  # server mode phase rep
  local server=$1 mode=$2 phase=$3 rep=$4 header=()
  [ "$mode" = new-connection ] && header=(-H "Connection: close")
  : >"$work/$server.changes"
  loop=
  if [ "$phase" != steady ]; then change_loop "$server" "$phase" & loop=$!; fi
  wrk -t1 -c"$connections" -d"${seconds}s" --latency "${header[@]}" "http://127.0.0.1:${port[$server]}/" \
    >"$work/wrk.txt" 2>&1 || true
  if [ -n "$loop" ]; then kill "$loop"; wait "$loop" 2>/dev/null || true; loop=; fi
  local changes
  changes=$(wc -l <"$work/$server.changes")
  local name="$server:$mode:$phase:$rep"
  cp "$work/wrk.txt" "$work/$name.wrk"
  runs+=("$name:$changes")
  echo "$name: $(grep -E 'Requests/sec' "$work/wrk.txt" | tr -s ' ') changes=$changes"
}

exec 9>/tmp/hotswap-measure.lock
echo "http_compare: waiting for /tmp/hotswap-measure.lock ..."
flock 9
eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_cpu, machine_load (before the run), ...
started=$(date +%s)
for rep in $(seq "$reps"); do
  for mode in keepalive new-connection; do
    for phase in steady changing changing-one-client probing probing-one-client; do
      for server in hotswap hotswap-mimalloc nginx; do
        [[ $phase = probing* && $server != hotswap ]] && continue
        measure "$server" "$mode" "$phase" "$rep"
      done
    done
  done
done
load_after=$(python3 scripts/machine.py load)
elapsed=$(( $(date +%s) - started ))
flock -u 9

mkdir -p "$out"
python3 - "$work" "$out" "$machine_commit" "$machine_cpu" "$machine_cores" "$seconds" "$workers" "$connections" \
  "$interval" "$reps" "$machine_load" "$load_after" "$elapsed" "$machine_kernel" "$machine_date" "${runs[@]}" <<'PY'
import json, re, sys, statistics
work, out, commit, cpu, cores, seconds, workers, conns, interval, reps, load_before, load_after, elapsed, kernel, date = \
    sys.argv[1:16]
runs = []
def to_us(v, unit):
    return float(v) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
for item in sys.argv[16:]:
    name, changes = item.rsplit(":", 1)
    text = open(f"{work}/{name}.wrk").read()
    server, mode, phase, rep = name.split(":")
    r = {"server": server, "mode": mode, "phase": phase, "rep": int(rep), "changes": int(changes)}
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
    "command": f"REPS={reps} scripts/http_compare.sh {seconds} {workers} {conns}",
    "commit": commit, "cpu": cpu, "cores": int(cores), "kernel": kernel, "date": date,
    "wrk": f"wrk -t1 -c{conns} -d{seconds}s --latency (new-connection: -H 'Connection: close')",
    "change_interval_s": float(interval), "workers": int(workers), "repetitions": int(reps),
    "loadavg_before": load_before, "loadavg_after": load_after, "measure_seconds": int(elapsed),
    "note": "the load averages include the measurement's own processes (wrk, three servers, the change "
            "loop), about 2 runnable on this 2-core machine; higher means other work shared it",
}
json.dump({"meta": meta, "runs": runs}, open(f"{out}/http-compare.json", "w"), indent=2)

servers = ["hotswap", "hotswap-mimalloc", "nginx"]
phases = ("steady", "changing", "changing-one-client", "probing", "probing-one-client")
cells = [(m, p) for m in ("keepalive", "new-connection") for p in phases]
def group(server, mode, phase):
    return [r for r in runs if (r["server"], r["mode"], r["phase"]) == (server, mode, phase)]
def med(rs, key):
    vals = [r[key] for r in rs if r[key] is not None]
    return statistics.median(vals) if vals else None
def total(rs, key):
    return sum(r[key] for r in rs)
lines = [
    "# hotswap-httpd beside nginx-light, changed every 50 ms under wrk", "",
    f"`{meta['command']}` at commit `{commit}`, {meta['date']}, {cpu} ({cores} cores), {workers} worker(s) each, "
    f"{meta['wrk']}; {reps} interleaved repetitions of every row, medians shown (errors, non-2xx and changes: sums). "
    f"hotswap-httpd swaps its application (POST /admin/swap, greeting-1 <-> greeting-2; "
    f"`hotswap-mimalloc` is the same server with Debian's mimalloc preloaded); nginx-light runs `nginx -s reload`; "
    f"each every {interval} s plus the time the request takes. Phase `changing` starts a process per change (curl, "
    f"`nginx -s reload`); `changing-one-client` starts none (one keep-alive admin connection from "
    f"scripts/admin_client.py; SIGHUP to nginx's master from the loop's bash `kill`); `probing` (hotswap-httpd only) "
    f"asks GET /admin/status at the same pace, through curl, and `probing-one-client` over one admin connection: "
    f"the change loop's cost without a change. "
    f"Load average {load_before} before, "
    f"{load_after} after ({elapsed} s measuring).", "",
    f"**Note: {meta['note']}.**", "",
    "![requests/s and p99](http-compare.png)", "",
    "| server | connections | phase | requests | req/s | p50 us | p90 us | p99 us | socket errors (c/r/w/t) | non-2xx | swaps/reloads |",
    "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
]
fmt = lambda v: "-" if v is None else f"{v:.0f}"
summary = {}
for mode, phase in cells:
    for server in servers:
        rs = group(server, mode, phase)
        if not rs:
            continue
        e = {k: sum(r["socket_errors"][k] for r in rs) for k in ("connect", "read", "write", "timeout")}
        row = {"requests": total(rs, "requests"), "rps": med(rs, "requests_per_s"), "p50": med(rs, "p50_us"),
               "p90": med(rs, "p90_us"), "p99": med(rs, "p99_us"), "errors": e, "non_2xx": total(rs, "non_2xx"),
               "changes": total(rs, "changes")}
        summary[(server, mode, phase)] = row
        lines.append(f"| {server} | {mode} | {phase} | {row['requests']} | {fmt(row['rps'])} | {fmt(row['p50'])} | "
                     f"{fmt(row['p90'])} | {fmt(row['p99'])} | {e['connect']}/{e['read']}/{e['write']}/{e['timeout']} | "
                     f"{row['non_2xx']} | {row['changes']} |")
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
lines += ["", "Targets (issue #10): changing/steady req/s >= 0.95, p99 changing/steady <= 1.5, hotswap/nginx req/s "
          "(keep-alive, steady) >= 0.80.", "",
          "| server | connections | changing (a process per change) / steady: req/s, p99 | "
          "changing-one-client / steady: req/s, p99 | probing / steady: req/s, p99 | "
          "probing-one-client / steady: req/s, p99 | req/s / nginx's (steady) | req/s / nginx's (changing) |",
          "|---|---|---|---|---|---|---:|---:|"]
def against_steady(server, mode, phase):
    s, c = summary[(server, mode, "steady")], summary.get((server, mode, phase))
    return f"{ratio(c['rps'], s['rps'])}, {ratio(c['p99'], s['p99'])}" if c else "-"
for mode in ("keepalive", "new-connection"):
    for server in servers:
        s, c = summary[(server, mode, "steady")], summary[(server, mode, "changing")]
        ns, nc = summary[("nginx", mode, "steady")], summary[("nginx", mode, "changing")]
        lines.append(f"| {server} | {mode} | " + " | ".join(against_steady(server, mode, p) for p in phases[1:]) +
                     f" | {ratio(s['rps'], ns['rps'])} | {ratio(c['rps'], nc['rps'])} |")
lines += ["", "Allocator A/B (same run, medians): hotswap-httpd with mimalloc / with glibc malloc, requests/s:", ""]
lines += [f"- {mode}, {phase}: {ratio(summary[('hotswap-mimalloc', mode, phase)]['rps'], summary[('hotswap', mode, phase)]['rps'])}"
          for mode, phase in cells if not phase.startswith("probing")]
open(f"{out}/http-compare.md", "w").write("\n".join(lines) + "\n")
with open(f"{work}/plot.dat", "w") as f:
    f.write("cell " + " ".join(servers) + " " + " ".join(s + "_p99" for s in servers) + "\n")
    for mode, phase in cells:
        if phase.startswith("probing"):
            continue  # hotswap-httpd only: in the tables, not the plot
        f.write(f"{mode}/{phase} " + " ".join(fmt(summary[(s, mode, phase)]["rps"]) for s in servers) + " " +
                " ".join(fmt(summary[(s, mode, phase)]["p99"]) for s in servers) + "\n")
print("\n".join(lines))
PY
gnuplot -e "datafile='$work/plot.dat'; outfile='$out/http-compare.png'" scripts/plot_http_compare.gp
