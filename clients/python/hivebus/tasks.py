"""Following a task to its end: :class:`Tail`, what ``hive tail`` does (src/cli/tail.rs).

The verdict is the task's *state*, never the first RESULT in its stream: a dead task
that was requeued, or a parked one retried, has an old ``RESULT fail`` and then a new
run. So every frame is yielded, and on a RESULT (or when nothing arrived for ``poll``
seconds) the record is read with ``op.queue.show``: a final state ends the tail, any
other keeps it following. The state is read *before* the stored stream, so the RESULT
of a final state (published before the state was visible) is always in that read.

Gap-free: the task's channel is joined *before* the stored stream is read
(``op.queue.stream``), so a frame is either in the stored page or arrives live;
frames seen both ways are recognised by ``(epoch, offset)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from .errors import Timeout

if TYPE_CHECKING:
    from .client import Client, Frame

__all__ = ["Tail", "FINAL_STATES"]

#: States after which no consumer touches a task unless a human acts.
FINAL_STATES = frozenset({"succeeded", "failed", "dead", "cancelled"})


class Tail:
    """An async iterator over a task's stream frames (envelopes as published),
    ending when the task is final. Then :attr:`state` is that state and
    :attr:`record` the task's record (``op.queue.show``).

    Example::

        tail = client.tail(reply["traceId"])
        async for frame in tail:
            print(frame["type"], frame.get("payload"))
        assert tail.succeeded, tail.record["result"]
    """

    def __init__(self, client: "Client", key: str, *, poll: float = 2.0) -> None:
        self._client = client
        self._key = key
        self._poll = max(0.05, poll)
        self._seen: set[tuple[str, int]] = set()
        self._last_seq = 0
        self._last_was_result = False
        self._task = key
        self._trace = key
        #: The final state, once the iteration ended.
        self.state: Optional[str] = None
        #: The task's record as the last ``op.queue.show`` read it.
        self.record: dict[str, Any] = {}

    @property
    def succeeded(self) -> bool:
        """Whether the task ended ``succeeded``."""
        return self.state == "succeeded"

    @property
    def result(self) -> Any:
        """The task's result (``{status, state, summary, ...}``) once final."""
        return self.record.get("result")

    def __aiter__(self) -> AsyncIterator["Frame"]:
        return self._run()

    def _new(self, frame: "Frame") -> bool:
        """Whether ``frame`` was not yielded yet (marks it yielded)."""
        epoch, offset = frame.get("epoch"), frame.get("offset")
        if isinstance(epoch, str) and isinstance(offset, int):
            if (epoch, offset) in self._seen:
                return False
            self._seen.add((epoch, offset))
        return True

    async def _settle(self) -> tuple[list["Frame"], Optional[str]]:
        """Reads the state, then the stored frames not yielded yet; the frames to
        yield and the state when it is final."""
        c = self._client
        self.record = await c.show(self._task)
        state = self.record.get("state")
        out: list["Frame"] = []
        while True:
            page = await c.stream(self._task, after=self._last_seq)
            if not page:
                break
            for row in page:
                self._last_seq = int(row.get("seq") or self._last_seq)
                frame = row.get("frame")
                if isinstance(frame, dict) and self._new(frame):
                    out.append(frame)
                    self._last_was_result = frame.get("type") == "RESULT"
        if state not in FINAL_STATES:
            return out, None
        if not self._last_was_result:
            # The stream's last frame can be missing after a broker crash: the record
            # holds the result.
            payload = dict(self.record.get("result") or {})
            payload["state"] = state
            out.append({"type": "RESULT", "traceId": self._trace, "payload": payload})
            self._last_was_result = True
        return out, state

    async def _run(self) -> AsyncIterator["Frame"]:
        c = self._client
        shown = await c.show(self._key)
        self._task = str(shown.get("task") or self._key)
        self._trace = str(shown.get("traceId") or self._key)
        await c.join(str(shown["address"]))
        frames, state = await self._settle()
        for f in frames:
            yield f
        while state is None:
            ended = False
            try:
                frame = await c.next_event(timeout=self._poll)
            except Timeout:
                ended = True  # quiet: the record and the stored stream decide
            else:
                if frame.get("traceId") == self._trace:
                    is_result = frame.get("type") == "RESULT"
                    if self._new(frame):
                        self._last_was_result = is_result
                        yield frame
                    ended = is_result
            if ended:
                frames, state = await self._settle()
                for f in frames:
                    yield f
        self.state = state
