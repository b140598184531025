"""`multialpha backtest` end to end on the sandbox: files, summary, exit codes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from multialpha.cli import main
from tests.backtest.conftest import write_config


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_backtest_minute_bars_writes_outputs(make_settings, tmp_path: Path) -> None:
    settings = make_settings(portfolio={"max_positions": 4})
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "breakout",
                                    "--days", "1", "--ml-veto", "off", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "trading days 2025-12-04 .. 2025-12-04 (minute bars" in res.output  # default: last complete day
    for name in ("orders.csv", "trades.csv", "equity.csv", "vetoes.csv", "summary.csv"):
        assert (out / name).is_file(), name
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pyarrow.parquet as pq

    assert pq.read_table(out / "orders.parquet").num_rows == len(_rows(out / "orders.csv"))
    orders, trades, equity = _rows(out / "orders.csv"), _rows(out / "trades.csv"), _rows(out / "equity.csv")
    summ = _rows(out / "summary.csv")[0]
    assert orders and all(o["strategy"] == "breakout" for o in orders)
    assert int(summ["trades"]) == sum(1 for t in trades if t["status"] == "closed")
    assert int(summ["open_at_end"]) == sum(1 for t in trades if t["status"] == "open")
    assert trades and {t["status"] for t in trades} <= {"closed", "open"} and "open" not in trades[0]
    # minute resolution: orders name minute bars inside the day, not only hour closes
    assert all(o["bar_start"].startswith("2025-12-0") for o in orders)
    assert len(equity) > 24 * 10 and float(equity[0]["equity"]) > 0
    final = float(equity[-1]["equity"]) - settings.portfolio.starting_cash
    assert abs(final - float(summ["net_pnl"])) < 0.01
    assert "win rate" in res.output and "max drawdown" in res.output
    # with and without slippage (1 tick per side by default), and the run as `multialpha report` reads it
    assert "net pnl no slippage" in res.output
    assert float(summ["net_pnl_no_slippage"]) - float(summ["net_pnl"]) == pytest.approx(float(summ["slippage"]))
    assert float(summ["slippage"]) > 0
    [rep] = _rows(out / "report" / "summary.csv")  # one strategy: no portfolio section
    assert rep["section"] == "breakout" and int(rep["trades"]) == int(summ["trades"])
    assert float(rep["net_pnl"]) == pytest.approx(float(summ["realized_pnl"]), abs=0.01)
    assert (out / "report" / "report.html").read_text().count('src="data:image/png;base64,') == 1


def test_backtest_config_errors_exit_2(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "nope"])
    assert r.exit_code == 2 and "unknown strategy 'nope'" in r.output
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--all", "--from", "2025-12-06"])
    assert r.exit_code == 2 and "error: --from 2025-12-06 is a Saturday (weekend)" in r.output
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest"])
    assert r.exit_code == 2 and "--strategy NAME or --all" in r.output


def test_reversed_dates_exit_2_with_a_plain_message(make_settings) -> None:
    settings = make_settings()
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "breakout",
                                  "--from", "2025-12-10", "--to", "2025-12-01"])
    assert r.exit_code == 2
    assert r.output.strip() == "error: --from 2025-12-10 is after --to 2025-12-01"
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "breakout",
                                  "--from", "2025-12-1O"])
    assert r.exit_code == 2 and "error: --from: expected a date YYYY-MM-DD, got '2025-12-1O'" in r.output
    assert "config error: :" not in r.output


def test_out_of_range_dates_exit_2_with_the_datas_bounds(make_settings, sandbox) -> None:
    settings = make_settings()
    # The test sandbox's clock: Fri 2025-12-05 18:00Z; its history starts `days` (120) trading days before 12-01.
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "breakout",
                                  "--from", "2025-12-08", "--to", "2025-12-09"])
    assert r.exit_code == 2, r.output
    assert "error: --from 2025-12-08 is in the future: the sandbox data ends at 2025-12-05T18:00:00Z" in r.output
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "breakout",
                                  "--from", "2025-12-04", "--to", "2025-12-12"])
    assert r.exit_code == 2 and "error: --to 2025-12-12 is in the future" in r.output, r.output
    first = sandbox.market.first_day
    r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "breakout",
                                  "--from", "2024-01-02", "--to", "2024-01-03"])
    assert r.exit_code == 2
    assert f"error: --from 2024-01-02 is before the sandbox's first trading day {first}" in r.output


def test_equity_curve_books_every_trade_at_hour_resolution(make_settings, source) -> None:
    from multialpha.backtest import results
    from tests.backtest.helpers import run, veto

    settings = veto(make_settings(portfolio={"max_positions": 50}), "off")
    r = run(settings, ["breakout"], source, resolution="hour")
    tl = results.trades(r)
    curve = results.equity_curve(r, tl)
    closed = [t for t in tl if not t.open]
    assert closed
    # With nothing open at the end, the curve ends at cash + the closed trades' P&L; else + open P&L.
    expected = settings.portfolio.starting_cash + sum(t.pnl for t in tl)
    assert abs(curve[-1][1] - expected) < 1e-6
    summ = results.summary(r, tl, curve)
    assert 0.0 < summ["exposure"] <= 1.0 and summ["trades"] == len(closed)


def test_backtest_process_never_imports_pandas_pyarrow_or_databento(make_settings, tmp_path: Path) -> None:
    """The mechanism behind the backtest's peak RSS (bench/backtest_memory.py): Historical bars through
    histclient + the .npy cache, Parquet copies without pyarrow; `import databento` alone was ~127 MB.
    ``-X importtime`` names every module the process imports, on stderr."""
    settings = make_settings()
    out = tmp_path / "out"
    env = {**os.environ, "DATABENTO_API_KEY": ""}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "multialpha", "--config", settings.source_path,
                           "backtest", "--strategy", "breakout", "--days", "1", "--resolution", "hour", "--ml-veto",
                           "off", "--no-png", "--output", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "multialpha.backtest.results" in imported  # the whole path ran, files included
    assert not imported & {"pandas", "pyarrow", "databento"}
    assert (out / "orders.parquet").is_file() and (out / "trades.parquet").is_file()
