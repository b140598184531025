"""The sandbox Live gateway: Databento's raw Live protocol over asyncio TCP (the listening side).

Protocol, as ``databento.live.protocol`` speaks it (client lines end in \\n):

    S: lsg_version=...            S: cram=<challenge>
    C: auth=<sha256(challenge|key)>-<key[-5:]>|dataset=...|encoding=dbn|ts_out=0|compression=none|heartbeat_interval_s=30|...
    S: success=1|session_id=N     (or success=0|error=... and close)
    C: schema=trades|stype_in=parent|symbols=ES.FUT|[start=ns|]snapshot=0|id=0|is_last=1   (1..n)
    C: start_session=0
    S: DBN: one Metadata header, then SymbolMappingMsg per instrument (per
       trading day) before its trades, TradeMsgs, SystemMsg heartbeats when
       idle for heartbeat_interval_s (wall seconds), zstd if asked.

Pacing follows the sandbox clock (``SandboxState``): a record is sent once
the clock has reached its ``ts_recv``; with speed 0 records go out as fast
as the client reads (bounded by the transport's write buffer). Without
``start=`` a session starts at the clock's "now"; with ``start=`` it replays
from there (at most 24 h back, like the real gateway) and then continues.

The gateway owns the listening socket, the set of sessions and the fault
actions on them (driven by sandbox/faults.py); one client's session is
sandbox/live_session.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Awaitable, Callable, TypeVar

from multialpha.sandbox.faults import Faults
from multialpha.sandbox.live_session import GatewayRefusal, LiveSession, cram_response, parse_line
from multialpha.sandbox.market import SyntheticMarket
from multialpha.sandbox.state import SandboxState

__all__ = ["GatewayRefusal", "LiveGateway", "cram_response", "parse_line"]  # the protocol helpers, as before

log = logging.getLogger(__name__)
T = TypeVar("T")


class LiveGateway:
    def __init__(
        self,
        market: SyntheticMarket,
        state: Callable[[], SandboxState],
        keys: Callable[[], set[str]],
        dataset: str,
        faults: Faults,
        loop: asyncio.AbstractEventLoop,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.market = market
        self.state = state
        self.keys = keys
        self.dataset = dataset
        self.faults = faults
        self.loop = loop
        self.host = host
        self.port = port
        self.sessions: set[LiveSession] = set()
        self.refusing = False
        self._server: asyncio.AbstractServer | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self.records_sent = 0
        self._wake: asyncio.Future[None] | None = None
        faults.attach(self)

    # -- lifecycle (on the loop) -----------------------------------------------------------
    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._reopen:
            self._reopen.cancel()
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.close_all()
        # cancel whatever is left (handlers, control readers) so the loop closes clean
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    # -- waking sessions early (clock jumps, unstall, new subscriptions) -----------------------
    async def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; ``wake_all()`` ends every such sleep at once."""
        if self._wake is None or self._wake.done():
            self._wake = self.loop.create_future()
        await asyncio.wait({self._wake}, timeout=seconds)

    def wake_all(self) -> None:
        """Thread-safe: sessions re-check the clock now (used by set_clock/set_speed)."""

        def wake() -> None:
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)

        self.loop.call_soon_threadsafe(wake)

    def run(self, coro: Awaitable[T], timeout: float = 10.0) -> T:
        """Run a coroutine on the gateway loop from another thread and wait."""
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    # -- faults (on the loop) ----------------------------------------------------------------
    async def reset_all(self) -> int:
        n = 0
        for s in list(self.sessions):
            s.reset()
            n += 1
        return n

    async def close_all(self) -> int:
        n = 0
        for s in list(self.sessions):
            await s.close()
            n += 1
        return n

    async def error_all(self, message: str, close: bool) -> int:
        n = 0
        for s in list(self.sessions):
            await s.send_error(message, close)
            n += 1
        return n

    async def refuse(self, seconds: float | None) -> None:
        if self._reopen:
            self._reopen.cancel()
            self._reopen = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.refusing = True
        if seconds is not None:
            self._reopen = self.loop.call_later(seconds, lambda: asyncio.ensure_future(self.reopen()))

    async def reopen(self) -> None:
        if self._reopen:
            self._reopen.cancel()
            self._reopen = None
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.refusing = False

    # -- connections -------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = LiveSession(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # never let one bad client take the gateway down
            log.exception("live session %s failed", session.session_id)
        finally:
            self.sessions.discard(session)
            session.abort_quietly()

