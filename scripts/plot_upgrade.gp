# Requests lost per binary upgrade, by server (scripts/upgrade_reference.sh).
# Input: datafile with "server lost_per_upgrade upgrades requests" rows.
set terminal pngcairo size 800,420 font ",10"
set output outfile
set title "Requests lost per binary upgrade under load (16 keep-alive + 4 new-connection clients, one upgrade every 500 ms)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.6
set ylabel "lost requests per upgrade"
set yrange [0:*]
set grid ytics
unset key
plot datafile using 2:xtic(1) lc rgb "#4477aa", '' using 0:($2):(sprintf("%.2f", $2)) with labels offset 0,0.8 notitle
