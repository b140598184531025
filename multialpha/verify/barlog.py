"""A trading day's bars as the hub published them: its bar logs in Redis, not Historical.

The bar log (``Keys.bar_log``: stream id = bar start in ms, the hub's JSON fields) is
exactly what the workers traded on: every minute they received live was XADDed in the
same Lua step that published it. The previous front's log (``Keys.prev_bar_log``) holds
the old contract's minutes during a roll overlap, as the hub's ``prev`` channel did.

A log capped by ``hub.bar_log_maxlen`` may no longer hold the whole day: that is detected
(:func:`check_covered`) and reported as :class:`BarLogGap`, never verified on half a day.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from multialpha import cme_time
from multialpha.backtest.data import SymbolBar
from multialpha.bar import BarError
from multialpha.hub.publisher import bar_from_log
from multialpha.keys import Keys
from multialpha.worker.routing import minute_ohlcv

log = logging.getLogger(__name__)

PAGE = 5_000  # XRANGE page: a trading day is at most 1,380 minutes per symbol


class BarLogGap(RuntimeError):
    """The bar log no longer covers the day (trimmed by ``hub.bar_log_maxlen``, or flushed)."""


def _read(client: Any, key: str, start: datetime, end: datetime) -> list[tuple[str, dict[Any, Any]]]:
    """Entries with ids in [start, end), paged."""
    out: list[tuple[str, dict[Any, Any]]] = []
    lo, hi = f"{cme_time.to_ms(start)}-0", f"({cme_time.to_ms(end)}-0"  # full ids: "(ms" alone would mean ms-<max seq>
    while True:
        page = client.xrange(key, min=lo, max=hi, count=PAGE)
        out.extend(page)
        if len(page) < PAGE:
            return out
        last = page[-1][0]
        lo = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def _bars(client: Any, key: str, symbol: str, start: datetime, end: datetime, prev: bool) -> list[SymbolBar]:
    out = []
    for sid, fields in _read(client, key, start, end):
        try:
            b = bar_from_log(fields)
        except BarError as e:  # the worker drops such an entry too (its catch-up): so does the replay
            log.warning("bar log %s entry %s dropped: %s", key, sid, e)
            continue
        o = minute_ohlcv(b.start, b.open, b.high, b.low, b.close, b.volume)
        out.append(SymbolBar(symbol, o, b.contract, prev))
    return out


def _id_ms(sid: Any) -> int:
    return int((sid.decode() if isinstance(sid, bytes) else str(sid)).split("-")[0])


def check_covered(client: Any, keys: Keys, symbols: list[str], day: date) -> None:
    """Raise :class:`BarLogGap` when a symbol's log may have lost entries of the day.

    Trimming (``hub.bar_log_maxlen``) removes the oldest entries. A stream that lost entries
    (``entries-added`` > ``length``) and whose oldest survivor is after the day's open may
    have lost the day's first minutes: reported (a thin symbol whose first trade came after
    the open is then reported too — failing safe, never half a day verified). A stream that
    never lost anything is whole, whenever its first entry. ``XDEL`` of an entry in or after
    the day (``max-deleted-entry-id``) counts too.
    """
    import redis

    open_ms = cme_time.to_ms(cme_time.session_bounds(day)[0])
    for sym in symbols:
        try:
            info = client.xinfo_stream(keys.bar_log(sym))
        except redis.ResponseError:
            continue  # no such stream: nothing was ever logged (no bars: the caller says so)
        first = info.get("first-entry")
        lost = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
        deleted = _id_ms(info.get("max-deleted-entry-id") or "0-0")
        if deleted >= open_ms or (lost and first and _id_ms(first[0]) > open_ms):
            raise BarLogGap(
                f"bar log of {sym} lost entries of trading day {day} (its oldest entry is "
                f"{cme_time.iso_z(cme_time.from_ns(_id_ms(first[0]) * 1_000_000)) if first else 'gone'}): "
                "trimmed by hub.bar_log_maxlen; the day cannot be verified")


def day_bars(client: Any, keys: Keys, symbols: list[str], day: date
             ) -> tuple[dict[str, list[SymbolBar]], dict[str, list[SymbolBar]]]:
    """(front bars, previous-front bars) per symbol with start in the trading day, sorted."""
    open_, close = cme_time.session_bounds(day)
    check_covered(client, keys, symbols, day)
    front = {s: _bars(client, keys.bar_log(s), s, open_, close, False) for s in symbols}
    prev = {s: got for s in symbols if (got := _bars(client, keys.prev_bar_log(s), s, open_, close, True))}
    return front, prev


def last_close_before(client: Any, keys: Keys, symbol: str, contract: str, before: datetime,
                      look_back: timedelta = timedelta(days=4)) -> SymbolBar | None:
    """The newest bar of ``contract`` that started before ``before`` (front or previous-front log):
    the gate's reference price of a carried position for the next day's P&L."""
    best: SymbolBar | None = None
    for key, prev in ((keys.bar_log(symbol), False), (keys.prev_bar_log(symbol), True)):
        for sid, fields in client.xrevrange(key, max=f"({cme_time.to_ms(before)}-0", min=f"{cme_time.to_ms(before - look_back)}-0",
                                            count=PAGE):
            try:
                b = bar_from_log(fields)
            except BarError:
                continue
            if b.contract == contract:
                if best is None or b.start > best.bar.start:
                    best = SymbolBar(symbol, minute_ohlcv(b.start, b.open, b.high, b.low, b.close, b.volume),
                                     b.contract, prev)
                break
    return best
