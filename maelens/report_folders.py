"""Any maelens output folder as a section of a :class:`~maelens.report.Report` (``maelens report``): training
and segmentation runs (their loss and learning-rate curves), and the folders of ``attention-stats``,
``distfit``, ``evaluate``, ``cka``, ``rollout``, ``probe-layers``, ``token-stats``, ``segment`` and ``compare``.

A folder's kind comes from its ``.maelens-output`` marker (``written by maelens COMMAND``) or, for a run
folder, from its files (``log.jsonl`` with ``checkpoint.pt`` or ``summary.json``; ``metrics.json`` marks a
segmentation run). Each section holds the folder's settings (the scalar entries of its JSON document), its
CSV tables (long ones named, not shown), and its figures, each with its own caption saying what it draws;
a training run whose ``loss.png`` is missing (a run older than that figure) gets its curves drawn from
``log.jsonl``. Of the per-epoch reconstructions only the first and the last are shown.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import OUTPUT_MARKER
from .report import Report
from .run_files import CHECKPOINT, LOG_JSONL, SUMMARY

#: CSV tables longer than this are named with their row count instead of shown.
MAX_TABLE_ROWS = 30
#: Settings shown per folder (scalar entries of its JSON document).
MAX_SETTINGS = 16

#: What each figure draws, by file-name pattern (the first match wins); ``{n}`` is the number in the name.
CAPTIONS: tuple[tuple[str, str], ...] = (
    (r"loss\.png", "Training loss of every optimizer step (faint) and each epoch's mean, and the learning rate, "
                   "against the step; epochs counted from 0 as in log.csv."),
    (r"recon_epoch_(\d+)\.png", "Reconstructions after epoch {n} (counted from 0): original, masked input "
                                "(removed patches grey), the decoder's output (its visible patches carry no loss, "
                                "hence their odd colours), and the output with the visible patches pasted back; "
                                "rows are labelled with their RGB MSE on the removed patches (figures of older "
                                "runs: their training loss)."),
    (r"layer_curves\.png", "Consistency, locality and black-patch proportion per decoder layer, with 95% "
                           "intervals (IPOL sec. 5, Fig. 10)."),
    (r"positional_bias\.png", "Where the influencers lie: each importance rank's share of positions, against "
                              "a uniform spread (positional-bias tests, IPOL sec. 5)."),
    (r"head_metrics\.png", "Mean attention distance and entropy of every head, layer by layer."),
    (r"influence_map_(\d+)\.png", "Influence field of image {n} (IPOL Fig. 9): each masked patch is joined to "
                                  "the visible patch that influences it most; the colour is that influencer's "
                                  "importance rank (key beside the map)."),
    (r"pvalues_ecdf\.png", "Empirical distribution of the KS p-values of the Gaussian and Student-t fits; the "
                           "dashed line is the test level (IPOL sec. 5, Fig. 7)."),
    (r"df_hist\.png", "Fitted Student-t degrees of freedom over the samples: low values mean heavy tails."),
    (r"ranking\.png", "Candidate laws ranked by the sum of squared errors of their fitted densities."),
    (r"map_(.+)\.png", "2-D map of the features by {n}, coloured by class (IPOL Figs. 13-14)."),
    (r"cka\.png", "Linear CKA between every pair of layers (1: the same representation up to rotation and "
                  "scale); the colour scale spans the values measured."),
    (r"rollout_(\d+)\.png", "Attention rollout of image {n} (Abnar & Zuidema 2020) over the image; the colour "
                            "bar gives the share of attention; a patch is named (row, column) from the top left."),
    (r"layer_probes\.png", "kNN and linear-probe accuracy of every encoder block, with 95% intervals."),
    (r"token_stats\.png", "Patch-token norm distribution per layer, the share of high-norm outliers by layer and "
                          "by position."),
    (r"reconstruction_(.+)\.png", "Reconstructions under {n} masking: original, masked input (removed patches "
                                   "grey), the decoder's output, and the output with the visible patches pasted "
                                   "back; each row's masked MSE is in RGB, the units of the masked_mse table."),
    (r"positional_bias_layer(\d+)\.png", "Decoder layer {n}: where the patch of each importance rank sits, "
                                          "with each rank's chi-square test of a uniform spread."),
    (r"fig5_uniform_input_histogram\.png", "Values of the synthetic attention layer's output for uniform "
                                           "inputs (IPOL Fig. 5)."),
    (r"fig[67]_pvalue_ecdf\.png", "Empirical distribution of the KS p-values of the Gaussian and Student-t fits; "
                                   "the dashed line is the test level (IPOL Figs. 6-7)."),
    (r"fig8_densities\.png", "Fitted densities of the candidate laws over one sample's histogram (IPOL Fig. 8)."),
    (r"fitted_df\.png", "Fitted Student-t degrees of freedom over the samples: low values mean heavy tails."),
    (r"fig11_similarity\.png", "Similarity search (IPOL Fig. 11): each query (red frame) and its most similar "
                                "images with their cosine similarity."),
    (r"fig1([34])_tsne\.png", "PCA + t-SNE map of the labelled images' features, coloured by class (IPOL "
                               "Fig. 1{n})."),
    (r"eval_loss_curves\.png", "Segmenter cross-entropy on the evaluation images per epoch, one line per "
                                "initialisation (IPOL Fig. 12)."),
    (r"loss_curves\.png", "Training loss relative to its first epoch, pixel MSE against the YCbCr-weighted MSE."),
    (r"curves\.png", "Segmentation fine-tuning: training and evaluation loss, pixel accuracy and mIoU per "
                     "epoch (counted from 0, as log.csv)."),
    (r"predictions\.png", "Images, ground truth and predicted segmentation after the last epoch."),
)
#: Caption of a ``compare`` metric figure.
COMPARE_CAPTION = "{metric} of every compared model with its 95% interval (comparison.json says how each is computed)."


@dataclass
class Folder:
    """An output folder and its ``kind``: a command name (``attention-stats``, ``compare``, ...), ``train`` or
    ``segment``."""

    path: Path
    kind: str


def folder_kind(path: str | Path) -> Folder:
    """The kind of a maelens output folder.

    Raises:
        ConfigError: ``path`` is not a folder, or nothing in it says a maelens command wrote it.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"folder={path}: not a folder (give the --out folder of a maelens command or run)")
    marker = path / OUTPUT_MARKER
    if marker.is_file():
        match = re.search(r"maelens\s+([\w-]+)", marker.read_text(encoding="utf-8", errors="replace"))
        return Folder(path, match.group(1) if match else "output")
    if (path / LOG_JSONL).is_file() and ((path / CHECKPOINT).is_file() or (path / SUMMARY).is_file()):
        return Folder(path, "segment" if (path / "metrics.json").is_file() else "train")
    raise ConfigError(f"folder={path}: not a maelens output folder (no {OUTPUT_MARKER}, and no {LOG_JSONL} "
                      f"with {CHECKPOINT} or {SUMMARY})")


