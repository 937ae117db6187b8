#!/usr/bin/env bash
# Benchmarks with fixed inputs, generated from fixed seeds. Prints "name value" lines.
# One core: taskset pins each process. Medians: bench_core takes the median of five runs;
# the timed commands below run three times and report the median.
set -euo pipefail
BUILD=${1:-build}
B="$(cd "$BUILD" && pwd)"
S="$B/cli/sipguard"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
PIN=""; command -v taskset >/dev/null && PIN="taskset -c 0"
median3() { sort -n | sed -n 2p; }
secs() { /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; }

# generator: about 1,000,000 messages
for i in 1 2 3; do secs $PIN $S gen -o big --users 10000 --duration 3600 --call-rate 5 --attacks none --seed 9; done | median3 | sed 's/^/gen_1m_messages_seconds /'
echo "gen_1m_messages $(($(wc -l < big.labels.csv) - 1))"
rm -f big.*

# training sets of about 1,000 / 10,000 / 100,000 messages from one population; test traffic
# from the same population on another day (normal only, and attack tools only)
for n in 10 100 1000; do
  $S gen -o tr$n --attacks none --users $n --duration 3600 --call-rate 4 --seed 7 2>/dev/null
done
$S gen -o normal --preset demo --attacks none --seed 8 --population-seed 7 2>/dev/null
$S gen -o tools --attacker-only --seed 8 --population-seed 7 2>/dev/null
for shape in fields all; do
  for n in 10 100 1000; do
    msgs=$(($(wc -l < tr$n.labels.csv) - 1))
    /usr/bin/time -f "train_${shape}_${msgs}_seconds %e peak_rss_kb %M" $PIN $S train -q --shape $shape -o m.model tr$n.pcap
    for test in normal tools; do
      BENCH_VERBOSE=1 $PIN "$B/bench/bench_core" $test.pcap m.model 2>&1 | grep -E "score_global|local:" |
        awk '!seen[$0]++' | sed "s/^/${shape}_${msgs}_${test}_/"
    done
    /usr/bin/time -f "score_${shape}_${msgs}_peak_rss_kb %M" $PIN $S score -q -m m.model normal.pcap > /dev/null
  done
done
# embedding throughput (bench_core's embed figures do not depend on the model)
$PIN "$B/bench/bench_core" normal.pcap m.model 2>/dev/null | grep -E "framing|embed|osip"

# context detectors: time per 10-INVITE window (flood) and per message (dialog, binding), one core
$S gen -o cflood --preset demo --attacks flood --flood-window c --seed 8 --population-seed 7 2>/dev/null
$S context train -q -o ctx.json normal.pcap
$PIN $S context eval flood --json -m ctx.json -l cflood.labels.csv cflood.pcap |
    grep -o '"us_per_window_invites_only":[0-9.]*\|"all":{[^}]*' | grep -o 'us_per_window[a-z_]*":[0-9.]*' |
    sed 's/"//g; s/:/ /; s/^/context_flood_/'
$PIN $S context eval dialog --json -m ctx.json -l cflood.labels.csv --train-labels cflood.labels.csv cflood.pcap |
    grep -o '"us_per_message":[0-9.]*' | sed 's/"//g; s/:/ /; s/^/context_dialog_/'
$PIN $S context eval binding --json -m ctx.json -l cflood.labels.csv cflood.pcap |
    grep -o '"us_per_message":[0-9.]*' | sed 's/"//g; s/:/ /; s/^/context_binding_/'
