#!/bin/sh
# Bench scenario order_flow: the whole application pipeline of
# examples/order_flow.c (journal, idempotency, gateway with breakers, DLQ,
# order sagas, reconciliation; no progress line), run RUNS times; prints
# the median orders/s and end-to-end (submit to journaled outcome) p50 and
# p99 for each load.
#   bench/order_flow.sh BINARY [RUNS] [ORDERS]
# Loads: as fast as the client can submit (rate 0: throughput; latency is
# then queueing in a full ring) and a paced 5,000 orders/s (latency).
set -eu
bin=$1
runs=${2:-5}
orders=${3:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
val() { sed -n "s/^  \"$1\": \([0-9.e+]*\).*/\1/p" "$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for rate in 0 5000; do
  n=$orders
  [ "$rate" = 0 ] || n=$((rate * 4))   # four seconds of paced flow
  : > "$tmp/ops"; : > "$tmp/p50"; : > "$tmp/p99"
  i=0
  while [ $i -lt "$runs" ]; do
    "$bin" --quiet --orders "$n" --rate "$rate" --json "$tmp/s.json" > "$tmp/out" 2>&1 ||
      { cat "$tmp/out"; echo "order_flow failed" >&2; exit 1; }
    val orders_per_second "$tmp/s.json" >> "$tmp/ops"
    val latency_end_to_end_p50_ns "$tmp/s.json" >> "$tmp/p50"
    val latency_end_to_end_p99_ns "$tmp/s.json" >> "$tmp/p99"
    i=$((i + 1))
  done
  printf 'order_flow  rate %-5s orders %-7s  %8.0f orders/s  e2e p50 %8.1f us  p99 %8.1f us  (median of %s)\n' \
    "$rate" "$n" "$(median < "$tmp/ops")" "$(median < "$tmp/p50" | awk '{print $1 / 1000}')" \
    "$(median < "$tmp/p99" | awk '{print $1 / 1000}')" "$runs"
done
