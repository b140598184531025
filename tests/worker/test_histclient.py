"""The lean Historical client against the sandbox gateway, and a worker process warmed up without pandas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date, datetime, timezone

import numpy as np
import pytest

from multialpha import cme_time, endpoints, heartbeat
from multialpha.keys import Keys
from multialpha.sandbox.aggregate import OHLCV_DTYPE
from multialpha.sandbox.server import Sandbox
from multialpha.worker import histclient, warmup
from tests.conftest import REPO
from tests.worker.conftest import recorder, wait_for

UTC = timezone.utc
NOW = datetime(2025, 12, 12, 15, 0, tzinfo=UTC)  # after ES's and 6S's roll dates: several contracts


@pytest.fixture
def sandbox(build_settings):
    settings = build_settings({"rec": recorder(["ES", "6S"], tag="lean")},
                              worker={"warmup_daily_bars": 20, "warmup_hourly_bars": 60})
    sb = Sandbox(settings, speed=0)
    sb.start()
    sb.set_clock(NOW)
    yield settings, sb
    sb.stop()


def test_same_records_and_mappings_as_the_databento_client(sandbox):
    """Parity with the unmodified client (which imports pandas: fine in the test process)."""
    settings, sb = sandbox
    ep = endpoints.from_state(sb.state)
    s, e = warmup.day_start_ns(date(2025, 12, 1)), cme_time.to_ns(NOW)
    symbols = ["ESZ5", "ESH6", "6SZ5", "6SH6"]
    got = endpoints.bars_client(ep).get_range(ep.dataset, "ohlcv-1h", symbols, "raw_symbol", s, e)
    store = endpoints.historical_client(ep).timeseries.get_range(
        dataset=ep.dataset, start=s, end=e, symbols=symbols, schema="ohlcv-1h", stype_in="raw_symbol")
    ref = store.to_ndarray(schema="ohlcv-1h")
    assert len(got.records) > 100
    for col in ("instrument_id", "ts_event", "open", "high", "low", "close", "volume"):
        assert np.array_equal(got.records[col], ref[col]), col
    assert set(got.mappings) == set(store.mappings) == set(symbols)
    owner = histclient.owners(got.mappings, got.records, symbols)
    assert (owner >= 0).all() and len(set(owner.tolist())) == 4


def test_errors_name_the_status_and_never_the_key(sandbox):
    settings, sb = sandbox
    ep = endpoints.from_state(sb.state)
    bad = histclient.HistoricalClient("db-wrongkeywrongkeywrongkey", ep.historical_gateway, ca_path=ep.ca_path)
    with pytest.raises(histclient.HistoricalError) as err:
        bad.get_range(ep.dataset, "ohlcv-1h", ["ESZ5"], "raw_symbol", 0, cme_time.to_ns(NOW))
    assert err.value.status == 401 and "wrongkey" not in str(err.value) and "wrongkey" not in repr(bad)
    good = endpoints.bars_client(ep)
    with pytest.raises(histclient.HistoricalError) as err:
        good.get_range("XNAS.ITCH", "ohlcv-1h", ["ESZ5"], "raw_symbol", 0, cme_time.to_ns(NOW))
    assert err.value.status == 422 and "XNAS.ITCH" in err.value.detail
    with pytest.raises(ValueError):
        good.get_range(ep.dataset, "trades", ["ESZ5"], "raw_symbol", 0, cme_time.to_ns(NOW))


def test_an_instrument_id_shared_by_two_requested_symbols_is_split_by_date():
    """Ids are reused years apart: the record's date picks the symbol, as databento's own InstrumentMap does."""
    from databento import DBNStore
    from databento.common.symbology import InstrumentMap
    from databento_dbn import Metadata, Schema, SType

    from multialpha.sandbox.market import OHLCV_DTYPE
    from multialpha.sandbox.utcmap import Interval as _Interval, Mapping as _Mapping

    d = date.fromisoformat
    mappings = [_Mapping("ESZ5", [_Interval(d("2025-12-01"), d("2025-12-03"), "7")]),
                _Mapping("ESH6", [_Interval(d("2025-12-03"), d("2025-12-05"), "7"),
                                  _Interval(d("2025-12-01"), d("2025-12-05"), "8")])]
    ts = [datetime(2025, 12, 1, 15, tzinfo=UTC), datetime(2025, 12, 2, 15, tzinfo=UTC), datetime(2025, 12, 3, 15, tzinfo=UTC),
          datetime(2025, 12, 3, 16, tzinfo=UTC), datetime(2025, 12, 9, 15, tzinfo=UTC)]
    recs = np.zeros(len(ts), OHLCV_DTYPE)
    recs["length"], recs["rtype"], recs["publisher_id"] = OHLCV_DTYPE.itemsize // 4, 0x22, 1
    recs["instrument_id"] = [7, 8, 7, 9, 7]
    recs["ts_event"] = [cme_time.to_ns(t) for t in ts]
    recs["close"] = [1_000_000_000 * (i + 1) for i in range(len(ts))]
    meta = Metadata(dataset="GLBX.MDP3", start=recs["ts_event"][0], stype_in=SType.RAW_SYMBOL, stype_out=SType.INSTRUMENT_ID,
                    schema=Schema.OHLCV_1H, symbols=["ESZ5", "ESH6"], partial=[], not_found=[], mappings=mappings,
                    end=cme_time.to_ns(datetime(2025, 12, 10, tzinfo=UTC)), limit=0, version=3)
    raw = bytes(meta) + recs.tobytes()
    got = histclient.decode(raw, "ohlcv-1h")
    # id 7: ESZ5 until 12-03, then ESH6; id 8: ESH6; id 9 unknown; 12-09 is outside every interval.
    assert histclient.owners(got.mappings, got.records, ["ESZ5", "ESH6"]).tolist() == [0, 1, 1, -1, -1]
    imap = InstrumentMap()
    imap.insert_metadata(DBNStore.from_bytes(raw).metadata)
    names = imap.resolve_many(recs["instrument_id"].astype(np.uint64),
                              recs["ts_event"].astype("datetime64[ns]").astype("datetime64[D]"))
    assert [n if n in ("ESZ5", "ESH6") else None for n in names] == ["ESZ5", "ESH6", "ESH6", None, None]
    with pytest.raises(histclient.HistoricalError):
        histclient.decode(raw[:-3], "ohlcv-1h")  # a torn record is an error, not garbage bars
    with pytest.raises(histclient.HistoricalError):
        histclient.decode(raw, "ohlcv-1m")  # hourly records where minutes were asked for


def test_a_worker_process_warms_up_cold_and_warm_without_pandas_or_pyarrow(sandbox, redis_client, tmp_path):
    """The real worker in its own process, sandbox Historical, cold cache then warm: neither
    pandas nor pyarrow (nor databento itself) is ever imported."""
    settings, sb = sandbox
    cache = settings.path(settings.worker.cache_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for attempt in ("cold", "warm"):
        report = tmp_path / f"modules-{attempt}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker.run_worker", settings.source_path, "rec", "--sandbox",
             "--modules", str(report)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def live() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
                hb = heartbeat.read(redis_client, Keys(), "worker.rec")
                return bool(hb and hb["state"] == "live" and hb["pid"] == proc.pid)

            wait_for(live, 60, f"worker LIVE ({attempt})")
            hb = heartbeat.read(redis_client, Keys(), "worker.rec")
            assert hb["historical_requests"] == (1 if attempt == "cold" else 0), attempt
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        assert json.loads(report.read_text()) == {"pandas": False, "pyarrow": False, "databento": False}, attempt
        files = list(cache.rglob("*.npy"))
        assert files and not list(cache.rglob("*.parquet"))


def _recs(*rows: tuple[int, str]) -> np.ndarray:
    recs = np.zeros(len(rows), dtype=OHLCV_DTYPE)
    recs["instrument_id"] = [iid for iid, _ in rows]
    recs["ts_event"] = [np.datetime64(day, "ns").astype(np.int64) for _, day in rows]
    return recs


def test_records_are_named_by_the_interval_that_holds_their_utc_date() -> None:
    mappings = {
        "ESZ5": [{"start_date": "2025-12-01", "end_date": "2025-12-03", "symbol": "11"}],
        "ESH6": [{"start_date": "2025-12-03", "end_date": "2025-12-05", "symbol": "11"},  # id reused
                 {"start_date": "2025-12-01", "end_date": "2025-12-05", "symbol": "22"}],
        "ESM6": [{"start_date": "2025-12-01", "end_date": "2025-12-05", "symbol": ""}],  # no instrument: skipped
    }
    recs = _recs((11, "2025-12-02T23:59"), (11, "2025-12-03T00:00"), (22, "2025-12-04T12:00"),
                 (22, "2025-12-05T00:00"), (11, "2025-11-30T12:00"), (33, "2025-12-02T12:00"))
    assert histclient.name_records(mappings, recs) == ["ESZ5", "ESH6", "ESH6", None, None, None]
    assert histclient.name_records({}, recs[:1]) == [None]
