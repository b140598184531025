from __future__ import annotations

import json

import pytest

from multialpha import cme_time
from multialpha.bar import Bar
from multialpha.hub.publisher import Publisher, bar_from_log
from multialpha.hub.wire import FIELDS, Encoder
from multialpha.keys import Keys

T0 = cme_time.parse_iso("2025-12-01T15:00:00Z")


BARS = [
    Bar("ES", T0, 6000.0, 6060.0, 5940.0, 6000.0, 10, "ESZ5", 3, "live"),
    Bar("6J", T0, 0.0065005, 0.0065005, 1e-05, 0.0065, 0, "6JZ5", 1, "replay"),
    Bar("ZB", T0, 115.0625, 115.09375, 114.96875, 115.0, 10**9, "", 0, "sandbox"),
    Bar("NQ", T0, 6000.25, 6000.25, 6000.25, 6000.25, 1, 'NQ"Z5\\\n\u00e9', 1, "live"),
    Bar("CL", T0, 1e-07, 123456789.5, 1e-07, 58.25, 7, "CLF6", 2**31, "live"),
]


@pytest.mark.parametrize("b", BARS)
def test_fast_encoding_is_exactly_bar_to_json(b):
    text, values = Encoder()(b)
    assert text == b.to_json()
    doc = json.loads(text)
    assert values == [v if isinstance(v, str) else json.dumps(v) for v in doc.values()]
    assert tuple(doc) == FIELDS


def test_the_script_publishes_exactly_bar_to_json_and_logs_the_values(redis_client):
    """A packed bar's JSON is written by the publish script from its values: through a real Redis,
    what a subscriber receives is Bar.to_json() and the log entry reads back as the bar."""
    keys = Keys("multialpha")
    ps = redis_client.pubsub()
    ps.psubscribe(keys.bars_pattern())
    ps.get_message(timeout=1)
    pub = Publisher(redis_client, keys, maxlen=100)
    for b in BARS:
        pub.add(b)
    assert pub.flush() and pub.published == len(BARS)
    got = []
    while len(got) < len(BARS):
        msg = ps.get_message(timeout=2)
        assert msg is not None, got
        got.append(msg["data"])
    assert got == [b.to_json() for b in BARS]
    for b in BARS:
        (entry_id, fields), *_ = redis_client.xrange(keys.bar_log(b.symbol), f"{b.start_ms}-0", f"{b.start_ms}-0")
        assert bar_from_log(fields) == b
