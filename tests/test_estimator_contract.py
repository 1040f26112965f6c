"""Every maelens estimator honours scikit-learn's contract (issue 17): scikit-learn's own estimator checks,
with each known misfit declared and explained, plus the contract of the token-input AttentiveProbe by hand."""

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import NotFittedError

from maelens.analysis.evaluate import KNNClassifier
from maelens.analysis.probes import AttentiveProbe, LinearProbe
from maelens.analysis.reduce import PCATSNE, GaussianVAE, ParametricTSNE, StudentTVAE
from maelens.errors import DataError

SKLEARN_16 = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 6)

# t-SNE is not a parametric map: ``fit_transform`` returns the optimised embedding of the fitted points,
# while ``transform`` places points into that map one by one against the fixed reference (openTSNE), so the
# two differ on the same data; scikit-learn's transformer checks require them to agree.
_TSNE_MISFITS = {
    "check_transformer_general": "t-SNE: fit_transform (the optimised map) differs from transform (placement)",
    "check_transformer_data_not_an_array": "t-SNE: fit_transform differs from transform, as above",
}

# Small settings so that the checks run in seconds; the defaults differ only in sizes and epochs.
ESTIMATORS = [
    KNNClassifier(n_neighbors=3),
    LinearProbe(epochs=10, batch_size=256, lr=0.05, random_state=0),
    PCATSNE(n_iter=50, negative_gradient_method="bh", random_state=0),
    GaussianVAE(epochs=2, hidden=(8,), random_state=0),
    StudentTVAE(epochs=2, hidden=(8,), random_state=0),
    ParametricTSNE(epochs=2, hidden=(8,), random_state=0),
]


def _expected_failures(estimator) -> dict[str, str]:
    return _TSNE_MISFITS if isinstance(estimator, PCATSNE) else {}


if SKLEARN_16:
    from sklearn.utils.estimator_checks import parametrize_with_checks

    @parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
    def test_scikit_learn_contract(estimator, check):
        check(estimator)


def test_mixins_come_before_base_estimator():
    """Mixins first (``ClassifierMixin, BaseEstimator``), so scikit-learn's tags are the mixin's."""
    for estimator in ESTIMATORS + [AttentiveProbe()]:
        bases = [c.__name__ for c in type(estimator).__mro__]
        assert bases.index("BaseEstimator") > max(bases.index(m) for m in ("ClassifierMixin", "TransformerMixin")
                                                  if m in bases)


# AttentiveProbe takes (N, K, D) patch tokens, which scikit-learn's checks (2-D data) cannot feed it:
# its part of the contract is checked here.

def tokens(n=24, k=3, d=4, seed=0):
    g = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = g.normal(size=(n, k, d)).astype(np.float32) + y[:, None, None] * 2.0
    return X, y


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_attentive_probe_unfitted_raises_not_fitted(method):
    X, _ = tokens()
    with pytest.raises(NotFittedError):
        getattr(AttentiveProbe(), method)(X)


def test_attentive_probe_bad_input_is_a_value_error():
    X, y = tokens()
    probe = AttentiveProbe(epochs=2, num_heads=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but AttentiveProbe is expecting 4"):
        probe.predict(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(DataError, match=r"\(N, K, D\) patch tokens"):
        probe.predict(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="Unknown label type"):
        AttentiveProbe(epochs=1).fit(X, np.linspace(0, 1, len(X)))
    assert probe.decision_function(X).shape == (len(X),)  # two classes: one score, as scikit-learn's
    assert probe.logits(X).shape == (len(X), 2)
