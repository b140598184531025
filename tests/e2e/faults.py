"""Fault-injection harness: a real hub process on an in-test sandbox, feed time stepped by the test.

The sandbox runs paced with a practically pinned clock (speed 1e-9): the live gateway releases exactly
the trades with ``ts_recv <=`` the clock, and the test moves the clock minute by minute. So a run is a
pure function of (seed, range, fault): the bar log of a faulted run can be compared bar for bar with a
fault-free reference, and no step waits for wall time (only polling with a deadline for the hub).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import redis

from multialpha import config as cfg
from multialpha import heartbeat as hb
from multialpha.keys import Keys
from tests.conftest import REPO, SHIPPED_CONFIG

SEED = 7
T_START = datetime(2025, 12, 2, 15, 0, tzinfo=timezone.utc)  # Tuesday 09:00 CT, US session
MINUTES = 16  # the compared range: [T_START, T_START + MINUTES - 2 min); the last 2 minutes may be open
STEP = timedelta(seconds=30)
DEADLINE_S = 90.0  # a bound on polling (2 shared cores), never a timing assertion


def hub_env(runtime_dir: Path, port: int, db: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA")}
    env.update({
        "MULTIALPHA_RUNTIME_DIR": str(runtime_dir),
        "MULTIALPHA_CACHE_DIR": str(runtime_dir / "cache"),
        "MULTIALPHA__REDIS__PORT": str(port),
        "MULTIALPHA__REDIS__DB": str(db),
        "MULTIALPHA__HUB__SILENCE_TIMEOUT_S": "8",  # > the 5 s minimum gateway heartbeat: idle is not silent
        "MULTIALPHA__HUB__RECONNECT_INITIAL_S": "0.2",
        "MULTIALPHA__HUB__RECONNECT_CAP_S": "1",
        "MULTIALPHA__HUB__HEARTBEAT_TTL_S": "5",
    })
    env.pop("DATABENTO_API_KEY", None)
    return env


@dataclass
class Outcome:
    scenario: str
    bars: dict[str, dict[int, dict[str, Any]]]  # symbol -> start ms -> fields (without "source")
    published: list[tuple[str, int]]  # (symbol, start ms) of every PUBLISH seen, in order
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)


class HubRun:
    """One hub process against ``sandbox``; Redis db ``db`` is flushed first."""

    def __init__(self, sandbox: Any, settings: cfg.Settings, runtime_dir: Path, port: int, db: int) -> None:
        self.sb, self.settings, self.runtime_dir, self.port, self.db = sandbox, settings, runtime_dir, port, db
        self.client = redis.Redis(host="127.0.0.1", port=port, db=db, decode_responses=True)
        self.keys = Keys(settings.redis.namespace)
        self.roots = settings.hub_symbols()
        self.proc: subprocess.Popen[bytes] | None = None
        self.clock = T_START
        self.published: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self.log = runtime_dir / f"hub-db{db}.log"

    # -- processes -----------------------------------------------------------------------------
    def start_hub(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "hub"],
                env=hub_env(self.runtime_dir, self.port, self.db), stdout=out, stderr=out, cwd=REPO,
                start_new_session=True,
            )

    def kill_hub(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        self.proc.wait(30)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._listener is not None:
            self._listener.join(5)

    # -- observation -----------------------------------------------------------------------------
    def _listen(self) -> None:
        """Every bar PUBLISHed (what a live worker receives) - duplicates show up here."""
        while not self._stop.is_set():
            try:
                ps = self.client.pubsub(ignore_subscribe_messages=True)
                ps.subscribe(*(self.keys.bars(r) for r in self.roots))
                self._subscribed.set()
                while not self._stop.is_set():
                    msg = ps.get_message(timeout=0.2)
                    if msg and msg["type"] == "message":
                        doc = json.loads(msg["data"])
                        start = int(datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
                        self.published.append((doc["symbol"], start))
                ps.close()
            except redis.RedisError:  # the Redis-kill scenario: resubscribe once it is back
                time.sleep(0.1)

    def hub_state(self) -> str:
        beat = hb.read(self.client, self.keys, "hub") or {}
        return str(beat.get("state", ""))

    def settled(self, through: datetime) -> bool:
        """The hub's feed clock reached ``through`` and nothing closed is still pending for Redis."""
        beat = hb.read(self.client, self.keys, "hub") or {}
        clock, c = str(beat.get("feed_clock") or ""), beat.get("counters") or {}
        if not clock:
            return False
        at = datetime.fromisoformat(clock.replace("Z", "+00:00"))
        return at >= through and c.get("pending", 1) == 0

    def reconnects(self) -> int:
        beat = hb.read(self.client, self.keys, "hub") or {}
        return int((beat.get("counters") or {}).get("reconnects", 0))

    def wait(self, what: str, cond: Callable[[], bool]) -> float:
        t = time.monotonic()
        while not cond():
            if time.monotonic() - t > DEADLINE_S:
                tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                raise AssertionError(f"timed out waiting for {what}; hub log tail:\n{tail}")
            if self.proc is not None and self.proc.poll() is not None and what != "hub gone":
                raise AssertionError(f"hub exited ({self.proc.returncode}) waiting for {what}:\n"
                                     + self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.05)
        return time.monotonic() - t

    def bars(self) -> dict[str, dict[int, dict[str, Any]]]:
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for r in self.roots:
            rows = self.client.xrange(self.keys.bar_log(r))
            out[r] = {int(i.split("-")[0]): {k: v for k, v in f.items() if k != "source"} for i, f in rows}
        return out

    def last_ms(self) -> dict[str, int]:
        return {r: max(b) for r, b in self.bars().items() if b}

    # -- the feed clock --------------------------------------------------------------------------
    def begin(self) -> None:
        self.client.flushdb()
        self.sb.faults.clear()
        self.sb.set_speed(1e-9)
        self.sb.set_clock(T_START)
        self.clock = T_START
        self._subscribed = threading.Event()
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listener.start()
        self._subscribed.wait(10)
        self.start_hub()
        self.wait("hub connected", lambda: self.hub_state() == "connected")

    def advance_to(self, when: datetime) -> None:
        while self.clock < when:
            self.clock = min(when, self.clock + STEP)
            self.sb.set_clock(self.clock)

    def caught_up(self, through: datetime, reference: dict[str, dict[int, dict[str, Any]]]) -> bool:
        """Every reference bar starting before ``through`` is in this run's bar log."""
        limit = int(through.timestamp() * 1000)
        have = self.bars()
        return all(ms in have.get(r, {}) for r, rows in reference.items() for ms in rows if ms < limit)

    def finish(self, scenario: str, reference: "Outcome | None") -> Outcome:
        end = T_START + timedelta(minutes=MINUTES)
        self.advance_to(end)
        cut = end - timedelta(minutes=2)
        self.wait("hub feed clock past the cut, every closed bar flushed", lambda: self.settled(cut + timedelta(seconds=30)))
        if reference is not None:
            try:
                self.wait("faulted run caught up with the reference", lambda: self.caught_up(cut, reference.bars))
            except AssertionError:
                pass  # reported as missing bars by the comparison
        limit = int(cut.timestamp() * 1000)
        bars = {r: {ms: f for ms, f in rows.items() if ms < limit} for r, rows in self.bars().items()}
        pub = [(s, ms) for s, ms in self.published if ms < limit]
        return Outcome(scenario, bars, pub)


