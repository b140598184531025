"""Decide allow/veto for one entry signal.

Modes (``ml_veto.mode``): ``enforce`` — a veto blocks the entry; ``shadow`` —
record what would have been vetoed and trade anyway; ``off`` — always allow,
no model loaded. When no usable model exists for a symbol (missing, tampered,
wrong features), ``ml_veto.on_missing`` decides: ``block`` (fail closed,
default) vetoes every entry, ``allow`` lets them through. Either way it is
logged loudly once at load and recorded on every decision.
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
    allow: bool              # what the runtime does
    vetoed: bool             # what the model said (differs from allow in shadow mode)
    reason: str
    probability: float | None
    model_sha256: str
    mode: str
    features: dict[str, float] = field(default_factory=dict)


class VetoGate:
    def __init__(
        self,
        models_dir: Path,
        strategy_type: str,
        symbols: Mapping[str, bool],   # symbol -> ml_enabled
        mode: str = "enforce",
        on_missing: str = "block",
        features: list[str] | None = None,
        live_data: bool = False,
        allow_sandbox_models: bool = False,
    ) -> None:
        self.mode = mode
        self.on_missing = on_missing
        self.models: dict[str, LoadedModel | Refusal] = {}
        self.enabled = dict(symbols)
        self.shadowed: set[str] = set()  # sandbox-trained models on real data: never block
        if mode == "off":
            return
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
        if self.mode == "off" or not self.enabled.get(symbol, False):
            return ModelVerdict(True, False, "ml veto off" if self.mode == "off" else "ml disabled for symbol",
                                None, "", self.mode, feats)
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
        shadow = self.mode == "shadow" or symbol in self.shadowed
        allow = not vetoed or shadow
        if vetoed and shadow:
            reason += " (shadow: trading anyway)" if self.mode == "shadow" else \
                " (shadow: sandbox-trained model on real data; trading anyway)"
        return ModelVerdict(allow, vetoed, reason, p, model.entry.sha256, self.mode, feats)

    def _missing(self, why: str, feats: dict[str, float], sha: str = "") -> ModelVerdict:
        block = self.on_missing == "block"
        allow = not block or self.mode == "shadow"
        return ModelVerdict(allow, block, f"{why}; on_missing={self.on_missing}", None, sha, self.mode, feats)
