#!/usr/bin/env bash
# The reference experiment of hotswap-stress (issue #4): every backend, same
# workload, same binary, with no swaps and with swaps at 1 kHz, 10 kHz and flat
# out; caller latency (every call timed) and aggregate throughput (batches
# timed). Writes
#   results/stress-reference.json   both runs in full (histograms included),
#                                   with command, commit, CPU, cores, compiler, date
#   results/stress-reference.md     the tables, and the targets checked
#   results/stress-latency.png      caller latency percentiles per backend
#   results/stress-swaprate.png     throughput and p99.9 against swap rate
# Measurements run under `flock /tmp/hotswap-measure.lock`, so they never
# overlap another engineer's. Takes about 4 minutes.
#
#   results/stress-reference.txt    the rig's own output (tables, SUMMARY lines)
#                                   and the run's settings, from which
#                                   --replot redraws the .md and .png files
#
# Usage: scripts/stress.sh [--quick | --replot]
#   --quick   0.3 s per run, one repetition: a smoke test of the script
#             (numbers meaningless)
#   --replot  no measurement: regenerate the .md and .png from the .txt
# Environment: STRESS_BUILD_DIR (default build-stress/reference),
#              STRESS_OUT (default results)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each configuration runs several times, interleaved, and the tables report
# the repetition whose callers got the most CPU (the least disturbed by other
# work: the machine is shared); every repetition is in the JSON, and the
# violations of all of them count.
lat_s=1.2; lat_n=3      # latency sweep: seconds per run, repetitions
tput_s=1; tput_n=2      # each throughput sweep
warmup=0.2
mode=measure
case "${1:-}" in
  "") ;;
  --quick) lat_s=0.3; lat_n=1; tput_s=0.3; tput_n=1; warmup=0.05 ;;
  --replot) mode=replot ;;
  *) echo "usage: $0 [--quick | --replot]" >&2; exit 2 ;;
esac
build=${STRESS_BUILD_DIR:-build-stress/reference}
out=${STRESS_OUT:-results}
lock=/tmp/hotswap-measure.lock
record="$out/stress-reference.txt"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

if [ "$mode" = measure ]; then

# Release build of the rig only (other suites' CMake files are not needed).
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_SANITIZE= \
  -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=ON >/dev/null
cmake --build "$build" --target hotswap-stress -j "$(nproc)" >/dev/null
rig="$build/stress/hotswap-stress"

eval "$(python3 scripts/machine.py --shell)"   # machine_commit, machine_cpu, ...
commit=$machine_commit dirty=$machine_uncommitted cpu=$machine_cpu compiler=$machine_compiler
kernel=$machine_kernel cores=$machine_cores
rates=off,1000,100,0   # microseconds between swaps: none, 1 kHz, 10 kHz, flat out
common=(--backend all --swap-interval "$rates" --warmup "$warmup" --no-progress --pick least-disturbed
        --meta "git_commit=$commit" --meta "git_uncommitted_files=$dirty" --meta "script=scripts/stress.sh")

# One caller and one swapper: on 2 cores the reclaimer thread makes three.
lat_cmd=("$rig" "${common[@]}" --mode latency --seconds "$lat_s" --repeat "$lat_n" --readers 1 --swappers 1
         --json "$tmp/latency.json")
# Throughput twice: one caller (a CPU is left for the swapper and the
# reclaimer) and two callers (every CPU busy calling: writers must take their
# CPU time from the callers, and grace periods wait for preempted callers).
tput1_cmd=("$rig" "${common[@]}" --mode throughput --seconds "$tput_s" --repeat "$tput_n" --readers 1 --swappers 1
           --json "$tmp/throughput1.json")
tput_cmd=("$rig" "${common[@]}" --mode throughput --seconds "$tput_s" --repeat "$tput_n" --readers 2 --swappers 1
          --json "$tmp/throughput.json")
pin_cmd=("$rig" --backend all --swap-interval 100 --policy pinned --session 100 --seconds "$lat_s"
         --repeat "$lat_n" --pick least-disturbed --warmup "$warmup" --no-progress --readers 1 --swappers 1
         --json "$tmp/pinned.json"
         --meta "git_commit=$commit")

