#!/usr/bin/env bash
# Installs what hotswap needs from Debian 12 packages. Idempotent; run as root
# (or with sudo). Skips apt entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config g++ clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and benchmarks
  libcds-dev liburcu-dev libmimalloc-dev        # policies and baselines
  spin                                          # model checking (tests/model)
  gnuplot-nox                                   # plots in results/
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
