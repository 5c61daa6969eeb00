#!/usr/bin/env python3
"""The machine and tree a measurement ran on, collected in one place.

Every measurement script records the same facts next to its numbers (commit,
uncommitted files, CPU, cores, kernel, compiler, load average, date), so a
reader can tell two runs apart and a renderer can print them. They all take
them from here instead of each reading /proc its own way.

  scripts/machine.py                 one JSON object with every field
  scripts/machine.py --shell         machine_<field>=<quoted value> lines, for
                                     eval "$(scripts/machine.py --shell)"
  scripts/machine.py --benchmark-context   the same facts as Google Benchmark
                                     --benchmark_context=KEY=VALUE arguments, one
                                     per line (',' and '=' in values replaced)
  scripts/machine.py load            one field, plain (any field name)
  scripts/machine.py --compiler PATH ...   the compiler to name (default c++)

Fields: commit (full hash, or "unknown" outside a git checkout), uncommitted
(tracked files changed but not committed), cpu, cores, kernel, compiler,
load (1/5/15-minute load averages), date (UTC, ISO 8601).
Python scripts import machine.facts() instead.
"""
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def facts(compiler="c++"):
    status = _run("git", "status", "--porcelain", "--untracked-files=no")
    version = _run(compiler, "--version")
    return {
        "commit": _run("git", "rev-parse", "HEAD") or "unknown",
        "uncommitted": len(status.splitlines()),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "compiler": version.splitlines()[0] if version else compiler,
        "load": load(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main(argv):
    compiler = "c++"
    if "--compiler" in argv:
        i = argv.index("--compiler")
        compiler = argv[i + 1]
        del argv[i:i + 2]
    if argv == ["load"]:  # the one field read twice per run: skip git and the compiler
        print(load())
        return 0
    f = facts(compiler)
    if not argv:
        print(json.dumps(f))
    elif argv == ["--shell"]:
        for k, v in f.items():
            print(f"machine_{k}={shlex.quote(str(v))}")
    elif argv == ["--benchmark-context"]:
        # Google Benchmark splits --benchmark_context on ',' and '='.
        keys = {"commit": "commit", "uncommitted": "uncommitted_files", "cpu": "cpu", "cores": "cores",
                "kernel": "kernel", "compiler": "compiler", "date": "date", "load": "loadavg_before"}
        for k, name in keys.items():
            value = str(f[k]).translate(str.maketrans(",=\n", ";: ")).rstrip()
            print(f"--benchmark_context={name}={value}")
    elif len(argv) == 1 and argv[0] in f:
        print(f[argv[0]])
    else:
        print(f"usage: {sys.argv[0]} [--compiler PATH] [--shell | --benchmark-context | FIELD]; fields: {' '.join(f)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
