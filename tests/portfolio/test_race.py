"""N worker PROCESSES firing entries at the same instant never exceed max_positions.

1,000 randomized trials; each trial gets its own namespace (a fresh portfolio,
no reset round-trip) and a barrier so every process fires at the same moment.
The check is exact: accepted entries == open positions == min(max_positions,
distinct (strategy, symbol) requested) — neither over- nor under-admission.
"""

from __future__ import annotations

import multiprocessing as mp
import random
from datetime import datetime, timedelta, timezone

from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.portfolio.gate import Gate

TRIALS = 1000
WORKERS = 4
STRATEGIES = ["breakout", "ibs_a", "ibs_b", "breakout"]  # two processes share one strategy
NOW = datetime(2025, 12, 10, 15, 30, tzinfo=timezone.utc)


def _plan(settings: Settings, seed: int) -> list[dict]:
    rng = random.Random(seed)
    plan = []
    for t in range(TRIALS):
        fires = []
        for w in range(WORKERS):
            roots = sorted(settings.strategies[STRATEGIES[w]].instruments)
            fires.append([(rng.choice(roots), rng.choice([1, -1])) for _ in range(rng.randint(1, 3))])
        plan.append({"max": rng.randint(1, 4), "fires": fires})
    return plan


def _settings_for_trial(settings: Settings, t: int, max_positions: int) -> Settings:
    return settings.model_copy(update={
        "redis": settings.redis.model_copy(update={"namespace": f"race{t}"}),
        "portfolio": settings.portfolio.model_copy(update={"max_positions": max_positions}),
        # every symbol at price 100 (6A x 100,000 = 10M notional): risk limits are not under test
        "risk": settings.risk.model_copy(update={"max_notional": None}),
    })


def _worker(w: int, settings: Settings, plan: list[dict], barrier, out) -> None:
    import redis

    client = redis.Redis(host=settings.redis.host, port=settings.redis.port, decode_responses=True)
    strategy = STRATEGIES[w]
    accepted = []
    for t, trial in enumerate(plan):
        gate = Gate(_settings_for_trial(settings, t, trial["max"]), client)
        barrier.wait()
        n = 0
        for i, (symbol, direction) in enumerate(trial["fires"][w]):
            bar = NOW + timedelta(seconds=w * 10 + i)
            oid = f"t{t}w{w}i{i}"
            res = gate.submit(now=NOW, order_id=oid, kind="entry", strategy=strategy, symbol=symbol,
                              direction=direction, quantity=1, price=100.0, contract=f"{symbol}Z5",
                              entry_time=bar, journal={"order_id": oid})
            n += res.status == "accepted"
        accepted.append(n)
    out.put((w, accepted))
    client.close()


def test_concurrent_entries_never_exceed_max_positions(settings_for, redis_client):
    settings = settings_for()
    plan = _plan(settings, seed=20251210)
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, settings, plan, barrier, out)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    contended = 0
    for t, trial in enumerate(plan):
        keys = Keys(f"race{t}")
        open_now = redis_client.scard(keys.portfolio("open"))
        accepted = sum(results[w][t] for w in range(WORKERS))
        wanted = {(STRATEGIES[w], sym) for w in range(WORKERS) for sym, _ in trial["fires"][w]}
        assert open_now <= trial["max"], f"trial {t}: {open_now} open > max {trial['max']}"
        assert accepted == open_now == min(trial["max"], len(wanted)), f"trial {t}"
        contended += len(wanted) > trial["max"]
    assert contended > TRIALS // 3  # the plan really fights over the last slot
