"""A day's bars from the hub's bar logs (written by the hub's own Publisher into a real Redis)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from multialpha import cme_time
from multialpha.bar import Bar
from multialpha.hub.publisher import Publisher
from multialpha.keys import Keys
from multialpha.verify import barlog

KEYS = Keys("multialpha")
DAY = date(2025, 12, 10)
OPEN, CLOSE = cme_time.session_bounds(DAY)  # 2025-12-09T23:00Z .. 2025-12-10T22:00Z


def bar(symbol: str, start, close: float, contract: str) -> Bar:
    return Bar(symbol, start, close, close + 1, close - 1, close, 7, contract, 3, "live")


def publish(client, bars: list[Bar], prev: list[Bar] = ()) -> None:
    pub = Publisher(client, KEYS)
    for b in bars:
        pub.add(b)
    for b in prev:
        pub.add_prev(b)
    assert pub.flush(force=True)


def test_day_bars_are_the_days_minutes_in_order_with_the_previous_front(redis_client) -> None:
    m = timedelta(minutes=1)
    before = bar("ES", OPEN - timedelta(hours=1) - m, 6100.0, "ESZ5")  # 12-09's last minute (15:59 CT)
    day = [bar("ES", OPEN + i * m, 6101.0 + i, "ESZ5") for i in range(3)] + [bar("ES", CLOSE - m, 6200.0, "ESZ5")]
    after = bar("ES", CLOSE + timedelta(hours=1), 6300.0, "ESZ5")  # next day's first minute
    old = [bar("ES", OPEN + m, 6090.0, "ESU5")]
    publish(redis_client, [before, *day[:3]], old)
    redis_client.xadd(KEYS.bar_log("ES"), {"open": "garbage"}, id=f"{cme_time.to_ms(OPEN + 10 * m)}-0")
    publish(redis_client, [day[3], after])

    front, prev = barlog.day_bars(redis_client, KEYS, ["ES", "NQ"], DAY)
    assert [sb.bar.start for sb in front["ES"]] == [b.start for b in day]  # garbage dropped, neighbours left out
    assert [sb.bar.close for sb in front["ES"]] == [b.close for b in day]
    assert all(sb.contract == "ESZ5" and not sb.prev for sb in front["ES"])
    assert front["ES"][0].bar.end == OPEN + m and front["NQ"] == []
    assert [(sb.contract, sb.prev, sb.bar.close) for sb in prev["ES"]] == [("ESU5", True, 6090.0)]

    ref = barlog.last_close_before(redis_client, KEYS, "ES", "ESZ5", OPEN)
    assert ref is not None and ref.bar.start == before.start and ref.close == 6100.0
    assert barlog.last_close_before(redis_client, KEYS, "ES", "ESU5", OPEN + 5 * m).close == 6090.0
    assert barlog.last_close_before(redis_client, KEYS, "ES", "ESH6", OPEN) is None


def test_a_log_trimmed_into_the_day_is_a_gap_not_half_a_day(redis_client) -> None:
    m = timedelta(minutes=1)
    # A thin symbol whose first trade came minutes after the open: whole, not trimmed.
    publish(redis_client, [bar("6M", OPEN + 3 * m, 5.5, "6MH6")])
    assert len(barlog.day_bars(redis_client, KEYS, ["6M"], DAY)[0]["6M"]) == 1
    publish(redis_client, [bar("GC", OPEN - 2 * m - timedelta(hours=1), 3990.0, "GCG6"),
                           *(bar("GC", OPEN + i * m, 4000.0 + i, "GCG6") for i in range(5))])
    # Trimmed before the open only (the previous day's minute): the day is whole.
    redis_client.xtrim(KEYS.bar_log("GC"), minid=str(cme_time.to_ms(OPEN)), approximate=False)
    assert len(barlog.day_bars(redis_client, KEYS, ["GC"], DAY)[0]["GC"]) == 5
    # What hub.bar_log_maxlen does to an old day: its first minutes are gone.
    redis_client.xtrim(KEYS.bar_log("GC"), minid=str(cme_time.to_ms(OPEN + 2 * m)), approximate=False)
    with pytest.raises(barlog.BarLogGap, match="GC lost entries of trading day 2025-12-10.*hub.bar_log_maxlen"):
        barlog.day_bars(redis_client, KEYS, ["GC", "6M"], DAY)
