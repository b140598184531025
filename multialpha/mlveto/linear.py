"""The shipped veto model format: a standardised logistic regression in numpy alone.

``multialpha models train`` fits ``StandardScaler + LogisticRegression`` with
scikit-learn, then exports the fitted numbers into :class:`LinearVetoModel`.
Unpickling a scikit-learn pipeline imports sklearn and scipy (~120-150 MB
of RSS and ~1.2 s per worker); evaluating a logistic regression needs a few
arrays. This module imports numpy (and the stdlib-only manifest module) and
nothing else — keep it that way: a worker unpickles it.

``predict_proba`` repeats scikit-learn's computation step by step, in the
same order and dtype (sklearn 1.9: ``StandardScaler.transform`` subtracts
``mean_`` then divides by ``scale_`` in place; ``LinearClassifierMixin
.decision_function`` is ``X @ coef_.T + intercept_``; ``_predict_proba_lr``
applies ``scipy.special.expit``, which computes ``1 / (1 + exp(-x))``, and
stacks ``[1 - p, p]``), so the decision values are the same floats and the
probabilities agree to one unit in the last place (scipy's exp is libm's, numpy's
vectorised exp its own; ``TOLERANCE`` is the contract).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from multialpha.mlveto.manifest import FORMAT_LINEAR as FORMAT  # the manifest ``format`` of these files


class LinearVetoModel:
    """P(class 1) = expit(((x - mean) / scale) @ coef.T + intercept), binary only."""

    def __init__(self, features: Sequence[str], mean: Any, scale: Any, coef: Any, intercept: Any,
                 classes: Sequence[int] = (0, 1)) -> None:
        self.features = list(features)
        self.mean_ = np.array(mean, dtype=np.float64)
        self.scale_ = np.array(scale, dtype=np.float64)
        self.coef_ = np.array(coef, dtype=np.float64).reshape(1, -1)
        self.intercept_ = np.array(intercept, dtype=np.float64).reshape(1)
        self.classes_ = np.array(classes)
        n = len(self.features)
        if not (self.mean_.shape == self.scale_.shape == (n,) and self.coef_.shape == (1, n)):
            raise ValueError(f"shapes do not match {n} features: mean {self.mean_.shape}, scale {self.scale_.shape}, "
                             f"coef {self.coef_.shape}")
        if len(self.classes_) != 2:
            raise ValueError(f"binary models only, got classes {self.classes_.tolist()}")
        if not all(np.isfinite(a).all() for a in (self.mean_, self.scale_, self.coef_, self.intercept_)):
            raise ValueError("non-finite model parameters")
        if (self.scale_ == 0).any():
            raise ValueError("a zero scale")  # StandardScaler stores 1.0 for constant features, never 0

    # Pickled state: explicit and tagged, re-validated on load (unpickling skips __init__).
    def __getstate__(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": self.features, "mean": self.mean_, "scale": self.scale_,
                "coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_.tolist()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise ValueError(f"unsupported LinearVetoModel format {state.get('format')!r} (this code reads {FORMAT})")
        self.__init__(state["features"], state["mean"], state["scale"], state["coef"],  # type: ignore[misc]
                      state["intercept"], state["classes"])

    @property
    def n_features_in_(self) -> int:
        return len(self.features)

    def decision_function(self, X: Any) -> np.ndarray:
        X = np.array(X, dtype=np.float64)  # a copy, as StandardScaler(copy=True) makes
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"X has shape {X.shape}, this model takes (n, {len(self.features)})")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity")
        X -= self.mean_
        X /= self.scale_
        return (X @ self.coef_.T + self.intercept_).reshape(-1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Shape (n, 2): columns P(classes_[0]), P(classes_[1]) — as scikit-learn returns."""
        z = self.decision_function(X)
        with np.errstate(over="ignore"):  # exp(710+) = inf -> p = 0, as expit returns
            p = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def __repr__(self) -> str:
        return f"LinearVetoModel({len(self.features)} features: {', '.join(self.features)})"


TOLERANCE = 1e-12  # export check: max |P_lean - P_sklearn| allowed (measured: up to 1.1e-16: scikit-learn's expit uses libm's exp, numpy its own)


def from_pipeline(pipeline: Any, features: Sequence[str], check_rows: Any = None) -> LinearVetoModel:
    """Export a fitted ``make_pipeline(StandardScaler(), LogisticRegression(...))`` (binary).

    Anything else is refused (ValueError) rather than approximated. The
    export is then checked: both models score ``check_rows`` (default: 2,000
    seeded rows spread over +-6 standard deviations around the fitted means)
    and must agree within :data:`TOLERANCE`. Training only: this imports
    scikit-learn to check the step types."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise ValueError(f"expected a 2-step Pipeline, got {pipeline!r}")
    scaler, clf = (step for _, step in pipeline.steps)
    if type(scaler) is not StandardScaler or not (scaler.with_mean and scaler.with_std):
        raise ValueError(f"first step must be StandardScaler(with_mean=True, with_std=True), got {scaler!r}")
    if type(clf) is not LogisticRegression or len(clf.classes_) != 2:
        raise ValueError(f"second step must be a binary LogisticRegression, got {clf!r}")
    if scaler.n_features_in_ != len(features):
        raise ValueError(f"pipeline was fitted on {scaler.n_features_in_} features, {len(features)} names given")
    lean = LinearVetoModel(features, scaler.mean_, scaler.scale_, clf.coef_, clf.intercept_, clf.classes_.tolist())
    if check_rows is None:
        rng = np.random.default_rng(0)
        check_rows = lean.mean_ + rng.uniform(-6, 6, size=(2000, len(features))) * lean.scale_
    diff = float(np.abs(lean.predict_proba(check_rows) - pipeline.predict_proba(check_rows)).max())
    if not diff <= TOLERANCE:
        raise ValueError(f"exported model differs from the pipeline by {diff:.3g} (> {TOLERANCE:g})")
    return lean
