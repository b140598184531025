"""DBN records with extreme values through the hub's real record path.

Records are built with ``databento_dbn`` (TradeMsg, SymbolMappingMsg, SystemMsg, ErrorMsg), written as
DBN bytes, decoded by ``DBNDecoder`` (what ``databento.Live`` uses) and fed to a real :class:`Hub`'s
aggregator (decode -> resolve -> aggregate -> publisher buffer; no Redis traffic happens because the
publisher is never flushed). Extremes: prices 0 / negative / UNDEF_PRICE / int64 limits, ts 0 / max,
sizes 0 / max, unknown instrument ids, spread and garbage symbols, out-of-order times.

Allowed outcome: no exception; every bar the hub emits is a valid bar message (what every worker
accepts) and each root's bars are strictly increasing in time.
"""

from __future__ import annotations

import logging
import random

import pytest
import redis
from databento_dbn import (
    UNDEF_PRICE, Action, DBNDecoder, ErrorMsg, Metadata, Schema, Side, SType, SymbolMappingMsg, SystemCode, SystemMsg,
    TradeMsg,
)

from multialpha import cme_time
from multialpha import config as cfg
from multialpha.bar import Bar
from multialpha.hub.main import Hub
from tests.conftest import SHIPPED_CONFIG
from tests.fuzz.helpers import fuzz, random_text, seeded

I64_MIN, I64_MAX, U64_MAX, U32_MAX = -(2**63), 2**63 - 1, 2**64 - 1, 2**32 - 1
T0 = cme_time.to_ns(cme_time.parse_iso("2025-12-01T15:00:00Z"))
MIN = 60 * 10**9
RAWS = ["ESZ5", "ESH6", "ESZ5-ESH6", "CLF6", "NQZ5", "6JZ5", "ZBH6", "GCG6", "ES", "", "X" * 20, "ESZ9", "é"]


@pytest.fixture(scope="module")
def hub():
    settings = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_RUNTIME_DIR": "/tmp/ma-fuzz-unused"})
    # A client object only: nothing here talks to Redis (the publisher is never flushed, and roll
    # announcements - the only other Redis write on this path - are recorded instead of published).
    hub = Hub(settings, client=redis.Redis(host="127.0.0.1", port=1))
    hub.announced = []
    hub.control.announce = hub.announced.append
    quiet = [logging.getLogger(n) for n in ("multialpha.hub.aggregator", "multialpha.hub.main", "multialpha.hub")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)  # thousands of late/rejected-trade warnings would dominate the run time
    yield hub
    for lg, lv in zip(quiet, levels):
        lg.setLevel(lv)


def price(rng: random.Random) -> int:
    if rng.random() < 0.5:  # plausible prices, so bars do form
        return rng.randint(5_000 * 10**9, 7_000 * 10**9)
    return rng.choice((0, -1, 1, I64_MIN, I64_MAX, UNDEF_PRICE, UNDEF_PRICE - 1, 10**18, 10**18 - 1, 10**18 + 1,
                       rng.randint(1, 10**13), rng.randint(I64_MIN, I64_MAX), 10**8, 124_999_999, 125_000_000))


def ts(rng: random.Random, clock: int) -> int:
    return rng.choice((0, 1, U64_MAX, U64_MAX - 1, I64_MAX, 2**62, clock, clock + rng.randint(0, 5 * MIN),
                       clock - rng.randint(0, 5 * MIN), clock + rng.randint(0, 3 * 86_400 * 10**9), rng.randint(0, U64_MAX)))


