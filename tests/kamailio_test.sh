#!/usr/bin/env bash
# Kamailio beside the edge: Kamailio on loopback proxies sipp calls to a sipp UAS and mirrors
# every SIP message it receives or sends to the edge as HEPv3 (siptrace, trace_mode 1), the
# way an operator would run it: once over UDP (and again in HEP versions 1 and 2, which
# siptrace sends unless hep_version says 3), once over TCP (duplicate_uri with
# transport=tcp, to the edge's hep_tcp_listen), and once over TLS with certificates both ways
# (Kamailio's tls module, to hep_tls_listen with hep_tls_client_ca; skipped without the module,
# package kamailio-tls-modules). The edge must see every one of them, Kamailio's replies counted
# apart; and once more with sip_trace() alone in the request route, which mirrors the requests
# and no reply (the feed docs/dialog.md warns of), as the edge's per-sender count must show.
# Skips (exit 77) when kamailio or sipp (package sip-tester) is not installed.
# usage: kamailio_test.sh SIPGUARD SIPGUARD_EDGE
set -uo pipefail
S=$1 E=$2
KAM=$(command -v kamailio || ls /usr/sbin/kamailio 2>/dev/null) || true
if [ -z "$KAM" ] || ! command -v sipp >/dev/null; then
    echo "skip: kamailio or sipp not installed (apt-get install kamailio sip-tester)"
    exit 77
fi
MODS=$(dirname "$(find /usr/lib -name siptrace.so -path '*kamailio*' 2>/dev/null | head -1)")
[ -d "$MODS" ] || { echo "skip: kamailio's siptrace module not found"; exit 77; }
T=$(mktemp -d)
PIDS=()
trap 'kill_ours 9 "${PIDS[@]}"; rm -rf "$T"' EXIT
. "$(dirname "$(realpath "$0")")/checks.sh" # wait_for, kill_ours
. "$(dirname "$(realpath "$0")")/kamailio.sh" # kamailio_cfg
cd "$T"
CALLS=20
msgs_total() { curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}'; }
sender_responses() { # Kamailio's (it sends HEP from 127.0.0.1)
    curl -s "http://127.0.0.1:$HTTP/metrics" | awk '$1=="sipguard_hep_sender_responses_total{sender=\"127.0.0.1\"}"{print $2}'
}

"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" train -q -o edge.model train.pcap
# for TLS: a CA of the test's own, the edge's certificate (for 127.0.0.1) and Kamailio's
make_certs() {
    local k="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    openssl req -x509 $k -keyout ca.key -out ca.pem -days 2 -subj "/CN=HEP CA" 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1\n' > san.ext &&
        openssl req $k -keyout edge.key -out edge.csr -subj "/CN=edge" 2>/dev/null &&
        openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out edge.pem -days 2 -extfile san.ext 2>/dev/null &&
        openssl req $k -keyout kam.key -out kam.csr -subj "/CN=kamailio" 2>/dev/null &&
        openssl x509 -req -in kam.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out kam.pem -days 2 2>/dev/null
}
trace_run() { # udp, tcp or tls: HEP over that transport; then the HEP version (3)
    local TR=$1 VER=${2:-3} IN HEP L=$1
    [ "$VER" != 3 ] && L="$1, HEPv$VER"
    WIRE_HTTP=""
    case $TR in
    udp) IN=(--set ingest.hep_listen=127.0.0.1:0) ;;
    tcp) IN=(--set ingest.hep_listen= --set ingest.hep_tcp_listen=127.0.0.1:0) ;;
    tls) IN=(--set ingest.hep_listen= --set ingest.hep_tls_listen=127.0.0.1:0 --set ingest.hep_tls_cert=edge.pem
             --set ingest.hep_tls_key=edge.key --set ingest.hep_tls_client_ca=ca.pem) ;;
    esac
    rm -f ports seen.jsonl
    "$E" -m edge.model "${IN[@]}" --set http.listen=127.0.0.1:0 \
        --set report.anomalies_only=no --set report.jsonl=seen.jsonl --set scoring.local_policy=never \
        --ports-file ports 2>edge-$TR.log &
    EDGE=$!; PIDS+=("$EDGE")
    wait_for 20 "[ -s ports ]" || { cat edge-$TR.log; exit 1; }
    HEP=$(awk -v k=$([ $TR = udp ] && echo hep || echo hep_$TR) '$1==k{print $2}' ports) HTTP=$(awk '$1=="http"{print $2}' ports)

    # ports for Kamailio and the two sipp ends: random in a high range, one attempt each
    BASE=$((21000 + (RANDOM % 400) * 10))
    KPORT=$BASE UAS=$((BASE + 1)) UAC=$((BASE + 2))
    # over TCP or TLS Kamailio needs a socket of its own to send from; over TLS a certificate to
    # show (client) and the CA to check the edge's against, and one for its listener (server)
    TCP_LISTEN=""; URI_TR=""; TLS_MOD=""
    [ $TR = tcp ] && TCP_LISTEN="listen=tcp:127.0.0.1:$KPORT" URI_TR=";transport=tcp"
    if [ $TR = tls ]; then
        TCP_LISTEN="enable_tls=yes
