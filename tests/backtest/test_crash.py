"""A strategy that raises stops the backtest with a clear error (exit 1), never a hang."""

from __future__ import annotations

from click.testing import CliRunner

from multialpha import plugins
from multialpha.cli import main
from tests.backtest import crash_plugin


def test_crashing_strategy_fails_cleanly(make_settings) -> None:
    pm = plugins.get_plugin_manager()
    pm.register(crash_plugin, name="test-crasher")
    try:
        settings = make_settings(strategies={"boom": {"strategy_type": "crasher", "instruments": {"ES": {"size": 1}}}})
        r = CliRunner().invoke(main, ["--config", settings.source_path, "backtest", "--strategy", "boom",
                                      "--resolution", "hour", "--days", "1"])
        assert r.exit_code == 1, r.output
        assert "backtest failed" in r.output and "strategy bug" in r.output
    finally:
        pm.unregister(name="test-crasher")
