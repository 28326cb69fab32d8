#!/usr/bin/env bash
# benches/queue_ab.sh: A/B of two `hive` builds on the durable queue, same
# `examples/queue_bench` load, runs alternated (A B A B ...), medians and B/A printed.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release --bin hive)
#   cargo build --release --bin hive --example queue_bench
#   A=/tmp/base/target/release/hive benches/queue_ab.sh
#
# Environment: A (required: the baseline hive), B (this checkout's), RUNS (5),
# TASKS (20000), SAMPLES (500). Brokers listen on 127.0.0.1 only, each in a fresh
# directory (SQLite, synchronous=FULL), and are stopped after each run. Not for CI.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${A:?set A to the baseline hive binary}"
B=${B:-target/release/hive}
QB=target/release/examples/queue_bench
RUNS=${RUNS:-5}
TASKS=${TASKS:-20000}
SAMPLES=${SAMPLES:-500}
OUT=$(mktemp)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$OUT"; }
trap cleanup EXIT
for i in $(seq "$RUNS"); do
  for t in A B; do
    bin=$A; [ "$t" = B ] && bin=$B
    d=$(mktemp -d)
    "$bin" --dir "$d" broker --no-logs >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do [ -s "$d/.hive/port" ] && break; sleep 0.1; done
    # The port named explicitly: a baseline older than .hive/broker.lock writes a port
    # file that discovery no longer follows on its own.
    line=$(HIVE_WS_PORT=$(head -1 "$d/.hive/port") "$QB" --dir "$d" --tasks "$TASKS" --samples "$SAMPLES" --broker-pid "$pid" --json 2>/dev/null)
    echo "$t $line" >>"$OUT"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    rm -rf "$d"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for l in open(sys.argv[1]):
    t, _, j = l.partition(" ")
    rows.setdefault(t, []).append(json.loads(j))
keys = ["tasks_per_s", "lat_p50_us", "lat_p99_us", "broker_cores"]
med = {t: {k: statistics.median(r[k] for r in rs) for k in keys} for t, rs in rows.items()}
for t in ("A", "B"):
    print(t, "tasks/s", [round(r["tasks_per_s"]) for r in rows[t]], " ".join(f"{k}={med[t][k]:.4g}" for k in keys))
print("B/A tasks/s: %.3f   B/A p50: %.3f" % (med["B"]["tasks_per_s"] / med["A"]["tasks_per_s"], med["B"]["lat_p50_us"] / med["A"]["lat_p50_us"]))
PY
