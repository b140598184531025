"""ML veto off / shadow / enforce change the order stream as documented, on a fixed series."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multialpha import cme_time
from multialpha.backtest import results
from multialpha.mlveto import train
from tests.backtest.helpers import run, veto


def _entries(r):
    return [o for o in results.orders(r) if o.kind == "entry" and o.decision == "accepted"]


def test_veto_modes_change_the_order_stream(make_settings, source, tmp_path: Path) -> None:
    base = make_settings(portfolio={"max_positions": 50, "daily_stop_loss": 1e9},
                         models_path=str(tmp_path / "models"))
    off = run(veto(base, "off"), ["breakout"], source)
    assert len(_entries(off)) >= 4 and not off.decisions

    # shadow: the same orders, and every entry's decision recorded (no model: on_missing=block says veto)
    shadow = run(veto(base, "shadow", "block"), ["breakout"], source)
    assert results.accepted_keys(shadow) == results.accepted_keys(off)
    assert len(shadow.decisions) == len(_entries(off))
    assert all(not d["allow"] and d["acted"] for d in shadow.decisions)

    # enforce without models, fail closed: no entry at all; allow: same as off
    blocked = run(veto(base, "enforce", "block"), ["breakout"], source)
    assert _entries(blocked) == [] and len(blocked.decisions) >= 1
    assert all(not d["allow"] and not d["acted"] for d in blocked.decisions)
    allowed = run(veto(base, "enforce", "allow"), ["breakout"], source)
    assert results.accepted_keys(allowed) == results.accepted_keys(off)

    # enforce with a verified model: vetoed entries are absent, allowed ones are sent
    # Entries of one trading day share their (daily) features: the cut is the midpoint of the distinct
    # probabilities when there are several, else alternately allow-all / veto-all per symbol.
    models = tmp_path / "models"
    names = list(shadow.decisions[0]["features"])
    for i, sym in enumerate(sorted(base.strategies["breakout"].instruments)):
        samples = [d for d in shadow.decisions if d["symbol"] == sym] or shadow.decisions
        X = np.array([[d["features"][n] for n in names] for d in samples] * 2)
        y = np.array([k % 2 for k in range(len(X))])  # any two-class labels: the test needs a model, not skill
        est = train._model().fit(X, y)
        p = sorted(set(est.predict_proba(X)[:, 1].round(9).tolist()))
        thr = (p[0] + p[-1]) / 2 if len(p) > 1 else (0.0 if i % 2 else 1.0)
        train.save_model(models, "breakout", sym, est, names, thr, cme_time.trading_day(off.start),
                         cme_time.trading_day(off.end), len(X), {})
    enforced = run(veto(base, "enforce", "block"), ["breakout"], source)
    sent = {(o.symbol, o.bar_start) for o in _entries(enforced)}
    vetoed = [d for d in enforced.decisions if not d["allow"]]
    passed = [d for d in enforced.decisions if d["allow"]]
    assert vetoed and passed
    assert all(d["probability"] is not None for d in enforced.decisions)
    assert all((d["symbol"], cme_time.iso_z(d["bar_start"])) not in sent for d in vetoed)
    assert {(d["symbol"], cme_time.iso_z(d["bar_start"])) for d in passed} == sent
