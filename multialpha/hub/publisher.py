"""Finished bars -> Redis: PUBLISH to the bar channel and XADD to the bar log.

Both happen in a server-side Lua script, so they are atomic and idempotent:
the log entry id is ``{start_ms}-0``; if the stream already holds that id (or
a later one) XADD fails inside the script and the bar is neither logged nor
published again. A restarted or reconnected hub, or two hubs by mistake, can
therefore never duplicate a bar.

Bars are sent in closing order (by minute, then symbol), once per hub loop
iteration, up to ``SCRIPT_BARS`` bars per script call (one round trip, one
atomic step). Minute-close notices travel inside the same script call, after
their minute's bars: a subscriber always sees a minute's bars before its
notice, and a call that did not run (``NOSCRIPT`` after a Redis restart or a
failover: the script is loaded and the call sent again) published nothing.
Each call carries its bars and notices **packed into one argument** that the
script splits (``hub/wire.py``): per-argument packing in the client, not
the script, is what limits throughput on thin markets.
When Redis is unreachable the Databento session keeps running; finished bars
wait in a bounded deque (``hub.redis_buffer_bars``) and are flushed in order
when Redis answers again. Beyond the bound the *oldest* bars are dropped
(newest bars are what a live strategy needs), counted and logged.

Bar log entry fields are the JSON bar's fields, each value a string (numbers in
JSON spelling); :func:`bar_from_log` turns an entry back into a :class:`Bar`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import redis
from redis.exceptions import NoScriptError

from multialpha import cme_time
from multialpha.bar import Bar, BarError, minute_closed_payload
from multialpha.hub.wire import ESCAPE, FIELDS, PUBLISH_LUA, SEP, Encoder, first_error, refused_for_now
from multialpha.keys import Keys

log = logging.getLogger(__name__)

SCRIPT_BARS = 256
# While records wait behind the batch just aggregated, the hub loop writes at most this often
# (``flush_paced``): a write costs ~50-100 µs of kernel time on loopback whatever it carries, and a
# backlog (a gap replay, a burst) would otherwise close and send one minute per write.
BACKLOG_FLUSH_S = 0.02


def log_fields(bar: Bar) -> list[str]:
    """Flat field/value list of a bar log entry (the JSON bar's fields)."""
    out: list[str] = []
    for k, v in zip(FIELDS, Encoder()(bar)[1]):
        out += (k, v)
    return out


def bar_from_log(fields: dict[Any, Any]) -> Bar:
    """A bar log entry's fields -> Bar (raises BarError on garbage)."""
    doc: dict[str, object] = {}
    for k, v in fields.items():
        try:
            k = k.decode() if isinstance(k, bytes) else str(k)
            v = v.decode() if isinstance(v, bytes) else str(v)
        except UnicodeDecodeError:
            raise BarError("bar log entry is not UTF-8") from None
        if k in ("open", "high", "low", "close", "volume", "trades"):
            try:
                doc[k] = json.loads(v)
            except (ValueError, RecursionError):
                raise BarError(f"{k}={v!r} is not a number") from None
        else:
            doc[k] = v
    return Bar.from_dict(doc)


def stream_id_ns(entry_id: str | bytes) -> int:
    """``1700000000000-0`` -> bar start in ns."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(entry_id.split("-", 1)[0]) * 1_000_000


@dataclass(frozen=True, slots=True)
class PrevBar:
    """A previous front's bar during the roll overlap: ``Keys.prev_bars`` / ``prev_bar_log``."""

    bar: Bar


@dataclass(frozen=True, slots=True)
class MinuteClosed:
    """Every bar starting at or before ``start_ns`` has been queued before this."""

    start_ns: int


@dataclass(slots=True)
class _Call:
    """One script call of a flush: what it carries and what its reply settles."""

    keys: list[str]
    parts: list[str]  # the packed records, in order (joined into ARGV[2])
    argv: list[str]  # explicit records' fields (ARGV[3..])
    bars: list[tuple[Bar, str, bool]]  # (bar, ISO start, previous front?) in reply order
    notices: int = 0
    closed_through: str = ""  # ISO minute of its last notice

    @property
    def items(self) -> int:
        """Pending entries its reply settles (bars and notices)."""
        return len(self.bars) + self.notices


class Publisher:
    def __init__(
        self,
        client: "redis.Redis",
        keys: Keys,
        maxlen: int = 10_080,
        buffer_bars: int = 20_000,
        retry_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self.pending: deque[Bar | PrevBar | MinuteClosed] = deque()
        self.bound = buffer_bars
        self.retry_s = retry_s
        self.monotonic = monotonic
        # EVALSHA written on a pooled connection (redis-py's Script in a pipeline asks SCRIPT EXISTS
        # first: one more round trip per flush). A NOSCRIPT reply (fresh server, failover) loads it.
        self._sha = hashlib.sha1(PUBLISH_LUA.encode()).hexdigest()
        self._encode = Encoder()
        # symbol -> (bar log key, channel), front and previous front: built once, not per bar
        self._names: dict[str, tuple[str, str]] = {}
        self._prev_names: dict[str, tuple[str, str]] = {}
        self._notice_channel = keys.minute_closed()
        # Names from a namespace that could hold SEP go as explicit arguments (Keys accepts any
        # namespace; settings allow only [A-Za-z0-9_.-]).
        self._plain = not (ESCAPE(keys.bars("")) or ESCAPE(keys.prev_bars("")) or ESCAPE(self._notice_channel))
        self._next_try = 0.0
        self._next_paced = 0.0  # flush_paced: no write before this while records wait
        self._sent: tuple[Any, list[_Call], list[Bar | PrevBar | MinuteClosed]] | None = None  # replies unread
        self.up = True
        self._lost_streak = 0  # flushes in a row whose replies were lost: 2 = Redis down
        self.published = self.duplicates = self.dropped = self.errors = self.notices = 0
        self.prev_published = 0
        self.last_bar: dict[str, str] = {}  # symbol -> ISO start of the last published bar
        self.closed_through = ""  # ISO start of the last minute announced closed

    def add_minute_closed(self, start_ns: int) -> None:
        self.add(MinuteClosed(start_ns))

    def add_prev(self, bar: Bar) -> None:
        self.add(PrevBar(bar))

    def add(self, bar: Bar | PrevBar | MinuteClosed) -> None:
        while len(self.pending) >= self.bound:  # (entries back from a lost reply can overfill it)
            old = self.pending.popleft()
            if isinstance(old, PrevBar):
                old = old.bar
            if isinstance(old, Bar):
                self.dropped += 1
                if self.dropped <= 20 or self.dropped % 1000 == 0:
                    log.error(
                        "redis buffer full (%d bars): dropped %s %s (%d dropped so far)",
                        self.bound, old.symbol, cme_time.iso_z(old.start), self.dropped,
                    )
        self.pending.append(bar)

    def flush_paced(self, backlog: int) -> None:
        """The hub loop's flush, after each aggregated batch: at once when the hub has caught up
        (``backlog`` == 0 records waiting: a bar leaves as soon as its minute closes), and at most
        every ``BACKLOG_FLUSH_S`` while records wait (they may close more minutes: one write
        carries them all). Replies are read by the next flush (``wait=False``)."""
        now = self.monotonic()
        if backlog and now < self._next_paced:
            return
        self._next_paced = now + BACKLOG_FLUSH_S
        self.flush(wait=False)

    def flush(self, force: bool = False, wait: bool = True) -> bool:
        """Send every pending bar and notice in order; True when nothing is left pending.

        ``wait=False`` (the hub loop) returns once the calls are written: their replies
        are read by the next flush, so Redis runs a batch's script while the hub
        aggregates the next one (the script's time no longer adds to the hub's).
        Redis publishes on receipt either way: latency to subscribers is the same.
        """
        lost: list[Exception] = []  # replies lost in this flush (a lost one is resent at once)
        if self._sent is not None:
            self._collect(lost)
        for _ in range(3):  # more rounds only after NOSCRIPT or one lost connection
            if lost and not self.up:  # a second loss in a row (this flush or across flushes)
                return False
            if not self.pending:
                return True
            if not self.up and not force and self.monotonic() < self._next_try:
                return False
            if not self._send():
                return False
            if not wait:
                return True
            self._collect(lost)
        return not self.pending

    def _send(self) -> bool:
        """Write the pending entries as EVALSHA calls on one connection (replies unread)."""
        batch = list(self.pending)
        self.pending.clear()
        calls = self._calls(batch)
        pool = self.client.connection_pool
        conn = None
        try:
            conn = pool.get_connection()
            packed = conn.pack_commands([("EVALSHA", self._sha, len(c.keys), *c.keys, self.maxlen, "".join(c.parts),
                                          *c.argv) for c in calls])
            try:
                conn.send_packed_command(packed)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()  # a stale pooled connection (Redis restarted): one fresh try
                conn.send_packed_command(packed)
        except redis.RedisError as e:
            if conn is not None:
                conn.disconnect()
                pool.release(conn)
            self.pending.extendleft(reversed(batch))
            self._down(e)
            return False
        self._sent = (conn, calls, batch)
        return True

    def _collect(self, lost: list[Exception]) -> None:
        """Read the replies of the calls written by ``_send`` and count them. What did not
        run (NOSCRIPT) or whose reply was lost (appended to ``lost``) goes back to the front
        of ``pending``: resending is safe, the script refuses what the log already holds."""
        assert self._sent is not None
        conn, calls, batch = self._sent
        self._sent = None
        before = len(lost)  # ``lost`` is the whole flush's: earlier rounds' losses are in it
        done = 0
        noscript = False
        try:
            for c in calls:
                try:
                    reply: object = conn.read_response()
                    if refused_for_now(reply):  # a bar's XADD refused for now (OOM, READONLY, ...)
                        raise redis.ResponseError(first_error(reply))  # caught just below, re-raised
                except NoScriptError:
                    # This call ran nothing, nor will any after it (same server, same script);
                    # their replies are still read so that the connection stays in step.
                    noscript = True
                    continue
                except redis.ResponseError as e:
                    if refused_for_now(e):
                        raise  # Redis is there but refuses writes for now: as a lost reply
                    reply = e  # the script failed as a whole: its bars are counted as rejected
                if not noscript:
                    self._settle(c, reply)
                    done += c.items
        except redis.RedisError as e:
            conn.disconnect()  # replies of later calls are unread: the connection is out of step
            lost.append(e)
        finally:
            self.client.connection_pool.release(conn)
        self.pending.extendleft(reversed(batch[done:]))
        if noscript and not lost:
            try:
                self._sha = self.client.script_load(PUBLISH_LUA)
            except redis.RedisError as e:
                lost.append(e)
        if done and not self.up:
            log.info("redis back: flushed %d buffered bars", done)
        if len(lost) > before:
            self._lose(lost[-1], len(batch) - done, at_once=done > 0)
        else:
            self._lost_streak = 0
            self.up = True

    def _lose(self, e: Exception, unsettled: int, at_once: bool) -> None:
        """A reply not read (connection lost, read timeout, LOADING) or a write refused for now
        (READONLY, OOM, ...): the unsettled entries are back in ``pending``. The first loss is
        resent at once (a pooled connection Redis dropped); a second in a row, or a refusal,
        is Redis down: logged, counted, health red, retried every ``retry_s``."""
        self._lost_streak = 1 if at_once else self._lost_streak + 1
        if self._lost_streak >= 2 or isinstance(e, redis.ResponseError):
            self._down(e)
        else:
            self.errors += 1
            log.warning("redis reply lost, resending %d entries: %s", unsettled, e)

    def _down(self, e: Exception) -> None:
        self.errors += 1
        if self.up:
            log.error("redis unreachable, buffering bars (%d pending): %s", len(self.pending), e)
        self.up = False
        self._next_try = self.monotonic() + self.retry_s

    def _calls(self, batch: list[Bar | PrevBar | MinuteClosed]) -> list[_Call]:
        """Pack the batch into script calls of up to SCRIPT_BARS bars each (notices ride along)."""
        enc = self._encode
        packed, plain, names = enc.packed, self._plain, self._names
        notice = "N" + SEP + self._notice_channel + SEP + "%s" + SEP
        calls = [call := _Call([], [], [], [])]
        parts, keys, bars = call.parts, call.keys, call.bars
        for item in batch:
            t = type(item)
            if t is MinuteClosed:
                iso = cme_time.iso_z(item.start_ns)  # type: ignore[union-attr]
                payload = minute_closed_payload(iso)
                if plain:
                    parts.append(notice % payload)
                else:
                    parts.append("X" + SEP)
                    call.argv += ("N", self._notice_channel, payload)
                call.notices += 1
                call.closed_through = iso
                continue
            if len(keys) == SCRIPT_BARS:
                calls.append(call := _Call([], [], [], []))
                parts, keys, bars = call.parts, call.keys, call.bars
            if t is Bar:  # the common case: a front bar
                bar, prev = item, False
                try:
                    key, channel = names[item.symbol]  # type: ignore[union-attr]
                except KeyError:
                    key, channel = names[item.symbol] = self._names_of(item.symbol, False)  # type: ignore[union-attr]
            else:
                bar, prev = item.bar, True  # type: ignore[union-attr]
                try:
                    key, channel = self._prev_names[bar.symbol]
                except KeyError:
                    key, channel = self._prev_names[bar.symbol] = self._names_of(bar.symbol, True)
            rec = packed(bar, channel) if plain else None  # type: ignore[arg-type]
            if rec is None:
                parts.append("X" + SEP)
                call.argv += enc.explicit(bar, channel)  # type: ignore[arg-type]
            else:
                parts.append(rec)
            keys.append(key)
            bars.append((bar, enc.iso, prev))  # type: ignore[arg-type]
        return calls

    def _names_of(self, symbol: str, prev: bool) -> tuple[str, str]:
        if prev:
            return self.keys.prev_bar_log(symbol), self.keys.prev_bars(symbol)
        return self.keys.bar_log(symbol), self.keys.bars(symbol)

    def _settle(self, call: _Call, reply: object) -> None:
        """Count one call's outcome: per bar 1 published, 0 already logged, else an error."""
        self.notices += call.notices
        if call.closed_through:
            self.closed_through = call.closed_through
        results = reply if isinstance(reply, list) else [reply] * len(call.bars)
        for (bar, stamp, prev), res in zip(call.bars, results):
            if res == 1 and prev:
                self.prev_published += 1
            elif res == 1:
                self.published += 1
                self.last_bar[bar.symbol] = stamp
            elif res != 0:
                # Not a connectivity problem (e.g. the key holds a wrong type): retrying cannot help.
                self.errors += 1
                self.dropped += 1
                log.error("bar %s %s rejected by redis, dropped: %s", bar.symbol, cme_time.iso_z(bar.start), res)
            else:
                self.duplicates += 1
                log.debug("bar %s %s already in the log; not republished", bar.symbol, bar.start_ms)

    def last_logged(self, symbols: Iterable[str]) -> dict[str, int]:
        """Start (ns) of the newest bar in each symbol's log; absent = no log."""
        pipe = self.client.pipeline(transaction=False)
        symbols = list(symbols)
        for sym in symbols:
            pipe.xrevrange(self.keys.bar_log(sym), count=1)
        out: dict[str, int] = {}
        for sym, entries in zip(symbols, pipe.execute()):
            if entries:
                out[sym] = stream_id_ns(entries[0][0])
                self.last_bar[sym] = cme_time.iso_z(out[sym])
        return out

    def counters(self) -> dict[str, int]:
        sent = self._sent  # read once: the health thread asks while the hub thread flushes
        return {
            "published": self.published,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "pending": len(self.pending) + (len(sent[2]) if sent else 0),
            "minute_notices": self.notices,
            "prev_published": self.prev_published,
            "redis_errors": self.errors,
        }


