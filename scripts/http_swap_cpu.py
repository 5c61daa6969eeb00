#!/usr/bin/env python3
"""Server CPU per admin swap of hotswap-httpd, measured from outside the server.

Starts hotswap-httpd on 127.0.0.1 with the greeting application, then asks it
for N swaps (POST /admin/swap, greeting-1 <-> greeting-2) one at a time, GAP
seconds apart, with no other load. Before each swap it reads the server's
process CPU clock (clock_gettime on the CPU-time clock of that pid: every
thread's user and system time, in nanoseconds, threads that already exited
included); swap i costs the difference to the next reading. So one swap's cost
is everything the server spent in the gap: the admin request (HTTP, JSON), the
read, the hash, the checks, the shadow copy, dlopen, startup, the publish,
the replaced version's shutdown and dlclose on its unload worker, and the idle
server's own background (measured alone first, subtracted). The first two
swaps (each build's first load, with its preflight child) are reported apart.
Where it goes: each thread's CPU time and context switches over the swaps,
from /proc (schedstat, status), by thread name (the library names its threads:
hs-reclaim, hs-spare, ...; the server's are httpd-*), less each name's idle share.

  scripts/http_swap_cpu.py BUILD_DIR [--swaps 200] [--gap 0.03] [--json out.json] [--md out.md]
"""
import argparse
import fcntl
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import admin_client  # the same swap request as the http comparison's long-lived client


def process_cpu_clock(pid):
    # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED): the process-wide CPU clock of another pid.
    return ((~pid) << 3) | 2


