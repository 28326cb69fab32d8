#!/usr/bin/env bash
# benches/instructions.sh BROKER [BROKER2 ...]: instructions the broker executes per
# delivery on the 1 -> N fan-out, counted by valgrind's callgrind: a count, not a time,
# so it is the same on a busy machine as on a quiet one (valgrind runs the broker about
# 50x slower; the count per delivery does not care). For each binary: one idle run
# (start, stop) and one loaded run; (loaded - idle) / deliveries. Needs valgrind.
#
#   FANOUT_N=100 benches/instructions.sh /tmp/a/hive_broker target/release/examples/hive_broker
#
# Environment: FANOUT_N (100), PAYLOAD (100), SECS (4). Servers listen on 127.0.0.1 and
# are stopped after each run. Not for CI.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${FANOUT_N:-100}
PAYLOAD=${PAYLOAD:-100}
SECS=${SECS:-4}
LG=target/release/examples/loadgen
total() { awk '/^summary:/ {print $2}' "$1"; }
run() { # bin load? -> "instructions deliveries"
  local bin=$1 load=$2 d port out pid dl=0
  d=$(mktemp -d); port=$((62300 + RANDOM % 500)); out=$d/cg.out
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --port "$port" --dir "$d" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  if [ "$load" = 1 ]; then
    "$LG" --json --target hivebus --url "ws://127.0.0.1:$port/" --scenario fanout \
      --subscribers "$N" --payload "$PAYLOAD" --warmup 0 --duration "$SECS" >/dev/null 2>&1 || true
    dl=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "hivebus_deliveries_total" {print $2}')
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(total "$out") $dl"
  rm -rf "$d"
}
for bin in "$@"; do
  read -r idle _ < <(run "$bin" 0)
  read -r busy dl < <(run "$bin" 1)
  python3 -c "import sys; i,b,d=map(int,sys.argv[1:4]); print(f'{sys.argv[4]}: {d} deliveries, {(b-i)/max(d,1):.0f} instructions per delivery')" \
    "$idle" "$busy" "$dl" "$bin"
done
