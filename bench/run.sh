#!/usr/bin/env bash
# Benchmarks with fixed inputs (generated from fixed seeds). Prints "name value unit" lines.
# One core: taskset pins the process. Medians of five runs inside each program.
set -euo pipefail
BUILD=${1:-build}
B="$(cd "$BUILD" && pwd)"
S="$B/cli/sipguard"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
PIN=""; command -v taskset >/dev/null && PIN="taskset -c 0"
/usr/bin/time -f "gen_eval_seconds %e" $S gen -o eval --preset eval --seed 5 2>&1 | grep -v generated
for n in 10 100 1000; do # users -> about 1,000 / 10,000 / 100,000 training messages
  $S gen -o tr$n --attacks none --users $n --duration 3600 --call-rate 4 --seed 7 2>/dev/null
  /usr/bin/time -f "train_users_${n}_seconds %e peak_rss_kb %M" $PIN $S train -q -o m$n.model tr$n.pcap
done
$S gen -o test --seed 8 --preset demo 2>/dev/null
for n in 10 100 1000; do
  echo "# model trained on $(($(wc -l < tr$n.labels.csv) - 1)) messages"
  $PIN "$B/bench/bench_core" test.pcap m$n.model | sed "s/^/users_${n}_/"
  /usr/bin/time -f "score_users_${n}_peak_rss_kb %M" $PIN $S score -q -m m$n.model test.pcap > /dev/null
done
