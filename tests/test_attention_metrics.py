"""IPOL sec. 5 metrics on hand-built attention matrices whose answers are worked out on paper."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from maelens.analysis.attention import (
    attention_entropy,
    black_fraction,
    black_patches,
    chebyshev_local,
    consistency,
    global_attention,
    importance,
    importance_ranks,
    influencers,
    locality,
    mean_attention_distance,
    most_important,
    patch_distances,
    positional_tests,
    ratio_interval,
    soft_consistency,
    wilson_interval,
)


def cls_probs() -> torch.Tensor:
    """(1, 2, 4, 4): CLS + 3 patches, 2 heads. The head mean of the patch block (CLS dropped) is
        row 0: [0,    0.5, 0   ]  (+0.5 to CLS)
        row 1: [0.25, 0,   0   ]  (+0.75 to CLS)
        row 2: [0.25, 0,   0.75]  (nothing to CLS)
    and both heads' CLS rows put all their mass on patch 0."""
    h0 = [[0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0.5, 0, 0.5]]
    h1 = [[0, 1, 0, 0], [0, 0, 1, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 1]]
    return torch.tensor([[h0, h1]])


def test_global_attention_drops_cls_without_renormalising():
    W = global_attention(cls_probs())
    expected = torch.tensor([[[0, 0.5, 0], [0.25, 0, 0], [0.25, 0, 0.75]]])
    assert torch.equal(W, expected)
    # Column sums [0.5, 0.5, 0.75]: patch 2 first, then the 0/1 tie goes to the lower index 0.
    # Keeping the CLS row would add 1 to patch 0 (s = [1.5, ...]); renormalising the rows would give
    # s = [2, 1, 0.75]; either would make patch 0 the most important instead of patch 2.
    s = importance(W)
    assert torch.equal(s, torch.tensor([[0.5, 0.5, 0.75]]))
    assert importance_ranks(s).tolist() == [[1, 2, 0]]
    assert most_important(s, 1).tolist() == [[False, False, True]]
    assert most_important(s, 2).tolist() == [[True, False, True]]


def test_consistency_exact_and_soft():
    important = torch.tensor([[False, False, True], [True, False, True], [True, False, True]])
    visible = torch.tensor([[False, False, True], [False, True, True], [True, False, True]])
    assert consistency(important, visible).tolist() == [True, False, True]
    # overlaps 1/1, 1/2 (patch 2 in both, patch 0 vs 1 differ), 2/2
    assert soft_consistency(important, visible).tolist() == [1.0, 0.5, 1.0]


def test_most_important_per_sample_k():
    s = torch.tensor([[3.0, 1.0, 2.0, 2.0], [0.0, 1.0, 1.0, 1.0]])
    # sample 0, k=3: 0 (3.0), then the 2.0 tie: 2 before 3; sample 1, k=1: the 1.0 tie goes to patch 1
    assert most_important(s, torch.tensor([3, 1])).tolist() == [[True, False, True, True], [False, True, False, False]]


def grid3_attention() -> torch.Tensor:
    """(9, 9) rows of W on a 3 x 3 grid (patches 0..8 row-major); most important = {0, 8}.

    0 1 2
    3 4 5
    6 7 8
    """
    W = torch.zeros(9, 9)
    W[0, 0] = 1.0
    W[8, 8] = 1.0
    W[1, [1, 0, 2, 8]] = torch.tensor([0.4, 0.3, 0.2, 0.1])  # top-3 {1, 0, 2}: influencer 0
    W[2, [2, 5, 1, 8]] = torch.tensor([0.3, 0.3, 0.3, 0.1])  # 3-way tie {1, 2, 5}: 8 left out, black
    W[3, [4, 0, 8]] = torch.tensor([0.5, 0.25, 0.25])  # 0 and 8 tie: lower index 0
    W[4, [8, 4, 0]] = torch.tensor([0.5, 0.25, 0.25])  # 8 has the higher attention
    W[5, [4, 5, 2, 8]] = 0.25  # four-way tie at the cut: {2, 4, 5} kept, 8 dropped: black
    W[6, [6, 7, 0, 3, 8]] = torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.0625])  # influencer 0, 2 rows away
    W[7, [8, 7]] = torch.tensor([0.75, 0.25])
    return W


