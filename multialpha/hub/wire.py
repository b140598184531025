"""The hub's bar wire format: the publish script and the records it reads.

``PUBLISH_LUA`` (run by hub/publisher.py, one call per up to 256 bars): per bar
``XADD`` to the bar log with id ``{start_ms}-0`` and, only if that succeeded,
``PUBLISH`` of ``Bar.to_json()``; minute-close notices in the same call, in
order. The bars and notices of a call travel packed into one argument (redis-py
packs each argument separately, and that packing was the client's largest cost
per bar); ``Encoder`` writes that argument's records. Separate from the
publisher, which owns the queue, the connection and the counters.
"""

from __future__ import annotations

import json
import re

import redis
from redis.exceptions import MasterDownError, NoPermissionError, OutOfMemoryError, ReadOnlyError, TryAgainError

from multialpha import cme_time
from multialpha.bar import Bar

FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume", "contract", "trades", "source")
SEP = "\x1f"  # ends every field of the packed argument; ESCAPE finds it in any string that needs escaping
# ARGV[1] = maxlen, ARGV[2] = the packed records, in order, each field followed by SEP:
#   B id channel value1..valueN        a bar, logged in KEYS[k] (k-th bar of the call); the script
#                                      writes its JSON from the values (none needs escaping)
#   N channel payload                  a minute-close notice
#   X                                  the next record's fields are ARGV[a..] instead (kind B or N
#                                      first; a B's JSON written by the client, after the channel):
#                                      a bar with a string that needs escaping or could hold SEP.
# Returns per bar: 1 published, 0 already logged (not published again), or an error text.
# The JSON is Bar.to_json(): its numbers are the values' spelling (Python's JSON spelling, Encoder),
# and tests/hub/test_wire.py pins the script's text to Bar.to_json() through a real Redis.
PUBLISH_LUA = """
local maxlen, blob = ARGV[1], ARGV[2]
local match, find, byte, unpack, call, pcall = string.match, string.find, string.byte, unpack, redis.call, redis.pcall
-- one string.match per record: the C pattern matcher splits it into its fields (into locals: no
-- table per record)
local BAR = '^B\\31' .. string.rep('([^\\31]*)\\31', %(nv)d + 2) .. '()'
local NOTICE = '^N\\31([^\\31]*)\\31([^\\31]*)\\31()'
local out, k, a, p, n = {}, 0, 3, 1, #blob
local id, channel, json, %(vals)s
while p <= n do
  local kind = byte(blob, p)
  if kind == 66 then
    id, channel, %(vals)s, p = match(blob, BAR, p)
    json = %(json)s
  elseif kind == 78 then
    channel, json, p = match(blob, NOTICE, p)
  else
    kind = byte(ARGV[a])
    if kind == 66 then
      id, channel, json, %(vals)s = unpack(ARGV, a + 1, a + %(nv)d + 3)
      a = a + %(nv)d + 4
    else
      channel, json = ARGV[a + 1], ARGV[a + 2]
      a = a + 3
    end
    p = p + 2
  end
  if kind == 78 then
    call('PUBLISH', channel, json)
  else
    k = k + 1
    local ok = pcall('XADD', KEYS[k], 'MAXLEN', '~', maxlen, id, %(fields)s)
    if type(ok) == 'table' and ok.err then
      if find(ok.err, 'equal or smaller', 1, true) then out[k] = 0 else out[k] = ok.err end
    else
      call('PUBLISH', channel, json)
      out[k] = 1
    end
  end
end
return out
"""


def _lua_json() -> str:
    """The Lua expression writing a packed bar's JSON from its values (the locals ``v1``..``v10``):
    strings quoted, numbers as they are (the spelling of _JSON below)."""
    quoted = {"symbol", "timestamp", "contract", "source"}
    parts, text = [], "{"
    for j, name in enumerate(FIELDS):
        q = '"' if name in quoted else ""
        text += f'{"," if j else ""}"{name}":{q}'
        parts += [repr(text), f"v{j + 1}"]
        text = q
    return " .. ".join(parts + [repr(text + "}")])


PUBLISH_LUA = PUBLISH_LUA % {"nv": len(FIELDS), "json": _lua_json(),
                             "vals": ", ".join(f"v{j + 1}" for j in range(len(FIELDS))),
                             "fields": ", ".join(f"'{name}', v{j + 1}" for j, name in enumerate(FIELDS))}


ESCAPE = re.compile(r'[\x00-\x1f"\\\x7f-\U0010ffff]').search


_JSON = ('{"symbol":"%s","timestamp":"%s","open":%s,"high":%s,"low":%s,"close":%s,'
         '"volume":%s,"contract":"%s","trades":%s,"source":"%s"}')
_REPRS_KEPT = 65_536


