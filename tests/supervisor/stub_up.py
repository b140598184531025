"""Runs the real supervisor machinery (run_supervisor) over stub children, as `up` would.

argv: LOG_DIR CHILD... where CHILD is "name[:flag,flag]" with flags crash, ignoreterm, silent.
Redis comes from MULTIALPHA__REDIS__HOST/PORT (the test's redis-server).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import redis

from multialpha import logs
from multialpha.keys import Keys
from multialpha.supervisor.manager import ChildSpec, Timing
from multialpha.supervisor.policy import PolicySettings
from multialpha.supervisor.process import Console
from multialpha.supervisor.up import run_supervisor

HERE = Path(__file__).resolve().parent
FLAGS = {"crash": "--crash-at-start", "ignoreterm": "--ignore-sigterm", "silent": "--silent-after=3"}


def spec(item: str) -> ChildSpec:
    name, _, flags = item.partition(":")
    argv = [sys.executable, str(HERE / "stub_child.py"), "--component", name]
    argv += [FLAGS[f] for f in flags.split(",") if f]
    return ChildSpec(name, tuple(argv), heartbeat=name)


def main() -> None:
    logs.setup("supervisor")
    log_dir = Path(sys.argv[1])
    specs = [spec(x) for x in sys.argv[2:]]
    client = redis.Redis(host=os.environ["MULTIALPHA__REDIS__HOST"], port=int(os.environ["MULTIALPHA__REDIS__PORT"]),
                         socket_timeout=2)
    policy = PolicySettings(backoff_initial_s=0.2, backoff_max_s=0.4, healthy_reset_s=60, flap_restarts=3,
                            flap_window_s=60)
    timing = Timing(heartbeat_timeout_s=float(os.environ.get("STUB_HB_TIMEOUT", "4")), stop_timeout_s=1.0)
    run_supervisor(specs, client, Keys("multialpha"), log_dir, policy, timing, console=Console(sys.stdout), poll_s=0.1)


if __name__ == "__main__":
    main()
