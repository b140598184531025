"""A realistic status-document sequence: the demo's sandbox market (seed 7) replayed at 60x,
checked every 5 wall seconds the way the supervisor's AlertLoop does (used by test_rules.py and
to count the alerts of the old rules; see the README of issue #20 in docs/supervisor.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import numpy as np

from multialpha import cme_time

THIN = ["6M", "6N", "PL", "ZB"]
DEMO_START = datetime(2025, 11, 30, 23, 0, tzinfo=timezone.utc)  # the first session open of the demo


def front_bars(market: Any, root: str, first: datetime, last: datetime) -> list[datetime]:
    """Start times of the bars of the most-traded outright of ``root`` per trading day (the hub's
    front contract, near enough for lag statistics)."""
    out: list[datetime] = []
    for day in cme_time.trading_days(cme_time.trading_day(first), cme_time.trading_day(last)):
        b = market.minute_bars(root, day)
        outright = [i for i in np.unique(b["instrument_id"])
                    if (inst := market.instrument_by_id(int(i), day)) is not None and not inst.is_spread]
        if not outright:
            continue
        ids, counts = np.unique(b["instrument_id"][np.isin(b["instrument_id"], outright)], return_counts=True)
        front = ids[np.argmax(counts)]
        out += [cme_time.from_ns(int(t)) for t in b["ts_event"][b["instrument_id"] == front]]
    return sorted(t for t in out if first <= t < last)


def documents(bars: dict[str, list[datetime]], start: datetime, wall_s: float, speed: float = 60.0,
              every_s: float = 5.0, publish_delay_s: float = 1.0) -> Iterator[tuple[float, dict[str, Any],
                                                                                     dict[str, list[datetime]]]]:
    """(wall seconds since start, status document, bars published since the previous check)."""
    idx = {s: 0 for s in bars}
    wall = 0.0
    while wall <= wall_s:
        now = start + timedelta(seconds=wall * speed)
        new: dict[str, list[datetime]] = {}
        rows = []
        for sym, starts in bars.items():
            i = idx[sym]
            while i < len(starts) and starts[i] + timedelta(seconds=60 + publish_delay_s) <= now:
                i += 1
            new[sym] = starts[idx[sym]:i]
            idx[sym] = i
            last = starts[i - 1] if i else None
            lag = round((now - (last + timedelta(seconds=60))).total_seconds(), 1) if last else None
            rows.append({"symbol": sym, "last_bar": cme_time.iso_z(last) if last else None, "lag_s": lag})
        doc = {
            "clock": {"source": "sandbox", "market_now": cme_time.iso_z(now)},
            "market_open": cme_time.is_open(now),
            "processes": [{"name": "hub", "state": "running", "detail": "live"}],
            "symbols": rows,
            "portfolio": {"available": False},
        }
        yield wall, doc, new
        wall += every_s


def run(make_rules: Callable[[Callable[[], float]], Any], bars: dict[str, list[datetime]], start: datetime,
        wall_s: float, learn: bool = True) -> Any:
    """Drive rules made by ``make_rules(clock)`` over the sequence; returns the rules object."""
    now = [0.0]
    rules = make_rules(lambda: now[0])
    for wall, doc, new in documents(bars, start, wall_s):
        now[0] = wall
        if learn and hasattr(rules, "lag"):
            for sym, starts in new.items():
                rules.lag.observe_many(sym, starts)
        rules.check(doc)
    return rules