echo "stress: waiting for $lock"
{
  flock 9
  echo "stress: measuring (lock held)"
  start=$(date +%s)
  date=$(python3 scripts/machine.py date)
  load_before=$(python3 scripts/machine.py load)
  "${lat_cmd[@]}" >"$tmp/latency.log"
  "${tput1_cmd[@]}" >"$tmp/throughput1.log"
  "${tput_cmd[@]}" >"$tmp/throughput.log"
  "${pin_cmd[@]}" >"$tmp/pinned.log"
  load_after=$(python3 scripts/machine.py load)
  elapsed=$(( $(date +%s) - start ))
} 9>"$lock"
for f in latency throughput1 throughput pinned; do
  tail -n 1 "$tmp/$f.log" | grep -Eq '^[0-9]+ passed, 0 failed, [0-9]+ skipped$' || { echo "stress: $f run FAILED verification"; status=1; }
done

# ---- JSON: both rig outputs, verbatim, under one roof ------------------------
quote() { printf '%s' "$*" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
{
  printf '{\n"experiment":"hotswap-stress reference: every backend, swaps off / 1 kHz / 10 kHz / flat out",\n'
  printf '"command":"scripts/stress.sh %s",\n' "$(quote "$*")"
  printf '"commands":{"latency":"%s","throughput_1_caller":"%s","throughput":"%s","pinned":"%s"},\n' \
    "$(quote "${lat_cmd[*]}")" "$(quote "${tput1_cmd[*]}")" "$(quote "${tput_cmd[*]}")" "$(quote "${pin_cmd[*]}")"
  printf '"git_commit":"%s","git_uncommitted_files":%s,\n' "$commit" "$dirty"
  printf '"cpu":"%s","cores":%s,"compiler":"%s","kernel":"%s",\n' "$(quote "$cpu")" "$cores" \
    "$(quote "$compiler")" "$kernel"
  printf '"date":"%s","wall_seconds":%s,\n' "$date" "$elapsed"
  printf '"loadavg_before":"%s","loadavg_after":"%s",\n' "$load_before" "$load_after"
  printf '"latency":'; cat "$tmp/latency.json"
  printf ',"throughput_1_caller":'; cat "$tmp/throughput1.json"
  printf ',"throughput":'; cat "$tmp/throughput.json"
  printf ',"pinned":'; cat "$tmp/pinned.json"
  printf '}\n'
} >"$out/stress-reference.json"

# ---- the record: settings and the rig's output, for --replot -----------------
show() { local a=("$@"); a[0]=${a[0]##*/}; printf '%s' "${a[*]}" | sed "s|$tmp/||g"; }
{
  echo "# scripts/stress.sh run record; \`scripts/stress.sh --replot\` redraws the .md and .png from it"
  for v in commit dirty cpu compiler kernel cores date elapsed load_before load_after lat_s lat_n tput_s tput_n warmup lock; do
    printf '# %s=%s\n' "$v" "${!v}"
  done
  printf '# lat_cmd=%s\n' "$(show "${lat_cmd[@]}")"
  printf '# tput1_cmd=%s\n' "$(show "${tput1_cmd[@]}")"
  printf '# tput_cmd=%s\n' "$(show "${tput_cmd[@]}")"
  printf '# pin_cmd=%s\n' "$(show "${pin_cmd[@]}")"
  for f in latency throughput1 throughput pinned; do echo "=== $f"; cat "$tmp/$f.log"; done
} >"$record"
fi

# ---- everything below reads only the record ----------------------------------
[ -f "$record" ] || { echo "stress: no $record; run scripts/stress.sh first" >&2; exit 1; }
get() { sed -n "s/^# $1=//p" "$record" | head -n 1; }
for v in commit dirty cpu compiler kernel cores date elapsed load_before load_after lat_s lat_n tput_s tput_n warmup lock \
         lat_cmd tput1_cmd tput_cmd pin_cmd; do
  printf -v "$v" '%s' "$(get "$v")"
done
awk -v dir="$tmp" '/^=== / { f = dir "/" $2 ".log"; next } f { print > f }' "$record"

# ---- tables and plot data, from the SUMMARY lines ---------------------------
# kv: turns "SUMMARY k=v k=v ..." into awk array f[k].
kv='function parse(line,   n, i, a, p) { delete f; n = split(line, a, " ");
      for (i = 2; i <= n; i++) { p = index(a[i], "="); f[substr(a[i], 1, p - 1)] = substr(a[i], p + 1) } }
    function rate(us) { return us == "off" ? "off" : us == "0" ? "max" : us == "1000" ? "1 kHz" : us == "100" ? "10 kHz" : us "us" }
    function ns(v) { v += 0; if (v < 0) return "-"; if (v < 1000) return sprintf("%d ns", v);
      if (v < 1e6) return sprintf("%.3g us", v / 1e3); return sprintf("%.3g ms", v / 1e6) }
    function mega(v) { return sprintf("%.1f M", (v + 0) / 1e6) }'

grep '^SUMMARY ' "$tmp/latency.log" >"$tmp/latency.sum"
grep '^SUMMARY ' "$tmp/throughput1.log" >"$tmp/throughput1.sum"
grep '^SUMMARY ' "$tmp/throughput.log" >"$tmp/throughput.sum"
grep '^SUMMARY ' "$tmp/pinned.log" >"$tmp/pinned.sum"

# latency.dat: one block per backend; rows p50..max, columns per swap rate.
awk "$kv"'
  { parse($0); b = f["backend"]; if (!(b in seen)) { seen[b] = 1; order[++nb] = b }
    r = rate(f["swap_interval_us"]); v[b, r, 1] = f["p50_ns"]; v[b, r, 2] = f["p99_ns"]; v[b, r, 3] = f["p999_ns"];
    v[b, r, 4] = f["p9999_ns"]; v[b, r, 5] = f["max_ns"] }
  END { split("p50 p99 p99.9 p99.99 max", q, " ");
    for (i = 1; i <= nb; i++) { b = order[i]; print "percentile \"no swaps\" \"1 kHz\" \"10 kHz\" \"flat out\"";
      for (k = 1; k <= 5; k++) print q[k], v[b, "off", k], v[b, "1 kHz", k], v[b, "10 kHz", k], v[b, "max", k];
      print ""; print "" }
    for (i = 1; i <= nb; i++) printf "%s%s", order[i], (i < nb ? " " : "\n") > "'"$tmp"'/backends.txt" }' \
  "$tmp/latency.sum" >"$tmp/latency.dat"

# swaprate.dat: one block per backend; rows per swap rate: throughput with 2
# callers and with 1 caller (M calls/s), p99.9 (ns), swaps/s.
awk "$kv"'
  FILENAME ~ /throughput1/ { parse($0); t1[f["backend"], rate(f["swap_interval_us"])] = f["calls_per_s"] / 1e6; next }
  FILENAME ~ /throughput/ { parse($0); t[f["backend"], rate(f["swap_interval_us"])] = f["calls_per_s"] / 1e6; next }
  { parse($0); b = f["backend"]; if (!(b in seen)) { seen[b] = 1; order[++nb] = b }
    r = rate(f["swap_interval_us"]); p[b, r] = f["p999_ns"]; s[b, r] = f["swaps_per_s"] }
  END { split("off|1 kHz|10 kHz|max", rs, "|"); split("no swaps|1 kHz|10 kHz|flat out", label, "|");
    for (i = 1; i <= nb; i++) { b = order[i]; print "rate throughput2_Mcalls_per_s p999_ns swaps_per_s throughput1_Mcalls_per_s";
      for (k = 1; k <= 4; k++) printf "\"%s\" %s %s %s %s\n", label[k], t[b, rs[k]], p[b, rs[k]], s[b, rs[k]], t1[b, rs[k]];
      print ""; print "" } }' \
  "$tmp/throughput1.sum" "$tmp/throughput.sum" "$tmp/latency.sum" >"$tmp/swaprate.dat"

gnuplot -e "datadir='$tmp'; outdir='$out'; backends='$(cat "$tmp/backends.txt")'" scripts/plot_stress.gp

# ---- markdown ----------------------------------------------------------------
md="$out/stress-reference.md"
{
  echo "# hotswap-stress reference run"
  echo
  echo "Generated by \`scripts/stress.sh\` from the rig's SUMMARY lines; do not edit by hand."
  echo "Full data (histograms included): [stress-reference.json](stress-reference.json); the rig's own output:"
  echo "[stress-reference.txt](stress-reference.txt)."
  echo
  echo "- commit \`$commit\` ($dirty uncommitted files), $date"
  echo "- $cpu, $cores cores, $kernel, $compiler"
  echo "- $(grep -m1 '^  timer:' "$tmp/latency.log" | sed 's/^  timer: *//')"
  echo "- memory scenario (a call reads one word of a 64-byte version); after ${warmup} s warm-up, latency and pinned runs measure ${lat_s} s, throughput runs ${tput_s} s"
  echo "- each configuration ran ${lat_n} times (throughput: ${tput_n}), interleaved; the tables show the repetition whose callers got the most CPU (*caller CPU*: CPU time the callers got / (callers x wall time); below 100 % when our writer threads or other work on this shared machine took it), except peak backlog (the peak of all repetitions) and violations (the sum of all). Every repetition is in the JSON."
  echo "- latency: \`$lat_cmd\`"
  echo "- throughput, 1 caller: \`$tput1_cmd\`"
  echo "- throughput, 2 callers: \`$tput_cmd\`"
  echo "- pinned: \`$pin_cmd\`"
  echo "- the four runs took ${elapsed} s under \`flock $lock\`; load average (1/5/15 min) $load_before before, $load_after after (a shared machine: other work may run meanwhile)"
  echo
  echo "![caller latency](stress-latency.png)"
  echo
  echo "![throughput and p99.9 against swap rate](stress-swaprate.png)"
  echo
  echo "## Caller latency, one caller, one swapper (every call timed)"
  echo
  echo "Latencies include the timer's own cost (see above). *after swap*: calls overlapping the"
  echo "window after a publish (min(100 us, interval/2)); *steady*: the others. *gp*: one grace period;"
  echo "*reclaim*: retire to the version's destructor; *backlog*: replaced versions not yet destroyed"
  echo "(peak / cap); *membarriers*: membarrier() calls that fence other CPUs."
  echo
  echo "| backend | swaps | caller CPU | swaps/s | calls/s | p50 | p99 | p99.9 | p99.99 | max | steady p99.9 | after-swap p99.9 | gp p50 | gp p99 | reclaim p99 | backlog | membarriers | refused | violations |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk "$kv"'{ parse($0); printf "| %s | %s | %.0f %% | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s | %s |\n",
    f["backend"], rate(f["swap_interval_us"]), 100 * f["caller_cpu_share"], f["swaps_per_s"], mega(f["calls_per_s"]), ns(f["p50_ns"]), ns(f["p99_ns"]),
    ns(f["p999_ns"]), ns(f["p9999_ns"]), ns(f["max_ns"]), ns(f["steady_p999_ns"]), ns(f["after_swap_p999_ns"]),
    ns(f["gp_p50_ns"]), ns(f["gp_p99_ns"]), ns(f["reclaim_p99_ns"]), f["peak_backlog"], (f["cap"] + 0 == 0 ? "-" : f["cap"]),
    (f["membarriers"] + 0 < 0 ? "-" : f["membarriers"]), f["refused"], f["violations"] }' "$tmp/latency.sum"
  echo
  for n in 1 2; do
    if [ $n = 1 ]; then sum="$tmp/throughput1.sum"; who="one caller, one swapper: a CPU is left for the writer side";
    else sum="$tmp/throughput.sum"; who="two callers, one swapper: every CPU is busy calling"; fi
    echo "## Aggregate throughput, $who (batches of 1024 calls timed)"
    echo
    echo "| backend | swaps | caller CPU | swaps/s | calls/s | % of no-swap | per-call mean p50 | p99.9 | gp p50 | gp p99 | reclaim p99 | refused | violations |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk "$kv"'{ parse($0); r = rate(f["swap_interval_us"]); if (r == "off") base[f["backend"]] = f["calls_per_s"];
      printf "| %s | %s | %.0f %% | %.0f | %s | %.1f %% | %s | %s | %s | %s | %s | %s | %s |\n", f["backend"], r, 100 * f["caller_cpu_share"], f["swaps_per_s"], mega(f["calls_per_s"]),
      100 * f["calls_per_s"] / base[f["backend"]], ns(f["p50_ns"]), ns(f["p999_ns"]), ns(f["gp_p50_ns"]), ns(f["gp_p99_ns"]),
      ns(f["reclaim_p99_ns"]), f["refused"], f["violations"] }' "$sum"
    echo
  done
  echo "## Pinned sessions (100 calls per pin), swaps at 10 kHz"
  echo
  echo "| backend | caller CPU | swaps/s | calls/s | p50 | p99.9 | p99.99 | max | gp p99 | reclaim p99 | backlog | violations |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk "$kv"'{ parse($0); printf "| %s | %.0f %% | %.0f | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s |\n", f["backend"], 100 * f["caller_cpu_share"], f["swaps_per_s"],
    mega(f["calls_per_s"]), ns(f["p50_ns"]), ns(f["p999_ns"]), ns(f["p9999_ns"]), ns(f["max_ns"]), ns(f["gp_p99_ns"]),
    ns(f["reclaim_p99_ns"]), f["peak_backlog"], (f["cap"] + 0 == 0 ? "-" : f["cap"]), f["violations"] }' "$tmp/pinned.sum"
  echo
  echo "## Targets (default backend: epoch-membarrier), checked from the numbers above"
  echo
  echo "A no-swap baseline whose callers got well under 100 % CPU was disturbed by other work on the"
  echo "machine; its ratio says little (see *caller CPU* in the tables)."
  echo
  echo "| target | measured | met |"
  echo "|---|---|---|"
  awk "$kv"'
    FILENAME ~ /latency/ { parse($0); if (f["backend"] != "epoch-membarrier") next; r = rate(f["swap_interval_us"]);
      p999[r] = f["p999_ns"] + 0; st[r] = f["steady_p999_ns"] + 0; af[r] = f["after_swap_p999_ns"] + 0;
      gp50[r] = f["gp_p50_ns"] + 0; gp99[r] = f["gp_p99_ns"] + 0; rec[r] = f["reclaim_p99_ns"] + 0;
      bl[r] = f["peak_backlog"] + 0; cap = f["cap"] + 0; next }
    FILENAME ~ /throughput1/ { parse($0); if (f["backend"] != "epoch-membarrier") next; r = rate(f["swap_interval_us"]);
      tp1[r] = f["calls_per_s"] + 0; cpu1[r] = 100 * f["caller_cpu_share"]; next }
    FILENAME ~ /throughput/ { parse($0); if (f["backend"] != "epoch-membarrier") next; r = rate(f["swap_interval_us"]);
      tp2[r] = f["calls_per_s"] + 0; cpu2[r] = 100 * f["caller_cpu_share"]; next }
    function yn(ok) { return ok ? "yes" : "**no**" }
    END {
      ratio = p999["10 kHz"] / p999["off"];
      printf "| caller p99.9 at 10 kHz <= 1.5 x no-swap p99.9 | %s vs %s (%.2f x); steady %s, after swap %s | %s |\n",
        ns(p999["10 kHz"]), ns(p999["off"]), ratio, ns(st["10 kHz"]), ns(af["10 kHz"]), yn(ratio <= 1.5);
      printf "| grace period p50 <= 2 us at 10 kHz, busy caller | %s | %s |\n", ns(gp50["10 kHz"]), yn(gp50["10 kHz"] <= 2000);
      printf "| grace period p99 <= 20 us at 10 kHz, busy caller | %s | %s |\n", ns(gp99["10 kHz"]), yn(gp99["10 kHz"] <= 20000);
      printf "| retire-to-reclaim p99 <= 1 ms at 10 kHz (1 kHz: %s; flat out: %s) | %s | %s |\n", ns(rec["1 kHz"]), ns(rec["max"]),
        ns(rec["10 kHz"]), yn(rec["10 kHz"] <= 1e6);
      over = 0; mb = 0; for (r in bl) { if (bl[r] > mb) mb = bl[r]; if (bl[r] > cap) over = 1 }
      printf "| peak backlog within max_draining (%d), every swap rate | %d | %s |\n", cap, mb, yn(!over);
      a = tp1["10 kHz"] / tp1["off"]; b = tp2["10 kHz"] / tp2["off"];
      printf "| aggregate calls/s with swaps at 10 kHz >= 95 %% of without, 1 caller | %.1f %% (%s vs %s; callers got %.0f %% vs %.0f %% CPU) | %s |\n",
        100 * a, mega(tp1["10 kHz"]), mega(tp1["off"]), cpu1["10 kHz"], cpu1["off"], yn(a >= 0.95);
      printf "| the same, 2 callers (all CPUs calling) | %.1f %% (%s vs %s; callers got %.0f %% vs %.0f %% CPU) | %s |\n",
        100 * b, mega(tp2["10 kHz"]), mega(tp2["off"]), cpu2["10 kHz"], cpu2["off"], yn(b >= 0.95);
      printf "| aggregate >= 100 M calls/s, no swaps (1 caller / 2 callers) | %s / %s | %s |\n", mega(tp1["off"]), mega(tp2["off"]), yn(tp1["off"] >= 1e8 || tp2["off"] >= 1e8) }' \
    "$tmp/latency.sum" "$tmp/throughput1.sum" "$tmp/throughput.sum"
  bad=$(cat "$tmp"/*.sum | awk "$kv"'{ parse($0); n += f["violations"] } END { print n + 0 }')
  echo "| zero invariant violations (all backends, all runs) | $bad | $([ "$bad" = 0 ] && echo yes || echo '**no**') |"
} >"$md"

if [ "$mode" = measure ]; then
  echo "stress: wrote $out/stress-reference.{json,txt,md}, $out/stress-latency.png, $out/stress-swaprate.png (${elapsed} s measuring)"
else
  echo "stress: redrew $md, $out/stress-latency.png, $out/stress-swaprate.png from $record"
fi
exit $status
