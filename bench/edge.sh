#!/usr/bin/env bash
# Benchmarks of sipguard-edge, one core for the edge (taskset), the sender on another:
#   - end-to-end messages/s, HEPv3 datagrams in -> verdict, for each local-model policy: the
#     sender outruns the edge, and the rate is read from /metrics over a 2 s window while it does;
#     and HEPv3 over one TCP connection and over one TLS connection, local model never; and
#     with every message recorded
#     ([record] verdicts = all)
#   - verdict endpoint latency (p50/p99) over one keep-alive connection
#   - peak RSS of the edge with a 10,000-message model
#   - a flood (every message an anomaly, local model never) with every report made, with
#     [report] max_rate = 100, and with that and bans ([ban] after = 3)
#   - a reload (SIGHUP) with the model file unchanged (kept) and with a new one (loaded)
# Fixed inputs from fixed seeds. Prints "name value" lines. usage: bench/edge.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
B="$(cd "$BUILD" && pwd)"
S="$B/cli/sipguard" E="$B/detector/sipguard-edge"
T=$(mktemp -d)
EDGE=""
trap '[ -z "$EDGE" ] || kill $EDGE 2>/dev/null || true; rm -rf "$T"' EXIT
cd "$T"
PIN0="" PIN1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN0="taskset -c 0" PIN1="taskset -c 1"; fi
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m{print $2}'; }
scored() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}'; }

"$S" gen -o tr --attacks none --users 100 --duration 3600 --call-rate 4 --seed 7 2>/dev/null
"$S" gen -o normal --preset demo --attacks none --seed 8 --population-seed 7 2>/dev/null
"$S" train -q -o m.model tr.pcap
echo "edge_model_training_messages $(($(wc -l < tr.labels.csv) - 1))"
# Starts an edge on one core with the given settings (sets EDGE, HTTP), sends it the capture
# named by CAPTURE from the other core faster than it can take, and prints NAME and the
# messages a second it scored over 2 s, the sender still running.
start_edge_and_flood() { # NAME CAPTURE SETTING...
    local name=$1 capture=$2 inputs=() i
    shift 2
    for i in $(seq 300); do inputs+=("$capture"); done
    rm -f ports
    local tr=${HEP_OVER:-udp} # tcp, tls: HEP over one connection of that kind
    local listen=(--set ingest.hep_tcp_listen=$([ $tr = tcp ] && echo 127.0.0.1:0))
    [ $tr != tls ] || listen=(--set ingest.hep_tls_listen=127.0.0.1:0 --set ingest.hep_tls_cert=edge.pem
                              --set ingest.hep_tls_key=edge.key)
    $PIN0 "$E" -m m.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen=127.0.0.1:0 \
        "${listen[@]}" --set report.jsonl=/dev/null "$@" --ports-file ports 2>/dev/null &
    EDGE=$!
    for _ in $(seq 100); do [ -s ports ] && break; sleep 0.1; done
    HTTP=$(awk '$1=="http"{print $2}' ports) HEP=$(awk -v k=$([ $tr = udp ] && echo hep || echo hep_$tr) '$1==k{print $2}' ports)
    local ca=()
    [ $tr != tls ] || ca=(--tls-ca ca.pem)
    $PIN1 "$S" replay -q "${ca[@]}" $([ $tr = udp ] && echo --hep || echo --hep-$tr) 127.0.0.1:$HEP \
        --rate 300000 "${inputs[@]}" &
    local sender=$!
    sleep 1
    local a ta b tb
    a=$(scored $HTTP); ta=$(date +%s.%N)
    sleep 2
    b=$(scored $HTTP); tb=$(date +%s.%N)
    kill $sender 2>/dev/null; wait $sender 2>/dev/null || true
    echo "$name $(echo "$a $b $ta $tb" | awk '{printf "%.0f", ($2-$1)/($4-$3)}')"
}

