#!/usr/bin/env bash
# Overlay benchmarks on loopback: reports/s the overlay commits and acknowledges from one edge
# replaying a capture (end to end) and from 1, 4 and 16 simulated edges (bench/ingest_bench);
# the time of POST /v1/build over everything stored; a restart on 48,000 stored anomalies with
# and without saved clusters; from the first report of a new attack to a verified candidate
# signature; from an approval to three edges enforcing it (median of three); from one edge's
# ban to two others answering the source banned (median of three).
# Fixed seeds; prints "name value" lines. usage: bench/overlay.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
B="$(cd "$BUILD" && pwd)"
S="$B/cli/sipguard" E="$B/detector/sipguard-edge" O="$B/overlay/sipguard-overlay"
T=$(mktemp -d)
PIDS=()
. "$(dirname "$(realpath "$0")")/../tests/checks.sh" # pick_ports
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$T"' EXIT
cd "$T"
now_ms() { date +%s%3N; }
"$S" gen -o train --preset demo --attacks none --seed 1 --population-seed 7 2>/dev/null
"$S" gen -o clean --preset demo --attacks none --seed 3 --population-seed 7 2>/dev/null
"$S" gen -o test --preset demo --seed 2 --population-seed 7 2>/dev/null
"$S" train -q -o m.model train.pcap
N=$(($(wc -l < test.labels.csv) - 1))
OVA=(--set overlay.db=ov.db --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0
     --set signatures.model=m.model --set signatures.clean=clean.pcap --set signatures.build_interval=0)
# the next overlay starts on this one's ports: picked outside the ephemeral range
pick_ports P_REP P_SNAP P_UPD
"$O" "${OVA[@]}" --set "overlay.listen=tcp://127.0.0.1:$P_REP" --set "overlay.snapshot_listen=tcp://127.0.0.1:$P_SNAP" \
    --set "overlay.updates_listen=tcp://127.0.0.1:$P_UPD" --ports-file o1 2>/dev/null & P=$!
for _ in $(seq 100); do [ -s o1 ] && break; sleep 0.1; done
EP=$(awk '$1=="reports"{print $2}' o1) SN=$(awk '$1=="snapshot"{print $2}' o1)
UP=$(awk '$1=="updates"{print $2}' o1) KEY=$(awk '$1=="key"{print $2}' o1)
kill $P; wait $P || true
# edge keys first (an edge makes them on its first start)
mkdir -p ekeys && "$E" -m m.model --set http.listen= --set ingest.hep_listen= --set ingest.pcap_file=train.pcap \
    --set ingest.pcap_exit=yes --set "overlay.endpoint=$EP" --set "overlay.server_key=$KEY" \
    --set overlay.key_dir=ekeys --set overlay.spool_dir=warm --set overlay.spool_max_bytes=65536 >/dev/null 2>&1 || true
"$O" "${OVA[@]}" --set "overlay.listen=$EP" --set "overlay.snapshot_listen=$SN" --set "overlay.updates_listen=$UP" \
    --edge "edge1=$(cat ekeys/edge.pub)" --ports-file o2 2>/dev/null & P=$!; PIDS+=($P)
for _ in $(seq 100); do [ -s o2 ] && break; sleep 0.1; done
OH=$(awk '$1=="http"{print $2}' o2)
t0=$(now_ms)
"$E" -m m.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen= --set ingest.pcap_file=test.pcap \
    --set "overlay.endpoint=$EP" --set "overlay.server_key=$KEY" --set overlay.key_dir=ekeys \
    --set overlay.spool_dir=spool --set "overlay.signatures_snapshot=$SN" --set "overlay.signatures_updates=$UP" \
    --set report.anomalies_only=no --set scoring.local_policy=never --ports-file e1 2>/dev/null & EP1=$!; PIDS+=($EP1)
for _ in $(seq 3000); do [ "$(metric $OH sipguard_overlay_reports_stored_total 2>/dev/null)" = "$N" ] && break; sleep 0.01; done
t1=$(now_ms)
echo "overlay_reports $N"
echo "overlay_reports_per_s_acked_end_to_end $(( N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) ))"
EH=$(awk '$1=="http"{print $2}' e1)
t0=$(now_ms); curl -s -X POST 127.0.0.1:$OH/v1/build > build.json; t1=$(now_ms)
echo "overlay_build_ms $((t1 - t0))"
echo "overlay_build_candidates $(grep -o '[0-9]*' build.json)"
# two more edges that only hold the signature set (the same key as edge1, no input), so an
# approval is timed until all three enforce it
for i in 2 3; do
    "$E" -m m.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen=127.0.0.1:0 \
        --set "overlay.endpoint=$EP" --set "overlay.server_key=$KEY" --set overlay.key_dir=ekeys \
        --set overlay.spool_dir=spool$i --set "overlay.signatures_snapshot=$SN" \
        --set "overlay.signatures_updates=$UP" --ports-file e$i 2>/dev/null & PIDS+=($!)
