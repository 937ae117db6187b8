#!/usr/bin/env bash
# Integration tests of sipguard-edge on loopback: configuration handling, HEPv3 and UDP ingest,
# pcap replay, live capture (when allowed), the HTTP endpoint, signatures, SIGHUP reloads, and the
# report path to an overlay stub with the stub or the edge killed mid-stream.
# Every server listens on 127.0.0.1 on a port it picks itself; every wait is bounded; only
# processes this script started are stopped, by PID.
# usage: edge_test.sh SIPGUARD SIPGUARD_EDGE OVERLAY_STUB
set -uo pipefail
S=$1 E=$2 STUB=$3
T=$(mktemp -d)
PIDS=()
cleanup() {
    kill_ours 9 "${PIDS[@]}"
    rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$(realpath "$0")")/checks.sh" # check, wait_for, kill_ours, port, metric
cd "$T"
msgs_total() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}'; }
start_edge() { # name, then edge arguments; sets EDGE_PID, HTTP, HEP, UDP
    local name=$1; shift
    rm -f "$name.ports"
    "$E" --ports-file "$name.ports" "$@" 2>"$name.log" &
    EDGE_PID=$!
    PIDS+=("$EDGE_PID")
    if ! wait_for 20 "[ -s $name.ports ]"; then
        echo "edge $name did not start:"; cat "$name.log"; return 1
    fi
    HTTP=$(port http "$name.ports") HEP=$(port hep "$name.ports") UDP=$(port udp "$name.ports")
}
BAD_EXITS=0
stop_edge() { # every stop by SIGTERM must be a clean exit 0 (under ASan: no leak, no error)
    kill -TERM "$1"; wait "$1"; local rc=$?
    [ $rc = 0 ] || { BAD_EXITS=$((BAD_EXITS + 1)); echo "edge $1 exited with $rc"; }
    return $rc
}

# --- data: a model trained on one day of a population, test traffic from another day ---
"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" gen -o test --seed 4 --population-seed 3 --attack-scale 0.3 2>/dev/null
"$S" train -q -o edge.model train.pcap
N=$(($(wc -l < test.labels.csv) - 1))
ATTACKS=$(grep -c ',attack,' test.labels.csv)
# reference verdicts from the offline scorer, global model only and with the local model
REF_G=$("$S" score -q --no-local -a -m edge.model test.pcap | wc -l)
REF_GL=$("$S" score -q -a -m edge.model test.pcap | wc -l)
echo "test capture: $N messages, $ATTACKS attack; offline anomalies: $REF_G global, $REF_GL global+local"
COMMON=(-m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen=127.0.0.1:0)

# --- configuration ---
"$E" --print-config > full.conf
SRC=$(cd "$(dirname "$0")/.." && pwd)
check "etc/sipguard-edge.conf is what --print-config writes (docs cannot drift)" \
    "grep -v '^# sipguard-edge configuration\|^# Copy to\|^# when an overlay' '$SRC/etc/sipguard-edge.conf' | sed '1{/^$/d}' | diff -q - full.conf >/dev/null"
check "--print-config writes a config that --check-config accepts" \
    "'$E' -c full.conf --set edge.model=edge.model --check-config >/dev/null 2>&1"
check "--print-config onto a full disk exits 1 and says so (a config written half would pass unnoticed)" \
    "! '$E' --print-config >/dev/full 2>pcfull.err && grep -q 'sipguard-edge: writing standard output failed: No space left on device' pcfull.err"
# (into a file, not a pipe: grep -q leaving early would end the edge by SIGPIPE, which pipefail
# counts as a failure)
"$E" -m edge.model --check-config 2>checked.err >/dev/null
check "--check-config names the model it loaded, its size and thresholds" \
    "grep -q '^sipguard-edge: model edge.model: [0-9]* messages ([0-9]* held out), [0-9]* distinct vectors, thresholds [0-9.]* (global) and [0-9.]* (local); 0 signatures; 0 allowed sources$' checked.err"
"$E" -m edge.model --set http.api_token=t0ps3cret --set ingest.hep_auth_key=h3ps3cret --check-config > shown.conf 2>/dev/null
check "--check-config (which the unit runs before every start, into the journal) names secrets but does not show them" \
    "grep -q '^# api_token = (set; not shown)' shown.conf && grep -q '^# hep_auth_key = (set; not shown)' shown.conf && ! grep -q 's3cret' shown.conf"
printf '[edge]\nmodel = edge.model\n[ingest]\nhep_listen = 127.0.0.1:0\nbogus = 1\n' > bad1.conf
"$E" -c bad1.conf --check-config > /dev/null 2> err1; rc=$?
check "unknown key: exit 2 naming file, line and key" "[ $rc = 2 ] && grep -q 'bad1.conf:5: \[ingest\] bogus: unknown key' err1"
printf '[scoring]\nlocal_margin = lots\n' > bad2.conf
"$E" -c bad2.conf -m edge.model --check-config > /dev/null 2> err2; rc=$?
check "wrong type: exit 2 with the expected type" "[ $rc = 2 ] && grep -q 'expected a number' err2"
printf '[nosuch]\nx = 1\n' > bad3.conf
"$E" -c bad3.conf --check-config > /dev/null 2> err3; rc=$?
check "unknown section: exit 2" "[ $rc = 2 ] && grep -q 'unknown section' err3"
"$E" --set ingest.hep_listen= --set http.listen= -m edge.model --check-config >/dev/null 2>err4; rc=$?
check "no input at all: exit 2 with a reason" "[ $rc = 2 ] && grep -q 'no input' err4"
printf 'garbage' > broken.model
"$E" -m broken.model --check-config >/dev/null 2>err5; rc=$?
check "bad model: exit 1 naming the file" "[ $rc = 1 ] && grep -q 'broken.model' err5"
"$E" -c /nonexistent.conf --check-config >/dev/null 2>err6; rc=$?
check "missing config file: exit 2" "[ $rc = 2 ] && grep -q 'nonexistent.conf' err6"

# --- HEPv3 ingest, global model only: every message scored, the same anomalies as offline ---
start_edge hep "${COMMON[@]}" --set scoring.local_policy=never --set report.jsonl=hep.jsonl || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
DROPPED=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '/^sipguard_udp_dropped_total/{s+=$2} END{print s+0}')
check "HEP: every message scored ($(msgs_total $HTTP) of $N; kernel dropped $DROPPED)" "[ \$(msgs_total $HTTP) = $N ]"
stop_edge $EDGE_PID
check "HEP: anomaly reports equal the offline scorer's ($(wc -l < hep.jsonl) vs $REF_G)" "[ \$(wc -l < hep.jsonl) = $REF_G ]"
REQUIRED=$(tr -d '\n' < "$SRC/docs/report-schema.json" | grep -o '"required": *\[[^]]*\]' | head -1 | sed 's/.*\[//; s/\]//' | tr -d ' "' | tr ',' ' ')
missing=""
for k in $REQUIRED; do head -1 hep.jsonl | grep -q "\"$k\":" || missing="$missing $k"; done
check "reports hold every field docs/report-schema.json requires (${REQUIRED:0:40}...)${missing:+ missing:$missing}" "[ -z '$missing' ] && [ -n '$REQUIRED' ]"
check "HEP: reports carry the inner addresses and a sequence" "head -1 hep.jsonl | grep -q '\"seq\":1' && ! grep -q '\"src\":\"127.0.0.1' hep.jsonl"
# every source allowed: the same messages judged anomalous, none reported, each counted waived
printf '0.0.0.0/0\n::/0\n' > allow_all.txt
start_edge hepallow "${COMMON[@]}" --set scoring.local_policy=never --set report.jsonl=hepallow.jsonl \
    --set verdict.allow_file=allow_all.txt || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
WAIVED=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '/^sipguard_verdicts_waived_total\{reason="allowed"/{s+=$2} END{print s+0}')
JUDGED=$(metric $HTTP 'sipguard_messages_total{source="hep",verdict="anomaly"}')
stop_edge $EDGE_PID
check "HEP from allowed sources: $JUDGED judged anomalous as before, $WAIVED waived, $(wc -l < hepallow.jsonl) reported" \
    "[ '$JUDGED' = $REF_G ] && [ '$WAIVED' = $REF_G ] && [ ! -s hepallow.jsonl ]"
# global-only scoring writes no vector; a report's explanation counts the message again
features_by_call() {
    while IFS= read -r l; do
        printf '%s %s\n' "$(printf '%s' "$l" | grep -o '"call_id":"[^"]*"' | head -1)" \
            "$(printf '%s' "$l" | grep -o '"feature":"[^"]*"' | tr '\n' ' ')"
    done < "$1" | sort
}
"$S" score -q --no-local -a --explain -m edge.model test.pcap > ref_explain.jsonl
features_by_call hep.jsonl > edge.feat
features_by_call ref_explain.jsonl > ref.feat
check "HEP: each report's top features are the offline scorer's ($(grep -c feature edge.feat) reports)" \
    "[ -s edge.feat ] && grep -q feature edge.feat && cmp -s edge.feat ref.feat"

# --- bad datagrams on the HEP port: counted as skipped, the edge goes on ---
start_edge hepbad "${COMMON[@]}" --set scoring.local_policy=never || exit 1
printf 'HEP3\x00\xff\x00\x00\x00\x01\x00\x07garbage' > badhep.sip
head -c 1500 /dev/urandom > noise.sip
"$S" replay -q --udp 127.0.0.1:$HEP badhep.sip noise.sip 2>/dev/null
wait_for 10 "[ \"\$(metric $HTTP sipguard_skipped_total)\" -ge 1 ]"
check "HEP port: truncated HEP and noise are counted as skipped ($(metric $HTTP sipguard_skipped_total)), not scored" \
    "[ \"\$(metric $HTTP sipguard_skipped_total)\" -ge 1 ] && [ \$(msgs_total $HTTP) -le 1 ] && [ \"\$(curl -s http://127.0.0.1:$HTTP/healthz)\" = ok ]"
# HEPv1 and HEPv2 (Kamailio siptrace sends version 1 unless hep_version is set), on a HEP port
# that is not 9060: header, IPv4 192.0.2.7:5060 -> 192.0.2.1:5060, (v2) time and capture id
OPT=$'OPTIONS sip:192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK77\r\nFrom: <sip:a@192.0.2.7>;tag=7\r\nTo: <sip:192.0.2.1>\r\nCall-ID: hep12@192.0.2.7\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n'
{ printf '\x01\x10\x02\x11\x13\xc4\x13\xc4\xc0\x00\x02\x07\xc0\x00\x02\x01'; printf '%s' "$OPT"; } > hep1.sip
{ printf '\x02\x10\x02\x11\x13\xc4\x13\xc4\xc0\x00\x02\x07\xc0\x00\x02\x01'
  printf '\x00\xf1\x53\x65\x20\xa1\x07\x00\x07\x00'; printf '%s' "$OPT"; } > hep2.sip
BEFORE=$(msgs_total $HTTP)
"$S" replay -q --udp 127.0.0.1:$HEP hep1.sip hep2.sip 2>/dev/null
wait_for 10 "[ \$(msgs_total $HTTP) -ge $((BEFORE + 2)) ]"
check "HEPv1 and HEPv2 on the HEP port: both messages judged" "[ \$(msgs_total $HTTP) = $((BEFORE + 2)) ]"
stop_edge $EDGE_PID

# --- HEP auth key: datagrams without it are refused and counted ---
start_edge auth "${COMMON[@]}" --set ingest.hep_auth_key=s3cret --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 --auth-key wrong test.pcap
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 --auth-key s3cret test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
check "HEP auth key: only the right key is scored ($(msgs_total $HTTP) of $N)" "[ \$(msgs_total $HTTP) = $N ]"
check "HEP auth key: the wrong ones are counted" "[ \$(metric $HTTP sipguard_hep_rejected_total) = $N ]"
"$S" replay -q --udp 127.0.0.1:$HEP hep1.sip hep2.sip 2>/dev/null
wait_for 10 "[ \$(metric $HTTP sipguard_hep_rejected_total) = $((N + 2)) ]"
check "HEP auth key: HEPv1 and v2, which cannot carry one, are refused too" \
    "[ \$(metric $HTTP sipguard_hep_rejected_total) = $((N + 2)) ] && [ \$(msgs_total $HTTP) = $N ]"
