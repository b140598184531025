"""`multialpha verify` on a sandbox day traded live under `multialpha up`.

Live: two sandbox trading days through the whole pipeline (tests/parity/helpers.run_live:
sandbox gateways -> hub -> bar logs -> three workers -> paper journal), so the second day starts
with positions carried from the first. Then, while the sandbox is pinned after the close, the
real CLI verifies the second day from the bar logs: zero differences. One journal entry of that
day is altered in Redis (its side), and verify must report exactly that difference, name its
bar and exit non-zero.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from multialpha import cme_time, runtime
from multialpha.keys import Keys
from multialpha.supervisor import redis_setup
from tests.parity import helpers as h

SPEED = 1500.0
FLIP = {"long": "short", "short": "long"}
FIRST, DAY = date(2025, 12, 9), date(2025, 12, 10)  # ibs_b enters 6B on 12-09 and carries it into 12-10


def _verify(cfg: Path, env: dict[str, str], day: date) -> tuple[int, dict[str, Any], str]:
    p = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(cfg), "verify", "--day", day.isoformat(),
                        "--json"], env=env, capture_output=True, text=True, timeout=600)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else {}, p.stderr


def _flip_side(client: Any, keys: Keys, day: date) -> dict[str, str]:
    """Rewrite the journal stream (same ids) with the side of the day's first gate decision flipped."""
    entries = client.xrange(keys.orders())
    target = next(f for _, f in entries if f.get("event") in ("intent", "denied") and f.get("bar_start")
                  and cme_time.trading_day(cme_time.parse_iso(f["bar_start"])) == day)
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.orders())
    for sid, f in entries:
        if f is target:
            f = dict(f, side=FLIP[f["side"]])
        pipe.xadd(keys.orders(), f, id=sid)
    pipe.execute()
    return target


@pytest.mark.slow
def test_verify_live_day_then_altered_journal_entry(tmp_path: Path, sandbox_store: Path) -> None:
    cfg = h.write_config(tmp_path, FIRST)
    # The supervisor verifies each day 2 market minutes after its close: the test pins the clock
    # 4 minutes after the last close (helpers.PIN_AFTER), so both days are verified by `up` itself.
    env = h.env_for(tmp_path, sandbox_store, {"MULTIALPHA__VERIFY__AFTER_CLOSE": "true", "MULTIALPHA__VERIFY__DELAY_S": "120"})

    def then(settings: Any) -> Any:
        st = runtime.read_json(redis_setup.state_path(settings))
        venv = dict(env, MULTIALPHA__REDIS__HOST=st["host"], MULTIALPHA__REDIS__PORT=str(st["port"]),
                    MULTIALPHA__REDIS__PASSWORD=st.get("password") or "")
        client = redis_setup.connect(settings.model_copy(update={"redis": settings.redis.model_copy(
            update={"host": st["host"], "port": int(st["port"]), "password": st.get("password") or ""})}))
        keys = Keys(settings.redis.namespace)
        # `up` ran verify for both days after their closes (a thread, a subprocess): wait for the second.
        by_up = h._poll("the supervisor's verify of the last day",
                        lambda: client.hget(keys.verify_results(), DAY.isoformat()), 900, 1.0)
        by_up = {d: json.loads(v) for d, v in client.hgetall(keys.verify_results()).items()}
        clean = _verify(cfg, venv, DAY)
        target = _flip_side(client, keys, DAY)
        altered = _verify(cfg, venv, DAY)
        stored = json.loads(client.hget(keys.verify_results(), DAY.isoformat()))
        client.close()
        return clean, altered, target, stored, by_up

    live, (clean, altered, target, stored, by_up) = h.run_live(cfg, env, FIRST, DAY, SPEED, then=then)
    print("verify clean:", clean[0], json.dumps(clean[1].get("counts")), "carried", clean[1].get("carried"),
          "| altered:", altered[0], json.dumps(altered[1].get("differences")))
    for name, w in live.workers.items():  # the live side saw every bar live
        assert w["replayed"] == 0 and w["dropped"] == {} and w["errors"] == 0, (name, w)

    # The supervisor's own runs: both days verified after their closes, no difference.
    assert sorted(by_up) == [FIRST.isoformat(), DAY.isoformat()], by_up
    assert all(v["ok"] and v["differences"] == 0 and not v["error"] for v in by_up.values()), by_up

    code, doc, err = clean
    assert code == 0, (code, doc, err)
    assert doc["ok"] and doc["differences"] == [] and doc["first_bar"] == ""
    # The comparison must have had something to compare, and the day must start with a carried book
    # (on this day the carried positions fill max_positions: the gate's refusals prove the seeding).
    assert sum(c["live_orders"] + c["live_denied"] for c in doc["counts"].values()) > 0, doc["counts"]
    assert sum(c["live_vetoes"] for c in doc["counts"].values()) > 0, doc["counts"]
    assert doc["carried"] >= 1, doc

    code, doc, err = altered
    assert code == 1, (code, doc, err)
    assert not doc["ok"] and len(doc["differences"]) == 1, doc["differences"]
    d = doc["differences"][0]
    assert (d["category"], d["change"], d["strategy"], d["symbol"], d["bar_start"]) == (
        "order", "changed", target["strategy"], target["symbol"], target["bar_start"])
    assert FLIP[target["side"]] in d["live"].split() and target["side"] in d["replay"].split(), d
    assert doc["first_bar"] == target["bar_start"]
    # What status shows: the stored summary of the day.
    assert stored["day"] == DAY.isoformat() and stored["differences"] == 1 and not stored["ok"]


