"""Task consumers: decorate an async function per task kind, then :meth:`Consumer.run`.

A :class:`Consumer` connects with role ``consumer``, its kinds as capabilities and a
number of slots, registers with the queue (``op.queue.consume``) and runs each leased
attempt (a private TASK frame) in its own asyncio task, calling the handler of its
kind with a :class:`Task`. The handler's return value becomes the RESULT:

- ``None`` -> ``{"status": "ok", "summary": "done"}``; a string -> its summary;
- a dict -> the RESULT payload (``status`` defaults to ``ok``, ``summary`` to
  ``done``; ``{"status": "fail", ...}`` fails the attempt on purpose);
- an exception -> ``{"status": "fail", "summary": "<Type>: <message>"}``: the queue
  retries, parks or dead-letters the task as its settings say.

The RESULT is sent with an ``id`` and awaited: once a handler's task is done the
broker has made its result durable. A HEARTBEAT every third of the lease length
keeps every lease of the session alive while handlers run (so a long step needs no
progress to keep its lease). When the broker cancels a task, or its lease expires,
:attr:`Task.cancelled` / :attr:`Task.lost` say so and the handler's asyncio task is
cancelled (``asyncio.CancelledError`` at its next ``await``): nothing it sent after
would be accepted (``stale_lease``).

When the connection ends, :meth:`Consumer.run` reconnects with backoff (finding a
restarted broker's new port again when no URL was given); the attempts it held are
lost (``disconnected``) and the queue retries them. :meth:`Consumer.stop` is graceful:
no new leases, running handlers finish (up to a timeout), then the connection closes.

Example::

    consumer = Consumer(kinds=["implement_bip"], slots=2)

    @consumer.task("implement_bip")
    async def handle(task):
        await task.progress(50, "half way")
        decision = await task.approval({"command": "git push"})
        if not decision.approved:
            return {"status": "fail", "summary": "push denied"}
        return {"status": "ok", "summary": "pushed"}

    asyncio.run(consumer.run())
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional, Union

from .client import Client, Frame, connect
from .errors import ConnectionClosed, HivebusError, LeaseLost, Timeout

__all__ = ["Consumer", "Task", "Decision", "Handler"]

log = logging.getLogger("hivebus.consumer")

#: A task handler: an async function of a :class:`Task`.
Handler = Callable[["Task"], Awaitable[Any]]

#: Longest summary sent for a handler's exception.
MAX_SUMMARY = 2000


@dataclass(frozen=True)
class Decision:
    """An approval decision as the queue forwarded it to the lease holder."""

    decision: str
    by: str = ""
    scope: Optional[str] = None
    reason: Optional[str] = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        """Whether the decision is ``approve``."""
        return self.decision == "approve"


class Task:
    """One leased attempt of a task, handed to a handler."""

    def __init__(self, consumer: "Consumer", client: Client, frame: Frame) -> None:
        p: dict[str, Any] = frame.get("payload") or {}
        #: Task id.
        self.id = str(p.get("task", ""))
        #: Lease id of this attempt.
        self.lease = str(p.get("lease", ""))
        #: Attempt number, 1 for the first.
        self.attempt = int(p.get("attempt") or 1)
        #: Task kind.
        self.kind = str(p.get("kind", ""))
        #: The task's arguments.
        self.args: Any = p.get("args")
        #: The BIP the task belongs to.
        self.bip_id: Optional[int] = p.get("bipId")
        #: The task's trace id.
        self.trace_id = str(frame.get("traceId", ""))
        #: The lease length in ms (the task's ``timeout``, else the kind's default).
        self.lease_ms = int(p.get("leaseMs") or p.get("lease_ms") or 30_000)
        #: The whole lease payload (repo, branch, priority, idempotencyKey, leaseMs...).
        self.payload = p
        self._room = frame.get("room")
        self._channel = frame.get("channel")
        self._client = client
        self._consumer = consumer
        self._lost: Optional[str] = None
        self._lost_event = asyncio.Event()
        self._decision: Optional[asyncio.Future[Decision]] = None

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, kind={self.kind!r}, attempt={self.attempt})"

    @property
    def lost(self) -> Optional[str]:
        """``cancelled``, ``expired`` or ``disconnected`` once the lease is gone."""
        return self._lost

    @property
    def cancelled(self) -> bool:
        """Whether the broker cancelled the task (a client asked it to)."""
        return self._lost == "cancelled"

    async def until_lost(self) -> str:
        """Resolves when the lease is lost, with why."""
        await self._lost_event.wait()
        return self._lost or "cancelled"

    def _lose(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
            self._lost_event.set()
            if self._decision is not None and not self._decision.done():
                self._decision.set_exception(LeaseLost(self.id, why))

    def _frame(self, kind: str, payload: Mapping[str, Any]) -> Frame:
        frame: Frame = {
            "type": kind,
            "payload": {**payload, "task": self.id, "lease": self.lease},
        }
        if self._room:
            frame["room"] = self._room
        if self._channel:
            frame["channel"] = self._channel
        if self.trace_id:
            frame["traceId"] = self.trace_id
        return frame

    async def _ask(self, kind: str, payload: Mapping[str, Any]) -> Any:
        if self._lost is not None:
            raise LeaseLost(self.id, self._lost)
        return await self._client.request(self._frame(kind, payload))

    async def progress(
        self, pct: Optional[int] = None, message: str = "", *, stage: str = "progress"
    ) -> None:
        """Streams progress (an EVENT ``{stage, message, pct?}`` on the task's channel);
        it also renews the lease. Raises ``stale_lease`` / :class:`LeaseLost` when
        the lease is gone."""
        payload: dict[str, Any] = {"stage": stage, "message": message}
        if pct is not None:
            payload["pct"] = max(0, min(100, int(pct)))
        await self._ask("EVENT", payload)

    async def approval(
        self,
        action: Union[str, Mapping[str, Any]],
        *,
        reason: str = "",
        suggested_command: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Decision:
        """Asks for an approval and waits for the decision (the task is
        ``waiting_approval`` meanwhile; a person decides with ``op.queue.approve``,
        or a policy at once). ``action`` is what you want to do, e.g.
        ``{"command": "git push"}``. Raises :class:`LeaseLost` when the lease ends
        first, ``timeout`` after ``timeout`` seconds (``None``: no limit)."""
        if suggested_command is None and isinstance(action, Mapping):
            cmd = action.get("command")
            suggested_command = cmd if isinstance(cmd, str) else None
        payload: dict[str, Any] = {"action": action, "reason": reason}
        if suggested_command is not None:
            payload["suggestedCommand"] = suggested_command
        # Waiting before asking: a policy may decide before our request is answered.
        self._decision = asyncio.get_running_loop().create_future()
        try:
            await self._ask("APPROVAL", payload)
            return await asyncio.wait_for(asyncio.shield(self._decision), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no decision on task {self.id} within {timeout}s") from None
        finally:
            self._decision = None

    def _decide(self, payload: Mapping[str, Any]) -> None:
        if self._decision is not None and not self._decision.done():
            self._decision.set_result(
                Decision(
                    decision=str(payload.get("decision", "")),
                    by=str(payload.get("by", "")),
                    scope=payload.get("scope"),
                    reason=payload.get("reason"),
                    payload=dict(payload),
                )
            )


def _result(out: Any) -> dict[str, Any]:
    """A handler's return value as a RESULT payload."""
    if out is None:
        return {"status": "ok", "summary": "done"}
    if isinstance(out, str):
        return {"status": "ok", "summary": out}
    if isinstance(out, Mapping):
        p = dict(out)
        p.setdefault("status", "ok")
        p.setdefault("summary", "done")
        return p
    return {"status": "ok", "summary": str(out)}


class Consumer:
    """Runs handlers for leased tasks; see the module doc."""

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        kinds: Iterable[str] = (),
        slots: int = 1,
        token: Optional[str] = None,
        name: Optional[str] = None,
        dir: Union[str, "os.PathLike[str]"] = ".",
        reconnect: bool = True,
        max_backoff: float = 5.0,
    ) -> None:
        self._url = url
        self._kinds = list(kinds)
        self.slots = max(1, slots)
        self._token = token
        self._name = name
        self._dir = dir
        self._reconnect = reconnect
        self._max_backoff = max_backoff
        self._handlers: dict[str, Handler] = {}
        self._tasks: dict[str, Task] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._client: Optional[Client] = None
        self._stopping = False
        self._ready = asyncio.Event()
        self._beat_wake = asyncio.Event()
        self._runner: Optional[asyncio.Task[None]] = None
        #: What ``op.queue.consume`` answered (kinds, slots, leaseMs).
        self.registration: dict[str, Any] = {}

    @property
    def kinds(self) -> list[str]:
        """The kinds this consumer takes: those given, else those with a handler."""
        return self._kinds or list(self._handlers)

    @property
    def session(self) -> str:
        """The current session id ('' while not connected)."""
        return self._client.session if self._client else ""

    def task(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@consumer.task("verify_bip")`` registers the handler of a kind."""

        def register(fn: Handler) -> Handler:
            self._handlers[kind] = fn
            return fn

        return register

    async def start(self) -> None:
        """Runs :meth:`run` in the background and returns once registered."""
        self._runner = asyncio.get_running_loop().create_task(self.run())
        ready = asyncio.get_running_loop().create_task(self._ready.wait())
        done, _ = await asyncio.wait({self._runner, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._runner in done:
            ready.cancel()
            self._runner.result()  # raises what stopped it

    async def run(self) -> None:
        """Serves until :meth:`stop`. Reconnects with backoff when the connection
        ends (unless ``reconnect=False``: then :class:`ConnectionClosed` is raised)."""
        if not self.kinds:
            raise ValueError("a consumer needs kinds, or at least one @consumer.task handler")
        backoff = 0.1
        while not self._stopping:
            try:
                client = await connect(
                    self._url,
                    role="consumer",
                    token=self._token,
                    name=self._name,
                    capabilities=self.kinds,
                    slots=self.slots,
                    dir=self._dir,
                )
            except HivebusError as e:
                if not self._reconnect or e.code in ("unauthorized", "forbidden", "invalid_field"):
                    raise
                log.warning("%s; reconnecting in %.1fs", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.1
            try:
                await self._serve(client)
            except ConnectionClosed as e:
                self._lose_all("disconnected")
                if self._stopping:
                    return
                if not self._reconnect:
                    raise
                log.warning("%s; reconnecting", e)
            finally:
                self._client = None
                await client.close()

    async def _serve(self, client: Client) -> None:
        self.registration = dict(await client.command("op.queue.consume"))
        self._client = client
        if self._stopping:  # stop() came while we were connecting
            await client.command("op.queue.consume", {"kinds": []})
        lease_ms = self.registration.get("leaseMs") or self.registration.get("lease_ms") or 30_000
        beat = asyncio.get_running_loop().create_task(self._heartbeat(client, float(lease_ms)))
        self._ready.set()
        try:
            while True:
                self._route(client, await client.next_event())
        finally:
            beat.cancel()

    async def _heartbeat(self, client: Client, default_ms: float) -> None:
        """A HEARTBEAT every third of the shortest lease held (a task's ``timeout``
        may be shorter than the kind's lease length the registration gave);
        fire-and-forget: the queue renews every lease of the session."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            shortest = min([default_ms] + [t.lease_ms for t in self._tasks.values()])
            wait = last + max(0.05, shortest / 3000) - loop.time()
            if wait > 0:
                self._beat_wake.clear()
                try:
                    # A new, shorter lease may bring the next beat forward.
                    await asyncio.wait_for(self._beat_wake.wait(), wait)
                    continue
                except asyncio.TimeoutError:
                    pass
            try:
                await client.send({"type": "HEARTBEAT"})
            except ConnectionClosed:
                return
            last = loop.time()

    def _route(self, client: Client, frame: Frame) -> None:
        kind = frame.get("type")
        raw = frame.get("payload")
        p: dict[str, Any] = raw if isinstance(raw, dict) else {}
        task_id = str(p.get("task", ""))
        held = self._tasks.get(task_id)
        if kind == "TASK" and "lease" in p:
            t = Task(self, client, frame)
            self._tasks[t.id] = t
            self._running[t.id] = asyncio.get_running_loop().create_task(self._execute(t))
            self._beat_wake.set()
        elif kind == "SYSTEM" and p.get("event") in ("cancel", "lease_expired"):
            # A notice about an older lease of the same task changes nothing.
            if held is not None and p.get("lease", held.lease) == held.lease:
                held._lose("cancelled" if p["event"] == "cancel" else "expired")
                running = self._running.get(task_id)
                if running is not None:
                    running.cancel()
        elif kind == "APPROVAL" and "decision" in p:
            if held is not None:
                held._decide(p)
        elif kind == "ERROR":
            log.debug("the broker refused a frame: %s", p)

    async def _execute(self, t: Task) -> None:
        handler = self._handlers.get(t.kind)
        try:
            if handler is None:
                payload = {"status": "fail", "summary": f"no handler for kind {t.kind!r}"}
            else:
                try:
                    payload = _result(await handler(t))
                except asyncio.CancelledError:
                    if t.lost is None and not self._stopping:
                        raise
                    return  # the lease is gone: anything sent now would be refused
                except LeaseLost:
                    return
                except Exception as e:  # the handler's failure is the attempt's
                    log.warning("task %s failed: %r", t.id, e)
                    summary = f"{type(e).__name__}: {e}"
                    payload = {"status": "fail", "summary": summary[:MAX_SUMMARY]}
            if t.lost is not None:
                return
            try:
                await t._ask("RESULT", payload)
            except (HivebusError, LeaseLost) as e:
                log.warning("result of task %s refused: %s", t.id, e)
        finally:
            if self._tasks.get(t.id) is t:
                del self._tasks[t.id]
                self._running.pop(t.id, None)

    def _lose_all(self, why: str) -> None:
        for t in list(self._tasks.values()):
            t._lose(why)
        for running in list(self._running.values()):
            running.cancel()

    async def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: no new leases (re-registers with no kinds), running
        handlers finish within ``timeout`` seconds (then they are cancelled and the
        queue retries their attempts), and the connection closes."""
        self._stopping = True
        client = self._client
        if client is not None:
            try:
                await client.command("op.queue.consume", {"kinds": []})
            except HivebusError as e:
                log.debug("drain: %s", e)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Leases the queue sent before it saw the drain still start: wait for those too.
        while self._running and loop.time() < deadline:
            await asyncio.wait(set(self._running.values()), timeout=deadline - loop.time())
        for running in list(self._running.values()):
            running.cancel()
        if client is not None:
            await client.close()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
