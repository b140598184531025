"""Fault-injection harness for the whole system: a real `multialpha up` (managed Redis, sandbox,
hub, two workers) sending LIVE orders to a real loopback HTTP receiver standing in for TradersPost.

Time is the sandbox's: `up` runs it pinned (speed 1e-9) at the session open of ``FROM_DATE`` until
every worker is LIVE (the warmup boundary is that open in every run), then the test steps the clock
30 sim-seconds at a time through the control API. So a run is a function of (seed, range, fault),
and a faulted run is compared with a fault-free reference run bar for bar and order for order.

Strategies: the example plugin's ``example_sma`` (minute close vs the last hourly close, long and
short), which trades every few minutes; the portfolio limits are opened wide so the
comparison sees the strategies, not the gate. One root per worker (see STRATEGIES). ``worker.trade_replayed_bars`` is on: a worker that
restarts replays the bars it missed from the bar log and trades them, so its orders must equal the
reference exactly (with the default, off, the missed signals are refused as late by design).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import redis
import yaml

from multialpha import cme_time, config, heartbeat, runtime
from multialpha.keys import Keys
from multialpha.managed_redis import free_port
from tests.conftest import REPO, SHIPPED_CONFIG

FROM_DATE = date(2025, 12, 2)
T0 = cme_time.session_bounds(FROM_DATE)[0]  # the session open: 2025-12-01 23:00 UTC
RANGE = timedelta(minutes=90)  # compared: bars/orders starting in [T0, T0 + RANGE - 2 min)
FAULT_AT = T0 + timedelta(minutes=62, seconds=20)  # mid-minute, once the hourly SMA has moved
STEP = timedelta(seconds=30)
DEADLINE_S = 180.0  # polling bound (2 shared cores): never a timing assertion
# One root per worker: Backtrader calls next() once per feed that advances, so with two minute
# feeds in one worker a re-entry right after an exit lands on the exit's minute or the next one
# depending on which root's bar arrived first; one root per worker makes every run's orders the same.
STRATEGIES = {"sma_a": ("CL",), "sma_b": ("GC",)}
SECRET = "s3cr3t-uuid-0000/pw-rig-1234"  # the webhook path carries TradersPost's uuid/password


# -- the TradersPost stand-in -------------------------------------------------------------------------


@dataclass
class Request:
    wall: float
    status: int  # what we answered (0: the connection was dropped)
    order_id: str
    body: dict[str, Any]


class Receiver:
    """A loopback HTTP server on a fixed port. Modes: ok, slow (delay per request), 429 (for the next
    ``n`` requests, with Retry-After), down (nothing listens: connection refused)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Request] = []
        self.delay_s = 0.0
        self.too_many = 0
        self.retry_after = "1"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook/{SECRET}"

    def up(self) -> None:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                if rx.delay_s:
                    time.sleep(rx.delay_s)  # the slow broker (the sender's timeout is longer)
                with rx._lock:
                    status = 200
                    if rx.too_many > 0:
                        rx.too_many -= 1
                        status = 429
                    oid = str((body.get("extras") or {}).get("orderId", ""))
                    rx.requests.append(Request(time.monotonic(), status, oid, body))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", rx.retry_after)
                out = b'{"success": true}' if status == 200 else b'{"error": "rate limited"}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> Counter[str]:
        """Order id -> how many times we answered 2xx for it."""
        with self._lock:
            return Counter(r.order_id for r in self.requests if 200 <= r.status < 300)


# -- one `multialpha up` ------------------------------------------------------------------------------


