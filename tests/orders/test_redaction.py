"""The webhook URL carries a password: after a run that exercises every path
(success, retries, rejection with the URL echoed back, refused connection,
timeouts), grep the logs and everything in Redis for it."""

from __future__ import annotations

import io
import logging
import sys
from datetime import timedelta

from multialpha import logs
from multialpha.managed_redis import free_port
from multialpha.orders.router import OrderRouter
from tests.orders.support import WEBHOOK_PASSWORD, WEBHOOK_UUID, Reply, intent, live_settings, webhook_env

API_KEY = "db-AbCdEfGhIjKlMnOpQrStUvWxYz123"


def _dump_redis(client) -> str:
    out = []
    for key in client.keys("*"):
        t = client.type(key)
        if t == "string":
            out.append(client.get(key))
        elif t == "hash":
            out.append(str(client.hgetall(key)))
        elif t == "stream":
            out.append(str(client.xrange(key)))
        elif t == "set":
            out.append(str(client.smembers(key)))
        elif t == "zset":
            out.append(str(client.zrange(key, 0, -1)))
        out.append(key)
    return "\n".join(out)


def test_no_password_in_logs_journal_or_exceptions(settings_for, redis_client, clock, receiver, monkeypatch):
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    monkeypatch.setattr(sys, "stderr", buf)
    logs.setup("worker.breakout", json_lines=True, level="DEBUG")
    logging.getLogger("urllib3").setLevel(logging.DEBUG)  # logs every request line, URL path included
    try:
        s = live_settings(settings_for)
        receiver.script = [
            Reply(500),
            Reply(400, body=f'{{"success": false, "message": "bad request to {receiver.url}"}}'),
            Reply(hang=True),
        ]
        r = OrderRouter(s, redis_client, "breakout", clock=clock, sleep=clock.sleep,
                        environ=webhook_env(receiver.url))
        t0 = intent().bar_start
        r.submit(intent(reason=f"signal (key {API_KEY})"))        # 500 then 400 echoing the URL
        r.submit(intent(symbol="NQ", contract="NQZ5", bar_start=t0 + timedelta(minutes=1)))  # read timeout
        r.submit(intent(kind="exit", bar_start=t0 + timedelta(minutes=2)))  # ok
        assert r.wait_idle(10)
        logging.getLogger("test").error("router %r url in message %s", r, receiver.url)
        r.close()
        refused_url = f"http://127.0.0.1:{free_port()}/trading/webhook/{WEBHOOK_UUID}/{WEBHOOK_PASSWORD}"
        r2 = OrderRouter(s, redis_client, "breakout", clock=clock, sleep=clock.sleep,
                         environ=webhook_env(refused_url))
        r2.submit(intent(symbol="RTY", contract="RTYZ5", bar_start=t0 + timedelta(minutes=3)))
        assert r2.wait_idle(10)
        try:
            raise RuntimeError(f"boom posting to {refused_url}")
        except RuntimeError:
            logging.getLogger("test").exception("failure")
        r2.close()
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    text = buf.getvalue()
    assert len(receiver.requests) == 4 and "ESZ2025" in text  # the run happened and was logged
    assert "ReadTimeout" in text or "timed out" in text
    stored = _dump_redis(redis_client)
    assert "ConnectionError" in stored and "bad request to" in stored  # errors and responses were journaled
    for secret in (WEBHOOK_PASSWORD, WEBHOOK_UUID, API_KEY):
        assert secret not in text, f"{secret} leaked into the logs"
        assert secret not in stored, f"{secret} leaked into Redis"
