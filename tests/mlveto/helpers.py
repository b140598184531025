"""Build a small real model + manifest in a temp folder (no mocks: real sklearn, real joblib)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from multialpha.mlveto import manifest

FEATURES = ["ibs", "ret_5d"]


def write_model(models_dir: Path, strategy_type: str = "ibs", symbol: str = "6A", threshold: float = 0.5) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] < 0).astype(int)  # profitable when ibs is low: an easy, checkable rule
    model = LogisticRegression().fit(x, y)
    rel = manifest.model_file(strategy_type, symbol)
    path = models_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    entries = manifest.load(models_dir)
    entry = manifest.ModelEntry(strategy_type, symbol, rel, manifest.sha256_of(path), FEATURES, threshold)
    entries[entry.key] = entry
    manifest.save(models_dir, entries)
    return path


def write_lean_model(models_dir: Path, strategy_type: str = "ibs", symbol: str = "6A", threshold: float = 0.5) -> Path:
    """The format `models train` ships: a fitted scaler + logistic pipeline, exported by train.save_model."""
    from datetime import date

    from multialpha.mlveto import train

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] < 0).astype(int)
    train.save_model(models_dir, strategy_type, symbol, train._model().fit(x, y), FEATURES, threshold,
                     date(2025, 1, 2), date(2025, 6, 30), len(y), {})
    return models_dir / manifest.model_file(strategy_type, symbol)
