#!/usr/bin/env bash
# The overlay's collector with a real edge on loopback: an edge whose key is not configured is
# refused, and admitted by a SIGHUP once it is; once admitted, every report is committed and acknowledged; the overlay SIGKILLed
# mid-stream and restarted loses no report and stores none twice.
# usage: overlay_test.sh SIPGUARD SIPGUARD_EDGE SIPGUARD_OVERLAY
set -uo pipefail
S=$(realpath "$1") E=$(realpath "$2") O=$(realpath "$3") HERE=$(dirname "$(realpath "$0")")
. "$HERE/checks.sh" # check, wait_for, kill_ours, pick_ports, port, metric
in_scratch_dir
start_overlay() { # name, then arguments; sets OV_PID, OV_HTTP
    rm -f "$1.ports"
    "$O" --set overlay.db=overlay.db --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0 \
        --set signatures.model=edge.model --set signatures.clean=clean.pcap \
        --set signatures.build_interval=0 ${OV_TOKEN_SET:---set overlay.api_token=s3cret} \
        --ports-file "$1.ports" "${@:2}" 2>"$1.log" &
    OV_PID=$!
    PIDS+=("$OV_PID")
    wait_for 20 "[ -s $1.ports ]" || { cat "$1.log"; exit 1; }
    OV_HTTP=$(awk '$1=="http"{print $2}' "$1.ports")
}

"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" gen -o test --seed 4 --population-seed 3 --attack-scale 0.3 2>/dev/null
"$S" gen -o clean --attacks none --seed 5 --population-seed 3 2>/dev/null
"$S" train -q -o edge.model train.pcap
N=$(($(wc -l < test.labels.csv) - 1))

# ov1 takes its API token from its file, where a SIGHUP replaces it
printf '[overlay]\napi_token = s3cret\n[edges]\n' > ov1.conf
# the overlays below start on ov1's ports again: picked outside the ephemeral range (checks.sh)
pick_ports P_REP P_SNAP P_UPD
OV_TOKEN_SET=" " start_overlay ov1 -c ov1.conf --set "overlay.listen=tcp://127.0.0.1:$P_REP" \
    --set "overlay.snapshot_listen=tcp://127.0.0.1:$P_SNAP" --set "overlay.updates_listen=tcp://127.0.0.1:$P_UPD"
OV=$(awk '$1=="reports"{print $2}' ov1.ports) KEY=$(awk '$1=="key"{print $2}' ov1.ports)
SNAP=$(awk '$1=="snapshot"{print $2}' ov1.ports) UPD=$(awk '$1=="updates"{print $2}' ov1.ports)
SIGS=(--set "overlay.signatures_snapshot=$SNAP" --set "overlay.signatures_updates=$UPD")
"$E" -m edge.model --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
    --set "overlay.endpoint=$OV" --set "overlay.server_key=$KEY" --set overlay.key_dir=ekeys \
    --set overlay.spool_dir=spool --set report.anomalies_only=no --set scoring.local_policy=never \
    "${SIGS[@]}" --ports-file edge.ports 2>edge.log &
EDGE=$!; PIDS+=("$EDGE")
wait_for 20 "[ -s edge.ports ]" || { cat edge.log; exit 1; }
HEP=$(awk '$1=="hep"{print $2}' edge.ports) EHTTP=$(awk '$1=="http"{print $2}' edge.ports)
# a second edge that only enforces: it sees none of the attack
"$E" -m edge.model --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
    --set edge.id=edge2 --set "overlay.server_key=$KEY" --set overlay.key_dir=ekeys2 \
    --set overlay.spool_dir=spool2 --set scoring.local_policy=never "${SIGS[@]}" \
    --ports-file edge2.ports 2>edge2.log &
EDGE2=$!; PIDS+=("$EDGE2")
wait_for 20 "[ -s edge2.ports ]" || { cat edge2.log; exit 1; }
HEP2=$(awk '$1=="hep"{print $2}' edge2.ports) EHTTP2=$(awk '$1=="http"{print $2}' edge2.ports)
wait_for 10 "[ \"\$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)\" -ge 1 ]"
check "an edge whose key is not configured is refused" \
    "[ \"\$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)\" -ge 1 ] && grep -q 'not a configured edge' ov1.log"
