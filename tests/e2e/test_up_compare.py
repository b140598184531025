"""The `up` fault comparison (tests/e2e/up_rig.compare) can fail: one defect of each kind planted
in a copy of the session's reference run is counted, each by its own column."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from tests.e2e import up_rig as R

pytestmark = pytest.mark.slow


def test_compare_detects_every_defect(up_reference: R.Outcome) -> None:
    ref = up_reference
    bad = copy.deepcopy(ref)
    sym = next(r for r, rows in bad.bars.items() if len(rows) >= 2)
    first, second = sorted(bad.bars[sym])[:2]
    del bad.bars[sym][first]                                            # a missing bar
    bad.bars[sym][second] = {**bad.bars[sym][second], "close": "0.01"}  # a changed bar
    bad.bars[sym][1] = {}                                               # an extra bar
    bad.published = [*bad.published, bad.published[0]]                  # published twice
    ints = R.intents(bad.journal)
    dropped = ints[0]                                                   # an order the run lacks
    bad.journal = [e for e in bad.journal if e is not dropped]
    bad.journal.append({**ints[1], "bar_start": "2025-12-02T00:29:00Z", "order_id": "planted"})  # not in the ref
    bad.journal.append({"event": "outcome", "order_id": "planted", "result": "paper"})
    bad.journal.append(dict(ints[2]))                                   # the same order id journaled twice
    bad.delivered = Counter(bad.delivered)
    bad.delivered[ints[3]["order_id"]] += 1                             # the broker got one order twice
    full = [e for e in bad.journal if not (e.get("event") == "outcome" and e["order_id"] == ints[4]["order_id"])]
    d = R.compare(ref, bad, full)                                       # ... and one intent without outcome
    assert (d["missing"], d["changed"], d["extra"], d["dup_published"]) == (1, 1, 1, 1), d
    assert (d["orders_missing"], d["orders_extra"]) == (1, 2), d  # the extra copy of ints[2] counts too
    assert d["dup_orders"] == 2, d  # ints[2] twice: by order id and by (strategy, symbol, side, bar_start)
    assert d["delivered_twice"] == 1 and d["lost"] == 2, d  # ints[3] delivered twice; ints[4] no outcome
    assert R.compare(ref, ref, ref.journal)["lost"] == 0
