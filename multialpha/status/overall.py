"""The overall verdict of the status document: its state and every reason, most severe first."""

from __future__ import annotations

from typing import Any

from multialpha.status.sections import BAR_LAG_DEGRADED_S
from multialpha.status.values import _dur


def overall(doc: dict[str, Any], lag_hub: float | None) -> dict[str, Any]:
    """OK | WARN | DEGRADED | HALTED and every reason, most severe first."""
    reasons: list[dict[str, str]] = []

    def add(level: str, text: str, what: str = "") -> None:
        reasons.append({"level": level, "text": text, "what": what or "system"})

    p = doc["portfolio"]
    if p["halted"]:
        add("halt", f"HALTED: {p['halt_reason'] or 'no reason given'}", "portfolio")
    if p["stopped"]:
        what = "flattening, entries blocked" if p["on_daily_stop"] == "flatten" else "entries blocked"
        add("error", f"daily stop hit ({p['day_pnl']:,.2f} vs -{p['daily_stop_loss']:,.0f}): {what}", "portfolio")
    for pid in p["exit_failed"]:
        add("error", f"EXIT FAILED {pid}: broker may hold it (orders retry/ack)", "portfolio")
    for strategy, why in sorted(p["unmanaged"].items()):
        add("error", f"UNMANAGED {strategy}: positions without a running worker ({why})", "portfolio")
    if p["pending_orders"]:
        add("error", f"{p['pending_orders']} order(s) need review", "portfolio")
    for scope, why in sorted(p["reduce_only"].items()):
        if why.startswith("exit failed"):
            continue  # said above
        add("warning", f"{'all' if scope == '*' else scope} reduce-only ({why})", "portfolio")
    if not doc["supervisor"]["present"]:
        add("warning", "no supervisor heartbeat")
    for pr in doc["processes"]:
        if pr["state"] == "failed":
            add("error", f"{pr['name']} FAILED ({pr['detail'] or 'see logs'})")
        elif pr["state"] == "backoff":
            add("error", f"{pr['name']} restarting ({pr['detail']})")
        elif pr["state"] == "stopped" and not doc["supervisor"]["state"] == "stopping":
            add("info", f"{pr['name']} stopped on request (`multialpha start`)")
        elif pr["state"] in ("down", "stopping"):
            add("error", f"{pr['name']} {pr['state']}")
        elif pr["degraded"]:
            age = pr["heartbeat_age_s"]
            add("error", f"{pr['name']} no heartbeat" if age is None else f"{pr['name']} heartbeat {_dur(age)} old")
    if lag_hub is not None and lag_hub > BAR_LAG_DEGRADED_S:
        add("error", f"hub lag {_dur(lag_hub)}")
    stale = [s for s in doc["symbols"] if s["degraded"]]
    if stale and not (lag_hub is not None and lag_hub > BAR_LAG_DEGRADED_S):
        add("error", "no bars: " + ", ".join(s["symbol"] for s in stale[:6]) + (" …" if len(stale) > 6 else ""))
    quiet = [s for s in doc["symbols"] if s["quiet"]]
    if quiet:
        add("info", ", ".join(s["symbol"] for s in quiet[:6]) + (" …" if len(quiet) > 6 else "") + " quiet")
    down = {pr["name"] for pr in doc["processes"] if pr["state"] != "running"}
    for s in doc["strategies"]:
        if s["state"] in ("LIVE", "DISABLED") or f"worker.{s['name']}" in down:
            pass  # a worker that is not running is said by its process
        elif s["state"] == "WARMING":
            add("warning", f"{s['name']} warming")
        elif s["state"] != "FAILED":  # a failed worker is said by its process
            add("error", f"{s['name']} {s['state']}")
        pl = s["plugin"]
        if pl and pl["mismatch"]:
            add("warning", f"{s['name']} runs {pl['plugin']} {pl['running']}, {pl['installed']} installed "
                           f"(`multialpha restart {s['name']}`)")
        for m in s["model_problems"]:
            block = m["on_missing"] == "block"
            add("error" if block else "warning",
                f"{s['name']}/{m['symbol']} no veto model: {'BLOCKING' if block else 'allowing'} entries")
    if p["unattributed_pnl"]:
        pass  # not a problem: explained in the P&L table
    order = {"halt": 0, "error": 1, "warning": 2, "info": 3}
    reasons.sort(key=lambda r: order[r["level"]])
    levels = {r["level"] for r in reasons}
    state = "HALTED" if "halt" in levels else "DEGRADED" if "error" in levels else "WARN" if "warning" in levels else "OK"
    return {"state": state, "reasons": reasons}
