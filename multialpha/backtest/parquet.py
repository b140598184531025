"""A minimal Parquet writer for the backtest's flat tables (orders, trades, equity), without pyarrow.

Why not pyarrow: building a table with it (``pa.table``/``pa.array``) imports pandas, and the two
cost ~110 MB of RSS at the very end of a backtest, on top of everything the run holds — half of
the 300 MB a 20-day backtest may peak at. The tables are small and flat, so the file is the
simplest valid one: one row group, one uncompressed data page per column, PLAIN values,
``OPTIONAL`` columns with RLE definition levels (as pyarrow writes them, so a reader sees nullable
``string`` / ``int64`` / ``double`` columns), metadata in Thrift's compact protocol
(https://github.com/apache/parquet-format, ``parquet.thrift``). Checked with pyarrow
(``tests/backtest/test_parquet.py``) and ``pandas.read_parquet``; any reader of the format should
do, but others were not tried here.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Sequence

# Parquet physical types and the few enum values used here (parquet.thrift).
INT64, DOUBLE, BYTE_ARRAY = 2, 5, 6
OPTIONAL, UTF8, PLAIN, RLE, DATA_PAGE, UNCOMPRESSED = 1, 0, 0, 3, 0, 0
KINDS = {"int": INT64, "float": DOUBLE, "str": BYTE_ARRAY}  # Python annotation -> physical type
# Thrift compact protocol field types.
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


class _Struct:
    """One Thrift struct in compact encoding: fields added in increasing id order, then ``end()``."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.last = 0

    def _head(self, fid: int, ftype: int) -> None:
        delta = fid - self.last
        self.buf += bytes([(delta << 4) | ftype]) if 0 < delta <= 15 else bytes([ftype]) + _zigzag(fid)
        self.last = fid

    def i32(self, fid: int, v: int) -> _Struct:
        self._head(fid, _I32)
        self.buf += _zigzag(v)
        return self

    def i64(self, fid: int, v: int) -> _Struct:
        self._head(fid, _I64)
        self.buf += _zigzag(v)
        return self

    def string(self, fid: int, v: str) -> _Struct:
        self._head(fid, _BINARY)
        raw = v.encode()
        self.buf += _varint(len(raw)) + raw
        return self

    def lst(self, fid: int, etype: int, items: Sequence[bytes]) -> _Struct:
        """``items`` already encoded (zigzag ints, length-prefixed strings or ended structs)."""
        self._head(fid, _LIST)
        n = len(items)
        self.buf += bytes([(n << 4) | etype]) if n < 15 else bytes([0xF0 | etype]) + _varint(n)
        for it in items:
            self.buf += it
        return self

    def struct(self, fid: int, inner: bytes) -> _Struct:
        self._head(fid, _STRUCT)
        self.buf += inner
        return self

    def end(self) -> bytes:
        return bytes(self.buf) + b"\x00"


def _levels(present: list[bool]) -> bytes:
    """Definition levels (bit width 1) as RLE runs, with the 4-byte length prefix of a v1 page."""
    out = bytearray()
    i = 0
    while i < len(present):
        j = i
        while j < len(present) and present[j] == present[i]:
            j += 1
        out += _varint((j - i) << 1) + bytes([1 if present[i] else 0])
        i = j
    return struct.pack("<I", len(out)) + bytes(out)


def _plain(ptype: int, values: list[Any]) -> bytes:
    if ptype == INT64:
        return struct.pack(f"<{len(values)}q", *(int(v) for v in values))  # bools as 0/1
    if ptype == DOUBLE:
        return struct.pack(f"<{len(values)}d", *(float(v) for v in values))
    out = bytearray()
    for v in values:
        raw = str(v).encode("utf-8", "replace")  # a lone surrogate becomes "?", not an error
        out += struct.pack("<I", len(raw)) + raw
    return bytes(out)


def write(path: Path, columns: list[tuple[str, str, list[Any]]]) -> Path:
    """``columns``: (name, Python kind ``int``/``float``/``str``, values; ``None`` = null), equal lengths."""
    rows = len(columns[0][2]) if columns else 0
    body = bytearray(b"PAR1")
    schema = [_Struct().string(4, "schema").i32(5, len(columns)).end()]
    chunks = []
    total = 0
    for name, kind, values in columns:
        if len(values) != rows:
            raise ValueError(f"column {name!r}: {len(values)} values, expected {rows}")
        ptype = KINDS[kind]
        el = _Struct().i32(1, ptype).i32(3, OPTIONAL).string(4, name)
        schema.append((el.i32(6, UTF8) if ptype == BYTE_ARRAY else el).end())
        if not rows:
            continue
        present = [v is not None for v in values]
        data = _levels(present) + _plain(ptype, [v for v in values if v is not None])
        page = _Struct().i32(1, rows).i32(2, PLAIN).i32(3, RLE).i32(4, RLE).end()
        header = _Struct().i32(1, DATA_PAGE).i32(2, len(data)).i32(3, len(data)).struct(5, page).end()
        offset = len(body)
        body += header + data
        size = len(header) + len(data)
        total += size
        meta = (_Struct().i32(1, ptype).lst(2, _I32, [_zigzag(PLAIN), _zigzag(RLE)])
                .lst(3, _BINARY, [_varint(len(name.encode())) + name.encode()]).i32(4, UNCOMPRESSED)
                .i64(5, rows).i64(6, size).i64(7, size).i64(9, offset).end())
        chunks.append(_Struct().i64(2, offset).struct(3, meta).end())
    groups = [_Struct().lst(1, _STRUCT, chunks).i64(2, total).i64(3, rows).end()] if rows else []
    footer = (_Struct().i32(1, 1).lst(2, _STRUCT, schema).i64(3, rows).lst(4, _STRUCT, groups)
              .string(6, "multialpha backtest").end())
    body += footer + struct.pack("<I", len(footer)) + b"PAR1"
    path.write_bytes(bytes(body))
    return path
