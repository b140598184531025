"""Build the status document from Redis only (and the config for names/limits).

One plain-data document (schema in :mod:`multialpha.status.schema`) feeds the
TUI, ``status --json`` and the supervisor's alert rules, so all three always
agree. Every reader here tolerates missing or malformed data: a component
that has not written yet shows as down, never as a crash of ``status``.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Any, Callable

import redis

from multialpha import cme_time
from multialpha import heartbeat as hb
from multialpha.bar import Bar, BarError
from multialpha.config import Settings
from multialpha.keys import Keys

log = logging.getLogger("multialpha.status")

SCHEMA = "multialpha.status/1"
BAR_LAG_DEGRADED_S = 150.0  # a finished 1-min bar should be out within seconds of its end
HEARTBEAT_STALE_S = 15.0
ERRORS_SHOWN = 8
ORDERS_SCANNED = 300
ORDERS_SHOWN = 3


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None  # NaN -> None


def _int(v: Any) -> int | None:
    f = _num(v)
    return None if f is None else int(f)


def _age(iso: Any, now: datetime) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        return round((now - cme_time.parse_iso(iso)).total_seconds(), 1)
    except ValueError:
        return None


def expected_components(settings: Settings) -> list[str]:
    names = ["sandbox"] if settings.databento.uses_sandbox else []
    return names + ["hub"] + [f"worker.{n}" for n in settings.enabled_strategies]


# -- sections ----------------------------------------------------------------------


def processes(
    settings: Settings, beats: dict[str, dict[str, Any]], now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from multialpha.supervisor.watch import is_supervisor_component

    sups = {n: d for n, d in beats.items() if is_supervisor_component(n)}
    sup_doc = beats.get("supervisor") or next(iter(sups.values()), None)
    sup_age = _age(sup_doc.get("updated"), now) if sup_doc else None
    supervisor = {
        "present": sup_doc is not None,
        "pid": _int(sup_doc.get("pid")) if sup_doc else None,
        "state": sup_doc.get("state") if sup_doc else None,
        "heartbeat_age_s": sup_age,
        "managed_redis": sup_doc.get("managed_redis") if sup_doc else None,
    }
    table: dict[str, Any] = {}
    for d in sups.values():  # one per host when `up --only` splits a deployment
        if isinstance(d.get("children"), dict):
            table.update(d["children"])
    names = list(dict.fromkeys(expected_components(settings) + list(table)))
    names += sorted(n for n in beats if n not in names and not is_supervisor_component(n))
    rows = []
    for name in names:
        child = table.get(name) if isinstance(table.get(name), dict) else None
        beat = beats.get(name)
        hb_age = _age(beat.get("updated"), now) if beat else None
        if child:
            state = str(child.get("state", "?"))
            pid = _int(child.get("pid"))
            uptime = _num(child.get("uptime_s"))
            restarts = _int(child.get("restarts")) or 0
            detail = str(child.get("reason") or "")
            if state == "backoff" and child.get("retry_in_s") is not None:
                detail = f"{detail}; retry in {child['retry_in_s']}s".lstrip("; ")
        elif beat:
            state, pid, restarts, detail = "running", _int(beat.get("pid")), None, ""
            uptime = _age(beat.get("started"), now)
        else:
            state, pid, uptime, restarts, detail = "down", None, None, None, ""
        if beat and beat.get("state") is not None:
            detail = f"{beat['state']}{' — ' + detail if detail else ''}"
        stale = beat is not None and hb_age is not None and hb_age > HEARTBEAT_STALE_S
        expects_beat = name != "sandbox"
        degraded = state in ("failed", "down", "backoff", "stopping") or stale or (
            expects_beat and state == "running" and beat is None
        )
        rows.append({"name": name, "state": state, "pid": pid, "uptime_s": uptime, "restarts": restarts,
                     "heartbeat_age_s": hb_age, "detail": detail, "degraded": bool(degraded)})
    return supervisor, rows


def symbols(settings: Settings, client: "redis.Redis", keys: Keys, now: datetime) -> list[dict[str, Any]]:
    roots = settings.hub_symbols()
    pipe = client.pipeline(transaction=False)
    for r in roots:
        pipe.xrevrange(keys.bar_log(r), count=1)
    market_open = cme_time.is_open(now)
    out = []
    for root, entries in zip(roots, pipe.execute()):
        row: dict[str, Any] = {"symbol": root, "last_bar": None, "lag_s": None, "close": None, "contract": None,
                               "source": None, "degraded": market_open}
        if entries:
            _, fields = entries[0]
            doc = {}
            for k, v in fields.items():
                try:
                    doc[k] = json.loads(v)
                except (TypeError, ValueError):
                    doc[k] = v
            try:
                bar = Bar.from_dict(doc)
            except BarError as e:
                log.warning("malformed bar log entry for %s dropped: %s", root, e)
                out.append(row)
                continue
            lag = round((now - bar.end).total_seconds(), 1)
            row.update(last_bar=cme_time.iso_z(bar.start), lag_s=lag, close=bar.close, contract=bar.contract,
                       source=bar.source, degraded=market_open and lag > BAR_LAG_DEGRADED_S)
        out.append(row)
    return out


def _orders(client: "redis.Redis", keys: Keys) -> dict[str, list[dict[str, Any]]]:
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    try:
        entries = client.xrevrange(keys.orders(), count=ORDERS_SCANNED)
    except redis.ResponseError:
        return by_strategy
    for sid, f in entries:
        strat = f.get("strategy")
        if not strat or len(by_strategy.setdefault(strat, [])) >= ORDERS_SHOWN:
            continue
        if f.get("event") not in (None, "intent", "outcome"):
            continue  # attempts are noise here
        by_strategy[strat].append({
            "ts": f.get("ts") or f.get("now") or _sid_iso(sid),
            "event": f.get("event", ""),
            "symbol": f.get("symbol", ""),
            "side": f.get("side") or f.get("action") or f.get("kind", ""),
            "result": f.get("result") or f.get("decision", ""),
            "reason": f.get("reason", ""),
        })
    return by_strategy


def _sid_iso(sid: str) -> str:
    try:
        return cme_time.iso_z(int(sid.split("-")[0]) * 1_000_000)
    except ValueError:
        return ""


def strategies(settings: Settings, beats: dict[str, dict[str, Any]], procs: list[dict[str, Any]],
               orders: dict[str, list[dict[str, Any]]], positions: list[dict[str, Any]] | None,
               environ: dict[str, str]) -> list[dict[str, Any]]:
    by_name = {p["name"]: p for p in procs}
    out = []
    for name in settings.strategies:
        cfg = settings.strategies[name]
        comp = f"worker.{name}"
        beat = beats.get(comp) or {}
        proc = by_name.get(comp)
        hb_state = str(beat.get("state", "")).lower()
        if not cfg.enabled:
            state = "DISABLED"
        elif proc and proc["state"] == "failed":
            state = "FAILED"
        elif not beat:
            state = "DOWN"
        elif hb_state == "live":
            state = "LIVE"
        elif hb_state in ("warming", "warmup", "starting"):
            state = "WARMING"
        else:
            state = "DEGRADED" if hb_state in ("degraded", "") else hb_state.upper()
        open_pnl = None
        if positions is not None:
            mine = [p for p in positions if p.get("strategy") == name]
            n_pos = len(mine)
            open_pnl = round(sum(p["open_pnl"] or 0.0 for p in mine), 2) if mine else 0.0
        else:
            held = beat.get("positions")
            n_pos = _int(len(held) if isinstance(held, list) else held)
        pnl = _num(beat.get("pnl_today", beat.get("day_pnl")))
        vetoes = beat.get("vetoes")
        if isinstance(vetoes, dict):
            vetoes = sum(v for v in vetoes.values() if isinstance(v, (int, float)))
        out.append({
            "name": name,
            "type": cfg.strategy_type,
            "state": state,
            "mode": settings.order_destination(name, environ),
            "instruments": list(cfg.instruments),
            "positions": n_pos,
            "pnl_today": pnl,
            "open_pnl": open_pnl,
            "vetoes": _int(vetoes),
            "last_orders": orders.get(name, []),
            "detail": str(beat.get("detail") or beat.get("warmup") or beat.get("last_error") or ""),
            "degraded": cfg.enabled and state not in ("LIVE", "WARMING"),
        })
    return out


def portfolio(settings: Settings, client: "redis.Redis", clock: Callable[[], datetime]) -> dict[str, Any]:
    base: dict[str, Any] = {"available": False, "trading_day": cme_time.trading_day(clock()).isoformat(),
                            "open_positions": None, "max_positions": settings.portfolio.max_positions,
                            "day_pnl": None, "daily_stop_loss": settings.portfolio.daily_stop_loss,
                            "stopped": None, "halted": None, "halt_reason": None, "pending_orders": None,
                            "positions": [], "degraded": False, "reduce_only": {}, "exit_failed": [],
                            "flatten_pending": []}
    try:
        from multialpha.portfolio import control
    except ImportError:
        return base
    try:
        snap = control.snapshot(settings, client, clock)
    except (redis.RedisError, ValueError, KeyError) as e:
        log.warning("portfolio snapshot failed: %s", e)
        return base
    positions = []
    for p in snap.get("positions", []):
        d, q, m = _num(p.get("dir")), _num(p.get("quantity")), _num(p.get("mult"))
        entry, mark = _num(p.get("entry_price")), _num(p.get("mark"))
        pnl = None if None in (d, q, m, entry, mark) else round(d * q * m * (mark - entry), 2)  # type: ignore[operator]
        positions.append({"strategy": p.get("strategy", ""), "symbol": p.get("symbol", ""), "dir": _int(d),
                          "quantity": _int(q), "entry_price": entry, "mark": mark, "open_pnl": pnl,
                          "contract": p.get("contract", ""), "entry_time": p.get("entry_time", ""),
                          "state": p.get("state", "open")})  # open | closing | exit_failed
    return {**base, "available": True, "trading_day": snap.get("trading_day", base["trading_day"]),
            "open_positions": _int(snap.get("open_positions")), "day_pnl": _num(snap.get("day_pnl")),
            "stopped": bool(snap.get("stopped")), "halted": bool(snap.get("halted")),
            "halt_reason": snap.get("halt_reason"), "pending_orders": len(snap.get("pending_orders") or []),
            "positions": positions,
            "reduce_only": dict(snap.get("reduce_only") or {}),
            "exit_failed": [f"{p['strategy']}:{p['symbol']}" for p in snap.get("exit_failed") or []],
            "flatten_pending": list(snap.get("flatten_pending") or []),
            "degraded": bool(snap.get("stopped") or snap.get("halted") or snap.get("pending_orders")
                             or snap.get("exit_failed") or snap.get("reduce_only"))}


def errors(client: "redis.Redis", keys: Keys, beats: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Components' current ``last_error`` (from heartbeats), then warnings/errors from the events stream."""
    out = [
        {"ts": str(b.get("updated", "")), "level": "error", "component": name, "message": str(b["last_error"])}
        for name, b in sorted((beats or {}).items())
        if isinstance(b.get("last_error"), str) and b["last_error"]
    ]
    try:
        entries = client.xrevrange(keys.events(), count=200)
    except redis.ResponseError:
        return out
    for sid, f in entries:
        level = f.get("level") or ("warning" if f.get("type") in ("halt", "stop") else "info")
        if level not in ("warning", "error", "critical"):
            continue
        message = f.get("message") or " ".join(f"{k}={v}" for k, v in f.items() if k not in ("ts", "level"))
        out.append({"ts": f.get("ts") or _sid_iso(sid), "level": level,
                    "component": f.get("component") or f.get("by") or "", "message": message})
        if len(out) >= ERRORS_SHOWN:
            break
    return out


