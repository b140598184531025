"""Build the status document from Redis only (and the config for names/limits).

One plain-data document (schema in :mod:`multialpha.status.schema`) feeds the
TUI, ``status --json`` and the supervisor's alert rules, so all three always
agree. Every reader here tolerates missing or malformed data: a component
that has not written yet shows as down, never as a crash of ``status``.

Reading costs ONE pipelined round trip when nothing changed: a
:class:`Collector` remembers which heartbeat keys, open positions and stream
tails it saw last time and asks for all of it at once; only when a set or a
stream moved does it make a second trip for the new members/entries.

The portfolio is read from the gate's own keys (names from
:class:`~multialpha.portfolio.gate.Gate`) and its day P&L is computed exactly
as ``day_pnl()`` in ``portfolio/gate.lua`` does: the day hash's ``realized``
plus, for every open position whose ``ref_day`` is today,
``dir * quantity * mult * (mark - ref_price)``. The gate keeps ``realized``
for the whole portfolio only, so a strategy's realised P&L today is derived
from today's order journal (:func:`journal_realized`); whatever the journal
cannot attribute (an exit of a position opened on an earlier trading day,
an operator's ``orders ack`` at a price) is shown as ``unattributed`` so the
strategies always add up to the gate's figure.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Iterable

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
EVENTS_SCANNED = 200
ORDERS_SHOWN = 3
VETOES_SCANNED = 500
JOURNAL_PAGE = 500
JOURNAL_MAX = 50_000  # entries scanned back for today's trading day (a day has far fewer)
ENTRY_RELEASED = ("rejected", "expired", "failed", "abandoned")  # the gate frees the slot, refunds commission


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None  # NaN -> None


def _int(v: Any) -> int | None:
    f = _num(v)
    return None if f is None else int(f)


def _s(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _age(iso: Any, now: datetime) -> float | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return round((now - cme_time.parse_iso(iso)).total_seconds(), 1)
    except ValueError:
        return None


def _parse(iso: Any) -> datetime | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return cme_time.parse_iso(iso)
    except ValueError:
        return None


def expected_components(settings: Settings) -> list[str]:
    names = ["sandbox"] if settings.databento.uses_sandbox else []
    return names + ["hub"] + [f"worker.{n}" for n in settings.enabled_strategies]


# -- reading Redis: one pipelined round trip -----------------------------------------------


@dataclass
class Raw:
    """Everything status reads, as returned by Redis (decode_responses clients)."""

    beats: dict[str, dict[str, Any]] = field(default_factory=dict)
    bars: dict[str, list[Any]] = field(default_factory=dict)
    halt: str | None = None
    day_hash: dict[str, str] = field(default_factory=dict)
    positions: list[dict[str, str]] = field(default_factory=list)
    reduce_only: dict[str, str] = field(default_factory=dict)
    exit_failed_set: list[str] = field(default_factory=list)
    flatten: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    orders_recent: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # newest first
    journal_today: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # oldest first
    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # newest first
    vetoes: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # newest first
    round_trips: int = 0


class _Tail:
    """A stream's newest entries, re-read only when its newest id moved."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.last_id: str | None = None
        self.entries: list[tuple[str, dict[str, str]]] = []


