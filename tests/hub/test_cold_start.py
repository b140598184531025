"""Whole minutes only: a hub started mid-minute publishes that minute whole (cold-start
replay), or not at all when the gateway refuses the replay.

Every published bar, the first included, is compared with an independent aggregation of
the sandbox's trades fetched through the official ``databento.Historical`` client
(``to_df()``: bucketed on the ``ts_recv`` minute, front contract by its symbol). The
sandbox clock is pinned and moved by ``set_clock``: nothing sleeps for feed time.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from multialpha import cme_time, endpoints
from multialpha.contracts import ContractMap
from multialpha.hub.main import Hub, default_connector
from multialpha.hub.session import Target
from multialpha.keys import Keys
from tests.hub.conftest import MIN, BarKey, BarVal, HubThread, Recorder, logged_bars, utc, wait_for

T_START = utc(2025, 12, 10, 15, 30, 27, 500_000)  # 09:30:27.5 CT: the busy US open, mid-minute
T_END = utc(2025, 12, 10, 15, 45)
ONLY_BREAKOUT = {"MULTIALPHA__STRATEGIES__IBS_B__ENABLED": "false"}  # ES NQ RTY YM


def ns(dt: datetime) -> int:
    return cme_time.to_ns(dt)


def start_hub(settings: Any, connect: Any = None) -> HubThread:
    stop = threading.Event()
    hub = Hub(settings, stop_event=stop, connect=connect)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(hub.run()), name="hub-under-test", daemon=True)
    t.start()
    return HubThread(hub, t, stop, result)


def historical_bars(sb: Any, settings: Any, roots: list[str], start: datetime, end: datetime) -> dict[BarKey, BarVal]:
    """OHLCV-1m of the hub's front contract per root, from Historical trades via the official client."""
    hist = endpoints.historical_client(endpoints.from_state(sb.state, sb.state_file))
    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    parents = [settings.instruments[r].product_id for r in roots]
    # A minute before: trades are selected on their time, bars bucket on ts_recv.
    df = hist.timeseries.get_range(
        dataset=settings.databento.dataset, schema="trades", stype_in="parent", symbols=parents,
        start=start - timedelta(minutes=1), end=end,
    ).to_df(price_type="fixed")
    assert df["symbol"].notna().all(), "to_df() left records without a symbol"
    out: dict[BarKey, BarVal] = {}
    for root in roots:
        front = cmap.front(root, cme_time.trading_day(start)).raw_symbol
        tick = Decimal(repr(settings.instruments[root].tick_size))
        mine = df[df["symbol"] == front]
        for minute, g in mine.groupby(mine.index.floor("min")):
            m = ns(minute.to_pydatetime())
            px = [int(p) for p in g["price"]]
            r = lambda p: float((Decimal(p) / Decimal(10**9) / tick).to_integral_value(ROUND_HALF_UP) * tick)  # noqa: E731
            out[(root, m)] = (r(px[0]), r(max(px)), r(min(px)), r(px[-1]), int(g["size"].sum()), len(px), front)
    return {k: v for k, v in out.items() if k[1] >= cme_time.floor_minute_ns(ns(start))}


def test_cold_start_mid_minute_publishes_that_minute_whole(hub_settings, sandbox_at, redis_client):
    settings = hub_settings(**ONLY_BREAKOUT)
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    sb = sandbox_at(settings, T_START)
    rec = Recorder(redis_client, keys)
    h = start_hub(settings)
    try:
        wait_for(lambda: h.hub.session and h.hub.session.streaming(), 20, "hub streaming")
        sb.set_clock(T_END)  # the replay (from 15:29) does not depend on the clock
        want = historical_bars(sb, settings, roots, T_START, T_END)
        first = cme_time.floor_minute_ns(ns(T_START))
        assert {m for (r, m) in want if r == "ES"} >= {first}, "ES traded in the start minute"
        # Everything up to 15:43 is closed once the clock (15:45) passed 15:44:01.
        want = {k: v for k, v in want.items() if k[1] < ns(T_END) - MIN}
        wait_for(lambda: set(want) <= set(logged_bars(redis_client, keys, roots)), 30, "bars up to 15:43")
        got = {k: v for k, v in logged_bars(redis_client, keys, roots).items() if k[1] < ns(T_END) - MIN}
        assert got == want  # every bar, the first (15:30, started 27.5 s in) included
        assert min(m for _, m in got) == first
        wait_for(lambda: len(rec.messages) >= len(logged_bars(redis_client, keys, roots)), 10, "pub/sub")
        firsts = {m["symbol"]: m["timestamp"] for m in reversed(rec.messages)}
        assert set(firsts.values()) == {cme_time.iso_z(first)}
        assert h.hub.aggregator.late == 0 and h.hub.aggregator.partial == 0
        assert h.hub.aggregator.replay_dups > 0  # the margin minute (15:29) was replayed and dropped
    finally:
        rec.stop()
        assert h.stop() == 0


class _ReplayTooOld:
    """The unmodified client, except that start= lies beyond the gateway's 24 h window: refused."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def subscribe(self, **kw: Any) -> None:
        if kw.get("start") is not None:
            kw["start"] -= 3 * 86_400 * cme_time.NS
        self._client.subscribe(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_refused_replay_never_publishes_the_partial_minute(hub_settings, sandbox_at, redis_client, caplog):
    settings = hub_settings(**ONLY_BREAKOUT)
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    sb = sandbox_at(settings, T_START)
    real = default_connector(settings)

    def connect() -> Target:
        t = real()
        return Target(_ReplayTooOld(t.client), t.gateway, t.now_ns)

    caplog.set_level(logging.WARNING, logger="multialpha.hub")
    h = start_hub(settings, connect)
    try:
        wait_for(lambda: h.hub.session and h.hub.session.replay_refused, 20, "the refused replay")
        first = cme_time.floor_minute_ns(ns(T_START)) + MIN  # 15:31: the first minute seen from its first second
        wait_for(lambda: h.hub.aggregator.floor == first and h.hub.session.streaming(), 20, "a live-only session")
        sb.set_clock(T_END)
        want = {k: v for k, v in historical_bars(sb, settings, roots, T_START, T_END).items()
                if first <= k[1] < ns(T_END) - MIN}
        wait_for(lambda: set(want) <= set(logged_bars(redis_client, keys, roots)), 30, "bars 15:31..15:43")
        got = {k: v for k, v in logged_bars(redis_client, keys, roots).items() if k[1] < ns(T_END) - MIN}
        assert got == want  # nothing of 15:30, every later bar whole
        lines = [r.getMessage() for r in caplog.records if "not published" in r.getMessage()]
        assert len(lines) == 1 and "minute 2025-12-10T15:30:00Z is not published" in lines[0]
        assert h.hub.aggregator.partial > 0 and h.hub.aggregator.late == 0
    finally:
        assert h.stop() == 0
