"""The roll overlap: the previous front's own bars for hub.roll_overlap_days after a roll."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from multialpha.bar import Bar
from multialpha.contracts import ContractMap
from multialpha.hub.aggregator import Aggregator
from multialpha.hub.overlap import prev_front
from multialpha.hub.resolver import Resolver
from multialpha.keys import Keys
from tests.hub.records import MIN, heartbeat, mapping, ns, trade

REPO = Path(__file__).resolve().parents[2]
CMAP = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml")
TICKS = {"ES": 0.25, "6S": 0.00005}


def test_prev_front_is_the_old_contract_for_n_days_from_the_roll() -> None:
    got = {d: prev_front(CMAP, "ES", d, 2) for d in
           (date(2025, 12, 10), date(2025, 12, 11), date(2025, 12, 12), date(2025, 12, 15))}
    assert got == {date(2025, 12, 10): None, date(2025, 12, 11): "ESZ5", date(2025, 12, 12): "ESZ5",
                   date(2025, 12, 15): None}
    assert prev_front(CMAP, "6S", date(2025, 12, 8), 2) == "6SZ5"
    assert prev_front(CMAP, "ES", date(2025, 12, 11), 0) is None


def test_prev_front_of_a_volume_root_follows_its_volume_roll(tmp_path: Path) -> None:
    """``front: volume``: the overlap counts from the day the VOLUME front changed (12-12 here, a
    trading day after the calendar roll), so 12-15 is still an overlap day."""
    import yaml

    from multialpha import cme_time
    from multialpha.hub.volumes import front_on

    data = yaml.safe_load((REPO / "Data" / "Databento_contract_map.yml").read_text())
    data["roots"]["ES"]["front"] = "volume"
    (tmp_path / "map.yml").write_text(yaml.safe_dump(data))
    vmap = ContractMap.load(tmp_path / "map.yml")

    def volumes(root: str, product_id: str, day: date) -> dict[str, int]:  # the previous session's
        assert (root, product_id) == ("ES", "ES.FUT")
        return {"ESZ5": 900, "ESH6": 100} if day <= date(2025, 12, 10) else {"ESZ5": 100, "ESH6": 900}

    def front_of(day: date) -> str:
        return front_on(vmap, volumes, "ES", "ES.FUT", day)

    days = cme_time.trading_days(date(2025, 12, 10), date(2025, 12, 16))
    assert [front_of(d) for d in days] == ["ESZ5", "ESZ5", "ESH6", "ESH6", "ESH6"]
    assert [prev_front(vmap, "ES", d, 2, front_of=front_of) for d in days] == [None, None, "ESZ5", "ESZ5", None]
    # No volume answer: the calendar front stands in.
    assert front_on(vmap, lambda *a: {}, "ES", "ES.FUT", date(2025, 12, 11)) == "ESH6"


def test_keys_name_the_overlap_channel() -> None:
    assert Keys().prev_bars("ES") == "market:ES:1min:prev"
    assert Keys().prev_bar_log("ES") == "market:ES:1min:prev:log"
    assert Keys("paper").prev_bars("ES") == "paper:market:ES:1min:prev"


def test_old_contract_bars_go_out_after_the_minutes_front_bars_then_stop_after_the_overlap() -> None:
    out: list[tuple[str, Bar]] = []
    closed: list[int] = []
    resolver = Resolver(CMAP, TICKS, {r: f"{r}.FUT" for r in TICKS})

    def overlap(day: str, fronts: dict[str, str]) -> dict[str, str]:
        d = date.fromisoformat(day)
        return {r: c for r in TICKS if (c := prev_front(CMAP, r, d, 2, fronts.get(r)))}

    def other(rec) -> None:
        if type(rec).__name__ == "SymbolMappingMsg":
            resolver.on_mapping(rec.instrument_id, rec.stype_in_symbol, rec.stype_out_symbol)
        else:
            agg.advance(rec.ts_event)

    agg = Aggregator(resolver, TICKS, lambda b: out.append(("front", b)), 1.0, None, other, closed.append,
                     emit_prev=lambda b: out.append(("prev", b)), overlap=overlap)
    for rec in (mapping(1, "ESZ5", "ES.FUT"), mapping(2, "ESH6", "ES.FUT"), mapping(3, "ESZ5-ESH6", "ES.FUT"),
                mapping(4, "6SH6", "6S.FUT")):
        other(rec)
    d10 = ns("2025-12-10T20:00:00Z")  # ESZ5 front, no overlap
    agg.process([trade(1, d10, 6000.0), trade(2, d10 + 1, 6050.0), heartbeat(d10 + 2 * MIN)])
    assert [(k, b.contract) for k, b in out] == [("front", "ESZ5")]
    out.clear()
    d11 = ns("2025-12-11T15:00:00Z")  # roll day: ESH6 front, ESZ5 on the overlap channel
    agg.process([trade(1, d11, 6001.0), trade(3, d11 + 2, -50.0), trade(2, d11 + 1, 6051.0),
                 trade(4, d11 + 3, 1.25), trade(1, d11 + 4, 6002.5), heartbeat(d11 + 2 * MIN)])
    assert [(k, b.symbol, b.contract, b.open, b.close) for k, b in out] == [
        ("front", "6S", "6SH6", 1.25, 1.25), ("front", "ES", "ESH6", 6051.0, 6051.0),
        ("prev", "ES", "ESZ5", 6001.0, 6002.5)]  # after every front bar of the minute; the spread stays out
    assert agg.bars == 3 and agg.prev_bars == 1 and agg.counters()["prev_trades"] == 2
    assert agg.ignored == 2  # the back month on 12-10, the spread on 12-11
    out.clear()
    d15 = ns("2025-12-15T15:00:00Z")  # two trading days after the roll: no overlap any more
    agg.process([trade(1, d15, 6003.0), trade(2, d15 + 1, 6053.0), heartbeat(d15 + 2 * MIN)])
    assert [(k, b.contract) for k, b in out] == [("front", "ESH6")]
    assert agg.ignored == 3  # ESZ5 is a back month again
