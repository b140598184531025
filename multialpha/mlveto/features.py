"""The standard veto features, from plain arrays of completed bars.

Pure and Backtrader-free: the live worker (through a plugin's
``multialpha_features`` hook), the backtest and ``models train`` all call
this with the same arrays, so a model sees identical numbers in training and
in production. A reference feed without data gets its configured neutral
value (flat => zero returns) and a ``<name>_missing = 1`` flag.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

HORIZONS = (1, 5, 20)


def _ret(closes: np.ndarray, n: int) -> float:
    if len(closes) <= n or closes[-1 - n] <= 0:
        return 0.0
    return float(closes[-1] / closes[-1 - n] - 1.0)


def _atr_pct(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> float:
    if len(close) < 2:
        return 0.0
    prev = close[:-1]
    tr = np.maximum(high[1:], prev) - np.minimum(low[1:], prev)
    tr = tr[-n:]
    return float(tr.mean() / close[-1]) if close[-1] > 0 else 0.0


def _dist_ma(close: np.ndarray, n: int) -> float:
    if len(close) < n:
        return 0.0
    ma = close[-n:].mean()
    return float(close[-1] / ma - 1.0) if ma > 0 else 0.0


def standard_features(
    high: Sequence[float],
    low: Sequence[float],
    close: Sequence[float],
    references: Mapping[str, Sequence[float] | None] | None = None,
) -> dict[str, float]:
    """Features of the latest completed bar of one symbol (daily or hourly arrays)."""
    h, l, c = (np.asarray(x, dtype=float) for x in (high, low, close))
    rng = h[-1] - l[-1] if len(c) else 0.0
    feats = {"ibs": float((c[-1] - l[-1]) / rng) if rng > 0 else 0.5}
    for n in HORIZONS:
        feats[f"ret_{n}"] = _ret(c, n)
    feats["atr_pct"] = _atr_pct(h, l, c)
    feats["dist_ma20"] = _dist_ma(c, 20)
    feats["dist_ma50"] = _dist_ma(c, 50)
    for name, series in sorted((references or {}).items()):
        key = name.lower()
        arr = np.asarray(series if series is not None else [], dtype=float)
        feats[f"{key}_missing"] = 0.0 if len(arr) else 1.0
        feats[f"{key}_ret_5"] = _ret(arr, 5) if len(arr) else 0.0
    return {k: (v if math.isfinite(v) else 0.0) for k, v in feats.items()}


def feature_names(references: Sequence[str]) -> list[str]:
    """The order models are fitted with (stable: sorted references)."""
    names = ["ibs", *(f"ret_{n}" for n in HORIZONS), "atr_pct", "dist_ma20", "dist_ma50"]
    for name in sorted(references):
        names += [f"{name.lower()}_missing", f"{name.lower()}_ret_5"]
    return names