done
for i in 2 3; do for _ in $(seq 100); do [ -s e$i ] && break; sleep 0.1; done; done
EH2=$(awk '$1=="http"{print $2}' e2) EH3=$(awk '$1=="http"{print $2}' e3)
all_at() { for h in $EH $EH2 $EH3; do [ "$(metric $h sipguard_signature_sequence)" = "$1" ] || return 1; done; }
for _ in $(seq 100); do all_at "$(metric $EH sipguard_signature_sequence)" && break; sleep 0.1; done
lat=()
for k in 1 2 3; do
    id=$(curl -s "127.0.0.1:$OH/v1/signatures?state=pending" | grep -o '"id":"sig-[0-9]*"' | head -1 | cut -d'"' -f4)
    want=$(( $(metric $EH sipguard_signature_sequence) + 1 ))
    t0=$(now_ms)
    curl -s -o /dev/null -X POST 127.0.0.1:$OH/v1/signatures/$id/approve
    for _ in $(seq 5000); do all_at "$want" && break; done
    # each edge says when the set took effect: the slowest edge's time, not our polling's
    t1=$(for h in $EH $EH2 $EH3; do metric $h sipguard_signature_set_applied_seconds; done |
        awk 'BEGIN{m=0} {if ($1 > m) m = $1} END{printf "%.0f", m * 1000}')
    lat+=($((t1 - t0)))
done
echo "overlay_approval_to_all_3_edges_ms_median $(printf '%s\n' "${lat[@]}" | sort -n | sed -n 2p)"


# Many edges at once: ingest_bench plays K edges (a CURVE key pair each) sending anomaly
# reports with 256 unacknowledged at most; the overlay commits, acknowledges and clusters them.
IB="$B/bench/ingest_bench"
fresh_overlay() { # name, then extra arguments; sets OP, OEP, OKEY, OHTTP
    rm -f "$1.ports"
    "$O" --set "overlay.db=$1.db" --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0 \
        --set signatures.model=m.model --set signatures.clean=clean.pcap \
        --set 'overlay.listen=tcp://127.0.0.1:*' --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' \
        --set 'overlay.updates_listen=tcp://127.0.0.1:*' "${@:2}" --ports-file "$1.ports" 2>"$1.log" &
    OP=$!
    PIDS+=($OP)
    for _ in $(seq 100); do [ -s "$1.ports" ] && break; sleep 0.1; done
    OEP=$(awk '$1=="reports"{print $2}' "$1.ports") OKEY=$(awk '$1=="key"{print $2}' "$1.ports")
    OHTTP=$(awk '$1=="http"{print $2}' "$1.ports")
}
"$IB" keys ibkeys 16 > ibedges.args
for K in 1 4 16; do
    fresh_overlay ib$K --set signatures.build_interval=0 $(cat ibedges.args)
    "$IB" run "$OEP" "$OKEY" ibkeys $K $((48000 / K)) | sed "s/^overlay_ingest_reports_per_s/overlay_ingest_reports_per_s_${K}_edges/" |
        grep -v '^overlay_ingest_edges'
    kill $OP; wait $OP 2>/dev/null || true
done

# A restart on a store of 48,000 anomalies: without saved clusters (the store filled by an
# overlay without a model) every report is clustered again; with them (saved on the way out),
# the overlay resumes them before it listens.
fresh_overlay rs --set signatures.build_interval=0 --set signatures.model= $(cat ibedges.args)
"$IB" run "$OEP" "$OKEY" ibkeys 16 3000 >/dev/null
kill $OP; wait $OP 2>/dev/null || true
t0=$(now_ms)
fresh_overlay rs --set signatures.build_interval=0 $(cat ibedges.args)
for _ in $(seq 6000); do
    [ "$(metric $OHTTP sipguard_overlay_anomalies_clustered_total)" = 48000 ] && break
    sleep 0.05
