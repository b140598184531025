"""`multialpha up`, `down`, `restart`: the real wiring around :class:`Supervisor`.

Start order: Redis (found or managed), the sandbox (no API key; the hub
waits until its state file exists), the hub, one worker per enabled
strategy. ``--only`` picks components by name (``sandbox``, ``hub``, a
strategy name or ``worker.<name>``), e.g. only the workers on a second host.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import redis

from multialpha import cme_time, logs, runtime
from multialpha.alerts import Alerter
from multialpha.alerts import from_settings as alerts_from_settings
from multialpha.config import Settings
from multialpha.health import Metrics, serve_health
from multialpha.keys import Keys
from multialpha.managed_redis import ManagedRedis
from multialpha.portfolio.gate import Gate
from multialpha.supervisor import redis_setup
from multialpha.supervisor.detached import UpError, pid_path, running_pid
from multialpha.supervisor.manager import ChildSpec, StopAll, Supervisor, Timing
from multialpha.supervisor.policy import PolicySettings
from multialpha.supervisor.process import Console, Spawner, kill_group
from multialpha.supervisor.reload import Deployer
from multialpha.supervisor.watch import ControlListener, RedisWatch, supervisor_component
from multialpha.verify import schedule as verify_schedule

log = logging.getLogger("multialpha.supervisor")


# -- planning -------------------------------------------------------------------------

SANDBOX_READY_S = 60.0  # how long the hub (start order) and the workers (--await-sandbox) wait for the sandbox


def components(settings: Settings) -> list[str]:
    names = ["sandbox"] if settings.databento.uses_sandbox else []
    return names + ["hub"] + [f"worker.{n}" for n in settings.enabled_strategies]


def select(settings: Settings, only: str | None) -> list[str]:
    """Component names to run, in start order; unknown names are an error."""
    allc = components(settings)
    if not only:
        return allc
    wanted = set()
    for raw in (x.strip() for x in only.split(",")):
        if not raw:
            continue
        name = raw if raw in allc else f"worker.{raw}"
        if name not in allc:
            raise UpError(f"--only: unknown component {raw!r}; known: {', '.join(allc)}")
        wanted.add(name)
    return [n for n in allc if n in wanted]


def plan(
    settings: Settings,
    config_path: Path,
    names: list[str],
    env: dict[str, str],
    python: str = sys.executable,
    log_json: bool = False,
    sandbox_args: tuple[str, ...] = (),
) -> list[ChildSpec]:
    base = (python, "-m", "multialpha", "--config", str(config_path), *(("--log-json",) if log_json else ()))
    extra = tuple(sorted(env.items()))
    specs = []
    for name in names:
        if name == "sandbox":
            state = runtime.sandbox_state_path(settings)
            specs.append(ChildSpec("sandbox", base + ("sandbox", "--state-file", str(state), *sandbox_args), extra,
                                   heartbeat=None, ready=state.exists, ready_timeout_s=SANDBOX_READY_S))
        elif name == "hub":
            specs.append(ChildSpec("hub", base + ("hub",), extra, heartbeat="hub"))
        else:
            strategy = name.split(".", 1)[1]
            if "sandbox" in names:
                # Started with the sandbox, not after it: the worker's imports, plugin and ML models
                # (seconds) overlap the sandbox's start; it waits for the state file before warmup.
                argv = base + ("worker", "--await-sandbox", f"{SANDBOX_READY_S:g}", "--strategy", strategy)
                specs.append(ChildSpec(name, argv, extra, heartbeat=name, gated=False))
            else:
                specs.append(ChildSpec(name, base + ("worker", "--strategy", strategy), extra, heartbeat=name))
    return specs


# -- running ----------------------------------------------------------------------------


def run_supervisor(
    specs: list[ChildSpec],
    client: Any,
    keys: Keys,
    log_dir: Path,
    policy: PolicySettings,
    timing: Timing,
    alerter: Alerter | None = None,
    console: Console | None = None,
    heartbeat_extra: Callable[[], dict[str, Any]] | None = None,
    on_tick: Callable[[], None] | None = None,
    install_signals: bool = True,
    poll_s: float = 0.5,
    created: Callable[[Supervisor], None] | None = None,
    component: str = "supervisor",
    deploy: Callable[[dict[str, Any]], None] | None = None,
) -> Supervisor:
    """Run children until SIGTERM/SIGINT; returns once none is left. ``deploy`` takes
    `reload`/`stop`/`start` requests (the control channel; SIGHUP is a reload)."""
    sup: Supervisor
    watch: RedisWatch

    def on_event(level: str, component: str, message: str) -> None:
        log.log(getattr(logging, level.upper(), logging.INFO), "%s: %s", component, message)
        watch.emit(level, component, message)
        if alerter and level == "error":
            alerter.alert(f"failed:{component}", "critical", f"{component} {message}", component)

    sup = Supervisor(specs, Spawner(lambda e: sup.post(e), log_dir, console), kill_group, time.monotonic,
                     policy, timing, on_event)
    if console is not None:
        console.width = max([console.width, *(len(s.name) for s in specs)])
    if created:
        created(sup)
    snapshot: dict[str, Any] = {}
    watch = RedisWatch(client, keys, {s.name: s.heartbeat for s in specs if s.heartbeat}, sup.post,
                       lambda: snapshot, heartbeat_extra, poll_s=poll_s, component=component)
    control = ControlListener(client, keys, sup.post, deploy)

    if install_signals:
        def stop(signum: int, _frame: object) -> None:
            sup.post(StopAll(signal.Signals(signum).name, force=sup.stopping and signum == signal.SIGINT))

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if deploy is not None:
            signal.signal(signal.SIGHUP, lambda _s, _f: deploy({"command": "reload"}))

    def tick() -> None:
        snapshot.clear()
        snapshot.update(sup.table())
        watched = {n: c.spec.heartbeat for n, c in sup.children.items() if c.spec.heartbeat}
        if watched != watch.components:  # a reload added or removed children
            watch.components = watched
        if on_tick:
            on_tick()

    watch.start()
    control.start()
    try:
        sup.run(on_tick=tick)
    finally:
        tick()
        watch.stop()
        control.stop()
        watch.join(5)
    return sup


def _setup_file_log(log_dir: Path) -> None:
    # Reporting: a full disk costs log lines (counted, reported once), never a traceback per line.
    h = logs.ReportingRotatingFileHandler(log_dir / "supervisor.log", maxBytes=10 * 1024 * 1024, backupCount=5)
    h.addFilter(logs.RedactingFilter())
    fmt = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s supervisor[%(process)d] %(message)s",
                            "%Y-%m-%dT%H:%M:%S")
    fmt.converter = time.gmtime
    h.setFormatter(fmt)
    logging.getLogger().addHandler(h)


class AlertLoop(threading.Thread):
    """Every ``every_s``: build the status document and run the alert rules on it."""

    def __init__(self, settings: Settings, client: Any, alerter: Alerter, every_s: float = 5.0,
                 thresholds: Any = None, paused: Callable[[], bool] = lambda: False) -> None:
        super().__init__(daemon=True, name="alerts")
        from multialpha.status.rules import AlertRules, thresholds_from_settings

        self.settings, self.client, self.every_s = settings, client, every_s
        self.rules = AlertRules(alerter, time.monotonic, thresholds or thresholds_from_settings(settings.alerts))
        self.halt = threading.Event()
        self.paused = paused

    def run(self) -> None:
        from multialpha.status.collect import collect

        keys = Keys(self.settings.redis.namespace)
        while not self.halt.wait(self.every_s):
            if self.paused():  # shutting down: children (and the sandbox clock) go away on purpose
                continue
            try:
                self.rules.learn(self.client, keys, self.settings.hub_symbols())  # each symbol's bar rhythm
                self.rules.check(collect(self.settings, self.client))
                self.rules.check_orders(self.client, keys)
                self.rules.alerter.resolve("redis:unreachable", "Redis reachable again")
            except redis.RedisError as e:
                self.rules.alerter.open("redis:unreachable", "critical", f"Redis unreachable from the supervisor: {e}")
            except Exception as e:  # noqa: BLE001 - alerting must never take the supervisor down
                log.warning("alert rules skipped this round: %s", e)


def up(settings: Settings, config_path: Path, only: str | None = None, console: Console | None = None,
       health_port: int | None = None, log_json: bool = False) -> int:
    """Foreground supervisor; returns the process exit code."""
    other = running_pid(settings)
    if other and other != os.getpid():
        raise UpError(f"a supervisor is already running (pid {other}); `multialpha down` stops it")
    names = select(settings, only)
    log_dir = runtime.log_dir(settings)
    _setup_file_log(log_dir)
    address, managed = redis_setup.ensure(settings)
    log.info("redis: %s", address.why)  # which Redis, and why (redis.managed)
    keys = Keys(settings.redis.namespace)
    client = address.client(db=settings.redis.db, socket_timeout=2.0, socket_connect_timeout=2.0)
    sandbox_args: tuple[str, ...] = ()
    if "sandbox" in names:
        runtime.sandbox_state_path(settings).unlink(missing_ok=True)  # the hub waits for a fresh one
        resume = sandbox_resume_at(settings, client, keys)
        if resume is not None:
            log.info("sandbox: continuing the market after the persisted bar log, at %s (delete %s for a fresh "
                     "start)", cme_time.iso_z(resume), runtime.runtime_dir(settings) / "redis")
            sandbox_args = ("--resume-at", cme_time.iso_z(resume))
    specs = plan(settings, config_path.resolve(), names, address.child_env(), log_json=log_json,
                 sandbox_args=sandbox_args)
    pid_file = pid_path(settings)
    pid_file.write_text(f"{os.getpid()}\n")
    alerter = alerts_from_settings(settings.alerts.urls, dict(os.environ), window_s=settings.alerts.window_s,
                                   legacy_env=settings.alerts.webhook_url_env)
    deployers: list[Deployer] = []

    def extra() -> dict[str, Any]:
        now = deployers[0].settings if deployers else settings  # after a reload: its strategies
        modes = {n: now.order_destination(n) for n in now.enabled_strategies}
        return {"managed_redis": managed is not None, "order_modes": modes, "config": str(config_path.resolve())}

    metrics = Metrics()
    counted: dict[str, int] = {}
    last_tick = [time.monotonic()]
    health = None
    if health_port is not None:
        health = serve_health(health_port, lambda: (time.monotonic() - last_tick[0] < 5.0, {"component": "supervisor"}),
                              metrics.registry)

    def on_tick() -> None:
        last_tick[0] = time.monotonic()
        if sup_ref:
            for name, row in sup_ref[0].table().items():
                delta = row["restarts"] - counted.get(name, 0)
                if delta > 0:
                    metrics.restarts.labels(component=name).inc(delta)
                    counted[name] = row["restarts"]
        watch_redis()

    def watch_redis() -> None:
        if sup_ref and sup_ref[0].stopping:
            return  # shutting down: Redis goes last, never restarted now
        if managed and managed.proc and managed.proc.poll() is not None:
            alerter.alert("redis:managed", "critical", f"managed redis-server exited ({managed.proc.returncode})")
            log.error("managed redis-server exited with %s; restarting it on the same port", managed.proc.returncode)
            _restart_managed(managed, address)
            redis_setup.record(settings, address, managed)  # the new pid

    sup_ref: list[Supervisor] = []
    deploy_client = address.client(db=settings.redis.db, socket_timeout=5.0, decode_responses=True)

    def created(sup: Supervisor) -> None:
        sup_ref.append(sup)
        deployers.append(Deployer(settings, config_path.resolve(), deploy_client, sup.post,
                                  lambda s, names: plan(s, config_path.resolve(), names, address.child_env(),
                                                        log_json=log_json), alerter, whole=only is None))

    try:  # the gate applies the limits of the config `up` runs (and, after a reload, the new ones)
        Gate(settings, deploy_client).write_limits(settings)
    except redis.RedisError as e:
        log.warning("could not write the portfolio limits to Redis (the workers' own apply): %s", e)
    alert_loop = AlertLoop(settings, address.client(db=settings.redis.db, socket_timeout=2.0, decode_responses=True),
                           alerter, paused=lambda: bool(sup_ref) and sup_ref[0].stopping)
    alert_loop.start()
    verifier = verify_schedule.start_for_up(settings, config_path.resolve(), address.child_env(), address.client(
        db=settings.redis.db, socket_timeout=5.0, decode_responses=True), alerter, log_dir)  # docs/verify.md
    try:
        log.info("starting: %s", ", ".join(names))
        run_supervisor(specs, client, keys, log_dir, PolicySettings.from_settings(settings.supervisor),
                       Timing.from_settings(settings.supervisor), alerter, console or Console(),
                       heartbeat_extra=extra, on_tick=on_tick, created=created,
                       component=supervisor_component(only),
                       deploy=lambda doc: threading.Thread(target=deployers[0].answer, args=(doc,), daemon=True,
                                                           name="deploy").start())
    finally:
        alert_loop.halt.set()
        if verifier:
            verifier.stop()
        if health:
            health.close()
        if managed:
            managed.stop()
        if running_pid(settings) in (None, os.getpid()):
            pid_file.unlink(missing_ok=True)
        log.info("all stopped")
    return 0


def sandbox_resume_at(settings: Settings, client: Any, keys: Keys) -> datetime | None:
    """Where the sandbox clock must start so the market continues the persisted bar log.

    The sandbox replays its synthetic market from ``sandbox.from_date`` on every
    start, but the managed Redis persists: a second `up` would otherwise sit
    silent (the hub refuses minutes its bar log already has) for as long as the
    first run lasted. None = nothing logged after the first session open.
    """
    from multialpha.hub.publisher import stream_id_ns

    pipe = client.pipeline(transaction=False)
    symbols = settings.hub_symbols()
    for sym in symbols:
        pipe.xrevrange(keys.bar_log(sym), count=1)
    try:
        newest = max((stream_id_ns(e[0][0]) for e in pipe.execute() if e), default=None)
    except redis.RedisError as e:
        log.warning("could not read the bar log to resume the sandbox: %s", e)
        return None
    if newest is None:
        return None
    resume = cme_time.from_ns(newest) + timedelta(minutes=1)
    first_open = cme_time.session_bounds(date.fromisoformat(settings.sandbox.from_date))[0]
    return resume if resume > first_open else None


def _restart_managed(managed: ManagedRedis, address: redis_setup.RedisAddress) -> None:
    try:
        managed.password = ""
        managed.start()
        c = redis.Redis(host=address.host, port=address.port)
        c.config_set("requirepass", address.password)
        c.close()
        managed.password = address.password
    except Exception:  # noqa: BLE001 - keep supervising; children will report Redis trouble
        log.exception("could not restart the managed redis-server")
