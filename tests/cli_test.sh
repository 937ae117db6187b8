#!/usr/bin/env bash
# End-to-end test of the sipguard CLI: gen -> train -> score -> eval -> embed, exit codes
# and error messages on bad input. Data is generated here from fixed seeds.
set -u
S="$1"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
check() { # name, condition...
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; fail=$((fail + 1)); fi
}
cd "$T"
"$S" gen -o train --attacks none --seed 1 --preset demo 2>/dev/null; check "gen exits 0" test $? -eq 0
"$S" gen -o normal --attacks none --seed 2 2>/dev/null; check "gen exits 0" test $? -eq 0
"$S" gen -o attack --no-normal --seed 3 --attacks scan,malformed 2>/dev/null; check "gen exits 0" test $? -eq 0
"$S" gen -o all --seed 4 2>/dev/null; check "gen with every attack family exits 0" test $? -eq 0
"$S" gen -o again --attacks none --seed 1 --preset demo 2>/dev/null
check "gen is deterministic" cmp -s train.pcap again.pcap
"$S" train -q -o m.model train.pcap
check "train writes a model" test -s m.model
"$S" score -q -m m.model normal.pcap > normal.jsonl
check "score prints one line per message" test "$(wc -l < normal.jsonl)" -eq "$(($(wc -l < normal.labels.csv) - 1))"
check "score output has the fields" grep -q '"global":.*"local":.*"anomaly":' normal.jsonl
"$S" score -q -m m.model --explain -a attack.pcap > attack.jsonl 2> attack.err
check "libosip2 traces stay out of stderr" test ! -s attack.err
check "stdout holds JSON lines only" test "$(grep -cv '^{.*}$' attack.jsonl)" -eq 0
check "malformed messages were among them" grep -q '"parse_ok":false' attack.jsonl
check "scanner and fuzz messages are flagged" test "$(wc -l < attack.jsonl)" -gt 100
check "explain lists features" grep -q '"explain":{"global":\[{"feature"' attack.jsonl
"$S" eval -m m.model --normal normal.pcap --attack attack.pcap --roc roc.csv --plot roc.svg > eval.txt
check "eval prints AUC" grep -q "^local   AUC" eval.txt
check "eval writes ROC csv" grep -q "^local," roc.csv
check "eval writes SVG" grep -q "<svg" roc.svg
"$S" embed --format libsvm normal.pcap | head -1 > one.svm
check "libsvm line format" grep -Eq '^0( [0-9]+:[0-9.e+-]+)+$' one.svm
"$S" embed --format json -f token normal.pcap | head -1 > one.json
check "json embedding names tokens" grep -q '"features":\[\["' one.json
# a JSON line far past the 8 KB that report_write_line formats in place: every feature there
{ printf 'MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 6000\r\n\r\n'; seq 1 1400 | tr '\n' ' '; } > big.sip
"$S" embed --format json big.sip > big.json
"$S" embed --format libsvm big.sip > big.svm
check "a 130 KB JSON line is written whole" sh -c 'test "$(wc -l < big.json)" -eq 1 && test "$(wc -c < big.json)" -gt 100000 && grep -q "^{.*]]}$" big.json && test "$(grep -o "\],\[" big.json | wc -l)" -eq "$(($(awk "{print NF-1}" big.svm) - 1))"'
# libsvm writes counts as integers and other values as %.10g: the same numbers as JSON's
for norm in none l2; do
    "$S" embed --format libsvm --norm $norm normal.pcap | head -200 | tr ' ' '\n' | grep : | cut -d: -f2 > vals.svm
    "$S" embed --format json --norm $norm normal.pcap | head -200 | grep -o ',[-0-9.e+]*\]' | tr -d ',]' > vals.json
    check "libsvm and JSON agree on every value (--norm $norm)" sh -c 'test "$(wc -l < vals.svm)" -gt 10000 && test "$(wc -l < vals.svm)" -eq "$(wc -l < vals.json)" && paste vals.svm vals.json | awk "{d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-9 * \$2) bad++} END {exit bad > 0}"'
done
# values below 1e-4 take an exponent: JSON writes it as jansson does (no "+", no leading zero)
{ printf 'MESSAGE sip:a@b SIP/2.0\r\n\r\n'; seq 1 6000 | tr '\n' ' '; } > l1.sip
"$S" embed --format libsvm --norm l1 l1.sip | tr ' ' '\n' | grep : | cut -d: -f2 > l1.svm
"$S" embed --format json --norm l1 l1.sip | grep -o ',[-0-9.e+]*\]' | tr -d ',]' > l1.json
check "JSON writes small values with an exponent as jansson does, the numbers libsvm writes" sh -c 'grep -q "^[0-9.]*e-5$" l1.json && ! grep -q "e-0\|e+" l1.json && test "$(wc -l < l1.svm)" -gt 5000 && test "$(wc -l < l1.svm)" -eq "$(wc -l < l1.json)" && paste l1.svm l1.json | awk "{d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-9 * \$2) bad++} END {exit bad > 0}"'
# the input's name as a JSON string: quotes and a backslash escaped, UTF-8 as \u escapes
printf 'OPTIONS sip:a SIP/2.0\r\n\r\n' > 'we"ird\né.sip'
check "the input's name is escaped in JSON" grep -q '"input":"we\\"ird\\\\n\\u00E9.sip"' <("$S" embed --format json 'we"ird\né.sip')
printf 'OPTIONS sip:a SIP/2.0\r\nX: %s\r\n\r\n' "$(printf 'a%.0s' $(seq 84))" > rep.sip
check "a count of 81 is written as the integer" grep -q ' 1633771874:81 ' <("$S" embed --format libsvm rep.sip)
"$S" score -q -m m.model -o /dev/full normal.pcap 2> full.err; rc=$?
check "score on a full disk exits 1 and says so" sh -c "test $rc -eq 1 && grep -q 'writing the results failed' full.err"
# the edge's bans replayed in capture time: a source is marked banned only after the message
# that banned it, and a banned message starts no ban
"$S" score -q -m m.model --ban 2 all.pcap > ban.jsonl
"$S" score -m m.model --ban 2 -a all.pcap 2>&1 >/dev/null | grep '^bans:' > ban.sum
check "score --ban marks messages of banned sources ($(cat ban.sum))" \
    sh -c "grep -q '\"banned\":true' ban.jsonl && grep -q '\"banned_for\":' ban.jsonl && grep -q \"^bans: [1-9][0-9]* started, \$(grep -c '\"banned\":true' ban.jsonl) messages\" ban.sum"
