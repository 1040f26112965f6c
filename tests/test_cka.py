"""CKA (issue 14): linear CKA (Kornblith et al. 2019), the streamed accumulator, the unbiased minibatch
estimator (Nguyen et al. 2021) and the dataset-level :func:`layer_cka`."""

import numpy as np
import pytest
import torch

from maelens.analysis.cka import (
    LinearCKAAccumulator,
    MinibatchCKAAccumulator,
    hsic1,
    layer_cka,
    linear_cka,
    minibatch_cka,
)
from maelens.errors import ConfigError, DataError
from maelens.models import create_model


def _random(n=200, p=12, seed=0):
    return np.random.default_rng(seed).normal(size=(n, p))


def _orthogonal(p, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(p, p)))
    return q


def test_cka_of_a_representation_with_itself_is_one():
    X = _random()
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X + 5.0, X) == pytest.approx(1.0, abs=1e-12)  # centring removes offsets


def test_hand_computed_value():
    # centred X = [-1, 1, 0, 0]ᵀ, Y = [-1, 0, 1, 0]ᵀ (one column each): CKA = (xᵀy)² / (xᵀx · yᵀy) = 1 / 4
    X = np.array([[0.0], [2.0], [1.0], [1.0]])
    Y = np.array([[0.0], [1.0], [2.0], [1.0]])
    assert linear_cka(X, Y) == pytest.approx(0.25, abs=1e-12)


def test_invariant_to_orthogonal_maps_and_isotropic_scaling_not_to_general_linear_maps():
    X = _random()
    Y = X[:, :6] @ _random(6, 8, seed=3) + 0.5 * _random(200, 8, seed=4)
    base = linear_cka(X, Y)
    assert 0.05 < base < 0.95
    assert linear_cka(X @ _orthogonal(12), Y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(X, 7.5 * Y @ _orthogonal(8, seed=2)) == pytest.approx(base, abs=1e-10)
    stretch = np.diag(np.geomspace(0.01, 100, 12))
    assert abs(linear_cka(X @ stretch @ _orthogonal(12), Y) - base) > 0.05


def test_streamed_equals_full_batch():
    rng = np.random.default_rng(5)
    layers = [rng.normal(size=(300, d)) * s + m for d, s, m in ((5, 1.0, 100.0), (7, 0.1, -3.0), (3, 10.0, 0.0))]
    layers[1][:, :3] += layers[0][:, :3]
    acc = LinearCKAAccumulator([5, 7, 3], names=["a", "b", "c"])
    for start, stop in ((0, 1), (1, 50), (50, 170), (170, 300)):
        acc.update([torch.from_numpy(x[start:stop]) for x in layers])
    streamed = acc.result()
    direct = np.array([[linear_cka(x, y) for y in layers] for x in layers])
    np.testing.assert_allclose(streamed, direct, atol=1e-6)
    np.testing.assert_allclose(np.diag(streamed), 1.0, atol=1e-12)
    # and the direct value from the Gram-matrix definition: HSIC = tr(KHLH)
    h = np.eye(300) - 1 / 300
    k, l_ = (h @ x @ x.T @ h for x in layers[:2])
    assert streamed[0, 1] == pytest.approx(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)), abs=1e-9)


