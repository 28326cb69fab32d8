#!/usr/bin/env bash
# benches/compare.sh: hivebus against its ceiling (a bare tokio-tungstenite fan-out
# server) and its peers (nats-server core pub/sub, Redis pub/sub), every scenario of
# examples/loadgen.rs, the targets alternated (A B C D A B C D ...), RUNS runs each;
# prints one table of medians and ratios (benches/plot.py) and draws docs/perf/*.png.
#
# Installs nats-server and redis-server (Debian packages) when missing, starts every
# server on 127.0.0.1 pinned to SERVER_CPUS, runs the load generator pinned to
# LOADGEN_CPUS, and stops the servers it started, by PID. Not for CI: it takes
# 15-30 minutes and its figures depend on the machine.
#
#   benches/compare.sh                       # everything, 5 runs
#   RUNS=3 SCENARIOS="fanout" benches/compare.sh
#
# Environment: RUNS (5), WARMUP (1 s), DURATION (3 s), SERVER_CPUS (0), LOADGEN_CPUS (1),
# SCENARIOS ("connections fanout open many-channels"), TARGETS ("hivebus bare nats redis"),
# FANOUT_N ("1 10 100 1000"), PAYLOADS ("100 1024"), CONNS (19000), CONN_RUNS (3: RSS
# varies little), BASE_PORT (61100: above the ephemeral range, which the load generator's
# 19 000 connections use up), OUT (target/compare/<time>).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
DURATION=${DURATION:-3}
SERVER_CPUS=${SERVER_CPUS:-0}
LOADGEN_CPUS=${LOADGEN_CPUS:-1}
SCENARIOS=${SCENARIOS:-"connections fanout open many-channels"}
TARGETS=${TARGETS:-"hivebus bare nats redis"}
FANOUT_N=${FANOUT_N:-"1 10 100 1000"}
PAYLOADS=${PAYLOADS:-"100 1024"}
CONNS=${CONNS:-19000}
CONN_RUNS=${CONN_RUNS:-3}
OUT=${OUT:-target/compare/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# 19 000 idle connections need more than the usual 1024 (or 20 000) descriptors, in the
# server and in the load generator: raise the soft and hard limits (needs root).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "ulimit -n: $(ulimit -n)" >&2

if ! command -v nats-server >/dev/null || ! command -v redis-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server redis-server
fi
cargo build --release --features peers --example loadgen --example hive_broker --example bare_ws_server
BIN=target/release/examples

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

declare -A URL PID RATE
HIVE_DIR=$(mktemp -d)
start_servers() {
    local p=${BASE_PORT:-61100}
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "$BIN/hive_broker" --port "$p" --dir "$HIVE_DIR" \
        >"$OUT/hive_broker.log" 2>&1 &
    PID[hivebus]=$!; URL[hivebus]="ws://127.0.0.1:$p/"; wait_port "$p"
    taskset -c "$SERVER_CPUS" "$BIN/bare_ws_server" $((p + 1)) >"$OUT/bare.log" 2>&1 &
    PID[bare]=$!; URL[bare]="ws://127.0.0.1:$((p + 1))/"; wait_port $((p + 1))
    taskset -c "$SERVER_CPUS" nats-server -a 127.0.0.1 -p $((p + 2)) >"$OUT/nats.log" 2>&1 &
    PID[nats]=$!; URL[nats]="nats://127.0.0.1:$((p + 2))"; wait_port $((p + 2))
    taskset -c "$SERVER_CPUS" redis-server --bind 127.0.0.1 --port $((p + 3)) --save '' \
        --appendonly no --protected-mode no --maxclients 60000 >"$OUT/redis.log" 2>&1 &
    PID[redis]=$!; URL[redis]="redis://127.0.0.1:$((p + 3))/"; wait_port $((p + 3))
    PIDS=("${PID[hivebus]}" "${PID[bare]}" "${PID[nats]}" "${PID[redis]}")
}
stop_servers() {
    cleanup
    PIDS=()
    sleep 1
}

# run LABEL TARGET ARGS...: one loadgen run, its JSON line tagged and appended.
run() {
    local label=$1 target=$2
    shift 2
    local line
    if line=$(taskset -c "$LOADGEN_CPUS" "$BIN/loadgen" --json --target "$target" \
        --url "${URL[$target]}" --server-pid "${PID[$target]}" "$@" 2>>"$OUT/loadgen.err"); then
        echo "$line" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["label"]=sys.argv[1]; print(json.dumps(r))' "$label" >>"$RESULTS"
        echo "  $label $target: $(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r.get("delivered_per_s", r.get("rss_kib_per_conn")), "p99", r.get("p99_us"), "loss", r.get("loss"))')" >&2
    else
        echo "  $label $target: FAILED (see $OUT/loadgen.err)" >&2
    fi
}

median_of() { # median_of LABEL TARGET FIELD
    python3 - "$RESULTS" "$1" "$2" "$3" <<'EOF'
import json, statistics, sys
path, label, target, field = sys.argv[1:]
v = [json.loads(l)[field] for l in open(path) if l.strip() and json.loads(l).get("label") == label and json.loads(l).get("target") == target]
print(statistics.median(v) if v else 0)
EOF
}

for scenario in $SCENARIOS; do
    case $scenario in
    connections)
        # Fresh servers for every round: memory freed by the previous round's
        # connections is reused without growing RSS, and would hide the growth.
        for r in $(seq "$CONN_RUNS"); do
            start_servers
            for t in $TARGETS; do
                run "connections" "$t" --scenario connections --connections "$CONNS"
            done
            stop_servers
        done
        ;;
    fanout)
        start_servers
        for n in $FANOUT_N; do
            for size in $PAYLOADS; do
                echo "fanout 1 -> $n, $size B" >&2
                for r in $(seq "$RUNS"); do
                    for t in $TARGETS; do
                        run "fanout-$n-$size" "$t" --scenario fanout --subscribers "$n" \
                            --payload "$size" --warmup "$WARMUP" --duration "$DURATION"
                    done
                done
            done
        done
        stop_servers
        ;;
    open)
        # Open loop at 50% of each target's own closed-loop peak (1 -> 100, 100 B),
        # measured above in this run (or now, when the fanout scenario was skipped).
        start_servers
        need=0
        for t in $TARGETS; do
            peak=$(median_of "fanout-100-100" "$t" delivered_per_s)
            [ "${peak%.*}" = "0" ] && need=1
        done
        if [ "$need" = 1 ]; then
            for r in $(seq "$RUNS"); do
                for t in $TARGETS; do
                    run "fanout-100-100" "$t" --scenario fanout --subscribers 100 --payload 100 \
                        --warmup "$WARMUP" --duration "$DURATION"
                done
            done
        fi
        for t in $TARGETS; do
            peak=$(median_of "fanout-100-100" "$t" delivered_per_s)
            RATE[$t]=$(python3 -c "print(max(1, round($peak / 100 / 2)))")
        done
        echo "open loop, publishes/s: $(for t in $TARGETS; do echo -n "$t=${RATE[$t]} "; done)" >&2
        for r in $(seq "$RUNS"); do
            for t in $TARGETS; do
                run "open-100-100" "$t" --scenario fanout --subscribers 100 --payload 100 \
                    --rate "${RATE[$t]}" --warmup "$WARMUP" --duration "$DURATION"
            done
        done
        stop_servers
        ;;
    many-channels)
        start_servers
        for r in $(seq "$RUNS"); do
            for t in $TARGETS; do
                run "many-1000x10" "$t" --scenario many-channels --channels 1000 --per-sub 10 \
                    --subscribers 1000 --publishers 10 --payload 100 --warmup "$WARMUP" \
                    --duration "$DURATION"
            done
        done
        stop_servers
        ;;
    *) echo "unknown scenario $scenario" >&2 ;;
    esac
done

{
    echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
        "kernel $(uname -r); servers on CPU $SERVER_CPUS, loadgen on CPU $LOADGEN_CPUS;" \
        "runs=$RUNS warmup=${WARMUP}s duration=${DURATION}s; $(date -u +%FT%TZ)"
    python3 benches/plot.py "$RESULTS" --png-dir "$OUT"
} | tee "$OUT/table.md"
echo "results: $RESULTS, table: $OUT/table.md, plots: $OUT/*.png" >&2