awk '{ match($0, /"src":"[0-9.]+:/); src = substr($0, RSTART + 7, RLENGTH - 8)
       if (src == "") next
       if ($0 ~ /"banned":true/ && !(src in started)) bad++
       if ($0 ~ /"banned":true/ && $0 ~ /"banned_for"/) bad++
       if ($0 ~ /"banned_for"/) started[src] = 1 }
     END { exit bad > 0 }' ban.jsonl
check "no source is banned before the message that banned it, and banned messages start none" test $? -eq 0
printf '0.0.0.0/0\n::/0\n' > allow_all.txt
"$S" score -m m.model --ban 2 --allow allow_all.txt all.pcap 2>ban_allow.err > ban_allow.jsonl
check "score --ban --allow: allowed sources are never banned" \
    sh -c "grep -q '^bans: 0 started, 0 messages' ban_allow.err && test \$(grep -c '\"allowed\":true' ban_allow.jsonl) -eq \$(wc -l < ban_allow.jsonl)"
"$S" score -q -m m.model --allow allow_all.txt all.pcap > allow_only.jsonl
check "score --allow alone marks the allowed sources' messages" \
    test "$(grep -c '"allowed":true' allow_only.jsonl)" -eq "$(wc -l < allow_only.jsonl)"
"$S" score -m m.model --ban-window 30 all.pcap > /dev/null 2> ban_e1.err; rc1=$?
"$S" score -m m.model --ban 0 all.pcap > /dev/null 2> ban_e2.err; rc2=$?
"$S" score -m m.model --ban 2 --ban-seconds 20 --ban-max-seconds 10 all.pcap > /dev/null 2> ban_e3.err; rc3=$?
"$S" score -m m.model --ban 2 --allow nowhere.txt all.pcap > /dev/null 2> ban_e4.err; rc4=$?
"$S" score -m m.model --ban-ipv6-prefix 48 all.pcap > /dev/null 2> ban_e5.err; rc5=$?
"$S" score -m m.model --ban 2 --ban-ipv6-prefix 129 all.pcap > /dev/null 2> ban_e6.err; rc6=$?
check "score --ban's usage errors exit 2 and say why; a missing allow file exits 1 naming it" \
    sh -c "test $rc1 -eq 2 && grep -q -- '--ban-\* go with --ban N' ban_e1.err && test $rc2 -eq 2 && test $rc3 -eq 2 && grep -q 'shorter than --ban-seconds' ban_e3.err && test $rc4 -eq 1 && grep -q 'nowhere.txt' ban_e4.err && test $rc5 -eq 2 && grep -q -- '--ban-\* go with --ban N' ban_e5.err && test $rc6 -eq 2 && grep -q 'ban-ipv6-prefix' ban_e6.err"
# a scanner that takes a new IPv6 /64 of its /48 for every message: by /64 (the default) no
# source strikes twice; by /48 the second message bans the rest
python3 - <<'PY'
import struct
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
out = open('v6scan.pcap', 'wb')
out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
dst = bytes.fromhex('20010db8000100000000000000000001')
for i in range(10):
    src = bytes.fromhex('20010db80007%04x0000000000000009' % (i + 1))
    sip = ('OPTIONS sip:100@[2001:db8:1::1] SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8:7:%x::9]:5060;branch=z9hG4bK-%d\r\n'
           'From: "sipvicious"<sip:100@1.1.1.1>;tag=6134%d\r\nTo: "sipvicious"<sip:100@1.1.1.1>\r\n'
           'Call-ID: 9%d1234\r\nCSeq: 1 OPTIONS\r\nContact: <sip:100@1.1.1.1>\r\nAccept: application/sdp\r\n'
           'User-Agent: friendly-scanner\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' % (i + 1, i, i, i)).encode()
    udp = struct.pack('!HHHH', 5060, 5060, 8 + len(sip), 0) + sip
    c = csum(src + dst + struct.pack('!IxxxB', len(udp), 17) + udp)
    udp = udp[:6] + struct.pack('!H', c or 0xffff) + udp[8:]
    ip6 = struct.pack('!IHBB', 6 << 28, len(udp), 17, 64) + src + dst + udp
    eth = b'\x00\x11\x22\x33\x44\x55\x00\x66\x77\x88\x99\xaa\x86\xdd' + ip6
    out.write(struct.pack('<IIII', 1767225600 + i, 0, len(eth), len(eth)) + eth)
