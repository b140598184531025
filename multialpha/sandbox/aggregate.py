"""DBN record layouts and Databento's bar aggregation on them: trades -> 1-minute bars -> coarser bars.

Split from market.py (the generator): the layouts and rules every schema shares.
"""

from __future__ import annotations

import numpy as np

from multialpha import cme_time

PUBLISHER_ID = 1  # GLBX.MDP3.GLBX

# DBN v3 TradeMsg (mbp-0) layout: 48 bytes; .tobytes() of an array is DBN.
TRADE_DTYPE = np.dtype(
    [
        ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
        ("ts_event", "<u8"), ("price", "<i8"), ("size", "<u4"), ("action", "S1"), ("side", "S1"),
        ("flags", "u1"), ("depth", "u1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4"),
    ]
)  # fmt: skip
# DBN OhlcvMsg layout: 56 bytes.
OHLCV_DTYPE = np.dtype(
    [
        ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
        ("ts_event", "<u8"), ("open", "<i8"), ("high", "<i8"), ("low", "<i8"), ("close", "<i8"),
        ("volume", "<u8"),
    ]
)  # fmt: skip
assert TRADE_DTYPE.itemsize == 48 and OHLCV_DTYPE.itemsize == 56

RTYPE_OHLCV = {"ohlcv-1s": 0x20, "ohlcv-1m": 0x21, "ohlcv-1h": 0x22, "ohlcv-1d": 0x23, "ohlcv-eod": 0x24}


def aggregate_minutes(trades: np.ndarray) -> np.ndarray:
    """1-minute OHLCV exactly as Databento: bucket on ts_recv, start-stamped, no empty bars."""
    if len(trades) == 0:
        return np.zeros(0, OHLCV_DTYPE)
    minute = trades["ts_recv"] - trades["ts_recv"] % np.uint64(cme_time.MINUTE_NS)
    order = np.lexsort((np.arange(len(trades)), trades["instrument_id"], minute))  # time order kept
    iid, minute, price, size = trades["instrument_id"][order], minute[order], trades["price"][order], trades["size"][order]
    return _reduce(iid, minute, price, price, price, price, size.astype(np.uint64), 0x21)


def rollup(bars: np.ndarray, span_ns: int, rtype: int) -> np.ndarray:
    """Roll finer bars (OHLCV_DTYPE, any order) up to ``span_ns`` buckets of ts_event."""
    if len(bars) == 0:
        return np.zeros(0, OHLCV_DTYPE)
    bucket = bars["ts_event"] - bars["ts_event"] % np.uint64(span_ns)
    order = np.lexsort((bars["ts_event"], bars["instrument_id"], bucket))
    b = bars[order]
    return _reduce(b["instrument_id"], bucket[order], b["open"], b["high"], b["low"], b["close"], b["volume"], rtype)


def _reduce(iid, bucket, o, h, lo, c, v, rtype: int) -> np.ndarray:
    """Inputs sorted by (bucket, iid, time): one bar per (bucket, iid) run."""
    change = np.ones(len(iid), dtype=bool)
    change[1:] = (iid[1:] != iid[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:], len(iid)] - 1
    out = np.zeros(len(starts), OHLCV_DTYPE)
    out["length"] = OHLCV_DTYPE.itemsize // 4
    out["rtype"] = rtype
    out["publisher_id"] = PUBLISHER_ID
    out["instrument_id"] = iid[starts]
    out["ts_event"] = bucket[starts]
    out["open"] = o[starts]
    out["high"] = np.maximum.reduceat(h, starts)
    out["low"] = np.minimum.reduceat(lo, starts)
    out["close"] = c[ends]
    out["volume"] = np.add.reduceat(v, starts)
    return out
