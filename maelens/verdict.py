"""One rule for the reproduction verdicts: a paper's claim stated as a comparison, an interval around
the measured quantity, and a word computed from the two.

Every experiment that reports whether a finding of a source paper "holds" on our models goes through
this module, so that the words mean the same everywhere:

- ``holds``: the interval excludes the null value on the paper's side;
- ``tie``: the interval contains the null value (the data cannot tell the two sides apart);
- ``opposite``: the interval excludes the null value on the other side;
- ``n/a``: the claim is qualitative, or the evidence needed for an interval is missing (too few
  seeds, an undertrained model): the reason is recorded beside the word.

The intervals are two-sided at level ``1 - ALPHA``:

- :func:`wilson_interval` for a proportion measured on one model (a rejection rate, an accuracy), and
  :func:`newcombe_interval` for the difference of two such proportions (two methods scored on the same
  images when only their counts are kept: conservative then, since paired outcomes are positively
  correlated);
- :func:`paired_t_interval` for the mean paired difference over seeds when two training set-ups are
  compared (seed ``i`` of both arms shares data order and initialisation where the set-up allows); at
  least :data:`MIN_SEEDS` seeds are required by :func:`compare_over_seeds`;
- :func:`bootstrap_interval` (percentile bootstrap) for any statistic of one sample, and
  :func:`paired_bootstrap_interval` for the difference of a statistic between two measurements of the
  same items (e.g. kNN accuracy with and without masking on the same test images).

A test that gives only a p-value (a goodness-of-fit test against "no effect") is judged by
:func:`judge_pvalue`: ``holds`` when ``p < ALPHA`` (the confidence set of the effect excludes "none"),
``tie`` otherwise; such a test cannot come out ``opposite``.

Only this module decides; experiments state the :class:`Claim` and hand over the measurements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats

__all__ = [
    "ALPHA",
    "MIN_SEEDS",
    "VERDICTS",
    "Claim",
    "Interval",
    "Verdict",
    "bootstrap_interval",
    "compare_over_seeds",
    "decide",
    "judge",
    "judge_pvalue",
    "newcombe_interval",
    "paired_bootstrap_interval",
    "paired_t_interval",
    "wilson_interval",
]

#: Two-sided error level of every interval behind a verdict (95% intervals).
ALPHA = 0.05
#: Fewest seeds per arm for a verdict on a comparison of trained models.
MIN_SEEDS = 3
#: The words a verdict may take, in the order of the module docstring.
VERDICTS = ("holds", "tie", "opposite", "n/a")
_DIRECTIONS = ("greater", "less")


@dataclass(frozen=True)
class Claim:
    """A finding of a source paper as a comparison: ``quantity`` is expected to be ``direction``
    (``"greater"`` or ``"less"``) than ``null``. ``statement`` cites the paper (section, figure,
    table) in words; ``quantity`` says what is measured, e.g. ``"eval loss, pretrained - scratch"``."""

    statement: str
    quantity: str
    direction: str
    null: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {self.direction!r}")
        if not np.isfinite(self.null):
            raise ValueError(f"null must be finite, got {self.null!r}")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided interval at ``level``; ``method`` names how it was
    computed, ``n`` the number of units (seeds, images, bootstrap items) behind it."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int

    def __post_init__(self) -> None:
        if not (self.low <= self.high):
            raise ValueError(f"interval bounds out of order: [{self.low}, {self.high}]")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The word for one claim, with the interval it was computed from (None for ``n/a``) and, for
    ``n/a``, why."""

    claim: Claim
    word: str
    interval: Interval | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return {"claim": asdict(self.claim), "verdict": self.word,
                "interval": None if self.interval is None else self.interval.to_dict(), "reason": self.reason}


def decide(low: float, high: float, direction: str, null: float = 0.0) -> str:
    """The verdict word for the interval ``[low, high]`` and a claim that the quantity is
    ``direction`` than ``null``: ``holds`` when the whole interval lies strictly on the claimed side,
    ``opposite`` when it lies strictly on the other, ``tie`` when it contains ``null``."""
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"an interval needs finite ordered bounds, got [{low}, {high}]")
    above, below = low > null, high < null
    if direction == "greater":
        return "holds" if above else "opposite" if below else "tie"
    return "holds" if below else "opposite" if above else "tie"


