"""The supervisor's daily verify: which day, when, once; alerts; on a clock the test moves.

The verify command here is a real subprocess of a stub script that prints what
`multialpha verify --json` prints (the real command runs in tests/verify/test_cli.py under `up`).
The alert sink is a recorder (no notification endpoint here); the Redis is real.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from multialpha import cme_time
from multialpha.alerts import Alert, Alerter
from multialpha.keys import Keys
from multialpha.verify import schedule, store

DAY = date(2025, 12, 10)  # a Wednesday
OPEN, CLOSE = cme_time.session_bounds(DAY)


class Recorder:
    def __init__(self) -> None:
        self.got: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.got.append(alert)


def test_first_day_is_the_first_one_traded_from_its_open() -> None:
    assert schedule.first_day(OPEN) == DAY
    assert schedule.first_day(OPEN + timedelta(seconds=59)) == DAY
    assert schedule.first_day(OPEN + timedelta(minutes=5)) == date(2025, 12, 11)  # joined halfway
    assert schedule.first_day(CLOSE + timedelta(minutes=10)) == date(2025, 12, 11)  # in the halt
    fri_close = cme_time.session_bounds(date(2025, 12, 12))[1]
    assert schedule.first_day(fri_close + timedelta(days=1)) == date(2025, 12, 15)  # weekend -> Monday


def test_due_after_the_delay_once() -> None:
    delay = timedelta(minutes=10)
    assert schedule.due(CLOSE + timedelta(minutes=9), delay, DAY, set()) is None
    assert schedule.due(CLOSE + timedelta(minutes=10), delay, DAY, set()) == DAY
    assert schedule.due(CLOSE + timedelta(minutes=10), delay, DAY, {DAY}) is None
    # the next day's session: still DAY (the last closed one), never a day before from_day
    assert schedule.due(CLOSE + timedelta(hours=5), delay, DAY, set()) == DAY
    assert schedule.due(CLOSE + timedelta(hours=5), delay, date(2025, 12, 11), set()) is None
    # Monday after the weekend: Friday's day
    fri = date(2025, 12, 12)
    assert schedule.due(cme_time.session_bounds(date(2025, 12, 15))[0], delay, DAY, set()) == fri


def _stub(doc: dict, code: int) -> list[str]:
    return [sys.executable, "-c", f"import json, sys; print(json.dumps({doc!r})); sys.exit({code})"]


def _scheduler(settings, client, clock, argv, tmp_path: Path):
    rec = Recorder()
    t = schedule.VerifyAfterClose(settings, client, Alerter([rec], window_s=60), clock, argv, {}, every_s=3600,
                                  log_path=tmp_path / "verify.log")
    return t, rec


def test_a_difference_alerts_once_and_a_clean_day_does_not(redis_client, settings_for, tmp_path: Path) -> None:
    settings = settings_for(MULTIALPHA__VERIFY__DELAY_S="600")
    now = [OPEN]
    diff_doc = {"day": DAY.isoformat(), "ok": False, "first_bar": "2025-12-10T01:59:00Z",
                "differences": [{"category": "order"}, {"category": "veto"}]}
    argv_days: list[date] = []

    def argv(day: date) -> list[str]:
        argv_days.append(day)
        return _stub(diff_doc if day == DAY else {"day": day.isoformat(), "ok": True, "differences": []},
                     1 if day == DAY else 0)

    t, rec = _scheduler(settings, redis_client, lambda: now[0], argv, tmp_path)
    assert t.step() is None  # starts the deployment's clock at DAY's open
    now[0] = CLOSE + timedelta(minutes=9)
    assert t.step() is None and argv_days == []
    now[0] = CLOSE + timedelta(minutes=10)
    assert t.step() == DAY and argv_days == [DAY]
    assert [(a.key, a.severity) for a in rec.got] == [(f"verify:{DAY}", "critical")]
    assert "2 differences" in rec.got[0].message and "first bar 2025-12-10T01:59:00Z" in rec.got[0].message
    now[0] = CLOSE + timedelta(minutes=30)
    assert t.step() is None and argv_days == [DAY]  # once per day
    nxt = date(2025, 12, 11)
    now[0] = cme_time.session_bounds(nxt)[1] + timedelta(minutes=10)
    assert t.step() == nxt and len(rec.got) == 1  # ok: no alert
    assert t.runs[-1][1] == 0


def test_a_day_stored_before_or_a_crashed_command(redis_client, settings_for, tmp_path: Path) -> None:
    settings = settings_for()
    keys = Keys(settings.redis.namespace)
    redis_client.hset(keys.verify_results(), DAY.isoformat(), json.dumps({"day": DAY.isoformat(), "ok": True}))
    now = [OPEN - timedelta(minutes=30)]
    crash = [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"]
    t, rec = _scheduler(settings, redis_client, lambda: now[0], lambda day: crash, tmp_path)
    t.step()
    now[0] = CLOSE + timedelta(seconds=settings.verify.delay_s)
    assert t.step() is None and t.runs == [] and DAY in t.done  # verified before (a restarted supervisor)
    nxt = date(2025, 12, 11)
    now[0] = cme_time.session_bounds(nxt)[1] + timedelta(seconds=settings.verify.delay_s)
    assert t.step() == nxt and t.runs[0][:2] == (nxt, 3)
    assert [(a.key, a.severity) for a in rec.got] == [(f"verify:{nxt}", "warning")]
    doc = store.latest(redis_client, keys)  # what status shows
    assert doc["day"] == nxt.isoformat() and doc["error"] == "exit code 3"
    assert store.line(doc) == f"verify {nxt}: failed: exit code 3"
    assert (tmp_path / "verify.log").read_text() == "boom"


def test_no_clock_yet_and_a_day_joined_halfway(redis_client, settings_for, tmp_path: Path) -> None:
    now: list[datetime | None] = [None]
    t, rec = _scheduler(settings_for(), redis_client, lambda: now[0], lambda day: _stub({}, 0), tmp_path)
    assert t.step() is None and t.started is None  # the sandbox has not written its clock yet
    now[0] = OPEN + timedelta(hours=3)  # `up` started mid-session: DAY's journal starts halfway
    t.step()
    now[0] = CLOSE + timedelta(hours=2)
    assert t.step() is None and t.runs == []


def test_status_line_words() -> None:
    assert store.line(None) == "verify: never ran"
    assert store.line({"day": "2025-12-10", "ok": True}) == "verify 2025-12-10: ok"
    assert store.line({"day": "2025-12-10", "ok": False, "differences": 1, "first_bar": "2025-12-10T01:59:00Z"}) == (
        "verify 2025-12-10: 1 difference (first bar 2025-12-10T01:59:00Z)")
    assert store.newest({"2025-12-09": "{}", "2025-12-10": "not json"})["error"] == "unreadable result"


def test_a_stored_error_never_carries_a_secret(redis_client) -> None:
    """Status shows the stored error: a key or URL in an exception's text is redacted first."""
    from multialpha import logs

    keys = Keys("multialpha")
    secret = "db-VERIFYSECRET0123456789abcdef"
    logs.register_secret(secret)
    store.save_error(redis_client, keys, DAY, f"HTTPError: 401 for key {secret}", datetime(2025, 12, 11, tzinfo=timezone.utc))
    doc = store.latest(redis_client, keys)
    assert secret not in json.dumps(doc) and doc["error"] == "HTTPError: 401 for key ***"
