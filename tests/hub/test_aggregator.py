from __future__ import annotations

from pathlib import Path

import pytest
from databento_dbn import UNDEF_PRICE

from multialpha.bar import Bar
from multialpha.contracts import ContractMap
from multialpha.hub.aggregator import Aggregator
from multialpha.hub.resolver import Resolver, Roll
from tests.hub.records import MIN, NS, heartbeat, mapping, ns, trade

REPO = Path(__file__).resolve().parents[2]
TICKS = {"ES": 0.25, "CL": 0.01, "6J": 0.0000005, "ZB": 0.03125}
T0 = ns("2025-12-01T15:00:00Z")  # Monday, trading day 2025-12-01: ESZ5 is the front


class Rig:
    def __init__(self, grace_s: float = 1.0) -> None:
        cmap = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml")
        self.resolver = Resolver(cmap, TICKS, {r: f"{r}.FUT" for r in TICKS})
        self.bars: list[Bar] = []
        self.rolls: list[Roll] = []
        self.closed: list[int] = []  # minute-close notices
        self.agg = Aggregator(self.resolver, TICKS, self.bars.append, grace_s, self.rolls.append, self.other,
                              self.closed.append)
        for rec in (
            mapping(1, "ESZ5", "ES.FUT"), mapping(2, "ESH6", "ES.FUT"), mapping(3, "ESZ5-ESH6", "ES.FUT"),
            mapping(4, "CLF6", "CL.FUT"), mapping(5, "6JZ5", "6J.FUT"), mapping(6, "ZBH6", "ZB.FUT"),
        ):
            self.other(rec)

    def other(self, rec) -> None:
        if type(rec).__name__ == "SymbolMappingMsg":
            self.resolver.on_mapping(rec.instrument_id, rec.stype_in_symbol, rec.stype_out_symbol)
        else:
            self.agg.advance(rec.ts_event)

    def feed(self, *recs) -> list[Bar]:
        n = len(self.bars)
        self.agg.process(list(recs))
        return self.bars[n:]


def test_bar_fields_exact_and_emitted_at_the_minute_deadline():
    rig = Rig()
    out = rig.feed(
        trade(1, T0 + 1 * NS, 6000.25, 2),
        trade(1, T0 + 10 * NS, 6001.50, 3),
        trade(1, T0 + 20 * NS, 5999.75, 1),
        trade(1, T0 + 59 * NS, 6000.00, 4),
    )
    assert out == []  # the minute is still open
    # The next minute's trade completes the bar; it waits for its minute's deadline (other roots).
    assert rig.feed(trade(1, T0 + MIN + 1, 6002.0, 1)) == []
    (bar,) = rig.feed(heartbeat(T0 + MIN + NS))
    assert bar.to_dict() == {
        "symbol": "ES", "timestamp": "2025-12-01T15:00:00Z", "open": 6000.25, "high": 6001.5, "low": 5999.75,
        "close": 6000.0, "volume": 10, "contract": "ESZ5", "trades": 4, "source": "live",
    }


def test_bucketed_on_ts_recv_half_open_interval():
    rig = Rig()
    # ts_event says minute 0 for all three; ts_recv decides.
    rig.feed(
        trade(1, T0 + MIN - 1, 6000.0, 1, ts_event=T0 + 1),
        trade(1, T0 + MIN, 6001.0, 1, ts_event=T0 + 2),  # exactly t+60s: next minute
        trade(1, T0 + 2 * MIN, 6002.0, 1, ts_event=T0 + 3),
        heartbeat(T0 + 3 * MIN),
    )
    assert [(b.start_ms * 1_000_000, b.open, b.trades) for b in rig.bars] == [(T0, 6000.0, 1), (T0 + MIN, 6001.0, 1)]