@pytest.mark.parametrize("args,code,says", [
    (["--day", "2025-12-13"], 2, "Saturday (weekend)"),
    (["--day", "13/12/2025"], 2, "expected a date YYYY-MM-DD"),
    (["--strategy", "nope"], 2, "--strategy"),
    (["--day", "2025-12-10"], 3, "connection refused"),  # nothing listens at the configured Redis
])
def test_bad_input_exits_with_a_clear_line(tmp_path: Path, args: list[str], code: int, says: str) -> None:
    from click.testing import CliRunner

    from multialpha.cli import main
    from multialpha.managed_redis import free_port
    from tests.conftest import SHIPPED_CONFIG

    env = {"MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "MULTIALPHA__REDIS__HOST": "127.0.0.1",
           "MULTIALPHA__REDIS__PORT": str(free_port()), "MULTIALPHA__REDIS__PASSWORD": "s3cret-pw"}
    res = CliRunner().invoke(main, ["--config", str(SHIPPED_CONFIG), "verify", *args], env=env)
    assert res.exit_code == code, res.output
    assert says in res.output and "s3cret-pw" not in res.output


def test_the_table_names_the_difference_and_the_first_bar(capsys: pytest.CaptureFixture[str]) -> None:
    from multialpha.verify import cli, compare, engine

    d = compare.Difference("order", "changed", "breakout", "ES", "2025-12-10T01:59:00Z",
                           "denied breakout ES short entry", "denied breakout ES long entry")
    counts = {"breakout": {"live_orders": 0, "replay_orders": 0, "live_denied": 18, "replay_denied": 18,
                           "live_vetoes": 20, "replay_vetoes": 20}}
    cli._print(engine.VerifyResult("2025-12-10", ["breakout"], [d], counts, d.bar_start, 2,
                                   notes=["carried into the day: breakout short 1 RTY (RTYZ5) since x"]))
    out = capsys.readouterr().out
    assert "18/18" in out and "20/20" in out and "carried into the day: breakout short 1 RTY" in out
    assert "denied breakout ES short entry" in out and "denied breakout ES long entry" in out
    assert out.rstrip().splitlines()[-1] == "verify 2025-12-10: 1 difference (first bar 2025-12-10T01:59:00Z)"
