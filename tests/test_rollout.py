"""Attention rollout (Abnar & Zuidema 2020) against products of hand-made matrices (issue 14)."""

import numpy as np
import pytest
import torch

from maelens.analysis.hooks import AttentionRecorder
from maelens.analysis.rollout import attention_rollout, discard_lowest, fuse_heads, rollout_maps
from maelens.errors import ConfigError
from maelens.models import create_model

A1 = np.array([[0.5, 0.25, 0.25],
               [0.0, 1.0, 0.0],
               [0.2, 0.2, 0.6]])
A2 = np.array([[1.0, 0.0, 0.0],
               [0.5, 0.5, 0.0],
               [0.0, 0.5, 0.5]])


def test_rollout_is_the_product_of_residual_mixed_layers():
    r = attention_rollout([torch.tensor(A1), torch.tensor(A2)]).numpy()
    # by hand: Ã = 0.5 I + 0.5 A (rows already sum to 1), R = Ã2 Ã1
    t1 = np.array([[0.75, 0.125, 0.125], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8]])
    t2 = np.array([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.0, 0.25, 0.75]])
    np.testing.assert_allclose(r, t2 @ t1, atol=1e-15)
    np.testing.assert_allclose(r[0], [0.75, 0.125, 0.125])
    np.testing.assert_allclose(r.sum(axis=1), 1.0)
    np.testing.assert_allclose(attention_rollout([torch.tensor(A1), torch.tensor(A2)], residual=False).numpy(), A2 @ A1)


def test_head_fusion_and_renormalisation():
    heads = torch.tensor(np.stack([A1, A2]))
    np.testing.assert_allclose(fuse_heads(heads, "mean").numpy(), (A1 + A2) / 2)
    fused_max = np.maximum(A1, A2)
    np.testing.assert_allclose(fuse_heads(heads, "max").numpy(), fused_max)
    np.testing.assert_allclose(fuse_heads(heads, "min").numpy(), np.minimum(A1, A2))
    # max-fused rows sum to more than 1: Ã = (0.5 I + 0.5 A) / row sums
    mixed = 0.5 * np.eye(3) + 0.5 * fused_max
    expected = mixed / mixed.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(attention_rollout([fuse_heads(heads, "max")]).numpy(), expected, atol=1e-15)
    with pytest.raises(ConfigError, match="head fusion"):
        fuse_heads(heads, "median")


def test_discard_ratio_by_map_and_by_row():
    a = torch.tensor([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.05, 0.9, 0.05]])
    # map: the 3 smallest of 9 entries except [0, 0] (0.1) -> the two 0.05 and one 0.2 (the first of the tie)
    kept = discard_lowest(a, 0.34, "map").numpy()
    assert kept[0, 0] == pytest.approx(0.1) and kept[2, 0] == 0 and kept[2, 2] == 0
    assert (kept == 0).sum() == 3
    # row: floor(0.4 * 3) = 1 smallest entry per row
    rows = discard_lowest(a, 0.4, "row").numpy()
    np.testing.assert_allclose(rows[0], [0.0, 0.6, 0.3])
    assert (rows == 0).sum(axis=1).tolist() == [1, 1, 1]
    np.testing.assert_allclose(discard_lowest(a, 0.0).numpy(), a.numpy())
    # the residual then renormalises the thinned rows
    r = attention_rollout([a.double()], discard_ratio=0.4, discard_scope="row").numpy()
    mixed = 0.5 * np.eye(3) + 0.5 * rows
    np.testing.assert_allclose(r, mixed / mixed.sum(axis=1, keepdims=True), atol=1e-7)
    with pytest.raises(ConfigError, match="discard ratio"):
        discard_lowest(a, 1.0)


def test_rollout_maps_of_a_model_match_the_recorded_attention():
    torch.manual_seed(0)
    model = create_model("tiny", decoder_depth=0).eval()
    imgs = torch.randn(2, 3, 32, 32)
    res = rollout_maps(model, imgs, head_fusion="mean")
    with AttentionRecorder(model, parts=("encoder",)) as rec:
        model.encode(imgs, 0.0)
    expected = None
    for probs in rec.maps["encoder"]:
        t = 0.5 * torch.eye(65, dtype=torch.float64) + 0.5 * probs.double().mean(dim=1)
        expected = t if expected is None else t @ expected
    np.testing.assert_allclose(res.rollout, expected.numpy(), atol=1e-6)
    assert res.cls_map(1).shape == (8, 8)
    np.testing.assert_allclose(res.patch_map(0, 9), res.rollout[0, 10, 1:].reshape(8, 8))
    assert rollout_maps(model, imgs, layers=1).rollout.shape == (2, 65, 65)
    with pytest.raises(ConfigError, match="rollout layers"):
        rollout_maps(model, imgs, layers=4)
    with pytest.raises(ConfigError, match="patch index"):
        res.patch_map(0, 64)
