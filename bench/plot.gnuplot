# plot.gnuplot - vigil-bench's plots, from the .dat files it writes.
#
#   gnuplot -e "dir='bench/results'" bench/plot.gnuplot
#
# beat.dat: mechanism median_ns min_ns max_ns              -> beat.png (log scale)
# scan.dat: slots scanner_ns bare_ns idle_scanner idle_bare -> scan.png (log-log)
# vigil-bench runs this itself when gnuplot is installed.
if (!exists("dir")) dir = "."

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1000,560 enhanced font "sans,10"
} else {
    set terminal png size 1000,560
}

beat = dir."/beat.dat"
scan = dir."/scan.dat"
human(x) = x < 1e3 ? sprintf("%.3g ns", x) : x < 1e6 ? sprintf("%.3g µs", x / 1e3) : sprintf("%.3g ms", x / 1e6)

if (system("test -s '".beat."' && echo y") eq "y") {
    set output dir."/beat.png"
    set title "Cost of one heartbeat, worker side (median of the repetitions; bar: min..max)" noenhanced
    set ylabel "ns per beat (log scale)"
    set logscale y
    set format y "10^{%L}"
    set grid ytics
    set style fill solid 0.6 border -1
    set boxwidth 0.6
    set xtics rotate by -25 noenhanced
    set yrange [0.1:*]
    unset key
    plot beat using 0:2:xtic(1) with boxes lc rgb "#4472c4", \
         ''  using 0:2:3:4 with yerrorbars lc rgb "black" pt 0, \
         ''  using 0:($4*2.2):(human($2)) with labels font ",9" noenhanced
    unset logscale y
    set format y "% h"
    set xtics norotate
    set yrange [*:*]
}

if (system("test -s '".scan."' && echo y") eq "y") {
    set output dir."/scan.png"
    set title "Scan cost per slot per tick: vigil_scanner_tick vs a bare read-and-compare of the same hot lines" noenhanced
    set xlabel "slots (all ACTIVE)"
    set ylabel "ns per slot (log scale)"
    set logscale x
    set logscale y
    set format x "10^{%L}"
    set format y "%g"
    set grid
    set key top left noenhanced
    set xtics auto enhanced
    set offsets graph 0.05, graph 0.05, 0, 0
    plot scan using 1:2 with linespoints lw 2 pt 7 lc rgb "#c00000" title "vigil scanner, every slot beat since the last tick", \
         ''   using 1:3 with linespoints lw 2 pt 5 lc rgb "#4472c4" title "bare read + compare, every slot beat", \
         ''   using 1:4 with linespoints lw 1 dt 2 pt 6 lc rgb "#c00000" title "vigil scanner, no slot beat (idle)", \
         ''   using 1:5 with linespoints lw 1 dt 2 pt 4 lc rgb "#4472c4" title "bare read + compare, idle"
}
