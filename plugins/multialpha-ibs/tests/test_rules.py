"""IBS signals on a fixed bar series equal a direct pandas computation of the documented rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multialpha_ibs.rules import IbsRules, Params


def hourly_series(seed: int, hours: int = 24 * 200, drop_open_hours: float = 0.0) -> pd.DataFrame:
    """Hourly bars; ``drop_open_hours`` = share of trading days whose 17:00-18:00 CT hour printed no trade."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2025-01-05 23:00", periods=hours, freq="h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, hours)))
    spread = np.abs(rng.normal(0, 0.003, hours)) * close
    df = pd.DataFrame({"close": close, "high": close + spread, "low": close - spread * rng.uniform(0.2, 1.5, hours)}, index=idx)
    df["start"] = idx
    ct = idx.tz_convert("America/Chicago")
    # CME trading day: shift by 7 h so 17:00 CT lands on the next date; weekends do not occur in this series' use.
    df["tday"] = (ct + pd.Timedelta(hours=7)).date
    df = df[[d.weekday() < 5 for d in df["tday"]]]
    if drop_open_hours:
        ct_hour = df.index.tz_convert("America/Chicago").hour
        quiet = {d for d in df["tday"].unique() if rng.uniform() < drop_open_hours}
        df = df[~((ct_hour == 17) & df["tday"].isin(quiet))]  # no trade, no bar: the hour is absent
    return df


def reference(hourly: pd.DataFrame, p: Params) -> list[tuple]:
    daily = hourly.groupby("tday").agg(high=("high", "max"), low=("low", "min"), close=("close", "last"))
    rng = daily["high"] - daily["low"]
    daily["ibs"] = ((daily["close"] - daily["low"]) / rng).where(rng > 0, 0.5)
    first_hour = hourly.groupby("tday").first()
    days = list(daily.index)
    out, pos, held = [], None, 0
    for i, d in enumerate(days[:-1]):  # the last day never completes inside the series
        row = daily.loc[d]
        nxt = first_hour.loc[days[i + 1]]
        if pos is not None:
            held += 1
            if (pos == "long" and row.ibs >= p.exit_ibs) or (pos == "short" and row.ibs <= 1 - p.exit_ibs) \
                    or held >= p.max_hold_days:
                out.append(("exit", pos, row.close))
                pos, held = None, 0
            continue
        side = "long" if row.ibs <= p.entry_ibs else ("short" if p.allow_short and row.ibs >= 1 - p.entry_ibs else None)
        if side and ((side == "long" and nxt.close <= row.close) or (side == "short" and nxt.close >= row.close)):
            out.append(("entry", side, nxt.close))
            pos, held = side, 0
    return out


def run_rules(hourly: pd.DataFrame, p: Params) -> list[tuple]:
    rules = IbsRules(p)
    out, day, h, l, c, day_end = [], None, -np.inf, np.inf, None, None
    for row in hourly.itertuples():
        end = row.start + pd.Timedelta(hours=1)
        if day is not None and row.tday != day:
            a = rules.on_day(day_end, h, l, c)
            if a:
                out.append((a.kind, a.side, a.price))
            h, l = -np.inf, np.inf
        day = row.tday
        h, l, c, day_end = max(h, row.high), min(l, row.low), row.close, end
        a = rules.on_hour(end, row.close)
        if a:
            out.append((a.kind, a.side, a.price))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("allow_short", [False, True])
@pytest.mark.parametrize("quiet_opens", [0.0, 0.5])
def test_rules_equal_pandas_reference(seed: int, allow_short: bool, quiet_opens: float) -> None:
    # quiet_opens: half the trading days have no 17:00 CT hour; the reference takes the first
    # existing hour of the next trading day (README rule 2), as the rules must.
    hourly = hourly_series(seed, drop_open_hours=quiet_opens)
    p = Params(entry_ibs=0.25, exit_ibs=0.75, max_hold_days=4, allow_short=allow_short)
    expected = reference(hourly, p)
    got = run_rules(hourly, p)
    assert len(expected) >= 10  # the series must actually trade
    assert got == expected


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Params.from_config({"entry": 0.1})
    with pytest.raises(ValueError):
        Params.from_config({"entry_ibs": 0.9, "exit_ibs": 0.1})
