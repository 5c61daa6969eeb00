#!/usr/bin/env bash
# Issue 26's targets ("cheap swaps"), measured in one run on this machine:
#   1. hotswap-stress --scenario plugin, the default backend (epoch-membarrier)
#      beside liburcu (urcu-memb-sync), --repeat 3, medians: swaps/s, teardown p50;
#   2. hotswap-stress --scenario memory --readers 2 (more threads than cores),
#      the same two backends: caller p99.99 and calls/s;
#   3. hotswap-httpd's server CPU per admin swap (scripts/http_swap_cpu.py);
#   4. keep-alive p99 and requests/s while swapping every 50 ms against steady
#      (scripts/http_compare.sh, REPS=3): swapped over one admin connection
#      and by a curl per swap, each with its control (the same client asking
#      for status only).
# With BASE=<another hotswap-stress> (say, main's build before the change)
# and BASE_COMMIT=<its commit>, 1 and 2 also run on it, in the same run, as "before".
# Writes results/cheap-swaps.{json,md} and results/cheap-swaps-http-compare.{json,md,png}.
# Usage: scripts/cheap_swaps.sh [build dir (default build/test)]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/test}
out=${OUT:-results}
base=${BASE:-}
stress="$build/stress/hotswap-stress"
for f in "$stress" "$build/adapters/http/hotswap-httpd"; do
  [ -x "$f" ] || { echo "cheap_swaps: $f is not built (cmake --build $build --target hotswap-stress hotswap-httpd)"; exit 1; }
done
work=$(mktemp -d /tmp/hotswap-cheap-swaps.XXXXXX)
trap 'rm -rf "$work"' EXIT

exec 9>/tmp/hotswap-measure.lock
echo "cheap_swaps: waiting for /tmp/hotswap-measure.lock ..."
flock 9
eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_load (before the run), ...
started=$(date +%s)
kernel_runs() {  # name binary
  "$2" --scenario plugin --backend epoch-membarrier,urcu-memb-sync --repeat 3 --no-progress \
    --json "$work/$1-plugin.json" | tee "$work/$1-plugin.txt"
  "$2" --scenario memory --readers 2 --backend epoch-membarrier,urcu-memb-sync --repeat 3 --no-progress \
    --json "$work/$1-memory.json" | tee "$work/$1-memory.txt"
}
kernel_runs after "$stress"
# The same binary with a dedicated thread per hook (loader_options::reuse_hook_threads off): the lead measured against.
"$stress" --scenario plugin --scenario-arg hooks=dedicated --backend epoch-membarrier,urcu-memb-sync --repeat 3 \
  --no-progress --json "$work/dedicated-plugin.json" | tee "$work/dedicated-plugin.txt"
[ -z "$base" ] || kernel_runs before "$base"
load_kernel=$(python3 scripts/machine.py load)
flock -u 9  # the two http scripts take the lock themselves
python3 scripts/http_swap_cpu.py "$build" --json "$work/swap-cpu.json" --md "$work/swap-cpu.md"
HTTP_BUILD_DIR="$build" HTTP_OUT="$work/http" scripts/http_compare.sh
load_after=$(python3 scripts/machine.py load)
elapsed=$(( $(date +%s) - started ))

mkdir -p "$out"
for ext in json md png; do cp "$work/http/http-compare.$ext" "$out/cheap-swaps-http-compare.$ext"; done
sed -i 's/(http-compare.png)/(cheap-swaps-http-compare.png)/' "$out/cheap-swaps-http-compare.md"
python3 - "$work" "$out" "$machine_commit" "$machine_cpu" "$machine_cores" "$machine_kernel" "$machine_date" \
  "$machine_load" "$load_kernel" "$load_after" "$elapsed" "${base:+${BASE_COMMIT:-unknown}}" <<'PY'
import json, sys, statistics
work, out, commit, cpu, cores, kernel, date, load_before, load_kernel, load_after, elapsed, base_commit = sys.argv[1:13]
has_base = bool(base_commit)
def reported(path):
    d = json.load(open(path))
    return d["command"], {r["backend"]: r["reported"] for r in d["runs"] if "reported" in r}
