"""The CME delivery calendar: last trading day, first notice day, last safe day.

Exact exchange rules on **CME business days** (weekdays that are not CME
holidays, :func:`is_business_day`), unlike the roll anchor
(``ContractMap.expiry``), which skips weekends only as ``cme_time`` does. The
rules are named in ``Data/Databento_contract_map.yml`` per root
(``last_trade``, ``settlement``) and used through ``ContractMap``:

* ``last_trading_day``: the exchange's termination-of-trading day;
* ``first_notice_day``: physically delivered futures with a notice period
  before or after the last trading day (metals, treasuries, CL, NG); ``None``
  for cash-settled products and for CME FX, whose delivery simply follows the
  last trading day (no notice period);
* ``last_safe_day``: the last trading day on which a position may still be held
  at the close without delivery or expiry risk - physical with a notice day:
  the business day before it; physical without one (FX: trading stops at
  09:16 CT on the last trading day and what is open is delivered): the
  business day before the last trading day; cash-settled: the last trading day.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

DAY = timedelta(days=1)
SETTLEMENTS = ("physical", "cash")


# -- CME business days ---------------------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    d = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - DAY
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(d: date, saturday_to_friday: bool = True) -> date | None:
    if d.weekday() == 6:
        return d + DAY
    if d.weekday() == 5:
        return d - DAY if saturday_to_friday else None
    return d


@lru_cache(maxsize=64)
def holidays(year: int) -> frozenset[date]:
    """CME holidays of ``year`` (no settlement): the US exchange holidays plus Good Friday.

    New Year's Day falling on a Saturday is not moved to the Friday before (as on
    NYSE); Juneteenth counts from 2022.
    """
    days = [
        _observed(date(year, 1, 1), saturday_to_friday=False),
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Presidents' Day
        _easter(year) - 2 * DAY,  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 6, 19)) if year >= 2022 else None,  # Juneteenth
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    ]
    return frozenset(d for d in days if d is not None)


def is_business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in holidays(d.year)


def add_business_days(d: date, n: int) -> date:
    """Move ``n`` CME business days forward (negative: backward) from ``d``."""
    step = DAY if n >= 0 else -DAY
    for _ in range(abs(n)):
        d += step
        while not is_business_day(d):
            d += step
    return d


def on_or_before(d: date) -> date:
    """``d`` if it is a business day, else the business day before it."""
    while not is_business_day(d):
        d -= DAY
    return d


def last_business_day(year: int, month: int) -> date:
    return on_or_before((date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - DAY)


def _prev_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


# -- last trading day rules (the map's `last_trade`) ---------------------------------


def _third_friday(y: int, m: int) -> date:
    # Equity index futures: the 3rd Friday, or the business day before when it
    # is a holiday (ESM6: Juneteenth 2026-06-19 -> 2026-06-18).
    return on_or_before(_nth_weekday(y, m, 4, 3))


def _fx2(y: int, m: int) -> date:
    # CME FX: 09:16 CT on the 2nd business day before the 3rd Wednesday.
    return add_business_days(_nth_weekday(y, m, 2, 3), -2)


def _fx1(y: int, m: int) -> date:
    # Canadian dollar (T+1 settlement): the business day before the 3rd Wednesday.
    return add_business_days(_nth_weekday(y, m, 2, 3), -1)


def _cl(y: int, m: int) -> date:
    # WTI: 3 business days before the 25th of the month before the contract month;
    # if the 25th is not a business day, 3 business days before the business day before it.
    return add_business_days(on_or_before(date(*_prev_month(y, m), 25)), -3)


def _ng(y: int, m: int) -> date:
    # Henry Hub: 3 business days before the first calendar day of the contract month.
    return add_business_days(date(y, m, 1), -3)


def _third_last(y: int, m: int) -> date:
    # COMEX metals (GC, SI, HG, PL): the third last business day of the contract month.
    return add_business_days(last_business_day(y, m), -2)


def _treasury(y: int, m: int) -> date:
    # CBOT bonds/notes: the 7th business day before the last business day of the contract month.
    return add_business_days(last_business_day(y, m), -7)


LAST_TRADE_RULES = {
    "third_friday": _third_friday,
    "fx2": _fx2,
    "fx1": _fx1,
    "cl": _cl,
    "ng": _ng,
    "third_last": _third_last,
    "treasury": _treasury,
}


def last_trading_day(rule: str, year: int, month: int) -> date:
    return LAST_TRADE_RULES[rule](year, month)


def first_notice_day(rule: str, settlement: str, year: int, month: int) -> date | None:
    """First notice day of a physically delivered contract, or ``None`` (cash, FX)."""
    if settlement != "physical" or rule.startswith("fx"):
        return None
    if rule in ("cl", "ng"):
        # NYMEX energy: notices start the business day after trading terminates.
        return add_business_days(last_trading_day(rule, year, month), 1)
    # COMEX metals, CBOT treasuries: the last business day of the month before the contract month.
    return last_business_day(*_prev_month(year, month))


def last_safe_day(rule: str, settlement: str, year: int, month: int) -> date:
    """Last trading day on which the contract may be held at the close without delivery risk."""
    if settlement == "cash":
        return last_trading_day(rule, year, month)
    fnd = first_notice_day(rule, settlement, year, month)
    if fnd is None:  # physical without a notice period (FX): out before the final, short session
        return add_business_days(last_trading_day(rule, year, month), -1)
    return add_business_days(fnd, -1)
