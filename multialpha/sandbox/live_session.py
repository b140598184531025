"""One client's session on the sandbox Live gateway: authentication, subscriptions, the record stream.

The protocol (docs in sandbox/live.py): CRAM authentication against the
accepted keys, subscription lines resolved through sandbox/symbology.py,
then per trading day the symbol mappings and the trades the sandbox clock
has reached, heartbeats when idle, faults (stall, reset, error) as the
gateway's :class:`~multialpha.sandbox.faults.Faults` say. The gateway
(:class:`~multialpha.sandbox.live.LiveGateway`) owns the listening socket and
the set of sessions; a session only needs what :class:`SessionHost` names.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import socket
import struct
import time
from datetime import date
from typing import Any, Callable, Protocol

import numpy as np
from databento_dbn import ErrorMsg, Metadata, Schema, SType, SymbolMappingMsg, SystemCode, SystemMsg

from multialpha import cme_time
from multialpha.sandbox import symbology, utcmap
from multialpha.sandbox.faults import Faults
from multialpha.sandbox.market import TRADE_DTYPE, SyntheticMarket
from multialpha.sandbox.state import SandboxState

log = logging.getLogger(__name__)

LSG_VERSION = "0.7.2-sandbox"
CHUNK = 2048  # records per write when catching up
REPLAY_LIMIT_NS = 24 * cme_time.HOUR_NS
# The shortest wait for the next trade: what is due by then goes out in one write. At replay speeds
# trades fall under a millisecond apart, and a write per trade or two cost the sandbox and the hub
# a wake-up each (a 2-day replay at 1500x: ~1000 writes a second, a sixth of a core between them).
# At speed 1 the synthetic market's trades are seconds apart: nothing waits longer than it did.
PACE_S = 0.005

_STYPE = {"parent": SType.PARENT, "continuous": SType.CONTINUOUS, "raw_symbol": SType.RAW_SYMBOL}
_session_ids = itertools.count(1)


class SessionHost(Protocol):
    """What a session reads from its gateway (sandbox/live.py ``LiveGateway``)."""

    market: SyntheticMarket
    state: Callable[[], SandboxState]
    keys: Callable[[], set[str]]
    dataset: str
    faults: Faults
    records_sent: int

    async def sleep(self, seconds: float) -> None: ...

    def wake_all(self) -> None: ...


class GatewayRefusal(Exception):
    pass


def parse_line(line: bytes) -> dict[str, str]:
    text = line.decode("utf-8", "replace").strip()
    return {k: v for k, _, v in (t.partition("=") for t in text.split("|") if t)}


def cram_response(challenge: str, key: str) -> str:
    return hashlib.sha256(f"{challenge}|{key}".encode()).hexdigest() + "-" + key[-5:]



class LiveSession:
    def __init__(self, gw: SessionHost, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.gw = gw
        self.reader = reader
        self.writer = writer
        self.session_id = next(_session_ids)
        self.heartbeat_s = 30.0
        self.compress: Any = None
        self.subs: list[dict[str, str]] = []
        self.closed = False
        self.started = False
        self.last_send = time.monotonic()
        self.resolved: list[tuple[symbology.Resolved, str]] = []
        self.sub_version = 0
        self.mapped: set[tuple[int, str]] = set()  # (instrument_id, stype_in symbol) already announced
        self.pinned: dict[str, set[str]] = {}  # continuous symbol -> raw symbols, fixed at session start

    # -- control phase -------------------------------------------------------------------
    async def run(self) -> None:
        challenge = secrets.token_urlsafe(24)
        self.writer.write(f"lsg_version={LSG_VERSION}\ncram={challenge}\n".encode())
        await self.writer.drain()
        auth = parse_line(await self._readline())
        ok_key = next((k for k in self.gw.keys() if cram_response(challenge, k) == auth.get("auth")), None)
        if ok_key is None:
            await self._reject("Authentication failed.")
            return
        if auth.get("dataset") != self.gw.dataset:
            await self._reject(f"Unknown dataset: {auth.get('dataset')!r}; the sandbox serves {self.gw.dataset}")
            return
        if auth.get("encoding", "dbn") != "dbn":
            await self._reject(f"Unsupported encoding {auth.get('encoding')!r}")
            return
        if auth.get("ts_out", "0") != "0":
            await self._reject("ts_out is not supported by the sandbox")
            return
        try:
            self.heartbeat_s = max(0.5, float(auth.get("heartbeat_interval_s") or 30))
        except ValueError:
            self.heartbeat_s = 30.0
        if auth.get("compression", "none") == "zstd":
            import zstandard

            self.compress = zstandard.ZstdCompressor().compressobj()
        self.writer.write(f"success=1|session_id={self.session_id}\n".encode())
        await self.writer.drain()

        while True:
            fields = parse_line(await self._readline())
            if "start_session" in fields:
                break
            if "schema" in fields:
                self.subs.append(fields)
        self.started = True
        asyncio.ensure_future(self._drain_control())
        await self._stream()

    async def _readline(self) -> bytes:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("client closed")
        return line

    async def _reject(self, error: str) -> None:
        self.writer.write(f"success=0|error={error}\n".encode())
        await self.writer.drain()
        await self.close()

    async def _drain_control(self) -> None:
        """Keep reading: a client's close is seen, and later subscriptions are added."""
        try:
            while line := await self.reader.readline():
                fields = parse_line(line)
                if "schema" in fields:
                    errors, warnings = self._add_subscription(fields)
                    for msg in errors + warnings:
                        await self.send_error(msg, close=False)
        except (ConnectionError, OSError):
            pass
        self.closed = True  # the client went away: stop producing for it

    def _add_subscription(self, sub: dict[str, str]) -> tuple[list[str], list[str]]:
        """Resolve one subscription line -> (fatal errors, warnings)."""
        if sub.get("schema") != "trades":
            return [f"schema {sub.get('schema')!r} is not served by the sandbox (trades only)"], []
        stype = sub.get("stype_in", "")
        try:
            ok, missing = symbology.parse(self.gw.market, sub.get("symbols", "").split(","), stype)
        except symbology.SymbolError as e:
            return [str(e)], []
        self.resolved.extend((r, stype) for r in ok)
        self.sub_version += 1
        self.gw.wake_all()
        return [], [f"Failed to resolve symbol: {m}" for m in missing]

    # -- streaming -------------------------------------------------------------------------
    async def _stream(self) -> None:
        gw = self.gw
        now = gw.state().now_ns()
        errors: list[str] = []  # fatal: ErrorMsg and close
        starts: list[int] = []
        for sub in self.subs:
            if sub.get("start"):
                try:
                    starts.append(int(sub["start"]))
                except ValueError:
                    errors.append(f"start must be an integer of UNIX nanoseconds, got {sub['start']!r}")
        warnings: list[str] = []  # ErrorMsg, the session goes on (like a partial resolution)
        for sub in self.subs:
            e, w = self._add_subscription(sub)
            errors += e
            warnings += w
        cursor = min(starts) if starts else now
        if starts and cursor < now - REPLAY_LIMIT_NS:
            errors.append("start must be within the last 24 hours of the sandbox clock")
        meta = Metadata(
            dataset=gw.dataset,
            start=int(cursor),
            stype_in=None,
            stype_out=SType.INSTRUMENT_ID,
            schema=Schema.TRADES,
            symbols=[],
            version=3,
        )
        await self._send(bytes(meta))
        if errors:
            await self.send_error("; ".join(errors), close=True)
            return
        for w in warnings:
            await self.send_error(w, close=False)
        day = cme_time.trading_day(int(cursor))
        while not self.closed:
            if not gw.market.has_day(day):
                if day < gw.market.first_day:
                    day = gw.market.first_day
                    cursor = max(cursor, cme_time.to_ns(cme_time.session_bounds(day)[0]))
                    continue
                await self._idle_forever()
                return
            open_ns, close_ns = (cme_time.to_ns(t) for t in cme_time.session_bounds(day))
            await self._send_day(day, max(cursor, open_ns), close_ns)
            day = cme_time.next_trading_day(day)
            cursor = cme_time.to_ns(cme_time.session_bounds(day)[0])

    def _resolve_day(self, day: date, ts: int) -> tuple[dict[str, set[int]], list[bytes]]:
        """Instrument ids per root for ``day``, and mappings for instruments not announced yet."""
        gw = self.gw
        maps: list[bytes] = []
        per_root: dict[str, set[int]] = {}
        start_ts, end_ts = utcmap.live_interval(day)  # Databento's intervals are UTC dates
        for res, stype in self.resolved:
            if stype == "continuous":
                # Resolved once, at session start on its UTC date (utcmap.py): a roll shows next session.
                if res.symbol not in self.pinned:
                    picked = utcmap.continuous_day(gw.market, ts, day)
                    self.pinned[res.symbol] = {i.raw_symbol for i in symbology.select(gw.market, res, stype, picked)}
                insts = [i for i in gw.market.instruments(res.root, day) if i.raw_symbol in self.pinned[res.symbol]]
            else:
                insts = symbology.select(gw.market, res, stype, day)
            for inst in insts:
                per_root.setdefault(inst.root, set()).add(inst.instrument_id)
                if (inst.instrument_id, res.symbol) in self.mapped:
                    continue
                self.mapped.add((inst.instrument_id, res.symbol))
                maps.append(bytes(SymbolMappingMsg(
                    1, inst.instrument_id, ts, _STYPE.get(stype, SType.RAW_SYMBOL), res.symbol,
                    SType.RAW_SYMBOL, inst.raw_symbol, start_ts, end_ts,
                )))  # fmt: skip
        return per_root, maps

    async def _send_day(self, day: date, start: int, end: int) -> None:
        gw = self.gw
        # The day's data begins (mappings first) once the clock reaches its start.
        await self._wait_until(start)
        pos = start  # next ts_recv to send
        while not self.closed:
            version = self.sub_version
            per_root, maps = self._resolve_day(day, pos)
            await self._send(b"".join(maps))
            parts = [gw.market.trades(root, pos, end, ids) for root, ids in per_root.items()]
            trades = np.concatenate(parts) if parts else np.zeros(0, TRADE_DTYPE)
            if len(parts) > 1:
                trades = trades[np.argsort(trades["ts_recv"], kind="stable")]
            recv = trades["ts_recv"].astype(np.int64)
            i = 0
            while i < len(trades) and not self.closed and version == self.sub_version:
                st = gw.state()
                if st.speed == 0:
                    j = min(i + CHUNK, len(trades))
                else:
                    j = int(np.searchsorted(recv, st.now_ns(), side="right"))
                    if j <= i:
                        await self._wait_until(int(recv[i]), version=version)
                        continue
                    j = min(j, i + CHUNK)
                await self._send(trades[i:j].tobytes(), count=j - i)
                pos = int(recv[j - 1]) + 1
                i = j
            if version != self.sub_version:
                continue  # a new subscription: re-resolve from where we are
            await self._wait_until(end, version=version)
            if version == self.sub_version:
                return

    async def _wait_until(self, sim_ns: int, forever: bool = False, version: int | None = None) -> None:
        """Wait for the clock to reach ``sim_ns`` (not at all when unpaced), heartbeating while idle.

        Returns early when a subscription arrives (``version`` changed)."""
        while not self.closed and (version is None or version == self.sub_version):
            st = self.gw.state()
            delay = float("inf") if forever else 0.0 if st.speed == 0 else st.wall_delay_s(sim_ns)
            if delay <= 0 and not self.gw.faults.stalled:
                return
            idle = time.monotonic() - self.last_send
            if idle >= self.heartbeat_s and not self.gw.faults.stalled:
                await self._send(bytes(SystemMsg(st.now_ns(), "Heartbeat", SystemCode.HEARTBEAT)))
                continue
            await self.gw.sleep(max(PACE_S, min(delay, self.heartbeat_s - idle, 0.25)))

    async def _idle_forever(self) -> None:
        """Past the generated horizon: only heartbeats until the client leaves."""
        await self._wait_until(0, forever=True)

    async def _send(self, data: bytes, count: int = 0) -> None:
        while self.gw.faults.stalled and not self.closed:
            await self.gw.sleep(0.25)  # unstall wakes us
        if self.closed or not data:
            return
        if self.compress is not None:
            import zstandard

            data = self.compress.compress(data) + self.compress.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        self.writer.write(data)
        await self.writer.drain()
        # drain() does not yield below the high-water mark: yield explicitly so other
        # sessions, control lines and fault switches get the loop at speed 0 too.
        await asyncio.sleep(0)
        self.gw.records_sent += count
        self.last_send = time.monotonic()

    # -- faults -----------------------------------------------------------------------------
    async def send_error(self, message: str, close: bool) -> None:
        if not self.started:
            await self._reject(message)
            return
        err = ErrorMsg(self.gw.state().now_ns(), message[:300])
        data = bytes(err)
        if self.compress is not None:
            import zstandard

            data = self.compress.compress(data) + self.compress.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            pass
        if close:
            await self.close()

    def reset(self) -> None:
        self.closed = True
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()

    async def close(self) -> None:
        if self.closed and self.writer.is_closing():
            return
        self.closed = True
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass

    def abort_quietly(self) -> None:
        self.closed = True
        if not self.writer.is_closing():
            self.writer.transport.abort()
