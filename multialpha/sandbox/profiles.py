"""Per-product behaviour of the synthetic market: volatility, activity, carry.

Numbers are rough orders of magnitude of the real CME products, scaled down
in trade count so a day generates in about a millisecond (ES ~30k trades/day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    daily_vol: float  # sd of the daily log return
    trades_per_day: int  # front + deferred + spreads, before day/bursts noise
    mean_size: float  # contracts per trade (geometric)
    carry: float  # annualised deferred-vs-front premium (negative: backwardation)


PROFILES: dict[str, Profile] = {
    "ES": Profile(0.010, 30_000, 3.0, 0.045),
    "NQ": Profile(0.013, 24_000, 2.0, 0.045),
    "RTY": Profile(0.014, 9_000, 2.0, 0.045),
    "YM": Profile(0.010, 7_000, 2.0, 0.045),
    "CL": Profile(0.020, 20_000, 2.0, -0.05),
    "NG": Profile(0.035, 12_000, 2.0, 0.12),
    "GC": Profile(0.012, 14_000, 2.0, 0.04),
    "SI": Profile(0.020, 6_000, 1.8, 0.04),
    "HG": Profile(0.015, 5_000, 1.8, 0.03),
    "PL": Profile(0.018, 2_500, 1.5, 0.03),
    "6A": Profile(0.006, 4_000, 2.0, -0.01),
    "6B": Profile(0.005, 4_000, 2.0, 0.0),
    "6C": Profile(0.004, 3_500, 2.0, 0.005),
    "6E": Profile(0.005, 9_000, 2.5, 0.02),
    "6J": Profile(0.006, 7_000, 2.0, 0.04),
    "6M": Profile(0.007, 1_200, 1.5, -0.06),
    "6N": Profile(0.007, 1_200, 1.5, -0.01),
    "6S": Profile(0.005, 2_500, 1.5, 0.04),
    "ZB": Profile(0.007, 6_000, 2.0, -0.01),
}
DEFAULT_PROFILE = Profile(0.010, 3_000, 2.0, 0.02)


def profile(root: str) -> Profile:
    return PROFILES.get(root, DEFAULT_PROFILE)


def _seasonality() -> np.ndarray:
    """Relative trade intensity per minute of the Chicago day (mean 1 over the session).

    Asia quiet, Europe busier, the US cash session busiest, with an opening
    and closing surge; 16:00-17:00 CT is the halt and never used.
    """
    w = np.empty(1440)
    hour = np.arange(1440) / 60.0
    w[:] = 0.45  # Asia (18:00-02:00 CT)
    w[(hour >= 17) & (hour < 18)] = 0.7  # Globex reopen
    w[(hour >= 2) & (hour < 7)] = 1.1  # Europe
    w[(hour >= 7) & (hour < 8.5)] = 1.8
    w[(hour >= 8.5) & (hour < 9.5)] = 5.0  # US open
    w[(hour >= 9.5) & (hour < 13.5)] = 2.8
    w[(hour >= 13.5) & (hour < 15.25)] = 3.8  # US close
    w[(hour >= 15.25) & (hour < 16)] = 1.2
    w[(hour >= 16) & (hour < 17)] = 0.0
    session = np.r_[w[17 * 60 :], w[: 16 * 60]]
    return w / session.mean()


SEASONALITY = _seasonality()
