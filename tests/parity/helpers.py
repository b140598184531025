"""Live ≡ backtest: run the whole live pipeline and the backtest over the same sandbox days.

Live side: `multialpha up` (sandbox gateways -> hub -> Redis -> three workers -> paper journal)
with the sandbox clock held at the first day's session open until every worker is LIVE (so
the live warmup boundary is that open, exactly the backtest's `T`), then replayed at high
speed, every daily halt paced step by step (see run_live), and pinned a few minutes after the
last day's close (before the next session opens). Backtest side: `runner.run` over the same
trading days against the same (still running, pinned) sandbox, same config and models.
Both sides reduce to `(strategy, symbol, side, kind, bar_start, quantity)` per accepted order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import yaml

from multialpha import cme_time, config, heartbeat, runtime
from multialpha.keys import Keys
from multialpha.managed_redis import free_port
# The comparison itself lives in the package: `multialpha verify` runs the same one in production.
from multialpha.verify.compare import Key, denied_keys, intent_keys, veto_keys_backtest, veto_keys_live  # noqa: F401
from tests.conftest import REPO, SHIPPED_CONFIG

PIN_SPEED = 1e-9          # a practically stopped sandbox clock (speed 0 would mean unpaced)
SLOW_BEFORE = timedelta(minutes=10)  # jump to just after the close from here (see run_live)
PIN_AFTER = timedelta(minutes=4)  # > the workers' 90 s quiet-market grace, < the 60 min halt
STARTUP_S = 240.0         # bounds (never timing assertions) for polling


@dataclass
class LiveResult:
    orders: list[Key]
    journal: list[dict[str, str]]
    workers: dict[str, dict[str, Any]]
    hub: dict[str, Any] | None
    vetoes: list[dict[str, str]]
    wall_s: dict[str, float] = field(default_factory=dict)
    # (symbol, contract, bar start ISO) -> close, from the front and previous-front bar logs
    # (run_live(bar_logs=True) only)
    bar_closes: dict[tuple[str, str, str], float] = field(default_factory=dict)


def write_config(tmp: Path, first: date, portfolio: dict[str, Any] | None = None,
                 **top: Any) -> Path:
    """The shipped config for a parity run; ``top`` replaces whole top-level sections."""
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    doc.update(top)
    doc["contract_map_path"] = str(REPO / "Data" / "Databento_contract_map.yml")
    doc["models_path"] = str(REPO / "models")
    doc["sandbox"]["from_date"] = first.isoformat()
    if portfolio:
        doc["portfolio"].update(portfolio)
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def env_for(tmp: Path, store: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The run's environment. ``store``: the tests' shared sandbox store (conftest.sandbox_store);
    None (bench/parity.py) keeps the config's own, cold under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA")}
    env.update({
        "MULTIALPHA_RUNTIME_DIR": str(tmp / "run"),
        "MULTIALPHA_CACHE_DIR": str(tmp / "cache"),
        "MULTIALPHA__REDIS__PORT": str(free_port()),  # nothing answers there: `up` manages a Redis
        "MULTIALPHA__SANDBOX__SPEED": str(PIN_SPEED),
        # gateway heartbeats every 5 wall s move the hub's feed clock through the halt
        "MULTIALPHA__HUB__SILENCE_TIMEOUT_S": "15",
        # At 1500x a worker 2 wall s behind the others is 50 market minutes behind: on a shared
        # CI box that happens, and the production 2 s turn timeout would let the others go ahead.
        "MULTIALPHA__WORKER__TURN_TIMEOUT_S": "60",
        # Likewise an entry's age is market time: 80 wall ms at 1500x is the production 120 s, so
        # a busy box would expire live entries the backtest (no delay) sends. Expiry has its own
        # tests (tests/orders/test_lifecycle.py); here only the decisions are compared.
        "MULTIALPHA__ORDERS__MAX_AGE_S": "86400",
        # `up` verifies each closed day in a subprocess (docs/verify.md): at 1500x that lands in the
        # next day's replay, CPU the live side needs; tests/verify/test_cli.py turns it on.
        "MULTIALPHA__VERIFY__AFTER_CLOSE": "false",
    })
    if store is not None:  # parity is not about filling the store: warm after the run's first `up`
        env["MULTIALPHA__SANDBOX__STORE_DIR"] = str(store)
    env.update(extra or {})
    env.pop("DATABENTO_API_KEY", None)
    return env


def _poll(what: str, cond: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def run_live(cfg: Path, env: dict[str, str], first: date, last: date, speed: float,
             then: Callable[[Any], Any] | None = None, bar_logs: bool = False) -> tuple[LiveResult, Any]:
    """Drive `multialpha up` over [open(first), close(last)); ``then(settings)`` runs while the sandbox is pinned."""
    import redis

    from multialpha.sandbox import control
    from multialpha.sandbox.state import SandboxState

    settings = config.load(cfg, environ=env)
    keys = Keys(settings.redis.namespace)
    names = list(settings.enabled_strategies)
    open_, _ = cme_time.session_bounds(first)
    t0 = time.monotonic()
    wall: dict[str, float] = {}
    up = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(cfg), "up"], env=env,
                          stdout=subprocess.DEVNULL, stderr=(Path(env["MULTIALPHA_RUNTIME_DIR"]).parent / "up.err").open("w"),
                          start_new_session=True)
    extra = None
    try:
        client = _managed_client(settings, up)

        def hb(comp: str) -> dict[str, Any] | None:
            try:
                return heartbeat.read(client, keys, comp)
            except redis.RedisError:
                return None

        def all_live() -> bool:
            if up.poll() is not None:
                raise RuntimeError(f"`multialpha up` exited with {up.returncode}")
            return all((hb(f"worker.{n}") or {}).get("state") == "live" for n in names)

        _poll("every worker LIVE", all_live, STARTUP_S, 0.5)
        state_file = runtime.sandbox_state_path(settings)
        st = SandboxState.read(state_file)
        assert st is not None
        # Nothing has traded yet: the clock still sits at the first session open.
        assert st.now() < open_ + timedelta(seconds=1), st.now()
        wall["startup"] = time.monotonic() - t0
        t1 = time.monotonic()
        sources = {n: settings_sources(settings, n) for n in names}

        def clock() -> datetime:
            s = SandboxState.read(state_file)
            assert s is not None
            return s.now()

        def hub_past(t: datetime) -> Callable[[], bool]:
            def cond() -> bool:
                h = hb("hub") or {}
                fc = h.get("feed_clock")
                return bool(fc) and cme_time.parse_iso(fc) >= t and (h.get("counters") or {}).get("pending") == 0
            return cond

        def drained() -> bool:
            for n in names:
                h = hb(f"worker.{n}") or {}
                if h.get("state") != "live" or h.get("backlog") != 0:
                    return False
                for sym in sources[n]:
                    last_id = client.xrevrange(keys.bar_log(sym), count=1)
                    if not last_id:
                        continue
                    want = cme_time.iso_z(cme_time.from_ns(int(last_id[0][0].split("-")[0]) * 1_000_000))
                    if (h.get("symbols") or {}).get(sym, {}).get("last_bar") != want:
                        return False
            return True

        def noticed(t: datetime) -> Callable[[], bool]:
            """Every worker has reached the hub's minute-close notice of a minute at or after ``t``."""
            def cond() -> bool:
                for n in names:
                    ct = (hb(f"worker.{n}") or {}).get("closed_through")
                    if not ct or cme_time.parse_iso(ct) < t:
                        return False
                return True
            return cond

        control.set_clock(st, speed=speed)
        day = first
        while day <= last:
            close = cme_time.session_bounds(day)[1]
            # Every daily halt is paced the same way. Near the close, jump the clock to just after it
            # and pin it: the last minutes' trades are released at once, and the hub closes the last
            # minute on the next gateway heartbeat (stamped with the pinned clock) while the
            # workers' quiet-market flush (close + 90 s) cannot fire yet. Replayed straight through,
            # the hub's next notice (a gateway heartbeat every 5 *wall* s = 2 sim hours at speed
            # 1500) could land after 17:00 CT, so the day would close in the next trading day
            # (the gate's day for any order it triggers). At speed 1 heartbeats come every 30 s.
            _poll(f"sandbox clock near the close of {day}", lambda: clock() >= close - SLOW_BEFORE, 3600, 0.05)
            assert clock() < close, f"replay overshot the close of {day}: {clock()}"
            control.set_clock(st, close + timedelta(seconds=30), speed=PIN_SPEED)
            _poll(f"hub past the close of {day}", hub_past(close + timedelta(seconds=2)), 120, 0.2)
            _poll("workers drained", drained, 120, 0.2)
            # Now the quiet-market flush may close the last hour/day (close + 90 s grace): the
            # hub's notices (gateway heartbeats at the pinned clock) reach close + 2 min, which
            # makes every worker close what is due at close + 3 min.
            flush_at = close + PIN_AFTER
            control.set_clock(st, flush_at, speed=PIN_SPEED)
            _poll("workers past the minute-close notice after the flush point",
                  noticed(close + timedelta(minutes=2)), 60, 0.2)
            _poll("workers drained after the flush", drained, 60, 0.2)
            day = cme_time.next_trading_day(day)
            if day <= last:
                # Nothing trades until the next session opens: go straight there (skips weekends).
                control.set_clock(st, cme_time.session_bounds(day)[0], speed=speed)
        wall["replay"] = time.monotonic() - t1
        journal = [dict(f, id=i) for i, f in client.xrange(keys.orders())]
        vetoes = [dict(f) for _, f in client.xrange(keys.veto_log())]
        workers = {n: hb(f"worker.{n}") or {} for n in names}
        hub = hb("hub")
        closes = read_bar_closes(client, keys, sorted({s for v in sources.values() for s in v})) if bar_logs else {}
        if then is not None:
            extra = then(settings)
        client.close()
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
    return LiveResult(intent_keys(journal), journal, workers, hub, vetoes, wall, closes), extra


