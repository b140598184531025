"""JSON Schema of `multialpha status --json` (``schema: multialpha.status/1``).

Scripts and monitoring can rely on these fields; additions bump nothing,
removals or meaning changes bump the version. Numbers that may be unknown
are ``null`` rather than missing.
"""

from __future__ import annotations

from typing import Any

_num = {"type": ["number", "null"]}
_int = {"type": ["integer", "null"]}
_str = {"type": ["string", "null"]}
_bool = {"type": "boolean"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


PROCESS = _obj({
    "name": {"type": "string"},
    "state": {"enum": ["pending", "starting", "running", "stopping", "backoff", "failed", "stopped", "down"]},
    "pid": _int, "uptime_s": _num, "restarts": _int, "heartbeat_age_s": _num,
    "detail": {"type": "string"}, "degraded": _bool,
})

SYMBOL = _obj({
    "symbol": {"type": "string"}, "last_bar": _str, "lag_s": _num, "close": _num, "contract": _str,
    "source": _str, "degraded": _bool,
})

ORDER = _obj({"ts": {"type": "string"}, "event": {"type": "string"}, "symbol": {"type": "string"},
              "side": {"type": "string"}, "result": {"type": "string"}, "reason": {"type": "string"}})

STRATEGY = _obj({
    "name": {"type": "string"}, "type": {"type": "string"},
    "state": {"type": "string", "pattern": "^[A-Z_ ]+$"},
    "mode": {"enum": ["paper", "live"]},
    "instruments": {"type": "array", "items": {"type": "string"}},
    "positions": _int, "pnl_today": _num, "open_pnl": _num, "vetoes": _int,
    "last_orders": {"type": "array", "items": ORDER},
    "detail": {"type": "string"}, "degraded": _bool,
})

PORTFOLIO = _obj({
    "available": _bool, "trading_day": {"type": "string", "format": "date"},
    "open_positions": _int, "max_positions": {"type": "integer"}, "day_pnl": _num,
    "daily_stop_loss": {"type": "number"}, "stopped": {"type": ["boolean", "null"]},
    "halted": {"type": ["boolean", "null"]}, "halt_reason": _str, "pending_orders": _int,
    "positions": {"type": "array", "items": {"type": "object"}}, "degraded": _bool,
    # scope ('*' or a strategy) -> why it may only reduce risk (flatten, a failed exit)
    "reduce_only": {"type": "object", "additionalProperties": {"type": "string"}},
    "exit_failed": {"type": "array", "items": {"type": "string"}},  # strategy:symbol, broker may hold it
    "flatten_pending": {"type": "array", "items": {"type": "string"}},  # strategies still being flattened
})

ERROR = _obj({"ts": {"type": "string"}, "level": {"type": "string"}, "component": {"type": "string"},
              "message": {"type": "string"}})

STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "multialpha status",
    **_obj({
        "schema": {"const": "multialpha.status/1"},
        "generated": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
        "namespace": {"type": "string"},
        "clock": _obj({"source": {"enum": ["wall", "sandbox"]},
                       "market_now": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}}),
        "market_open": _bool,
        "order_mode": _obj({"summary": {"enum": ["paper", "live", "mixed"]},
                            "strategies": {"type": "object", "additionalProperties": {"enum": ["paper", "live"]}}}),
        "supervisor": _obj({"present": _bool, "pid": _int, "state": _str, "heartbeat_age_s": _num,
                            "managed_redis": {"type": ["boolean", "null"]}}),
        "processes": {"type": "array", "items": PROCESS},
        "symbols": {"type": "array", "items": SYMBOL},
        "strategies": {"type": "array", "items": STRATEGY},
        "portfolio": PORTFOLIO,
        "errors": {"type": "array", "items": ERROR},
        "ok": _bool,
    }),
}
