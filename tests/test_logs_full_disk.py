"""A log file that cannot be written (disk full) costs log lines, never a traceback per line, and is
reported: once on stderr, in the supervisor's heartbeat and events (what `status` shows), and again
when it is writable. Fast and without root: the "full disk" is /dev/full (every write: ENOSPC),
reached through a symlink that the test later points at a real file. The root-only end-to-end
version (a full tmpfs under a running `multialpha up`) is in tests/e2e/test_supervisor_faults.py."""

from __future__ import annotations

import logging
from pathlib import Path

from multialpha import heartbeat, logs
from multialpha.keys import Keys
from multialpha.supervisor.watch import RedisWatch


def _logger(path: Path) -> tuple[logging.Logger, logging.Handler]:
    lg = logging.getLogger(f"test.logfiles.{path}")
    lg.propagate = False
    h = logs.ReportingRotatingFileHandler(path, maxBytes=10_000, backupCount=2)
    lg.addHandler(h)
    return lg, h


def test_full_disk_reported_once_counted_and_recovered(tmp_path: Path, capsys) -> None:
    link = tmp_path / "worker.log"
    link.symlink_to("/dev/full")
    lg, h = _logger(link)
    try:
        for i in range(200):
            lg.warning("line %d", i)
        err = capsys.readouterr().err
        assert err.count("cannot write log file") == 1 and "No space left on device" in err, err
        assert "Logging error" not in err and "Traceback" not in err
        doc = logs.write_failures()[str(link)]
        assert doc["failing"] is True and doc["lost"] == 200
        # Room again (the link now leads to a real file): the next line is written, and said.
        link.unlink()
        real = tmp_path / "real.log"
        real.touch()
        link.symlink_to(real)
        lg.warning("after")
        err = capsys.readouterr().err
        assert "writable again; 200 line(s) were lost" in err
        assert real.read_text() == "after\n"
        assert logs.write_failures()[str(link)]["failing"] is False
    finally:
        lg.removeHandler(h)
        h.close()


def test_supervisor_heartbeat_and_events_say_so(tmp_path: Path, redis_client) -> None:
    keys = Keys("ns-logfiles")
    watch = RedisWatch(redis_client, keys, {}, post=lambda e: None, table=lambda: {})
    link = tmp_path / "hub.log"
    link.symlink_to("/dev/full")
    lg, h = _logger(link)
    try:
        lg.warning("lost")
        watch.once()
        beat = heartbeat.read(redis_client, keys, "supervisor") or {}
        assert str(link) in beat["log_write_failures"] and str(link) in beat["last_error"]
        watch.once()  # still failing: no second event
        events = [f for _, f in redis_client.xrange(keys.events())]
        assert [e["level"] for e in events] == ["error"] and "cannot write log file" in events[0]["message"]
        link.unlink()
        link.symlink_to(tmp_path / "real.log")
        lg.warning("back")
        watch.once()
        beat = heartbeat.read(redis_client, keys, "supervisor") or {}
        assert not beat["log_write_failures"] and "last_error" not in beat
        events = [f for _, f in redis_client.xrange(keys.events())]
        assert events[-1]["level"] == "info" and "writable again; 1 line(s) lost" in events[-1]["message"]
    finally:
        lg.removeHandler(h)
        h.close()
