"""Per-sample fits, KS decisions, bootstrap p-values, law ranking and sample extraction
(maelens.analysis.distfit), on laws whose answer is known."""

import json
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import TensorDataset

from maelens.analysis import distfit
from maelens.analysis.features import FeatureSet
from maelens.errors import ConfigError, DataError
from maelens.io import to_json
from maelens.models import create_model


def test_wilson_interval_by_hand():
    # 5/10, z = 1.96: centre (0.5 + z^2/20) / (1 + z^2/10) = 0.5,
    # half-width z / (1 + z^2/10) * sqrt(0.025 + z^2/400) = 0.26341.
    np.testing.assert_allclose(distfit.wilson_interval(5, 10), (0.23659, 0.76341), atol=1e-5)
    # 0/10: lower bound 0, upper z^2/n / (1 + z^2/n) = 0.38415 / 1.38415 = 0.27753.
    np.testing.assert_allclose(distfit.wilson_interval(0, 10), (0.0, 0.27753), atol=1e-5)


def test_normal_fit_is_the_mle():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    loc, scale, loglik = distfit.fit_norm(x)
    # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    np.testing.assert_allclose([loc[0], scale[0] ** 2], [3.0, 3.5])
    np.testing.assert_allclose(loglik, stats.norm.logpdf(x[0], 3.0, np.sqrt(3.5)).sum())


def test_gaussian_samples_are_not_rejected_by_the_gaussian_test():
    x = np.random.default_rng(0).normal(2.0, 3.0, (200, 300))
    result = distfit.fit_samples(x)
    # Fitted parameters make the exact-KS p-values conservative: at most about alpha rejected.
    assert result.rejected("norm").mean() <= 0.05
    assert result.rejected("t").mean() <= 0.05


def test_t3_samples_are_rejected_by_the_gaussian_test_only():
    x = np.random.default_rng(1).standard_t(3, (60, 1000)) * 0.5 + 1.0
    result = distfit.fit_samples(x)
    assert result.rejected("norm").mean() >= 0.9
    assert result.rejected("t").mean() <= 0.1
    summary = result.summary()
    assert summary["laws"]["t"]["fraction_not_rejected"] >= 0.9
    assert 2.0 < summary["laws"]["t"]["df"]["median"] < 4.5


