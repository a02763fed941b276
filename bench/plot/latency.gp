# latency.gp - latency by percentile, one curve per router (HdrHistogram's way of drawing it:
# the x axis is 1/(1 - percentile), so each extra nine gets the same width).
# Data: one block per router: a header line with its name, then "percentile<TAB>x<TAB>us".
load dir."/style.gp"
set title ttl
set xlabel "percentile"
set ylabel "latency (log scale)"
set format y "%.0s %cs"
set logscale xy
set xtics ("50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "max" 100000)
set xrange [1.8:130000]
plot for [i=0:n-1] data index i using 2:($3 * us) with linespoints title columnheader(1)
