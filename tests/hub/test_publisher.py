from __future__ import annotations

import pytest
import redis

from multialpha import cme_time
from multialpha.bar import Bar, BarError
from multialpha.hub.publisher import Publisher, bar_from_log, log_fields
from multialpha.keys import Keys
from multialpha.managed_redis import ManagedRedis

T0 = cme_time.parse_iso("2025-12-01T15:00:00Z")


def bar(minute: int, symbol: str = "ES", close: float = 6000.0, source: str = "live") -> Bar:
    from datetime import timedelta

    return Bar(symbol, T0 + timedelta(minutes=minute), close, close * 1.01, close * 0.99, close, 10, "ESZ5", 3, source)


def test_publish_and_log_are_idempotent(redis_client):
    keys = Keys("multialpha")
    ps = redis_client.pubsub()
    ps.subscribe(keys.bars("ES"))
    ps.get_message(timeout=1)
    pub = Publisher(redis_client, keys, maxlen=100)
    for b in (bar(0), bar(1), bar(0), bar(1, close=1.0), bar(2)):
        pub.add(b)
    assert pub.flush()
    # Republish of minutes 0 and 1 (even with different content) is refused, log unchanged.
    assert (pub.published, pub.duplicates) == (3, 2)
    entries = redis_client.xrange(keys.bar_log("ES"))
    assert [e[0] for e in entries] == [f"{bar(i).start_ms}-0" for i in range(3)]
    assert bar_from_log(entries[1][1]) == bar(1)
    got = []
    while (m := ps.get_message(timeout=0.5)) is not None:
        got.append(Bar.from_json(m["data"]))
    assert got == [bar(0), bar(1), bar(2)]
    # A second publisher (a restarted hub) cannot duplicate either.
    again = Publisher(redis_client, keys, maxlen=100)
    again.add(bar(2))
    again.flush()
    assert again.duplicates == 1 and redis_client.xlen(keys.bar_log("ES")) == 3
    assert again.last_logged(["ES", "NQ"]) == {"ES": cme_time.to_ns(bar(2).start)}


def test_log_capped_and_namespaced(redis_client):
    keys = Keys("paper")
    pub = Publisher(redis_client, keys, maxlen=10)
    for i in range(500):
        pub.add(bar(i))
    pub.flush()
    n = redis_client.xlen(keys.bar_log("ES"))
    assert 10 <= n < 500  # MAXLEN ~ trims by whole nodes
    assert keys.bar_log("ES").startswith("paper:") and redis_client.xlen(Keys().bar_log("ES")) == 0


def test_log_fields_roundtrip_and_garbage():
    b = bar(3, symbol="6J", close=0.0065005)
    flat = log_fields(b)
    fields = dict(zip(flat[::2], flat[1::2]))
    assert fields["open"] == "0.0065005" and fields["timestamp"] == "2025-12-01T15:03:00Z"
    assert bar_from_log(fields) == b
    with pytest.raises(BarError):
        bar_from_log({**fields, "open": "abc"})


def test_redis_down_buffers_in_order_and_counts_drops(tmp_path):
    server = ManagedRedis().start()
    port = server.port
    try:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(host=server.host, port=port, decode_responses=True,
                             socket_timeout=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1))
        keys = Keys()
        pub = Publisher(client, keys, maxlen=1000, buffer_bars=5, retry_s=0.0)
        pub.add(bar(0))
        assert pub.flush()
        server.stop()
        for i in range(1, 8):  # 7 bars while down, room for 5
            pub.add(bar(i))
            assert not pub.flush()
        assert not pub.up and pub.dropped == 2 and len(pub.pending) == 5
        server = ManagedRedis(port=port).start()  # a fresh, empty server on the same port
        client.xadd(keys.bar_log("ES"), {"x": "1"}, id=f"{bar(0).start_ms}-0")  # stands for the old log
        assert pub.flush()
        ids = [e[0] for e in client.xrange(keys.bar_log("ES"))]
        assert ids == [f"{bar(i).start_ms}-0" for i in (0, 3, 4, 5, 6, 7)]  # oldest two dropped, order kept
        assert pub.up and pub.published == 6
    finally:
        server.stop()


