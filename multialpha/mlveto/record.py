"""Every veto decision goes to a capped Redis stream (status and analysis read it)."""

from __future__ import annotations

import json
from datetime import datetime

import redis

from multialpha import cme_time
from multialpha.keys import Keys
from multialpha.mlveto.gate import ModelVerdict

MAXLEN = 50_000


def record(client: "redis.Redis", keys: Keys, strategy: str, symbol: str, side: str,
           bar_start: datetime, decision: ModelVerdict) -> None:
    client.xadd(
        keys.veto_log(),
        {
            "strategy": strategy,
            "symbol": symbol,
            "side": side,
            "bar": cme_time.iso_z(bar_start),
            "decision": "allow" if not decision.vetoed else "veto",
            "acted": "allow" if decision.allow else "block",
            "mode": decision.mode,
            "probability": "" if decision.probability is None else f"{decision.probability:.6f}",
            "model_sha256": decision.model_sha256,
            "reason": decision.reason,
            "features": json.dumps(decision.features, sort_keys=True),
        },
        maxlen=MAXLEN,
        approximate=True,
    )
