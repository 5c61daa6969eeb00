# Renders the reference run of hotswap-stress (called by scripts/stress.sh):
#   gnuplot -e "datadir='DIR'; outdir='results'; backends='a b c'" scripts/plot_stress.gp
# DIR/latency.dat   one block per backend: percentile rows x swap-rate columns (ns)
# DIR/swaprate.dat  one block per backend: swap-rate rows; throughput with 2 callers (M calls/s),
#                   p99.9 (ns), swaps/s, throughput with 1 caller

nb = words(backends)
cols = 4
rows = int((nb + cols - 1) / cols)

# ---- caller latency percentiles, one panel per backend ----------------------
set terminal pngcairo size 1600, 420 * rows font "DejaVu Sans,10" noenhanced
set output outdir . "/stress-latency.png"
set multiplot layout rows, cols title "hotswap-stress: caller latency per call (memory scenario, 1 caller + 1 swapper, 2 cores; includes ~20 ns timer cost)" font ",13"
set logscale y
set format y "%.0s%c"
set ylabel "ns (log)"
set yrange [10:1e8]
set grid ytics mytics
set key top left font ",9"
set style data linespoints
set xtics font ",9"
set lmargin 9
do for [i = 1:nb] {
  set title word(backends, i) font ",11"
  plot for [c = 2:5] datadir . "/latency.dat" index (i - 1) using c:xtic(1) title columnheader(c) lw 2 pt (c + 4)
}
unset multiplot

# ---- throughput and p99.9 against swap rate ----------------------------------
set terminal pngcairo size 1800, 680 font "DejaVu Sans,10" noenhanced
set output outdir . "/stress-swaprate.png"
set multiplot layout 1, 3 title "hotswap-stress: what swapping costs callers (no swaps, 1 kHz, 10 kHz, flat out; 2 cores)" font ",13"
set key below horizontal maxcols 4 font ",9" samplen 2
set xlabel "swap rate"
set style data linespoints
set xtics font ",9"

set title "aggregate throughput, 1 caller + 1 swapper\n(a CPU left for the writer side; batches of 1024 calls)"
unset logscale y
set format y "%g"
set ylabel "M calls/s"
set yrange [0:*]
plot for [i = 1:nb] datadir . "/swaprate.dat" index (i - 1) using 0:5:xtic(1) title word(backends, i) lw 2 pt (i + 4)

set title "aggregate throughput, 2 callers + 1 swapper\n(every CPU busy calling)"
plot for [i = 1:nb] datadir . "/swaprate.dat" index (i - 1) using 0:2:xtic(1) title word(backends, i) lw 2 pt (i + 4)

set title "caller p99.9 per call, 1 caller + 1 swapper\n(includes ~20 ns timer cost)"
set logscale y
set format y "%.0s%c"
set ylabel "ns (log)"
set yrange [10:1e5]
plot for [i = 1:nb] datadir . "/swaprate.dat" index (i - 1) using 0:3:xtic(1) title word(backends, i) lw 2 pt (i + 4)
unset multiplot
