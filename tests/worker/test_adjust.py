"""Roll adjustment of hour/day series (worker/adjust.py): the gap rule, back- and forward-adjustment,
and the issue's test: a breakout channel spanning a hand-made 40-point roll gap does not fire."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from multialpha import cme_time
from multialpha.worker import adjust, warmup
from multialpha.worker.adjust import Gap, Level, Roll, RollAdjuster
from multialpha.worker.cache import BarCache
from multialpha_breakout.rules import BreakoutRules, Params

UTC = timezone.utc
ROLL = date(2025, 12, 11)  # ES: ESZ5 -> ESH6 (the shipped contract map)
GAP = 40.0
BASE = {"ESZ5": 4500.0, "ESH6": 4500.0 + GAP}


def cols(ts: list[int], closes: list[float]) -> dict[str, np.ndarray]:
    c = np.array(closes, dtype=np.float64)
    return {"ts": np.array(ts, dtype=np.int64), "open": c - 0.5, "high": c + 1.0, "low": c - 1.0, "close": c,
            "volume": np.full(len(ts), 7, dtype=np.int64)}


def wiggle(t_ns: int) -> float:
    """A market going nowhere: +-5 points around its level, alternating by the hour."""
    return 5.0 if (t_ns // cme_time.HOUR_NS) % 2 else -5.0


def level_fetch(calls: list[list[str]]):
    """Historical stand-in (not databento): every contract prints every hour at its own level (BASE)."""

    def fetch(schema, symbols, stype_in, start_ns, end_ns):
        calls.append(list(symbols))
        ts = list(range(start_ns - start_ns % cme_time.HOUR_NS, end_ns, cme_time.HOUR_NS))
        ts = [t for t in ts if t >= start_ns]
        return {s: cols(ts, [BASE[s] + wiggle(t) for t in ts]) for s in symbols}

    return fetch


def test_the_gap_is_the_latest_hour_both_contracts_printed():
    h = cme_time.HOUR_NS
    old = cols([0, h, 2 * h, 3 * h], [10.0, 11.0, 12.0, 13.0])
    new = cols([h, 2 * h, 4 * h], [51.0, 52.5, 54.0])  # 3h: the new one is silent; 4h: the old one is
    assert adjust.roll_gap(old, new) == Gap(2 * h, 12.0, 52.5)
    assert adjust.roll_gap(old, cols([5 * h], [1.0])) is None  # nothing in common: no gap, not a guess


@pytest.mark.parametrize("mode", ["difference", "ratio"])
def test_back_adjust_maps_every_older_contract_into_the_anchor_level(mode):
    h = cme_time.HOUR_NS
    segs = [("A", cols([0, h], [100.0, 102.0])), ("B", cols([2 * h, 3 * h], [110.0, 111.0])),
            ("C", cols([4 * h], [121.0]))]
    gaps = {("A", "B"): Gap(h, 102.0, 108.0), ("B", "C"): Gap(3 * h, 111.0, 120.0)}
    out = dict(adjust.back_adjust(segs, gaps, "C", mode))
    if mode == "difference":
        b_to_c, a_to_c = (lambda p: p + 9.0), (lambda p: p + 6.0 + 9.0)
    else:
        b_to_c, a_to_c = (lambda p: p * (120.0 / 111.0)), (lambda p: p * (108.0 / 102.0) * (120.0 / 111.0))
    for name, fn in (("A", a_to_c), ("B", b_to_c)):
        for k in ("open", "high", "low", "close"):
            np.testing.assert_allclose(out[name][k], fn(dict(segs)[name][k]), rtol=1e-12)
        assert list(out[name]["volume"]) == list(dict(segs)[name]["volume"])  # volume is not a price
    assert out["C"] is dict(segs)["C"]  # the anchor is raw
    # The gap is gone: the old contract's close of the gap hour, adjusted, is the new one's close.
    assert out["B"]["close"][-1] == pytest.approx(120.0)
    assert adjust.back_adjust(segs, gaps, "C", "none") == segs


@pytest.mark.parametrize("mode", ["difference", "ratio"])
def test_a_roll_during_a_run_maps_the_new_contract_into_the_anchor_level(mode):
    asked: list[Roll] = []

    def gap_source(symbol: str, roll: Roll) -> Gap:
        asked.append(roll)
        return Gap(0, 4500.0, 4540.0)

    a = RollAdjuster(mode, gap_source, {"ES": "ESZ5"})
    t = datetime(2025, 12, 10, 23, 0, tzinfo=UTC)  # the open of trading day 12-11
    assert a.observe("ES", "", t) == "ESZ5" and a.level("ES", "ESZ5").identity
    assert a.observe("ES", "ESH6", t) == "ESH6"
    a.observe("ES", "ESH6", t + timedelta(minutes=1))
    assert asked == [Roll(ROLL, "ESZ5", "ESH6")]  # once per roll
    assert a.level("ES", "ESH6")(4540.0) == pytest.approx(4500.0)  # the new level continues the old one
    assert a.level("ES", "ESH6")(4550.0) - a.level("ES", "ESH6")(4540.0) == pytest.approx(
        10.0 if mode == "difference" else 10.0 * 4500.0 / 4540.0)


def test_an_unknown_gap_leaves_the_roll_unadjusted():
    a = RollAdjuster("difference", lambda s, r: None, {"ES": "ESZ5"})
    a.observe("ES", "ESH6", datetime(2025, 12, 10, 23, 0, tzinfo=UTC))
    assert a.level("ES", "ESH6") == Level() and a.gaps[0][2] is None


def breakout_entries(hours) -> list[str]:
    rules = BreakoutRules(Params(channel_hours=20, atr_period=14, min_atr_pct=0.0))
    return [f"{a.side} {a.reason}" for h in hours if (a := rules.on_hour(h.high, h.low, h.close)) is not None]


@pytest.mark.parametrize("mode", ["difference", "ratio", "none"])
def test_warmup_breakout_channel_spanning_a_40_point_roll_gap_does_not_fire(tmp_path, mode):
    calls: list[list[str]] = []
    h = warmup.Historian(BarCache(tmp_path), level_fetch(calls), "GLBX.MDP3")
    roll_at = cme_time.from_ns(warmup.day_start_ns(ROLL))  # trading day 12-11 starts at 12-10's 16:00 CT close
    boundary = roll_at + timedelta(hours=10)  # 10 hours into the new front
    w = warmup.warm_all(h, ["ES"], boundary, 3, 40, progress=False, adjust=mode)["ES"]
    assert w.contract == "ESH6" and h.requests == 1  # the gap's hours came with the history
    old = [b for b in w.hours if b.start < roll_at]
    new = [b for b in w.hours if b.start >= roll_at]
    assert len(old) >= 20 and len(new) == 10
    assert [b.close for b in new] == [BASE["ESH6"] + wiggle(cme_time.to_ns(b.start)) for b in new]  # raw
    entries = breakout_entries(w.hours)
    if mode == "none":  # the test can fail: raw, the gap is a breakout at the new front's first hour
        assert old[-1].close == BASE["ESZ5"] + wiggle(cme_time.to_ns(old[-1].start))
        assert entries and entries[0].startswith("long")
    else:
        assert entries == []
        assert abs(new[0].open - old[-1].close) < 11.0  # no 40-point step left
