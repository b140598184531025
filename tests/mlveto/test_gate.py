import logging
from datetime import datetime
from pathlib import Path

import pytest

from multialpha.cme_time import UTC
from multialpha.keys import Keys
from multialpha.mlveto.gate import VetoGate
from multialpha.mlveto.record import record
from tests.mlveto.helpers import FEATURES, write_model

GOOD = {"ibs": -2.0, "ret_5d": 0.0}   # low IBS -> model says profitable
BAD = {"ibs": 2.0, "ret_5d": 0.0}


def test_the_gate_answers_what_the_model_says(tmp_path: Path) -> None:
    """No ml_veto.mode here: the worker applies it to whichever veto answered (tests/worker/test_orders.py)."""
    write_model(tmp_path)
    gate = VetoGate(tmp_path, "ibs", {"6A": True}, features=FEATURES)
    assert gate.decide("6A", "long", GOOD).allow
    bad = gate.decide("6A", "long", BAD)
    assert not bad.allow and bad.vetoed and bad.probability is not None and bad.probability < 0.5


def test_ml_disabled_symbol_is_allowed(tmp_path: Path) -> None:
    gate = VetoGate(tmp_path, "ibs", {"6A": False}, features=FEATURES)
    assert gate.decide("6A", "long", BAD).allow


@pytest.mark.parametrize("on_missing,allowed", [("block", False), ("allow", True)])
def test_tampered_model_follows_on_missing_and_logs_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, on_missing: str, allowed: bool
) -> None:
    path = write_model(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with caplog.at_level(logging.ERROR):
        gate = VetoGate(tmp_path, "ibs", {"6A": True}, on_missing=on_missing, features=FEATURES)
    assert any("ML VETO" in r.getMessage() and "sha256" in r.getMessage() for r in caplog.records)
    for feats in (GOOD, BAD):
        d = gate.decide("6A", "long", feats)
        assert d.allow is allowed and f"on_missing={on_missing}" in d.reason


def test_missing_or_nan_feature_fails_closed(tmp_path: Path) -> None:
    write_model(tmp_path)
    gate = VetoGate(tmp_path, "ibs", {"6A": True}, features=FEATURES)
    assert not gate.decide("6A", "long", {"ibs": -2.0}).allow
    assert not gate.decide("6A", "long", {"ibs": float("nan"), "ret_5d": 0.0}).allow


def test_decisions_are_recorded(tmp_path: Path, redis_client) -> None:
    write_model(tmp_path)
    gate = VetoGate(tmp_path, "ibs", {"6A": True}, features=FEATURES)
    keys = Keys("t")
    when = datetime(2025, 12, 1, 15, 0, tzinfo=UTC)
    v = gate.decide("6A", "long", BAD)
    record(redis_client, keys, strategy="ibs_a", symbol="6A", side="long", at=when, allow=not v.vetoed,
           acted=v.allow, mode="enforce", reason=v.reason, features=v.features, probability=v.probability,
           model_sha256=v.model_sha256)
    ((_, doc),) = redis_client.xrange(keys.veto_log())
    assert doc["decision"] == "veto" and doc["acted"] == "block" and doc["at"] == "2025-12-01T15:00:00Z"
    assert float(doc["probability"]) < 0.5 and len(doc["model_sha256"]) == 64 and '"ibs": 2.0' in doc["features"]
