"""Linear probe (MAE: BatchNorm without affine + linear) and attentive probe (CAE cross-attention)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from maelens.analysis.probes import AttentiveProbe, LinearProbe
from maelens.errors import ConfigError, DataError


def separable(n=200, dim=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim)) * 3
    return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y, centres


def marked_tokens(n=240, k=8, dim=16, seed=0):
    """Class signal in one token at a random position (flagged in channel 0), plus a distractor
    token carrying a random class's pattern: the class is in *which* token, not in the mean."""
    X, y, centres = separable(n, dim, seed=seed)
    rng = np.random.default_rng(seed + 1)
    tokens = rng.normal(size=(n, k, dim)).astype(np.float32)
    pos = rng.integers(0, k, n)
    rows = np.arange(n)
    tokens[rows, pos] += centres[y] / 2
    tokens[rows, pos, 0] += 6.0
    tokens[rows, (pos + 1) % k] += centres[rng.integers(0, 3, n)] / 2
    return tokens, y


def test_linear_probe_learns_separable_problem():
    X, y, _ = separable()
    probe = LinearProbe(epochs=30, batch_size=64, lr=1e-2, random_state=0).fit(X[:150], y[:150])
    assert probe.loss_curve_[-1] < probe.loss_curve_[0]
    assert probe.score(X[150:], y[150:]) >= 0.95
    proba = probe.predict_proba(X[150:])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert not probe.module_.norm.affine  # MAE's BatchNorm without affine parameters
    again = LinearProbe(epochs=30, batch_size=64, lr=1e-2, random_state=0).fit(X[:150], y[:150])
    np.testing.assert_array_equal(probe.logits(X), again.logits(X))


def test_attentive_probe_finds_the_informative_token():
    tokens, y = marked_tokens()
    probe = AttentiveProbe(num_heads=4, epochs=40, batch_size=64, lr=1e-2, random_state=0)
    probe.fit(tokens[:160], y[:160])
    assert probe.loss_curve_[-1] < probe.loss_curve_[0]
    assert probe.score(tokens[160:], y[160:]) >= 0.9
    # the mean of the tokens dilutes the signal with the distractor (CAE's argument for attentive probing)
    mean_probe = LinearProbe(epochs=40, batch_size=64, lr=1e-2, random_state=0).fit(tokens[:160].mean(1), y[:160])
    assert mean_probe.score(tokens[160:].mean(1), y[160:]) < 0.8
    attn = probe.attention_weights(tokens[:4])
    assert attn.shape == (4, 4, 8)
    np.testing.assert_allclose(attn.sum(-1), 1.0, rtol=1e-5)


def test_probe_input_checks_and_sklearn_manners():
    X, y, _ = separable(n=60)
    with pytest.raises(DataError, match="patch tokens"):
        AttentiveProbe().fit(X, y)
    with pytest.raises(DataError, match=r"\(N, F\)"):
        LinearProbe().fit(X.reshape(60, 4, 4), y)
    with pytest.raises(DataError, match="1 class"):
        LinearProbe(epochs=1).fit(X, np.zeros(60))
    with pytest.raises(ConfigError, match="not divisible"):
        AttentiveProbe(num_heads=3, epochs=1).fit(X.reshape(60, 4, 4), y)
    with pytest.raises(ConfigError, match="optimizer"):
        LinearProbe(optimizer="lars", epochs=1).fit(X, y)
    pipe = make_pipeline(StandardScaler(), LinearProbe(epochs=5, optimizer="sgd", lr=0.1, random_state=0))
    assert pipe.fit(X, np.array(["a", "b", "c"])[y]).predict(X[:3]).dtype.kind == "U"
    assert clone(AttentiveProbe(num_heads=2)).get_params()["num_heads"] == 2
    with pytest.raises(DataError, match="expecting 16 features"):
        pipe[-1].predict(X[:, :5])
