# Renders scripts/canary_reference.sh's time series (called by it):
#   gnuplot -e "datafile='F.csv'; outfile='F.png'" scripts/plot_canary.gp
# F.csv: stress/scenarios/canary.cpp's series (one row per 10 ms sample, every
# case). Per case against time from the canary's start: the candidate's share
# of calls (left axis) and, on the right axis, each version's error rate since
# the canary began (the 20 ms slower cases: each version's p99 instead).
set terminal pngcairo size 1600, 760 font "DejaVu Sans,9" noenhanced
set output outfile
set datafile separator ","
set multiplot layout 2, 4 title "hotswap-stress --scenario canary: candidate share, error rate (p99 for the slow candidate) against time, greeting under load" font ",12"
set grid
set key top right
set xlabel "ms since canary start"
set ylabel "candidate share, %"
set yrange [0:105]
set y2tics
set ytics nomirror
set y2range [0:*]
pick(name, col) = strcol(1) eq name ? column(col) : 1/0
cases = "errors5_fallback_on errors5_fallback_off slow20ms_fallback_on slow20ms_fallback_off failing_fallback_on failing_fallback_off good"
do for [c in cases] {
  set title c
  if (strstrt(c, "slow") > 0) {
    set y2label "p99 since start, ms"
    plot datafile using (pick(c, 2)):(pick(c, 4)) skip 1 with steps lw 2 title "candidate share", \
         "" using (pick(c, 2)):(pick(c, 12)) skip 1 axes x1y2 with lines lw 1.5 title "candidate p99", \
         "" using (pick(c, 2)):(pick(c, 11)) skip 1 axes x1y2 with lines lw 1.5 title "stable p99"
  } else {
    set y2label "error rate since start, %"
    plot datafile using (pick(c, 2)):(pick(c, 4)) skip 1 with steps lw 2 title "candidate share", \
         "" using (pick(c, 2)):(pick(c, 10)) skip 1 axes x1y2 with lines lw 1.5 title "candidate error %", \
         "" using (pick(c, 2)):(pick(c, 9)) skip 1 axes x1y2 with lines lw 1.5 title "stable error %"
  }
}
unset multiplot
