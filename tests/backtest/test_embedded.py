"""No key and no sandbox running: `backtest` and `models train` start an embedded sandbox and stop it.

The embedded sandbox is the real :class:`~multialpha.sandbox.server.Sandbox`
(the code `multialpha sandbox` runs) in the command's own process, clock
pinned at the session open of ``sandbox.from_date`` (2025-12-01 -> 2025-11-30
23:00Z with the shipped config). Also here: plain per-day progress lines off
a terminal, a rich bar on one, and trades.csv's status column and rounding.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import date, timedelta
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from multialpha import config as cfg
from multialpha import runtime
from multialpha.backtest import progress
from multialpha.orders.fills import tick_decimals
from multialpha.cli import main
from tests.backtest.conftest import write_config


def _sandbox_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "sandbox-live" and t.is_alive())


def _decimals(text: str) -> int:
    """Decimal places written (a whole number written as "43762.0" has none)."""
    frac = text.split(".")[1] if "." in text else ""
    return 0 if frac.strip("0") == "" else len(frac)


def _private_config(tmp_path: Path, stale_state: bool = False) -> Path:
    dirs = {"run": tmp_path / "run", "cache": tmp_path / "cache", "root": tmp_path}
    path = write_config(tmp_path / "config.multi_alpha.yml", dirs)
    if stale_state:  # a sandbox that died without cleaning up: not "running"
        settings = cfg.load(path, environ={})
        state = runtime.sandbox_state_path(settings)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"host": "127.0.0.1", "live_port": 1, "hist_port": 2, "api_key": "db-" + "x" * 29,
                                     "ca_path": "", "dataset": "GLBX.MDP3", "seed": 7, "speed": 0,
                                     "clock_sim_ns": 0, "clock_wall_ns": 0, "pid": 2 ** 22 + 12345}))
    return path


def test_backtest_starts_an_embedded_sandbox_and_stops_it(tmp_path: Path) -> None:
    path = _private_config(tmp_path, stale_state=True)
    before = _sandbox_threads()
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["--config", str(path), "backtest", "--strategy", "breakout", "--days", "2",
                                  "--resolution", "hour", "--ml-veto", "off", "--output", str(out), "--no-png"],
                           env={"DATABENTO_API_KEY": ""})
    assert r.exit_code == 0, r.output
    assert "started an embedded sandbox" in r.output
    # Clock pinned at the open of 2025-12-01: the last 2 complete trading days are Nov 27-28.
    assert "trading days 2025-11-27 .. 2025-11-28 (hour bars, embedded sandbox data up to 2025-11-30T23:00:00Z" \
        in r.output
    # Off a terminal: one plain line per trading day, and one at the end.
    lines = [ln for ln in r.output.splitlines() if ln.startswith("backtest: ")]
    assert lines == ["backtest: trading day 2025-11-27 (1/2)", "backtest: trading day 2025-11-28 (2/2)",
                     "backtest: 2/2 trading days done"]
    assert _sandbox_threads() == before  # stopped at the end
    settings = cfg.load(path, environ={})
    with (out / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert trades and list(trades[0])[-1] == "status"
    for t in trades:
        assert t["status"] in ("closed", "open") and (t["exit_time"] == "") == (t["status"] == "open")
        tick = settings.instruments[t["symbol"]].tick_size
        for k in ("entry_price", "exit_price"):
            units = float(t[k]) / tick
            assert abs(units - round(units)) < 1e-6 and _decimals(t[k]) <= tick_decimals(tick), (k, t[k])
        assert _decimals(t["pnl"]) <= 2, t["pnl"]
    with (out / "orders.csv").open() as f:
        for o in csv.DictReader(f):
            assert _decimals(o["price"]) <= tick_decimals(settings.instruments[o["symbol"]].tick_size), o


def test_models_train_starts_an_embedded_sandbox(tmp_path: Path) -> None:
    path = _private_config(tmp_path)
    before = _sandbox_threads()
    models = tmp_path / "models"
    r = CliRunner().invoke(main, ["models", "train", "--config", str(path), "--strategy", "breakout",
                                  "--symbols", "ES", "--days", "3", "--min-trades", "1",
                                  "--models-dir", str(models)], env={"DATABENTO_API_KEY": ""}, terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "started an embedded sandbox" in r.output
    assert "backtest breakout: trading day 2025-11-26 (1/3)" in r.output
    assert "backtest breakout: 3/3 trading days done" in r.output
    assert "models train 2025-11-26 .. 2025-11-28" in r.output
    assert _sandbox_threads() == before


def test_models_train_date_errors_exit_2_before_any_sandbox(tmp_path: Path) -> None:
    path = _private_config(tmp_path)
    models = ["--models-dir", str(tmp_path / "models")]  # not the shipped models/ (that needs --force)
    r = CliRunner().invoke(main, ["models", "train", "--config", str(path), "--from", "2025-11-28",
                                  "--to", "2025-11-20", *models], env={"DATABENTO_API_KEY": ""})
    assert r.exit_code == 2 and r.output.strip() == "error: --from 2025-11-28 is after --to 2025-11-20"
    r = CliRunner().invoke(main, ["models", "train", "--config", str(path), "--from", "2020-01-06",
                                  "--to", "2020-01-07", *models],
                           env={"DATABENTO_API_KEY": ""})
    assert r.exit_code == 2 and "error: --from 2020-01-06 is before the embedded sandbox's first trading day" \
        in r.output, (r.exit_code, r.output)


def test_an_embedded_sandbox_covers_the_requested_to_day(tmp_path: Path) -> None:
    """The synthetic market is deterministic: an embedded sandbox pins its clock after --to's close, so a
    backtest can span days after sandbox.from_date (the December rolls with the shipped config)."""
    from multialpha import cme_time
    from multialpha import config as cfg
    from multialpha.backtest.source import date_range, open_source

    settings = cfg.load(_private_config(tmp_path), environ={})
    to = date(2025, 12, 12)
    with open_source(settings, until=to) as src:
        assert src.embedded and src.now == cme_time.session_bounds(to)[1] + timedelta(minutes=1)
        assert date_range(src, date(2025, 12, 8), to, 3) == (date(2025, 12, 8), to)


def test_progress_is_a_rich_bar_on_a_terminal_and_lines_elsewhere() -> None:
    days = [date(2025, 12, 2), date(2025, 12, 3), date(2025, 12, 4)]
    tty = io.StringIO()
    with progress.days(Console(file=tty, force_terminal=True, width=120), "backtest") as cb:
        for i, d in enumerate(days):
            cb(i, 3, d)
        cb(3, 3, days[-1])
    assert "\x1b[" in tty.getvalue() and "trading days" in tty.getvalue()
    plain = io.StringIO()
    with progress.days(Console(file=plain, force_terminal=False, width=120), "backtest") as cb:
        for i, d in enumerate(days):
            cb(i, 3, d)
            cb(i, 3, d)  # repeated calls for the same day print once
        cb(3, 3, days[-1])
    assert plain.getvalue().splitlines() == [
        "backtest: trading day 2025-12-02 (1/3)", "backtest: trading day 2025-12-03 (2/3)",
        "backtest: trading day 2025-12-04 (3/3)", "backtest: 3/3 trading days done"]
    assert "\x1b[" not in plain.getvalue()
