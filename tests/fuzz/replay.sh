#!/bin/sh
# Replays the fuzz targets over their seeds: the shared corpus (RFC 4475 torture messages,
# PROTOS c07-sip cases, real captures, and those captures cut into decoder frames here) and
# tests/fuzz/regress/TARGET, inputs that once crashed or that reach paths the corpus does not.
#   usage: replay.sh BUILD_TESTS_DIR SHARED_DIR
set -e
bin=$1
corpus=$2/corpus
here=$(dirname "$0")
[ -d "$corpus" ] || { echo "replay.sh: no corpus at $corpus"; exit 1; }
regress() { [ -d "$here/regress/$1" ] && echo "$here/regress/$1"; }
frames=$bin/fuzz-frames
rm -rf "$frames"
mkdir -p "$frames"
"$bin/seed_packets" "$frames" "$corpus"/real-captures/*
"$bin/fuzz_message_replay" "$corpus/rfc4475-torture" "$corpus/protos-c07-sip" $(regress message)
"$bin/fuzz_capture_replay" "$corpus/real-captures" $(regress capture)
"$bin/fuzz_packets_replay" "$frames" $(regress packets)
"$bin/fuzz_json_replay" $(regress json)
"$bin/fuzz_config_replay" $(regress config)
"$bin/fuzz_knn_replay" $(regress knn)
"$bin/fuzz_cluster_replay" $(regress cluster)
"$bin/fuzz_hep_stream_replay" $(regress hep_stream)
"$bin/fuzz_model_replay" $(regress model)
"$bin/fuzz_context_replay" $(regress context)
"$bin/fuzz_traffic_replay" $(regress traffic)
