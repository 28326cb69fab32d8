#!/usr/bin/env bash
# benches/profile.sh BROKER NAME [loadgen args]: perf record (dwarf call graphs, 999 Hz, 3 s) of a
# broker pinned to CPU 0 while loadgen (CPU 1) drives it; writes NAME.data and NAME.txt.
set -euo pipefail
B=$1 NAME=$2; shift 2
dir=$(mktemp -d)
RUST_LOG=warn taskset -c 0 "$B" --port 61160 --dir "$dir" >"$dir/log" 2>&1 &
pid=$!
sleep 1
taskset -c 1 target/release/examples/loadgen --target hivebus --url ws://127.0.0.1:61160/ \
    --server-pid $pid --warmup 1 --duration 5 "$@" >"$NAME.loadgen.txt" &
lg=$!
sleep 3
perf record -F 999 -g --call-graph dwarf,16384 -p $pid -o "$NAME.data" -- sleep 3 2>/dev/null
wait $lg
kill $pid
perf report -i "$NAME.data" --children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' \
    | sed 's/ \{3,\}-  *-  *$//' | awk '{$1=$1};1' >"$NAME.txt"
