#!/usr/bin/env bash
# The overlay's review page in headless Chromium: it lists the pending signatures with their
# strings marked in sample messages, and its approve button makes one active.
# Skips (exit 77) without chromium. usage: web_test.sh SIPGUARD SIPGUARD_EDGE SIPGUARD_OVERLAY
set -uo pipefail
S=$1 E=$2 O=$3
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome) || {
    echo "skip: no chromium (apt-get install chromium)"; exit 77; }
HERE=$(dirname "$(realpath "$0")")
. "$HERE/checks.sh" # check, wait_for, kill_ours, pick_ports, port, metric
in_scratch_dir
browse() { "$CHROME" --headless=new --no-sandbox --disable-gpu --user-data-dir="$T/chrome" \
    --virtual-time-budget=10000 --dump-dom "$1" 2>/dev/null; }

"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" gen -o test --seed 4 --population-seed 3 --attack-scale 0.3 2>/dev/null
# the clean sample holds some scanner traffic, so that the scan clusters' candidates match
# clean messages and are rejected while the other families' pass
"$S" gen -o clean --attacks scan --seed 5 --population-seed 3 2>/dev/null
"$S" train -q -o edge.model train.pcap
OVA=(--set overlay.db=o.db --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0
     --set signatures.model=edge.model --set signatures.clean=clean.pcap
     --set signatures.build_interval=0 --set overlay.api_token=webtok)
# the second overlay starts on the first one's ports: picked outside the ephemeral range
pick_ports P_REP P_SNAP P_UPD
OVA+=(--set "overlay.snapshot_listen=tcp://127.0.0.1:$P_SNAP" --set "overlay.updates_listen=tcp://127.0.0.1:$P_UPD")
"$O" "${OVA[@]}" --set "overlay.listen=tcp://127.0.0.1:$P_REP" --ports-file o1.ports 2>o1.log &
P=$!; PIDS+=($P)
wait_for 20 "[ -s o1.ports ]" || exit 1
EP=$(awk '$1=="reports"{print $2}' o1.ports) KEY=$(awk '$1=="key"{print $2}' o1.ports)
kill -TERM $P; wait $P
"$E" -m edge.model --set http.listen= --set ingest.hep_listen= --set ingest.pcap_file=test.pcap \
    --set "overlay.endpoint=$EP" --set "overlay.server_key=$KEY" --set overlay.key_dir=ekeys \
    --set overlay.spool_dir=spool 2>edge.log &
EDGE=$!; PIDS+=($EDGE)
# a second edge that bans a scanner at its first anomaly, for the page's banned sources
"$E" -m edge.model --set edge.id=edge2 --set http.listen=127.0.0.1:0 --set ingest.hep_listen= \
    --set "overlay.endpoint=$EP" --set "overlay.server_key=$KEY" --set overlay.key_dir=ekeys2 \
    --set overlay.spool_dir=spool2 --set ban.after=1 --ports-file e2.ports 2>edge2.log &
PIDS+=($!)
wait_for 20 "[ -s ekeys/edge.pub ] && [ -s e2.ports ] && [ -s ekeys2/edge.pub ]" || exit 1
"$O" "${OVA[@]}" --set "overlay.listen=$EP" --edge "edge1=$(cat ekeys/edge.pub)" \
    --edge "edge2=$(cat ekeys2/edge.pub)" --ports-file o2.ports 2>o2.log &
P=$!; PIDS+=($P)
wait_for 20 "[ -s o2.ports ]" || exit 1
OH=$(awk '$1=="http"{print $2}' o2.ports)
# every report in before the build, so that the clusters the page shows are the ones the API
# lists afterwards (reports still coming in reorder the largest clusters)
settled() {
    local a b
    a=$(metric $OH sipguard_overlay_reports_in_store); sleep 1
    b=$(metric $OH sipguard_overlay_reports_in_store)
    [ "${a:-0}" -gt 1000 ] && [ "$a" = "$b" ]
}
wait_for 90 settled
printf 'OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-1\r\nFrom: "sipvicious"<sip:100@1.1.1.1>;tag=6438\r\nTo: "sipvicious"<sip:100@1.1.1.1>\r\nCall-ID: 1'"'"' OR 1=1--\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n' > scan.sip
curl -s -H 'X-SIP-Source: 203.0.113.9:5070' --data-binary @scan.sip \
    "http://127.0.0.1:$(awk '$1=="http"{print $2}' e2.ports)/v1/score" > scan.json
