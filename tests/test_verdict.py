"""The one verdict rule (maelens.verdict) on intervals and samples whose answers are worked out by hand."""

import numpy as np
import pytest

from maelens.verdict import (
    Claim,
    Interval,
    bootstrap_interval,
    compare_over_seeds,
    decide,
    judge,
    judge_pvalue,
    newcombe_interval,
    paired_bootstrap_interval,
    paired_t_interval,
    wilson_interval,
)


@pytest.mark.parametrize("low, high, direction, word", [
    (0.1, 0.3, "greater", "holds"),
    (-0.3, -0.1, "greater", "opposite"),
    (-0.1, 0.3, "greater", "tie"),
    (0.0, 0.3, "greater", "tie"),      # touching the null is not excluding it
    (-0.3, -0.1, "less", "holds"),
    (0.1, 0.3, "less", "opposite"),
    (-0.1, 0.0, "less", "tie"),
])
def test_decide_by_hand(low, high, direction, word):
    assert decide(low, high, direction) == word


def test_decide_respects_the_null_value():
    assert decide(0.55, 0.7, "greater", null=0.5) == "holds"
    assert decide(0.45, 0.7, "greater", null=0.5) == "tie"


def test_decide_refuses_bad_intervals_and_directions():
    with pytest.raises(ValueError):
        decide(0.3, 0.1, "greater")
    with pytest.raises(ValueError):
        decide(float("nan"), 0.1, "greater")
    with pytest.raises(ValueError):
        decide(0.1, 0.3, "bigger")


def test_wilson_by_hand():
    # 5 of 10, z = 1.959964: centre = (0.5 + z^2/20) / (1 + z^2/10) = 0.5; half = z/(1+z^2/10) * sqrt(0.025 + z^2/400)
    z = 1.959963984540054
    half = z / (1 + z * z / 10) * np.sqrt(0.025 + z * z / 400)
    iv = wilson_interval(5, 10)
    assert iv.estimate == 0.5
    assert iv.low == pytest.approx(0.5 - half, abs=1e-12) and iv.high == pytest.approx(0.5 + half, abs=1e-12)
    assert iv.low == pytest.approx(0.2366, abs=1e-4)   # the textbook value
    zero = wilson_interval(0, 20)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.1611, abs=1e-4)


def test_paired_t_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302653, half = 4.302653 / sqrt(3)
    iv = paired_t_interval([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert iv.estimate == pytest.approx(2.0)
    assert iv.high - iv.estimate == pytest.approx(4.302652729749464 / np.sqrt(3), rel=1e-9)
    assert iv.n == 3 and iv.method == "paired-t"


def test_compare_over_seeds_needs_three_seeds_and_says_why():
    claim = Claim("IPOL Fig. 12: pretraining lowers the eval loss", "eval loss, pretrained - scratch", "less")
    few = compare_over_seeds(claim, [1.0, 1.1], [1.2, 1.3])
    assert few.word == "n/a" and "at least 3" in few.reason and few.interval is None
    held = compare_over_seeds(claim, [1.0, 1.1, 1.05], [1.2, 1.32, 1.24])
    assert held.word == "holds" and held.interval.high < 0
    tie = compare_over_seeds(claim, [1.0, 1.4, 1.2], [1.2, 1.1, 1.25])
    assert tie.word == "tie"
    assert held.to_dict()["verdict"] == "holds"


def test_judge_without_interval_needs_reason():
    claim = Claim("x", "q", "greater")
    with pytest.raises(ValueError):
        judge(claim, None)
    assert judge(claim, None, "undertrained").word == "n/a"
    assert judge(claim, Interval(0.2, 0.1, 0.3, 0.95, "given", 4)).word == "holds"


def test_bootstrap_constant_sample_and_pairing():
    iv = bootstrap_interval(np.full(10, 3.0))
    assert (iv.low, iv.estimate, iv.high) == (3.0, 3.0, 3.0)
    # every item improves by exactly one: the paired interval is the point 1; unpaired would be wide
    a = np.arange(20, dtype=float) + 1
    b = np.arange(20, dtype=float)
    piv = paired_bootstrap_interval(a, b)
    assert piv.low == piv.high == 1.0 and piv.method == "paired-bootstrap"


def test_bootstrap_is_seeded():
    x = np.random.default_rng(1).normal(size=50)
    assert bootstrap_interval(x, seed=3) == bootstrap_interval(x, seed=3)
    iv = bootstrap_interval(x)
    assert iv.low < iv.estimate < iv.high


def test_newcombe_by_hand():
    # equal proportions: the interval is symmetric about 0 with half-widths from the two Wilson intervals
    a = wilson_interval(5, 10)
    iv = newcombe_interval(5, 10, 5, 10)
    assert iv.estimate == 0.0
    assert iv.high == pytest.approx(np.hypot(a.high - 0.5, 0.5 - a.low), abs=1e-12) and iv.low == pytest.approx(-iv.high)
    # 90 of 100 against 50 of 100: worked from the Wilson bounds 0.8256..0.9448 and 0.4038..0.5962:
    # low = 0.4 - hypot(0.0744, 0.0962) = 0.2784, high = 0.4 + hypot(0.0448, 0.0962) = 0.5061
    iv = newcombe_interval(90, 100, 50, 100)
    w1, w2 = wilson_interval(90, 100), wilson_interval(50, 100)
    assert iv.low == pytest.approx(0.4 - np.hypot(0.9 - w1.low, w2.high - 0.5))
    assert 0.27 < iv.low < 0.29 and 0.50 < iv.high < 0.52
    assert decide(iv.low, iv.high, "greater") == "holds"


def test_judge_pvalue():
    claim = Claim("IPOL sec. 5: rank positions are not uniform", "KS p-value", "greater")
    assert judge_pvalue(claim, 0.001).word == "holds"
    assert judge_pvalue(claim, 0.2).word == "tie"
    assert judge_pvalue(claim, 0.05).word == "tie"     # p must be below alpha
    with pytest.raises(ValueError):
        judge_pvalue(claim, 1.5)
