import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from multialpha.mlveto import manifest
from multialpha.mlveto.linear import LinearVetoModel
from multialpha.mlveto.loader import LoadedModel, Refusal, load_model
from tests.conftest import REPO
from tests.mlveto.helpers import FEATURES, write_lean_model, write_model


def test_verified_model_loads(tmp_path: Path) -> None:
    write_model(tmp_path)
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, LoadedModel) and got.entry.features == FEATURES


def test_one_changed_byte_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "sha256" in got.reason and "refused" in got.reason


def test_a_pickle_not_in_the_manifest_never_runs(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"
    write_model(tmp_path, symbol="6C")  # a manifest exists, but not for 6A

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    target = tmp_path / "ibs" / "6A.joblib"
    target.write_bytes(pickle.dumps(Evil()))
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "no manifest entry" in got.reason
    assert not marker.exists()


def test_feature_mismatch_and_missing_are_refused(tmp_path: Path) -> None:
    write_model(tmp_path)
    got = load_model(tmp_path, "ibs", "6A", ["ret_5d", "ibs"])
    assert isinstance(got, Refusal) and "feature list mismatch" in got.reason
    (tmp_path / "ibs" / "6A.joblib").unlink()
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "missing" in got.reason
    assert isinstance(load_model(tmp_path / "nowhere", "ibs", "6A", FEATURES), Refusal)


def test_a_users_own_sklearn_estimator_still_loads(tmp_path: Path) -> None:
    write_model(tmp_path)  # a bare LogisticRegression, manifest entry without a format field
    doc = json.loads((tmp_path / "manifest.json").read_text())
    doc["models"]["ibs/6A"].pop("format")  # as an older manifest has it
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, LoadedModel) and got.entry.format == manifest.FORMAT_ESTIMATOR
    assert got.estimator.predict_proba([[-1.0, 0.0]])[0][1] > 0.5


def test_lean_model_loads_and_its_format_is_enforced(tmp_path: Path) -> None:
    write_lean_model(tmp_path)
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, LoadedModel) and isinstance(got.estimator, LinearVetoModel)
    assert got.entry.format == manifest.FORMAT_LINEAR
    assert got.estimator.predict_proba([[-1.0, 0.0]])[0][1] > 0.5  # low ibs -> profitable, as fitted
    entries = manifest.load(tmp_path)
    # a sklearn pickle listed (hash and all) as linear-logistic/1: loaded bytes, wrong kind -> refused
    write_model(tmp_path, symbol="6B")
    e = manifest.load(tmp_path)["ibs/6B"]
    entries["ibs/6B"] = dataclasses.replace(e, format=manifest.FORMAT_LINEAR)
    manifest.save(tmp_path, entries)
    got = load_model(tmp_path, "ibs", "6B", FEATURES)
    assert isinstance(got, Refusal) and "manifest says linear-logistic/1" in got.reason
    # a format this version does not know is refused before unpickling
    entries["ibs/6A"] = dataclasses.replace(entries["ibs/6A"], format="onnx/1")
    manifest.save(tmp_path, entries)
    got = load_model(tmp_path, "ibs", "6A", FEATURES)
    assert isinstance(got, Refusal) and "unknown model format 'onnx/1'" in got.reason


def test_lean_model_fitted_on_other_features_is_refused(tmp_path: Path) -> None:
    write_lean_model(tmp_path)
    entries = manifest.load(tmp_path)
    entries["ibs/6A"] = dataclasses.replace(entries["ibs/6A"], features=["ret_5d", "ibs"])
    manifest.save(tmp_path, entries)
    got = load_model(tmp_path, "ibs", "6A", None)
    assert isinstance(got, Refusal) and "was fitted on ['ibs', 'ret_5d']" in got.reason


