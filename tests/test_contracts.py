"""Contract symbols, expiry rules and the front-month roll."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from multialpha.contracts import Contract, ContractMap
from tests.conftest import REPO

CMAP = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml")


def test_all_configured_roots_are_mapped() -> None:
    from multialpha import config as cfg
    from tests.conftest import SHIPPED_CONFIG

    s = cfg.load(SHIPPED_CONFIG, environ={})
    for root, spec in s.instruments.items():
        assert CMAP.rules[root].product_id == spec.product_id


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("ESZ5", Contract(2025, 12, "ES")),
        ("ESH6", Contract(2026, 3, "ES")),
        ("6EH6", Contract(2026, 3, "6E")),
        ("RTYM6", Contract(2026, 6, "RTY")),
        ("ESZ5-ESH6", None),   # calendar spread
        ("UD:1V: GN 1209", None),
        ("XXZ5", None),        # unknown root
        ("ES", None),
    ],
)
def test_parse(raw: str, expected: Contract | None) -> None:
    assert CMAP.parse(raw, near=date(2025, 12, 1)) == expected


def test_year_digit_wraps_decades() -> None:
    assert CMAP.parse("ESH0", near=date(2029, 12, 20)) == Contract(2030, 3, "ES")


def test_symbol_formats() -> None:
    c = Contract(2025, 9, "MNQ")
    assert c.raw_symbol == "MNQU5" and c.traderspost_symbol == "MNQU2025"


@pytest.mark.parametrize(
    "root,contract,expiry",
    [
        ("ES", "ESZ5", date(2025, 12, 19)),   # third Friday
        ("6E", "6EZ5", date(2025, 12, 15)),   # 2 business days before the 3rd Wednesday (Dec 17)
        ("CL", "CLG6", date(2026, 1, 20)),    # 25 Jan is a Sunday: 3 business days before Fri 23 Jan
        ("NG", "NGF6", date(2025, 12, 29)),   # 3 business days before Jan 1
        ("GC", "GCG6", date(2026, 1, 30)),    # last business day of January
    ],
)
def test_expiry_rules(root: str, contract: str, expiry: date) -> None:
    c = CMAP.parse(contract, near=date(2025, 12, 1))
    assert c is not None and CMAP.expiry(c) == expiry


def test_es_rolls_eight_days_before_expiry() -> None:
    z5 = CMAP.parse("ESZ5", near=date(2025, 12, 1))
    assert CMAP.roll_date(z5) == date(2025, 12, 11)
    assert CMAP.front("ES", date(2025, 12, 10)).raw_symbol == "ESZ5"
    assert CMAP.front("ES", date(2025, 12, 11)).raw_symbol == "ESH6"
    # An instant maps through its CME trading day: Wed 10 Dec 17:00 CT is trading day Thu 11 Dec.
    from multialpha.cme_time import CHICAGO

    assert CMAP.front("ES", datetime(2025, 12, 10, 16, 59, tzinfo=CHICAGO)).raw_symbol == "ESH6"  # halt -> next day
    assert CMAP.front("ES", datetime(2025, 12, 10, 15, 59, tzinfo=CHICAGO)).raw_symbol == "ESZ5"


def test_front_is_always_listed_and_monotonic() -> None:
    for root in CMAP.rules:
        prev = None
        d = date(2025, 1, 1)
        while d < date(2027, 1, 1):
            f = CMAP.front(root, d)
            assert f.code in CMAP.rules[root].months
            assert prev is None or f >= prev
            prev = f
            d = date.fromordinal(d.toordinal() + 3)
        assert CMAP.next_after(prev) > prev
