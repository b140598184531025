"""From order-journal events (live, paper or a backtest's) to the fills the report computes on.

An accepted intent is a fill unless its outcome says the broker never got it (rejected,
expired, failed, abandoned) and no operator reviewed it afterwards: an entry that was
never filled holds no position, and an exit that was not delivered leaves its position
open. Ambiguous and unresolved orders count as filled (the gate keeps them on the book
too) until an operator says otherwise. A malformed event is logged and skipped.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, Mapping

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.orders.journal import ENTRY_RELEASED  # an entry with one of these never held a position
from multialpha.report.compute import _MINUTE, Fill

log = logging.getLogger(__name__)



def fills(settings: Settings, events: Iterable[Mapping[str, str]]) -> tuple[list[Fill], int]:
    """The fills in journal order, and how many entries the gate or the router denied."""
    intents: list[Mapping[str, str]] = []
    outcome: dict[str, str] = {}
    reviewed: set[str] = set()
    denied = 0
    for ev in events:
        kind, oid = ev.get("event"), ev.get("order_id", "")
        if kind == "intent" and ev.get("kind") in ("entry", "exit"):
            intents.append(ev)
        elif kind == "outcome":
            outcome[oid] = ev.get("result", "")
        elif kind == "reviewed":
            reviewed.add(oid)
        elif kind in ("denied", "expired") and ev.get("kind") == "entry":
            denied += 1
    out = []
    for ev in intents:
        oid = ev.get("order_id", "")
        if outcome.get(oid) in ENTRY_RELEASED and oid not in reviewed:
            continue
        f = _fill(settings, ev)
        if f is not None:
            out.append(f)
    return out, denied


def _fill(settings: Settings, ev: Mapping[str, str]) -> Fill | None:
    try:
        strategy, symbol = ev["strategy"], ev["symbol"]
        spec = settings.instruments[symbol]
        commission = settings.commission(strategy, symbol) if strategy in settings.strategies else spec.commission
        head = ev.get("signal_reason", "").split(":", 1)[0]
        at = cme_time.parse_iso(ev["bar_start"]) + _MINUTE  # the fill: the signal bar's close
        return Fill(
            strategy=strategy, symbol=symbol, side=ev["side"], kind=ev["kind"], quantity=int(ev["quantity"]),
            contract=ev.get("contract", ""), at=at, signal_price=float(ev["price"]),
            fill_price=float(ev["fill_price"]) if ev.get("fill_price") else None,
            tick=spec.tick_size, multiplier=spec.multiplier, commission=commission,
            tag=head if head in ("roll", "expiry") else "",
        )
    except (KeyError, ValueError, TypeError) as e:  # a hand-edited or foreign entry: skip, say so
        log.warning("journal entry %s skipped: %s: %s", ev.get("id", "?"), type(e).__name__, e)
        return None


def read_journal(client: object, settings: Settings) -> Iterator[dict[str, str]]:
    """Every journal event, oldest first, read in pages (the stream holds up to a million)."""
    from multialpha.keys import Keys
    from multialpha.orders.review import _batches

    for batch in _batches(client, Keys(settings.redis.namespace)):  # type: ignore[arg-type]
        yield from batch
