"""The worker's prepare phase: the strategy resolved before anything connects; config problems exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from multialpha import config as cfg
from multialpha.worker.prepare import Prepared, prepare
from tests.worker.conftest import recorder


def test_prepare_hands_over_the_plan_and_class(build_settings) -> None:
    settings = build_settings({"rec": recorder(["ES", "NQ"])})
    p = prepare(settings, "rec")
    assert isinstance(p, Prepared)
    assert p.plan.traded == ["ES", "NQ"] and p.cls.__name__ == "RecorderStrategy"
    assert p.trade_late is settings.worker.trade_replayed_bars


@pytest.mark.parametrize("name,strategies,key", [
    ("nope", {"rec": recorder(["ES"])}, "strategies"),
    ("rec", {"rec": recorder(["ES"], no_such_param=1)}, "strategies.rec.params.no_such_param"),
])
def test_a_config_problem_raises_naming_the_key(build_settings, name, strategies, key) -> None:
    settings = build_settings(strategies)
    with pytest.raises(cfg.ConfigError) as e:
        prepare(settings, name)
    assert key in str(e.value)


def test_the_worker_command_exits_2_on_a_param_the_class_lacks(build_settings, tmp_path: Path) -> None:
    """Found in prepare, after the CLI's own checks: it leaves through cli_common.config_errors."""
    build_settings({"sma": {"strategy_type": "example_sma", "params": {"no_such_param": 1},
                            "instruments": {"ES": {"size": 1}}}})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-m", "multialpha", "worker", "--config",
                          str(tmp_path / "config.multi_alpha.yml"), "--strategy", "sma"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines()[-1].startswith("config error: ") and \
        "strategies.sma.params.no_such_param" in out.stderr
