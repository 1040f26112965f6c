"""kNN, PCA-kNN, Wilson intervals and the evaluation runner (IPOL sec. 6, Tables 3-4)."""

import math

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from maelens.analysis.evaluate import (
    KNNClassifier,
    check_compatible,
    evaluate_features,
    make_splits,
    pca_knn,
    wilson_interval,
)
from maelens.analysis.features import FeatureSet
from maelens.errors import ConfigError, DataError


def blobs(n=160, dim=24, classes=4, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim)) * 1.5
    return (centres[y] + spread * rng.normal(size=(n, dim))).astype(np.float32), y.astype(np.int64)


def feature_set(X, y):
    return FeatureSet(features=X, labels=y, ids=np.arange(len(y)).astype(str), settings={})


def test_wilson_interval_by_hand():
    # 8/10: centre (0.8 + z^2/20) / (1 + z^2/10), half-width z sqrt(0.016 + z^2/400) / (1 + z^2/10), z = 1.95996
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_knn_votes_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    y = np.array([0, 0, 0, 1, 1])
    query = np.array([[9.0]])
    # neighbours of 9: 10 (d=1, class 1), 11 (d=2, class 1), 2 (d=7), 1 (d=8), 0 (d=9)
    assert KNNClassifier(3, metric="euclidean").fit(X, y).predict(query)[0] == 1
    assert KNNClassifier(5, metric="euclidean").fit(X, y).predict(query)[0] == 0  # 3 votes to 2
    weighted = KNNClassifier(5, metric="euclidean", weights="distance").fit(X, y)
    # class 1: 1/1 + 1/2 = 1.5; class 0: 1/7 + 1/8 + 1/9 = 0.379
    proba = weighted.predict_proba(query)[0]
    assert proba[1] == pytest.approx(1.5 / (1.5 + 1 / 7 + 1 / 8 + 1 / 9))
    assert weighted.predict(query)[0] == 1
    dist, idx = weighted.kneighbors(query)
    np.testing.assert_allclose(dist[0], [1, 2, 7, 8, 9])
    np.testing.assert_array_equal(idx[0], [3, 4, 2, 1, 0])
    # a tie goes to the class that sorts first, as in scikit-learn
    assert KNNClassifier(2, metric="euclidean").fit([[0.0], [2.0]], ["b", "a"]).predict([[1.0]])[0] == "a"


def test_knn_cosine_by_hand_and_exact_match_weight():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.2]])
    y = np.array([0, 1, 2])
    knn = KNNClassifier(2, metric="cosine").fit(X, y)
    dist, idx = knn.kneighbors([[1.0, 1.0]])
    assert idx[0, 0] == 2 and dist[0, 0] == pytest.approx(1 - 10.2 / (math.sqrt(2) * math.sqrt(52.04)))
    assert dist[0, 1] == pytest.approx(1 - 1 / math.sqrt(2))
    # an exact match takes the whole vote under 1/distance weights
    exact = KNNClassifier(3, metric="euclidean", weights="distance").fit(X, y)
    np.testing.assert_allclose(exact.predict_proba([[0.0, 1.0]])[0], [0, 1, 0])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_knn_matches_scikit_learn(metric, weights):
    X, y = blobs(spread=2.0)
    ours = KNNClassifier(20, metric=metric, weights=weights, chunk_size=17).fit(X[:120], y[:120])
    ref = KNeighborsClassifier(20, metric=metric, weights=weights, algorithm="brute").fit(X[:120], y[:120])
    np.testing.assert_array_equal(ours.predict(X[120:]), ref.predict(X[120:]))
    # scikit-learn computes in float32 here
    np.testing.assert_allclose(ours.predict_proba(X[120:]), ref.predict_proba(X[120:]), atol=1e-6)
    assert ours.score(X[120:], y[120:]) == ref.score(X[120:], y[120:])


def test_exp_weights_are_dino_vote():
    X, y = blobs(spread=2.5, seed=3)
    knn = KNNClassifier(10, metric="cosine", weights="exp", temperature=0.07).fit(X[:120], y[:120])
    Xn = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    sims = Xn[120:] @ Xn[:120].T
    top = np.argsort(-sims, axis=1)[:, :10]
    votes = np.zeros((40, 4))
    for q in range(40):
        np.add.at(votes[q], y[top[q]], np.exp(sims[q, top[q]] / 0.07))
    np.testing.assert_allclose(knn.predict_proba(X[120:]), votes / votes.sum(1, keepdims=True), rtol=1e-6)


def test_pca_knn_matches_scikit_learn_pipeline():
    X, y = blobs(dim=80, spread=2.0)
    ours = pca_knn(10, random_state=0, n_neighbors=20, metric="euclidean").fit(X[:120], y[:120])
    ref = make_pipeline(PCA(10, svd_solver="full"), KNeighborsClassifier(20, algorithm="brute")).fit(X[:120], y[:120])
    np.testing.assert_array_equal(ours.predict(X[120:]), ref.predict(X[120:]))


