"""Equity and drawdown curves as PNG files (matplotlib, imported only when a file is written)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Sequence


def equity_drawdown(days: Sequence[date], capital: float, equity: Sequence[float], drawdown: Sequence[float],
                    path: Path, title: str = "") -> Path:
    """Two panels: equity at each trading day's close (from the capital), and the drawdown below
    its running peak."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), dpi=100, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    # One slot per trading day (no weekend gaps); slot 0 is the start, at the capital.
    x = list(range(len(days) + 1))
    top.plot(x, [capital, *equity], lw=1.2, marker="o", ms=3)
    top.set_ylabel("equity ($)")
    top.set_title(title, fontsize=9)
    top.grid(alpha=0.3)
    dd = [0.0, *(-d for d in drawdown)]
    bottom.fill_between(x, dd, 0.0, color="tab:red", alpha=0.4)
    bottom.plot(x, dd, color="tab:red", lw=0.8)
    bottom.set_ylabel("drawdown ($)")
    bottom.grid(alpha=0.3)
    step = max(1, len(x) // 12)
    bottom.set_xticks(x[::step], ["start", *(d.isoformat() for d in days)][::step])
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