class Collector:
    """Reads the deployment's state; keep one per view so repeated reads stay one round trip."""

    def __init__(self, settings: Settings, client: "redis.Redis") -> None:
        from multialpha.portfolio.gate import Gate

        self.settings, self.client = settings, client
        self.keys = Keys(settings.redis.namespace)
        self.gate = Gate(settings, client)
        self.hb_keys: list[str] = []
        self.open_members: list[str] = []
        self.events = _Tail(EVENTS_SCANNED)
        self.vetoes = _Tail(VETOES_SCANNED)
        self.orders_last: str | None = None
        self.orders_recent: list[tuple[str, dict[str, str]]] = []
        self.journal_day: date | None = None
        self.journal: list[tuple[str, dict[str, str]]] = []

    # The fixed part of every read, in one pipeline.
    def read(self, day: date) -> Raw:
        k, g = self.keys, self.gate
        roots = self.settings.hub_symbols()
        hb_keys, members = list(self.hb_keys), list(self.open_members)
        p = self.client.pipeline(transaction=False)
        p.scan(0, match=k.heartbeat_pattern(), count=1000)
        for key in hb_keys:
            p.hgetall(key)
        for r in roots:
            p.xrevrange(k.bar_log(r), count=1)
        p.get(g.halt_key())
        p.hgetall(g.day_key(day))
        p.smembers(g.open_set())
        for m in members:
            strat, _, sym = m.partition(":")
            p.hgetall(g.position_key(strat, sym))
        p.hgetall(g.reduce_only_key())
        p.smembers(g.exit_failed_key())
        p.hkeys(g.flatten_key())
        p.smembers(k.orders_pending())
        for key in (k.orders(), k.events(), k.veto_log()):
            p.xrevrange(key, count=1)
        res = iter(p.execute(raise_on_error=False))
        raw = Raw(round_trips=1)
        cursor, found = _ok(next(res), (0, []))
        beats = {key: _ok(next(res), {}) for key in hb_keys}
        raw.bars = {r: _ok(next(res), []) for r in roots}
        raw.halt = _ok(next(res), None)
        raw.day_hash = {_s(a): _s(b) for a, b in _ok(next(res), {}).items()}
        open_now = sorted(_s(m) for m in _ok(next(res), set()))
        pos = {m: _ok(next(res), {}) for m in members}
        raw.reduce_only = {_s(a): _s(b) for a, b in _ok(next(res), {}).items()}
        raw.exit_failed_set = sorted(_s(m) for m in _ok(next(res), set()))
        raw.flatten = [_s(x) for x in _ok(next(res), [])]
        raw.pending = sorted(_s(x) for x in _ok(next(res), set()))
        heads = [_ok(next(res), []) for _ in range(3)]

        # Second trip only for what moved: new heartbeat keys, new positions, new stream entries.
        found = sorted({_s(x) for x in found})
        if int(cursor or 0) != 0:  # more heartbeat keys than one SCAN page: walk them all
            found = sorted({_s(x) for x in self.client.scan_iter(match=k.heartbeat_pattern(), count=1000)})
            raw.round_trips += 1
        new_hb = [x for x in found if x not in beats]
        new_pos = [m for m in open_now if m not in pos]
        fetch_orders = self._head(heads[0]) != self.orders_last or day != self.journal_day
        tails = [(t, key, h) for t, key, h in ((self.events, k.events(), heads[1]), (self.vetoes, k.veto_log(), heads[2]))
                 if self._head(h) != t.last_id]
        if new_hb or new_pos or tails:
            raw.round_trips += 1
            p = self.client.pipeline(transaction=False)
            for key in new_hb:
                p.hgetall(key)
            for m in new_pos:
                strat, _, sym = m.partition(":")
                p.hgetall(g.position_key(strat, sym))
            for t, key, _ in tails:
                p.xrevrange(key, count=t.count)
            res = iter(p.execute(raise_on_error=False))
            for key in new_hb:
                beats[key] = _ok(next(res), {})
            for m in new_pos:
                pos[m] = _ok(next(res), {})
            for t, _, h in tails:
                t.entries, t.last_id = _ok(next(res), []), self._head(h)
        if fetch_orders:
            self._read_journal(day, self._head(heads[0]))
            raw.round_trips += 1
        self.hb_keys = found
        self.open_members = open_now
        raw.beats = {}
        for key in found:
            if beats.get(key):
                doc = hb.decode(beats[key])
                raw.beats[str(doc.get("component", key))] = doc
        raw.positions = [{_s(a): _s(b) for a, b in pos[m].items()} for m in open_now if pos.get(m)]
        raw.orders_recent, raw.journal_today = self.orders_recent, self.journal
        raw.events, raw.vetoes = self.events.entries, self.vetoes.entries
        return raw

    @staticmethod
    def _head(entries: list[Any]) -> str | None:
        return _s(entries[0][0]) if entries else None

    def _read_journal(self, day: date, head: str | None) -> None:
        """Today's journal (oldest first) and the newest entries; incremental once read."""
        k = self.keys
        if day != self.journal_day or self.orders_last is None:
            start, _ = cme_time.session_bounds(day)
            today: list[tuple[str, dict[str, str]]] = []
            recent: list[tuple[str, dict[str, str]]] = []
            upper, scanned = "+", 0
            try:
                while scanned < JOURNAL_MAX:
                    page = self.client.xrevrange(k.orders(), max=upper, count=JOURNAL_PAGE)
                    if not page:
                        break
                    scanned += len(page)
                    done = False
                    for sid, f in page:
                        if len(recent) < JOURNAL_PAGE:
                            recent.append((sid, f))
                        t = _parse(f.get("ts")) or _parse(_sid_iso(sid))
                        if t is not None and t < start:
                            done = True
                            break
                        today.append((sid, f))
                    if done or len(page) < JOURNAL_PAGE:
                        break
                    upper = f"({page[-1][0]}"
            except redis.ResponseError:
                pass
            self.journal, self.orders_recent = list(reversed(today)), recent
        elif head is not None:
            try:
                new = self.client.xrange(k.orders(), min=f"({self.orders_last}", count=10 * JOURNAL_PAGE)
            except redis.ResponseError:
                new = []
            self.journal = self.journal + list(new)
            self.orders_recent = (list(reversed(new)) + self.orders_recent)[:JOURNAL_PAGE]
        self.journal_day, self.orders_last = day, head


