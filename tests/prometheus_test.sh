#!/usr/bin/env bash
# The Prometheus alerting rules (etc/prometheus/sipguard-alerts.yml): promtool accepts them, its
# unit tests (tests/prometheus/alerts_test.yml) pass, and every sipguard metric a rule reads is
# one that a running edge or overlay exposes (so a renamed metric cannot leave a rule that
# never fires). Skips (exit 77) without promtool (Debian package prometheus).
# usage: prometheus_test.sh SIPGUARD SIPGUARD_EDGE SIPGUARD_OVERLAY
set -uo pipefail
S=$(realpath "$1") E=$(realpath "$2") O=$(realpath "$3")
HERE=$(dirname "$(realpath "$0")")
SRC=$(dirname "$HERE")
command -v promtool >/dev/null || { echo "SKIP: promtool not found (apt-get install prometheus)"; exit 77; }
. "$HERE/checks.sh" # check, wait_for, kill_ours, port, metric
in_scratch_dir
RULES="$SRC/etc/prometheus/sipguard-alerts.yml"

check "promtool check rules accepts the rules" "promtool check rules '$RULES' >check.out 2>&1"
check "promtool test rules: every alert fires where it should and nowhere else" \
    "(cd '$HERE/prometheus' && promtool test rules alerts_test.yml) >test.out 2>&1 || { cat test.out; false; }"

# the metrics a running edge and overlay expose (a model, no overlay for the edge)
"$S" gen -o train --attacks none --seed 3 2>/dev/null
"$S" train -q -o m.model train.pcap 2>/dev/null
"$E" -m m.model --set http.listen=127.0.0.1:0 --set ingest.hep_listen=127.0.0.1:0 \
    --ports-file edge.ports 2>edge.log &
PIDS+=($!)
"$O" --set overlay.db=o.db --set overlay.key_dir=okeys --set overlay.http_listen=127.0.0.1:0 \
    --set 'overlay.listen=tcp://127.0.0.1:*' --set 'overlay.snapshot_listen=tcp://127.0.0.1:*' \
    --set 'overlay.updates_listen=tcp://127.0.0.1:*' --set signatures.model=m.model \
    --set signatures.clean=train.pcap --ports-file ov.ports 2>ov.log &
PIDS+=($!)
wait_for 20 "[ -s edge.ports ] && [ -s ov.ports ]" || { cat edge.log ov.log; exit 1; }
{
    curl -s "http://127.0.0.1:$(port http edge.ports)/metrics"
    curl -s "http://127.0.0.1:$(port http ov.ports)/metrics"
} | awk '/^# TYPE /{print $3}' | sort -u > exposed.txt
grep -o 'sipguard_[a-z_]*' "$RULES" | sort -u > used.txt
MISSING=$(comm -23 used.txt exposed.txt | tr '\n' ' ')
check "every metric the rules read is exposed ($(wc -l < used.txt) used, $(wc -l < exposed.txt) exposed; missing: ${MISSING:-none})" \
    "[ -z '$MISSING' ] && [ \$(wc -l < used.txt) -ge 15 ]"
kill_ours TERM "${PIDS[@]}"
wait
echo "$checks checks, $fails failed"
[ $fails = 0 ]
