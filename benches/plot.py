#!/usr/bin/env python3
"""benches/plot.py: turns the JSON lines of benches/compare.sh into one markdown table of
medians and ratios (printed) and two plots against subscriber count (deliveries/s and
p99 latency, 1 publisher -> N subscribers, closed loop), written to --png-dir.

    python3 benches/plot.py target/compare/<run>/results.jsonl --png-dir docs/perf

Needs matplotlib (pip install matplotlib) for the plots; the table needs nothing.
"""
import argparse
import json
import statistics
from collections import defaultdict

ORDER = ["hivebus", "bare", "nats", "redis"]


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def label_key(label):
    parts = label.split("-")
    nums = [int(p) for p in parts if p.isdigit()]
    return (parts[0], nums)


def table(rows):
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r["label"]][r["target"]].append(r)
    out = []
    conns = by.pop("connections", None)
    if conns:
        out.append("| connections | target | opened (median) | server RSS KiB per connection | hivebus / target |")
        out.append("|---|---|---|---|---|")
        h = med(conns.get("hivebus", []), "rss_kib_per_conn")
        for t in ORDER:
            rs = conns.get(t)
            if not rs:
                continue
            v = med(rs, "rss_kib_per_conn")
            ratio = f"{h / v:.2f}" if h and v else "-"
            out.append(f"| idle | {t} | {fmt(med(rs, 'connections'))} | {fmt(v, 2)} | {ratio} |")
        out.append("")
    out.append(
        "| scenario | target | runs | delivered/s | hivebus / target | p50 us | p90 us | p99 us "
        "| p99.9 us | loss (max) | server ns/delivery | loadgen CPU % |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label in sorted(by, key=label_key):
        targets = by[label]
        h = med(targets.get("hivebus", []), "delivered_per_s")
        for t in ORDER:
            rs = targets.get(t)
            if not rs:
                continue
            rate = med(rs, "delivered_per_s")
            ratio = f"{h / rate:.2f}" if h and rate else "-"
            cpu = med(rs, "loadgen_cpu_s")
            win = med(rs, "window_s")
            cpu_pct = 100 * cpu / win if cpu is not None and win else None
            loss = max(r.get("loss", 0) for r in rs)
            out.append(
                f"| {label} | {t} | {len(rs)} | {fmt(rate)} | {ratio} | {fmt(med(rs, 'p50_us'))} "
                f"| {fmt(med(rs, 'p90_us'))} | {fmt(med(rs, 'p99_us'))} | {fmt(med(rs, 'p999_us'))} "
                f"| {loss} | {fmt(med(rs, 'server_ns_per_delivery'))} | {fmt(cpu_pct)} |"
            )
    return "\n".join(out)


def plot(rows, png_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib missing: no plots; pip install matplotlib)")
        return
    series = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["label"].startswith("fanout-"):
            series[(r["target"], r["payload"])][r["subscribers"]].append(r)
    if not series:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (t, size), by_n in sorted(series.items(), key=lambda kv: (ORDER.index(kv[0][0]), kv[0][1])):
        ns = sorted(by_n)
        style = "-o" if size <= 100 else "--s"
        ax1.plot(ns, [med(by_n[n], "delivered_per_s") for n in ns], style, label=f"{t} {size} B")
        ax2.plot(ns, [med(by_n[n], "p99_us") / 1000 for n in ns], style, label=f"{t} {size} B")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("subscribers (1 publisher, one channel)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_ylabel("deliveries/s (median, closed loop)")
    ax2.set_ylabel("p99 publish -> deliver, ms (closed loop)")
    ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    fig.suptitle("fan-out: hivebus, bare tokio-tungstenite ceiling, nats-server, redis")
    fig.tight_layout()
    path = f"{png_dir}/fanout.png"
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--png-dir", default="docs/perf")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    print(table(rows))
    plot(rows, a.png_dir)


if __name__ == "__main__":
    main()
