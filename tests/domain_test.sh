#!/usr/bin/env bash
# The domain loop of `make demo` as a test: one overlay and three edges. Where the test may
# create network namespaces (root and iproute2), the overlay and each edge run in namespaces of
# their own, the edges at 10.77.0.11-13 and the overlay at 10.77.0.1 on a bridge, so reports
# and signatures cross a real network stack; otherwise all run on loopback. An attack reaches
# edge1 only. Asserted: the attack becomes active signatures; every edge ends with the same
# signature set; edges 2 and 3, which never saw the attack, stop it by signature; the overlay
# SIGKILLed while edges send and then restarted has lost no acknowledged report.
# usage: domain_test.sh SIPGUARD SIPGUARD_EDGE SIPGUARD_OVERLAY
# (SIPGUARD_TEST_LOOPBACK=1: loopback even where namespaces could be made)
set -uo pipefail
S=$(realpath "$1") E=$(realpath "$2") O=$(realpath "$3")
HERE=$(dirname "$(realpath "$0")")
T=$(mktemp -d)
PIDS=()
TAG=$$
NS=no
cleanup() {
    kill_ours 9 "${PIDS[@]}"
    wait 2>/dev/null
    if [ $NS = yes ]; then
        for n in o e1 e2 e3; do ip netns del sg$n$TAG 2>/dev/null; done
    fi
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
. "$HERE/checks.sh"

# ---- the network: a namespace per node, or loopback
make_namespaces() {
    ip netns add sgo$TAG || return 1
    ip -n sgo$TAG link set lo up &&
        ip -n sgo$TAG link add br0 type bridge &&
        ip -n sgo$TAG addr add 10.77.0.1/24 dev br0 &&
        ip -n sgo$TAG link set br0 up || return 1
    for i in 1 2 3; do
        ip netns add sge$i$TAG &&
            ip -n sge$i$TAG link set lo up &&
            ip -n sgo$TAG link add v$i type veth peer name eth0 netns sge$i$TAG &&
            ip -n sgo$TAG link set v$i master br0 &&
            ip -n sgo$TAG link set v$i up &&
            ip -n sge$i$TAG addr add 10.77.0.1$i/24 dev eth0 &&
            ip -n sge$i$TAG link set eth0 up || return 1
    done
}
if [ -z "${SIPGUARD_TEST_LOOPBACK:-}" ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null &&
    make_namespaces 2>/dev/null; then
    NS=yes
    OADDR=10.77.0.1
    echo "network namespaces: overlay at $OADDR, edges at 10.77.0.11-13"
else
    for n in o e1 e2 e3; do ip netns del sg$n$TAG 2>/dev/null; done
    NS=no
    OADDR=127.0.0.1
    echo "no network namespaces here (needs root and iproute2): all on loopback"
fi
# commands run in a node's namespace through these prefixes (ip execs the command, so a
# background job's PID is the command's own)
ON_O=() ON_E1=() ON_E2=() ON_E3=()
if [ $NS = yes ]; then
    ON_O=(ip netns exec sgo$TAG) ON_E1=(ip netns exec sge1$TAG) ON_E2=(ip netns exec sge2$TAG)
    ON_E3=(ip netns exec sge3$TAG)
fi
in_o() { "${ON_O[@]}" "$@"; }
in_e() {
    local i=$1
    shift
    case $i in 1) "${ON_E1[@]}" "$@" ;; 2) "${ON_E2[@]}" "$@" ;; 3) "${ON_E3[@]}" "$@" ;; esac
}
on_e() { # the prefix of edge $1, into the array PFX
    case $1 in 1) PFX=("${ON_E1[@]}") ;; 2) PFX=("${ON_E2[@]}") ;; 3) PFX=("${ON_E3[@]}") ;; esac
}
o_metric() { in_o curl -s "http://127.0.0.1:$(port http o.ports)/metrics" | awk -v m="$1" '$1==m{print $2}'; }
e_metric() { in_e $1 curl -s "http://127.0.0.1:$(port http e$1.ports)/metrics" | awk -v m="$2" '$1==m{print $2}'; }

# ---- traffic and the model
"$S" gen -o train --preset demo --attacks none --seed 1 --population-seed 7 2>/dev/null
"$S" gen -o clean --preset demo --attacks none --seed 6 --population-seed 7 2>/dev/null
"$S" gen -o attack --attacker-only --attacks scan,guess --seed 5 --population-seed 7 2>/dev/null
"$S" gen -o busy --preset demo --seed 2 --population-seed 7 2>/dev/null
"$S" train -q -o edge.model train.pcap
NATTACK=$(($(wc -l < attack.labels.csv) - 1))