PY
"$S" score -q -m m.model --ban 2 v6scan.pcap > v6ban64.jsonl
"$S" score -q -m m.model --ban 2 --ban-ipv6-prefix 48 v6scan.pcap > v6ban48.jsonl
check "score --ban: a scanner moving through the /64s of its /48 is banned by /48, not by /64 ($(grep -c '"anomaly":true' v6ban64.jsonl) of 10 anomalous; $(grep -c '"banned":true' v6ban64.jsonl) and $(grep -c '"banned":true' v6ban48.jsonl) banned)" \
    sh -c "test \$(grep -c '\"anomaly\":true' v6ban64.jsonl) -eq 10 && test \$(grep -c '\"banned\":true' v6ban64.jsonl) -eq 0 && test \$(grep -c '\"banned\":true' v6ban48.jsonl) -eq 8"
# one tool's identical messages: every held-out one equals a training one, so the local
# threshold is 0; and 12 held out cannot resolve --fpr 0.001
mkdir -p same
for i in $(seq 60); do
    printf 'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%d\r\nCall-ID: c%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' $i $i > same/m$i.sip
done
"$S" train -q -o same.model same 2> same.err; rc=$?
check "train warns, even with -q, of a local threshold of 0 and of too few held out for --fpr" \
    sh -c "test $rc -eq 0 && grep -q 'warning: the local threshold is 0' same.err && grep -q 'warning: [0-9]* messages held out for calibration cannot resolve --fpr 0.001 (that takes 1000)' same.err"
"$S" train -q --fpr 0.05 -o varied.model all.pcap 2> varied.err
check "and not when the held-out messages resolve --fpr and vary" sh -c "! grep -q warning varied.err"
"$S" train -q -o /dev/full normal.pcap 2> full2.err; rc=$?
check "train to a full device exits 1 and says so" sh -c "test $rc -eq 1 && grep -q '^sipguard train: /dev/full: write failed: No space left on device' full2.err"
check "and the device is still there (no temporary file renamed over it)" test -c /dev/full
"$S" eval -m m.model --normal normal.pcap --attack attack.pcap --roc /dev/full > /dev/null 2> full3.err; rc=$?
check "eval --roc to a full device exits 1" sh -c "test $rc -eq 1 && grep -q '/dev/full: write failed' full3.err"
"$S" train -q -o /dev/stdout normal.pcap > piped.model
"$S" train -q -o /dev/stdout normal.pcap | cat > piped2.model
check "train -o /dev/stdout writes a model to a file or through a pipe, and /dev/stdout stays" \
    sh -c "'$S' score -q -m piped.model normal.pcap && cmp -s piped.model piped2.model && test -L /dev/stdout"
cp m.model target.model && ln -s target.model link.model
"$S" train -q -o link.model normal.pcap
check "a model written to a symbolic link replaces its target and keeps the link" \
    sh -c "test -L link.model && cmp -s target.model piped.model && ! ls target.model.tmp.* link.model.tmp.* 2>/dev/null"
# a write that fails part-way (a file-size limit, as a full disk) leaves the previous model
cp m.model before.model
(trap '' XFSZ; ulimit -f 64; exec "$S" train -q -o m.model train.pcap) 2> fsize.err; rc=$?
check "a model write cut short exits 1, keeps the previous model and no temporary file" \
    sh -c "test $rc -eq 1 && grep -q 'm.model: write failed: File too large' fsize.err && cmp -s m.model before.model && ! ls m.model.tmp.* 2>/dev/null"
(trap '' XFSZ; ulimit -f 16; exec "$S" gen -o gfull --preset demo) 2> gfull.err; rc=$?
check "gen cut short by a full disk exits 1 naming the file, and claims nothing generated" \
    sh -c "test $rc -eq 1 && grep -q '^sipguard gen: gfull.pcap: write failed: File too large' gfull.err && ! grep -q generated gfull.err"
"$S" gen -o nodir/x 2> gnodir.err; rc=$?
check "gen into a missing directory exits 1 naming the file" \
    sh -c "test $rc -eq 1 && grep -q '^sipguard gen: nodir/x.cdr.csv: No such file or directory' gnodir.err"
"$S" eval -m m.model --normal normal.pcap --attack attack.pcap > /dev/full 2> evfull.err; rc=$?
check "eval onto a full disk exits 1 and says so (its figures were lost with exit 0)" \
    sh -c "test $rc -eq 1 && grep -q '^sipguard: writing standard output failed: No space left on device' evfull.err"
"$S" score --help > /dev/full 2> helpfull.err; rc=$?
check "and --help" sh -c "test $rc -eq 1 && grep -q 'writing standard output failed' helpfull.err"
"$S" replay --hep 127.0.0.1:70000 -q train.pcap 2> rport.err; rc=$?
check "replay to port 70000 is a usage error (getaddrinfo would send to 4464)" \
    sh -c "test $rc -eq 2 && grep -q '127.0.0.1:70000: expected HOST:PORT or \[IPV6\]:PORT with a port from 1 to 65535' rport.err"
"$S" train -q -o nodir/x.model train.pcap 2> nodir.err; rc=$?
check "a model into a missing directory exits 1 naming the path given" \
    sh -c "test $rc -eq 1 && grep -q '^sipguard train: nodir/x.model: No such file or directory' nodir.err"
