"""Breakout signals on a fixed bar series equal a direct pandas computation of the documented rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multialpha_breakout.rules import BreakoutRules, Params


def hourly_series(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    drift = np.repeat(rng.normal(0, 0.002, n // 100 + 1), 100)[:n]  # trending regimes make breakouts
    close = 5000 * np.exp(np.cumsum(drift + rng.normal(0, 0.003, n)))
    wick = np.abs(rng.normal(0, 0.002, (2, n))) * close
    return pd.DataFrame({"high": close + wick[0], "low": close - wick[1], "close": close})


def reference(df: pd.DataFrame, p: Params) -> list[tuple]:
    chan_hi = df["high"].rolling(p.channel_hours).max().shift(1)
    chan_lo = df["low"].rolling(p.channel_hours).min().shift(1)
    half = p.channel_hours // 2
    ex_hi = df["high"].rolling(half).max().shift(1)
    ex_lo = df["low"].rolling(half).min().shift(1)
    prev = df["close"].shift(1)
    tr = pd.concat([df["high"], prev], axis=1).max(axis=1) - pd.concat([df["low"], prev], axis=1).min(axis=1)
    tr.iloc[0] = df["high"].iloc[0] - df["low"].iloc[0]
    seeded = tr.iloc[p.atr_period - 1:].copy()
    seeded.iloc[0] = tr.iloc[:p.atr_period].mean()
    atr = seeded.ewm(alpha=1 / p.atr_period, adjust=False).mean().reindex(df.index)
    out, pos, best, dist = [], None, 0.0, 0.0
    for i in range(len(df)):
        c = df["close"].iloc[i]
        if pos == "long":
            best = max(best, c)
            if c <= best - dist or (not np.isnan(ex_lo.iloc[i]) and c < ex_lo.iloc[i]):
                out.append(("exit", pos, c)); pos = None
        elif pos == "short":
            best = min(best, c)
            if c >= best + dist or (not np.isnan(ex_hi.iloc[i]) and c > ex_hi.iloc[i]):
                out.append(("exit", pos, c)); pos = None
        elif not np.isnan(chan_hi.iloc[i]) and not np.isnan(atr.iloc[i]) and atr.iloc[i] / c >= p.min_atr_pct:
            if c > chan_hi.iloc[i]:
                pos = "long"
            elif p.allow_short and c < chan_lo.iloc[i]:
                pos = "short"
            if pos:
                best, dist = c, p.atr_stop * atr.iloc[i]
                out.append(("entry", pos, c))
    return out


@pytest.mark.parametrize("seed", [4, 5, 6])
@pytest.mark.parametrize("allow_short", [False, True])
def test_rules_equal_pandas_reference(seed: int, allow_short: bool) -> None:
    df = hourly_series(seed)
    p = Params(channel_hours=20, atr_period=14, atr_stop=2.0, min_atr_pct=0.0005, allow_short=allow_short)
    rules = BreakoutRules(p)
    got = []
    for row in df.itertuples():
        a = rules.on_hour(row.high, row.low, row.close)
        if a:
            got.append((a.kind, a.side, a.price))
    expected = reference(df, p)
    assert len(expected) >= 10
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert np.allclose([g[2] for g in got], [e[2] for e in expected])


def test_dead_market_filter_blocks_entries() -> None:
    df = hourly_series(4)
    rules = BreakoutRules(Params(min_atr_pct=0.5))
    assert not any(rules.on_hour(r.high, r.low, r.close) for r in df.itertuples())


def test_restored_position_stop_uses_the_atr_of_the_hours_seen() -> None:
    """README, restored positions: stop distance = atr_stop x the ATR so far, never zero."""
    df = hourly_series(4, n=100)
    p = Params(atr_period=14, atr_stop=2.0)
    rules = BreakoutRules(p)
    for row in df.iloc[:60].itertuples():  # the warmup hours
        rules.on_hour(row.high, row.low, row.close)
    rules.cancel_entry()
    rules.restore("long", float(df["close"].iloc[59]))
    prev = df["close"].shift(1)
    tr = pd.concat([df["high"], prev], axis=1).max(axis=1) - pd.concat([df["low"], prev], axis=1).min(axis=1)
    tr.iloc[0] = df["high"].iloc[0] - df["low"].iloc[0]
    seeded = tr.iloc[p.atr_period - 1:60].copy()
    seeded.iloc[0] = tr.iloc[:p.atr_period].mean()
    atr = seeded.ewm(alpha=1 / p.atr_period, adjust=False).mean().iloc[-1]
    assert rules.stop_dist == pytest.approx(p.atr_stop * atr, rel=1e-12) and rules.stop_dist > 0
