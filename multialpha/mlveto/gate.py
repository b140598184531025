"""Decide allow/veto for one entry signal: the built-in model veto's answer.

``ml_veto.mode`` (enforce / shadow / off) is applied in one place, by the
worker on whatever veto answered (worker/signals.py ``SignalDesk._veto``): the
gate only says what a model says. When no usable model exists for a symbol
(missing, tampered, wrong features), ``ml_veto.on_missing`` decides: ``block``
(fail closed, default) vetoes every entry, ``allow`` lets them through. Either
way it is logged loudly once at load and recorded on every decision. A
sandbox-trained model on real data (``sandbox_shadow``) never blocks: that is
the model's own standing, not the mode, so the gate answers allow for it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from multialpha.mlveto.loader import LoadedModel, Refusal, load_model, sandbox_shadow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVerdict:
    allow: bool              # the gate's answer (before ml_veto.mode, which the worker applies)
    vetoed: bool             # what the model said (differs from allow for a sandbox model on real data)
    reason: str
    probability: float | None
    model_sha256: str
    features: dict[str, float] = field(default_factory=dict)


class VetoGate:
    def __init__(
        self,
        models_dir: Path,
        strategy_type: str,
        symbols: Mapping[str, bool],   # symbol -> ml_enabled
        on_missing: str = "block",
        features: list[str] | None = None,
        live_data: bool = False,
        allow_sandbox_models: bool = False,
    ) -> None:
        self.on_missing = on_missing
        self.models: dict[str, LoadedModel | Refusal] = {}
        self.enabled = dict(symbols)
        self.shadowed: set[str] = set()  # sandbox-trained models on real data: never block
        for symbol, enabled in symbols.items():
            if not enabled:
                continue
            got = load_model(models_dir, strategy_type, symbol, features)
            self.models[symbol] = got
            if isinstance(got, Refusal):
                log.error("ML VETO: no usable model for %s/%s (%s) -> on_missing=%s: %s every entry",
                          strategy_type, symbol, got.reason, on_missing,
                          "BLOCKING" if on_missing == "block" else "ALLOWING")
            else:
                log.info("ML veto model %s/%s loaded (sha256 %s…, threshold %.3f)",
                         strategy_type, symbol, got.entry.sha256[:12], got.entry.threshold)
                if sandbox_shadow(got.entry, live_data, allow_sandbox_models):
                    self.shadowed.add(symbol)
        if self.shadowed:
            log.warning("ML VETO: DATABENTO_API_KEY is set but the %s model(s) for %s were trained on SANDBOX data "
                        "(synthetic prices): they run in SHADOW (recorded, never block). Retrain with `multialpha "
                        "models train` on Databento data, or set ml_veto.allow_sandbox_models: true",
                        strategy_type, ", ".join(sorted(self.shadowed)))

    def decide(self, symbol: str, side: str, features: Mapping[str, float]) -> ModelVerdict:
        feats = {k: float(v) for k, v in features.items()}
        if not self.enabled.get(symbol, False):
            return ModelVerdict(True, False, "ml disabled for symbol", None, "", feats)
        model = self.models.get(symbol)
        if not isinstance(model, LoadedModel):
            why = model.reason if isinstance(model, Refusal) else "no model"
            return self._missing(why, feats)
        try:
            row = [[feats[name] for name in model.entry.features]]
        except KeyError as e:
            return self._missing(f"feature {e.args[0]!r} not computed", feats, model.entry.sha256)
        if not all(math.isfinite(x) for x in row[0]):
            return self._missing("non-finite feature value", feats, model.entry.sha256)
        p = float(model.estimator.predict_proba(row)[0][1])
        vetoed = p < model.entry.threshold
        reason = f"p={p:.3f} {'<' if vetoed else '>='} threshold {model.entry.threshold:.3f}"
        shadow = symbol in self.shadowed
        if vetoed and shadow:
            reason += " (shadow: sandbox-trained model on real data; trading anyway)"
        return ModelVerdict(not vetoed or shadow, vetoed, reason, p, model.entry.sha256, feats)

    def _missing(self, why: str, feats: dict[str, float], sha: str = "") -> ModelVerdict:
        block = self.on_missing == "block"
        return ModelVerdict(not block, block, f"{why}; on_missing={self.on_missing}", None, sha, feats)
