"""Tolerant readers for what status finds in Redis: a malformed value is None, never a crash.

Shared by every part of the status document (:mod:`multialpha.status.raw`,
:mod:`~multialpha.status.sections`, :mod:`~multialpha.status.pnl`,
:mod:`~multialpha.status.overall`); package-private, hence the underscores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from multialpha import cme_time


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None  # NaN -> None


def _int(v: Any) -> int | None:
    f = _num(v)
    return None if f is None else int(f)


def _s(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _age(iso: Any, now: datetime) -> float | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return round((now - cme_time.parse_iso(iso)).total_seconds(), 1)
    except ValueError:
        return None


def _parse(iso: Any) -> datetime | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return cme_time.parse_iso(iso)
    except ValueError:
        return None


def _sid_iso(sid: str) -> str:
    try:
        return cme_time.iso_z(int(sid.split("-")[0]) * 1_000_000)
    except ValueError:
        return ""


def _dur(s: float | None) -> str:
    from multialpha.status.fmt import dur

    return dur(s)
