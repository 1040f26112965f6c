"""The paper's claims, one per experiment of ``paper.py``, and the verdict each gets from an experiment's
stored numbers (its ``result.json`` metrics).

Each claim is a :class:`maelens.verdict.Claim` citing the paper; :func:`verdict` turns the metrics an
experiment stores into the interval the claim is judged on, through :mod:`maelens.verdict` only. The same
function judges a fresh run and re-judges a committed result file (``run.py tables``), so the word in a
table is always the one rule's. The metrics each verdict needs are listed in :data:`NEEDS`; a file
without them (written by older code) gets ``n/a`` with the reason :data:`STALE`.

Torch-free: the tables command and the tests import it without the models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from maelens.verdict import (
    ALPHA,
    MIN_SEEDS,
    Claim,
    Interval,
    Verdict,
    compare_over_seeds,
    judge,
    judge_pvalue,
    newcombe_interval,
    wilson_interval,
)

__all__ = ["CLAIMS", "NEEDS", "SCALE_NOTES", "STALE", "UNDERTRAINED", "WITHDRAWN", "SYNTHETIC_MARGIN", "combine", "render",
           "verdict"]

#: The reason of an ``n/a`` for a result file that lacks the numbers the current rule needs.
STALE = "stale: re-run"
#: How a verdict's reason starts when a model of the comparison does not beat the mean-colour fill.
UNDERTRAINED = "undertrained"
#: The reason of the ``segmentation`` experiment's ``n/a`` on mosaics (issue 24): a mosaic cell's label is which
#: photograph it was cut from, which a colour lookup tells as well as any Segmenter, so the set cannot show what
#: pretraining adds; ``segmentation-canvas`` is the test of Fig. 12.
WITHDRAWN = ("withdrawn: mosaic labels are told by a colour lookup as well as by a Segmenter (issue 24); the test of "
             "Fig. 12 is segmentation-canvas")
#: Figs. 5-6: the Gaussian "never rejected" is read as a rejection rate under calibrated p-values below
#: twice the test's nominal 5% (a true null gives 5%; "never" cannot be shown, only "not above a margin").
SYNTHETIC_MARGIN = 0.10

CLAIMS: dict[str, Claim] = {
    "reconstruction": Claim("IPOL Fig. 4 (qualitative): the MAE reconstructs the removed 75% from the visible 25%; "
                            "tested as beating the mean visible colour", "masked-patch RGB MSE per image, model - "
                            "mean visible colour fill", "less"),
    "consistency": Claim("IPOL sec. 5: decoder layer 0 is more consistent with grid than with random masking "
                         "(0.9998 vs 0.9900)", "consistency of layer 0, grid - random", "greater"),
    "attention-layers": Claim("IPOL Fig. 10: through the decoder layers consistency and locality fall and black "
                              "patches rise", "last - first decoder layer (consistency and locality: less; black "
                              "fraction: greater)", "less"),
    "influence-maps": Claim("IPOL Fig. 9 (qualitative): local influence fields", "figure", "greater"),
    "positional-bias": Claim("IPOL sec. 5: the position of the patch of each importance rank is not uniform over "
                             "the visible patches (KS)", "KS p-value of layer 0, Bonferroni over ranks", "greater"),
    "synthetic-ks": Claim("IPOL Figs. 5-6: the Gaussian is never rejected for one attention layer's outputs "
                          "(1,000 chi2 samples, 4 x 160)", "Gaussian rejection rate under calibrated "
                          f"(parametric-bootstrap) KS p-values, against a {SYNTHETIC_MARGIN:.0%} margin", "less",
                          SYNTHETIC_MARGIN),
    "encoder-ks": Claim("IPOL Fig. 7: the Student-t is not rejected on more than 83% of the encoder outputs, "
                        "the Gaussian on 0%", "share of images not rejected, Student-t - Gaussian", "greater"),
    "ranking": Claim("IPOL Table 2 / Fig. 8: t < cauchy < lognorm < beta < norm by SSE; tested: the Student-t "
                     "fits better than the Gaussian", "share of images whose SSE is lower under t than under the "
                     "Gaussian", "greater", 0.5),
    "similarity": Claim("IPOL Fig. 11 / sec. 6: unmasked encodings serve kNN classification better than 25%-masked "
                        "ones", "kNN (k=20) accuracy per test image, unmasked - 25% masked", "greater"),
    "knn-table": Claim("IPOL Table 3: kNN in 50 PCA axes beats kNN in the PCA+t-SNE plane (84.7% vs 73.7%)",
                       "kNN accuracy, PCA - PCA+t-SNE", "greater"),
    "mae-vs-simclr": Claim("IPOL Table 3 / Figs. 13-14: the MAE's features beat SimCLR's under kNN (PCA 84.7% vs "
                           "64.2%)", "PCA kNN accuracy per seed, MAE - SimCLR, equal steps and images", "greater"),
    "parametric": Claim("IPOL Table 4: PCA+t-SNE 52.3% > Student-t VAE 48.7% > parametric t-SNE 46.6% > Gaussian "
                        "VAE 41.2%", "kNN accuracy in the 2-D maps, each method - the next in the paper's order",
                        "greater"),
    "masking-pretrain": Claim("MAE Table 1(f), KTH Table 2: random masking pretrains better representations than "
                              "grid masking", "kNN accuracy per seed, random - grid", "greater"),
    "segmentation": Claim("IPOL sec. 6 / Fig. 12: a Segmenter whose encoder is MAE-pretrained (RGB) reaches a lower "
                          "evaluation loss than one trained from scratch", "final eval cross-entropy per seed, MAE RGB "
                          "- scratch", "less"),
    "ycbcr-pretrain": Claim("IPOL sec. 6: no claim on the MAE's reconstruction with YCbCr targets (the faster "
                            "convergence concerns the segmenter, Fig. 12)", "RGB masked MSE", "less"),
    "segmentation-canvas": Claim("IPOL sec. 6 'Pre-training', Fig. 12: a Segmenter whose encoder was MAE-pretrained "
                                 "reaches a lower evaluation loss than one trained from scratch (canvas set)",
                                 "final evaluation loss, pretrained - scratch", "less"),
    "cae": Claim("CAE Fig. 4: with the alignment the encoder -> decoder reconstruction of a whole image works, "
                 "without it the reconstruction is noisy", "Fig. 4 reconstruction MSE, lambda 0 - lambda 2", "greater"),
}

#: For the findings that a few minutes of CPU training cannot settle, one line on the scale they need (said
#: by the demo report when their verdict is not ``holds``).
SCALE_NOTES: dict[str, str] = {
    "consistency": "the paper's gap (0.0098) needs thousands of images and a long-trained model to resolve",
    "attention-layers": "black patches in late layers need a deep decoder trained long (paper-cpu or full)",
    "encoder-ks": "heavy-tailed encoder outputs come with training: paper-cpu, full or the paper's data",
    "ranking": "the Student-t's lead comes with heavy tails, so with training: paper-cpu or full",
    "similarity": "the masking gap is small: a trained encoder and thousands of test images (paper-cpu)",
    "knn-table": "the PCA vs t-SNE gap needs a trained encoder and the paper's 20,000 images (paper-cpu)",
    "mae-vs-simclr": "equal budgets, 3 seeds: run.py mae-vs-simclr (quick or paper-cpu), not part of the demo",
    "parametric": "the maps need 100+ epochs on a well-trained encoder's features (paper-cpu)",
    "masking-pretrain": "3 seeds of models that beat the mean-colour fill: run.py masking-pretrain",
    "segmentation": "3 seeds per arm and encoders better than random (full, ADE20K)",
}

#: The metric keys each verdict needs (a result file without them is stale).
NEEDS: dict[str, tuple[str, ...]] = {
    "reconstruction": ("interval",), "consistency": ("counts",), "attention-layers": ("first_last",),
    "influence-maps": (), "positional-bias": ("min_p_layer0",), "synthetic-ks": ("rejected_calibrated",),
    "encoder-ks": ("not_rejected",), "ranking": ("t_below_norm",), "similarity": ("knn_interval",),
    "knn-table": ("correct",), "mae-vs-simclr": ("per_seed",), "parametric": ("correct",),
    "masking-pretrain": ("per_seed",), "segmentation": (), "ycbcr-pretrain": (),
    "segmentation-canvas": ("fitness", "verdicts"), "cae": ("verdicts", "undertrained"),
}

#: Fig. 10's three trends: the property and the direction of last - first layer the paper reports.
FIG10_TRENDS = {"consistency": "less", "locality": "less", "black_fraction": "greater"}


def _interval(d: Mapping[str, Any]) -> Interval:
    return Interval(**{k: d[k] for k in ("estimate", "low", "high", "level", "method", "n")})


def _newcombe(claim: Claim, a, b) -> Verdict:
    """``a`` and ``b`` are [successes, n] pairs; the interval is for share(a) - share(b)."""
    return judge(claim, newcombe_interval(int(a[0]), int(a[1]), int(b[0]), int(b[1])))


def _undertrained(metrics: Mapping[str, Any], arms: tuple[str, ...]) -> str:
    """Why no verdict: the models of the compared ``arms`` (entries ``"ARM seed K"``) that do not beat the
    mean-colour fill; a model of another arm (e.g. block masking when random and grid are compared) does not
    stop the comparison."""
    compared = {arm.lower() for arm in arms}
    models = [m for m in metrics.get("undertrained") or [] if m.rsplit(" seed ", 1)[0].lower() in compared]
    return f"{UNDERTRAINED}: {', '.join(models)} not better than the mean-colour fill" if models else ""


def _seeds(claim: Claim, metrics: Mapping[str, Any], a: str, b: str) -> Verdict:
    reason = _undertrained(metrics, (a, b))
    if reason:
        return judge(claim, None, reason)
    return compare_over_seeds(claim, metrics["per_seed"][a], metrics["per_seed"][b])


def _fig10(claim: Claim, metrics: Mapping[str, Any]) -> Verdict:
    """Fig. 10's three trends, last against first decoder layer. Consistency counts images; locality and the
    black fraction count patches, which Newcombe's interval treats as independent although the patches of one
    image are not: those two intervals are narrower than an interval over images would be (the attention
    statistics keep counts, not per-image values)."""
    parts = {}
    for prop, direction in FIG10_TRENDS.items():
        (k0, n0), (k1, n1) = metrics["first_last"][prop]
        part = Claim(claim.statement, f"{prop}, last - first layer", direction)
        parts[prop] = (judge(part, newcombe_interval(int(k1), int(n1), int(k0), int(n0))) if n0 and n1 else
                       judge(part, None, "nothing to count in a layer"))
    return combine(claim, parts)


#: Table 4's order (the paper's protocol for t-SNE), judged pair by pair.
TABLE4_ORDER = ("tsne-knn", "vae-t", "ptsne", "vae-gauss")


def _table4(claim: Claim, metrics: Mapping[str, Any]) -> Verdict:
    c = metrics["correct"]
    parts = {f"{a} > {b}": _newcombe(Claim(claim.statement, f"kNN accuracy, {a} - {b}", "greater"), c[a], c[b])
             for a, b in zip(TABLE4_ORDER, TABLE4_ORDER[1:])}
    return combine(claim, parts)


def combine(claim: Claim, parts: Mapping[str, Verdict]) -> Verdict:
    """One verdict for a claim made of several parts: ``holds`` when every part holds, ``opposite`` when
    any part is opposite, ``n/a`` when every part is, else ``tie``; the parts' words are the reason."""
    words = [v.word for v in parts.values()]
    if all(w == "holds" for w in words):
        word = "holds"
    elif "opposite" in words:
        word = "opposite"
    elif all(w == "n/a" for w in words):
        word = "n/a"
    else:
        word = "tie"
    return Verdict(claim, word, None, "; ".join(f"{name} {v.word}" for name, v in parts.items()))