stop_edge $EDGE_PID

# --- HEP over TCP: the same verdicts; packets split across writes, streams that are not HEP,
# a connection closed inside a packet, and more senders than the edge holds ---
be16() { printf "\\x$(printf %02x $(($1 >> 8)))\\x$(printf %02x $(($1 & 255)))"; }
hep_packet() { # a HEPv3 packet (IPv4, payload type SIP, the payload) around the bytes of file $1
    local n
    n=$(stat -c %s "$1")
    printf 'HEP3'; be16 $((6 + 7 + 7 + 6 + n))
    printf '\x00\x00\x00\x01\x00\x07\x02\x00\x00\x00\x0b\x00\x07\x01\x00\x00\x00\x0f'; be16 $((6 + n)); cat "$1"
}
# (no per-source limit here: every connection of this part comes from 127.0.0.1; the next part
# tests the limit)
start_edge heptcp "${COMMON[@]}" --set ingest.hep_listen= --set ingest.hep_tcp_listen=127.0.0.1:0 \
    --set ingest.hep_tcp_per_source=0 \
    --set scoring.local_policy=never --set report.jsonl=heptcp.jsonl || exit 1
HEPT=$(port hep_tcp heptcp.ports)
"$S" replay -q --hep-tcp 127.0.0.1:$HEPT --rate 0 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ] && [ \$(wc -l < heptcp.jsonl) -ge $REF_G ]"
check "HEP over TCP: every message scored, the anomalies the offline scorer's ($(msgs_total $HTTP) of $N, $(wc -l < heptcp.jsonl) vs $REF_G)" \
    "[ \$(msgs_total $HTTP) = $N ] && [ \$(wc -l < heptcp.jsonl) = $REF_G ] && [ \"\$(metric $HTTP sipguard_skipped_total)\" = 0 ]"
printf 'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\nCall-ID: tcp1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' > opt.sip
hep_packet opt.sip > opt.hep
exec {HT}<>/dev/tcp/127.0.0.1/$HEPT
head -c 9 opt.hep >&$HT; sleep 0.3; tail -c +10 opt.hep >&$HT; sleep 0.3
cat opt.hep opt.hep >&$HT # two in one write
wait_for 10 "[ \$(msgs_total $HTTP) = $((N + 3)) ]"
check "HEP over TCP: a packet split across writes, and two in one, are each scored once ($(($(msgs_total $HTTP) - N)) of 3)" \
    "[ \$(msgs_total $HTTP) = $((N + 3)) ] && [ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 1 ]"
head -c 20 opt.hep >&$HT
exec {HT}>&-
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 0 ]"
check "HEP over TCP: a sender gone inside a packet is counted, the part not scored" \
    "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 0 ] && [ \"\$(metric $HTTP sipguard_skipped_total)\" = 1 ] && [ \$(msgs_total $HTTP) = $((N + 3)) ]"
exec {HT}<>/dev/tcp/127.0.0.1/$HEPT
head -c 3000 /dev/urandom | tr 'H' 'h' >&$HT
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 0 ]"
exec {HT}>&-
check "HEP over TCP: a stream that is not HEP is closed and counted ($(metric $HTTP sipguard_hep_rejected_total) refused), not scored" \
    "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 0 ] && [ \"\$(metric $HTTP sipguard_hep_rejected_total)\" = 1 ] && [ \$(msgs_total $HTTP) = $((N + 3)) ]"
CONNS=()
for i in $(seq 65); do exec {c}<>/dev/tcp/127.0.0.1/$HEPT; CONNS+=($c); done
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tcp_refused_total)\" = 1 ]"
check "HEP over TCP: 64 senders held at once, the 65th closed and counted" \
    "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 64 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_refused_total)\" = 1 ]"
sleep 10.5 # the 64 have been silent for 10 s: a new sender takes the slot of the one silent longest
"$S" replay -q --hep-tcp 127.0.0.1:$HEPT opt.sip 2>/dev/null
wait_for 10 "[ \$(msgs_total $HTTP) = $((N + 4)) ]"
check "HEP over TCP: with all 64 silent for 10 s, a new sender takes the slot of one ($(metric $HTTP sipguard_hep_tcp_evicted_total) evicted, $(metric $HTTP sipguard_hep_tcp_refused_total) refused)" \
    "[ \$(msgs_total $HTTP) = $((N + 4)) ] && [ \"\$(metric $HTTP sipguard_hep_tcp_evicted_total)\" = 1 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_refused_total)\" = 1 ]"
for c in "${CONNS[@]}"; do exec {c}>&-; done
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 0 ]"
"$S" replay -q --hep-tcp 127.0.0.1:$HEPT opt.sip 2>/dev/null
wait_for 10 "[ \$(msgs_total $HTTP) = $((N + 5)) ]"
check "HEP over TCP: once they are gone a new sender is served" "[ \$(msgs_total $HTTP) = $((N + 5)) ]"
stop_edge $EDGE_PID
check "HEP over TCP: the skips are named at the stop" \
    "grep -q 'hep: TCP connection closed inside a packet' heptcp.log && grep -q 'hep: TCP stream not HEPv3' heptcp.log"

# --- HEP over TCP, one source's share: four connections from 127.0.0.1 hold that source's
# limit, not the edge's; another address (127.0.0.2) is served. Two trickle bytes of a packet
# they never finish, two send whole packets with nothing in them: after 10 s without a message
# each gives its slot to a new sender from 127.0.0.1 ---
start_edge hepsrc "${COMMON[@]}" --set ingest.hep_listen= --set ingest.hep_tcp_listen=127.0.0.1:0 \
    --set ingest.hep_tcp_per_source=4 --set scoring.local_policy=never || exit 1
HEPT=$(port hep_tcp hepsrc.ports)
TRICKLE=()
for i in 1 2 3 4; do exec {c}<>/dev/tcp/127.0.0.1/$HEPT; TRICKLE+=($c); done
for c in "${TRICKLE[@]:0:2}"; do head -c 4 opt.hep >&$c; done
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 4 ]"
exec {c}<>/dev/tcp/127.0.0.1/$HEPT
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tcp_source_limited_total)\" = 1 ]"
exec {c}>&-
check "HEP over TCP: a fifth connection from one source is refused at hep_tcp_per_source = 4 ($(metric $HTTP sipguard_hep_tcp_source_limited_total) limited, $(metric $HTTP sipguard_hep_tcp_refused_total) refused)" \
    "[ \"\$(metric $HTTP sipguard_hep_tcp_source_limited_total)\" = 1 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_refused_total)\" = 1 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 4 ]"
"$S" replay -q --hep-tcp 127.0.0.1:$HEPT --bind 127.0.0.2 opt.sip
wait_for 10 "[ \$(msgs_total $HTTP) = 1 ]"
check "HEP over TCP: another source is served while one holds its limit ($(msgs_total $HTTP) of 1 scored)" \
    "[ \$(msgs_total $HTTP) = 1 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_refused_total)\" = 1 ]"
for t in 1 2 3 4 5; do
    sleep 2.1
    for c in "${TRICKLE[@]:0:2}"; do head -c $((4 + t)) opt.hep | tail -c 1 >&$c; done
    for c in "${TRICKLE[@]:2:2}"; do printf 'HEP3\x00\x06' >&$c; done # a packet, no chunks
done
NEW=()
for i in 1 2 3; do exec {c}<>/dev/tcp/127.0.0.1/$HEPT; NEW+=($c); cat opt.hep >&$c; sleep 0.3; done
wait_for 10 "[ \$(msgs_total $HTTP) = 4 ]"
check "HEP over TCP: bytes or empty packets for 10 s do not keep a slot; three new senders from that source take three ($(metric $HTTP sipguard_hep_tcp_evicted_total) evicted, $(msgs_total $HTTP) of 4 scored)" \
    "[ \$(msgs_total $HTTP) = 4 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_evicted_total)\" = 3 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_refused_total)\" = 1 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 4 ]"
check "HEP senders are counted apart by address ($(curl -s http://127.0.0.1:$HTTP/metrics | grep -c '^sipguard_hep_sender_messages_total{') listed)" \
    "[ \"\$(metric $HTTP 'sipguard_hep_sender_messages_total{sender=\"127.0.0.1\"}')\" = 3 ] && [ \"\$(metric $HTTP 'sipguard_hep_sender_messages_total{sender=\"127.0.0.2\"}')\" = 1 ] && [ -n \"\$(metric $HTTP 'sipguard_hep_sender_last_message_timestamp_seconds{sender=\"127.0.0.2\"}')\" ]"
curl -s http://127.0.0.1:$HTTP/v1/senders > senders.json
curl -s -X DELETE -o forget1.json -w '%{http_code}' http://127.0.0.1:$HTTP/v1/senders/127.0.0.2 > forget1.code
curl -s -X DELETE -o forget2.json -w '%{http_code}' http://127.0.0.1:$HTTP/v1/senders/127.0.0.2 > forget2.code
curl -s -X DELETE -o forget3.json -w '%{http_code}' http://127.0.0.1:$HTTP/v1/senders/nonsense > forget3.code
curl -s http://127.0.0.1:$HTTP/v1/senders > senders2.json
curl -s http://127.0.0.1:$HTTP/metrics > senders.metrics
check "GET /v1/senders lists both; DELETE forgets one (then 404), a non-address is 400 ($(cat forget1.code) $(cat forget2.code) $(cat forget3.code))" \
    "python3 -c \"
import json
a = json.load(open('senders.json')); b = json.load(open('senders2.json'))
assert sorted((x['sender'], x['messages']) for x in a['senders']) == [('127.0.0.1', 3), ('127.0.0.2', 1)], a
assert a['untracked'] == 0 and all(x['seconds_since'] >= 0 for x in a['senders']), a
assert all(x['responses'] == 0 for x in a['senders']), a  # OPTIONS requests alone
assert [x['sender'] for x in b['senders']] == ['127.0.0.1'], b
\" && [ \"\$(cat forget1.code)\" = 200 ] && [ \"\$(cat forget2.code)\" = 404 ] && [ \"\$(cat forget3.code)\" = 400 ] && ! grep -q 'sender=\"127.0.0.2\"' senders.metrics"
"$S" replay -q --hep-tcp 127.0.0.1:$HEPT --bind 127.0.0.2 opt.sip
wait_for 10 "[ \"\$(metric $HTTP 'sipguard_hep_sender_messages_total{sender=\"127.0.0.2\"}')\" = 2 ]"
check "a forgotten sender that sends again is listed again, its count going on" \
    "[ \"\$(metric $HTTP 'sipguard_hep_sender_messages_total{sender=\"127.0.0.2\"}')\" = 2 ]"
for c in "${TRICKLE[@]}" "${NEW[@]}"; do exec {c}>&-; done
stop_edge $EDGE_PID
check "HEP over TCP: the refusal names the source and the setting" \
    "grep -q 'HEP sender 127.0.0.1:[0-9]* over TCP refused: its source holds \\[ingest\\] hep_tcp_per_source' hepsrc.log"
"$S" replay --udp 127.0.0.1:9 --bind ::1 opt.sip 2>bind1.err; rc1=$?
"$S" replay --udp 127.0.0.1:9 --bind 192.0.2.77 opt.sip 2>bind2.err; rc2=$?
check "replay --bind: an address of the other family is a usage error, one not on this host a failure (exit $rc1, $rc2)" \
    "[ $rc1 = 2 ] && grep -q 'expected a numeric IPv4 address' bind1.err && [ $rc2 = 1 ] && grep -q -- '--bind 192.0.2.77: Cannot assign requested address' bind2.err"