def test_loading_the_shipped_models_imports_neither_sklearn_nor_scipy() -> None:
    """In a fresh interpreter (this one has sklearn loaded): what a worker pays for its models."""
    code = textwrap.dedent("""
        import sys
        from pathlib import Path
        from multialpha.mlveto import manifest
        from multialpha.mlveto.gate import VetoGate
        from multialpha.mlveto.linear import LinearVetoModel
        models = Path(sys.argv[1])
        entries = manifest.load(models)
        assert len(entries) >= 10, entries
        for e in entries.values():
            gate = VetoGate(models, e.strategy_type, {e.symbol: True})
            assert isinstance(gate.models[e.symbol].estimator, LinearVetoModel), gate.models[e.symbol]
            v = gate.decide(e.symbol, "long", {n: 0.0 for n in e.features})
            assert v.probability is not None, v
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "scipy", "threadpoolctl"))
        print(len(entries), heavy)
    """)
    r = subprocess.run([sys.executable, "-c", code, str(REPO / "models")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    n, heavy = r.stdout.split(" ", 1)
    assert heavy.strip() == "[]" and int(n) >= 10


# -- issue #20: sandbox-trained models on real data run in shadow -----------------------------------


def test_sandbox_models_run_in_shadow_with_a_databento_key(settings_for, caplog) -> None:
    """Only the loader's decision: a fake key that nothing can reach, no network."""
    import logging

    import pluggy

    from multialpha.mlveto import plugin
    from multialpha.mlveto.loader import sandbox_shadow

    e = manifest.ModelEntry("ibs", "6A", "ibs/6A.joblib", "0" * 64, ["f"], 0.5, data_source="sandbox")
    assert sandbox_shadow(e, live_data=True, allow_sandbox_models=False)
    assert not sandbox_shadow(e, live_data=False, allow_sandbox_models=False)  # the demo: enforce
    assert not sandbox_shadow(e, live_data=True, allow_sandbox_models=True)
    for source in ("databento", ""):
        assert not sandbox_shadow(manifest.ModelEntry("ibs", "6A", "f", "0", ["f"], 0.5, data_source=source),
                                  live_data=True, allow_sandbox_models=False)

    key = "db-" + "F4ke" * 7 + "x"
    pm = pluggy.PluginManager("multialpha")
    with caplog.at_level(logging.WARNING, logger="multialpha.mlveto.gate"):
        veto = plugin.register(pm, settings_for(DATABENTO_API_KEY=key), "breakout", "breakout")
    assert veto.gate.shadowed == {"ES", "NQ", "RTY", "YM"}
    loud = [r for r in caplog.records if "trained on SANDBOX data" in r.getMessage()]
    assert len(loud) == 1 and "SHADOW" in loud[0].getMessage()
    names = veto.gate.models["ES"].entry.features
    v = veto.gate.decide("ES", "long", {n: -50.0 for n in names})
    v2 = veto.gate.decide("ES", "long", {n: 50.0 for n in names})
    assert v.allow and v2.allow  # whatever the model says, it never blocks
    assert any("sandbox-trained model on real data" in x.reason for x in (v, v2) if x.vetoed) or \
        not (v.vetoed or v2.vetoed)
    # and so does the hook the worker asks: it answers allow whatever the model said (the worker's
    # ml_veto.mode is enforce here; a sandbox model on real data must not block through it either)
    for feats in ({n: -50.0 for n in names}, {n: 50.0 for n in names}):
        assert veto.multialpha_ml_veto(strategy="breakout", symbol="ES", side="long", features=feats).allow
    caplog.clear()
    allowed = plugin.register(pm, settings_for(DATABENTO_API_KEY=key, MULTIALPHA__ML_VETO__ALLOW_SANDBOX_MODELS="true"),
                              "breakout", "breakout")
    assert allowed.gate.shadowed == set() and "SANDBOX" not in caplog.text
    demo = plugin.register(pm, settings_for(DATABENTO_API_KEY=""), "breakout", "breakout")
    assert demo.gate.shadowed == set()