def test_a_bar_redis_refuses_is_dropped_and_counted_not_retried_forever(redis_client):
    keys = Keys()
    redis_client.set(keys.bar_log("NQ"), "not a stream")
    pub = Publisher(redis_client, keys)
    for b in (bar(0), bar(0, symbol="NQ"), bar(1)):
        pub.add(b)
    assert pub.flush() and not pub.pending
    assert (pub.published, pub.dropped, pub.errors) == (2, 1, 1)
    assert redis_client.xlen(keys.bar_log("ES")) == 2 and pub.up


def test_minute_close_notices_follow_their_bars_on_the_wire(redis_client):
    from multialpha.bar import parse_minute_closed

    keys = Keys("multialpha")
    ps = redis_client.pubsub()
    ps.subscribe(keys.bars("ES"), keys.bars("NQ"), keys.minute_closed())
    for _ in range(3):
        ps.get_message(timeout=1)
    pub = Publisher(redis_client, keys, maxlen=100)
    for m in range(3):
        pub.add(bar(m, "ES"))
        pub.add(bar(m, "NQ"))
        pub.add_minute_closed(cme_time.to_ns(bar(m).start))
    assert pub.flush() and not pub.pending
    got = []
    while (msg := ps.get_message(timeout=0.5)) is not None:
        if msg["channel"] == keys.minute_closed():
            got.append(("closed", parse_minute_closed(msg["data"])))
        else:
            b = Bar.from_json(msg["data"])
            got.append((b.symbol, b.start))
    expected = []
    for m in range(3):
        expected += [("ES", bar(m).start), ("NQ", bar(m).start), ("closed", bar(m).start)]
    assert got == expected
    assert (pub.published, pub.notices, pub.closed_through) == (6, 3, cme_time.iso_z(bar(2).start))


@pytest.mark.parametrize("payload", [b"", b"{", b"[]", b'{"minute": 5}', b'{"minute": "2025-12-01T15:00:30Z"}',
                                     b'{"minute": "nope"}', b"x" * 1000])
def test_a_bad_minute_close_notice_is_a_bar_error(payload):
    from multialpha.bar import parse_minute_closed

    with pytest.raises(BarError):
        parse_minute_closed(payload)


def _wire(ps) -> list[tuple[str, str]]:
    got = []
    while (m := ps.get_message(timeout=0.5)) is not None:
        if m["type"] in ("message", "pmessage"):
            got.append((m["channel"], m["data"]))
    return got


def test_a_minute_batch_across_roots_with_one_bar_already_logged(redis_client):
    """One script call carries a minute's bars of several roots and its notice; a bar already in
    its log (a restarted hub) is skipped alone: the others and the notice still go out, in order."""
    keys = Keys("multialpha")
    first = Publisher(redis_client, keys, maxlen=100)
    first.add(bar(0, "NQ"))
    assert first.flush() and first.published == 1
    ps = redis_client.pubsub()
    ps.psubscribe(keys.bars_pattern())
    ps.subscribe(keys.minute_closed())
    ps.get_message(timeout=1), ps.get_message(timeout=1)
    pub = Publisher(redis_client, keys, maxlen=100)
    for m in range(2):
        for sym in ("ES", "NQ", "ZB"):
            pub.add(bar(m, sym))
        pub.add_minute_closed(cme_time.to_ns(bar(m).start))
    assert pub.flush() and not pub.pending
    notice = [(keys.minute_closed(), f'{{"minute":"{cme_time.iso_z(bar(m).start)}"}}') for m in range(2)]
    assert _wire(ps) == [(keys.bars(s), bar(0, s).to_json()) for s in ("ES", "ZB")] + notice[:1] + [
        (keys.bars(s), bar(1, s).to_json()) for s in ("ES", "NQ", "ZB")] + notice[1:]
    assert (pub.published, pub.duplicates, pub.notices, pub.dropped) == (5, 1, 2, 0)
    assert pub.last_bar == {s: cme_time.iso_z(bar(1).start) for s in ("ES", "NQ", "ZB")}
    assert redis_client.xlen(keys.bar_log("NQ")) == 2


