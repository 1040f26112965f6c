"""Input checks and seeding shared by maelens's scikit-learn estimators, without torch (the kNN and the
t-SNE map run on numpy, so that ``maelens evaluate --features`` starts without importing torch)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ..errors import DataError


def seed_from(random_state: int | np.random.RandomState | None) -> int:
    """An int seed drawn the scikit-learn way (``None``: fresh entropy; an int: reproducible)."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def fitted_input(estimator: object, X, *, dtype: type = np.float32, allow_nd: bool = False) -> np.ndarray:
    """``X`` checked for a fitted ``estimator``'s ``predict`` / ``transform``: ``NotFittedError`` before
    ``fit``, then a numeric finite array whose feature count (its last axis) is the one seen at ``fit``,
    else a :class:`~maelens.errors.DataError` (a ``ValueError``) worded as scikit-learn words it."""
    check_is_fitted(estimator)
    X = check_array(X, dtype=dtype, allow_nd=allow_nd)
    expected = estimator.n_features_in_  # type: ignore[attr-defined]
    if X.shape[-1] != expected:
        raise DataError(f"X has {X.shape[-1]} features, but {type(estimator).__name__} is expecting "
                        f"{expected} features as input")
    return X


def samples(n: int) -> str:
    """``"1 sample"``, ``"5 samples"``: counts in error messages, in the words scikit-learn's checks look for."""
    return f"{n} sample" if n == 1 else f"{n} samples"


__all__ = ["fitted_input", "samples", "seed_from"]
