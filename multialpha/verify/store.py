"""Verify results in Redis (``Keys.verify_results``: day -> JSON summary), for `status` and alerts.

Only a summary is stored (counts, the first differing bar, the first few differences): the
full table is the command's output. Newest day first when read back.
"""

from __future__ import annotations

import json
from typing import Any

from multialpha.keys import Keys

KEEP_DAYS = 30  # older days are dropped from the hash
SHOWN = 5  # differences kept per day in the summary


def summary(result: Any) -> dict[str, Any]:
    d = result.as_dict()
    return {
        "day": d["day"], "ok": d["ok"], "differences": len(d["differences"]), "first_bar": d["first_bar"],
        "error": d["error"], "checked_at": d["checked_at"], "strategies": d["strategies"],
        "carried": d["carried"], "top": d["differences"][:SHOWN],
    }


def save(client: Any, keys: Keys, result: Any) -> dict[str, Any]:
    doc = summary(result)
    client.hset(keys.verify_results(), doc["day"], json.dumps(doc, sort_keys=True))
    days = sorted(_s(k) for k in client.hkeys(keys.verify_results()))
    if len(days) > KEEP_DAYS:
        client.hdel(keys.verify_results(), *days[:-KEEP_DAYS])
    return doc


def latest(client: Any, keys: Keys) -> dict[str, Any] | None:
    """The newest day's summary (None if verify never ran); a garbled entry reads as an error."""
    days = sorted((_s(k) for k in client.hkeys(keys.verify_results())), reverse=True)
    if not days:
        return None
    raw = client.hget(keys.verify_results(), days[0])
    try:
        doc = json.loads(_s(raw))
        return doc if isinstance(doc, dict) else {"day": days[0], "ok": False, "error": "unreadable result"}
    except (TypeError, ValueError):
        return {"day": days[0], "ok": False, "error": "unreadable result", "differences": 0}


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
