"""Resolver with ``front: volume`` roots (Databento's ROOT.v.0 rule), on a fake volume source."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from multialpha.contracts import ContractMap
from multialpha.hub.resolver import Resolver
from tests.hub.records import ns

REPO = Path(__file__).resolve().parents[2]


def volume_map(tmp_path: Path, *roots: str) -> ContractMap:
    data = yaml.safe_load((REPO / "Data" / "Databento_contract_map.yml").read_text())
    for root in roots:
        data["roots"][root]["front"] = "volume"
    path = tmp_path / "map.yml"
    path.write_text(yaml.safe_dump(data))
    return ContractMap.load(path)


class FakeVolumes:
    def __init__(self, table: dict[date, dict[str, int]], fail: set[date] = frozenset()) -> None:
        self.table, self.fail, self.calls = table, fail, []

    def __call__(self, root: str, product_id: str, day: date) -> dict[str, int]:
        self.calls.append((root, product_id, day))
        if day in self.fail:
            raise ConnectionError("historical down")
        return {k: v for k, v in self.table.get(day, {}).items() if k.startswith(root)}


def test_front_is_the_previous_days_busiest(tmp_path: Path) -> None:
    cmap = volume_map(tmp_path, "ES")
    vols = FakeVolumes({
        date(2025, 12, 9): {"ESZ5": 900, "ESH6": 400, "ESZ5-ESH6": 9000},
        date(2025, 12, 10): {"ESZ5": 500, "ESH6": 800},
        date(2025, 12, 11): {"ESZ5": 300, "ESH6": 900},
    })  # fmt: skip
    r = Resolver(cmap, ["ES", "NQ"], {"ES": "ES.FUT", "NQ": "NQ.FUT"}, volumes=vols)
    r.on_mapping(1, "ES.FUT", "ESZ5")
    r.on_mapping(2, "ES.FUT", "ESH6")
    r.refresh(ns("2025-12-10T15:00:00Z"))  # trading day 12-10: 12-09's busiest
    assert r.front["ES"] == "ESZ5" and (r.routes[1], r.routes[2]) == ("ES", None)
    (roll,) = [x for x in r.refresh(ns("2025-12-10T23:30:00Z")) if x.root == "ES"]  # trading day 12-11
    assert (roll.old, roll.new, roll.trading_day) == ("ESZ5", "ESH6", "2025-12-11")
    assert (r.routes[1], r.routes[2]) == (None, "ES")
    # the calendar root never asks; the volume root asks once per trading day, for the day before
    assert vols.calls == [("ES", "ES.FUT", date(2025, 12, 9)), ("ES", "ES.FUT", date(2025, 12, 10))]
    assert r.front["NQ"] == cmap.front("NQ", date(2025, 12, 11)).raw_symbol


def test_no_volumes_keep_the_previous_front_while_safe(tmp_path: Path) -> None:
    cmap = volume_map(tmp_path, "GC")
    vols = FakeVolumes({date(2025, 11, 20): {"GCZ5": 50, "GCG6": 10}}, fail={date(2025, 11, 21)})
    r = Resolver(cmap, ["GC"], volumes=vols)
    r.refresh(ns("2025-11-21T15:00:00Z"))
    assert r.front["GC"] == "GCZ5"
    assert r.refresh(ns("2025-11-24T15:00:00Z")) == []  # an error: kept
    r.refresh(ns("2025-11-25T15:00:00Z"))  # nothing traded (holiday-like): kept, still safe
    assert r.front["GC"] == "GCZ5"
    (roll,) = r.refresh(ns("2025-11-27T15:00:00Z"))  # past GCZ5's last safe day (11-26): calendar
    assert (roll.old, roll.new) == ("GCZ5", "GCG6")
    # a cold start without any volume falls back to the calendar front
    cold = Resolver(cmap, ["GC"], volumes=FakeVolumes({}))
    cold.refresh(ns("2025-08-15T15:00:00Z"))
    assert cold.front["GC"] == "GCZ5"


def test_a_volume_root_needs_a_source(tmp_path: Path) -> None:
    cmap = volume_map(tmp_path, "ES")
    with pytest.raises(ValueError, match="front: volume"):
        Resolver(cmap, ["ES"])
    Resolver(cmap, ["NQ"])  # calendar roots alone need none
