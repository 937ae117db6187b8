#!/usr/bin/env bash
# make demo: generate normal training traffic, train, then score a mixed capture
# with attacks and print a summary plus the JSON lines of the anomalies; then run the
# same capture through a live edge daemon (HEPv3 in, reports out) on loopback.
set -euo pipefail
BUILD=${1:-build}
B="$(cd "$BUILD" && pwd)"
S="$B/cli/sipguard" E="$B/detector/sipguard-edge"
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

echo
echo "== 4. the same capture through a running edge daemon: HEPv3 in, reports out"
rm -f edge.ports edge-reports.jsonl
"$E" -m edge.model --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
    --set report.jsonl=edge-reports.jsonl --set scoring.local_policy=always \
    --ports-file edge.ports 2> edge.log &
EDGE=$!
trap 'kill $EDGE 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s edge.ports ] && break; sleep 0.1; done
HEP=$(awk '$1=="hep"{print $2}' edge.ports) HTTP=$(awk '$1=="http"{print $2}' edge.ports)
"$S" replay --hep 127.0.0.1:$HEP --rate 3000 test.pcap
for _ in $(seq 300); do
    n=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}')
    [ "$n" -ge "$total" ] && break
    sleep 0.2
done
echo "edge metrics (curl http://127.0.0.1:$HTTP/metrics):"
curl -s http://127.0.0.1:$HTTP/metrics | grep -E '^sipguard_(messages_total\{source="hep"|reports_total|udp_dropped)'
echo "one inline verdict (curl --data-binary @message http://127.0.0.1:$HTTP/v1/score):"
printf 'OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-1\r\nFrom: "sipvicious"<sip:100@1.1.1.1>;tag=6438\r\nTo: "sipvicious"<sip:100@1.1.1.1>\r\nCall-ID: 42\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n' |
    curl -s --data-binary @- http://127.0.0.1:$HTTP/v1/score
kill -TERM $EDGE; wait $EDGE || true
trap - EXIT
echo "the edge wrote $(wc -l < edge-reports.jsonl) anomaly reports to $OUT/edge-reports.jsonl"
