#!/bin/sh
# bench/plot.sh: draws fe_bench results with gnuplot (run by `make bench-plot`).
#
#   plot.sh [-o DIR] [-t TITLE] [-u DIVISOR] FILE.hgrm... [SWEEP.csv...]
#
# Every .hgrm file (HdrHistogram's percentile distribution: fe_bench --hgrm,
# or HdrHistogram Java's outputPercentileDistribution, e.g. the Disruptor
# anchor's -Dhgrm) becomes one line of DIR/latency.svg and DIR/latency.png:
# latency by percentile in the "nines" style, the x axis 1/(1-percentile)
# on a log scale labelled 50%, 90%, 99%, ... , the y axis log-scaled
# microseconds (values are divided by DIVISOR, default 1000: ns in the
# file).  Lines whose file name contains "disruptor" are dashed.
# Every sweep CSV (fe_bench --sweep ... --csv) becomes a bar chart of
# throughput by configuration, best first as the sweep sorted it, with the
# range over the runs as error bars: DIR/throughput.svg and .png (with
# several CSVs, DIR/throughput-NAME.*).
set -eu
out=build/plot
title="end-to-end latency by percentile"
div=1000
while getopts o:t:u: opt; do
  case $opt in
  o) out=$OPTARG ;;
  t) title=$OPTARG ;;
  u) div=$OPTARG ;;
  *) echo "usage: plot.sh [-o DIR] [-t TITLE] [-u DIVISOR] FILE.hgrm... [SWEEP.csv...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
command -v gnuplot >/dev/null 2>&1 || {
  echo "plot.sh: gnuplot not found (Debian: apt-get install gnuplot-nox)" >&2; exit 1; }
hgrms="" csvs=""
for f in "$@"; do
  [ -r "$f" ] || { echo "plot.sh: cannot read $f" >&2; exit 1; }
  case $f in
  *.csv) csvs="$csvs $f" ;;
  *) hgrms="$hgrms $f" ;;
  esac
done
[ -n "$hgrms$csvs" ] || {
  echo "plot.sh: nothing to plot (give .hgrm files and/or sweep .csv files; make bench-plot PLOT_HGRM=... PLOT_CSV=...)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fe-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# gnuplot draws one chart to both terminals.
render() { # $1: output stem, $2: gnuplot script (plot commands)
  { printf 'set terminal svg size 1000,600 dynamic font "Helvetica,13" background "white"\n'
    printf 'set output "%s.svg"\n' "$1"; cat "$2"
    printf 'set terminal pngcairo size 1000,600 font "Helvetica,11" background "white"\n'
    printf 'set output "%s.png"\nreplot\n' "$1"; } > "$tmp/run.gp"
  gnuplot "$tmp/run.gp"
}

if [ -n "$hgrms" ]; then
  n=0 plot=""
  for f in $hgrms; do
    n=$((n + 1))
    # rows with all four columns: value, percentile, count, 1/(1-percentile)
    awk -v d="$div" 'NF == 4 && $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9.]+$/ { print $4, $1 / d }' "$f" > "$tmp/$n.dat"
    [ -s "$tmp/$n.dat" ] || { echo "plot.sh: $f has no percentile rows" >&2; exit 1; }
    name=$(basename "$f" .hgrm | sed 's/"/_/g')
    case $name in *disruptor*) style="dt 2 lc rgb 'black'" ;; *) style="dt 1 lt $n" ;; esac
    plot="$plot${plot:+, }\"$tmp/$n.dat\" using 1:2 with lines lw 2 $style title \"$name\" noenhanced"
  done
  # y from a decade below the lowest median (the 0th-percentile rows would
  # otherwise stretch the axis over decades nobody reads)
  ymin=$(cat "$tmp"/[0-9]*.dat | awk '$1 >= 2 && (m == "" || $2 < m) { m = $2 }
    END { if (m == "" || m <= 0) print "*"; else { p = 1e-3; while (p * 10 <= m / 10) p *= 10; print p } }')
  cat > "$tmp/lat.gp" <<GP
set title "$title" noenhanced
set logscale x
set logscale y
set xlabel "percentile"
set ylabel "latency (us)"
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000, "99.9999%%" 1000000)
set format y "%g"
set grid xtics ytics mytics
set key bottom right box opaque
set xrange [1:*]
set yrange [$ymin:*]
set linetype 1 lc rgb "#d62728"
set linetype 2 lc rgb "#1f77b4"
set linetype 3 lc rgb "#2ca02c"
set linetype 4 lc rgb "#9467bd"
set linetype 5 lc rgb "#ff7f0e"
set linetype 6 lc rgb "#8c564b"
set linetype 7 lc rgb "#e377c2"
set linetype 8 lc rgb "#17becf"
plot $plot
GP
  render "$out/latency" "$tmp/lat.gp"
  echo "plot.sh: $out/latency.svg $out/latency.png ($n files)"
fi

ncsv=$(echo $csvs | wc -w)
for f in $csvs; do
  stem="$out/throughput"
  [ "$ncsv" -gt 1 ] && stem="$out/throughput-$(basename "$f" .csv)"
  # label, median, min, max by column name; the label is quoted (commas).
  awk -F, '
    /^#/ { if ($0 ~ /^# fe_bench sweep: scenario/) { split($0, w, " "); sc = w[5]; sub(/,$/, "", sc) } next }
    !hdr { for (i = 1; i <= NF; i++) col[$i] = i; hdr = 1
           if (!("label" in col) || !("mev_s" in col)) { print "no label/mev_s columns" > "/dev/stderr"; exit 1 }
           next }
    { line = $0; lab = ""
      if (match(line, /"[^"]*"/)) { lab = substr(line, RSTART + 1, RLENGTH - 2); gsub(/"[^"]*"/, "L", line) }
      n = split(line, c, ",")
      printf "\"%s\" %s %s %s\n", lab, c[col["mev_s"]], c[col["mev_s_min"]], c[col["mev_s_max"]] }
    END { if (sc != "") print sc > "'"$tmp"'/scenario" }' "$f" > "$tmp/bars.dat"
  [ -s "$tmp/bars.dat" ] || { echo "plot.sh: $f has no sweep rows" >&2; exit 1; }
  sc=$(cat "$tmp/scenario" 2>/dev/null || echo sweep)
  cat > "$tmp/bar.gp" <<GP
set title "$sc: throughput by configuration (median of the runs, bars: min..max)" noenhanced
set style fill solid 0.6 border -1
set boxwidth 0.7
set ylabel "million events/s"
set yrange [0:*]
set xtics rotate by -30 noenhanced
set grid ytics
unset key
set bmargin 8
plot "$tmp/bars.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa", \
     "" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1
GP
  render "$stem" "$tmp/bar.gp"
  echo "plot.sh: $stem.svg $stem.png"
done