check "the edge says so" "wait_for 10 \"grep -q 'CURVE handshake with the overlay failed' edge.log\""
# SIGHUP: the configuration is read again and its edges admitted, without a restart
printf '[overlay]\napi_token = s3cret\n[edges]\nedge1 = %s\nedge2 = %s\n' "$(cat ekeys/edge.pub)" "$(cat ekeys2/edge.pub)" > ov1.conf
kill -HUP $OV_PID
wait_for 30 "[ \"\$(metric $EHTTP sipguard_overlay_connected)\" = 1 ]"
check "SIGHUP admits the edges added to the configuration: the refused edge gets in" \
    "[ \"\$(metric $EHTTP sipguard_overlay_connected)\" = 1 ] && [ \"\$(metric $OV_HTTP sipguard_overlay_edges_admitted)\" = 2 ] && grep -q 'SIGHUP: 2 edges admitted; 2 added or with a new key: edge1, edge2' ov1.log"
# (the handshakes refused so far: edge1's next one is refused within moments of the SIGHUP)
REFUSED0=$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)
seq_in() { grep -o '"signature_sequence":[0-9]*' "$1" | cut -d: -f2; }
curl -s -H 'Authorization: Bearer s3cret' http://127.0.0.1:$OV_HTTP/v1/bans > bans0.json
printf '[overlay]\napi_token = n3w\n[signatures]\nshare_bans = no\nmax_strings = 16\n[edges]\nedge2 = %s\n' "$(cat ekeys2/edge.pub)" > ov1.conf
kill -HUP $OV_PID
wait_for 10 "[ \"\$(metric $OV_HTTP sipguard_overlay_reloads_total)\" = 2 ]"
tok() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" http://127.0.0.1:$OV_HTTP/v1/signatures; }
check "SIGHUP replaces the API token: the old one is refused (401), the new one taken" \
    "[ \$(tok s3cret) = 401 ] && [ \$(tok n3w) = 200 ] && grep -q 'SIGHUP: applying api_token' ov1.log"
curl -s -H 'Authorization: Bearer n3w' http://127.0.0.1:$OV_HTTP/v1/bans > bans1.json
check "SIGHUP applies [signatures] settings that leave the clusters alone: bans no longer shared (with no ban, the set stays at $(seq_in bans1.json))" \
    "grep -q 'SIGHUP: applying api_token, max_strings, share_bans' ov1.log && grep -q '\"shared\":false' bans1.json && [ \"\$(seq_in bans1.json)\" = \"\$(seq_in bans0.json)\" ]"
printf 'OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\nFrom: <sip:a@192.0.2.9>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: 1@192.0.2.9\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' > one.sip
curl -s -H 'X-SIP-Source: 192.0.2.9:5060' --data-binary @one.sip http://127.0.0.1:$EHTTP/v1/score >/dev/null
LATE_REPORTS=1 # that report: it waits in the edge's spool, and the next overlay stores it
wait_for 20 "[ \"\$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)\" -gt $REFUSED0 ] && [ \"\$(metric $EHTTP sipguard_spool_pending_reports)\" -ge 1 ]"
check "an edge taken off the configuration: its connection is closed, its new one refused, its report waits in its spool" \
    "grep -q '1 removed or with a new key: edge1' ov1.log && grep -q 'report and signature connections closed' ov1.log && [ \"\$(metric $OV_HTTP sipguard_overlay_handshakes_refused_total)\" -gt $REFUSED0 ] && [ \"\$(metric $EHTTP sipguard_spool_pending_reports)\" -ge 1 ] && [ \"\$(metric $OV_HTTP 'sipguard_overlay_reports_refused_total{reason=\"identity\"}')\" = 0 ]"
echo 'edges are these' > ov1.conf
kill -HUP $OV_PID
wait_for 10 "[ \"\$(metric $OV_HTTP sipguard_overlay_reload_failures_total)\" = 1 ]"
check "SIGHUP with a configuration that does not read: refused, the admitted edges kept" \
    "[ \"\$(metric $OV_HTTP sipguard_overlay_reload_failures_total)\" = 1 ] && [ \"\$(metric $OV_HTTP sipguard_overlay_edges_admitted)\" = 1 ] && [ \"\$(curl -s http://127.0.0.1:$OV_HTTP/healthz)\" = ok ]"
kill -TERM $OV_PID; wait $OV_PID

# admitted: everything arrives, once
OVSET=(--set "overlay.listen=$OV" --set "overlay.snapshot_listen=$SNAP" --set "overlay.updates_listen=$UPD"
       --edge "edge1=$(cat ekeys/edge.pub)" --edge "edge2=$(cat ekeys2/edge.pub)")
start_overlay ov2 "${OVSET[@]}"
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 60 "[ \"\$(metric $OV_HTTP sipguard_overlay_reports_stored_total)\" = $((N + LATE_REPORTS)) ]"
check "admitted after a retry: all $N reports stored, and the one that waited ($(metric $OV_HTTP sipguard_overlay_reports_stored_total))" \
    "[ \"\$(metric $OV_HTTP sipguard_overlay_reports_stored_total)\" = $((N + LATE_REPORTS)) ]"
