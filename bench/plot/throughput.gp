# throughput.gp - pipelined frames per second, one bar per router: how much each router moves
# when it is kept busy. One message: batching, not the pattern alone, sets the throughput.
# Data: a header line, then "router<TAB>pipeline 64 B<TAB>pipeline 4 KiB<TAB>16-pair round trips".
load dir."/style.gp"
set title "Pipelined frames per second (8 senders, 256 in flight, 64 B)"
set ylabel "frames per second"
set format y "%.1s%c"
set yrange [0:*]
set xrange [-0.6:*]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.75
set xtics rotate by -20 left
unset key
set grid noxtics
set rmargin 6
plot data using 2:xtic(1) lt 2