done
t1=$(now_ms)
echo "overlay_restart_clustering_48000_again_ms $((t1 - t0))"
for _ in $(seq 600); do [ "$(metric $OHTTP sipguard_overlay_cluster_state_bytes)" != 0 ] && break; sleep 0.05; done
echo "overlay_cluster_state_bytes $(metric $OHTTP sipguard_overlay_cluster_state_bytes)"
kill $OP; wait $OP 2>/dev/null || true
t0=$(now_ms)
fresh_overlay rs --set signatures.build_interval=0 $(cat ibedges.args)
t1=$(now_ms)
grep -q 'clusters resumed' rs.log || echo "bench/overlay.sh: the restart did not resume" >&2
echo "overlay_restart_resuming_saved_clusters_ms $((t1 - t0))"
kill $OP; wait $OP 2>/dev/null || true

# From the first report of a new attack to a verified candidate signature: the overlay
# clusters reports as they arrive and builds every second ([signatures] build_interval = 1).
fresh_overlay cand --set signatures.build_interval=1 $(cat ibedges.args)
t0=$(now_ms)
"$IB" run "$OEP" "$OKEY" ibkeys 1 50 >/dev/null
for _ in $(seq 300); do
    curl -s "127.0.0.1:$OHTTP/v1/signatures?state=pending" | grep -q '"id":"sig-' && break
    sleep 0.02
done
t1=$(now_ms)
echo "overlay_first_anomaly_to_candidate_ms $((t1 - t0))"
kill $OP; wait $OP 2>/dev/null || true

# A ban shared across the domain: on an overlay of its own, an edge that bans at the first
# anomaly and two that take the domain's list ([ban] domain), admitted by a SIGHUP once their
# keys exist; from the banning request until both others answer the source banned (polled by
# scoring its message on each), median of three sources
printf '[edges]\n' > bans.conf
fresh_overlay bans -c bans.conf --set signatures.build_interval=0
BSN=$(awk '$1=="snapshot"{print $2}' bans.ports) BUP=$(awk '$1=="updates"{print $2}' bans.ports)
for i in 4 5 6; do
    role=(--set ban.domain=yes)
    [ $i = 4 ] && role=(--set ban.after=1)
    "$E" -m m.model --set edge.id=edge$i --set http.listen=127.0.0.1:0 --set ingest.hep_listen=127.0.0.1:0 \
        --set "overlay.endpoint=$OEP" --set "overlay.server_key=$OKEY" --set overlay.key_dir=bkeys$i \
        --set overlay.spool_dir=bspool$i --set "overlay.signatures_snapshot=$BSN" \
        --set "overlay.signatures_updates=$BUP" "${role[@]}" --ports-file e$i 2>/dev/null & PIDS+=($!)
done
for i in 4 5 6; do for _ in $(seq 100); do [ -s e$i ] && [ -s bkeys$i/edge.pub ] && break; sleep 0.1; done; done
for i in 4 5 6; do echo "edge$i = $(cat bkeys$i/edge.pub)"; done >> bans.conf
kill -HUP $OP
EH4=$(awk '$1=="http"{print $2}' e4) EH5=$(awk '$1=="http"{print $2}' e5) EH6=$(awk '$1=="http"{print $2}' e6)
for _ in $(seq 300); do [ "$(metric $EH4 sipguard_overlay_connected)" = 1 ] &&
    [ "$(metric $EH5 sipguard_overlay_connected)" = 1 ] && [ "$(metric $EH6 sipguard_overlay_connected)" = 1 ] &&
    [ "$(metric $OHTTP sipguard_overlay_reloads_total)" = 1 ] && break; sleep 0.1; done
sleep 11 # a subscription the overlay refused is made anew after 10 s
printf 'OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-1\r\nFrom: "sipvicious"<sip:100@1.1.1.1>;tag=6438\r\nTo: "sipvicious"<sip:100@1.1.1.1>\r\nCall-ID: 1'"'"' OR 1=1--\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n' > scan.sip
banned_at() { curl -s -H "X-SIP-Source: $2:5070" --data-binary @scan.sip "127.0.0.1:$1/v1/score" | grep -q '"verdict":"banned"'; }
lat=()
for src in 203.0.113.1 203.0.113.2 203.0.113.3; do
    sleep 1.1 # the overlay moves the set on for bans at most once a second
    t0=$(now_ms)
    curl -s -o /dev/null -H "X-SIP-Source: $src:5070" --data-binary @scan.sip "127.0.0.1:$EH4/v1/score"
    for _ in $(seq 1000); do banned_at $EH5 $src && banned_at $EH6 $src && break; sleep 0.005; done
    lat+=($(($(now_ms) - t0)))
done
echo "overlay_ban_to_2_other_edges_ms_median $(printf '%s\n' "${lat[@]}" | sort -n | sed -n 2p)"
kill $OP; wait $OP 2>/dev/null || true
