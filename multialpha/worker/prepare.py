"""Phase 1 of a worker, prepare: which strategy, which plugin, which feeds, which veto.

Nothing here touches Redis or Databento: a config problem found here exits 2
before the worker connects to anything. The result is :class:`Prepared`, what
every later phase reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from multialpha import plugins
from multialpha.config import ConfigError, Settings
from multialpha.hookspecs import StrategyType
from multialpha.settings_strategies import StrategySettings
from multialpha.worker.plan import FeedPlan, build_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """Hand-over of the prepare phase: the strategy as configured and as its plugin provides it."""

    st: StrategySettings  # strategies.NAME
    stype: StrategyType  # the plugin's descriptor of strategies.NAME.strategy_type
    cls: type  # the plugin's MultiAlphaStrategy subclass
    plan: FeedPlan  # feeds and their sources
    trade_late: bool  # entries on replayed bars: worker.trade_replayed_bars, or the plugin's late_signals
    plugin: dict[str, str] = field(default_factory=dict)  # name, dist, version this process loaded
    model_status: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> {usable, reason}


def prepare(settings: Settings, name: str) -> Prepared:
    """Resolve strategy ``name``; raises ConfigError naming the key for anything misconfigured."""
    if name not in settings.strategies:
        known = ", ".join(sorted(settings.strategies))
        raise ConfigError(settings.source_path, "strategies", f"unknown strategy {name!r}; known: {known}")
    st = settings.strategies[name]
    stype = plugins.strategy_type_of(settings, name)
    plugin = plugins.provider_of(st.strategy_type)  # the version this process runs (heartbeat)
    trade_late = settings.worker.trade_replayed_bars if stype.late_signals is None else stype.late_signals
    plan = build_plan(settings, name, stype)
    cls = stype.load_class()
    model_status = register_veto(settings, name, st.strategy_type)
    check_class(settings, name, st, cls)
    return Prepared(st=st, stype=stype, cls=cls, plan=plan, trade_late=trade_late, plugin=plugin,
                    model_status=model_status)


def register_veto(settings: Settings, name: str, strategy_type: str) -> dict[str, dict[str, Any]]:
    """The built-in model veto, registered as a plugin when ml_veto is on; per symbol, is a model
    usable and if not why (status shows it before any signal)."""
    if settings.ml_veto.mode == "off":
        return {}
    from multialpha.mlveto import plugin as model_veto
    from multialpha.mlveto.loader import Refusal

    veto = model_veto.register(plugins.get_plugin_manager(), settings, name, strategy_type)
    return {sym: {"usable": not isinstance(m, Refusal), "reason": getattr(m, "reason", "")}
            for sym, m in veto.gate.models.items()}


def check_class(settings: Settings, name: str, st: StrategySettings, cls: Any) -> None:
    """The plugin's class is a MultiAlphaStrategy and declares every configured param."""
    from multialpha.worker.strategy import MultiAlphaStrategy

    if not (isinstance(cls, type) and issubclass(cls, MultiAlphaStrategy)):
        raise ConfigError(
            settings.source_path, f"strategies.{name}.strategy_type",
            f"{st.strategy_type!r}: {cls!r} is not a MultiAlphaStrategy subclass",
        )
    known = set(cls.params._getkeys())
    for key in st.params:
        if key not in known:
            raise ConfigError(
                settings.source_path, f"strategies.{name}.params.{key}",
                f"unknown parameter for strategy_type {st.strategy_type!r}; known: "
                + ", ".join(sorted(known - {"runtime", "symbols", "quantities"})),
            )