def test_quiet_minutes_print_no_bar():
    rig = Rig()
    rig.feed(trade(1, T0 + 5 * NS, 6000.0), trade(1, T0 + 3 * MIN + 5 * NS, 6003.0), heartbeat(T0 + 10 * MIN))
    assert [b.start_ms * 1_000_000 for b in rig.bars] == [T0, T0 + 3 * MIN]


def test_feed_clock_closes_after_grace_not_before():
    rig = Rig(grace_s=1.0)
    rig.feed(trade(1, T0 + 5 * NS, 6000.0))
    assert rig.feed(heartbeat(T0 + MIN + NS - 1)) == []
    (bar,) = rig.feed(heartbeat(T0 + MIN + NS))
    assert bar.symbol == "ES" and bar.close == 6000.0
    # Another root's trade is feed clock too.
    rig.feed(trade(4, T0 + 2 * MIN, 60.0))
    assert rig.feed(trade(1, T0 + 3 * MIN + NS, 6001.0)) != []  # CL's minute closed by ES's clock
    assert rig.bars[-1].symbol == "CL"


def test_late_trade_counted_never_merged():
    rig = Rig()
    rig.feed(trade(1, T0 + 5 * NS, 6000.0), heartbeat(T0 + MIN + NS))
    (bar,) = rig.bars
    rig.feed(trade(1, T0 + 30 * NS, 7000.0))  # for the published minute
    assert rig.agg.late == 1 and rig.bars == [bar]
    # Older than the open bar of a later minute: late too.
    rig.feed(trade(1, T0 + 2 * MIN, 6000.0), trade(1, T0 + MIN + 5 * NS, 6000.0))
    assert rig.agg.late == 2
    # A quiet minute already passed by the clock is late as well (no bar after the fact).
    rig.feed(heartbeat(T0 + 10 * MIN), trade(4, T0 + 5 * MIN, 60.0))
    assert rig.agg.late == 3 and all(b.symbol == "ES" for b in rig.bars)
    assert rig.agg.trades == 2


def test_prices_rounded_to_tick_half_up():
    rig = Rig()
    rig.feed(
        trade(5, T0 + 1, 6_500_250),  # 0.00650025 -> 0.0065005 (6J tick 5e-7)
        trade(5, T0 + 2, 6_500_200),  # 0.0065002 -> 0.000650 grid: 0.0065
        trade(6, T0 + 3, 115_046_875_000),  # 115 + 3/64 -> 115.0625 (ZB tick 1/32, half up)
        trade(1, T0 + 4, 6000_120_000_000),  # 6000.12 -> 6000.0 (ES tick .25)
        heartbeat(T0 + 2 * MIN),
    )
    by = {b.symbol: b for b in rig.bars}
    assert (by["6J"].open, by["6J"].low, by["6J"].close) == (0.0065005, 0.0065, 0.0065)
    assert by["ZB"].open == 115.0625
    assert by["ES"].open == 6000.0


@pytest.mark.parametrize("px", [UNDEF_PRICE, 0, -5 * NS, 2 * 10**18])
def test_out_of_range_prices_rejected_and_counted(px):
    rig = Rig()
    rig.feed(trade(1, T0 + 1, 6000.0), trade(1, T0 + 2, px), trade(1, T0 + 3, 6001.0), heartbeat(T0 + 2 * MIN))
    (bar,) = rig.bars
    assert rig.agg.rejected == 1 and bar.trades == 2 and (bar.low, bar.high) == (6000.0, 6001.0)


def test_spreads_back_months_and_unmapped_never_enter_a_bar():
    rig = Rig()
    rig.feed(
        trade(1, T0 + 1, 6000.0),
        trade(3, T0 + 2, 12.5),  # ESZ5-ESH6 spread, priced in points
        trade(2, T0 + 3, 6060.0),  # ESH6, a back month on 2025-12-01
        trade(99, T0 + 4, 6000.0),  # never mapped
        heartbeat(T0 + 2 * MIN),
    )
    (bar,) = rig.bars
    assert (bar.trades, bar.high, bar.low, bar.contract) == (1, 6000.0, 6000.0, "ESZ5")
    assert (rig.agg.ignored, rig.agg.unmapped) == (2, 1)