def _ok(value: Any, default: Any) -> Any:
    """A pipelined reply, or ``default`` for an error (wrong type, missing stream) or nothing."""
    if isinstance(value, Exception) or value is None:
        return default
    return value


def _sid_iso(sid: str) -> str:
    try:
        return cme_time.iso_z(int(sid.split("-")[0]) * 1_000_000)
    except ValueError:
        return ""


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


def journal_realized(settings: Settings, entries: Iterable[tuple[str, dict[str, str]]],
                     day: date) -> dict[str, float]:
    """Realised P&L of trading day ``day`` per strategy, from the order journal (oldest first).

    The same bookings as gate.lua, keyed by the signal bar's trading day (``day_at``):
    an accepted entry pays ``quantity * commission``; an entry released by a
    rejected/expired/failed/abandoned outcome gets it back; an exit books
    ``dir * quantity * mult * (exit price - entry price) - quantity * commission`` when it
    is delivered (paper: with its intent). Only exits of positions opened today can be
    attributed (a carried position's reference is the previous day's last mark, which the
    journal does not hold): the caller shows the difference to the gate as unattributed."""
    out: dict[str, float] = {}
    entries_by_id: dict[str, dict[str, Any]] = {}
    opened: dict[str, dict[str, Any]] = {}  # strategy:symbol -> today's entry
    exits: dict[str, dict[str, Any]] = {}

    def commission(strat: str, sym: str) -> float:
        try:
            return float(settings.commission(strat, sym))
        except (KeyError, ValueError, AttributeError):
            return 0.0

    def book_exit(x: dict[str, Any]) -> None:
        entry = opened.pop(x["pid"], None)
        if entry is None:
            return  # carried from an earlier day: unattributed
        inst = settings.instruments.get(x["symbol"])
        mult = float(inst.multiplier) if inst is not None else 0.0
        pnl = entry["dir"] * x["qty"] * mult * (x["price"] - entry["price"]) - x["qty"] * commission(x["strategy"], x["symbol"])
        out[x["strategy"]] = out.get(x["strategy"], 0.0) + pnl

    for _, f in entries:
        event, strat, sym, oid = f.get("event"), f.get("strategy", ""), f.get("symbol", ""), f.get("order_id", "")
        bar = _parse(f.get("bar_start"))
        if event == "intent" and f.get("decision") == "accepted" and strat and sym and bar is not None:
            if cme_time.trading_day(bar) != day:
                continue
            qty, price = _int(f.get("quantity")) or 0, _num(f.get("price")) or 0.0
            if f.get("kind") == "entry":
                e = {"dir": 1 if f.get("side") == "long" else -1, "qty": qty, "price": price, "strategy": strat,
                     "pid": f"{strat}:{sym}"}
                entries_by_id[oid], opened[e["pid"]] = e, e
                out[strat] = out.get(strat, 0.0) - qty * commission(strat, sym)
            elif f.get("kind") == "exit":
                x = {"strategy": strat, "symbol": sym, "qty": qty, "price": price, "pid": f"{strat}:{sym}"}
                if f.get("destination") == "paper":
                    book_exit(x)
                else:
                    exits[oid] = x
        elif event == "outcome":
            result = f.get("result", "")
            if result == "delivered" and oid in exits:
                book_exit(exits.pop(oid))
            elif result in ENTRY_RELEASED and oid in entries_by_id:
                e = entries_by_id.pop(oid)
                if opened.get(e["pid"]) is e:
                    opened.pop(e["pid"])
                    out[e["strategy"]] = out.get(e["strategy"], 0.0) + e["qty"] * commission(e["strategy"], sym)
    return out


