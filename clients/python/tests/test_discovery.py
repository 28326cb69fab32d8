"""Port discovery follows the CLI's rule: ``.hive/port`` only when a live broker
holds ``.hive/broker.lock``; a planted or stale port file is never followed (an
error, or ``HIVE_WS_PORT`` with a warning); an explicit URL comes first."""

from __future__ import annotations

from pathlib import Path

import pytest

import hivebus
from conftest import Broker, run


def plant(dir: Path, port: int, lock: str = "") -> None:
    hive = dir / ".hive"
    hive.mkdir(parents=True, exist_ok=True)
    (hive / "port").write_text(f"{port}\n")
    if lock:
        (hive / "broker.lock").write_text(lock)


def test_a_live_brokers_port_file_is_followed(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVE_WS_PORT", raising=False)
    found = hivebus.locate(broker.dir)
    assert found.port == broker.port and found.warnings == ()
    # HIVE_WS_PORT disagreeing with a live broker's file: the file wins, with a warning.
    monkeypatch.setenv("HIVE_WS_PORT", "1")
    found = hivebus.locate(broker.dir)
    assert found.port == broker.port and "disagrees" in found.warnings[0]

    async def body() -> None:
        async with await hivebus.connect(role="client", dir=broker.dir) as c:
            assert (await c.ping())["pong"] is True

    run(body())


def test_a_planted_port_file_without_a_lock_is_refused(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HIVE_WS_PORT", raising=False)
    # It names the real broker's port, and is still refused: nobody vouches for it.
    plant(tmp_path, broker.port)
    with pytest.raises(hivebus.DiscoveryError) as e:
        hivebus.locate(tmp_path)
    assert e.value.code == "stale_port" and "no running broker holds it" in e.value.message

    async def body() -> None:
        with pytest.raises(hivebus.DiscoveryError):
            await hivebus.connect(role="client", dir=tmp_path)
        # An explicit URL comes first.
        async with await hivebus.connect(broker.url, role="client", dir=tmp_path) as c:
            assert c.session

    run(body())
    monkeypatch.setenv("HIVE_WS_PORT", str(broker.port + 1))
    found = hivebus.locate(tmp_path)
    assert found.port == broker.port + 1 and "HIVE_WS_PORT" in found.warnings[0]


def test_a_stale_port_file_names_the_dead_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVE_WS_PORT", raising=False)
    # A lock file nobody holds: the broker that wrote it is gone.
    plant(tmp_path, 50123, lock="pid=424242\nstarted=2026-01-01T00:00:00Z\nport=50123\n")
    with pytest.raises(hivebus.DiscoveryError) as e:
        hivebus.locate(tmp_path)
    assert e.value.code == "stale_port" and "424242" in e.value.message


def test_without_a_port_file_hive_ws_port_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVE_WS_PORT", raising=False)
    with pytest.raises(hivebus.DiscoveryError) as e:
        hivebus.locate(tmp_path)
    assert e.value.code == "no_broker"
    monkeypatch.setenv("HIVE_WS_PORT", "50999")
    assert hivebus.locate(tmp_path).port == 50999
    monkeypatch.setenv("HIVE_WS_PORT", "not-a-port")
    with pytest.raises(hivebus.DiscoveryError) as e:
        hivebus.locate(tmp_path)
    assert e.value.code == "invalid_port"
