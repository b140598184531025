"""Peak RSS and wall time of `multialpha backtest --all --days N --no-png` (goal: 20 days <= 300 MB).

The command runs as its own process, as a user runs it: the shipped config, the embedded sandbox
(no key, none running), empty warmup cache and sandbox store in a temporary directory. Its peak
RSS is the kernel's (``wait4`` rusage ``ru_maxrss``, what ``/usr/bin/time -v`` prints). Beside
it, measured in the same run the same way: the floor, a bare python holding the third-party
libraries a backtest needs (numpy, redis, backtrader, databento_dbn). The backtest's process
also reports which of pandas / pyarrow / databento it imported (none, since issue 22).

    .venv/bin/python bench/backtest_memory.py [--days 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOOR_IMPORTS = "import numpy, redis, backtrader, databento_dbn"
# The backtest in this interpreter; afterwards, its exit code and the heavy libraries it imported.
PROBE = """
import json, sys
from multialpha.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted(m for m in ("pandas", "pyarrow", "databento") if m in sys.modules)}))
"""


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(peak RSS MB, wall s, stdout) of one child process."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read() if p.stdout else ""
    _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0  # reaped here, not by Popen
    return ru.ru_maxrss / 1024, time.monotonic() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bt-mem-") as tmp:
        env = {**os.environ, "DATABENTO_API_KEY": "", "MULTIALPHA_RUNTIME_DIR": f"{tmp}/run",
               "MULTIALPHA_CACHE_DIR": f"{tmp}/cache", "MULTIALPHA_SANDBOX_STORE": f"{tmp}/store",
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        floor, _, _ = measure(["-c", FLOOR_IMPORTS], env)
        rss, wall, out = measure(["-c", PROBE, "--config", str(REPO / "config.multi_alpha.yml"), "backtest", "--all",
                                  "--days", str(a.days), "--no-png", "--output", f"{tmp}/out"], env)
    lines = out.strip().splitlines()
    got = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"code": "?", "heavy": "?"}
    print(f"backtest --all --days {a.days} --no-png (embedded sandbox, empty caches): exit {got['code']}, "
          f"imported {','.join(got['heavy']) or 'none'} of pandas/pyarrow/databento")
    print(f"peak RSS {rss:.0f} MB (floor: bare python + {FLOOR_IMPORTS[7:]}: {floor:.0f} MB); wall {wall:.1f} s; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
