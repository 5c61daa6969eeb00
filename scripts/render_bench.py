#!/usr/bin/env python3
"""Render hotswap-bench-kernel's JSON output as a markdown report.

Usage: scripts/render_bench.py [results/bench-kernel.json] [results/bench-kernel.md]

Standard library only. Every number in the output comes from the JSON: medians
across repetitions (Google Benchmark's `median` aggregate; a run without
repetitions is used as is). Caller-side rows get a ratio against the plain
virtual call measured in the same run at the same thread count; writer-side
rows show the percentiles the benchmarks record themselves. Hand-written notes
are appended from results/bench-kernel.notes.md when that file exists.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict

FLOOR = "call/virtual_raw"
SLOT = "call/slot/epoch_membarrier"

# What each row is, in the order the tables show them.
CALL_ROWS = [
    ("call/virtual_raw", "plain virtual call through a raw pointer (the floor)"),
    ("call/atomic_acquire", "atomic acquire load + call (unsafe floor: old versions must leak)"),
    ("call/slot/epoch_membarrier", "**slot call, hotswap::domain, grace_mode::membarrier** (held reader)"),
    ("call/slot/epoch_fence", "slot call, hotswap::domain, grace_mode::fence (held reader)"),
    ("call/slot/qsbr", "slot call, hotswap::qsbr_domain (held reader; the thread announces from its loop)"),
    ("call/slot/cds_urcu", "slot call, cds_urcu_domain (held reader)"),
    ("call/slot/shared_mutex", "slot call, shared_mutex_domain (held reader)"),
    ("call/slot_tl_lookup/epoch_membarrier", "slot call, default domain, thread_local reader lookup per call"),
    ("call/slot_noinline/epoch_membarrier", "slot call through the out-of-line copy (`hotswap_bench_slot_call`)"),
    ("call/virtual_noinline", "virtual call through an out-of-line function (`hotswap_bench_virtual_call`)"),
    ("call/liburcu_memb", "liburcu memb read section (`_LGPL_SOURCE`, inlined)"),
    ("call/cds_urcu_gpb", "libcds URCU general_buffered read section"),
    ("call/cds_hp", "libcds hazard-pointer Guard::protect()"),
    ("call/atomic_shared_ptr", "std::atomic<std::shared_ptr<T>> load + call"),
    ("call/atomic_load_shared_ptr", "std::atomic_load(&shared_ptr) + call"),
    ("call/mutex", "std::mutex lock + call"),
    ("call/shared_mutex", "std::shared_mutex shared lock + call"),
]
PIN_ROWS = [
    ("pin/pinned_call/epoch_membarrier", "call through a pin held across calls"),
    ("pin/pin_call/epoch_membarrier", "take a pin, call through it, drop it"),
    ("pin/create_drop/epoch_membarrier", "pin create + drop (default shards: one per hardware thread)"),
    ("pin/create_drop/epoch_membarrier_shards64", "pin create + drop, slot_options::pin_shards = 64"),
    ("pin/shared_atomic_counter", "one shared std::atomic counter, increment + decrement"),
]
WRITER_ROWS = [
    ("writer/synchronize/epoch_membarrier", "synchronize(), hotswap::domain membarrier, busy caller"),
    ("writer/synchronize/epoch_membarrier+idle_thread", "same, plus one registered thread that sleeps"),
    ("writer/synchronize/epoch_membarrier+idle_thread+membarrier_after_2us",
     "same, idle thread, domain_options::membarrier_after = 2 us"),
    ("writer/synchronize/epoch_membarrier+exited_thread", "same, plus one registered thread that has exited"),
    ("writer/synchronize/epoch_fence", "synchronize(), hotswap::domain fence, busy caller"),
    ("writer/synchronize/qsbr+caller_announcing_every_1000_calls",
     "synchronize(), hotswap::qsbr_domain, busy caller announcing every 1,000 calls"),
    ("writer/synchronize/cds_urcu", "synchronize(), cds_urcu_domain, busy caller"),
    ("writer/synchronize/liburcu_memb", "liburcu `urcu_memb_synchronize_rcu()`, busy caller"),
    ("writer/retire_to_deleter/epoch_membarrier", "retire() to deleter run, hotswap::domain membarrier, busy caller"),
    ("writer/retire_to_deleter/liburcu_call_rcu", "liburcu `urcu_memb_call_rcu()` to callback run, busy caller"),
]
PUBLISH_ROWS = [
    ("writer/publish/epoch_membarrier", "publish(), background reclaimer (default)"),
    ("writer/publish/epoch_membarrier_manual_reclaim", "publish(), reclaim_mode::manual, poll() every 64 publishes"),
]
# Ratios the issue quotes for the peers (measured earlier on this machine).
ISSUE_RATIOS = {
    "call/liburcu_memb": 1.21,
    "call/cds_urcu_gpb": 5.3,
    "call/cds_hp": 6.4,
    "call/atomic_shared_ptr": 16.0,
}

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def split_name(run_name: str) -> tuple[str, int]:
    """'call/slot/x/real_time/threads:2' -> ('call/slot/x', 2)."""
    threads = 1
    m = re.search(r"/threads:(\d+)$", run_name)
    if m:
        threads = int(m.group(1))
    base = re.sub(r"(/(real_time|manual_time|process_time|threads:\d+|iterations:\d+|repeats:\d+|min_time:[^/]+))+$",
                  "", run_name)
    return base, threads


def load(path: str):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    stats: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    singles: dict[tuple[str, int], dict] = {}
    for b in data.get("benchmarks", []):
        key = split_name(b.get("run_name", b["name"]))
        if b.get("run_type") == "aggregate":
            stats[key][b["aggregate_name"]] = b
        elif b.get("error_occurred"):
            stats[key]["error"] = b
        else:
            singles[key] = b  # a run without repetitions
    for key, b in singles.items():
        stats[key].setdefault("median", b)
    return data.get("context", {}), stats


def ns(entry: dict) -> float:
    return entry["real_time"] * UNIT_NS[entry.get("time_unit", "ns")]


def fmt_ns(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} ms"
    if x >= 1e3:
        return f"{x / 1e3:.2f} us"
    return f"{x:.2f} ns"


def fmt_us(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x / 1000:.2f} ms"
    if x >= 10:
        return f"{x:.0f} us"
    return f"{x:.2f} us"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


class Report:
    def __init__(self, context: dict, stats: dict, source: str):
        self.source = source
        self.context = context
        self.stats = stats

    def median_ns(self, base: str, threads: int) -> float | None:
        e = self.stats.get((base, threads), {}).get("median")
        return None if e is None else ns(e)

    def cv(self, base: str, threads: int) -> float | None:
        e = self.stats.get((base, threads), {}).get("cv")
        return None if e is None else e["real_time"]  # cv is a fraction, unitless

    def counter(self, base: str, name: str) -> float | None:
        e = self.stats.get((base, 1), {}).get("median")
        return None if e is None or name not in e else float(e[name])

    def ratio(self, base: str, threads: int) -> float | None:
        t, floor = self.median_ns(base, threads), self.median_ns(FLOOR, threads)
        return None if t is None or not floor else t / floor

    def scaling(self, base: str) -> float | None:
        t1, t2 = self.median_ns(base, 1), self.median_ns(base, 2)
        return None if t1 is None or not t2 else t1 / t2

    # ---- tables ----------------------------------------------------------

    def caller_table(self, rows) -> list[str]:
        out = [
            "| variant | what | 1 thread: ns/op | vs virtual call | 2 threads: ns/op (aggregate) | vs virtual call"
            " | 2-thread throughput / 1-thread | issue's ratio | cv 1T / 2T |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for base, what in rows:
            if not any(k[0] == base for k in self.stats):
                continue
            t1, t2 = self.median_ns(base, 1), self.median_ns(base, 2)
            cv1, cv2 = self.cv(base, 1), self.cv(base, 2)
            cvs = " / ".join("-" if c is None else f"{100 * c:.0f}%" for c in (cv1, cv2))
            issue = ISSUE_RATIOS.get(base)
            out.append(
                f"| `{base}` | {what} | {fmt_ns(t1)} | {fmt_ratio(self.ratio(base, 1))} | "
                f"{fmt_ns(t2) if t2 is not None else '-'} | "
                f"{fmt_ratio(self.ratio(base, 2)) if t2 is not None else '-'} | "
                f"{fmt_ratio(self.scaling(base)) if t2 is not None else '-'} | "
                f"{fmt_ratio(issue) if issue else ''} | {cvs} |")
        return out

    def writer_table(self) -> list[str]:
        out = [
            "| variant | what | p50 | p99 | p99.9 | max | mean | samples per repetition | membarrier() calls |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for base, what in WRITER_ROWS:
            if (base, 1) not in self.stats:
                continue
            mean = self.median_ns(base, 1)
            mb = self.counter(base, "membarriers")
            samples = self.counter(base, "samples")
            out.append(
                f"| `{base}` | {what} | {fmt_us(self.counter(base, 'p50_us'))} | "
                f"{fmt_us(self.counter(base, 'p99_us'))} | {fmt_us(self.counter(base, 'p999_us'))} | "
                f"{fmt_us(self.counter(base, 'max_us'))} | {fmt_ns(mean)} | "
                f"{'' if samples is None else f'{samples:.0f}'} | {'' if mb is None else f'{mb:.0f}'} |")
        return out

    def publish_table(self) -> list[str]:
        out = ["| variant | what | ns per publish (mean of a run, median of runs) | refused |", "|---|---|---:|---:|"]
        for base, what in PUBLISH_ROWS:
            if (base, 1) not in self.stats:
                continue
            refused = self.counter(base, "refused")
            out.append(f"| `{base}` | {what} | {fmt_ns(self.median_ns(base, 1))} | "
                       f"{'' if refused is None else f'{refused:.0f}'} |")
        return out

    def targets(self) -> list[str]:
        def verdict(ok: bool | None) -> str:
            return "n/a" if ok is None else ("**met**" if ok else "**missed**")

        r1 = self.ratio(SLOT, 1)
        sc = self.scaling(SLOT)
        sync = "writer/synchronize/epoch_membarrier"
        p50, p99 = self.counter(sync, "p50_us"), self.counter(sync, "p99_us")
        ret = "writer/retire_to_deleter/epoch_membarrier"
        rp99 = self.counter(ret, "p99_us")
        urcu_sync = self.counter("writer/synchronize/liburcu_memb", "p50_us")
        urcu_ret = self.counter("writer/retire_to_deleter/liburcu_call_rcu", "p99_us")
        urcu_ratio = self.ratio("call/liburcu_memb", 1)
        rows = [
            ("slot call <= 1.10x the plain virtual call (1 thread)", fmt_ratio(r1),
             f"liburcu memb {fmt_ratio(urcu_ratio)}", verdict(None if r1 is None else r1 <= 1.10)),
            ("2-thread aggregate throughput >= 1.8x one thread (slot call)", fmt_ratio(sc),
             f"floor {fmt_ratio(self.scaling(FLOOR))}", verdict(None if sc is None else sc >= 1.8)),
            ("synchronize() p50 <= 2 us with a busy caller", fmt_us(p50), f"liburcu memb {fmt_us(urcu_sync)}",
             verdict(None if p50 is None else p50 <= 2)),
            ("synchronize() p99 <= 20 us with a busy caller", fmt_us(p99),
             f"liburcu memb {fmt_us(self.counter('writer/synchronize/liburcu_memb', 'p99_us'))}",
             verdict(None if p99 is None else p99 <= 20)),
            ("retire-to-deleter p99 <= 1 ms", fmt_us(rp99), f"liburcu call_rcu {fmt_us(urcu_ret)}",
             verdict(None if rp99 is None else rp99 <= 1000)),
        ]
        out = ["| target (issue #2) | measured | peer, same run | verdict |", "|---|---:|---:|---|"]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        return out

    def context_lines(self) -> list[str]:
        c = self.context
        keys = [
            ("command", "command"), ("commit", "commit"), ("dirty", "uncommitted changes in the tree"),
            ("cpu", "CPU"), ("cores", "cores"), ("kernel", "kernel"), ("compiler", "compiler"),
            ("compiled_with", "compiled with"),
            ("build_type", "build type"), ("date", "date"), ("host_name", "host"),
            ("default_membarrier_after_us", "domain_options::membarrier_after default (us)"),
            ("default_reclaim_window_us", "domain_options::reclaim_window default (us)"),
            ("idle_before", "idle before the run"), ("loadavg_before", "load average before"),
            ("loadavg_after", "load average after"), ("run_seconds", "measurement wall time (s)"),
            ("library_build_type", "libbenchmark build type"),
        ]
        out = []
        for k, label in keys:
            if k in c and c[k] != "":
                v = c[k]
                out.append(f"- {label}: `{v}`" if k == "command" else f"- {label}: {v}")
        if "load_avg" in c:
            out.append(f"- load average at start (Google Benchmark): {', '.join(f'{x:.2f}' for x in c['load_avg'])}")
        return out

    def render(self, notes: str | None) -> str:
        lines = ["# hotswap kernel benchmark", ""]
        lines += [f"Generated by `scripts/render_bench.py` from `{self.source}`; do not edit by hand.", ""]
        lines += self.context_lines() + [""]
        lines += ["Times are medians over the repetitions. `ns/op` is wall-clock time per operation; with 2 threads",
                  "it is aggregate (two threads doing 1 ns calls each in parallel show 0.5 ns), so the"
                  " throughput column is simply the 1-thread time over the 2-thread time (2.00x = perfect)."
                  " Ratios are against `call/virtual_raw` at the same thread count, from the same run.", ""]
        lines += ["## Targets", ""] + self.targets() + [""]
        lines += ["## Caller side: one call per operation", ""] + self.caller_table(CALL_ROWS) + [""]
        lines += ["## Pins", ""] + self.caller_table(PIN_ROWS) + [""]
        lines += ["## Writer side: latency percentiles", "",
                  "Percentiles are recorded by the benchmark itself, one sample per operation, and the table"
                  " shows the median of each percentile over the repetitions.", ""]
        lines += self.writer_table() + [""]
        lines += ["## Writer side: publish()", ""] + self.publish_table() + [""]
        errors = [f"- `{k[0]}` threads:{k[1]}: {v['error'].get('error_message', '')}"
                  for k, v in sorted(self.stats.items()) if "error" in v]
        if errors:
            lines += ["## Errors", ""] + errors + [""]
        if notes:
            lines += [notes.rstrip(), ""]
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    src = argv[1] if len(argv) > 1 else os.path.join(root, "results", "bench-kernel.json")
    dst = argv[2] if len(argv) > 2 else os.path.join(root, "results", "bench-kernel.md")
    notes_path = os.path.join(os.path.dirname(dst), "bench-kernel.notes.md")
    notes = None
    if os.path.exists(notes_path):
        with open(notes_path, encoding="utf-8") as f:
            notes = f.read()
    context, stats = load(src)
    text = Report(context, stats, os.path.relpath(src, root)).render(notes)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
