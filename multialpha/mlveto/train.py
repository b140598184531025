"""`multialpha models train`: per-symbol veto models from the strategies' own backtested trades.

For each selected strategy the backtest runs the strategy alone (hourly
bars, no portfolio limits, so every signal becomes the strategy's own
simulated trade) with the ML veto in *shadow* mode against an empty models
folder: every entry goes through the runtime's own veto path, which computes
the plugin's features exactly as the live worker does, and is taken anyway.
Daily warmup is cut to ``TRAIN_WARMUP_DAYS`` (the features read at most 60
daily bars, so their values are unchanged) to leave more history to train on.
Each entry is labelled by its trade's net P&L (> 0 = 1); entries whose trade
is still open at the end are dropped.

Model: ``StandardScaler + LogisticRegression(class_weight="balanced")``,
fitted with scikit-learn and shipped as its exported numbers
(:class:`multialpha.mlveto.linear.LinearVetoModel`, format
``linear-logistic/1``): a worker then scores it with numpy alone instead of
importing scikit-learn and scipy (~150 MB of RSS per worker).
Threshold: the samples are split in time order 70/30; a model fitted on the
first 70 % scores the last 30 %, and the threshold is the probability cut
that maximises the validation trades' summed net P&L while still allowing at
least half of them (ties: the lowest cut). The shipped model is then refitted
on all samples. A symbol with fewer than ``min_trades`` labelled entries, or
with only winners or only losers, gets no model (reported); the runtime's
``ml_veto.on_missing`` then applies to it.
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from multialpha import cme_time, plugins
from multialpha.config import ConfigError, Settings
from multialpha.mlveto import manifest

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2
MIN_USEFUL_AUC = 0.55  # below this validation AUC the model is little better than a coin: warned
MIN_ALLOWED = 0.5  # the threshold may veto at most half of the validation entries
VALIDATION = 0.3
TRAIN_WARMUP_DAYS = 70  # >= mlveto.bt_features.LOOKBACK (60) daily bars + margin


@dataclass
class Sample:
    strategy: str
    symbol: str
    bar_start: str
    features: dict[str, float]
    pnl: float


@dataclass
class Outcome:
    strategy_type: str
    symbol: str
    n_samples: int
    status: str  # trained | skipped
    reason: str = ""
    entry: manifest.ModelEntry | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def training_settings(settings: Settings, strategy: str, symbols: list[str] | None, models_dir: Path) -> Settings:
    """One strategy, unconstrained portfolio, veto in shadow against ``models_dir`` (empty)."""
    st = settings.strategies[strategy]
    inst = {s: i.model_copy(update={"ml_enabled": True}) for s, i in st.instruments.items()
            if symbols is None or s in symbols}
    st2 = st.model_copy(update={"instruments": inst, "enabled": True})
    return settings.model_copy(update={
        "strategies": {strategy: st2},
        "models_path": str(models_dir),
        "ml_veto": settings.ml_veto.model_copy(update={"mode": "shadow", "on_missing": "allow"}),
        "portfolio": settings.portfolio.model_copy(update={"max_positions": 1_000_000, "daily_stop_loss": 1e15}),
        # Features look back at most LOOKBACK daily bars: a shorter daily warmup gives identical
        # numbers and leaves more of the history for training. Hourly warmup is unchanged.
        "worker": settings.worker.model_copy(update={
            "warmup_daily_bars": min(settings.worker.warmup_daily_bars, TRAIN_WARMUP_DAYS)}),
    })


def collect(run: Any) -> list[Sample]:
    """Entries recorded by the veto path, labelled by their closed trade's net P&L."""
    from multialpha.backtest import results

    closed = {(t.strategy, t.symbol, t.entry_time): t for t in results.trades(run) if not t.open}
    out = []
    for d in run.decisions:
        if d["bar_start"] is None:
            continue
        t = closed.get((d["strategy"], d["symbol"], cme_time.iso_z(d["bar_start"])))
        if t is None:
            continue  # still open at the end, or refused: no label
        out.append(Sample(d["strategy"], d["symbol"], cme_time.iso_z(d["bar_start"]),
                          {k: float(v) for k, v in d["features"].items()}, t.pnl))
    return out


def _model() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))


def choose_threshold(p: Any, pnl: Any) -> float:
    """Cut maximising summed P&L of allowed trades, allowing at least MIN_ALLOWED of them."""
    n = len(p)
    need = max(1, math.ceil(MIN_ALLOWED * n))
    best_t, best = 0.0, -math.inf
    for t in sorted(set(p.tolist())):  # exact values: a rounded cut could exclude its own sample
        allowed = p >= t
        if allowed.sum() < need:
            break
        total = float(pnl[allowed].sum())
        if total > best:
            best_t, best = float(t), total
    return best_t