def test_roll_switches_series_at_trading_day_boundary():
    rig = Rig()
    d10 = ns("2025-12-10T20:00:00Z")  # trading day Dec 10: ESZ5
    d11 = ns("2025-12-11T15:00:00Z")  # trading day Dec 11: ESH6 (roll date = Dec 19 - 8 days)
    rig.feed(trade(1, d10, 6000.0), trade(2, d10 + 1, 6050.0), heartbeat(d10 + 2 * MIN))
    rig.feed(trade(1, d11, 6001.0), trade(2, d11 + 1, 6051.0), heartbeat(d11 + 2 * MIN))
    assert [(b.contract, b.open) for b in rig.bars] == [("ESZ5", 6000.0), ("ESH6", 6051.0)]
    es = [r for r in rig.rolls if r.root == "ES"]
    assert [(r.old, r.new) for r in es] == [(None, "ESZ5"), ("ESZ5", "ESH6")]
    assert es[1].trading_day == "2025-12-11"


def test_reset_drops_partial_and_replay_is_deduplicated():
    rig = Rig()
    rig.feed(trade(1, T0 + 1, 6000.0), trade(1, T0 + MIN + 1, 6001.0), trade(1, T0 + MIN + 30 * NS, 6002.0))
    assert len(rig.bars) == 1  # minute 0 published at its deadline (clock past 01:01)
    resume = rig.agg.reset(replay_until_ns=T0 + 5 * MIN)
    assert resume == T0 + MIN  # first minute not known complete
    assert rig.agg.open_bars() == 0  # the partial minute 1 is gone, not published
    # The gateway replays from before the resume point: published minute 0 is skipped.
    rig.feed(
        trade(1, T0 + 1, 6000.0), trade(1, T0 + MIN + 1, 6001.0), trade(1, T0 + MIN + 30 * NS, 6002.0),
        trade(1, T0 + MIN + 40 * NS, 6003.0),  # missed during the gap
        trade(1, T0 + 2 * MIN + 1, 6004.0),
        heartbeat(T0 + 3 * MIN),
    )
    assert rig.agg.replay_dups == 1 and rig.agg.late == 0
    m0, m1 = rig.bars
    assert (m1.source, m1.open, m1.high, m1.close, m1.trades) == ("replay", 6001.0, 6003.0, 6003.0, 3)
    assert m0.source == "live"
    rig.feed(trade(1, T0 + 6 * MIN, 6005.0))
    assert rig.bars[-1].source == "replay"  # minute 2 ended before replay_until
    rig.feed(heartbeat(T0 + 8 * MIN))
    assert rig.bars[-1].source == "live" and rig.bars[-1].start_ms * 1_000_000 == T0 + 6 * MIN


def test_restore_from_log_skips_logged_minutes():
    rig = Rig()
    resume = rig.agg.restore({"ES": T0 + MIN, "CL": T0 - 5 * MIN})
    assert resume == T0 + MIN
    rig.agg.replay_until = T0 + 3 * MIN
    rig.feed(
        trade(4, T0 + 1, 60.0),  # CL minute 0: before the resume point -> already covered
        trade(1, T0 + MIN + 1, 6000.0),  # ES minute 1 is in the log
        trade(4, T0 + MIN + 2, 60.5),  # CL minute 1 is not
        heartbeat(T0 + 3 * MIN),
    )
    assert [(b.symbol, b.start_ms * 1_000_000, b.source) for b in rig.bars] == [("CL", T0 + MIN, "replay")]
    assert rig.agg.replay_dups == 2


