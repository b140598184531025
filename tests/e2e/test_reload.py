"""`multialpha reload` / `stop` / `start` on a running `multialpha up` (sandbox, real processes).

One rig (tests/e2e/up_rig.py: managed Redis, sandbox with a pinned clock the test steps,
hub, two `example_sma` workers sending live orders to a loopback TradersPost stand-in)
reused for every step, since starting the system is the expensive part:

1. a broken config on reload changes nothing (exit 2, every pid the same);
2. adding a strategy (on a new instrument) and lowering a portfolio limit: the new worker
   goes LIVE, the hub resubscribes without restarting, every other pid is the same, the
   gate's limits change at once and a halt survives;
3. changing one strategy's parameter (SIGHUP to `up`) restarts only that worker;
4. `stop` holds a strategy down (the watchdog does not restart it) until `start`;
   (2b) a plugin upgrade on disk shows as a mismatch until `restart` runs the new version;
5. removing a strategy that holds a position is refused, then `reload --flatten` exits the
   position through the normal order path (webhook delivered) and stops the worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
import yaml

from multialpha import runtime
from multialpha.portfolio.gate import Gate
from multialpha.supervisor.reload import STOP_FLATTEN
from tests import tiny_plugin
from tests.e2e import up_rig as R


def _cli(run: R.UpRun, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "multialpha", "--config", str(run.cfg), *args], env=run.env,
                          capture_output=True, text=True, timeout=300, cwd=run.tmp)


def _pids(run: R.UpRun) -> dict[str, Any]:
    return {n: c.get("pid") for n, c in run.children().items()}


def _write(run: R.UpRun, doc: dict[str, Any]) -> None:
    run.cfg.write_text(yaml.safe_dump(doc, sort_keys=False))


def _live(run: R.UpRun, name: str) -> bool:
    kid = run.children().get(f"worker.{name}") or {}
    h = run.hb(f"worker.{name}") or {}
    return h.get("state") == "live" and h.get("pid") == kid.get("pid") is not None


@pytest.mark.slow
def test_reload_stop_start_on_a_running_deployment(tmp_path: Any) -> None:
    run = R.new_run(tmp_path, "reload", tmp_path / "cache")
    site = tmp_path / "site"  # a plugin distribution installed for this deployment only
    tiny_plugin.install(site, "1.0")
    run.env["PYTHONPATH"] = os.pathsep.join(x for x in (str(site), run.env.get("PYTHONPATH", "")) if x)
    try:
        run.begin()
        assert run.client is not None
        gate = Gate(run.settings, run.client)
        doc = yaml.safe_load(run.cfg.read_text())
        before = _pids(run)
        assert set(before) == {"sandbox", "hub", "worker.sma_a", "worker.sma_b"} and all(before.values())

        # 1. A broken config: refused with the key named, nothing changes.
        broken = yaml.safe_load(run.cfg.read_text())
        broken["strategies"]["sma_a"]["instruments"]["CL"]["size"] = 0
        _write(run, broken)
        out = _cli(run, "reload")
        assert out.returncode == 2, out
        assert "strategies.sma_a.instruments.CL.size" in out.stderr and "nothing changed" in out.stderr
        assert _pids(run) == before
        _write(run, doc)

        # 2. Add a strategy on a new root + lower max_positions, while halted.
        assert _cli(run, "halt", "--reason", "reload test").returncode == 0
        doc["strategies"]["sma_c"] = {"strategy_type": "tiny_sma", "enabled": True,
                                      "params": {"period": 1, "allow_short": True}, "reference_feeds": [],
                                      "instruments": {"ES": {"size": 1}}}
        doc["portfolio"]["max_positions"] = 40
        _write(run, doc)
        out = _cli(run, "reload")
        assert out.returncode == 0, out
        assert "worker.sma_c" in out.stdout and "starting (added)" in out.stdout, out.stdout
        assert "max_positions 50 -> 40" in out.stdout, out.stdout
        R.poll("sma_c LIVE", lambda: _live(run, "sma_c"), context=run.tail)
        R.poll("hub subscribed ES", lambda: "ES" in ((run.hb("hub") or {}).get("symbols") or []), context=run.tail)
        after = _pids(run)
        assert {n: after[n] for n in before} == before  # hub included: it resubscribed, not restarted
        assert run.client.hget(gate.limits_key(), "max_positions") == "40"
        assert run.client.get(gate.halt_key()) is not None  # the halt survived the reload
        assert _cli(run, "resume").returncode == 0

        # 2b. Plugin upgrade: the worker reports the version it runs; after the upgrade on disk
        # `plugins` and status show the mismatch, and `restart` runs the new version.
        assert ((run.hb("worker.sma_c") or {}).get("plugin") or {}).get("version") == "1.0"
        tiny_plugin.install(site, "1.1")
        out = _cli(run, "plugins")
        assert out.returncode == 0 and re.search(r"worker\.sma_c .*tinyplug .*1\.0 .*1\.1 .*MISMATCH", out.stdout), out
        status = json.loads(_cli(run, "status", "--json").stdout)
        [row] = [x for x in status["strategies"] if x["name"] == "sma_c"]
        assert row["plugin"]["mismatch"] and any("sma_c runs tinyplug 1.0, 1.1 installed" in r["text"]
                                                 for r in status["overall"]["reasons"])
        old = _pids(run)
        assert _cli(run, "restart", "sma_c").returncode == 0
        R.poll("sma_c runs 1.1", lambda: _live(run, "sma_c")
               and ((run.hb("worker.sma_c") or {}).get("plugin") or {}).get("version") == "1.1", context=run.tail)
        assert {n: p for n, p in _pids(run).items() if p != old[n]}.keys() == {"worker.sma_c"}

        # 3. One strategy's parameter, applied by SIGHUP to `up`: only that worker restarts.
        before = _pids(run)
        doc["strategies"]["sma_b"]["params"]["period"] = 2
        _write(run, doc)
        assert run.up is not None
        run.up.send_signal(signal.SIGHUP)  # what `systemctl reload` / `kill -HUP` do: same as `reload`
        log = runtime.log_dir(run.settings) / "supervisor.log"
        R.poll("the supervisor logged the reload", lambda: re.search(
            r"reload applied: .*worker\.sma_b: restarting pid \d+ \(settings changed\) \[params\]", log.read_text()))
        R.poll("sma_b LIVE again", lambda: _live(run, "sma_b") and _pids(run)["worker.sma_b"] != before["worker.sma_b"],
               context=run.tail)
        after = _pids(run)
        assert {n: p for n, p in after.items() if p != before[n]}.keys() == {"worker.sma_b"}

        # 4. stop holds a strategy down (no position yet: the clock has not moved) until start.
        out = _cli(run, "stop", "sma_c")
        assert out.returncode == 0, out
        R.poll("sma_c stopped", lambda: (run.children().get("worker.sma_c") or {}).get("state") == "stopped")
        seen: set[str] = set()

        def stays_stopped() -> bool:  # several supervisor rounds later (its backoff is 0.2-1 s), still down
            sup = run.hb("supervisor") or {}
            assert (sup.get("children") or {}).get("worker.sma_c", {}).get("state") == "stopped", sup
            seen.add(str(sup.get("updated")))
            return len(seen) >= 6

        R.poll("supervisor rounds with sma_c stopped", stays_stopped)
        out = _cli(run, "start", "sma_c")
        assert out.returncode == 0, out
        R.poll("sma_c LIVE after start", lambda: _live(run, "sma_c"), context=run.tail)

        # 5. A position, then remove its strategy.
        def sma_a_holds() -> bool:
            if not gate.positions("sma_a"):
                run.advance_to(run.clock + R.STEP)
                return False
            return True

        R.poll("sma_a holds a position", sma_a_holds, every=0.3, context=run.tail)
        del doc["strategies"]["sma_a"]
        _write(run, doc)
        before = _pids(run)
        out = _cli(run, "reload")
        assert out.returncode == 1 and "sma_a" in out.stderr and "--flatten" in out.stderr, out
        assert _pids(run) == before and gate.positions("sma_a")

        proc = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(run.cfg), "reload", "--flatten"],
                                env=run.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=run.tmp)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, (stdout, stderr, run.tail())
        assert "sma_a: flat" in stdout and "worker.sma_a" in stdout, stdout
        assert not gate.positions("sma_a")
        R.poll("worker.sma_a gone", lambda: "worker.sma_a" not in run.children())
        exits = [e for e in run.journal() if e.get("strategy") == "sma_a" and e.get("kind") == "exit"
                 and e.get("event") == "intent"]
        assert exits and STOP_FLATTEN in exits[-1].get("signal_reason", ""), exits  # its worker, its order path
        assert run.rx.delivered()[exits[-1]["order_id"]] == 1  # sent to the broker stand-in once
        after = _pids(run)
        assert {n: after[n] for n in after} == {n: before[n] for n in after}  # nobody else restarted
    finally:
        run.stop()
        run.rx.down()
