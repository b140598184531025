"""Live decisions vs replayed decisions: one comparison for the parity test and `multialpha verify`.

Both sides are reduced to the same keys:

* orders — every gate decision in journal order (``{ns}:orders``): an accepted order
  (``event == intent``) as ``(strategy, symbol, side, kind, bar_start, quantity)``, a refusal
  (``event == denied``) as ``(strategy, symbol, side, kind, bar_start, reason)``;
* vetoes — per strategy, in decision order, every ML veto decision
  ``(symbol, side, decision, acted, probability, features)``.

:func:`diff` lines two such lists up (``difflib``: an altered entry is one *changed* row, a
missing one one *only live* / *only replay* row) and names the earliest bar that differs.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

Key = tuple[str, str, str, str, str, int]  # accepted order: the parity key


def intent_keys(journal: Iterable[Mapping[str, str]]) -> list[Key]:
    """Accepted orders, in journal order."""
    return [(j["strategy"], j["symbol"], j.get("side", ""), j["kind"], j.get("bar_start", ""),
             int(j.get("quantity") or 0))
            for j in journal if j.get("event") == "intent" and "kind" in j]


def denied_keys(journal: Iterable[Mapping[str, str]]) -> list[tuple[str, ...]]:
    """Orders the portfolio gate refused, in journal order."""
    return [(j["strategy"], j["symbol"], j.get("side", ""), j["kind"], j.get("bar_start", ""), j.get("reason", ""))
            for j in journal if j.get("event") == "denied" and "kind" in j]


def decision_keys(journal: Iterable[Mapping[str, str]]) -> list[tuple[str, ...]]:
    """Accepted and denied orders in one list, journal order: ``(event, strategy, symbol, side,
    kind, bar_start, quantity | reason)``. One list, because the gate decides them in one order."""
    out: list[tuple[str, ...]] = []
    for j in journal:
        ev = j.get("event")
        if ev not in ("intent", "denied") or "kind" not in j:
            continue
        last = str(int(j.get("quantity") or 0)) if ev == "intent" else j.get("reason", "")
        out.append(("accepted" if ev == "intent" else "denied", j["strategy"], j["symbol"], j.get("side", ""),
                    j["kind"], j.get("bar_start", ""), last))
    return out


def veto_keys_live(vetoes: Iterable[Mapping[str, str]], bar: bool = False) -> dict[str, list[tuple[str, ...]]]:
    """Per strategy, in decision order: every ML veto decision with its probability and features
    (``bar``: with the signal bar's start after the side, as verify names the differing bar)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for v in vetoes:
        head = (v["symbol"], v["side"], v.get("bar_start", "")) if bar else (v["symbol"], v["side"])
        out.setdefault(v["strategy"], []).append(
            (*head, v["decision"], v["acted"], v["probability"], v["features"]))
    return out


def veto_keys_backtest(decisions: Iterable[Mapping[str, Any]], bar: bool = False) -> dict[str, list[tuple[str, ...]]]:
    """The backtest's in-memory veto decisions in the veto journal's spelling (mlveto/record.py)."""
    from multialpha import cme_time

    out: dict[str, list[tuple[str, ...]]] = {}
    for d in decisions:
        p = d["probability"]
        head: tuple[str, ...] = (d["symbol"], d["side"])
        if bar:
            head += (cme_time.iso_z(d["bar_start"]) if d.get("bar_start") else "",)
        out.setdefault(d["strategy"], []).append((
            *head, "allow" if d["allow"] else "veto", "allow" if d["acted"] else "block",
            "" if p is None else f"{p:.6f}", json.dumps(dict(d["features"]), sort_keys=True, default=str)[:4000]))
    return out


@dataclass(frozen=True)
class Difference:
    """One row of a verify report. ``live`` / ``replay`` are the two sides' keys ('' = absent)."""

    category: str  # order | veto
    change: str  # changed | only_live | only_replay
    strategy: str
    symbol: str
    bar_start: str  # ISO Z of the bar the decision was taken on ('' if unknown)
    live: str
    replay: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _text(key: Sequence[str] | None) -> str:
    return "" if key is None else " ".join(str(x) for x in key if str(x) != "")[:300]


def diff(category: str, live: Sequence[tuple[str, ...]], replay: Sequence[tuple[str, ...]],
         where: Any) -> list[Difference]:
    """Rows where ``live`` and ``replay`` differ, in order. ``where(key) -> (strategy, symbol,
    bar_start)`` says what a key is about (the two sides' keys have the same shape)."""
    out: list[Difference] = []
    matcher = difflib.SequenceMatcher(a=list(live), b=list(replay), autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        n = max(a1 - a0, b1 - b0)
        for i in range(n):
            lk = live[a0 + i] if a0 + i < a1 else None
            rk = replay[b0 + i] if b0 + i < b1 else None
            strategy, symbol, bar = where(lk if lk is not None else rk)
            if lk is not None and rk is not None:
                bar = min(bar, where(rk)[2]) or bar
            change = "changed" if lk is not None and rk is not None else ("only_live" if rk is None else "only_replay")
            out.append(Difference(category, change, strategy, symbol, bar, _text(lk), _text(rk)))
    return out


def first_bar(differences: Iterable[Difference]) -> str:
    """The earliest bar (ISO Z) any difference is about; '' when there is none."""
    bars = [d.bar_start for d in differences if d.bar_start]
    return min(bars) if bars else ""
