from __future__ import annotations

import json

import pytest

from multialpha.hub.control import Command, ControlChannel, ControlError, parse
from multialpha.keys import Keys


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe", "not json", "[1,2]", '{"cmd":"x"}', '{"command":"selfdestruct"}', '{"command":"ping"}',
     '{"command":"ping","id":"has space"}', '{"command":"ping","id":5}', "x" * 5000, "null"],
)
def test_garbage_rejected(payload):
    with pytest.raises(ControlError):
        parse(payload)


def test_commands_parsed():
    assert parse('{"command":"shutdown"}') == Command("shutdown")
    assert parse('{"command":"ping","id":"abc-1"}') == Command("ping", "abc-1")
    assert parse('{"event":"roll","symbol":"ES"}') is None  # the hub's own announcements


def test_channel_polls_counts_garbage_and_replies(redis_client):
    keys = Keys()
    ch = ControlChannel(redis_client, keys)
    assert ch.poll() == []  # subscribes
    for payload in ("garbage", '{"command":"reload"}', "{}", '{"command":"ping","id":"r1"}'):
        redis_client.publish(keys.hub_control(), payload)
    got: list[Command] = []
    for _ in range(100):
        got += ch.poll()
        if len(got) == 2:
            break
    assert got == [Command("reload"), Command("ping", "r1")] and ch.malformed == 2
    listener = redis_client.pubsub()
    listener.subscribe(keys.hub_control_reply("r1"))
    listener.get_message(timeout=1)
    ch.reply("r1", {"reply": "pong"})
    msg = listener.get_message(timeout=2)
    assert json.loads(msg["data"]) == {"reply": "pong"}
    ch.close()
