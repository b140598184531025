"""The base class every plugin strategy subclasses: the bridge to the runtime.

A plugin writes ordinary Backtrader logic in ``next()`` and expresses intent
with :meth:`MultiAlphaStrategy.enter` / :meth:`exit`; it never sees Redis,
HTTP or the broker. ``next()`` runs on *every* Cerebro step, warmup included:
Backtrader calls ``prenext()`` while any feed is shorter than its minimum
period (during warmup the minute feeds are empty, so every warmup step), and
:meth:`MultiAlphaStrategy.prenext` runs ``next()`` — a plugin never needs
``prenext = next`` and its rules see every warmup hour and day.

Where the intent goes is the ``runtime`` parameter's business (:class:`StrategyRuntime`):

- the live worker: during warmup and (by default) catch-up only the
  strategy's own book moves; live entries go features -> ML veto -> order
  router, exits of real positions go to the router;
- a backtest: a simulated router;
- no runtime at all: every signal is simulated (handy in unit tests).

Nothing here assumes a live feed, so the same class runs in `multialpha backtest`.
Feeds are named ``ES`` (minute), ``ES_hour``, ``ES_day`` and by reference
alias (``VIX``, ``ZB_hour``); use :meth:`feed` / :meth:`ref` to get them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

import backtrader as bt

Side = Literal["long", "short"]
UTC = timezone.utc
_LENGTH = operator.attrgetter("lencount")  # a line buffer's length, read without a Python call


@dataclass
class BookPosition:
    """The strategy's view of one symbol's position; ``real`` = held at the broker/journal."""

    symbol: str
    side: Side
    quantity: int
    entry_price: float
    entry_time: datetime
    real: bool = False


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    real: bool = False
    reason: str = ""


class StrategyRuntime(Protocol):
    def on_signal(
        self, strategy: "MultiAlphaStrategy", kind: str, symbol: str, side: Side, price: float, reason: str
    ) -> Outcome: ...

    def on_live(self, strategy: "MultiAlphaStrategy") -> None: ...

    def before_next(self, strategy: "MultiAlphaStrategy") -> None: ...

    def after_next(self, strategy: "MultiAlphaStrategy") -> None: ...


class MultiAlphaStrategy(bt.Strategy):
    """Subclass this; declare your own ``params``; call enter/exit from ``next``."""

    params = (("runtime", None), ("symbols", ()), ("quantities", {}))

    # State is created lazily so subclasses need not call super().__init__().
    @property
    def book(self) -> dict[str, BookPosition]:
        return self.__dict__.setdefault("_ma_book", {})

    @property
    def _status(self) -> dict[str, int]:
        return self.__dict__.setdefault("_ma_status", {})

    # -- feeds ------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.p.symbols)

    def feed(self, symbol: str, timeframe: str = "minute") -> Any:
        """The feed of a traded symbol: 'minute', 'hour' or 'day'."""
        return self.getdatabyname(symbol if timeframe == "minute" else f"{symbol}_{timeframe}")

    def ref(self, alias: str) -> Any:
        """A reference feed by its config alias (VIX, TLT_day, ZB_hour …)."""
        return self.getdatabyname(alias)

    @staticmethod
    def ready(*datas: Any) -> bool:
        """True when every given feed has at least one bar (indexing before that raises)."""
        return all(len(d) > 0 for d in datas)

    @staticmethod
    def symbol_of(data: Any) -> str:
        return getattr(data.p, "symbol", "") or data._name.split("_")[0]

    def bar_time(self, data: Any) -> datetime:
        """Aware UTC close stamp of the feed's current bar."""
        return data.datetime.datetime(0).replace(tzinfo=UTC)

    # -- intent -------------------------------------------------------------------
    def position_of(self, data_or_symbol: Any) -> BookPosition | None:
        sym = data_or_symbol if isinstance(data_or_symbol, str) else self.symbol_of(data_or_symbol)
        return self.book.get(sym)

    def quantity_for(self, symbol: str) -> int:
        return int(dict(self.p.quantities).get(symbol, 1))

    def enter(self, data: Any, side: Side, reason: str = "") -> bool:
        """Open a position in ``data``'s symbol at the signal bar's close; False if refused."""
        sym = self.symbol_of(data)
        if sym in self.book or side not in ("long", "short"):
            return False
        price = self.raw_price(data)
        out = self._signal("entry", sym, side, price, reason)
        if out.accepted:
            self.book[sym] = BookPosition(sym, side, self.quantity_for(sym), price, self.bar_time(data), out.real)
        return out.accepted

    def exit(self, data: Any, reason: str = "") -> bool:
        """Close the position in ``data``'s symbol; False if there is none or it was refused."""
        sym = self.symbol_of(data)
        pos = self.book.get(sym)
        if pos is None:
            return False
        out = self._signal("exit", sym, pos.side, self.raw_price(data), reason)
        if out.accepted:
            del self.book[sym]
        return out.accepted

    @staticmethod
    def raw_price(data: Any) -> float:
        """The current bar's close as traded: a roll-adjusted hour/day bar carries its raw close
        (worker/adjust.py); orders, marks and P&L never use an adjusted price."""
        raw = getattr(data, "raw_close", None)
        return float(data.close[0]) if raw is None else float(raw)

    @staticmethod
    def adjusted_close(data: Any) -> float:
        """The current close in the roll-adjusted level of the symbol's hour/day series: compare a
        minute price with an hourly indicator through this (after a roll during a run the series
        continues in the level of the contract the worker started on; worker/adjust.py)."""
        level = getattr(data, "level", None)
        return float(data.close[0]) if level is None else float(level(data.close[0]))

    def _signal(self, kind: str, sym: str, side: Side, price: float, reason: str) -> Outcome:
        rt = self.p.runtime
        if rt is None:
            return Outcome(True, False, "simulated")
        return rt.on_signal(self, kind, sym, side, price, reason)

    def restore_book(self, positions: list[BookPosition]) -> None:
        """Replace the simulated book by the positions really held (called going live)."""
        self.book.clear()
        self.book.update({p.symbol: p for p in positions})

    # -- Backtrader plumbing ------------------------------------------------------
    def prenext(self) -> None:
        """Run the rules on warmup steps too (FIELD_NOTES, "prenext vs next").

        Backtrader calls ``prenext`` instead of ``next`` while any feed (or
        indicator) is shorter than its minimum period. Warmup delivers hour and
        day bars while the minute feeds are still empty, so *every* warmup step
        lands here; without this, a strategy implementing only ``next`` would
        see none of them and start live with empty channels and unseeded
        indicators. Signals raised here are safe: with the minute feed empty
        (or in phase ``warmup``) the runtime only moves the strategy's own book.
        """
        self.next()

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self._status[data._name] = status
        if (
            not self.all_live
            and len(self._status) == len(self.datas)
            and all(s == data.LIVE for s in self._status.values())
        ):
            self.__dict__["_ma_live"] = True
            if self.p.runtime is not None:
                self.p.runtime.on_live(self)

    @property
    def all_live(self) -> bool:
        """True once every feed has reported LIVE (always False in a backtest)."""
        return bool(self.__dict__.get("_ma_live"))

    # Backtrader's per-step bookkeeping, reading each feed's length and time straight from its
    # datetime line buffer. len(feed) is three nested calls and feed.datetime a __getattr__
    # fallback; Backtrader does 24 such lens per step with 6 feeds (~15% of a step). Same values:
    # a feed's lines move together, and a buffer's length is its ``lencount``.
    def _clock_buffers(self) -> list[Any]:
        bufs = self.__dict__.get("_ma_clock")
        if bufs is None:
            bufs = self.__dict__["_ma_clock"] = [d.lines.datetime for d in self.datas]
        return bufs

    def _clk_update(self) -> int:
        if self._oldsync:
            return super()._clk_update()
        bufs = self._clock_buffers()
        lens = list(map(_LENGTH, bufs))
        if any(map(operator.gt, lens, self._dlens)):
            self.forward()
        self.lines.datetime[0] = max([b[0] for b, n in zip(bufs, lens) if n])
        self._dlens = lens
        return len(self)

    def _getminperstatus(self) -> int:
        self._minperstatus = status = max(map(operator.sub, self._minperiods, map(_LENGTH, self._clock_buffers())))
        return status

    def _next(self) -> None:
        rt = self.p.runtime
        if rt is not None:
            rt.before_next(self)
        super()._next()
        if rt is not None:
            rt.after_next(self)
        bus = getattr(self.datas[0], "bus", None) if self.datas else None
        if bus is not None:
            bus.step_done()


def minute_bar_start(data: Any) -> datetime:
    """UTC start of a minute feed's current bar (its stamp is the close)."""
    return data.datetime.datetime(0).replace(tzinfo=UTC) - timedelta(minutes=1)