def test_grid_importance_picks_the_visible_pair():
    # Column sums: s_0 = 1 + .3 + .25 + .25 + .125 = 1.925, s_8 = 3.0125, the next is s_4 = 1.
    important = most_important(importance(grid3_attention()), 2)
    assert torch.nonzero(important).flatten().tolist() == [0, 8]


def test_influencers_with_self_entry_and_ties():
    W = grid3_attention()
    important = torch.zeros(9, dtype=torch.bool)
    important[[0, 8]] = True
    infl = influencers(W, important, top_n=3)
    assert infl.tolist() == [0, 0, -1, 0, 8, -1, 0, 8, 8]
    assert torch.nonzero(black_patches(infl)).flatten().tolist() == [2, 5]
    # Influenced: 1<-0 (adjacent), 3<-0 (adjacent), 4<-8 (diagonal), 6<-0 (two rows up: not local), 7<-8.
    local, influenced = locality(infl, important, (3, 3))
    assert (int(local), int(influenced)) == (4, 5)
    black, non_important = black_fraction(infl, important)
    assert (int(black), int(non_important)) == (2, 7)


def test_influencers_without_self_entry():
    W = grid3_attention()
    important = torch.zeros(9, dtype=torch.bool)
    important[[0, 8]] = True
    # Diagonal excluded: row 2 -> {1, 5, 8}: 8; row 4 -> {8, 0, 1}: 8; row 5 -> {2, 4, 8}: 8;
    # row 6 -> {7, 0, 3} (3 beats 8 in the 0.0625 tie): 0; row 7 -> {8, 0, 1}: 8.
    infl = influencers(W, important, top_n=3, include_self=False)
    assert infl.tolist() == [0, 0, 8, 0, 8, 8, 0, 8, 8]


def test_influencers_top1_and_batched():
    W = grid3_attention()
    important = torch.zeros(9, dtype=torch.bool)
    important[[0, 8]] = True
    # top-1: only rows whose largest entry is 0 or 8 are influenced (4 and 7; row 2's tie -> 1).
    assert influencers(W, important, top_n=1).tolist() == [0, -1, -1, -1, 8, -1, -1, 8, 8]
    gen = torch.Generator().manual_seed(0)
    Wb = torch.rand(2, 3, 9, 9, generator=gen)
    imp = torch.rand(2, 3, 9, generator=gen) < 0.3
    batched = influencers(Wb, imp, top_n=4)
    for i in range(2):
        for j in range(3):
            assert torch.equal(batched[i, j], influencers(Wb[i, j], imp[i, j], top_n=4))


def test_influencers_match_a_sorting_reference():
    gen = torch.Generator().manual_seed(1)
    W = torch.randint(0, 4, (50, 16, 16), generator=gen).float()  # many ties
    imp = torch.rand(50, 16, generator=gen) < 0.25
    got = influencers(W, imp, top_n=5)
    order = torch.sort(W, dim=-1, descending=True, stable=True).indices[..., :5]
    for b in range(50):
        for i in range(16):
            if imp[b, i]:
                assert got[b, i] == i
                continue
            hits = [int(j) for j in order[b, i] if imp[b, j]]
            assert int(got[b, i]) == (hits[0] if hits else -1)


def test_chebyshev_does_not_wrap_rows():
    # 2 x 4 grid: patch 3 is (0, 3), patch 4 is (1, 0): consecutive indices, 3 columns apart.
    infl = torch.tensor([0, 0, 1, 4, 3, 0, 7, 2])
    assert chebyshev_local(infl, (2, 4)).tolist() == [True, True, True, False, False, True, True, True]
    assert chebyshev_local(torch.tensor([-1, 0]), (1, 2)).tolist() == [False, True]


