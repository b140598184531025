"""SIGTERM while warming up: the data source may be going down with us — exit 0, quietly."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from multialpha.worker.runtime import run
from tests.worker.doubles import RecordingRouter


def test_stop_during_warmup_exits_cleanly(settings_for) -> None:
    settings = settings_for(MULTIALPHA__ML_VETO__MODE="off")
    stop = threading.Event()
    calls = []

    def fetch(schema: str, symbol: str, stype_in: str, start_ns: int, end_ns: int):
        calls.append(symbol)
        stop.set()  # the supervisor's SIGTERM arrives mid-download …
        raise ConnectionError("Remote end closed connection without response")  # … as the sandbox stops

    clock = lambda: datetime(2025, 12, 2, 15, 0, tzinfo=timezone.utc)  # noqa: E731
    assert run(settings, "ibs_a", stop_event=stop, router=RecordingRouter(), clock=clock, fetch=fetch) == 0
    assert calls


def test_the_same_failure_without_a_stop_is_an_error(settings_for) -> None:
    settings = settings_for(MULTIALPHA__ML_VETO__MODE="off")

    def fetch(*args: object):
        raise ConnectionError("historical gateway unreachable")

    clock = lambda: datetime(2025, 12, 2, 15, 0, tzinfo=timezone.utc)  # noqa: E731
    assert run(settings, "ibs_a", router=RecordingRouter(), clock=clock, fetch=fetch) == 1
