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

This module is the service that builds the answers (``HistoricalService``, no
sockets); the form parsing and ``ApiError`` live in historical_request.py, the
HTTPS server and routing in historical_http.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from databento_dbn import InstrumentClass, InstrumentDefMsg, Metadata, Schema, SecurityUpdateAction, SType

from multialpha import cme_time
from multialpha.sandbox import symbology, utcmap
from multialpha.sandbox.historical_request import SCHEMAS, ApiError, Request
from multialpha.sandbox.market import OHLCV_DTYPE, TRADE_DTYPE, SyntheticMarket


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