def compare(ref: Outcome, run: Outcome) -> dict[str, int]:
    missing = sum(1 for r, rows in ref.bars.items() for ms in rows if ms not in run.bars.get(r, {}))
    extra = sum(1 for r, rows in run.bars.items() for ms in rows if ms not in ref.bars.get(r, {}))
    changed = sum(1 for r, rows in ref.bars.items() for ms, f in rows.items()
                  if ms in run.bars.get(r, {}) and run.bars[r][ms] != f)
    seen: set[tuple[str, int]] = set()
    dup_pub = 0
    for key in run.published:
        dup_pub += key in seen
        seen.add(key)
    return {"missing": missing, "extra": extra, "changed": changed, "dup_published": dup_pub,
            "bars": sum(len(r) for r in ref.bars.values())}


def table(rows: list[tuple[str, str, dict[str, int]]]) -> str:
    head = f"{'scenario':<34} {'recovery':>9} {'bars':>5} {'missing':>8} {'changed':>8} {'extra':>6} {'dup pub':>8}"
    lines = [head, "-" * len(head)]
    for name, rec, d in rows:
        lines.append(f"{name:<34} {rec:>9} {d['bars']:>5} {d['missing']:>8} {d['changed']:>8} {d['extra']:>6}"
                     f" {d['dup_published']:>8}")
    return "\n".join(lines)
