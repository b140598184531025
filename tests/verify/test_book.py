"""The book at a day's open, from the journal, seeded into a real gate (Lua) in a real Redis."""

from __future__ import annotations

from datetime import date, timedelta

from multialpha import cme_time
from multialpha.backtest.data import SymbolBar
from multialpha.portfolio.gate import Gate
from multialpha.verify import book
from multialpha.worker.routing import minute_ohlcv

DAY = date(2025, 12, 10)
OPEN = cme_time.session_bounds(DAY)[0]


def intent(oid: str, strategy: str, symbol: str, kind: str, bar: str, side: str = "long", price: str = "100.0",
           contract: str = "") -> dict[str, str]:
    return {"event": "intent", "order_id": oid, "strategy": strategy, "symbol": symbol, "kind": kind, "side": side,
            "quantity": "1", "price": price, "contract": contract or f"{symbol}Z5", "bar_start": bar}


JOURNAL = [
    intent("1", "ibs_a", "GC", "entry", "2025-12-08T15:00:00Z", price="4000.0", contract="GCG6"),
    intent("2", "ibs_a", "GC", "exit", "2025-12-09T15:00:00Z"),             # closed before the day
    intent("3", "ibs_b", "6B", "entry", "2025-12-08T23:58:00Z", price="1.3177", contract="6BH6"),  # carried
    intent("4", "breakout", "ES", "entry", "2025-12-09T18:59:00Z", side="short", price="6100.25"),
    {"event": "outcome", "order_id": "4", "result": "rejected", "ts": "2025-12-09T18:59:01Z"},  # never held
    intent("5", "breakout", "RTY", "entry", "2025-12-09T19:59:00Z", side="short", price="2385.9", contract="RTYZ5"),
    intent("6", "breakout", "RTY", "exit", "2025-12-10T01:00:00Z"),       # exit during the day: still carried
    intent("7", "ibs_a", "CL", "entry", "2025-12-09T23:30:00Z"),           # the day's own entry
]


def test_positions_at_open_follow_entries_exits_and_released_slots() -> None:
    held = book.positions_at_open(JOURNAL, DAY)
    assert [(h.strategy, h.symbol, h.side, h.contract, h.price) for h in held] == [
        ("ibs_b", "6B", "long", "6BH6", 1.3177), ("breakout", "RTY", "short", "RTYZ5", 2385.9)]
    # 12-09 opens 2025-12-08T23:00Z: the 6B entry at 23:58Z is that day's own, not carried into it.
    assert book.positions_at_open(JOURNAL, date(2025, 12, 9)) == [
        book.Held("ibs_a", "GC", "long", 1, 4000.0, "GCG6", "2025-12-08T15:00:00Z", "1")]


def test_seed_puts_the_book_into_the_gate_with_the_previous_close_as_reference(redis_client, settings_for) -> None:
    settings = settings_for()
    held = book.positions_at_open(JOURNAL, DAY)
    last = OPEN - timedelta(hours=1, minutes=1)  # 12-09 15:59 CT
    marks = {("RTY", "RTYZ5"): SymbolBar("RTY", minute_ohlcv(last, 2380.0, 2380.0, 2380.0, 2380.0, 5), "RTYZ5")}
    book.seed(settings, redis_client, held, DAY, marks)

    gate = Gate(settings, redis_client)
    pos = {p["symbol"]: p for p in gate.positions()}
    assert sorted(pos) == ["6B", "RTY"]
    assert pos["RTY"]["dir"] == "-1" and float(pos["RTY"]["entry_price"]) == 2385.9 and pos["RTY"]["state"] == "open"
    assert float(pos["RTY"]["mark"]) == 2380.0 and pos["RTY"]["ref_day"] == "2025-12-09"
    # The day's P&L of the carried short runs from the previous close: a mark 1 point higher on DAY
    # loses 1 x multiplier (not entry-to-mark).
    mult = settings.instruments["RTY"].multiplier
    pnl = gate.mark("breakout", "RTY", 2381.0, OPEN + timedelta(minutes=5), contract="RTYZ5")
    assert pnl.pnl == -1.0 * mult
    seeded = [dict(f) for _, f in redis_client.xrange(f"{settings.redis.namespace}:orders")]
    assert len(seeded) == 2 and all(book.is_seed(e) for e in seeded)


def test_an_entry_that_failed_or_was_abandoned_holds_nothing_at_the_open() -> None:
    """Every outcome after which the live gate frees an entry's slot (settlement: rejected, expired,
    failed, abandoned) leaves no position to seed; an ambiguous entry keeps its slot and is seeded."""
    journal = []
    for oid, result, sym in (("f", "failed", "NQ"), ("a", "abandoned", "YM"), ("x", "expired", "ZB"),
                             ("m", "ambiguous", "6E")):
        journal += [intent(oid, "breakout", sym, "entry", "2025-12-09T19:00:00Z"),
                    {"event": "outcome", "order_id": oid, "result": result, "ts": "2025-12-09T19:00:05Z"}]
    assert [h.symbol for h in book.positions_at_open(journal, DAY)] == ["6E"]