# ---- the overlay's keys, then three edges (which make theirs), then the overlay knowing them
OVA=(--set overlay.db=overlay.db --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0
     --set signatures.model=edge.model --set signatures.clean=clean.pcap
     --set signatures.build_interval=1 --set signatures.auto_approve=5
     --set "overlay.listen=tcp://$OADDR:7070" --set "overlay.snapshot_listen=tcp://$OADDR:7071"
     --set "overlay.updates_listen=tcp://$OADDR:7072")
if [ $NS = no ]; then # loopback: free ports
    # the overlay starts on these ports again: picked outside the ephemeral range (checks.sh)
    pick_ports P_REP P_SNAP P_UPD
    OVA+=(--set "overlay.listen=tcp://127.0.0.1:$P_REP" --set "overlay.snapshot_listen=tcp://127.0.0.1:$P_SNAP"
          --set "overlay.updates_listen=tcp://127.0.0.1:$P_UPD")
fi
"${ON_O[@]}" "$O" "${OVA[@]}" --ports-file o0.ports 2>o0.log & P=$!
wait_for 10 "[ -s o0.ports ]"
kill $P; wait $P 2>/dev/null
REP=$(port reports o0.ports) SNAP=$(port snapshot o0.ports) UPD=$(port updates o0.ports) KEY=$(port key o0.ports)
OVA+=(--set "overlay.listen=$REP" --set "overlay.snapshot_listen=$SNAP" --set "overlay.updates_listen=$UPD")
EDGES=()
start_edge() {
    local i=$1 PFX
    on_e $i
    "${PFX[@]}" "$E" -m edge.model --set edge.id=edge$i --set ingest.hep_listen=127.0.0.1:0 \
        --set http.listen=127.0.0.1:0 --set "overlay.endpoint=$REP" --set "overlay.server_key=$KEY" \
        --set overlay.key_dir=keys$i --set overlay.spool_dir=spool$i \
        --set "overlay.signatures_snapshot=$SNAP" --set "overlay.signatures_updates=$UPD" \
        --set scoring.local_policy=always --ports-file e$i.ports 2>>e$i.log &
    EDGES[$i]=$!
    PIDS+=($!)
}
for i in 1 2 3; do start_edge $i; done
for i in 1 2 3; do wait_for 20 "[ -s e$i.ports ] && [ -s keys$i/edge.pub ]"; done
EDGE_ARGS=()
for i in 1 2 3; do EDGE_ARGS+=(--edge "edge$i=$(cat keys$i/edge.pub)"); done
start_overlay() {
    rm -f o.ports
    "${ON_O[@]}" "$O" "${OVA[@]}" "${EDGE_ARGS[@]}" --ports-file o.ports 2>>overlay.log &
    OVP=$!
    PIDS+=($OVP)
    wait_for 20 "[ -s o.ports ]"
}
start_overlay

# ---- the attack reaches edge1 only
in_e 1 "$S" replay -q --hep 127.0.0.1:$(port hep e1.ports) --rate 2000 attack.pcap
same_set() {
    local s1 s2 s3
    s1=$(e_metric 1 sipguard_signature_sequence) s2=$(e_metric 2 sipguard_signature_sequence)
    s3=$(e_metric 3 sipguard_signature_sequence)
    [ "${s1:-0}" != 0 ] && [ "$s1" = "$s2" ] && [ "$s1" = "$s3" ] &&
        [ "$(e_metric 1 sipguard_signatures_active)" = "$(e_metric 2 sipguard_signatures_active)" ] &&
        [ "$(e_metric 1 sipguard_signatures_active)" = "$(e_metric 3 sipguard_signatures_active)" ]
}
msgs() { in_e $1 curl -s "http://127.0.0.1:$(port http e$1.ports)/metrics" | awk '/^sipguard_messages_total/{s+=$2} END{print s+0}'; }
# The overlay builds signatures while the attack's reports still arrive, so the first set may
# hold only part of them: wait until edge1 has scored the whole attack, the overlay has stored
# and clustered every report it made, and the set has stopped changing.
attack_clustered() {
    [ "$(e_metric 1 sipguard_spool_pending_reports)" = 0 ] || return 1
    local made stored clean clustered
    made=$(e_metric 1 sipguard_reports_total) stored=$(o_metric sipguard_overlay_reports_in_store)
    clean=$(o_metric sipguard_overlay_clean_samples_total)
    clustered=$(o_metric sipguard_overlay_anomalies_clustered_total)
    [ "${made:-0}" -gt 0 ] && [ "$stored" = "$made" ] && [ "${clustered:-0}" -ge $((stored - clean)) ]
}
stable_set() {
    same_set || return 1
    local seq
    seq=$(e_metric 1 sipguard_signature_sequence)
    sleep 3 # three builds (build_interval 1 s) without a new set
    same_set && [ "$(e_metric 1 sipguard_signature_sequence)" = "$seq" ]
}
wait_for 60 "[ \$(msgs 1) -ge $NATTACK ]"
wait_for 60 attack_clustered
wait_for 60 stable_set
ACTIVE=$(e_metric 1 sipguard_signatures_active)
check "the attack on edge1 became active signatures ($ACTIVE) on all three edges, one set (sequence $(e_metric 1 sipguard_signature_sequence))" \
    "same_set && [ \"\${ACTIVE:-0}\" -gt 0 ]"