check "a HEP sender's first message is logged, once per sender" \
    "[ \$(grep -c 'HEP sender 127.0.0.2 heard for the first time' hepsrc.log) = 1 ] && [ \$(grep -c 'HEP sender 127.0.0.1 heard for the first time' hepsrc.log) = 1 ]"

# --- HEPv3 over TLS: a CA of the test's own issues the edge's certificate (for 127.0.0.1) and a
# sender's; another CA a stranger's ---
new_key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=sipguard test CA" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key -out stranger.pem -days 2 -subj "/CN=stranger" 2>/dev/null
new_key tlsedge && printf 'subjectAltName=IP:127.0.0.1\n' > san.ext && \
    openssl x509 -req -in tlsedge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tlsedge.pem -days 2 -extfile san.ext 2>/dev/null
new_key sender && openssl x509 -req -in sender.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out sender.pem -days 2 2>/dev/null
# valid for no time at all (not after = not before = now): expired by the time it is used
new_key expired && openssl x509 -req -in expired.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out expired.pem -days 0 2>/dev/null
TLS=(--set ingest.hep_listen= --set ingest.hep_tls_listen=127.0.0.1:0 --set ingest.hep_tls_cert=tlsedge.pem
     --set ingest.hep_tls_key=tlsedge.key --set scoring.local_policy=never)
"$E" "${COMMON[@]}" --set ingest.hep_tls_listen=127.0.0.1:0 --check-config >/dev/null 2>tls_err; rc=$?
check "HEP over TLS without a certificate: exit 2 naming what is missing" \
    "[ $rc = 2 ] && grep -q 'hep_tls_listen needs hep_tls_cert and hep_tls_key' tls_err"
"$E" "${COMMON[@]}" "${TLS[@]}" --set ingest.hep_tls_key=nokey.pem --check-config >/dev/null 2>tls_err; rc=$?
check "HEP over TLS: --check-config names a key that cannot be read (exit $rc: $(cat tls_err))" \
    "[ $rc = 1 ] && grep -q 'hep_tls_listen: key nokey.pem: No such file or directory' tls_err"
: > empty.pem
"$E" "${COMMON[@]}" "${TLS[@]}" --set ingest.hep_tls_client_ca=empty.pem --check-config >/dev/null 2>tls_err; rc=$?
check "HEP over TLS: a client CA file without a certificate is refused, not taken as trusting nobody (exit $rc)" \
    "[ $rc = 1 ] && grep -q 'hep_tls_listen: client CA empty.pem: no PEM certificate in it' tls_err"
start_edge heptls "${COMMON[@]}" "${TLS[@]}" --set report.jsonl=heptls.jsonl || exit 1
HTLS=$(port hep_tls heptls.ports)
EXPIRY=$(metric $HTTP sipguard_hep_tls_certificate_expiry_timestamp_seconds)
check "the certificate's expiry is a metric, and two days ahead is a warning ($EXPIRY; $(grep -o 'expires in [0-9.]* days' heptls.log))" \
    "awk -v x='$EXPIRY' -v now=$(date +%s) 'BEGIN{exit !(x > now + 86400 && x < now + 3 * 86400)}' && grep -q 'hep_tls_cert = tlsedge.pem expires in [12]\.[0-9] days: renew it' heptls.log"
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --rate 0 test.pcap; rc=$?
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ] && [ \$(wc -l < heptls.jsonl) -ge $REF_G ]"
check "HEP over TLS: every message scored, the anomalies the offline scorer's (exit $rc; $(msgs_total $HTTP) of $N, $(wc -l < heptls.jsonl) vs $REF_G)" \
    "[ $rc = 0 ] && [ \$(msgs_total $HTTP) = $N ] && [ \$(wc -l < heptls.jsonl) = $REF_G ]"
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --rate 0 opt.sip 2>tls_err; rc=$?
check "a sender that does not trust the edge's certificate stops before sending (exit $rc: $(cat tls_err))" \
    "[ $rc = 1 ] && grep -q 'TLS handshake: Error in the certificate verification' tls_err"
"$S" replay -q --hep-tcp 127.0.0.1:$HTLS --rate 0 opt.sip 2>/dev/null
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 2 ]"
check "plain HEP on the TLS port is refused and named; nothing more scored ($(metric $HTTP sipguard_hep_tls_failures_total) failures)" \
    "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 2 ] && grep -q 'over TLS: plain HEPv3, not TLS' heptls.log && grep -q 'closed the connection during the handshake' heptls.log && [ \$(msgs_total $HTTP) = $N ]"
exec {SILENT}<>/dev/tcp/127.0.0.1/$HTLS # connects, never starts a handshake
wait_for 5 "[ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 1 ]"
wait_for 20 "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 3 ]"
check "a sender that starts no handshake loses its slot after 10 s ($(metric $HTTP sipguard_hep_tcp_connections) connected)" \
    "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 3 ] && [ \"\$(metric $HTTP sipguard_hep_tcp_connections)\" = 0 ] && grep -q 'no TLS handshake within 10 s' heptls.log"
exec {SILENT}>&-
# a renewed certificate (here from another CA) written over the old one: a SIGHUP reads it for
# the senders that connect after it, while one connected before goes on with its session
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca2.key -out ca2.pem -days 2 -subj "/CN=sipguard test CA 2" 2>/dev/null
new_key tlsedge2 && openssl x509 -req -in tlsedge2.csr -CA ca2.pem -CAkey ca2.key -CAcreateserial -out tlsedge2.pem -days 2 -extfile san.ext 2>/dev/null
cp tlsedge.pem tlsedge1.pem; cp tlsedge.key tlsedge1.key
for i in $(seq 30); do echo opt.sip; done > thirty.txt
BEFORE=$(msgs_total $HTTP)
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --rate 15 $(cat thirty.txt) & SLOW=$!
sleep 0.5
cp tlsedge2.pem tlsedge.pem; cp tlsedge2.key tlsedge.key
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 1 ]"
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca2.pem --rate 0 opt.sip; rc2=$?
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --rate 0 opt.sip 2>/dev/null; rc1=$?
wait $SLOW; rcs=$?
wait_for 10 "[ \$(msgs_total $HTTP) = $((BEFORE + 31)) ]"
check "SIGHUP reads the certificate again (new CA: exit $rc2, old CA: exit $rc1); the sender connected before keeps its session (exit $rcs; $(($(msgs_total $HTTP) - BEFORE)) of 31 scored)" \
    "[ $rc2 = 0 ] && [ $rc1 = 1 ] && [ $rcs = 0 ] && [ \$(msgs_total $HTTP) = $((BEFORE + 31)) ] && grep -q 'certificate tlsedge.pem read again' heptls.log"
printf 'not a key\n' > tlsedge.key
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reload_failures_total)\" = 1 ]"
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca2.pem --rate 0 opt.sip; rc=$?
check "a SIGHUP with a key that does not load is refused whole; the certificate in use stays (exit $rc)" \
    "[ $rc = 0 ] && grep -q 'reload refused, the previous settings stay in use: \[ingest\] hep_tls_listen: certificate tlsedge.pem with key tlsedge.key' heptls.log"
cp tlsedge1.pem tlsedge.pem; cp tlsedge1.key tlsedge.key
stop_edge $EDGE_PID
start_edge heptlsca "${COMMON[@]}" "${TLS[@]}" --set ingest.hep_tls_client_ca=ca.pem || exit 1
HTLS=$(port hep_tls heptlsca.ports)
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --rate 0 opt.sip 2>nocert.err; rc_none=$?
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --tls-cert stranger.pem --tls-key stranger.key --rate 0 opt.sip 2>/dev/null
printf 'HEP3' | timeout 10 openssl s_client -connect 127.0.0.1:$HTLS -cert stranger.pem -key stranger.key -CAfile ca.pem -quiet >/dev/null 2>&1
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 3 ]"
check "client certificates: none, or one another CA issued, is refused and named ($(metric $HTTP sipguard_hep_tls_failures_total) failures, $(msgs_total $HTTP) scored)" \
    "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 3 ] && [ \$(grep -c 'no certificate issued by a CA of hep_tls_client_ca' heptlsca.log) = 2 ] && grep -q 'certificate was not issued by a CA of hep_tls_client_ca' heptlsca.log && [ \$(msgs_total $HTTP) = 0 ]"
check "client certificates: replay without one says the edge requires one, before sending (exit $rc_none: $(head -c 200 nocert.err))" \
    "[ $rc_none = 1 ] && grep -q 'the server requires a client certificate' nocert.err"
"$S" replay --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --tls-cert expired.pem --tls-key expired.key --rate 0 test.pcap 2>expired.err; rc=$?
wait_for 10 "[ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 4 ]"
check "client certificates: an expired one is named so on both ends (exit $rc: $(grep -m1 'ended the session' expired.err))" \
    "[ $rc = 1 ] && grep -q \"the sender's certificate has expired\" heptlsca.log && grep -q 'the server ended the session: Certificate is expired' expired.err && grep -q 'the receiver may not have taken them all' expired.err && [ \$(msgs_total $HTTP) = 0 ]"
"$S" replay -q --hep-tls 127.0.0.1:$HTLS --tls-ca ca.pem --tls-cert sender.pem --tls-key sender.key --rate 0 test.pcap; rc=$?
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
check "client certificates: a sender whose certificate the CA issued is served (exit $rc; $(msgs_total $HTTP) of $N)" \
    "[ $rc = 0 ] && [ \$(msgs_total $HTTP) = $N ] && [ \"\$(metric $HTTP sipguard_hep_tls_failures_total)\" = 4 ]"
stop_edge $EDGE_PID
# the HTTP endpoint over HTTPS ([http] tls_cert, tls_key), a renewed certificate by a SIGHUP
"$E" "${COMMON[@]}" --set http.tls_cert=tlsedge.pem --check-config >/dev/null 2>tls_err; rc=$?
check "[http] tls_cert without tls_key: exit 2" "[ $rc = 2 ] && grep -q 'tls_cert and tls_key go together' tls_err"
"$E" "${COMMON[@]}" --set http.tls_cert=tlsedge.pem --set http.tls_key=tlsedge2.key --check-config >/dev/null 2>tls_err; rc=$?
check "--check-config loads the HTTPS pair: a key that is not the certificate's is named (exit $rc)" \
    "[ $rc = 1 ] && grep -q 'tlsedge.pem and tlsedge2.key do not load as a certificate and its key' tls_err"
cp tlsedge1.pem https.pem; cp tlsedge1.key https.key
start_edge https "${COMMON[@]}" --set http.tls_cert=https.pem --set http.tls_key=https.key || exit 1
curl -s --cacert ca.pem https://127.0.0.1:$HTTP/metrics > https_metrics.txt # a file: see ban_metrics
check "with [http] tls_cert and tls_key the endpoint speaks HTTPS only" \
    "[ \"\$(curl -s --cacert ca.pem https://127.0.0.1:$HTTP/healthz)\" = ok ] && ! curl -s http://127.0.0.1:$HTTP/healthz >/dev/null && grep -q '^sipguard_messages_total' https_metrics.txt"
