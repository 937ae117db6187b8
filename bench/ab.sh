#!/usr/bin/env bash
# ab.sh: compares the working tree's embedding and scoring with those of an earlier revision,
# both builds in one process (bench/twin.c), one core. Prints one line per figure: cycles a
# message for each build, the median speed-up over the rounds and its quartiles, and whether
# the results are the same.
#   usage: bench/ab.sh REV [BUILD [CAPTURE MODEL [ROUNDS]]]
# BUILD is a configured build of the working tree (default build); it is brought up to date.
# Without CAPTURE and MODEL, the bench's normal capture and a model trained on 100 users
# for an hour are generated (fixed seeds). TWIN_ONLY=embed_unsorted,score_global picks figures.
set -euo pipefail
REV=${1:?usage: bench/ab.sh REV [BUILD [CAPTURE MODEL [ROUNDS]]]}
BUILD=${2:-build}
SRC="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "$BUILD" && pwd)"
T=$(mktemp -d)
cleanup() {
  git -C "$SRC" worktree remove --force "$T/base" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

if grep -q "^SIPGUARD_SANITIZE:BOOL=ON" "$B/CMakeCache.txt"; then
  echo "bench/ab.sh: $BUILD is a sanitizer build; give a normal one (make's build)" >&2
  exit 2
fi
cmake --build "$B" -j2 --target sgcommon sgdetector sipguard >/dev/null

# the base: its libraries, compiled as BUILD compiles (the same build type, flags and
# optimisation level, whatever the base's CMakeLists says: -O2 against -O3 alone moves these
# figures by more than most changes), linked into one object whose defined symbols take the
# prefix old_
cached() { sed -n "s/^$1:[A-Z]*=//p" "$B/CMakeCache.txt"; }
TYPE=$(cached CMAKE_BUILD_TYPE)
OPT=$(grep -o -- ' -O[0-3s]' "$B/common/CMakeFiles/sgcommon.dir/flags.make" | head -1)
TYPE_FLAGS="$OPT $(cached "CMAKE_C_FLAGS_${TYPE^^}" | sed 's/ *-O[0-3s]//')"
git -C "$SRC" worktree add --detach -q "$T/base" "$REV"
cmake -S "$T/base" -B "$T/base-build" -DCMAKE_BUILD_TYPE="$TYPE" \
  -DCMAKE_C_FLAGS="$(cached CMAKE_C_FLAGS)" "-DCMAKE_C_FLAGS_${TYPE^^}=$TYPE_FLAGS" >/dev/null
cmake --build "$T/base-build" -j2 --target sgcommon sgdetector sipguard >/dev/null
flags() { sed -n 's/^C_FLAGS = //p' "$1/common/CMakeFiles/sgcommon.dir/flags.make"; }
echo "base $REV: $(flags "$T/base-build")"
echo "working tree: $(flags "$B")"
ld -r -o "$T/all.o" --whole-archive "$T/base-build/detector/libsgdetector.a" \
  "$T/base-build/common/libsgcommon.a"
nm --defined-only -g "$T/all.o" | awk '{print $3 " old_" $3}' > "$T/renames"
objcopy --redefine-syms="$T/renames" "$T/all.o" "$T/old.o"

cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$SRC/common" -I"$SRC/detector" \
  -o "$T/twin" "$SRC/bench/twin.c" "$T/old.o" "$B/detector/libsgdetector.a" \
  "$B/common/libsgcommon.a" $(pkg-config --libs libpcap libosip2 jansson libxxhash zlib libzmq \
  libmicrohttpd sqlite3 inih gnutls) -lm -lpthread

if [ $# -ge 4 ]; then
  CAPTURE="$(cd "$(dirname "$3")" && pwd)/$(basename "$3")"
  MODEL="$(cd "$(dirname "$4")" && pwd)/$(basename "$4")"
else
  # the base trains the model: a later build reads its format, an older one may not read ours
  S="$T/base-build/cli/sipguard"
  $S gen -o "$T/normal" --preset demo --attacks none --seed 8 --population-seed 7 2>/dev/null
  $S gen -o "$T/users100" --attacks none --users 100 --duration 3600 --call-rate 4 --seed 7 2>/dev/null
  $S train -q -k 5 -o "$T/m.model" "$T/users100.pcap"
  CAPTURE="$T/normal.pcap"
  MODEL="$T/m.model"
fi
PIN=""
command -v taskset >/dev/null && PIN="taskset -c 0"
$PIN "$T/twin" "$CAPTURE" "$MODEL" "${5:-30}"
