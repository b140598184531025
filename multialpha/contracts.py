"""CME contract symbols: parse, classify, pick the front month, format for brokers.

Driven by ``Data/Databento_contract_map.yml``. Databento's GLBX raw symbols
are ``ROOT + month code + last year digit`` (``ESZ5``); calendar spreads are
two legs joined by ``-`` (``ESZ5-ESH6``). TradersPost wants the explicit
contract with a 4-digit year (``ESZ2025``).

Front-month choice is by calendar rule (expiry minus ``roll_days_before``),
not by traded volume: it is deterministic, the hub, the workers, the backtest
and the order ticker all agree on it without talking to each other, and it
needs no look-ahead at the day's volume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import yaml

from multialpha import cme_time

MONTH_CODES = "FGHJKMNQUVXZ"
_RAW = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<month>[FGHJKMNQUVXZ])(?P<year>\d{1,2})$")


@dataclass(frozen=True, order=True)
class Contract:
    year: int
    month: int
    root: str

    @property
    def code(self) -> str:
        return MONTH_CODES[self.month - 1]

    @property
    def raw_symbol(self) -> str:
        """Databento GLBX spelling: ESZ5."""
        return f"{self.root}{self.code}{self.year % 10}"

    @property
    def traderspost_symbol(self) -> str:
        """TradersPost spelling with a 4-digit year: ESZ2025."""
        return f"{self.root}{self.code}{self.year}"


@dataclass(frozen=True)
class RootRule:
    root: str
    product_id: str
    months: str
    expiry: str
    roll_days_before: int


class ContractMap:
    def __init__(self, rules: dict[str, RootRule]) -> None:
        self.rules = rules
        # Longest roots first so "6E" never shadows a hypothetical "6EX".
        self._roots = sorted(rules, key=len, reverse=True)

    @classmethod
    def load(cls, path: str | Path) -> "ContractMap":
        return _load_cached(str(Path(path).resolve()))

    # -- parsing ------------------------------------------------------------------
    @staticmethod
    def is_spread(raw_symbol: str) -> bool:
        return "-" in raw_symbol or ":" in raw_symbol or " " in raw_symbol

    def parse(self, raw_symbol: str, near: date | None = None) -> Contract | None:
        """ESZ5 -> Contract(ES, 12, 2025); None for spreads, options, unknown roots.

        The single year digit is resolved to the first year >= near.year - 1
        that ends in it (contracts listed here never run more than 9 years).
        """
        if self.is_spread(raw_symbol):
            return None
        m = _RAW.match(raw_symbol)
        if not m:
            return None
        root = m.group("root")
        if root not in self.rules:
            return None
        digits = m.group("year")
        ref = (near or cme_time.utcnow().date()).year
        if len(digits) == 2:
            year = (ref // 100) * 100 + int(digits)
        else:
            year = ref - 1
            while year % 10 != int(digits):
                year += 1
        return Contract(year, MONTH_CODES.index(m.group("month")) + 1, root)

    def root_of(self, raw_symbol: str) -> str | None:
        c = self.parse(raw_symbol)
        return c.root if c else None

    # -- calendar ---------------------------------------------------------------
    def expiry(self, c: Contract) -> date:
        return _expiry(self.rules[c.root].expiry, c.year, c.month)

    def roll_date(self, c: Contract) -> date:
        """First trading day on which the *next* contract is the front."""
        d = self.expiry(c) - timedelta(days=self.rules[c.root].roll_days_before)
        while d.weekday() >= 5:
            d -= timedelta(days=1)
        return d

    def listed(self, root: str, around: date, years: int = 2) -> list[Contract]:
        rule = self.rules[root]
        out = [
            Contract(y, MONTH_CODES.index(code) + 1, root)
            for y in range(around.year - 1, around.year + years + 1)
            for code in rule.months
        ]
        return sorted(out)

    def front(self, root: str, when: datetime | date) -> Contract:
        """The series contract for ``root`` on the trading day of ``when``."""
        day = when if isinstance(when, date) and not isinstance(when, datetime) else cme_time.trading_day(when)
        for c in self.listed(root, day):
            if day < self.roll_date(c):
                return c
        raise ValueError(f"no listed {root} contract after {day}")  # pragma: no cover

    def fronts(self, root: str, first: date, last: date) -> list[tuple[Contract, date, date]]:
        """``(contract, d0, d1)``: runs of trading days ``d0..d1`` (inclusive) in ``[first, last]``
        whose ``front`` is ``contract``, in time order — one ``front`` call per roll, not per day."""
        out: list[tuple[Contract, date, date]] = []
        day = first if first.weekday() < 5 else cme_time.next_trading_day(first)
        while day <= last:
            c = self.front(root, day)
            roll = self.roll_date(c)  # first trading day on which c is no longer the front
            out.append((c, day, min(last, cme_time.previous_trading_day(roll))))
            day = roll
        return out

    def next_after(self, c: Contract) -> Contract:
        later = [x for x in self.listed(c.root, date(c.year, c.month, 1)) if x > c]
        return later[0]


@lru_cache(maxsize=8)
def _load_cached(path: str) -> ContractMap:
    data = yaml.safe_load(Path(path).read_text())
    rules = {
        str(root): RootRule(
            root=str(root),
            product_id=spec["product_id"],
            months=spec["months"],
            expiry=spec["expiry"],
            roll_days_before=int(spec["roll_days_before"]),
        )
        for root, spec in data["roots"].items()
    }
    for r in rules.values():
        if r.expiry not in _EXPIRY_RULES:
            raise ValueError(f"{path}: roots.{r.root}.expiry: unknown rule {r.expiry!r}")
        if any(ch not in MONTH_CODES for ch in r.months):
            raise ValueError(f"{path}: roots.{r.root}.months: bad month code in {r.months!r}")
    return ContractMap(rules)


# -- expiry rules -----------------------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _prev_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _last_business_day(year: int, month: int) -> date:
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    d = nxt - timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def _third_friday(y: int, m: int) -> date:
    return _nth_weekday(y, m, 4, 3)


def _fx(y: int, m: int) -> date:
    return cme_time.add_business_days(_nth_weekday(y, m, 2, 3), -2)


def _cl(y: int, m: int) -> date:
    py, pm = _prev_month(y, m)
    d = date(py, pm, 25)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return cme_time.add_business_days(d, -3)


def _ng(y: int, m: int) -> date:
    return cme_time.add_business_days(date(y, m, 1), -3)


def _first_notice(y: int, m: int) -> date:
    return _last_business_day(*_prev_month(y, m))


_EXPIRY_RULES = {
    "third_friday": _third_friday,
    "fx": _fx,
    "cl": _cl,
    "ng": _ng,
    "first_notice": _first_notice,
}


def _expiry(rule: str, year: int, month: int) -> date:
    return _EXPIRY_RULES[rule](year, month)
