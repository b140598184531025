"""The plugin contract: pluggy hook specifications of the `multialpha` project.

A plugin is a module (found through the ``multialpha`` entry-point group)
with functions marked ``@hookimpl``. Plugins supply strategy classes and
optional ML veto logic; the runtime owns feeds, warmup, portfolio, orders,
Redis and HTTP — a plugin never touches those.

This module stays import-light (no Backtrader): ``multialpha plugins`` and
``config check`` load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import pluggy

PROJECT = "multialpha"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Timeframe = Literal["minute", "hour", "day"]
TIMEFRAMES: tuple[str, ...] = ("minute", "hour", "day")


@dataclass(frozen=True)
class StrategyType:
    """One strategy a plugin provides, addressed by ``strategy_type`` in config.

    ``strategy_class`` is a ``multialpha.worker.strategy.MultiAlphaStrategy``
    subclass, or a ``"module:Class"`` string imported only when a worker or
    backtest needs it (keeps ``multialpha plugins`` fast).
    ``timeframes`` are the feeds built per traded symbol, named ``ES``
    (minute), ``ES_hour`` and ``ES_day``. ``reference_feeds`` lists the
    aliases (``VIX``, ``ZB_hour`` …) the class reads; config supplies them.
    ``late_signals`` overrides ``worker.trade_replayed_bars`` when not None.
    """

    name: str
    strategy_class: Any
    timeframes: tuple[str, ...] = TIMEFRAMES
    reference_feeds: tuple[str, ...] = ()
    description: str = ""
    late_signals: bool | None = None

    def __post_init__(self) -> None:
        bad = [t for t in self.timeframes if t not in TIMEFRAMES]
        if bad or "minute" not in self.timeframes:
            raise ValueError(f"strategy type {self.name!r}: timeframes must include 'minute' and be in {TIMEFRAMES}")

    def load_class(self) -> type:
        """The strategy class, importing a ``"module:Class"`` reference on first use."""
        if not isinstance(self.strategy_class, str):
            return self.strategy_class
        import importlib

        module, _, attr = self.strategy_class.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class VetoDecision:
    """The ML veto's answer: ``allow`` False blocks the entry; ``reason`` is journaled."""

    allow: bool
    reason: str = ""
    score: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@hookspec
def multialpha_strategy_types() -> list[StrategyType]:
    """Return the StrategyType descriptors this plugin provides."""


@hookspec(firstresult=True)
def multialpha_ml_veto(strategy: str, symbol: str, side: str, features: Mapping[str, Any]) -> VetoDecision | None:
    """Allow or veto an entry (None = no opinion; the first non-None answer wins)."""


@hookspec
def multialpha_features(strategy: str, symbol: str, side: str, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Compute veto features from the strategy's feeds (``data``: feed role/alias -> Backtrader feed)."""