check "normal messages the edge reports become the clean sample ($(metric $OV_HTTP sipguard_overlay_clean_samples_total))" \
    "[ \"\$(metric $OV_HTTP sipguard_overlay_clean_samples_total)\" -gt 0 ]"
check "retention (30 days) deletes none of today's reports" \
    "[ \"\$(metric $OV_HTTP 'sipguard_overlay_reports_pruned_total{kind=\"anomaly\"}')\" = 0 ]"
check "no report refused (the NUL-byte fuzz cases included)" \
    "[ \$(curl -s http://127.0.0.1:$OV_HTTP/metrics | awk '/^sipguard_overlay_reports_refused_total/{s+=\$2} END{print s+0}') = 0 ]"
wait_for 20 "[ \"\$(metric $EHTTP sipguard_spool_pending_reports)\" = 0 ]"
check "the edge's spool empties once everything is acknowledged" "[ \"\$(metric $EHTTP sipguard_spool_pending_reports)\" = 0 ]"

# the review API: build signatures from the stored anomalies, approve, reject, publish
AUTH="Authorization: Bearer s3cret"
api() { curl -s -o api.out -w '%{http_code}' -H "$AUTH" "$@"; }
check "the API wants the bearer token" "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$OV_HTTP/v1/signatures) = 401 ]"
check "POST /v1/build makes signatures from the stored reports" "[ \$(api -X POST http://127.0.0.1:$OV_HTTP/v1/build) = 200 ] && grep -q '\"added\":[1-9]' api.out"
FIRST=$(api "http://127.0.0.1:$OV_HTTP/v1/signatures?state=pending" >/dev/null; grep -o '"id":"sig-[0-9]*"' api.out | head -1 | cut -d'"' -f4)
check "pending signatures are listed with their cluster and verification ($FIRST)" "[ -n '$FIRST' ] && grep -q '\"verification\"' api.out"
check "each says which edges saw it and when, first and last" "grep -q '\"edges\":\[\"edge1\"\]' api.out && grep -q '\"first_seen\":1' api.out && grep -q '\"last_seen\":1' api.out"
check "approve: pending -> active" "[ \$(api -X POST http://127.0.0.1:$OV_HTTP/v1/signatures/$FIRST/approve) = 200 ] && grep -q '\"state\":\"active\"' api.out"
check "approving it again is a conflict (409)" "[ \$(api -X POST http://127.0.0.1:$OV_HTTP/v1/signatures/$FIRST/approve) = 409 ]"
check "reject without a reason: 400" "[ \$(api -X POST http://127.0.0.1:$OV_HTTP/v1/signatures/$FIRST/reject) = 400 ]"
check "an unknown signature: 404" "[ \$(api http://127.0.0.1:$OV_HTTP/v1/signatures/sig-999999) = 404 ]"
check "a bad state filter: 400" "[ \$(api 'http://127.0.0.1:$OV_HTTP/v1/signatures?state=maybe') = 400 ]"
api http://127.0.0.1:$OV_HTTP/v1/signatures/active.json >/dev/null; cp api.out active.json
check "the active set is a signature file an edge loads" "grep -q '\"sequence\":1' active.json && '$E' -m edge.model --set signatures.file=active.json --set http.listen= --set ingest.hep_listen=127.0.0.1:0 --check-config >/dev/null 2>&1"
check "/v1/edges lists the edge with its reports" "[ \$(api http://127.0.0.1:$OV_HTTP/v1/edges) = 200 ] && grep -q '\"edge\":\"edge1\"' api.out"
check "/v1/anomalies pages through the stored anomalies with their raw messages" \
    "[ \$(api 'http://127.0.0.1:$OV_HTTP/v1/anomalies?edge=edge1&limit=5') = 200 ] && [ \$(grep -o '\"raw\":' api.out | wc -l) = 5 ] && grep -q '\"next\":5' api.out"
check "the next page starts after the last" \
    "[ \$(api 'http://127.0.0.1:$OV_HTTP/v1/anomalies?after=5&limit=1') = 200 ] && grep -q '\"n\":6' api.out && [ \$(api 'http://127.0.0.1:$OV_HTTP/v1/anomalies?edge=nobody') = 200 ] && grep -q '\"anomalies\":\[\]' api.out"
check "a bad limit or since: 400 with the reason" \
    "[ \$(api 'http://127.0.0.1:$OV_HTTP/v1/anomalies?limit=0') = 400 ] && grep -q 'limit' api.out && [ \$(api 'http://127.0.0.1:$OV_HTTP/v1/anomalies?since=soon') = 400 ]"
