"""Exceptions of the SDK.

Every failure is a :class:`HivebusError` carrying a ``code``: the server's stable
snake_case code for a refusal (``forbidden``, ``not_joined``, ``invalid_field``,
``stale_lease``, ... : docs/PROTOCOL.md, section 13), or one of the SDK's own codes
for what happened on this side: ``connect_failed`` (nothing answered at the URL), ``closed``
(the connection ended), ``timeout`` (no answer in time), ``no_broker`` / ``stale_port`` (port discovery found nothing to
trust) and ``lease_lost`` (a consumer's lease was cancelled, expired or went with
the connection). Codes may be added; treat an unknown one as a generic failure.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["HivebusError", "ConnectionClosed", "DiscoveryError", "LeaseLost", "Timeout"]


class HivebusError(Exception):
    """A refusal from the broker (an ERROR frame) or a failure of this client."""

    def __init__(
        self, code: str, message: str, details: Optional[Mapping[str, Any]] = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        #: Stable error code (the server's, or one of the SDK's, see the module doc).
        self.code = code
        #: A sentence for humans; not stable, do not parse it.
        self.message = message
        #: The ERROR's ``details`` object, when the server sent one.
        self.details: dict[str, Any] = dict(details or {})

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "HivebusError":
        """The exception for an ERROR frame's payload ``{re, code, message, details?}``."""
        details = payload.get("details")
        return cls(
            str(payload.get("code") or "unknown"),
            str(payload.get("message") or ""),
            details if isinstance(details, Mapping) else None,
        )


class ConnectionClosed(HivebusError):
    """The WebSocket closed; ``close_code`` is the server's close code (4008 slow
    consumer, 1001 going away, ...: docs/PROTOCOL.md, section 14) when known."""

    def __init__(self, message: str, close_code: Optional[int] = None) -> None:
        super().__init__("closed", message, {"close_code": close_code})
        self.close_code = close_code


class Timeout(HivebusError):
    """No answer (or no event) within the time asked; code ``timeout``. The request
    may still have been applied."""

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class DiscoveryError(HivebusError):
    """No broker to connect to: ``no_broker`` (no port file and no ``HIVE_WS_PORT``),
    ``stale_port`` (a port file that no running broker holds), ``invalid_port``."""


class LeaseLost(HivebusError):
    """A consumer's lease ended under it: ``details["why"]`` is ``cancelled``,
    ``expired`` or ``disconnected``."""

    def __init__(self, task: str, why: str) -> None:
        super().__init__("lease_lost", f"task {task}: lease {why}", {"why": why})
        self.why = why
