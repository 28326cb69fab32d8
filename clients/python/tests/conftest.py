"""Fixtures: a real ``hive broker`` per test session, in a fresh directory.

The binary is ``$HIVE_BIN``, else ``target/debug/hive`` of the repository (build it
with ``cargo build --bin hive``). The broker listens on a free port chosen here and
is stopped (SIGTERM, then SIGKILL) at the end.

Tests are plain functions that run a coroutine with :func:`run`, so no asyncio
plugin for pytest is needed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Iterator, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "clients" / "python"))

T = TypeVar("T")

#: Longest a test's coroutine may run.
TEST_LIMIT = 60.0


def run(coro: Awaitable[T], limit: float = TEST_LIMIT) -> T:
    """Runs ``coro`` on a fresh event loop, failing the test after ``limit`` s."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


def hive_bin() -> Path:
    p = Path(os.environ.get("HIVE_BIN") or REPO / "target" / "debug" / "hive")
    if not p.is_absolute():
        p = REPO / p
    if not p.exists():
        pytest.fail(f"{p} is missing: build it with `cargo build --bin hive`, or set HIVE_BIN")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A running ``hive broker``."""

    port: int
    dir: Path
    proc: "subprocess.Popen[bytes]"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


def start_broker(dir: Path, *extra: str) -> Broker:
    """Starts ``hive --dir DIR broker --no-logs --port P`` and waits until it listens.

    The free port is found by binding and releasing it, so another process may take it
    first: a broker that exits before listening is retried on a new port (3 times)."""
    env = {k: v for k, v in os.environ.items() if k != "HIVE_WS_PORT"}
    log = dir / "broker.log"
    for _ in range(3):
        port = free_port()
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                [str(hive_bin()), "--dir", str(dir), "broker", "--no-logs", "--port", str(port),
                 *extra],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        # Listening: it wrote our port to its port file (a port another process
        # took would answer a connect, but never appear there).
        port_file = dir / ".hive" / "port"
        while proc.poll() is None:
            try:
                if port_file.read_text().split() == [str(port)]:
                    return Broker(port, dir, proc)
            except OSError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("hive broker did not listen within 30 s")
            time.sleep(0.05)
    text = log.read_text(errors="replace")
    pytest.fail(f"hive broker exited with {proc.returncode}:\n{text}")


def stop_broker(b: Broker) -> None:
    if b.proc.poll() is None:
        b.proc.send_signal(signal.SIGTERM)
        try:
            b.proc.wait(10)
        except subprocess.TimeoutExpired:
            b.proc.kill()
            b.proc.wait()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session; tests use their own rooms and kinds."""
    b = start_broker(tmp_path_factory.mktemp("hive"))
    yield b
    stop_broker(b)

