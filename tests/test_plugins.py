"""Plugin discovery through the `multialpha` entry-point group, the CLI listing, strategy_type checks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from multialpha import config as cfg
from multialpha import plugins
from multialpha.cli import main
from tests.conftest import REPO, SHIPPED_CONFIG


def test_example_plugin_is_discovered_through_its_entry_point():
    plugins.reset()
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert "example" in infos, "install it: .venv/bin/pip install -e plugins/multialpha-example"
    ex = infos["example"]
    assert ex.version == "0.1.0" and ex.strategy_types == ("example_sma",)
    assert ex.hooks == ("multialpha_features", "multialpha_ml_veto", "multialpha_strategy_types")
    st = plugins.get_strategy_type("example_sma")
    from multialpha.worker.strategy import MultiAlphaStrategy

    assert issubclass(st.load_class(), MultiAlphaStrategy)


def test_plugins_command_lists_name_version_types_hooks():
    r = subprocess.run([sys.executable, "-m", "multialpha", "plugins"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "example" in line and "0.1.0" in line)
    assert "example_sma" in row and "ml_veto" in row and "features" in row


def test_unknown_strategy_type_fails_config_check_with_the_list(tmp_path):
    settings = cfg.load(SHIPPED_CONFIG, environ={})
    raw = settings.model_dump(by_alias=True, exclude={"source_path"})
    raw["strategies"]["ibs_a"]["strategy_type"] = "no_such_type"
    bad = cfg.validate(raw, tmp_path / "c.yml")
    with pytest.raises(cfg.ConfigError) as e:
        plugins.check_strategy_types(bad)
    assert e.value.key in ("strategies.ibs_a.strategy_type", "strategies.ibs_b.strategy_type", "strategies.breakout.strategy_type")
    assert "available:" in e.value.message and "example_sma" in e.value.message


def test_worker_with_unknown_strategy_type_exits_2_listing_types(tmp_path):
    settings = cfg.load(SHIPPED_CONFIG, environ={})
    raw = settings.model_dump(by_alias=True, exclude={"source_path"})
    raw["strategies"]["ibs_a"]["strategy_type"] = "no_such_type"
    raw["contract_map_path"] = str(REPO / "Data" / "Databento_contract_map.yml")
    import yaml

    path = tmp_path / "config.multi_alpha.yml"
    path.write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(main, ["worker", "--config", str(path), "--strategy", "ibs_a"])
    assert r.exit_code == 2
    assert "unknown strategy_type 'no_such_type'" in r.output and "example_sma" in r.output


def test_a_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch):
    """A real (installed-on-sys.path) distribution whose plugin module fails to import."""
    dist = tmp_path / "multialpha_broken-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: multialpha-broken\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[multialpha]\nbroken = multialpha_broken_plugin\n")
    (tmp_path / "multialpha_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    try:
        infos = {i.name: i for i in plugins.plugin_infos()}
        assert infos["broken"].error == "RuntimeError: boom at import"
        assert infos["example"].strategy_types == ("example_sma",)
    finally:
        monkeypatch.undo()
        plugins.reset()
