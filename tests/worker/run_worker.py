"""Run a worker as its own process for kill -9 / SIGTERM tests.

python -m tests.worker.run_worker CONFIG STRATEGY --now ISO [--intents PATH]
Registers the recorder test plugin, uses RecordingRouter (issue 7's router
is another component) and a fixed clock so the test controls 'now'.
"""

from __future__ import annotations

import argparse
import sys

from multialpha import cme_time, logs
from multialpha import config as cfg
from tests.worker.conftest import FixedClock, register_recorder
from tests.worker.doubles import RecordingRouter


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("strategy")
    ap.add_argument("--now", required=True)
    ap.add_argument("--intents", default="")
    a = ap.parse_args()
    logs.setup(f"worker.{a.strategy}")
    register_recorder()
    from multialpha.worker.runtime import run

    def no_history(*args: object) -> object:
        raise RuntimeError("no Historical in this test")

    settings = cfg.load(a.config, environ={})
    return run(settings, a.strategy, router=RecordingRouter(record_path=a.intents),
               clock=FixedClock(cme_time.parse_iso(a.now)), fetch=no_history, progress=False)


if __name__ == "__main__":
    sys.exit(main())
