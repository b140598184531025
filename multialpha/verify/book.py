"""The portfolio at a trading day's open, rebuilt from the order journal, and put into a private gate.

Live, the gate's book is only ever *now*; the journal keeps how it got there. Walking the
journal up to the day's open gives the positions each strategy carried into the day:
an accepted entry (``event == intent``, ``kind == entry``) opens one, an accepted exit
closes it, and an entry whose outcome said the broker never took it (``rejected``,
``expired``) frees its slot again, as the gate's ``release`` does.

:func:`seed` replays those entries through the real gate (Lua) of the verify run's private
Redis, stamped at their own entry bars, and marks each at the last close of its contract
before the open (from the bar log): the gate then measures the day's P&L of a carried
position from that reference, as it did live. Strategies restore their books from this
gate when their first bar of the day arrives (``Worker._restore``), as a restarted worker
would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

from multialpha import cme_time
from multialpha.orders.journal import ENTRY_RELEASED



@dataclass(frozen=True)
class Held:
    strategy: str
    symbol: str
    side: str
    quantity: int
    price: float
    contract: str
    bar_start: str  # the entry's signal bar (ISO Z): the gate's entry_time
    order_id: str


def positions_at_open(journal: Iterable[Mapping[str, str]], day: date) -> list[Held]:
    """Positions open at the open of trading ``day``, per the journal (oldest entry first)."""
    open_ms = cme_time.to_ms(cme_time.session_bounds(day)[0])
    held: dict[tuple[str, str], Held] = {}
    by_id: dict[str, tuple[str, str]] = {}
    for j in journal:
        ev = j.get("event")
        if ev == "intent" and "kind" in j:
            bar = j.get("bar_start", "")
            if not bar or cme_time.to_ms(cme_time.parse_iso(bar)) >= open_ms:
                continue
            key = (j["strategy"], j["symbol"])
            if j["kind"] == "entry":
                held[key] = Held(j["strategy"], j["symbol"], j.get("side", ""), int(j.get("quantity") or 0),
                                 float(j.get("price") or 0.0), j.get("contract", ""), bar, j.get("order_id", ""))
                by_id[j.get("order_id", "")] = key
            else:
                held.pop(key, None)
        elif ev == "outcome" and j.get("result") in ENTRY_RELEASED:
            ts = j.get("ts", "")
            key = by_id.get(j.get("order_id", ""), ("", ""))
            if ts and cme_time.to_ms(cme_time.parse_iso(ts)) < open_ms and key in held \
                    and held[key].order_id == j.get("order_id"):
                del held[key]
    return sorted(held.values(), key=lambda h: (h.bar_start, h.strategy, h.symbol))


def seed(settings: Any, client: Any, held: list[Held], day: date, marks: Mapping[tuple[str, str], Any]) -> None:
    """Put ``held`` into the gate of ``client`` (the verify run's private Redis).

    ``marks[(symbol, contract)]``: the last bar of that contract before the day's open (a
    :class:`~multialpha.backtest.data.SymbolBar`, or None): its close becomes the day's reference.
    Seeded journal entries carry ``seed=1`` and are left out of the comparison.
    """
    from multialpha.portfolio.gate import Gate

    gate = Gate(settings, client)
    for h in held:
        at = cme_time.parse_iso(h.bar_start)
        res = gate.submit(
            now=at, day_at=at, order_id=f"verify-seed-{h.order_id or h.strategy + '-' + h.symbol}", kind="entry",
            strategy=h.strategy, symbol=h.symbol, direction=1 if h.side == "long" else -1, quantity=h.quantity,
            price=h.price, contract=h.contract, entry_time=at, deliver_now=True,
            journal={"seed": "1", "strategy": h.strategy, "symbol": h.symbol, "kind": "entry", "side": h.side,
                     "bar_start": h.bar_start, "quantity": str(h.quantity)},
        )
        if res.status != "accepted":
            raise RuntimeError(f"could not seed {h.strategy} {h.symbol} into the replay's gate: {res.reason}")
        bar = marks.get((h.symbol, h.contract))
        if bar is not None:
            gate.mark(h.strategy, h.symbol, bar.close, bar.bar.start, contract=h.contract, day_at=bar.bar.start)


def is_seed(entry: Mapping[str, str]) -> bool:
    return entry.get("seed") == "1"
