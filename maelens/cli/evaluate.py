"""``maelens features`` (encoder features to .npz), ``maelens evaluate`` (kNN, PCA, t-SNE, probes,
parametric 2-D maps; IPOL Tables 3-4, Figs. 13-14) and ``maelens similarity`` (Fig. 11)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.evaluate_settings import EvaluationSettings
from ..choices import (
    DEFAULT_NEIGHBOURS,
    EVALUATION_METHODS,
    FEATURE_POOLS,
    KNN_METRICS,
    KNN_WEIGHTS,
    NO_KNN_METHODS,
    PARAMETRIC_METHODS,
    SIMILARITY_POOLS,
    TSNE_PROTOCOLS,
)
from ..errors import ConfigError, DataError
from . import launch
from .common import (
    MASKINGS,
    add_checkpoint_arg,
    add_data_args,
    add_mask_args,
    add_overwrite_arg,
    add_run_args,
    finite_float,
    fraction,
    load_checkpoint_from_args,
    non_negative_int,
    note,
    positive_float,
    positive_int,
    preflight,
)
from .runargs import config_defaults


def register(subparsers) -> None:
    """Add the ``features``, ``evaluate`` and ``similarity`` commands."""
    _register_features(subparsers)
    _register_evaluate(subparsers)
    _register_similarity(subparsers)


def _register_features(subparsers) -> None:
    feats = subparsers.add_parser(
        "features", help="extract encoder features of a dataset to .npz",
        description="Run the encoder over a dataset (mask ratio 0 = the whole image) and save the pooled "
                    "features, labels, image ids and extraction settings to a .npz file.")
    add_checkpoint_arg(feats)
    add_data_args(feats)
    add_mask_args(feats, default_ratio=0.0)
    _add_pool(feats)
    add_run_args(feats, out_help="output .npz file", out_metavar="PATH")
    feats.set_defaults(func=run_features)


def _register_evaluate(subparsers) -> None:
    d = config_defaults(EvaluationSettings)
    ev = subparsers.add_parser(
        "evaluate", help="kNN / PCA / t-SNE / probe / parametric-map accuracy of features (IPOL Tables 3-4)",
        description="Classify held-out images from frozen features and report accuracy with a 95% Wilson "
                    "interval. With --features, the file is split (stratified, seeded) unless --test-features "
                    "is given; with --ckpt/--data, --split test (default) fits on the dataset's train split "
                    "and evaluates its test split, --split train/all uses a stratified split of those images. "
                    "Writes DIR/evaluation.csv, evaluation.json, maps.npz and map_<method>.png scatter plots.")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", type=Path, metavar="NPZ", help="features written by 'maelens features'")
    add_checkpoint_arg(source, required=False, options=ev)
    ev.add_argument("--test-features", type=Path, metavar="NPZ", help="held-out features (with --features)")
    ev.add_argument("--fit-on", type=Path, metavar="NPZ",
                    help="fit the parametric maps (vae-gauss, vae-t, ptsne) on these features (IPOL Table 4)")
    add_data_args(ev)
    add_mask_args(ev, default_ratio=0.0)
    _add_pool(ev)
    ev.add_argument("--methods", default=None, metavar="LIST",
                    help=f"comma-separated, from: {', '.join(EVALUATION_METHODS)} (default: knn,pca-knn,tsne-knn, plus "
                         "vae-gauss,vae-t,ptsne with --fit-on)")
    ev.add_argument("--k", type=positive_int, default=None,
                    help="neighbours of the kNN vote (default: 20, or the training images when fewer)")
    ev.add_argument("--metric", default=d["metric"], choices=KNN_METRICS,
                    help="kNN distance on the features and PCA axes; 2-D maps always use euclidean "
                         "(default: %(default)s)")
    ev.add_argument("--weights", default=d["weights"], choices=KNN_WEIGHTS,
                    help="kNN vote: majority, 1/distance, or exp(-distance/0.07) as DINO (default: %(default)s)")
    ev.add_argument("--pca-dim", type=positive_int, default=d["pca_dim"], metavar="D",
                    help="PCA axes of pca-knn and tsne-knn; refused above min(feature dimensions, training images) "
                         "(default: 50, lowered to that bound)")
    ev.add_argument("--perplexity", type=positive_float, default=d["perplexity"],
                    help="t-SNE perplexity; refused above (training images - 1) / 3 (default: 30, lowered to that bound)")
    ev.add_argument("--tsne-protocol", default=d["tsne_protocol"], choices=TSNE_PROTOCOLS,
                    help="transform: fit t-SNE on train, embed test with openTSNE transform; paper: fit on all "
                         "images as IPOL sec. 6 (default: %(default)s)")
    ev.add_argument("--n-jobs", type=int, default=d["n_jobs"], metavar="J", help="openTSNE threads (default: %(default)s)")
    ev.add_argument("--folds", type=non_negative_int, default=d["folds"], metavar="F",
                    help="stratified F-fold cross-validation instead of one holdout (default: off)")
    ev.add_argument("--test-size", type=fraction, default=d["test_size"], metavar="S",
                    help="held-out share of a single feature set (default: %(default)s)")
    ev.add_argument("--epochs", type=positive_int, default=None, metavar="E",
                    help="training epochs of the probes, VAEs and parametric t-SNE (default: each estimator's own)")
    add_run_args(ev, out_metavar="PATH")
    add_overwrite_arg(ev)
    ev.set_defaults(func=run_evaluate)


def _register_similarity(subparsers) -> None:
    sim = subparsers.add_parser(
        "similarity", help="most similar images by cosine similarity of encoder outputs (IPOL Fig. 11)",
        description="Encode the dataset at each --mask-ratio, rank its images by cosine similarity to each query "
                    "and draw query + top-k rows; a CSV of indices and scores is written beside the figure.")
    add_checkpoint_arg(sim)
    add_data_args(sim)
    sim.add_argument("--query", nargs="+", required=True, metavar="INDEX|PATH",
                     help="dataset indices and/or image files to search for")
    sim.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                     help="images shown per query; refused above the gallery's size (default: 8, lowered to it)")
    sim.add_argument("--mask", default="random", choices=MASKINGS,
                     help="masking strategy (default: %(default)s)")
    sim.add_argument("--mask-ratio", type=finite_float, nargs="+", default=[0.25], metavar="R",
                     help="mask ratio(s) of the encoder; IPOL uses 0.25, 0 is the whole image (default: 0.25)")
    sim.add_argument("--pool", default="mean", choices=SIMILARITY_POOLS,
                     help="how patch tokens become one vector (default: %(default)s)")
    add_run_args(sim, out_help="output figure (.png, .pdf, .svg); the CSV goes beside it", out_metavar="PATH")
    sim.set_defaults(func=run_similarity)


def _add_pool(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", default="auto", choices=FEATURE_POOLS,
                        help="mean of patch tokens, cls token, head (the pooled feature of a fine-tuned encoder), "
                             "flatten, or tokens kept (N, K, D) for the attentive probe; auto: head for a "
                             "fine-tuned encoder, else mean (default: %(default)s)")


def _dataset(args: argparse.Namespace, model, split: str):
    from ..data import load_dataset

    return load_dataset(args.data, image_size=model.config.img_size, split=split, limit=args.num_images,
                        seed=args.seed, mean=model.config.norm_mean, std=model.config.norm_std, quiet=args.quiet)


def _extract(args: argparse.Namespace, loaded, split: str, pool: str, dataset=None):
    """Features of one split of ``--data`` (``dataset`` when already loaded) by the loaded checkpoint's
    model, with the data and the checkpoint (file, format, head counts and their origin) recorded in
    the settings."""
    from ..analysis.features import extract_features

    model = loaded.model
    dataset = dataset if dataset is not None else _dataset(args, model, split)
    fs = extract_features(model, dataset, mask_ratio=args.mask_ratio, masking=args.mask, pool=pool,
                          batch_size=args.batch_size, seed=args.seed, device=args.device,
                          num_workers=args.num_workers, quiet=args.quiet)
    fs.settings.update(data=args.data, split=split, classes=list(getattr(dataset, "classes", [])),
                       **loaded.settings())
    return fs


def run_features(args: argparse.Namespace) -> int:
    from ..io import to_json

    def setup():
        loaded = load_checkpoint_from_args(args, simclr=True)
        return loaded, _dataset(args, loaded.model, args.split)

    loaded, dataset = launch.prepare(args, "file", setup)
    fs = _extract(args, loaded, args.split, args.pool, dataset)
    if not launch.is_main():  # rank 0 writes and prints
        return 0
    path = fs.save(args.out)
    summary = {"out": str(path), "num_images": len(fs), "shape": list(fs.features.shape), "pool": fs.settings["pool"],
               "mask_ratio": args.mask_ratio, "data": args.data, "split": args.split}
    if args.json:
        print(to_json(summary))
    elif not args.quiet:
        print(f"wrote {path}: {len(fs)} images, features {tuple(fs.features.shape)} "
              f"(pool {fs.settings['pool']}, mask ratio {args.mask_ratio:g})")
    return 0


def _methods(args: argparse.Namespace) -> list[str]:
    if args.methods is None:
        default = ["knn", "pca-knn", "tsne-knn"]
        return default + (["vae-gauss", "vae-t", "ptsne"] if args.fit_on else [])
    return [m.strip() for m in args.methods.split(",") if m.strip()]


def _sources(args: argparse.Namespace, methods: list[str]):
    """(train, test or None, names) from --features/--test-features or from --ckpt/--data."""
    from ..analysis.features import FeatureSet

    if args.features is not None:
        train = FeatureSet.load(args.features)
        test = FeatureSet.load(args.test_features) if args.test_features else None
        names = {"train": str(args.features)}
        if test is not None:
            names["test"] = str(args.test_features)
        return train, test, names
    if args.test_features:
        raise ConfigError("--test-features goes with --features; with --ckpt the dataset's splits are used")
    pool = args.pool
    if "attentive" in methods:
        if pool not in ("auto", "mean", "tokens"):
            raise ConfigError(f"the attentive probe needs patch tokens: use --pool mean or tokens, not {pool}")
        pool = "tokens"  # the other methods mean-pool the tokens, which equals --pool mean
    loaded = load_checkpoint_from_args(args, simclr=True)
    if args.split == "test":
        train, test = _extract(args, loaded, "train", pool), _extract(args, loaded, "test", pool)
        names = {"train": f"{args.data} (train split)", "test": f"{args.data} (test split)"}
        return train, test, names
    return _extract(args, loaded, args.split, pool), None, {"train": f"{args.data} ({args.split} split)"}


def run_evaluate(args: argparse.Namespace) -> int:
    from ..analysis.evaluate import check_methods, evaluate_features
    from ..analysis.features import FeatureSet
    from ..io import output_folder, to_json, write_csv, write_json

    preflight(args, "dir")
    methods = _methods(args)
    check_methods(methods, fit_on=args.fit_on is not None)
    fit_on = FeatureSet.load(args.fit_on) if args.fit_on else None
    train, test, names = _sources(args, methods)
    if fit_on is not None:
        names["fit_on"] = str(args.fit_on)
    trained = NO_KNN_METHODS + PARAMETRIC_METHODS
    params = {m: {"epochs": args.epochs} for m in methods if m in trained} if args.epochs else {}
    k = _neighbours(args, train, test, fit_on, methods, names)
    report = evaluate_features(train, test, methods, fit_on=fit_on, k=k, metric=args.metric,
                               weights=args.weights, pca_dim=args.pca_dim, perplexity=args.perplexity,
                               tsne_protocol=args.tsne_protocol, n_jobs=args.n_jobs, folds=args.folds,
                               test_size=args.test_size, seed=args.seed, params=params, device=args.device,
                               names=names, quiet=args.quiet)
    out: Path = args.out
    with output_folder(out, args.overwrite, command="maelens evaluate") as staging:
        write_csv(staging / "evaluation.csv", report.to_frame())
        write_json(staging / "evaluation.json", report.to_dict())
        if report.maps:
            _save_maps(staging, report, train.settings.get("classes"))
    if args.json:
        print(to_json(report.to_dict()))
    elif not args.quiet:
        print(report.table())
        print(f"wrote {out / 'evaluation.csv'}, {out / 'evaluation.json'}"
              + (f" and {len(report.maps)} map(s)" if report.maps else ""))
    return 0


def _neighbours(args: argparse.Namespace, train, test, fit_on, methods: list[str], names: dict[str, str]) -> int | None:
    """``--k``, or the default shortened to the training images when fewer (said once on stderr); a
    ``--k`` the user gave that exceeds them is an error. The inputs are checked first (labels, at least
    two classes) so that a note never precedes an error."""
    from ..analysis.evaluate import check_inputs, smallest_training_split

    if all(m in NO_KNN_METHODS for m in methods):
        return args.k
    check_inputs(train, test, fit_on, methods,
                 {"train": "features", "test": "test features", "fit_on": "fit-on features", **names})
    n_train = smallest_training_split(train, test, folds=args.folds, test_size=args.test_size, seed=args.seed)
    if args.k is not None:
        if args.k > n_train:
            raise ConfigError(f"--k {args.k}: more neighbours than the {n_train} training images of the "
                              f"evaluation split; choose --k {n_train} or fewer")
        return args.k
    if n_train < DEFAULT_NEIGHBOURS:
        note(args, f"kNN votes with k={n_train}, all the training images: the default k={DEFAULT_NEIGHBOURS} is more "
                   f"than the {n_train} there are (set --k to choose)")
    return min(DEFAULT_NEIGHBOURS, n_train)


def _save_maps(out: Path, report, classes) -> None:
    """One scatter plot per 2-D map (IPOL Figs. 13-14) and all coordinates in maps.npz."""
    from ..io import save_figure, save_npz
    from ..plots.evaluate import plot_map

    arrays = {}
    for method, plane in report.maps.items():
        row = next(r for r in report.results if r.method == method)
        title = f"{method}: kNN accuracy {100 * row.accuracy:.1f}% (n={row.n})"
        save_figure(plot_map(plane.coords, plane.labels, test=plane.test, classes=classes, title=title),
                    out / f"map_{method}.png")
        arrays.update({f"{method}_coords": plane.coords, f"{method}_labels": plane.labels,
                       f"{method}_test": plane.test})
    save_npz(out / "maps.npz", **arrays)


def _parse_queries(values: list[str], image_size: int, mean, std) -> tuple[list, list[str]]:
    """Each --query value as a dataset index (int) or a loaded image tensor, with its display name."""
    from ..data import load_image

    queries, names = [], []
    for value in values:
        path = Path(value)
        if path.is_file():
            queries.append(load_image(path, image_size, mean=mean, std=std))
            names.append(path.name)
        elif value.lstrip("-").isdigit():
            queries.append(int(value))
            names.append(value)
        else:
            raise DataError(f"--query {value}: neither a dataset index nor an existing image file")
    return queries, names


def run_similarity(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from ..analysis.similarity import similar_images
    from ..data import denormalize
    from ..io import atomic_path, save_figure, to_json, write_csv
    from ..plots.evaluate import plot_similarity_grid

    preflight(args, "figure")
    model = load_checkpoint_from_args(args).model
    dataset = _dataset(args, model, args.split)
    queries, query_names = _parse_queries(args.query, model.config.img_size, dataset.mean, dataset.std)

    def rgb(x: torch.Tensor) -> np.ndarray:
        return denormalize(x, dataset.mean, dataset.std).permute(1, 2, 0).numpy()

    frames, rows = [], []
    for ratio in args.mask_ratio:
        result = similar_images(model, dataset, queries, top_k=args.top_k, mask_ratio=ratio, masking=args.mask,
                                pool=args.pool, seed=args.seed, batch_size=args.batch_size, device=args.device,
                                num_workers=args.num_workers, quiet=args.quiet)
        frames.append(result.to_frame(query_names, ids=dataset.ids, labels=dataset.labels, mask_ratio=ratio))
        for q, query in enumerate(queries):
            image = query if isinstance(query, torch.Tensor) else dataset[query][0]
            rows.append((f"{query_names[q]} (r={ratio:g})", rgb(image),
                         [rgb(dataset[int(i)][0]) for i in result.indices[q]], result.scores[q],
                         [str(dataset.ids[int(i)]) for i in result.indices[q]]))
    table = pd.concat(frames, ignore_index=True)
    k = min(len(r[2]) for r in rows)
    fig = plot_similarity_grid(np.stack([r[1] for r in rows]), np.stack([np.stack(r[2][:k]) for r in rows]),
                               np.stack([r[3][:k] for r in rows]), row_titles=[r[0] for r in rows],
                               neighbour_titles=np.array([r[4][:k] for r in rows]))
    figure, csv = args.out, args.out.with_suffix(".csv")
    # both files are renamed into place only once both are written: a crash leaves neither
    with atomic_path(figure) as figure_tmp, atomic_path(csv) as csv_tmp:
        save_figure(fig, figure_tmp, format=figure.suffix.lstrip(".") or "png")  # the staging name's suffix is not it
        write_csv(csv_tmp, table)
    if args.json:
        print(to_json({"figure": str(figure), "csv": str(csv), "results": table.to_dict(orient="records")}))
    elif not args.quiet:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"wrote {figure} and {csv}")
    return 0