# the live clusters, most members first, each with its newest signature
api "http://127.0.0.1:$OV_HTTP/v1/clusters?limit=1000" >/dev/null; cp api.out clusters.json
check "GET /v1/clusters lists the clusters by size, with their signatures" \
    "grep -q '\"live\":[1-9]' clusters.json && grep -o '\"members\":[0-9]*' clusters.json | cut -d: -f2 | awk 'NR > 1 && \$1 > prev {bad = 1} {prev = \$1} END {exit bad || NR < 2}' && grep -q '\"signature\":{\"id\":\"sig-' clusters.json && grep -q '\"signature\":null' clusters.json"
check "a cluster built since start says how its verification went, passed or rejected and why" \
    "grep -q '\"last_build\":{\"at\":[0-9.]*,\"verification\":{\"clean_messages\":[0-9]*,\"false_positives\":[0-9]*,.*\"result\":\"passed\"' clusters.json && grep -q '\"false_positives\":[1-9][0-9]*,[^}]*\"result\":\"rejected\"' clusters.json"
check "GET /v1/clusters?min_members=N leaves the smaller ones out; a bad one is 400" \
    "[ \$(api 'http://127.0.0.1:$OV_HTTP/v1/clusters?min_members=5') = 200 ] && ! grep -q '\"members\":[1-4],' api.out && [ \$(api 'http://127.0.0.1:$OV_HTTP/v1/clusters?min_members=0') = 400 ] && grep -q 'min_members' api.out && [ \$(api 'http://127.0.0.1:$OV_HTTP/v1/clusters?limit=1001') = 400 ] && grep -q 'from 1 to 1000' api.out"
# distribution: the approved signature reaches both edges; the one that never saw the attack
# now stops it by signature
SECOND=$(api "http://127.0.0.1:$OV_HTTP/v1/signatures?state=pending" >/dev/null; grep -o '"id":"sig-[0-9]*"' api.out | head -1 | cut -d'"' -f4)
seq_of() { metric $1 sipguard_signature_sequence; }
T0=$(date +%s%N)
api -X POST http://127.0.0.1:$OV_HTTP/v1/signatures/$SECOND/approve >/dev/null
wait_for 10 "[ \"\$(seq_of $EHTTP)\" = 2 ] && [ \"\$(seq_of $EHTTP2)\" = 2 ]"
T1=$(date +%s%N)
check "approval reaches both edges (sequence 2 on each, after $(((T1 - T0) / 1000000)) ms with polling)" \
    "[ \"\$(seq_of $EHTTP)\" = 2 ] && [ \"\$(seq_of $EHTTP2)\" = 2 ] && [ \"\$(metric $EHTTP2 sipguard_signatures_active)\" = 2 ]"
curl -s http://127.0.0.1:$OV_HTTP/metrics > sigmetrics.txt
PUBLISHED=$(awk '$1=="sipguard_overlay_signature_set_published_seconds"{print $2}' sigmetrics.txt)
APPLIED=$(metric $EHTTP2 sipguard_signature_set_applied_seconds)
check "signature metrics: two active, detection-to-active times, set 2 and when it went out (edge2 applied it $(awk -v a=$APPLIED -v p=$PUBLISHED 'BEGIN{printf "%.0f", (a - p) * 1000}') ms after)" \
    "grep -q '^sipguard_overlay_signatures{state=\"active\"} 2$' sigmetrics.txt && grep -q '^sipguard_overlay_detection_to_active_seconds_count 2$' sigmetrics.txt && grep -q '^sipguard_overlay_detection_to_active_seconds_bucket{le=\"+Inf\"} 2$' sigmetrics.txt && grep -q '^sipguard_overlay_signature_sequence 2$' sigmetrics.txt && awk -v a=$APPLIED -v p=$PUBLISHED 'BEGIN{exit !(p > 0 && a >= p - 1 && a - p < 10)}'"
