"""Layout of the status view: one duration format, fits the terminal, no cell cut mid-word without an ellipsis."""

from __future__ import annotations

import re

import pytest

from multialpha.status.collect import Status
from multialpha.status.fmt import clip, dur
from multialpha.status.render import lines
from tests.status.realistic import seed


@pytest.mark.parametrize("s,want", [
    (None, "-"), (-3, "0s"), (0, "0s"), (45, "45s"), (59.9, "59s"), (60, "1m00s"), (113, "1m53s"),
    (173, "2m53s"), (3599, "59m59s"), (3600, "1h00m"), (7500, "2h05m"), (86399, "23h59m"), (90000, "1d01h"),
])
def test_one_duration_format(s, want) -> None:
    assert dur(s) == want


def test_clip_marks_a_cut() -> None:
    assert clip("worker.breakout", 20) == "worker.breakout"
    assert clip("worker.breakout", 10) == "worker.br…"
    assert clip("a\nb", 5) == "a b"  # never a second line


def _doc(settings_for, redis_client, trouble: bool):
    s = settings_for()
    seed(s, redis_client, trouble=trouble)
    return Status(s, redis_client, environ={})()


@pytest.mark.parametrize("trouble", [False, True])
@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50), (60, 20)])
def test_fits_and_leads_with_state_and_pnl(settings_for, redis_client, trouble, size) -> None:
    doc = _doc(settings_for, redis_client, trouble)
    w, h = size
    out = [t.plain for t in lines(doc, w, h)]
    assert len(out) <= h and all(len(x) <= w for x in out)
    text = "\n".join(out)
    first = out[0]
    assert first.startswith(" HALTED " if trouble else " DEGRADED ")
    if w >= 80:
        assert ("worker.breakout restarting" if trouble else "ibs_a/6C no veto model: BLOCKING") in first
        # P&L per strategy and in total, and the open positions, on the first screen.
        assert re.search(r"^ibs_a\s+LIVE\s+1\s+-707\.50", text, re.M)
        assert re.search(r"^breakout\s+(LIVE|DOWN)\s+1\s+\+497\.50", text, re.M)
        assert re.search(r"^TOTAL\s+2\s+-210\.00", text, re.M)
        assert re.search(r"^ibs_a\s+LONG\s+1\s+6A\b", text, re.M) and re.search(r"^breakout\s+LONG\s+1\s+ES\b", text, re.M)
        assert any("day P&L -210.00" in x for x in out[1:4])
    if trouble:
        assert "HALTED: desk call" in text and "EXIT FAILED breakout:ES" in text


def test_no_cell_is_cut_without_an_ellipsis(settings_for, redis_client) -> None:
    """Every word on screen is a whole word of the document, or ends in an ellipsis."""
    doc = _doc(settings_for, redis_client, True)
    for w, h in ((80, 24), (200, 50)):
        for line in lines(doc, w, h):
            for token in re.split(r"[\s,;()]+", line.plain):
                if token.startswith("worker."):
                    assert token in ("worker.breakout", "worker.ibs_a", "worker.ibs_b") or token.endswith("…"), token
                if re.match(r"^[+-]\d[\d,]*(\.\d*)?…$|^[+-]\d[\d,]*\.\d*$", token):  # signed money is never cut
                    assert re.match(r"^[+-]\d{1,3}(,\d{3})*\.\d\d$", token), token


def test_wide_uses_the_room(settings_for, redis_client) -> None:
    doc = _doc(settings_for, redis_client, False)
    narrow = "\n".join(t.plain for t in lines(doc, 80, 24))
    wide = "\n".join(t.plain for t in lines(doc, 200, 50))
    assert "processes: all 5 running" in narrow and "worker.ibs_a" not in narrow
    assert re.search(r"^worker\.ibs_a\s+RUNNING\s+4242\s+4m0\ds\s+1\s+\d+s\s+live$", wide, re.M)  # -9 gone: LIVE again
    assert "6A 0.65 20s" in wide and "6M quiet 4m20s" in narrow
    assert "last 15:06 buy 6A accepted" in wide
