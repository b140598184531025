"""Adapter: Backtrader feeds -> the arrays :func:`standard_features` takes."""

from __future__ import annotations

from typing import Any, Mapping

from multialpha.mlveto.features import standard_features

LOOKBACK = 60


def _closes(feed: Any, n: int = LOOKBACK) -> list[float] | None:
    if feed is None or len(feed) == 0 or getattr(feed.p, "neutral", False):
        return None  # a neutral stand-in carries no information: flag it as missing
    size = min(n, len(feed))
    return list(feed.close.get(size=size))


def features_from_feeds(day: Any, references: Mapping[str, Any]) -> dict[str, float]:
    size = min(LOOKBACK, len(day)) if day is not None else 0
    if size == 0:
        return standard_features([0.0], [0.0], [0.0], {k: None for k in references})
    high, low, close = (list(getattr(day, f).get(size=size)) for f in ("high", "low", "close"))
    return standard_features(high, low, close, {k: _closes(v) for k, v in references.items()})
