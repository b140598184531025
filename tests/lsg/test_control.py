"""The control lines are the official client's, byte for byte (databento-python's own classes)."""

from __future__ import annotations

import pytest
from databento.common.cram import get_challenge_response
from databento.live.gateway import AuthenticationRequest, SessionStart, SubscriptionRequest

from multialpha.lsg import control

KEY = "db-" + "Ab3" * 9 + "xY"


def test_cram_answer_and_auth_line_match_the_official_client() -> None:
    assert len(KEY) == 32
    assert control.cram_response("c4llenge", KEY) == get_challenge_response("c4llenge", KEY)
    official = AuthenticationRequest(auth=get_challenge_response("c4llenge", KEY), dataset="GLBX.MDP3", ts_out="0",
                                     compression="none", heartbeat_interval_s=20, client=control.CLIENT)
    assert control.auth_request("c4llenge", KEY, "GLBX.MDP3", heartbeat_interval_s=20) == bytes(official)
    assert KEY not in control.auth_request("c4llenge", KEY, "GLBX.MDP3").decode()  # only its hash and bucket


def test_subscriptions_are_chunked_like_the_official_client() -> None:
    syms = [f"S{i}.FUT" for i in range(1001)]
    got = control.subscription_requests("trades", "parent", syms, 1_700_000_000_000_000_000, 3)
    want = [bytes(SubscriptionRequest(schema="trades", stype_in="parent", symbols=",".join(syms[i:i + 500]),
                                      start=1_700_000_000_000_000_000, snapshot=0, id=3, is_last=int(i == 1000)))
            for i in (0, 500, 1000)]
    assert got == want
    assert control.subscription_requests("trades", "parent", ["ES.FUT"], None, 0) == [
        bytes(SubscriptionRequest(schema="trades", stype_in="parent", symbols="ES.FUT", id=0))]
    assert control.session_start() == bytes(SessionStart())
    with pytest.raises(ValueError):
        control.subscription_requests("trades", "parent", [], None, 0)


def test_parse_reads_gateway_lines_and_rejects_garbage() -> None:
    assert control.parse(b"success=0|error=Authentication failed.\n") == {"success": "0",
                                                                          "error": "Authentication failed."}
    for bad in (b"cram=abc", b"no pairs here\n", b"\xff\xfe=1\n"):
        with pytest.raises(control.ControlError):
            control.parse(bad)