def portfolio(settings: Settings, raw: Raw, mnow: datetime) -> dict[str, Any]:
    """The gate's state, computed as gate.lua's ``day_pnl()`` / ``op == 'pnl'`` do."""
    day = cme_time.trading_day(mnow)
    dayiso = day.isoformat()
    realized = _num(raw.day_hash.get("realized")) or 0.0
    pnl = realized
    positions = []
    for p in raw.positions:
        d, q, m = _num(p.get("dir")), _num(p.get("quantity")), _num(p.get("mult"))
        entry, mark, ref = _num(p.get("entry_price")), _num(p.get("mark")), _num(p.get("ref_price"))
        known = None not in (d, q, m, mark)
        open_pnl = round(d * q * m * (mark - entry), 2) if known and entry is not None else None  # type: ignore[operator]
        day_pnl = 0.0
        if p.get("ref_day") == dayiso and known and ref is not None:
            day_pnl = d * q * m * (mark - ref)  # type: ignore[operator]
        pnl += day_pnl
        positions.append({"strategy": p.get("strategy", ""), "symbol": p.get("symbol", ""), "dir": _int(d),
                          "quantity": _int(q), "entry_price": entry, "mark": mark, "open_pnl": open_pnl,
                          "day_pnl": round(day_pnl, 2), "contract": p.get("contract", ""),
                          "entry_time": p.get("entry_time", ""), "mark_time": p.get("mark_time", ""),
                          "state": p.get("state", "open")})  # open | closing | exit_failed
    limit = float(settings.portfolio.daily_stop_loss)
    stopped = raw.day_hash.get("stopped") == "1" or pnl <= -limit
    reduce_only = dict(raw.reduce_only)
    for pid in raw.exit_failed_set:  # as Gate.reduce_only()
        reduce_only.setdefault(pid.split(":", 1)[0], f"exit failed for {pid}")
    scopes = set(raw.flatten) | ({"*"} if raw.day_hash.get("flatten") == "1" else set())
    flatten_pending = sorted({p["strategy"] for p in positions if p["state"] == "open"
                              and ("*" in scopes or p["strategy"] in scopes)})
    exit_failed = [f"{p['strategy']}:{p['symbol']}" for p in positions if p["state"] == "exit_failed"]
    return {"available": True, "trading_day": dayiso, "open_positions": len(positions),
            "max_positions": settings.portfolio.max_positions, "day_pnl": round(pnl, 2),
            "realized": round(realized, 2), "unattributed_pnl": 0.0,
            "daily_stop_loss": settings.portfolio.daily_stop_loss, "on_daily_stop": settings.portfolio.on_daily_stop,
            "stopped": bool(stopped), "stopped_at": raw.day_hash.get("stopped_at"),
            "halted": raw.halt is not None, "halt_reason": raw.halt,
            "pending_orders": len(raw.pending), "pending_order_ids": raw.pending[:5],
            "positions": positions, "reduce_only": reduce_only, "exit_failed": exit_failed,
            "flatten_pending": flatten_pending,
            "entries": "blocked" if (raw.halt is not None or stopped or "*" in reduce_only) else "allowed",
            "degraded": bool(stopped or raw.halt is not None or raw.pending or exit_failed or reduce_only)}


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
            "degraded": cfg.enabled and state not in ("LIVE", "WARMING"),
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


