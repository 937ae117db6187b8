#!/usr/bin/env bash
# Soak of sipguard-edge: does its memory stay flat while every table turns over? One edge
# (context detectors, bans, recording of every message, reports) takes bench/soak_sender's mix
# for SOAK_SECONDS (default 180) at SOAK_RATE messages/s (default 5000): answered pings and
# calls, registrations and scans from ever new IPv4 and IPv6 sources, garbage. The context
# model's tables are sized small (8,192 dialog legs, 4,096 users, 4,096 flood counters) so
# that they fill within the first minute and the rest of the run is steady state; the ban
# table holds 65,536 sources (the proxy allowed), and [record] keeps 64 MiB in 8 MiB files.
# Samples every 5 s go to stderr (time, RSS, messages, tables); prints "name value" lines:
# the edge's RSS at a quarter, at half and at the end of the run, its growth over the second
# half (the figure that should be about 0), and the tables at the end.
#   usage: bench/soak.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
B="$(cd "$BUILD" && pwd)"
S="$B/cli/sipguard" E="$B/detector/sipguard-edge" SENDER="$B/bench/soak_sender"
SECONDS_RUN=${SOAK_SECONDS:-180} RATE=${SOAK_RATE:-5000}
for p in "$S" "$E" "$SENDER"; do [ -x "$p" ] || { echo "soak: $p is not built" >&2; exit 1; }; done
T=$(mktemp -d)
EDGE="" SEND=""
trap '[ -z "$SEND" ] || kill $SEND 2>/dev/null || true; [ -z "$EDGE" ] || kill $EDGE 2>/dev/null || true; rm -rf "$T"' EXIT
cd "$T"
PIN0="" PIN1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN0="taskset -c 0" PIN1="taskset -c 1"; fi
metrics() { curl -s "http://127.0.0.1:$HTTP/metrics" > m.txt; }
m() { awk -v m="$1" '$1==m{print $2}' m.txt; }
judged() { awk '/^sipguard_messages_total/{s+=$2} END{print s+0}' m.txt; }
rss() { awk '/VmRSS/{print $2}' /proc/$EDGE/status; }
hwm() { awk '/VmHWM/{print $2}' /proc/$EDGE/status; }

"$S" gen -o tr --attacks none --seed 7 2>/dev/null
"$S" train -q -o m.model tr.pcap 2>/dev/null
"$S" context train -q -o ctx.json --dialog-capacity 8192 --expected-users 4096 \
    --flood-capacity 4096 tr.pcap 2>/dev/null
mkdir rec spool # here, not /var/lib/sipguard: a ban file left from a run before would be loaded
printf '10.0.0.1\n2001:db8::1\n' > proxy.allow # the proxy is never banned, as at a real edge
$PIN0 "$E" -m m.model --set detectors.context=ctx.json --set http.listen=127.0.0.1:0 \
    --set ingest.hep_listen=127.0.0.1:0 --set report.jsonl=/dev/null --set ban.after=3 \
    --set verdict.allow_file=proxy.allow --set ban.file=bans.json --set overlay.spool_dir=spool \
    --set record.dir=rec --set record.verdicts=all --set record.file_mb=8 --set record.max_mb=64 \
    --ports-file ports 2> edge.log &
EDGE=$!
for _ in $(seq 100); do [ -s ports ] && break; sleep 0.1; done
HTTP=$(awk '$1=="http"{print $2}' ports) HEP=$(awk '$1=="hep"{print $2}' ports)
$PIN1 "$SENDER" 127.0.0.1:$HEP "$SECONDS_RUN" "$RATE" > sender.txt &
SEND=$!
echo "startup: rss_kb $(rss) peak_rss_kb $(hwm)" >&2
echo "seconds rss_kb peak_rss_kb judged dialog_legs bindings bans_tracked record_files" >&2
T0=$(date +%s) QUARTER="" HALF="" LAST=""
while kill -0 $SEND 2>/dev/null; do
    sleep 5
    kill -0 $EDGE 2>/dev/null || { echo "soak: the edge died; its log:" >&2; tail -5 edge.log >&2; exit 1; }
    metrics
    t=$(($(date +%s) - T0)) r=$(rss)
    echo "$t $r $(hwm) $(judged) $(($(m 'sipguard_dialog_legs{state="open"}') + $(m 'sipguard_dialog_legs{state="finished"}'))) $(m sipguard_bindings) $(m sipguard_bans_tracked) $(m sipguard_record_files_total)" >&2
    [ -n "$QUARTER" ] || [ $((t * 4)) -lt "$SECONDS_RUN" ] || QUARTER=$r
    [ -n "$HALF" ] || [ $((t * 2)) -lt "$SECONDS_RUN" ] || HALF=$r
    LAST=$r
done
wait $SEND; SEND=""
sleep 2 # the edge takes what is queued
metrics
LAST=$(rss)
cat sender.txt
echo "soak_seconds $SECONDS_RUN"
echo "soak_messages_judged $(judged)"
echo "soak_udp_dropped $(m 'sipguard_udp_dropped_total{source="hep"}')"
echo "soak_rss_kb_quarter ${QUARTER:-0}"
echo "soak_rss_kb_half ${HALF:-0}"
echo "soak_rss_kb_end $LAST"
echo "soak_rss_growth_kb_second_half $((LAST - ${HALF:-LAST}))"
echo "soak_peak_rss_kb $(hwm)"
echo "soak_dialog_legs $(($(m 'sipguard_dialog_legs{state="open"}') + $(m 'sipguard_dialog_legs{state="finished"}'))) of $(m sipguard_dialog_legs_capacity), evicted $(m sipguard_dialog_legs_evicted_total)"
echo "soak_bindings $(m sipguard_bindings) of $(m sipguard_bindings_capacity), refused $(m sipguard_bindings_refused_total)"
echo "soak_flood_counters_evicted $(m sipguard_flood_counters_evicted_total)"
echo "soak_bans_tracked $(m sipguard_bans_tracked), bans $(m sipguard_bans_total), untracked strikes $(m sipguard_ban_untracked_total)"
echo "soak_record_files $(m sipguard_record_files_total), kept $(find rec -name '*.pcap' | wc -l) ($(du -sm rec | cut -f1) MiB)"
kill -TERM $EDGE
wait $EDGE || { echo "soak: the edge did not stop cleanly" >&2; exit 1; }
EDGE=""
