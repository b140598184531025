"""Run the sandbox gateways bound to one address (a namespace's veth), until SIGTERM.

python -m tests.multihost.sandbox_host CONFIG HOST STATE_FILE START_ISO SPEED
(`multialpha sandbox` binds loopback only; a second host needs the gateways on a routable address.)
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from multialpha import cme_time
from multialpha import config as cfg
from multialpha.sandbox.server import Sandbox


def main() -> int:
    config, host, state_file, start, speed = sys.argv[1:6]
    settings = cfg.load(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    with Sandbox(settings, host=host, speed=float(speed), days=20, start_at=cme_time.parse_iso(start),
                 state_file=Path(state_file)):
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
