"""LinearVetoModel: the exported pipeline scores exactly as scikit-learn does, without scikit-learn."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from multialpha.mlveto import linear, train
from multialpha.mlveto.linear import LinearVetoModel, from_pipeline

NAMES = [f"f{i}" for i in range(11)]


def _fitted(seed: int = 3, n: int = 400) -> tuple[object, np.ndarray]:
    """A pipeline as `models train` builds it, on features of very different scales (one constant)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES))) * rng.uniform(1e-3, 50, size=len(NAMES)) + rng.normal(size=len(NAMES))
    X[:, 7] = 0.0  # a never-set flag column: StandardScaler stores scale 1.0 for it
    y = (X[:, 0] / X[:, 0].std() + rng.normal(size=n) > 0.3).astype(int)
    return train._model().fit(X, y), X


def _probe(model: LinearVetoModel, seed: int, n: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return model.mean_ + rng.uniform(-spread, spread, size=(n, len(model.features))) * model.scale_


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_probabilities_are_sklearns_floats(seed: int) -> None:
    pipe, X = _fitted(seed)
    lean = from_pipeline(pipe, NAMES)
    assert lean.scale_[7] == 1.0
    # typical rows, rows far out (|z| in the hundreds: exp overflows, p saturates at 0/1), the training rows
    for rows in (_probe(lean, seed, 20_000, 6), _probe(lean, seed + 1, 2_000, 400), X):
        want, got = pipe.predict_proba(rows), lean.predict_proba(rows)
        assert got.shape == want.shape == (len(rows), 2) and got.dtype == want.dtype
        assert np.abs(got - want).max() <= linear.TOLERANCE
        # The decision values are bit-identical (same steps, same order). The probabilities are within
        # TOLERANCE, not bit-identical: scikit-learn takes scipy.special.expit, whose exp is libm's,
        # while numpy's vectorised exp may differ by one unit in the last place (seen with numpy 2.4).
        assert np.array_equal(lean.predict(rows), pipe.predict(rows))
        assert np.array_equal(lean.decision_function(rows), pipe.decision_function(rows))
    extremes = lean.predict_proba(_probe(lean, seed, 2_000, 400))[:, 1]
    assert extremes.min() == 0.0 or extremes.max() == 1.0  # the overflow path was exercised


def test_single_row_as_the_gate_sends_it() -> None:
    pipe, X = _fitted()
    lean = from_pipeline(pipe, NAMES)
    for x in X[:50]:
        row = [[float(v) for v in x]]  # a list of one list of floats, as VetoGate.decide passes
        assert abs(lean.predict_proba(row)[0][1] - pipe.predict_proba(row)[0][1]) <= linear.TOLERANCE


def test_joblib_round_trip_is_exact_and_deterministic() -> None:
    pipe, _ = _fitted()
    lean = from_pipeline(pipe, NAMES)
    a, b = io.BytesIO(), io.BytesIO()
    joblib.dump(lean, a)
    joblib.dump(from_pipeline(pipe, NAMES), b)
    assert a.getvalue() == b.getvalue()  # same model, same bytes, same manifest sha256
    a.seek(0)
    back = joblib.load(a)
    assert isinstance(back, LinearVetoModel) and back.features == NAMES
    rows = _probe(lean, 5, 1_000, 6)
    assert np.array_equal(back.predict_proba(rows), lean.predict_proba(rows))  # the round trip is exact
    assert np.abs(back.predict_proba(rows) - pipe.predict_proba(rows)).max() <= linear.TOLERANCE


def test_pickled_state_is_checked_on_load() -> None:
    lean = from_pipeline(_fitted()[0], NAMES)
    state = lean.__getstate__()
    assert state["format"] == linear.FORMAT == "linear-logistic/1"
    fresh = LinearVetoModel.__new__(LinearVetoModel)
    with pytest.raises(ValueError, match="unsupported LinearVetoModel format"):
        fresh.__setstate__({**state, "format": "linear-logistic/99"})
    with pytest.raises(ValueError, match="shapes"):
        fresh.__setstate__({**state, "coef": state["coef"][:, :3]})
    with pytest.raises(ValueError, match="non-finite"):
        fresh.__setstate__({**state, "intercept": [float("nan")]})
    assert pickle.loads(pickle.dumps(lean)).features == NAMES


def test_bad_input_rows_are_refused() -> None:
    lean = from_pipeline(_fitted()[0], NAMES)
    with pytest.raises(ValueError, match="shape"):
        lean.predict_proba([[0.0] * 10])
    with pytest.raises(ValueError, match="shape"):
        lean.predict_proba([0.0] * 11)
    with pytest.raises(ValueError, match="NaN"):
        lean.predict_proba([[float("nan")] + [0.0] * 10])


def test_only_the_trained_pipeline_shape_is_exported() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y2, y3 = (X[:, 0] > 0).astype(int), np.digitize(X[:, 0], [-0.5, 0.5])
    with pytest.raises(ValueError, match="2-step Pipeline"):
        from_pipeline(LogisticRegression().fit(X, y2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="StandardScaler"):
        from_pipeline(make_pipeline(StandardScaler(with_mean=False), LogisticRegression()).fit(X, y2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="binary LogisticRegression"):
        from_pipeline(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="3 features, 2 names"):
        from_pipeline(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y2), ["a", "b"])


def test_an_export_that_disagrees_is_refused() -> None:
    from sklearn.pipeline import Pipeline

    pipe, _ = _fitted()

    class Drifting(Pipeline):  # scores differently from what its parameters say
        def predict_proba(self, X, **kw):
            return super().predict_proba(X, **kw) + 1e-9

    with pytest.raises(ValueError, match="differs from the pipeline"):
        from_pipeline(Drifting(pipe.steps), NAMES)
