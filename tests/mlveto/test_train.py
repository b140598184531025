"""`multialpha models train` on the sandbox: joblib + manifest the worker's loader accepts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from multialpha import config as cfg
from multialpha.cli import main
from multialpha.mlveto import manifest
from multialpha.mlveto.features import feature_names
from multialpha.mlveto.gate import VetoGate
from multialpha.mlveto.linear import LinearVetoModel
from multialpha.mlveto.loader import LoadedModel, load_model
from multialpha.mlveto.train import choose_threshold
# The backtest fixtures (a real sandbox with its clock pinned, small-warmup config), imported as fixtures.
from tests.backtest.conftest import bt_dirs, make_settings, sandbox, source, write_config  # noqa: F401

TRAIN_ARGS = ["--strategy", "breakout", "--from", "2025-11-24", "--to", "2025-12-04", "--min-trades", "4"]


@dataclass(frozen=True)
class Trained:
    settings: cfg.Settings
    models: Path
    exit_code: int
    output: str


@pytest.fixture(scope="module")
def trained(sandbox, bt_dirs, tmp_path_factory: pytest.TempPathFactory) -> Trained:  # noqa: F811
    """One `models train` of breakout over 2025-11-24..12-04 on the sandbox, shared by the tests that
    check what it wrote (training is the costliest step of this module; both tests only read it)."""
    root = tmp_path_factory.mktemp("train")
    settings = cfg.load(write_config(root / "config.multi_alpha.yml", bt_dirs), environ={})
    models = root / "models"
    r = CliRunner().invoke(main, ["models", "train", "--config", settings.source_path, *TRAIN_ARGS,
                                  "--models-dir", str(models)], terminal_width=200)
    return Trained(settings, models, r.exit_code, r.output)


def test_train_writes_models_the_loader_accepts(trained: Trained) -> None:
    models, r = trained.models, trained
    assert r.exit_code == 0, r.output
    entries = manifest.load(models)
    assert entries, r.output
    symbols = {e.symbol for e in entries.values()}
    skipped = [ln for ln in r.output.splitlines() if "skipped" in ln]
    assert len(symbols) + len(skipped) == 4  # every breakout symbol: a model or a reason
    for e in entries.values():
        assert e.strategy_type == "breakout" and e.file == f"breakout/{e.symbol}.joblib"
        assert (e.trained_from, e.trained_to) == ("2025-11-24", "2025-12-04")
        assert e.n_samples >= 4 and 0.0 <= e.threshold <= 1.0
        assert e.features == feature_names(["VIX", "TLT_day"])  # the plugin's features, in its order
        assert {"scikit-learn", "joblib", "numpy", "python"} <= set(e.libraries)
        assert e.format == manifest.FORMAT_LINEAR
        got = load_model(models, "breakout", e.symbol, e.features)
        assert isinstance(got, LoadedModel), got
        assert isinstance(got.estimator, LinearVetoModel) and got.estimator.features == e.features
        assert manifest.sha256_of(models / e.file) == e.sha256
    # the runtime's gate scores with it
    sym = sorted(symbols)[0]
    gate = VetoGate(models, "breakout", {sym: True})
    v = gate.decide(sym, "long", {n: 0.0 for n in entries[f"breakout/{sym}"].features})
    assert v.probability is not None and v.model_sha256 == entries[f"breakout/{sym}"].sha256
    doc = json.loads((models / "manifest.json").read_text())
    assert doc["version"] == 1


def test_save_model_ships_the_export_with_the_pipelines_probabilities(tmp_path: Path) -> None:
    from datetime import date

    from multialpha.mlveto import train

    rng = np.random.default_rng(4)
    names = feature_names(["VIX"])
    X = rng.normal(size=(120, len(names)))
    y = (X[:, 1] + rng.normal(size=120) > 0).astype(int)
    pipe = train._model().fit(X, y)
    e = train.save_model(tmp_path, "breakout", "ES", pipe, names, 0.4, date(2025, 1, 2), date(2025, 3, 1), 120, {})
    got = load_model(tmp_path, "breakout", "ES", names)
    assert isinstance(got, LoadedModel) and isinstance(got.estimator, LinearVetoModel)
    # Equal within the export's own check (linear.TOLERANCE): scikit-learn 1.9 reaches the same
    # probability by another float path, one unit in the last place apart on a few rows.
    from multialpha.mlveto.linear import TOLERANCE

    diff = np.abs(got.estimator.predict_proba(X) - pipe.predict_proba(X)).max()
    assert diff <= TOLERANCE, diff
    # same fitted numbers -> the same bytes (the manifest hash is reproducible)
    again = train.save_model(tmp_path / "b", "breakout", "ES", pipe, names, 0.4, date(2025, 1, 2), date(2025, 3, 1),
                             120, {})
    assert again.sha256 == e.sha256


def test_too_few_trades_writes_no_model(make_settings, tmp_path: Path) -> None:  # noqa: F811
    settings = make_settings()
    models = tmp_path / "models"
    r = CliRunner().invoke(main, ["models", "train", "--config", settings.source_path, "--strategy", "breakout",
                                  "--symbols", "ES", "--from", "2025-12-02", "--to", "2025-12-02",
                                  "--min-trades", "1000", "--models-dir", str(models)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "< 1000" in r.output
    assert manifest.load(models) == {} and not (models / "breakout").exists()


def test_threshold_maximises_allowed_pnl_keeping_half() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    pnl = np.array([-50.0, -40.0, 10.0, 20.0, -5.0, 30.0])
    assert choose_threshold(p, pnl) == 0.3  # allows 4 of 6: 55; 0.4 would allow only 3 (< half)
    assert choose_threshold(p, np.ones(6)) == 0.1  # nothing to gain by vetoing: allow all
    q = np.array([0.1234567891, 0.5, 0.6])
    assert (q >= choose_threshold(q, np.array([5.0, 1.0, 1.0]))).all()  # the cut keeps its own sample


def test_shipped_models_verify_and_cover_the_config() -> None:
    """models/ as shipped: every entry loads through the worker's loader with the plugin's feature order."""
    from multialpha import config as cfg
    from multialpha import plugins
    from tests.conftest import REPO, SHIPPED_CONFIG

    settings = cfg.load(SHIPPED_CONFIG, environ={})
    models = settings.path(settings.models_path)
    entries = manifest.load(models)
    readme = (REPO / "models" / "README.md").read_text()
    for name, st in settings.enabled_strategies.items():
        refs = plugins.get_strategy_type(st.strategy_type).reference_feeds
        for sym, inst in st.instruments.items():
            key = manifest.entry_key(st.strategy_type, sym)
            if key not in entries:
                assert f"`{key}`" in readme, f"{key} has no model and is not explained in models/README.md"
                continue
            got = load_model(models, st.strategy_type, sym, feature_names(list(refs)))
            assert isinstance(got, LoadedModel), got
            assert got.entry.format == manifest.FORMAT_LINEAR and isinstance(got.estimator, LinearVetoModel)


# -- issue #20: the shipped models are not overwritten by accident; provenance in the manifest --------


def test_train_without_force_leaves_the_shipped_models_untouched(tmp_path: Path) -> None:
    import hashlib

    from tests.conftest import REPO, SHIPPED_CONFIG

    models = REPO / "models"

    def snapshot() -> dict[str, str]:
        return {str(p.relative_to(models)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(models.rglob("*")) if p.is_file()}

    before = snapshot()
    for extra in ([], ["--models-dir", str(models)]):
        r = CliRunner().invoke(main, ["models", "train", "--config", str(SHIPPED_CONFIG), "--strategy", "ibs_a",
                                      *extra], terminal_width=200)
        assert r.exit_code == 1, r.output
        assert "would overwrite the shipped models" in r.output and "--force" in r.output
    assert snapshot() == before


def test_the_manifest_records_what_a_model_was_trained_on(trained: Trained) -> None:
    from multialpha.mlveto import train

    settings, models, r = trained.settings, trained.models, trained
    assert train.data_provenance(settings)[0] == "sandbox"
    assert r.exit_code == 0, r.output
    entries = manifest.load(models)
    assert entries
    for e in entries.values():
        assert e.data_source == "sandbox"
        assert e.data["sandbox_seed"] == settings.sandbox.seed and e.data["dataset"] == "GLBX.MDP3"
        assert (e.trained_from, e.trained_to) == ("2025-11-24", "2025-12-04") and e.n_samples >= 4
        assert e.validation_auc == e.metrics.get("validation_auc")
    low = [e for e in entries.values() if e.validation_auc is None or e.validation_auc < train.MIN_USEFUL_AUC]
    for e in low:  # a weak model is trained, and said to be weak
        assert f"warning: breakout/{e.symbol}: validation AUC" in r.output
    keyed = settings.model_copy(update={"databento": settings.databento.model_copy(update={"api_key": "db-" + "x" * 29})})
    assert train.data_provenance(keyed) == ("databento", {"dataset": "GLBX.MDP3"})


def test_the_shipped_manifest_says_sandbox() -> None:
    from tests.conftest import REPO

    entries = manifest.load(REPO / "models")
    assert entries and {e.data_source for e in entries.values()} == {"sandbox"}
    assert all(e.trained_from and e.trained_to and e.n_samples for e in entries.values())
