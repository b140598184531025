"""Control channels at a process boundary.

- hub control (multialpha/hub/control.py ``parse``): Command, None (event echo) or ControlError;
- deployment control channel (supervisor/watch.py ``ControlListener._handle``): a restart request
  (``{"command": "restart", "component": NAME}``, what ``request_restart`` / portfolio halt/resume
  publish on ``Keys.control()``) is posted, anything else is dropped - the listener thread must
  never raise;
- heartbeat hashes (multialpha/heartbeat.py ``decode``), read by the supervisor's watch thread.
"""

from __future__ import annotations

import json
import random


from multialpha import heartbeat as hb
from multialpha.hub.control import COMMANDS, Command, ControlError, parse
from multialpha.keys import Keys
from multialpha.supervisor.manager import RestartRequest
from multialpha.supervisor.watch import DEPLOY_COMMANDS, ControlListener
from tests.fuzz.helpers import (
    CASES, dumps_loose, fuzz, ints, json_values, nested, one_of, random_bytes, random_json, random_text, seeded,
)

def control_doc(rng: random.Random) -> dict:
    doc = {}
    if rng.random() < 0.9:
        doc["command"] = rng.choice(sorted(COMMANDS) + ["restart", "halt", "resume"]) if rng.random() < 0.7 else random_json(rng)
    if rng.random() < 0.5:
        doc["id"] = rng.choice((random_text(rng, 70), random_json(rng), "a-1", "x" * 64, "x" * 65, "a b"))
    if rng.random() < 0.2:
        doc["event"] = random_json(rng)
    if rng.random() < 0.5:
        doc["component"] = rng.choice(("hub", "ibs_a", random_text(rng, 20), random_json(rng)))
    for _ in range(rng.randrange(3)):
        doc.setdefault(random_text(rng, 8), random_json(rng))
    return doc


payloads = one_of(
    seeded(control_doc).map(dumps_loose),
    seeded(control_doc).map(lambda d: dumps_loose(d).encode()),
    json_values.map(dumps_loose),
    seeded(lambda r: random_bytes(r, 200)),
    seeded(lambda r: random_text(r, 200)),
    ints(1, 3000).map(nested),
    ints(4000, 4200).map(lambda n: "x" * n),
)


def _check_command(inp, cmd) -> None:
    assert cmd is None or (isinstance(cmd, Command) and cmd.name in COMMANDS)
    if cmd is not None and cmd.name == "ping":
        assert cmd.request_id


def test_hub_control_parse_is_command_none_or_control_error():
    counts = fuzz(payloads, parse, ControlError, CASES, _check_command)
    print(f"\nhub control: {sum(counts.values())} cases, {counts['ok']} accepted, {counts['error']} ControlError")
    assert sum(counts.values()) >= CASES and counts["ok"] > 100 and counts["error"] > 1000


def test_hub_control_regressions():
    for payload in (json.dumps({"command": ["ping"]}), json.dumps({"command": {"a": 1}}), nested(3000)):
        try:
            parse(payload)
        except ControlError:
            continue
        raise AssertionError(f"accepted {payload[:60]!r}")
    assert parse(json.dumps({"command": "ping", "id": "a-1"})) == Command("ping", "a-1")


def test_deployment_control_channel_never_raises():
    posted: list[RestartRequest] = []
    deployed: list[dict] = []  # what reaches the reload/stop/start handler (supervisor/reload.py)
    bare = ControlListener(None, Keys("multialpha"), posted.append)  # type: ignore[arg-type]
    listener = ControlListener(None, Keys("multialpha"), posted.append, deploy=deployed.append)  # type: ignore[arg-type]

    def handle(payload):
        before, dep_before = len(posted), len(deployed)
        bare._handle(payload)  # without a deploy handler (`up --only`, tests) nothing else may break
        listener._handle(payload)
        return posted[before:] + deployed[dep_before:]

    def check(inp, out) -> None:
        for req in out:  # a restart only for a well-formed request; a deploy command only a known string
            doc = json.loads(inp)
            if isinstance(req, dict):
                assert isinstance(req["command"], str) and req["command"] in DEPLOY_COMMANDS
            else:
                assert doc["command"] == "restart" and doc["component"] == req.name

    counts = fuzz(payloads, handle, (), CASES, check)
    print(f"\ndeployment control: {sum(counts.values())} cases, {len(posted)} restart requests posted")
    assert sum(counts.values()) >= CASES and len(posted) > 10


def hb_hash(rng: random.Random) -> dict:
    out: dict = {}
    for _ in range(rng.randrange(9)):
        key = random_text(rng, 10)
        out[key.encode() if rng.random() < 0.5 else key] = rng.choice((
            random_bytes(rng, 30), random_text(rng, 30), dumps_loose(random_json(rng)),
            nested(rng.randrange(1, 3000)), str(rng.randrange(10**6)).encode(),
        ))
    return out


def test_heartbeat_hash_decode_never_raises():
    counts = fuzz(seeded(hb_hash), hb.decode, (), CASES, lambda i, out: _is_dict(out, i))
    assert counts["ok"] >= CASES


def _utf8(b: bytes) -> bool:
    try:
        b.decode()
        return True
    except UnicodeDecodeError:
        return False


def _is_dict(out, inp) -> None:
    assert isinstance(out, dict) and len(out) <= len(inp)
