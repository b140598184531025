"""The built-in model veto answers through the same hook as plugins, scoped per strategy type."""

from __future__ import annotations

from pathlib import Path

from multialpha import plugins
from multialpha.mlveto import plugin as model_veto
from tests.mlveto.helpers import write_model


def test_model_veto_answers_for_its_strategy_only(settings_for, tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_model(models, "ibs", "6A")
    settings = settings_for(MULTIALPHA__MODELS_PATH=str(models))
    pm = plugins.get_plugin_manager()
    try:
        model_veto.register(pm, settings, "ibs_a", "ibs")
        hook = plugins.scoped_hook("multialpha_ml_veto", "ibs")
        bad = hook(strategy="ibs_a", symbol="6A", side="long", features={"ibs": 2.0, "ret_5d": 0.0})
        good = hook(strategy="ibs_a", symbol="6A", side="long", features={"ibs": -2.0, "ret_5d": 0.0})
        assert bad is not None and not bad.allow and len(bad.extra["model_sha256"]) == 64
        assert good is not None and good.allow and good.score is not None and good.score > 0.5
        # no model for 6M: on_missing=block (the shipped default) answers veto
        missing = hook(strategy="ibs_a", symbol="6M", side="long", features={"ibs": -2.0, "ret_5d": 0.0})
        assert missing is not None and not missing.allow and "on_missing=block" in missing.reason
        # another strategy's question is not this plugin's to answer
        assert hook(strategy="ibs_b", symbol="6A", side="long", features={"ibs": 2.0}) is None
    finally:
        model_veto.unregister_all(pm)


def test_scoped_hooks_skip_other_strategy_types() -> None:
    # The example plugin implements features + veto for example_sma; they must not touch ibs.
    assert "example_sma" in plugins.strategy_types()
    feats = plugins.scoped_hook("multialpha_features", "ibs")(strategy="ibs_a", symbol="6A", side="long", data={})
    assert all("day_range_pct" not in (f or {}) for f in feats)
    own = plugins.scoped_hook("multialpha_features", "example_sma")(strategy="x", symbol="ES", side="long", data={})
    assert own == [] or all(f is None for f in own)  # called (no day feed given -> None), not skipped
    vetoes = plugins.scoped_hook("multialpha_ml_veto", "ibs")
    assert vetoes(strategy="ibs_a", symbol="6A", side="long", features={"day_range_pct": 0.5}) is None
    example = plugins.scoped_hook("multialpha_ml_veto", "example_sma")
    assert example(strategy="x", symbol="ES", side="long", features={"day_range_pct": 0.5}).allow is False
