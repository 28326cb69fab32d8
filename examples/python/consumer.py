#!/usr/bin/env python3
"""An example task consumer in Python: takes leases for the given kinds, reports
progress in ``--steps`` EVENTs (with ``pct``) and succeeds with a summary naming the
task and its args (or fails, when the task's args hold ``"fail": true``). It prints
one line per task end, reconnects when the broker goes away, and on SIGTERM or
Ctrl-C stops gracefully: no new leases, running tasks finish (``--drain-secs``).

    PYTHONPATH=clients/python python3 examples/python/consumer.py \\
        [--url ws://127.0.0.1:N/ | --dir .] [--kinds verify_bip,implement_bip] [--slots 2]

Without ``--url`` it finds the broker of ``--dir`` (``.hive/port`` of a live broker,
else ``HIVE_WS_PORT``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

# Run from a checkout without installing the SDK.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

import hivebus  # noqa: E402


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="example hivebus task consumer (Python)")
    p.add_argument("--url", help="broker URL (default: discover it in --dir)")
    p.add_argument("--dir", default=".", help="directory holding .hive/port")
    p.add_argument("--kinds", default="verify_bip,implement_bip", help="comma-separated")
    p.add_argument("--slots", type=int, default=2, help="tasks run at once")
    p.add_argument("--steps", type=int, default=3, help="progress events per task")
    p.add_argument("--step-ms", type=int, default=50, help="pause between events, ms")
    p.add_argument("--drain-secs", type=float, default=30, help="on SIGTERM, time to finish")
    return p.parse_args()


async def main() -> None:
    a = parse()
    kinds = [k for k in a.kinds.split(",") if k]
    consumer = hivebus.Consumer(a.url, kinds=kinds, slots=a.slots, dir=a.dir, name="py-example")

    async def work(task: hivebus.Task) -> dict[str, Any]:
        steps = max(1, a.steps)
        for i in range(1, steps + 1):
            await asyncio.sleep(a.step_ms / 1000)
            await task.progress(i * 100 // steps, f"step {i}/{steps} of {task.kind}", stage="work")
        args = task.args if isinstance(task.args, dict) else {}
        if args.get("fail") is True:
            raise RuntimeError("asked to fail")
        return {
            "status": "ok",
            "summary": f"python consumer did {task.kind} {task.id} (attempt {task.attempt})",
            "artifacts": {"by": "examples/python/consumer.py", "args": args},
        }

    for k in kinds:
        consumer.task(k)(ended(work))

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await consumer.start()
    print(f"consumer: serving {','.join(kinds)} as {consumer.session}", flush=True)
    await stopping.wait()
    print("consumer: draining", flush=True)
    await consumer.stop(timeout=a.drain_secs)
    print("consumer: stopped", flush=True)


def ended(fn: Any) -> Any:
    """Wraps a handler to print how each task ended."""

    async def wrapped(task: hivebus.Task) -> Any:
        try:
            out = await fn(task)
        except asyncio.CancelledError:
            print(f"task ended: {task.id} lease {task.lost}", flush=True)
            raise
        except Exception as e:
            print(f"task ended: {task.id} fail {e}", flush=True)
            raise
        print(f"task ended: {task.id} ok {json.dumps(out['summary'])}", flush=True)
        return out

    return wrapped


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        asyncio.run(main())
    except hivebus.HivebusError as e:
        print(f"consumer: {e}", file=sys.stderr)
        sys.exit(2)
