#!/usr/bin/env python3
"""One-off (issue 13, kept for the record of results/kernel-perf-quiet.md):
render the kernel-performance comparison into results/.

Inputs: SUMMARY lines of hotswap-stress runs before and after a change (the
same command, back to back), and Google Benchmark JSON of hotswap-bench-kernel.
Output: results/kernel-perf-<date>.json and .md (or --name NAME).

  scripts/archive/kernel_perf.py --before before.txt --after after.txt --bench bench.json \
      --before-commit SHA --after-commit SHA --command '...' --bench-command '...' [--note '...']
"""
import argparse
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import machine  # noqa: E402  (scripts/machine.py: the one place machine facts come from)

KEYS = ["calls_per_s", "p999_ns", "swaps_per_s", "refused", "gp_p50_ns", "gp_p99_ns", "reclaim_p99_ns",
        "teardown_p50_ns", "grace_busy_share", "teardown_busy_share", "bottleneck", "caller_cpu_share",
        "caller_preemptions", "membarriers"]


def summaries(path):
    rows = []
    for line in open(path):
        if not line.startswith("SUMMARY backend="):
            continue
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        rows.append(kv)
    return rows


def fmt_ns(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x < 0:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} ms"
    if x >= 1e3:
        return f"{x / 1e3:.1f} us"
    return f"{x:.0f} ns"


def fmt_n(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f} M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}" if x == int(x) else f"{x:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--bench")
    ap.add_argument("--before-commit", required=True)
    ap.add_argument("--after-commit", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--bench-command", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default="results")
    ap.add_argument("--name", help="output name without extension (default kernel-perf-<date>)")
    a = ap.parse_args()

    now = datetime.datetime.now(datetime.timezone.utc)
    facts = machine.facts()
    machine_doc = {"cpu": facts["cpu"], "cores": facts["cores"], "kernel": facts["kernel"],
                   "load_average_at_render": facts["load"]}
    stress = {"before": summaries(a.before), "after": summaries(a.after)}
    bench = []
    if a.bench:
        for b in json.load(open(a.bench))["benchmarks"]:
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            bench.append({k: b.get(k) for k in ("name", "real_time", "time_unit", "p50_us", "p99_us", "membarriers")
                          if k in b})
    doc = {"what": "issue 13: sleeping grace-period wait (epoch_grace) and the qsbr flavour",
           "date": now.isoformat(timespec="seconds"), "machine": machine_doc, "note": a.note,
           "before_commit": a.before_commit, "after_commit": a.after_commit,
           "stress_command": a.command, "bench_command": a.bench_command, "stress": stress, "bench": bench}
    stamp = now.strftime("%Y%m%d")
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, a.name or f"kernel-perf-{stamp}")
    json.dump(doc, open(base + ".json", "w"), indent=1)

    md = [f"# Kernel performance: sleeping grace-period wait and qsbr ({now:%Y-%m-%d})", "",
          f"- Machine: {machine_doc['cpu']}, {machine_doc['cores']} vCPUs, {machine_doc['kernel']}",
          f"- Before: `{a.before_commit}`; after: `{a.after_commit}`",
          f"- Stress: `{a.command}` (before and after binaries back to back; numbers are medians of the repetitions)"]
    if a.bench_command:
        md.append(f"- Benchmark: `{a.bench_command}`")
    if a.note:
        md.append(f"- **Note:** {a.note}")
    md += ["", "## Stress rig", "",
           "| build | backend | scenario | calls/s | caller p99.9 | swaps/s | refused | gp p50 | gp p99 | reclaim p99 | teardown p50 | bottleneck | caller CPU |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for which in ("before", "after"):
        for r in stress[which]:
            md.append(f"| {which} | {r['backend']} | {r['scenario']} | {fmt_n(r['calls_per_s'])} | {fmt_ns(r['p999_ns'])} | "
                      f"{fmt_n(r['swaps_per_s'])} | {fmt_n(r['refused'])} | {fmt_ns(r['gp_p50_ns'])} | {fmt_ns(r['gp_p99_ns'])} | "
                      f"{fmt_ns(r['reclaim_p99_ns'])} | {fmt_ns(r.get('teardown_p50_ns', '-1'))} | {r.get('bottleneck', '-')} | "
                      f"{r['caller_cpu_share']} |")
    if bench:
        md += ["", "## Benchmark (median of repetitions)", "", "| benchmark | time | p50 | p99 |", "|---|---|---|---|"]
        for b in bench:
            md.append(f"| {b['name']} | {b['real_time']:.3g} {b['time_unit']} | {b.get('p50_us', '-')} | {b.get('p99_us', '-')} |")
    open(base + ".md", "w").write("\n".join(md) + "\n")
    print(base + ".json", base + ".md")


if __name__ == "__main__":
    main()
