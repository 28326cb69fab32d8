"""One session with a hivebus broker: handshake, requests, events, tasks.

:func:`connect` opens the WebSocket, sends HELLO and waits for WELCOME. A reader task
then owns the socket's inbound side: a REPLY or ERROR naming a pending request (its
``payload.re``) completes that request; every other frame (deliveries, PRIVATE,
SYSTEM, leases, an ERROR with ``re: null``) goes to the event queue that
:meth:`Client.next_event` and :meth:`Client.events` read.

Choices, and why:

- The event queue is bounded (``max_events``, 10 000 frames); when it is full the
  *oldest* event is dropped and counted in :attr:`Client.events_dropped`. A client
  that only makes requests and never reads events must not stop reading the socket
  (its answers would wait behind the events), and a lost delivery can be recovered
  from history, as the server's own ``drop`` policy expects.
- Channel positions ``(offset, epoch)`` are tracked per ``room:channel`` from every
  delivery and join; a delivery whose offset is not past the last one seen in the
  same epoch is a repeat (after a re-join with ``recover``) and is dropped
  (docs/PROTOCOL.md, section 7).
- WebSocket pings are answered by the ``websockets`` library, and it pings the
  server too (every 20 s), so an idle session is never closed for idleness.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Mapping, Optional, Union

import websockets
from websockets.asyncio.client import ClientConnection

from .discovery import discover_url
from .errors import ConnectionClosed, HivebusError, Timeout

if TYPE_CHECKING:
    from .tasks import Tail

__all__ = ["Client", "Position", "Frame", "connect"]

log = logging.getLogger("hivebus")

#: A frame as sent on the wire: a JSON object (docs/PROTOCOL.md, section 2).
Frame = dict[str, Any]

#: Frame types that travel on a channel and get an offset.
CHANNEL_TYPES = frozenset({"MESSAGE", "TASK", "EVENT", "APPROVAL", "RESULT", "ERROR"})

#: Default number of unread events kept before the oldest is dropped.
MAX_EVENTS = 10_000

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Position:
    """Where a channel is: the offset of its last publish, in an epoch."""

    offset: int
    epoch: str

    def to_json(self) -> dict[str, Any]:
        """``{"offset": n, "epoch": "e-..."}``, as ``join``'s ``recover`` wants it."""
        return {"offset": self.offset, "epoch": self.epoch}


def _address(address: str) -> tuple[str, Optional[str]]:
    room, sep, channel = address.partition(":")
    return (room, channel) if sep else (address, None)


