# Renders scripts/http_reference.sh's run (called by it):
#   gnuplot -e "datafile='F.dat'; outfile='F.png'" scripts/plot_http_stress.gp
# F.dat: a header row, then per case: requests/s steady and swapping, then p50,
# p99 and p99.9 latency (us) steady and swapping.
set terminal pngcairo size 1300, 480 font "DejaVu Sans,10" noenhanced
set output outfile
set multiplot layout 1, 2 title "hotswap-httpd, 1 worker: steady vs application swapped every 50 ms (exact-counting client)" font ",12"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key top right
set title "requests/s"
set yrange [0:*]
plot datafile using 2:xtic(1) title "steady", "" using 3 title "swapping"
set title "latency, us (log)"
set logscale y
set yrange [*:*]
plot datafile using 4:xtic(1) title "p50 steady", "" using 5 title "p50 swapping", \
     "" using 6 title "p99 steady", "" using 7 title "p99 swapping", \
     "" using 8 title "p99.9 steady", "" using 9 title "p99.9 swapping"
unset multiplot
