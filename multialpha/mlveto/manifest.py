"""``models/manifest.json``: the allow-list of model files.

joblib files are pickles — loading one runs arbitrary code — so nothing is
loaded unless its SHA-256 is listed here. Entries are keyed
``"{strategy_type}/{SYMBOL}"`` and files live at
``models/{strategy_type}/{SYMBOL}.joblib`` (a symbol such as YM can be traded
by two strategy types with different models).

``format`` says what the file holds: ``linear-logistic/1`` — a
:class:`multialpha.mlveto.linear.LinearVetoModel` (numpy only; what
``models train`` writes); ``estimator`` — any pickled object with
``predict_proba``, e.g. a user's own scikit-learn pipeline (works, but
unpickling it imports scikit-learn and scipy in every worker: ~150 MB RSS).
An entry without the field (older manifests) is ``estimator``.

What a model was trained on: ``data_source`` (``sandbox`` — the embedded
synthetic market, which carries no trading skill — or ``databento``; ""
in older manifests: unknown), ``data`` (the dataset, and for the sandbox its
seed, history days and replay start), ``trained_from``/``trained_to``,
``n_samples`` and ``validation_auc`` (also in ``metrics``). With a real
``DATABENTO_API_KEY`` the worker runs ``sandbox`` models in shadow unless
``ml_veto.allow_sandbox_models`` (:func:`multialpha.mlveto.loader.sandbox_shadow`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST = "manifest.json"
VERSION = 1
FORMAT_ESTIMATOR = "estimator"
FORMAT_LINEAR = "linear-logistic/1"  # == multialpha.mlveto.linear.FORMAT (not imported: keeps this numpy-free)
FORMATS = (FORMAT_LINEAR, FORMAT_ESTIMATOR)


@dataclass(frozen=True)
class ModelEntry:
    strategy_type: str
    symbol: str
    file: str                # relative to the models folder
    sha256: str
    features: list[str]      # the exact order the model was fitted with
    threshold: float         # allow when P(profitable) >= threshold
    trained_from: str = ""
    trained_to: str = ""
    n_samples: int = 0
    libraries: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    format: str = FORMAT_ESTIMATOR  # what the file holds: one of FORMATS
    data_source: str = ""    # sandbox | databento ("" = unknown: an older manifest)
    data: dict[str, object] = field(default_factory=dict)  # dataset; sandbox seed/days/from_date
    validation_auc: float | None = None  # ROC AUC on the last 30 % (time order); None: not measurable

    @property
    def key(self) -> str:
        return entry_key(self.strategy_type, self.symbol)


def entry_key(strategy_type: str, symbol: str) -> str:
    return f"{strategy_type}/{symbol}"


def model_file(strategy_type: str, symbol: str) -> str:
    return f"{strategy_type}/{symbol}.joblib"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ManifestError(ValueError):
    pass


def load(models_dir: Path) -> dict[str, ModelEntry]:
    """Entries by key; an absent manifest is an empty allow-list."""
    path = models_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != VERSION:
            raise ManifestError(f"{path}: unsupported manifest version {doc.get('version')!r}")
        return {k: ModelEntry(**v) for k, v in doc["models"].items()}
    except (ValueError, TypeError, KeyError) as e:
        raise ManifestError(f"{path}: {e}") from None


def save(models_dir: Path, entries: dict[str, ModelEntry]) -> Path:
    path = models_dir / MANIFEST
    doc = {"version": VERSION, "models": {k: asdict(e) for k, e in sorted(entries.items())}}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