cp tlsedge2.pem https.pem; cp tlsedge2.key https.key
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(curl -s --cacert ca2.pem https://127.0.0.1:$HTTP/healthz)\" = ok ]"
check "a SIGHUP takes a renewed certificate on the same port" \
    "[ \"\$(curl -s --cacert ca2.pem https://127.0.0.1:$HTTP/healthz)\" = ok ] && ! curl -s --cacert ca.pem https://127.0.0.1:$HTTP/healthz >/dev/null && grep -q 'the HTTP endpoint now speaks HTTPS with https.pem' https.log"
cp tlsedge1.key https.key # not the certificate's key
kill -HUP $EDGE_PID
wait_for 10 "grep -q 'reload refused' https.log"
check "a pair that does not load refuses the reload; the running certificate stays" \
    "grep -q 'reload refused, the previous settings stay in use: https.pem and https.key do not load' https.log && [ \"\$(curl -s --cacert ca2.pem https://127.0.0.1:$HTTP/healthz)\" = ok ]"
stop_edge $EDGE_PID
"$S" replay --tls-ca ca.pem --hep-tcp 127.0.0.1:1 opt.sip 2>tls_err; rc=$?
check "replay: --tls-ca without --hep-tls is a usage error" "[ $rc = 2 ] && grep -q 'go with --hep-tls' tls_err"

# --- pcap replay with the local model on every message: the same anomalies as offline ---
start_edge replay -m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
    --set ingest.pcap_file=test.pcap --set report.jsonl=replay.jsonl || exit 1
wait_for 120 "[ \$(msgs_total $HTTP) -ge $N ]"
stop_edge $EDGE_PID
check "replay: global+local anomalies equal the offline scorer's ($(wc -l < replay.jsonl) vs $REF_GL)" "[ \$(wc -l < replay.jsonl) = $REF_GL ]"
FLAGGED_ATTACKS=$(grep -c '"verdict":"anomaly"' replay.jsonl)
check "replay: attacks are reported ($REF_GL anomalies for $ATTACKS attack messages)" "[ $REF_GL -ge $((ATTACKS * 9 / 10)) ]"
check "replay: reports name the detector, top features and the raw message" \
    "head -1 replay.jsonl | grep -q '\"detector\":\[\"global\"\|\"detector\":\[\"local\"' && head -1 replay.jsonl | grep -q '\"top_features\"' && head -1 replay.jsonl | grep -q '\"raw\":\"'"

# --- the same replay with local_flagged = no: what the global model flagged already is not
# searched again, and the verdicts stay the offline scorer's ---
start_edge unflagged -m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
    --set ingest.pcap_file=test.pcap --set report.jsonl=unflagged.jsonl \
    --set scoring.local_flagged=no || exit 1
wait_for 120 "[ \$(msgs_total $HTTP) -ge $N ]"
RUNS=$(metric "$HTTP" sipguard_local_model_runs_total)
stop_edge $EDGE_PID
check "local_flagged = no: the same anomalies as offline ($(wc -l < unflagged.jsonl) vs $REF_GL)" \
    "[ \$(wc -l < unflagged.jsonl) = $REF_GL ]"
check "local_flagged = no: the local model ran on the $((N - REF_G)) messages the global model passed ($RUNS)" \
    "[ '$RUNS' = $((N - REF_G)) ]"
check "local_flagged = no: the global model's reports carry no local score" \
    "[ \$(grep -c '\"detector\":\[\"global\"' unflagged.jsonl) = $REF_G ] && ! grep '\"detector\":\[\"global\"' unflagged.jsonl | grep -qv '\"local\":null'"

# --- the report rate cap: every message judged, only max_rate of their reports made ---
T0=$(date +%s)
start_edge capped -m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
    --set ingest.pcap_file=test.pcap --set report.jsonl=capped.jsonl --set report.anomalies_only=no \
    --set report.max_rate=20 --set scoring.local_policy=never || exit 1
wait_for 60 "[ \$(msgs_total $HTTP) -ge $N ]"
LIMITED=$(metric $HTTP sipguard_reports_rate_limited_total)
stop_edge $EDGE_PID
SECS=$(($(date +%s) - T0 + 1))
check "max_rate 20: every message scored, at most 20 + 20 a second reported, the rest counted ($(wc -l < capped.jsonl) reported, $LIMITED limited, $N messages, $SECS s)" \
    "[ \$(wc -l < capped.jsonl) -le $((20 + 20 * SECS)) ] && [ \$(( \$(wc -l < capped.jsonl) + ${LIMITED:-0} )) = $N ]"

# --- the flood and dialog detectors in the edge ---
"$S" context train -q -o edge.context.json train.pcap
start_edge ctx "${COMMON[@]}" --set detectors.context=edge.context.json --set scoring.local_policy=never \
    --set report.jsonl=ctx.jsonl || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
FLOODS=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '$1=="sipguard_detector_fired_total{detector=\"flood\"}"{print $2}')
DIALOGS=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '$1=="sipguard_detector_fired_total{detector=\"dialog\"}"{print $2}')
# the tables' gauges are read once a second
wait_for 5 "[ \"\$(metric $HTTP sipguard_dialog_legs_capacity)\" = 65536 ]"
curl -s http://127.0.0.1:$HTTP/metrics > ctx.metrics
stop_edge $EDGE_PID
check "edge: a HEP sender that mirrors both ways has its responses counted ($(grep '^sipguard_hep_sender_responses_total' ctx.metrics))" \
    "grep -q '^sipguard_hep_sender_responses_total{sender=\"127.0.0.1\"} [1-9]' ctx.metrics"
LEGS_FIN=$(awk '$1=="sipguard_dialog_legs{state=\"finished\"}"{print $2}' ctx.metrics)
LEGS_OPEN=$(awk '$1=="sipguard_dialog_legs{state=\"open\"}"{print $2}' ctx.metrics)
check "edge: the dialog table's legs, open ($LEGS_OPEN) and finished ($LEGS_FIN), none given up at 65536" \
    "[ \"\${LEGS_FIN:-0}\" -gt 100 ] && [ \"\${LEGS_OPEN:-0}\" -gt 0 ] && grep -qx 'sipguard_dialog_legs_evicted_total 0' ctx.metrics && grep -qx 'sipguard_dialog_legs_resumed_total 0' ctx.metrics"
check "edge: the flood and binding tables' sizes are exposed" \
    "grep -qx 'sipguard_flood_counters_capacity 16384' ctx.metrics && grep -q '^sipguard_bindings_capacity [1-9]' ctx.metrics && grep -q '^sipguard_bindings [1-9]' ctx.metrics"
# a table too small for the calls in progress: what it gave up is counted, as `score` counts it
"$S" context train -q -o small.context.json --dialog-capacity 1024 train.pcap
"$S" score -q -m edge.model --context small.context.json test.pcap > /dev/null 2> small.err
start_edge ctxsmall "${COMMON[@]}" --set detectors.context=small.context.json --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
EVICTED=$(metric $HTTP sipguard_dialog_legs_evicted_total)
RESUMED=$(metric $HTTP sipguard_dialog_legs_resumed_total)
wait_for 5 "grep -q 'the dialog detector gave up [1-9][0-9]* calls in progress for room' ctxsmall.log"
stop_edge $EDGE_PID
check "edge: the log says the dialog table gave up calls, and what to raise ($(grep -o 'gave up [0-9]* calls in progress' ctxsmall.log))" \
    "grep -q 'gave up [1-9][0-9]* calls in progress for room (its table holds 1024 legs).*--dialog-capacity' ctxsmall.log && [ \$(grep -c 'calls in progress for room' ctxsmall.log) = 1 ]"
check "edge: a dialog table of 1024 gives up open legs and takes legs up again, counted as score counts them ($EVICTED, $RESUMED; score: $(grep -o 'gave up [0-9]*\|took [0-9]*' small.err | tr '\n' ' '))" \
    "[ \"\${EVICTED:-0}\" -gt 0 ] && grep -q \"warning: the dialog detector gave up \${EVICTED:-x} open dialog legs.*took \${RESUMED:-x} legs up again.*--dialog-capacity\" small.err"
# a proxy that mirrors the requests it receives and not its replies: the dialog detector, whose
# model learned replies, stands aside, says so, and leaves unjudged what `score` leaves
"$S" gen -o reqonly --attacks none --seed 6 --population-seed 3 --requests-only 2>/dev/null
"$S" score -q -m edge.model --context edge.context.json reqonly.pcap > /dev/null 2> reqonly.err
NREQ=$("$S" score -q -m edge.model reqonly.pcap | wc -l)
start_edge reqonly "${COMMON[@]}" --set detectors.context=edge.context.json --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 reqonly.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $NREQ ]"
wait_for 5 "grep -q 'the feed has carried no SIP response' reqonly.log"
ASIDE=$(metric $HTTP sipguard_dialog_feed_without_responses)
UNJUDGED=$(metric $HTTP sipguard_dialog_messages_unjudged_total)
SENDER_MSGS=$(metric $HTTP 'sipguard_hep_sender_messages_total{sender="127.0.0.1"}')
SENDER_RESP=$(metric $HTTP 'sipguard_hep_sender_responses_total{sender="127.0.0.1"}')
stop_edge $EDGE_PID
check "edge: the HEP sender that mirrors requests alone shows it ($SENDER_MSGS messages, $SENDER_RESP responses)" \
    "[ \"\${SENDER_MSGS:-0}\" -ge $NREQ ] && [ \"$SENDER_RESP\" = 0 ]"
check "edge: a feed of requests alone: the dialog detector stands aside ($ASIDE) and says why in the log" \
    "[ \"$ASIDE\" = 1 ] && grep -q 'stands aside until responses come.*trace_mode' reqonly.log"
check "edge: it leaves as many messages unjudged as score does ($UNJUDGED; score: $(grep -o 'left [0-9]* messages unjudged' reqonly.err))" \
    "[ \"\${UNJUDGED:-0}\" -gt 100 ] && grep -q \"stood aside and left \${UNJUDGED:-x} messages unjudged, and still stands aside\" reqonly.err"
# two capture agents mirroring the same traffic (each from its own address): every message
# judged once, the other's copy dropped and counted; the detectors fire as on one feed. Two
# agents mirror a message within milliseconds; two replay processes drift apart when one is
# kept from the processor, and at 2,000 a second each the sanitizer build's edge (with the
# context detectors) fell behind on a slow two-core machine and its socket overflowed, so
# each sends 500 a second
start_edge twice "${COMMON[@]}" --set detectors.context=edge.context.json --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 500 test.pcap & R1=$!
"$S" replay -q --hep 127.0.0.1:$HEP --rate 500 --bind 127.0.0.3 test.pcap & R2=$!
wait $R1 $R2
wait_for 30 "[ \$(( \$(msgs_total $HTTP) + \$(metric $HTTP sipguard_hep_copies_dropped_total) )) -ge $((2 * N)) ]"
TWICE_MSGS=$(msgs_total $HTTP) COPIES=$(metric $HTTP sipguard_hep_copies_dropped_total)
TWICE_DIALOGS=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '$1=="sipguard_detector_fired_total{detector=\"dialog\"}"{print $2}')
TWICE_FLOODS=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '$1=="sipguard_detector_fired_total{detector=\"flood\"}"{print $2}')
stop_edge $EDGE_PID
check "edge: two senders' copies of one feed: each message judged once, $COPIES copies dropped ($TWICE_MSGS judged of $N)" \
    "[ \"$TWICE_MSGS\" = $N ] && [ \"$COPIES\" = $N ]"
check "edge: and the dialog and flood detectors fire as on one feed ($TWICE_DIALOGS and $TWICE_FLOODS, against $DIALOGS and $FLOODS)" \
    "[ \"$TWICE_DIALOGS\" = \"$DIALOGS\" ] && [ \"$TWICE_FLOODS\" = \"$FLOODS\" ]"
check "edge: the flood detector fires on the generated floods ($FLOODS messages)" "[ \"\${FLOODS:-0}\" -gt 100 ]"
check "edge: the dialog detector fires ($DIALOGS messages)" "[ \"\${DIALOGS:-0}\" -gt 0 ]"
check "edge: reports say which context detector fired and why" \
    "grep -q '\"flood\":{\"key\"' ctx.jsonl && grep -q '\"dialog\":{\"token\"' ctx.jsonl"
echo '{"format":"sipguard-context","version":1}' > empty.context.json
"$E" -m edge.model --set detectors.context=empty.context.json --check-config >/dev/null 2>err10; rc=$?
check "a context model without detectors is refused" "[ $rc = 1 ] && grep -q 'neither' err10"

