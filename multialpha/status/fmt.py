"""The few formats every status cell uses: one duration format, money, a cell that never wraps."""

from __future__ import annotations


def dur(s: float | None) -> str:
    """One duration format everywhere: ``45s``, ``1m53s``, ``2h05m``, ``3d04h`` (``-`` = unknown)."""
    if s is None:
        return "-"
    s = int(s)
    if s < 60:
        return f"{max(s, 0)}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def money(v: float | None, signed: bool = True) -> str:
    if v is None:
        return "-"
    if abs(v) < 0.005:
        return "0.00"
    return f"{v:+,.2f}" if signed else f"{v:,.2f}"


def price(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def clip(text: str, width: int) -> str:
    """At most ``width`` characters on one line, an ellipsis when cut."""
    text = " ".join(str(text).split())
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