for policy in never near always; do
    start_edge_and_flood edge_hep_msgs_per_s_local_$policy normal.pcap \
        --set scoring.local_policy=$policy --set scoring.local_margin=0.2
    if [ $policy = always ]; then
        echo "edge_peak_rss_kb $(awk '/VmHWM/{print $2}' /proc/$EDGE/status)"
    fi
    $PIN1 "$B/bench/http_bench" $HTTP normal.pcap $([ $policy = always ] && echo 5000 || echo 20000) |
        sed "s/^/edge_local_${policy}_/"
    kill -TERM $EDGE; wait $EDGE || true; EDGE=""
done
# the same over one TCP connection ([ingest] hep_tcp_listen): TCP's flow control paces the
# sender to what the edge takes
HEP_OVER=tcp start_edge_and_flood edge_hep_tcp_msgs_per_s_local_never normal.pcap \
    --set scoring.local_policy=never
kill -TERM $EDGE; wait $EDGE || true; EDGE=""
# and over TLS ([ingest] hep_tls_listen; the certificate made here by openssl)
K="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req $K -keyout edge.key -out edge.csr -subj "/CN=edge" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out edge.pem -days 2 -extfile san.ext 2>/dev/null
HEP_OVER=tls start_edge_and_flood edge_hep_tls_msgs_per_s_local_never normal.pcap \
    --set scoring.local_policy=never
kill -TERM $EDGE; wait $EDGE || true; EDGE=""
# the same datagrams with every message written to pcap files ([record] dir, verdicts all),
# and what that writes a second
start_edge_and_flood edge_hep_msgs_per_s_local_never_record_all normal.pcap \
    --set scoring.local_policy=never --set record.dir=rec --set record.verdicts=all
echo "edge_record_dropped $(metric $HTTP sipguard_record_dropped_total)"
kill -TERM $EDGE; wait $EDGE || true; EDGE=""

"$S" gen -o flood --no-normal --attacks flood --attack-scale 4 --seed 9 --population-seed 7 2>/dev/null
for cap in 0 100; do
    start_edge_and_flood edge_flood_msgs_per_s_max_rate_$cap flood.pcap \
        --set scoring.local_policy=never --set report.max_rate=$cap
    echo "edge_flood_anomaly_share_max_rate_$cap $(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^sipguard_messages_total/{s+=$2; if ($1 ~ /verdict="normal"/) n+=$2} END{printf "%.3f", s ? 1 - n/s : 0}')"
    kill -TERM $EDGE; wait $EDGE || true; EDGE=""
done
# the same flood with bans: a source's third blocking judgement within a minute bans it, and
# its later messages are answered by a lookup (the capture is sent again and again)
start_edge_and_flood edge_flood_msgs_per_s_banned_max_rate_100 flood.pcap \
    --set scoring.local_policy=never --set report.max_rate=100 --set ban.after=3 --set ban.file=bans.json
echo "edge_flood_banned_share $(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^sipguard_messages_total/{s+=$2; if ($1 ~ /verdict="banned"/) b+=$2} END{printf "%.3f", s ? b/s : 0}')"
kill -TERM $EDGE; wait $EDGE || true; EDGE=""

# reloads (SIGHUP; a signature set from the overlay is taken the same way) with the model file
# unchanged, which is kept, and with a new file, which is loaded: median of five, ms from the
# signal until sipguard_reloads_total moves
$PIN0 "$E" -m m.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen=127.0.0.1:0 \
    --ports-file ports 2>/dev/null &
EDGE=$!
rm -f ports
for _ in $(seq 100); do [ -s ports ] && break; sleep 0.1; done
HTTP=$(awk '$1=="http"{print $2}' ports)
for kind in unchanged new; do
    for i in 1 2 3 4 5; do
        [ $kind = new ] && cp m.model m.tmp && mv m.tmp m.model
        before=$(metric $HTTP sipguard_reloads_total)
        t0=$(date +%s%N)
        kill -HUP $EDGE
        for _ in $(seq 2000); do [ "$(metric $HTTP sipguard_reloads_total)" -gt "$before" ] && break; sleep 0.005; done
        echo $(( ($(date +%s%N) - t0) / 1000000 ))
    done | sort -n | sed -n 3p | sed "s/^/edge_reload_ms_model_$kind /"
done
kill -TERM $EDGE; wait $EDGE || true; EDGE=""
