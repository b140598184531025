from datetime import datetime, timedelta

from multialpha import heartbeat
from multialpha.cme_time import UTC
from multialpha.keys import Keys


def test_beat_read_and_expire(redis_client) -> None:
    keys = Keys("t")
    now = [datetime(2025, 12, 1, tzinfo=UTC)]
    hb = heartbeat.Heartbeat(redis_client, keys, "hub", ttl_s=5, clock=lambda: now[0])
    hb.beat("live", bars=3, last_bar={"ES": "2025-12-01T00:00:00Z"})
    now[0] += timedelta(seconds=1)
    hb.beat("live", bars=4)
    doc = heartbeat.read(redis_client, keys, "hub")
    assert doc is not None
    assert doc["state"] == "live" and doc["bars"] == 4 and "last_bar" not in doc  # each beat replaces
    assert doc["updated"] == "2025-12-01T00:00:01Z" and doc["started"] == "2025-12-01T00:00:00Z"
    assert 0 < redis_client.ttl(keys.heartbeat("hub")) <= 5
    assert set(heartbeat.read_all(redis_client, keys)) == {"hub"}
    assert heartbeat.read_all(redis_client, Keys("other")) == {}
    hb.clear()
    assert heartbeat.read(redis_client, keys, "hub") is None
