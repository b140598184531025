"""Unit files: parsed and checked key by key, and verified by systemd-analyze when it is installed."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys

import pytest

from multialpha.supervisor import systemd
from tests.conftest import SHIPPED_CONFIG


def parse(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # case-sensitive keys, like systemd
    cp.read_string(text)
    return cp


def test_units_for_hub_each_worker_sandbox_and_target(settings_for, tmp_path) -> None:
    s = settings_for()
    units = systemd.render(s, SHIPPED_CONFIG)
    names = set(units)
    assert names == {"multialpha.target", "multialpha-sandbox.service", "multialpha-hub.service",
                     "multialpha-worker-ibs_a.service", "multialpha-worker-ibs_b.service",
                     "multialpha-worker-breakout.service"}
    hub = parse(units["multialpha-hub.service"])
    svc = hub["Service"]
    assert svc["ExecStart"] == f"{sys.executable} -m multialpha --config {SHIPPED_CONFIG.resolve()} hub"
    assert svc["Restart"] == "on-failure" and int(svc["RestartSec"]) > 0
    assert svc["ExecReload"] == f"{sys.executable} -m multialpha --config {SHIPPED_CONFIG.resolve()} reload"
    assert svc["EnvironmentFile"] == f"-{SHIPPED_CONFIG.resolve().parent / '.env'}"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes")):
        assert svc[key] == value
    assert str(tmp_path / "run") in svc["ReadWritePaths"]
    assert hub["Unit"]["StartLimitBurst"] == "5" and hub["Unit"]["StartLimitIntervalSec"] == "300"
    assert "multialpha-sandbox.service" in hub["Unit"]["After"]
    w = parse(units["multialpha-worker-ibs_a.service"])
    assert w["Service"]["ExecStart"].endswith("worker --strategy ibs_a")
    # Ordered after the hub but not bound to it: a hub restart never restarts the workers.
    assert "multialpha-hub.service" in w["Unit"]["After"] and "Requires" not in w["Unit"]
    assert w["Install"]["WantedBy"] == "multialpha.target"
    target = parse(units["multialpha.target"])
    assert set(target["Unit"]["Wants"].split()) == names - {"multialpha.target"}
    assert "api_key" not in "".join(units.values()).lower()  # secrets stay in .env


def test_no_sandbox_unit_with_an_api_key(settings_for) -> None:
    units = systemd.render(settings_for(DATABENTO_API_KEY="db-" + "x" * 29), SHIPPED_CONFIG)
    assert "multialpha-sandbox.service" not in units
    assert "sandbox" not in parse(units["multialpha-hub.service"])["Unit"]["After"]


def test_bad_component_name_refused() -> None:
    with pytest.raises(ValueError):
        systemd.unit_name("worker.a b")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(settings_for, tmp_path) -> None:
    out = tmp_path / "units"
    paths = systemd.write(systemd.render(settings_for(), SHIPPED_CONFIG), out)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # The check has teeth: a broken unit is refused.
    bad = out / "multialpha-bad.service"
    bad.write_text("[Service]\nExecStart=relative/path\nRestart=sometimes\n")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0


def test_cli_writes_units(tmp_path, redis_server) -> None:
    import os

    env = {**os.environ, "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run")}
    r = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "systemd", "--output",
                        str(tmp_path / "u")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "u" / "multialpha.target").exists() and "systemctl enable" in r.stdout


def test_units_for_the_sentinel_and_acl_case(settings_for) -> None:
    from multialpha.settings_redis import SentinelSettings

    s = settings_for(MULTIALPHA__REDIS__ACL="true")
    s = s.model_copy(update={"redis": s.redis.model_copy(update={"sentinel": SentinelSettings(
        hosts=["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"], service="multialpha")})})
    units = systemd.render(s, SHIPPED_CONFIG, include_sandbox=False)
    folder = SHIPPED_CONFIG.resolve().parent
    for name in ("multialpha-hub.service", "multialpha-worker-ibs_a.service"):
        unit = parse(units[name])
        assert "redis-sentinel.service" in unit["Unit"]["After"].split()
    text = units["multialpha-worker-ibs_a.service"]
    # Its own role's password file besides .env; never another role's.
    assert f"EnvironmentFile=-{folder / 'redis-worker-ibs_a.env'}" in text and "redis-hub.env" not in text
    assert f"EnvironmentFile=-{folder / 'redis-hub.env'}" in units["multialpha-hub.service"]
    assert "redis-sentinel.service" in parse(units["multialpha.target"])["Unit"]["After"]
    assert "10.0.0.1" not in "".join(units.values())  # every process asks the sentinels from the config
    plain = systemd.render(settings_for(), SHIPPED_CONFIG)
    assert "redis-sentinel" not in "".join(plain.values()) and "redis-hub.env" not in "".join(plain.values())
