"""Trades -> exact 1-minute bars, Databento's OHLCV-1m definition.

A bar of root R stamped ``t`` holds every front-contract trade of R whose
``ts_recv`` lies in ``[t, t + 60 s)``: OHLC of the trade prices (rounded to
R's tick), volume = sum of sizes, ``trades`` = count, no bar without a trade.

A root's bar is complete when a trade of a later minute arrives for it, or
when the *feed clock* passes the minute's end plus ``grace``. The feed clock
is the largest record time seen (trade ``ts_recv``, heartbeat ``ts_event``),
never the wall clock, so an N-times-speed replay closes bars correctly and
tests need no sleeping.

Bars are emitted **by minute**: when the feed clock passes a minute's end +
``grace``, every root's bar of that minute goes out together, sorted by
symbol, followed by one *minute-close* notice ("every bar starting at or
before ``W`` is out"). That order is a contract: workers (and the backtest)
take one step per (minute, symbol) in exactly this order, and the notice lets
every worker agree on when a minute is over — the basis of deterministic
quiet-market closes and of cross-strategy turn order at the portfolio gate.
The price is latency: a busy root's bar waits for its minute's deadline
(at most ``grace``) instead of leaving on the next minute's first trade.

A trade whose minute is already closed (published, or passed by the clock) is
*late*: counted and logged, never merged into a published bar. During a gap
replay, trades of minutes the hub already published are expected; they are
counted as ``replay_dups`` instead.

Hot path: one Python loop over a batch of records with integer-ns arithmetic
and no allocation except when a bar closes. Rounding to the tick is monotone,
so rounding O/H/L/C once per bar equals rounding every trade.

This module is that hot path and the session boundaries (resume, gap replay, crash
restore, config reload). One root's bar state is ``Series`` (hub/series.py); closing
bars and emitting them by minute is ``MinuteCloser`` (hub/minute_close.py), a base
class of ``Aggregator``.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from databento_dbn import TradeMsg

from multialpha import cme_time
from multialpha.bar import Bar
from multialpha.hub.minute_close import MinuteCloser
from multialpha.hub.resolver import Resolver, Roll
from multialpha.hub.series import MINUTE, PMAX, PX, Series

log = logging.getLogger(__name__)

_LOG_FIRST = 20  # late trades logged individually, then every _LOG_EVERY-th
_LOG_EVERY = 1000


class Aggregator(MinuteCloser):
    def __init__(
        self,
        resolver: Resolver,
        ticks: dict[str, float],
        emit: Callable[[Bar], None],
        grace_s: float = 1.0,
        on_roll: Callable[[Roll], None] | None = None,
        on_other: Callable[[object], None] | None = None,
        on_minute_closed: Callable[[int], None] | None = None,
        *,
        emit_prev: Callable[[Bar], None] | None = None,
        overlap: Callable[[str, dict[str, str]], dict[str, str]] | None = None,
    ) -> None:
        self.resolver = resolver
        self.series = {root: Series(root, ticks[root]) for root in resolver.roots}
        # The roll overlap (hub/overlap.py): for hub.roll_overlap_days after a roll, the previous
        # front's trades make their own bars, emitted after the minute's front bars (emit_prev).
        # ``overlap(trading day ISO, fronts)`` -> root -> previous front, asked once a trading day.
        self.emit_prev = emit_prev or (lambda bar: None)
        self.overlap = overlap
        self.prev_contract: dict[str, str] = {}  # root -> previous front today ({}: no overlap)
        self.prev_series: dict[str, Series] = {}
        self.prev_routes: dict[int, Series | None] = {}  # instrument id -> previous-front series (lazy)
        self.prev_bars = self.prev_trades = 0
        resolver.bind(self.series)  # routes: instrument id -> Series (or None)
        self.emit = emit
        self.grace = int(grace_s * cme_time.NS)
        self.on_roll = on_roll or (lambda roll: None)
        self.on_other = on_other or (lambda rec: None)
        self.on_minute_closed = on_minute_closed or (lambda start_ns: None)
        self.ready: list[tuple[int, str, Bar]] = []  # (start ns, symbol, bar) complete, waiting for the minute
        self.closed_through = -1  # start of the last minute announced closed
        self.clock = 0  # feed clock, ns
        self.deadline = 1 << 62  # earliest (open or ready minute's end + grace, next minute-close notice)
        self.floor = 0  # minutes before this are already covered (resume point)
        self.replay_until = 0  # bars ending at or before this are "replay"
        self.trades = self.bars = self.late = self.rejected = self.ignored = self.unmapped = self.replay_dups = 0
        self.partial = 0

    # -- the hot path -------------------------------------------------------------------
    def process(self, records: Iterable[object]) -> None:
        """Feed a batch of records (trades; anything else goes to ``on_other``).

        Fast path: an in-order trade (``ts_recv`` not before the feed clock) for
        the open minute of its root. Such a trade cannot be late and cannot
        precede the trading-day window, so it needs one threshold test (the
        earlier of the next close deadline and the day's end) and one ``< end``
        test. Its price is range-checked only when it makes a new high or low:
        the bar's high and low are already inside ``[pmin, PMAX)``, so a price
        between them is too. Everything else takes :meth:`_trade`, the general
        path.
        """
        Trade, PMX = TradeMsg, PMAX  # globals as locals: this loop runs once per trade
        resolver = self.resolver
        routes = resolver.routes
        clock = self.clock
        nxt = min(self.deadline, resolver.hi)
        for r in records:
            if type(r) is not Trade:
                self.clock = clock
                self.on_other(r)  # may advance the clock or change routes
                clock, routes, nxt = self.clock, resolver.routes, min(self.deadline, resolver.hi)
                continue
            ts = r.ts_recv
            if ts < clock or ts >= nxt:  # trades of one packet share ts_recv: equal is in order
                self.clock = clock
                self._trade(r, ts)
                clock, routes, nxt = self.clock, resolver.routes, min(self.deadline, resolver.hi)
                continue
            clock = ts
            try:  # free in 3.11 unless raised; a subscript beats .get()
                s = routes[r.instrument_id]
            except KeyError:
                s = False  # no mapping seen for it (None: mapped, not a front we publish)
            if not s:
                if self.prev_contract and self._prev_trade(r, clock):
                    nxt = min(self.deadline, resolver.hi)
                elif s is None:
                    self.ignored += 1  # spread, back month, other product: the commonest skip, inline
                else:
                    self.unmapped += 1
                continue
            p = r.price
            if ts < s.end:  # the open minute (end = -1 when none is open)
                if p > s.h:
                    if p >= PMX:
                        self._reject(r, s.root)
                        continue
                    s.h = p
                elif p < s.l:
                    if p < s.pmin:
                        self._reject(r, s.root)
                        continue
                    s.l = p
                s.c = p
                s.v += r.size
                s.n += 1  # counted into self.trades when the bar closes (or is dropped)
                continue
            if not s.pmin <= p < PMX:
                self._reject(r, s.root)
                continue
            self.clock = clock
            self._add(s, r, ts, p)
            nxt = min(self.deadline, resolver.hi)
        self.clock = clock

    def _trade(self, r: TradeMsg, ts: int) -> None:
        """General path: out-of-order trades, a new trading day, a close deadline."""
        if ts > self.clock:
            self.clock = ts
        if not self.resolver.lo <= ts < self.resolver.hi:
            self._new_day(ts)  # also flips back for a straggler of the previous day
        if self.clock >= self.deadline:
            self._close_due()
        s = self.resolver.routes.get(r.instrument_id)
        if s is None:
            if not (self.prev_contract and self._prev_trade(r, self.clock)):
                self._unrouted(r)
            return
        p = r.price
        if not s.pmin <= p < PMAX:
            self._reject(r, s.root)
            return
        self._add(s, r, ts, p)

    def _add(self, s: Series, r: TradeMsg, ts: int, p: int) -> None:
        m = ts - ts % MINUTE
        if m == s.minute:
            if p > s.h:
                s.h = p
            elif p < s.l:
                s.l = p
            s.c = p
            s.v += r.size
            s.n += 1
        elif m > s.minute:
            if self._may_open(s, m, r):
                if s.minute >= 0:
                    self._close(s)
                s.minute, s.end = m, m + MINUTE
                s.o = s.h = s.l = s.c = p
                s.v = r.size
                s.n = 1
                s.contract = self.prev_contract[s.root] if s.prev else self.resolver.front[s.root]
                end = m + MINUTE + self.grace
                if end < self.deadline:
                    self.deadline = end
        else:
            self._late(r, s.root, m)

    def _prev_trade(self, r: TradeMsg, clock: int) -> bool:
        """A trade of a root's previous front during the overlap: into its own series."""
        iid = r.instrument_id
        try:
            s = self.prev_routes[iid]
        except KeyError:
            s = self._prev_route(iid)
        if s is None:
            return False
        self.clock = max(self.clock, clock)
        p = r.price
        if not s.pmin <= p < PMAX:
            self._reject(r, s.root)
        else:
            self._add(s, r, r.ts_recv, p)
        return True

    def _prev_route(self, iid: int) -> Series | None:
        entry = self.resolver.symbols.get(iid)
        if entry is None:
            return None  # not mapped yet: not cached, a later mapping may name it
        root, raw = entry
        s = None
        if root is not None and self.prev_contract.get(root) == raw and root in self.series:
            s = self.prev_series.get(root)
            if s is None:
                front = self.series[root]
                s = self.prev_series[root] = Series(root, front.tick / PX, prev=True)
        self.prev_routes[iid] = s
        return s

    def _unrouted(self, r: TradeMsg) -> None:
        if r.instrument_id in self.resolver.routes:
            self.ignored += 1  # spread, back month, other product
        else:
            self.unmapped += 1  # no SymbolMappingMsg seen for it

    # -- cold paths ---------------------------------------------------------------------
    def _may_open(self, s: Series, m: int, r: TradeMsg) -> bool:
        """False (and counted) when minute ``m`` of this root is already closed."""
        if m <= s.last_pub or m < self.floor or m + MINUTE + self.grace <= self.clock:
            self._late(r, s.root, m)
            return False
        return True

    def _late(self, r: TradeMsg, root: str, m: int) -> None:
        if r.ts_recv < self.replay_until:
            self.replay_dups += 1
            return
        if self.floor - MINUTE <= m < self.floor:
            self.partial += 1  # the minute before the first whole one (live-only start): not published
            return
        self.late += 1
        if self.late <= _LOG_FIRST or self.late % _LOG_EVERY == 0:
            log.warning(
                "late trade #%d for %s: ts_recv %s in minute %s, already closed (clock %s)",
                self.late, root, cme_time.iso_z(r.ts_recv), cme_time.iso_z(m), cme_time.iso_z(self.clock),
            )

    def _reject(self, r: TradeMsg, root: str) -> None:
        self.rejected += 1
        if self.rejected <= _LOG_FIRST or self.rejected % _LOG_EVERY == 0:
            log.warning("rejected trade #%d for %s: price %d (1e-9) out of range", self.rejected, root, r.price)

    def _new_day(self, ts: int) -> None:
        for roll in self.resolver.refresh(ts):
            self.on_roll(roll)
        self.prev_contract = self.overlap(self.resolver.day, dict(self.resolver.front)) if self.overlap else {}
        self.prev_routes = {}

    # -- session boundaries --------------------------------------------------------------
    def resume_point(self) -> int | None:
        """First minute not known complete: a reconnect replays from here."""
        if self.clock == 0:
            return self.floor or None
        return max(self.floor, cme_time.floor_minute_ns(self.clock - self.grace))

    def reset(self, replay_until_ns: int) -> int | None:
        """Drop open (partial) bars before a gap replay; return the resume point."""
        resume = self.resume_point()
        for s in self._all_series():
            if s.minute >= 0 and not s.prev:
                self.trades += s.n  # accepted, then dropped with the partial minute (replayed later)
            s.minute = s.end = -1
        self.deadline = self._next_notice()
        for start, _, _ in self.ready:
            self.deadline = min(self.deadline, start + MINUTE + self.grace)
        if resume is not None:
            self.floor = resume
        self.replay_until = max(self.replay_until, replay_until_ns)
        return resume

    def restore(self, last_published: dict[str, int]) -> int | None:
        """Start-up after a crash: minutes up to each root's logged bar are done.

        The latest logged bar (any root) bounds what was closed: every minute
        before it was closed first (bars are logged in closing order), so
        replay resumes at that minute and skips what each root already has.
        """
        for root, start in last_published.items():
            if root in self.series:
                self.series[root].last_pub = max(self.series[root].last_pub, start)
        if not last_published:
            return None
        self.floor = max(self.floor, max(last_published.values()))
        return self.floor

    def set_roots(self, ticks: dict[str, float]) -> None:
        """Config reload: keep existing series (and their marks), add new, drop removed."""
        self.series = {root: self.series.get(root) or Series(root, ticks[root]) for root in self.resolver.roots}
        self.resolver.bind(self.series)

    def open_bars(self) -> int:
        return sum(1 for s in self._all_series() if s.minute >= 0)

    def counters(self) -> dict[str, int]:
        return {
            "trades": self.trades + sum(s.n for s in self.series.values() if s.minute >= 0),
            "bars": self.bars,
            "late": self.late,
            "rejected": self.rejected,
            "ignored": self.ignored,
            "unmapped": self.unmapped,
            "replay_dups": self.replay_dups,
            "partial": self.partial,
            "prev_bars": self.prev_bars,
            "prev_trades": self.prev_trades + sum(s.n for s in self.prev_series.values() if s.minute >= 0),
        }
