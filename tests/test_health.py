"""Health and metrics endpoints over real HTTP, with a real Redis heartbeat."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from multialpha import cme_time
from multialpha.health import Metrics, heartbeat_fresh, serve_health
from multialpha.heartbeat import Heartbeat
from multialpha.keys import Keys


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_healthz_follows_check_and_metrics_are_prometheus_text() -> None:
    state = {"ok": True}
    m = Metrics()
    srv = serve_health(0, lambda: (state["ok"], {"why": "test"}), m.registry)
    try:
        code, ctype, body = get(f"{srv.url}/healthz")
        assert code == 200 and json.loads(body) == {"ok": True, "why": "test"}
        state["ok"] = False
        code, _, body = get(f"{srv.url}/healthz")
        assert code == 503 and json.loads(body)["ok"] is False
        m.bars.labels(symbol="ES").inc(3)
        m.restarts.labels(component="worker.a").inc()
        m.bar_lag.labels(symbol="ES").set(1.5)
        code, ctype, body = get(f"{srv.url}/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        assert 'multialpha_bars_total{symbol="ES"} 3.0' in body
        assert 'multialpha_restarts_total{component="worker.a"} 1.0' in body
        assert 'multialpha_bar_lag_seconds{symbol="ES"} 1.5' in body
        assert get(f"{srv.url}/nope")[0] == 404
    finally:
        srv.close()


def test_raising_check_is_503_not_500() -> None:
    def boom() -> bool:
        raise ConnectionError("redis down")

    srv = serve_health(0, boom)
    try:
        code, _, body = get(f"{srv.url}/healthz")
        assert code == 503 and "redis down" in json.loads(body)["error"]
    finally:
        srv.close()


def test_refuses_non_loopback() -> None:
    with pytest.raises(ValueError):
        serve_health(0, lambda: True, host="0.0.0.0")


def test_heartbeat_fresh_with_injected_clock(redis_client) -> None:
    keys = Keys("t")
    t0 = cme_time.parse_iso("2026-01-05T15:00:00Z")
    Heartbeat(redis_client, keys, "hub", clock=lambda: t0).beat("live")
    ok, d = heartbeat_fresh(redis_client, keys, "hub", 15, clock=lambda: t0 + timedelta(seconds=10))
    assert ok and d["heartbeat_age_s"] == 10 and d["state"] == "live"
    ok, d = heartbeat_fresh(redis_client, keys, "hub", 15, clock=lambda: t0 + timedelta(seconds=16))
    assert not ok
    ok, d = heartbeat_fresh(redis_client, keys, "worker.x", 15)
    assert not ok and d["heartbeat_age_s"] is None


def test_healthz_serves_a_real_heartbeat_check(redis_client) -> None:
    keys = Keys("t")
    srv = serve_health(0, lambda: heartbeat_fresh(redis_client, keys, "hub", 15))
    try:
        assert get(f"{srv.url}/healthz")[0] == 503
        Heartbeat(redis_client, keys, "hub").beat("live")
        assert get(f"{srv.url}/healthz")[0] == 200
    finally:
        srv.close()