def test_runner_knn_and_pca_equal_explicit_pipeline_on_the_same_split():
    X, y = blobs(dim=80, spread=3.0)
    report = evaluate_features(feature_set(X, y), methods=["knn", "pca-knn"], k=20, metric="euclidean",
                               pca_dim=50, test_size=0.25, seed=3, quiet=True)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=3)
    knn = KNeighborsClassifier(20, algorithm="brute").fit(X[tr], y[tr]).score(X[te], y[te])
    pca = make_pipeline(PCA(50, svd_solver="full"), KNeighborsClassifier(20, algorithm="brute"))
    pca_acc = pca.fit(X[tr], y[tr]).score(X[te], y[te])
    rows = {r.method: r for r in report.results}
    assert rows["knn"].accuracy == pytest.approx(knn)
    assert rows["pca-knn"].accuracy == pytest.approx(pca_acc)
    assert rows["knn"].n == len(te) == 40
    assert (rows["knn"].ci_low, rows["knn"].ci_high) == wilson_interval(rows["knn"].correct, 40)
    assert "PCA 50 axes" in rows["pca-knn"].protocol
    assert list(report.to_frame().columns) == ["method", "accuracy", "ci_low", "ci_high", "n", "protocol", "correct"]


def test_kfold_pools_every_image_and_matches_scikit_learn():
    X, y = blobs(spread=3.0)
    report = evaluate_features(feature_set(X, y), methods=["knn"], k=5, metric="cosine", folds=4, seed=1, quiet=True)
    correct = 0
    for tr, te in StratifiedKFold(4, shuffle=True, random_state=1).split(X, y):
        ref = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(X[tr], y[tr])
        correct += int((ref.predict(X[te]) == y[te]).sum())
    assert report.results[0].n == len(y)
    assert report.results[0].correct == correct
    assert report.results[0].protocol.startswith("stratified 4-fold")


def test_given_test_set_and_tsne_protocols():
    X, y = blobs(n=120, spread=0.5)
    train, test = feature_set(X[:90], y[:90]), feature_set(X[90:], y[90:])
    for protocol in ("transform", "paper"):
        report = evaluate_features(train, test, ["tsne-knn"], k=5, tsne_protocol=protocol, seed=0, quiet=True)
        row = report.results[0]
        assert row.n == 30 and row.accuracy > 0.9
        assert ("paper protocol" in row.protocol) == (protocol == "paper")
        plane = report.maps["tsne-knn"]
        assert plane.coords.shape == (120, 2) and plane.test.sum() == 30
        assert np.array_equal(np.sort(plane.labels), np.sort(y))


def test_parametric_maps_fit_on_another_set():
    X, y = blobs(n=120, dim=16, spread=0.5)
    A, _ = blobs(n=150, dim=16, spread=0.5, seed=0)
    params = {"vae-t": {"epochs": 15, "batch_size": 64, "hidden": (32,)},
              "ptsne": {"epochs": 15, "batch_size": 60, "hidden": (32,)}}
    report = evaluate_features(feature_set(X, y), methods=["vae-t", "ptsne"], fit_on=feature_set(A, np.full(150, -1)),
                               k=5, params=params, names={"fit_on": "A.npz"}, quiet=True)
    for row in report.results:
        assert "fit on A.npz" in row.protocol
        assert row.accuracy > 0.8
    assert report.settings["inputs"] == {"train": "features", "fit_on": "A.npz"}


def test_tokens_are_mean_pooled_for_knn():
    X, y = blobs(n=80, dim=8)
    rng = np.random.default_rng(0)
    tokens = X[:, None, :] + rng.normal(size=(80, 4, 8)).astype(np.float32)
    from_tokens = evaluate_features(feature_set(tokens, y), methods=["knn"], k=5, quiet=True)
    pooled = evaluate_features(feature_set(tokens.mean(1), y), methods=["knn"], k=5, quiet=True)
    assert from_tokens.results[0].correct == pooled.results[0].correct


def test_errors_speak_to_the_user():
    X, y = blobs(n=40, dim=8)
    fs = feature_set(X, y)
    with pytest.raises(ConfigError, match="unknown"):
        evaluate_features(fs, methods=["knn", "umap"], quiet=True)
    with pytest.raises(DataError, match="no label"):
        evaluate_features(feature_set(X, np.full(40, -1)), methods=["knn"], names={"train": "f.npz"}, quiet=True)
    with pytest.raises(DataError, match="patch tokens"):
        evaluate_features(fs, methods=["attentive"], quiet=True)
    with pytest.raises(ConfigError, match="only used by"):
        evaluate_features(fs, methods=["knn"], fit_on=fs, quiet=True)
    other = feature_set(np.zeros((40, 9), np.float32), y)
    with pytest.raises(DataError, match="other.npz has 9-dimensional features but f.npz has 8"):
        check_compatible(fs, other, "f.npz", "other.npz")
    with pytest.raises(DataError, match="9-dimensional"):
        evaluate_features(fs, other, methods=["knn"], quiet=True)
    with pytest.raises(DataError, match="at least 5 images per class"):
        make_splits(np.array([0, 0, 0, 1, 1, 1]), folds=5)
    with pytest.raises(DataError, match="stratified holdout"):
        make_splits(np.array([0, 0, 0, 1]), test_size=0.25)
    with pytest.raises(ConfigError, match="metric"):
        KNNClassifier(metric="manhattan").fit(X, y)