def read_bar_closes(client: Any, keys: Keys, symbols: list[str]) -> dict[tuple[str, str, str], float]:
    """Every bar the hub logged for ``symbols``, front and previous front: what an order's price
    must be one of (its own contract's bar close)."""
    from multialpha.hub.publisher import bar_from_log

    out: dict[tuple[str, str, str], float] = {}
    for sym in symbols:
        for log_key in (keys.bar_log(sym), keys.prev_bar_log(sym)):
            for _, f in client.xrange(log_key):
                bar = bar_from_log(f)
                out[(sym, bar.contract, cme_time.iso_z(bar.start))] = float(bar.close)
    return out


def _managed_client(settings: Any, up: subprocess.Popen) -> Any:
    """A client of the Redis `up` manages (its address and password are in the runtime dir)."""
    import json

    import redis

    from multialpha.supervisor import redis_setup

    path = redis_setup.state_path(settings)

    def ready() -> bool:
        if up.poll() is not None:
            raise RuntimeError(f"`multialpha up` exited with {up.returncode}")
        return path.exists()

    _poll("managed Redis", ready, 60)
    doc = json.loads(path.read_text())
    return redis.Redis(host=doc["host"], port=doc["port"], password=doc["password"] or None, decode_responses=True)


def settings_sources(settings: Any, name: str) -> list[str]:
    from multialpha import plugins
    from multialpha.worker.plan import build_plan

    stype = plugins.get_strategy_type(settings.strategies[name].strategy_type)
    return sorted(build_plan(settings, name, stype).sources)


def run_backtest(settings: Any, first: date, last: date) -> Any:
    """`multialpha backtest --all --from first --to last` (minute bars) against the running sandbox."""
    from multialpha.backtest import command, data as bt_data, runner

    names = command.select_strategies(settings, None, True)
    src = command.resolve_source(settings)
    start, end = bt_data.session_range(first, last)
    return runner.run(settings, names, start, end, fetch=src.fetch, dataset=src.dataset, data_now=src.now,
                      resolution="minute")
