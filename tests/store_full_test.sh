#!/usr/bin/env bash
# The overlay's store runs out of room while an edge reports: the overlay keeps running, says
# why, acknowledges nothing it could not commit (the reports wait in the edge's spool), and
# once there is room again stores every report exactly once, its counts right. The full disk
# is a file size limit (prlimit, lifted later on the running process), which fails the
# database's writes as ENOSPC would; the overlay ignores SIGXFSZ for that.
# usage: store_full_test.sh SIPGUARD SIPGUARD_EDGE SIPGUARD_OVERLAY
set -uo pipefail
S=$(realpath "$1") E=$(realpath "$2") O=$(realpath "$3") HERE=$(dirname "$(realpath "$0")")
command -v prlimit >/dev/null || { echo "SKIP: prlimit (util-linux) not found"; exit 77; }
. "$HERE/checks.sh" # check, wait_for, kill_ours, pick_ports, port, metric
in_scratch_dir

"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" gen -o test --seed 4 --population-seed 3 --attack-scale 0.3 2>/dev/null
"$S" train -q -o edge.model train.pcap
N=$(($(wc -l < test.labels.csv) - 1))

# the overlay, its files limited to 1 MB (a soft limit, which it may raise again): the schema
# fits, and some hundreds of reports
start_overlay() { # name, then the command's first words and extra settings; sets OV_PID, OV_HTTP
    local name=$1
    shift
    "$@" -c ov.conf --set overlay.db=overlay.db --set overlay.key_dir=okeys \
        --set overlay.http_listen=127.0.0.1:0 --set signatures.build_interval=0 \
        --set 'overlay.listen=tcp://127.0.0.1:*' --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' \
        --set 'overlay.updates_listen=tcp://127.0.0.1:*' --ports-file $name.ports 2>$name.log &
    OV_PID=$!
    PIDS+=($OV_PID)
    wait_for 20 "[ -s $name.ports ]" || { cat $name.log; exit 1; }
    OV_HTTP=$(port http $name.ports)
}
printf '[edges]\n' > ov.conf
start_overlay ov prlimit --fsize=1048576:unlimited "$O" --set signatures.model=edge.model
"$E" -m edge.model --set ingest.hep_listen=127.0.0.1:0 --set http.listen=127.0.0.1:0 \
    --set "overlay.endpoint=$(port reports ov.ports)" --set "overlay.server_key=$(port key ov.ports)" \
    --set overlay.key_dir=keys --set overlay.spool_dir=spool --set overlay.ack_timeout=1 \
    --set report.anomalies_only=no --set scoring.local_policy=never --ports-file e.ports 2>e.log &
EDGE=$!
PIDS+=($EDGE)
wait_for 20 "[ -s e.ports ] && [ -s keys/edge.pub ]" || { cat e.log; exit 1; }
HTTP=$(port http e.ports) HEP=$(port hep e.ports)
printf '[edges]\nedge1 = %s\n' "$(cat keys/edge.pub)" > ov.conf
kill -HUP $OV_PID
wait_for 20 "[ \"\$(metric $HTTP sipguard_overlay_connected)\" = 1 ]"

"$S" replay -q --hep 127.0.0.1:$HEP --rate 4000 test.pcap
wait_for 30 "[ \"\$(metric $OV_HTTP sipguard_overlay_commit_failures_total)\" -gt 0 ] 2>/dev/null"
# the edge sends the unacknowledged reports again, and they fail again
wait_for 60 "[ \"\$(metric $OV_HTTP sipguard_overlay_commit_failures_total)\" -ge 20 ]"
STORED=$(metric $OV_HTTP sipguard_overlay_reports_stored_total)
PENDING=$(metric $HTTP sipguard_spool_pending_reports)
check "with the store full the overlay runs on, and says why ($(grep -m1 -o 'cannot store.*' ov.log))" \
    "kill -0 $OV_PID && grep -q 'cannot store [0-9]* reports: .*they stay with their edges' ov.log"
check "what it could not commit is not acknowledged: $PENDING reports wait in the edge's spool, $STORED stored of $N" \
    "[ \"$PENDING\" -gt 0 ] && [ \"$STORED\" -lt $N ] && [ \$((STORED + PENDING)) -ge $N ]"
check "failed batches are logged once a minute, not at every retry ($(grep -c 'cannot store' ov.log) lines, $(metric $OV_HTTP sipguard_overlay_commit_failures_total) failed batches)" \
    "[ \$(grep -c 'cannot store' ov.log) = 1 ] && [ \"\$(metric $OV_HTTP sipguard_overlay_commit_failures_total)\" -ge 20 ]"

prlimit --pid $OV_PID --fsize=unlimited
wait_for 60 "[ \"\$(metric $HTTP sipguard_spool_pending_reports)\" = 0 ]"
check "with room again every report is acknowledged and counted once ($(metric $OV_HTTP sipguard_overlay_reports_stored_total) stored of $N)" \
    "[ \"\$(metric $OV_HTTP sipguard_overlay_reports_stored_total)\" = $N ] && [ \"\$(metric $OV_HTTP sipguard_overlay_reports_in_store)\" = $N ]"
check "the overlay says it stores again" "grep -q 'storing reports again' ov.log"
kill -TERM $EDGE; wait $EDGE
kill -TERM $OV_PID; wait $OV_PID; rc=$?
check "the overlay stops cleanly (exit $rc)" "[ $rc = 0 ]"
# the store's own count: an overlay started on it counts its rows
start_overlay ov2 "$O"
IN_STORE=$(metric $OV_HTTP sipguard_overlay_reports_in_store)
check "the store holds every report once ($IN_STORE rows of $N)" "[ \"$IN_STORE\" = $N ]"
kill -TERM $OV_PID; wait $OV_PID
check "no sanitizer report in any log" "! grep -l 'Sanitizer\\|runtime error' *.log"
echo "$checks checks, $fails failed"
[ $fails = 0 ]