def write_config(tmp: Path) -> Path:
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    doc["contract_map_path"] = str(REPO / "Data" / "Databento_contract_map.yml")
    doc["models_path"] = str(REPO / "models")
    doc["sandbox"].update({"from_date": FROM_DATE.isoformat(), "days": 20, "seed": 7})
    doc["portfolio"].update({"max_positions": 50, "daily_stop_loss": 1_000_000_000})
    doc["orders"].update({"mode": "live", "max_attempts": 12, "backoff_initial_s": 0.2, "backoff_max_s": 2.0,
                          "timeout_s": 5.0})
    doc["ml_veto"]["mode"] = "off"
    doc["worker"].update({"warmup_daily_bars": 5, "warmup_hourly_bars": 24, "trade_replayed_bars": True})
    doc["strategies"] = {
        name: {"strategy_type": "example_sma", "enabled": True, "params": {"period": 1, "allow_short": True},
               "reference_feeds": [], "instruments": {r: {"size": 1} for r in roots}}
        for name, roots in STRATEGIES.items()
    }
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def env_for(tmp: Path, cache: Path, webhook: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA")}
    env.update({
        "MULTIALPHA_RUNTIME_DIR": str(tmp / "run"),
        "MULTIALPHA_CACHE_DIR": str(cache),
        "MULTIALPHA__REDIS__PORT": str(free_port()),  # nothing answers there: `up` manages a Redis
        "MULTIALPHA__SANDBOX__SPEED": "1e-9",  # pinned: the test moves the clock
        "MULTIALPHA__HUB__SILENCE_TIMEOUT_S": "15",
        "MULTIALPHA__HUB__RECONNECT_INITIAL_S": "0.2",
        "MULTIALPHA__HUB__RECONNECT_CAP_S": "1",
        "MULTIALPHA__SUPERVISOR__HEARTBEAT_TIMEOUT_S": "15",  # > any stall of a busy 2-core box
        "MULTIALPHA__SUPERVISOR__STOP_TIMEOUT_S": "3",
        "MULTIALPHA__SUPERVISOR__BACKOFF_INITIAL_S": "0.2",
        "MULTIALPHA__SUPERVISOR__BACKOFF_MAX_S": "1",
        "TRADERSPOST_WEBHOOK_URL": webhook,
        # The webhook scenario holds entries through a 5 sim-minute outage and expects them delivered;
        # entry expiry (orders.max_age_s) has its own tests (tests/orders/test_lifecycle.py).
        "MULTIALPHA__ORDERS__MAX_AGE_S": "3600",
    })
    env.pop("DATABENTO_API_KEY", None)
    return env


def poll(what: str, cond: Callable[[], Any], timeout: float = DEADLINE_S, every: float = 0.1,
         context: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            got = cond()
        except redis.RedisError as e:
            got, last = None, e
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last Redis error: {last!r})\n{context()}")
        time.sleep(every)


@dataclass
class Outcome:
    name: str
    bars: dict[str, dict[int, dict[str, str]]]  # symbol -> start ms -> fields (without "source")
    published: list[tuple[str, int]]
    journal: list[dict[str, str]]
    delivered: Counter[str]
    workers: dict[str, dict[str, Any]]
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)


