#!/usr/bin/env bash
# Model-check tests/model/grace.pml with spin: the correct grace-period
# protocol (membarrier mode and fence mode) must verify, every mutant must be
# rejected with a counter-example.  See README.md.
#
#   tests/model/run.sh            # JOBS=2 configurations at a time
#   JOBS=1 tests/model/run.sh
#
# All spin/pan files are made in a temporary directory that is removed on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
model="$here/grace.pml"
JOBS="${JOBS:-2}"
DEPTH=200000          # pan -m: far above the deepest path (~10k); checked below

if ! command -v spin >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "spin not found: installing the Debian package 'spin'" >&2
    apt-get update -qq >&2 && apt-get install -y -qq spin >&2
  else
    echo "spin not found (Debian/Ubuntu: apt-get install spin)" >&2
    exit 1
  fi
fi
command -v gcc >/dev/null 2>&1 || { echo "gcc not found" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/hotswap-model.XXXXXX")"
keep=0   # set to 1 when something failed: the work directory is kept for the trails
trap '[ "$keep" = 1 ] || rm -rf "$work"' EXIT

# name | kind (safety|liveness) | spin -D flags | expect (verify|reject)
# The SLEEP_WAIT runs are safety runs whose readers stop after NSECT sections:
# a lost wake-up leaves the writer asleep for ever, which pan reports as an
# invalid end state (its mutants expect that instead of an assertion).
# The correct configurations enable record release/claim (RECLAIM_RECORDS).
# Reader 0 may also never release, so they cover the fixed-record protocol too.
# The safety runs add RECHECK_IN_USE (the writer MAY re-load in_use of a
# pending record), a superset of the C++ (which never re-checks): one run
# proves both variants.
configs=(
  "model membarrier + release/claim|safety|-DRECLAIM_RECORDS -DRECHECK_IN_USE|verify"
  "model fence + release/claim|safety|-DRECLAIM_RECORDS -DRECHECK_IN_USE -DFENCE_MODE|verify"
  "liveness membarrier + release/claim|liveness|-DCHECK_LIVENESS -DRECLAIM_RECORDS|verify"
  "liveness fence + release/claim|liveness|-DCHECK_LIVENESS -DRECLAIM_RECORDS -DFENCE_MODE|verify"
  "mutant trust-inactive|safety|-DMUTANT_TRUST_INACTIVE|reject"
  "mutant load-before-announce|safety|-DMUTANT_LOAD_BEFORE_ANNOUNCE|reject"
  "mutant ignore-old-active|safety|-DMUTANT_IGNORE_OLD_ACTIVE|reject"
  "mutant fence load-before-announce|safety|-DFENCE_MODE -DMUTANT_LOAD_BEFORE_ANNOUNCE|reject"
  "mutant fence ignore-old-active|safety|-DFENCE_MODE -DMUTANT_IGNORE_OLD_ACTIVE|reject"
  "mutant fence no-reader-fence|safety|-DFENCE_MODE -DMUTANT_NO_READER_FENCE|reject"
  "mutant wait-any-active (liveness)|liveness|-DCHECK_LIVENESS -DMUTANT_WAIT_ANY_ACTIVE|reject"
  "mutant claim-without-fence|safety|-DRECLAIM_RECORDS -DMUTANT_CLAIM_WITHOUT_FENCE|reject"
  "model membarrier + sleeping wait|safety|-DSLEEP_WAIT|verify"
  "mutant sleep flag-after-barrier|safety|-DSLEEP_WAIT -DMUTANT_FLAG_AFTER_BARRIER|reject"
  "mutant sleep seq-after-recheck|safety|-DSLEEP_WAIT -DMUTANT_SEQ_AFTER_RECHECK|reject"
  "model membarrier + new record|safety|-DNEW_RECORD|verify"
  "model fence + new record|safety|-DNEW_RECORD -DFENCE_MODE|verify"
  "mutant link-without-barrier|safety|-DNEW_RECORD -DMUTANT_LINK_WITHOUT_BARRIER|reject"
)

# Run configuration $1 (index into configs); writes $work/$1.line (the report
# line) and $work/$1.ok (exists iff the configuration passed).  Never fails.
run_config() {
  local i="$1" name kind flags expect dir out
  IFS='|' read -r name kind flags expect <<<"${configs[$i]}"
  dir="$work/c$i"; mkdir -p "$dir"; out="$dir/pan.out"
  local line
  line="$(
    set -e
    cd "$dir"
    cp "$model" grace.pml
    # shellcheck disable=SC2086
    if ! spin -a $flags grace.pml >spin.out 2>&1; then
      echo "FAIL (spin -a failed: $(tail -1 spin.out))"; exit 0
    fi
    if [ "$kind" = safety ]; then
      cflags="-DSAFETY -DNOCLAIM"; panflags=""
    else
      # 5 processes + init + never claim: weak fairness needs NFAIR=3
      cflags="-DNFAIR=3"; panflags="-a -f -w26"
    fi
    # shellcheck disable=SC2086
    if ! gcc -O2 -w $cflags -o pan pan.c >gcc.out 2>&1; then
      echo "FAIL (gcc failed: $(tail -1 gcc.out))"; exit 0
    fi
    # shellcheck disable=SC2086
    ./pan -m"$DEPTH" $panflags >"$out" 2>&1 || true

    errors="$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | tail -1)"
    states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | tail -1)"
    secs="$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$out" | tail -1)"
    if [ -z "$errors" ]; then
      echo "FAIL (pan printed no result: $(tail -1 "$out"))"; exit 0
    fi
    if grep -q "max search depth too small" "$out"; then
      echo "FAIL (search truncated: max search depth too small)"; exit 0
    fi
    if [ "$expect" = verify ]; then
      if [ "$errors" != 0 ]; then
        what="$(grep -m1 -E '^pan:[0-9]+:' "$out" || true)"
        echo "FAIL (errors: $errors; $what; trail: $dir/grace.pml.trail, replay: cd $dir && spin -t -p $flags grace.pml)"
        exit 0
      fi
      if ! grep -q "^Full statespace search" "$out"; then
        echo "FAIL (not a full state-space search)"; exit 0
      fi
      if grep -qi "search not completed" "$out"; then
        echo "FAIL (search not completed)"; exit 0
      fi
      echo "PASS (states=$states, time=${secs}s)"
      : >"$dir/ok"
    else
      if [ "$errors" -lt 1 ]; then
        echo "FAIL (mutant NOT caught: errors: 0, states=$states)"; exit 0
      fi
      if [ "$kind" = liveness ]; then want="acceptance cycle"
      elif [[ "$flags" == *SLEEP_WAIT* ]]; then want="invalid end state"
      else want="assertion violated"; fi
      if ! grep -q "$want" "$out"; then
        echo "FAIL (counter-example is not a '$want': $(grep -m1 -E '^pan:[0-9]+:' "$out" || true))"
        exit 0
      fi
      # the trail must replay in spin's simulator
      # shellcheck disable=SC2086
      spin -t $flags grace.pml >replay.out 2>&1 || true
      if [ "$want" = "invalid end state" ] && ! grep -E "proc +[0-9]+ \(Writer" replay.out | grep -vq "valid end state"; then
        echo "FAIL (trail did not replay to the writer asleep for ever)"; exit 0
      fi
      if [ "$want" = "assertion violated" ] && ! grep -q "assertion violated" replay.out; then
        echo "FAIL (trail did not replay to the assertion violation)"; exit 0
      fi
      if [ "$kind" = liveness ] && ! grep -q "START OF CYCLE" replay.out; then
        echo "FAIL (trail did not replay to an acceptance cycle)"; exit 0
      fi
      depth="$(grep -m1 -oE '\(at depth [0-9]+\)' "$out" || true)"
      echo "PASS (counter-example found, as expected: $want $depth; states=$states, time=${secs}s)"
      : >"$dir/ok"
    fi
  )" || line="FAIL (internal error)"
  printf '%s: %s\n' "$name" "$line" >"$work/$i.line"
  if [ -e "$dir/ok" ]; then : >"$work/$i.ok"; fi
  return 0
}

start=$(date +%s.%N)
# Launch the longest configuration (liveness membarrier, index 2) first.
order=(2)
for i in "${!configs[@]}"; do [ "$i" = 2 ] || order+=("$i"); done
running=0
for i in "${order[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  run_config "$i" &
  running=$((running + 1))
done
wait || true
end=$(date +%s.%N)

passed=0; failed=0
for i in "${!configs[@]}"; do
  cat "$work/$i.line"
  if [ -e "$work/$i.ok" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
awk -v a="$start" -v b="$end" -v j="$JOBS" 'BEGIN { printf "total wall time: %.1fs (JOBS=%s)\n", b - a, j }'
if [ "$failed" -ne 0 ]; then keep=1; echo "pan outputs and trails kept in $work"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
