"""Every veto decision goes to a capped Redis stream (status and analysis read it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

import redis

from multialpha import cme_time
from multialpha.keys import Keys

MAXLEN = 50_000


def record(
    client: "redis.Redis",
    keys: Keys,
    *,
    strategy: str,
    symbol: str,
    side: str,
    at: datetime,
    allow: bool,          # the veto's answer
    acted: bool,          # what the runtime did (differs from allow in shadow mode)
    mode: str,
    reason: str,
    features: Mapping[str, Any],
    probability: float | None = None,
    model_sha256: str = "",
    bar_start: datetime | None = None,
) -> None:
    """``bar_start``: the signal's minute bar (``multialpha verify`` names the bar a decision differs on)."""
    client.xadd(
        keys.veto_log(),
        {
            "strategy": strategy,
            "symbol": symbol,
            "side": side,
            "at": cme_time.iso_z(at),
            "bar_start": cme_time.iso_z(bar_start) if bar_start is not None else "",
            "decision": "allow" if allow else "veto",
            "acted": "allow" if acted else "block",
            "enforced": int(not allow and not acted),
            "mode": mode,
            "probability": "" if probability is None else f"{probability:.6f}",
            "model_sha256": model_sha256,
            "reason": reason,
            "features": json.dumps(dict(features), sort_keys=True, default=str)[:4000],
        },
        maxlen=MAXLEN,
        approximate=True,
    )
