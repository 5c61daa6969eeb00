#!/usr/bin/env python3
"""Renders the fleet scenarios (tests/fleet with HOTSWAP_FLEET_RESULTS=DIR) as
results/fleet.{json,md,png}: per scenario the exact-counting client's counts over
all hosts, the time from `rollout` to the controller's end, the controller's own
"done in" / rollback times, and a plot of the build each host answered with
against time (one row per host, one colour per build).

  scripts/render_fleet.py DIR|fleet.json OUT_PREFIX --command CMD [--machine "$(scripts/machine.py --shell)"]
"""
import argparse
import glob
import json
import os
import re
import subprocess

ORDER = ["good", "bad", "etcd-member-killed", "controller-killed", "host-killed", "partition", "abort-resume"]
WHAT = {
    "good": "good release, waves 1, 25%, 100%",
    "bad": "bad release (5% 500s): stops at wave 1, rolled back",
    "etcd-member-killed": "good release; etcd member 0 killed at wave 2",
    "controller-killed": "good release; controller SIGKILLed at wave 2, `resume` finishes",
    "host-killed": "good release; h7 killed at wave 2, back after the end",
    "partition": "good release; h0 cut off from etcd before it, healed after",
    "abort-resume": "good release; `abort` at wave 2, then `resume`",
}


def controller_times(log):
    done = re.search(r"done in ([0-9.]+) s", log)
    back = re.search(r"fleet back on its version ([0-9.]+) s after the rollback", log)
    return (float(done.group(1)) if done else None, float(back.group(1)) if back else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("out")
    ap.add_argument("--command", required=True)
    ap.add_argument("--machine", default="")
    a = ap.parse_args()
    runs = {}
    if os.path.isfile(a.dir):  # an earlier fleet.json: render again
        for r in json.load(open(a.dir))["scenarios"]:
            runs[r["scenario"]] = r
    for f in glob.glob(os.path.join(a.dir, "*.json")):
        r = json.load(open(f))
        runs[r["scenario"]] = r
    names = [n for n in ORDER if n in runs]
    for r in runs.values():  # keep the controller's times, not its log (its hex ids read as commits)
        if "controller_log" in r:
            r["controller_done_s"], r["controller_rollback_s"] = controller_times(r.pop("controller_log"))
    machine = dict(line.split("=", 1) for line in a.machine.split("\n") if "=" in line)
    machine = {k.replace("machine_", ""): v.strip("'") for k, v in machine.items()}
    out = {"command": a.command, "machine": machine, "scenarios": [runs[n] for n in names]}
    json.dump(out, open(a.out + ".json", "w"), indent=1)

    builds = sorted({b for n in names for t in runs[n]["timeline"] for _, b in t})
    colour = {b: i + 1 for i, b in enumerate(builds)}
    dat = a.out + ".dat"
    with open(dat, "w") as d:
        for i, n in enumerate(names):
            r = runs[n]
            d.write(f"# scenario {n}\n")
            for h, t in enumerate(r["timeline"]):
                for k, (ms, b) in enumerate(t):
                    end = t[k + 1][0] if k + 1 < len(t) else r["end_ms"]
                    x0 = (ms - r["rollout_at_ms"]) / 1000
                    d.write(f"{x0:.3f} {h} {(end - ms) / 1000:.3f} 0 {colour[b]}\n")
            d.write("\n\n")
    gp = [f"set terminal pngcairo size 1400,{300 * ((len(names) + 1) // 2)} font ',10'",
          f"set output '{a.out}.png'",
          f"set multiplot layout {(len(names) + 1) // 2},2",
          "set xlabel 's since rollout'", "set ylabel 'host'", "set yrange [-0.5:7.5]", "set ytics 1",
          "set key outside right"]
    for i, n in enumerate(names):
        gp.append(f"set title '{WHAT[n]}'")
        plots = [f"'{dat}' index {i} using 1:($5=={colour[b]}?$2:1/0):3:4 with vectors nohead lw 6 lc {colour[b]} title '{b}'"
                 for b in builds]
        gp.append("plot " + ", ".join(plots))
    gp.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(gp), text=True, check=True)

    md = ["# Fleet rollout on etcd: 8 hotswap-httpd hosts, 3 etcd members (issue #22)", "",
          f"`{a.command}` (tests/fleet with `HOTSWAP_FLEET_RESULTS`), {machine.get('date', '?')}, commit "
          f"`{machine.get('commit', '?')[:7]}`; {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
          f"{machine.get('kernel', '?')}, {machine.get('compiler', '?')}. Load average before: {machine.get('load', '?')} "
          "(other builds shared the machine).", "",
          "One client thread sends `GET /` round-robin over all hosts, keep-alive, and counts every answer: "
          "socket errors and non-2xx on hosts that were up must be 0; the only non-2xx allowed are the bad "
          "build's own 500s while wave 1 is judged (its canary budget). Errors on a host the test was "
          "killing are counted apart. Gate: `--window` 1 to 1.5 s, `--min-requests 20`, `--max-error-rate 0.01`; "
          "lease TTL 2 s; agents tick every 100 ms.", "",
          "| scenario | answers 2xx | non-2xx (bad build's) | socket errors | errors on killed host | rollout to end (s) | controller: done in / rolled back in (s) |",
          "|---|---|---|---|---|---|---|"]
    for n in names:
        r = runs[n]
        done, back = r["controller_done_s"], r["controller_rollback_s"]
        ctl = f"done {done:.2f}" if done is not None else (f"fleet back {back:.2f}" if back is not None else "-")
        md.append(f"| {WHAT[n]} | {r['ok']:,} | {r['non_2xx']} ({r['non_2xx_from_bad']}) | {r['socket_errors']} | "
                  f"{r['errors_on_down_hosts']} | {r['seconds']:.2f} | {ctl} |")
    md += ["", f"![builds per host against time]({os.path.basename(a.out)}.png)", "",
           "Each row of a panel is a host (h0 at the bottom); its colour is the build the client saw it answer "
           "with. Gaps are a host down (killed) or not yet back. Wave 1 is h0, wave 2 adds h1, wave 3 the rest "
           "(in the partition panel h0 is left out, being cut off, so the waves start at h1; h0 stays on "
           "greeting-1 through the rollout; the test then heals the link and checks that h0 converges, and "
           "stops the client at once, so its row may end before the client's next request to h0).", ""]
    open(a.out + ".md", "w").write("\n".join(md))


if __name__ == "__main__":
    main()
