"""Instrument ids -> the root whose bar series they feed (front month only).

A parent subscription (``ES.FUT``) delivers every outright month and every
calendar spread of a product, each announced by a ``SymbolMappingMsg``
(instrument id -> raw symbol such as ``ESZ5`` or ``ESZ5-ESH6``). Only one of
them may feed the ``ES`` series: the *front* contract by the contract map's
calendar roll rule (:meth:`ContractMap.front`). We use that rule rather than
Databento continuous symbology (``ES.c.0``/``ES.v.0``) because

- the workers' historical warmup, the backtest and the order ticker use the
  same rule, so a live bar and the order it triggers name the same contract;
- live continuous subscriptions are not remapped mid-session, so a roll would
  only appear after a reconnect; here it switches at the trading-day boundary.

A root with ``front: volume`` in the map follows Databento's ``ROOT.v.0`` rule
instead: on trading day D, the outright with the most volume on the previous
trading day (:meth:`ContractMap.volume_front`), from a ``volumes`` source asked
once per root and day (``multialpha.hub.volumes.HistoricalVolumes``: why
Historical ``ohlcv-1h`` over the previous session is the mechanism is written
there). No answer (no volume, an error) keeps the previous front while it is
safe to hold, else the calendar front.

The front can only change when the CME trading day changes, and a trading day
is the same UTC window for every product, so the hot path keeps one window
``[lo, hi)`` and a flat ``routes`` dict (instrument id -> the root's target -
the aggregator binds its per-root series so a trade costs one dict lookup - or
``None`` for a spread / back month / unknown product). :meth:`refresh` rebuilds both when a
record's time leaves the window (once a day) and reports rolls. Days change at
16:00 CT, inside the daily halt, so a roll never splits a minute bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

from multialpha import cme_time
from multialpha.contracts import ContractMap
from multialpha.hub.volumes import VolumeSource, volume_front

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Roll:
    root: str
    old: str | None  # None on the first resolution after start-up
    new: str
    ts_ns: int  # the record time that crossed into the new trading day
    trading_day: str  # ISO date


class Resolver:
    def __init__(
        self,
        contract_map: ContractMap,
        roots: Iterable[str],
        product_ids: dict[str, str] | None = None,
        volumes: VolumeSource | None = None,
    ) -> None:
        self.cmap = contract_map
        self.volumes = volumes
        self.front: dict[str, str] = {}
        self.set_roots(roots, product_ids)
        self.symbols: dict[int, tuple[str | None, str]] = {}  # iid -> (root or None, raw symbol)
        self.routes: dict[int, Any] = {}
        self.targets: dict[str, Any] = {}  # root -> what routes hold (default: the root)
        # set_roots opened the trading-day window [lo, hi) in ns empty: it fills on the first refresh
        self.day: str = ""

    # -- cold path: one call per SymbolMappingMsg ------------------------------------
    def on_mapping(self, instrument_id: int, in_symbol: str, out_symbol: str) -> None:
        raw = out_symbol
        root: str | None = None
        if not ContractMap.is_spread(raw):
            # Roots we do not publish keep their name: front.get() filters them,
            # and a reload that adds them needs no new mappings.
            root = self.parents.get(in_symbol) or self.cmap.root_of(raw)
        self.symbols[instrument_id] = (root, raw)
        # Route at once if the window is known; otherwise refresh() will.
        if self.hi:
            self.routes[instrument_id] = self._route(root, raw)

    def raw_symbol(self, instrument_id: int) -> str | None:
        entry = self.symbols.get(instrument_id)
        return entry[1] if entry else None

    # -- once a trading day ---------------------------------------------------------
    def refresh(self, ts_ns: int) -> list[Roll]:
        """Recompute the window and the front of every root for the day of ``ts_ns``."""
        day = cme_time.trading_day(ts_ns)
        self.lo = cme_time.to_ns(cme_time.session_bounds(cme_time.previous_trading_day(day))[1])
        self.hi = cme_time.to_ns(cme_time.session_bounds(day)[1])
        self.day = day.isoformat()
        rolls: list[Roll] = []
        for root in self.roots:
            new = self._front(root, day)
            old = self.front.get(root)
            if new != old:
                self.front[root] = new
                rolls.append(Roll(root, old, new, ts_ns, self.day))
        self.rebuild()
        return rolls

    def _front(self, root: str, day: date) -> str:
        if self.cmap.front_rule(root) != "volume":
            return self.cmap.front(root, day).raw_symbol
        got = volume_front(self.cmap, self.volumes, root, self.product_ids[root], day)  # type: ignore[arg-type]
        if got is not None:
            return got
        # no answer: keep the previous front while it is safe to hold
        old = self.cmap.parse(self.front.get(root, ""), near=day)
        if old is not None and day <= self.cmap.last_safe_day(old):
            return old.raw_symbol
        return self.cmap.front(root, day).raw_symbol

    def bind(self, targets: dict[str, Any]) -> None:
        """Routes hold ``targets[root]`` instead of the root name."""
        self.targets = targets
        self.rebuild()

    def rebuild(self) -> None:
        self.routes = {iid: self._route(root, raw) for iid, (root, raw) in self.symbols.items()}

    def _route(self, root: str | None, raw: str) -> Any:
        if root is None or self.front.get(root) != raw:
            return None
        return self.targets.get(root, root)

    def set_roots(self, roots: Iterable[str], product_ids: dict[str, str] | None = None) -> None:
        """Config reload: a new root set; routes are rebuilt on the next record."""
        self.roots = sorted(set(roots))
        # "ES.FUT" -> "ES": the parent symbol names the product even for spreads.
        self.parents = {pid: root for root, pid in (product_ids or {}).items() if root in self.roots}
        for root in self.roots:
            if root not in self.cmap.rules:
                raise ValueError(f"root {root!r} is not in the contract map")
            self.parents.setdefault(self.cmap.rules[root].product_id, root)
            if self.cmap.front_rule(root) == "volume" and self.volumes is None:
                raise ValueError(f"root {root!r} has front: volume in the contract map: the resolver needs volumes=")
        self.product_ids = {r: (product_ids or {}).get(r) or self.cmap.rules[r].product_id for r in self.roots}
        self.front = {r: f for r, f in self.front.items() if r in self.roots}
        self.lo = self.hi = 0

    def reset_mappings(self) -> None:
        """A new session re-announces every instrument (ids are unique per day only)."""
        self.symbols.clear()
        self.routes.clear()
