"""Order path latency: intent submit -> POST received by a local receiver.

Measures, in one run against the same receiver process:
  baseline  a bare `requests` POST (keep-alive session) -> received
  live      OrderRouter.submit (gate script: claim + checks + reserve + journal
            intent; hand-off to the sender thread; rate-limit script) -> received
  paper     OrderRouter.submit returning (gate + journal intent + paper outcome)

The receiver runs in its own process and stamps arrival with the monotonic
clock (shared by all processes on Linux). Rate limits are raised for the run
(the limiter script still executes on every POST). Entries and exits alternate
on one symbol so every order passes the full gate.

    .venv/bin/python bench/order_latency.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _receiver(port_out, stamps) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like TradersPost
        # One write per response and no Nagle: http.server's default (headers
        # and body in two writes, Nagle on) adds a 40 ms delayed-ACK stall that
        # no production web server has.
        disable_nagle_algorithm = True
        wbufsize = 65536

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            t = time.monotonic_ns()
            body = b'{"success": true, "id": "x", "logId": "y", "payload": {}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            oid = json.loads(raw).get("extras", {}).get("orderId", "")
            stamps.send((oid, t))

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.send(srv.server_address[1])
    srv.serve_forever()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def _line(name: str, xs: list[float], base: float | None = None) -> str:
    p50, p99 = _pct(xs, 50), _pct(xs, 99)
    ratio = f"   p50 x{p50 / base:.2f} of baseline" if base else ""
    return f"{name:<34} n={len(xs):<5} p50={p50:7.3f} ms  p99={p99:7.3f} ms  max={max(xs):7.3f} ms{ratio}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n

    import requests

    from multialpha import config
    from multialpha.managed_redis import ManagedRedis
    from multialpha.orders.intent import OrderIntent
    from multialpha.orders.router import OrderRouter

    ctx = mp.get_context("spawn")
    port_rx, port_tx = ctx.Pipe(False)
    stamps_rx, stamps_tx = ctx.Pipe(False)
    rx = ctx.Process(target=_receiver, args=(port_tx, stamps_tx), daemon=True)
    rx.start()
    port = port_rx.recv()
    url = f"http://127.0.0.1:{port}/trading/webhook/00000000-0000-0000-0000-000000000000/bench-password"

    with ManagedRedis() as rs:
        env = {"MULTIALPHA__REDIS__PORT": str(rs.port), "MULTIALPHA__ORDERS__MODE": "live",
               "MULTIALPHA__ORDERS__RATE_PER_MINUTE": "100000000", "MULTIALPHA__ORDERS__RATE_PER_HOUR": "100000000",
               "MULTIALPHA__PORTFOLIO__MAX_POSITIONS": "10",
               "MULTIALPHA__PORTFOLIO__DAILY_STOP_LOSS": "1000000000",
               # breakout's own webhook is the receiver; the IBS strategies' must differ (they share YM)
               "TRADERSPOST_WEBHOOK_URL_BREAKOUT": url, "TRADERSPOST_WEBHOOK_URL": url + "-ibs",
               # the signals are stamped 2025-12-01 and the router runs on the wall clock
               "MULTIALPHA__ORDERS__MAX_AGE_S": "1e9"}
        settings = config.load(REPO / "config.multi_alpha.yml", environ=env)
        client = rs.client(decode_responses=True)
        t0 = datetime(2025, 12, 1, 15, 0, tzinfo=timezone.utc)  # ESZ5 is the front for days

        def intent(i: int) -> OrderIntent:
            return OrderIntent("breakout", "ES", "long", "entry" if i % 2 == 0 else "exit", 1, 6000.25,
                               t0 + timedelta(minutes=i), "ESZ5")

        # Baseline: the same bytes straight to the receiver.
        session = requests.Session()
        body = json.dumps({"ticker": "ESZ2025", "action": "buy", "extras": {"orderId": "base"}}).encode()
        base = []
        for i in range(n + 50):
            start = time.monotonic_ns()
            session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
            _, t = stamps_rx.recv()
            if i >= 50:
                base.append((t - start) / 1e6)

        live = OrderRouter(settings, client, "breakout", environ=env)
        entries, exits = [], []
        for i in range(n + 50):
            start = time.monotonic_ns()
            d = live.submit(intent(i))
            assert d.accepted, d
            oid, t = stamps_rx.recv()
            assert oid == d.order_id
            live.wait_idle(10)  # like the baseline: next order after this one's response
            if i >= 50:
                (entries if i % 2 == 0 else exits).append((t - start) / 1e6)
        live.wait_idle(10)
        live.close()

        client.flushall()
        paper_settings = config.load(REPO / "config.multi_alpha.yml",
                                     environ={**env, "MULTIALPHA__ORDERS__MODE": "paper"})
        paper = OrderRouter(paper_settings, client, "breakout", environ={})
        ret = []
        for i in range(n + 50):
            start = time.monotonic_ns()
            assert paper.submit(intent(i)).accepted
            if i >= 50:
                ret.append((time.monotonic_ns() - start) / 1e6)
        paper.close()
        client.close()
    rx.terminate()

    b50 = _pct(base, 50)
    print(f"order path latency, {n} orders each, receiver in its own process, Redis {rs.port}")
    print(_line("baseline: bare POST -> received", base))
    print(_line("live: submit -> received (all)", entries + exits, b50))
    print(_line("live: entry submit -> received", entries, b50))
    print(_line("live: exit submit -> received", exits, b50))
    print(_line("paper: submit returns", ret))
    over = _pct(entries + exits, 99)
    print(f"goal p99 <= 10 ms (gate + journal + POST): {'MET' if over <= 10 else 'NOT MET'} ({over:.3f} ms);"
          f" p50 overhead over a bare POST: {statistics.median(entries + exits) - b50:.3f} ms")


if __name__ == "__main__":
    main()
