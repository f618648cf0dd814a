#!/bin/sh
# Draws GFLOP/s per layer per algorithm (convkit's and the baselines') from the CSV files of
# `convkit-bench conv --csv`: one panel per (layout, thread count), one bar colour per algorithm,
# the same colour in every panel.
# Usage: bench/plot-conv.sh OUT.png RESULTS.csv [MORE.csv ...]     (needs gnuplot)
set -e
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT.png RESULTS.csv [MORE.csv ...]" >&2
  exit 2
fi
out=$1
shift
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot-conv: gnuplot not found (Debian: apt-get install gnuplot-nox); no chart drawn" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Pivot the long CSV (layer,algo,isa,threads,layout,gflop,ms_median,ms_min,gflops,...) into one
# tab-separated table per panel: a row per layer, a column per algorithm present in that panel.
# Column 1 of $tmp/N.cols holds the global index of each algorithm (for its colour).
# A file's layout is that of its convkit rows; a baseline that ran in another layout (im2col +
# OpenBLAS is NCHW only) joins the same panel, its name suffixed with its layout.
awk -F, -v dir="$tmp" '
  FNR == 1 {
    run_layout = ""
    while ((getline line < FILENAME) > 0) {
      split(line, fld, ",")
      if (fld[1] != "layer" && fld[2] !~ /^baseline:/) { run_layout = fld[5]; break }
    }
    close(FILENAME)
  }
  $1 == "layer" || NF < 9 { next }
  {
    lay = run_layout == "" ? $5 : run_layout
    algo = $5 == lay ? $2 : $2 " (" $5 ")"
    panel = lay ", " $4 (($4 == 1) ? " thread" : " threads")
    if (!(panel in pidx)) { pidx[panel] = ++np; pname[np] = panel }
    if (!((panel, $1) in lidx)) { lidx[panel, $1] = ++nl[panel]; lname[panel, nl[panel]] = $1 }
    if (!(algo in aidx)) { aidx[algo] = ++na; aname[na] = algo }
    val[panel, $1, algo] = $9
    has[panel, algo] = 1
  }
  END {
    for (p = 1; p <= np; p++) {
      P = pname[p]; f = dir "/" p ".dat"; c = dir "/" p ".cols"
      line = "layer"; cols = ""
      for (a = 1; a <= na; a++)
        if ((P, aname[a]) in has) { line = line "\t" aname[a]; cols = cols " " a }
      print line > f
      for (l = 1; l <= nl[P]; l++) {
        L = lname[P, l]; line = L
        for (a = 1; a <= na; a++)
          if ((P, aname[a]) in has)
            line = line "\t" (((P, L, aname[a]) in val) ? val[P, L, aname[a]] : "-")
        print line > f
      }
      print cols > c
      close(f); close(c)
      print P > (dir "/panels")
    }
  }' "$@"

[ -s "$tmp/panels" ] || { echo "plot-conv: no rows in $*" >&2; exit 1; }
npanels=$(wc -l <"$tmp/panels")
palette="#1f4e9c #d62728 #2ca02c #9467bd #8c564b #e377c2 #17becf #bcbd22 #7f7f7f #ff7f0e #393b79 #637939 #843c39"

{
  echo "set terminal pngcairo size 2200,$((520 * npanels)) font 'sans,10' noenhanced"
  echo "set output '$out'"
  echo "set datafile separator '\t'"
  echo "set datafile missing '-'"
  echo "set style data histograms"
  echo "set style histogram clustered gap 1"
  echo "set style fill solid 0.9 border -1"
  echo "set boxwidth 0.9"
  echo "set xtics rotate by -40 scale 0 font ',9'"
  echo "set ylabel 'GFLOP/s'"
  echo "set yrange [0:*]"
  echo "set grid ytics"
  echo "set key outside right top vertical Left reverse noautotitle"
  echo "set multiplot layout $npanels,1"
  p=1
  while read -r title; do
    colours=""
    for i in $(cat "$tmp/$p.cols"); do
      colours="$colours $(echo $palette | cut -d' ' -f$(( (i - 1) % 13 + 1 )))"
    done
    ncol=$(echo $colours | wc -w)
    echo "set title 'convkit-bench conv: GFLOP/s per layer ($title)'"
    echo "colours = '$colours'"
    echo "plot for [i=2:$((ncol + 1))] '$tmp/$p.dat' using i:xtic(1) title columnheader(i) lc rgb word(colours, i - 1)"
    p=$((p + 1))
  done <"$tmp/panels"
  echo "unset multiplot"
} >"$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
echo "plot-conv: wrote $out" >&2
