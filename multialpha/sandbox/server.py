"""``Sandbox``: both gateways in this process, the clock, and the state file.

    with Sandbox(settings, seed=7, speed=0) as sb:      # ports default to free ones
        ep = endpoints.from_state(sb.state)             # what hub/workers use
        sb.faults.rst()                                 # tests: inject faults
        sb.set_clock(datetime(2025, 12, 2, 15, tzinfo=UTC))

The live gateway runs on an asyncio loop in a background thread, the
historical gateway on a ThreadingHTTPServer (TLS) in another. The state file
(``runtime.sandbox_state_path(settings)`` unless ``state_file`` is given) is
written on start and on every clock change, and removed on stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import string
import threading
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from multialpha import cme_time, runtime
from multialpha.config import Settings
from multialpha.sandbox.faults import Faults
from multialpha.sandbox.historical import HistoricalService
from multialpha.sandbox.historical_http import HistoricalServer
from multialpha.sandbox.live import LiveGateway
from multialpha.sandbox.market import SyntheticMarket
from multialpha.sandbox.state import SandboxState
from multialpha.sandbox import tls

log = logging.getLogger(__name__)

_KEY_ALPHABET = string.ascii_letters + string.digits


def generate_key() -> str:
    """A valid-looking Databento key: 'db-' + 29 alphanumerics (32 chars)."""
    return "db-" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(29))


def validate_key(key: str) -> str:
    if len(key) != 32 or not key.startswith("db-"):
        raise ValueError("a Databento API key is 32 characters starting with 'db-'")
    return key


class Sandbox:
    def __init__(
        self,
        settings: Settings,
        *,
        seed: int | None = None,
        speed: float | None = None,
        key: str | None = None,
        live_port: int = 0,
        hist_port: int = 0,
        from_date: date | None = None,
        days: int | None = None,
        state_file: Path | None = None,
        host: str = "127.0.0.1",
        start_at: datetime | None = None,
        fixtures_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.seed = settings.sandbox.seed if seed is None else int(seed)
        self.speed = settings.sandbox.speed if speed is None else float(speed)
        if self.speed < 0:
            raise ValueError("speed must be >= 0")
        self.key = validate_key(key) if key else generate_key()
        self.host = host
        self._live_port = live_port
        self._hist_port = hist_port
        self.state_file = Path(state_file) if state_file else runtime.sandbox_state_path(settings)
        self.market = SyntheticMarket(settings, self.seed, from_date=from_date, days=days)
        if settings.sandbox.store_dir:
            self.market.open_store(settings.path(settings.sandbox.store_dir))
        self.faults = Faults()
        self.fixtures_dir = fixtures_dir
        open_ = cme_time.session_bounds(self.market.from_date)[0]
        self._start_at = start_at or open_
        self._state: SandboxState | None = None
        self._state_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.live: LiveGateway | None = None
        self.historical: HistoricalServer | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> SandboxState:
        if self._state is None:
            raise RuntimeError("sandbox not started")
        return self._state

    def _keys(self) -> set[str]:
        return {self.key}

    def set_clock(self, when: datetime) -> None:
        """Jump (or pin, with speed 0) the sandbox clock to ``when``; rewrites the state file."""
        with self._state_lock:
            self._state = replace(self.state, clock_sim_ns=cme_time.to_ns(when), clock_wall_ns=time.time_ns())
            runtime.write_json_atomic(self.state_file, self._state.to_dict())
        if self.live is not None:
            self.live.wake_all()  # paced sessions release what the new clock allows, now

    def set_speed(self, speed: float) -> None:
        """Change the replay speed from "now" on (the clock stays continuous)."""
        with self._state_lock:
            st = self.state
            wall = time.time_ns()
            self._state = replace(st, speed=float(speed), clock_sim_ns=st.now_ns(wall), clock_wall_ns=wall)
            runtime.write_json_atomic(self.state_file, self._state.to_dict())
        if self.live is not None:
            self.live.wake_all()

    def control(self, what: str, form: dict[str, str]) -> dict[str, Any]:
        """Entry point of the cross-process control endpoint."""
        if what == "clock":
            if form.get("at"):
                self.set_clock(cme_time.parse_iso(form["at"]))
            if form.get("speed"):
                self.set_speed(float(form["speed"]))
            return self.state.to_dict()
        return self.faults.apply(form.get("action", ""), form)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> SandboxState:
        try:
            return self._start()
        except BaseException:
            self.stop()  # e.g. a port in use: leave no thread or half-bound gateway behind
            raise

    def _start(self) -> SandboxState:
        tls_files = tls.ensure(runtime.runtime_dir(self.settings) / "sandbox-tls", self.host)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run_loop() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run_loop, name="sandbox-live", daemon=True)
        self._thread.start()
        ready.wait()
        dataset = self.settings.databento.dataset
        self.live = LiveGateway(
            self.market, lambda: self.state, self._keys, dataset, self.faults, self._loop, self.host, self._live_port
        )
        live_port = self.live.run(self.live.start())
        service = HistoricalService(self.market, dataset, self.fixtures_dir)
        self.historical = HistoricalServer(
            service, lambda: self.state, self._keys, self.faults, tls_files.cert_path, tls_files.key_path,
            self.control, self.host, self._hist_port,
        )  # fmt: skip
        self.historical.start()
        self._state = SandboxState(
            host=self.host,
            live_port=live_port,
            hist_port=self.historical.port,
            api_key=self.key,
            ca_path=str(tls_files.ca_path),
            dataset=dataset,
            seed=self.seed,
            speed=self.speed,
            clock_sim_ns=cme_time.to_ns(self._start_at),
            clock_wall_ns=time.time_ns(),
            from_date=self.market.from_date.isoformat(),
            days=self.market.days,
            pid=os.getpid(),
            started=cme_time.iso_z(cme_time.utcnow()),
        )
        runtime.write_json_atomic(self.state_file, self._state.to_dict())
        log.info(
            "sandbox up: live %s:%d, historical https://%s:%d, seed %d, speed %g",
            self.host, live_port, self.host, self.historical.port, self.seed, self.speed,
        )  # fmt: skip
        return self._state

    def stop(self) -> None:
        if self.historical is not None:
            self.historical.stop()
            self.historical = None
        if self.live is not None and self._loop is not None:
            try:
                self.live.run(self.live.stop())
            except Exception:  # pragma: no cover - best effort on shutdown
                log.exception("stopping the live gateway")
            self.live = None
        if self._loop is not None:
            loop = self._loop
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            loop.close()
            self._loop = None
        if self.market.store is not None:
            self.market.store.close()  # generated days reach the disk for the next run
        if self._state is not None:
            current = SandboxState.read(self.state_file)
            if current is not None and current.pid == self._state.pid and current.live_port == self._state.live_port:
                self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
