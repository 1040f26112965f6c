"""openTSNE vs scikit-learn t-SNE on N x 50 features: wall time and kNN accuracy in the plane.

The IPOL paper (sec. 6, Table 3) maps 20,000 encoder features (PCA to 50 axes) to 2-D with t-SNE
and classifies them by kNN (k = 20). This benchmark runs both t-SNE implementations on the same
data with the same perplexity, PCA initialisation and iteration budget (250 early-exaggeration +
500 iterations), then scores kNN on a stratified 25% holdout of the map (the paper's protocol:
the map is fitted on all points). Data: a seeded Gaussian mixture, or ``--features file.npz``
(reduced to 50 PCA axes).

    python benchmarks/tsne.py                 # 20,000 x 50, both implementations
    python benchmarks/tsne.py --n 5000 --skip-sklearn
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def mixture(n: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of ``classes`` overlapping Gaussian clusters in ``dim`` dimensions, labels balanced."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim)) * 0.55
    scales = rng.uniform(0.7, 1.3, size=classes)
    return (centres[labels] + scales[labels, None] * rng.normal(size=(n, dim))).astype(np.float32), labels


def load_features(path: str, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A maelens feature file, reduced to ``dim`` PCA axes."""
    from sklearn.decomposition import PCA

    from maelens.analysis.evaluate import vectors
    from maelens.analysis.features import FeatureSet

    fs = FeatureSet.load(path)
    X = vectors(fs)
    return PCA(min(dim, *X.shape), random_state=seed).fit_transform(X).astype(np.float32), fs.labels


def knn_accuracy(Z: np.ndarray, y: np.ndarray, k: int, seed: int) -> float:
    """kNN (euclidean, majority) accuracy on a stratified 25% holdout of ``Z``."""
    from maelens.analysis.evaluate import KNNClassifier, make_splits

    [(tr, te)], _ = make_splits(y, test_size=0.25, seed=seed)
    return float(KNNClassifier(k, metric="euclidean").fit(Z[tr], y[tr]).score(Z[te], y[te]))


def run_opentsne(X: np.ndarray, perplexity: float, n_jobs: int, seed: int) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(perplexity=perplexity, n_iter=500, early_exaggeration_iter=250, initialization="pca",
                           negative_gradient_method="fft", n_jobs=n_jobs, random_state=seed).fit(X))


def run_sklearn(X: np.ndarray, perplexity: float, n_jobs: int, seed: int) -> np.ndarray:
    import inspect

    from sklearn.manifold import TSNE

    iters = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    return TSNE(perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed, n_jobs=n_jobs,
                **{iters: 750}).fit_transform(X)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="points (default: %(default)s)")
    parser.add_argument("--dim", type=int, default=50, help="dimensions (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=10, help="mixture components (default: %(default)s)")
    parser.add_argument("--features", default=None, metavar="NPZ", help="use a maelens feature file instead")
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--k", type=int, default=20, help="kNN neighbours (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1), help="threads for both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true", help="time openTSNE only")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()

    if args.features:
        X, y = load_features(args.features, args.dim, args.seed)
        X, y = X[:args.n], y[:args.n]
    else:
        X, y = mixture(args.n, args.dim, args.classes, args.seed)
    rows = [{"method": f"kNN in {X.shape[1]}-D (reference)", "seconds": None,
             "knn_accuracy": knn_accuracy(X, y, args.k, args.seed)}]
    runs = [("openTSNE (FFT)", run_opentsne)]
    if not args.skip_sklearn:
        runs.append(("scikit-learn (Barnes-Hut)", run_sklearn))
    for name, fn in runs:
        start = time.perf_counter()
        Z = fn(X, args.perplexity, args.n_jobs, args.seed)
        seconds = time.perf_counter() - start
        rows.append({"method": name, "seconds": seconds, "knn_accuracy": knn_accuracy(Z, y, args.k, args.seed)})
        print(f"{name}: {seconds:.1f} s", flush=True)

    print(f"\n{len(X)} x {X.shape[1]} features, {len(np.unique(y))} classes, perplexity {args.perplexity:g}, "
          f"k = {args.k}, {args.n_jobs} thread(s)")
    print(f"{'method':<28} {'time (s)':>9} {'kNN acc.':>9}")
    for row in rows:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.1f}"
        print(f"{row['method']:<28} {seconds:>9} {100 * row['knn_accuracy']:8.1f}%")
    if args.json:
        from maelens.io import write_json

        write_json(args.json, {"n": len(X), "dim": int(X.shape[1]), "perplexity": args.perplexity, "k": args.k,
                               "n_jobs": args.n_jobs, "rows": rows})


if __name__ == "__main__":
    main()