wait_for 30 "[ \"\$(metric $OH sipguard_overlay_bans_active)\" = 1 ]"
curl -s -X POST -H "Authorization: Bearer webtok" http://127.0.0.1:$OH/v1/build > build.json
check "signatures to review ($(cat build.json))" "grep -q '\"added\":[1-9]' build.json"

browse "http://127.0.0.1:$OH/" > nodom.html
check "without the token the page says why it cannot load" "grep -q 'cannot load: missing or wrong bearer token' nodom.html"
browse "http://127.0.0.1:$OH/#token=webtok" > dom.html
FIRST=$(grep -o '<strong>sig-[0-9]*</strong>' dom.html | head -1 | sed 's/<[^>]*>//g')
check "the page lists the pending signatures ($FIRST ...)" "grep -q 'data-ready=\"yes\"' dom.html && [ -n '$FIRST' ]"
check "their strings are marked in sample messages" "grep -q '<mark>' dom.html"
check "each has approve and reject buttons and its verification" \
    "grep -q 'class=\"approve\" data-id=\"$FIRST\"' dom.html && grep -q 'verification: passed' dom.html"
check "edges are listed" "grep -q '<td>edge1</td>' dom.html"
check "the largest clusters are listed with their signatures" \
    "grep -q '<td>edge1/[0-9]*</td><td>[0-9]*</td><td>edge1</td>' dom.html && grep -q '<td>sig-[0-9]* v1 pending</td>' dom.html"
# a cluster whose last candidate failed verification says so, with the clean matches (as many
# as the API lists among the same clusters)
REJ=$(curl -s -H "Authorization: Bearer webtok" "http://127.0.0.1:$OH/v1/clusters?min_members=2&limit=20" |
    grep -o '"result":"rejected"' | wc -l)
check "clusters whose last candidate was rejected say how many clean messages it matched ($REJ)" \
    "[ $REJ -ge 1 ] && [ \$(grep -o 'last candidate rejected: [0-9]* of [0-9]* clean messages matched' dom.html | wc -l) = $REJ ]"
browse "http://127.0.0.1:$OH/#token=webtok&click=approve:$FIRST" > dom2.html
STATE=$(curl -s -H "Authorization: Bearer webtok" http://127.0.0.1:$OH/v1/signatures/$FIRST | grep -o '"state":"[a-z]*"')
check "the approve button makes it active ($STATE)" "grep -q 'data-clicked=\"yes\"' dom2.html && [ '$STATE' = '\"state\":\"active\"' ]"
check "the page then shows it among the active ones" "grep -q 'class=\"expire\" data-id=\"$FIRST\"' dom2.html"
check "the domain's banned sources are listed, each with a lift button ($(cat scan.json))" \
    "grep -q '<td>203.0.113.9</td>' dom.html && grep -q 'class=\"lift\" data-source=\"203.0.113.9\"' dom.html && grep -q '<td>edge2</td><td>1</td>' dom.html"
browse "http://127.0.0.1:$OH/#token=webtok&click=lift:203.0.113.9" > domlift.html
check "the lift button lifts it for the domain" \
    "grep -q 'data-clicked=\"yes\"' domlift.html && [ \"\$(metric $OH sipguard_overlay_bans_active)\" = 0 ] && grep -q '<div id=\"bans\">none</div>' domlift.html"
# the domain's allowed sources: saved from the page, a wrong entry refused with its line
browse "http://127.0.0.1:$OH/#token=webtok&click=save-allow&allow=%23%20the%20PBX%0A100.64.7.0%2F24%0A2001%3Adb8%3A77%3A%3A%2F48" > dom3.html
curl -s -H "Authorization: Bearer webtok" http://127.0.0.1:$OH/v1/allowlist > allow.json
check "the page saves the allowed sources ($(cat allow.json))" \
    "grep -q 'data-clicked=\"yes\"' dom3.html && grep -q '\"entries\":\[\"100.64.7.0/24\",\"2001:db8:77::/48\"\]' allow.json && grep -q '\"text\":\"# the PBX' allow.json && grep -q 'entries: 2' dom3.html"
browse "http://127.0.0.1:$OH/#token=webtok&click=save-allow&allow=10.0.0.1%2F8" > dom4.html
check "a wrong entry is refused, and the page says which line and why" \
    "grep -q 'body:1: 10.0.0.1/8 has host bits set' dom4.html && curl -s -H 'Authorization: Bearer webtok' http://127.0.0.1:$OH/v1/allowlist > dom4.json && grep -q '100.64.7.0/24' dom4.json"
echo "$checks checks, $fails failed"
[ $fails = 0 ]