stress = {}
for phase in (["after", "dedicated", "before"] if has_base else ["after", "dedicated"]):
    for scen in ("plugin", "memory"):
        if phase == "dedicated" and scen == "memory":
            continue
        cmd, rows = reported(f"{work}/{phase}-{scen}.json")
        stress[f"{phase}-{scen}"] = {"command": cmd, "backends": rows}
cpu_json = json.load(open(f"{work}/swap-cpu.json"))
http = json.load(open(f"{work}/http/http-compare.json"))
def hrow(server, mode, phase, key):
    vals = [r[key] for r in http["runs"] if (r["server"], r["mode"], r["phase"]) == (server, mode, phase) and r[key]]
    return statistics.median(vals) if vals else None
# Phases (scripts/http_compare.sh): changing starts a curl per swap, changing-one-client swaps over one
# keep-alive admin connection; probing and probing-one-client ask GET /admin/status the same two ways
# at the same pace, with no swap.
http_summary = {f"{p}_{short}": hrow("hotswap", "keepalive", p, key)
                for p in ("steady", "changing", "changing-one-client", "probing", "probing-one-client")
                for short, key in (("rps", "requests_per_s"), ("p99_us", "p99_us"))}
for p in ("changing", "changing-one-client"):
    http_summary[f"nginx_{p}_p99_ratio"] = ((hrow("nginx", "keepalive", p, "p99_us") or 0) /
                                           (hrow("nginx", "keepalive", "steady", "p99_us") or 1))
meta = {"script": "scripts/cheap_swaps.sh", "commit": commit, "cpu": cpu, "cores": int(cores), "kernel": kernel,
        "date": date, "loadavg_before": load_before, "loadavg_after_kernel_runs": load_kernel,
        "loadavg_after": load_after, "measure_seconds": int(elapsed), "before_commit": base_commit or None,
        "note": "other helpers built on this 2-core machine during the run: the load averages say how much; "
                "read ratios within one run, not absolute numbers"}
json.dump({"meta": meta, "stress": stress, "http_swap_cpu": cpu_json["summary"], "http_swap_cpu_command": cpu_json["meta"]["command"],
           "http_compare_keepalive_hotswap": http_summary}, open(f"{out}/cheap-swaps.json", "w"), indent=2)

D, L = "epoch-membarrier", "urcu-memb-sync"
p, m = stress["after-plugin"]["backends"], stress["after-memory"]["backends"]
f0 = lambda v, d=0: "-" if v is None or v < 0 else f"{v:,.{d}f}"
ratio = lambda a, b: a / b if a and b else float("nan")
ok = lambda c: "met" if c else "**missed**"
t = []
sw = ratio(p[D]["swaps_per_s"], p[L]["swaps_per_s"])
td = p[D]["teardown_p50_ns"] / 1000
t.append(("plugin swaps/s, default / liburcu", ">= 1.00", f"{sw:.2f} ({f0(p[D]['swaps_per_s'])} vs {f0(p[L]['swaps_per_s'])}; refused {f0(p[D]['refused'])} vs {f0(p[L]['refused'])})", ok(sw >= 1.0)))
t.append(("plugin teardown p50", "<= 150 us", f"{td:.0f} us (liburcu {p[L]['teardown_p50_ns'] / 1000:.0f} us); bottleneck={p[D]['bottleneck']}", ok(td <= 150)))
viol = sum(sum(r["violations_all"].values()) for s in stress.values() for r in s["backends"].values())
t.append(("violations (every run above)", "0", str(viol), ok(viol == 0)))
q = ratio(m[D]["p9999_ns"], m[L]["p9999_ns"])
c = ratio(m[D]["calls_per_s"], m[L]["calls_per_s"])
t.append(("memory --readers 2: caller p99.99, default / liburcu", "<= 1.00", f"{q:.2f} ({m[D]['p9999_ns'] / 1000:.1f} us vs {m[L]['p9999_ns'] / 1000:.1f} us)", ok(q <= 1.0)))
t.append(("memory --readers 2: calls/s, default / liburcu", "kept (>= 1.00)", f"{c:.2f} ({m[D]['calls_per_s'] / 1e6:.1f} M vs {m[L]['calls_per_s'] / 1e6:.1f} M; refused {f0(m[D]['refused'])})", ok(c >= 1.0)))
s = cpu_json["summary"]
held_by = ", ".join(f"{name} {v['cpu_us']:.0f}" for name, v in list(s.get("threads", {}).items())[:4])
t.append(("httpd server CPU per admin swap, p50", "<= 500 us", f"{s['cpu_us_p50']:.0f} us (p90 {s['cpu_us_p90']:.0f}, {s['swaps']} swaps)"
          + (f"; by thread, mean us: {held_by}" if held_by else ""), ok(s["cpu_us_p50"] <= 500)))
