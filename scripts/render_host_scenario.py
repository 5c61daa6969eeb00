#!/usr/bin/env python3
"""Renders an end-to-end scenario run of hotswap-stress (--json) as Markdown:
one column per case, one row per metric, then each case's violations.

  scripts/render_host_scenario.py RUN.json OUT.md --title TITLE [--note TEXT] [--image FILE.png]
"""
import argparse
import json


def fmt(v):
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.2f}"
    return f"{int(v)}" if isinstance(v, (int, float)) else str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--title", required=True)
    ap.add_argument("--note", default="")
    ap.add_argument("--image", default="")
    a = ap.parse_args()
    run = json.load(open(a.run))
    cases = run["host_scenarios"]
    m = run["machine"]
    meta = run.get("meta", {})
    lines = [f"# {a.title}", "",
             f"`{run['command']}`, {run['date']}, commit `{meta.get('git_commit', '?')}`; {m['cpu']}, "
             f"{m['hardware_threads']} hardware threads, {m['kernel']}, {m['compiler']}, sanitizer {m['sanitizer']}."]
    if "loadavg_before" in meta:
        lines[-1] += f" Load average {meta['loadavg_before']} before, {meta.get('loadavg_after', '?')} after."
    if a.note:
        lines += ["", a.note]
    if a.image:
        lines += ["", f"![{a.title}]({a.image})"]
    keys = []
    for c in cases:
        keys += [k for k in c["metrics"] if k not in keys]
    lines += ["", "| metric | " + " | ".join(c["case"] for c in cases) + " |",
              "|---|" + "---:|" * len(cases)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(fmt(c["metrics"].get(k, "-")) for c in cases) + " |")
    lines += ["", "| case | result | violations |", "|---|---|---|"]
    for c in cases:
        v = "; ".join(c.get("violations", [])) or "none"
        lines.append(f"| {c['case']} | {c['result']} | {v} |")
    open(a.out, "w").write("\n".join(lines) + "\n")


main()