def judge(claim: Claim, interval: Interval | None, reason: str = "") -> Verdict:
    """The :class:`Verdict` of ``claim`` given ``interval``; ``None`` (with a ``reason``) gives ``n/a``."""
    if interval is None:
        if not reason:
            raise ValueError("an n/a verdict needs a reason")
        return Verdict(claim, "n/a", None, reason)
    return Verdict(claim, decide(interval.low, interval.high, claim.direction, claim.null), interval, reason)


def wilson_interval(successes: int, n: int, alpha: float = ALPHA) -> Interval:
    """Wilson score interval for a proportion ``successes / n`` (Wilson 1927): better coverage than
    the normal approximation near 0 and 1, never outside [0, 1]."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    _check_alpha(alpha)
    z = stats.norm.ppf(1 - alpha / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), 1 - alpha, "wilson", n)


def newcombe_interval(successes_a: int, n_a: int, successes_b: int, n_b: int, alpha: float = ALPHA) -> Interval:
    """Newcombe's hybrid score interval (Newcombe 1998, method 10) for the difference of two proportions
    ``successes_a / n_a - successes_b / n_b``, built from the two :func:`wilson_interval` s: for
    independent samples it has near-nominal coverage; for two measurements of the same items it is wider
    than a paired interval (conservative), the price of keeping only counts."""
    a, b = wilson_interval(successes_a, n_a, alpha), wilson_interval(successes_b, n_b, alpha)
    d = a.estimate - b.estimate
    low = d - float(np.hypot(a.estimate - a.low, b.high - b.estimate))
    high = d + float(np.hypot(a.high - a.estimate, b.estimate - b.low))
    return Interval(d, low, high, 1 - alpha, "newcombe", min(n_a, n_b))


def judge_pvalue(claim: Claim, p_value: float, alpha: float = ALPHA) -> Verdict:
    """Verdict on a ``claim`` of an effect (the quantity differs from ``claim.null``) tested by a p-value:
    ``holds`` when ``p_value < alpha``, else ``tie``; the p-value is given in the reason."""
    if not 0 <= p_value <= 1:
        raise ValueError(f"p_value must lie in [0, 1], got {p_value!r}")
    _check_alpha(alpha)
    return Verdict(claim, "holds" if p_value < alpha else "tie", None, f"p = {p_value:.3g} against alpha {alpha:g}")


def paired_t_interval(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> Interval:
    """Student-t interval for the mean of the paired differences ``a[i] - b[i]`` (seed ``i`` of two
    arms). Needs at least two pairs; with identical differences the interval is that single value."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if np.ndim(a) != 1 or np.shape(a) != np.shape(b):
        raise ValueError(f"a and b must be 1-D and of equal length, got shapes {np.shape(a)} and {np.shape(b)}")
    if d.size < 2:
        raise ValueError(f"a paired interval needs at least 2 pairs, got {d.size}")
    if not np.all(np.isfinite(d)):
        raise ValueError("the paired values must be finite")
    _check_alpha(alpha)
    mean = float(d.mean())
    half = float(stats.t.ppf(1 - alpha / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return Interval(mean, mean - half, mean + half, 1 - alpha, "paired-t", int(d.size))


def compare_over_seeds(claim: Claim, a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> Verdict:
    """Verdict on ``claim`` about ``a - b`` from per-seed values of two arms; fewer than
    :data:`MIN_SEEDS` pairs give ``n/a`` with the reason, never a word from too little evidence."""
    if len(a) < MIN_SEEDS or len(b) < MIN_SEEDS:
        return judge(claim, None, f"{min(len(a), len(b))} seed(s); a verdict needs at least {MIN_SEEDS}")
    return judge(claim, paired_t_interval(a, b, alpha))


def bootstrap_interval(values: Sequence[float] | np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean,
                       *, alpha: float = ALPHA, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over the rows of ``values`` (resampled with
    replacement, ``n_boot`` times, generator seeded by ``seed``)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or len(x) < 2:
        raise ValueError("a bootstrap interval needs at least 2 values")
    _check_alpha(alpha)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boots = np.array([statistic(x[i]) for i in idx], dtype=np.float64)
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return Interval(float(statistic(x)), float(low), float(high), 1 - alpha, "bootstrap", int(len(x)))


def paired_bootstrap_interval(a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA, n_boot: int = 2000,
                              seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` where ``a[i]`` and ``b[i]`` are two
    measurements of the same item ``i`` (items resampled together, keeping the pairing), e.g. 0/1
    correctness of one test image under two set-ups."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must be 1-D and of equal length, got shapes {x.shape} and {y.shape}")
    return replace(bootstrap_interval(x - y, np.mean, alpha=alpha, n_boot=n_boot, seed=seed), method="paired-bootstrap")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")