listen=tls:127.0.0.1:$((KPORT + 5))" URI_TR=";transport=tls"
        TLS_MOD='loadmodule "tls.so"
    modparam("tls", "config", "'$T'/tls.cfg")'
        printf '[server:default]\nmethod = TLSv1.2+\ncertificate = %s/kam.pem\nprivate_key = %s/kam.key\n[client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\nca_list = %s/ca.pem\ncertificate = %s/kam.pem\nprivate_key = %s/kam.key\n' "$T" "$T" "$T" "$T" "$T" > tls.cfg
    fi
    kamailio_cfg "$MODS" $KPORT $UAS "$TCP_LISTEN
    $TLS_MOD
    $(siptrace_cfg "sip:127.0.0.1:$HEP$URI_TR" 1 $VER)" "" > kamailio.cfg
    local STARTED=$(date +%s)
    # the ground truth, when this machine lets us capture: a second edge watching Kamailio's port on
    # the loopback interface sees on the wire every message Kamailio receives or sends (not the
    # HEP datagrams, which Kamailio sends from its SIP port)
    if "$E" -m edge.model --set http.listen= --set ingest.hep_listen= --set ingest.interface=lo \
        --set ingest.pcap_file=train.pcap --set ingest.pcap_exit=yes >/dev/null 2>&1; then
        "$E" -m edge.model --set ingest.hep_listen= --set http.listen=127.0.0.1:0 \
            --set ingest.interface=lo --set "ingest.bpf=udp port $KPORT and not udp dst port $HEP" \
            --set "ingest.sip_ports=$KPORT-$KPORT" --set scoring.local_policy=never \
            --ports-file wire.ports 2>wire-$TR.log &
        WIRE_EDGE=$!; PIDS+=("$WIRE_EDGE")
        wait_for 20 "[ -s wire.ports ]" && WIRE_HTTP=$(awk '$1=="http"{print $2}' wire.ports)
        rm -f wire.ports
    fi
    "$KAM" -f kamailio.cfg -DD -E -w "$T" 2>kamailio-$TR.log &
    KPID=$!; PIDS+=("$KPID")
    sipp -sn uas -i 127.0.0.1 -p $UAS -nostdin -timeout 60s >/dev/null 2>uas.log &
    UPID=$!; PIDS+=("$UPID")
    sleep 1
    if ! kill -0 $KPID 2>/dev/null; then echo "kamailio did not start:"; tail -20 kamailio-$TR.log; exit 1; fi
    sipp -sn uac 127.0.0.1:$KPORT -s 100 -i 127.0.0.1 -p $UAC -m $CALLS -r 10 -d 200 -nostdin \
        -timeout 60s -trace_stat >/dev/null 2>uac.log
    UAC_RC=$?
    # per call: INVITE, ACK, BYE in and out (6); 180, 200, 200 from the UAS (3); 100, 180, 200,
    # 200 to the caller (4)
    EXPECT=$((CALLS * 13))
    wait_for 20 "[ \$(msgs_total) -ge $EXPECT ]"
    SEEN=$(msgs_total)
    RESPONSES=$(sender_responses)
    WIRE=""
    if [ -n "${WIRE_HTTP:-}" ]; then
        WIRE=$(HTTP=$WIRE_HTTP msgs_total)
        kill -TERM $WIRE_EDGE; wait $WIRE_EDGE
    fi
    kill -TERM $EDGE; wait $EDGE; ERC=$?
    kill -TERM $KPID $UPID 2>/dev/null
    wait $KPID $UPID 2>/dev/null
    say "$L: sipp completed $CALLS calls through Kamailio" "[ $UAC_RC = 0 ]"
    if [ -n "$WIRE" ]; then
        # tm's timer retransmissions go on the wire but siptrace does not mirror them, so the wire
        # may carry a few more than HEP when a reply was slow (seen: 262 for 260 on a busy machine)
        say "$L: the edge saw through HEP every message of the calls, as the wire did ($SEEN; $EXPECT in the flows; $WIRE on the wire, retransmissions included)" \
            "[ $SEEN -ge $EXPECT ] && [ $SEEN -le $WIRE ] && [ $((WIRE - SEEN)) -le $((CALLS / 2)) ]"
    else
        echo "no live capture here: checking against the expected call flows only"
        say "$L: the edge saw at least every message of the call flows ($SEEN, at least $EXPECT)" "[ $SEEN -ge $EXPECT ]"
    fi
    # retransmissions can add messages to a call, never take them away
    CIDS=$(grep -o '"call_id":"[^"]*"' seen.jsonl | sort | uniq -c | awk '$1>=13' | wc -l)
    say "$L: every call's messages, by Call-ID ($CIDS of $CALLS calls with all 13 or more)" "[ $CIDS = $CALLS ]"
    say "$L: HEP carried the original addresses (Kamailio's port $KPORT in src or dst)" "grep -q '127.0.0.1:$KPORT' seen.jsonl"
    say "$L: every message HEP carried parsed (its payload taken whole)" "! grep -q '\"parse_ok\":false' seen.jsonl"
    # per call, the 100, 180, 200 and 200 to the caller and the 180, 200 and 200 from the UAS
    say "$L: trace_mode 1 mirrors the replies too: Kamailio's responses counted ($RESPONSES, at least $((CALLS * 7)))" \
        "[ \"\${RESPONSES:-0}\" -ge $((CALLS * 7)) ]"
    [ $TR = tls ] && say "tls: Kamailio's certificate was taken, no session failed" \
        "grep -q 'tls, client certificates' edge-tls.log && ! grep -q 'over TLS:' edge-tls.log"
    say "$L: the edge stopped cleanly" "[ $ERC = 0 ]"
    # HEPv2 carries the capture time in the sender's byte order: the messages' must be now's
    if [ $VER = 2 ]; then
        local TS=$(grep -o '"ts":[0-9]*' seen.jsonl | cut -d: -f2 | sort -n | sed -n '1p;$p' | tr '\n' ' ')
        say "HEPv2: the capture times Kamailio sent are read as sent (first and last: $TS; started $STARTED)" \
            "[ $(echo $TS | cut -d' ' -f1) -ge $((STARTED - 5)) ] && [ $(echo $TS | cut -d' ' -f2) -le $(($(date +%s) + 5)) ]"
    fi
}
# Kamailio's sip_trace() called in the request route, without its "t" mode (and no trace_mode):
# it mirrors the requests Kamailio receives and none of the replies, the feed docs/dialog.md
# warns of; the edge must show it in the sender's response count
reqonly_run() {
    rm -f ports
    "$E" -m edge.model --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
        --set scoring.local_policy=never --ports-file ports 2>edge-reqonly.log &
    EDGE=$!; PIDS+=("$EDGE")
    wait_for 20 "[ -s ports ]" || { cat edge-reqonly.log; exit 1; }
    HEP=$(awk '$1=="hep"{print $2}' ports) HTTP=$(awk '$1=="http"{print $2}' ports)
    BASE=$((25000 + (RANDOM % 400) * 10))
    KPORT=$BASE UAS=$((BASE + 1)) UAC=$((BASE + 2))
    kamailio_cfg "$MODS" $KPORT $UAS "$(siptrace_cfg "sip:127.0.0.1:$HEP")" 'sip_trace();' > kamailio.cfg
    "$KAM" -f kamailio.cfg -DD -E -w "$T" 2>kamailio-reqonly.log &
    KPID=$!; PIDS+=("$KPID")
    sipp -sn uas -i 127.0.0.1 -p $UAS -nostdin -timeout 60s >/dev/null 2>uas.log &
    UPID=$!; PIDS+=("$UPID")
    sleep 1
    if ! kill -0 $KPID 2>/dev/null; then echo "kamailio did not start:"; tail -20 kamailio-reqonly.log; exit 1; fi
    sipp -sn uac 127.0.0.1:$KPORT -s 100 -i 127.0.0.1 -p $UAC -m $CALLS -r 10 -d 200 -nostdin \
        -timeout 60s >/dev/null 2>uac.log
    UAC_RC=$?
    # per call, the INVITE, ACK and BYE Kamailio receives from the caller
    wait_for 20 "[ \$(msgs_total) -ge $((CALLS * 3)) ]"
    sleep 1 # anything more that comes
    SEEN=$(msgs_total) RESPONSES=$(sender_responses)
    kill -TERM $EDGE; wait $EDGE
    kill -TERM $KPID $UPID 2>/dev/null
    wait $KPID $UPID 2>/dev/null
    say "sip_trace() alone: sipp completed $CALLS calls through Kamailio" "[ $UAC_RC = 0 ]"
    say "sip_trace() alone mirrors the requests and no reply ($SEEN messages, ${RESPONSES:-none} responses from Kamailio)" \
        "[ $SEEN -ge $((CALLS * 3)) ] && [ \"$RESPONSES\" = 0 ]"
}
fails=0
say() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
trace_run udp
trace_run tcp
reqonly_run
# the older HEP versions siptrace sends unless hep_version is set (docs/edge.md), over UDP
trace_run udp 1
trace_run udp 2
if [ -f "$MODS/tls.so" ] && command -v openssl >/dev/null && make_certs; then
    trace_run tls
else
    echo "skip: HEP over TLS from Kamailio (its tls module, package kamailio-tls-modules, or openssl missing)"
fi
[ $fails = 0 ]
