"""Which contract is the *previous* front of a root on a trading day (the roll overlap).

After a roll the hub keeps publishing the old front's bars on their own channel
(``Keys.prev_bars``) for ``hub.roll_overlap_days`` trading days, so a position
still held in it is marked and exited at its own prices (worker/rolls.py). The
backtest loads the same bars (``warmup.overlap_pieces``); both sides take the
contract from :func:`prev_front`, one rule.

On trading day ``D`` the previous front is the front of the latest of the
``days`` trading days before ``D`` whose front differs from ``D``'s: for a roll
on ``R`` (the first day of the new front) that is the old contract on ``R`` ..
``R + days - 1``, and nothing on other days.
"""

from __future__ import annotations

from datetime import date
from typing import Callable

from multialpha import cme_time
from multialpha.contracts import ContractMap


def prev_front(cmap: ContractMap, root: str, day: date, days: int, front: str | None = None,
               front_of: Callable[[date], str] | None = None) -> str | None:
    """Raw symbol of ``root``'s previous front on trading day ``day`` (None: no roll within ``days``).

    ``front``: the day's front if the caller knows it (the hub's resolver); else the map's.
    ``front_of``: the front of an earlier trading day by the root's own rule (the hub's
    resolver for a ``front: volume`` root); else the map's calendar rule."""
    if days <= 0 or root not in cmap.rules:
        return None
    now = front or (front_of(day) if front_of else cmap.front(root, day).raw_symbol)
    for j in range(1, days + 1):
        d = cme_time.add_business_days(day, -j)
        earlier = front_of(d) if front_of else cmap.front(root, d).raw_symbol
        if earlier != now:
            return earlier
    return None