# -- the document ----------------------------------------------------------------------


def market_clock(settings: Settings) -> tuple[str, Callable[[], datetime]]:
    """The clock bars are stamped in: the sandbox's replay clock on the sandbox, else real UTC."""
    if settings.databento.uses_sandbox:
        from multialpha import runtime
        from multialpha.sandbox.state import SandboxState

        data = runtime.read_json(runtime.sandbox_state_path(settings))
        if data:
            try:
                return "sandbox", SandboxState.from_dict(data).now
            except (TypeError, ValueError):
                log.warning("unreadable sandbox state file; using wall time for market time")
    return "wall", cme_time.utcnow


def collect(settings: Settings, client: "redis.Redis", clock: Callable[[], datetime] = cme_time.utcnow,
            environ: dict[str, str] | None = None,
            market: tuple[str, Callable[[], datetime]] | None = None) -> dict[str, Any]:
    """The whole status document. ``client`` must use decode_responses=True.

    ``clock`` is wall time (heartbeat ages); ``market`` is (name, clock) for bar lag,
    session and trading day — the sandbox replay clock on the sandbox.
    """
    env = dict(os.environ if environ is None else environ)
    keys = Keys(settings.redis.namespace)
    now = clock()
    source, mclock = market or (market_clock(settings) if clock is cme_time.utcnow else ("wall", clock))
    mnow = mclock()
    beats = hb.read_all(client, keys)
    supervisor, procs = processes(settings, beats, now)
    port = portfolio(settings, client, mclock)
    positions = port["positions"] if port["available"] else None
    strats = strategies(settings, beats, procs, _orders(client, keys), positions, env)
    modes = sorted({s["mode"] for s in strats if s["state"] != "DISABLED"})
    syms = symbols(settings, client, keys, mnow)
    doc = {
        "schema": SCHEMA,
        "generated": cme_time.iso_z(now.replace(microsecond=0)),
        "namespace": settings.redis.namespace,
        "clock": {"source": source, "market_now": cme_time.iso_z(mnow.replace(microsecond=0))},
        "market_open": cme_time.is_open(mnow),
        "order_mode": {"summary": modes[0] if len(modes) == 1 else ("mixed" if modes else "paper"),
                       "strategies": {s["name"]: s["mode"] for s in strats}},
        "supervisor": supervisor,
        "processes": procs,
        "symbols": syms,
        "strategies": strats,
        "portfolio": port,
        "errors": errors(client, keys, beats),
    }
    doc["ok"] = not any(x["degraded"] for x in procs + syms + strats) and not port["degraded"]
    return doc


def order_mode_words(doc: dict[str, Any]) -> str:
    m = doc["order_mode"]["summary"]
    if m == "live":
        return "LIVE — orders are sent to TradersPost"
    if m == "mixed":
        live = [n for n, v in doc["order_mode"]["strategies"].items() if v == "live"]
        return f"MIXED — live orders for {', '.join(live)}; the rest paper"
    return "PAPER — orders are journaled only, nothing is sent"