def thread_stats(pid):
    """{tid: (name, cpu ns, context switches)} of pid's live threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:  # it exited meanwhile
            continue
        out[tid] = (name, ns, switches)
    return out


def by_name(before, after, count):
    """CPU us and context switches per event (count of them), by thread name, between two thread_stats()."""
    totals = {}
    for tid, (name, ns, switches) in after.items():
        _, ns0, switches0 = before.get(tid, (name, 0, 0))
        t = totals.setdefault(name, [0, 0])
        t[0] += ns - ns0
        t[1] += switches - switches0
    return {name: {"cpu_us": ns / count / 1000, "switches": s / count} for name, (ns, s) in totals.items()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--swaps", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.03, help="seconds between swaps (the old version unloads in it)")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()

    # Never overlaps another measurement (http_compare.sh, stress.sh hold the same lock).
    lock = open("/tmp/hotswap-measure.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    httpd = os.path.join(args.build, "adapters/http/hotswap-httpd")
    apps = os.path.join(args.build, "adapters/http/apps")
    work = tempfile.mkdtemp(prefix="hotswap-swap-cpu.")
    os.chmod(work, 0o700)
    plugins = os.path.join(work, "plugins")
    os.mkdir(plugins, 0o700)
    for name in ("greeting-1.so", "greeting-2.so"):
        shutil.copy(os.path.join(apps, name), plugins)
        os.chmod(os.path.join(plugins, name), 0o644)
    token = os.urandom(24).hex()
    with open(os.path.join(work, "token"), "w") as f:
        f.write(token)
    os.chmod(os.path.join(work, "token"), 0o600)
    port, admin = free_port(), free_port()
    log = open(os.path.join(work, "server.log"), "w")
    settings = os.path.join(work, "httpd.toml")
    with open(settings, "w") as f:  # the scripts' one settings writer
        subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "httpd_settings.sh"), str(port), str(admin),
                        "1", plugins, os.path.join(work, "shadow"), os.path.join(work, "token")], stdout=f, check=True)
    server = subprocess.Popen([httpd, "--config", settings], stderr=log)
    try:
        clock = process_cpu_clock(server.pid)
        conn = None
        for _ in range(200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
                conn.request("GET", "/admin/status", headers={"Authorization": f"Bearer {token}"})
                conn.getresponse().read()
                break
            except OSError:
                conn = None
                time.sleep(0.05)
        if conn is None:
            sys.exit("http_swap_cpu: the server did not come up (see its log)")

        def swap(i):
            status, text = admin_client.ask(conn, {"Authorization": f"Bearer {token}"}, "swap", i)
            data = json.loads(text)
            if status != 200:
                sys.exit(f"http_swap_cpu: swap {i} answered {status}: {data}")
            return data

        time.sleep(0.5)
        # The idle server's own background over one gap (the reclaimer, timers): subtracted below.
        idle = []
        idle_threads = thread_stats(server.pid)
        for _ in range(20):
            a = time.clock_gettime_ns(clock)
            time.sleep(args.gap)
            idle.append(time.clock_gettime_ns(clock) - a)
        idle_ns = statistics.median(idle)
        idle_by_name = by_name(idle_threads, thread_stats(server.pid), len(idle))

        costs, replies = [], []
        swap_threads = thread_stats(server.pid)
        before = time.clock_gettime_ns(clock)
        for i in range(args.swaps + 2):
            replies.append(swap(i + 1))  # version 1 serves greeting-1: start with greeting-2
            time.sleep(args.gap)
            now = time.clock_gettime_ns(clock)
            costs.append(now - before - idle_ns)
            before = now
        # Per swap (gap included), less what each name spends over an idle gap.
        threads = by_name(swap_threads, thread_stats(server.pid), args.swaps + 2)
        for name, t in threads.items():
            idle_share = idle_by_name.get(name, {"cpu_us": 0, "switches": 0})
            t["cpu_us"] = max(0.0, t["cpu_us"] - idle_share["cpu_us"])
            t["switches"] = max(0.0, t["switches"] - idle_share["switches"])
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    first, steady = costs[:2], costs[2:]
    us = lambda ns: ns / 1000
    stages = {}
    for r in replies[2:]:
        for k, v in r.get("stages_ms", {}).items():
            stages.setdefault(k, []).append(v * 1000)
    summary = {
        "swaps": len(steady),
        "cpu_us_p50": us(statistics.median(steady)),
        "cpu_us_p90": us(percentile(steady, 90)),
        "cpu_us_p99": us(percentile(steady, 99)),
        "cpu_us_mean": us(statistics.mean(steady)),
        "first_two_cpu_us": [us(c) for c in first],
        "idle_us_per_gap": us(idle_ns),
        "took_us_p50": statistics.median(r["took_ms"] for r in replies[2:]) * 1000,
        "stages_us_p50": {k: statistics.median(v) for k, v in stages.items()},
        "preflight_remembered": sum(1 for r in replies[2:] if r.get("preflight_remembered")),
        "threads": dict(sorted(threads.items(), key=lambda kv: -kv[1]["cpu_us"])),
    }
    print(json.dumps(summary, indent=2))
    machine = {}
    for field in ("commit", "cpu", "cores", "kernel", "load", "date"):
        machine[field] = subprocess.check_output([sys.executable, os.path.join(os.path.dirname(__file__), "machine.py"),
                                                  field]).decode().strip()
    command = f"scripts/http_swap_cpu.py {args.build} --swaps {args.swaps} --gap {args.gap}"
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"command": command, **machine}, "summary": summary,
                       "cpu_ns_per_swap": costs}, f, indent=2)
    if args.md:
        lines = [
            "# hotswap-httpd: server CPU per admin swap", "",
            f"`{command}` at commit `{machine['commit']}`, {machine['date']}, {machine['cpu']} ({machine['cores']} cores), "
            f"load average {machine['load']} at the end (other work shared the machine).", "",
            "How: the server's process CPU clock (all threads, exited ones included, ns) read from outside before each "
            "swap; one swap costs the difference to the next reading, minus the idle server's CPU over one gap "
            f"({summary['idle_us_per_gap']:.0f} us). It includes the admin request, the read and hash, the checks, the "
            "shadow copy, dlopen, startup, publish, and the replaced version's shutdown and dlclose. The first load of "
            "each build (with its preflight child) is shown apart.", "",
            "| swaps | CPU p50 us | p90 us | p99 us | mean us | first two (preflight) us | request took p50 us |",
            "|---:|---:|---:|---:|---:|---|---:|",
            f"| {summary['swaps']} | {summary['cpu_us_p50']:.0f} | {summary['cpu_us_p90']:.0f} | {summary['cpu_us_p99']:.0f} | "
            f"{summary['cpu_us_mean']:.0f} | {', '.join(f'{c:.0f}' for c in summary['first_two_cpu_us'])} | "
            f"{summary['took_us_p50']:.0f} |", "",
            "Stages of the request (wall time, p50 us, from the swap's reply): " +
            ", ".join(f"{k} {v:.0f}" for k, v in summary["stages_us_p50"].items()) + ".", "",
            "Where the CPU goes, by thread (mean per swap, less each thread's idle share; context switches "
            "per swap beside): " +
            ", ".join(f"{name} {t['cpu_us']:.0f} us ({t['switches']:.1f})" for name, t in summary["threads"].items()
                      if t["cpu_us"] >= 1) + ".", "",
        ]
        with open(args.md, "w") as f:
            f.write("\n".join(lines))


if __name__ == "__main__":
    main()
