"""Which feeds a strategy gets, and where each feed's bars come from.

Traded symbol ``ES`` gets ``ES`` (minute), ``ES_hour``, ``ES_day`` (as its
StrategyType asks); every configured reference feed gets its alias as name.
A reference with ``source: hub`` is built from that symbol's minute bars
like any traded symbol; ``source: none`` gets flat bars at its neutral value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from multialpha.config import ConfigError, Settings
from multialpha.hookspecs import StrategyType


@dataclass(frozen=True)
class FeedSpec:
    name: str
    symbol: str
    span: str  # minute | hour | day
    neutral: float | None = None  # set for a reference feed without a data source


@dataclass
class FeedPlan:
    strategy: str
    traded: list[str]
    feeds: list[FeedSpec]
    # (symbol, span) -> feed names fed by that symbol's bars of that span
    routes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    neutral: dict[str, list[FeedSpec]] = field(default_factory=dict)  # span -> flat feeds

    @property
    def sources(self) -> list[str]:
        """Symbols whose minute bars the worker subscribes to (and warms up)."""
        return sorted({sym for sym, _ in self.routes})

    def warm_sources(self) -> list[str]:
        """Symbols that need hourly/daily warmup history."""
        return sorted({sym for (sym, span) in self.routes if span != "minute"})


def build_plan(settings: Settings, strategy: str, stype: StrategyType) -> FeedPlan:
    st = settings.strategies[strategy]
    feeds: list[FeedSpec] = []
    for sym in st.instruments:
        for tf in ("minute", "hour", "day"):
            if tf in stype.timeframes:
                feeds.append(FeedSpec(sym if tf == "minute" else f"{sym}_{tf}", sym, tf))
    names = {f.name: f for f in feeds}
    for i, alias in enumerate(st.reference_feeds):
        ref = settings.reference_feeds[alias]
        spec = FeedSpec(alias, ref.symbol, ref.timeframe, ref.neutral if ref.source == "none" else None)
        if alias in names:
            same = names[alias]
            if (same.symbol, same.span) != (spec.symbol, spec.span) or spec.neutral is not None:
                raise ConfigError(
                    settings.source_path, f"strategies.{strategy}.reference_feeds.{i}",
                    f"reference alias {alias!r} clashes with the feed of the same name of a traded symbol",
                )
            continue
        feeds.append(spec)
        names[alias] = spec
    plan = FeedPlan(strategy, list(st.instruments), feeds)
    for f in feeds:
        if f.neutral is not None:
            plan.neutral.setdefault(f.span, []).append(f)
        else:
            plan.routes.setdefault((f.symbol, f.span), []).append(f.name)
    # Every source symbol is at least subscribed at minute level (resampling starts there).
    for sym in {s for s, _ in list(plan.routes)}:
        plan.routes.setdefault((sym, "minute"), [])
    return plan
