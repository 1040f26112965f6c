"""Plain summaries of data sets and sources, and their text rendering (for ``maelens data``)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from .load import load_dataset
from .sources import DATASET_SOURCES, FASHION_MNIST_DIR, PHOTO_COLLECTIONS


def dataset_info(spec: str, image_size: int, quiet: bool = True) -> dict[str, Any]:
    """Size of each split, classes, storage and sources of ``spec`` at ``image_size``."""
    parts = {split: load_dataset(spec, image_size=image_size, split=split, quiet=quiet) for split in ("train", "test")}
    train, test = parts["train"], parts["test"]
    counts = {name: train.class_counts().get(name, 0) + test.class_counts().get(name, 0)
              for name in {**train.class_counts(), **test.class_counts()}}
    builtin = DATASET_SOURCES.get(spec.partition(":")[0])
    return {"data": spec, "image_size": image_size, "num_images": len(train) + len(test),
            "num_train": len(train), "num_test": len(test), "num_classes": len(train.classes),
            "classes": train.classes, "class_counts": dict(sorted(counts.items())), "storage": train.storage,
            "licence": builtin.licence if builtin else "the user's own data",
            "sources": list(dict.fromkeys(train.sources + test.sources))}


def prepare(spec: str, image_sizes: list[int], quiet: bool = True) -> list[dict[str, Any]]:
    """Build (and cache) ``spec`` at each size, decoding every image once so that unreadable files
    surface now; one summary row per size."""
    rows = []
    for size in image_sizes:
        ds = load_dataset(spec, image_size=size, split="all", quiet=quiet)
        for i in tqdm(range(len(ds)), desc=f"checking {size}px", unit="img", disable=quiet):
            ds.pixels(i)
        rows.append({"data": spec, "image_size": size, "num_images": len(ds), "num_classes": len(ds.classes),
                     "storage": ds.storage, "sources": ds.sources[:1]})
    return rows


def sources_info() -> dict[str, Any]:
    """Every built-in ``--data`` value and every photo collection, with licences and install state."""
    return {
        "datasets": [{"spec": s.spec, "summary": s.summary, "labels": s.labels, "split": s.split,
                      "licence": s.licence, "install": s.install} for s in DATASET_SOURCES.values()],
        "collections": [{"name": c.name, "package": c.package, "root": str(c.root),
                         "installed": len(c.installed()), "photos": len(c.photos), "install": c.install,
                         "licences": sorted({p.licence for p in c.photos}), "note": c.note}
                        for c in PHOTO_COLLECTIONS],
        "fashion_mnist_installed": (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    }


def format_info(info: dict[str, Any], max_classes: int = 20) -> str:
    """A short human-readable report of :func:`dataset_info`."""
    lines = [f"data          {info['data']}",
             f"images        {info['num_images']} ({info['num_train']} train, {info['num_test']} test)",
             f"image size    {info['image_size']}x{info['image_size']} model input; stored as {info['storage']}",
             f"classes       {info['num_classes'] or 'none (unlabelled)'}",
             f"licence       {info['licence']}"]
    counts = list(info["class_counts"].items())
    for name, n in counts[:max_classes]:
        lines.append(f"  {n:>7}  {name}")
    if len(counts) > max_classes:
        lines.append(f"  ... and {len(counts) - max_classes} more classes")
    lines.append("sources")
    lines += [f"  {s}" for s in info["sources"]]
    return "\n".join(lines)


def format_sources(info: dict[str, Any]) -> str:
    """A human-readable report of :func:`sources_info`."""
    lines = ["built-in data sets (--data)"]
    for d in info["datasets"]:
        lines += [f"  {d['spec']}", f"      {d['summary']}", f"      labels: {d['labels']}",
                  f"      split: {d['split']}", f"      licence: {d['licence']}"]
        if d["install"]:
            lines.append(f"      install: {d['install']}")
    lines.append(f"  fashion-mnist installed: {'yes' if info['fashion_mnist_installed'] else 'no'}")
    lines.append("photo collections")
    for c in info["collections"]:
        lines.append(f"  {c['name']:<28} {c['installed']:>3}/{c['photos']:<3} installed   {c['install']}")
        lines.append(f"      licences: {'; '.join(c['licences'])}")
    return "\n".join(lines)

__all__ = ["dataset_info", "format_info", "format_sources", "prepare", "sources_info"]
