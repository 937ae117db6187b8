#!/usr/bin/env bash
# Reproduces the tables of docs/evaluation.md: detection of attack-tool messages by the
# content models, for each value-shaping mode and k, on generated traffic (with and without
# legitimate flows missing from training) and on the public real captures (needs editcap
# and capinfos, from Debian's tshark/wireshark-common packages, and ../shared/corpus).
# usage: scripts/evaluate.sh [BUILD_DIR]
set -euo pipefail
BUILD=${1:-build}
S="$(cd "$BUILD" && pwd)/cli/sipguard"
CORPUS="$(cd "$(dirname "$0")/.." && pwd)/../shared/corpus/real-captures"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

grid() { # label normal attack train...
    local label=$1 normal=$2 attack=$3
    shift 3
    for sh in none fields all; do
        for k in 1 3 5; do
            "$S" train -q --shape $sh -k $k -o m.model "$@"
            "$S" eval --json -m m.model --normal $normal --attack $attack |
                sed -E "s/^/$label shape=$sh k=$k /"
        done
    done
}

"$S" gen -o trainw --attacks none --without hold,cancel,tcp --preset demo --seed 11 --population-seed 7
"$S" gen -o trainall --attacks none --preset demo --seed 11 --population-seed 7
"$S" gen -o normal --attacks none --preset demo --seed 12 --population-seed 7
"$S" gen -o tools --attacker-only --attacks scan,guess,flood,malformed --seed 13
grid novelty normal.pcap tools.pcap trainw.pcap
grid same-flows normal.pcap tools.pcap trainall.pcap

if command -v editcap >/dev/null && [ -d "$CORPUS" ]; then
    normals="tsytsykvitaliy__digital-forensics-network-forensics-challenge__SIP.pcap
      sipcapture__heplify__example__pcap__erspan_sip_ipv4_udp.pcapng
      sipcapture__heplify__example__pcap__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap
      goffinet__sip_captures__private-test-sip.pcapng irontec__sngrep__tests__aaa.pcap
      goffinet__sip_captures__sip-register-publish-subscribe-489-401.pcapng
      NormB__sipnab__tests__pcap-samples__DTMFsipinfo.pcap MichalCab__ISA__real_sip_call.pcap
      goffinet__sip_captures__sip-2phones-B2BUA-Asterisk.pcapng"
    for f in $normals; do # first 70 % of each capture trains, the rest tests
        n=$(capinfos -c -M "$CORPUS/$f" | awk '/Number of packets/ {print $NF}')
        cut=$((n * 7 / 10))
        editcap -r "$CORPUS/$f" "tr_$f" "1-$cut"
        editcap -r "$CORPUS/$f" "te_$f" "$((cut + 1))-$n"
    done
    attacks=""
    for f in BadUserAgent-sipvicious SIP-Bruteforce-Single-IP SIP-212.32.250.134 SIP-3700-unauthorized-401; do
        attacks="$attacks $CORPUS/initconf__sip-attacks__tests__Traces__$f.pcap"
    done
    attacks="$attacks $CORPUS/CESNET__ipfixprobe__tests__functional__inputs__sip.pcap"
    grid real "te_*" "$attacks" tr_*
else
    echo "real captures: skipped (needs editcap, capinfos and ../shared/corpus)" >&2
fi
