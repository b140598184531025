"""Shared by the `multialpha up` fault scenarios (test_worker_faults, test_order_faults,
test_supervisor_faults): one fault-free reference run per session (the results table: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def up_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("up-faults")


@pytest.fixture(scope="session")
def up_cache(up_base: Path) -> Path:
    """Warmup cache shared by every run (a restart's case: the history is already cached)."""
    return up_base / "cache"


@pytest.fixture(scope="session")
def up_reference(up_base: Path, up_cache: Path) -> Any:
    from tests.e2e import up_rig as R

    run = R.new_run(up_base, "reference", up_cache)
    try:
        run.begin()
        out = run.finish("reference")
        full = run.journal()
    finally:
        run.stop()
        run.rx.down()
    d = R.compare(out, out, full)
    assert d["orders"] >= 20 and d["bars"] >= 150, f"reference too thin to compare: {d}"
    assert d["lost"] == d["flagged"] == d["dup_orders"] == d["delivered_twice"] == 0, d
    R.RESULTS.append(("reference (no fault)", "-", d))
    return out


# The results table is printed by tests/conftest.py (pytest_terminal_summary): under xdist only the
# root conftest runs in the controlling process, which collects the rows from the workers.
