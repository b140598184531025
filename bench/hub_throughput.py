"""Hub throughput and latency.

1. Throughput, one core (redis-server on the others): the same DBN bytes (sandbox market, several trading
   days of every hub root: outrights, back months, spreads) through
   - baseline: ``DBNDecoder`` + reading four fields of every record;
   - hub:      ``DBNDecoder`` -> resolve -> aggregate -> publish (real Redis,
               Lua XADD+PUBLISH per bar, one packed script call per up to 256
               bars, replies read by the next flush), batch by batch like the
               hub loop (``flush_paced``: with records still waiting, a write at
               most every 20 ms); and the same with the callback->queue hop of
               the live path.
   Prints records/s of each and the hub/baseline ratio (issue 22's goals:
   >= 0.8 at density x30, CME-like; >= 0.3 at the sandbox's own, x1).
2. Latency at the sandbox's real-time speed (speed 1): minute end (sandbox
   clock, mapped to wall time) -> bar received by a Redis subscriber, p50/p99,
   for ``--latency-minutes`` minutes (0 skips it).

    .venv/bin/python bench/hub_throughput.py [--days 3] [--latency-minutes 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from databento_dbn import DBNDecoder, Metadata, Schema, SType, SymbolMappingMsg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multialpha import cme_time  # noqa: E402
from multialpha import config as cfg  # noqa: E402
from multialpha.contracts import ContractMap  # noqa: E402
from multialpha.hub.aggregator import Aggregator  # noqa: E402
from multialpha.hub.publisher import Publisher  # noqa: E402
from multialpha.hub.resolver import Resolver  # noqa: E402
from multialpha.hub.session import Inbox  # noqa: E402
from multialpha.keys import Keys  # noqa: E402
from multialpha.managed_redis import ManagedRedis  # noqa: E402

CHUNK = 1 << 20  # bytes fed to the decoder at a time (a socket read is smaller; this favours neither side)
BATCH = 4096


def build_dbn(settings: cfg.Settings, roots: list[str], first: date, days: int, density: int = 1) -> tuple[bytes, int]:
    """Sandbox trades as DBN. ``density`` > 1 repeats every trade that many times
    (1 ns apart, same minute): the sandbox market is scaled down ~100x from CME
    trade counts, so density shows the hub at real-market trades-per-bar."""
    from multialpha.sandbox.market import SyntheticMarket

    market = SyntheticMarket(settings, 7, from_date=first + timedelta(days=days + 3), days=days + 10)
    out = [bytes(Metadata("GLBX.MDP3", 0, SType.PARENT, SType.INSTRUMENT_ID, Schema.TRADES))]
    n = 0
    day = first
    for _ in range(days):
        open_ns, close_ns = (cme_time.to_ns(t) for t in cme_time.session_bounds(day))
        parts = []
        for root in roots:
            for iid, raw in market.raw_symbols(root, day).items():
                parent = settings.instruments[root].product_id
                out.append(bytes(SymbolMappingMsg(1, iid, open_ns, SType.PARENT, parent, SType.RAW_SYMBOL, raw, 0, 0)))
            parts.append(market.trades(root, open_ns, close_ns))
        t = np.concatenate(parts)
        t = t[np.argsort(t["ts_recv"], kind="stable")]
        if density > 1:
            t = np.repeat(t, density)
            t["ts_recv"] += (np.arange(len(t)) % density).astype(np.uint64)
        out.append(t.tobytes())
        n += len(t)
        day = cme_time.next_trading_day(day)
    return b"".join(out), n


def decode_chunks(data: bytes):
    dec = DBNDecoder()
    for i in range(0, len(data), CHUNK):
        dec.write(data[i : i + CHUNK])
        yield [r for r in dec.decode() if not isinstance(r, Metadata)]


def baseline(data: bytes) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    acc = 0
    for recs in decode_chunks(data):
        for r in recs:
            acc ^= r.instrument_id ^ r.ts_recv ^ r.price ^ r.size if hasattr(r, "price") else 0
            n += 1
    return time.perf_counter() - t0, n


def hub_path(data: bytes, settings: cfg.Settings, roots: list[str], client, with_queue: bool) -> tuple[float, dict]:
    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    resolver = Resolver(cmap, roots, {r: settings.instruments[r].product_id for r in roots})
    keys = Keys("bench")
    pub = Publisher(client, keys, maxlen=settings.hub.bar_log_maxlen, buffer_bars=10**6)

    def other(rec) -> None:
        if type(rec) is SymbolMappingMsg:
            resolver.on_mapping(rec.instrument_id, rec.stype_in_symbol, rec.stype_out_symbol)

    agg = Aggregator(resolver, {r: settings.instruments[r].tick_size for r in roots}, pub.add, 1.0, None, other)
    inbox = Inbox()
    t0 = time.perf_counter()
    # As the hub loop does (hub/main.py): aggregate a batch, then flush_paced with the records still
    # waiting if the batch was full (behind), else at once. The data is all there at once, as in a
    # replay: the hub is behind but for each chunk's last, partial batch.
    chunks = list(range(0, len(data), CHUNK))
    for c, recs in enumerate(decode_chunks(data)):
        more = c + 1 < len(chunks)
        if with_queue:  # what the live callback + hub loop do: one put, one take per record
            put = inbox.put
            for r in recs:
                put(r)
            while len(inbox):
                batch = inbox.drain(BATCH, 0)
                agg.process(batch)
                pub.flush_paced(len(inbox) + more if len(batch) == BATCH else 0)
            continue
        for i in range(0, len(recs), BATCH):
            batch = recs[i : i + BATCH]
            agg.process(batch)
            pub.flush_paced(len(recs) - i - BATCH + more if len(batch) == BATCH else 0)
    pub.flush()  # the last replies, inside the timed part
    elapsed = time.perf_counter() - t0
    return elapsed, {**agg.counters(), **pub.counters()}


def latency(settings: cfg.Settings, client, minutes: float) -> list[float]:
    from multialpha.hub.main import Hub
    from multialpha.sandbox.server import Sandbox

    start = cme_time.parse_iso("2025-12-02T14:59:50Z")  # US session, busy; a minute boundary in 10 s
    keys = Keys(settings.redis.namespace)
    lat: list[float] = []
    with Sandbox(settings, seed=7, speed=1.0, from_date=date(2025, 12, 2), days=3, start_at=start) as sb:
        ps = client.pubsub(ignore_subscribe_messages=True)
        ps.psubscribe(keys.bars_pattern())
        stop = threading.Event()
        hub = Hub(settings, stop_event=stop)
        th = threading.Thread(target=hub.run, daemon=True)
        th.start()
        deadline = time.monotonic() + 10 + minutes * 60
        while time.monotonic() < deadline:
            msg = ps.get_message(timeout=0.2)
            if not msg:
                continue
            wall = time.time_ns()
            bar = json.loads(msg["data"])
            st = sb.state
            end_sim = cme_time.to_ns(cme_time.parse_iso(bar["timestamp"])) + cme_time.MINUTE_NS
            end_wall = st.clock_wall_ns + (end_sim - st.clock_sim_ns) / st.speed
            lat.append((wall - end_wall) / 1e6)
        stop.set()
        th.join(5)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--latency-minutes", type=float, default=2.0)
    ap.add_argument("--density", type=int, nargs="*", default=[1, 30], help="trade repetition factors to measure")
    ap.add_argument("--grace", type=float, default=None, help="hub.grace_s for the latency run (default: config)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions per density (best of)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    with ManagedRedis() as server:
        # The measured Python process on one core, redis-server (a separate service) on the others:
        # sharing the measured core, Redis's script time would count as the hub's.
        cpus = sorted(os.sched_getaffinity(0))
        cpu = cpus[-1]
        os.sched_setaffinity(0, {cpu})
        if len(cpus) > 1 and server.proc is not None:
            os.sched_setaffinity(server.proc.pid, set(cpus[:-1]))
        env = {"MULTIALPHA__REDIS__PORT": str(server.port), "MULTIALPHA_RUNTIME_DIR": str(tmp / "run"),
               "MULTIALPHA_CACHE_DIR": str(tmp / "cache")}
        if args.grace is not None:
            env["MULTIALPHA__HUB__GRACE_S"] = str(args.grace)
        settings = cfg.load(REPO / "config.multi_alpha.yml", environ=env)
        roots = settings.hub_symbols()
        client = server.client()
        for density in args.density:
            data, n_trades = build_dbn(settings, roots, date(2025, 12, 1), args.days, density)
            print(f"data: {args.days} trading days, {len(roots)} roots, density x{density}: {n_trades:,} trade records,"
                  f" {len(data) / 1e6:.1f} MB DBN")
            # Interleaved repetitions, best of each: the machine is shared, load drifts.
            base_runs, hub_runs, queue_runs = [], [], []
            for _ in range(args.reps):
                base_runs.append(baseline(data))
                for runs, with_queue in ((hub_runs, False), (queue_runs, True)):
                    client.flushall()
                    runs.append(hub_path(data, settings, roots, client, with_queue))
            b_s, b_n = min(base_runs, key=lambda x: x[0])
            print(f"  baseline  DBNDecoder + 4 fields         : {b_n / b_s / 1e6:6.3f} M records/s  ({b_s:.2f} s)")
            for runs, label in ((hub_runs, "hub decode->resolve->aggregate->publish"),
                                (queue_runs, "  ... plus callback->queue->hub hop ")):
                h_s, c = min(runs, key=lambda x: x[0])
                print(f"  {label}: {b_n / h_s / 1e6:6.3f} M records/s  ({h_s:.2f} s)  ratio {b_s / h_s:.2f}")
            print(f"  counters: trades {c['trades']:,} ({c['trades'] / max(1, c['bars']):.0f} per bar), bars {c['bars']:,},"
                  f" ignored (spreads/back months) {c['ignored']:,}, published {c['published']:,},"
                  f" duplicates {c['duplicates']:,}")
        if args.latency_minutes > 0:
            client.flushall()
            import logging

            logging.basicConfig(level=logging.ERROR)
            lat = latency(settings, server.client(), args.latency_minutes)
            if lat:
                q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else lat * 99
                print(f"latency minute end -> bar received (speed 1, grace {settings.hub.grace_s:g} s), n={len(lat)}: "
                      f"p50 {statistics.median(lat):.1f} ms, p99 {q[98]:.1f} ms, max {max(lat):.1f} ms")
            else:
                print("latency: no bars received")


if __name__ == "__main__":
    main()
