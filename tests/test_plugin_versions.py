"""Which plugin version a worker runs vs the one installed: a real distribution in a temp dir."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from multialpha import plugin_versions, plugins
from tests import tiny_plugin


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    tiny_plugin.install(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    plugins.reset()
    yield site
    plugins.reset()


def test_provider_and_an_upgrade_on_disk_show_as_a_mismatch(site: Path) -> None:
    loaded = plugins.provider_of("tiny_sma")
    assert loaded == {"name": "tinyplug", "dist": "tinyplug", "version": "1.0"}
    assert plugin_versions.row("worker.x", {"plugin": loaded}) == {
        "worker": "worker.x", "plugin": "tinyplug", "running": "1.0", "installed": "1.0", "mismatch": False}
    tiny_plugin.install(site, "1.1")  # `pip install -U tinyplug` while the worker runs 1.0
    importlib.invalidate_caches()  # (a new process - `plugins`, `status` - has no cache at all)
    assert plugins.installed_version("tinyplug") == "1.1"
    assert plugin_versions.row("worker.x", {"plugin": loaded})["mismatch"] is True
    assert plugins.provider_of("tiny_sma")["version"] == "1.0"  # this process still runs what it loaded
    plugins.reset()
    assert plugins.provider_of("tiny_sma")["version"] == "1.1"  # a restarted process runs the new one


def test_workers_without_plugin_facts_are_left_out() -> None:
    beats = {"worker.a": {"state": "live"}, "hub": {"plugin": {"name": "x"}},
             "worker.b": {"plugin": {"name": "gone", "dist": "not-installed-anywhere", "version": "2"}}}
    assert plugin_versions.running_rows(beats) == [
        {"worker": "worker.b", "plugin": "gone", "running": "2", "installed": None, "mismatch": False}]
