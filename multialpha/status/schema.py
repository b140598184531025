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
    "heartbeat_state": {"type": "string"},  # what the process says of itself ('' = no heartbeat)
    # heartbeat state, then why it last exited -- only until it has recovered (LIVE/connected
    # again, or running longer than supervisor.healthy_reset_s)
    "detail": {"type": "string"},
    "last_exit": _str, "recovered": _bool, "degraded": _bool,
})

SYMBOL = _obj({
    "symbol": {"type": "string"}, "last_bar": _str, "lag_s": _num, "close": _num, "contract": _str,
    "source": _str,
    "quiet": _bool,  # no bar for a while but the hub closes minutes on time: no trades (a thin market)
    "degraded": _bool,
})

ORDER = _obj({"ts": {"type": "string"}, "event": {"type": "string"}, "symbol": {"type": "string"},
              "side": {"type": "string"}, "result": {"type": "string"}, "reason": {"type": "string"}})

STRATEGY = _obj({
    "name": {"type": "string"}, "type": {"type": "string"},
    "state": {"type": "string", "pattern": "^[A-Z_ ]+$"},
    "mode": {"enum": ["paper", "live"]},
    "instruments": {"type": "array", "items": {"type": "string"}},
    "positions": _int,
    # realised today (from today's order journal) + open P&L of its positions since their day reference
    "pnl_today": _num, "realized_today": _num,
    "open_pnl": _num,  # since entry
    "vetoes": _int,
    "last_orders": {"type": "array", "items": ORDER},
    # symbols without a usable veto model and what ml_veto.on_missing does (block | allow)
    "model_problems": {"type": "array", "items": _obj({"symbol": {"type": "string"}, "reason": {"type": "string"},
                                                      "on_missing": {"type": "string"}})},
    "reduce_only": _str, "exit_failed": {"type": "array", "items": {"type": "string"}},
    "flatten_pending": _bool,
    "detail": {"type": "string"}, "degraded": _bool,
    # the strategy's plugin: the version the worker runs vs the one installed (null: not reported)
    "plugin": {"oneOf": [{"type": "null"}, _obj({"worker": {"type": "string"}, "plugin": {"type": "string"},
                                                 "running": {"type": "string"}, "installed": _str,
                                                 "mismatch": _bool})]},
})

POSITION = _obj({
    "strategy": {"type": "string"}, "symbol": {"type": "string"}, "dir": _int, "quantity": _int,
    "entry_price": _num, "mark": _num, "open_pnl": _num,
    "day_pnl": _num,  # since the position's day reference (entry today, else the previous day's last mark)
    "contract": {"type": "string"}, "entry_time": {"type": "string"}, "mark_time": {"type": "string"},
    "state": {"enum": ["open", "closing", "exit_failed"]},
})

PORTFOLIO = _obj({
    "available": _bool, "trading_day": {"type": "string", "format": "date"},
    "open_positions": _int, "max_positions": {"type": "integer"}, "day_pnl": _num,
    "daily_stop_loss": {"type": "number"}, "stopped": {"type": ["boolean", "null"]},
    "halted": {"type": ["boolean", "null"]}, "halt_reason": _str, "pending_orders": _int,
    "realized": _num,  # the gate's realised P&L today (all strategies)
    "unattributed_pnl": _num,  # day_pnl minus the strategies' pnl_today (what the journal cannot assign)
    "on_daily_stop": {"enum": ["flatten", "block"]}, "stopped_at": _str,
    "pending_order_ids": {"type": "array", "items": {"type": "string"}},
    "entries": {"enum": ["allowed", "blocked"]},
    "positions": {"type": "array", "items": POSITION}, "degraded": _bool,
    # scope ('*' or a strategy) -> why it may only reduce risk (flatten, a failed exit)
    "reduce_only": {"type": "object", "additionalProperties": {"type": "string"}},
    "exit_failed": {"type": "array", "items": {"type": "string"}},  # strategy:symbol, broker may hold it
    "flatten_pending": {"type": "array", "items": {"type": "string"}},  # strategies still being flattened
    # strategy -> why its positions have no running worker (`stop`/`reload --leave-positions`)
    "unmanaged": {"type": "object", "additionalProperties": {"type": "string"}},
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
        "hub_lag_s": _num,  # market seconds the hub's last closed minute is behind (null: unknown/closed)
        # OK | WARN | DEGRADED | HALTED and why, most severe first (what: portfolio = a trading restriction)
        "overall": _obj({"state": {"enum": ["OK", "WARN", "DEGRADED", "HALTED"]},
                         "reasons": {"type": "array", "items": _obj({
                             "level": {"enum": ["halt", "error", "warning", "info"]}, "text": {"type": "string"},
                             "what": {"type": "string"}})}}),
        "order_mode": _obj({"summary": {"enum": ["paper", "live", "mixed"]},
                            "strategies": {"type": "object", "additionalProperties": {"enum": ["paper", "live"]}}}),
        "supervisor": _obj({"present": _bool, "pid": _int, "state": _str, "heartbeat_age_s": _num,
                            "managed_redis": {"type": ["boolean", "null"]}}),
        "processes": {"type": "array", "items": PROCESS},
        "symbols": {"type": "array", "items": SYMBOL},
        "strategies": {"type": "array", "items": STRATEGY},
        "portfolio": PORTFOLIO,
        "errors": {"type": "array", "items": ERROR},
        # the newest `multialpha verify` summary (multialpha/verify/store.py), null if it never ran
        "verify": {"type": ["object", "null"]},
        "ok": _bool,
    }),
}
