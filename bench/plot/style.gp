# style.gp - what every chart shares. Each script is run as
#   gnuplot -e "data='FILE.tsv'; out='FILE.svg'; n=ROUTERS" SCRIPT.gp
set encoding utf8
# Sized for a slide: shown 480 px high beside 27 px body text, 20 px here is about 18 px there,
# two thirds of the body text.
set terminal svg size 960,540 dynamic noenhanced font "Helvetica,20" background rgb "white"
set output out
set datafile separator "\t"
set border 3
set tics nomirror
set grid xtics ytics lc rgb "#e0e0e0" lt 1
set key outside right top reverse Left samplen 1.5 spacing 1.1 font ",17"
set linetype 1 lc rgb "#000000" lw 2 pt 7 ps 0.8 dt 2
set linetype 2 lc rgb "#1f77b4" lw 2 pt 5 ps 0.8
set linetype 3 lc rgb "#d62728" lw 2 pt 9 ps 0.9
set linetype 4 lc rgb "#ff7f0e" lw 2 pt 11 ps 0.9
set linetype 5 lc rgb "#2ca02c" lw 2 pt 13 ps 0.9
set linetype 6 lc rgb "#9467bd" lw 2 pt 15 ps 0.9
set linetype 7 lc rgb "#8c564b" lw 2 pt 4 ps 0.9
set linetype 8 lc rgb "#e377c2" lw 2 pt 6 ps 0.9
set linetype cycle 8
# Latency data is in microseconds; axes show it in seconds with SI prefixes: 100 µs, 2 ms.
us = 1e-6