# --- reloads keep the context detectors' state: a call begun before one ends normally after it
call_msg() { # first line, CSeq: a message of call $CALL
    printf '%s\r\nVia: SIP/2.0/UDP 10.1.2.2:5060;branch=z9hG4bK%s\r\nFrom: <sip:1000@example.net>;tag=60886\r\nTo: <sip:2000@example.net>;tag=24602\r\nCall-ID: reload-%s@10.1.2.2\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n' \
        "$1" "$RANDOM" "$CALL" "$2"
}
say() { # source, destination, first line, CSeq: prints the edge's answer
    call_msg "$3" "$4" > call.sip
    curl -s -H "X-SIP-Source: $1" -H "X-SIP-Destination: $2" --data-binary @call.sip http://127.0.0.1:$HTTP/v1/score
}
CALLER=10.1.2.2:5060 PROXY=10.0.0.1:5060
call_answered() { # INVITE to ACK of call $CALL
    say $CALLER $PROXY 'INVITE sip:2000@example.net SIP/2.0' '1 INVITE' >/dev/null
    for status in '100 Trying' '180 Ringing' '200 OK'; do say $PROXY $CALLER "SIP/2.0 $status" '1 INVITE' >/dev/null; done
    say $CALLER $PROXY 'ACK sip:2000@example.net SIP/2.0' '1 ACK' >/dev/null
}
hang_up() { say $CALLER $PROXY 'BYE sip:2000@example.net SIP/2.0' '2 BYE' > "$1"; }
start_edge ctxreload "${COMMON[@]}" --set detectors.context=edge.context.json --set scoring.local_policy=never || exit 1
CALL=1; call_answered; hang_up bye1.json
CALL=2; call_answered
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 1 ]"
hang_up bye2.json
CALL=3; call_answered
cp edge.context.json ctx.tmp && mv ctx.tmp edge.context.json # the same content, a new file
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 2 ]"
hang_up bye3.json
stop_edge $EDGE_PID
check "a call's BYE is no dialog anomaly ($(cat bye1.json))" "! grep -q '\"dialog\"' bye1.json"
check "SIGHUP keeps the model and the dialog state: a call answered before it hangs up normally after it ($(cat bye2.json))" \
    "! grep -q '\"dialog\"' bye2.json && grep -q 'model edge.model unchanged, kept' ctxreload.log"
check "a new context model file starts the detectors' state afresh: that BYE opens a leg the model never saw begin so ($(cat bye3.json))" \
    "grep -q '\"dialog\"' bye3.json && grep -q 'state starts afresh' ctxreload.log"

# --- plain UDP mirror ---
start_edge udp -m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
    --set ingest.udp_listen=127.0.0.1:0 --set scoring.local_policy=never || exit 1
"$S" replay -q --udp 127.0.0.1:$UDP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
check "UDP mirror: every message scored ($(msgs_total $HTTP) of $N)" "[ \$(msgs_total $HTTP) = $N ]"
printf '\x00\x01garbage\xff' > garbage.bin
"$S" replay -q --udp 127.0.0.1:$UDP garbage.bin 2>/dev/null
stop_edge $EDGE_PID

# --- live capture on the loopback interface (needs CAP_NET_RAW; skipped without) ---
if "$E" -m edge.model --set http.listen= --set ingest.hep_listen= --set ingest.interface=lo \
    --set ingest.pcap_file=test.pcap --set ingest.pcap_exit=yes --set report.jsonl=/dev/null >/dev/null 2>&1; then
    LIVEPORT=$((20000 + RANDOM % 20000))
    start_edge live -m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
        --set ingest.interface=lo --set "ingest.bpf=udp dst port $LIVEPORT" --set ingest.snaplen=8192 \
        --set "ingest.sip_ports=$LIVEPORT-$LIVEPORT" --set scoring.local_policy=never \
        --set report.jsonl=live.jsonl || exit 1
    sleep 0.5
    "$S" replay -q --udp 127.0.0.1:$LIVEPORT --rate 4000 test.pcap
    wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
    check "live capture on lo: every message scored ($(msgs_total $HTTP) of $N; ring drops $(metric $HTTP sipguard_capture_dropped_total))" "[ \$(msgs_total $HTTP) = $N ]"
    stop_edge $EDGE_PID
else
    echo "skip live capture: cannot capture on lo here (needs CAP_NET_RAW)"
fi

# --- HTTP verdict endpoint ---
start_edge http "${COMMON[@]}" --set report.jsonl=http.jsonl || exit 1
ATTACK=$(printf 'OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-1\r\nFrom: "sipvicious"<sip:100@1.1.1.1>;tag=6438\r\nTo: "sipvicious"<sip:100@1.1.1.1>\r\nCall-ID: 1'"'"' OR 1=1--\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n')
printf '%s' "$ATTACK" > attack.sip
curl -s -H 'X-SIP-Source: 203.0.113.9:5070' --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score > v1.json
check "POST /v1/score: an attack is an anomaly" "grep -q '\"verdict\":\"anomaly\"' v1.json && grep -q '\"anomaly\":true' v1.json"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "GET /v1/score: 405" "[ \$(code http://127.0.0.1:$HTTP/v1/score) = 405 ]"
check "empty body: 400" "[ \$(code -X POST http://127.0.0.1:$HTTP/v1/score) = 400 ]"
head -c 70000 /dev/zero | tr '\0' 'A' > big.sip
check "oversize message: 413" "[ \$(code --data-binary @big.sip http://127.0.0.1:$HTTP/v1/score) = 413 ]"
check "bad X-SIP-Source: 400" "[ \$(code -H 'X-SIP-Source: nonsense' --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 400 ]"
check "X-SIP-Transport: wss (a WebRTC client's message) judged; an unknown one 400" \
    "[ \$(code -H 'X-SIP-Transport: wss' --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 200 ] && [ \$(code -H 'X-SIP-Transport: quic' --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 400 ]"
check "unknown path: 404" "[ \$(code http://127.0.0.1:$HTTP/nowhere) = 404 ]"
head -c 3000 /dev/urandom > noise.bin
curl -s --data-binary @noise.bin http://127.0.0.1:$HTTP/v1/score > v3.json
check "binary garbage: an anomaly that fails to parse, not a crash" "grep -q '\"anomaly\":true' v3.json && grep -q '\"parse_ok\":false' v3.json"
check "/healthz" "[ \"\$(curl -s http://127.0.0.1:$HTTP/healthz)\" = ok ]"
curl -s http://127.0.0.1:$HTTP/metrics > metrics.txt
check "/metrics: Prometheus text with messages by verdict and the latency histogram" \
    "grep -q '^# TYPE sipguard_messages_total counter' metrics.txt && grep -q 'sipguard_messages_total{source=\"http\",verdict=\"anomaly\"} 3' metrics.txt && grep -q '^sipguard_score_latency_seconds_bucket{le=\"+Inf\"}' metrics.txt"
check "/metrics: the TCP reassembly gauge" "grep -q '^# TYPE sipguard_tcp_reassembly_bytes gauge' metrics.txt && grep -q '^sipguard_tcp_reassembly_bytes 0$' metrics.txt"

# --- SIGHUP: a new model is taken without a stop; a broken one is refused ---
"$S" train -q --shape all -o edge.model train.pcap
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 1 ]"
check "SIGHUP reloads the model, which changed" "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 1 ] && grep -q 'model edge.model read anew' http.log"
cp broken.model edge.model
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reload_failures_total)\" = 1 ]"
check "SIGHUP with a broken model: refused, still serving" \
    "[ \"\$(metric $HTTP sipguard_reload_failures_total)\" = 1 ] && [ \$(code --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 200 ]"
stop_edge $EDGE_PID; rc=$?

check "SIGTERM: clean exit 0" "[ $rc = 0 ]"
check "the HTTP anomaly was reported" "grep -q 'friendly-scanner' http.jsonl"
check "the message a WebSocket client sent was reported as such" "grep -q '\"transport\":\"ws\"' http.jsonl"
"$S" train -q -o edge.model train.pcap

# --- the report rate cap on /v1/score: asked before the report is built ---
start_edge capped_http -m edge.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
    --set report.jsonl=capped_http.jsonl --set report.anomalies_only=no --set report.max_rate=2 \
    --set scoring.local_policy=never || exit 1
T0=$(date +%s)
for i in $(seq 30); do curl -s --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score >/dev/null; done
LIMITED=$(metric $HTTP sipguard_reports_rate_limited_total)
SECS=$(($(date +%s) - T0 + 1))
stop_edge $EDGE_PID
check "max_rate on /v1/score: 30 verdicts, at most 2 + 2 a second reported, the rest counted ($(wc -l < capped_http.jsonl) reported, $LIMITED limited, $SECS s)" \
    "[ \$(wc -l < capped_http.jsonl) -le $((2 + 2 * SECS)) ] && [ \$(( \$(wc -l < capped_http.jsonl) + ${LIMITED:-0} )) = 30 ]"

# --- signatures from a file ---
cat > sigs.json <<'EOF'
{"format": "sipguard-signatures", "version": 1, "sequence": 3, "feature": "ngram:4", "shape": "fields",
 "signatures": [{"id": "sig-scanner", "name": "SIPVicious user agent", "threshold": 3,
                 "features": [{"string": "frie", "weight": 1}, {"string": "ndly", "weight": 1},
                              {"string": "scan", "weight": 1}, {"string": "Link", "weight": -5}]}]}
EOF
start_edge sig "${COMMON[@]}" --set signatures.file=sigs.json || exit 1
curl -s --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score > v2.json
check "a signature match is its own verdict, with the signature id" \
    "grep -q '\"verdict\":\"signature\"' v2.json && grep -q '\"signatures\":\[\"sig-scanner\"\]' v2.json"
check "signatures_active and signature_sequence metrics" \
    "[ \"\$(metric $HTTP sipguard_signatures_active)\" = 1 ] && [ \"\$(metric $HTTP sipguard_signature_sequence)\" = 3 ]"
stop_edge $EDGE_PID

# --- allowed sources: judged and counted, answered normal, not reported; reloaded by SIGHUP ---
printf '# the PBX and its trunk\n203.0.113.0/28\n2001:db8:5::/48\n' > allow.txt
score_from() { curl -s -H "X-SIP-Source: $1" --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score > "$2"; }
answered() { grep -q "\"verdict\":\"$2\"" "$1" && grep -q "\"judged\":\"signature\"" "$1" && grep -q "\"waived\":$3" "$1"; }
start_edge allow "${COMMON[@]}" --set signatures.file=sigs.json --set verdict.allow_file=allow.txt \
    --set report.jsonl=allow.jsonl || exit 1
score_from 203.0.113.9:5070 a1.json
score_from '[2001:db8:5::7]:5060' a2.json
score_from 203.0.113.16:5070 a3.json
check "an allowed source's attack is judged a signature match but answered normal ($(cat a1.json))" \
    "answered a1.json normal '\"allowed\"' && grep -q '\"anomaly\":false' a1.json"
check "an IPv6 source inside an allowed prefix too" "answered a2.json normal '\"allowed\"'"
check "the next address past the prefix is answered as judged" "answered a3.json signature null"
curl -s http://127.0.0.1:$HTTP/metrics > allow_metrics.txt
check "waived verdicts and the allowlist's size are metrics" \
    "grep -q '^sipguard_verdicts_waived_total{reason=\"allowed\",judged=\"signature\"} 2$' allow_metrics.txt && grep -q '^sipguard_allowlist_entries 2$' allow_metrics.txt && grep -q 'sipguard_messages_total{source=\"http\",verdict=\"signature\"} 3$' allow_metrics.txt"
echo "203.0.113.1/24" >> allow.txt
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reload_failures_total)\" = 1 ]"
score_from 203.0.113.9:5070 a4.json
check "SIGHUP with a broken allow file: refused with its line, the old list kept" \
    "grep -q 'allow.txt:4: 203.0.113.1/24 has host bits set' allow.log && answered a4.json normal '\"allowed\"'"
printf '198.51.100.0/24\n' > allow.txt
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 1 ]"
score_from 203.0.113.9:5070 a5.json
check "SIGHUP with a new allow file: taken" \
    "answered a5.json signature null && [ \"\$(metric $HTTP sipguard_allowlist_entries)\" = 1 ]"
