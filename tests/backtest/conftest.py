"""Backtest fixtures: one real sandbox (historical gateway, clock pinned) and a small-warmup config.

The sandbox runs at speed 0 with its clock pinned on a Friday afternoon, so
the default range ("the last complete trading days before now") is fixed.
Warmup is shortened (30 daily / 60 hourly bars) to keep the suite fast; the
warmup *path* (Historian, .npy cache, Resampler) is the worker's own. The
cache directory is shared by the session, like a real user's cache.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from multialpha import config as cfg
from multialpha import endpoints
from multialpha.sandbox.server import Sandbox
from tests.conftest import SHIPPED_CONFIG

SEED = 7
HISTORY_DAYS = 120
CLOCK = datetime(2025, 12, 5, 18, 0, tzinfo=timezone.utc)  # Friday 12:00 CT: Dec 2-4 are complete


@pytest.fixture(scope="session")
def bt_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backtest")
    return {"run": root / "run", "cache": root / "cache", "root": root}


def write_config(path: Path, dirs: dict[str, Path], **changes: Any) -> Path:
    """The shipped config with small warmup, tmp dirs and ``changes`` (section -> dict merged in)."""
    base = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_RUNTIME_DIR": str(dirs["run"]),
                                             "MULTIALPHA_CACHE_DIR": str(dirs["cache"])})
    raw = base.model_dump(by_alias=True, exclude={"source_path"})
    raw["contract_map_path"] = str(base.path(base.contract_map_path))
    raw["models_path"] = str(base.path(base.models_path))
    raw["worker"].update({"warmup_daily_bars": 30, "warmup_hourly_bars": 60})
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(section), dict):
            raw[section].update(value)
        else:
            raw[section] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def sandbox(bt_dirs: dict[str, Path]) -> Iterator[Sandbox]:
    settings = cfg.load(write_config(bt_dirs["root"] / "sandbox.yml", bt_dirs), environ={})
    with Sandbox(settings, seed=SEED, speed=0, days=HISTORY_DAYS) as sb:
        sb.set_clock(CLOCK)
        yield sb


@pytest.fixture
def make_settings(sandbox: Sandbox, bt_dirs: dict[str, Path], tmp_path: Path) -> Callable[..., cfg.Settings]:
    def build(**changes: Any) -> cfg.Settings:
        return cfg.load(write_config(tmp_path / "config.multi_alpha.yml", bt_dirs, **changes), environ={})

    return build


@pytest.fixture
def source(sandbox: Sandbox) -> Any:
    from multialpha.backtest.command import Source
    from multialpha.worker import warmup

    ep = endpoints.from_state(sandbox.state, sandbox.state_file)
    return Source(warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset), ep.dataset,
                  endpoints.now(ep), True)