"$S" replay -q --hep 127.0.0.1:$HEP2 --rate 4000 test.pcap
wait_for 30 "[ \$(curl -s http://127.0.0.1:$EHTTP2/metrics | awk '/^sipguard_messages_total/{s+=\$2} END{print s+0}') -ge $N ]"
HITS=$(curl -s http://127.0.0.1:$EHTTP2/metrics | awk '$1=="sipguard_detector_fired_total{detector=\"signature\"}"{print $2}')
check "the edge that never reported the attack stops it by signature ($HITS messages)" "[ \"\${HITS:-0}\" -gt 0 ]"
kill -TERM $EDGE2; wait $EDGE2
check "a restarted edge keeps the set it had (cached) before the overlay answers" \
    "grep -q '\"sequence\":2' spool2/signatures.json"
check "expire: active -> expired, and the set's sequence moves on" "[ \$(api -X POST http://127.0.0.1:$OV_HTTP/v1/signatures/$FIRST/expire) = 200 ] && api http://127.0.0.1:$OV_HTTP/v1/edges >/dev/null && grep -q '\"signature_sequence\":3' api.out"

# the domain's allowed sources: put once on the overlay, taken by every edge with the set
check "PUT /v1/allowlist with a wrong entry is refused whole, naming its line (400)" \
    "[ \$(api -X PUT --data-binary \$'100.64.7.0/24\\n10.0.0.1/8\\n' http://127.0.0.1:$OV_HTTP/v1/allowlist) = 400 ] && grep -q 'body:2: 10.0.0.1/8 has host bits set' api.out"
printf '# the carrier-grade NAT of our own PBXs\n100.64.7.0/24\n2001:db8:77::/48  # trunk\n' > domain-allow.txt
check "PUT /v1/allowlist: its entries back, and the set's sequence moves on" \
    "[ \$(api -X PUT --data-binary @domain-allow.txt http://127.0.0.1:$OV_HTTP/v1/allowlist) = 200 ] && grep -q '\"entries\":\[\"100.64.7.0/24\",\"2001:db8:77::/48\"\]' api.out && grep -q '\"signature_sequence\":4' api.out"
check "GET /v1/allowlist: the entries, and the text as put, comments and all" \
    "[ \$(api http://127.0.0.1:$OV_HTTP/v1/allowlist) = 200 ] && grep -q '\"text\":\"# the carrier-grade NAT' api.out && grep -q '\"updated\":[0-9]' api.out"
check "PUT /v1/allowlist: a body that is not UTF-8 is refused (400)" \
    "[ \$(api -X PUT --data-binary \$'# caf\\xe9\\n10.0.0.0/8\\n' http://127.0.0.1:$OV_HTTP/v1/allowlist) = 400 ] && grep -q 'not UTF-8' api.out"
wait_for 10 "[ \"\$(seq_of $EHTTP)\" = 4 ]"
check "an edge takes them with the set" \
    "[ \"\$(seq_of $EHTTP)\" = 4 ] && [ \"\$(metric $EHTTP sipguard_allowlist_entries)\" = 2 ] && grep -q '\"allow\":\[\"100.64.7.0/24\"' spool/signatures.json"
head -c 3000 /dev/zero | tr '\0' 'A' > scan.sip # far from anything normal: the global model flags it
curl -s -H 'X-SIP-Source: [2001:db8:77::9]:5060' --data-binary @scan.sip http://127.0.0.1:$EHTTP/v1/score > allowed.json
curl -s -H 'X-SIP-Source: [2001:db8:78::9]:5060' --data-binary @scan.sip http://127.0.0.1:$EHTTP/v1/score > judged.json
HTTP_REPORTS=1 # the judged one is reported; the allowed one is not
check "the edge answers the domain's allowed source normal, and others as judged" \
    "grep -q '\"verdict\":\"normal\".*\"waived\":\"allowed\"' allowed.json && grep -q '\"judged\":\"anomaly\"' allowed.json && grep -q '\"verdict\":\"anomaly\".*\"waived\":null' judged.json"

# the overlay SIGKILLed mid-stream, then restarted on the same store
"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap &
REPLAY=$!
sleep 0.4
kill -9 $OV_PID; wait $OV_PID 2>/dev/null
sleep 1
start_overlay ov3 "${OVSET[@]}"
check "the allowed sources outlive a restart" \
    "[ \$(api http://127.0.0.1:$OV_HTTP/v1/allowlist) = 200 ] && grep -q '\"entries\":\[\"100.64.7.0/24\",\"2001:db8:77::/48\"\]' api.out"
wait $REPLAY
wait_for 60 "[ \"\$(metric $EHTTP sipguard_spool_pending_reports)\" = 0 ] && [ \"\$(metric $EHTTP sipguard_reports_total)\" = $((2 * N + HTTP_REPORTS + LATE_REPORTS)) ]"
SENT=$(metric $EHTTP sipguard_reports_total)
# clustering lags intake: let it catch up, so that the state saved on the way out holds all
settled() {
    local a b
    a=$(metric $OV_HTTP sipguard_overlay_anomalies_clustered_total); sleep 0.5
    b=$(metric $OV_HTTP sipguard_overlay_anomalies_clustered_total); [ -n "$a" ] && [ "$a" = "$b" ]
}
wait_for 60 settled
kill -TERM $OV_PID; wait $OV_PID
start_overlay ov4 "${OVSET[@]}" --set signatures.lifetime=2
kill -TERM $EDGE; wait $EDGE
STORED=$(metric $OV_HTTP sipguard_overlay_reports_in_store)
# (edge, sequence) is the store's primary key: a count equal to what the edge made is every
# report, once
check "overlay killed mid-stream: the store holds every report the edge made, once, the one made while it was taken off too ($STORED of $SENT)" \
    "[ \"$STORED\" = $SENT ] && [ \"$SENT\" = $((2 * N + HTTP_REPORTS + LATE_REPORTS)) ]"

# incremental clustering: the overlay SIGKILLed above started again from the clusters it had
# saved and placed the reports after them; stopped by SIGTERM, it saved them all, so this one
# resumes them and places only what came after (none); the clusters grew with the second
# replay, so the build makes the next version of their signatures
api -X POST http://127.0.0.1:$OV_HTTP/v1/build >/dev/null
sleep 0.3 # the metrics follow the event loop
PLACED=$(metric $OV_HTTP sipguard_overlay_anomalies_clustered_total)
CLUSTERS=$(metric $OV_HTTP sipguard_overlay_clusters)
RESUMED=$(sed -n 's/.*clusters resumed: \([0-9]*\), up to report \([0-9]*\).*/\1 \2/p' ov4.log)
check "the SIGKILLed overlay's successor resumed saved clusters and placed the rest" \
    "grep -q 'clusters resumed: [1-9]' ov3.log"
check "on start the saved clusters are resumed, not clustered again ($RESUMED; $PLACED placed since)" \
    "[ \"\${RESUMED%% *}\" = \"\$CLUSTERS\" ] && [ \"\${RESUMED##* }\" -gt 2000 ] && [ \"\${PLACED:-1}\" = 0 ]"
api "http://127.0.0.1:$OV_HTTP/v1/signatures?state=pending" >/dev/null; cp api.out pending2.json
check "a cluster that grew gets the next version of its signature, which supersedes the last" \
    "grep -q '\"version\":2' pending2.json && grep -q '\"supersedes\":\"sig-' pending2.json"
api "http://127.0.0.1:$OV_HTTP/v1/signatures?state=expired" >/dev/null
check "the pending version it superseded is expired, saying by which" "grep -q '\"reason\":\"superseded by sig-' api.out"
# a version made by this build (so its expiry counts from the cluster's newest report)
V2=$(awk -v RS='"signature":[{]"id":"' 'NR > 1 && /"version":2/ {print substr($0, 1, 10); exit}' pending2.json)
api -X POST http://127.0.0.1:$OV_HTTP/v1/signatures/$V2/approve >/dev/null
wait_for 15 "api http://127.0.0.1:$OV_HTTP/v1/signatures/$V2 >/dev/null; grep -q '\"state\":\"expired\"' api.out"
check "an active signature expires when its lifetime ran out with no new member ($V2)" \
    "grep -q '\"state\":\"expired\"' api.out && grep -q 'lifetime' api.out"
kill -TERM $OV_PID; wait $OV_PID; rc=$?
check "SIGTERM: the overlay exits 0" "[ $rc = 0 ]"
start_overlay ov5 "${OVSET[@]}" --set signatures.cut=0.5
wait_for 20 "grep -q 'clusters resumed\|saved clusters not used' ov5.log"
check "clusters saved under another cut are not used, saying why, and the store is clustered again" \
    "grep -q 'saved clusters not used (saved with other clustering settings (linkage average, cut 0.6' ov5.log && wait_for 20 \"[ \\\"\\\$(metric $OV_HTTP sipguard_overlay_anomalies_clustered_total)\\\" -gt 2000 ]\""
# (the save comes once clustering caught up: 4,462 reports take a while under ASan)
check "the state is saved once the store is clustered again" \
    "wait_for 120 \"[ \\\"\\\$(metric $OV_HTTP sipguard_overlay_cluster_state_bytes)\\\" -gt 100000 ]\""
kill -TERM $OV_PID; wait $OV_PID
check "no sanitizer report in any log" "! grep -l 'Sanitizer\\|runtime error' *.log"

# IPv6 (IMS cores often have no IPv4): an overlay on [::1] for reports, signatures and its API,
# an edge reporting to it and taking its set, where this machine has IPv6 loopback
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    start_overlay v6 --set 'overlay.listen=tcp://[::1]:*' --set 'overlay.snapshot_listen=tcp://[::1]:*' \
        --set 'overlay.updates_listen=tcp://[::1]:*' --set 'overlay.http_listen=[::1]:0' \
        --set overlay.db=v6.db --edge "edge1=$(cat ekeys/edge.pub)"
    v6metric() { curl -s "http://[::1]:$OV_HTTP/metrics" | awk -v m="$1" '$1==m{print $2}'; }
    "$E" -m edge.model --set ingest.hep_listen= --set 'http.listen=[::1]:0' \
        --set "overlay.endpoint=$(awk '$1=="reports"{print $2}' v6.ports)" --set "overlay.server_key=$KEY" \
        --set overlay.key_dir=ekeys --set overlay.spool_dir=spool6 \
        --set "overlay.signatures_snapshot=$(awk '$1=="snapshot"{print $2}' v6.ports)" \
        --set "overlay.signatures_updates=$(awk '$1=="updates"{print $2}' v6.ports)" \
        --ports-file e6.ports 2>edge6.log &
    EDGE6=$!; PIDS+=("$EDGE6")
    wait_for 20 "[ -s e6.ports ]" || cat edge6.log
    E6HTTP=$(awk '$1=="http"{print $2}' e6.ports)
    curl -s -H 'X-SIP-Source: [2001:db8::9]:5060' --data-binary @scan.sip "http://[::1]:$E6HTTP/v1/score" > v6.json
    wait_for 20 "[ \"\$(v6metric sipguard_overlay_reports_stored_total)\" = 1 ] && grep -q 'signature set [0-9]* from the overlay' edge6.log"
    check "over IPv6: the edge's report is stored, and it takes the overlay's set ($(v6metric sipguard_overlay_reports_stored_total) stored)" \
        "[ \"\$(v6metric sipguard_overlay_reports_stored_total)\" = 1 ] && grep -q 'signature set [0-9]* from the overlay' edge6.log && grep -q '\"verdict\":\"anomaly\"' v6.json"
    kill -TERM $EDGE6; wait $EDGE6
    kill -TERM $OV_PID; wait $OV_PID
else
    echo "skip: no IPv6 loopback here"
fi

# HTTPS when a certificate is configured (openssl makes a throw-away one)
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt -days 1 -subj /CN=127.0.0.1 2>/dev/null
    start_overlay tls --set 'overlay.listen=tcp://127.0.0.1:*' --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' \
        --set 'overlay.updates_listen=tcp://127.0.0.1:*' --set overlay.db=tls.db \
        --set overlay.tls_cert=tls.crt --set overlay.tls_key=tls.key
    check "with tls_cert and tls_key the API speaks HTTPS only" \
        "[ \"\$(curl -s --cacert tls.crt https://127.0.0.1:$OV_HTTP/healthz)\" = ok ] && ! curl -s http://127.0.0.1:$OV_HTTP/healthz >/dev/null"
    # a renewed certificate: put in place of the old one, taken by a SIGHUP on the same port
    cp tls.crt old.crt; cp tls.key old.key
    openssl req -x509 -newkey rsa:2048 -nodes -keyout new.key -out new.crt -days 1 -subj /CN=127.0.0.1 2>/dev/null
    cp new.crt tls.crt; cp new.key tls.key
    kill -HUP $OV_PID
    wait_for 10 "[ \"\$(curl -s --cacert new.crt https://127.0.0.1:$OV_HTTP/healthz)\" = ok ]"
    check "a SIGHUP takes a renewed certificate on the same port" \
        "[ \"\$(curl -s --cacert new.crt https://127.0.0.1:$OV_HTTP/healthz)\" = ok ] && ! curl -s --cacert old.crt https://127.0.0.1:$OV_HTTP/healthz >/dev/null && grep -q 'the API now speaks HTTPS with tls.crt' tls.log"
    cp old.key tls.key # a key that is not the certificate's
    kill -HUP $OV_PID
    wait_for 10 "grep -q 'do not load as a certificate and its key' tls.log"
    check "a certificate and key that do not fit are refused, and the running pair stays" \
        "grep -q 'HTTPS goes on with the certificate it has' tls.log && [ \"\$(curl -s --cacert new.crt https://127.0.0.1:$OV_HTTP/healthz)\" = ok ]"
    kill -TERM $OV_PID; wait $OV_PID
    "$O" --set overlay.tls_cert=tls.crt --set overlay.tls_key=old.key --check-config 2>err3 >/dev/null; rc=$?
    check "--check-config loads the certificate and key: a key that is not the certificate's is named (exit $rc)" \
        "[ $rc = 1 ] && grep -q 'tls.crt and old.key do not load as a certificate and its key' err3"
    "$O" --set overlay.db=x.db --set overlay.tls_cert=tls.crt --set overlay.http_listen=127.0.0.1:0 \
        --set 'overlay.listen=tcp://127.0.0.1:*' --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' \
        --set 'overlay.updates_listen=tcp://127.0.0.1:*' --set overlay.key_dir=okeys 2>err4 >/dev/null; rc=$?
    check "a certificate without its key is refused" "[ $rc = 1 ] && grep -q 'tls_cert and tls_key go together' err4"
    head -c 2000000 /dev/zero > huge.crt
    "$O" --set overlay.db=x.db --set overlay.tls_cert=huge.crt --set overlay.tls_key=tls.key \
        --set overlay.http_listen=127.0.0.1:0 --set 'overlay.listen=tcp://127.0.0.1:*' \
        --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' --set 'overlay.updates_listen=tcp://127.0.0.1:*' \
        --set overlay.key_dir=okeys 2>err5 >/dev/null; rc=$?
    check "a certificate file of 2 MB is refused, saying why" "[ $rc = 1 ] && grep -q 'huge.crt: larger than 1 MB' err5"
else
    echo "skip: no openssl to make a test certificate"
fi

# configuration errors
check "etc/sipguard-overlay.conf is what --print-config writes (docs cannot drift)" \
    "\"\$O\" --print-config | diff -q - '$HERE/../etc/sipguard-overlay.conf' >/dev/null"
check "--print-config onto a full disk exits 1 and says so" \
    "! \"\$O\" --print-config >/dev/full 2>pcfull.err && grep -q 'sipguard-overlay: writing standard output failed' pcfull.err"
"$O" --set overlay.db=x.db --set overlay.api_token=t0ps3cret --check-config 2>/dev/null > shown.conf
check "--check-config does not show the API token" \
    "grep -q '^# api_token = (set; not shown)' shown.conf && ! grep -q 't0ps3cret' shown.conf"
"$O" --set overlay.db=fresh.db --set overlay.key_dir=freshkeys --check-config 2>/dev/null >/dev/null
check "--check-config makes neither store nor keys" "[ ! -e fresh.db ] && [ ! -e freshkeys ]"
"$O" --set overlay.db=nodir/o.db --check-config 2>err7 >/dev/null; rc=$?
check "--check-config: a store in a missing directory, exit 1 naming it" \
    "[ $rc = 1 ] && grep -q '\[overlay\] db = nodir/o.db: No such file or directory' err7"
touch afile
"$O" --set overlay.db=y.db --set overlay.key_dir=afile/keys --check-config 2>err8 >/dev/null; rc=$?
check "--check-config: a key directory under a file, exit 1 naming it" \
    "[ $rc = 1 ] && grep -q '\[overlay\] key_dir = afile/keys: Not a directory' err8 && [ ! -e y.db ]"
"$O" --set overlay.max_report_bytes=12 --check-config 2>err1 >/dev/null; rc=$?
check "a bad setting: exit 2 with the reason" "[ $rc = 2 ] && grep -q 'max_report_bytes' err1"
"$O" --set overlay.retention_days=-1 --check-config 2>err6 >/dev/null; rc=$?
check "a bad retention_days: exit 2 with the range" "[ $rc = 2 ] && grep -q 'retention_days: expected a whole number of days from 0' err6"
"$O" --edge 'edge1=short' --check-config 2>err2 >/dev/null; rc=$?
check "a bad edge key: exit 2" "[ $rc = 2 ] && grep -q '40-character' err2"
"$O" --set signatures.tighten=maybe --set signatures.kind=unilateral --check-config 2>err5 >/dev/null; rc=$?
check "a bad [signatures] tighten: exit 2 naming it" "[ $rc = 2 ] && grep -q 'signatures.tighten: expected yes or no' err5"
for bad in lifetime=-5 presence=2 max_strings=0 kind=both; do
    "$O" --set "signatures.$bad" --check-config 2>err6 >/dev/null; rc=$?
    check "a bad [signatures] ${bad%%=*} ($bad): exit 2 naming it" "[ $rc = 2 ] && grep -q 'signatures.${bad%%=*}: expected' err6"
done
printf '[overlay]\ndb = overlay.db\n[nowhere]\nx = 1\n' > bad.conf
"$O" -c bad.conf --check-config 2>err3 >/dev/null; rc=$?
check "an unknown section: exit 2 naming file and line" "[ $rc = 2 ] && grep -q 'bad.conf:4: \[nowhere\] x: unknown section' err3"

echo "$checks checks, $fails failed"
[ $fails = 0 ]
