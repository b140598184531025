"""Fault switches for tests: what a real gateway (or network) can do to a client.

Live gateway: reset every connection (RST via SO_LINGER 0), close cleanly,
stall (send nothing, not even heartbeats, until cleared), refuse new
connections (the listening socket is closed, so connects get ECONNREFUSED)
for N seconds or until cleared, send an ``ErrorMsg`` (then close, as the
real gateway does). Historical gateway: answer every request with an HTTP
error status until cleared.

Thread-safe: called from tests, the control endpoint or a signal handler;
actions that touch connections are run on the gateway's event loop and
return how many connections they affected.
"""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Protocol, Sized, TypeVar

T = TypeVar("T")


class LiveSwitches(Protocol):
    """What the switches act on: the live gateway (sandbox/live.py), named here so that this
    module needs nothing of it (the gateway imports Faults, never the other way round)."""

    refusing: bool
    sessions: Sized

    def run(self, coro: Awaitable[T], timeout: float = 10.0) -> T: ...

    def wake_all(self) -> None: ...

    async def reset_all(self) -> int: ...

    async def close_all(self) -> int: ...

    async def error_all(self, message: str, close: bool) -> int: ...

    async def refuse(self, seconds: float | None) -> None: ...

    async def reopen(self) -> None: ...

ACTIONS = ("rst", "close", "stall", "unstall", "refuse", "accept", "error", "hist_error", "clear")


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stall = threading.Event()
        self.hist_status: int | None = None
        self._live: LiveSwitches | None = None

    def attach(self, live: LiveSwitches) -> None:
        self._live = live

    # -- live ------------------------------------------------------------------------
    @property
    def stalled(self) -> bool:
        return self._stall.is_set()

    def rst(self) -> int:
        """Abort every live connection with a TCP RST."""
        return self._require().run(self._require().reset_all())

    def close(self) -> int:
        """Close every live connection cleanly (FIN after what was already sent)."""
        return self._require().run(self._require().close_all())

    def stall(self, on: bool = True) -> None:
        """Live sessions send nothing (no records, no heartbeats) until ``stall(False)``."""
        if on:
            self._stall.set()
        else:
            self._stall.clear()
            if self._live is not None:
                self._live.wake_all()

    def unstall(self) -> None:
        self.stall(False)

    def refuse(self, seconds: float | None = None) -> None:
        """Refuse new live connections for ``seconds`` (None: until ``accept()``)."""
        self._require().run(self._require().refuse(seconds))

    def accept(self) -> None:
        self._require().run(self._require().reopen())

    def error(self, message: str = "Internal gateway error (sandbox fault)", close: bool = True) -> int:
        """Send an ErrorMsg to every live session, then (by default) close it."""
        return self._require().run(self._require().error_all(message, close))

    # -- historical ----------------------------------------------------------------------
    def hist_error(self, status: int | None = 503) -> None:
        """Answer every historical request with ``status`` (None clears)."""
        self.hist_status = status

    def clear(self) -> None:
        """Clear every persistent switch (stall, refusal, historical errors)."""
        self.stall(False)
        self.hist_status = None
        if self._live is not None and self._live.refusing:
            self.accept()

    def snapshot(self) -> dict[str, Any]:
        live = self._live
        return {
            "stalled": self.stalled,
            "refusing": bool(live and live.refusing),
            "hist_status": self.hist_status,
            "live_sessions": len(live.sessions) if live else 0,
        }

    def apply(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        """Run a named action with string params (the control endpoint's entry point)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown fault action {action!r}; known: {', '.join(ACTIONS)}")
        result: Any = None
        if action == "rst":
            result = self.rst()
        elif action == "close":
            result = self.close()
        elif action == "stall":
            self.stall(True)
        elif action == "unstall":
            self.stall(False)
        elif action == "refuse":
            secs = params.get("seconds")
            self.refuse(float(secs) if secs else None)
        elif action == "accept":
            self.accept()
        elif action == "error":
            result = self.error(params.get("message") or "Internal gateway error (sandbox fault)",
                                params.get("close", "1") not in ("0", "false"))
        elif action == "hist_error":
            status = params.get("status", "503")
            self.hist_error(int(status) if status not in ("", "none", "0") else None)
        elif action == "clear":
            self.clear()
        return {"action": action, "affected": result, **self.snapshot()}

    def _require(self) -> LiveSwitches:
        if self._live is None:
            raise RuntimeError("sandbox not started")
        return self._live
