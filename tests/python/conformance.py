#!/usr/bin/env python3
"""hivebus protocol v1 conformance client.

Written from docs/PROTOCOL.md alone (it imports nothing from the Rust side). It talks
to a running broker over WebSocket, exercises the handshake, publishing, every built-in
command, bad inputs and recovery, and validates every frame it receives (and the good
frames it sends) against the JSON Schemas in docs/schema/ when `jsonschema` is
importable.

    pip install websockets jsonschema
    python3 tests/python/conformance.py ws://127.0.0.1:PORT/ [--strict-schema]

--strict-schema: fail when `jsonschema` is missing instead of skipping validation.
Prints one line per check, then `conformance: N passed, M failed`; exits 1 on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import secrets
import sys
import time
from typing import Any, Callable

try:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
except ImportError:  # pragma: no cover - environment problem, reported plainly
    print("conformance: the `websockets` package is required: pip install websockets")
    sys.exit(2)

SCHEMA_DIR = pathlib.Path(__file__).resolve().parents[2] / "docs" / "schema"
WAIT = 5.0  # seconds to wait for a frame that must come
QUIET = 0.3  # seconds of silence that prove a frame does not come

# Result schema (docs/schema/reply/<name>.json) per built-in command name.
RESULT_SCHEMA = {
    "status": "status", "ping": "ping", "join": "join", "join_channel": "join",
    "leave": "leave", "leave_channel": "leave", "list_channels": "list_channels",
    "channel_info": "channel_info", "history": "history",
    "create_channel": "create_channel", "delete_channel": "delete_channel",
}


class CheckFailed(Exception):
    pass


def expect(cond: bool, why: str) -> None:
    if not cond:
        raise CheckFailed(why)


# ---------------------------------------------------------------- schemas

class Schemas:
    """Validates frames against docs/schema when jsonschema is importable."""

    def __init__(self, strict: bool) -> None:
        self.enabled = False
        self.errors: list[str] = []
        self.validated = 0
        try:
            import jsonschema
            from referencing import Registry, Resource
        except ImportError:
            if strict:
                print("conformance: --strict-schema needs the `jsonschema` package: "
                      "pip install jsonschema")
                sys.exit(2)
            print("note: jsonschema not importable; frames are not schema-validated")
            return
        docs = {}
        for p in sorted(SCHEMA_DIR.rglob("*.json")):
            doc = json.loads(p.read_text())
            jsonschema.Draft202012Validator.check_schema(doc)
            docs[p.relative_to(SCHEMA_DIR).as_posix()] = doc
        registry = Registry().with_resources(
            (d["$id"], Resource.from_contents(d)) for d in docs.values())
        self.validators = {
            name: jsonschema.Draft202012Validator(doc, registry=registry)
            for name, doc in docs.items()
        }
        self.enabled = True

    def check(self, schema: str, value: Any, what: str) -> None:
        if not self.enabled:
            return
        v = self.validators.get(schema)
        if v is None:
            self.errors.append(f"{what}: no schema {schema}")
            return
        self.validated += 1
        for err in v.iter_errors(value):
            path = "/".join(str(x) for x in err.absolute_path)
            self.errors.append(f"{what} vs {schema} at /{path}: {err.message[:200]}")

    def frame(self, frame: Any, what: str) -> None:
        self.check("envelope.json", frame, what)
        kind = frame.get("type") if isinstance(frame, dict) else None
        if isinstance(kind, str):
            self.check(kind.lower() + ".json", frame, what)


# ---------------------------------------------------------------- connection

class Conn:
    """One session: HELLO/WELCOME, then requests matched to answers by `re`."""

    def __init__(self, url: str, schemas: Schemas, label: str) -> None:
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(url, open_timeout=WAIT, max_size=None))
        self.schemas = schemas
        self.label = label
        self.events: list[dict] = []  # frames that answer nothing
        self.answers: dict[str, dict] = {}  # re -> REPLY/ERROR not yet claimed
        self.pending_result: dict[str, str] = {}  # id -> reply/<schema>
        self.n = 0
        self.session = ""
        self.welcome: dict = {}

    def fresh_id(self) -> str:
        self.n += 1
        return f"{self.label}-{self.n}"

    # -- raw I/O
    def send(self, frame: dict, validate: bool = True) -> None:
        if validate:
            self.schemas.frame(frame, f"{self.label} sent {frame.get('type')}")
        self.ws.send(json.dumps(frame))

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def recv(self, timeout: float = WAIT) -> dict:
        text = self.ws.recv(timeout=timeout)
        expect(isinstance(text, str), "server sent a binary frame")
        frame = json.loads(text)
        self.schemas.frame(frame, f"{self.label} got {frame.get('type')}")
        if frame.get("type") == "REPLY":
            p = frame["payload"]
            name = self.pending_result.pop(p.get("re"), None)
            if name:
                self.schemas.check(f"reply/{name}.json", p["result"],
                                   f"{self.label} result of {name}")
        return frame

    def _pump(self, timeout: float) -> None:
        f = self.recv(timeout)
        re = f.get("payload", {}).get("re") if isinstance(f.get("payload"), dict) else None
        if f["type"] in ("REPLY", "ERROR") and "room" not in f and re is not None:
            self.answers[re] = f
        else:
            self.events.append(f)

    def answer(self, fid: str, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while fid not in self.answers:
            left = deadline - time.monotonic()
            expect(left > 0, f"no answer to {fid} within {timeout}s")
            try:
                self._pump(left)
            except TimeoutError:
                raise CheckFailed(f"no answer to {fid} within {timeout}s") from None
        return self.answers.pop(fid)

    def event(self, pred: Callable[[dict], bool], timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, f in enumerate(self.events):
                if pred(f):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed("expected frame did not arrive")
            try:
                self._pump(left)
            except TimeoutError:
                raise CheckFailed("expected frame did not arrive") from None

    def no_event(self, pred: Callable[[dict], bool], wait: float = QUIET) -> None:
        deadline = time.monotonic() + wait
        while True:
            for f in self.events:
                expect(not pred(f), f"unexpected frame {json.dumps(f)[:200]}")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._pump(left)
            except TimeoutError:
                pass

    # -- protocol
    def hello(self, role: str = "client", **extra: Any) -> dict:
        payload = {"role": role, "capabilities": [], **extra}
        self.send({"id": "hello", "type": "HELLO", "payload": payload})
        w = self.recv()
        expect(w["type"] == "WELCOME", f"expected WELCOME, got {w}")
        self.welcome = w["payload"]
        self.session = self.welcome["session"]
        return self.welcome

    def request(self, frame: dict, result_schema: str | None = None,
                validate: bool = True) -> dict:
        fid = frame.setdefault("id", self.fresh_id())
        if result_schema:
            self.pending_result[fid] = result_schema
        self.send(frame, validate)
        return self.answer(fid)

    def command(self, name: str, args: Any = None, fid: str | None = None,
                valid: bool = True) -> dict:
        """Runs a command; `valid=False` for args meant to be refused."""
        payload: dict = {"name": name}
        if args is not None:
            payload["args"] = args
        frame = {"type": "COMMAND", "payload": payload}
        if fid:
            frame["id"] = fid
        return self.request(frame, RESULT_SCHEMA.get(name), validate=valid)

    def ok(self, name: str, args: Any = None) -> Any:
        a = self.command(name, args)
        expect(a["type"] == "REPLY" and a["payload"]["ok"] is True,
               f"{name} {args} answered {json.dumps(a)[:300]}")
        return a["payload"]["result"]

    def publish(self, address: str, payload: Any, fid: str | None = "auto",
                echo: bool | None = None, kind: str = "MESSAGE") -> dict | None:
        room, channel = address.split(":")
        frame: dict = {"type": kind, "room": room, "channel": channel, "payload": payload}
        if echo is not None:
            frame["echo"] = echo
        if fid is None:
            self.send(frame)
            return None
        if fid != "auto":
            frame["id"] = fid
        return self.request(frame, "publish")

    def close(self) -> None:
        try:
            self.stack.close()
        except Exception:
            pass


def error_code(frame: dict) -> str | None:
    return frame["payload"].get("code") if frame.get("type") == "ERROR" else None


def expect_error(frame: dict, code: str, re: Any = "any") -> None:
    expect(frame.get("type") == "ERROR", f"expected ERROR {code}, got {json.dumps(frame)[:300]}")
    expect(frame["payload"]["code"] == code,
           f"expected code {code}, got {frame['payload']['code']}")
    if re != "any":
        expect(frame["payload"]["re"] == re, f"expected re {re!r}, got {frame['payload']['re']!r}")


# ---------------------------------------------------------------- the run

class Run:
    def __init__(self, url: str, schemas: Schemas) -> None:
        self.url = url
        self.schemas = schemas
        self.passed = 0
        self.failed = 0
        self.conns: list[Conn] = []
        tag = secrets.token_hex(4)
        self.room = f"conf-{tag}"
        self.addr = f"{self.room}:general"

    def conn(self, label: str, role: str = "client") -> Conn:
        c = Conn(self.url, self.schemas, label)
        self.conns.append(c)
        c.hello(role)
        return c

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {name}: {e}")
            return None
        except (ConnectionClosed, OSError, TimeoutError, KeyError, TypeError, ValueError) as e:
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            return None
        self.passed += 1
        print(f"ok   {name}")
        return out

    def run(self) -> None:
        c = self.check
        st: dict[str, Any] = {}

        # -- handshake
        def handshake() -> None:
            a = self.conn("a")
            w = a.welcome
            expect(w["protocol"] == 1, "protocol is not 1")
            expect(w["session"].startswith("s-"), "session id shape")
            expect(w["re"] == "hello", "WELCOME re names the HELLO id")
            for k in ("max_frame", "max_subscriptions", "outbound_queue", "slow_consumer",
                      "history_size", "history_ttl_secs", "max_history_page",
                      "ping_interval_ms", "idle_timeout_ms", "dedup_window"):
                expect(k in w["limits"], f"limits.{k} missing")
            st["a"] = a
            st["b"] = self.conn("b")
        c("handshake: HELLO -> WELCOME with session, protocol 1 and limits", handshake)
        if "b" not in st:
            return
        a: Conn = st["a"]
        b: Conn = st["b"]

        def not_hello_first() -> None:
            x = Conn(self.url, self.schemas, "x")
            self.conns.append(x)
            x.send({"id": "x1", "type": "COMMAND", "payload": {"name": "ping"}})
            expect_error(x.recv(), "unexpected_type", "x1")
            try:
                x.recv()
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                expect(code == 4002, f"closed with {code}, expected 4002")
                return
            raise CheckFailed("session stayed open")
        c("handshake: a first frame other than HELLO -> ERROR unexpected_type, close 4002",
          not_hello_first)

        # -- status, ping
        def status() -> None:
            r = a.ok("status")
            expect(r["session"] == a.session and r["protocol"] == 1, "status identity")
            expect(r["stats"]["connections"] >= 2, "stats.connections counts us")
        c("command status", status)
        c("command ping", lambda: expect(a.ok("ping", {})["pong"] is True, "pong"))

        # -- join, publish, receive
        def join() -> None:
            r = b.ok("join", {"address": self.addr})
            expect(r["subscription"] == self.addr, "subscription echoed")
            expect([ch["address"] for ch in r["channels"]] == [self.addr], "channels")
            expect(r["channels"][0]["offset"] == 0, "new channel at offset 0")
            expect("recovered" not in r, "no recovery fields without recover")
            st["epoch"] = r["channels"][0]["epoch"]
        c("command join: exact address, new channel at offset 0", join)

        def not_joined() -> None:
            expect_error(a.publish(self.addr, {"n": 0}), "not_joined")
        c("publish before join -> not_joined", not_joined)

        def publish() -> None:
            a.ok("join", {"address": self.addr})
            r = a.publish(self.addr, {"n": 1}, fid="pub-1")
            expect(r["type"] == "REPLY", f"publish answered {r}")
            res = r["payload"]["result"]
            expect(res == {"address": self.addr, "offset": 1, "epoch": st["epoch"]},
                   f"ack {res}")
            m = b.event(lambda f: f["type"] == "MESSAGE")
            expect(m["payload"] == {"n": 1} and m["offset"] == 1, f"delivered {m}")
            expect(m["from"] == a.session and m["room"] == self.room
                   and m["channel"] == "general" and m["epoch"] == st["epoch"], "stamps")
            expect(m.get("id") == "pub-1", "publisher id kept")
            a.no_event(lambda f: f["type"] == "MESSAGE")
        c("publish: REPLY {address, offset, epoch}; subscriber gets it stamped; "
          "sender excluded", publish)

        def spoofed_fields() -> None:
            a.send({"id": "pub-2", "type": "MESSAGE", "room": self.addr, "from": "s-000000000000",
                    "offset": 999, "epoch": "e-00000000", "ts": "x", "payload": {"n": 2}},
                   validate=False)
            r = a.answer("pub-2")
            expect(r["payload"]["result"]["offset"] == 2, f"ack {r}")
            m = b.event(lambda f: f["type"] == "MESSAGE")
            expect(m["from"] == a.session and m["offset"] == 2 and m["epoch"] == st["epoch"],
                   f"server stamps win: {m}")
        c("publish: room:channel in `room`; client from/offset/epoch/ts ignored",
          spoofed_fields)

        def no_id() -> None:
            a.publish(self.addr, {"n": 3}, fid=None)
            m = b.event(lambda f: f["type"] == "MESSAGE")
            expect(m["offset"] == 3 and "id" not in m, f"delivered {m}")
            a.no_event(lambda f: f["type"] == "REPLY")
        c("publish without id: delivered, no REPLY", no_id)

        def echo() -> None:
            r = a.publish(self.addr, {"n": 4}, echo=True)
            expect(r["type"] == "REPLY", f"{r}")
            mine = a.event(lambda f: f["type"] == "MESSAGE")
            expect(mine["offset"] == 4 and "echo" not in mine, f"echo {mine}")
            m = b.event(lambda f: f["type"] == "MESSAGE")
            expect(m["offset"] == 4, "subscriber too")
            st["last"] = (4, st["epoch"])
        c("publish with echo: true reaches the sender", echo)

        def room_only() -> None:
            cc = self.conn("c")
            st["c"] = cc
            r = cc.ok("join", {"address": self.room})
            expect(r["subscription"] == f"{self.room}:*", f"subscription {r['subscription']}")
            expect(self.addr in [ch["address"] for ch in r["channels"]], "covers existing")
            other = f"{self.room}:other"
            r = cc.publish(other, {"x": 1})
            expect(r["type"] == "REPLY" and r["payload"]["result"]["offset"] == 1,
                   f"publish through the room subscription creates the channel: {r}")
            a.publish(self.addr, {"n": 5})
            m = cc.event(lambda f: f["type"] == "MESSAGE")
            expect(m["room"] == self.room and m["offset"] == 5, f"{m}")
            b.event(lambda f: f["type"] == "MESSAGE" and f["offset"] == 5)
            st["last"] = (5, st["epoch"])
        c("room-only subscription = room:* (covers existing and new channels)", room_only)

        def room_address_publish() -> None:
            r = a.request({"type": "MESSAGE", "room": self.room, "payload": {}})
            expect_error(r, "invalid_address")
        c("publish to a room without channel -> invalid_address", room_address_publish)

        def aliases() -> None:
            x = f"{self.room}:alias"
            r = a.ok("join_channel", {"address": x})
            expect(r["subscription"] == x, "join_channel")
            r = a.ok("leave_channel", {"address": x})
            expect(r["left"] == [x], f"leave_channel {r}")
        c("command join_channel / leave_channel aliases", aliases)

        # -- read commands
        def list_channels() -> None:
            r = a.ok("list_channels", {"room": self.room})
            chans = {ch["address"]: ch for ch in r["channels"]}
            expect(self.addr in chans, f"channels {list(chans)}")
            expect(chans[self.addr]["offset"] == 5 and chans[self.addr]["subscribers"] == 3,
                   f"{chans[self.addr]}")
            expect(self.room in r["rooms"], "rooms")
            expect(r["subscriptions"] == [self.addr], f"subscriptions {r['subscriptions']}")
            r = a.ok("list_channels")
            expect(self.addr in [ch["address"] for ch in r["channels"]], "unfiltered")
        c("command list_channels", list_channels)

        def channel_info() -> None:
            r = a.ok("channel_info", {"address": self.addr})
            expect(r["offset"] == 5 and r["epoch"] == st["epoch"] and r["history"] == 5, f"{r}")
            who = sorted(p["session"] for p in r["participants"])
            expect(who == sorted([a.session, b.session, st["c"].session]), f"participants {who}")
            expect(r["persistent"] is False, "auto-created channel is not persistent")
            expect_error(a.command("channel_info", {"address": f"{self.room}:nope"}),
                         "channel_not_found")
        c("command channel_info (+ channel_not_found)", channel_info)

        def history() -> None:
            r = a.ok("history", {"address": self.addr})
            offs = [m["offset"] for m in r["messages"]]
            expect(offs == [1, 2, 3, 4, 5] and r["complete"] is True, f"{offs} {r['complete']}")
            expect(r["offset"] == 5 and r["epoch"] == st["epoch"], "position")
            expect(r["messages"][0]["payload"] == {"n": 1}, "payload kept")
            r = a.ok("history", {"address": self.addr, "since": 2, "limit": 2})
            offs = [m["offset"] for m in r["messages"]]
            expect(offs == [3, 4] and r["complete"] is True, f"since/limit {offs}")
        c("command history (newest page; since + limit)", history)

        def leave() -> None:
            cc: Conn = st["c"]
            r = cc.ok("leave", {"address": f"{self.room}:*"})
            expect({self.addr, f"{self.room}:other"} <= set(r["left"]), f"{r}")
            a.publish(self.addr, {"n": 6})
            b.event(lambda f: f["type"] == "MESSAGE" and f["offset"] == 6)
            cc.no_event(lambda f: f["type"] == "MESSAGE")
            expect_error(cc.command("leave", {"address": self.room}), "not_joined")
            st["last"] = (6, st["epoch"])
        c("command leave (+ not_joined when not held)", leave)

        # -- admin commands
        def admin() -> None:
            adm = self.conn("adm", role="admin")
            st["adm"] = adm
            x = f"{self.room}:admin-made"
            r = adm.ok("create_channel", {"address": x})
            expect(r == {"created": x}, f"{r}")
            expect_error(adm.command("create_channel", {"address": x}), "channel_exists")
            info = adm.ok("channel_info", {"address": x})
            expect(info["persistent"] is True, "admin-made channel is persistent")
            adm.ok("join", {"address": x})
            expect_error(adm.command("delete_channel", {"address": x}), "channel_not_empty")
            adm.ok("leave", {"address": x})
            r = adm.ok("delete_channel", {"address": x})
            expect(r == {"deleted": x}, f"{r}")
            expect_error(adm.command("delete_channel", {"address": x}), "channel_not_found")
        c("admin: create_channel, channel_exists, channel_not_empty, delete_channel", admin)

        def non_admin() -> None:
            x = f"{self.room}:not-allowed"
            expect_error(a.command("create_channel", {"address": x}), "forbidden")
            expect_error(a.command("delete_channel", {"address": self.addr}), "forbidden")
        c("non-admin create_channel / delete_channel -> forbidden", non_admin)

        # -- PRIVATE, HEARTBEAT
        def private() -> None:
            r = a.request({"type": "PRIVATE", "payload": {"to": [b.session], "text": "hi"}},
                          "private")
            expect(r["payload"]["result"] == {"delivered": 1, "missing": []}, f"{r}")
            p = b.event(lambda f: f["type"] == "PRIVATE")
            expect(p["from"] == a.session and p["payload"]["text"] == "hi", f"{p}")
            r = a.request({"type": "PRIVATE", "payload": {"to": ["s-000000000000"]}})
            expect_error(r, "unknown_session")
        c("PRIVATE to a session (+ unknown_session)", private)

        def heartbeat() -> None:
            r = a.request({"type": "HEARTBEAT"}, "heartbeat")
            expect(r["payload"]["result"] == {"alive": True}, f"{r}")
        c("HEARTBEAT with id -> REPLY {alive: true}", heartbeat)

        # -- bad inputs
        def invalid_json() -> None:
            a.send_text("{not json")
            f = a.event(lambda f: f["type"] == "ERROR")
            expect_error(f, "invalid_json", None)
        c("bad input: invalid JSON -> invalid_json (re null)", invalid_json)

        def unknown_type() -> None:
            a.send({"id": "bad-1", "type": "NOPE"}, validate=False)
            expect_error(a.answer("bad-1"), "unknown_type", "bad-1")
        c("bad input: unknown type -> unknown_type", unknown_type)

        def duplicate_id() -> None:
            expect(a.command("ping", {}, fid="dup-1")["type"] == "REPLY", "first use")
            expect_error(a.command("ping", {}, fid="dup-1"), "duplicate_id", "dup-1")
        c("bad input: duplicate id -> duplicate_id", duplicate_id)

        def others() -> None:
            expect_error(a.command("no_such_command"), "unknown_command")
            a.send({"type": "COMMAND", "payload": {"name": "ping"}}, validate=False)
            expect_error(a.event(lambda f: f["type"] == "ERROR"), "missing_field", None)
            expect_error(a.command("join", {"address": "Bad:Name"}, valid=False),
                         "invalid_address")
            expect_error(a.command("join", {}, valid=False), "missing_field")
            expect_error(a.command("status", {"extra": 1}, valid=False), "invalid_field")
            a.ws.send(b"\x00\x01")
            expect_error(a.event(lambda f: f["type"] == "ERROR"), "binary_not_supported", None)
            a.send({"id": "bad-2", "type": "HELLO", "payload": {"role": "client"}})
            expect_error(a.answer("bad-2"), "already_handshaken")
            a.send({"id": "bad-3", "type": "WELCOME", "payload": {}}, validate=False)
            expect_error(a.answer("bad-3"), "unexpected_type")
            expect(a.ok("ping")["pong"] is True, "session survives bad input")
        c("bad input: unknown_command, missing_field, invalid_address, invalid_field, "
          "binary, HELLO twice, WELCOME from peer; session survives", others)

        # -- recovery
        def recover() -> None:
            last_off, epoch = st["last"]
            b.close()
            missed = []
            for i in range(5):
                r = a.publish(self.addr, {"missed": i})
                missed.append(r["payload"]["result"]["offset"])
            expect(missed == list(range(last_off + 1, last_off + 6)), f"offsets {missed}")
            b2 = self.conn("b2")
            r = b2.ok("join", {"address": self.addr,
                               "recover": {"offset": last_off, "epoch": epoch}})
            expect(r["recovered"] is True, f"recovered {r['recovered']}")
            got = [(m["offset"], m["payload"]) for m in r["messages"]]
            want = [(o, {"missed": i}) for i, o in enumerate(missed)]
            expect(got == want, f"messages {got}")
            expect(r["recovery"][0]["count"] == 5 and r["recovery"][0]["recovered"] is True,
                   f"recovery {r['recovery']}")
            expect(r["channels"][0]["offset"] == missed[-1], "position after recovery")
            a.publish(self.addr, {"live": True})
            m = b2.event(lambda f: f["type"] == "MESSAGE")
            expect(m["offset"] == missed[-1] + 1, f"live after recovery {m['offset']}")
            st["b2"] = b2
            st["last"] = (m["offset"], epoch)
        c("recovery: reconnect + join {recover: {offset, epoch}} returns exactly the "
          "missed publishes, recovered: true", recover)

        def wrong_epoch() -> None:
            d = self.conn("d")
            r = d.ok("join", {"address": self.addr,
                              "recover": {"offset": 1, "epoch": "e-00000000"}})
            expect(r["recovered"] is False and r["messages"] == [], f"{r}")
            expect(r["recovery"][0]["epoch"] == st["epoch"], "tells the current epoch")
        c("recovery: wrong epoch -> recovered: false, no messages", wrong_epoch)

        def pattern_recover() -> None:
            off, epoch = st["last"]
            a.publish(self.addr, {"after": 1})
            e = self.conn("e")
            r = e.ok("join", {"address": f"{self.room}:*",
                              "recover": {self.addr: {"offset": off, "epoch": epoch}}})
            expect(r["recovered"] is True, f"{r['recovery']}")
            expect([m["payload"] for m in r["messages"]] == [{"after": 1}], "one missed")
        c("recovery: pattern join with a recover map", pattern_recover)

    def finish(self) -> int:
        if self.schemas.enabled:
            errs = self.schemas.errors
            if errs:
                self.failed += 1
                print(f"FAIL schema: {len(errs)} frame(s) do not match docs/schema")
                for e in errs[:20]:
                    print(f"     {e}")
            else:
                self.passed += 1
                print(f"ok   schema: {self.schemas.validated} validations against docs/schema")
        for cn in self.conns:
            cn.close()
        print(f"conformance: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="ws://127.0.0.1:PORT/")
    ap.add_argument("--strict-schema", action="store_true",
                    help="require jsonschema and validate every frame")
    args = ap.parse_args()
    run = Run(args.url, Schemas(args.strict_schema))
    try:
        run.run()
    except Exception as e:  # an unexpected crash is a failure, not a traceback
        run.failed += 1
        print(f"FAIL unexpected {type(e).__name__}: {e}")
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
