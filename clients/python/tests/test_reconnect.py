"""A broker that goes away: pending requests fail with ``closed`` and the close code;
a consumer that found its broker through ``--dir`` reconnects to the restarted one
(on another port) and serves again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import hivebus
from conftest import run, start_broker, stop_broker


def test_a_consumer_follows_a_restarted_broker_to_its_new_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HIVE_WS_PORT", raising=False)
    first = start_broker(tmp_path)

    async def body() -> None:
        consumer = hivebus.Consumer(kinds=["verify_bip"], dir=tmp_path, max_backoff=0.3)

        @consumer.task("verify_bip")
        async def handle(task: hivebus.Task) -> str:
            return f"served by {consumer.session}"

        await consumer.start()
        before = consumer.session
        watcher = await hivebus.connect(role="client", dir=tmp_path)
        stop_broker(first)  # 1001, going away
        with pytest.raises(hivebus.ConnectionClosed) as e:
            await watcher.ping()
        assert e.value.code == "closed" and e.value.close_code == 1001
        second = start_broker(tmp_path)
        try:
            async with await hivebus.connect(role="client", dir=tmp_path) as c:
                r = await c.submit("verify_bip", 43)
                tail = c.tail(r["task"], poll=0.2)
                _ = [f async for f in tail]
                assert tail.succeeded, tail.record
                assert tail.result["summary"] == f"served by {consumer.session}"
                assert consumer.session != before
            await consumer.stop()
        finally:
            stop_broker(second)

    run(body())
