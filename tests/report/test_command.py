"""`multialpha report` over a sandbox week of paper trading: files, and numbers equal to a direct
computation from the journal.

The week's journal is the one the paper pipeline writes (the backtest runs the live worker with
the real paper OrderRouter and portfolio gate), copied into the deployment's Redis; the report
then reads it as it reads a live deployment's."""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from multialpha import cme_time
from multialpha.cli import main
from multialpha.keys import Keys
from tests.backtest.helpers import run, veto

WEEK = (date(2025, 11, 28), date(2025, 12, 4))  # Fri .. Thu: five CME trading days
STRATEGIES = ["ibs_a", "ibs_b", "breakout"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _by_hand(settings, journal: list[dict[str, str]]) -> dict[str, dict[date, float]]:
    """Per strategy and trading day: each entry paired with the next exit, net P&L at the fills."""
    held: dict[tuple[str, str], dict[str, str]] = {}
    out: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for ev in journal:
        if ev.get("event") != "intent":
            continue
        key = (ev["strategy"], ev["symbol"])
        if ev["kind"] == "entry":
            held[key] = ev
            continue
        e = held.pop(key)
        spec = settings.instruments[ev["symbol"]]
        sign = 1 if e["side"] == "long" else -1
        q = int(e["quantity"])
        pnl = sign * q * spec.multiplier * (float(ev["fill_price"]) - float(e["fill_price"]))
        pnl -= 2 * q * settings.commission(ev["strategy"], ev["symbol"])
        # booked on the exit bar's trading day (its start's: the gate's convention)
        out[ev["strategy"]][cme_time.trading_day(cme_time.parse_iso(ev["bar_start"]))] += pnl
    return out


@pytest.fixture(scope="module")
def week(make_settings, source, redis_server):
    """(settings, journal, backtest run): one paper week of the three strategies, journaled."""
    settings = make_settings(portfolio={"max_positions": 6, "daily_stop_loss": 1e9},
                             redis={"host": redis_server.host, "port": redis_server.port, "managed": "never"})
    r = run(veto(settings, "off"), STRATEGIES, source, days=WEEK, resolution="hour")
    journal = [{k: v for k, v in ev.items() if k != "id"} for ev in r.journal]
    client = redis_server.client(decode_responses=True)
    client.flushall()
    for ev in journal:
        client.xadd(Keys(settings.redis.namespace).orders(), ev)
    client.close()
    return settings, journal, r


@pytest.fixture(scope="module")
def make_settings(sandbox, bt_dirs, tmp_path_factory):  # module scope for the week above
    from multialpha import config as cfg
    from tests.backtest.conftest import write_config

    path = tmp_path_factory.mktemp("report") / "config.multi_alpha.yml"
    return lambda **changes: cfg.load(write_config(path, bt_dirs, **changes), environ={})


@pytest.fixture(scope="module")
def source(sandbox):
    from multialpha import endpoints
    from multialpha.backtest.command import Source
    from multialpha.worker import warmup

    ep = endpoints.from_state(sandbox.state, sandbox.state_file)
    return Source(warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset), ep.dataset,
                  endpoints.now(ep), True)


