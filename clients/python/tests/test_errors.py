"""Refusals surface as HivebusError with the server's stable code (and details),
and the session survives them."""

from __future__ import annotations

import uuid

import pytest

import hivebus
from conftest import Broker, free_port, run


def addr() -> str:
    return f"py-{uuid.uuid4().hex[:10]}:errors"


def test_publishing_without_joining_is_not_joined(broker: Broker) -> None:
    async def body() -> None:
        async with await hivebus.connect(broker.url, role="client") as c:
            with pytest.raises(hivebus.HivebusError) as e:
                await c.publish(addr(), {"text": "nobody listens"})
            assert e.value.code == "not_joined"
            assert (await c.ping())["pong"] is True  # the session survives

    run(body())


def test_a_role_without_the_right_is_forbidden(broker: Broker) -> None:
    async def body() -> None:
        a = addr()
        async with await hivebus.connect(broker.url, role="observer") as watch, \
                await hivebus.connect(broker.url, role="client") as c:
            await watch.join(a)
            with pytest.raises(hivebus.HivebusError) as e:
                await watch.publish(a, {"text": "observers only read"})
            assert e.value.code == "forbidden"
            assert e.value.details.get("role") == "observer"
            with pytest.raises(hivebus.HivebusError) as e:
                await c.command("create_channel", {"address": a})
            assert e.value.code == "forbidden"
            with pytest.raises(hivebus.HivebusError) as e:
                await watch.submit("verify_bip", 43)
            assert e.value.code == "forbidden"

    run(body())


def test_bad_arguments_are_invalid_field_naming_the_field(broker: Broker) -> None:
    async def body() -> None:
        async with await hivebus.connect(broker.url, role="client") as c:
            with pytest.raises(hivebus.HivebusError) as e:
                await c.command("join", {"address": addr(), "bogus": 1})
            assert e.value.code == "invalid_field"
            with pytest.raises(hivebus.HivebusError) as e:
                await c.submit("verify_bip", 43, priority="urgent")
            assert e.value.code == "invalid_field"
            assert e.value.details.get("field") == "priority"
            with pytest.raises(hivebus.HivebusError) as e:
                await c.join("Not:Valid")
            assert e.value.code == "invalid_address"
            with pytest.raises(hivebus.HivebusError) as e:
                await c.show("t-does-not-exist")
            assert e.value.code == "not_found"
            with pytest.raises(hivebus.HivebusError) as e:
                await c.command("no_such_command")
            assert e.value.code == "unknown_command"

    run(body())


def test_a_refused_hello_and_an_empty_port_raise_clear_errors(broker: Broker) -> None:
    async def body() -> None:
        with pytest.raises(hivebus.HivebusError) as e:
            await hivebus.connect(broker.url, role="wizard")
        assert e.value.code == "invalid_field"
        with pytest.raises(hivebus.HivebusError) as e:
            await hivebus.connect(f"ws://127.0.0.1:{free_port()}/", role="client", timeout=5)
        assert e.value.code == "connect_failed"

    run(body())
