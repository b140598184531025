from __future__ import annotations

from pathlib import Path

import pytest

from multialpha.contracts import ContractMap
from multialpha.hub.resolver import Resolver
from tests.hub.records import ns

REPO = Path(__file__).resolve().parents[2]
CMAP = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml")


def test_only_the_front_outright_is_routed():
    r = Resolver(CMAP, ["ES", "6E"], {"ES": "ES.FUT", "6E": "6E.FUT"})
    r.on_mapping(1, "ES.FUT", "ESZ5")
    r.on_mapping(2, "ES.FUT", "ESH6")
    r.on_mapping(3, "ES.FUT", "ESZ5-ESH6")
    r.on_mapping(4, "NQ.FUT", "NQZ5")  # a product we do not publish
    rolls = r.refresh(ns("2025-12-01T15:00:00Z"))
    assert r.routes == {1: "ES", 2: None, 3: None, 4: None}
    assert {x.root: (x.old, x.new) for x in rolls} == {"ES": (None, "ESZ5"), "6E": (None, "6EZ5")}
    r.on_mapping(5, "6E.FUT", "6EZ5")  # a mapping after the window is known routes at once
    assert r.routes[5] == "6E"


def test_window_is_the_cme_trading_day():
    r = Resolver(CMAP, ["ES"])
    r.refresh(ns("2025-12-05T20:00:00Z"))  # Friday, trading day Dec 5
    assert (r.lo, r.hi) == (ns("2025-12-04T22:00:00Z"), ns("2025-12-05T22:00:00Z"))
    r.refresh(ns("2025-12-07T23:30:00Z"))  # Sunday evening belongs to Monday Dec 8
    assert (r.day, r.lo, r.hi) == ("2025-12-08", ns("2025-12-05T22:00:00Z"), ns("2025-12-08T22:00:00Z"))


def test_roll_and_reload_of_roots():
    r = Resolver(CMAP, ["ES"])
    r.on_mapping(1, "ES.FUT", "ESZ5")
    r.on_mapping(2, "ES.FUT", "ESH6")
    r.on_mapping(7, "NQ.FUT", "NQH6")
    r.refresh(ns("2025-12-10T15:00:00Z"))
    assert (r.routes[1], r.routes[2]) == ("ES", None)
    (roll,) = r.refresh(ns("2025-12-11T15:00:00Z"))
    assert (roll.old, roll.new, r.routes[1], r.routes[2]) == ("ESZ5", "ESH6", None, "ES")
    r.set_roots(["ES", "NQ"])
    assert r.hi == 0  # rebuilt on the next record
    r.refresh(ns("2025-12-11T15:00:00Z"))
    assert r.routes[7] == "NQ"  # an earlier mapping of a newly added root is used
    with pytest.raises(ValueError):
        Resolver(CMAP, ["XX"])