# bad input: clear errors, right exit codes, no crash
"$S" score -m m.model /nonexistent.pcap 2>err.txt; rc=$?
check "missing input exits 3" test $rc -eq 3
check "missing input named" grep -q "/nonexistent.pcap" err.txt
head -c 100 m.model > bad.model
"$S" score -m bad.model normal.pcap 2>err.txt; rc=$?
check "truncated model exits 1" test $rc -eq 1
check "truncated model error" grep -q "bad.model" err.txt
# info: what a model file holds, in text and JSON, from the file alone
"$S" info m.model > info.txt; rc=$?
"$S" info --json --top 5 m.model > info.json
THR=$(grep -o '"threshold_global":[0-9.]*' normal.jsonl | head -1 | cut -d: -f2)
check "info describes the model: training, both models, the file, the embedding, the centre" \
    sh -c "test $rc -eq 0 && grep -q '^m.model: [0-9]* messages ([0-9]* held out for calibration)' info.txt && grep -q '^global: SVDD nu=0.05' info.txt && grep -q '^local: k=1, divided by |m(z)|' info.txt && grep -q '^file: [0-9]* bytes, written 20' info.txt && grep -q '^embedding: counts, no normalisation, header names normalised' info.txt && test \$(grep -c '^  \"' info.txt) -eq 10"
check "info --json: the thresholds score uses, five features heaviest first" python3 -c "
import json, sys
o = json.loads(open('info.json').read())
w = [f['weight'] for f in o['top_features']]
assert abs(o['thresholds']['global'] - $THR) <= 1e-6 * $THR, (o['thresholds'], $THR)
assert len(w) == 5 and w == sorted(w, reverse=True) and w[-1] > 0, w
assert o['embedding'] == {'feature': 'ngram:4', 'binary': False, 'norm': 'none', 'shape': 'fields', 'header_norm': True}
assert o['training']['messages'] == o['training']['trained_on'] + o['training']['held_out']
"
"$S" info --top 0 m.model > info0.txt; rc=$?
check "info --top 0 lists no feature" sh -c "test $rc -eq 0 && ! grep -q '^  \"' info0.txt && grep -q '^global:' info0.txt"
"$S" info m.model bad.model normal.pcap > /dev/null 2>err.txt; rc=$?
check "info on a truncated model and a capture exits 1 and names both" \
    sh -c "test $rc -eq 1 && grep -q 'bad.model' err.txt && grep -q 'normal.pcap: not a sipguard model' err.txt"
"$S" info --top 101 m.model 2>err.txt; rc=$?
check "info --top past 100 exits 2" sh -c "test $rc -eq 2 && grep -q 'top: expected an integer in \[0, 100\]' err.txt"
"$S" train -o x.model --nu 7 train.pcap 2>err.txt; rc=$?
check "bad option value exits 2" test $rc -eq 2
check "bad option value explained" grep -q "expected a number" err.txt
"$S" score -m m.model --tcp-memory 0 normal.pcap >/dev/null 2>err.txt; rc=$?
check "--tcp-memory 0 exits 2 and names the range" sh -c "test $rc -eq 2 && grep -q 'tcp-memory: expected an integer in \[1, 1048576\]' err.txt"
"$S" score -m m.model --tcp-streams 1 all.pcap >/dev/null 2>err.txt
check "--tcp-streams 1: TCP streams dropped and counted by name" grep -Eq '^ +[0-9]+  tcp: stream table full, least recently used stream dropped$' err.txt
"$S" score -m m.model all.pcap >/dev/null 2>err.txt
check "by default no TCP stream is dropped" sh -c "! grep -q 'tcp: stream table full' err.txt"
for bad in "--flood-window z" "--holding weibull" "--without bogus" "--attacks lasers" "--users 1" "--clique 9-3"; do
    "$S" gen -o bad $bad 2>err.txt; rc=$?
    check "gen $bad exits 2" test $rc -eq 2
    check "gen $bad explained" test -s err.txt
