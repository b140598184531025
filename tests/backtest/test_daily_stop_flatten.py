"""The daily stop flattens (portfolio.on_daily_stop: flatten, the default), in the backtest as live:
once a trading day's P&L reaches the stop, every open position of every strategy is exited on its
symbol's next bar, and nothing enters again until the next trading day. With ``block`` the stop
only blocks entries (positions ride).

Real gate (Lua) + OrderRouter (paper) in a private redis-server, on the sandbox's bars."""

from __future__ import annotations

from collections import defaultdict

from multialpha import cme_time
from tests.backtest.helpers import run, veto

ALL = ["ibs_a", "ibs_b", "breakout"]


def _day(iso: str) -> object:
    return cme_time.trading_day(cme_time.parse_iso(iso))


def _walk(journal: list[dict[str, str]]) -> dict[object, list[dict[str, str]]]:
    """Accepted intents per trading day of their signal bar, in the gate's order."""
    out: dict[object, list[dict[str, str]]] = defaultdict(list)
    for j in journal:
        if j.get("event") == "intent":
            out[_day(j["bar_start"])].append(j)
    return out


def test_daily_stop_flattens_every_position_and_blocks_the_rest_of_the_day(make_settings, source) -> None:
    settings = veto(make_settings(portfolio={"max_positions": 4, "daily_stop_loss": 300.0}), "off")
    r = run(settings, ALL, source)
    flats = [j for j in r.journal if j.get("event") == "intent" and j.get("signal_reason", "").startswith(
        "flatten: daily stop")]
    assert flats, "a $300 stop over three sandbox days must trip with positions open"
    for day, intents in _walk(r.journal).items():
        first = next((i for i, j in enumerate(intents)
                      if j.get("signal_reason", "").startswith("flatten: daily stop")), None)
        if first is None:
            continue
        held = set()
        for j in intents[:first]:  # what was open when the flatten began
            key = (j["strategy"], j["symbol"])
            held.add(key) if j["kind"] == "entry" else held.discard(key)
        after = intents[first:]
        assert not [j for j in after if j["kind"] == "entry"], f"{day}: an entry after the stop"
        exited = {(j["strategy"], j["symbol"]) for j in after if j["kind"] == "exit"}
        assert held <= exited, f"{day}: still open after the flatten: {held - exited}"
        assert all(j["signal_reason"].startswith("flatten: daily stop") or j["kind"] == "exit" for j in after)
    # Entries that came after the stop were refused by the gate, with the stop as the reason.
    denied = [j for j in r.journal if j.get("event") == "denied" and j.get("kind") == "entry"]
    assert any(j["reason"].startswith("daily stop loss") for j in denied)


def test_block_mode_only_blocks_entries(make_settings, source) -> None:
    settings = veto(make_settings(portfolio={"max_positions": 4, "daily_stop_loss": 300.0,
                                             "on_daily_stop": "block"}), "off")
    r = run(settings, ALL, source)
    assert not [j for j in r.journal if j.get("signal_reason", "").startswith("flatten")]
    denied = [j for j in r.journal if j.get("event") == "denied" and j.get("kind") == "entry"]
    assert any(j["reason"].startswith("daily stop loss") for j in denied)