def test_agrees_with_scipy_fit_and_kstest():
    rng = np.random.default_rng(2)
    n, m = 200, 300
    df = rng.choice([2.0, 4.0, 8.0, 30.0, np.inf], n)
    x = np.where(np.isinf(df)[:, None], rng.standard_normal((n, m)),
                 rng.standard_t(np.where(np.isinf(df), 5.0, df)[:, None], (n, m)))
    x = x * rng.uniform(0.5, 2.0, (n, 1)) + rng.uniform(-1.0, 1.0, (n, 1))
    result = distfit.fit_samples(x)
    t = result.fits["t"]
    ref_p = {"norm": np.empty(n), "t": np.empty(n)}
    ref_loglik = np.empty(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, row in enumerate(x):
            ref_p["norm"][i] = stats.kstest(row, "norm", args=stats.norm.fit(row)).pvalue
            params = stats.t.fit(row)
            ref_p["t"][i] = stats.kstest(row, "t", args=params).pvalue
            ref_loglik[i] = stats.t.logpdf(row, *params).sum()
            if i < 20:  # KS statistic and p-value of our own fitted law, straight from scipy
                own = stats.kstest(row, "t", args=(t.params["df"][i], t.params["loc"][i], t.params["scale"][i]))
                assert abs(own.statistic - t.stat[i]) < 1e-12 and abs(own.pvalue - t.pvalue[i]) < 2e-6
    np.testing.assert_allclose(result.fits["norm"].pvalue, ref_p["norm"], atol=2e-6)
    for law in ("norm", "t"):
        same = (result.fits[law].pvalue < 0.05) == (ref_p[law] < 0.05)
        assert same.mean() >= 0.99
    # Any disagreement on the t decision comes from scipy's Nelder-Mead stopping short.
    differ = (t.pvalue < 0.05) != (ref_p["t"] < 0.05)
    assert (t.loglik[differ] > ref_loglik[differ]).all()


def test_parametric_bootstrap_pvalues_are_roughly_uniform_under_h0():
    x = np.random.default_rng(3).normal(0.0, 1.0, (120, 100))
    boot = distfit.fit_samples(x, pvalues="parametric-bootstrap", n_bootstrap=60, seed=1)
    p = boot.fits["norm"].pvalue
    assert boot.pvalue_method == "parametric-bootstrap" and boot.n_bootstrap == 60
    assert np.all((p >= 1 / 61) & (p <= 1.0))
    assert 0.35 < p.mean() < 0.65
    assert 0.0 < (p < 0.05).mean() < 0.15
    assert stats.kstest(p, "uniform").pvalue > 1e-3
    # The asymptotic p-values of the same samples are far from uniform (Lilliefors).
    asym = distfit.fit_samples(x).fits["norm"].pvalue
    assert asym.mean() > p.mean() + 0.1
    assert "bootstrap" in boot.summary()["pvalue_note"]


def test_bootstrap_is_reproducible():
    x = np.random.default_rng(4).standard_t(5, (6, 80))
    a = distfit.fit_samples(x, pvalues="parametric-bootstrap", n_bootstrap=20, seed=7)
    b = distfit.fit_samples(x, pvalues="parametric-bootstrap", n_bootstrap=20, seed=7)
    np.testing.assert_array_equal(a.fits["t"].pvalue, b.fits["t"].pvalue)


def test_frame_and_summary():
    x = np.random.default_rng(5).standard_t(4, (7, 50))
    result = distfit.fit_samples(x, ids=[f"img{i}" for i in range(7)], labels=np.arange(7), settings={"pool": "tokens"})
    frame = result.to_frame()
    assert len(frame) == 7 and frame["id"].tolist()[0] == "img0"
    for column in ("norm_loc", "norm_scale", "norm_ks", "norm_pvalue", "norm_rejected", "t_df", "t_loc", "t_scale",
                   "t_ks", "t_pvalue", "t_rejected", "t_df_at_bound", "t_converged", "t_loglik"):
        assert column in frame
    summary = json.loads(to_json(result.summary()))
    assert summary["num_samples"] == 7 and summary["values_per_sample"] == 50
    assert summary["pvalue_method"] == "asymptotic" and summary["settings"] == {"pool": "tokens"}
    norm = summary["laws"]["norm"]
    assert norm["not_rejected"] == int((~result.rejected("norm")).sum())
    assert norm["ci95"][0] <= norm["fraction_not_rejected"] <= norm["ci95"][1]


def test_bad_inputs():
    x = np.random.default_rng(6).normal(size=(3, 20))
    with pytest.raises(ConfigError, match="alpha"):
        distfit.fit_samples(x, alpha=1.5)
    with pytest.raises(ConfigError, match="p-value method"):
        distfit.fit_samples(x, pvalues="magic")
    with pytest.raises(DataError, match="NaN"):
        distfit.fit_samples(np.full((2, 5), np.nan))
    with pytest.raises(DataError, match="constant"):
        distfit.fit_samples(np.ones((2, 5)))
    with pytest.raises(DataError, match="shape"):
        distfit.fit_samples(np.ones(5))


def test_density_sse_by_hand():
    # Two bins [0, 0.5), [0.5, 1], two values each: density 2 / (4 * 0.5) = 1 in both.
    values = np.array([0.0, 0.25, 0.75, 1.0])
    assert distfit.density_sse(values, "uniform", (0.0, 1.0), bins=2) == pytest.approx(0.0, abs=1e-15)
    # N(0.5, 1) at the centres 0.25 and 0.75: pdf 0.386668 in both, SSE 2 (1 - 0.386668)^2.
    assert distfit.density_sse(values, "norm", (0.5, 1.0), bins=2) == pytest.approx(2 * (1 - 0.3866681) ** 2)


def test_ranking_picks_t_for_t_samples():
    x = np.random.default_rng(7).standard_t(2, (2, 3000)) * 2 + 1
    ranking = distfit.rank_distributions(x, bins=100)
    assert ranking.table["law"].iloc[0] == "t"
    assert ranking.table["first"].iloc[0] == 2
    assert set(ranking.table["law"]) == set(distfit.DEFAULT_RANK_LAWS)
    assert len(ranking.per_sample) == 2 * len(distfit.DEFAULT_RANK_LAWS)
    assert set(ranking.example_params) == set(distfit.DEFAULT_RANK_LAWS)
    np.testing.assert_allclose(ranking.example_params["norm"], (x[0].mean(), x[0].std()))


def test_ranking_of_gaussian_samples_puts_cauchy_below_norm():
    x = np.random.default_rng(8).normal(size=3000)
    table = distfit.rank_distributions(x, "norm,cauchy").table
    assert table["law"].tolist() == ["norm", "cauchy"]


def test_bad_law_names_are_listed():
    with pytest.raises(ConfigError, match="'foo'"):
        distfit.check_laws("t,foo,norm")
    with pytest.raises(ConfigError, match="'binom'"):  # discrete, not a continuous law
        distfit.check_laws(["binom"])
    assert distfit.check_laws(" t , gamma ") == ("t", "gamma")


def test_as_samples_and_token_index():
    tokens = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert distfit.as_samples(tokens).shape == (2, 12)
    np.testing.assert_array_equal(distfit.as_samples(tokens, 1), tokens[:, 1, :])
    with pytest.raises(ConfigError, match="out of range"):
        distfit.as_samples(tokens, 3)
    with pytest.raises(ConfigError, match="per-token"):
        distfit.as_samples(tokens.reshape(2, 12), 0)


def test_load_samples_from_npy_and_npz(tmp_path):
    feats = np.random.default_rng(9).normal(size=(5, 3, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", feats.reshape(5, 12))
    fs = distfit.load_samples(tmp_path / "f.npy")
    assert fs.features.shape == (5, 12) and (fs.labels == -1).all()
    FeatureSet(features=feats, labels=np.arange(5), ids=np.array(list("abcde")), settings={"pool": "tokens"}).save(
        tmp_path / "f.npz")
    fs = distfit.load_samples(tmp_path / "f.npz", token_index=2)
    np.testing.assert_array_equal(fs.features, feats[:, 2, :])
    assert fs.ids.tolist() == list("abcde") and fs.settings["pool"] == "tokens"
    np.savez(tmp_path / "plain.npz", features=feats[:, 0, :])
    assert distfit.load_samples(tmp_path / "plain.npz").features.shape == (5, 4)
    with pytest.raises(DataError, match="does not exist"):
        distfit.load_samples(tmp_path / "missing.npy")
    (tmp_path / "f.txt").write_text("1 2 3")
    with pytest.raises(DataError, match=".npy or .npz"):
        distfit.load_samples(tmp_path / "f.txt")
    np.save(tmp_path / "one.npy", np.zeros(4))
    with pytest.raises(DataError, match="numeric"):
        distfit.load_samples(tmp_path / "one.npy")


def test_encoder_samples_on_a_tiny_model():
    torch.manual_seed(0)
    model = create_model("tiny")
    images = torch.randn(6, 3, 32, 32)
    dataset = TensorDataset(images, torch.arange(6))
    dim, patches = model.config.embed_dim, model.config.num_patches
    tokens = distfit.encoder_samples(model, dataset, features="tokens", mask_ratio=0.75, quiet=True)
    assert tokens.features.shape == (6, patches // 4 * dim)
    assert tokens.labels.tolist() == list(range(6))
    one = distfit.encoder_samples(model, dataset, features="tokens", token_index=5, mask_ratio=0.0, quiet=True)
    # Without masking the encoder keeps the patch order: token 5 is patch 5.
    full = model.encode(images, 0.0).tokens[:, 1 + 5].detach().numpy()
    np.testing.assert_allclose(one.features, full, rtol=1e-5, atol=1e-5)
    cls = distfit.encoder_samples(model, dataset, features="cls", mask_ratio=0.0, quiet=True)
    raw = distfit.encoder_samples(model, dataset, features="cls", mask_ratio=0.0, apply_norm=False, quiet=True)
    assert cls.features.shape == (6, dim) and not np.allclose(cls.features, raw.features)
    assert cls.settings["features"] == "cls" and raw.settings["apply_norm"] is False
    with pytest.raises(ConfigError, match="token_index"):
        distfit.encoder_samples(model, dataset, features="mean", token_index=0, quiet=True)
    result = distfit.fit_samples(tokens.features)
    assert len(result) == 6 and np.isfinite(result.fits["t"].pvalue).all()


def test_agrees_with_scipy_on_paper_size_samples():
    # 3,840 values: one ipol64 image's visible encoder output (16 tokens x 240). KS statistics and
    # p-values of our fitted laws straight from scipy.stats.kstest (exact kstwo), and scipy's own fits.
    rng = np.random.default_rng(7)
    n, m = 12, 3840
    df = np.array([1.5, 2.5, 4.0, 6.0, 10.0, 30.0, 3.0, 5.0, np.inf, np.inf, np.inf, 8.0])
    x = np.where(np.isinf(df)[:, None], rng.standard_normal((n, m)),
                 rng.standard_t(np.where(np.isinf(df), 5.0, df)[:, None], (n, m)))
    x = x * rng.uniform(0.5, 2.0, (n, 1)) + rng.uniform(-1.0, 1.0, (n, 1))
    result = distfit.fit_samples(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for law, fit in result.fits.items():
            for i, row in enumerate(x):
                args = (fit.params["df"][i],) if law == "t" else ()
                own = stats.kstest(row, law, args=args + (fit.params["loc"][i], fit.params["scale"][i]))
                assert abs(own.statistic - fit.stat[i]) < 1e-12
                assert abs(own.pvalue - fit.pvalue[i]) <= 1e-6 * own.pvalue + 1e-300
        ref = [stats.t.fit(row) for row in x[:4]]
    t = result.fits["t"]
    np.testing.assert_allclose(t.params["df"][:4], [r[0] for r in ref], rtol=2e-3)
    np.testing.assert_allclose(t.params["scale"][:4], [r[2] for r in ref], rtol=1e-3)
    assert result.rejected("norm")[:4].all() and not result.rejected("norm")[8:11].any()