def test_report_over_a_paper_week_writes_pngs_html_and_the_journals_numbers(week, tmp_path: Path) -> None:
    settings, journal, bt = week
    out, page = tmp_path / "out", tmp_path / "week.html"
    res = CliRunner().invoke(main, ["--config", settings.source_path, "report", "--from", str(WEEK[0]),
                                    "--to", str(WEEK[1]), "--output", str(out), "--html", str(page)])
    assert res.exit_code == 0, res.output
    hand = _by_hand(settings, journal)
    traded = [s for s in STRATEGIES if s in hand]
    assert len(traded) >= 2, hand  # a week of the shipped strategies trades; else this test proves little
    days = cme_time.trading_days(*WEEK)
    assert len(days) == 5
    # PNG per strategy and for the portfolio
    for name in [*traded, "portfolio"]:
        assert (out / f"equity_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # P&L per trading day = the direct computation, per strategy and summed for the portfolio
    daily = _rows(out / "daily.csv")
    got = {(r["section"], r["trading_day"]): float(r["pnl"]) for r in daily}
    for s in traded:
        for d in days:
            assert got[(s, d.isoformat())] == pytest.approx(hand[s].get(d, 0.0), abs=0.005), (s, d)
    for d in days:
        assert got[("portfolio", d.isoformat())] == pytest.approx(sum(hand[s].get(d, 0.0) for s in traded), abs=0.005)
    # summary: net P&L, trades, win rate, Sharpe on daily P&L / capital, slippage of 1 tick per side
    summ = {r["section"]: r for r in _rows(out / "summary.csv")}
    capital = settings.portfolio.starting_cash
    intents = [ev for ev in journal if ev.get("event") == "intent"]
    for s in [*traded, "portfolio"]:
        pnls = [sum(hand[x].get(d, 0.0) for x in (traded if s == "portfolio" else [s])) for d in days]
        assert float(summ[s]["net_pnl"]) == pytest.approx(sum(pnls), abs=0.01)
        rets = [p / capital for p in pnls]
        mean = sum(rets) / 5
        sd = math.sqrt(sum((x - mean) ** 2 for x in rets) / 4)
        assert float(summ[s]["sharpe"]) == pytest.approx(mean / sd * math.sqrt(252), rel=1e-5)
        mine = [ev for ev in intents if s == "portfolio" or ev["strategy"] == s]
        exits = [ev for ev in mine if ev["kind"] == "exit"]
        assert int(summ[s]["trades"]) == len(exits)
        # every round trip's fills are 1 tick worse on each side: no-slippage P&L is 2 ticks x mult x qty more
        extra = sum(2 * settings.instruments[ev["symbol"]].tick_size * settings.instruments[ev["symbol"]].multiplier
                    * int(ev["quantity"]) for ev in exits)
        assert float(summ[s]["net_pnl_no_slippage"]) - float(summ[s]["net_pnl"]) == pytest.approx(extra, abs=0.01)
        assert float(summ[s]["slippage_ticks"]) == 2 * len(exits)
    # the backtest's own summary reads alike: the same closed trades, the same realised P&L
    from multialpha.backtest import results

    tl = results.trades(bt)
    bsum = results.summary(bt, tl, results.equity_curve(bt, tl))
    assert bsum["trades"] == int(summ["portfolio"]["trades"])
    assert bsum["realized_pnl"] == pytest.approx(float(summ["portfolio"]["net_pnl"]), abs=0.01)
    # trades.csv: one row per closed round trip
    assert len(_rows(out / "trades.csv")) == int(summ["portfolio"]["trades"])
    # one self-contained page: every chart inlined, nothing fetched
    text = page.read_text()
    assert text.count('src="data:image/png;base64,') == len(traded) + 1
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert f"${float(summ['portfolio']['net_pnl']):,.2f}" in text
    assert all(d.isoformat() in text for d in days)


def test_report_one_strategy_and_bad_input(week, tmp_path: Path) -> None:
    settings, journal, _ = week
    hand = _by_hand(settings, journal)
    name = next(s for s in STRATEGIES if s in hand)
    res = CliRunner().invoke(main, ["--config", settings.source_path, "report", "--strategy", name,
                                    "--output", str(tmp_path / "one"), "--no-png"])
    assert res.exit_code == 0, res.output
    summ = _rows(tmp_path / "one" / "summary.csv")
    assert [r["section"] for r in summ] == [name]  # no portfolio section for one strategy
    assert float(summ[0]["net_pnl"]) == pytest.approx(sum(hand[name].values()), abs=0.01)
    assert not list((tmp_path / "one").glob("*.png"))
    r = CliRunner().invoke(main, ["--config", settings.source_path, "report", "--strategy", "nope"])
    assert r.exit_code == 2 and "unknown strategy 'nope'" in r.output
    r = CliRunner().invoke(main, ["--config", settings.source_path, "report", "--from", "2025-12-1O"])
    assert r.exit_code == 2 and "--from: expected a date YYYY-MM-DD" in r.output
    r = CliRunner().invoke(main, ["--config", settings.source_path, "report", "--from", "2025-12-04",
                                  "--to", "2025-12-01"])
    assert r.exit_code == 2 and "is after --to" in r.output
    r = CliRunner().invoke(main, ["--config", settings.source_path, "report", "--from", "2025-12-06",
                                  "--to", "2025-12-07"])
    assert r.exit_code == 2 and "error: no CME trading day in 2025-12-06 .. 2025-12-07" in r.output


def test_report_without_redis_exits_1_in_one_line(bt_dirs, tmp_path: Path) -> None:
    import socket

    from tests.backtest.conftest import write_config

    with socket.socket() as sk:  # a loopback port nothing listens on
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    path = write_config(tmp_path / "dead.yml", bt_dirs, redis={"host": "127.0.0.1", "port": port, "managed": "never"})
    r = CliRunner().invoke(main, ["--config", str(path), "report"])
    assert r.exit_code == 1 and r.output.startswith("report: ") and "Traceback" not in r.output, r.output
