"""Contract symbols, expiry rules and the front-month roll."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from multialpha import delivery
from multialpha.contracts import MONTH_CODES, Contract, ContractMap
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


def test_roll_dates_are_memoized_per_rule() -> None:
    """front() asks for every listed contract's roll date: computed once per (rule, month), and a
    map with another rule for the same root gets its own dates, never the cached ones."""
    from dataclasses import replace

    from multialpha import contracts

    CMAP.front("ES", date(2025, 12, 1))
    before = contracts._roll_date.cache_info()
    assert CMAP.front("ES", date(2025, 12, 1)) == Contract(2025, 12, "ES")
    after = contracts._roll_date.cache_info()
    assert after.misses == before.misses and after.hits > before.hits
    later = ContractMap({**CMAP.rules, "ES": replace(CMAP.rules["ES"], roll_days_before=1)})
    c = Contract(2025, 12, "ES")
    assert later.roll_date(c) > CMAP.roll_date(c)


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


# -- liquid fronts and the delivery calendar (#18) ------------------------------------------

# CME's actively traded months per root (where volume and open interest roll), written out
# independently of the map: the calendar front must never be a listed-but-thin month.
ACTIVE = {
    **{r: "HMUZ" for r in ("ES", "NQ", "RTY", "YM", "ZB", "6A", "6B", "6C", "6E", "6J", "6M", "6N", "6S")},
    "CL": "FGHJKMNQUVXZ", "NG": "FGHJKMNQUVXZ",
    "GC": "GJMQZ",  # October is listed, but volume rolls August -> December
    "SI": "HKNUZ", "HG": "HKNUZ", "PL": "FJNV",
}  # fmt: skip
SETTLEMENT = {r: "cash" for r in ("ES", "NQ", "RTY", "YM")}


def test_gc_front_in_august_is_december() -> None:
    # GCQ5's first notice day is Thu 2025-07-31, roll 3 days earlier (Mon 07-28); GCV5 is skipped.
    assert CMAP.front("GC", date(2025, 8, 15)).raw_symbol == "GCZ5"
    assert CMAP.front("GC", date(2025, 7, 25)).raw_symbol == "GCQ5"
    assert CMAP.front("GC", date(2025, 7, 28)).raw_symbol == "GCZ5"
    assert CMAP.front("GC", date(2025, 9, 30)).raw_symbol == "GCZ5"


def test_no_front_is_ever_outside_the_actively_traded_cycle() -> None:
    assert set(CMAP.rules) == set(ACTIVE)
    for root, rule in CMAP.rules.items():
        assert rule.months == ACTIVE[root], root
        assert rule.settlement == SETTLEMENT.get(root, "physical"), root
        for c, d0, d1 in CMAP.fronts(root, date(2019, 1, 1), date(2031, 12, 31)):
            assert c.code in ACTIVE[root], (root, c, d0)
            assert d0 <= d1 <= CMAP.last_safe_day(c), (root, c)


def test_every_roll_date_is_on_or_before_the_last_safe_day() -> None:
    for root, rule in CMAP.rules.items():
        for year in range(2018, 2036):
            for code in rule.months:
                c = Contract(year, MONTH_CODES.index(code) + 1, root)
                safe = CMAP.last_safe_day(c)
                assert CMAP.roll_date(c) <= safe, (c.raw_symbol, CMAP.roll_date(c), safe)
                assert safe <= CMAP.last_trading_day(c)
                assert safe.weekday() < 5 and safe not in delivery.holidays(safe.year)


@pytest.mark.parametrize(
    "raw,ltd,fnd,safe",
    [
        # GCZ5, COMEX gold, physical. FND = last business day of the month before the contract
        # month: Nov 2025 ends Sun 30 -> Fri 28 (Thanksgiving is Thu 27) -> FND Fri 2025-11-28.
        # Last safe = the business day before FND: Thu 27 is Thanksgiving -> Wed 2025-11-26.
        # LTD = third last business day of Dec 2025: Wed 31, Tue 30, Mon 29 -> 2025-12-29.
        ("GCZ5", date(2025, 12, 29), date(2025, 11, 28), date(2025, 11, 26)),
        # ESZ5, cash-settled: LTD = 3rd Friday of Dec 2025 (Fri 5, 12, 19) = 2025-12-19 = last safe.
        ("ESZ5", date(2025, 12, 19), None, date(2025, 12, 19)),
        # CLF6, WTI, physical: LTD = 3 business days before the 25th of Dec 2025; the 25th is
        # Christmas, so 3 before the business day before it (Wed 24): Tue 23, Mon 22, Fri 19
        # -> LTD Fri 2025-12-19; FND = the next business day, Mon 2025-12-22; last safe = the
        # business day before FND = Fri 2025-12-19.
        ("CLF6", date(2025, 12, 19), date(2025, 12, 22), date(2025, 12, 19)),
        # ZBH6, CBOT bond, physical: FND = last business day of Feb 2026 = Fri 2026-02-27;
        # last safe = Thu 2026-02-26. LTD = 7 business days before the last business day of
        # March (Tue 31): 30, 27, 26, 25, 24, 23, 20 -> Fri 2026-03-20.
        ("ZBH6", date(2026, 3, 20), date(2026, 2, 27), date(2026, 2, 26)),
        # 6EZ5, euro FX, physically delivered but no notice period: LTD = 2 business days
        # before the 3rd Wednesday of Dec 2025 (Wed 3, 10, 17): Tue 16, Mon 15 -> 2025-12-15;
        # last safe = the business day before the LTD (trading ends 09:16 CT) = Fri 2025-12-12.
        ("6EZ5", date(2025, 12, 15), None, date(2025, 12, 12)),
    ],
)
def test_delivery_calendar_by_hand(raw: str, ltd: date, fnd: date | None, safe: date) -> None:
    c = CMAP.parse(raw, near=date(2025, 12, 1))
    assert c is not None
    assert (CMAP.last_trading_day(c), CMAP.first_notice_day(c), CMAP.last_safe_day(c)) == (ltd, fnd, safe)


def test_holidays_move_the_delivery_calendar() -> None:
    # ESM6: the 3rd Friday of June 2026 is Juneteenth -> trading ends Thu 2026-06-18.
    assert CMAP.last_trading_day(CMAP.parse("ESM6", near=date(2026, 1, 1))) == date(2026, 6, 18)
    assert delivery.holidays(2026) >= {date(2026, 4, 3), date(2026, 11, 26), date(2026, 12, 25), date(2026, 1, 19)}
    assert date(2022, 12, 31) not in delivery.holidays(2022) and date(2022, 12, 26) in delivery.holidays(2022)
    # 6C trades until the business day before the 3rd Wednesday (CAD settles T+1).
    assert CMAP.last_trading_day(CMAP.parse("6CZ5", near=date(2025, 12, 1))) == date(2025, 12, 16)


def test_volume_front_picks_the_busiest_outright() -> None:
    day = date(2025, 12, 11)
    vols = {"ESZ5": 900, "ESH6": 1200, "ESZ5-ESH6": 5000, "NQH6": 9999, "ESM6": 3}
    assert CMAP.volume_front("ES", day, vols).raw_symbol == "ESH6"
    assert CMAP.volume_front("ES", day, {"ESZ5": 10, "ESH6": 10}).raw_symbol == "ESZ5"  # tie: nearer
    assert CMAP.volume_front("ES", day, {}) is None
    assert CMAP.volume_front("ES", day, {"ESZ5-ESH6": 5}) is None
    # never a contract past its last safe day, however busy (GCZ5: safe until 2025-11-26)
    assert CMAP.volume_front("GC", date(2025, 11, 27), {"GCZ5": 100, "GCG6": 1}).raw_symbol == "GCG6"
    assert CMAP.front_rule("ES") == "calendar"


@pytest.mark.parametrize(
    "field,value,message",
    [("settlement", "physcial", "settlement"), ("front", "oi", "front"), ("last_trade", "x", "last_trade")],
)
def test_map_validation(tmp_path, field: str, value: str, message: str) -> None:
    import yaml

    data = yaml.safe_load((REPO / "Data" / "Databento_contract_map.yml").read_text())
    data["roots"]["ES"][field] = value
    (tmp_path / "map.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message):
        ContractMap.load(tmp_path / "map.yml")
    del data["roots"]["ES"]["settlement"]
    (tmp_path / "map2.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="missing settlement"):
        ContractMap.load(tmp_path / "map2.yml")
