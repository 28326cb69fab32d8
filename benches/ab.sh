#!/usr/bin/env bash
# benches/ab.sh: A/B of two hive_broker builds on the 1 -> N fan-out, same load
# generator, runs alternated (A B A B ...), medians and the B/A ratio printed.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release --example hive_broker)
#   cargo build --release --example hive_broker --example loadgen
#   A=/tmp/base/target/release/examples/hive_broker benches/ab.sh
#
# Environment: A (required: the baseline broker), B (this checkout's), RUNS (5),
# FANOUT_N (100), PAYLOAD (100), SERVER_CPUS (0), LOADGEN_CPUS (1). Servers listen on
# 127.0.0.1 only and are stopped after each run. Not for CI: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${A:?set A to the baseline hive_broker binary}"
B=${B:-target/release/examples/hive_broker}
LG=target/release/examples/loadgen
RUNS=${RUNS:-5}
N=${FANOUT_N:-100}
PAYLOAD=${PAYLOAD:-100}
OUT=$(mktemp)
for i in $(seq "$RUNS"); do
  for t in A B; do
    bin=$A; [ "$t" = B ] && bin=$B
    d=$(mktemp -d); port=$((61300 + RANDOM % 500))
    RUST_LOG=warn taskset -c "${SERVER_CPUS:-0}" "$bin" --port "$port" --dir "$d" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
    line=$(taskset -c "${LOADGEN_CPUS:-1}" "$LG" --json --target hivebus --url "ws://127.0.0.1:$port/" \
      --server-pid "$pid" --scenario fanout --subscribers "$N" --payload "$PAYLOAD" \
      --warmup 1 --duration 3 2>/dev/null) && echo "$t $line" >>"$OUT"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for l in open(sys.argv[1]):
    t, _, j = l.partition(" ")
    rows.setdefault(t, []).append(json.loads(j))
med = lambda t, k: statistics.median(r[k] for r in rows[t])
for t in "AB":
    print(f"{t}: delivered/s {[round(r['delivered_per_s'] / 1e6, 2) for r in rows[t]]} M, "
          f"median {med(t, 'delivered_per_s') / 1e6:.3f} M, server ns/delivery {med(t, 'server_ns_per_delivery'):.0f}, "
          f"p99 {med(t, 'p99_us'):.0f} us")
print(f"B/A delivered/s: {med('B', 'delivered_per_s') / med('A', 'delivered_per_s'):.3f}")
PY
