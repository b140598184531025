"""The one comparison verify and the parity test share: keys from journal entries, then the diff."""

from __future__ import annotations

from multialpha.verify import compare


def entry(event: str, strategy: str, symbol: str, bar: str, **kw: str) -> dict[str, str]:
    return {"event": event, "strategy": strategy, "symbol": symbol, "side": kw.pop("side", "long"),
            "kind": kw.pop("kind", "entry"), "bar_start": bar, "quantity": kw.pop("quantity", "1"), **kw}


def where(k: tuple[str, ...]) -> tuple[str, str, str]:
    return k[1], k[2], k[5]


JOURNAL = [
    entry("intent", "a", "ES", "2025-12-10T01:59:00Z"),
    {"event": "outcome", "order_id": "x", "result": "paper"},  # not a decision: ignored
    entry("denied", "b", "NQ", "2025-12-10T08:59:00Z", reason="max positions: 2 of 2 open"),
    entry("intent", "a", "ES", "2025-12-10T15:29:00Z", kind="exit"),
]


def test_decision_keys_keep_journal_order_and_both_events() -> None:
    keys = compare.decision_keys(JOURNAL)
    assert [k[0] for k in keys] == ["accepted", "denied", "accepted"]
    assert keys[1][-1] == "max positions: 2 of 2 open" and keys[0][-1] == "1"
    assert compare.intent_keys(JOURNAL) == [("a", "ES", "long", "entry", "2025-12-10T01:59:00Z", 1),
                                            ("a", "ES", "long", "exit", "2025-12-10T15:29:00Z", 1)]


def test_identical_sides_have_no_difference() -> None:
    keys = compare.decision_keys(JOURNAL)
    assert compare.diff("order", keys, list(keys), where) == []
    assert compare.first_bar([]) == ""


def test_one_altered_entry_is_one_changed_row_naming_its_bar() -> None:
    live = compare.decision_keys([*JOURNAL[:3], entry("intent", "a", "ES", "2025-12-10T15:29:00Z", kind="exit",
                                                       quantity="2")])
    d = compare.diff("order", live, compare.decision_keys(JOURNAL), where)
    assert len(d) == 1 and d[0].change == "changed" and d[0].bar_start == "2025-12-10T15:29:00Z"
    assert d[0].live.endswith(" 2") and d[0].replay.endswith(" 1") and (d[0].strategy, d[0].symbol) == ("a", "ES")


def test_missing_and_extra_decisions_and_the_first_bar() -> None:
    replay = compare.decision_keys(JOURNAL)
    live = replay[:1] + replay[2:] + [("accepted", "c", "GC", "long", "entry", "2025-12-10T20:00:00Z", "1")]
    d = compare.diff("order", live, replay, where)
    assert [(x.change, x.symbol) for x in d] == [("only_replay", "NQ"), ("only_live", "GC")]
    assert compare.first_bar(d) == "2025-12-10T08:59:00Z"


def test_veto_keys_with_bar_match_between_the_log_and_the_backtest() -> None:
    from multialpha import cme_time

    log_entry = {"strategy": "a", "symbol": "ES", "side": "long", "bar_start": "2025-12-10T01:59:00Z",
                 "decision": "veto", "acted": "block", "probability": "0.250000", "features": '{"ibs": 0.5}'}
    bt = {"strategy": "a", "symbol": "ES", "side": "long", "bar_start": cme_time.parse_iso("2025-12-10T01:59:00Z"),
          "allow": False, "acted": False, "probability": 0.25, "features": {"ibs": 0.5}}
    assert compare.veto_keys_live([log_entry], bar=True) == compare.veto_keys_backtest([bt], bar=True)
    assert compare.veto_keys_live([log_entry]) == compare.veto_keys_backtest([bt])  # the parity test's keys
    bt2 = dict(bt, probability=0.26)
    d = compare.diff("veto", compare.veto_keys_live([log_entry], bar=True)["a"],
                     compare.veto_keys_backtest([bt2], bar=True)["a"], lambda k: ("a", k[0], k[2]))
    assert len(d) == 1 and d[0].bar_start == "2025-12-10T01:59:00Z" and "0.260000" in d[0].replay
