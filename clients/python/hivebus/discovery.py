"""Finding the broker: the same rule as the ``hive`` CLI (``src/server/state_dir.rs``).

Order: an explicit URL; else ``<dir>/.hive/port`` when a *live* broker holds
``<dir>/.hive/broker.lock``; else ``HIVE_WS_PORT``. A port file is never followed on
its own word: a running broker holds an exclusive ``flock`` on the lock file, so if
this process can take a shared lock on it (at once, without waiting) nobody holds
it and the file is stale; with no lock file at all the port file was copied or
checked in. Either way a token would go to whatever listens on that port, so the
file is refused (an error, or a warning when ``HIVE_WS_PORT`` gives another port).
When ``HIVE_WS_PORT`` and a live broker's file disagree, the file wins (the broker
fell back from a taken port and wrote where it went) with a warning.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path
from typing import Optional, Union

from .errors import DiscoveryError

try:
    import fcntl
except ImportError:  # not POSIX: liveness cannot be probed, so no port file is trusted
    fcntl = None  # type: ignore[assignment]

__all__ = ["Located", "locate", "discover_url"]


@dataclasses.dataclass(frozen=True)
class Located:
    """Where to connect, and what the caller should warn about."""

    port: int
    warnings: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>/``."""
        return f"ws://127.0.0.1:{self.port}/"


def _holder(lock: Path) -> dict[str, str]:
    """The ``key=value`` lines of a lock file (``pid``, ``port``, ``started``)."""
    try:
        text = lock.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _probe(lock: Path) -> str:
    """``alive``, ``gone`` or ``unknown`` for the broker holding ``lock``."""
    if fcntl is None:
        return "unknown"
    try:
        f = open(lock, "rb")
    except OSError:
        return "unknown"
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return "alive"
            return "unknown"
        # Nobody holds it: release our probe at once (a starting broker retries for
        # a moment, but should not have to).
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return "gone"


def _env_port() -> Optional[int]:
    raw = os.environ.get("HIVE_WS_PORT")
    if raw is None:
        return None
    try:
        port = int(raw.strip())
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise DiscoveryError("invalid_port", f"HIVE_WS_PORT={raw!r} is not a port")
    return port


def locate(dir: Union[str, os.PathLike[str]] = ".") -> Located:
    """Finds the broker of ``dir`` (see the module doc).

    Raises :class:`DiscoveryError` with code ``no_broker`` when nothing names a port,
    ``stale_port`` when only a port file no live broker holds does, ``invalid_port``
    for a malformed ``HIVE_WS_PORT`` or port file.
    """
    hive = Path(dir) / ".hive"
    port_file, lock = hive / "port", hive / "broker.lock"
    env = _env_port()
    try:
        first = port_file.read_text().splitlines()[:1]
        from_file: Optional[int] = int(first[0].strip()) if first else -1
    except FileNotFoundError:
        from_file = None
    except (OSError, ValueError) as e:
        if env is not None:
            return Located(env, (f"ignoring unreadable {port_file}: {e}",))
        raise DiscoveryError("invalid_port", f"{port_file}: {e}") from None
    if from_file is not None and not 0 < from_file < 65536:
        if env is not None:
            return Located(env, (f"ignoring {port_file}: not a port",))
        raise DiscoveryError("invalid_port", f"{port_file} does not hold a port")
    if from_file is None:
        if env is not None:
            return Located(env)
        raise DiscoveryError(
            "no_broker",
            f"no broker: {port_file} does not exist and HIVE_WS_PORT is not set "
            "(start one with `hive broker`, or pass a url)",
        )
    state = _probe(lock)
    if state == "alive":
        if env is not None and env != from_file:
            pid = _holder(lock).get("pid", "?")
            return Located(
                from_file,
                (
                    f"HIVE_WS_PORT={env} disagrees with {port_file}: {from_file} "
                    f"(broker PID {pid}); using {from_file}",
                ),
            )
        return Located(from_file)
    if state == "gone":
        pid = _holder(lock).get("pid", "?")
        why = f"stale {port_file} (broker PID {pid} is gone; start one with `hive broker`)"
    else:
        why = (
            f"{port_file} names port {from_file}, but no running broker holds it "
            f"(no {lock}): it may have been copied or checked in, and is never "
            "followed; start a broker with `hive broker`, or pass a url"
        )
    if env is not None:
        return Located(env, (f"{why}; using HIVE_WS_PORT={env}",))
    raise DiscoveryError("stale_port", why)


def discover_url(
    url: Optional[str] = None, dir: Union[str, os.PathLike[str]] = "."
) -> tuple[str, tuple[str, ...]]:
    """``url`` when given, else the located broker's URL; plus the warnings."""
    if url:
        return url, ()
    found = locate(dir)
    return found.url, found.warnings
