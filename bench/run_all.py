"""`make bench`: every benchmark, one table, each figure beside its floor measured in the same run.

Runs (in this order, each a subprocess so one failing benchmark cannot take the others down):

  hub_throughput.py   hub decode->resolve->aggregate->publish vs bare DBNDecoder (trades/s)
  worker_latency.py   bar publish -> Strategy.next p99 vs bare pub/sub p99; worker start -> LIVE
  worker_step.py      CPU per Cerebro step: the worker's live loop vs Backtrader's own
  order_latency.py    bar/intent -> webhook received p99 vs a bare POST p99
  redis_failover.py   Sentinel: kill -9 primary -> first bar published vs the sentinels' switch;
                      order claim p99 with/without WAIT 1 vs a bare EVALSHA / SET + WAIT 1
  sandbox_replay.py   sandbox gateway -> databento.Live vs the client's own decoder
  burst (in here)     19 roots, 50,000 trades/s for 60 s of feed time through the hub path
  up (in here)        `multialpha up` -> all LIVE vs a bare `multialpha --version`; RSS of hub and workers

The raw output of every benchmark is kept in .multialpha/bench_last_run.log; the table goes to stdout.

    .venv/bin/python bench/run_all.py [--quick] [--skip NAME ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PY = sys.executable
LOG = REPO / ".multialpha" / "bench_last_run.log"  # git-ignored

Row = tuple[str, str, str, str]  # measure, value, floor (same run), ratio / verdict


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        ram = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        ram = "?"
    return f"{os.cpu_count()} cores (nproc), {cpu}, {ram} RAM, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def run(name: str, args: list[str], timeout: float) -> str:
    t = time.monotonic()
    try:
        p = subprocess.run([PY, str(REPO / "bench" / name), *args], capture_output=True, text=True, timeout=timeout,
                           cwd=REPO)
        out = p.stdout + (f"\n[exit {p.returncode}]\n{p.stderr[-2000:]}" if p.returncode else "")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\n[timed out after {timeout:.0f} s]"
    with LOG.open("a") as f:
        f.write(f"\n===== {name} {' '.join(args)} ({time.monotonic() - t:.1f} s)\n{out}\n")
    return out


def num(pattern: str, text: str, group: int = 1) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(group)) if m else None


def fmt(v: float | None, unit: str, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f} {unit}"


def ratio(a: float | None, b: float | None, goal: str = "") -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"x{a / b:.2f}" + (f" ({goal})" if goal else "")


# -- the existing benchmarks, parsed ------------------------------------------------------------


def hub_rows(quick: bool) -> list[Row]:
    out = run("hub_throughput.py", ["--days", "1", "--latency-minutes", "0", "--density", "1", "30"], 600)
    rows: list[Row] = []
    for block in re.split(r"(?=^data: )", out, flags=re.M)[1:]:
        dens = num(r"density x(\d+)", block)
        base = num(r"baseline .*?:\s+([\d.]+) M records/s", block)
        hub = num(r"hub decode->resolve->aggregate->publish:\s+([\d.]+) M", block)
        rows.append((f"hub trades/s (density x{dens:.0f})" if dens else "hub trades/s",
                     fmt(hub and hub * 1e6, "rec/s", 0), f"bare DBNDecoder {fmt(base and base * 1e6, 'rec/s', 0)}",
                     ratio(hub, base, "goal >= 0.6")))
    return rows or [("hub trades/s", "FAILED", "see .multialpha/bench_last_run.log", "")]


def worker_rows(quick: bool) -> list[Row]:
    out = run("worker_latency.py", ["--rounds", "100" if quick else "300"], 600)
    bare99 = num(r"bare pub/sub \(\+decode\) latency: p50 [\d.]+ ms\s+p99 ([\d.]+) ms", out)
    w99 = num(r"publish -> Strategy.next, 3 workers: p50 [\d.]+ ms\s+p99 ([\d.]+) ms", out)
    cold = num(r"start -> LIVE, 6 symbols, cold cache: ([\d.]+) s wall", out)
    warm = num(r"start -> LIVE, 6 symbols, warm cache: ([\d.]+) s wall", out)
    warm_in = num(r"warm cache: [\d.]+ s wall from spawn \(([\d.]+) s inside run", out)
    rss = re.search(r"worker RSS \(2 symbols each, warm\): ([\d, ]+) MB", out)
    floor = import_floor()
    rows: list[Row] = [
        ("bar publish -> next() p99 (3 workers)", fmt(w99, "ms"), f"bare pub/sub p99 {fmt(bare99, 'ms')}",
         ratio(w99, bare99, "goal <= 1.5")),
        ("worker start -> LIVE, cold cache (6 sym)", fmt(cold, "s"), f"import floor {fmt(floor, 's')}", ratio(cold, floor)),
        ("worker start -> LIVE, warm cache (6 sym)", fmt(warm, "s"), f"import floor {fmt(floor, 's')}",
         ratio(warm, floor, f"goal <= 3.5 s; {fmt(warm_in, 's')} inside run()")),
    ]
    if rss:
        rows.append(("worker RSS (2 symbols each)", f"{rss.group(1).strip()} MB", "-", "goal <= 200 MB"))
    step = run("worker_step.py", ["--minutes", "5000" if quick else "20000"], 600)
    stock = num(r"Backtrader's loop \(bt.Cerebro._runnext\): ([\d.]+) us", step)
    ours = num(r"worker loop \([^)]*\):\s+([\d.]+) us", step)
    same = "same next() calls" if "same order: yes" in step else "next() calls DIFFER"
    rows.append(("worker step CPU per bar (in process)", fmt(ours, "us", 1), f"Backtrader's loop {fmt(stock, 'us', 1)}",
                 ratio(ours, stock, same)))
    return rows


def import_floor() -> float | None:
    """A bare process importing what a worker imports (the part of cold start no worker code can avoid)."""
    code = "import multialpha.worker.runtime, backtrader, databento, redis, pandas"
    best = None
    for _ in range(2):
        t = time.monotonic()
        if subprocess.run([PY, "-c", code], capture_output=True, cwd=REPO).returncode:
            return None
        d = time.monotonic() - t
        best = d if best is None else min(best, d)
    return best


def order_rows(quick: bool) -> list[Row]:
    out = run("order_latency.py", ["--n", "500" if quick else "1500"], 600)
    base = num(r"baseline: bare POST -> received\s+n=\d+\s+p50=\s*[\d.]+ ms\s+p99=\s*([\d.]+) ms", out)
    live = num(r"live: submit -> received \(all\)\s+n=\d+\s+p50=\s*[\d.]+ ms\s+p99=\s*([\d.]+) ms", out)
    paper = num(r"paper: submit returns\s+n=\d+\s+p50=\s*[\d.]+ ms\s+p99=\s*([\d.]+) ms", out)
    return [
        ("order submit -> webhook received p99", fmt(live, "ms", 3), f"bare POST p99 {fmt(base, 'ms', 3)}",
         ratio(live, base, "goal p99 <= 10 ms")),
        ("paper order submit p99", fmt(paper, "ms", 3), "-", ""),
    ]


def redis_rows(quick: bool) -> list[Row]:
    out = run("redis_failover.py", ["--failovers", "2" if quick else "3", "--claims", "500" if quick else "2000"], 600)
    pause = num(r"kill -> first bar published\s+n=\d+\s+median=([\d.]+) s", out)
    switch = num(r"kill -> \+switch-master\s+n=\d+\s+median=([\d.]+) s", out)
    rows: list[Row] = [("Sentinel failover: kill -9 primary -> first bar published", fmt(pause, "s", 3),
                        f"sentinels' +switch-master {fmt(switch, 's', 3)}", ratio(pause, switch))]
    for label, floor_label in (("claim without WAIT", "floor: bare EVALSHA"),
                               ("claim with WAIT 1", "floor: SET + WAIT 1")):
        both = r":\s+n=\d+\s+p50=\s*([\d.]+) ms\s+p99=\s*([\d.]+) ms"
        v50, v99 = (num(re.escape(label) + both, out, g) for g in (1, 2))
        f50, f99 = (num(re.escape(floor_label) + both, out, g) for g in (1, 2))
        rows.append((f"order {label} p50 / p99", f"{fmt(v50, 'ms', 3)} / {fmt(v99, 'ms', 3)}",
                     f"{floor_label[7:]} {fmt(f50, 'ms', 3)} / {fmt(f99, 'ms', 3)}", f"p50 {ratio(v50, f50)}"))
    return rows


def sandbox_rows(quick: bool) -> list[Row]:
    out = run("sandbox_replay.py", ["--trades", "150000" if quick else "400000"], 300)
    flat = out.replace(",", "")  # thousands separators (and the comma in the label)
    live = num(r"sandbox live -> databento.Live \(callback count\)\s+\d+\s+[\d.]+\s+(\d+)", flat)
    dec = num(r"client decoder \+ bytes\(\) \+ callback from memory\s+\d+\s+[\d.]+\s+(\d+)", flat)
    return [("sandbox gateway -> databento.Live", fmt(live, "trades/s", 0),
             f"client decode+callback from memory {fmt(dec, 'trades/s', 0)}", ratio(live, dec))]


# -- 19 roots at 50,000 trades/s for 60 s --------------------------------------------------------


def burst_rows(rate: int = 50_000, seconds: int = 60, batch_ms: int = 50) -> list[Row]:
    """The hub's decode -> resolve -> aggregate -> publish path (real Redis) on a synthetic stream.

    The stream is built in memory: 19 front-month outrights, ``rate`` trades per second of feed time,
    evenly spaced, for ``seconds``. It is processed as fast as possible in batches of ``batch_ms`` of
    feed time; the wall time of every batch gives (a) the sustained rate and (b) the backlog a
    real-time feed would have built: batch k arrives at ``k * batch_ms`` and starts when both it has
    arrived and batch k-1 is done (a queue simulation over measured service times - nothing sleeps).
    """
    import logging

    import numpy as np
    from databento_dbn import DBNDecoder, Metadata, Schema, SType, SymbolMappingMsg

    from multialpha import cme_time
    from multialpha import config as cfg
    from multialpha.contracts import ContractMap
    from multialpha.hub.aggregator import Aggregator
    from multialpha.hub.publisher import Publisher
    from multialpha.hub.resolver import Resolver
    from multialpha.keys import Keys
    from multialpha.managed_redis import ManagedRedis
    from multialpha.sandbox.market import SyntheticMarket

    logging.disable(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="burst-"))
    lines: list[str] = []
    try:
        with ManagedRedis() as server:
            settings = cfg.load(REPO / "config.multi_alpha.yml", environ={
                "MULTIALPHA__REDIS__PORT": str(server.port), "MULTIALPHA_RUNTIME_DIR": str(tmp / "run")})
            roots = sorted(settings.instruments)[:19]
            cmap = ContractMap.load(settings.path(settings.contract_map_path))
            day = cme_time.trading_day(cme_time.parse_iso("2025-12-02T15:00:00Z"))
            t0 = cme_time.to_ns(cme_time.parse_iso("2025-12-02T15:00:00Z"))
            # Record layout: take the sandbox's own TradeMsg array dtype and one real row as template.
            market = SyntheticMarket(settings, 7, from_date=day, days=3)
            open_ns, close_ns = (cme_time.to_ns(t) for t in cme_time.session_bounds(day))
            sample = market.trades(roots[0], open_ns, close_ns)[:1]
            n = rate * seconds
            t = np.repeat(sample, n)
            i = np.arange(n, dtype=np.uint64)
            t["ts_recv"] = np.uint64(t0) + i * np.uint64(10**9 // rate)
            t["ts_event"] = t["ts_recv"] - np.uint64(5_000)
            t["instrument_id"] = (i % np.uint64(len(roots))).astype(np.uint32) + np.uint32(1000)
            ticks = np.array([round(settings.instruments[r].tick_size * 1e9) for r in roots], dtype=np.int64)
            base = np.array([round(settings.instruments[r].sandbox_price * 1e9) for r in roots], dtype=np.int64)
            k = (i % np.uint64(len(roots))).astype(np.int64)
            walk = (np.sin(i.astype(np.float64) / 5000.0) * 20).astype(np.int64)
            t["price"] = base[k] // ticks[k] * ticks[k] + walk * ticks[k]
            t["size"] = 1 + (i % np.uint64(7)).astype(np.uint32)
            meta = bytes(Metadata("GLBX.MDP3", 0, SType.PARENT, SType.INSTRUMENT_ID, Schema.TRADES))
            maps = b"".join(
                bytes(SymbolMappingMsg(1, 1000 + j, open_ns, SType.PARENT, settings.instruments[r].product_id,
                                       SType.RAW_SYMBOL, cmap.front(r, day).raw_symbol, 0, 0))
                for j, r in enumerate(roots))
            per_batch = rate * batch_ms // 1000
            chunks = [t[s: s + per_batch].tobytes() for s in range(0, n, per_batch)]

            client = server.client()
            resolver = Resolver(cmap, roots, {r: settings.instruments[r].product_id for r in roots})
            pub = Publisher(client, Keys("burst"), maxlen=settings.hub.bar_log_maxlen, buffer_bars=10**6)

            def other(rec) -> None:
                if type(rec) is SymbolMappingMsg:
                    resolver.on_mapping(rec.instrument_id, rec.stype_in_symbol, rec.stype_out_symbol)

            agg = Aggregator(resolver, {r: settings.instruments[r].tick_size for r in roots}, pub.add, 1.0, None, other)
            dec = DBNDecoder()
            dec.write(meta + maps)
            agg.process([r for r in dec.decode() if not isinstance(r, Metadata)])
            service: list[float] = []
            wall0 = time.perf_counter()
            for chunk in chunks:
                s = time.perf_counter()
                dec.write(chunk)
                agg.process(dec.decode())
                pub.flush()
                service.append(time.perf_counter() - s)
            wall = time.perf_counter() - wall0
            agg.advance(t0 + seconds * 10**9 + 2 * 10**9)  # close the last minute
            pub.flush()
            bars = sum(client.xlen(Keys("burst").bar_log(r)) for r in roots)
            c = agg.counters()
        # queue simulation: arrival of batch k at k*batch_ms (feed time = wall time when live)
        done, backlog = 0.0, 0.0
        for kk, d in enumerate(service):
            arrive = (kk + 1) * batch_ms / 1000  # the batch is complete at the end of its interval
            done = max(done, arrive) + d
            backlog = max(backlog, done - arrive)
        sustained = n / wall
        lines.append(f"burst: {n:,} trades over {len(roots)} roots in {wall:.2f} s wall; {c['trades']:,} aggregated, "
                     f"{bars} bars logged; max backlog {backlog * 1000:.1f} ms; worst batch {max(service) * 1000:.1f} ms")
        with LOG.open("a") as f:
            f.write("\n===== burst (in run_all.py)\n" + "\n".join(lines) + "\n")
        keeps_up = backlog < 1.0 and c["trades"] == n
        return [(f"{len(roots)} roots @ {rate:,} trades/s x {seconds} s", f"{sustained:,.0f} trades/s sustained",
                 f"needed {rate:,} trades/s", f"x{sustained / rate:.1f}; max backlog {backlog * 1000:.0f} ms; "
                 + ("KEEPS UP" if keeps_up else "FALLS BEHIND"))]
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(tmp, ignore_errors=True)


# -- `up` -> all LIVE, RSS ------------------------------------------------------------------------


def up_rows(timeout: float = 90.0) -> list[Row]:
    import up_to_live  # bench/ is on sys.path when this script runs

    floor = up_to_live.baseline()
    rss: dict[str, float | None] = {}
    live_s = up_to_live.one_run(timeout, rss=rss)  # cold cache
    with LOG.open("a") as f:
        f.write(f"\n===== up (in run_all.py)\nfloor {floor:.2f} s, all LIVE {live_s}, RSS {rss}\n")
    rows: list[Row] = [("`up` -> all workers LIVE (cold cache)", fmt(live_s, "s"),
                        f"bare `multialpha --version` {fmt(floor, 's')}", ratio(live_s, floor, "goal <= 8 s"))]
    floor_mb = up_to_live.floor_rss()
    floor_txt = f"bare python + worker libs {floor_mb:.0f} MB"
    w = [v for k, v in rss.items() if k.startswith("worker.") and v is not None]
    rows.append(("RSS hub", fmt(rss.get("hub"), "MB", 0), floor_txt, "goal <= 120 MB"))
    rows.append(("RSS sandbox", fmt(rss.get("sandbox"), "MB", 0), floor_txt, "goal <= 150 MB"))
    rows.append((f"RSS workers ({len(w)}, cold cache)", ", ".join(f"{v:.0f}" for v in w) + " MB" if w else "n/a",
                 floor_txt, "goal <= 150 MB each"))
    return rows


STEPS = {"hub": hub_rows, "worker": worker_rows, "orders": order_rows, "redis": redis_rows, "sandbox": sandbox_rows,
         "burst": lambda quick: burst_rows(), "up": lambda quick: up_rows()}


def table(rows: list[Row]) -> str:
    head = ("measure", "value", "floor (same run)", "ratio / verdict")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    sep = "| " + " | ".join("-" * x for x in w) + " |"
    out = ["| " + " | ".join(h.ljust(x) for h, x in zip(head, w)) + " |", sep]
    out += ["| " + " | ".join(c.ljust(x) for c, x in zip(r, w)) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (for a smoke run)")
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(STEPS))
    args = ap.parse_args()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text(f"bench run {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n{machine()}\n")
    t = time.monotonic()
    rows: list[Row] = []
    for name, step in STEPS.items():
        if name in args.skip:
            continue
        print(f"# running {name} ...", file=sys.stderr, flush=True)
        try:
            rows += step(args.quick)
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
            rows.append((name, "FAILED", f"{type(e).__name__}: {e}"[:60], ""))
    print(f"multialpha benchmarks, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"machine: {machine()}")
    print(table(rows))
    print(f"(total {time.monotonic() - t:.0f} s; raw output of each benchmark: .multialpha/bench_last_run.log)")


if __name__ == "__main__":
    main()