def records(rng: random.Random) -> list:
    iids = [1, 1, 4] + [rng.randint(0, 8) for _ in range(3)] + [0, U32_MAX]
    clock = T0 + rng.randint(0, 3_600) * 10**9  # one trading day: a day change costs the resolver ~2 ms
    out: list = []
    fronts = {1: ("ES.FUT", "ESZ5"), 4: ("CL.FUT", "CLF6")}  # usually the front months, so trades route
    for iid in range(1, 9):
        parent, raw = fronts[iid] if iid in fronts and rng.random() < 0.8 else (
            rng.choice(("ES.FUT", "CL.FUT", "NQ.FUT", "X.FUT")), rng.choice(RAWS))
        out.append(SymbolMappingMsg(1, iid, 0, SType.PARENT, parent, SType.RAW_SYMBOL, raw, 0, 0))
    for _ in range(rng.randint(1, 20)):
        roll = rng.random()
        if roll < 0.8:
            # Extreme/out-of-order ts_recv in 6% of trades: each new trading day costs the resolver ~2 ms.
            t = ts(rng, clock) if rng.random() < 0.06 else clock + rng.randint(0, 20 * 10**9)
            clock = max(clock, t) if t < 2**62 else clock
            out.append(TradeMsg(1, rng.choice(iids), ts(rng, clock), price(rng),
                                rng.choice((0, 1, 1, 5, U32_MAX, rng.randint(0, U32_MAX))), Action.TRADE, Side.NONE, 0,
                                t))
        elif roll < 0.85:
            out.append(SystemMsg(ts(rng, clock), "Heartbeat", SystemCode.HEARTBEAT))
        elif roll < 0.9:
            out.append(ErrorMsg(ts(rng, clock), random_text(rng, 30)))
        else:
            out.append(SymbolMappingMsg(1, rng.choice(iids), ts(rng, clock), SType.PARENT,
                                        rng.choice(("ES.FUT", random_text(rng, 8))), SType.RAW_SYMBOL,
                                        rng.choice(RAWS + [random_text(rng, 12)]), 0, 0))
    return out


def to_dbn(recs: list) -> bytes:
    meta = Metadata("GLBX.MDP3", 0, SType.PARENT, SType.INSTRUMENT_ID, Schema.TRADES)
    return bytes(meta) + b"".join(bytes(r) for r in recs)


def test_extreme_dbn_records_never_crash_the_hub_and_bars_stay_valid(hub):
    from multialpha.hub.publisher import MinuteClosed, PrevBar

    published = hub.publisher.pending
    totals = {"bars": 0, "records": 0}

    def run(recs: list) -> list:
        # A fresh trading state per case (the hub's start-up), the same Hub object.
        agg = hub.aggregator
        hub.resolver.reset_mappings()  # the trading-day window stays: most cases share T0's day
        for s in (*agg.series.values(), *agg.prev_series.values()):
            s.minute = s.end = s.last_pub = -1
        agg.prev_routes = {}  # instrument ids are this case's: a previous case's routes would leak
        agg.clock, agg.deadline, agg.floor, agg.replay_until = 0, 1 << 62, 0, 0
        agg.ready, agg.closed_through = [], -1
        published.clear()
        dec = DBNDecoder()
        dec.write(to_dbn(recs))
        decoded = [r for r in dec.decode() if not isinstance(r, Metadata)]
        assert len(decoded) == len(recs)
        agg.process(decoded)
        agg.advance(U64_MAX)  # the end of time closes every open bar
        totals["records"] += len(decoded)
        return list(published)

    def check(recs, out: list) -> None:
        last: dict[str, int] = {}
        closed = -(1 << 62)  # newest minute-close notice (ns)
        bars = 0
        for item in out:
            if isinstance(item, MinuteClosed):
                assert item.start_ns > closed, "minute-close notices not increasing"
                closed = item.start_ns
                continue
            # a previous front's bar (the roll overlap: a case can reach a day after a roll) is
            # checked like a front bar, in its own order (its own channel and log)
            bar, key = (item.bar, "~" + item.bar.symbol) if isinstance(item, PrevBar) else (item, item.symbol)
            assert Bar.from_dict(bar.to_dict()) == bar, bar  # a message every worker accepts
            assert bar.start_ms > last.get(key, -1), "bars of a root out of order / duplicated"
            assert bar.start_ms * 1_000_000 > closed, "a bar after its minute's close notice"
            last[key] = bar.start_ms
            bars += 1
        totals["bars"] += bars

    counts = fuzz(seeded(records), run, (), 10_000, check)
    c = hub.aggregator.counters()
    print(f"\nDBN extremes: {counts['ok']} batches, {totals['records']} records, {totals['bars']} bars; counters {c}")
    assert counts["ok"] >= 10_000 and totals["bars"] > 1000 and c["rejected"] > 500
