"""A lean Historical client for bars: ``timeseries.get_range`` over HTTPS, DBN decoded to numpy.

Why not ``databento.Historical``: ``import databento`` imports pandas and pyarrow (its
``DBNStore`` does, at module level), ~100 MB of RSS that a worker keeps for its whole life
although it only ever needs a few OHLCV columns. This module speaks the same request the
client sends (form fields, HTTP Basic auth with the key as user, ``X-Warning`` header, JSON
``{"detail": ...}`` errors) with the standard library, and decodes the answer with
``databento_dbn`` (the metadata, symbology mappings included) plus ``numpy.frombuffer`` for
the fixed-size OHLCV records — exactly what ``DBNStore.to_ndarray`` does, without pandas.

Only OHLCV schemas: the worker and the backtest ask for nothing else. The key never appears
in an exception or a log line (it only goes into the Authorization header).
"""

from __future__ import annotations

import base64
from bisect import bisect_right
import json
import logging
import ssl
import struct
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

import numpy as np

# The DBN OhlcvMsg layout (56 bytes in every DBN version, what DBNStore.to_ndarray uses) is defined
# once, beside the sandbox's encoder of the same records (numpy only: nothing else of the sandbox).
from multialpha.sandbox.aggregate import OHLCV_DTYPE, RTYPE_OHLCV

log = logging.getLogger(__name__)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
USER_AGENT = "multialpha-histclient"


