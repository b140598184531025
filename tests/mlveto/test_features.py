import numpy as np
import pandas as pd

from multialpha.mlveto.features import feature_names, standard_features


def test_features_match_pandas_and_names_are_ordered() -> None:
    rng = np.random.default_rng(3)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    h, l = c * 1.004, c * 0.995
    ref = 20 + np.cumsum(rng.normal(0, 0.2, 80))
    f = standard_features(h, l, c, {"VIX": ref, "TLT": None})
    s = pd.Series(c)
    assert np.isclose(f["ret_5"], s.pct_change(5).iloc[-1])
    assert np.isclose(f["dist_ma20"], c[-1] / s.rolling(20).mean().iloc[-1] - 1)
    assert np.isclose(f["ibs"], (c[-1] - l[-1]) / (h[-1] - l[-1]))
    tr = pd.concat([pd.Series(h), s.shift()], axis=1).max(axis=1) - pd.concat([pd.Series(l), s.shift()], axis=1).min(axis=1)
    assert np.isclose(f["atr_pct"], tr.iloc[-14:].mean() / c[-1])
    assert np.isclose(f["vix_ret_5"], ref[-1] / ref[-6] - 1) and f["vix_missing"] == 0.0
    assert f["tlt_missing"] == 1.0 and f["tlt_ret_5"] == 0.0
    assert list(f) == feature_names(["VIX", "TLT"])


def test_short_history_is_neutral_not_an_error() -> None:
    f = standard_features([1.0], [1.0], [1.0])
    assert f["ibs"] == 0.5 and f["ret_20"] == 0.0 and all(np.isfinite(list(f.values())))
