"""CME contract symbols: parse, classify, pick the front month, format for brokers.

Driven by ``Data/Databento_contract_map.yml``. Databento's GLBX raw symbols
are ``ROOT + month code + last year digit`` (``ESZ5``); calendar spreads are
two legs joined by ``-`` (``ESZ5-ESH6``). TradersPost wants the explicit
contract with a 4-digit year (``ESZ2025``).

Front-month choice is by calendar rule (expiry minus ``roll_days_before``),
not by traded volume: it is deterministic, the hub, the workers, the backtest
and the order ticker all agree on it without talking to each other, and it
needs no look-ahead at the day's volume. A root may opt into ``front: volume``
in the map (Databento's ``ROOT.v.0``: the outright with the most volume on the
previous trading day); :meth:`ContractMap.volume_front` picks it from daily
volumes the caller supplies (the hub: ``multialpha.hub.volumes``).

The delivery calendar (:meth:`ContractMap.last_trading_day`,
:meth:`~ContractMap.first_notice_day`, :meth:`~ContractMap.last_safe_day`) is
exact on CME business days (``multialpha.delivery``); every roll date is on or
before its contract's last safe day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import yaml

from multialpha import cme_time, delivery

MONTH_CODES = "FGHJKMNQUVXZ"
FRONT_RULES = ("calendar", "volume")
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
    expiry: str  # the roll anchor's rule (_EXPIRY_RULES)
    roll_days_before: int
    last_trade: str = "third_friday"  # delivery.LAST_TRADE_RULES
    settlement: str = "cash"  # "physical" | "cash"
    front: str = "calendar"  # FRONT_RULES


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
        """First trading day on which the *next* contract is the front.

        ``expiry - roll_days_before`` (a weekend moves it earlier), and never after
        :meth:`last_safe_day` (a holiday can bring the notice day closer than the anchor).
        """
        return _roll_date(self.rules[c.root], c.year, c.month)

    # -- delivery calendar (multialpha.delivery: CME business days, holidays skipped) --
    def last_trading_day(self, c: Contract) -> date:
        """The exchange's last trading day of ``c`` (termination of trading)."""
        return delivery.last_trading_day(self.rules[c.root].last_trade, c.year, c.month)

    def first_notice_day(self, c: Contract) -> date | None:
        """First notice day of a physically delivered ``c``; ``None`` when there is none
        (cash-settled products, and CME FX, whose delivery follows the last trading day)."""
        r = self.rules[c.root]
        return delivery.first_notice_day(r.last_trade, r.settlement, c.year, c.month)

    def last_safe_day(self, c: Contract) -> date:
        """Last trading day on which ``c`` may be held at the close without delivery risk.

        Physical with a first notice day: the business day before it; physical
        without one (FX): the business day before the last trading day; cash-
        settled: the last trading day. Every :meth:`roll_date` is on or before it.
        """
        r = self.rules[c.root]
        return delivery.last_safe_day(r.last_trade, r.settlement, c.year, c.month)

    def settlement(self, root: str) -> str:
        return self.rules[root].settlement

    # -- the front ----------------------------------------------------------------
    def front_rule(self, root: str) -> str:
        """``calendar`` (default) or ``volume`` (map key ``front``)."""
        return self.rules[root].front

    def volume_front(self, root: str, day: date, volumes: Mapping[str, int]) -> Contract | None:
        """Databento's ``ROOT.v.0`` on trading day ``day``: the outright of ``root`` with the
        most volume in ``volumes`` (raw symbol -> contracts traded on the previous trading day).

        Any outright counts, in the cycle or not (as ``.v.0``); spreads and other roots are
        ignored; ties go to the nearer contract. A contract past its :meth:`last_safe_day` is
        never the front. ``None`` when no candidate traded (the caller keeps its previous front).
        """
        best: tuple[int, Contract] | None = None
        for raw, vol in volumes.items():
            c = self.parse(raw, near=day)
            if c is None or c.root != root or vol <= 0 or day > self.last_safe_day(c):
                continue
            if best is None or vol > best[0] or (vol == best[0] and c < best[1]):
                best = (int(vol), c)
        return best[1] if best else None

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


@lru_cache(maxsize=4096)
def _roll_date(rule: RootRule, year: int, month: int) -> date:
    """:meth:`ContractMap.roll_date`, memoized: a pure function of a frozen rule and the month.
    ``front`` asks for the roll date of every listed contract (~16) on each call, and each one is
    ~10 us of business-day arithmetic: ~0.25 ms a call, paid by the hub's resolver for every root
    at each mapping reset and trading-day change, and by the sandbox and backtests per day."""
    d = _expiry(rule.expiry, year, month) - timedelta(days=rule.roll_days_before)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return min(d, delivery.last_safe_day(rule.last_trade, rule.settlement, year, month))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> ContractMap:
    data = yaml.safe_load(Path(path).read_text())
    for root, spec in data["roots"].items():
        required = ("product_id", "months", "expiry", "roll_days_before", "last_trade", "settlement")
        missing = [k for k in required if k not in spec]
        if missing:
            raise ValueError(f"{path}: roots.{root}: missing {', '.join(missing)}")
    rules = {
        str(root): RootRule(
            root=str(root),
            product_id=spec["product_id"],
            months=spec["months"],
            expiry=spec["expiry"],
            roll_days_before=int(spec["roll_days_before"]),
            last_trade=spec["last_trade"],
            settlement=spec["settlement"],
            front=spec.get("front", "calendar"),
        )
        for root, spec in data["roots"].items()
    }
    for r in rules.values():
        if r.expiry not in _EXPIRY_RULES:
            raise ValueError(f"{path}: roots.{r.root}.expiry: unknown rule {r.expiry!r}")
        if r.last_trade not in delivery.LAST_TRADE_RULES:
            raise ValueError(f"{path}: roots.{r.root}.last_trade: unknown rule {r.last_trade!r}")
        if r.settlement not in delivery.SETTLEMENTS:
            raise ValueError(f"{path}: roots.{r.root}.settlement: {r.settlement!r} is not physical or cash")
        if r.front not in FRONT_RULES:
            raise ValueError(f"{path}: roots.{r.root}.front: {r.front!r} is not one of {', '.join(FRONT_RULES)}")
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


def _fx1(y: int, m: int) -> date:
    return cme_time.add_business_days(_nth_weekday(y, m, 2, 3), -1)


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
    "fx1": _fx1,
    "cl": _cl,
    "ng": _ng,
    "first_notice": _first_notice,
}


def _expiry(rule: str, year: int, month: int) -> date:
    return _EXPIRY_RULES[rule](year, month)