def caption_for(name: str, kind: str) -> str:
    """The caption of figure ``name`` in a folder of ``kind``."""
    if kind == "compare":
        return COMPARE_CAPTION.format(metric=Path(name).stem.replace("_", " "))
    for pattern, caption in CAPTIONS:
        match = re.fullmatch(pattern, name)
        if match:
            n = match.group(1) if match.groups() else ""
            return caption.format(n=int(n) if n.isdigit() else n.replace("_", " "))
    return Path(name).stem.replace("_", " ")


def _settings(folder: Path) -> dict[str, Any]:
    """Scalar entries of the folder's JSON document(s), settings first: what was run, on what."""
    found: dict[str, Any] = {}
    for doc_path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(doc, dict):
            continue
        for source in (doc.get("settings"), doc.get("config"), doc):
            if isinstance(source, dict):
                for key, value in source.items():
                    if isinstance(value, (str, int, float, bool)) and key not in found:
                        found[key] = value
    return dict(list(found.items())[:MAX_SETTINGS])


def _figures(folder: Path) -> list[Path]:
    """The folder's PNGs in name order; of ``recon_epoch_NNN.png`` only the first and the last."""
    pngs = sorted(folder.glob("*.png"))
    recon = [p for p in pngs if p.name.startswith("recon_epoch_")]
    keep = set(recon[:1] + recon[-1:])
    return [p for p in pngs if not p.name.startswith("recon_epoch_") or p in keep]


def add_folder(report: Report, folder: Folder, level: int = 2) -> None:
    """Append ``folder``'s section to ``report``: heading, settings, tables, figures (see the module)."""
    import pandas as pd

    from .io import close_if_pyplot
    from .plots.training import LOSS_FIGURE, plot_training_curves, read_records

    path = folder.path
    report.heading(f"{path.name} ({folder.kind})", level)
    report.text(f"Folder `{path}`.")
    settings = _settings(path)
    if settings:
        report.table(pd.DataFrame({"setting": list(settings), "value": [str(v) for v in settings.values()]}),
                     caption="What was run, as recorded in the folder's JSON document.")
    for csv in sorted(path.glob("*.csv")):
        if csv.name == "log.csv" and folder.kind in ("train", "segment"):
            continue  # drawn as curves
        try:
            frame = pd.read_csv(csv)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            report.text(f"`{csv.name}` could not be read ({err.__class__.__name__}).")
            continue
        if len(frame) <= MAX_TABLE_ROWS:
            report.table(frame, caption=f"`{csv.name}`")
        else:
            report.text(f"`{csv.name}`: {len(frame)} rows (not shown).")
    if folder.kind == "train" and not (path / LOSS_FIGURE).is_file():
        fig = plot_training_curves(read_records(path / LOG_JSONL))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        close_if_pyplot(fig)
        report.image(buffer.getvalue(), f"{path.name}/{LOSS_FIGURE}", caption_for(LOSS_FIGURE, "train"))
    for png in _figures(path):
        report.figure(png, caption_for(png.name, folder.kind))


def folders_report(paths: list[str | Path], title: str = "maelens results") -> Report:
    """One :class:`Report` with a section per folder of ``paths`` (each checked by :func:`folder_kind`
    before anything is read, so a wrong path fails at once)."""
    folders = [folder_kind(p) for p in paths]
    if not folders:
        raise ConfigError("folders: give at least one maelens output folder")
    report = Report(title, root=Path.cwd())
    report.text("Sections: " + ", ".join(f"`{f.path.name}` ({f.kind})" for f in folders) + ".")
    for folder in folders:
        add_folder(report, folder)
    return report


__all__ = ["CAPTIONS", "Folder", "MAX_TABLE_ROWS", "add_folder", "caption_for", "folder_kind", "folders_report"]