stop_edge $EDGE_PID
check "only the sources not allowed were reported" "[ \$(grep -c 'friendly-scanner' allow.jsonl) = 2 ]"
"$E" -m edge.model --set verdict.allow_file=nowhere.txt --check-config > /dev/null 2> allow_err; rc=$?
check "--check-config names a missing allow file (exit $rc, as for a bad model)" "[ $rc = 1 ] && grep -q 'nowhere.txt: No such file or directory' allow_err"
# what the edge will write: refused by --check-config where the edge would refuse to start
"$E" -m edge.model --set report.jsonl=nodir/r.jsonl --check-config > /dev/null 2> paths_err; rc=$?
check "--check-config: a JSON Lines file in a missing directory (exit $rc)" \
    "[ $rc = 1 ] && grep -q '\[report\] jsonl = nodir/r.jsonl: No such file or directory' paths_err"
"$E" -m edge.model --set ban.after=3 --set ban.file=nodir/bans.json --check-config > /dev/null 2> paths_err; rc=$?
check "--check-config: a ban file in a missing directory (exit $rc)" \
    "[ $rc = 1 ] && grep -q '\[ban\] file = nodir/bans.json: No such file or directory' paths_err"
"$E" -m edge.model --set ban.after=3 --set ban.file=nodir/bans.json --set http.listen=127.0.0.1:0 \
    --set ingest.hep_listen=127.0.0.1:0 > /dev/null 2> paths_err & P=$!
wait_for 10 "! kill -0 $P 2>/dev/null"
wait $P; rc=$?
check "and the edge refuses to start with it (exit $rc), where it used to find out at the first ban" \
    "[ $rc = 1 ] && grep -q '\[ban\] file = nodir/bans.json: No such file or directory' paths_err"
touch afile
"$E" -m edge.model --set overlay.endpoint=tcp://127.0.0.1:1 --set "overlay.server_key=$(printf '%040d' 0)" \
    --set overlay.key_dir=newkeys/a --set overlay.spool_dir=afile/spool --check-config > /dev/null 2> paths_err; rc=$?
check "--check-config: a spool directory under a file (exit $rc), and nothing made on the way" \
    "[ $rc = 1 ] && grep -q '\[overlay\] spool_dir = afile/spool: Not a directory' paths_err && [ ! -e newkeys ]"
"$E" -m edge.model --set record.dir=afile/rec --check-config > /dev/null 2> paths_err; rc=$?
check "--check-config: a recording directory under a file is a warning (exit $rc), as the edge would run" \
    "[ $rc = 0 ] && grep -q 'warning: \[record\] dir = afile/rec: Not a directory' paths_err"

# the overlay's list for the domain comes inside a signature set; a wrong one refuses the set
set_with_allow() { sed "s|\"signatures\": \[|\"allow\": $1, \"signatures\": [|" sigs.json > "$2"; }
set_with_allow '["100.64.7.0/24", "2001:db8:77::/48"]' domain.json
set_with_allow '["100.64.7.1/24"]' domain_bad.json
set_with_allow '"100.64.7.0/24"' domain_notarray.json
set_with_allow '[7]' domain_notstring.json
check "a signature set's allowed sources are taken, with the edge's own" \
    "'$E' -m edge.model --set signatures.file=domain.json --set verdict.allow_file=allow.txt --check-config >/dev/null 2>&1"
for bad in "domain_bad.json: allow:1: 100.64.7.1/24 has host bits set" \
           "domain_notarray.json: \"allow\" must be an array" "domain_notstring.json: allow\[0\] must be a string"; do
    "$E" -m edge.model --set signatures.file="${bad%%:*}" --check-config >/dev/null 2>set_err
    check "a set with a wrong allow list is refused: ${bad%%:*}" "grep -q '$bad' set_err"
done
start_edge domain "${COMMON[@]}" --set signatures.file=domain.json || exit 1
score_from '[2001:db8:77::1]:5060' d1.json
check "a source in the set's list is answered normal" \
    "answered d1.json normal '\"allowed\"' && [ \"\$(metric $HTTP sipguard_allowlist_entries)\" = 2 ]"
stop_edge $EDGE_PID

# --- monitor mode: a dry run, judged, counted and reported, every caller answered normal ---
start_edge monitor "${COMMON[@]}" --set signatures.file=sigs.json --set verdict.monitor=yes \
    --set report.jsonl=monitor.jsonl || exit 1
score_from 203.0.113.9:5070 m1.json
check "monitor mode answers a signature match normal, with the judgement" \
    "answered m1.json normal '\"monitor\"' && grep -q '\"anomaly\":false' m1.json"
curl -s http://127.0.0.1:$HTTP/metrics > monitor_metrics.txt
check "monitor mode is a metric, and so are the verdicts it waived" \
    "grep -q '^sipguard_monitor_mode 1$' monitor_metrics.txt && grep -q '^sipguard_verdicts_waived_total{reason=\"monitor\",judged=\"signature\"} 1$' monitor_metrics.txt"
stop_edge $EDGE_PID
check "monitor mode still reports, with the judgement, and says so in its log" \
    "grep -q '\"verdict\":\"signature\"' monitor.jsonl && grep -q 'monitor mode' monitor.log"
