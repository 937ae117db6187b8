#!/usr/bin/env bash
# The domain's bans: a source one edge bans is banned by every edge that takes the domain's
# list ([ban] domain = yes), through the overlay and its signature set. On loopback: an overlay
# and two edges; edge1 bans a scanner after two anomalies, edge2 never sees it judged and
# answers it banned; the overlay lists the ban and lifts it for the domain; edge2 keeps it
# across a restart (the cached set); a set whose bans do not read is refused.
# usage: bans_test.sh SIPGUARD SIPGUARD_EDGE SIPGUARD_OVERLAY
set -uo pipefail
S=$(realpath "$1") E=$(realpath "$2") O=$(realpath "$3") HERE=$(dirname "$(realpath "$0")")
. "$HERE/checks.sh" # check, wait_for, kill_ours, pick_ports, port, metric
in_scratch_dir

"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" train -q -o edge.model train.pcap

# the overlay first (its key and endpoints), admitting no edge yet
printf '[edges]\n' > ov.conf
"$O" -c ov.conf --set overlay.db=overlay.db --set overlay.key_dir=okeys \
    --set overlay.http_listen=127.0.0.1:0 --set signatures.model=edge.model \
    --set signatures.build_interval=0 --set overlay.api_token=s3cret \
    --set 'overlay.listen=tcp://127.0.0.1:*' --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' \
    --set 'overlay.updates_listen=tcp://127.0.0.1:*' --ports-file ov.ports 2>ov.log &
OV_PID=$!
PIDS+=($OV_PID)
wait_for 20 "[ -s ov.ports ]" || { cat ov.log; exit 1; }
OV_HTTP=$(port http ov.ports)
OVERLAY=(--set "overlay.endpoint=$(port reports ov.ports)" --set "overlay.server_key=$(port key ov.ports)"
         --set "overlay.signatures_snapshot=$(port snapshot ov.ports)"
         --set "overlay.signatures_updates=$(port updates ov.ports)")
start_edge() { # number, then settings; sets HTTP$i
    local i=$1
    shift
    rm -f e$i.ports
    "$E" -m edge.model --set edge.id=edge$i --set ingest.hep_listen= --set http.listen=127.0.0.1:0 \
        --set overlay.key_dir=keys$i --set overlay.spool_dir=spool$i \
        "${OVERLAY[@]}" "$@" --ports-file e$i.ports 2>>e$i.log &
    EPID[$i]=$!
    PIDS+=($!)
    wait_for 20 "[ -s e$i.ports ] && [ -s keys$i/edge.pub ]" || { cat e$i.log; exit 1; }
    eval "HTTP$i=$(port http e$i.ports)"
}
EPID=()
start_edge 1 --set ban.after=2
start_edge 2 --set ban.domain=yes
printf '[edges]\nedge1 = %s\nedge2 = %s\n' "$(cat keys1/edge.pub)" "$(cat keys2/edge.pub)" > ov.conf
kill -HUP $OV_PID
both_in() { [ "$(metric $HTTP1 sipguard_overlay_connected)" = 1 ] && [ "$(metric $HTTP2 sipguard_overlay_connected)" = 1 ] &&
    grep -q 'signature set 0 from the overlay' e2.log; }
wait_for 40 both_in
check "both edges are admitted (by a SIGHUP) and hold the overlay's set" both_in

SCAN=$(printf 'OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-1\r\nFrom: "sipvicious"<sip:100@1.1.1.1>;tag=6438\r\nTo: "sipvicious"<sip:100@1.1.1.1>\r\nCall-ID: 1'"'"' OR 1=1--\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n')
printf '%s' "$SCAN" > scan.sip
score() { # edge number, source, output file
    local h
    eval "h=\$HTTP$1"
    curl -s -H "X-SIP-Source: $2" --data-binary @scan.sip "http://127.0.0.1:$h/v1/score" > "$3"
}
score 1 203.0.113.9:5070 s1.json
score 1 203.0.113.9:5070 s2.json
check "edge1 bans the scanner at its second anomaly ($(cat s2.json))" \
    "grep -q '\"verdict\":\"anomaly\"' s1.json && grep -q '\"banned_for\":600' s2.json"