def test_a_minute_goes_out_together_sorted_by_symbol_then_its_notice():
    rig = Rig()
    out = rig.feed(
        trade(1, T0 + 1, 6000.0),  # ES
        trade(6, T0 + 2, 115.0),  # ZB
        trade(4, T0 + 3, 60.0),  # CL
        trade(1, T0 + MIN + 1, 6001.0),  # ES's next minute: ES minute 0 complete, held back
        trade(5, T0 + MIN + 2, 0.0065),  # 6J, minute 1
    )
    assert out == [] and rig.closed == []
    out = rig.feed(heartbeat(T0 + MIN + NS))
    assert [(b.symbol, b.start_ms * 1_000_000) for b in out] == [("CL", T0), ("ES", T0), ("ZB", T0)]
    assert rig.closed == [T0]
    # Minutes with no bar at all still get their notice: the notice is the market's clock.
    out = rig.feed(heartbeat(T0 + 4 * MIN + NS))
    assert [(b.symbol, b.start_ms * 1_000_000) for b in out] == [("6J", T0 + MIN), ("ES", T0 + MIN)]
    assert rig.closed == [T0, T0 + 3 * MIN]  # one notice per clock step, for the newest closed minute
    rig.feed(heartbeat(T0 + 4 * MIN + 30 * NS), heartbeat(T0 + 5 * MIN + NS))
    assert rig.closed == [T0, T0 + 3 * MIN, T0 + 4 * MIN]


def test_every_bar_precedes_the_notice_of_its_minute():
    seen: list[tuple[str, int]] = []
    rig = Rig()
    rig.agg.emit = lambda b: seen.append(("bar", b.start_ms * 1_000_000))
    rig.agg.on_minute_closed = lambda start: seen.append(("closed", start))
    recs = []
    for k in range(30):
        for inst, px in ((1, 6000.0), (4, 60.0), (5, 0.0065)):
            if (k + inst) % 3:
                recs.append(trade(inst, T0 + k * MIN + (inst * 7 + k) * NS % MIN, px))
    recs.sort(key=lambda r: r.ts_recv)
    rig.feed(*recs, heartbeat(T0 + 40 * MIN))
    closed = -1
    for kind, t in seen:
        if kind == "bar":
            assert t > closed, "a bar arrived after its minute's notice"
        else:
            assert t > closed
            closed = t
    assert sum(1 for k, _ in seen if k == "bar") == rig.agg.bars


def test_release_ready_at_shutdown_emits_complete_bars_without_a_notice():
    rig = Rig()
    rig.feed(trade(4, T0 + 1, 60.0), trade(1, T0 + 2, 6000.0), trade(1, T0 + MIN + 1, 6001.0),
             trade(4, T0 + MIN + 2, 60.5))
    assert rig.bars == []
    rig.agg.release_ready()
    assert [(b.symbol, b.start_ms * 1_000_000) for b in rig.bars] == [("CL", T0), ("ES", T0)]
    assert rig.closed == [] and rig.agg.open_bars() == 2  # minute 1 stays open (partial: never published)


def test_trades_sharing_the_feed_clock_time_are_in_order_not_late():
    """Trades of one packet share ts_recv: equal to the clock is in order (the fast path), also
    right after a heartbeat at that time closed the previous minute."""
    rig = Rig()
    rig.feed(trade(1, T0 + 1, 6000.0), trade(1, T0 + 1, 6002.0, 2), trade(1, T0 + 1, 5999.0, 3),
             trade(1, T0 + 1, UNDEF_PRICE), heartbeat(T0 + MIN + NS))
    (first,) = rig.bars
    assert (first.open, first.high, first.low, first.close, first.volume, first.trades) == (
        6000.0, 6002.0, 5999.0, 5999.0, 6, 3)
    rig.feed(trade(1, T0 + MIN + NS, 6001.0), trade(1, T0 + MIN + NS, 6001.25), heartbeat(T0 + 3 * MIN))
    second = rig.bars[1]
    assert (second.start, second.open, second.close, second.trades) == (first.end, 6001.0, 6001.25, 2)
    assert (rig.agg.late, rig.agg.rejected) == (0, 1)
