"""Finished bars -> Redis: PUBLISH to the bar channel and XADD to the bar log.

Both happen in a server-side Lua script, so they are atomic and idempotent:
the log entry id is ``{start_ms}-0``; if the stream already holds that id (or
a later one) XADD fails inside the script and the bar is neither logged nor
published again. A restarted or reconnected hub, or two hubs by mistake, can
therefore never duplicate a bar.

Bars are sent in closing order (by minute, then symbol), once per hub loop
iteration, up to ``SCRIPT_BARS`` bars per script call (one round trip, one
atomic step; per-bar client overhead is what limits throughput on thin
markets). Minute-close notices travel in the same pipeline, after their
minute's bars: a subscriber always sees a minute's bars before its notice.
When Redis is unreachable the Databento session keeps running; finished bars
wait in a bounded deque (``hub.redis_buffer_bars``) and are flushed in order
when Redis answers again. Beyond the bound the *oldest* bars are dropped
(newest bars are what a live strategy needs), counted and logged.

Bar log entry fields are the JSON bar's fields, each value a string (numbers in
JSON spelling); :func:`bar_from_log` turns an entry back into a :class:`Bar`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import redis

from multialpha import cme_time
from multialpha.bar import Bar, BarError, minute_closed_json
from multialpha.keys import Keys

log = logging.getLogger(__name__)

SCRIPT_BARS = 256
FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume", "contract", "trades", "source")
# KEYS[i] = bar log stream of bar i; ARGV = maxlen, n, field name 1..n, then per
# bar: id, channel, json, value 1..n. Field names travel once per call: argument
# encoding is most of the client's per-bar cost.
# Returns per bar: 1 published, 0 already logged (not published again), or an error text.
_PUBLISH_LUA = """
local maxlen = ARGV[1]
local n = tonumber(ARGV[2])
local out = {}
local a = 3 + n
local fields = {}
for i = 1, #KEYS do
  for j = 1, n do
    fields[2 * j - 1] = ARGV[2 + j]
    fields[2 * j] = ARGV[a + 2 + j]
  end
  local ok = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', maxlen, ARGV[a], unpack(fields))
  if type(ok) == 'table' and ok.err then
    if string.find(ok.err, 'equal or smaller', 1, true) then out[i] = 0 else out[i] = ok.err end
  else
    redis.call('PUBLISH', ARGV[a + 1], ARGV[a + 2])
    out[i] = 1
  end
  a = a + 3 + n