def fit(samples: list[Sample], names: list[str]) -> tuple[Any, float, dict[str, float]]:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    samples = sorted(samples, key=lambda s: s.bar_start)
    X = np.array([[s.features.get(n, 0.0) for n in names] for s in samples], dtype=float)
    y = np.array([1 if s.pnl > 0 else 0 for s in samples])
    pnl = np.array([s.pnl for s in samples])
    split = int(round(len(y) * (1 - VALIDATION)))
    metrics: dict[str, float] = {"base_rate": float(y.mean()), "n_train": float(split), "n_validation": float(len(y) - split)}
    threshold = 0.5
    if 0 < y[:split].sum() < split and len(y) - split >= 2:
        m = _model().fit(X[:split], y[:split])
        p = m.predict_proba(X[split:])[:, 1]
        threshold = choose_threshold(p, pnl[split:])
        allowed = p >= threshold
        if 0 < y[split:].sum() < len(y) - split:
            metrics["validation_auc"] = float(roc_auc_score(y[split:], p))
        metrics["validation_allowed"] = float(allowed.mean())
        metrics["validation_pnl_all"] = float(pnl[split:].sum())
        metrics["validation_pnl_allowed"] = float(pnl[split:][allowed].sum())
    final = _model().fit(X, y)
    metrics["train_accuracy"] = float((final.predict(X) == y).mean())
    return final, threshold, metrics


def libraries() -> dict[str, str]:
    import joblib
    import numpy
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "joblib": joblib.__version__,
            "numpy": numpy.__version__}


def data_provenance(settings: Settings) -> tuple[str, dict[str, object]]:
    """(data_source, data) for the manifest: the embedded sandbox without a key, else Databento."""
    if settings.databento.uses_sandbox:
        sb = settings.sandbox
        return "sandbox", {"dataset": settings.databento.dataset, "sandbox_seed": sb.seed, "sandbox_days": sb.days,
                           "sandbox_from_date": sb.from_date}
    return "databento", {"dataset": settings.databento.dataset}


def save_model(models_dir: Path, strategy_type: str, symbol: str, estimator: Any, names: list[str], threshold: float,
               first: date, last: date, n: int, metrics: dict[str, float],
               provenance: tuple[str, dict[str, object]] = ("", {})) -> manifest.ModelEntry:
    """Export ``estimator`` (a fitted :func:`_model` pipeline, or a LinearVetoModel already), write the
    joblib file, then its manifest entry (sha256 of the bytes written)."""
    import joblib

    from multialpha.mlveto import linear

    if not isinstance(estimator, linear.LinearVetoModel):
        estimator = linear.from_pipeline(estimator, names)  # ValueError if not exportable / not equal
    elif estimator.features != list(names):
        raise ValueError(f"model features {estimator.features} != {names}")
    rel = manifest.model_file(strategy_type, symbol)
    path = models_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".joblib.tmp")
    joblib.dump(estimator, tmp)
    tmp.replace(path)
    entry = manifest.ModelEntry(
        strategy_type=strategy_type, symbol=symbol, file=rel, sha256=manifest.sha256_of(path), features=list(names),
        threshold=threshold, trained_from=first.isoformat(), trained_to=last.isoformat(), n_samples=n,
        libraries=libraries(), metrics={k: round(v, 6) for k, v in metrics.items()}, format=linear.FORMAT,
        data_source=provenance[0], data=dict(provenance[1]),
        validation_auc=round(metrics["validation_auc"], 6) if "validation_auc" in metrics else None,
    )
    entries = manifest.load(models_dir)
    entries[entry.key] = entry
    manifest.save(models_dir, entries)
    return entry


def train(settings: Settings, strategies: list[str], symbols: list[str] | None, first: date, last: date, *, src: Any,
          models_dir: Path, min_trades: int, progress: Any = None, day_progress: Any = None) -> list[Outcome]:
    """``progress(message)`` announces each strategy's backtest; ``day_progress(label)`` gives a
    context manager yielding the runner's per-trading-day callback (backtest/progress.py)."""
    import contextlib

    from multialpha.backtest import data as bt_data
    from multialpha.backtest import runner

    start, end = bt_data.session_range(first, last)
    pooled: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for name in strategies:
        st = settings.strategies[name]
        syms = [s for s in st.instruments if symbols is None or s in symbols]
        if not syms:
            continue
        with tempfile.TemporaryDirectory(prefix="multialpha-train-") as empty:
            ts = training_settings(settings, name, syms, Path(empty))
            if progress:
                progress(f"backtesting {name} ({', '.join(syms)}) {first} .. {last}, hourly bars")
            gate_log = logging.getLogger("multialpha.mlveto.gate")
            level = gate_log.level
            gate_log.setLevel(logging.CRITICAL)  # "no model -> allowing" is the point here, not news
            try:
                days_cm = day_progress(f"backtest {name}") if day_progress else contextlib.nullcontext(None)
                with days_cm as on_day:
                    run = runner.run(ts, [name], start, end, fetch=src.fetch, dataset=src.dataset,
                                     data_now=src.now, resolution="hour", progress=on_day)
            finally:
                gate_log.setLevel(level)
        for s in collect(run):
            pooled[(st.strategy_type, s.symbol)].append(s)
        for sym in syms:
            pooled.setdefault((st.strategy_type, sym), [])
    out = []
    for (stype, sym), samples in sorted(pooled.items()):
        wins = sum(1 for s in samples if s.pnl > 0)
        if len(samples) < min_trades:
            out.append(Outcome(stype, sym, len(samples), "skipped", f"{len(samples)} labelled entries < {min_trades}"))
            continue
        if wins in (0, len(samples)):
            out.append(Outcome(stype, sym, len(samples), "skipped", "all entries won or all lost: nothing to learn"))
            continue
        names = list(samples[0].features)
        est, threshold, metrics = fit(samples, names)
        entry = save_model(models_dir, stype, sym, est, names, threshold, first, last, len(samples), metrics,
                           data_provenance(settings))
        out.append(Outcome(stype, sym, len(samples), "trained", "", entry, metrics))
    return out


