"""Several models through the same analyses (``maelens compare``): the checkpoints of one training run,
or MAE against CAE against SimCLR, on the same images with the same seed, one table per metric with a
row per model and its 95% interval (:mod:`maelens.verdict`'s interval functions).

Metrics (each a number per model, with how its interval is computed):

- ``attention``: IPOL sec. 5 (Figs. 9-10) statistics of the **last decoder layer**, the one whose
  attention forms the reconstruction, under the paper's grid masking (ratio 0.75, top-5):
  ``attention_consistency`` (images whose influencer is consistent / images), ``attention_locality``
  (local / influenced patches), ``attention_black_fraction`` (black / non-important patches), each a
  Wilson interval of its counts. Every layer's records stay in ``comparison.json``. A model without a
  decoder gets an ``n/a`` row.
- ``distfit``: IPOL sec. 5 (Fig. 7, Table 2): one sample per image, its visible encoder tokens under
  random masking at 0.75; ``distfit_gaussian_not_rejected`` and ``distfit_t_not_rejected``, the share
  of samples whose KS test at alpha 0.05 keeps the fitted law, Wilson intervals.
- ``knn``: IPOL sec. 6 (Table 3): ``knn_accuracy`` of the cosine k-NN vote (k = 20, fewer when fewer
  training images) on the mean-pooled encoder output of every patch (mask ratio 0), one stratified
  holdout of a quarter of the images; Wilson interval of the held-out correct count.
- ``cka``: ``cka_to_first``: linear CKA (Kornblith et al. 2019) between each model's mean-pooled encoder
  output and the first model's on the same images (1 for the first), with a percentile bootstrap
  interval over the images (the images resampled, both models' rows together).

A model the analysis does not apply to (a SimCLR model for ``attention`` and ``distfit``) gets a row with
no value and the reason, never a silent gap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..choices import COMPARE_ANALYSES
from ..errors import ConfigError
from ..verdict import Interval, bootstrap_interval, wilson_interval

#: Analyses ``compare_models`` runs, in the order they run.
#: The metrics each analysis gives.
METRICS = {
    "attention": ("attention_consistency", "attention_locality", "attention_black_fraction"),
    "distfit": ("distfit_gaussian_not_rejected", "distfit_t_not_rejected"),
    "knn": ("knn_accuracy",),
    "cka": ("cka_to_first",),
}
#: Bootstrap resamples of the CKA interval.
CKA_BOOTSTRAP = 1000


@dataclass
class ModelEntry:
    """One compared model: its ``label`` (shown in tables and figures), the ``model`` (anything
    :func:`~maelens.checkpoint.objects.as_model` takes), its training ``epoch`` when known, and the
    ``dataset`` of the shared images normalised and sized for it."""

    label: str
    model: Any
    dataset: Any
    epoch: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricRow:
    """One model's value of one metric with its 95% interval (``interval``: wilson or bootstrap, over
    ``n`` items); ``value`` None and ``note`` the reason when the metric does not apply to the model."""

    model: str
    epoch: int | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    interval: str
    note: str = ""


@dataclass
class Comparison:
    """What :func:`compare_models` measured: ``metrics`` (name -> one row per model, in model order),
    ``details`` (per model and analysis, the full records), ``settings``."""

    metrics: dict[str, list[MetricRow]]
    details: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self, metric: str) -> Any:
        """pandas DataFrame of one metric: model, epoch, value, ci_low, ci_high, n, interval, note."""
        import pandas as pd

        if metric not in self.metrics:
            raise ConfigError(f"metric {metric!r} was not measured; measured: {', '.join(self.metrics)}")
        frame = pd.DataFrame([asdict(r) for r in self.metrics[metric]],
                             columns=["model", "epoch", "value", "ci_low", "ci_high", "n", "interval", "note"])
        # a metric that does not apply is an empty cell (NaN), not the text None
        return frame.astype({"value": float, "ci_low": float, "ci_high": float, "epoch": "Int64"})

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings,
                "metrics": {m: [asdict(r) for r in rows] for m, rows in self.metrics.items()},
                "details": self.details}


def _row(entry: ModelEntry, interval: Interval) -> MetricRow:
    return MetricRow(entry.label, entry.epoch, interval.estimate, interval.low, interval.high, interval.n,
                     interval.method)


def _wilson(entry: ModelEntry, successes: int, n: int) -> MetricRow:
    if n == 0:
        return _absent(entry, "no items to count")
    return _row(entry, wilson_interval(int(successes), int(n)))


def _absent(entry: ModelEntry, why: str) -> MetricRow:
    return MetricRow(entry.label, entry.epoch, None, None, None, 0, "n/a", why)


def check_analyses(analyses: Sequence[str]) -> tuple[str, ...]:
    """``analyses`` in run order, each one of :data:`COMPARE_ANALYSES`, at least one."""
    unknown = [a for a in analyses if a not in COMPARE_ANALYSES]
    if unknown or not analyses:
        raise ConfigError(f"analyses: {', '.join(unknown) or 'none given'}; choose from {', '.join(COMPARE_ANALYSES)}")
    return tuple(a for a in COMPARE_ANALYSES if a in analyses)


def compare_models(entries: Sequence[ModelEntry], analyses: Sequence[str] = COMPARE_ANALYSES, *, seed: int = 0,
                   batch_size: int = 64, device: str = "cpu", num_workers: int = 0,
                   on_stage: Callable[[str, int, int], None] | None = None) -> Comparison:
    """Run ``analyses`` (:data:`COMPARE_ANALYSES`) on every model of ``entries`` with the same images
    (each entry's ``dataset``: the same pictures, normalised for its model) and ``seed``.

    Args:
        entries: the models, in the order of the tables' rows (e.g. by training epoch); at least one, and
            two for ``cka``.
        analyses: which analyses (see the module docstring for their metrics).
        seed: seeds every mask, split and bootstrap: the same for every model.
        batch_size, device, num_workers: how the models run.
        on_stage: called as ``on_stage(description, done, total)`` before each model's analysis (an ETA).
    """
    from ..checkpoint.objects import as_model

    analyses = check_analyses(analyses)
    if not entries:
        raise ConfigError("entries: no models to compare")
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"entries: model labels must differ, got {labels}")
    if "cka" in analyses and len(entries) < 2:
        raise ConfigError("analyses: cka compares each model with the first: give at least two models")
    models = [as_model(e.model, f"entries[{i}].model") for i, e in enumerate(entries)]
    sizes = {len(e.dataset) for e in entries}
    if len(sizes) != 1:
        raise ConfigError(f"entries: the datasets must hold the same images, got sizes {sorted(sizes)}")
    # the stages report progress through on_stage; the analyses' own bars would interleave with it
    run = dict(seed=seed, batch_size=batch_size, device=device, num_workers=num_workers, quiet=True)
    metrics: dict[str, list[MetricRow]] = {m: [] for a in analyses for m in METRICS[a]}
    details: dict[str, dict[str, Any]] = {e.label: {} for e in entries}
    pooled: dict[str, Any] = {}  # label -> mean-pooled features, shared by knn and cka
    total = len(entries) * len(analyses)
    done = 0
    for analysis in analyses:
        for entry, model in zip(entries, models):
            if on_stage is not None:
                on_stage(f"{analysis} {entry.label}", done, total)
            done += 1
            if analysis == "attention":
                _attention(entry, model, metrics, details, run)
            elif analysis == "distfit":
                _distfit(entry, model, metrics, details, run)
            else:
                if entry.label not in pooled:
                    pooled[entry.label] = _mean_features(entry, model, run)
                if analysis == "knn":
                    _knn(entry, pooled[entry.label], metrics, details, seed, device)
    if "cka" in analyses:
        _cka(entries, [pooled[e.label].flat().astype(np.float64) for e in entries], metrics, seed)
    settings = {"analyses": list(analyses), "seed": seed, "num_images": sizes.pop(),
                "models": [{"label": e.label, "epoch": e.epoch, **e.settings} for e in entries],
                "definitions": __doc__.split("Metrics (", 1)[1].split("\n\nA model", 1)[0].strip()}
    return Comparison(metrics, details, settings)


def _attention(entry: ModelEntry, model: Any, metrics: dict, details: dict, run: dict) -> None:
    from .attention_dataset import attention_stats

    names = METRICS["attention"]
    has_decoder = getattr(getattr(model, "config", None), "has_decoder", False)
    if getattr(model, "method", "mae") != "mae" or not has_decoder:
        for name in names:
            metrics[name].append(_absent(entry, "no decoder: the statistics are of decoder attention"))
        return
    report = attention_stats(model, entry.dataset, masking="grid", mask_ratio=0.75, top_n=5, num_examples=0, **run)
    last = report.layers[-1]
    details[entry.label]["attention"] = report.to_dict()
    metrics[names[0]].append(_wilson(entry, last.consistent_images, last.images))
    metrics[names[1]].append(_wilson(entry, last.local_patches, last.influenced_patches))
    metrics[names[2]].append(_wilson(entry, last.black_patches, last.non_important_patches))


def _distfit(entry: ModelEntry, model: Any, metrics: dict, details: dict, run: dict) -> None:
    from .distfit import encoder_samples, fit_samples

    names = METRICS["distfit"]
    if getattr(model, "method", "mae") != "mae":
        for name in names:
            metrics[name].append(_absent(entry, "not a ViT: no encoder tokens to fit"))
        return
    samples = encoder_samples(model, entry.dataset, features="tokens", mask_ratio=0.75, **run)
    result = fit_samples(samples.flat(), seed=run["seed"], ids=samples.ids, labels=samples.labels)
    summary = result.summary()
    details[entry.label]["distfit"] = {k: v for k, v in summary.items() if k != "settings"}
    for name, law in zip(names, ("norm", "t")):
        metrics[name].append(_wilson(entry, int((~result.rejected(law)).sum()), len(result)))


def _mean_features(entry: ModelEntry, model: Any, run: dict) -> Any:
    """The model's mean-pooled encoder output of every patch (a SimCLR model: its backbone feature)."""
    from .features import extract_features

    pool = "auto" if getattr(model, "method", "mae") != "mae" else "mean"
    return extract_features(model, entry.dataset, mask_ratio=0.0, pool=pool, **run)


def _knn(entry: ModelEntry, feats: Any, metrics: dict, details: dict, seed: int, device: str) -> None:
    from .evaluate import evaluate_features

    if len(np.unique(feats.labels[feats.labels >= 0])) < 2:
        metrics["knn_accuracy"].append(_absent(entry, "the images carry fewer than two classes"))
        return
    report = evaluate_features(feats, methods=["knn"], seed=seed, device=device, quiet=True)
    result = report.results[0]
    details[entry.label]["knn"] = report.to_frame().to_dict(orient="records")
    metrics["knn_accuracy"].append(_wilson(entry, result.correct, result.n))


def _cka(entries: Sequence[ModelEntry], pooled: list[np.ndarray], metrics: dict, seed: int) -> None:
    from .cka import linear_cka

    reference = pooled[0]
    width = reference.shape[1]
    for entry, feats in zip(entries, pooled):
        both = np.concatenate([reference, feats], axis=1)

        def statistic(rows: np.ndarray) -> float:
            return linear_cka(rows[:, :width], rows[:, width:])

        metrics["cka_to_first"].append(_row(entry, bootstrap_interval(both, statistic, n_boot=CKA_BOOTSTRAP,
                                                                      seed=seed)))


__all__ = ["CKA_BOOTSTRAP", "COMPARE_ANALYSES", "Comparison", "METRICS", "MetricRow", "ModelEntry", "check_analyses",
           "compare_models"]
