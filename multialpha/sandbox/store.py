"""Caches of the synthetic market: in memory (an LRU that computes each key once) and on disk
(every generated day's hourly bars, kept across sandbox runs).

Why on disk: a worker's warmup asks for ~270 trading days of hourly bars of every root it
trades; generating them (trades -> minutes -> hours) costs ~0.3 s of CPU per root, ~6 s for
the shipped config, and was the bottleneck of a cold ``multialpha up``. The market is
deterministic, so a day's hourly bars never change for the same inputs: the store keeps them
per root in ``{store_dir}/{fingerprint}/{root}.npz`` (``days``: ordinal of each stored trading
day, ``offsets``: where its bars start, ``bars``: OHLCV_DTYPE records) and answers from there
on every later run — even when the worker caches are empty. ``fingerprint`` hashes everything
the bars depend on (seed, dates, instrument specs, the contract map, the generator's source),
so a change of any of them starts a new store instead of serving stale bars.

``multialpha sandbox --precompute`` fills the store for the whole history ahead (``make demo``
does it once); without it, the first run fills it with what was asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zipfile
from collections import OrderedDict
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

FLUSH_S = 1.0  # new days reach the disk this long after they were generated (one write per root)


class LRU:
    """A bounded memo; a key is computed once even when several threads ask for it together
    (workers start together and their warmups share roots)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[object, object] = OrderedDict()
        self.lock = threading.Lock()
        self._making: dict[object, threading.Event] = {}

    def peek(self, key: object) -> object | None:
        """The cached value, or None; never computes, never reorders."""
        with self.lock:
            return self.data.get(key)

    def get(self, key: object, make: Callable[[], object]) -> object:
        while True:
            with self.lock:
                if key in self.data:
                    self.data.move_to_end(key)
                    return self.data[key]
                busy = self._making.get(key)
                if busy is None:
                    busy = self._making[key] = threading.Event()
                    break
            busy.wait()  # another thread is computing it: take its result
        try:
            value = make()  # outside the lock: generation is pure and slow
            with self.lock:
                self.data[key] = value
                while len(self.data) > self.size:
                    self.data.popitem(last=False)
            return value
        finally:
            with self.lock:
                self._making.pop(key, None)
            busy.set()


def fingerprint(parts: dict[str, Any], sources: list[Path]) -> str:
    """Hash of the generator's inputs and source files: a new value means a new store."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for p in sources:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


class HourStore:
    """Hourly bars per (root, trading day) on disk; thread-safe; ``close()`` writes what is pending."""

    def __init__(self, directory: Path, dtype: np.dtype) -> None:
        self.dir = Path(directory)
        self.dtype = dtype
        self._roots: dict[str, dict[int, np.ndarray]] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.hits = 0
        self.misses = 0

    def _path(self, root: str) -> Path:
        return self.dir / f"{root}.npz"

    def _load(self, root: str) -> dict[int, np.ndarray]:
        days = self._roots.get(root)
        if days is None:
            days = self._roots[root] = {}
            path = self._path(root)
            if path.exists():
                try:
                    with np.load(path, allow_pickle=False) as z:
                        ords, offs, bars = z["days"], z["offsets"], z["bars"]
                    if bars.dtype != self.dtype:
                        raise ValueError(f"dtype {bars.dtype}")
                    for i, d in enumerate(ords.tolist()):
                        days[d] = bars[offs[i]: offs[i + 1]]
                except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # torn or foreign: regenerate, never crash
                    log.warning("sandbox store %s unreadable (%s): regenerating its days", path, e)
                    days.clear()
        return days

    def get(self, root: str, day: date) -> np.ndarray | None:
        with self._lock:
            hit = self._load(root).get(day.toordinal())
            if hit is None:
                self.misses += 1
            else:
                self.hits += 1
            return hit

    def put(self, root: str, day: date, bars: np.ndarray) -> None:
        with self._lock:
            self._load(root)[day.toordinal()] = bars
            self._dirty.add(root)
            if self._timer is None:
                self._timer = threading.Timer(FLUSH_S, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._timer = None
            todo = {r: dict(self._roots[r]) for r in self._dirty}
            self._dirty.clear()
        for root, days in todo.items():
            ords = sorted(days)
            sizes = np.array([len(days[d]) for d in ords], dtype=np.int64)
            offs = np.concatenate([[0], np.cumsum(sizes)])
            bars = np.concatenate([days[d] for d in ords]) if ords else np.zeros(0, self.dtype)
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                tmp = self.dir / f".{root}.{os.getpid()}.{threading.get_ident()}.tmp"
                with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to the name
                    np.savez(f, days=np.array(ords, dtype=np.int64), offsets=offs, bars=bars)
                os.replace(tmp, self._path(root))  # readers never see half a file
            except OSError as e:  # a full or read-only disk costs speed, not data
                log.warning("sandbox store: cannot write %s (%s)", self._path(root), e)

    def close(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()
