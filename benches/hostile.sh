#!/usr/bin/env bash
# benches/hostile.sh: a well-behaved session's ping round trips, quiet and under every
# attack of docs/SECURITY.md's bad-input table at once (examples/hostile), against a
# release `hive broker`. Broker on SERVER_CPUS (0); attackers and victim on
# LOADGEN_CPUS (1), the attackers at the lowest priority (nice 19) and the victim as a
# process of its own, so that the victim waits on the broker, not on its neighbours.
# Runs alternate (quiet, attacked, ...); medians of RUNS (5) and the attacked/quiet
# ratios are printed.
#
#   cargo build --release --bin hive --example hostile && benches/hostile.sh
#
# Environment: HIVE (the broker binary, default target/release/hive), RUNS, SECONDS_EACH (5),
# ATTACK_ARGS (extra flags for the attackers, e.g. "--redactors 0" to leave one row out),
# CONFIG (a TOML file for the broker; default: [safety] mode = "enforce"). Servers
# listen on 127.0.0.1 only and are stopped after each run. Not for CI.
set -euo pipefail
cd "$(dirname "$0")/.."
HIVE=${HIVE:-target/release/hive}
HOSTILE=target/release/examples/hostile
RUNS=${RUNS:-5}
SECS=${SECONDS_EACH:-5}
OUT=$(mktemp)
cfg=${CONFIG:-}
if [ -z "$cfg" ]; then cfg=$(mktemp --suffix .toml); printf '[safety]\nmode = "enforce"\n' >"$cfg"; fi
for i in $(seq "$RUNS"); do
  for mode in quiet attacked; do
    d=$(mktemp -d); port=$((61800 + RANDOM % 500))
    taskset -c "${SERVER_CPUS:-0}" "$HIVE" --dir "$d" broker --port "$port" --no-logs --config "$cfg" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
    url="ws://127.0.0.1:$port/"
    apid=
    if [ "$mode" = attacked ]; then
      nice -n 19 taskset -c "${LOADGEN_CPUS:-1}" "$HOSTILE" --url "$url" --seconds "$((SECS + 2))" --no-victim ${ATTACK_ARGS:-} >/dev/null 2>&1 &
      apid=$!
      sleep 1  # the attack is under way before the victim starts
    fi
    line=$(taskset -c "${LOADGEN_CPUS:-1}" "$HOSTILE" --url "$url" --attack none --seconds "$SECS")
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    echo "$mode $rss $line" >>"$OUT"
    [ -n "$apid" ] && wait "$apid" 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for l in open(sys.argv[1]):
    mode, rss, j = l.split(" ", 2)
    v = json.loads(j)["victim"]
    v["rss_mib"] = int(rss) / 1024
    rows.setdefault(mode, []).append(v)
keys = ["p50_us", "p95_us", "p99_us", "max_us", "rss_mib"]
med = {m: {k: statistics.median(r[k] for r in rs) for k in keys} for m, rs in rows.items()}
print("%-9s %9s %9s %9s %9s %9s  (medians of %d)" % ("", *keys, len(rows["quiet"])))
for m in ("quiet", "attacked"):
    print("%-9s %9.0f %9.0f %9.0f %9.0f %9.1f" % (m, *(med[m][k] for k in keys)))
print("ratio     %9.1f %9.1f %9.1f %9.1f" % tuple(med["attacked"][k] / max(med["quiet"][k], 1) for k in keys[:4]))
for m, rs in rows.items():
    print(m, "runs p95_us:", [r["p95_us"] for r in rs], "answered:", [f'{r["answered"]}/{r["pings"]}' for r in rs])
PY
rm -f "$OUT"
