#!/usr/bin/env bash
# Kamailio asking the edge for a verdict on every request, with the modules Debian ships
# (http_client and jansson; http_async_client is not packaged there), as docs/edge.md shows:
# sipp calls go through; a scanner's requests are refused with 403; after two, the scanner's
# address is banned and even its normal-looking call is refused, while other callers' calls
# still go through. The edge's model is trained first on sipp's own calls through the same
# Kamailio (recorded with sipp -trace_msg), as an operator trains on their own traffic.
# Skips (exit 77) when kamailio, its http_client and jansson modules, or sipp are missing.
# usage: kamailio_inline_test.sh SIPGUARD SIPGUARD_EDGE
set -uo pipefail
S=$1 E=$2
KAM=$(command -v kamailio || ls /usr/sbin/kamailio 2>/dev/null) || true
MODS=$(dirname "$(find /usr/lib -name http_client.so -path '*kamailio*' 2>/dev/null | head -1)")
if [ -z "$KAM" ] || ! command -v sipp >/dev/null || [ ! -f "$MODS/http_client.so" ] ||
    [ ! -f "$MODS/jansson.so" ]; then
    echo "skip: kamailio, its http_client and jansson modules, or sipp are missing" \
        "(apt-get install kamailio kamailio-utils-modules kamailio-extra-modules sip-tester)"
    exit 77
fi
T=$(mktemp -d)
PIDS=()
trap 'kill_ours 9 "${PIDS[@]}"; rm -rf "$T"' EXIT
. "$(dirname "$(realpath "$0")")/checks.sh" # check, wait_for, kill_ours
. "$(dirname "$(realpath "$0")")/kamailio.sh" # kamailio_cfg
cd "$T"
metric() { curl -s "http://127.0.0.1:$HTTP/metrics" | awk -v m="$1" '$1==m{print $2}'; }

# ports for Kamailio and the sipp ends: random in a high range, one attempt each
BASE=$((25000 + (RANDOM % 400) * 10))
KPORT=$BASE UAS=$((BASE + 1)) UAC=$((BASE + 2)) SCAN=$((BASE + 3))
# the gate goes first in the request route: the edge is asked about the message as it came
# (mf_process_maxfwd_header rewrites Max-Forwards in $mb)
EXTRA='loadmodule "http_client.so"
loadmodule "jansson.so"
loadmodule "xlog.so"
modparam("http_client", "connection_timeout", 1)'
start_kamailio() { # NAME GATE
    kamailio_cfg "$MODS" $KPORT $UAS "$EXTRA" "$2" > "$1.cfg"
    "$KAM" -f "$1.cfg" -DD -E -w "$T" 2>"$1.log" &
    KPID=$!; PIDS+=("$KPID")
    sleep 1
    kill -0 $KPID 2>/dev/null || { echo "kamailio did not start:"; tail -20 "$1.log"; exit 1; }
}
stop_kamailio() { kill -TERM "$KPID" 2>/dev/null; wait "$KPID" 2>/dev/null; }
# sipp numbers the calls in its tags, whose length classes field shaping keeps: the callee is
# started afresh for each phase, so that the test calls' tags look like the training calls'
start_uas() {
    [ -z "${UPID:-}" ] || { kill -TERM "$UPID" 2>/dev/null; wait "$UPID" 2>/dev/null; }
    sipp -sn uas -i 127.0.0.1 -p $UAS -nostdin -timeout 120s >/dev/null 2>uas.log &
    UPID=$!; PIDS+=("$UPID")
}
start_uas

# --- training: 200 calls through Kamailio with no gate; what the caller sent is the model's ---
start_kamailio relay ""
sipp -sn uac 127.0.0.1:$KPORT -s 100 -i 127.0.0.1 -p $UAC -m 200 -r 50 -d 100 -nostdin \
    -timeout 60s -trace_msg -message_file trace.log >/dev/null 2>uac0.log
check "sipp completed 200 training calls through Kamailio" "[ $? = 0 ]"
stop_kamailio
# sipp writes each message after a dashed line and a "UDP message sent/received" line, and
# ends it with one newline of its own
mkdir train
awk -v dir=train '
    function flush() { if (out != "") { sub(/\n$/, "", msg); printf "%s", msg > out; close(out) } out = ""; msg = "" }
    /^-----------------------------------------------/ { flush(); state = 0; next }
    state == 0 && /^UDP message sent/ { out = sprintf("%s/m%05d.sip", dir, ++n); state = 1; next }
    state == 1 { state = 2; next } # the blank line after the header
    state == 2 { msg = msg $0 "\n" }
    END { flush() }' trace.log
check "the recorded requests: $(ls train | wc -l) (INVITE, ACK, BYE of each call)" "[ \$(ls train | wc -l) -ge 600 ]"
"$S" train -q -o sipp.model train 2>train.err
check "a model of sipp's calls" "[ -s sipp.model ]" || { cat train.err; exit 1; }

