"""IPOL Fig. 12 on a set where pretraining can matter: the ``canvas`` segmentation study (issue 24).

The paper's headline claim (Sarbout & Colom, sec. 6 "Pre-training", Fig. 12): a Segmenter whose encoder was
MAE-pretrained reaches a lower evaluation loss than one trained from scratch. Tested as the field tests it:

1. MAE pretraining on unlabelled canvases (the ``canvas:N`` stream: Fashion-MNIST training items on the
   training part of the photographs) with three targets (RGB, plain YCbCr, weighted YCbCr MSE_w), and with RGB
   on the photographs (the session's pretraining data) as a second source. Each encoder is checked against
   the mean-visible-colour fill on held-out canvases; one that does not beat it is "undertrained" and gets no
   verdict.
2. Few-label fine-tuning (``labels`` labelled training canvases, a seeded subset per seed) with MAE's
   fine-tuning recipe: AdamW, lr = blr x batch / 256, warm-up then cosine, layer-wise lr decay for the
   pretrained encoders (from-scratch training has no pretrained layers to protect, so it gets none, as in
   MAE's own from-scratch baselines); and beside it, a frozen encoder with a trained linear decoder
   (:mod:`maelens.segmentation.frozen`), also on a randomly initialised encoder (the random-frozen baseline).
3. Baselines: the colour lookup per pixel and with a 4x4 vote (:mod:`maelens.segmentation.baselines`). The set
   is fit for the test only if the from-scratch Segmenter beats the better lookup by :data:`FIT_MARGIN` mIoU
   (2 points) with 95% confidence over seeds; the margin is recorded.
4. At least 3 seeds per arm; result.json holds mean +- sd of the final evaluation loss and mIoU, the paired
   difference pretrained - scratch with its 95% interval over seeds, and the verdict of
   :func:`maelens.verdict.compare_over_seeds`.

Every run's result is cached in its folder (``runs/ARM-nLABELS-sSEED/result.json``) and the pretrainings resume
(:func:`maelens.train.train_or_load`), so an interrupted study continues where it stopped. The README table is
generated from result.json by :func:`markdown_table` (``python experiments/segmentation_study.py readme``).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from claims import CLAIMS as PAPER_CLAIMS
from common import Context, Outcome, Recorder

from maelens.analysis.reconstruction import reconstruction_error
from maelens.data import load_dataset
from maelens.data.canvas import CANVAS_SIZES, CLASSES, canvas_info
from maelens.data.segmentation import load_segmentation
from maelens.io import write_json, write_text
from maelens.models import get_config
from maelens.plots.seed_bands import seed_band_figure
from maelens.segmentation import SegmentConfig, finetune
from maelens.segmentation.baselines import colour_lookup_scores
from maelens.segmentation.frozen import train_frozen_decoder
from maelens.segmentation.model import Segmenter, encoder_state
from maelens.train import TrainConfig, train_or_load
from maelens.verdict import Claim, compare_over_seeds, judge, paired_t_interval

NAME = "segmentation-canvas"
CLAIM = PAPER_CLAIMS["segmentation-canvas"]  # judged again from result files by experiments/claims.py
FIT_CLAIM = Claim("issue 24: the set can show what an encoder learns only if the from-scratch Segmenter beats "
                  "the colour lookup clearly", "mIoU, scratch - best colour lookup", "greater", 0.02)
#: mIoU by which scratch must beat the better colour lookup with 95% confidence over seeds (the null of
#: :data:`FIT_CLAIM`): 2 points, a fifth of the lookup's 9.8% on canvas. Chosen after a sizing run of scratch at the
#: paper-cpu budget (1,024 labels, 20 epochs: 12.6-12.8% mIoU, about 3 points above the lookup); 5 points, the
#: stricter reading of "clearly", is one edit here and no CPU-sized run reaches it.
FIT_MARGIN = FIT_CLAIM.null
#: Encoders pretrained on the unlabelled canvases: arm -> MAE loss target.
CANVAS_TARGETS = {"MAE RGB": "pixel", "MAE plain YCbCr": "ycbcr-plain", "MAE weighted YCbCr": "ycbcr"}
HEADLINE = "MAE RGB"


@dataclass(frozen=True)
class StudySettings:
    """Sizes of one scale of the study (see :data:`SETTINGS`): the ``preset`` (its image size is the canvases'),
    the unlabelled ``stream`` and the MAE pretraining, the labelled counts, seeds and fine-tuning recipe."""

    preset: str
    stream: int
    pretrain_epochs: int
    pretrain_batch: int
    pretrain_blr: float
    labels: tuple[int, ...]
    seeds: int
    epochs: int
    batch_size: int
    blr: float
    layer_decay: float
    frozen_epochs: int
    frozen_blr: float
    eval_images: int
    photos_arm: bool = True
    frozen_arms: tuple[str, ...] = ("random", *CANVAS_TARGETS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Sizes per scale (see experiments/README.md, "The canvas study", for the timing estimate behind each).
SETTINGS = {
    "quick": StudySettings(preset="tiny", stream=2048, pretrain_epochs=8, pretrain_batch=64, pretrain_blr=1e-2,
                           labels=(512,), seeds=3, epochs=6, batch_size=32, blr=4e-2, layer_decay=0.75,
                           frozen_epochs=20, frozen_blr=0.4, eval_images=256, photos_arm=False,
                           frozen_arms=("random", "MAE RGB")),
    "paper-cpu": StudySettings(preset="tiny", stream=16384, pretrain_epochs=8, pretrain_batch=64, pretrain_blr=1e-2,
                               labels=(256, 1024), seeds=3, epochs=20, batch_size=32, blr=4e-2, layer_decay=0.75,
                               frozen_epochs=30, frozen_blr=0.4, eval_images=512),
    "full": StudySettings(preset="ipol64", stream=100000, pretrain_epochs=100, pretrain_batch=256, pretrain_blr=1.5e-4,
                          labels=(256, 1024, 4096), seeds=5, epochs=100, batch_size=64, blr=1e-3, layer_decay=0.65,
                          frozen_epochs=100, frozen_blr=0.1, eval_images=CANVAS_SIZES["test"]),
}
#: The reduced version the test suite runs (tiny sizes, one seed: a verdict of n/a is the expected answer).
SMOKE = StudySettings(preset="tiny", stream=64, pretrain_epochs=1, pretrain_batch=32, pretrain_blr=1e-2, labels=(32,),
                      seeds=1,
                      epochs=1, batch_size=16, blr=1e-2, layer_decay=0.75, frozen_epochs=1, frozen_blr=0.1,
                      eval_images=16, photos_arm=False, frozen_arms=("random", "MAE RGB"))


def slug(arm: str) -> str:
    """Folder name of an arm: ``"MAE weighted YCbCr"`` -> ``mae-weighted-ycbcr``."""
    return re.sub(r"[^a-z0-9]+", "-", arm.lower()).strip("-")


# ---- pretraining -------------------------------------------------------------------------------------------

def _pretrain(ctx: Context, s: StudySettings, target: str, data: str):
    """The MAE pretrained on ``data`` with ``target`` (trained once, resumed when interrupted)."""
    tag = re.sub(r"[^a-z0-9]+", "", data.lower())
    out = ctx.out / "models" / f"{s.preset}-{tag}-{target}-e{s.pretrain_epochs}-fp32"
    config = TrainConfig.with_loss(
        target, preset=s.preset, data=data, epochs=s.pretrain_epochs, batch_size=s.pretrain_batch,
        warmup_epochs=min(2.0, s.pretrain_epochs / 4), blr=s.pretrain_blr, schedule="cosine", masking="random",
        mask_ratio=0.75, seed=ctx.seed, device=ctx.device, out=str(out), quiet=ctx.quiet, recon_images=0,
        precision="fp32")
    return train_or_load(config, device=ctx.device)


def pretrained_encoders(ctx: Context, s: StudySettings) -> dict[str, Any]:
    """Arm -> its pretraining run (canvas targets, then RGB on the session's pretraining data)."""
    runs = {arm: _pretrain(ctx, s, target, f"canvas:{s.stream}") for arm, target in CANVAS_TARGETS.items()}
    if s.photos_arm:
        runs[f"MAE RGB ({ctx.pretrain_data})"] = _pretrain(ctx, s, "pixel", ctx.pretrain_data)
    return runs


def fill_check(run, ctx: Context, s: StudySettings) -> dict[str, Any]:
    """The encoder's RGB MSE on removed patches of held-out canvases against the mean-visible-colour fill (same
    masks): an encoder that does not beat the fill is ``undertrained``."""
    test = load_dataset("canvas", image_size=get_config(s.preset).img_size, split="test", limit=s.eval_images, seed=0)
    err = reconstruction_error(run.model.eval(), test, seed=ctx.seed)
    return {"model_mse": err.model_mse, "mean_fill_mse": err.baseline_mse,
            "undertrained": err.model_mse >= err.baseline_mse,
            "epochs": len(run.history), "data": run.summary.get("train_config", {}).get("data")}


# ---- fine-tuning -------------------------------------------------------------------------------------------

def _cached(folder: Path, compute) -> dict[str, Any]:
    path = folder / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    write_json(path, result)
    return result


def _segmentation_data(s: StudySettings, n: int, seed: int, train: bool):
    arch = get_config(s.preset)
    kwargs = dict(image_size=arch.img_size, mean=arch.norm_mean, std=arch.norm_std)
    return load_segmentation("canvas", split="train", train=train, limit=n, seed=seed, **kwargs)


def _eval_data(s: StudySettings):
    arch = get_config(s.preset)
    return load_segmentation("canvas", image_size=arch.img_size, split="test", limit=s.eval_images, seed=0,
                             mean=arch.norm_mean, std=arch.norm_std)


def full_finetune(ctx: Context, s: StudySettings, folder: Path, run, n: int, seed: int) -> dict[str, Any]:
    """One fine-tuning of every layer (``run`` None: from scratch) on ``n`` labelled canvases with seed ``seed``."""
    def compute() -> dict[str, Any]:
        config = SegmentConfig(init="scratch", preset=s.preset, decoder="linear", data="canvas", epochs=s.epochs,
                               batch_size=s.batch_size, blr=s.blr, layer_decay=None if run is None else s.layer_decay,
                               warmup_epochs=1.0, weight_decay=0.05, seed=seed, precision="fp32", device=ctx.device,
                               out=str(folder), resume="auto", figure_images=0, quiet=ctx.quiet)
        result = finetune(config, train_data=_segmentation_data(s, n, seed, train=True),
                          eval_data=_eval_data(s), encoder=None if run is None else run.model)
        return {"history": [{k: h[k] for k in ("epoch", "train_loss", "eval_loss", "pixel_accuracy", "miou")}
                            for h in result.history], "final": {k: result.final[k] for k in
                                                                ("eval_loss", "pixel_accuracy", "miou")},
                "peak_lr": result.summary.get("peak_lr"), "seconds": sum(h["time_s"] for h in result.history)}
    return _cached(folder, compute)


def frozen_linear(ctx: Context, s: StudySettings, folder: Path, run, n: int, seed: int) -> dict[str, Any]:
    """The frozen-encoder arm: ``run``'s encoder (None: randomly initialised with ``seed``) and a linear decoder
    trained on ``n`` labelled canvases."""
    def compute() -> dict[str, Any]:
        torch.manual_seed(seed)
        arch = get_config(s.preset) if run is None else run.model.config
        model = Segmenter(arch, len(CLASSES))
        if run is not None:
            model.encoder.load_state_dict(encoder_state(run.model))
        lr = s.frozen_blr * s.batch_size / 256
        result = train_frozen_decoder(model, _segmentation_data(s, n, seed, train=False), _eval_data(s),
                                      epochs=s.frozen_epochs, batch_size=s.batch_size, lr=lr, seed=seed,
                                      device=ctx.device)
        return {"history": result.history,
                "final": {k: result.final[k] for k in ("eval_loss", "pixel_accuracy", "miou")},
                "peak_lr": lr}
    return _cached(folder, compute)


# ---- summaries ---------------------------------------------------------------------------------------------

def _interval(a: list[float], b: list[float]) -> dict[str, float] | None:
    return paired_t_interval(a, b).to_dict() if len(a) >= 2 else None


def summarise(runs: dict[tuple[str, str, int], list[dict]], checks: dict[str, dict], fit_ok: bool,
              fit_reason: str) -> tuple[pd.DataFrame, list[dict]]:
    """One row per (arm, mode, labels): mean +- sd of the final evaluation loss and mIoU over seeds, the paired
    difference to scratch (same mode's scratch: full fine-tuning) with its 95% interval, and the verdict."""
    rows, verdicts = [], []
    for (arm, mode, n), results in runs.items():
        loss = [r["final"]["eval_loss"] for r in results]
        miou = [r["final"]["miou"] for r in results]
        row = {"arm": arm, "mode": mode, "labels": n, "seeds": len(results), "eval_loss_mean": np.mean(loss),
               "eval_loss_sd": np.std(loss, ddof=1) if len(loss) > 1 else float("nan"), "miou_mean": np.mean(miou),
               "miou_sd": np.std(miou, ddof=1) if len(miou) > 1 else float("nan"),
               "pixel_accuracy_mean": np.mean([r["final"]["pixel_accuracy"] for r in results]),
               "pretraining": "none" if arm in ("scratch", "random") else
               ("undertrained" if checks.get(arm, {}).get("undertrained") else "beats the mean-colour fill")}
        scratch = runs.get(("scratch", "fine-tune", n))
        if arm != "scratch" and scratch is not None:
            s_loss = [r["final"]["eval_loss"] for r in scratch]
            s_miou = [r["final"]["miou"] for r in scratch]
            for key, interval in (("loss_diff", _interval(loss, s_loss)), ("miou_diff", _interval(miou, s_miou))):
                for part in ("estimate", "low", "high"):
                    row[f"{key}_{part}"] = None if interval is None else interval[part]
            if arm == "random":
                verdict = None
            elif row["pretraining"] == "undertrained":
                verdict = judge(CLAIM, None, "undertrained: the encoder does not beat the mean-colour fill")
            elif not fit_ok:
                verdict = judge(CLAIM, None, f"set not fit: {fit_reason}")
            else:
                verdict = compare_over_seeds(CLAIM, loss, s_loss)
            if verdict is not None:
                row["verdict"], row["verdict_reason"] = verdict.word, verdict.reason
                verdicts.append({"arm": arm, "mode": mode, "labels": n, **verdict.to_dict()})
        rows.append(row)
    return pd.DataFrame(rows), verdicts


def fitness(scratch: list[dict], lookup: dict[str, Any]) -> dict[str, Any]:
    """Whether scratch beats the better colour lookup by :data:`FIT_MARGIN` mIoU (verdict over seeds)."""
    best = max(lookup["miou"], lookup["vote_miou"])
    miou = [r["final"]["miou"] for r in scratch]
    verdict = compare_over_seeds(FIT_CLAIM, miou, [best] * len(miou))
    return {"scratch_miou_mean": float(np.mean(miou)), "best_lookup_miou": best,
            "margin": float(np.mean(miou) - best), "fit": verdict.word == "holds", **verdict.to_dict()}


def run_study(ctx: Context, s: StudySettings | None = None) -> Outcome:
    """The whole study at ``ctx.scale`` (or with the sizes ``s``); see the module docstring."""
    s = s or SETTINGS[ctx.scale]
    rec = Recorder(ctx, NAME)
    size = get_config(s.preset).img_size
    # the baselines: colour lookup per pixel and with a 4x4 vote, fitted on the largest labelled subset
    train_raw = load_segmentation("canvas", image_size=size, split="train", limit=max(s.labels), seed=0).raw
    test = _eval_data(s).raw
    lookup = colour_lookup_scores(train_raw.images, train_raw.masks, test.images, test.masks,
                                  len(test.classes)).to_dict()
    rec.table("canvas_baselines", pd.DataFrame([lookup]))
    encoders = pretrained_encoders(ctx, s)
    checks = {arm: fill_check(run, ctx, s) for arm, run in encoders.items()}
    rec.table("canvas_pretraining", pd.DataFrame([{"arm": a, **c} for a, c in checks.items()]))
    runs: dict[tuple[str, str, int], list[dict]] = {}
    for n in s.labels:
        for seed in range(ctx.seed, ctx.seed + s.seeds):
            # the headline pair first, so an interrupted study has answered it
            for arm, run in {"scratch": None, **encoders}.items():
                folder = rec.dir / "runs" / f"{slug(arm)}-n{n}-s{seed}"
                runs.setdefault((arm, "fine-tune", n), []).append(full_finetune(ctx, s, folder, run, n, seed))
            for arm in s.frozen_arms:
                run = None if arm == "random" else encoders[arm]
                folder = rec.dir / "runs" / f"frozen-{slug(arm)}-n{n}-s{seed}"
                runs.setdefault((arm, "frozen", n), []).append(frozen_linear(ctx, s, folder, run, n, seed))
    fit = fitness(runs[("scratch", "fine-tune", max(s.labels))], lookup)
    fit_reason = (f"scratch mIoU {100 * fit['scratch_miou_mean']:.1f}% against the colour lookup's "
                  f"{100 * fit['best_lookup_miou']:.1f}% ({fit['verdict']})")
    frame, verdicts = summarise(runs, checks, fit["fit"], fit_reason)
    rec.table("canvas_comparison", frame)
    rec.table("canvas_seeds", pd.DataFrame([{"arm": a, "mode": m, "labels": n, "seed": i, **r["final"]}
                                             for (a, m, n), rs in runs.items() for i, r in enumerate(rs)]))
    for n in s.labels:
        for mode in ("fine-tune", "frozen"):
            curves = {a: np.array([[h["eval_loss"] for h in r["history"]] for r in rs])
                      for (a, m, k), rs in runs.items() if m == mode and k == n}
            rec.figure(f"fig12_{mode}_n{n}", seed_band_figure(
                curves, title=f"Segmenter ({mode}, linear decoder) on {n} labelled canvases, {s.preset}"))
    headline = next(v for v in verdicts if v["arm"] == HEADLINE and v["mode"] == "fine-tune"
                    and v["labels"] == min(s.labels))
    ours = "; ".join(f"{r.arm} ({r.mode}, {r.labels} labels): eval CE {r.eval_loss_mean:.3f}, mIoU "
                     f"{100 * r.miou_mean:.1f}%" for r in frame.itertuples()) + \
        f"; colour lookup mIoU {100 * lookup['miou']:.1f}% (4x4 vote {100 * lookup['vote_miou']:.1f}%)"
    sizes = {"labels": list(s.labels), "eval_images": s.eval_images, "stream": s.stream,
             "canvas": canvas_info(size)["canvas"]}
    return rec.done(
        "Sec. 6 / Fig. 12 (canvas)", CLAIM.statement, ours, headline["verdict"],
        f"{s.seeds} seeds per arm; verdict on the paired difference of the final evaluation loss ({HEADLINE}, full "
        f"fine-tuning, {min(s.labels)} labels); the set's fitness: {fit_reason}.",
        settings=s.to_dict(), estimate_s=estimate_seconds(s), sizes=sizes, baselines=lookup, fitness=fit,
        pretraining=checks, verdicts=verdicts,
        rows=frame.to_dict(orient="records"))


#: Throughput assumed by :func:`estimate_seconds` (images/s, ``tiny``, fp32, a free 2-core CPU): MAE pretraining
#: steps, fine-tuning steps with augmentation, evaluation / frozen-encoder forward passes. Derived from runs on
#: the shared 2-core machine of 2026-12-04 (load average 10-12): 150-160 images/s pretraining and 110-200
#: fine-tuning with about half a core, scaled to two free cores (see experiments/README.md).
RATES = {"pretrain": 400.0, "finetune": 300.0, "forward": 1000.0}


def scratch_ceiling(ctx: Context, s: StudySettings, n: int) -> dict[str, Any]:
    """What supervision alone reaches on the set: the from-scratch Segmenter with the scale's recipe on ``n``
    labelled canvases (e.g. all 4,096), over ``s.seeds`` seeds, against the colour lookup fitted on the same
    ``n`` canvases, judged by :data:`FIT_CLAIM` like the study's fitness check. It says how far above the lookup
    the set's labels can take a model, which the few-label arms cannot show; runs cached under ``ctx.out``."""
    train_raw = load_segmentation("canvas", image_size=get_config(s.preset).img_size, split="train", limit=n,
                                  seed=0).raw
    test = _eval_data(s).raw
    lookup = colour_lookup_scores(train_raw.images, train_raw.masks, test.images, test.masks,
                                  len(test.classes)).to_dict()
    runs = [full_finetune(ctx, s, ctx.out / "runs" / f"scratch-n{n}-s{seed}", None, n, seed)
            for seed in range(ctx.seed, ctx.seed + s.seeds)]
    return {"labels": n, "settings": s.to_dict(), "lookup": lookup, "fitness": fitness(runs, lookup),
            "scratch_miou": [r["final"]["miou"] for r in runs],
            "scratch_eval_loss": [r["final"]["eval_loss"] for r in runs],
            "seconds": [r["seconds"] for r in runs]}


def estimate_seconds(s: StudySettings, rates: dict[str, float] = RATES, photos_images: int = 4600) -> dict[str, float]:
    """Planned work of the study divided by ``rates``: seconds per part and in all (data preparation not counted:
    10-20 s). ``photos_images``: training images of the second pretraining source."""
    finetune_arms = 1 + len(CANVAS_TARGETS) + s.photos_arm
    frozen_arms = len(s.frozen_arms)
    labels = sum(s.labels)
    parts = {
        "pretrain": (len(CANVAS_TARGETS) * s.stream + s.photos_arm * photos_images) * s.pretrain_epochs
        / rates["pretrain"],
        "finetune": finetune_arms * s.seeds * labels * s.epochs / rates["finetune"],
        "evaluate": finetune_arms * s.seeds * len(s.labels) * s.epochs * s.eval_images / rates["forward"],
        "frozen": frozen_arms * s.seeds * (labels + len(s.labels) * s.eval_images) / rates["forward"],
        "fill_check": (len(CANVAS_TARGETS) + s.photos_arm) * s.eval_images / rates["forward"],
    }
    return {**parts, "total": sum(parts.values())}


STUDIES = {NAME: run_study}


# ---- the README table, generated from result.json -----------------------------------------------------------

MARK_BEGIN, MARK_END = "<!-- canvas-table:begin -->", "<!-- canvas-table:end -->"


def _pm(mean: float, sd: float, scale: float = 1.0, digits: int = 3) -> str:
    return f"{scale * mean:.{digits}f}" + ("" if sd is None or not np.isfinite(sd) else f" ± {scale * sd:.{digits}f}")


def _verdict_cell(row: dict[str, Any]) -> str:
    """The verdict word and, for n/a, the first clause of its reason."""
    word, reason = row.get("verdict"), row.get("verdict_reason")
    if not isinstance(word, str):
        return ""
    return f"{word} ({reason.split(':')[0].split(';')[0]})" if isinstance(reason, str) and reason else word


def _points_interval(fit: dict[str, Any]) -> str:
    """The fitness margin's 95% interval in mIoU points (empty when there was too little to compute one)."""
    iv = fit.get("interval")
    if not iv or not all(np.isfinite([iv["low"], iv["high"]])):
        return ""
    return f", 95% interval [{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}] against the {100 * fit['claim']['null']:.0f}-point null"


def markdown_table(result: dict[str, Any]) -> str:
    """The study's table in Markdown, every number read from ``result`` (a result.json)."""
    m = result["metrics"]
    lines = ["| arm | mode | labels | seeds | pretraining | final eval CE | mIoU % | Δ CE vs scratch [95% CI] "
             "| verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        diff = "" if r.get("loss_diff_estimate") is None else \
            f"{r['loss_diff_estimate']:+.3f} [{r['loss_diff_low']:+.3f}, {r['loss_diff_high']:+.3f}]"
        lines.append(f"| {r['arm']} | {r['mode']} | {r['labels']} | {r['seeds']} | {r['pretraining']} | "
                     f"{_pm(r['eval_loss_mean'], r['eval_loss_sd'])} | {_pm(r['miou_mean'], r['miou_sd'], 100, 1)} | "
                     f"{diff} | {_verdict_cell(r)} |")
    b, f = m["baselines"], m["fitness"]
    lines += ["", f"Colour lookup (16 levels per channel): pixel accuracy {100 * b['pixel_accuracy']:.1f}%, mIoU "
              f"{100 * b['miou']:.1f}%; with the 4x4 vote {100 * b['vote_pixel_accuracy']:.1f}% / "
              f"{100 * b['vote_miou']:.1f}%. Fitness: scratch mIoU {100 * f['scratch_miou_mean']:.1f}% - best lookup "
              f"{100 * f['best_lookup_miou']:.1f}% = margin {100 * f['margin']:+.1f} points{_points_interval(f)} "
              f"({'fit' if f['fit'] else 'not fit'}: {f['verdict']}). Headline verdict: **{result['holds']}** "
              f"(mode {result['mode']}, {result['seconds']:.0f} s)."]
    return "\n".join(lines)


def ceiling_line(ceiling: dict[str, Any]) -> str:
    """One sentence on :func:`scratch_ceiling`'s result (a ``ceiling.json``), every number read from it."""
    f, lookup = ceiling["fitness"], ceiling["lookup"]
    miou = ceiling["scratch_miou"]
    return (f"Ceiling of the labels: from scratch on all {ceiling['labels']:,} labelled canvases (same recipe, "
            f"{len(miou)} seeds) the Segmenter reaches {100 * float(np.mean(miou)):.1f}% mIoU against "
            f"{100 * f['best_lookup_miou']:.1f}% for the better colour lookup fitted on the same canvases (per pixel "
            f"{100 * lookup['miou']:.1f}%, 4x4 vote {100 * lookup['vote_miou']:.1f}%): margin "
            f"{100 * f['margin']:+.1f} points{_points_interval(f)} ({f['verdict']}).")


def update_readme(readme: Path, result_file: Path) -> None:
    """Replace the text between the canvas-table markers of ``readme`` with :func:`markdown_table` (and
    :func:`ceiling_line` when ``segmentation-canvas-ceiling/ceiling.json`` sits beside the result's folder)."""
    text = readme.read_text()
    begin, end = text.index(MARK_BEGIN) + len(MARK_BEGIN), text.index(MARK_END)
    table = markdown_table(json.loads(result_file.read_text()))
    ceiling = result_file.parent.parent / "segmentation-canvas-ceiling" / "ceiling.json"
    if ceiling.is_file():
        table += f"\n\n<!-- and from {ceiling} -->\n" + ceiling_line(json.loads(ceiling.read_text()))
    write_text(readme, text[:begin] + f"\n<!-- generated from {result_file} -->\n" + table + "\n" + text[end:])


def lookup_scores(specs: list[str], image_size: int) -> list[dict[str, Any]]:
    """The colour lookup fitted on the whole training split of each segmentation ``spec`` and scored on its test
    split (the numbers quoted for ``mosaic`` in its help and the READMEs)."""
    rows = []
    for spec in specs:
        train = load_segmentation(spec, image_size=image_size, split="train").raw
        test = load_segmentation(spec, image_size=image_size, split="test").raw
        scores = colour_lookup_scores(train.images, train.masks, test.images, test.masks, len(test.classes))
        rows.append({"data": spec, "image_size": image_size, "train_images": len(train), "test_images": len(test),
                     "classes": len(test.classes), **scores.to_dict()})
    return rows


if __name__ == "__main__":
    # python experiments/segmentation_study.py readme RESULT_JSON: fill experiments/README.md's table
    # python experiments/segmentation_study.py lookup OUT_JSON SIZE SPEC...: the colour lookup on each set
    # python experiments/segmentation_study.py ceiling SCALE LABELS OUT_DIR: scratch_ceiling, to OUT_DIR/ceiling.json
    if len(sys.argv) == 3 and sys.argv[1] == "readme":
        update_readme(Path(__file__).resolve().parent / "README.md", Path(sys.argv[2]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "lookup":
        write_json(Path(sys.argv[2]), {"colour_lookup": lookup_scores(sys.argv[4:], int(sys.argv[3])),
                                       "maelens_data_formats": {"mosaic": 2, "canvas": 2}})
    elif len(sys.argv) == 5 and sys.argv[1] == "ceiling":
        scale, labels, out = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
        ctx = Context(out=out, scale=scale, quiet=True)
        write_json(out / "ceiling.json", {"note": f"scratch with {labels} labels at the {scale} recipe",
                                          **scratch_ceiling(ctx, SETTINGS[scale], labels)})
    else:
        sys.exit("usage: python experiments/segmentation_study.py readme RESULT_JSON | lookup OUT_JSON SIZE SPEC... "
                 "| ceiling SCALE LABELS OUT_DIR")

__all__ = ["CLAIM", "FIT_CLAIM", "SETTINGS", "SMOKE", "RATES", "STUDIES",
           "StudySettings", "ceiling_line", "estimate_seconds", "lookup_scores", "markdown_table", "run_study", "scratch_ceiling",
           "update_readme"]
