#!/usr/bin/env bash
# make demo: generate normal training traffic, train, then score a mixed capture
# with attacks and print a summary plus the JSON lines of the anomalies; then run the
# same capture through a live edge daemon (HEPv3 in, reports out) on loopback; then the
# whole loop: an overlay and three edges, an attack one edge sees becoming signatures that
# all three enforce.
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
rm -rf edge.ports edge-reports.jsonl record
"$E" -m edge.model --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
    --set report.jsonl=edge-reports.jsonl --set scoring.local_policy=always \
    --set record.dir=record --ports-file edge.ports 2> edge.log &
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
echo "and kept the messages it judged normal in $OUT/record ([record] dir) to train the next"
echo "model on; retrained the same way (sipguard train --like edge.model), then described:"
"$S" train -q --like edge.model -o retrained.model record/*.pcap 2>/dev/null
"$S" info --top 3 retrained.model | sed 's/^/  /'

echo
echo "== 5. the whole loop: one overlay, three edges; an attack only edge1 sees becomes a signature"
echo "      that all three enforce"
O="$B/overlay/sipguard-overlay"
rm -rf loop && mkdir -p loop && cd loop
"$S" gen -o attack --attacker-only --attacks scan,guess --seed 5 --population-seed 7 2>/dev/null
"$S" gen -o clean --preset demo --attacks none --seed 6 --population-seed 7 2>/dev/null
OVA=(--set overlay.db=overlay.db --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0
     --set signatures.model=../edge.model --set signatures.clean=clean.pcap
     --set signatures.build_interval=2 --set signatures.auto_approve=5)
# the overlay starts admitting no edge; the edges make their key pairs at their first start, and
# a SIGHUP admits them from the overlay's configuration file (its ports stay bound throughout:
# stopping an overlay and starting another on ports taken by chance raced with the edges'
# own connections for them)
printf '[edges]\n' > overlay.conf
"$O" -c overlay.conf "${OVA[@]}" --set 'overlay.listen=tcp://127.0.0.1:*' \
    --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' --set 'overlay.updates_listen=tcp://127.0.0.1:*' \
    --ports-file o.ports 2>overlay.log &
OVP=$!
EDGES=()
trap 'kill ${EDGES[*]} $OVP 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s o.ports ] && break; sleep 0.1; done
port() { awk -v k=$1 '$1==k{print $2}' $2; }
OEP=$(port reports o.ports) SN=$(port snapshot o.ports) UP=$(port updates o.ports) KEY=$(port key o.ports)
OH=$(port http o.ports)
for i in 1 2 3; do
    "$E" -m ../edge.model --set edge.id=edge$i --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
        --set "overlay.endpoint=$OEP" --set "overlay.server_key=$KEY" --set overlay.key_dir=keys$i \
        --set overlay.spool_dir=spool$i --set "overlay.signatures_snapshot=$SN" \
        --set "overlay.signatures_updates=$UP" --set scoring.local_policy=always \
        --ports-file e$i.ports 2>e$i.log &
    EDGES+=($!)
done
for i in 1 2 3; do for _ in $(seq 100); do [ -s e$i.ports ] && [ -s keys$i/edge.pub ] && break; sleep 0.1; done; done
printf '[edges]\nedge1 = %s\nedge2 = %s\nedge3 = %s\n' "$(cat keys1/edge.pub)" "$(cat keys2/edge.pub)" \
    "$(cat keys3/edge.pub)" > overlay.conf
kill -HUP $OVP
seq_of() { curl -s "http://127.0.0.1:$(port http e$1.ports)/metrics" | awk '$1=="sipguard_signature_sequence"{print $2}'; }
sig_hits() { curl -s "http://127.0.0.1:$(port http e$1.ports)/metrics" | awk '$1=="sipguard_detector_fired_total{detector=\"signature\"}"{print $2}'; }
admitted() { # reporting to the overlay and holding its set, all three
    for i in 1 2 3; do
        [ "$(curl -s "http://127.0.0.1:$(port http e$i.ports)/metrics" | awk '$1=="sipguard_overlay_connected"{print $2}')" = 1 ] &&
            grep -q 'signature set 0 from the overlay' e$i.log || return 1
    done
}
for _ in $(seq 150); do admitted && break; sleep 0.1; done # edges retry the refused handshake every 5 s
T0=$(date +%s.%N)
echo "edge1 alone sees the attack (SIPVicious scans and password guessing):"
"$S" replay -q --hep 127.0.0.1:$(port hep e1.ports) --rate 2000 attack.pcap
for _ in $(seq 600); do
    [ "$(seq_of 1)" != 0 ] && [ "$(seq_of 2)" = "$(seq_of 1)" ] && [ "$(seq_of 3)" = "$(seq_of 1)" ] && break
    sleep 0.1
done
T1=$(date +%s.%N)
printf "  signatures active on all three edges %.1f s after the attack began (set %s)\n" \
    "$(awk -v a="$T0" -v b="$T1" 'BEGIN{print b - a}')" "$(seq_of 1)"
# the overlay may still be clustering the attack's last reports: let the set settle (no new
# set for 3 s, one build a second) before the other edges meet the attack
last=""
for _ in $(seq 10); do
    now="$(seq_of 1) $(seq_of 2) $(seq_of 3)"
    [ "$now" = "$last" ] && break
    last=$now
    sleep 3
done
echo "  set $(seq_of 1) once settled; active: $(curl -s "http://127.0.0.1:$OH/v1/signatures?state=active" | grep -o '"id":"sig-[0-9]*","state"' | cut -d'"' -f4 | tr '\n' ' ')"
echo "the same attack now hits edge2 and edge3:"
for i in 2 3; do
    "$S" replay -q --hep 127.0.0.1:$(port hep e$i.ports) --rate 2000 attack.pcap
done
sleep 1
for i in 2 3; do echo "  edge$i stopped $(sig_hits $i) of $(($(wc -l < attack.labels.csv) - 1)) attack messages by signature"; done
kill -TERM ${EDGES[*]} $OVP 2>/dev/null; wait 2>/dev/null || true
trap - EXIT