def test_mean_attention_distance_and_entropy_by_hand():
    # 2 x 2 grid, patch 4 px: centres (2,2), (2,6), (6,2), (6,6).
    probs = torch.zeros(1, 1, 5, 5)
    probs[0, 0, 0, 0] = 1.0
    probs[0, 0, 1, [0, 2]] = 0.5  # p0: half to CLS, half to p1 -> renormalised: p1 at 4 px
    probs[0, 0, 2, 2] = 1.0  # p1 -> itself: 0 px
    probs[0, 0, 3, [2, 3]] = 0.5  # p2 -> p1 (diagonal, 4*sqrt(2) px) and itself: 2*sqrt(2)
    probs[0, 0, 4, 1] = 1.0  # p3 -> p0: 4*sqrt(2)
    dist = patch_distances(torch.arange(4), (2, 2), 4)
    assert torch.allclose(dist[0], torch.tensor([0.0, 4.0, 4.0, 4 * math.sqrt(2)]))
    got = mean_attention_distance(probs, dist)
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx((4 + 0 + 2 * math.sqrt(2) + 4 * math.sqrt(2)) / 4, rel=1e-6)
    # Entropies of the patch rows: ln 2, 0, ln 2, 0.
    assert attention_entropy(probs).item() == pytest.approx(math.log(2) / 2, rel=1e-6)


def test_entropy_from_logits_matches_definition():
    logits = torch.randn(3, 4, 10, 10, generator=torch.Generator().manual_seed(0)) * 4
    probs = logits.softmax(-1)
    assert torch.allclose(attention_entropy(probs, logits), attention_entropy(probs), atol=1e-5)


def test_encoder_positions_give_per_sample_distances():
    # Visible tokens at patches (0, 3) and (1, 2) of a 2 x 2 grid, 10 px patches.
    dist = patch_distances(torch.tensor([[0, 3], [1, 2]]), (2, 2), 10)
    assert torch.allclose(dist[:, 0, 1], torch.full((2,), 10 * math.sqrt(2)))


def test_wilson_interval_hand_values():
    # 8 / 10: centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.71674, half-width 0.22658.
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    # 0 / 40: upper bound z² / (n + z²).
    assert wilson_interval(0, 40) == pytest.approx((0.0, 1.96**2 / (40 + 1.96**2)), abs=1e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_ratio_interval_design_effect():
    # One trial per image: exactly Wilson.
    x, y = np.array([1, 0, 1, 1.0]), np.ones(4)
    n_eff, low, high = ratio_interval(x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
    assert n_eff == pytest.approx(4) and (low, high) == pytest.approx(wilson_interval(3, 4))
    # Two images x = (2, 0) of y = (2, 2): R = 1/2, V = (4 - 4 + 8/4) / 16 = 1/8, n_eff = 0.25 / 0.125 = 2,
    # i.e. Wilson(1, 2) = 0.5 ± 0.41 instead of Wilson(2, 4).
    n_eff, low, high = ratio_interval(2, 4, 4, 8, 4)
    assert n_eff == pytest.approx(2)
    assert (low, high) == pytest.approx(wilson_interval(1, 2))
    assert (low, high) == pytest.approx((0.09453, 0.90547), abs=1e-5)


def test_positional_tests_hand_values():
    observed = np.array([[10, 0], [5, 5], [0, 0]])
    expected = np.array([[5, 5], [5, 5], [5, 5]])
    out = positional_tests(observed, expected)
    # Rank 0: chi² = 25/5 + 25/5 = 10 on 1 dof; KS: CDFs (1, 1) vs (0.5, 1), D = 0.5 with n = 10.
    assert out["chi2_stat"][0] == pytest.approx(10.0)
    assert out["chi2_p"][0] == pytest.approx(stats.chi2.sf(10, 1))
    assert out["ks_stat"][0] == pytest.approx(0.5)
    assert out["ks_p"][0] == pytest.approx(stats.kstwo.sf(0.5, 10))
    # Rank 1 matches its null; rank 2 was never observed.
    assert out["chi2_p"][1] == pytest.approx(1.0) and out["ks_stat"][1] == 0.0
    assert np.isnan(out["chi2_p"][2]) and np.isnan(out["ks_p"][2])
