#!/usr/bin/env bash
# hivebus durable queue vs BullMQ, the same scenario, alternated A B A B.
#
# Builds release, then RUNS times: a fresh `hive broker` (fresh directory, SQLite,
# synchronous=FULL) + `queue_bench --json`, then `benches/peers/bullmq/bench.js` (its own
# redis-server on a free 127.0.0.1 port). Prints every run, the medians and the ratios.
# Everything it starts is stopped by PID. Needs node, npm and redis-server; not for CI.
#
#   benches/queue_compare.sh                # 5 runs each, 50 000 tasks, 1000 samples
#   RUNS=3 TASKS=20000 benches/queue_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
TASKS=${TASKS:-50000}
SAMPLES=${SAMPLES:-1000}
BROKER_ARGS=${BROKER_ARGS:-}
BULL_ARGS=${BULL_ARGS:-}
OUT=$(mktemp -d)
B=""

cleanup() {
  if [ -n "$B" ] && kill -0 "$B" 2>/dev/null; then
    kill "$B" 2>/dev/null || true
    wait "$B" 2>/dev/null || true
  fi
  rm -rf "$OUT"
}
trap cleanup EXIT

cargo build --release --bin hive --example queue_bench
(cd benches/peers/bullmq && [ -d node_modules ] || npm install --no-audit --no-fund)

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$RUNS"); do
  D=$(mktemp -d)
  # shellcheck disable=SC2086
  target/release/hive --dir "$D" broker --no-logs $BROKER_ARGS >"$OUT/broker-$i.log" 2>&1 &
  B=$!
  # Bounded wait for the port file: 100 x 100 ms.
  for _ in $(seq 1 100); do [ -s "$D/.hive/port" ] && break; sleep 0.1; done
  target/release/examples/queue_bench --dir "$D" --tasks "$TASKS" --samples "$SAMPLES" \
    --broker-pid "$B" --json | tee -a "$OUT/hive.jsonl"
  kill "$B"; wait "$B" 2>/dev/null || true; B=""
  rm -rf "$D"
  # shellcheck disable=SC2086
  (cd benches/peers/bullmq && timeout 900 node bench.js --tasks "$TASKS" --samples "$SAMPLES" $BULL_ARGS \
    2>>"$OUT/bull.err") | tee -a "$OUT/bull.jsonl"
  echo "run $i done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done

node - "$OUT/hive.jsonl" "$OUT/bull.jsonl" <<'EOF'
const fs = require('fs');
const read = (f) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const [h, b] = [read(process.argv[2]), read(process.argv[3])];
const med = (rows, k) => {
  const v = rows.map((r) => r[k]).filter((x) => x !== null && x !== undefined).sort((x, y) => x - y);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const keys = ['tasks_per_s', 'lat_p50_us', 'lat_p99_us', 'bench_cores', 'broker_cores'];
console.log(`\nmedians of ${h.length} runs each (${h[0].tasks} tasks, ${h[0].consumers} x ${h[0].slots} slots)`);
console.log('| metric | hivebus | ' + b[0].system + ' | hivebus / bullmq |');
console.log('|---|---|---|---|');
for (const k of keys) {
  const [x, y] = [med(h, k), med(b, k)];
  const r = x !== null && y ? (x / y).toFixed(2) : '-';
  console.log(`| ${k} | ${x} | ${y} | ${r} |`);
}
EOF
