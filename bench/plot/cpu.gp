# cpu.gp - round trips per second against the CPU work each frame carries, one line per
# router; a diamond marks where a router overtakes router-reactor (the cross-over).
# Data: one block per router: a header line with its name, then "work us<TAB>round trips/s".
# cross: a file of "work us<TAB>round trips/s<TAB>label", one line per cross-over, or '' if none.
load dir."/style.gp"
set title "Round trips/s against CPU work per frame (16 pairs, the router on both cores)"
set xlabel "CPU work per frame (--work-us, µs)"
set ylabel "round trips per second"
set format y "%.0s%c"
set yrange [0:*]
set xrange [-2:52]
set xtics (0, 10, 25, 50)
set key inside top right reverse Left samplen 1.5 font ",17"
if (cross eq '') {
    plot for [i=0:n-1] data index i using 1:2 with linespoints title columnheader(1)
} else {
    plot for [i=0:n-1] data index i using 1:2 with linespoints title columnheader(1), \
         cross using 1:2 with points pt 12 ps 2.2 lw 2 lc rgb "#000000" title "overtakes reactor"
}
