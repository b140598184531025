"""Issue 6: `multialpha plugins` lists the three shipped plugins; a missing one fails `config check`.

"Uninstalling" is simulated by filtering the plugin's entry point out of
``importlib.metadata`` (the shared .venv is never touched); the plugin manager
is rebuilt from the filtered entry points and reset afterwards.
"""

from __future__ import annotations

from importlib import metadata

import pytest
from click.testing import CliRunner

from multialpha import plugins
from multialpha.cli import main
from tests.conftest import SHIPPED_CONFIG


@pytest.fixture
def fresh_plugins():
    plugins.reset()
    yield
    plugins.reset()


def test_plugins_lists_the_three(fresh_plugins) -> None:
    r = CliRunner().invoke(main, ["plugins"], terminal_width=160)
    assert r.exit_code == 0, r.output
    for name, stype in (("ibs", "ibs"), ("breakout", "breakout"), ("example", "example_sma")):
        line = next(ln for ln in r.output.splitlines() if f" {name} " in ln)
        assert stype in line


def test_uninstalled_plugin_fails_config_check(fresh_plugins, monkeypatch) -> None:
    real = metadata.entry_points

    def without_breakout(**kw):
        eps = real(**kw)
        return metadata.EntryPoints(ep for ep in eps if not (ep.group == "multialpha" and ep.name == "breakout"))

    r = CliRunner().invoke(main, ["config", "check", str(SHIPPED_CONFIG)])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(metadata, "entry_points", without_breakout)
    plugins.reset()
    r = CliRunner().invoke(main, ["config", "check", str(SHIPPED_CONFIG)])
    assert r.exit_code == 2
    assert "unknown strategy_type 'breakout'; available: example_sma, ibs" in r.output
