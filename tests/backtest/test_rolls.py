"""Roll policies in the backtest (the live worker's code): a sandbox range across the FX (2025-12-08)
and equity-index (2025-12-11) rolls with positions open.

Every exit names the contract its entry opened, at that contract's own bar close; no position is
held in a contract past its last safe day; trades.csv shows a roll as two legs and the summary
counts roll costs apart.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from multialpha import cme_time, endpoints, plugins
from multialpha import config as cfg
from multialpha.backtest import data as bt_data
from multialpha.backtest import results, runner
from multialpha.contracts import ContractMap
from multialpha.sandbox.server import Sandbox
from tests.backtest import roll_plugin
from tests.backtest.conftest import SEED, write_config

CLOCK = datetime(2025, 12, 12, 18, 0, tzinfo=timezone.utc)  # Fri 12:00 CT: 12-11 complete, 12-12 running
DAYS = (date(2025, 12, 5), date(2025, 12, 12))


@pytest.fixture(scope="module")
def roll_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("rolls")
    dirs = {"run": root / "run", "cache": root / "cache", "root": root}
    settings = cfg.load(write_config(root / "sandbox.yml", dirs), environ={})
    with Sandbox(settings, seed=SEED, speed=0, days=60) as sb:
        sb.set_clock(CLOCK)
        yield sb, dirs


@pytest.fixture(scope="module")
def holder_plugin() -> Iterator[None]:
    pm = plugins.get_plugin_manager()
    pm.register(roll_plugin, name="test-roll-holder")
    yield
    pm.unregister(name="test-roll-holder")


def backtest(roll_sandbox: Any, tmp_path: Path, policy: str, overlap: int = 2,
             days: tuple[date, date] = DAYS, strategy_type: str = "roll_holder") -> runner.BacktestRun:
    from multialpha.backtest.command import Source
    from multialpha.worker import warmup

    sb, dirs = roll_sandbox
    settings = cfg.load(write_config(
        tmp_path / f"{policy}.yml", dirs, ml_veto={"mode": "off"}, hub={"roll_overlap_days": overlap},
        strategies={"holder": {"strategy_type": strategy_type, "roll": {"policy": policy},
                               "webhook_url_env": "TEST_ROLL_HOLDER_URL",
                               "instruments": {"ES": {"size": 1}, "6S": {"size": 2}}}}), environ={})
    ep = endpoints.from_state(sb.state, sb.state_file)
    src = Source(warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset), ep.dataset,
                 endpoints.now(ep), True)
    start, end = bt_data.session_range(*days)
    return runner.run(settings, ["holder"], start, end, fetch=src.fetch, dataset=src.dataset, data_now=src.now,
                      resolution="hour", portfolio={"daily_stop_loss": 1e9})


def bar_close(run: runner.BacktestRun, symbol: str, contract: str, bar_start: str) -> float:
    for sb in (*run.bars.get(symbol, []), *run.prev_bars.get(symbol, [])):
        if sb.contract == contract and cme_time.iso_z(sb.start) == bar_start:  # hourly: the :59 minute
            return sb.bar.close
    raise AssertionError(f"no {contract} bar at {bar_start}")


def check_contracts(run: runner.BacktestRun) -> list[results.Order]:
    """Every exit closes the contract its entry opened, at that contract's own bar close;
    no contract is held past its last safe day."""
    cmap = ContractMap.load(run.settings.path(run.settings.contract_map_path))
    accepted = [o for o in results.orders(run) if o.decision == "accepted"]
    held: dict[str, results.Order] = {}
    for o in accepted:
        assert o.price == bar_close(run, o.symbol, o.contract, o.bar_start), o
        if o.kind == "entry":
            held[o.symbol] = o
            continue
        entry = held.pop(o.symbol)
        assert o.contract == entry.contract, (entry, o)
        c = cmap.parse(o.contract, near=DAYS[0])
        assert cme_time.trading_day(cme_time.parse_iso(o.bar_start)) <= cmap.last_safe_day(c), o
    for o in held.values():  # still open at the end: safe on the range's last day
        c = cmap.parse(o.contract, near=DAYS[0])
        assert DAYS[1] <= cmap.last_safe_day(c), o
    return accepted


def test_forward_rolls_each_position_into_the_new_front(roll_sandbox, holder_plugin, tmp_path) -> None:
    run = backtest(roll_sandbox, tmp_path, "forward")
    orders = check_contracts(run)
    legs = [(o.symbol, o.kind, o.contract, o.tag) for o in orders]
    assert legs == [
        ("6S", "entry", "6SZ5", ""), ("ES", "entry", "ESZ5", ""),  # first live hour, 12-05
        ("6S", "exit", "6SZ5", "roll"), ("6S", "entry", "6SH6", "roll"),  # FX roll, trading day 12-08
        ("ES", "exit", "ESZ5", "roll"), ("ES", "entry", "ESH6", "roll"),  # equity roll, 12-11
    ] or sorted(legs[:2]) == legs[:2] and len(legs) == 6, legs
    by_tag = [o for o in orders if o.tag == "roll"]
    # One roll pair per symbol, both legs on the old contract's first bar after the roll.
    for sym, day in (("6S", date(2025, 12, 8)), ("ES", date(2025, 12, 11))):
        pair = [o for o in by_tag if o.symbol == sym]
        assert [o.kind for o in pair] == ["exit", "entry"] and pair[0].bar_start == pair[1].bar_start
        assert cme_time.trading_day(cme_time.parse_iso(pair[0].bar_start)) == day
        assert pair[0].quantity == pair[1].quantity == (2 if sym == "6S" else 1)
        assert pair[0].order_id != pair[1].order_id
    trades = results.trades(run)
    assert [(t.symbol, t.contract, t.exit_tag, t.entry_tag, t.status) for t in trades
            if t.symbol == "ES"] == [("ES", "ESZ5", "roll", "", "closed"), ("ES", "ESH6", "", "roll", "open")]
    summ = results.summary(run, trades, results.equity_curve(run, trades))
    assert summ["rolls"] == 2 and summ["expiry_exits"] == 0
    assert summ["roll_commission"] == 2 * (2 * 2.5) + 2 * (1 * 2.5)  # 6S 2 lots, ES 1 lot, two legs each
    # 1 tick of slippage per leg (backtest.slippage_ticks): 6S 0.00005 x 125,000 x 2 lots, ES 0.25 x 50 x 1
    assert summ["roll_slippage"] == pytest.approx(2 * (0.00005 * 125_000 * 2) + 2 * (0.25 * 50 * 1))


def test_exit_closes_and_stays_flat(roll_sandbox, holder_plugin, tmp_path) -> None:
    run = backtest(roll_sandbox, tmp_path, "exit")
    orders = check_contracts(run)
    assert [(o.symbol, o.kind, o.contract, o.tag) for o in orders if o.tag] == [
        ("6S", "exit", "6SZ5", "roll"), ("ES", "exit", "ESZ5", "roll")]
    assert not run.open_positions


def test_hold_keeps_the_old_contract_until_its_last_safe_day(roll_sandbox, holder_plugin, tmp_path) -> None:
    # Overlap long enough to reach 6SZ5's last safe day (12-12): held on its own bars until then.
    run = backtest(roll_sandbox, tmp_path, "hold", overlap=10)
    orders = check_contracts(run)
    tagged = [(o.symbol, o.kind, o.contract, o.tag) for o in orders if o.tag]
    assert tagged == [("6S", "exit", "6SZ5", "expiry")]
    exit_ = next(o for o in orders if o.tag == "expiry")
    assert cme_time.trading_day(cme_time.parse_iso(exit_.bar_start)) == date(2025, 12, 12)
    assert "last safe day 2025-12-12" in exit_.signal_reason
    # ES is still held in ESZ5 (safe until 12-19), marked at its own bars by the gate.
    (pos,) = run.open_positions
    assert pos["symbol"] == "ES" and pos["contract"] == "ESZ5"
    assert float(pos["mark"]) == run.prev_bars["ES"][-1].bar.close


def test_hold_exits_when_the_overlap_ends(roll_sandbox, holder_plugin, tmp_path) -> None:
    run = backtest(roll_sandbox, tmp_path, "hold", overlap=2)
    orders = check_contracts(run)
    ex = [o for o in orders if o.tag == "expiry"]
    # Rolled 12-08 (6S) and 12-11 (ES): old bars are published on the roll day and the next;
    # each position is exited on its old contract's first bar of that second day.
    assert [(o.symbol, o.contract, cme_time.trading_day(cme_time.parse_iso(o.bar_start))) for o in ex] == [
        ("6S", "6SZ5", date(2025, 12, 9)), ("ES", "ESZ5", date(2025, 12, 12))]
    assert not run.open_positions


def test_hour_bars_are_roll_adjusted_and_orders_stay_raw(roll_sandbox, holder_plugin, tmp_path) -> None:
    """roll.adjust (default difference) in the backtest: across each roll inside the range the hour
    feed continues in the level of the front at --from, by the gap of the two contracts' last
    common hour before the roll; an entry signalled on an adjusted hour is priced at the raw close."""
    from tests.worker.test_warmup import contract_hour_closes
    from multialpha.worker import warmup

    roll_plugin.HOURS.clear()
    run = backtest(roll_sandbox, tmp_path, "exit", strategy_type="roll_reentry")
    orders = check_contracts(run)  # every order at its own contract's raw bar close
    sb, _ = roll_sandbox
    cmap = ContractMap.load(run.settings.path(run.settings.contract_map_path))
    for sym, roll in (("6S", date(2025, 12, 8)), ("ES", date(2025, 12, 11))):
        old, new = cmap.front(sym, DAYS[0]).raw_symbol, cmap.front(sym, roll).raw_symbol
        assert [(o.kind, o.contract, o.tag) for o in orders if o.symbol == sym] == [
            ("entry", old, ""), ("exit", old, "roll"), ("entry", new, "")]  # re-entered after the roll
        s, e = warmup.day_start_ns(cme_time.previous_trading_day(roll)), warmup.day_start_ns(roll)
        a, b = contract_hour_closes(sb.market, sym, old, s, e), contract_hour_closes(sb.market, sym, new, s, e)
        gap = b[max(set(a) & set(b))] - a[max(set(a) & set(b))]  # the rule, from the market's own trades
        hours = roll_plugin.HOURS[sym]
        before = [h for h in hours if h[3] == old]
        after = [h for h in hours if h[3] == new]
        assert before and after and all(c == raw for _, c, raw, _ in before)  # the anchor is raw
        for _, close, raw, _ in after:
            assert close == pytest.approx(raw - gap, abs=1e-9) and raw != close
        steps = [abs(y[1] - x[1]) for x, y in zip(before, before[1:])]
        assert abs(after[0][1] - before[-1][1]) <= max(steps) < abs(after[0][2] - before[-1][2]), sym
