"""Local cache of historical bars, keyed by dataset/schema/symbol/range: numpy ``.npy`` chunks.

Layout: ``{cache_dir}/{dataset}/{schema}/{stype}/{symbol}/{start_ns}_{end_ns}.npy``, each a
structured array (``CHUNK_DTYPE``: ts, open, high, low, close, volume). numpy, not Parquet:
reading Parquet needs pyarrow (~40 MB of RSS a worker would keep for its life, and pandas
behind some of its paths). Chunks written as ``.parquet`` by older versions are ignored
(their range counts as missing, is fetched once more and written as ``.npy``); they can be
deleted by hand (docs/worker.md).
The key is what was requested: warmup and backtest ask for raw contracts
(``raw_symbol/ESH6``), so chunks written by older versions for the calendar
continuous symbol (``continuous/ES.c.0``, another contract between roll date
and expiry) are never read.
Each file holds every bar of its half-open range (possibly none: a weekend
is a valid, cached answer). Coverage is read from the file names alone, so a
restart computes what is missing without opening a file, fetches only that,
and writes it as a new chunk.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLUMNS = ("ts", "open", "high", "low", "close", "volume")
CHUNK_DTYPE = np.dtype([("ts", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
                        ("volume", "<i8")])
_CHUNK = re.compile(r"^(\d+)_(\d+)\.npy$")


@dataclass(frozen=True)
class CacheKey:
    dataset: str
    schema: str
    stype: str
    symbol: str

    def parts(self) -> tuple[str, ...]:
        return tuple(re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in (self.dataset, self.schema, self.stype, self.symbol))


Columns = dict[str, np.ndarray]


def empty() -> Columns:
    return {c: np.empty(0, dtype=np.int64 if c in ("ts", "volume") else np.float64) for c in COLUMNS}


class BarCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, key: CacheKey) -> Path:
        return self.root.joinpath(*key.parts())

    def chunks(self, key: CacheKey) -> list[tuple[int, int, Path]]:
        d = self._dir(key)
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            m = _CHUNK.match(p.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), p))
        return sorted(out)

    def missing(self, key: CacheKey, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges of [start, end) that no chunk covers."""
        gaps, cursor = [], start
        for s, e, _ in self.chunks(key):
            if e <= cursor or s >= end:
                continue
            if s > cursor:
                gaps.append((cursor, min(s, end)))
            cursor = max(cursor, e)
            if cursor >= end:
                break
        if cursor < end:
            gaps.append((cursor, end))
        return gaps

    def write(self, key: CacheKey, start: int, end: int, cols: Columns) -> None:
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"{start}_{end}.npy"
        tmp = d / f".{final.name}.{os.getpid()}.tmp"
        rec = np.empty(len(cols["ts"]), CHUNK_DTYPE)
        for c in COLUMNS:
            rec[c] = cols[c]
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the tmp name
            np.save(f, rec, allow_pickle=False)
        os.replace(tmp, final)  # readers never see half a chunk

    def read(self, key: CacheKey, start: int, end: int) -> Columns:
        """Every cached bar with start <= ts < end, sorted, one per timestamp."""
        parts = []
        for s, e, p in self.chunks(key):
            if e <= start or s >= end:
                continue
            rec = np.load(p, allow_pickle=False)
            parts.append({c: np.ascontiguousarray(rec[c]) for c in COLUMNS})
        if not parts:
            return empty()
        cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
        ts = cols["ts"]
        keep = (ts >= start) & (ts < end)
        cols = {c: v[keep] for c, v in cols.items()}
        # Overlapping chunks repeat bars: keep one per timestamp (the last written wins).
        order = np.argsort(cols["ts"], kind="stable")
        cols = {c: v[order] for c, v in cols.items()}
        if len(cols["ts"]):
            last = np.r_[cols["ts"][1:] != cols["ts"][:-1], True]
            cols = {c: v[last] for c, v in cols.items()}
        return cols
