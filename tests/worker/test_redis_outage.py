"""SIGTERM while Redis is down: the worker still exits 0 within 5 s (no connect retry outlives it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from multialpha import cme_time, heartbeat
from multialpha import config as cfg
from multialpha.keys import Keys
from multialpha.managed_redis import ManagedRedis
from tests.conftest import REPO
from tests.worker.conftest import config_dict, recorder, register_recorder, wait_for

T0 = datetime(2025, 12, 3, 15, 0, tzinfo=timezone.utc)


def test_sigterm_during_a_redis_outage_exits_in_time(tmp_path: Path) -> None:
    register_recorder()
    server = ManagedRedis().start()  # its own Redis: this test stops it
    log = tmp_path / "worker.log"
    try:
        path = tmp_path / "config.multi_alpha.yml"
        path.write_text(yaml.safe_dump(config_dict(server.port, tmp_path, {"rec": recorder(["ES"])}), sort_keys=False))
        settings = cfg.load(path, environ={})
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker.run_worker", settings.source_path, "rec", "--now", cme_time.iso_z(T0)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )
        try:
            client = server.client(decode_responses=True)

            def live() -> bool:
                assert proc.poll() is None, log.read_text()[-3000:]
                return (heartbeat.read(client, Keys(), "worker.rec") or {}).get("state") == "live"

            wait_for(live, 30, "worker LIVE")
            client.close()
            server.stop()
            wait_for(lambda: "bar subscription lost" in log.read_text(), 10, "the worker noticing Redis is gone")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    finally:
        server.stop()
