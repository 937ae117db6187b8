#!/usr/bin/env bash
# make demo: generate normal training traffic, train, then score a mixed capture
# with attacks and print a summary plus the JSON lines of the anomalies.
set -euo pipefail
BUILD=${1:-build}
S="$(cd "$BUILD" && pwd)/cli/sipguard"
OUT=demo-out
mkdir -p "$OUT"
cd "$OUT"
echo "== 1. generating a week's normal traffic and a later capture with attacks, same users"
"$S" gen -o train --preset demo --attacks none --seed 1 --population-seed 7
"$S" gen -o test --preset demo --seed 2 --population-seed 7
echo "== 2. training on normal traffic only"
"$S" train -o edge.model train.pcap
echo "== 3. scoring the test capture"
"$S" score -q -m edge.model --explain test.pcap > scores.jsonl
total=$(wc -l < scores.jsonl)
anom=$(grep -c '"anomaly":true' scores.jsonl || true)
# join verdicts with the generator's labels (same capture order)
tail -n +2 test.labels.csv | cut -d, -f3,4 > labels.txt
paste -d, labels.txt <(grep -o '"anomaly":[a-z]*' scores.jsonl | cut -d: -f2) > joined.txt
tp=$(grep -c '^attack,.*,true$' joined.txt || true)
fp=$(grep -c '^normal,.*,true$' joined.txt || true)
na=$(grep -c '^attack,' joined.txt || true)
nn=$(grep -c '^normal,' joined.txt || true)
echo
echo "summary: $total messages scored, $anom flagged"
echo "  attack messages flagged: $tp of $na;  normal messages flagged: $fp of $nn"
echo "  by attack family (flagged/total):"
grep '^attack,' joined.txt | awk -F, '{t[$2]++; if ($3=="true") f[$2]++} END {for (k in t) printf "    %-24s %d/%d\n", k, f[k], t[k]}' | sort
echo
echo "first anomalies (JSON Lines; all of them are in $OUT/scores.jsonl):"
grep -m5 '"anomaly":true' scores.jsonl || true