def _dur(s: float | None) -> str:
    from multialpha.status.fmt import dur

    return dur(s)


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


def build(settings: Settings, raw: Raw, now: datetime, source: str, mnow: datetime,
          environ: dict[str, str]) -> dict[str, Any]:
    """The document from what :meth:`Collector.read` returned (no I/O)."""
    beats = raw.beats
    supervisor, procs = processes(settings, beats, now)
    market_open = cme_time.is_open(mnow)
    lag_hub = hub_lag(beats, mnow, market_open)
    port = portfolio(settings, raw, mnow)
    day = cme_time.trading_day(mnow)
    realized = journal_realized(settings, raw.journal_today, day)
    models = model_problems(settings, beats, raw.vetoes)
    strats = strategies(settings, beats, procs, _orders(raw.orders_recent), port, realized, models, environ)
    # The strategies add up to the gate's day P&L: what the journal cannot attribute is said.
    port["unattributed_pnl"] = round(port["day_pnl"] - sum(s["pnl_today"] for s in strats), 2)
    modes = sorted({s["mode"] for s in strats if s["state"] != "DISABLED"})
    syms = symbols(settings, raw, mnow, lag_hub)
    doc = {
        "schema": SCHEMA,
        "generated": cme_time.iso_z(now.replace(microsecond=0)),
        "namespace": settings.redis.namespace,
        "clock": {"source": source, "market_now": cme_time.iso_z(mnow.replace(microsecond=0))},
        "market_open": market_open,
        "hub_lag_s": lag_hub,
        "order_mode": {"summary": modes[0] if len(modes) == 1 else ("mixed" if modes else "paper"),
                       "strategies": {s["name"]: s["mode"] for s in strats}},
        "supervisor": supervisor,
        "processes": procs,
        "symbols": syms,
        "strategies": strats,
        "portfolio": port,
        "errors": errors(raw, procs, beats),
    }
    doc["overall"] = overall(doc, lag_hub)
    doc["ok"] = doc["overall"]["state"] in ("OK", "WARN")
    return doc


class Status:
    """A reusable status reader: one :class:`Collector` across refreshes (the live view)."""

    def __init__(self, settings: Settings, client: "redis.Redis", clock: Callable[[], datetime] = cme_time.utcnow,
                 environ: dict[str, str] | None = None,
                 market: tuple[str, Callable[[], datetime]] | None = None) -> None:
        self.settings, self.clock, self.market = settings, clock, market
        self.environ = dict(os.environ if environ is None else environ)
        self.collector = Collector(settings, client)
        self.round_trips = 0

    def __call__(self) -> dict[str, Any]:
        now = self.clock()
        if self.market is not None:
            source, mclock = self.market
        elif self.clock is cme_time.utcnow:
            source, mclock = market_clock(self.settings)
        else:
            source, mclock = "wall", self.clock
        mnow = mclock()
        raw = self.collector.read(cme_time.trading_day(mnow))
        self.round_trips = raw.round_trips
        return build(self.settings, raw, now, source, mnow, self.environ)


def collect(settings: Settings, client: "redis.Redis", clock: Callable[[], datetime] = cme_time.utcnow,
            environ: dict[str, str] | None = None,
            market: tuple[str, Callable[[], datetime]] | None = None) -> dict[str, Any]:
    """The whole status document. ``client`` must use decode_responses=True.

    ``clock`` is wall time (heartbeat ages); ``market`` is (name, clock) for bar lag,
    session and trading day — the sandbox replay clock on the sandbox.
    """
    return Status(settings, client, clock, environ, market)()


def order_mode_words(doc: dict[str, Any], short: bool = False) -> str:
    m = doc["order_mode"]["summary"]
    if short:
        return {"live": "LIVE orders", "mixed": "MIXED orders"}.get(m, "PAPER")
    if m == "live":
        return "LIVE — orders are sent to TradersPost"
    if m == "mixed":
        live = [n for n, v in doc["order_mode"]["strategies"].items() if v == "live"]
        return f"MIXED — live orders for {', '.join(live)}; the rest paper"
    return "PAPER — orders are journaled only, nothing is sent"
