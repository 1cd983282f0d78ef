#!/usr/bin/env bash
# The bus against the LMAX Disruptor on the Disruptor's own shapes, in one
# sitting: fe_bench's scenario and the anchor's shape alternate, ROUNDS
# times, then each line gives the median and the range of its runs.  This
# VM moves a scenario by 3x within minutes, so only figures from one
# sitting compare.
#   bench/vs_disruptor.sh [ROUNDS]     (make bench-vs-disruptor; default 5)
# Needs ../shared/anchors (the Disruptor harness) and Debian's
# default-jdk-headless libdisruptor-java libhdrhistogram-java.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-5}
fe=$here/build/release/bench/fe_bench
anchors=${ANCHORS:-$here/../shared/anchors}
jcp=/usr/share/java/disruptor.jar:/usr/share/java/hdrhistogram.jar
for p in /usr/share/java/disruptor.jar /usr/share/java/hdrhistogram.jar \
         "$anchors/disruptor/Pipeline.java" "$fe"; do
  [ -e "$p" ] || { echo "vs_disruptor: missing $p" >&2; exit 2; }
done
out=$(mktemp -d "${TMPDIR:-/tmp}/fe-vs-disruptor.XXXXXX")
trap 'rm -rf "$out"' EXIT
javac -d "$out" -cp "$jcp" "$anchors/disruptor/Pipeline.java"
ours() { "$fe" -k 1 "$1" | sed -E 's/^bench=([^ ]+).* mev_s=([0-9.]+).*/\1 \2/'; }
theirs() {
  java -cp "$jcp:$out" Pipeline tput "$1" "$2" yield |
    sed -E 's/.*shape=([^ ]+).*mev_s=([0-9.]+).*/disruptor_\1 \2/'
}
echo "# vs_disruptor $(date -u +%FT%TZ), $(nproc) cores," \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq "$rounds"); do
  ours bus_1p1c_single; theirs 1c 50000000
  ours bus_1p1c;        theirs 1c 50000000
  ours bus_1p1c_fused;  ours calls_4stage
  ours bus_3p1c;        theirs 3p1c 30000000
  ours bus_diamond;     theirs diamond 30000000
  ours bus_diamond_fused
  ours bus_4stage_yield; theirs 4s 20000000
done > "$out/runs"
awk '{v[$1] = v[$1] " " $2; n[$1]++}
     END {for (k in v) {m = split(substr(v[k], 2), a, " ");
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
              if (a[j] < a[i]) {t = a[i]; a[i] = a[j]; a[j] = t}
            med = m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2;
            printf "%-22s median %7.1f M ev/s  range %.1f-%.1f  runs %d\n", k, med, a[1], a[m], m}}' \
  "$out/runs" | sort
for r in 1 2 3; do
  "$fe" -k 1 lat_1p1c_100k | sed -E 's/.*(p50_ns=[0-9]+ p99_ns=[0-9]+ p999_ns=[0-9]+).*/bus lat_1p1c_100k \1/'
  java -cp "$jcp:$out" Pipeline lat 1c 500000 yield 100000 |
    sed -E 's/.*p50=([0-9]+) p99=([0-9]+) p99.9=([0-9]+).*/disruptor lat 1c p50_ns=\1 p99_ns=\2 p999_ns=\3/'
done
