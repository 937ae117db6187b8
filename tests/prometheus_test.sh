#!/usr/bin/env bash
# The Prometheus alerting rules (etc/prometheus/sipguard-alerts.yml): promtool accepts them, its
# unit tests (tests/prometheus/alerts_test.yml) pass, and every sipguard metric a rule reads is
# one that a running edge or overlay exposes (so a renamed metric cannot leave a rule that
# never fires); and the Grafana dashboard (etc/grafana/sipguard-dashboard.json): its queries
# parse, its panels do not overlap, and every metric it reads is exposed. Skips (exit 77)
# without promtool (Debian package prometheus).
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

# the Grafana dashboard: every panel's query is PromQL that promtool parses (each becomes a
# recording rule, the dashboard's variables given values), the panels do not overlap, and
# every sipguard metric it reads is exposed
DASH="$SRC/etc/grafana/sipguard-dashboard.json"
check "the dashboard's panels: each titled, described, on the data source variable, none overlapping" \
    "python3 - '$DASH' >dash-rules.yml 2>dash.err <<'PY' || { cat dash.err; false; }
import json, sys
d = json.load(open(sys.argv[1]))
panels = [p for p in d['panels'] if p['type'] != 'row']
cells = set()
print('groups:\\n- name: dashboard\\n  rules:')
for p in d['panels']:
    g = p['gridPos']
    for x in range(g['x'], g['x'] + g['w']):
        for y in range(g['y'], g['y'] + g['h']):
            assert (x, y) not in cells and x < 24, 'overlap at %s' % p['title']
            cells.add((x, y))
for p in panels:
    assert p['title'] and p['description'] and p['datasource']['uid'] == '\${datasource}', p
    for t in p['targets']:
        e = t['expr'].replace('\$__rate_interval', '5m').replace('\$edge', '.*').replace('\$overlay', '.*')
        print('  - record: dashboard:panel_%d_%s' % (p['id'], t['refId']))
        print('    expr: %s' % json.dumps(e))
assert len(panels) >= 20
PY"
check "promtool parses every query of the dashboard ($(grep -c 'record:' dash-rules.yml) queries)" \
    "promtool check rules dash-rules.yml >dash-check.out 2>&1 || { cat dash-check.out; false; }"
grep -o 'sipguard_[a-z_]*' "$DASH" | sed -E 's/_(bucket|sum|count)$//' | sort -u > dash-used.txt
MISSING=$(comm -23 dash-used.txt exposed.txt | tr '\n' ' ')
check "every metric the dashboard reads is exposed ($(wc -l < dash-used.txt) used; missing: ${MISSING:-none})" \
    "[ -z '$MISSING' ] && [ \$(wc -l < dash-used.txt) -ge 30 ]"
kill_ours TERM "${PIDS[@]}"
wait
echo "$checks checks, $fails failed"
[ $fails = 0 ]
