"""Reading Redis for status: one pipelined round trip when nothing changed.

A :class:`Collector` remembers which heartbeat keys, open positions and stream
tails it saw last time and asks for all of it at once; only when a set or a
stream moved does it make a second trip for the new members/entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import redis

from multialpha import cme_time
from multialpha import heartbeat as hb
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.status.values import _parse, _s, _sid_iso

EVENTS_SCANNED = 200
VETOES_SCANNED = 500
JOURNAL_PAGE = 500
JOURNAL_MAX = 50_000  # entries scanned back for today's trading day (a day has far fewer)


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
    unmanaged: dict[str, str] = field(default_factory=dict)  # strategy -> why its positions have no worker
    pending: list[str] = field(default_factory=list)
    orders_recent: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # newest first
    journal_today: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # oldest first
    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # newest first
    vetoes: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # newest first
    verify: dict[str, str] = field(default_factory=dict)  # trading day -> `multialpha verify` summary JSON
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
        p.hgetall(g.unmanaged_key())
        p.smembers(k.orders_pending())
        for key in (k.orders(), k.events(), k.veto_log()):
            p.xrevrange(key, count=1)
        p.hgetall(k.verify_results())
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
        raw.unmanaged = {_s(a): _s(b) for a, b in _ok(next(res), {}).items()}
        raw.pending = sorted(_s(x) for x in _ok(next(res), set()))
        heads = [_ok(next(res), []) for _ in range(3)]
        raw.verify = {_s(a): _s(b) for a, b in _ok(next(res), {}).items()}

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