def against_steady(phase):
    return (ratio(http_summary[f"{phase}_p99_us"], http_summary["steady_p99_us"]),
            ratio(http_summary[f"{phase}_rps"], http_summary["steady_rps"]))
def keepalive_rows(phase, how, nginx_how, note):
    kp, kr = against_steady(phase)
    t.append((f"keep-alive p99 swapping / steady, {how}", "<= 2.0",
              f"{kp:.2f} ({f0(http_summary[f'{phase}_p99_us'])} vs {f0(http_summary['steady_p99_us'])} us; "
              f"nginx, {nginx_how}: {http_summary[f'nginx_{phase}_p99_ratio']:.1f}x){note}", ok(kp <= 2.0)))
    t.append((f"keep-alive req/s swapping / steady, {how}", ">= 0.90", f"{kr:.2f}", ok(kr >= 0.90)))
control = "; the same client asking GET /admin/status at the same pace, no swap: p99 {:.2f}x, req/s {:.2f}x"
keepalive_rows("changing-one-client", "one admin connection", "SIGHUP", control.format(*against_steady("probing-one-client")))
keepalive_rows("changing", "a curl per swap", "`nginx -s reload`", control.format(*against_steady("probing")))
lines = ["# Cheap swaps (issue 26): the targets in one run", "",
         f"`scripts/cheap_swaps.sh` at commit `{commit}`, {date}, {cpu} ({cores} cores), {kernel}. "
         f"Load average {load_before} before, {load_kernel} after the kernel runs, {load_after} at the end "
         f"({elapsed} s). "
         + ("**Other work shared this 2-core machine during the run** (the load before it): absolute numbers "
            "are disturbed; " if float(load_before.split()[0]) > 1.0 else
            "Nothing else ran before the run (the later load averages are the run's own); ")
         + "the ratios compare backends measured in the same run, interleaved.", ""]
if has_base:
    lines += [f"\"Before (BASE)\" is the build of commit `{base_commit}`, run in the same measurement.", ""]
lines += ["| target | wanted | measured | |", "|---|---|---|---|"]
lines += [f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in t]
lines += ["", "Commands:", ""]
lines += [f"- `{v['command']}`" for k, v in stress.items() if not k.startswith("before")]
lines += [f"- `{cpu_json['meta']['command']}`", f"- `{http['meta']['command']}` (tables: [cheap-swaps-http-compare.md](cheap-swaps-http-compare.md))", ""]
def table(name, rows):
    out = [f"### {name}", "", "| backend | swaps/s | refused | calls/s | p99.9 ns | p99.99 ns | gp p50 us | teardown p50 us | teardown p99 us | bottleneck | caller CPU share |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for b, r in rows.items():
        out.append(f"| {b} | {f0(r['swaps_per_s'])} | {f0(r['refused'])} | {r['calls_per_s'] / 1e6:.2f} M | {f0(r['p999_ns'])} | {f0(r['p9999_ns'])} | "
                   f"{f0(r['gp_p50_ns'] / 1000, 1)} | {f0(r['teardown_p50_ns'] / 1000 if r['teardown_p50_ns'] > 0 else -1)} | "
                   f"{f0(r['teardown_p99_ns'] / 1000 if r['teardown_p99_ns'] > 0 else -1)} | {r['bottleneck']} | {r['caller_cpu_share']:.2f} |")
    return out + [""]
for k, v in stress.items():
    lines += table(k.replace("after-", "this branch, ").replace("dedicated-", "this branch with a dedicated thread per hook, ")
                   .replace("before-", "before (BASE), ") + " scenario", v["backends"])
lines += ["### hotswap-httpd: server CPU per admin swap", ""] + open(f"{work}/swap-cpu.md").read().splitlines()[2:]
open(f"{out}/cheap-swaps.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
