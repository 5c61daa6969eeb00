# Renders scripts/http_compare.sh's medians (called by it):
#   gnuplot -e "datafile='plot.dat'; outfile='results/http-compare.png'" scripts/plot_http_compare.gp
# plot.dat: a header row, then one row per connections/phase cell: median req/s of each
# server (columns 2-4), then median p99 in us (columns 5-7).
set terminal pngcairo size 1300, 480 font "DejaVu Sans,10" noenhanced
set output outfile
set multiplot layout 1, 2 title "hotswap-httpd (glibc malloc, mimalloc) beside nginx-light: 1 worker each, wrk -t1 -c16, changed every 50 ms" font ",12"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key top right
set xtics font ",9" rotate by -15
set title "requests/s (median)"
set yrange [0:*]
plot for [c = 2:4] datafile using c:xtic(1) title columnheader(c)
set title "p99 latency, us (median; log)"
set logscale y
set yrange [*:*]
plot for [c = 5:7] datafile using c:xtic(1) title columnheader(c - 3)
unset multiplot
