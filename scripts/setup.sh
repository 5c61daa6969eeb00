#!/usr/bin/env bash
# Installs what hotswap needs from Debian 12 packages. Idempotent; run as root
# (or with sudo). Skips apt entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config g++ clang libclang-rt-14-dev
  git python3                                   # scripts/ (results.py, machine.py, renderers)
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and benchmarks
  libcli11-dev                                  # command lines (hotswap-stress, -httpd, -config)
  libcds-dev liburcu-dev libmimalloc-dev        # policies and baselines
  spin relacy-dev                               # proofs (tests/model, tests/relacy)
  gnuplot-nox                                   # plots in results/
  libssl-dev                                    # SHA-256 (modules)
  libxxhash-dev                                 # XXH64 (watch; header only, XXH_INLINE_ALL)
  libboost1.81-dev nlohmann-json3-dev           # adapters/http (Beast/Asio; the json example app), stress report
  libtomlplusplus-dev                           # adapters/config
  libsqlite3-dev sqlite3                        # adapters/db (and its shell test)
  postgresql-15 postgresql-server-dev-15 libpq-dev  # adapters/pg (a real server in tests/pg)
  wrk nginx-light curl                          # side-by-side HTTP runs (scripts/, stress http)
  etcd-server etcd-client                       # adapters/fleet (a real 3-member cluster in tests/fleet)
  haproxy                                       # hitless reload beside ours (stress upgrade)
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
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: missing ${missing[*]}; run this as root (no sudo here)" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