for i in 2 3; do
    before=$(msgs $i)
    in_e $i "$S" replay -q --hep 127.0.0.1:$(port hep e$i.ports) --rate 1000 attack.pcap
    wait_for 60 "[ \$(msgs $i) -ge $((before + NATTACK)) ]" # the edge has seen them all
done
for i in 2 3; do
    HITS=$(e_metric $i 'sipguard_detector_fired_total{detector="signature"}')
    check "edge$i, which never saw the attack before, stops it by signature ($HITS of $NATTACK)" \
        "[ \"\${HITS:-0}\" -gt $((NATTACK / 2)) ]"
done

# ---- no acknowledged report lost: the overlay killed while all three edges send
BEFORE=$(o_metric sipguard_overlay_reports_in_store)
REPLAYS=()
for i in 1 2 3; do
    on_e $i
    "${PFX[@]}" "$S" replay -q --hep 127.0.0.1:$(port hep e$i.ports) --rate 3000 busy.pcap &
    REPLAYS+=($!)
    PIDS+=($!)
done
sleep 0.5
kill -9 $OVP; wait $OVP 2>/dev/null
sleep 1
start_overlay
wait "${REPLAYS[@]}"
spools_empty() {
    for i in 1 2 3; do [ "$(e_metric $i sipguard_spool_pending_reports)" = 0 ] || return 1; done
}
# edges may still be working through what the replays sent: wait until what they made and
# what the overlay holds agree (a lost report never lets them)
settled() {
    spools_empty || return 1
    sent=0
    for i in 1 2 3; do sent=$((sent + $(e_metric $i sipguard_reports_total))); done
    STORED=$(o_metric sipguard_overlay_reports_in_store)
    [ "$STORED" = "$sent" ]
}
wait_for 120 settled
check "overlay SIGKILLed mid-stream and restarted: every report the edges made is stored once ($STORED of $sent)" \
    "[ \"$STORED\" = \"$sent\" ] && [ \"$sent\" -gt \"$BEFORE\" ]"
check "after the restart the edges still share one signature set" "wait_for 20 same_set"
in_o curl -s "http://127.0.0.1:$(port http o.ports)/v1/edges" > edges.json
# every edge says in its reports which set it enforced (1 or later: the one they held when they
# reported, which auto-approval may since have moved on)
OSEQ=$(grep -o '"signature_sequence":[0-9]*}$' edges.json | grep -o '[0-9]*')
check "the overlay lists all three edges, each with the signature set it enforced (overlay's: $OSEQ)" \
    "grep -q '\"edge\":\"edge1\"' edges.json && grep -q '\"edge\":\"edge2\"' edges.json && grep -q '\"edge\":\"edge3\"' edges.json && [ \$(grep -o '\"signature_sequence\":[1-9][0-9]*}[],]' edges.json | wc -l) = 3 ]"
kill -TERM "${EDGES[@]}" $OVP 2>/dev/null
wait "${EDGES[@]}" $OVP 2>/dev/null
check "no sanitizer report in any log" "! grep -l 'Sanitizer\\|runtime error' *.log"
echo "$checks checks, $fails failed"
[ $fails = 0 ]
