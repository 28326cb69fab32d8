"""Rooms and channels through the SDK: join, publish (acknowledged or not), delivery,
history, recovery after a disconnect, PRIVATE."""

from __future__ import annotations

import uuid

import hivebus
from conftest import Broker, run


def room() -> str:
    return f"py-{uuid.uuid4().hex[:10]}"


def test_publish_reaches_a_joined_session_and_history_keeps_it(broker: Broker) -> None:
    async def body() -> None:
        addr = f"{room()}:general"
        async with await hivebus.connect(broker.url, role="client", name="py-a") as a, \
                await hivebus.connect(broker.url, role="client") as b:
            assert a.session.startswith("s-") and a.limits["max_frame"] > 0
            joined = await b.join(addr)
            assert joined["subscription"] == addr
            await a.join(addr)
            pos = await a.publish(addr, {"text": "one"}, trace_id="t-py-1")
            assert pos is not None and pos.offset == 1 and pos.epoch.startswith("e-")
            assert await a.publish(addr, {"text": "two"}, ack=False) is None
            got = [await b.next_event(timeout=5), await b.next_event(timeout=5)]
            assert [f["payload"]["text"] for f in got] == ["one", "two"]
            assert got[0]["from"] == a.session and got[0]["traceId"] == "t-py-1"
            assert [f["offset"] for f in got] == [1, 2]
            assert b.positions[addr] == hivebus.Position(2, pos.epoch)
            page = await b.history(addr)
            assert page["complete"] and [m["offset"] for m in page["messages"]] == [1, 2]
            since = await b.history(addr, since=1)
            assert [m["payload"]["text"] for m in since["messages"]] == ["two"]
            left = await b.leave(addr)
            assert left["left"] == [addr]

    run(body())


def test_join_with_recover_returns_exactly_the_missed_publishes(broker: Broker) -> None:
    async def body() -> None:
        addr = f"{room()}:log"
        async with await hivebus.connect(broker.url, role="client") as pub:
            await pub.join(addr)
            sub = await hivebus.connect(broker.url, role="client")
            await sub.join(addr)
            await pub.publish(addr, {"n": 1})
            first = await sub.next_event(timeout=5)
            seen = hivebus.Position(first["offset"], first["epoch"])
            await sub.close()
            for n in (2, 3, 4):
                await pub.publish(addr, {"n": n})
            async with await hivebus.connect(broker.url, role="client") as again:
                r = await again.join(addr, recover=seen)
                assert r["recovered"] is True
                assert [m["payload"]["n"] for m in r["messages"]] == [2, 3, 4]
                assert again.positions[addr].offset == 4
                # A stale epoch cannot be recovered exactly.
                r = await again.join(addr, recover=hivebus.Position(1, "e-00000000"))
                assert r["recovered"] is False and r["messages"] == []
                # Live publishes continue after the recovered ones.
                await pub.publish(addr, {"n": 5})
                live = await again.next_event(timeout=5)
                assert live["payload"]["n"] == 5 and live["offset"] == 5

    run(body())


def test_private_frames_reach_the_named_session(broker: Broker) -> None:
    async def body() -> None:
        async with await hivebus.connect(broker.url, role="client") as a, \
                await hivebus.connect(broker.url, role="client") as b:
            r = await a.private([b.session], {"text": "psst"})
            assert r == {"delivered": 1, "missing": []}
            f = await b.next_event(timeout=5)
            assert f["type"] == "PRIVATE" and f["from"] == a.session
            assert f["payload"]["text"] == "psst"
            assert (await a.ping())["pong"] is True
            assert "queue" in (await a.status())["operators"]

    run(body())


def test_unread_events_are_bounded_and_the_oldest_dropped(broker: Broker) -> None:
    async def body() -> None:
        addr = f"{room()}:flood"
        async with await hivebus.connect(broker.url, role="client") as pub, \
                await hivebus.connect(broker.url, role="client", max_events=2) as lazy:
            await lazy.join(addr)
            await pub.join(addr)
            for n in range(5):
                await pub.publish(addr, {"n": n})
            # Answers still arrive while events pile up unread.
            for _ in range(100):
                await lazy.ping()
                if lazy.events_dropped == 3:
                    break
            assert lazy.events_dropped == 3
            kept = [await lazy.next_event(timeout=1), await lazy.next_event(timeout=1)]
            assert [f["payload"]["n"] for f in kept] == [3, 4]

    run(body())
