"""Worker test helpers: config builder, bar publisher, in-process worker runner."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from multialpha import config as cfg
from multialpha import heartbeat, plugins
from multialpha.bar import Bar
from multialpha.keys import Keys
from tests.conftest import SHIPPED_CONFIG
from tests.worker import recorder_plugin
from tests.worker.doubles import RecordingRouter

UTC = timezone.utc


def register_recorder() -> None:
    pm = plugins.get_plugin_manager()
    if pm.get_plugin("test-recorder") is None:
        pm.register(recorder_plugin, name="test-recorder")


def config_dict(redis_port: int, tmp: Path, strategies: dict[str, Any], worker: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    base = cfg.load(
        SHIPPED_CONFIG,
        environ={
            "MULTIALPHA__REDIS__PORT": str(redis_port),
            "MULTIALPHA_RUNTIME_DIR": str(tmp / "run"),
            "MULTIALPHA_CACHE_DIR": str(tmp / "cache"),
        },
    )
    raw = base.model_dump(by_alias=True, exclude={"source_path"})
    raw["strategies"] = strategies
    raw["contract_map_path"] = str(base.path(base.contract_map_path))  # the test config lives in tmp
    raw["models_path"] = str(base.path(base.models_path))
    raw["worker"].update({"warmup_daily_bars": 0, "warmup_hourly_bars": 0, "qcheck_s": 0.2, **(worker or {})})
    raw.update(top)
    return raw


def recorder(instruments: list[str], refs: list[str] | None = None, **params: Any) -> dict[str, Any]:
    return {
        "strategy_type": "recorder",
        "params": params,
        "reference_feeds": refs or [],
        "instruments": {s: {"size": 1} for s in instruments},
    }


@pytest.fixture
def build_settings(redis_server: Any, tmp_path: Path) -> Callable[..., cfg.Settings]:
    register_recorder()

    def build(strategies: dict[str, Any], worker: dict[str, Any] | None = None, **top: Any) -> cfg.Settings:
        raw = config_dict(redis_server.port, tmp_path, strategies, worker, **top)
        path = tmp_path / "config.multi_alpha.yml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return cfg.load(path, environ={})

    return build


def make_bar(symbol: str, start: datetime, close: float = 100.0, volume: int = 10, contract: str = "") -> Bar:
    return Bar(symbol, start, close - 0.5, close + 1.0, close - 1.0, close, volume, contract or f"{symbol}Z5", 5, "live")


def publish(client: Any, bar: Bar, keys: Keys = Keys(), log: bool = True) -> None:
    """What the hub does: PUBLISH the JSON, XADD the same to the bar log with id {start_ms}-0."""
    if log:
        client.xadd(keys.bar_log(bar.symbol), {k: str(v) for k, v in bar.to_dict().items()}, id=f"{bar.start_ms}-0")
    client.publish(keys.bars(bar.symbol), bar.to_json())


def publish_closed(client: Any, minute: datetime, keys: Keys = Keys()) -> None:
    """What the hub does after a minute's bars: announce that minutes up to ``minute`` are over."""
    from multialpha.bar import minute_closed_json

    client.publish(keys.minute_closed(), minute_closed_json(minute))


class FixedClock:
    """A test-controlled clock (the worker's notion of 'now')."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll an asynchronous result with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class WorkerThread:
    settings: cfg.Settings
    strategy: str
    router: RecordingRouter
    clock: Any
    fetch: Any = None
    stop: threading.Event = field(default_factory=threading.Event)
    rc: list[int] = field(default_factory=list)

    def start(self) -> "WorkerThread":
        from multialpha.worker.runtime import run

        def target() -> None:
            self.rc.append(
                run(self.settings, self.strategy, stop_event=self.stop, router=self.router, clock=self.clock,
                    fetch=self.fetch or no_history, progress=False)
            )

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        return self

    def heartbeat(self, client: Any) -> dict[str, Any] | None:
        return heartbeat.read(client, Keys(), f"worker.{self.strategy}")

    def wait_live(self, client: Any, timeout: float = 20.0) -> dict[str, Any]:
        def live() -> Any:
            assert not self.rc, f"worker exited with {self.rc}"
            hb = self.heartbeat(client)
            return hb if hb and hb["state"] == "live" else None

        return wait_for(live, timeout, "LIVE")

    def shutdown(self, timeout: float = 10.0) -> int:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        return self.rc[0]


def no_history(schema: str, symbol: str, stype_in: str, start_ns: int, end_ns: int) -> Any:
    raise AssertionError(f"unexpected Historical request {schema} {symbol}")


@pytest.fixture
def workers() -> Iterator[list[WorkerThread]]:
    started: list[WorkerThread] = []
    yield started
    for w in started:
        if w.thread.is_alive():
            w.stop.set()
            w.thread.join(10)
