"""The status view's Redis line against real nodes: a Sentinel primary with its replica, and a
lone Redis (the session's test server)."""

from __future__ import annotations

from typing import Any

from multialpha.managed_sentinel import ManagedSentinelGroup
from multialpha.redis_conn import connect
from multialpha.settings_redis import SentinelSettings
from multialpha.status import redis_nodes
from multialpha.status.collect import collect
from multialpha.status.render import lines


def test_primary_replica_and_lag_through_the_sentinels(settings_for: Any) -> None:
    with ManagedSentinelGroup(password="pw-status-nodes") as group:
        s = settings_for()
        s = s.model_copy(update={"redis": s.redis.model_copy(update={
            "sentinel": SentinelSettings(hosts=group.hosts, service=group.service), "password": "pw-status-nodes"})})
        client = connect(s, decode_responses=True)
        client.set("x", "1")
        doc = collect(s, client)
        r = doc["redis"]
        assert r["primary"] == f"127.0.0.1:{group.primary.port}" and r["sentinel"] == "multialpha"
        assert r["role"] == "master"
        [rep] = r["replicas"]
        assert rep["addr"] == f"127.0.0.1:{group.replica.port}" and rep["state"] == "online"
        assert rep["lag_s"] >= 0 and rep["behind_bytes"] >= 0
        text = "\n".join(t.plain for t in lines(doc, width=200))
        assert f"redis: primary 127.0.0.1:{group.primary.port} (sentinel multialpha), 1 replica: " \
               f"127.0.0.1:{group.replica.port} online" in text
        client.close()


def test_a_lone_redis_and_a_missing_replica(settings_for: Any, redis_client: Any) -> None:
    s = settings_for()
    doc = {"redis": redis_nodes.read(s, redis_client)}
    assert doc["redis"]["replicas"] == [] and doc["redis"]["sentinel"] is None
    [line] = redis_nodes.line(doc, 200)
    assert line.plain.startswith("redis: primary 127.0.0.1:") and "NO replica" not in line.plain
    doc["redis"]["wait_replicas"] = 1  # claims wait for a replica that is not there: said, in red
    [line] = redis_nodes.line(doc, 200)
    assert line.plain.endswith(", NO replica") and "red" in str(line.style)
    assert redis_nodes.line({}, 200) == []  # Redis would not say: no line, no error