class Client:
    """A connected session. Make one with :func:`connect`; close it with
    :meth:`close` (or ``async with``)."""

    def __init__(
        self,
        ws: ClientConnection,
        welcome: Frame,
        *,
        timeout: float,
        max_events: int,
    ) -> None:
        self._ws = ws
        self.welcome: dict[str, Any] = welcome.get("payload") or {}
        #: Seconds a request waits for its answer before raising ``timeout``.
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[Optional[Frame]] = asyncio.Queue()
        self._max_events = max(1, max_events)
        #: Events dropped because nobody read them (see the module doc).
        self.events_dropped = 0
        #: Deliveries dropped as repeats of an offset already seen.
        self.duplicates = 0
        #: The last ``(offset, epoch)`` seen per ``room:channel``.
        self.positions: dict[str, Position] = {}
        self._closed: Optional[ConnectionClosed] = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    # ------------------------------------------------------------ properties

    @property
    def session(self) -> str:
        """This session's id (``s-`` + 12 hex digits), for PRIVATE ``to``."""
        return str(self.welcome.get("session", ""))

    @property
    def role(self) -> str:
        """The role the broker accepted."""
        return str(self.welcome.get("role", ""))

    @property
    def limits(self) -> dict[str, Any]:
        """The broker's limits from WELCOME (``max_frame``, ``ping_interval_ms``, ...)."""
        return dict(self.welcome.get("limits") or {})

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed is not None

    # ------------------------------------------------------------ reading

    async def _read(self) -> None:
        try:
            async for text in self._ws:
                if not isinstance(text, str):
                    continue  # the server sends text only; ignore anything else
                try:
                    frame = json.loads(text)
                except ValueError:
                    log.warning("hivebus: the server sent text that is not JSON")
                    continue
                if isinstance(frame, dict):
                    self._route(frame)
        except websockets.ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave requests waiting forever
            log.exception("hivebus: reader failed")
        finally:
            code, reason = self._ws.close_code, self._ws.close_reason
            why = f"connection closed ({code} {reason})" if code else "connection lost"
            self._closed = ConnectionClosed(why.strip(), code)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(self._closed)
            self._pending.clear()
            self._events.put_nowait(None)  # wakes every reader of events

    def _route(self, frame: Frame) -> None:
        kind = frame.get("type")
        payload = frame.get("payload")
        if kind in ("REPLY", "ERROR") and "room" not in frame and isinstance(payload, dict):
            re = payload.get("re")
            fut = self._pending.pop(re, None) if isinstance(re, str) else None
            if fut is not None:
                if not fut.done():
                    if kind == "REPLY":
                        fut.set_result(payload.get("result"))
                    else:
                        fut.set_exception(HivebusError.from_payload(payload))
                return
        if not self._track(frame):
            self.duplicates += 1
            return
        if self._events.qsize() >= self._max_events:
            self._events.get_nowait()
            self.events_dropped += 1
        self._events.put_nowait(frame)

    def _track(self, frame: Frame) -> bool:
        """Records a delivery's position; false when it repeats one already seen."""
        room, channel = frame.get("room"), frame.get("channel")
        offset, epoch = frame.get("offset"), frame.get("epoch")
        if not (isinstance(offset, int) and isinstance(epoch, str) and room and channel):
            return True
        address = f"{room}:{channel}"
        last = self.positions.get(address)
        if last is not None and last.epoch == epoch and offset <= last.offset:
            return False
        self.positions[address] = Position(offset, epoch)
        return True

    async def next_event(self, timeout: Optional[float] = None) -> Frame:
        """The next frame that answers no request.

        Raises :class:`~hivebus.errors.Timeout` after ``timeout`` seconds (``None``:
        wait for ever) and :class:`~hivebus.errors.ConnectionClosed` once the
        connection has ended and every event before the end was read.
        """
        try:
            frame = await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no event within {timeout}s") from None
        if frame is None:
            self._events.put_nowait(None)  # for the next reader too
            assert self._closed is not None
            raise self._closed
        return frame

    async def events(self) -> AsyncIterator[Frame]:
        """Every event until the connection ends."""
        while True:
            try:
                yield await self.next_event()
            except ConnectionClosed:
                return

    # ------------------------------------------------------------ writing

    def _next_id(self) -> str:
        return f"py-{next(self._ids)}"

    async def send(self, frame: Frame) -> None:
        """Sends one frame as is (no answer awaited: without ``id``, a publish or
        HEARTBEAT is fire-and-forget)."""
        if self._closed is not None:
            raise self._closed
        try:
            await self._ws.send(json.dumps(frame, separators=(",", ":")))
        except websockets.ConnectionClosed as e:
            raise ConnectionClosed(f"connection closed ({e})", e.rcvd.code if e.rcvd else None)

    async def request(self, frame: Frame, timeout: Optional[float] = None) -> Any:
        """Sends ``frame`` with an ``id`` (one is chosen when it has none) and returns
        the REPLY's ``result``.

        Raises :class:`HivebusError` with the server's code for an ERROR,
        ``timeout`` when no answer comes in time, ``closed`` when the connection
        ends first.
        """
        fid = frame.setdefault("id", self._next_id())
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[fid] = fut
        try:
            await self.send(frame)
            wait = self.timeout if timeout is None else timeout
            try:
                return await asyncio.wait_for(fut, wait)
            except asyncio.TimeoutError:
                raise Timeout(f"no answer to {frame.get('type')} {fid} within {wait}s") from None
        finally:
            self._pending.pop(fid, None)

    async def command(self, name: str, args: Optional[Mapping[str, Any]] = None) -> Any:
        """Runs a command (``status``, ``join``, ``op.queue.show``, ...) and returns
        its result."""
        return await self.request(
            {"type": "COMMAND", "payload": {"name": name, "args": dict(args or {})}}
        )

    async def close(self) -> None:
        """Closes the connection (code 1000) and waits for the reader to finish."""
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ messaging

    async def ping(self) -> dict[str, Any]:
        """``{"pong": true, "ts": ...}``: a round trip through the session."""
        return dict(await self.command("ping"))

    async def status(self) -> dict[str, Any]:
        """The broker's status: version, stats, rooms, operators."""
        return dict(await self.command("status"))

    async def join(
        self,
        address: str,
        *,
        recover: Union[Position, Mapping[str, Any], None] = None,
    ) -> dict[str, Any]:
        """Subscribes to an address or pattern (``bip-43:general``, ``bip-43``,
        ``bip-*:review_*``).

        With ``recover`` (a :class:`Position` for an exact address, or a map
        ``{"room:channel": Position}`` for a pattern) the answer also holds
        ``recovered``, ``messages`` (the publishes missed since, oldest first) and
        ``recovery``; see docs/PROTOCOL.md, section 9.
        """
        args: dict[str, Any] = {"address": address}
        if isinstance(recover, Position):
            args["recover"] = recover.to_json()
        elif recover is not None:
            args["recover"] = {
                k: v.to_json() if isinstance(v, Position) else v for k, v in recover.items()
            }
        result = dict(await self.command("join", args))
        for ch in result.get("channels") or []:
            # Only for channels not seen yet: a delivery queued before this answer may
            # still arrive after it (answers overtake deliveries).
            addr = ch.get("address")
            if addr and addr not in self.positions and isinstance(ch.get("offset"), int):
                self.positions[addr] = Position(ch["offset"], ch.get("epoch", ""))
        for m in result.get("messages") or []:
            self._track(m)
        return result

    async def leave(self, address: str) -> dict[str, Any]:
        """Removes a subscription exactly as joined."""
        return dict(await self.command("leave", {"address": address}))

    async def publish(
        self,
        address: str,
        payload: Any = None,
        *,
        type: str = "MESSAGE",
        trace_id: Optional[str] = None,
        echo: bool = False,
        ack: bool = True,
    ) -> Optional[Position]:
        """Publishes on ``room:channel`` (the session must have joined a covering
        subscription, else ``not_joined``). With ``ack`` (the default) the frame has
        an ``id`` and the channel position it got is returned; without, it is
        fire-and-forget and ``None`` is returned."""
        room, channel = _address(address)
        frame: Frame = {"type": type, "room": room}
        if channel is not None:
            frame["channel"] = channel
        if payload is not None:
            frame["payload"] = payload
        if trace_id:
            frame["traceId"] = trace_id
        if echo:
            frame["echo"] = True
        if not ack:
            await self.send(frame)
            return None
        r = await self.request(frame)
        return Position(int(r["offset"]), str(r["epoch"]))

    async def history(
        self, address: str, *, since: Optional[int] = None, limit: Optional[int] = None
    ) -> dict[str, Any]:
        """A page of a channel's history: ``{address, offset, epoch, complete, more,
        messages}``; with ``since``, the publishes after that offset."""
        args: dict[str, Any] = {"address": address}
        if since is not None:
            args["since"] = since
        if limit is not None:
            args["limit"] = limit
        return dict(await self.command("history", args))

    async def private(
        self, to: Iterable[str], payload: Optional[Mapping[str, Any]] = None, *, ack: bool = True
    ) -> Optional[dict[str, Any]]:
        """Sends a PRIVATE frame to sessions; returns ``{delivered, missing}`` (with
        ``ack``). Raises ``unknown_session`` when none of them is connected."""
        frame: Frame = {"type": "PRIVATE", "payload": {**dict(payload or {}), "to": list(to)}}
        if not ack:
            await self.send(frame)
            return None
        return dict(await self.request(frame))

    async def heartbeat(self) -> Any:
        """An application-level HEARTBEAT, answered (``{alive: true}``)."""
        return await self.request({"type": "HEARTBEAT"})

    # ------------------------------------------------------------ tasks

    async def submit(
        self,
        kind: str,
        bip: int,
        args: Optional[Mapping[str, Any]] = None,
        *,
        priority: str = "normal",
        idempotency_key: Optional[str] = None,
        trace_id: Optional[str] = None,
        repo: Optional[str] = None,
        branch: Optional[str] = None,
        max_attempts: Optional[int] = None,
        timeout: Union[int, str, None] = None,
        idempotent: Optional[bool] = None,
    ) -> dict[str, Any]:
        """Submits a task of ``kind`` for BIP ``bip`` (``op.queue.submit``); returns
        once it is durable: ``{task, traceId, state, position, address, duplicate}``.

        ``priority`` is ``normal``, ``core`` or ``critical``. Without
        ``idempotency_key`` a fresh one is made, so a retry of *this call* on a new
        connection would create a second task: pass your own key to make retries
        safe. ``timeout`` is the lease length (ms, or ``"30s"``);
        ``idempotent=False`` parks a failed attempt for a human instead of retrying.
        """
        body: dict[str, Any] = {
            "kind": kind,
            "bipId": bip,
            "args": dict(args or {}),
            "priority": priority,
            "idempotencyKey": idempotency_key or f"py-{uuid.uuid4().hex}",
        }
        optional = {
            "traceId": trace_id,
            "repo": repo,
            "branch": branch,
            "maxAttempts": max_attempts,
            "timeout": timeout,
            "idempotent": idempotent,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return dict(await self.command("op.queue.submit", body))

    async def show(self, task: str) -> dict[str, Any]:
        """A task's full record by task id or trace id (``state``, ``a2aState``,
        ``result``, ``history``, ...)."""
        return dict(await self.command("op.queue.show", {"task": task}))

    async def list_tasks(
        self, *, state: Optional[str] = None, kind: Optional[str] = None, limit: Optional[int] = None
    ) -> dict[str, Any]:
        """Tasks in memory the session may read, newest first: ``{tasks, total}``."""
        args = {"state": state, "kind": kind, "limit": limit}
        return dict(
            await self.command("op.queue.list", {k: v for k, v in args.items() if v is not None})
        )

    async def cancel(self, task: str) -> dict[str, Any]:
        """Cancels a task that has not finished; its consumer is told."""
        return dict(await self.command("op.queue.cancel", {"task": task}))

    async def approve(
        self,
        task: str,
        decision: str = "approve",
        *,
        scope: Optional[str] = None,
        reason: Optional[str] = None,
    ) -> dict[str, Any]:
        """Decides the approval a task waits for: ``approve`` or ``deny`` (scope
        ``once``, ``session`` or ``always``). The lease holder's own session may not
        (``forbidden``)."""
        args: dict[str, Any] = {"task": task, "decision": decision}
        if scope:
            args["scope"] = scope
        if reason:
            args["reason"] = reason
        return dict(await self.command("op.queue.approve", args))

    async def stream(
        self, task: str, *, after: int = 0, limit: Optional[int] = None
    ) -> list[dict[str, Any]]:
        """A page of a task's stored stream: ``[{seq, frame}]`` after ``seq``
        ``after``."""
        args: dict[str, Any] = {"task": task, "after": after}
        if limit is not None:
            args["limit"] = limit
        page = await self.command("op.queue.stream", args)
        return list(page.get("frames") or [])

    async def stats(self) -> dict[str, Any]:
        """Queue counts by state, ready depths, consumers."""
        return dict(await self.command("op.queue.stats"))

    def tail(self, task: str, *, poll: float = 2.0) -> "Tail":
        """Follows a task (by trace id or task id): an async iterator over its stream
        frames, replayed then live, ending when the task reaches a final state; the
        :class:`~hivebus.tasks.Tail` then holds ``state`` and ``record``. It reads
        this client's events (and drops those of other traces): use a client of its
        own."""
        from .tasks import Tail

        return Tail(self, task, poll=poll)

    # `list` reads well at call sites (`client.list(state="dead")`); defined last so
    # that the builtin stays visible in the annotations above.
    list = list_tasks


async def connect(
    url: Optional[str] = None,
    *,
    role: str,
    token: Optional[str] = None,
    name: Optional[str] = None,
    capabilities: Iterable[str] = (),
    slots: Optional[int] = None,
    dir: PathLike = ".",
    timeout: float = 30.0,
    max_events: int = MAX_EVENTS,
) -> Client:
    """Connects and handshakes.

    ``url`` (``ws://127.0.0.1:PORT/``) wins; without it the broker of ``dir`` is found
    as the ``hive`` CLI finds it (:mod:`hivebus.discovery`). ``role`` is ``client``,
    ``consumer``, ``observer`` or ``admin``; ``token`` is the credential (a static
    token or a JWT) when the broker requires one.

    Raises :class:`HivebusError` with the server's code when the HELLO is refused
    (``unauthorized``, ``invalid_field``, ``forbidden``), ``connect_failed`` when
    nothing answers, and :class:`~hivebus.errors.DiscoveryError` when no broker
    can be found.

    Example::

        async with await hivebus.connect(role="client") as c:
            await c.join("bip-43:general")
            await c.publish("bip-43:general", {"text": "hello"})
    """
    url, warnings = discover_url(url, dir)
    for w in warnings:
        log.warning("hivebus: %s", w)
    try:
        ws = await websockets.connect(
            url, open_timeout=timeout, max_size=None, compression=None
        )
    except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as e:
        raise HivebusError(
            "connect_failed", f"cannot connect to {url}: {e} (is the broker running? `hive broker`)"
        ) from None
    hello: dict[str, Any] = {"role": role, "capabilities": list(capabilities)}
    if token:
        hello["auth"] = token
    if name:
        hello["name"] = name
    if slots is not None:
        hello["slots"] = slots
    try:
        await ws.send(json.dumps({"id": "hello", "type": "HELLO", "payload": hello}))
        while True:
            text = await asyncio.wait_for(ws.recv(), timeout)
            frame = json.loads(text) if isinstance(text, str) else None
            if not isinstance(frame, dict):
                continue
            if frame.get("type") == "WELCOME":
                return Client(ws, frame, timeout=timeout, max_events=max_events)
            if frame.get("type") == "ERROR":
                await ws.close()
                raise HivebusError.from_payload(frame.get("payload") or {})
    except websockets.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
        raise ConnectionClosed(f"the broker closed the handshake ({code})", code) from None
    except asyncio.TimeoutError:
        await ws.close()
        raise Timeout(f"no WELCOME from {url} within {timeout}s") from None