def _canvas(claim: Claim, metrics: Mapping[str, Any]) -> Verdict:
    """Issue 24's study: no verdict unless the canvas set is fit (scratch beats the colour lookup clearly);
    then the headline arm's (MAE RGB, full fine-tuning, fewest labels) paired interval over seeds."""
    fitness = metrics["fitness"]
    if not fitness.get("fit"):
        return judge(claim, None, "set not fit: the from-scratch Segmenter does not beat the colour lookup clearly "
                                  f"(mIoU margin {fitness.get('margin', float('nan')):+.3f})")
    rows = [r for r in metrics["verdicts"] if r.get("arm") == "MAE RGB" and r.get("mode") == "fine-tune"]
    if not rows:
        return judge(claim, None, STALE)
    head = min(rows, key=lambda r: r["labels"])
    if head.get("interval") is None:
        return judge(claim, None, head.get("reason") or "no interval")
    return judge(claim, _interval(head["interval"]))


def _segmentation(claim: Claim, metrics: Mapping[str, Any]) -> Verdict:
    """Fig. 12 on the ``segmentation`` experiment's data (``metrics["data"]``; a record without it predates every
    other choice, so mosaics): withdrawn on mosaics (:data:`WITHDRAWN`), else paired over seeds, MAE RGB -
    scratch."""
    if str(metrics.get("data", "mosaic")).split(":")[0] == "mosaic":
        return judge(claim, None, WITHDRAWN)
    if "per_seed" not in metrics:
        return judge(claim, None, STALE)
    return _seeds(claim, metrics, "MAE RGB", "scratch")


