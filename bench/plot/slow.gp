# slow.gp - the healthy pairs' p99 without and with a flooded, stalled receiver.
# Data: a header line, then "router<TAB>without flood<TAB>with flood" (µs).
load dir."/style.gp"
set title "A slow consumer: the healthy pairs' p99 (log scale)"
set ylabel "p99 one-way latency"
set logscale y
set format y "%.0s %cs"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.9
set xtics rotate by -20 left
set key inside top left reverse Left
set grid noxtics
plot data using ($2 * us):xtic(1) title columnheader(2) lt 5, \
     '' using ($3 * us) title columnheader(3) lt 3