wait_for 30 "[ \"\$(metric $HTTP2 sipguard_bans_domain)\" = 1 ]"
check "the ban reaches edge2 with the overlay's set ($(metric $HTTP2 sipguard_bans_domain) of the domain's bans)" \
    "[ \"\$(metric $HTTP2 sipguard_bans_domain)\" = 1 ] && [ \"\$(metric $OV_HTTP sipguard_overlay_bans_active)\" = 1 ]"
score 2 203.0.113.9:40000 s3.json
score 2 198.51.100.4:5060 s4.json
check "edge2, which never judged the scanner, answers it banned, from any port ($(cat s3.json))" \
    "grep -q '\"verdict\":\"banned\"' s3.json && grep -q '\"banned_for\":5[0-9][0-9]' s3.json"
check "another source on edge2 is judged as usual" "grep -q '\"verdict\":\"anomaly\"' s4.json"
curl -s -H 'Authorization: Bearer s3cret' "http://127.0.0.1:$OV_HTTP/v1/bans" > bans.json
check "GET /v1/bans on the overlay lists the ban with the edge that made it ($(cat bans.json))" \
    "grep -q '\"source\":\"203.0.113.9\"' bans.json && grep -q '\"edge\":\"edge1\"' bans.json && grep -q '\"shared\":true' bans.json"
curl -s "http://127.0.0.1:$HTTP2/v1/bans" > e2bans.json
check "edge2's GET /v1/bans marks it as the domain's" \
    "grep -q '\"source\":\"203.0.113.9\"' e2bans.json && grep -q '\"domain\":true' e2bans.json"

# sharing turned off and on again by a SIGHUP: the set goes out again at once, without the
# domain's bans and then with them
EDGES_CONF=$(printf '[edges]\nedge1 = %s\nedge2 = %s\n' "$(cat keys1/edge.pub)" "$(cat keys2/edge.pub)")
printf '%s\n[signatures]\nshare_bans = no\n' "$EDGES_CONF" > ov.conf
kill -HUP $OV_PID
wait_for 20 "[ \"\$(metric $HTTP2 sipguard_bans_domain)\" = 0 ]"
check "share_bans = no by a SIGHUP: edge2 drops the domain's ban with the next set" \
    "[ \"\$(metric $HTTP2 sipguard_bans_domain)\" = 0 ] && grep -q 'SIGHUP: applying share_bans' ov.log"
printf '%s\n' "$EDGES_CONF" > ov.conf
kill -HUP $OV_PID
wait_for 20 "[ \"\$(metric $HTTP2 sipguard_bans_domain)\" = 1 ]"
check "and share_bans = yes again: edge2 takes it back" "[ \"\$(metric $HTTP2 sipguard_bans_domain)\" = 1 ]"

# a restart keeps it: the edge starts with the set it cached
kill -TERM ${EPID[2]}; wait ${EPID[2]}
start_edge 2 --set ban.domain=yes --set overlay.signatures_snapshot=tcp://127.0.0.1:9 \
    --set overlay.signatures_updates=tcp://127.0.0.1:9
score 2 203.0.113.9:5070 s5.json
check "a restarted edge2 bans it before it hears the overlay (the cached set)" \
    "grep -q '\"verdict\":\"banned\"' s5.json && grep -q 'domain.s bans imposed' e2.log"
kill -TERM ${EPID[2]}; wait ${EPID[2]}
start_edge 2 --set ban.domain=yes

# lifted for the domain on the overlay: edge2 lets it be judged again; edge1 keeps its own ban
code() { curl -s -o "$1" -w '%{http_code}' -H 'Authorization: Bearer s3cret' "${@:2}"; }
check "DELETE /v1/bans/SOURCE lifts the domain's ban (200), and an unknown one is 404" \
    "[ \$(code lift.json -X DELETE http://127.0.0.1:$OV_HTTP/v1/bans/203.0.113.9) = 200 ] && [ \$(code lift2.json -X DELETE http://127.0.0.1:$OV_HTTP/v1/bans/203.0.113.9) = 404 ]"
