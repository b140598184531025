from __future__ import annotations

import json

import pytest

from multialpha import cme_time
from multialpha.bar import Bar
from multialpha.hub.wire import FIELDS, Encoder

T0 = cme_time.parse_iso("2025-12-01T15:00:00Z")


@pytest.mark.parametrize(
    "b",
    [
        Bar("ES", T0, 6000.0, 6060.0, 5940.0, 6000.0, 10, "ESZ5", 3, "live"),
        Bar("6J", T0, 0.0065005, 0.0065005, 1e-05, 0.0065, 0, "6JZ5", 1, "replay"),
        Bar("ZB", T0, 115.0625, 115.09375, 114.96875, 115.0, 10**9, "", 0, "sandbox"),
        Bar("ES", T0, 6000.25, 6000.25, 6000.25, 6000.25, 1, 'ES"Z5\\\n\u00e9', 1, "live"),
    ],
)
def test_fast_encoding_is_exactly_bar_to_json(b):
    text, values = Encoder()(b)
    assert text == b.to_json()
    doc = json.loads(text)
    assert values == [v if isinstance(v, str) else json.dumps(v) for v in doc.values()]
    assert tuple(doc) == FIELDS