# the edge's API behind a token, as when Kamailio runs on another host: a gate that did not
# send it would be answered 401 and fail open, and the scanner below would get through
"$E" -m sipp.model --set ingest.hep_listen= --set http.listen=127.0.0.1:0 --set http.api_token=k4m \
    --set ban.after=2 --set ban.file=bans.json --set report.jsonl=reports.jsonl \
    --ports-file ports 2>edge.log &
EDGE=$!; PIDS+=("$EDGE")
wait_for 20 "[ -s ports ]" || { cat edge.log; exit 1; }
HTTP=$(awk '$1=="http"{print $2}' ports)

# --- the gate: docs/edge.md's Debian configuration; an edge that does not answer lets the
# request through (fail open) ---
GATE='$var(verdict) = "normal";
    http_client_query("http://127.0.0.1:'$HTTP'/v1/score", "$mb", "X-SIP-Source: $si:$sp\r\nAuthorization: Bearer k4m", "$var(answer)");
    if ($rc == 200) {
        jansson_get("verdict", "$var(answer)", "$var(verdict)");
    }
    if ($var(verdict) != "normal") {
        xlog("L_NOTICE", "sipguard: $rm from $si:$sp refused: $var(verdict)\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }'
start_kamailio gate "$GATE"
start_uas
sipp -sn uac 127.0.0.1:$KPORT -s 100 -i 127.0.0.1 -p $UAC -m 20 -r 10 -d 100 -nostdin \
    -timeout 60s >/dev/null 2>uac1.log
check "20 calls go through the gate (each request judged normal)" "[ $? = 0 ]"
check "the edge judged each of their 60 requests" \
    "[ \"\$(metric 'sipguard_messages_total{source=\"http\",verdict=\"normal\"}')\" = 60 ]"

# a scanner on another address: two OPTIONS, each to be refused with 403
cat > scan.xml <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="scanner">
  <send>
    <![CDATA[
      OPTIONS sip:100@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipvicious"<sip:100@1.1.1.1>;tag=[call_number]
      To: "sipvicious"<sip:100@1.1.1.1>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Contact: <sip:100@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: friendly-scanner
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
  <recv response="403"/>
</scenario>
EOF
sipp -sf scan.xml 127.0.0.1:$KPORT -i 127.0.0.2 -p $SCAN -m 2 -r 10 -nostdin -timeout 30s \
    >/dev/null 2>scan.log
check "the scanner's two OPTIONS are refused with 403" "[ $? = 0 ]"
wait_for 5 "grep -q 'banned 127.0.0.2 for 600 s' edge.log"
check "and its address is banned" "grep -q 'banned 127.0.0.2 for 600 s: 2 blocking judgements' edge.log"
# sipp's own call, from the scanner's address: refused (the INVITE, then the ACK of the 403)
cat > refused.xml <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a call that is refused">
  <send>
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Subject: Performance Test
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="403"/>
</scenario>
EOF
sipp -sf refused.xml 127.0.0.1:$KPORT -s 100 -i 127.0.0.2 -p $SCAN -m 1 -nostdin -timeout 30s \
    >/dev/null 2>refused.log
check "a call from the banned address is refused" "[ $? = 0 ]"
check "as banned, by the edge" \
    "[ \"\$(metric 'sipguard_messages_total{source=\"http\",verdict=\"banned\"}')\" = 1 ] && grep -q 'INVITE from 127.0.0.2:$SCAN refused: banned' gate.log"
sipp -sn uac 127.0.0.1:$KPORT -s 100 -i 127.0.0.1 -p $UAC -m 5 -r 10 -d 100 -nostdin \
    -timeout 60s >/dev/null 2>uac2.log
check "other callers' calls still go through" "[ $? = 0 ]"
curl -s -H "Authorization: Bearer k4m" "http://127.0.0.1:$HTTP/v1/bans" > bans.txt
check "GET /v1/bans names the scanner ($(cat bans.txt))" \
    "grep -q '\"source\":\"127.0.0.2\"' bans.txt && [ \$(grep -o '\"source\"' bans.txt | wc -l) = 1 ]"
stop_kamailio
# with the edge stopped, the gate lets requests through rather than refuse them all
kill -TERM $EDGE; wait $EDGE; ERC=$?
check "the edge stopped cleanly" "[ $ERC = 0 ]"
start_kamailio open "$GATE"
sipp -sn uac 127.0.0.1:$KPORT -s 100 -i 127.0.0.1 -p $UAC -m 2 -r 10 -d 100 -nostdin \
    -timeout 60s >/dev/null 2>uac3.log
check "without an edge the gate fails open: calls go through" "[ $? = 0 ]"
stop_kamailio
kill -TERM "$UPID" 2>/dev/null; wait "$UPID" 2>/dev/null
echo "$checks checks, $fails failed"
[ $fails = 0 ]