done
"$S" gen 2>err.txt; rc=$?
check "gen without -o exits 2" test $rc -eq 2
SIPGUARD_LOG=loud "$S" --help >/dev/null 2>err.txt; rc=$?
check "bad SIPGUARD_LOG exits 2" test $rc -eq 2
SIPGUARD_LOG=debug "$S" score -q -m m.model attack.pcap >/dev/null 2>err.txt
check "debug log shows libosip2 diagnostics" grep -q "libosip2" err.txt
"$S" frobnicate 2>/dev/null; rc=$?
check "unknown command exits 2" test $rc -eq 2
head -c 5000 normal.pcap > cut.pcap
"$S" score -m m.model cut.pcap > /dev/null 2>err.txt; rc=$?
check "truncated capture is read up to the cut" test $rc -eq 0
check "truncated capture reported" grep -q "capture truncated" err.txt
"$S" train --help | grep -q -- "--holdout"; check "help lists options" test $? -eq 0
# context detectors: flood and dialog, trained on one day, evaluated as their anchors were
"$S" gen -o ctxtrain --attacks none --without hold,cancel,message,presence --seed 11 --population-seed 5 2>/dev/null
"$S" gen -o ctxflood --attacks flood --flood-window c --seed 12 --population-seed 5 2>/dev/null
"$S" gen -o ctxall --seed 13 --population-seed 5 2>/dev/null
"$S" context train -q -o ctx.json ctxtrain.pcap
check "context train writes a model with both detectors" grep -q '"dialog"' ctx.json
"$S" context train -q -o ctxbig.json --dialog-capacity 200000 --dialog-timeout 600 --flood-capacity 50000 ctxtrain.pcap
check "context train sizes the dialog and flood tables as asked" sh -c "grep -q '\"capacity\": *200000' ctxbig.json && grep -q '\"timeout\": *600' ctxbig.json && grep -q '\"capacity\": *50000' ctxbig.json"
"$S" context train -q -o x.json --dialog-capacity 10 ctxtrain.pcap 2> err.txt; rc=$?
check "a dialog table below 1024 legs is a usage error naming the option once" sh -c "test $rc -eq 2 && grep -q '^sipguard: --dialog-capacity: expected an integer in \[1024' err.txt"
"$S" context train -q -o /dev/full ctxtrain.pcap 2> ctxfull.err; rc=$?
check "context train to a full device exits 1 and says so" sh -c "test $rc -eq 1 && grep -q '/dev/full: write failed: No space left on device' ctxfull.err && test -c /dev/full"
"$S" context eval flood --json -m ctx.json -l ctxflood.labels.csv ctxflood.pcap > flood.json
FPR=$(grep -o '"all":{[^}]*' flood.json | grep -o '"fpr":[0-9.]*' | cut -d: -f2)
FNR=$(grep -o '"all":{[^}]*' flood.json | grep -o '"fnr":[0-9.]*' | cut -d: -f2)
check "flood eval: FP rate $FPR <= 0.005 and FN rate $FNR <= 0.02" awk -v a="$FPR" -v b="$FNR" 'BEGIN{exit !(a <= 0.005 && b <= 0.02 && a != "")}'
"$S" context eval dialog --json -m ctx.json -l ctxall.labels.csv --train-labels ctxtrain.labels.csv ctxall.pcap > dialog.json 2> dialog.err
PD=$(grep -o '"detection_probability":[0-9.]*' dialog.json | cut -d: -f2)
PFA=$(grep -o '"false_alarm_probability":[0-9.]*' dialog.json | cut -d: -f2)
check "dialog eval: held-out dialogs detected ($PD >= 0.995), false alarms $PFA <= 0.01" awk -v a="$PD" -v b="$PFA" 'BEGIN{exit !(a >= 0.995 && b <= 0.01 && a != "")}'
check "dialog eval at the default table size warns of nothing given up" sh -c "! grep -q warning dialog.err"
"$S" context train -q -o ctxsmall.json --dialog-capacity 1024 ctxtrain.pcap
"$S" context eval dialog --json -m ctxsmall.json -l ctxall.labels.csv --train-labels ctxtrain.labels.csv ctxall.pcap > /dev/null 2> small.err
check "dialog eval with a table too small for the day says what it gave up and took up again" \
    grep -q '^sipguard context eval: warning: the dialog detector gave up [1-9][0-9]* open dialog legs .*(its table holds 1024) and took [0-9]* legs up again.*--dialog-capacity' small.err
"$S" context eval binding --json -m ctx.json -l ctxall.labels.csv ctxall.pcap > binding.json
BFA=$(grep -o '"false_alarm_rate":[0-9.]*' binding.json | cut -d: -f2)
check "binding eval: no normal request flagged ($BFA); spoofed Via/Contact classified" sh -c "awk -v a='$BFA' 'BEGIN{exit !(a == 0 && a != \"\")}' && grep -q '\"spoof-via\":{[^}]*\"spoofed-source\":[1-9]' binding.json"
"$S" score -q -a --no-local -m m.model --context ctx.json ctxall.pcap > ctxscore.jsonl
check "score --context names the flood, dialog and binding detectors" sh -c "grep -q '\"detector\":\[[^]]*\"flood\"' ctxscore.jsonl && grep -q '\"dialog\":{\"token\"' ctxscore.jsonl && grep -q '\"binding\":{\"class\"' ctxscore.jsonl"
# toll fraud from a stolen account (gen --attacks fraud, in all): a registered source's burst
# of calls is caught by the flood detector from its first few INVITEs at every rate, and the
# registration from the attacker's address by the binding detector
check "fraud: the flood detector flags a registered account's call spree at 2-25 calls a second, the binding detector its registration" python3 - ctxall.labels.csv ctxscore.jsonl <<'PY'
import csv, json, sys
labels = {int(r["index"]): r for r in csv.DictReader(open(sys.argv[1]))}
invites, flagged, stolen = {}, {}, 0
for line in open(sys.argv[2]):
    o = json.loads(line)
    l = labels[o["index"]]
    if l["family"] != "fraud":
        continue
    if l["scenario"] == "register-stolen-credentials" and "binding" in o["detector"]:
        stolen += 1
    if o.get("method") == "INVITE" and "flood" in o["detector"]:
        flagged[l["scenario"]] = flagged.get(l["scenario"], 0) + 1
for l in labels.values():
    if l["family"] == "fraud" and l["scenario"].startswith("calls-") and l["call_id"]:
        invites.setdefault(l["scenario"], set()).add(l["call_id"])
rates = sorted(invites)
ok = len(rates) == 4 and stolen >= 1 and all(flagged.get(r, 0) >= len(invites[r]) - 4 for r in rates)
if not ok:
    print({r: (flagged.get(r, 0), len(invites[r])) for r in rates}, "stolen registration:", stolen)
