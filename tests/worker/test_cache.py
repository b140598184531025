"""BarCache: coverage from file names, keys kept apart, overlapping chunks read once."""

from __future__ import annotations

import numpy as np

from multialpha.worker.cache import BarCache, CacheKey

H = 3_600_000_000_000


def cols(ts: list[int], price: float) -> dict[str, np.ndarray]:
    n = len(ts)
    return {"ts": np.array(ts, dtype=np.int64), "open": np.full(n, price), "high": np.full(n, price),
            "low": np.full(n, price), "close": np.full(n, price), "volume": np.ones(n, dtype=np.int64)}


def test_keys_of_different_stype_or_contract_never_share_chunks(tmp_path):
    cache = BarCache(tmp_path)
    old = CacheKey("GLBX.MDP3", "ohlcv-1h", "continuous", "ES.c.0")
    z5 = CacheKey("GLBX.MDP3", "ohlcv-1h", "raw_symbol", "ESZ5")
    h6 = CacheKey("GLBX.MDP3", "ohlcv-1h", "raw_symbol", "ESH6")
    cache.write(old, 0, 10 * H, cols([0, H, 2 * H], 1.0))
    assert cache.missing(z5, 0, 10 * H) == [(0, 10 * H)] and len(cache.read(z5, 0, 10 * H)["ts"]) == 0
    cache.write(z5, 0, 5 * H, cols([0, H], 2.0))
    cache.write(h6, 5 * H, 10 * H, cols([6 * H], 3.0))
    assert cache.missing(z5, 0, 5 * H) == [] and cache.missing(h6, 0, 10 * H) == [(0, 5 * H)]
    assert list(cache.read(z5, 0, 10 * H)["close"]) == [2.0, 2.0]
    assert list(cache.read(h6, 0, 10 * H)["close"]) == [3.0]
    assert (tmp_path / "GLBX.MDP3" / "ohlcv-1h" / "raw_symbol" / "ESH6").is_dir()


def test_missing_ranges_and_overlapping_chunks(tmp_path):
    cache = BarCache(tmp_path)
    k = CacheKey("GLBX.MDP3", "ohlcv-1m", "raw_symbol", "GCG6")
    cache.write(k, 2 * H, 4 * H, cols([2 * H, 3 * H], 1.0))
    cache.write(k, 6 * H, 7 * H, cols([], 0.0))  # an empty answer is a covered range
    assert cache.missing(k, 0, 8 * H) == [(0, 2 * H), (4 * H, 6 * H), (7 * H, 8 * H)]
    cache.write(k, 3 * H, 5 * H, cols([3 * H, 4 * H], 2.0))  # overlaps: the later chunk wins
    got = cache.read(k, 0, 8 * H)
    assert list(got["ts"]) == [2 * H, 3 * H, 4 * H] and list(got["close"]) == [1.0, 2.0, 2.0]


def test_parquet_chunks_of_older_versions_are_ignored_not_read(tmp_path):
    """The cache was Parquet before; such a chunk neither crashes nor counts: its range is missing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cache = BarCache(tmp_path)
    k = CacheKey("GLBX.MDP3", "ohlcv-1h", "raw_symbol", "ESZ5")
    d = tmp_path.joinpath(*k.parts())
    d.mkdir(parents=True)
    pq.write_table(pa.table(cols([0, H], 9.0)), d / f"0_{2 * H}.parquet")
    assert cache.missing(k, 0, 2 * H) == [(0, 2 * H)] and len(cache.read(k, 0, 2 * H)["ts"]) == 0
    cache.write(k, 0, 2 * H, cols([0, H], 1.0))
    assert cache.missing(k, 0, 2 * H) == [] and list(cache.read(k, 0, 2 * H)["close"]) == [1.0, 1.0]
    assert sorted(p.suffix for p in d.iterdir()) == [".npy", ".parquet"]
