"""Run a worker as its own process for kill -9 / SIGTERM tests.

python -m tests.worker.run_worker CONFIG STRATEGY --now ISO [--intents PATH]
python -m tests.worker.run_worker CONFIG STRATEGY --sandbox [--modules PATH]
Registers the recorder test plugin, uses RecordingRouter (issue 7's router
is another component) and a fixed clock so the test controls 'now'.
``--sandbox``: the sandbox's clock and Historical gateway instead (found by the
worker itself, as in production). ``--modules``: when the worker has exited,
write which heavy modules it had imported (JSON), for the lean-worker test.
"""

from __future__ import annotations

import argparse
import json
import sys

from multialpha import cme_time, logs
from multialpha import config as cfg
from tests.worker.conftest import FixedClock, register_recorder
from tests.worker.doubles import RecordingRouter


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("strategy")
    ap.add_argument("--now", default="")
    ap.add_argument("--intents", default="")
    ap.add_argument("--sandbox", action="store_true")
    ap.add_argument("--modules", default="")
    a = ap.parse_args()
    logs.setup(f"worker.{a.strategy}")
    register_recorder()
    from multialpha.worker.runtime import run

    def no_history(*args: object) -> object:
        raise RuntimeError("no Historical in this test")

    settings = cfg.load(a.config, environ={})
    if a.sandbox:
        rc = run(settings, a.strategy, router=RecordingRouter(record_path=a.intents), progress=False)
    else:
        rc = run(settings, a.strategy, router=RecordingRouter(record_path=a.intents),
                 clock=FixedClock(cme_time.parse_iso(a.now)), fetch=no_history, progress=False)
    if a.modules:
        heavy = ("pandas", "pyarrow", "databento")
        with open(a.modules, "w") as f:
            json.dump({m: m in sys.modules for m in heavy}, f)
    return rc


if __name__ == "__main__":
    sys.exit(main())
