"""Run the backtest in-process on the test sandbox."""

from __future__ import annotations

from datetime import date
from typing import Any

from multialpha.backtest import data as bt_data
from multialpha.backtest import runner
from multialpha.config import Settings

# The complete trading days before the pinned sandbox clock (Fri 2025-12-05 12:00 CT).
DAYS = (date(2025, 12, 2), date(2025, 12, 4))


def run(settings: Settings, strategies: list[str], source: Any, days: tuple[date, date] = DAYS,
        resolution: str = "hour", **portfolio: Any) -> runner.BacktestRun:
    start, end = bt_data.session_range(*days)
    return runner.run(settings, strategies, start, end, fetch=source.fetch, dataset=source.dataset,
                      data_now=source.now, resolution=resolution, portfolio=portfolio or None)


def veto(settings: Settings, mode: str, on_missing: str | None = None) -> Settings:
    upd = {"mode": mode} | ({"on_missing": on_missing} if on_missing else {})
    return settings.model_copy(update={"ml_veto": settings.ml_veto.model_copy(update=upd)})