def test_unbiased_hsic_matches_its_formula_and_a_loop():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(9, 4))
    K, L = x @ x.T, y @ y.T
    n = 9
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    expected = (np.trace(Kt @ Lt) + one @ Kt @ one * (one @ Lt @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ Kt @ Lt @ one) / (n * (n - 3))
    assert float(hsic1(torch.from_numpy(K), torch.from_numpy(L))) == pytest.approx(expected, rel=1e-12)
    acc = MinibatchCKAAccumulator([3, 4])
    acc.update([torch.from_numpy(x), torch.from_numpy(y)])
    assert acc.result()[0, 1] == pytest.approx(expected / np.sqrt(float(hsic1(torch.from_numpy(K), torch.from_numpy(K)))
                                                                  * float(hsic1(torch.from_numpy(L), torch.from_numpy(L)))))


def test_minibatch_hsic_is_unbiased_on_synthetic_data():
    # x ~ N(0, I_4), y = x A + noise: the population HSIC of linear kernels is ||Cov(x, y)||²_F = ||A||²_F
    rng = np.random.default_rng(7)
    A = rng.normal(size=(4, 3))
    n, batches = 6, 4000
    x = torch.from_numpy(rng.normal(size=(batches, n, 4)))
    y = x @ torch.from_numpy(A) + torch.from_numpy(rng.normal(size=(batches, n, 3)))
    unbiased = hsic1(x @ x.transpose(1, 2), y @ y.transpose(1, 2)).numpy()
    target = float(np.sum(A * A))
    se = unbiased.std(ddof=1) / np.sqrt(batches)
    assert abs(unbiased.mean() - target) < 4 * se
    # the plain (biased) estimator tr(KHLH)/(n-1)² misses the same target by far more than that error
    h = torch.eye(n, dtype=torch.float64) - 1 / n
    biased = ((h @ x @ x.transpose(1, 2) @ h) * (h @ y @ y.transpose(1, 2) @ h)).sum((1, 2)) / (n - 1) ** 2
    assert abs(biased.mean().item() - target) > 10 * se
    # and minibatch CKA approaches the population CKA ||A||² / (||I||_F ||AᵀA + I||_F)
    population = target / (2.0 * np.linalg.norm(A.T @ A + np.eye(3)))
    assert minibatch_cka(list(x[:2000]), list(y[:2000])) == pytest.approx(population, abs=0.03)


def test_degenerate_inputs_raise_clear_errors_not_nan():
    X = _random(20, 3)
    with pytest.raises(DataError, match="constant features"):
        linear_cka(np.ones((20, 3)), X)
    with pytest.raises(DataError, match=r"layer\(s\) Y have constant"):
        linear_cka(X, np.full((20, 2), 3.7))
    with pytest.raises(DataError, match="at least 2 samples"):
        linear_cka(X[:1], X[:1])
    with pytest.raises(DataError, match="at least 4 samples"):
        minibatch_cka([X[:3]], [X[:3]])
    with pytest.raises(DataError, match="not positive"):
        minibatch_cka([np.ones((8, 3))], [X[:8]])
    with pytest.raises(DataError, match="same samples"):
        linear_cka(X, X[:10])


class _Images(torch.utils.data.Dataset):
    def __init__(self, n, size=32, seed=0):
        self.x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 0


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny").eval()


def test_layer_cka_streams_the_same_as_one_batch(tiny):
    data = _Images(22)
    parts = ("encoder", "decoder")
    one = layer_cka(tiny, data, parts=parts, batch_size=64, quiet=True)
    streamed = layer_cka(tiny, data, parts=parts, batch_size=5, quiet=True)
    assert one.names_a == [f"encoder.{i}" for i in range(3)] + [f"decoder.{i}" for i in range(4)]
    np.testing.assert_allclose(streamed.matrix, one.matrix, atol=1e-6)
    np.testing.assert_allclose(np.diag(one.matrix), 1.0, atol=1e-9)
    np.testing.assert_allclose(one.matrix, one.matrix.T, atol=1e-12)
    frame = one.to_frame()
    assert list(frame.columns) == ["layer_a", "layer_b", "cka"] and len(frame) == 49


def test_layer_cka_between_two_models(tiny):
    torch.manual_seed(1)
    other = create_model("tiny", decoder_depth=0, img_size=64, patch_size=8).eval()
    data = _Images(12)
    res = layer_cka(tiny, data, model_b=tiny, quiet=True, estimator="minibatch", batch_size=6)
    np.testing.assert_allclose(np.diag(res.matrix), 1.0, atol=1e-9)
    cross = layer_cka(tiny, data, model_b=other, pool="tokens", quiet=True)
    assert cross.matrix.shape == (3, 3) and cross.names_b == ["encoder.0", "encoder.1", "encoder.2"]
    assert np.all((cross.matrix >= 0) & (cross.matrix <= 1)) and cross.matrix.max() < 0.999


def test_layer_cka_refusals(tiny):
    data = _Images(9)
    with pytest.raises(ConfigError, match="minibatch estimator"):
        layer_cka(tiny, data, pool="flatten", quiet=True)
    with pytest.raises(ConfigError, match="at least 4 images"):
        layer_cka(tiny, data, estimator="minibatch", batch_size=3, quiet=True)
    res = layer_cka(tiny, data, estimator="minibatch", pool="flatten", batch_size=4, quiet=True)
    assert res.settings["dropped_images"] == 1 and res.settings["num_images"] == 8
    with pytest.raises(DataError, match="no minibatch"):
        layer_cka(tiny, _Images(3), estimator="minibatch", batch_size=4, quiet=True)


def test_masked_cka_of_a_model_with_itself_sees_the_same_masks(tiny):
    data = _Images(8)
    for masking in ("random", "grid"):
        res = layer_cka(tiny, data, model_b=tiny, mask_ratio=0.75, masking=masking, pool="tokens", batch_size=4,
                        quiet=True)
        np.testing.assert_allclose(np.diag(res.matrix), 1.0, atol=1e-9)