def main(settings: Settings, *, strategy: str | None, symbols: str | None, from_date: str | None, to_date: str | None,
         days: int, min_trades: int, models_dir: str | None, config_path: str | None = None,
         progress: bool | None = None, force: bool = False) -> int:
    import contextlib

    from rich.console import Console

    from multialpha.backtest import command
    from multialpha.backtest.source import DateError, check_days, open_source

    err = Console(stderr=True, highlight=False, soft_wrap=True)  # long paths/messages: no hard wraps in logs
    shipped = settings.path(settings.models_path)
    out_dir = Path(models_dir) if models_dir else shipped
    if not force and out_dir.resolve() == shipped.resolve():
        print(f"error: models train would overwrite the shipped models in {shipped} (models_path); pass --force "
              "to replace them, or --models-dir DIR to write elsewhere", file=sys.stderr)
        return EXIT_ERROR
    command.setup_logging("models-train")
    try:
        if strategy:
            names = command.select_strategies(settings, strategy, False)
        else:
            names = command.select_strategies(settings, None, True)
        for n in names:
            plugins.strategy_type_of(settings, n)
        f, t = command.parse_day(from_date, "--from"), command.parse_day(to_date, "--to")
        check_days(f, t, days)  # before any sandbox starts
    except DateError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    with contextlib.ExitStack() as stack:
        try:
            src = stack.enter_context(open_source(settings, say=err.print, until=t))  # embedded sandbox if needed
        except Exception as e:
            print(f"historical data unavailable: {type(e).__name__}: {e}", file=sys.stderr)
            return EXIT_ERROR
        try:
            first, last = command.date_range(src, f, t, days)
        except DateError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_CONFIG
        return _train_and_report(settings, names, syms, first, last, src, out_dir, min_trades, progress, err)
    raise AssertionError("unreachable")  # pragma: no cover (ExitStack never swallows here)


def _train_and_report(settings: Settings, names: list[str], syms: list[str] | None, first: date, last: date, src: Any,
                      out_dir: Path, min_trades: int, progress: bool | None, err: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    from multialpha.backtest import data as bt_data
    from multialpha.backtest import progress as day_progress

    out_dir.mkdir(parents=True, exist_ok=True)

    def days_of(label: str) -> Any:
        return day_progress.days(err, label, tty=progress)

    try:
        outcomes = train(settings, names, syms, first, last, src=src, models_dir=out_dir, min_trades=min_trades,
                         progress=lambda msg: err.print(msg), day_progress=days_of)
    except bt_data.DataUnavailable as e:
        print(f"historical data unavailable: {e}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError:
        raise  # the command's one way out for config problems (cli_common.config_errors): exit 2
    except Exception as e:
        print(f"training failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    table = Table(title=f"models train {first} .. {last} -> {out_dir}")
    for col in ("model", "entries", "status", "threshold", "val. AUC", "note"):
        table.add_column(col)
    for o in outcomes:
        auc = o.metrics.get("validation_auc")
        table.add_row(f"{o.strategy_type}/{o.symbol}", str(o.n_samples), o.status,
                      f"{o.entry.threshold:.3f}" if o.entry else "-", f"{auc:.2f}" if auc is not None else "-", o.reason)
    Console().print(table)
    for o in outcomes:
        auc = o.metrics.get("validation_auc")
        if o.status == "trained" and (auc is None or auc < MIN_USEFUL_AUC):
            what = "could not be measured" if auc is None else f"is {auc:.2f}"
            err.print(f"warning: {o.strategy_type}/{o.symbol}: validation AUC {what} (< {MIN_USEFUL_AUC}): this model "
                      "barely tells winners from losers; consider ml_enabled: false for it, or more/real data")
    return EXIT_OK
