"""Daily volume per contract for ``front: volume`` roots, from Databento Historical.

The resolver asks, once per root and trading day, for the volume of every
outright on the **previous** trading day (Databento's ``ROOT.v.0`` rule). How:

``timeseries.get_range(schema="ohlcv-1h", stype_in="parent", symbols="ES.FUT",
start=<session open>, end=<session close>)`` for that trading day, summed per
raw symbol (spreads dropped), names from the response's symbology mappings.

Why this request and not another:

- ``ohlcv-1d`` is stamped on the **UTC date**, not the CME session: the bar of
  UTC date D-1 mixes the end of trading day D-1 with the evening of trading day
  D, and is not complete when D's session opens, i.e. exactly when the front
  for D is needed. A CME session (17:00-16:00 CT) is whole UTC hours in summer
  and winter, so its ``ohlcv-1h`` bars add up to precisely the session's volume
  and are complete right after the 16:00 CT close.
- ``trades`` would give the same numbers at 10^3-10^4 times the download
  (every ES trade of a day); ``statistics`` (the exchange's cleared volume)
  arrives after the settlement cycle, and the sandbox does not serve it;
  ``ohlcv-eod`` is not served for every dataset.
- Counting the trades the hub itself sees would need a whole previous session
  without a restart or a gap; the Historical answer is the same after a
  cold start, a crash or a reconnect.
- Asking Historical for ``symbology.resolve("ES.v.0")`` would hand us
  Databento's answer instead of checking it; the sandbox test compares the two.

The request goes through the lean bars client (``worker/histclient.py``: the
official client's ``get_range`` over urllib, DBN decoded with databento_dbn +
numpy), so the hub never imports ``databento`` (pandas, pyarrow: ~100 MB of RSS,
docs/hub.md). Records are named as the official ``InstrumentMap`` names them
(``histclient.name_records``). Works unchanged against real Databento and the sandbox.
The call blocks the hub thread once per root and trading day, at the first
record of the new day - normally a heartbeat in the 16:00-17:00 CT halt.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from multialpha import cme_time
from multialpha.worker import histclient

if TYPE_CHECKING:
    from multialpha.contracts import ContractMap
    from multialpha.worker.histclient import HistoricalClient

log = logging.getLogger(__name__)


class VolumeSource(Protocol):
    def __call__(self, root: str, product_id: str, day: date) -> Mapping[str, int]:
        """Contracts traded per outright raw symbol of ``root`` on trading day ``day``."""


class HistoricalVolumes:
    """A :class:`VolumeSource` over the lean Historical client (sandbox or real).

    ``client`` is a ``worker.histclient.HistoricalClient`` or a zero-argument factory of one
    (resolved on every call, so a restarted sandbox's new port is found).
    Non-empty answers are cached per (root, day).
    """

    def __init__(self, client: "HistoricalClient | Any", dataset: str = "GLBX.MDP3") -> None:
        self._client = client
        self.dataset = dataset
        self._cache: dict[tuple[str, date], dict[str, int]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> "HistoricalVolumes":
        def factory() -> "HistoricalClient":
            from multialpha import endpoints

            return endpoints.bars_client(endpoints.resolve(settings))

        return cls(factory, settings.databento.dataset)

    def _hist(self) -> "HistoricalClient":
        return self._client if hasattr(self._client, "get_range") else self._client()

    def __call__(self, root: str, product_id: str, day: date) -> Mapping[str, int]:
        hit = self._cache.get((root, day))
        if hit is not None:
            return hit
        open_, close = cme_time.session_bounds(day)
        got = self._hist().get_range(self.dataset, "ohlcv-1h", [product_id], "parent", cme_time.to_ns(open_),
                                     cme_time.to_ns(close))
        out: dict[str, int] = {}
        for raw, volume in zip(histclient.name_records(got.mappings, got.records), got.records["volume"].tolist()):
            if raw is None or "-" in raw:
                continue
            out[raw] = out.get(raw, 0) + int(volume)
        if out:
            self._cache[(root, day)] = out
        return out


def volume_front(cmap: "ContractMap", volumes: VolumeSource, root: str, product_id: str, day: date) -> str | None:
    """The raw symbol of ``root``'s busiest outright of the session before ``day`` (its
    ``front: volume`` rule), or None when Historical has no answer (logged; each caller keeps
    its own fallback)."""
    prev = cme_time.previous_trading_day(day)
    try:
        got = cmap.volume_front(root, day, volumes(root, product_id, prev))
    except Exception as e:  # noqa: BLE001 - a Historical outage must not stop the bars
        log.warning("%s: no volumes for %s (%s)", root, prev, e)
        return None
    return got.raw_symbol if got is not None else None


def front_on(cmap: "ContractMap", volumes: VolumeSource | None, root: str, product_id: str, day: date) -> str:
    """``root``'s front on trading day ``day`` by its own rule, for an earlier day than the
    resolver's current one (the roll overlap's previous front, ``hub.overlap.prev_front``).

    ``volume`` roots: the previous session's busiest outright (the source caches per day);
    without an answer the calendar front stands in, as it does for the resolver at start-up."""
    if cmap.front_rule(root) == "volume" and volumes is not None:
        got = volume_front(cmap, volumes, root, product_id, day)
        if got is not None:
            return got
    return cmap.front(root, day).raw_symbol