def test_strings_that_could_hold_the_separator_travel_as_arguments(redis_client):
    """A bar whose strings need escaping (or hold the packed argument's separator) goes as
    separate script arguments, between packed ones, and still reads exactly as Bar.to_json()."""
    keys = Keys("multialpha")
    ps = redis_client.pubsub()
    ps.psubscribe(keys.bars_pattern())
    ps.get_message(timeout=1)
    odd = Bar("NQ", T0, 6000.25, 6000.25, 6000.25, 6000.25, 1, 'NQ"Z5\\\x1f\n\u00e9', 1, "live")
    bars = [bar(0, "ES"), odd, bar(0, "ZB"), bar(1, "E\x1fS")]
    pub = Publisher(redis_client, keys, maxlen=100)
    for b in bars:
        pub.add(b)
    pub.add_minute_closed(cme_time.to_ns(bar(0).start))
    assert pub.flush() and (pub.published, pub.notices) == (4, 1)
    assert _wire(ps) == [(keys.bars(b.symbol), b.to_json()) for b in bars]
    for b in bars:
        ((entry_id, fields),) = redis_client.xrange(keys.bar_log(b.symbol))
        flat = log_fields(b)
        assert entry_id == f"{b.start_ms}-0" and fields == dict(zip(flat[::2], flat[1::2]))


def test_a_lost_script_cache_is_reloaded_and_the_batch_sent_once(redis_client):
    """NOSCRIPT (a restarted or failed-over Redis has no scripts): nothing of that call ran; the
    script is loaded and the call sent again, so every bar is published once, notice last."""
    keys = Keys("multialpha")
    pub = Publisher(redis_client, keys, maxlen=100)
    pub.add(bar(0))
    assert pub.flush()
    redis_client.script_flush()
    ps = redis_client.pubsub()
    ps.subscribe(keys.bars("ES"), keys.minute_closed())
    ps.get_message(timeout=1), ps.get_message(timeout=1)
    pub.add(bar(1))
    pub.add(bar(2))
    pub.add_minute_closed(cme_time.to_ns(bar(2).start))
    assert pub.flush() and not pub.pending
    assert [ch for ch, _ in _wire(ps)] == [keys.bars("ES"), keys.bars("ES"), keys.minute_closed()]
    assert (pub.published, pub.duplicates, pub.notices, pub.errors) == (3, 0, 1, 0)


def test_replies_are_read_by_the_next_flush_and_a_lost_reply_resends_in_order(redis_client):
    """flush(wait=False), as the hub loop calls it: counted when the next flush reads the replies;
    until then the bars count as pending. A connection lost before the replies were read puts
    the bars back at the front of the queue and is retried at once (as redis-py's own retry
    would); the resend finds what Redis already ran in the log (counted as duplicates, never
    published twice) and publishes the rest, in order."""
    keys = Keys()
    pub = Publisher(redis_client, keys, maxlen=1000, retry_s=0.0)
    pub.add(bar(0))
    assert pub.flush(wait=False) and (pub.published, pub.counters()["pending"]) == (0, 1)
    assert pub.flush() and (pub.published, pub.counters()["pending"]) == (1, 0)
    for i in (1, 2):
        pub.add(bar(i))
    assert pub.flush(wait=False)
    pub._sent[0].disconnect()  # fault injection: the connection drops before its replies are read
    pub.add(bar(3))
    assert pub.flush() and pub.up and not pub.pending
    assert (pub.published, pub.duplicates, pub.errors) == (2, 2, 1)  # the loss is counted, not hidden
    assert [e[0] for e in redis_client.xrange(keys.bar_log("ES"))] == [f"{bar(i).start_ms}-0" for i in range(4)]


