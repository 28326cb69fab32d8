"""hivebus: the Python SDK of the hivebus message bus and task queue (BIP-43).

Written from docs/PROTOCOL.md and docs/QUEUE.md; asyncio, on the ``websockets``
library, and nothing else.

# Layout
- ``client``: :func:`connect` and :class:`Client`: handshake, requests routed by
  ``re``, events, join / publish / history / recover, PRIVATE, task commands.
- ``tasks``: :class:`Tail`, following a task's stream to its final state.
- ``consumer``: :class:`Consumer` and :class:`Task`: handlers per kind, progress,
  approvals, heartbeats, graceful stop.
- ``discovery``: finding the broker (``.hive/port`` of a live broker, else
  ``HIVE_WS_PORT``), the same rule as the ``hive`` CLI.
- ``errors``: :class:`HivebusError` and its stable ``code``.

Quick start::

    import asyncio, hivebus

    async def main():
        async with await hivebus.connect(role="client") as c:
            reply = await c.submit("verify_bip", 43, {"checklist": "all"})
            tail = c.tail(reply["traceId"])
            async for frame in tail:
                print(frame["type"], frame.get("payload"))
            print(tail.state)

    asyncio.run(main())
"""

from .client import Client, Frame, Position, connect
from .consumer import Consumer, Decision, Task
from .discovery import Located, locate
from .errors import ConnectionClosed, DiscoveryError, HivebusError, LeaseLost, Timeout
from .tasks import FINAL_STATES, Tail

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConnectionClosed",
    "Consumer",
    "Decision",
    "DiscoveryError",
    "FINAL_STATES",
    "Frame",
    "HivebusError",
    "LeaseLost",
    "Located",
    "Position",
    "Tail",
    "Task",
    "Timeout",
    "connect",
    "locate",
]
