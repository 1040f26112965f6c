"""Semantic segmentation on an MAE encoder (IPOL sec. 6 "Pre-training", Fig. 12): the Segmenter model
(Strudel et al. 2021) with a linear or mask-transformer decoder, its fine-tuning (a task of the one run loop)
and its metrics. Names load their module on first use (:mod:`maelens._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .config import SCRATCH, SegmentConfig
    from .decoders import DECODERS, LinearDecoder, MaskTransformer
    from .evaluation import EvalResult, evaluate_segmenter, pixel_cross_entropy
    from .loop import SegmentResult, finetune
    from .metrics import (
        IGNORE_INDEX,
        ConfusionMeter,
        SegmentationScores,
        class_iou,
        confusion_matrix,
        mean_iou,
        pixel_accuracy,
    )
    from .model import Segmenter, segmenter_from_checkpoint, segmenter_from_mae, segmenter_from_scratch
    from .store import LoadedSegmenter, load_segmenter, save_segmenter

_WHERE = {
    "SCRATCH": "config", "SegmentConfig": "config", "DECODERS": "decoders", "LinearDecoder": "decoders",
    "MaskTransformer": "decoders", "EvalResult": "evaluation", "evaluate_segmenter": "evaluation",
    "pixel_cross_entropy": "evaluation", "SegmentResult": "loop", "finetune": "loop", "IGNORE_INDEX": "metrics",
    "ConfusionMeter": "metrics", "SegmentationScores": "metrics", "class_iou": "metrics",
    "confusion_matrix": "metrics", "mean_iou": "metrics", "pixel_accuracy": "metrics", "Segmenter": "model",
    "segmenter_from_checkpoint": "model", "segmenter_from_mae": "model", "segmenter_from_scratch": "model",
    "LoadedSegmenter": "store", "load_segmenter": "store", "save_segmenter": "store",
}
__getattr__ = lazy_names(__name__, _WHERE)
__all__ = [
    "ConfusionMeter", "DECODERS", "EvalResult", "IGNORE_INDEX", "LinearDecoder", "LoadedSegmenter", "MaskTransformer",
    "SCRATCH", "SegmentConfig", "SegmentResult", "SegmentationScores", "Segmenter", "class_iou", "confusion_matrix",
    "evaluate_segmenter", "finetune", "load_segmenter", "mean_iou", "pixel_accuracy", "pixel_cross_entropy",
    "save_segmenter", "segmenter_from_checkpoint", "segmenter_from_mae", "segmenter_from_scratch",
]
