#!/usr/bin/env bash
# Builds and runs the whole test suite (GoogleTest under CTest, the packaging
# check and the protocol model). Usage: scripts/test.sh [plain|thread|address]
#   plain    optimised build with assertions on (no NDEBUG; the default); line
#            tables only (-g1), as in the sanitizer builds: enough for backtraces
#   thread   ThreadSanitizer build
#   address  AddressSanitizer + UndefinedBehaviorSanitizer build
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-plain}
case "$flavour" in
  plain)   dir=build/test;    extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1") ;;
  thread)  dir=build/tsan;    extra=(-DCMAKE_BUILD_TYPE=Debug -DHOTSWAP_SANITIZE=thread) ;;
  address) dir=build/asan;    extra=(-DCMAKE_BUILD_TYPE=Debug -DHOTSWAP_SANITIZE=address) ;;
  *) echo "usage: $0 [plain|thread|address]" >&2; exit 2 ;;
esac
bash scripts/setup.sh
jobs=$(nproc)
cmake -S . -B "$dir" "${extra[@]}" -DHOTSWAP_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$jobs"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"
ctest --test-dir "$dir" --output-on-failure -j "$jobs"
