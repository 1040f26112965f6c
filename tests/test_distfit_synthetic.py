"""The synthetic self-attention experiment (maelens.analysis.synthetic, IPOL Figs. 5-6)."""

import numpy as np
import pytest

from maelens.analysis import synthetic
from maelens.analysis.distfit import fit_samples
from maelens.errors import ConfigError


def test_one_token_attends_to_itself():
    # With a single token the softmax is 1: the output is x Wv, whatever Wq and Wk are.
    x = np.array([[[1.0, 2.0, -1.0]]])
    rng = np.random.default_rng(0)
    out = synthetic.self_attention(x, rng, head_dim=2, init="normal")
    rng = np.random.default_rng(0)
    rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    wv = rng.normal(0.0, 1.0 / np.sqrt(3), (3, 2))
    np.testing.assert_allclose(out, x @ wv)


def test_softmax_by_hand():
    np.testing.assert_allclose(synthetic.softmax(np.array([0.0, np.log(3.0)])), [0.25, 0.75])
    np.testing.assert_allclose(synthetic.softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])


@pytest.mark.parametrize("scale", ["tokens", "dim"])
def test_blockwise_weights_give_the_dense_formula(monkeypatch, scale):
    monkeypatch.setattr(synthetic, "_BLOCK_VALUES", 7 * 3)  # 3 columns per block for dim 7
    drawn = []
    original = synthetic.draw_weights

    def record(*args):
        block = original(*args)
        drawn.append(block)
        return block

    monkeypatch.setattr(synthetic, "draw_weights", record)
    x = np.random.default_rng(1).random((2, 5, 7))
    out = synthetic.self_attention(x, np.random.default_rng(2), head_dim=8, init="xavier", scale=scale)
    assert len(drawn) == 9  # blocks of 3, 3, 2 columns for each of q, k, v
    wq, wk, wv = (np.concatenate(drawn[i::3], axis=1) for i in range(3))
    logits = x @ wq @ (x @ wk).transpose(0, 2, 1) / np.sqrt(5 if scale == "tokens" else 8)
    expected = synthetic.softmax(logits) @ (x @ wv)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_samples_shape_seed_and_input_laws():
    a = synthetic.synthetic_attention_samples(samples=5, tokens=3, dim=10, head_dim=6, seed=3)
    b = synthetic.synthetic_attention_samples(samples=5, tokens=3, dim=10, head_dim=6, seed=3)
    assert a.shape == (5, 18)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    assert (synthetic.draw_inputs(rng, "chi2", (1000,), 2.0) > 0).all()
    assert abs(synthetic.draw_inputs(rng, "chi2", (20000,), 3.0).mean() - 3.0) < 0.1
    u = synthetic.draw_inputs(rng, "uniform", (1000,))
    assert u.min() >= 0 and u.max() < 1
    w = synthetic.draw_weights(rng, "uniform", 16, 4, 4)
    assert np.abs(w).max() <= 0.25  # U(-1/sqrt(16), 1/sqrt(16))


def test_attention_outputs_look_gaussian():
    # Fig. 6 set-up, smaller: i.i.d. chi-square inputs give near-Gaussian outputs.
    x = synthetic.synthetic_attention_samples(samples=100, tokens=4, dim=160, input="chi2", init="xavier",
                                              scale="dim", seed=0)
    result = fit_samples(x)
    assert (~result.rejected("norm")).mean() >= 0.9


def test_bad_options():
    with pytest.raises(ConfigError, match="input law"):
        synthetic.synthetic_attention_samples(samples=2, dim=4, input="cauchy")
    with pytest.raises(ConfigError, match="initialisation"):
        synthetic.synthetic_attention_samples(samples=2, dim=4, init="orthogonal")
    with pytest.raises(ConfigError, match="scale"):
        synthetic.synthetic_attention_samples(samples=2, dim=4, scale="heads")
    with pytest.raises(ConfigError, match="tokens must be >= 1"):
        synthetic.synthetic_attention_samples(tokens=0)
    with pytest.raises(ConfigError, match="df > 0"):
        synthetic.synthetic_attention_samples(samples=2, dim=4, input_df=0.0)