sys.exit(0 if ok else 1)
PY
# a feed of requests alone (a proxy that mirrors no replies)
"$S" gen -o ctxreq --attacks none --without hold,cancel,message,presence --seed 12 --population-seed 5 --requests-only 2>/dev/null
check "gen --requests-only writes requests and no response" sh -c "'$S' score -q --no-local -m m.model ctxreq.pcap > ctxreq.jsonl && grep -q '\"method\":\"ACK\"' ctxreq.jsonl && ! grep -q '\"status\":' ctxreq.jsonl"
"$S" score -q --no-local -m m.model --context ctx.json ctxreq.pcap > ctxreq.jsonl 2> req.err
check "a model trained with replies stands aside on a feed without, and says so" \
    grep -q "^sipguard score: warning: the feed carried no SIP response for 4 s or more.*stood aside and left [1-9][0-9]* messages unjudged.*trace_mode" req.err
"$S" context train -q -o ctxreq.json ctxreq.pcap 2> reqtrain.err
check "context train on requests alone warns that the dialog model judges requests alone" \
    grep -q '^sipguard context train: warning: the dialog model learned no SIP response.*judges requests alone;' reqtrain.err
"$S" score -q --no-local -m m.model --context ctxreq.json ctxtrain.pcap > ctxreq2.jsonl 2> req2.err
check "such a model passes over the replies of a feed that carries them, and says so" \
    sh -c "grep -q 'judges requests alone, and passed over [1-9][0-9]* responses' req2.err && ! grep -q '\"dialog\":{' ctxreq2.jsonl"
printf 'not,a,labels,file\n' > bad.labels.csv
"$S" context eval flood -m ctx.json -l bad.labels.csv ctxflood.pcap 2>err.txt >/dev/null; rc=$?
check "context eval with a bad labels file exits 2 naming it" sh -c "test $rc -eq 2 && grep -q 'bad.labels.csv: not a labels file' err.txt"
"$S" context eval flood -m ctx.json ctxflood.pcap 2>/dev/null; rc=$?
check "context eval without labels exits 2" test $rc -eq 2
echo '{"format":"sipguard-context","version":1,"flood":{"tau":"fast"}}' > badctx.json
"$S" score -q -m m.model --context badctx.json ctxall.pcap >/dev/null 2>err.txt; rc=$?
check "a bad context model is refused naming the field" sh -c "test $rc -eq 1 && grep -q 'flood.tau' err.txt"

# context pseudo-headers: the model remembers it needs them
"$S" train -q --context-headers ctx.json -o ctxh.model ctxtrain.pcap
"$S" score -q -m ctxh.model ctxall.pcap >/dev/null 2>err.txt; rc=$?
check "a model trained with context headers refuses to score without --context" sh -c "test $rc -eq 2 && grep -q 'context pseudo-headers' err.txt"
"$S" score -q -m ctxh.model --context ctx.json ctxall.pcap > ctxh.jsonl
check "and scores every message with it" test "$(wc -l < ctxh.jsonl)" -eq "$(($(wc -l < ctxall.labels.csv) - 1))"
"$S" eval -m ctxh.model --normal ctxtrain.pcap --attack ctxall.pcap >/dev/null 2>err.txt; rc=$?
check "eval refuses it with the reason" sh -c "test $rc -eq 1 && grep -q 'score --context' err.txt"

"$S" train -q --like ctxh.model -o ctxh2.model ctxtrain.pcap 2>err.txt; rc=$?
check "train --like a context-header model asks for --context-headers" sh -c "test $rc -eq 2 && grep -q 'give --context-headers CONTEXT too' err.txt"
"$S" train -q --context-headers ctx.json --like ctxh.model -o ctxh2.model ctxtrain.pcap
check "and takes it with the file" sh -c "'$S' info --json --top 0 ctxh2.model | grep -q '\"context_headers\":true'"

# train --like: another model's options, changed by the options given, in any order
"$S" train -q -k 3 --nu 0.1 --shape all --holdout 0.3 -o base.model normal.pcap
"$S" train -q --like base.model -o like.model train.pcap
"$S" train -q -k 7 --like=base.model -o like7.model train.pcap
opts() { "$S" info --json --top 0 "$1" | python3 -c "import json,sys; o=json.load(sys.stdin); print(o['embedding'], o['global']['nu'], o['local']['k'], o['training']['holdout_fraction'])"; }
check "train --like takes the model's options ($(opts like.model))" sh -c "test \"$(opts like.model)\" = \"$(opts base.model)\""
check "an option given with --like changes it, before or after ($(opts like7.model))" \
    sh -c "test \"$(opts like7.model)\" = \"$(opts base.model | sed 's/ 3 0.3$/ 7 0.3/')\" && '$S' info like7.model | grep -q '^local: k=7'"
"$S" train -q --like normal.pcap -o x.model train.pcap 2>err.txt; rc=$?
check "train --like a capture exits 1 naming it" sh -c "test $rc -eq 1 && grep -q -- '--like: normal.pcap: not a sipguard model' err.txt"

# train --max-messages: a sample of the inputs, seeded; all of them when they hold fewer
NTRAIN=$("$S" score -q -m m.model train.pcap | wc -l)
"$S" train -q --max-messages "$NTRAIN" -o all.model train.pcap
check "train --max-messages at least the $NTRAIN messages read trains on every one (the same model bytes)" cmp -s all.model m.model
"$S" train --max-messages 500 -o s1.model train.pcap 2>s1.err
"$S" train -q --max-messages 500 -o s1b.model train.pcap
"$S" train -q --max-messages 500 --seed 2 -o s2.model train.pcap
trained() { "$S" info --json --top 0 "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['training']['messages'])"; }
check "train --max-messages 500 trains on 500 of the $NTRAIN ($(trained s1.model)) and says so" \
    sh -c "test $(trained s1.model) -eq 500 && grep -q 'a sample of 500 of the $NTRAIN messages read' s1.err"
