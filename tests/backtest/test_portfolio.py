"""--all under the shared portfolio: max positions across strategies, the daily stop, determinism.

The real gate (Lua) and OrderRouter (paper) decide, in a private redis-server,
on the simulated clock.
"""

from __future__ import annotations

from datetime import timedelta

from multialpha import cme_time
from multialpha.backtest import results
from tests.backtest.helpers import run, veto

ALL = ["ibs_a", "ibs_b", "breakout"]


def test_all_obeys_max_positions_and_is_deterministic(make_settings, source) -> None:
    # No daily stop here (its flatten frees slots mid-day: tests/backtest/test_daily_stop_flatten.py).
    settings = veto(make_settings(portfolio={"max_positions": 2, "daily_stop_loss": 1e9}), "off")
    first = run(settings, ALL, source)
    orders = results.orders(first)
    accepted = [o for o in orders if o.decision == "accepted"]
    assert {o.strategy for o in accepted} >= {"breakout"} and len({o.strategy for o in orders}) >= 2
    held: set[tuple[str, str]] = set()
    most = 0
    for o in accepted:  # journal order is the gate's decision order
        if o.kind == "entry":
            held.add((o.strategy, o.symbol))
        else:
            held.discard((o.strategy, o.symbol))
        most = max(most, len(held))
    assert most == 2  # reached the limit, never above it
    assert any(o.decision == "denied" and o.reason.startswith("max positions: 2 of 2") for o in orders)

    again = run(settings, ALL, source)
    assert results.accepted_keys(again) == results.accepted_keys(first)
    assert [(o.key(), o.decision, o.reason) for o in results.orders(again)] == \
        [(o.key(), o.decision, o.reason) for o in orders]


def test_daily_stop_latches_for_the_trading_day_and_resets_at_17_ct(make_settings, source) -> None:
    # A $1 stop: the first entry's commission ($2.50) trips it for the rest of that trading day.
    settings = veto(make_settings(portfolio={"max_positions": 50, "daily_stop_loss": 1.0}), "off")
    r = run(settings, ["breakout"], source)
    entries = [j for j in r.journal if j.get("kind") == "entry" and j["event"] in ("intent", "denied")]
    by_day: dict[object, list[dict[str, str]]] = {}
    for j in entries:
        by_day.setdefault(cme_time.trading_day(cme_time.parse_iso(j["bar_start"])), []).append(j)
    stopped_days = [d for d, js in by_day.items() if any(j["reason"].startswith("daily stop loss") for j in js)]
    assert len(stopped_days) >= 2
    for day in stopped_days:
        js = by_day[day]
        first_stop = next(i for i, j in enumerate(js) if j["reason"].startswith("daily stop loss"))
        assert all(j["event"] == "denied" for j in js[first_stop:]), "stop must latch for the whole trading day"
        assert f"trading day {day.isoformat()}" in js[first_stop]["reason"]
    # Each new trading day starts unstopped: its first entry is accepted. The gate's day is the signal
    # bar's (a signal on the session's last minute counts for that day, though seen after 16:00 CT).
    for day in sorted(by_day):
        first = by_day[day][0]
        assert first["event"] == "intent", (day, first["reason"])
        assert cme_time.parse_iso(first["bar_start"]) >= cme_time.session_bounds(cme_time.previous_trading_day(day))[1]
    assert len(by_day) >= 2 and len(stopped_days) >= 2
    # P&L from config: multiplier x points x quantity, commission per side on both legs.
    tl = results.trades(r)
    assert tl
    for t in (t for t in tl if not t.open):
        d = 1 if t.side == "long" else -1
        mult, comm = settings.instruments[t.symbol].multiplier, settings.commission("breakout", t.symbol)
        assert abs(t.pnl - (d * t.quantity * mult * (t.exit_price - t.entry_price) - 2 * t.quantity * comm)) < 1e-6
    # Trades opened and closed within one trading day: the gate's realised P&L of that day agrees.
    # (The gate's day is the signal bar's.)
    def day_of(iso: str) -> object:
        return cme_time.trading_day(cme_time.parse_iso(iso))

    checked = 0
    for day in {day_of(t.entry_time) for t in tl}:
        same = [t for t in tl if not t.open and day_of(t.entry_time) == day == day_of(t.exit_time)]
        others = [t for t in tl if t not in same and day in {day_of(x) for x in (t.entry_time, t.exit_time) if x}]
        if same and not others:
            assert abs(r.day_realized[day.isoformat()] - sum(t.pnl for t in same)) < 1e-6
            checked += 1
    assert checked >= 1
