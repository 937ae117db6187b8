#!/usr/bin/env bash
# A live capture on Linux's any device of a host that bridges containers, as operators run
# Kamailio in Docker: each packet to a container shows on the bridge and on the container's
# veth. The edge must judge each message once and count the copies
# (sipguard_capture_copies_dropped_total), and keep both with [ingest] keep_copies.
# Everything happens inside two network namespaces this test makes and removes (a bridge, a
# veth pair, 10.99.x.0/24); needs root and `ip netns`, and skips (77) without them.
# usage: capture_any_test.sh SIPGUARD SIPGUARD_EDGE
set -uo pipefail
S=$1 E=$2
T=$(mktemp -d)
HOST=sghost$$ CTR=sgctr$$
PIDS=()
cleanup() {
    kill_ours 9 "${PIDS[@]}"
    ip netns del "$HOST" 2>/dev/null
    ip netns del "$CTR" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$(realpath "$0")")/checks.sh" # check, wait_for, kill_ours, port, metric
cd "$T"

in_host() { ip netns exec "$HOST" "$@"; }
NET=10.99.$((RANDOM % 200 + 20))
make_bridge() {
    ip netns add "$HOST" && ip netns add "$CTR" &&
        in_host ip link set lo up && in_host ip link add br0 type bridge &&
        in_host ip link add v0 type veth peer name v1 && in_host ip link set v1 netns "$CTR" &&
        in_host ip link set v0 master br0 && in_host ip addr add "$NET.1/24" dev br0 &&
        in_host ip link set br0 up && in_host ip link set v0 up &&
        ip netns exec "$CTR" ip addr add "$NET.2/24" dev v1 &&
        ip netns exec "$CTR" ip link set v1 up
}
if ! command -v ip >/dev/null || ! make_bridge 2>/dev/null; then
    echo "skip: cannot make network namespaces here (needs root and ip netns)"
    exit 77
fi

"$S" gen -o day --attacks none --seed 5 --users 20 --duration 600 2>/dev/null
"$S" train -q -o edge.model day.pcap
N=$(($(wc -l < day.labels.csv) - 1))
echo "traffic: $N messages, sent from the host to the container at $NET.2"

hmetric() { in_host curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# run_edge NAME KEEP_COPIES: the edge captures on any while the day is sent to the container
run_edge() {
    rm -f "$1.ports"
    # not through in_host: a function in the background is a subshell, and $! would be its PID
    ip netns exec "$HOST" "$E" --ports-file "$1.ports" -m edge.model --set http.listen=127.0.0.1:0 \
        --set ingest.hep_listen= --set ingest.interface=any --set "ingest.bpf=udp dst port 5060" \
        --set ingest.keep_copies="$2" --set scoring.local_policy=never \
        --set report.jsonl=/dev/null 2>"$1.log" &
    EDGE_PID=$!
    PIDS+=("$EDGE_PID")
    wait_for 20 "[ -s $1.ports ]" || { echo "edge $1 did not start:"; cat "$1.log"; return 1; }
    HTTP=$(port http "$1.ports")
    sleep 0.5
    in_host "$S" replay -q --udp "$NET.2:5060" --rate 2000 day.pcap
}

run_edge dedup no || exit 1
wait_for 30 "[ \"\$(hmetric $HTTP sipguard_capture_copies_dropped_total)\" = $N ]"
MSGS=$(in_host curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}')
COPIES=$(hmetric $HTTP sipguard_capture_copies_dropped_total)
check "any device: every message judged once ($MSGS of $N), each one's copy on the veth dropped ($COPIES)" \
    "[ $MSGS = $N ] && [ $COPIES = $N ]"
check "any device: the copies are not counted as skipped input" \
    "[ \"\$(hmetric $HTTP sipguard_skipped_total)\" = 0 ]"
kill -TERM "$EDGE_PID"
wait "$EDGE_PID"
check "any device: the edge stops cleanly and names the copies" \
    "[ $? = 0 ] && grep -q 'copy of a packet seen on another interface' dedup.log"

run_edge keep yes || exit 1
wait_for 30 "[ \"\$(in_host curl -s http://127.0.0.1:$HTTP/metrics | awk '/^sipguard_messages_total/{s+=\$2} END{print s+0}')\" -ge $((2 * N)) ]"
MSGS=$(in_host curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}')
check "keep_copies = yes: both sightings of each message judged ($MSGS of $((2 * N)))" \
    "[ $MSGS = $((2 * N)) ] && [ \"\$(hmetric $HTTP sipguard_capture_copies_dropped_total)\" = 0 ]"
kill -TERM "$EDGE_PID"
wait "$EDGE_PID"
check "keep_copies = yes: the edge stops cleanly" "[ $? = 0 ]"

echo "$checks checks, $fails failed"
[ $fails = 0 ]