check "the sample is the seed's: the same again, another with --seed 2" sh -c "cmp -s s1.model s1b.model && ! cmp -s s1.model s2.model"
"$S" train -q --max-messages 0 -o x.model train.pcap 2>err.txt; rc=$?
check "train --max-messages 0 exits 2 naming the option" sh -c "test $rc -eq 2 && grep -q -- '--max-messages' err.txt"

# signatures from anomalies: build, verify, match, export (YARA when the tool is here)
"$S" gen -o sigatt --attacker-only --attacks scan,guess,spit --seed 21 --population-seed 5 2>/dev/null
"$S" gen -o sigclean --attacks none --seed 22 --population-seed 5 2>/dev/null
"$S" gen -o sigclean2 --attacks none --seed 23 --population-seed 5 2>/dev/null
"$S" train -q -o sig.model ctxtrain.pcap
"$S" sig build -q -m sig.model --clean sigclean.pcap -o sigs.json sigatt.pcap
"$S" sig build -q -m sig.model --clean sigclean.pcap -o /dev/full sigatt.pcap 2> sigfull.err; rc=$?
check "sig build to a full device exits 1 and says so" sh -c "test $rc -eq 1 && grep -q '/dev/full: write failed: No space left on device' sigfull.err && test -c /dev/full"
NSIG=$(grep -c '"result": "passed"' sigs.json)
check "sig build makes verified signatures ($NSIG)" test "$NSIG" -ge 1
MA=$("$S" sig match -s sigs.json -m sig.model sigatt.pcap | awk 'NR==1{print $4}')
MC=$("$S" sig match -s sigs.json -m sig.model sigclean2.pcap | awk 'NR==1{print $4}')
check "signatures match attack messages ($MA) and no clean message of another day ($MC)" sh -c "test '$MA' -gt 0 && test '$MC' -eq 0"
"$S" sig export --format json sigs.json > exported.json
check "the JSON export is a signature file without the rejected ones" sh -c "grep -q sipguard-signatures exported.json && ! grep -q '\"rejected\"' exported.json"
"$S" sig export --format yara sigs.json > rules.yar
check "the YARA export has a rule per signature with a YARA form" test "$(grep -c '^rule ' rules.yar)" -ge 1
if command -v yara >/dev/null; then
    mkdir -p ya yc
    "$S" sig match -s sigs.json -m sig.model --write ya sigatt.pcap >/dev/null
    "$S" sig match -s sigs.json -m sig.model --write yc sigclean2.pcap >/dev/null
    YA=$(yara -r rules.yar ya | awk '{print $2}' | sort -u | wc -l)
    YC=$(yara -r rules.yar yc | wc -l)
    check "yara compiles the export; it matches attack messages ($YA) and no clean message ($YC)" sh -c "test $YA -gt 0 && test $YC -eq 0"
else
    echo "skip: yara is not installed"
fi
"$S" sig build -q -m sig.model --clean sigclean.pcap --linkage kmeans -k 6 -o kmeans.json sigatt.pcap
KM=$(grep -c '"linkage": "kmeans"' kmeans.json)
MK=$("$S" sig match -s kmeans.json -m sig.model sigclean2.pcap | awk 'NR==1{print $4}')
check "k-means clustering makes verified signatures too ($KM clusters, $MK clean matches)" sh -c "test '$KM' -ge 1 && test '$MK' -eq 0"
"$S" sig build -m sig.model -o x.json sigatt.pcap 2>err.txt; rc=$?
check "sig build without a clean sample exits 2" sh -c "test $rc -eq 2 && grep -q 'clean' err.txt"
"$S" train -q -f token -o tok.model ctxtrain.pcap
"$S" sig build -m tok.model --clean sigclean.pcap -o x.json sigatt.pcap 2>err.txt; rc=$?
check "sig build refuses a token model" sh -c "test $rc -eq 1 && grep -q 'n-grams' err.txt"
"$S" info --top 5 tok.model > toksinfo.txt
check "info names a token model's features by their tokens, not their keys" \
    sh -c "test \$(grep -c '^  \"' toksinfo.txt) -eq 5 && ! grep -q 'token:' toksinfo.txt && grep -q '^  \"sip\" ' toksinfo.txt"
echo '{"format": ' > broken.json
"$S" sig export --format yara broken.json 2>err.txt >/dev/null; rc=$?
check "sig export refuses broken JSON with line and column" sh -c "test $rc -eq 1 && grep -q 'broken.json:' err.txt"
"$S" sig export -s sigs.json 2>err.txt >/dev/null; rc=$?
check "sig export takes no -s (an unknown option was read as the file)" sh -c "test $rc -eq 2 && grep -q 'unknown option' err.txt"
"$S" sig match -s missing.json -m sig.model sigatt.pcap 2>err.txt >/dev/null; rc=$?
check "sig match names a missing signature file without a line -1" \
    sh -c "test $rc -eq 1 && grep -q '^sipguard sig match: unable to open missing.json: No such file or directory' err.txt"