def test_replies_lost_on_two_flushes_in_a_row_are_redis_down_and_nothing_is_dropped(redis_client):
    """The hub loop's flush(wait=False) reads one batch of replies per call: a reply lost on two
    calls in a row (a stalled Redis timing out the read, LOADING after a restart) is Redis down
    (up False, counted, backoff), not a silent resend loop; the bars stay pending and are
    published once when Redis answers again."""
    keys = Keys()
    now = [0.0]
    pub = Publisher(redis_client, keys, maxlen=1000, retry_s=0.5, monotonic=lambda: now[0])
    pub.add(bar(0))
    assert pub.flush(wait=False)
    pub._sent[0].disconnect()  # fault injection: the reply is lost
    assert pub.flush(wait=False) and pub.up and pub.errors == 1  # first loss: resent at once
    pub._sent[0].disconnect()  # lost again, on the next flush
    assert not pub.flush(wait=False)
    assert not pub.up and pub.errors == 2 and pub.counters()["pending"] == 1
    assert not pub.flush(wait=False) and pub.pending  # backing off: nothing sent before retry_s
    now[0] += 0.5
    assert pub.flush() and pub.up and not pub.pending
    assert [e[0] for e in redis_client.xrange(keys.bar_log("ES"))] == [f"{bar(0).start_ms}-0"]
    assert (pub.published, pub.duplicates) == (0, 1)  # published by a call whose reply was lost


def test_a_write_refused_for_now_keeps_the_bars_and_a_wrong_type_drops_them(redis_client):
    """READONLY/OOM/NOPERM-style replies mean "not now": the batch stays pending and Redis counts
    as down. A key of the wrong type means "never": that bar is dropped and counted."""
    keys = Keys()
    now = [0.0]
    pub = Publisher(redis_client, keys, maxlen=1000, retry_s=0.5, monotonic=lambda: now[0])
    redis_client.config_set("maxmemory", "1")  # every write is refused with OOM
    try:
        pub.add(bar(0))
        assert not pub.flush()
        assert not pub.up and pub.counters()["pending"] == 1 and pub.dropped == 0
    finally:
        redis_client.config_set("maxmemory", "0")
    now[0] += 0.5
    assert pub.flush() and pub.up and pub.published == 1
    redis_client.set(keys.bar_log("NQ"), "not a stream")
    pub.add(bar(1, "NQ"))
    assert pub.flush() and pub.up and (pub.dropped, pub.published) == (1, 1)


def test_flush_paced_writes_at_once_when_caught_up_and_batches_a_backlog(redis_client):
    """The hub loop's flush: with no record waiting a bar leaves at once; while records wait
    (a replay, a burst) the minutes they close share one write every BACKLOG_FLUSH_S."""
    from multialpha.hub.publisher import BACKLOG_FLUSH_S

    keys = Keys("multialpha")
    now = [100.0]
    pub = Publisher(redis_client, keys, maxlen=1000, monotonic=lambda: now[0])
    pub.add(bar(0))
    pub.flush_paced(backlog=5000)  # the first write of a backlog goes at once
    pub.add(bar(1))
    pub.flush_paced(backlog=5000)  # then nothing until BACKLOG_FLUSH_S has passed
    assert list(pub.pending) == [bar(1)]
    now[0] += BACKLOG_FLUSH_S
    pub.add(bar(2))
    pub.flush_paced(backlog=4000)
    assert not pub.pending
    pub.add(bar(3))
    pub.flush_paced(backlog=0)  # caught up: at once, however recent the last write
    assert not pub.pending
    pub.flush()
    assert pub.published == 4 and redis_client.xlen(keys.bar_log("ES")) == 4