# --- bans: a source that keeps drawing blocking judgements is banned, saved, listed, lifted ---
# a normal message: the first one of the training capture (Ethernet, IPv4, UDP: 42 header bytes)
LEN=$(od -An -tu4 -j32 -N4 train.pcap | tr -d ' ')
dd if=train.pcap bs=1 skip=$((24 + 16 + 42)) count=$((LEN - 42)) status=none > normal.sip
normal_from() { curl -s -H "X-SIP-Source: $1" --data-binary @normal.sip http://127.0.0.1:$HTTP/v1/score > "$2"; }
"$E" -m edge.model --set ban.after=2 --set ban.seconds=60 --set ban.max_seconds=30 --check-config >/dev/null 2>ban_err; rc=$?
check "[ban] max_seconds shorter than seconds: exit 2 with the reason" "[ $rc = 2 ] && grep -q 'max_seconds (30) is shorter than seconds (60)' ban_err"
BANS=(--set signatures.file=sigs.json --set verdict.allow_file=allow.txt --set ban.after=2
      --set ban.seconds=300 --set ban.file=bans.json --set report.jsonl=ban.jsonl)
printf '203.0.113.0/28\n' > allow.txt
start_edge ban "${COMMON[@]}" "${BANS[@]}" || exit 1
normal_from 198.51.100.20:5060 b0.json
score_from 198.51.100.20:5060 b1.json
score_from 198.51.100.20:5060 b2.json
normal_from 198.51.100.20:5060 b3.json
normal_from 198.51.100.21:5060 b4.json
check "a normal message is answered normal before any strike ($(cat b0.json))" "grep -q '\"verdict\":\"normal\"' b0.json"
check "the second blocking judgement bans its source: still answered as judged, with banned_for" \
    "answered b1.json signature null && grep -q '\"banned_for\":null' b1.json && answered b2.json signature null && grep -q '\"banned_for\":300' b2.json"
check "a banned source's normal message is answered banned, unscored ($(cat b3.json))" \
    "grep -q '\"verdict\":\"banned\"' b3.json && grep -q '\"anomaly\":true' b3.json && grep -q '\"detector\":\[\"ban\"\]' b3.json && grep -q '\"global\":null' b3.json"
check "the next address is not banned" "grep -q '\"verdict\":\"normal\"' b4.json"
score_from '[2001:db8:9:1::1]:5060' b5.json
score_from '[2001:db8:9:1::2]:5060' b6.json
normal_from '[2001:db8:9:1:ffff::7]:5060' b7.json
normal_from '[2001:db8:9:2::1]:5060' b8.json
check "IPv6 sources are banned by their /64" \
    "grep -q '\"verdict\":\"banned\"' b7.json && grep -q '\"verdict\":\"normal\"' b8.json"
for i in 1 2 3; do score_from 203.0.113.9:5070 b9.json; done
check "an allowed source is never banned" "answered b9.json normal '\"allowed\"'"
curl -s http://127.0.0.1:$HTTP/v1/bans > bans_list.json
check "GET /v1/bans lists the two bans ($(cat bans_list.json))" \
    "grep -q '\"source\":\"198.51.100.20\"' bans_list.json && grep -q '\"source\":\"2001:db8:9:1::/64\"' bans_list.json && [ \$(grep -o '\"source\"' bans_list.json | wc -l) = 2 ]"
# the gauges and the file follow within a second (the loop's tick); the metrics go to a file
# first: under pipefail, grep -q closing a pipe early fails the curl writing into it
wait_for 20 "[ \"\$(metric $HTTP sipguard_bans_active)\" = 2 ] && [ -s bans.json ]"; WAITED=$?
curl -s http://127.0.0.1:$HTTP/metrics | grep -E '^sipguard_bans|verdict="banned"' > ban_metrics.txt
check "bans are metrics, and their messages are counted by verdict (wait $WAITED; $(grep -v ' 0$' ban_metrics.txt | tr '\n' ' '))" \
    "grep -q '^sipguard_bans_total 2$' ban_metrics.txt && grep -q '^sipguard_messages_total{source=\"http\",verdict=\"banned\"} 2$' ban_metrics.txt"
stop_edge $EDGE_PID
check "the ban was logged; the banned messages were not reported; the report of the one that banned it says so" \
    "grep -q 'banned 198.51.100.20 for 300 s: 2 blocking judgements' ban.log && [ \$(grep -c '\"src\":\"198.51.100.20:5060\"' ban.jsonl) = 2 ] && [ \$(grep '\"src\":\"198.51.100.20:5060\"' ban.jsonl | grep -c '\"banned_for\":300') = 1 ]"
start_edge ban2 "${COMMON[@]}" "${BANS[@]}" || exit 1
normal_from 198.51.100.20:5060 b10.json
check "bans outlive a restart" "grep -q '\"verdict\":\"banned\"' b10.json && grep -q '2 banned or remembered sources restored' ban2.log"
check "DELETE /v1/bans/SOURCE lifts a ban" "[ \$(code -X DELETE http://127.0.0.1:$HTTP/v1/bans/198.51.100.20) = 200 ]"
normal_from 198.51.100.20:5060 b11.json
check "the lifted source is answered as judged again" "grep -q '\"verdict\":\"normal\"' b11.json"
check "lifting what is not banned: 404; not an address: 400; a list by DELETE: 405" \
    "[ \$(code -X DELETE http://127.0.0.1:$HTTP/v1/bans/198.51.100.20) = 404 ] && [ \$(code -X DELETE http://127.0.0.1:$HTTP/v1/bans/nonsense) = 400 ] && [ \$(code -X DELETE http://127.0.0.1:$HTTP/v1/bans) = 405 ]"
stop_edge $EDGE_PID
printf '{"version": 1, "bans": [{"source": "10.0.0.1", "until": "soon", "bans": 1}]}' > bans.json
start_edge ban3 "${COMMON[@]}" "${BANS[@]}" --set verdict.monitor=yes || exit 1
check "an unreadable ban file is set aside, not overwritten, and the edge starts without it" \
    "grep -q 'bans.json: ban 1: \"until\" is not a time' ban3.log && grep -q 'soon' bans.json.bad"
score_from 198.51.100.30:5060 b12.json
score_from 198.51.100.30:5060 b13.json
normal_from 198.51.100.30:5060 b14.json
check "monitor mode: bans are judged and logged, every caller answered normal" \
    "grep -q '\"judged\":\"banned\"' b14.json && grep -q '\"verdict\":\"normal\"' b14.json && grep -q '\"waived\":\"monitor\"' b14.json && grep -q 'monitor mode: not enforced' ban3.log"
stop_edge $EDGE_PID
# bans on a full disk: the failed save is logged once, not every second, and bans still work;
# a device is neither read back nor moved aside
start_edge banfull "${COMMON[@]}" --set signatures.file=sigs.json --set ban.after=1 \
    --set ban.file=/dev/full || exit 1
score_from 198.51.100.40:5060 f1.json
normal_from 198.51.100.40:5060 f2.json
wait_for 10 "grep -q 'bans not saved' banfull.log"; sleep 2.2
check "a ban file on a full disk: the error logged once in 3 s, the ban enforced" \
    "[ \$(grep -c 'bans not saved' banfull.log) = 1 ] && grep -q '/dev/full: write failed' banfull.log && grep -q '\"verdict\":\"banned\"' f2.json"
stop_edge $EDGE_PID
check "and /dev/full is still the device" "[ -c /dev/full ] && [ ! -e /dev/full.bad ]"
# a scan from many sources: [ban] log_max bans a minute are named one by one, the rest summed up
# (here at the stop, which sums up what the minute held so far)
start_edge banlog "${COMMON[@]}" --set signatures.file=sigs.json --set ban.after=1 \
    --set ban.file=/dev/null --set ban.log_max=2 || exit 1
for i in 1 2 3 4 5 6 7; do score_from 198.51.100.$((50 + i)):5060 bl.json; done
wait_for 10 "[ \"\$(metric $HTTP sipguard_bans_total)\" = 7 ]"
BANNED_N=$(metric $HTTP sipguard_bans_total)
stop_edge $EDGE_PID
check "seven bans: two named, five summed up in one line ($BANNED_N bans; $(grep -c 'banned 198' banlog.log) named)" \
    "[ '$BANNED_N' = 7 ] && [ \$(grep -c 'banned 198.51.100.5[1-7] for' banlog.log) = 2 ] && grep -q '5 more bans in the last [0-9]* s, not logged one by one' banlog.log"
start_edge noban "${COMMON[@]}" || exit 1
check "GET /v1/bans without bans: 404 saying so" \
    "[ \$(code http://127.0.0.1:$HTTP/v1/bans) = 404 ] && curl -s http://127.0.0.1:$HTTP/v1/bans > nobans.json && grep -q 'bans are off' nobans.json"
stop_edge $EDGE_PID

# --- SIGHUP reads the configuration again: monitor off, bans on, the JSON Lines file reopened,
# a restart-only change named, a broken file refused whole, bans off again
live_conf() { # monitor, ban after, extra line for [report], [http] listen, extra line for [ban], ban file
    printf '[edge]\nmodel = edge.model\n[ingest]\nhep_listen = 127.0.0.1:0\n[scoring]\nlocal_policy = never\n[signatures]\nfile = sigs.json\n' > live.conf
    printf '[verdict]\nmonitor = %s\n[ban]\nafter = %s\nfile = %s\n%s\n' "$1" "$2" "${6:-live_bans.json}" "${5:-}" >> live.conf
    printf '[report]\njsonl = live.jsonl\n%s\n[http]\nlisten = %s\n' "$3" "${4:-127.0.0.1:0}" >> live.conf
}
hup_and_wait() { # the reloads_total and reload_failures_total to wait for
    kill -HUP $EDGE_PID
    wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = $1 ] && [ \"\$(metric $HTTP sipguard_reload_failures_total)\" = $2 ]"
}
live_conf yes 0 ''
start_edge live -c live.conf || exit 1
score_from 198.51.100.50:5060 l1.json
check "monitor mode from the file: the attack judged a signature match, answered normal; bans off: 404" \
    "grep -q '\"verdict\":\"normal\"' l1.json && grep -q '\"judged\":\"signature\"' l1.json && [ \$(code http://127.0.0.1:$HTTP/v1/bans) = 404 ]"
live_conf no 2 '' 127.0.0.1:1 'signature_strikes = 2'
hup_and_wait 1 0
score_from 198.51.100.50:5060 l2.json
score_from 198.51.100.50:5060 l3.json
score_from 198.51.100.50:5060 l4.json
check "SIGHUP applies monitor = no and [ban] after = 2 with signature_strikes = 2: the attack is answered as judged and banned at once ($(cat l2.json))" \
    "grep -q '\"verdict\":\"signature\"' l2.json && grep -q '\"banned_for\":600' l2.json && grep -q '\"verdict\":\"banned\"' l3.json && grep -q '\"verdict\":\"banned\"' l4.json && [ \"\$(metric $HTTP sipguard_monitor_mode)\" = 0 ] && curl -s http://127.0.0.1:$HTTP/v1/bans | grep -q 198.51.100.50"
check "the log names what was applied, and the restart-only [http] listen as waiting for the next start" \
    "grep -q 'SIGHUP: applying \[verdict\] monitor, \[ban\] after, \[ban\] signature_strikes' live.log && grep -q 'counting for 2' live.log && grep -q 'SIGHUP: \[http\] listen changed; taking effect at the next start' live.log"
wait_for 5 "grep -qs 198.51.100.50 live_bans.json"
check "bans turned on by a SIGHUP are kept in [ban] file" "grep -q 198.51.100.50 live_bans.json"
printf '{"version": 1, "saved": 1, "bans": [{"source": "198.51.100.77", "until": %s, "bans": 1}]}\n' \
    "$(($(date +%s) + 3600))" > moved_bans.json
live_conf no 2 '' 127.0.0.1:1 $'signature_strikes = 2\nmax_sources = 16' moved_bans.json
hup_and_wait 2 0
check "SIGHUP moving [ban] file and shrinking max_sources: the bans go along, the new file's are taken in" \
    "grep -q 'SIGHUP: applying \[ban\] max_sources, \[ban\] file' live.log && grep -q 'bans are kept in moved_bans.json now (was live_bans.json)' live.log && grep -q 198.51.100.50 moved_bans.json && grep -q 198.51.100.77 moved_bans.json && curl -s http://127.0.0.1:$HTTP/v1/bans | grep -q 198.51.100.77 && curl -s http://127.0.0.1:$HTTP/v1/bans | grep -q 198.51.100.50"
mv live.jsonl live.jsonl.1 # as logrotate does
hup_and_wait 3 0
score_from 198.51.100.51:5060 l5.json
wait_for 5 "[ -s live.jsonl ]"
check "SIGHUP reopens the JSON Lines file: reports after it go to a new file, those before stay in the old" \
    "grep -q '198.51.100.51' live.jsonl && ! grep -q '198.51.100.51' live.jsonl.1 && grep -q '198.51.100.50' live.jsonl.1"
live_conf yes 0 'bogus = 1'
hup_and_wait 3 1
score_from 198.51.100.52:5060 l6.json
check "a configuration that does not read is refused whole, naming the line: monitor stays off" \
    "grep -q 'SIGHUP: the configuration does not read, nothing changes: live.conf:17: \[report\] bogus: unknown key' live.log && grep -q '\"verdict\":\"signature\"' l6.json"
live_conf no 0 '' 127.0.0.1:1
hup_and_wait 4 1
score_from 198.51.100.50:5060 l7.json
check "SIGHUP turning bans off: the banned source is judged again, GET /v1/bans 404 ($(cat l7.json))" \
    "grep -q '\"verdict\":\"signature\"' l7.json && [ \$(code http://127.0.0.1:$HTTP/v1/bans) = 404 ]"
stop_edge $EDGE_PID

# --- [http] api_token: /v1/ needs the bearer token, /metrics and /healthz do not; a SIGHUP
# replaces it ---
printf '[edge]\nmodel = edge.model\n[ingest]\nhep_listen =\n[ban]\nafter = 1\n[http]\nlisten = 127.0.0.1:0\napi_token = t0k\n' > tok.conf
start_edge tok -c tok.conf || exit 1
bearer() { code -H "Authorization: Bearer $1" "${@:2}"; }
check "with [http] api_token, /v1/ refuses a request without the token or with a wrong one (401)" \
    "[ \$(code --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 401 ] && [ \$(bearer t0 --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 401 ] && [ \$(bearer t0kk http://127.0.0.1:$HTTP/v1/bans) = 401 ] && [ \$(code -X DELETE http://127.0.0.1:$HTTP/v1/bans/192.0.2.1) = 401 ]"
check "and answers the right one; /metrics and /healthz stay open" \
    "[ \$(bearer t0k --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score) = 200 ] && [ \$(bearer t0k http://127.0.0.1:$HTTP/v1/bans) = 200 ] && [ \$(code http://127.0.0.1:$HTTP/metrics) = 200 ] && [ \$(code http://127.0.0.1:$HTTP/healthz) = 200 ]"
sed -i 's/^api_token = t0k$/api_token = n3w/' tok.conf
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_reloads_total)\" = 1 ]"
check "a SIGHUP replaces the token: the old one is refused, the new one taken" \
    "[ \$(bearer t0k http://127.0.0.1:$HTTP/v1/bans) = 401 ] && [ \$(bearer n3w http://127.0.0.1:$HTTP/v1/bans) = 200 ] && grep -q 'SIGHUP: applying \[http\] api_token' tok.log"
stop_edge $EDGE_PID

