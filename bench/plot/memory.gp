# memory.gp - the router's resident memory against open connections, one line per router.
# Data: one block per router: a header line with its name, then "connections<TAB>MiB".
load dir."/style.gp"
set title "Router resident memory against connections (idle + 8 active)"
set xlabel "connections"
set ylabel "resident memory (MiB)"
set xrange [0:*]
set yrange [0:*]
plot for [i=0:n-1] data index i using 1:2 with linespoints title columnheader(1)
