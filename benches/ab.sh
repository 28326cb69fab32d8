#!/usr/bin/env bash
# benches/ab.sh: A/B of two hive_broker builds (or configs) on one loadgen scenario,
# alternated A B A B ... RUNS times; prints the medians of delivered/s and of server CPU
# per delivery, and B/A. Used for the before/after figures of docs/PERFORMANCE.md.
#
#   benches/ab.sh BROKER_A BROKER_B [loadgen args...]
#   A_CONFIG=a.toml B_CONFIG=b.toml benches/ab.sh B1 B1 --scenario many-channels
#
# Builds nothing: pass two binaries (copy target/release/examples/hive_broker aside
# before a change). Starts both on 127.0.0.1 pinned to SERVER_CPUS, stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
shift 2
RUNS=${RUNS:-5}
SERVER_CPUS=${SERVER_CPUS:-0}
LOADGEN_CPUS=${LOADGEN_CPUS:-1}
OUT=${OUT:-target/ab-$(date -u +%H%M%S).txt}
declare -A PORT=([A]=61150 [B]=61151) PID BIN=([A]=$A [B]=$B) CONF=([A]=${A_CONFIG:-} [B]=${B_CONFIG:-})
trap 'for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
for v in A B; do
    dir=$(mktemp -d)
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "${BIN[$v]}" --port "${PORT[$v]}" --dir "$dir" \
        ${CONF[$v]:+--config "${CONF[$v]}"} >"$dir/log" 2>&1 &
    PID[$v]=$!
done
sleep 1
: >"$OUT"
for _ in $(seq "$RUNS"); do
    for v in A B; do
        line=$(timeout 120 taskset -c "$LOADGEN_CPUS" target/release/examples/loadgen --json \
            --target hivebus --url "ws://127.0.0.1:${PORT[$v]}/" --server-pid "${PID[$v]}" "$@")
        echo "$v $line" | tee -a "$OUT"
    done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    v, j = line.split(" ", 1)
    rows.setdefault(v, []).append(json.loads(j))
med = lambda v, k: statistics.median(r[k] for r in rows[v])
for v in sorted(rows):
    print(v, f"delivered/s {med(v, 'delivered_per_s'):,.0f}",
          f"server ns/delivery {med(v, 'server_ns_per_delivery'):,.0f}",
          "runs", [int(r["delivered_per_s"]) for r in rows[v]])
print(f"B/A delivered/s {med('B', 'delivered_per_s') / med('A', 'delivered_per_s'):.3f}",
      f"ns/delivery {med('B', 'server_ns_per_delivery') / med('A', 'server_ns_per_delivery'):.3f}")
PY
