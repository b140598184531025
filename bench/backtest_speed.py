"""Backtest throughput on the sandbox: bars/s and steps/s, minute vs hour resolution.

Runs an in-process sandbox (seed 7, clock pinned) and backtests the same
trading days twice per strategy set: minute bars (the baseline) and hourly
bars; prints wall time, bars and steps per second, and the hour/minute ratio.
The Historical cache is warmed first so the figures are the runtime's, not the
gateway's.

    .venv/bin/python bench/backtest_speed.py [--days 2] [--strategies breakout]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from multialpha import config as cfg
from multialpha import endpoints
from multialpha.backtest import data as bt_data
from multialpha.backtest import runner
from multialpha.sandbox.server import Sandbox
from multialpha.worker import warmup

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--strategies", default="breakout", help="comma-separated, or 'all'")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bt-bench-"))
    s = cfg.load(REPO / "config.multi_alpha.yml",
                 environ={"MULTIALPHA_RUNTIME_DIR": str(tmp / "run"), "MULTIALPHA_CACHE_DIR": str(tmp / "cache")})
    s = s.model_copy(update={"ml_veto": s.ml_veto.model_copy(update={"mode": "off"})})
    names = list(s.enabled_strategies) if a.strategies == "all" else a.strategies.split(",")
    with Sandbox(s, seed=7, speed=0, days=300) as sb:
        sb.set_clock(datetime(2025, 12, 5, 18, 0, tzinfo=timezone.utc))
        ep = endpoints.from_state(sb.state, sb.state_file)
        fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)
        now = endpoints.now(ep)
        first, last = bt_data.default_days(now, a.days)
        start, end = bt_data.session_range(first, last)
        print(f"strategies {','.join(names)}, trading days {first} .. {last}")
        results = {}
        for res in ("minute", "hour"):
            runner.run(s, names, start, end, fetch=fetch, dataset=ep.dataset, data_now=now, resolution=res)  # cache
            t0 = time.perf_counter()
            r = runner.run(s, names, start, end, fetch=fetch, dataset=ep.dataset, data_now=now, resolution=res)
            dt = time.perf_counter() - t0
            bars = sum(len(v) for v in r.bars.values())
            results[res] = dt
            print(f"{res:6s}: {dt:6.2f} s  {bars:7d} bars  {bars / dt:8.0f} bars/s  {r.steps:6d} timestamps  "
                  f"{r.steps / dt:7.0f} timestamps/s  orders {sum(1 for j in r.journal if j.get('event') == 'intent')}")
        print(f"hour / minute wall time: {results['hour'] / results['minute']:.3f}")


if __name__ == "__main__":
    main()