end
return out
"""


_ESCAPE = re.compile(r'[\x00-\x1f"\\\x7f-\U0010ffff]').search


class _Encoder:
    """``(Bar.to_json(), log values)`` of a bar, ~4x cheaper than to_dict + json.dumps.

    Per-bar cost is what limits the hub on thin markets. Numbers: ``repr``
    (float) and ``str`` (int) are exactly Python's JSON spellings of finite
    numbers; the minute's ISO stamp is shared by every root's bar. Any string
    that would need JSON escaping takes the ``Bar.to_json()`` path, and a unit
    test pins the output to ``Bar.to_json()``.
    """

    def __init__(self) -> None:
        self._start: object = None
        self._iso = ""

    def __call__(self, bar: Bar) -> tuple[str, list[str]]:
        if bar.start != self._start:
            self._start, self._iso = bar.start, cme_time.iso_z(bar.start)
        if _ESCAPE(bar.symbol) or _ESCAPE(bar.contract) or _ESCAPE(bar.source):
            doc = bar.to_dict()
            return json.dumps(doc, separators=(",", ":")), [v if type(v) is str else repr(v) for v in doc.values()]
        vals = [bar.symbol, self._iso, repr(bar.open), repr(bar.high), repr(bar.low), repr(bar.close),
                str(bar.volume), bar.contract, str(bar.trades), bar.source]
        text = ('{"symbol":"%s","timestamp":"%s","open":%s,"high":%s,"low":%s,"close":%s,'
                '"volume":%s,"contract":"%s","trades":%s,"source":"%s"}') % tuple(vals)
        return text, vals


def log_fields(bar: Bar) -> list[str]:
    """Flat field/value list of a bar log entry (the JSON bar's fields)."""
    out: list[str] = []
    for k, v in zip(FIELDS, _Encoder()(bar)[1]):
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


assert tuple(Bar("X", cme_time.from_ns(0), 1, 1, 1, 1, 0).to_dict()) == FIELDS, "Bar fields changed: update FIELDS"


@dataclass(frozen=True, slots=True)
class PrevBar:
    """A previous front's bar during the roll overlap: ``Keys.prev_bars`` / ``prev_bar_log``."""

    bar: Bar


@dataclass(frozen=True, slots=True)
class MinuteClosed:
    """Every bar starting at or before ``start_ns`` has been queued before this."""

    start_ns: int


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
        self._script = client.register_script(_PUBLISH_LUA)
        self._encode = _Encoder()
        self._next_try = 0.0
        self.up = True
        self.published = self.duplicates = self.dropped = self.errors = self.notices = 0
        self.prev_published = 0
        self.last_bar: dict[str, str] = {}  # symbol -> ISO start of the last published bar
        self.closed_through = ""  # ISO start of the last minute announced closed

    def add_minute_closed(self, start_ns: int) -> None:
        self.add(MinuteClosed(start_ns))

    def add_prev(self, bar: Bar) -> None:
        self.add(PrevBar(bar))

    def add(self, bar: Bar | PrevBar | MinuteClosed) -> None:
        if len(self.pending) >= self.bound:
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

    def flush(self, force: bool = False) -> bool:
        """Send every pending bar and notice in order; True when nothing is left pending."""
        if not self.pending:
            return True
        if not self.up and not force and self.monotonic() < self._next_try:
            return False
        batch = list(self.pending)
        bars: list[tuple[Bar, str, bool]] = []  # (bar, ISO start, previous front?) in reply order
        plan: list[int] = []  # per pipeline command: bars in the script call, 0 = a notice
        try:
            pipe = self.client.pipeline(transaction=False)
            i = 0
            while i < len(batch):
                item = batch[i]
                if isinstance(item, MinuteClosed):
                    pipe.publish(self.keys.minute_closed(), minute_closed_json(cme_time.from_ns(item.start_ns)))
                    plan.append(0)
                    i += 1
                    continue
                keys: list[str] = []
                args: list[object] = [self.maxlen, len(FIELDS), *FIELDS]
                while i < len(batch) and isinstance(batch[i], (Bar, PrevBar)) and len(keys) < SCRIPT_BARS:
                    bar = batch[i]
                    prev = isinstance(bar, PrevBar)
                    if prev:
                        bar = bar.bar  # type: ignore[union-attr]
                    text, values = self._encode(bar)  # type: ignore[arg-type]
                    log_key = self.keys.prev_bar_log if prev else self.keys.bar_log
                    channel = self.keys.prev_bars if prev else self.keys.bars
                    keys.append(log_key(bar.symbol))  # type: ignore[union-attr]
                    args += (f"{bar.start_ms}-0", channel(bar.symbol), text)  # type: ignore[union-attr]
                    args += values
                    bars.append((bar, values[1], prev))  # type: ignore[arg-type]
                    i += 1
                self._script(keys=keys, args=args, client=pipe)
                plan.append(len(keys))
            replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as e:
            self.errors += 1
            if self.up:
                log.error("redis unreachable, buffering bars (%d pending): %s", len(self.pending), e)
            self.up = False
            self._next_try = self.monotonic() + self.retry_s
            return False
        if not self.up:
            log.info("redis back: flushed %d buffered bars", len(batch))
        self.up = True
        results: list[object] = []
        for n, reply in zip(plan, replies):
            if n == 0:
                self.notices += 1
            else:
                results += reply if isinstance(reply, list) else [reply] * n
        for (bar, stamp, prev), res in zip(bars, results):
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
        for item in batch:
            if isinstance(item, MinuteClosed):
                self.closed_through = cme_time.iso_z(item.start_ns)
        for _ in batch:
            self.pending.popleft()
        return True

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
        return {
            "published": self.published,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "pending": len(self.pending),
            "minute_notices": self.notices,
            "prev_published": self.prev_published,
            "redis_errors": self.errors,
        }
