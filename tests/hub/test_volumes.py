"""Volumes for ``front: volume`` roots without databento: naming rule, and a lean hub process.

The volumes themselves are checked against the sandbox's ``ROOT.v.0`` in
tests/sandbox/test_fronts.py; here: the ``InstrumentMap`` naming rule, and that a hub process
that streamed and looked volumes up never imported databento, pandas or pyarrow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import yaml

from multialpha import cme_time, heartbeat
from multialpha.contracts import ContractMap
from multialpha.keys import Keys
from tests.conftest import REPO, SHIPPED_CONFIG
from tests.hub.conftest import HUB_ENV, utc, wait_for


def test_a_hub_process_streams_and_looks_up_volumes_without_databento(
    hub_settings, sandbox_at, redis_client, redis_server, tmp_path: Path
) -> None:
    """The real ``multialpha hub`` (a ``front: volume`` ES) publishes ES bars named by the volume
    rule on a day it differs from the calendar front; at exit it reports its modules."""
    data = yaml.safe_load((REPO / "Data" / "Databento_contract_map.yml").read_text())
    data["roots"]["ES"]["front"] = "volume"
    (tmp_path / "map.yml").write_text(yaml.safe_dump(data))
    env = {**HUB_ENV, "MULTIALPHA__STRATEGIES__IBS_B__ENABLED": "false",
           "MULTIALPHA__CONTRACT_MAP_PATH": str(tmp_path / "map.yml")}
    settings = hub_settings(**env)
    keys, day = Keys(settings.redis.namespace), date(2025, 12, 11)
    sb = sandbox_at(settings, utc(2025, 12, 10, 22, 30))  # in the halt before trading day 12-11
    report = tmp_path / "modules.json"
    dump = (f"import atexit, json, sys, runpy; atexit.register(lambda: json.dump({{m: m in sys.modules for m in "
            f"('databento', 'pandas', 'pyarrow')}}, open({str(report)!r}, 'w'))); "
            f"sys.argv = ['multialpha', 'hub', '--config', {str(SHIPPED_CONFIG)!r}]; "
            "runpy.run_module('multialpha', run_name='__main__')")
    proc_env = {**os.environ, **env, "PYTHONPATH": str(REPO), "MULTIALPHA__REDIS__PORT": str(redis_server.port),
                "MULTIALPHA__REDIS__HOST": redis_server.host, "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"),
                "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache")}
    proc_env.pop("DATABENTO_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-c", dump], env=proc_env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "hub.log", "wb"))
    try:
        wait_for(lambda: (heartbeat.read(redis_client, keys, "hub") or {}).get("streaming"), 30, "hub streaming")
        sb.set_clock(utc(2025, 12, 10, 23, 5))
        first = cme_time.to_ms(utc(2025, 12, 10, 23, 0))
        bars = wait_for(lambda: redis_client.xrange(keys.bar_log("ES"), min=f"{first}-0", max="+"), 30, "ES bars")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (tmp_path / "hub.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    calendar = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml").front("ES", day).raw_symbol
    assert {f["contract"] for _, f in bars} - {calendar}  # the volume rule named them: Historical was asked
    assert json.loads(report.read_text()) == {"databento": False, "pandas": False, "pyarrow": False}
