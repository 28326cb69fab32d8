"""Tasks through the SDK against a real broker: a Python consumer completes a task
with progress and an approval decided from another session; a failing handler
fails the attempt; a cancel reaches the handler; a graceful stop finishes running
work and takes no new work; ``tail`` follows a task to its verdict."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import hivebus
from conftest import Broker, run


def kind() -> str:
    return f"py_{uuid.uuid4().hex[:10]}"


def bip() -> int:
    return random.randint(1000, 10**9)


async def wait_state(c: hivebus.Client, task: str, *states: str) -> dict[str, Any]:
    for _ in range(500):
        rec = await c.show(task)
        if rec["state"] in states:
            return rec
        await asyncio.sleep(0.02)
    raise AssertionError(f"{task} never reached {states}: {rec}")


def test_a_python_consumer_completes_a_task_with_progress_and_an_approval(broker: Broker) -> None:
    async def body() -> None:
        k, b = kind(), bip()
        consumer = hivebus.Consumer(broker.url, kinds=[k], slots=2, name="py-consumer")
        decisions: list[hivebus.Decision] = []

        @consumer.task(k)
        async def handle(task: hivebus.Task) -> dict[str, Any]:
            await task.progress(50, "half way", stage="build")
            decisions.append(await task.approval({"command": "git push"}, reason="publish"))
            return {"status": "ok", "summary": f"done {task.args['n']}", "artifacts": {"n": 7}}

        await consumer.start()
        async with await hivebus.connect(broker.url, role="client") as c, \
                await hivebus.connect(broker.url, role="client") as approver:
            r = await c.submit(k, b, {"n": 7}, priority="core", idempotency_key=f"key-{k}")
            assert r["state"] == "queued" and r["duplicate"] is False
            rec = await wait_state(approver, r["task"], "waiting_approval")
            assert rec["a2aState"] == "TASK_STATE_INPUT_REQUIRED"
            assert approver.session != consumer.session
            decided = await approver.approve(r["task"], "approve", scope="once", reason="ok")
            assert decided["decision"] == "approve"
            tail = c.tail(r["traceId"], poll=0.2)
            frames = [f async for f in tail]
            assert tail.succeeded, tail.record
            assert tail.result["summary"] == "done 7" and tail.result["artifacts"] == {"n": 7}
            kinds = [f["type"] for f in frames]
            assert kinds[0] == "TASK" and kinds[-1] == "RESULT", kinds
            events = [f["payload"] for f in frames if f["type"] == "EVENT"]
            assert {"stage": "build", "message": "half way", "pct": 50}.items() <= events[-1].items()
            approvals = [f["payload"] for f in frames if f["type"] == "APPROVAL"]
            assert approvals[0]["suggestedCommand"] == "git push"
            assert approvals[-1]["decision"] == "approve"
            assert decisions and decisions[0].approved and decisions[0].scope == "once"
            done = await c.show(r["task"])
            assert done["state"] == "succeeded" and done["a2aState"] == "TASK_STATE_COMPLETED"
            again = await c.submit(k, b, {"n": 7}, priority="core", idempotency_key=f"key-{k}")
            assert again["duplicate"] is True and again["task"] == r["task"]
            assert any(t["task"] == r["task"] for t in (await c.list(kind=k))["tasks"])
        await consumer.stop()

    run(body())


def test_a_handler_exception_fails_the_attempt_with_its_message(broker: Broker) -> None:
    async def body() -> None:
        k = kind()
        consumer = hivebus.Consumer(broker.url, kinds=[k])

        @consumer.task(k)
        async def handle(task: hivebus.Task) -> None:
            raise RuntimeError("the build broke")

        await consumer.start()
        async with await hivebus.connect(broker.url, role="client") as c:
            r = await c.submit(k, bip(), max_attempts=1)
            tail = c.tail(r["task"], poll=0.2)
            frames = [f async for f in tail]
            assert tail.state == "dead", tail.record
            assert "RuntimeError: the build broke" in tail.record["lastError"]
            assert tail.record["a2aState"] == "TASK_STATE_FAILED"
            assert frames[-1]["type"] == "RESULT"
        await consumer.stop()

    run(body())


def test_a_cancel_reaches_the_running_handler(broker: Broker) -> None:
    async def body() -> None:
        k = kind()
        consumer = hivebus.Consumer(broker.url, kinds=[k])
        seen: list[bool] = []
        started = asyncio.Event()

        @consumer.task(k)
        async def handle(task: hivebus.Task) -> str:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append(task.cancelled)
                raise
            return "not reached"

        await consumer.start()
        async with await hivebus.connect(broker.url, role="client") as c:
            r = await c.submit(k, bip())
            await asyncio.wait_for(started.wait(), 10)
            cancelled = await c.cancel(r["task"])
            assert cancelled["state"] == "cancelled"
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.02)
            assert seen == [True]
            rec = await c.show(r["task"])
            assert rec["state"] == "cancelled" and rec["a2aState"] == "TASK_STATE_CANCELED"
        await consumer.stop()

    run(body())


def test_stop_lets_running_work_finish_and_takes_no_new_work(broker: Broker) -> None:
    async def body() -> None:
        k = kind()
        consumer = hivebus.Consumer(broker.url, kinds=[k])
        started = asyncio.Event()

        @consumer.task(k)
        async def handle(task: hivebus.Task) -> str:
            started.set()
            await asyncio.sleep(0.5)
            await task.progress(100, "finishing")
            return "finished while stopping"

        await consumer.start()
        async with await hivebus.connect(broker.url, role="client") as c:
            first = await c.submit(k, bip())
            await asyncio.wait_for(started.wait(), 10)
            await consumer.stop(timeout=10)
            rec = await c.show(first["task"])
            assert rec["state"] == "succeeded", rec
            assert rec["result"]["summary"] == "finished while stopping"
            later = await c.submit(k, bip())
            await asyncio.sleep(0.3)
            assert (await c.show(later["task"]))["state"] == "queued"
            await c.cancel(later["task"])

    run(body())


def test_heartbeats_keep_a_short_lease_while_a_quiet_handler_runs(broker: Broker) -> None:
    async def body() -> None:
        k = kind()
        consumer = hivebus.Consumer(broker.url, kinds=[k])
        leases: list[int] = []

        @consumer.task(k)
        async def handle(task: hivebus.Task) -> str:
            leases.append(task.lease_ms)
            await asyncio.sleep(1.5)  # five lease lengths without a word
            return f"quiet attempt {task.attempt}"

        await consumer.start()
        async with await hivebus.connect(broker.url, role="client") as c:
            r = await c.submit(k, bip(), timeout=300)
            rec = await wait_state(c, r["task"], "succeeded", "dead", "failed")
            assert rec["state"] == "succeeded" and rec["attempt"] == 1, rec
            assert rec["result"]["summary"] == "quiet attempt 1"
            assert leases == [300]
        await consumer.stop()

    run(body())


def test_tail_follows_a_requeued_dead_task_to_its_new_verdict(broker: Broker) -> None:
    async def body() -> None:
        k = kind()
        consumer = hivebus.Consumer(broker.url, kinds=[k])
        runs: list[int] = []

        @consumer.task(k)
        async def handle(task: hivebus.Task) -> str:
            runs.append(task.attempt)
            if len(runs) == 1:
                raise ValueError("first run fails")
            await asyncio.sleep(0.5)  # the tail starts while this run is live
            return "second run works"

        await consumer.start()
        async with await hivebus.connect(broker.url, role="client") as c:
            r = await c.submit(k, bip(), max_attempts=1)
            await wait_state(c, r["task"], "dead")
            await c.command("op.queue.dlq.requeue", {"task": r["task"]})
            tail = c.tail(r["traceId"], poll=0.2)
            results = []
            async for f in tail:
                if f["type"] == "RESULT":
                    results.append(f["payload"])
                    # Still following after the old RESULT: the task is not final yet.
                    assert tail.state is None
            # The old RESULT of the dead run does not end the tail; the state does.
            assert [p["state"] for p in results] == ["dead", "succeeded"], results
            assert tail.state == "succeeded" and tail.result["summary"] == "second run works"
            assert runs == [1, 1]
        await consumer.stop()

    run(body())
