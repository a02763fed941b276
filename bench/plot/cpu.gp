# cpu.gp - round trips per second against the CPU work each frame carries, one line per
# router; a diamond marks where a router overtakes router-reactor (the cross-over).
# Data: one block per router: a header line with its name, then "work us<TAB>round trips/s".
# cross: a file of "work us<TAB>round trips/s<TAB>label", one line per cross-over, or '' if none.
load dir."/style.gp"
set title "When does parallelism pay? 16 pairs, the router free to use both cores"
set xlabel "CPU work per frame (--work-us, µs)"
set ylabel "round trips per second"
set format y "%.0s%c"
set yrange [0:*]
set xtics (0, 10, 25, 50)
if (cross eq '') {
    plot for [i=0:n-1] data index i using 1:2 with linespoints title columnheader(1)
} else {
    plot for [i=0:n-1] data index i using 1:2 with linespoints title columnheader(1), \
         cross using 1:2 with points pt 12 ps 2.5 lc rgb "#000000" title "overtakes router-reactor", \
         cross using 1:2:3 with labels offset 0,1.3 font ",11" notitle
}