# the set without it (the sequence the lift moved to) is what edge2 must have taken
curl -s -H 'Authorization: Bearer s3cret' "http://127.0.0.1:$OV_HTTP/v1/bans" > bans2.json
LIFTED_SEQ=$(grep -o '"signature_sequence":[0-9]*' bans2.json | cut -d: -f2)
wait_for 30 "[ \"\$(metric $HTTP2 sipguard_signature_sequence)\" -ge ${LIFTED_SEQ:-999} ]"
score 2 203.0.113.9:5070 s6.json
score 1 203.0.113.9:5070 s7.json
check "after the lift edge2 judges the scanner again; edge1 keeps the ban it made ($(cat s6.json))" \
    "grep -q '\"verdict\":\"anomaly\"' s6.json && grep -q '\"verdict\":\"banned\"' s7.json"

# a set whose bans do not read is refused, naming the entry
echo '{"format": "sipguard-signatures", "version": 1, "feature": "ngram:4", "shape": "fields", "signatures": [], "bans": [{"source": "203.0.113.9", "until": 4102444800}, {"source": "not-an-address", "until": 4102444800}]}' > badbans.json
"$E" -m edge.model --set signatures.file=badbans.json --set http.listen=127.0.0.1:0 --set ingest.hep_listen= --check-config >/dev/null 2>err1; rc=$?
check "a set with a ban that is not an address is refused, naming it" "[ $rc = 1 ] && grep -q 'bans\[1\] \"source\" is not an address' err1"
echo '{"format": "sipguard-signatures", "version": 1, "feature": "ngram:4", "shape": "fields", "signatures": [], "bans": {"source": "203.0.113.9"}}' > badbans2.json
"$E" -m edge.model --set signatures.file=badbans2.json --set http.listen=127.0.0.1:0 --set ingest.hep_listen= --check-config >/dev/null 2>err2; rc=$?
check "a set whose bans are not a list is refused" "[ $rc = 1 ] && grep -q '\"bans\" must be an array' err2"
echo '{"format": "sipguard-signatures", "version": 1, "feature": "ngram:4", "shape": "fields", "signatures": [], "bans": [{"source": "10.0.0.0/8", "until": "soon"}]}' > badbans3.json
"$E" -m edge.model --set signatures.file=badbans3.json --set http.listen=127.0.0.1:0 --set ingest.hep_listen= --check-config >/dev/null 2>err3; rc=$?
check "a set with a ban whose until is not a time is refused" "[ $rc = 1 ] && grep -q 'bans\[0\] \"until\" must be a Unix time' err3"
check "the overlay's /v1/bans/SOURCE takes DELETE only (405)" \
    "[ \$(code wrong.json http://127.0.0.1:$OV_HTTP/v1/bans/203.0.113.9) = 405 ]"

# edge1 taken off the overlay's configuration: its open signature connections are closed, so it
# hears no later set (CURVE checks keys only at the handshake), while edge2 does
printf '[edges]\nedge2 = %s\n' "$(cat keys2/edge.pub)" > ov.conf
REFUSED0=$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)
kill -HUP $OV_PID
wait_for 10 "grep -q 'signature connections closed' ov.log"
kill -TERM ${EPID[2]}; wait ${EPID[2]}
start_edge 2 --set ban.domain=yes --set ban.after=2
SEQ1=$(metric $HTTP1 sipguard_signature_sequence)
score 2 198.51.100.77:5060 s8.json
score 2 198.51.100.77:5060 s9.json
wait_for 30 "[ \"\$(metric $HTTP2 sipguard_signature_sequence)\" -gt $SEQ1 ]"
sleep 6 # past the overlay's 5-s republishing of its set
check "an edge taken off the configuration hears no later set (sequence $(metric $HTTP1 sipguard_signature_sequence), edge2 $(metric $HTTP2 sipguard_signature_sequence)); its reconnection is refused" \
    "[ \"\$(metric $HTTP2 sipguard_signature_sequence)\" -gt $SEQ1 ] && [ \"\$(metric $HTTP1 sipguard_signature_sequence)\" = $SEQ1 ] && [ \"\$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)\" -gt ${REFUSED0:-0} ]"

for i in 1 2; do kill -TERM ${EPID[$i]}; wait ${EPID[$i]}; done
kill -TERM $OV_PID; wait $OV_PID; rc=$?
check "SIGTERM: the overlay exits 0" "[ $rc = 0 ]"
check "no sanitizer report in any log" "! grep -l 'Sanitizer\\|runtime error' *.log"
echo "$checks checks, $fails failed"
[ $fails = 0 ]
