"""Segmentation metrics against a confusion matrix worked out by hand and against scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, jaccard_score

from maelens.errors import ConfigError
from maelens.segmentation.metrics import (
    IGNORE_INDEX,
    ConfusionMeter,
    class_iou,
    confusion_matrix,
    mean_iou,
    pixel_accuracy,
    scores,
)


def test_hand_computed_confusion_matrix_and_scores():
    # 3 classes, 8 pixels of which one is ignored; class 2 is neither predicted nor true anywhere.
    target = torch.tensor([[0, 0, 0, 1], [1, 1, IGNORE_INDEX, 0]])
    pred = torch.tensor([[0, 0, 1, 1], [1, 0, 2, 0]])
    c = confusion_matrix(pred, target, 3)
    # rows = truth, columns = prediction: truth 0 -> predicted 0,0,1,0; truth 1 -> 1,1,0
    assert c.tolist() == [[3, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert pixel_accuracy(c) == pytest.approx(5 / 7)
    # IoU_0 = 3 / (4 + 4 - 3) = 3/5, IoU_1 = 2 / (3 + 3 - 2) = 1/2, class 2 undefined and skipped
    iou = class_iou(c)
    assert iou[0] == pytest.approx(3 / 5) and iou[1] == pytest.approx(1 / 2) and np.isnan(iou[2])
    assert mean_iou(c) == pytest.approx((3 / 5 + 1 / 2) / 2)


def test_a_class_only_predicted_counts_with_iou_zero():
    target = torch.tensor([0, 0, 1, 1])
    pred = torch.tensor([0, 2, 1, 1])
    iou = class_iou(confusion_matrix(pred, target, 3))
    assert iou.tolist() == pytest.approx([1 / 2, 1.0, 0.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    k = 6
    target = rng.integers(0, k - 1, size=(4, 9, 7))  # class k-1 never true...
    pred = rng.integers(0, k - 2, size=(4, 9, 7))   # ...nor predicted: skipped
    target[rng.random(target.shape) < 0.1] = IGNORE_INDEX
    meter = ConfusionMeter(k)
    for t, p in zip(target, pred):  # accumulated image by image
        meter.update(torch.from_numpy(p[None]), torch.from_numpy(t[None]))
    s = meter.scores()
    keep = target != IGNORE_INDEX
    present = sorted(set(target[keep]) | set(pred[keep]))
    expected = jaccard_score(target[keep], pred[keep], labels=present, average=None)
    assert s.iou[present] == pytest.approx(expected)
    assert np.isnan(s.iou[k - 1])
    assert s.miou == pytest.approx(jaccard_score(target[keep], pred[keep], labels=present, average="macro"))
    assert s.pixel_accuracy == pytest.approx(accuracy_score(target[keep], pred[keep]))
    assert s.pixels == keep.sum()


def test_meter_takes_logits_and_refuses_bad_labels():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 1.0  # argmax = class 2 everywhere
    meter = ConfusionMeter(3)
    meter.update(logits, torch.tensor([[[2, 2], [0, IGNORE_INDEX]]]))
    assert meter.matrix.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 2]]
    assert scores(meter.matrix).pixel_accuracy == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="labels"):
        meter.update(logits, torch.full((1, 2, 2), 3))