"$S" sig match -s sigs.json -m sig.model --bogus sigatt.pcap 2>err.txt >/dev/null; rc=$?
check "sig match refuses an unknown option" sh -c "test $rc -eq 2 && grep -q -- '--bogus' err.txt"

# a capture on Linux's any device of a host bridging a container: each frame of normal.pcap
# shown twice, 3 us apart, with Linux cooked headers (as on the bridge and the veth)
python3 - normal.pcap cooked.pcap > cooked.frames <<'PY'
import struct, sys
src = open(sys.argv[1], 'rb').read()
out = [src[:20] + struct.pack('<I', 113)]  # LINKTYPE_LINUX_SLL
off, frames = 24, 0
while off + 16 <= len(src):
    sec, usec, incl, orig = struct.unpack('<IIII', src[off:off + 16])
    frame = src[off + 16:off + 16 + incl]
    off += 16 + incl
    frames += 1
    sll = struct.pack('>HHH8sH', 4, 1, 6, frame[6:12] + b'\0\0', 0x0800)
    for dt in (0, 3):
        body = sll + frame[14:]
        out.append(struct.pack('<IIII', sec, usec + dt, len(body), len(body)) + body)
open(sys.argv[2], 'wb').write(b''.join(out))
print(frames)
PY
"$S" score -q --no-local -m m.model normal.pcap > plain.jsonl
"$S" score --no-local -m m.model cooked.pcap > cooked.jsonl 2> cooked.err
check "a cooked capture's copies on another interface are read once" \
    test "$(wc -l < cooked.jsonl)" -eq "$(wc -l < plain.jsonl)"
check "and named among the skips, one for every frame" \
    grep -q "^ *$(cat cooked.frames)  linux cooked: copy of a packet seen on another interface" cooked.err
grep -o '"global":[^,]*' plain.jsonl > plain.global
grep -o '"global":[^,]*' cooked.jsonl > cooked.global
check "the same scores as the capture without copies" cmp -s plain.global cooked.global
"$S" score -q --no-local --keep-copies -m m.model cooked.pcap > kept.jsonl
# TCP's copies are retransmitted segments to the stream reassembly, which reads them once
check "--keep-copies reads both sightings of every UDP message" \
    test "$(wc -l < kept.jsonl)" -eq "$(($(wc -l < plain.jsonl) + $(grep -c '"transport":"udp"' plain.jsonl)))"

# a cloud traffic mirror: each frame of normal.pcap wrapped in VXLAN (UDP 4789), as AWS VPC
# Traffic Mirroring delivers it, from the mirror source 192.0.2.1 to the collector 192.0.2.2
python3 - normal.pcap vxlan.pcap <<'PY'
import struct, sys
src = open(sys.argv[1], 'rb').read()
out = [src[:24]]
off = 24
while off + 16 <= len(src):
    sec, usec, incl, orig = struct.unpack('<IIII', src[off:off + 16])
    frame = src[off + 16:off + 16 + incl]
    off += 16 + incl
    vx = struct.pack('>BBBBI', 8, 0, 0, 0, 42 << 8) + frame
    udp = struct.pack('>HHHH', 50000, 4789, 8 + len(vx), 0) + vx
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])) + udp
    body = b'\x02' * 6 + b'\x04' * 6 + b'\x08\x00' + ip
    out.append(struct.pack('<IIII', sec, usec, len(body), len(body)) + body)
open(sys.argv[2], 'wb').write(b''.join(out))
PY
"$S" score -q --no-local -m m.model vxlan.pcap | grep -o '"global":[^,]*' > vxlan.global
check "VXLAN: every mirrored message read, scored as the capture unwrapped" cmp -s plain.global vxlan.global
"$S" score -q --no-local -m m.model vxlan.pcap | head -1 > vxlan.first
check "VXLAN: the mirrored frame's addresses, not the tunnel's" sh -c "! grep -q '192.0.2' vxlan.first && grep -q '\"src\":\"10\.' vxlan.first"

# standard input: a capture piped in (tcpdump -w -), its results written as the messages come
"$S" score -q --no-local -m m.model - < normal.pcap | grep -o '"global":[^,]*' > stdin.global
check "score - reads a capture on standard input" cmp -s plain.global stdin.global
"$S" score -q --no-local -m m.model - - < normal.pcap > /dev/null 2> twice.err; rc=$?
check "- twice: the second is refused, by name" sh -c "test $rc -eq 3 && grep -q 'sipguard: -: standard input can be read once' twice.err"
printf 'INVITE sip:x SIP/2.0\r\n\r\n' | "$S" score -q -m m.model - > /dev/null 2> notcap.err; rc=$?
check "- that is no capture: exit 3 and why" sh -c "test $rc -eq 3 && grep -q '^sipguard: -: cannot read capture' notcap.err"
mkfifo live.fifo
"$S" score -q --no-local -m m.model - < live.fifo > live.jsonl &
LIVE=$!
exec 7> live.fifo
cat normal.pcap >&7
for _ in $(seq 100); do [ "$(wc -l < live.jsonl)" -ge "$(wc -l < plain.jsonl)" ] && break; sleep 0.1; done
check "a pipe still open: every line is out already (line-buffered)" test "$(wc -l < live.jsonl)" -eq "$(wc -l < plain.jsonl)"
exec 7>&-
wait $LIVE
check "and the score ends when the pipe does" test $? -eq 0

echo "$pass passed, $fail failed"
test $fail -eq 0