class Encoder:
    """``(Bar.to_json(), log values)`` of a bar, ~4x cheaper than to_dict + json.dumps,
    and the bar's packed record for the script (``packed``).

    Per-bar cost is what limits the hub on thin markets. Numbers: ``repr``
    (float) and ``str`` (int) are exactly Python's JSON spellings of finite
    numbers; the minute's ISO stamp and stream id are shared by every root's bar
    (the aggregator hands them one ``datetime`` per minute, so an identity test
    usually decides). Any string that would need JSON escaping takes the
    ``Bar.to_json()`` path, and a unit test pins the output to ``Bar.to_json()``.
    """

    def __init__(self) -> None:
        self._start: object = None
        self.iso = ""  # of the last bar encoded
        self.id = ""  # its bar-log id, ``{start_ms}-0``
        # price -> repr: a float's shortest repr costs more than the rest of a bar's encoding, and a
        # root trades a few hundred price levels a day. Only prices > 0 are kept: -0.0 == 0.0.
        self._reprs: dict[float, str] = {}
        self._clean: set[str] = set()  # symbols, contracts and sources that need no escaping

    def _num(self, x: float) -> str:
        text = repr(x)
        if x > 0:
            if len(self._reprs) >= _REPRS_KEPT:
                self._reprs.clear()
            self._reprs[x] = text
        return text

    def _stamp(self, start: object) -> None:
        if start is not self._start and start != self._start:
            self._start, self.iso = start, cme_time.iso_z(start)  # type: ignore[arg-type]
            self.id = f"{cme_time.to_ms(start)}-0"  # type: ignore[arg-type]

    def __call__(self, bar: Bar) -> tuple[str, list[str]]:
        self._stamp(bar.start)
        if ESCAPE(bar.symbol) or ESCAPE(bar.contract) or ESCAPE(bar.source):
            doc = bar.to_dict()
            return json.dumps(doc, separators=(",", ":")), [v if type(v) is str else repr(v) for v in doc.values()]
        vals = [bar.symbol, self.iso, repr(bar.open), repr(bar.high), repr(bar.low), repr(bar.close),
                str(bar.volume), bar.contract, str(bar.trades), bar.source]
        return _JSON % tuple(vals), vals

    def packed(self, bar: Bar, channel: str) -> str | None:
        """The bar's ``B`` record, its values only (the script writes the JSON from them;
        ``channel`` must hold no SEP), or None when one of its strings needs escaping or
        could hold SEP: that bar travels as separate arguments (``explicit``)."""
        start = bar.start
        if start is not self._start:
            self._stamp(start)
        sym, contract, source = bar.symbol, bar.contract, bar.source
        clean = self._clean
        if sym not in clean or contract not in clean or source not in clean:
            if ESCAPE(sym) or ESCAPE(contract) or ESCAPE(source):
                return None
            if len(clean) >= _REPRS_KEPT:
                clean.clear()
            clean.update((sym, contract, source))  # a few dozen roots, contracts and sources a day
        num = self._reprs.get
        o, h, lo, c = bar.open, bar.high, bar.low, bar.close
        # An f-string: ~2.5x cheaper than %-formatting the same fields from a tuple.
        return (f"B\x1f{self.id}\x1f{channel}\x1f{sym}\x1f{self.iso}\x1f{num(o) or self._num(o)}\x1f"
                f"{num(h) or self._num(h)}\x1f{num(lo) or self._num(lo)}\x1f{num(c) or self._num(c)}\x1f"
                f"{bar.volume}\x1f{contract}\x1f{bar.trades}\x1f{source}\x1f")

    def explicit(self, bar: Bar, channel: str) -> list[str]:
        """The script's ``ARGV`` form of a bar: kind, id, channel, json, values."""
        text, vals = self(bar)
        return ["B", self.id, channel, text, *vals]


assert tuple(Bar("X", cme_time.from_ns(0), 1, 1, 1, 1, 0).to_dict()) == FIELDS, "Bar fields changed: update FIELDS"


# Error codes that say "not now" (a demoted primary, memory full, an ACL change, a busy, loading
# or leaderless server) rather than "never" (a key of the wrong type): the entries are kept and
# sent again, not dropped. redis-py strips the code from the exceptions it maps to a class.
_NOT_NOW_CODES = ("OOM", "READONLY", "NOPERM", "BUSY", "MASTERDOWN", "TRYAGAIN", "LOADING")
_NOT_NOW_CLASSES = (ReadOnlyError, OutOfMemoryError, NoPermissionError, MasterDownError, TryAgainError)


def refused_for_now(reply: object) -> bool:
    """The script failed with, or returned for a bar (its per-bar error texts), a "not now" error."""
    if isinstance(reply, redis.ResponseError):
        return isinstance(reply, _NOT_NOW_CLASSES) or str(reply).startswith(_NOT_NOW_CODES)
    return isinstance(reply, list) and first_error(reply) is not None


def first_error(reply: list) -> str | None:  # its text starts with its code
    for r in reply:
        text = r.decode(errors="replace") if isinstance(r, bytes) else r
        if isinstance(text, str) and text.split(" ", 1)[0] in _NOT_NOW_CODES:
            return text
    return None
