# throughput.gp - frames and round trips per second, a cluster of bars per router.
# Data: a header line, then "router<TAB>pipeline 64 B<TAB>pipeline 4 KiB<TAB>16-pair round trips".
load dir."/style.gp"
set title "Throughput (closed loop, the most each router does; log scale)"
set ylabel "per second"
set logscale y
set format y "%.0s%c"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.9
set xtics rotate by -25 left
set key outside top center horizontal reverse Left
set grid noxtics
plot data using 2:xtic(1) title columnheader(2) lt 2, \
     '' using 3 title columnheader(3) lt 4, \
     '' using 4 title columnheader(4) lt 5
