"""The status document's sections from what :class:`~multialpha.status.raw.Collector` read (no I/O).

Processes (supervisor table and heartbeats), market data (hub lag, symbols),
strategies (with their last orders and model problems) and recent errors. The
portfolio is :mod:`multialpha.status.pnl`; the overall verdict
:mod:`multialpha.status.overall`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Iterable

from multialpha import cme_time, plugin_versions
from multialpha.bar import Bar, BarError
from multialpha.config import Settings
from multialpha.status.raw import Raw
from multialpha.status.values import _age, _dur, _int, _num, _parse, _sid_iso

log = logging.getLogger("multialpha.status")

BAR_LAG_DEGRADED_S = 150.0  # a finished 1-min bar should be out within seconds of its end
HEARTBEAT_STALE_S = 15.0
ERRORS_SHOWN = 8
ORDERS_SHOWN = 3


def expected_components(settings: Settings) -> list[str]:
    names = ["sandbox"] if settings.databento.uses_sandbox else []
    return names + ["hub"] + [f"worker.{n}" for n in settings.enabled_strategies]


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
    healthy_reset_s = settings.supervisor.healthy_reset_s
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
        hb_state = str(beat["state"]) if beat and beat.get("state") is not None else ""
        last_exit = None
        if child:
            state = str(child.get("state", "?"))
            pid = _int(child.get("pid"))
            uptime = _num(child.get("uptime_s"))
            restarts = _int(child.get("restarts")) or 0
            reason = str(child.get("reason") or "")
            last_exit = reason or None
            if state == "backoff" and child.get("retry_in_s") is not None:
                reason = f"{reason}; retry in {_dur(_num(child['retry_in_s']))}".lstrip("; ")
        elif beat:
            state, pid, restarts, reason = "running", _int(beat.get("pid")), None, ""
            uptime = _age(beat.get("started"), now)
        else:
            state, pid, uptime, restarts, reason = "down", None, None, None, ""
        # The supervisor keeps a child's last exit reason after the restart; once the new
        # process is healthy again (its heartbeat says live/connected, or it has run longer
        # than healthy_reset_s, when the supervisor forgives its backoff too) it is history.
        recovered = state == "running" and (hb_state.lower() in ("live", "connected")
                                            or (uptime is not None and uptime >= healthy_reset_s))
        if state == "running" and reason:
            reason = "" if recovered else f"restarted after: {reason}"
        detail = f"{hb_state}{' — ' + reason if reason else ''}" if hb_state else reason
        stale = beat is not None and hb_age is not None and hb_age > HEARTBEAT_STALE_S
        expects_beat = name != "sandbox"
        degraded = state in ("failed", "down", "backoff", "stopping") or stale or (
            expects_beat and state == "running" and beat is None
        )
        rows.append({"name": name, "state": state, "pid": pid, "uptime_s": uptime, "restarts": restarts,
                     "heartbeat_age_s": hb_age, "heartbeat_state": hb_state, "detail": detail,
                     "last_exit": None if recovered else last_exit, "recovered": bool(recovered),
                     "degraded": bool(degraded)})
    return supervisor, rows


def hub_lag(beats: dict[str, dict[str, Any]], mnow: datetime, market_open: bool) -> float | None:
    """Market seconds since the end of the last minute the hub announced closed (None = unknown)."""
    ct = _parse((beats.get("hub") or {}).get("closed_through"))
    if ct is None or not market_open:
        return None
    return round((mnow - ct).total_seconds() - 60.0, 1)


def symbols(settings: Settings, raw: Raw, mnow: datetime, lag_hub: float | None) -> list[dict[str, Any]]:
    market_open = cme_time.is_open(mnow)
    hub_fresh = lag_hub is not None and lag_hub <= BAR_LAG_DEGRADED_S
    out = []
    for root in settings.hub_symbols():
        entries = raw.bars.get(root) or []
        row: dict[str, Any] = {"symbol": root, "last_bar": None, "lag_s": None, "close": None, "contract": None,
                               "source": None, "quiet": False, "degraded": market_open and not hub_fresh}
        if market_open and hub_fresh:
            row["quiet"] = True  # the hub closes minutes on time: no bar = no trades
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
                log.debug("malformed bar log entry for %s dropped: %s", root, e)
                out.append(row)
                continue
            lag = round((mnow - bar.end).total_seconds(), 1)
            late = market_open and lag > BAR_LAG_DEGRADED_S
            row.update(last_bar=cme_time.iso_z(bar.start), lag_s=lag, close=bar.close, contract=bar.contract,
                       source=bar.source, quiet=late and hub_fresh, degraded=late and not hub_fresh)
        out.append(row)
    return out


def _orders(recent: Iterable[tuple[str, dict[str, str]]]) -> dict[str, list[dict[str, Any]]]:
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for sid, f in recent:
        strat = f.get("strategy")
        if not strat or len(by_strategy.setdefault(strat, [])) >= ORDERS_SHOWN:
            continue
        if f.get("event") not in (None, "intent", "outcome"):
            continue  # attempts are noise here
        by_strategy[strat].append({
            "ts": f.get("ts") or f.get("now") or _sid_iso(sid),
            "event": f.get("event", ""),
            "symbol": f.get("symbol", ""),
            "side": f.get("action") or f.get("side") or f.get("kind", ""),
            "result": f.get("result") or f.get("decision", ""),
            "reason": f.get("reason", ""),
        })
    return by_strategy


def model_problems(settings: Settings, beats: dict[str, dict[str, Any]],
                   vetoes: list[tuple[str, dict[str, str]]]) -> dict[str, list[dict[str, Any]]]:
    """Per strategy: symbols without a usable veto model, and what ``on_missing`` does about it.

    Read from the worker heartbeat's ``models`` field when it has one
    (``{symbol: {"usable": bool, "reason": str}}``, written once the models are loaded);
    otherwise from the veto journal: the newest decision of a strategy/symbol that had no
    model (``reason`` ends with ``on_missing=...``, no model hash)."""
    mode, on_missing = settings.ml_veto.mode, settings.ml_veto.on_missing
    out: dict[str, list[dict[str, Any]]] = {}
    if mode == "off":
        return out
    seen: set[tuple[str, str]] = set()
    for name in settings.strategies:
        models = (beats.get(f"worker.{name}") or {}).get("models")
        if not isinstance(models, dict):
            continue
        for sym, m in sorted(models.items()):
            seen.add((name, str(sym)))
            if isinstance(m, dict) and m.get("usable") is False:
                out.setdefault(name, []).append({"symbol": str(sym), "reason": str(m.get("reason") or "unusable"),
                                                 "on_missing": str(m.get("on_missing") or on_missing)})
    for _, f in vetoes:  # newest first: the first word about a strategy/symbol wins
        strat, sym = f.get("strategy", ""), f.get("symbol", "")
        if not strat or (strat, sym) in seen:
            continue
        seen.add((strat, sym))
        reason = f.get("reason", "")
        if "on_missing=" in reason and not f.get("model_sha256"):
            why, _, om = reason.rpartition("; on_missing=")
            out.setdefault(strat, []).append({"symbol": sym, "reason": why or reason, "on_missing": om or on_missing})
    return out


def strategies(settings: Settings, beats: dict[str, dict[str, Any]], procs: list[dict[str, Any]],
               orders: dict[str, list[dict[str, Any]]], port: dict[str, Any], realized: dict[str, float],
               models: dict[str, list[dict[str, Any]]], environ: dict[str, str]) -> list[dict[str, Any]]:
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
        elif proc and proc["state"] == "stopped":  # `multialpha stop`: on purpose, until `start`
            state = "STOPPED"
        elif not beat:
            state = "DOWN"
        elif hb_state == "live":
            state = "LIVE"
        elif hb_state in ("warming", "warmup", "starting"):
            state = "WARMING"
        else:
            state = "DEGRADED" if hb_state in ("degraded", "") else hb_state.upper()
        mine = [p for p in port["positions"] if p.get("strategy") == name]
        open_pnl = round(sum(p["open_pnl"] or 0.0 for p in mine), 2)
        open_day = round(sum(p["day_pnl"] or 0.0 for p in mine), 2)
        real = round(realized.get(name, 0.0), 2)
        vetoes = beat.get("vetoes")
        if isinstance(vetoes, dict):
            vetoes = sum(v for v in vetoes.values() if isinstance(v, (int, float)))
        ro = port["reduce_only"].get(name) or port["reduce_only"].get("*")
        out.append({
            "name": name,
            "type": cfg.strategy_type,
            "state": state,
            "mode": settings.order_destination(name, environ),
            "instruments": list(cfg.instruments),
            "positions": len(mine),
            "pnl_today": round(real + open_day, 2),  # realised today + open P&L since the day reference
            "realized_today": real,
            "open_pnl": open_pnl,  # since entry
            "vetoes": _int(vetoes),
            "last_orders": orders.get(name, []),
            "model_problems": models.get(name, []),
            "reduce_only": ro,
            "exit_failed": [x for x in port["exit_failed"] if x.split(":", 1)[0] == name],
            "flatten_pending": name in port["flatten_pending"],
            "detail": str(beat.get("detail") or beat.get("warmup") or beat.get("last_error") or ""),
            "degraded": cfg.enabled and state not in ("LIVE", "WARMING", "STOPPED"),
            # the plugin version it runs vs the one installed now (after `pip install -U`)
            "plugin": plugin_versions.row(comp, beat) if beat else None,
        })
    return out


def errors(raw: Raw, procs: list[dict[str, Any]], beats: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Components' current ``last_error`` (from heartbeats), then warnings/errors from the events stream.

    An event about a process that has since recovered, written before its current start, is
    history and left out (the events stream and `multialpha logs` keep it)."""
    out = [
        {"ts": str(b.get("updated", "")), "level": "error", "component": name, "message": str(b["last_error"])}
        for name, b in sorted(beats.items())
        if isinstance(b.get("last_error"), str) and b["last_error"]
    ]
    since = {p["name"]: _parse((beats.get(p["name"]) or {}).get("started")) for p in procs if p["recovered"]}
    for sid, f in raw.events:
        level = f.get("level") or ("warning" if f.get("type") in ("halt", "stop", "flatten", "exit_failed") else "info")
        if level not in ("warning", "error", "critical"):
            continue
        comp = f.get("component") or f.get("by") or f.get("type") or ""
        ts = f.get("ts") or _sid_iso(sid)
        started = since.get(comp)
        t = _parse(ts)
        if started is not None and t is not None and t < started:
            continue
        message = f.get("message") or " ".join(
            str(v) for k, v in f.items() if k in ("scope", "symbol", "strategy", "result", "reason", "detail") and v)
        out.append({"ts": ts, "level": level, "component": comp, "message": message})
        if len(out) >= ERRORS_SHOWN:
            break
    return out
