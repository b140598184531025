"""A test strategy plugin: records what Strategy.next sees, optionally trades on every bar.

Registered in-process by tests/worker/conftest.py and by run_worker.py in
subprocess tests — through the same pluggy hooks as an installed plugin.
"""

from __future__ import annotations

import json
from typing import Any

from multialpha.hookspecs import StrategyType, VetoDecision, hookimpl
from multialpha.worker.strategy import MultiAlphaStrategy

RECORDS: dict[str, list[dict[str, Any]]] = {}


class RecorderStrategy(MultiAlphaStrategy):
    params = (("tag", "default"), ("record_path", ""), ("trade", ""))

    def _seen(self) -> dict[str, int]:
        return self.__dict__.setdefault("_rec_seen", {})

    def _emit(self, event: dict[str, Any]) -> None:
        RECORDS.setdefault(self.p.tag, []).append(event)
        if self.p.record_path:
            with open(self.p.record_path, "a") as f:
                f.write(json.dumps(event) + "\n")

    def next(self) -> None:
        seen = self._seen()
        for d in self.datas:
            n = len(d)
            if n > seen.get(d._name, 0):
                seen[d._name] = n
                self._emit(
                    {
                        "feed": d._name,
                        "dt": d.datetime.datetime(0).isoformat(),
                        "phase": d.phase,
                        "open": d.open[0],
                        "high": d.high[0],
                        "low": d.low[0],
                        "close": d.close[0],
                        "volume": d.volume[0],
                        "neutral": bool(getattr(d.p, "neutral", False)),
                        "live": self.all_live,
                    }
                )
                if self.p.trade == "flip" and d._name in self.symbols and d.phase in ("replay", "live"):
                    if self.position_of(d) is None:
                        ok = self.enter(d, "long", f"flip {d.datetime.datetime(0).isoformat()}")
                    else:
                        ok = self.exit(d, "flip")
                    self._emit({"signal": d._name, "dt": d.datetime.datetime(0).isoformat(), "accepted": ok})
        # Signals on warmup daily bars: entries must stay simulated (no order leaves).
        if self.p.trade == "warmup_entry":
            for sym in self.symbols:
                day = self.feed(sym, "day")
                key = f"entry-check-{sym}"
                if len(day) > seen.get(key, 0):
                    seen[key] = len(day)
                    if day.phase == "warmup" and self.position_of(sym) is None:
                        ok = self.enter(day, "long", "warmup signal")
                        self._emit({"warmup_signal": sym, "accepted": ok})

    prenext = next


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [StrategyType("recorder", RecorderStrategy, description="test recorder")]


VETO_SYMBOLS: set[str] = set()


@hookimpl
def multialpha_features(strategy: str, symbol: str, side: str, data: Any) -> dict[str, Any]:
    return {"minute_close": float(data["minute"].close[0]), "feeds": sorted(data)}


@hookimpl
def multialpha_ml_veto(strategy: str, symbol: str, side: str, features: Any) -> VetoDecision | None:
    if symbol in VETO_SYMBOLS:
        return VetoDecision(False, f"test veto {symbol} at {features['minute_close']}")
    return VetoDecision(True, "ok")
