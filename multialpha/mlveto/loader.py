"""Load a model only after its bytes match the manifest.

The shipped models are ``linear-logistic/1`` files (numpy only, see
:mod:`multialpha.mlveto.linear`); an ``estimator`` entry may hold any object
with ``predict_proba`` (a user's scikit-learn pipeline loads too, at the cost
of importing scikit-learn and scipy in the worker).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multialpha.mlveto import manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    entry: manifest.ModelEntry
    estimator: Any  # LinearVetoModel, or (format "estimator") any fitted object with predict_proba


@dataclass(frozen=True)
class Refusal:
    """Why no model is usable for a symbol: missing, tampered, or mismatched."""

    reason: str


def sandbox_shadow(entry: manifest.ModelEntry, live_data: bool, allow_sandbox_models: bool) -> bool:
    """True when this model must run in shadow: it was trained on the sandbox's synthetic market
    (``data_source: sandbox``) while the deployment trades real Databento data (``live_data``: a
    DATABENTO_API_KEY is set), and ``ml_veto.allow_sandbox_models`` is not set. A model that
    learned from made-up prices must not block real trades by default."""
    return live_data and entry.data_source == "sandbox" and not allow_sandbox_models


def load_model(models_dir: Path, strategy_type: str, symbol: str, features: list[str] | None) -> LoadedModel | Refusal:
    """Verify, then unpickle. ``features`` is the plugin's own feature order
    (None: accept the manifest's); a different list is refused."""
    try:
        entries = manifest.load(models_dir)
    except manifest.ManifestError as e:
        return Refusal(f"manifest unreadable: {e}")
    key = manifest.entry_key(strategy_type, symbol)
    entry = entries.get(key)
    if entry is None:
        return Refusal(f"no manifest entry for {key}")
    path = models_dir / entry.file
    if not path.is_file():
        return Refusal(f"model file {path} is missing")
    digest = manifest.sha256_of(path)
    if digest != entry.sha256:
        # Never unpickle it: a joblib file is code.
        return Refusal(f"sha256 of {path} is {digest[:12]}…, manifest says {entry.sha256[:12]}…: refused, not loaded")
    if features is not None and list(features) != list(entry.features):
        return Refusal(f"feature list mismatch for {key}: plugin {features} vs model {entry.features}")
    if entry.format not in manifest.FORMATS:
        known = ", ".join(manifest.FORMATS)
        return Refusal(f"{key}: unknown model format {entry.format!r} (this version reads {known})")
    import joblib

    try:
        estimator = joblib.load(path)
    except Exception as e:  # a verified file that fails to load is still unusable
        return Refusal(f"cannot load {path}: {type(e).__name__}: {e}")
    if not hasattr(estimator, "predict_proba"):
        return Refusal(f"{path} holds {type(estimator).__name__}, which has no predict_proba")
    if entry.format == manifest.FORMAT_LINEAR:
        from multialpha.mlveto.linear import LinearVetoModel  # already imported by unpickling a lean file

        if not isinstance(estimator, LinearVetoModel):
            return Refusal(f"{path} holds {type(estimator).__name__}, manifest says {entry.format}")
        if estimator.features != list(entry.features):
            return Refusal(f"{path} was fitted on {estimator.features}, manifest says {entry.features}")
    return LoadedModel(entry, estimator)
