"""Fixtures: one real sandbox (both gateways) for the session, and its settings.

speed 0: the clock is pinned, so every test pins it where it needs it and
never waits for time to pass. History is kept small (300 trading days) so the
suite stays fast; ``multialpha sandbox`` defaults to the configured 420.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from multialpha import config as cfg
from multialpha import endpoints
from multialpha.sandbox.server import Sandbox

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config.multi_alpha.yml"
FIXTURES = REPO.parent / "shared" / "fixtures" / "databento"
SEED = 11
HISTORY_DAYS = 300
# A Tuesday afternoon in the first replayed week (15:00 UTC = 09:00 CT).
DEFAULT_CLOCK = datetime(2025, 12, 2, 15, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def sandbox_settings(tmp_path_factory: pytest.TempPathFactory) -> cfg.Settings:
    run = tmp_path_factory.mktemp("sandbox-run")
    return cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_RUNTIME_DIR": str(run)})


@pytest.fixture(scope="session")
def sandbox(sandbox_settings: cfg.Settings) -> Iterator[Sandbox]:
    with Sandbox(sandbox_settings, seed=SEED, speed=0, days=HISTORY_DAYS, fixtures_dir=FIXTURES) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session sandbox with its clock pinned at DEFAULT_CLOCK and faults cleared."""
    sandbox.faults.clear()
    sandbox.set_clock(DEFAULT_CLOCK)
    yield sandbox
    sandbox.faults.clear()


@pytest.fixture
def ep(sb: Sandbox) -> endpoints.Endpoints:
    return endpoints.from_state(sb.state, sb.state_file)
