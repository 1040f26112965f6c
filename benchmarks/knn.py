"""maelens's kNN classifier against scikit-learn's ``KNeighborsClassifier`` (brute force, cosine, k = 20) at
Table 3's size: does our own implementation earn its place (issue 17)? Prints the time of each, their
ratio within this process, and how often the two predict the same class.

    python benchmarks/knn.py [--train 20000] [--test 5000] [--dim 240] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved  # noqa: E402

from maelens.analysis.evaluate import KNNClassifier  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--test", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=240)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.classes, args.dim))
    y = rng.integers(0, args.classes, args.train + args.test)
    X = (centres[y] * 0.4 + rng.normal(size=(len(y), args.dim))).astype(np.float32)
    Xtr, ytr, Xte = X[:args.train], y[:args.train], X[args.train:]
    predictions = {}

    def run(name, model, dtype):
        xtr, xte = Xtr.astype(dtype), Xte.astype(dtype)

        def go():
            predictions[name] = model.fit(xtr, ytr).predict(xte)
        return go

    def sklearn_knn():
        return KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute", n_jobs=1)

    # maelens always computes in float64; scikit-learn computes in the input's dtype
    wall, cpu = interleaved({"maelens": run("maelens", KNNClassifier(n_neighbors=20, metric="cosine"), np.float32),
                             "scikit-learn float64": run("scikit-learn float64", sklearn_knn(), np.float64),
                             "scikit-learn float32": run("scikit-learn float32", sklearn_knn(), np.float32)},
                            args.repeats)
    same = {name: float(np.mean(predictions["maelens"] == predictions[name]))
            for name in ("scikit-learn float64", "scikit-learn float32")}
    print(f"kNN k=20 cosine, {args.train} x {args.dim} train, {args.test} test, {args.classes} classes; "
          f"fit + predict, best of {args.repeats} (wall / CPU s)")
    for name in wall:
        ratio = min(wall[name]) / min(wall["maelens"])
        agree = f", same prediction as maelens {100 * same[name]:.2f}%" if name in same else ""
        print(f"  {name:<21} {min(wall[name]):7.2f} / {min(cpu[name]):7.2f}  (x{ratio:.2f} of maelens' wall time"
              f"{agree})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
