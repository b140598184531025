"""What a Historical request says: parsing the form of ``timeseries.get_range`` and the API error.

Separate from historical.py (which builds the DBN answer) and historical_http.py
(the HTTPS server): validating Databento's form fields (dataset, schema, stype_in,
stype_out, encoding, symbols, start/end, limit, compression) and answering with
``ApiError`` (a status code and a ``detail``) is its own concern, shared by the
``symbology.resolve`` endpoint in utcmap.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from multialpha import cme_time
from multialpha.sandbox import symbology
from multialpha.sandbox.market import BAR_SCHEMAS

SCHEMAS = ("trades", *BAR_SCHEMAS, "definition")
MAX_SYMBOLS = 2000


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_time(text: str, field: str) -> int:
    """Databento accepts ns integers, ISO dates and ISO datetimes (naive = UTC)."""
    text = text.strip()
    if not text:
        raise ApiError(422, f"{field}: empty")
    if text.lstrip("-").isdigit():
        return int(text)
    m = _ISO.match(text)
    if m:  # the common spellings, without importing pandas (~0.7 s) in the gateway
        d = date(int(m["y"]), int(m["mo"]), int(m["d"]))
        ns = (d - date(1970, 1, 1)).days * 86_400 * cme_time.NS
        ns += (int(m["h"] or 0) * 3600 + int(m["mi"] or 0) * 60 + int(m["s"] or 0)) * cme_time.NS
        ns += int((m["f"] or "").ljust(9, "0")[:9] or 0)
        tz = m["tz"]
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            hh, mm = tz[1:].split(":") if ":" in tz else (tz[1:3], tz[3:] or "0")
            ns -= sign * (int(hh) * 3600 + int(mm) * 60) * cme_time.NS
        return ns
    try:
        import pandas as pd

        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise ApiError(422, f"{field}: cannot parse {text!r} as a timestamp") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


@dataclass
class Request:
    dataset: str
    schema: str
    stype_in: str
    stype_out: str
    symbols: list[str]
    start: int
    end: int | None
    limit: int | None
    compression: str


def parse_request(form: dict[str, str], dataset: str) -> Request:
    if form.get("dataset") != dataset:
        raise ApiError(422, f"dataset {form.get('dataset')!r} is not served by the sandbox (only {dataset})")
    schema = form.get("schema", "trades")
    if schema not in SCHEMAS:
        raise ApiError(422, f"schema {schema!r} is not supported by the sandbox (one of {', '.join(SCHEMAS)})")
    stype_in = form.get("stype_in", "raw_symbol")
    if stype_in not in symbology.STYPES:
        raise ApiError(422, f"stype_in {stype_in!r} is not supported by the sandbox")
    stype_out = form.get("stype_out", "instrument_id")
    if stype_out != "instrument_id":
        raise ApiError(422, f"stype_out {stype_out!r}: the sandbox only maps to instrument_id")
    if form.get("encoding", "dbn") != "dbn":
        raise ApiError(422, "encoding: the sandbox only serves dbn")
    symbols = [s for s in form.get("symbols", "").split(",") if s] or [symbology.ALL_SYMBOLS]
    if len(symbols) > MAX_SYMBOLS:
        raise ApiError(422, f"symbols: at most {MAX_SYMBOLS} per request")
    start = parse_time(form.get("start", ""), "start")
    end = parse_time(form["end"], "end") if form.get("end") else None
    if end is not None and end <= start:
        raise ApiError(422, "end must be after start")
    limit = None
    if form.get("limit"):
        try:
            limit = int(form["limit"])
        except ValueError:
            raise ApiError(422, f"limit: not an integer: {form['limit']!r}") from None
        if limit < 0:
            raise ApiError(422, "limit must be >= 0")
    compression = form.get("compression", "none")
    if compression not in ("none", "zstd"):
        raise ApiError(422, f"compression {compression!r} not supported")
    return Request(form["dataset"], schema, stype_in, stype_out, symbols, start, end, limit, compression)

