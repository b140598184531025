"""Verify one trading day: replay it from the bar logs through the backtest engine, diff with the journal.

1. **Bars**: the day's minutes from the hub's bar logs in Redis (:mod:`.barlog`), not
   Historical: what the workers traded on.
2. **State at the open**: every enabled strategy's indicators are warmed up to the day's open
   the way the worker warms them (Historical through the warmup cache, ``worker/warmup.py``:
   the *day's* bars come from the bar log only); the positions carried into the day are
   rebuilt from the journal and seeded into the replay's private gate (:mod:`.book`).
3. **Replay**: :func:`multialpha.backtest.runner.run` over [open, close) with those bars:
   the live worker's own code, one private Redis and the real portfolio gate, every enabled
   strategy in config order (gate refusals depend on all of them, so ``--strategy`` narrows
   the comparison, never the replay).
4. **Compare** (:mod:`.compare`): gate decisions (accepted entries/exits, refusals) in journal
   order, and every ML veto decision per strategy, of the day's bars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Iterator, Mapping

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.orders.journal import ENTRY_RELEASED
from multialpha.verify import barlog, book, compare


@dataclass
class VerifyResult:
    day: str
    strategies: list[str]
    differences: list[compare.Difference]
    counts: dict[str, dict[str, int]]  # strategy -> live/replay orders, denials, vetoes
    first_bar: str = ""
    carried: int = 0  # positions carried into the day (seeded)
    checked_at: str = ""
    error: str = ""  # the day could not be verified (bar log gap, no bars, crash)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and not self.differences

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["differences"] = [x.as_dict() for x in self.differences]
        d["ok"] = self.ok
        return d


def in_day(bar_start: str, day: date) -> bool:
    return bool(bar_start) and cme_time.trading_day(cme_time.parse_iso(bar_start)) == day


def live_decisions(journal: list[Mapping[str, str]], vetoes: list[Mapping[str, str]], day: date,
                   strategies: list[str]) -> tuple[list[Mapping[str, str]], list[Mapping[str, str]]]:
    """The journal's and the veto log's entries of ``day`` for ``strategies`` (by signal bar)."""
    open_, close = cme_time.session_bounds(day)
    j = [e for e in journal if e.get("strategy") in strategies and in_day(e.get("bar_start", ""), day)
         and not book.is_seed(e)]

    def veto_in_day(v: Mapping[str, str]) -> bool:
        if v.get("bar_start"):
            return in_day(v["bar_start"], day)
        # Written before vetoes carried their bar: the decision time (bar end + latency), within
        # the day or the halt after it (nothing trades before the next open).
        at = cme_time.parse_iso(v["at"]) if v.get("at") else None
        return at is not None and open_ < at < cme_time.session_bounds(cme_time.next_trading_day(day))[0]

    return j, [v for v in vetoes if v.get("strategy") in strategies and veto_in_day(v)]


def _where_order(k: tuple[str, ...]) -> tuple[str, str, str]:
    return k[1], k[2], k[5]


def compare_day(live_journal: list[Mapping[str, str]], live_vetoes: list[Mapping[str, str]],
                replay_journal: list[Mapping[str, str]], replay_decisions: list[Mapping[str, Any]],
                strategies: list[str]) -> tuple[list[compare.Difference], dict[str, dict[str, int]]]:
    """Differences (orders first, then vetoes per strategy) and per-strategy counts of both sides."""
    diffs = compare.diff("order", compare.decision_keys(live_journal), compare.decision_keys(replay_journal),
                         _where_order)
    lv = compare.veto_keys_live(live_vetoes, bar=True)
    rv = compare.veto_keys_backtest(replay_decisions, bar=True)
    counts: dict[str, dict[str, int]] = {}
    for s in strategies:
        diffs += compare.diff("veto", lv.get(s, []), rv.get(s, []), lambda k, s=s: (s, k[0], k[2]))
        lo = [k for k in compare.decision_keys(live_journal) if k[1] == s]
        ro = [k for k in compare.decision_keys(replay_journal) if k[1] == s]
        counts[s] = {
            "live_orders": sum(1 for k in lo if k[0] == "accepted"),
            "replay_orders": sum(1 for k in ro if k[0] == "accepted"),
            "live_denied": sum(1 for k in lo if k[0] == "denied"),
            "replay_denied": sum(1 for k in ro if k[0] == "denied"),
            "live_vetoes": len(lv.get(s, [])), "replay_vetoes": len(rv.get(s, [])),
        }
    return diffs, counts


def verify_day(settings: Settings, client: Any, day: date, *, fetch: Any, dataset: str, data_now: datetime,
               only: str | None = None, now: datetime | None = None) -> VerifyResult:
    """Verify trading ``day`` (all enabled strategies replayed; ``only`` narrows the comparison).

    ``client``: the deployment's Redis (bar logs, journal, veto log; read only).
    Raises :class:`~multialpha.verify.barlog.BarLogGap` when the bar log no longer covers the day.
    """
    from multialpha import plugins
    from multialpha.backtest import runner
    from multialpha.backtest.data import DataUnavailable
    from multialpha.worker.plan import build_plan

    keys = Keys(settings.redis.namespace)
    names = list(settings.enabled_strategies)
    shown = [only] if only else names
    sources = sorted({s for n in names
                      for s in build_plan(settings, n, plugins.get_strategy_type(
                          settings.strategies[n].strategy_type)).sources})
    open_, close = cme_time.session_bounds(day)
    bars = barlog.day_bars(client, keys, sources, day)
    if not any(bars[0].values()):
        raise DataUnavailable(f"no bars of trading day {day} in the bar logs ({', '.join(sources)})")
    # Only what the book and the comparison read (the journal keeps up to 1M entries).
    journal = [{k: v for k, v in e.items() if k != "payload"} for e in _entries(client, keys.orders())
               if e.get("event") in ("intent", "denied") or e.get("result") in ENTRY_RELEASED]
    vetoes = list(_entries(client, keys.veto_log()))
    held = [h for h in book.positions_at_open(journal, day) if h.strategy in names]
    marks = {(h.symbol, h.contract): barlog.last_close_before(client, keys, h.symbol, h.contract, open_)
             for h in held}

    def seed(bt_settings: Settings, private: Any) -> None:
        book.seed(bt_settings, private, held, day, marks)

    run = runner.run(settings, names, open_, close, fetch=fetch, dataset=dataset, data_now=data_now,
                     bars=bars, seed=seed)
    live_j, live_v = live_decisions(journal, vetoes, day, shown)
    replay_j = [e for e in run.journal if e.get("strategy") in shown and in_day(e.get("bar_start", ""), day)
                and not book.is_seed(e)]
    replay_v = [d for d in run.decisions if d["strategy"] in shown]
    diffs, counts = compare_day(live_j, live_v, replay_j, replay_v, shown)
    notes = [f"carried into the day: {h.strategy} {h.side} {h.quantity} {h.symbol} ({h.contract}) "
             f"since {h.bar_start}" for h in held if h.strategy in shown]
    return VerifyResult(day.isoformat(), shown, diffs, counts, compare.first_bar(diffs), len(held),
                        cme_time.iso_z(now or cme_time.utcnow()), notes=notes)


def _decode(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in fields.items()}


def _entries(client: Any, key: str, page: int = 10_000) -> Iterator[dict[str, str]]:
    """A stream's entries, oldest first, read in pages (never the whole stream in one reply)."""
    lo = "-"
    while True:
        got = client.xrange(key, min=lo, count=page)
        for _, fields in got:
            yield _decode(fields)
        if len(got) < page:
            return
        last = got[-1][0]
        lo = "(" + (last.decode() if isinstance(last, bytes) else str(last))