class UpRun:
    def __init__(self, tmp: Path, cache: Path, receiver: Receiver) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp, self.rx = tmp, receiver
        self.cfg = write_config(tmp)
        self.env = env_for(tmp, cache, receiver.url)
        self.settings = config.load(self.cfg, environ=self.env)
        self.keys = Keys(self.settings.redis.namespace)
        self.roots = self.settings.hub_symbols()
        self.up: subprocess.Popen[bytes] | None = None
        self.err_path = tmp / "up.stderr"
        self.client: redis.Redis | None = None
        self.clock = T0
        self.published: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self.state_file = runtime.sandbox_state_path(self.settings)

    # -- processes ------------------------------------------------------------------------------
    def start_up(self) -> None:
        self.up = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(self.cfg), "up"],
                                   env=self.env, stdout=subprocess.DEVNULL, stderr=self.err_path.open("ab"),
                                   start_new_session=True, cwd=self.tmp)

    def connect(self) -> None:
        from multialpha.supervisor import redis_setup

        path = redis_setup.state_path(self.settings)

        def current() -> dict[str, Any] | None:
            """The state file of THIS `up`'s Redis (a previous run's names a dead pid, maybe another port)."""
            self._alive_up()
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            return doc if doc.get("pid") and Path(f"/proc/{doc['pid']}").exists() else None

        doc = poll("managed Redis", current, context=self.tail)
        self.client = redis.Redis(host=doc["host"], port=doc["port"], password=doc["password"] or None,
                                  decode_responses=True, socket_timeout=5)
        poll("Redis answering", self.client.ping)

    def _alive_up(self) -> bool:
        if self.up is not None and self.up.poll() is not None:
            raise AssertionError(f"`multialpha up` exited with {self.up.returncode}\n{self.tail()}")
        return True

    def tail(self) -> str:
        out = self.err_path.read_text(errors="replace")[-2500:] if self.err_path.exists() else ""
        logs = runtime.runtime_dir(self.settings) / "logs"
        for name in ("hub", *[f"worker.{n}" for n in STRATEGIES]):
            p = logs / f"{name}.log"
            if p.exists():
                out += f"\n--- {name}.log\n" + p.read_text(errors="replace")[-1500:]
        return out

    def sandbox(self) -> Any:
        from multialpha.sandbox.state import SandboxState

        return poll("sandbox state", lambda: SandboxState.read(self.state_file))

    def begin(self) -> None:
        """`up`, every worker LIVE at the pinned session open, the bar listener running."""
        self.start_up()
        self.connect()
        self.wait_live()
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listener.start()

    def wait_live(self) -> float:
        """Every worker LIVE and the hub's Live session connected: only then may the clock move (a
        worker can be LIVE before the hub subscribed, and trades before that would be missed)."""
        t = time.monotonic()
        poll("every worker LIVE, hub connected", lambda: self._alive_up() and all(
            (self.hb(f"worker.{n}") or {}).get("state") == "live" for n in STRATEGIES)
            and (self.hb("hub") or {}).get("state") == "connected", context=self.tail)
        return time.monotonic() - t

    def stop(self) -> None:
        self._stop.set()
        if self.up is not None and self.up.poll() is None:
            self.up.send_signal(signal.SIGTERM)
            try:
                self.up.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.up.pid, signal.SIGKILL)
                self.up.wait(10)
        if self._listener is not None:
            self._listener.join(5)
        if self.client is not None:
            self.client.close()

    # -- observation ----------------------------------------------------------------------------
    def hb(self, component: str) -> dict[str, Any] | None:
        assert self.client is not None
        try:
            return heartbeat.read(self.client, self.keys, component)
        except redis.RedisError:
            return None

    def children(self) -> dict[str, dict[str, Any]]:
        return (self.hb("supervisor") or {}).get("children") or {}

    def _listen(self) -> None:
        """Every bar PUBLISHed (what a live worker receives): duplicates show up here."""
        assert self.client is not None
        while not self._stop.is_set():
            try:
                ps = self.client.pubsub(ignore_subscribe_messages=True)
                ps.subscribe(*(self.keys.bars(r) for r in self.roots))
                while not self._stop.is_set():
                    msg = ps.get_message(timeout=0.2)
                    if msg and msg["type"] == "message":
                        doc = json.loads(msg["data"])
                        self.published.append((doc["symbol"], cme_time.to_ns(cme_time.parse_iso(doc["timestamp"])) // 1_000_000))
                ps.close()
            except (redis.RedisError, OSError):
                time.sleep(0.1)

    def bars(self, keep_source: bool = False) -> dict[str, dict[int, dict[str, str]]]:
        """The hub's bar logs; ``source`` (live/replay) is left out unless asked for: a replayed
        bar must equal the reference's live one."""
        assert self.client is not None
        out: dict[str, dict[int, dict[str, str]]] = {}
        for r in self.roots:
            rows = self.client.xrange(self.keys.bar_log(r))
            out[r] = {int(i.split("-")[0]): {k: v for k, v in f.items() if keep_source or k != "source"}
                      for i, f in rows}
        return out

    def journal(self) -> list[dict[str, str]]:
        assert self.client is not None
        return [dict(f, id=i) for i, f in self.client.xrange(self.keys.orders())]

    def hub_settled(self, through: datetime) -> bool:
        h = self.hb("hub") or {}
        fc = h.get("feed_clock")
        return bool(fc) and cme_time.parse_iso(fc) >= through and (h.get("counters") or {}).get("pending") == 0

    def drained(self) -> bool:
        """Every worker LIVE, nothing queued, and its last bar per symbol is the bar log's last."""
        assert self.client is not None
        kids = self.children()
        for n, roots in STRATEGIES.items():
            h = self.hb(f"worker.{n}") or {}
            if h.get("state") != "live" or h.get("backlog") != 0:
                return False
            if h.get("pid") != (kids.get(f"worker.{n}") or {}).get("pid"):
                return False  # a dead worker's heartbeat lingers until its TTL
            for sym in roots:
                last = self.client.xrevrange(self.keys.bar_log(sym), count=1)
                if not last:
                    continue
                want = cme_time.iso_z(cme_time.from_ns(int(last[0][0].split("-")[0]) * 1_000_000))
                if (h.get("symbols") or {}).get(sym, {}).get("last_bar") != want:
                    return False
        return True

    def orders_settled(self) -> bool:
        """Every live intent journaled has reached an outcome (sent, or flagged for review)."""
        j = self.journal()
        outcome = {e["order_id"] for e in j if e.get("event") == "outcome"}
        return all(e["order_id"] in outcome for e in j if e.get("event") == "intent")

    # -- time -----------------------------------------------------------------------------------
    def set_clock(self, when: datetime) -> None:
        from multialpha.sandbox import control

        control.set_clock(self.sandbox(), when)

    def advance_to(self, when: datetime) -> None:
        while self.clock < when:
            self.clock = min(when, self.clock + STEP)
            self.set_clock(self.clock)

    def settle(self, through: datetime) -> None:
        """Clock at ``through``; the hub has published everything closed before it; workers drained."""
        self.advance_to(through)
        poll(f"hub past {through}", lambda: self.hub_settled(through - timedelta(seconds=1)), context=self.tail)
        poll("workers drained", self.drained, context=self.tail)

    def finish(self, name: str) -> Outcome:
        end = T0 + RANGE
        self.settle(end)
        poll("every order has an outcome", self.orders_settled, context=self.tail)
        cut = cme_time.to_ns(end - timedelta(minutes=2)) // 1_000_000
        bars = {r: {ms: f for ms, f in rows.items() if ms < cut} for r, rows in self.bars().items()}
        workers = {n: self.hb(f"worker.{n}") or {} for n in STRATEGIES}
        journal = [e for e in self.journal() if _bar_ms(e) < cut]
        out = Outcome(name, bars, [(s, ms) for s, ms in self.published if ms < cut], journal,
                      self.rx.delivered(), workers)
        # Shown only when a comparison fails: e.g. late/dropped trades explain a changed bar.
        out.notes.append(f"hub counters: {(self.hb('hub') or {}).get('counters')}")
        out.notes.extend(f"worker {n}: dropped={w.get('dropped')} errors={w.get('errors')} "
                         f"replayed={w.get('replayed')}" for n, w in workers.items())
        return out


def _bar_ms(e: dict[str, str]) -> int:
    """The bar an order journal entry belongs to (attempts/outcomes: through their intent's order id)."""
    bs = e.get("bar_start")
    return cme_time.to_ns(cme_time.parse_iso(bs)) // 1_000_000 if bs else 0


# -- comparison ---------------------------------------------------------------------------------------

OrderKey = tuple[str, str, str, str, str]  # strategy, symbol, side, kind, bar_start


def intents(journal: list[dict[str, str]]) -> list[dict[str, str]]:
    return [e for e in journal if e.get("event") == "intent"]


def order_keys(journal: list[dict[str, str]]) -> list[OrderKey]:
    return [(e["strategy"], e["symbol"], e.get("side", ""), e["kind"], e["bar_start"]) for e in intents(journal)]


def compare(ref: Outcome, run: Outcome, full_journal: list[dict[str, str]]) -> dict[str, int]:
    """Bars and orders of ``run`` against ``ref``. ``full_journal``: every entry of the run's journal
    (outcomes and attempts carry no bar_start, so they are matched through their order id)."""
    missing = sum(1 for r, rows in ref.bars.items() for ms in rows if ms not in run.bars.get(r, {}))
    extra = sum(1 for r, rows in run.bars.items() for ms in rows if ms not in ref.bars.get(r, {}))
    changed = sum(1 for r, rows in ref.bars.items() for ms, f in rows.items()
                  if ms in run.bars.get(r, {}) and run.bars[r][ms] != f)
    dup_pub = sum(n - 1 for n in Counter(run.published).values() if n > 1)
    ints = intents(run.journal)
    ids = Counter(e["order_id"] for e in ints)
    keys = Counter((e["strategy"], e["symbol"], e.get("side", ""), e["bar_start"]) for e in ints)
    dup_orders = sum(n - 1 for n in ids.values() if n > 1) + sum(n - 1 for n in keys.values() if n > 1)
    ref_keys, run_keys = Counter(order_keys(ref.journal)), Counter(order_keys(run.journal))
    orders_missing = sum((ref_keys - run_keys).values())
    orders_extra = sum((run_keys - ref_keys).values())
    # Lost intent: journaled, but no outcome at all; or "delivered" without the receiver having it once;
    # or delivered more than once. Review outcomes (unresolved/ambiguous/failed) are flagged, not lost.
    outcome: dict[str, str] = {}
    for e in full_journal:
        if e.get("event") == "outcome":
            outcome[e["order_id"]] = e.get("result", "")
    lost = flagged = double = 0
    for e in ints:
        oid, res = e["order_id"], outcome.get(e["order_id"])
        got = run.delivered.get(oid, 0)
        double += got > 1
        if res is None or (res == "delivered" and got != 1):
            lost += 1
        elif res not in ("delivered", "paper", "rejected"):
            flagged += 1
    return {"bars": sum(len(r) for r in ref.bars.values()), "missing": missing, "extra": extra, "changed": changed,
            "dup_published": dup_pub, "orders": sum(ref_keys.values()),
            "orders_missing": orders_missing, "orders_extra": orders_extra, "dup_orders": dup_orders,
            "delivered_twice": double, "lost": lost, "flagged": flagged,
            # Re-submissions the gate's order-id claim stopped (a replayed bar after a restart).
            "blocked": sum(1 for e in full_journal if e.get("event") == "duplicate")}


def table(rows: list[tuple[str, str, dict[str, int]]]) -> str:
    head = (f"{'scenario':<40} {'recovery':>9} {'bars':>5} {'missing':>7} {'dup bar':>7} {'orders':>6} "
            f"{'ord miss':>8} {'ord extra':>9} {'dup ord':>7} {'lost':>5} {'review':>6} {'gate dup':>8}")
    lines = [head, "-" * len(head)]
    for name, rec, d in rows:
        lines.append(f"{name:<40} {rec:>9} {d['bars']:>5} {d['missing'] + d['changed']:>7} "
                     f"{d['extra'] + d['dup_published']:>7} {d['orders']:>6} {d['orders_missing']:>8} "
                     f"{d['orders_extra']:>9} {d['dup_orders'] + d['delivered_twice']:>7} {d['lost']:>5} "
                     f"{d['flagged']:>6} {d['blocked']:>8}")
    return "\n".join(lines)


# Rows of the table printed at the end of the session (tests/e2e/conftest.py).
RESULTS: list[tuple[str, str, dict[str, int]]] = []


def new_run(base: Path, name: str, cache: Path) -> UpRun:
    rx = Receiver()
    rx.up()
    return UpRun(base / name, cache, rx)


def check(name: str, ref: Outcome, out: Outcome, full_journal: list[dict[str, str]],
          allow_flagged: int = 0) -> dict[str, int]:
    """Record the row, then require: no bar missing/changed/extra/published twice, the same orders as
    the reference, none duplicated, none lost, none delivered twice; at most ``allow_flagged`` for review."""
    d = compare(ref, out, full_journal)
    RESULTS.append((name, f"{out.recovery_s:.1f} s" if out.recovery_s is not None else "-", d))
    bad = {k: d[k] for k in ("missing", "extra", "changed", "dup_published", "orders_missing", "orders_extra",
                             "dup_orders", "delivered_twice", "lost") if d[k]}
    if d["missing"] or d["changed"] or d["extra"]:
        for r, rows in ref.bars.items():
            got = out.bars.get(r, {})
            for ms, f in rows.items():
                if got.get(ms) != f:
                    out.notes.append(f"bar {r} {cme_time.iso_z(cme_time.from_ns(ms * 1_000_000))}: "
                                     f"reference {f} run {got.get(ms)}")
    if d["orders_missing"] or d["orders_extra"]:
        ref_k, run_k = Counter(order_keys(ref.journal)), Counter(order_keys(out.journal))
        out.notes.append(f"orders only in the reference: {sorted((ref_k - run_k).elements())}; "
                         f"only in this run: {sorted((run_k - ref_k).elements())}")
    assert not bad, (name, d, out.notes)
    assert d["flagged"] <= allow_flagged, (name, d)
    return d


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
