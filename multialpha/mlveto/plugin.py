"""The built-in ML veto: verified per-symbol joblib models, as a pluggy plugin.

Registered by the worker (and the backtest) through the same
``multialpha_ml_veto`` hook as any third-party veto, ``trylast`` so that a
strategy plugin's own veto logic, when it has an opinion, speaks first; this
one answers whenever nobody else did. It reports the gate's answer; the
worker applies ``ml_veto.mode`` (enforce/shadow), to this veto and any other,
and records the decision (worker/signals.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from multialpha.hookspecs import VetoDecision, hookimpl
from multialpha.mlveto.gate import VetoGate

PLUGIN_NAME = "multialpha.mlveto"


class ModelVeto:
    def __init__(self, strategy: str, gate: VetoGate) -> None:
        self.strategy = strategy
        self.gate = gate

    @hookimpl(trylast=True)
    def multialpha_ml_veto(self, strategy: str, symbol: str, side: str, features: Mapping[str, Any]) -> VetoDecision | None:
        if strategy != self.strategy:
            return None
        v = self.gate.decide(symbol, side, {k: float(x) for k, x in features.items() if _number(x)})
        # v.allow, not "not v.vetoed": a sandbox-trained model on real data answers allow (it never blocks)
        return VetoDecision(v.allow, v.reason, v.probability, {"model_sha256": v.model_sha256})


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def register(pm: Any, settings: Any, strategy: str, strategy_type: str) -> ModelVeto:
    """(Re)register the model veto for one strategy in this process."""
    st = settings.strategies[strategy]
    gate = VetoGate(
        settings.path(settings.models_path),
        strategy_type,
        {sym: inst.ml_enabled for sym, inst in st.instruments.items()},
        on_missing=settings.ml_veto.on_missing,
        live_data=not settings.databento.uses_sandbox,
        allow_sandbox_models=settings.ml_veto.allow_sandbox_models,
    )
    name = plugin_name(strategy)
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)
    plugin = ModelVeto(strategy, gate)
    pm.register(plugin, name=name)
    return plugin


def plugin_name(strategy: str) -> str:
    """One registration per strategy: a backtest runs several in one process."""
    return f"{PLUGIN_NAME}.{strategy}"


def unregister_all(pm: Any) -> None:
    for name, plugin in list(pm.list_name_plugin()):
        if name and name.startswith(PLUGIN_NAME + ".") and isinstance(plugin, ModelVeto):
            pm.unregister(plugin, name=name)
