"""A stand-in child for real-process supervisor tests: heartbeats like a hub/worker, misbehaves on demand.

Reads Redis from MULTIALPHA__REDIS__HOST/PORT/PASSWORD like a real child. Flags:
  --component NAME     heartbeat component (worker.a ...)
  --crash-at-start     exit 3 before the first heartbeat
  --ignore-sigterm     survive SIGTERM (the supervisor must SIGKILL it)
  --silent-after N     stop heartbeating after N beats but keep running (a hung process)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import redis

from multialpha.heartbeat import Heartbeat
from multialpha.keys import Keys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--component", required=True)
    ap.add_argument("--crash-at-start", action="store_true")
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--silent-after", type=int, default=-1)
    ap.add_argument("--interval", type=float, default=0.2)
    a = ap.parse_args()
    print(f"stub {a.component} pid {os.getpid()} starting", flush=True)
    if a.crash_at_start:
        print("crashing at start", flush=True)
        sys.exit(3)
    stop = {"now": False}
    if a.ignore_sigterm:
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    client = redis.Redis(
        host=os.environ["MULTIALPHA__REDIS__HOST"],
        port=int(os.environ["MULTIALPHA__REDIS__PORT"]),
        password=os.environ.get("MULTIALPHA__REDIS__PASSWORD") or None,
    )
    hb = Heartbeat(client, Keys(os.environ.get("STUB_NAMESPACE", "multialpha")), a.component, ttl_s=5)
    n = 0
    while not stop["now"]:
        if a.silent_after < 0 or n < a.silent_after:
            hb.beat("live", beats=n)
        n += 1
        time.sleep(a.interval)  # a stub's pacing, not a test waiting for time to pass
    hb.clear()
    print("stopped on SIGTERM", flush=True)


if __name__ == "__main__":
    main()
