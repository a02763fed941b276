# openloop.gp - p99 latency against the offered rate, one line per router; a circle marks a
# rate the router could not sustain (saturated).
# Data: one block per router: a header line with its name, then "offered<TAB>p99 us<TAB>saturated".
load dir."/style.gp"
set title "Open loop: p99 latency against offered load (16 senders, 32 B)"
set xlabel "offered load (frames/s, log scale)"
set ylabel "p99 one-way latency (log scale)"
set format y "%.0s %cs"
set format x "%.0s%c"
set logscale xy
plot for [i=0:n-1] data index i using 1:($2 * us) with linespoints title columnheader(1), \
     for [i=0:n-1] data index i using 1:($3 > 0 ? $2 * us : 1/0) with points pt 6 ps 2.2 lc rgb "#000000" notitle, \
     NaN with points pt 6 ps 2.2 lc rgb "#000000" title "saturated"