def _cae_fig4(claim: Claim, metrics: Mapping[str, Any]) -> Verdict:
    """The CAE study's headline (Fig. 4, the alignment's effect) from its per-claim row: a paired t interval over
    at least 3 seeds."""
    row = next((r for r in metrics["verdicts"] if r.get("claim") == "fig4"), None)
    if row is None or row.get("low") is None or row.get("seeds", 0) < MIN_SEEDS:
        return judge(claim, None, (row or {}).get("reason") or STALE)
    return judge(claim, Interval(row["estimate"], row["low"], row["high"], 1 - ALPHA, row["method"], row["seeds"]))


_RULES: dict[str, Callable[[Claim, Mapping[str, Any]], Verdict]] = {
    "reconstruction": lambda c, m: judge(c, _interval(m["interval"])),
    "consistency": lambda c, m: _newcombe(c, m["counts"]["grid"], m["counts"]["random"]),
    "attention-layers": _fig10,
    "influence-maps": lambda c, m: judge(c, None, "qualitative (a figure)"),
    "positional-bias": lambda c, m: judge_pvalue(c, float(m["min_p_layer0"])),
    "synthetic-ks": lambda c, m: judge(c, wilson_interval(*map(int, m["rejected_calibrated"]))),
    "encoder-ks": lambda c, m: _newcombe(c, m["not_rejected"]["t"], m["not_rejected"]["norm"]),
    "ranking": lambda c, m: judge(c, wilson_interval(*map(int, m["t_below_norm"]))),
    "similarity": lambda c, m: judge(c, _interval(m["knn_interval"])),
    "knn-table": lambda c, m: _newcombe(c, m["correct"]["pca-knn"], m["correct"]["tsne-knn"]),
    "mae-vs-simclr": lambda c, m: _seeds(c, m, "mae", "simclr"),
    "parametric": _table4,
    "masking-pretrain": lambda c, m: _seeds(c, m, "random", "grid"),
    "segmentation": _segmentation,
    "ycbcr-pretrain": lambda c, m: judge(c, None, "no claim of the paper on the MAE's reconstruction: a measurement"),
    "segmentation-canvas": _canvas,
    "cae": _cae_fig4,
}


def verdict(name: str, metrics: Mapping[str, Any]) -> Verdict:
    """The verdict on experiment ``name``'s claim from its stored ``metrics``; ``n/a`` (:data:`STALE`)
    when they lack what the rule needs."""
    if name not in CLAIMS:
        raise ValueError(f"no claim for experiment {name!r}; known: {', '.join(CLAIMS)}")
    claim = CLAIMS[name]
    if any(key not in metrics for key in NEEDS[name]):
        return judge(claim, None, STALE)
    return _RULES[name](claim, metrics)


def render(v: Verdict) -> str:
    """The verdict as a table cell: the word, the interval and the reason; ``undertrained`` alone when a
    model of the comparison did not beat the mean-colour fill."""
    if v.reason.startswith(UNDERTRAINED):
        return f"undertrained ({v.reason[len(UNDERTRAINED) + 2:]})"
    if v.interval is not None:
        iv = v.interval
        text = f"{v.word} ({iv.method} {iv.level:.0%} interval [{iv.low:.4g}, {iv.high:.4g}] vs {v.claim.null:g}"
        return text + (f"; {v.reason})" if v.reason else ")")
    return f"{v.word} ({v.reason})" if v.reason else v.word
