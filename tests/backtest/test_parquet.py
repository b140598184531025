"""The backtest's Parquet copies, written without pyarrow, read back by pyarrow (the documented reader)."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multialpha.backtest import parquet


def test_columns_round_trip_with_types_nulls_and_many_rows(tmp_path: Path) -> None:
    n = 40  # > 15 elements: Thrift's long list header; runs of nulls and values in the definition levels
    cols = [("symbol", "str", ["ES", "6J", None] + ["NQ–é"] * (n - 3)),
            ("quantity", "int", [1, -2, 3] + list(range(n - 3))),
            ("price", "float", [6405.25, math.nan, None] + [0.0065405] * (n - 3))]
    table = pq.read_table(parquet.write(tmp_path / "t.parquet", cols))
    assert table.schema == pa.schema([("symbol", pa.string()), ("quantity", pa.int64()), ("price", pa.float64())])
    got = table.to_pydict()
    for name, _, values in cols:
        assert [str(v) for v in got[name]] == [str(v) for v in values], name


def test_an_empty_table_keeps_its_column_types(tmp_path: Path) -> None:
    table = pq.read_table(parquet.write(tmp_path / "e.parquet", [("time", "str", []), ("equity", "float", [])]))
    assert table.num_rows == 0 and table.schema.types == [pa.string(), pa.float64()]


def test_ragged_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="column 'b': 1 values, expected 2"):
        parquet.write(tmp_path / "r.parquet", [("a", "int", [1, 2]), ("b", "int", [1])])


def test_every_result_field_has_a_kind_and_bools_are_written_as_ints(tmp_path: Path) -> None:
    """The result tables' kinds come from their dataclasses' annotations: each must map to a
    Parquet type (a future ``bool`` or ``X | None`` field must not break the writer)."""
    from multialpha.backtest.results import PARQUET_KINDS, _kind

    assert all(k in parquet.KINDS for table in PARQUET_KINDS.values() for k in table.values())
    assert (_kind("float | None"), _kind("bool"), _kind("str")) == ("float", "int", "str")
    table = pq.read_table(parquet.write(tmp_path / "b.parquet", [("open", "int", [True, False, None])]))
    assert table.to_pydict() == {"open": [1, 0, None]}