class HistoricalError(Exception):
    """The gateway refused or failed a request (``status`` 0: it could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Historical {status or 'unreachable'}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class Response:
    """One ``get_range`` answer: ``records`` in OHLCV_DTYPE, ``mappings`` as in the DBN metadata
    (symbol -> [{"start_date", "end_date", "symbol"}]), ``warnings`` from ``X-Warning``."""

    records: np.ndarray
    mappings: dict[str, list[dict[str, Any]]]
    warnings: list[str]


class HistoricalClient:
    """``gateway``: e.g. ``https://hist.databento.com``; ``ca_path``: an extra CA to trust (the sandbox's)."""

    def __init__(self, key: str, gateway: str, ca_path: str | None = None, timeout_s: float = 120.0) -> None:
        self._auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        self.gateway = gateway.rstrip("/")
        if "://" not in self.gateway:
            self.gateway = "https://" + self.gateway
        self.timeout_s = timeout_s
        self._ctx = ssl.create_default_context()
        if ca_path:
            self._ctx.load_verify_locations(ca_path)

    def __repr__(self) -> str:  # never the key
        return f"HistoricalClient({self.gateway!r})"

    def get_range(self, dataset: str, schema: str, symbols: list[str], stype_in: str, start_ns: int,
                  end_ns: int) -> Response:
        if schema not in RTYPE_OHLCV:
            raise ValueError(f"histclient decodes OHLCV schemas only, not {schema!r}")
        form = {"dataset": dataset, "start": str(start_ns), "end": str(end_ns), "symbols": ",".join(symbols),
                "schema": schema, "stype_in": stype_in, "stype_out": "instrument_id", "encoding": "dbn",
                "compression": "zstd"}
        req = urllib.request.Request(
            self.gateway + "/v0/timeseries.get_range", data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Authorization": self._auth, "Accept": "application/json", "User-Agent": USER_AGENT,
                     "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ctx) as resp:
                raw = resp.read()
                warning = resp.headers.get("X-Warning")
        except urllib.error.HTTPError as e:
            raise HistoricalError(e.code, _detail(e.read())) from None
        except (urllib.error.URLError, OSError) as e:
            raise HistoricalError(0, f"{self.gateway}: {getattr(e, 'reason', e)}") from None
        warnings = _warnings(warning)
        for w in warnings:
            log.warning("Historical: %s", w)
        return decode(raw, schema, warnings)


def decode(raw: bytes, schema: str, warnings: list[str] | None = None) -> Response:
    """DBN (optionally zstd-framed) -> OHLCV records + the metadata's mappings."""
    from databento_dbn import Metadata

    if raw[:4] == ZSTD_MAGIC:
        import zstandard  # a dependency of databento's; small, no pandas

        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    if raw[:3] != b"DBN" or len(raw) < 8:
        raise HistoricalError(200, "answer is not DBN")
    (meta_len,) = struct.unpack_from("<I", raw, 4)
    body_at = 8 + meta_len
    meta = Metadata.decode(raw[:body_at])
    body = memoryview(raw)[body_at:]
    if len(body) % OHLCV_DTYPE.itemsize:
        raise HistoricalError(200, f"{len(body)} bytes of records is not a whole number of {schema} records")
    recs = np.frombuffer(body, dtype=OHLCV_DTYPE).copy()  # copy: detach from the response bytes
    want = RTYPE_OHLCV[schema]
    if len(recs) and ((recs["rtype"] != want).any() or (recs["length"] != OHLCV_DTYPE.itemsize // 4).any()):
        raise HistoricalError(200, f"records other than {schema} in the answer")
    return Response(recs, dict(meta.mappings), warnings or [])


def owners(mappings: dict[str, list[dict[str, Any]]], recs: np.ndarray, symbols: list[str]) -> np.ndarray:
    """Index into ``symbols`` of every record's requested symbol (-1: none), from the metadata's mappings.

    A raw symbol names one instrument for the life of a contract, so instrument id -> symbol
    is usually unambiguous whatever the date; if an id maps to two requested symbols (an id
    reused years apart), the record's UTC date decides: the interval [start_date, end_date)
    that holds it (the rule of databento's ``InstrumentMap``)."""
    index = {s: i for i, s in enumerate(symbols)}
    by_id: dict[int, set[str]] = {}
    for sym, intervals in mappings.items():
        for iv in intervals:
            if iv.get("symbol") and sym in index:
                by_id.setdefault(int(iv["symbol"]), set()).add(sym)
    ids = recs["instrument_id"].astype(np.int64)
    owner = np.full(len(recs), -1, dtype=np.int64)
    for iid, syms in by_id.items():
        if len(syms) == 1:
            owner[ids == iid] = index[next(iter(syms))]
            continue
        at = np.flatnonzero(ids == iid)
        days = recs["ts_event"][at].astype("datetime64[ns]").astype("datetime64[D]")
        for sym in syms:
            for iv in mappings[sym]:
                if str(iv.get("symbol")) != str(iid):
                    continue
                d0, d1 = (np.datetime64(_day(iv[k]), "D") for k in ("start_date", "end_date"))
                owner[at[(days >= d0) & (days < d1)]] = index[sym]
    return owner


def name_records(mappings: Mapping[str, list[dict[str, Any]]], recs: np.ndarray) -> list[str | None]:
    """The symbol of each record (``instrument_id``, ``ts_event``), as databento's ``InstrumentMap``
    resolves it from a response with ``stype_out=instrument_id``: for each instrument id, the
    mapping interval with the latest ``start_date`` on or before the record's UTC date names it,
    if the date is before that interval's ``end_date``; None otherwise (and for empty mappings).

    The strict rule, for a parent request (the hub's volumes: every child contract, each named
    only by the mappings); :func:`owners` assigns records to the symbols a request named and
    consults the date only when an id maps to two of them."""
    by_id: dict[int, list[tuple[date, date, str]]] = {}
    for symbol_in, intervals in mappings.items():
        for iv in intervals:
            if iv.get("symbol"):
                by_id.setdefault(int(iv["symbol"]), []).append((_day(iv["start_date"]), _day(iv["end_date"]), symbol_in))
    for ivs in by_id.values():
        ivs.sort(key=lambda iv: iv[0])
    days = recs["ts_event"].astype("datetime64[ns]").astype("datetime64[D]").tolist()
    out: list[str | None] = []
    for iid, day in zip(recs["instrument_id"].tolist(), days):
        ivs = by_id.get(iid)
        pos = bisect_right([iv[0] for iv in ivs], day) - 1 if ivs else -1
        out.append(ivs[pos][2] if ivs and pos >= 0 and day < ivs[pos][1] else None)
    return out


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _detail(body: bytes) -> str:
    try:
        payload = json.loads(body)
        return str(payload.get("detail", payload)) if isinstance(payload, dict) else str(payload)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace")


def _warnings(header: str | None) -> list[str]:
    if not header:
        return []
    try:
        got = json.loads(header)
    except ValueError:
        return [header]
    return [str(w) for w in got] if isinstance(got, list) else [str(got)]
