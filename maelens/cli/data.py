"""``maelens data info|prepare|sources``: describe, build and check data sets; list built-in sources."""

from __future__ import annotations

import argparse

from .common import positive_int

_SPEC_HELP = ("bundled | photos[:K|full] | backgrounds[:K|full] | fashion-mnist | an ImageFolder, CIFAR, "
              "downsampled-ImageNet, Places365 file-list or IDX directory | a .npz file; :classes=A,B keeps "
              "those classes (default: %(default)s)")


def register(subparsers) -> None:
    """Add the ``data`` command and its sub-commands."""
    parser = subparsers.add_parser("data", help="describe, prepare and list data sets",
                                   description="Describe, prepare (build, cache, check) and list data sets.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="images, splits, classes and sources of a data set")
    _add_common(info)
    info.add_argument("--image-size", type=positive_int, default=64, metavar="S", help="model input size (default: %(default)s)")
    info.set_defaults(func=run_info)

    prep = sub.add_parser("prepare", help="build and cache a data set, decoding every image once")
    _add_common(prep)
    prep.add_argument("--image-size", type=positive_int, nargs="+", default=[32, 64], metavar="S",
                      help="model input sizes to prepare (default: 32 64)")
    prep.add_argument("--quiet", action="store_true", help="no progress bars")
    prep.set_defaults(func=run_prepare)

    sources = sub.add_parser("sources", help="built-in data sets, photo collections and their licences")
    sources.add_argument("--json", action="store_true", help="print JSON instead of text")
    sources.set_defaults(func=run_sources)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="bundled", metavar="SPEC", help=_SPEC_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_info(args: argparse.Namespace) -> int:
    from ..data.summary import dataset_info, format_info
    from ..io import to_json

    info = dataset_info(args.data, args.image_size)
    print(to_json(info) if args.json else format_info(info))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.summary import prepare
    from ..io import to_json

    rows = prepare(args.data, args.image_size, quiet=args.quiet or args.json)
    if args.json:
        print(to_json(rows))
    else:
        for r in rows:
            print(f"{r['data']} at {r['image_size']}px: {r['num_images']} images, {r['num_classes']} classes, "
                  f"{r['storage']}; {r['sources'][0] if r['sources'] else ''}")
    return 0


def run_sources(args: argparse.Namespace) -> int:
    from ..data.summary import format_sources, sources_info
    from ..io import to_json

    info = sources_info()
    print(to_json(info) if args.json else format_sources(info))
    return 0
