"""Logging: one setup, process names in lines, secrets never printed."""

from __future__ import annotations

import json
import logging

import pytest

from multialpha import logs

KEY = "db-" + "AbCdEfGhIjKlMnOpQrStUvWxYz123"
URL = "https://webhooks.traderspost.io/trading/webhook/5f0c1b2a-uuid/s3cretPassw0rd"


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]):
    def run(json_lines: bool) -> str:
        logs.setup("hub", json_lines=json_lines)
        log = logging.getLogger("multialpha.test")
        log.info("connecting with key %s to %s", KEY, URL)
        logs.register_secret("redis-pw-xyz")
        log.warning("redis://:redis-pw-xyz@127.0.0.1:6379/0 refused")
        try:
            raise RuntimeError(f"POST {URL} failed")
        except RuntimeError:
            log.exception("send failed")
        return capsys.readouterr().err

    return run


@pytest.mark.parametrize("json_lines", [False, True])
def test_secrets_are_redacted_everywhere(captured, json_lines: bool) -> None:
    out = captured(json_lines)
    assert "send failed" in out and "refused" in out
    for secret in (KEY, "s3cretPassw0rd", "5f0c1b2a-uuid", "redis-pw-xyz"):
        assert secret not in out


def test_json_lines_name_the_process(captured) -> None:
    lines = [json.loads(line) for line in captured(True).splitlines() if line.startswith("{")]
    assert lines and all(doc["process"] == "hub" for doc in lines)
    assert {"ts", "level", "msg", "pid"} <= set(lines[0])


def test_human_lines_name_the_process(captured) -> None:
    assert "hub[" in captured(False).splitlines()[0]
