"""The backtest's warmup reaches a next()-only strategy's rules, and nothing it signals there is ordered."""

from __future__ import annotations

from multialpha import cme_time, plugins
from tests.backtest import warmup_plugin
from tests.backtest.helpers import DAYS, run, veto


def test_next_only_strategy_sees_all_warmup_bars_and_orders_nothing_in_warmup(make_settings, source) -> None:
    pm = plugins.get_plugin_manager()
    pm.register(warmup_plugin, name="test-next-only")
    warmup_plugin.SEEN.clear()
    try:
        settings = veto(make_settings(strategies={"nx": {"strategy_type": "next_only",
                                                         "instruments": {"ES": {"size": 1}}}}), "off")
        r = run(settings, ["nx"], source, resolution="hour")
    finally:
        pm.unregister(name="test-next-only")
    rec = warmup_plugin.SEEN["ES"]
    # Exactly what warmup delivers (the test config: 60 hourly and 30 daily bars), all of it.
    assert rec["counts"][("hour", "warmup")] == settings.worker.warmup_hourly_bars
    assert rec["counts"][("day", "warmup")] == settings.worker.warmup_daily_bars
    assert rec["counts"][("hour", "live")] > 0 and rec["counts"][("day", "live")] == 3
    assert len(rec["signals"]) == 30 and all(rec["signals"])  # warmup signals were taken ...
    start = cme_time.session_bounds(DAYS[0])[0]
    intents = [j for j in r.journal if j.get("event") in ("intent", "denied")]
    assert all(cme_time.parse_iso(j["bar_start"]) >= start for j in intents)  # ... but never ordered
