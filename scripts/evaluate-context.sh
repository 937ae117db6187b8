#!/usr/bin/env bash
# Reproduces the figures of docs/flood.md, docs/dialog.md and docs/binding.md: the context
# detectors trained on one day of a generated population (preset eval) and evaluated the way
# their anchors were, on other days of the same population. Fixed seeds.
# usage: scripts/evaluate-context.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
S="$(cd "$BUILD" && pwd)/cli/sipguard"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
"$S" gen -o train --preset eval --attacks none --seed 1 --population-seed 7 2>/dev/null
"$S" context train -q -o ctx.json train.pcap

echo "== flood: windows of 10 INVITEs, step 2; scenarios of the INVITE-flood paper"
printf "%-9s %8s %7s %9s %9s %9s %9s %9s %8s %8s %10s %10s\n" scenario windows malic. accuracy \
    precision recall F1 IoU "FP rate" "FN rate" "us/window" "us/10 INV"
for w in a b c d e; do
    "$S" gen -o fl --preset eval --attacks flood --flood-window $w --seed 2 --population-seed 7 2>/dev/null
    "$S" context eval flood --json -m ctx.json -l fl.labels.csv fl.pcap > fl.json
    inv=$(grep -o '"us_per_window_invites_only":[0-9.]*' fl.json | cut -d: -f2)
    grep -o '"all":{[^}]*}' fl.json | sed 's/"all"://' | tr -d '{}"' | tr ',' '\n' |
        awk -F: -v w=$w -v inv=$inv '{v[$1]=$2} END {printf "%-9s %8d %7d %8.3f%% %8.3f%% %8.3f%% %8.3f%% %8.3f%% %7.3f%% %7.3f%% %10.2f %10.2f\n", w, v["windows"], v["malicious"], 100*v["accuracy"], 100*v["precision"], 100*v["recall"], 100*v["f1"], 100*v["iou"], 100*v["fpr"], 100*v["fnr"], v["us_per_window"], inv}'
    if [ $w = c ]; then "$S" context eval flood -m ctx.json -l fl.labels.csv fl.pcap | sed -n '2,9p' > per-rate.txt; fi
done
echo "per rate class, scenario c:"
cat per-rate.txt

echo
echo "== dialog: trained without hold, cancel, message and presence dialogs"
"$S" gen -o dtrain --preset eval --attacks none --without hold,cancel,message,presence --seed 1 --population-seed 7 2>/dev/null
"$S" context train -q --no-flood --no-binding -o dctx.json dtrain.pcap
"$S" gen -o all --preset eval --seed 3 --population-seed 7 2>/dev/null
"$S" context eval dialog -m dctx.json -l all.labels.csv --train-labels dtrain.labels.csv all.pcap | head -5

echo
echo "== binding: the same test day, every attack family"
"$S" context eval binding -m ctx.json -l all.labels.csv all.pcap

echo
echo "== context pseudo-headers: content models trained and scored with and without them"
"$S" gen -o htrain --preset demo --attacks none --seed 1 --population-seed 7 2>/dev/null
"$S" context train -q -o hctx.json htrain.pcap
"$S" train -q -o plain.model htrain.pcap
"$S" train -q --context-headers hctx.json -o headers.model htrain.pcap
for seed in 2 3 4; do
    "$S" gen -o htest --preset demo --seed $seed --population-seed 7 2>/dev/null
    tail -n +2 htest.labels.csv | cut -d, -f3 > labels.txt
    for m in plain headers; do
        "$S" score -q -m $m.model --context hctx.json htest.pcap > $m.jsonl
        grep -o '"detector":\[[^]]*\]' $m.jsonl | awk '{print (/global|local/) ? "true" : "false", (/flood|dialog|binding/) ? "true" : "false"}' > $m.flags
        paste -d' ' labels.txt $m.flags | awk -v s=$seed -v m=$m '{n[$1]++; if ($2=="true") k[$1]++; if ($2=="true" || $3=="true") a[$1]++}
            END {printf "seed %s %-8s content models: %d/%d attack, %d/%d normal flagged; with the context detectors: %d attack, %d normal\n", s, m, k["attack"], n["attack"], k["normal"], n["normal"], a["attack"], a["normal"]}'
    done
done
