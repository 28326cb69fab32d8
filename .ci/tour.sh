#!/usr/bin/env bash
# CI: the README's five-minute tour, command by command, against a fresh broker in a
# temp dir on 127.0.0.1. Fails on the first command that does not do what the README
# says. Builds once (debug, as the README's test command did), then runs the built
# binaries in place of `cargo run -q --bin hive --` and `cargo run -q --example X --`:
# the arguments are the README's. Keep the two in sync.
# Kills everything it started (trap), and takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

echo "== tour: build"
cargo build -q --bin hive --example bot --example consumer --example embedded_bot
bin=${CARGO_TARGET_DIR:-$repo/target}/debug

work=$(mktemp -d)
embedded=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work" "$embedded"
}
trap cleanup EXIT
cd "$work"
unset HIVE_WS_PORT HIVE_TOKEN HIVE_ROLE RUST_LOG

# The README's commands, as it writes them (minus the `cargo run` prefix).
hive() { timeout 60 "$bin/hive" "$@"; }
bot() { timeout 30 "$bin/examples/bot" "$@"; }
step() { echo "-- $*"; }
fail() { echo "tour: FAILED: $*" >&2; exit 1; }
wait_file() {
  for _ in $(seq 1 150); do [ -s "$1" ] && return 0; sleep 0.2; done
  fail "$1 did not appear"
}

step "hive broker &"
"$bin/hive" broker 2>broker.err &
pids+=($!)
wait_file .hive/port
port=$(cat .hive/port)
grep -q "listening on ws://127.0.0.1:$port/" broker.err || fail "broker start line: $(cat broker.err)"

step "curl healthz"
[ "$(curl -s "http://127.0.0.1:$port/healthz")" = ok ] || fail "healthz did not say ok"

step "bot tail 'bip-43:*' &"
"$bin/examples/bot" tail 'bip-43:*' >tail.out 2>tail.err &
pids+=($!)
wait_file tail.err   # "joined ..." once subscribed

step "bot publish / history"
bot publish bip-43:general '{"text":"hello"}' | tee publish.out
grep -q "published at offset 1" publish.out || fail "publish"
bot history bip-43:general | grep -q '"text":"hello"' || fail "history"

step "bot publish x2, bot recover bip-43:general 1"
bot publish bip-43:general '{"text":"two"}' >/dev/null
bot publish bip-43:general '{"text":"three"}' >/dev/null
bot recover bip-43:general 1 >recover.out 2>recover.err
cat recover.err
grep -q "recovered: true (2 message(s)" recover.err || fail "recover"
grep -q '"text":"two"' recover.out && grep -q '"text":"three"' recover.out || fail "recovered frames"
grep -q '"text":"hello"' tail.out || fail "the tailing bot did not see the publish"

step "consumer --kinds implement_bip &"
"$bin/examples/consumer" --kinds implement_bip >consumer.out 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  hive status --json | grep -q '"implement_bip"' && break
  sleep 0.1
done

step "trace=\$(hive task submit implement_bip --bip 43 --priority core --arg step=1 -q)"
trace=$(hive task submit implement_bip --bip 43 --priority core --arg step=1 -q)
[ -n "$trace" ] || fail "no traceId from submit"

step "hive tail \"\$trace\""
hive tail "$trace" | tee tail-task.out
grep -q "RESULT  ok (succeeded)" tail-task.out || fail "tail did not end with success"

step "hive task list / dlq list / status"
hive task list --output table | grep -q "$trace" || fail "task list"
hive dlq list --output table >/dev/null || fail "dlq list"
hive status --output table >/dev/null || fail "status"
grep -q "implement_bip" tail.out || fail "the tailing bot did not see the task's frames"

step "embedded_bot --dir <dir> &"
"$bin/examples/embedded_bot" --dir "$embedded" >embedded.out 2>&1 &
pids+=($!)
wait_file "$embedded/.hive/port"
[ "$(cat .hive/port)" = "$port" ] || fail "the embedded bot changed the broker's port file"

echo "== tour: ok"
