"""Verify results in Redis (``Keys.verify_results``: day -> JSON summary), for `status` and alerts.

Only a summary is stored (counts, the first differing bar, the first few differences): the
full report is the command's output. An error text is redacted (logs.redact) before it is
stored: it comes from Historical, Redis or strategy code and status shows it. `status` reads the newest day (:func:`newest`).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from multialpha import cme_time, logs
from multialpha.keys import Keys

KEEP_DAYS = 30  # older days are dropped from the hash
SHOWN = 5  # differences kept per day in the summary


def summary(result: Any) -> dict[str, Any]:
    d = result.as_dict()
    return {
        "day": d["day"], "ok": d["ok"], "differences": len(d["differences"]), "first_bar": d["first_bar"],
        "error": logs.redact(d["error"]), "checked_at": d["checked_at"], "strategies": d["strategies"],
        "carried": d["carried"], "top": d["differences"][:SHOWN],
    }


def save(client: Any, keys: Keys, result: Any) -> dict[str, Any]:
    doc = summary(result)
    client.hset(keys.verify_results(), doc["day"], json.dumps(doc, sort_keys=True))
    days = sorted(_s(k) for k in client.hkeys(keys.verify_results()))
    if len(days) > KEEP_DAYS:
        client.hdel(keys.verify_results(), *days[:-KEEP_DAYS])
    return doc


def save_error(client: Any, keys: Keys, day: date, error: str, now: datetime) -> None:
    """A day that could not be verified at all (the command died before storing anything)."""
    doc = {"day": day.isoformat(), "ok": False, "differences": 0, "first_bar": "", "error": logs.redact(error),
           "checked_at": cme_time.iso_z(now), "strategies": [], "carried": 0, "top": []}
    client.hset(keys.verify_results(), doc["day"], json.dumps(doc, sort_keys=True))


def latest(client: Any, keys: Keys) -> dict[str, Any] | None:
    """The newest day's summary (None if verify never ran); a garbled entry reads as an error."""
    return newest({_s(k): _s(v) for k, v in client.hgetall(keys.verify_results()).items()})


def newest(raw: dict[str, str]) -> dict[str, Any] | None:
    """The newest day's summary from the hash as read (``HGETALL``); None if verify never ran."""
    if not raw:
        return None
    day = max(raw)
    try:
        doc = json.loads(raw[day])
    except (TypeError, ValueError):
        doc = None
    return doc if isinstance(doc, dict) else {"day": day, "ok": False, "error": "unreadable result", "differences": 0}


def line(doc: dict[str, Any] | None) -> str:
    """``verify 2025-12-10: ok`` / ``verify 2025-12-10: 2 differences (first bar ...)`` / ``...: failed: ...``."""
    if doc is None:
        return "verify: never ran"
    if doc.get("error"):
        return f"verify {doc.get('day', '?')}: failed: {doc['error']}"
    if doc.get("ok"):
        return f"verify {doc.get('day', '?')}: ok"
    n = int(doc.get("differences") or 0)
    return (f"verify {doc.get('day', '?')}: {n} difference{'s' if n != 1 else ''}"
            + (f" (first bar {doc['first_bar']})" if doc.get("first_bar") else ""))


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
