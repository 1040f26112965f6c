"""Semantic segmentation on an MAE encoder (IPOL sec. 6 "Pre-training", Fig. 12): the Segmenter model
(Strudel et al. 2021) with a linear or mask-transformer decoder, its fine-tuning loop and its metrics."""

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

__all__ = [
    "ConfusionMeter", "DECODERS", "EvalResult", "IGNORE_INDEX", "LinearDecoder", "LoadedSegmenter", "MaskTransformer",
    "SCRATCH", "SegmentConfig", "SegmentResult", "SegmentationScores", "Segmenter", "class_iou", "confusion_matrix",
    "evaluate_segmenter", "finetune", "load_segmenter", "mean_iou", "pixel_accuracy", "pixel_cross_entropy",
    "save_segmenter", "segmenter_from_checkpoint", "segmenter_from_mae", "segmenter_from_scratch",
]
