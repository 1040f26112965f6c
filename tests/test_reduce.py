"""2-D maps: PCA + t-SNE (openTSNE), Gaussian and Student-t VAEs, parametric t-SNE (IPOL Tables 3-4)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from maelens.analysis.reduce import (
    MIN_DF,
    MIN_SCALE,
    PCATSNE,
    GaussianVAE,
    ParametricTSNE,
    StudentTVAE,
    conditional_affinities,
    perplexity_affinities,
    tsne_kl,
)
from maelens.errors import DataError


def two_clusters(n=120, dim=12, gap=4.0, seed=0):
    """Two unit Gaussians whose means differ by ``gap`` in every coordinate."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, dim)) + gap * y[:, None]
    return X.astype(np.float32), y


def well_apart(Z, y):
    """The two clusters' centroids are further apart than four times their mean spread."""
    c0, c1 = Z[y == 0].mean(0), Z[y == 1].mean(0)
    spread = np.mean([np.linalg.norm(Z[y == c] - Z[y == c].mean(0), axis=1).mean() for c in (0, 1)])
    return np.linalg.norm(c0 - c1) > 4 * spread


def inverse_softplus(v):
    return math.log(math.expm1(v))


def test_pca_tsne_shape_and_seeded_determinism():
    X, y = two_clusters(n=90)
    a = PCATSNE(perplexity=10, random_state=3).fit_transform(X)
    b = PCATSNE(perplexity=10, random_state=3).fit_transform(X)
    assert a.shape == (90, 2)
    np.testing.assert_array_equal(a, b)
    tsne = PCATSNE(n_pca=5, perplexity=10, random_state=0).fit(X[:60])
    assert tsne.pca_.n_components_ == 5
    placed = tsne.transform(X[60:])
    assert placed.shape == (30, 2) and np.isfinite(placed).all()
    assert well_apart(np.asarray(tsne.embedding_), y[:60])


def test_conditional_affinities_match_perplexity():
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(0))
    p = conditional_affinities(x, perplexity=8.0)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(1)
    np.testing.assert_allclose(torch.exp(entropy).numpy(), 8.0, rtol=1e-6)
    assert torch.all(p.diagonal() == 0)
    np.testing.assert_allclose(p.sum(1).numpy(), 1.0)


def test_affinities_and_kl_by_hand():
    # corners of a square, perplexity capped at 1 for 4 points: each corner's two adjacent corners
    # tie, so p(j|i) = 1/2 for them and 0 for the opposite one; P = adjacency / 8
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    adjacency = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.float32)
    torch.testing.assert_close(perplexity_affinities(square, 30.0), adjacency / 8)
    # uniform P over 3 points; any equilateral embedding gives Q = P, hence KL = 0
    tri = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    assert float(tsne_kl((1 - torch.eye(3)) / 6, 3.0 * tri)) == pytest.approx(0.0, abs=1e-6)
    # two points: Q is 1/2 off the diagonal whatever the distance; P = [[0, .9], [.1, 0]] -> KL by hand
    P2 = torch.tensor([[0.0, 0.9], [0.1, 0.0]])
    kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert float(tsne_kl(P2, torch.tensor([[0.0], [4.0]]))) == pytest.approx(kl, rel=1e-5)


def test_likelihoods_match_scipy():
    x = torch.tensor([[-2.0, 0.3, 5.0]])
    loc, scale, df = torch.tensor([0.5, 0.0, 1.0]), torch.tensor([1.5, 0.2, 3.0]), torch.tensor([0.7, 4.0, 30.0])
    raw_scale = torch.tensor([inverse_softplus(s - MIN_SCALE) for s in scale.tolist()])
    raw_df = torch.tensor([inverse_softplus(d - MIN_DF) for d in df.tolist()])
    student = StudentTVAE().log_likelihood(x, torch.cat([loc, raw_scale, raw_df])[None])
    gauss = GaussianVAE().log_likelihood(x, torch.cat([loc, raw_scale])[None])
    np.testing.assert_allclose(student[0].numpy(), stats.t.logpdf(x[0].numpy(), df, loc, scale), rtol=1e-5)
    np.testing.assert_allclose(gauss[0].numpy(), stats.norm.logpdf(x[0].numpy(), loc, scale), rtol=1e-5)


@pytest.mark.parametrize("cls", [GaussianVAE, StudentTVAE])
def test_vaes_reduce_loss_and_separate_clusters(cls):
    X, y = two_clusters()
    vae = cls(hidden=(32,), epochs=25, batch_size=40, lr=3e-3, random_state=0).fit(X)
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    Z = vae.transform(X)
    assert Z.shape == (120, 2) and well_apart(Z, y)
    assert np.isfinite(vae.score(X))
    again = cls(hidden=(32,), epochs=25, batch_size=40, lr=3e-3, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(Z, again)


def test_parametric_tsne_reduces_loss_separates_and_maps_new_points():
    X, y = two_clusters(n=160)
    ptsne = ParametricTSNE(perplexity=10, hidden=(32,), epochs=20, batch_size=80, lr=3e-3, random_state=0)
    ptsne.fit(X[:120])
    assert ptsne.loss_curve_[-1] < ptsne.loss_curve_[0]
    assert well_apart(ptsne.transform(X[:120]), y[:120])
    assert well_apart(ptsne.transform(X[120:]), y[120:])  # fit on A, applied to B
    assert ptsne.score(X[120:]) <= 0
    with pytest.raises(DataError, match="expecting 12 features"):
        ptsne.transform(X[:, :5])


def test_scikit_learn_manners():
    X, _ = two_clusters(n=40)
    pipe = make_pipeline(StandardScaler(), GaussianVAE(hidden=(8,), epochs=2, random_state=0))
    assert pipe.fit_transform(X).shape == (40, 2)
    est = clone(ParametricTSNE(perplexity=5, epochs=3))
    assert est.get_params()["perplexity"] == 5 and not hasattr(est, "network_")
    assert PCATSNE(n_jobs=2).set_params(perplexity=12).perplexity == 12
