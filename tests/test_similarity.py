"""Cosine similarity search between encoder outputs (IPOL Fig. 11)."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from maelens.analysis.similarity import cosine_similarity, similar_images, top_k_similar
from maelens.errors import ConfigError, DataError
from maelens.models import create_model


def test_cosine_similarity_by_hand():
    sims = cosine_similarity(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [-2.0, 0.0], [0.0, 3.0]]))
    np.testing.assert_allclose(sims, [[1 / math.sqrt(2), -1.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(DataError, match="share F"):
        cosine_similarity(np.ones((1, 2)), np.ones((3, 4)))


def test_top_k_orders_and_excludes_the_query_itself():
    gallery = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.5]])
    res = top_k_similar(gallery[[0, 2]], gallery, k=2, exclude=[0, -1])
    np.testing.assert_array_equal(res.indices, [[1, 3], [2, 3]])
    assert res.scores[0, 0] == pytest.approx(1 / math.sqrt(1.01))
    assert res.scores[1, 0] == pytest.approx(1.0)
    frame = res.to_frame(["q0", "q2"], ids=["a", "b", "c", "d"], labels=[0, 1, 0, 1], mask_ratio=0.25)
    assert list(frame["id"]) == ["b", "d", "c", "d"] and list(frame["rank"]) == [1, 2, 1, 2]
    assert set(frame["mask_ratio"]) == {0.25}
    assert top_k_similar(gallery[:1], gallery, exclude=[0]).indices.shape == (1, 3)  # the default adapts
    with pytest.raises(ConfigError, match="top-k 10 exceeds the 3 gallery images"):  # a given value is refused
        top_k_similar(gallery[:1], gallery, k=10, exclude=[0])
    with pytest.raises(ConfigError):
        top_k_similar(gallery, gallery, k=0)


def test_similar_images_finds_a_duplicate():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    images = torch.randn(12, 3, 32, 32)
    images[7] = images[2]
    gallery = TensorDataset(images, torch.arange(12))
    res = similar_images(model, gallery, [2, images[5].clone()], top_k=3, mask_ratio=0.0, quiet=True)
    assert res.indices[0, 0] == 7 and res.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert 2 not in res.indices[0]
    assert res.indices[1, 0] == 5 and res.scores[1, 0] == pytest.approx(1.0, abs=1e-5)
    masked = similar_images(model, gallery, [0], top_k=4, mask_ratio=0.25, quiet=True)
    assert masked.indices.shape == (1, 4) and np.all(np.diff(masked.scores[0]) <= 0)
    with pytest.raises(DataError, match="outside the dataset"):
        similar_images(model, gallery, [12], quiet=True)
