"""The sandbox Historical gateway: ``POST /v0/timeseries.get_range`` over HTTPS.

Answers the unmodified ``databento.Historical`` client (form fields dataset,
start, end, symbols, schema, stype_in, stype_out, encoding, compression,
limit; HTTP Basic auth with the key as user). Errors are JSON
``{"detail": ...}`` with Databento's status codes: 401 bad/missing key,
422 bad parameters, 404 unknown path, 500 on a sandbox bug.

Data never goes past the sandbox clock: ``end`` after "now" is clipped (with
an ``X-Warning`` the client turns into a ``BentoWarning``), bars are only
returned once complete. Fixture mode: DBN files in ``fixtures_dir`` are
served byte-for-byte when a request matches their dataset, schema, symbols
and time range (used to prove genuine Databento files pass through).

Also the cross-process control endpoint for tests (same auth):
``POST /v0/sandbox.fault`` (form ``action=rst|close|stall|unstall|refuse|
accept|error|hist_error|clear`` + ``seconds``/``message``/``status``),
``POST /v0/sandbox.clock`` (form ``at=<ISO instant>``), ``GET /v0/sandbox.state``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
from databento_dbn import InstrumentClass, InstrumentDefMsg, Metadata, Schema, SecurityUpdateAction, SType

from multialpha import cme_time
from multialpha.sandbox import symbology, utcmap
from multialpha.sandbox.faults import Faults
from multialpha.sandbox.market import BAR_SCHEMAS, OHLCV_DTYPE, TRADE_DTYPE, SyntheticMarket
from multialpha.sandbox.state import SandboxState

log = logging.getLogger(__name__)

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


class HistoricalService:
    """Builds DBN responses; separate from HTTP so it can be unit-tested."""

    def __init__(self, market: SyntheticMarket, dataset: str, fixtures_dir: Path | None = None) -> None:
        self.market = market
        self.dataset = dataset
        self.fixtures = _index_fixtures(fixtures_dir) if fixtures_dir else []

    def get_range(self, req: Request, now_ns: int) -> tuple[bytes, list[str]]:
        """(DBN bytes, warnings)."""
        fixture = self._fixture(req)
        if fixture is not None:
            return fixture, []
        warnings: list[str] = []
        if req.start >= now_ns:
            raise ApiError(
                422,
                f"start {cme_time.iso_z(req.start)} is after the available end of {self.dataset} "
                f"({cme_time.iso_z(now_ns)}, the sandbox clock)",
            )
        end = req.end if req.end is not None else now_ns
        if end > now_ns:
            warnings.append(
                f"Warning: end {cme_time.iso_z(end)} is after the available end {cme_time.iso_z(now_ns)} "
                "(sandbox clock); the data was truncated there."
            )
            end = now_ns
        try:
            resolved, not_found = symbology.parse(self.market, req.symbols, req.stype_in)
        except symbology.SymbolError as e:
            raise ApiError(422, str(e)) from None
        body, mappings = self._records(req, resolved, end, now_ns)
        meta = Metadata(
            dataset=self.dataset,
            start=req.start,
            stype_in=SType(req.stype_in),
            stype_out=SType.INSTRUMENT_ID,
            schema=Schema(req.schema),
            symbols=req.symbols,
            partial=[],
            not_found=not_found,
            mappings=mappings,
            end=end,
            limit=req.limit or 0,
            version=3,
        )
        return bytes(meta) + body, warnings

    def dataset_range(self, dataset: str, now_ns: int) -> dict[str, Any]:
        """What `metadata.get_dataset_range` answers: history start .. the sandbox clock."""
        if dataset != self.dataset:
            raise ApiError(422, f"dataset {dataset!r} is not served by the sandbox (only {self.dataset})")
        start = cme_time.iso_z(cme_time.session_bounds(self.market.first_day)[0])
        end = cme_time.iso_z(now_ns)
        return {"start": start, "end": end, "schema": {s: {"start": start, "end": end} for s in SCHEMAS}}

    def resolve(self, form: dict[str, str]) -> dict[str, Any]:
        """`symbology.resolve`: input symbol -> instrument ids per UTC-date interval [d0, d1) (utcmap.py)."""
        return utcmap.resolve(self.market, self.dataset, form)

    # -- records ---------------------------------------------------------------------------
    def _records(
        self, req: Request, resolved: list[symbology.Resolved], end: int, now_ns: int
    ) -> tuple[bytes, list[utcmap.Mapping]]:
        m = self.market
        days = m.trading_days(req.start - (86_400 * cme_time.NS if req.schema == "ohlcv-1d" else 0),
                              end + (86_400 * cme_time.NS if req.schema in ("ohlcv-1d", "ohlcv-eod") else 0))
        # Instruments per (trading day, UTC date) and the UTC-date symbology of the metadata.
        pick = utcmap.Picker(m, resolved, req.stype_in)
        mappings = pick.mappings(days, utcmap.utc_date(req.start), utcmap.utc_date(end - 1) + timedelta(days=1))
        if req.schema == "definition":
            return self._definitions(req, pick, days, end), mappings
        parts: list[np.ndarray] = []
        for root in pick.roots:
            for lo, hi, u in pick.pieces(root, req.start, end):
                select = lambda d, root=root, u=u: pick.ids(root, d, u)  # noqa: E731
                if req.schema == "trades":
                    parts.append(m.trades(root, lo, hi, select=select))
                else:
                    parts.append(m.bars(root, req.schema, lo, hi, select=select, now_ns=now_ns))
        dtype = TRADE_DTYPE if req.schema == "trades" else OHLCV_DTYPE
        recs = np.concatenate(parts) if parts else np.zeros(0, dtype)
        if len(parts) > 1:
            key = "ts_recv" if req.schema == "trades" else "ts_event"
            recs = recs[np.lexsort((recs["instrument_id"], recs[key]))]
        if req.limit:
            recs = recs[: req.limit]
        return recs.tobytes(), mappings

    def _definitions(self, req: Request, pick: utcmap.Picker, days: list[date], end: int) -> bytes:
        out: list[tuple[int, int, bytes]] = []
        for root in pick.roots:
            spec = self.market.settings.instruments[root]
            tick_ns = int(round(spec.tick_size * 1e9))
            for day in days:
                ts = cme_time.to_ns(cme_time.session_bounds(day)[0])
                if not (req.start <= ts < end):
                    continue
                ids = pick.ids(root, day, utcmap.utc_date(ts))  # stamped at the open: the evening's UTC date
                for inst in self.market.instruments(root, day):
                    if inst.instrument_id not in ids:
                        continue
                    expiry = cme_time.to_ns(datetime.combine(inst.expiry, datetime.min.time(), cme_time.UTC)) + 14 * 3600 * cme_time.NS
                    rec = InstrumentDefMsg(
                        publisher_id=1,
                        instrument_id=inst.instrument_id,
                        ts_event=ts,
                        ts_recv=ts,
                        min_price_increment=tick_ns,
                        display_factor=1_000_000_000,
                        raw_symbol=inst.raw_symbol,
                        asset=root,
                        security_type="FUT",
                        instrument_class=InstrumentClass.FUTURE_SPREAD if inst.is_spread else InstrumentClass.FUTURE,
                        security_update_action=SecurityUpdateAction.ADD,
                        expiration=expiry,
                        contract_multiplier=int(spec.multiplier),
                        maturity_year=inst.contract.year,
                        maturity_month=inst.contract.month,
                        currency="USD",
                        exchange="XCME",
                        group=root,
                        leg_count=2 if inst.is_spread else 0,
                    )
                    out.append((ts, inst.instrument_id, bytes(rec)))
        out.sort(key=lambda x: (x[0], x[1]))
        if req.limit:
            out = out[: req.limit]
        return b"".join(r for _, _, r in out)

    # -- fixtures ------------------------------------------------------------------------------
    def _fixture(self, req: Request) -> bytes | None:
        for fx in self.fixtures:
            if (
                fx.schema == req.schema
                and fx.stype_in == req.stype_in
                and set(req.symbols) <= set(fx.symbols)
                and req.start < fx.end
                and (req.end is None or req.end > fx.start)
            ):
                return fx.path.read_bytes()
        return None


@dataclass(frozen=True)
class _Fixture:
    path: Path
    schema: str
    stype_in: str
    symbols: tuple[str, ...]
    start: int
    end: int


def _index_fixtures(directory: Path) -> list[_Fixture]:
    from databento_dbn import DBNDecoder

    out = []
    for path in sorted(Path(directory).glob("*.dbn*")):
        raw = path.read_bytes()
        if raw[:4] == b"\x28\xb5\x2f\xfd":
            import zstandard

            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
        dec = DBNDecoder()
        dec.write(raw[:65536])
        meta = dec.decode()[0]
        out.append(_Fixture(path, str(meta.schema), str(meta.stype_in), tuple(meta.symbols), meta.start, meta.end or meta.start))
    return out


# -- HTTP ----------------------------------------------------------------------------------------


class HistoricalServer:
    def __init__(
        self,
        service: HistoricalService,
        state: Callable[[], SandboxState],
        keys: Callable[[], set[str]],
        faults: Faults,
        cert_path: Path,
        key_path: Path,
        control: Callable[[str, dict[str, str]], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        handler = type("Handler", (_Handler,), {"gw": self})
        self.service = service
        self.state = state
        self.keys = keys
        self.faults = faults
        self.control = control
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_path), str(key_path))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self.requests = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sandbox-historical", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    gw: HistoricalServer
    protocol_version = "HTTP/1.1"
    server_version = "multialpha-sandbox-historical"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; our logger instead
        log.debug("historical %s", format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.gw.requests += 1
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self._authenticate()
            path = urlsplit(self.path).path
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
            form.update({k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()})
            if path == "/v0/sandbox.state" and method == "GET":
                self._json(200, {**self.gw.state().to_dict(), "faults": self.gw.faults.snapshot()})
            elif path in ("/v0/sandbox.fault", "/v0/sandbox.clock") and method == "POST":
                self._json(200, self.gw.control(path.rsplit(".", 1)[1], form))
            elif path == "/v0/metadata.get_dataset_range" and method == "GET":
                self._json(200, self.gw.service.dataset_range(form.get("dataset", ""), self.gw.state().now_ns()))
            elif path == "/v0/symbology.resolve" and method == "POST":
                self._json(200, self.gw.service.resolve(form))
            elif path == "/v0/timeseries.get_range" and method == "POST":
                if self.gw.faults.hist_status:
                    raise ApiError(self.gw.faults.hist_status, "sandbox fault: historical gateway unavailable")
                self._get_range(form)
            else:
                raise ApiError(404, f"{method} {path}: not found (the sandbox serves POST /v0/timeseries.get_range)")
        except ApiError as e:
            self._json(e.status, {"detail": e.detail})
        except ValueError as e:
            self._json(422, {"detail": str(e)})
        except Exception as e:  # a sandbox bug: answer like a real server would
            log.exception("historical request failed")
            self._json(500, {"detail": f"internal error: {type(e).__name__}"})

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            raise ApiError(401, "Authentication failed: missing HTTP Basic credentials (API key as username).")
        try:
            user = base64.b64decode(header[6:]).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, "Authentication failed: malformed credentials.") from None
        if user not in self.gw.keys():
            raise ApiError(401, "Authentication failed.")

    def _get_range(self, form: dict[str, str]) -> None:
        req = parse_request(form, self.gw.service.dataset)
        data, warnings = self.gw.service.get_range(req, self.gw.state().now_ns())
        if req.compression == "zstd" and data[:4] != b"\x28\xb5\x2f\xfd":
            import zstandard

            data = zstandard.ZstdCompressor(level=3).compress(data)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        if warnings:
            self.send_header("X-Warning", json.dumps(warnings))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
