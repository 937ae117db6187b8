#!/usr/bin/env bash
# Fuzzes sipguard's readers with libFuzzer: builds tests/fuzz with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (SIPGUARD_FUZZ=ON) in build-fuzz, seeds each target from
# ../shared/corpus, and runs them one after another, FUZZ_SECONDS each (default 60).
#   usage: scripts/fuzz.sh [TARGET...]   (message capture packets json config knn cluster hep_stream model context traffic; default all)
# A crash or hang stops with the input saved under build-fuzz/artifacts; copy it into
# tests/fuzz/regress/TARGET/ once fixed, so that `make test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
shared=${SIPGUARD_SHARED_DIR:-../shared}/corpus
[ -d "$shared" ] || { echo "fuzz.sh: no corpus at $shared (set SIPGUARD_SHARED_DIR)" >&2; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(message capture packets json config knn cluster hep_stream model context traffic)
if ! command -v clang >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang >/dev/null
    else
        echo "fuzz.sh: clang is missing; run as root:  apt-get install -y clang" >&2
        exit 1
    fi
fi
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPGUARD_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target seed_packets \
    $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
work=build-fuzz/fuzz
mkdir -p "$work" build-fuzz/artifacts
seed() { # TARGET: the directory of its seeds, filled the first time
    local dir=$work/seeds-$1
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        case $1 in
        message) cp "$shared"/rfc4475-torture/*.sip "$shared"/protos-c07-sip/*.sip "$dir"/ ;;
        capture) find "$shared/real-captures" -type f -size -200k -exec cp {} "$dir"/ \; ;;
        packets) build-fuzz/tests/seed_packets "$dir" "$shared"/real-captures/* ;;
        json | config | knn | cluster | hep_stream | model | context | traffic) ;; # their seeds are in tests/fuzz/regress
        esac
        cp tests/fuzz/regress/"$1"/* "$dir"/ 2>/dev/null || true
    fi
    echo "$dir"
}
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus-$t"
    echo "== fuzz_$t for ${seconds}s"
    rc=0
    ASAN_OPTIONS=detect_leaks=1 build-fuzz/tests/fuzz_"$t" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=4096 -max_len=131072 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/artifacts/"$t"- "$work/corpus-$t" "$(seed "$t")" \
        >"$work/$t.log" 2>&1 || rc=$?
    grep -E '^(Done |==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units|stat::peak_rss)' \
        "$work/$t.log" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz.sh: fuzz_$t failed (log $work/$t.log, input in build-fuzz/artifacts)" >&2
        exit 1
    fi
done
