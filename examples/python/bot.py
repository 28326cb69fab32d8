#!/usr/bin/env python3
"""An example bot in Python: joins a BIP's room (every channel of ``bip-<n>``),
publishes one line on ``bip-<n>:<channel>``, and prints everything published in the
room until Ctrl-C (or ``--for`` seconds).

    PYTHONPATH=clients/python python3 examples/python/bot.py --bip 43 --say "hello from python"

Without ``--url`` it finds the broker of ``--dir`` (``.hive/port`` of a live broker,
else ``HIVE_WS_PORT``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

import hivebus  # noqa: E402


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="example hivebus bot (Python)")
    p.add_argument("--url", help="broker URL (default: discover it in --dir)")
    p.add_argument("--dir", default=".", help="directory holding .hive/port")
    p.add_argument("--bip", type=int, default=43, help="BIP number: room bip-<n>")
    p.add_argument("--channel", default="general", help="channel to publish on")
    p.add_argument("--say", default="hello from a python bot", help="the line to publish")
    p.add_argument("--for", dest="seconds", type=float, help="stop after this many seconds")
    return p.parse_args()


async def main() -> None:
    a = parse()
    room = f"bip-{a.bip}"
    async with await hivebus.connect(a.url, role="client", name="py-bot", dir=a.dir) as c:
        joined = await c.join(room)
        print(f"bot: {c.session} joined {joined['subscription']}", flush=True)
        pos = await c.publish(f"{room}:{a.channel}", {"text": a.say}, echo=True)
        print(f"bot: published at {room}:{a.channel} offset {pos.offset if pos else '?'}", flush=True)

        async def show() -> None:
            async for f in c.events():
                where = f"{f.get('room')}:{f.get('channel')}" if f.get("room") else "-"
                print(f"{f['type']:<8} {where} #{f.get('offset', '-')} "
                      f"from {f.get('from', '?')}: {json.dumps(f.get('payload'))}", flush=True)

        try:
            await asyncio.wait_for(show(), a.seconds)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except hivebus.HivebusError as e:
        print(f"bot: {e}", file=sys.stderr)
        sys.exit(2)
