"""Live ≡ backtest over a longer sandbox range: runs both paths and prints a comparison.

Drives the whole live pipeline (`multialpha up`: sandbox -> hub -> Redis -> the shipped workers
-> paper journal) over trading days FROM..TO at --speed, then `multialpha backtest --all` (minute
bars) over the same days against the same pinned sandbox, exactly as tests/parity does, and
prints: wall time per phase, bars, live and backtest order lists side by side with every
difference marked, denials, ML veto decisions per strategy, and the live/backtest wall ratio
(the backtest is the baseline measured in the same run). Exit 0 when the order lists are
identical, 1 otherwise.

    .venv/bin/python bench/parity.py --from 2025-12-10 --to 2025-12-12 [--speed 1500] [--keep]

The sandbox's `from_date` is set to FROM (the replay starts at its session open).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.parity.helpers: the same procedure as the test

from multialpha.backtest import results  # noqa: E402
from tests.parity import helpers as h  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="first", required=True)
    ap.add_argument("--to", dest="last", required=True)
    ap.add_argument("--speed", type=float, default=1500.0)
    ap.add_argument("--max-positions", type=int, default=None, help="override portfolio.max_positions")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, cache)")
    ap.add_argument("--dump", action="store_true", help="write both journals and veto logs to the temp dir (JSON)")
    a = ap.parse_args()
    first, last = date.fromisoformat(a.first), date.fromisoformat(a.last)
    tmp = Path(tempfile.mkdtemp(prefix="parity_bench_"))
    portfolio = {"max_positions": a.max_positions} if a.max_positions is not None else None
    cfg = h.write_config(tmp, first, portfolio)
    bt_wall: dict[str, float] = {}

    def backtest(settings):  # type: ignore[no-untyped-def]
        t = time.monotonic()
        run = h.run_backtest(settings, first, last)
        bt_wall["s"] = time.monotonic() - t
        return run

    t0 = time.monotonic()
    try:
        live, run = h.run_live(cfg, h.env_for(tmp), first, last, a.speed, then=backtest)
    except BaseException:
        print(f"failed; logs in {tmp}/run/logs and {tmp}/up.err")
        raise
    total = time.monotonic() - t0
    bt = results.accepted_keys(run)
    live_s = live.wall_s["startup"] + live.wall_s["replay"]
    print(f"\nrange {first} .. {last}, speed {a.speed:g}")
    print(f"live:     startup {live.wall_s['startup']:.1f} s, replay+halts {live.wall_s['replay']:.1f} s")
    print(f"backtest: {bt_wall['s']:.1f} s ({run.steps} timestamps)   live/backtest wall ratio {live_s / bt_wall['s']:.2f}")
    print(f"total wall {total:.1f} s")
    hub = (live.hub or {}).get("counters", {})
    print(f"hub: trades {hub.get('trades')} bars {hub.get('bars')} late {hub.get('late')} dropped {hub.get('dropped')} "
          f"reconnects {hub.get('reconnects')}")
    for n, w in live.workers.items():
        print(f"worker {n}: bars {w.get('bars')} replayed {w.get('replayed')} overlap {w.get('overlap')} "
              f"dropped {w.get('dropped')} errors {w.get('errors')} latency_ms {w.get('latency_ms')} "
              f"turns {w.get('turns')}")
    same = live.orders == bt
    print(f"\naccepted orders: live {len(live.orders)}, backtest {len(bt)} -> {'IDENTICAL' if same else 'DIFFERENT'}")
    for i, (x, y) in enumerate(itertools.zip_longest(live.orders, bt)):
        print(f"{'  ' if x == y else '!!'} {i:3d} {x} | {y}")
    ld = h.denied_keys(live.journal)
    bd = [(o.strategy, o.symbol, o.side, o.kind, o.bar_start, o.reason) for o in results.orders(run) if o.decision == "denied"]
    print(f"denied entries: live {len(ld)}, backtest {len(bd)} -> {'identical' if ld == bd else 'DIFFERENT'}")
    for x, y in itertools.zip_longest(ld, bd):
        if x != y:
            print(f"!! {x} | {y}")
    vl, vb = h.veto_keys_live(live.vetoes), h.veto_keys_backtest(run.decisions)
    print(f"ML veto decisions per strategy: live { {k: len(v) for k, v in vl.items()} }, "
          f"backtest { {k: len(v) for k, v in vb.items()} } -> {'identical' if vl == vb else 'DIFFERENT'}")
    for k in sorted(set(vl) | set(vb)):
        for i, (x, y) in enumerate(itertools.zip_longest(vl.get(k, []), vb.get(k, []))):
            if x != y:
                print(f"!! {k} {i} {x and x[:5]} | {y and y[:5]}")
    if a.dump:
        import json

        def plain(x):  # type: ignore[no-untyped-def]
            return str(x)

        (tmp / "live.json").write_text(json.dumps({"journal": live.journal, "vetoes": live.vetoes}, default=plain, indent=1))
        (tmp / "backtest.json").write_text(json.dumps({"journal": run.journal, "decisions": run.decisions},
                                                      default=plain, indent=1))
        print(f"journals written to {tmp}/live.json and {tmp}/backtest.json")
    if a.keep or a.dump:
        print(f"temp dir kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