# the loop closed by hand: signatures built from the anomalies of one day, enforced inline
"$S" gen -o clean2 --attacks none --seed 5 --population-seed 3 2>/dev/null
"$S" sig build -q -m edge.model --clean clean2.pcap -o built.json test.pcap
start_edge built "${COMMON[@]}" --set signatures.file=built.json --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
SIGHITS=$(curl -s http://127.0.0.1:$HTTP/metrics | awk '$1=="sipguard_detector_fired_total{detector=\"signature\"}"{print $2}')
stop_edge $EDGE_PID
check "signatures built by sipguard sig build are enforced by the edge ($SIGHITS messages)" "[ \"\${SIGHITS:-0}\" -gt 0 ]"
echo '{"format": "sipguard-signatures", "version": 1, "feature": "ngram:3", "shape": "fields", "signatures": []}' > sig_wrong.json
"$E" -m edge.model --set signatures.file=sig_wrong.json --check-config >/dev/null 2>err7; rc=$?
check "signatures for another embedding are refused" "[ $rc = 1 ] && grep -q 'ngram:3' err7"
echo '{"format": "sipguard-signatures", "version": 1, "feature": "ngram:4", "shape": "fields", "signatures": [{"id": 5}]}' > sig_type.json
"$E" -m edge.model --set signatures.file=sig_type.json --check-config >/dev/null 2>err8; rc=$?
check "a signature with a wrong type is refused with the field" "[ $rc = 1 ] && grep -q '\"id\" must be a string' err8"
echo '{"format": "sipguard-signatures", ' > sig_trunc.json
"$E" -m edge.model --set signatures.file=sig_trunc.json --check-config >/dev/null 2>err9; rc=$?
check "truncated signature JSON is refused with line and column" "[ $rc = 1 ] && grep -q 'sig_trunc.json:' err9"

# --- reports to the overlay: stub killed and restarted mid-stream, then the edge SIGKILLed ---
mkdir -p ov
pick_ports P_OV # the stub starts on it again: outside the ephemeral range (checks.sh)
"$STUB" ov "tcp://127.0.0.1:$P_OV" 120 2>stub1.log &
STUB_PID=$!; PIDS+=("$STUB_PID")
wait_for 10 "[ -s ov/endpoint ] && [ -s ov/server.pub ]"
OV=$(cat ov/endpoint) KEY=$(cat ov/server.pub)
OVERLAY=(--set "overlay.endpoint=$OV" --set "overlay.server_key=$KEY" --set overlay.key_dir=keys
         --set overlay.spool_dir=spool --set overlay.ack_timeout=1)
start_edge ov1 "${COMMON[@]}" "${OVERLAY[@]}" --set scoring.local_policy=never \
    --set report.anomalies_only=no --set report.jsonl=ov1.jsonl || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap &
REPLAY=$!
sleep 0.4
kill -9 $STUB_PID; wait $STUB_PID 2>/dev/null
sleep 1
"$STUB" ov "$OV" 120 2>stub2.log &
STUB_PID=$!; PIDS+=("$STUB_PID")
wait $REPLAY
wait_for 60 "[ \"\$(metric $HTTP sipguard_spool_pending_reports)\" = 0 ] && [ \$(msgs_total $HTTP) -ge $N ]"
REPORTS=$(metric $HTTP sipguard_reports_total)
stop_edge $EDGE_PID
UNIQUE=$(awk '$1=="edge1"{print $2}' ov/reports.log | sort -u | wc -l)
LINES=$(grep -c '^edge1 ' ov/reports.log)
check "overlay killed mid-stream: every report arrives exactly once ($UNIQUE unique, $LINES stored, $REPORTS sent)" \
    "[ $UNIQUE = $REPORTS ] && [ $LINES = $REPORTS ] && [ $REPORTS = $N ]"
check "the overlay stub did see the edge before it was killed" "[ -s ov/reports.log ]"

# the edge SIGKILLed with reports in its spool: they are sent after the restart
kill_ours TERM $STUB_PID; wait $STUB_PID
start_edge ov2 "${COMMON[@]}" "${OVERLAY[@]}" --set scoring.local_policy=never \
    --set report.anomalies_only=no || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
PENDING=$(metric $HTTP sipguard_spool_pending_reports)
kill -9 $EDGE_PID; wait $EDGE_PID 2>/dev/null
check "with the overlay down, reports wait in the spool ($PENDING)" "[ \"$PENDING\" = $N ]"
"$STUB" ov "$OV" 120 2>stub3.log &
STUB_PID=$!; PIDS+=("$STUB_PID")
start_edge ov3 "${COMMON[@]}" "${OVERLAY[@]}" || exit 1
wait_for 60 "[ \"\$(metric $HTTP sipguard_spool_pending_reports)\" = 0 ]"
stop_edge $EDGE_PID
kill -TERM $STUB_PID; wait $STUB_PID
UNIQUE=$(awk '$1=="edge1"{print $2}' ov/reports.log | sort -u | wc -l)
LINES=$(grep -c '^edge1 ' ov/reports.log)
check "edge SIGKILLed: its spooled reports arrive after the restart, once ($UNIQUE unique of $((2 * N)))" \
    "[ $UNIQUE = $((2 * N)) ] && [ $LINES = $((2 * N)) ]"
check "sequence numbers never repeat across restarts" \
    "[ \$(awk '\$1==\"edge1\"{print \$2}' ov/reports.log | sort -n | uniq -d | wc -l) = 0 ]"

# --- a wrong overlay key is said plainly; a full disk under the JSON Lines file is counted ---
start_edge wrongkey "${COMMON[@]}" --set "overlay.endpoint=$OV" \
    --set "overlay.server_key=$(cat keys/edge.pub)" --set overlay.key_dir=keys \
    --set overlay.spool_dir=spool3 --set report.jsonl=/dev/full || exit 1
"$STUB" ov "$OV" 120 2>stub4.log &
STUB_PID=$!; PIDS+=("$STUB_PID")
curl -s --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score >/dev/null
curl -s --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score >/dev/null
wait_for 10 "grep -q 'CURVE handshake with the overlay failed' wrongkey.log && [ \"\$(metric $HTTP sipguard_report_write_errors_total)\" = 2 ]"
check "wrong server_key: the CURVE handshake failure is logged" "grep -q 'CURVE handshake with the overlay failed' wrongkey.log"
check "JSON Lines on a full disk: errors counted ($(metric $HTTP sipguard_report_write_errors_total)), logged once, the edge goes on" \
    "[ \"\$(metric $HTTP sipguard_report_write_errors_total)\" = 2 ] && [ \$(grep -c 'cannot write to /dev/full' wrongkey.log) = 1 ] && [ \"\$(curl -s http://127.0.0.1:$HTTP/healthz)\" = ok ]"
check "reports wait in the spool while the overlay refuses the edge" "[ \"\$(metric $HTTP sipguard_spool_pending_reports)\" = 2 ]"
stop_edge $EDGE_PID
kill -TERM $STUB_PID; wait $STUB_PID

# --- spool bound: with no overlay, the oldest reports go, counted and logged ---
start_edge bound "${COMMON[@]}" --set "overlay.endpoint=tcp://127.0.0.1:1" --set "overlay.server_key=$KEY" \
    --set overlay.key_dir=keys --set overlay.spool_dir=spool2 --set overlay.spool_max_bytes=65536 \
    --set scoring.local_policy=never --set report.anomalies_only=no || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \$(msgs_total $HTTP) -ge $N ]"
DROP=$(metric $HTTP sipguard_reports_dropped_total)
SPOOLB=$(metric $HTTP sipguard_spool_bytes)
stop_edge $EDGE_PID
check "spool bound: oldest reports dropped and counted ($DROP), spool within bound ($SPOOLB)" \
    "[ \"$DROP\" -gt 0 ] && [ \"$SPOOLB\" -le 65536 ] && grep -q 'dropped the oldest segment' bound.log"

# --- [record]: the messages judged normal kept as pcap files to train on; anomalies kept as
# evidence; files finished by size and by SIGHUP, old ones removed past max_mb; a file a crash
# left finished at the next start; a full disk counted, logged once, and recovered from ---
verdict_total() { curl -s "http://127.0.0.1:$1/metrics" | awk -v v="verdict=\"$2\"" 'index($1, v) && /^sipguard_messages_total/{s+=$2} END{print s+0}'; }
mkdir rec
cp test.pcap rec/edge1-20200101-000000.pcap.part # what a killed edge leaves
start_edge record "${COMMON[@]}" --set record.dir=rec --set record.file_mb=1 || exit 1
check "record: a .pcap.part file an earlier run left is finished at start" \
    "[ -f rec/edge1-20200101-000000.pcap ] && [ ! -e rec/edge1-20200101-000000.pcap.part ] && grep -q 'left by an earlier run, finished' record.log"
rm rec/edge1-20200101-000000.pcap
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
curl -s --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score >/dev/null # judged anomalous: not kept
wait_for 60 "[ \$(msgs_total $HTTP) -ge $((N + 1)) ]"
NORMAL=$(verdict_total $HTTP normal)
kill -HUP $EDGE_PID
wait_for 10 "[ \"\$(metric $HTTP sipguard_record_files_total)\" -ge 1 ] && ! ls rec/*.part >/dev/null 2>&1"
check "record: every message judged normal written ($(metric $HTTP sipguard_record_messages_total) of $NORMAL), nothing dropped" \
    "[ \"\$(metric $HTTP sipguard_record_messages_total)\" = $NORMAL ] && [ \"\$(metric $HTTP sipguard_record_dropped_total)\" = 0 ]"
check "record: a SIGHUP finishes the file being written (no .part left)" "! ls rec/*.part >/dev/null 2>&1 && ls rec/edge1-*.pcap >/dev/null 2>&1"
stop_edge $EDGE_PID
REC_READ=$("$S" score -q -m edge.model rec/*.pcap | wc -l)
REC_ANOM=$("$S" score -q -a -m edge.model rec/*.pcap | wc -l)
check "record: the files read back as the messages kept ($REC_READ of $NORMAL), none of them an anomaly offline ($REC_ANOM)" \
    "[ $REC_READ = $NORMAL ] && [ $REC_ANOM = 0 ]"
check "record: sipguard train takes the recorded files" "'$S' train -q -o rec.model rec/*.pcap 2>/dev/null && [ -s rec.model ]"
if command -v tshark >/dev/null; then
    check "record: tshark reads every recorded message as SIP" \
        "[ \$(tshark -r \"\$(ls rec/*.pcap | head -1)\" -Y sip 2>/dev/null | wc -l) = \$('$S' embed -q --format libsvm \"\$(ls rec/*.pcap | head -1)\" | wc -l) ]"
fi
start_edge record2 "${COMMON[@]}" --set record.dir=rec2 --set record.verdicts=anomalies --set record.file_mb=1 --set record.max_mb=1 --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 60 "[ \$(msgs_total $HTTP) -ge $N ]"
FLAGGED=$(($(verdict_total $HTTP anomaly) + $(verdict_total $HTTP signature)))
wait_for 10 "[ \"\$(metric $HTTP sipguard_record_messages_total)\" = $FLAGGED ]"
check "record: verdicts = anomalies keeps what was judged anomalous ($(metric $HTTP sipguard_record_messages_total) of $FLAGGED)" \
    "[ \"\$(metric $HTTP sipguard_record_messages_total)\" = $FLAGGED ]"
FINISHED=$(($(metric $HTTP sipguard_record_files_total) + 1)) # and the one the stop finishes
stop_edge $EDGE_PID
check "record: finished files past max_mb are removed ($(ls rec2 | wc -l) of $FINISHED left, $(du -cb rec2/*.pcap | tail -1 | cut -f1) bytes)" \
    "[ \$(du -cb rec2/*.pcap | tail -1 | cut -f1) -le 1048576 ] && [ \$(ls rec2 | wc -l) -ge 1 ] && [ \$(ls rec2 | wc -l) -lt $FINISHED ]"
start_edge record3 "${COMMON[@]}" --set record.dir=rec4 --set record.sample=0.25 --set scoring.local_policy=never || exit 1
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 60 "[ \$(msgs_total $HTTP) -ge $N ]"
NORMAL=$(verdict_total $HTTP normal)
wait_for 5 "[ \"\$(metric $HTTP sipguard_record_messages_total)\" -ge $((NORMAL / 4 - 1)) ]"
KEPT=$(metric $HTTP sipguard_record_messages_total)
stop_edge $EDGE_PID
check "record: sample = 0.25 writes one in four of the messages judged normal ($KEPT of $NORMAL)" \
    "[ $KEPT -ge $((NORMAL / 4 - 1)) ] && [ $KEPT -le $((NORMAL / 4 + 1)) ] && [ \$('$S' embed -q --format libsvm rec4/*.pcap | wc -l) = $KEPT ]"
if command -v prlimit >/dev/null; then
    # a file size limit fails the writes as a full disk does (the edge ignores SIGXFSZ)
    prlimit --fsize=200000 "$E" --ports-file full.ports "${COMMON[@]}" --set record.dir=rec3 \
        --set record.verdicts=all --set scoring.local_policy=never 2>recfull.log &
    EDGE_PID=$!; PIDS+=("$EDGE_PID")
    wait_for 20 "[ -s full.ports ]" || cat recfull.log
    HTTP=$(port http full.ports) HEP=$(port hep full.ports)
    "$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
    wait_for 60 "[ \$(msgs_total $HTTP) -ge $N ]"
    check "record on a full disk: messages not written are counted ($(metric $HTTP sipguard_record_dropped_total)), logged once, the edge goes on" \
        "[ \"\$(metric $HTTP sipguard_record_dropped_total)\" -gt 0 ] && [ \$(grep -c 'recording: writing' recfull.log) = 1 ] && [ \"\$(curl -s http://127.0.0.1:$HTTP/healthz)\" = ok ]"
    BEFORE=$(metric $HTTP sipguard_record_messages_total)
    prlimit --pid $EDGE_PID --fsize=unlimited
    kill -HUP $EDGE_PID # tries again at once
    wait_for 10 "grep -q 'reloaded:' recfull.log"
    curl -s --data-binary @attack.sip http://127.0.0.1:$HTTP/v1/score >/dev/null
    wait_for 10 "[ \"\$(metric $HTTP sipguard_record_messages_total)\" -gt $BEFORE ]"
    check "record: once there is room again, recording goes on and says so" \
        "[ \"\$(metric $HTTP sipguard_record_messages_total)\" -gt $BEFORE ] && grep -q 'recording again' recfull.log"
    stop_edge $EDGE_PID
fi

check "every edge stopped by SIGTERM exited 0 ($BAD_EXITS did not)" "[ $BAD_EXITS = 0 ]"
check "no sanitizer report in any edge or stub log" "! grep -l 'Sanitizer\|runtime error' *.log"
echo "$checks checks, $fails failed"
[ $fails = 0 ]
