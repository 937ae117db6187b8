#!/usr/bin/env bash
# Generated captures must decode in tshark: every SIP message is dissected as SIP without an
# expert warning or malformed-packet mark, except the deliberately malformed attack messages.
# Skipped (exit 77) when tshark is not installed.
set -u
S="$1"
command -v tshark >/dev/null || { echo "tshark not installed: skipped"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
"$S" gen -o g --preset demo --seed 4 2>/dev/null || exit 1
messages=$(($(wc -l < g.labels.csv) - 1))
# the malformed attacker sends from its own address: learn it from a malformed-only capture
"$S" gen -o m --no-normal --attacks malformed --seed 4 2>/dev/null
malformed_src=$(tshark -r m.pcap -T fields -e ip.src 2>/dev/null | sort -u)
fail=0
sip=$(tshark -r g.pcap -Y sip 2>/dev/null | wc -l)
undecoded=$(tshark -r g.pcap -Y "(udp or tcp.len > 0) and not sip" -T fields -e ip.src -e ipv6.src 2>/dev/null)
warned=$(tshark -r g.pcap -Y "_ws.malformed || _ws.expert.severity >= 6291456" -T fields -e ip.src -e ipv6.src 2>/dev/null)
n_undecoded=$(printf '%s' "$undecoded" | grep -c . || true)
echo "messages $messages, dissected as SIP $sip, not dissected $n_undecoded, warned $(printf '%s' "$warned" | grep -c . || true)"
if [ $((sip + n_undecoded)) -ne "$messages" ]; then echo "FAIL: frame count"; fail=1; fi
for src in $(printf '%s\n%s\n' "$undecoded" "$warned" | tr -d '\t' | sort -u); do
    if ! printf '%s\n' "$malformed_src" | grep -qx "$src"; then
        echo "FAIL: $src is not a malformed-attack source but tshark complained"; fail=1
    fi
done
[ "$sip" -gt $((messages * 99 / 100)) ] || { echo "FAIL: too few dissected"; fail=1; }
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $fail
