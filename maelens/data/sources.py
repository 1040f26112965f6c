"""Where the built-in datasets' images come from, and under which licence (see ``SOURCES.md``).

Only files that installable packages ship are used: scikit-image's wheel (always present) and,
when installed, Debian packages of wallpaper photographs, OpenCV sample photos and Fashion-MNIST.
File lists are explicit so that a data set never changes because an unrelated package added files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Photo:
    """One source photograph: its file (relative to the collection root), its class in the bundled
    set, licence and author; ``name`` identifies it where ``label`` is shared by several photos."""

    file: str
    label: str
    licence: str
    author: str = ""
    name: str = ""

    @property
    def title(self) -> str:
        """The photograph's unique name (its class in the tile sets)."""
        return self.name or self.label


@dataclass(frozen=True)
class PhotoCollection:
    """Photographs shipped by one package under ``root``."""

    name: str
    package: str
    install: str
    root: Path
    photos: tuple[Photo, ...]
    note: str = ""

    def installed(self) -> list[tuple[Photo, Path]]:
        """The collection's photos present on this machine, in catalogue order."""
        return [(p, self.root / p.file) for p in self.photos if (self.root / p.file).is_file()]


@dataclass(frozen=True)
class DatasetSource:
    """A built-in ``--data`` value: what it is, where its files come from, their licences."""

    spec: str
    summary: str
    origins: tuple[str, ...]
    licence: str
    labels: str
    split: str
    install: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _skimage_root() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


_SK_PD = "public domain"
_SK_CC0 = "CC0-1.0"
_MIDDLEBURY = "no licence stated (Middlebury 2014 stereo benchmark, redistributed in scikit-image, BSD-3-Clause)"

SKIMAGE = PhotoCollection(
    name="scikit-image",
    package="scikit-image (PyPI, a maelens dependency)",
    install="pip install scikit-image",
    root=_skimage_root(),
    photos=(
        Photo("astronaut.png", "astronaut", _SK_PD, "NASA (Eileen Collins)"),
        Photo("brick.png", "brick", _SK_CC0, "CC0Textures (Bricks25)"),
        Photo("camera.png", "camera", _SK_CC0, "Lav Varshney"),
        Photo("chelsea.png", "chelsea", _SK_CC0, "Stefan van der Walt"),
        Photo("coffee.png", "coffee", _SK_CC0, "Rachel Michetti"),
        Photo("color.png", "color", "BSD-3-Clause (scikit-image)", "scikit-image (synthetic colour wheel)"),
        Photo("grass.png", "grass", _SK_CC0, "linolafett (DeviantArt)"),
        Photo("gravel.png", "gravel", _SK_CC0, "CC0Textures (Gravel04)"),
        Photo("hubble_deep_field.jpg", "hubble_deep_field", _SK_PD, "NASA"),
        Photo("ihc.png", "immunohistochemistry", "no known copyright restrictions", "CMMI"),
        Photo("motorcycle_left.png", "motorcycle", _MIDDLEBURY, "Scharstein et al., Middlebury College",
              "motorcycle_left"),
        Photo("motorcycle_right.png", "motorcycle", _MIDDLEBURY, "Scharstein et al., Middlebury College",
              "motorcycle_right"),
        Photo("retina.jpg", "retina", _SK_CC0, "Häggström, Wikimedia Commons"),
        Photo("rocket.jpg", "rocket", _SK_PD, "SpaceX"),
    ),
    note="licences as stated in the docstrings of skimage.data (skimage/data/_fetchers.py)",
)

# The synthetic colour wheel is a class of the bundled set (an easy, colour-only class) but is
# not a photograph, so the photo tile sets leave it out.
SKIMAGE_TILE_EXCLUDE = frozenset({"color.png"})

_MATE = "GPL-2.0-or-later"
MATE_BACKGROUNDS = PhotoCollection(
    name="mate-backgrounds",
    package="mate-backgrounds (Debian)",
    install="apt-get install mate-backgrounds",
    root=Path("/usr/share/backgrounds/mate/nature"),
    photos=tuple(Photo(f"{n}.jpg", f"mate/{n}", _MATE, a) for n, a in (
        ("Aqua", "Charles Barbin"), ("Blinds", "Lennart Poettering, Andrea Cimitan"),
        ("Dune", "Marco Cogoni, Hylke Bons"), ("FreshFlower", "Jens Ansorg"), ("Garden", "Charles Barbin"),
        ("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"), ("LadyBird", "Charles Barbin"),
        ("RainDrops", "blackcombwhistler07"), ("Storm", "Sergey Nazarov"), ("TwoWings", "Charles Barbin"),
        ("Wood", "Jean-François Fortin Tam"), ("YellowFlower", "Charles Barbin"),
    )),
    note="the nature/ photographs only; abstract/ and desktop/ are drawings",
)

_BY4, _BYSA4 = "CC-BY-4.0", "CC-BY-SA-4.0"
LOMIRI_WALLPAPERS = PhotoCollection(
    name="lomiri-wallpapers-16.04",
    package="lomiri-wallpapers-16.04 (Debian)",
    install="apt-get install lomiri-wallpapers-16.04",
    root=Path("/usr/share/backgrounds"),
    photos=tuple(Photo(f"{stem}.jpg", f"lomiri/{stem.split('_by_')[0]}", lic, stem.split("_by_")[1].replace("_", " "))
                 for stem, lic in (
        ("aitzgorri_by_Aitzol_Berasategi", _BY4), ("analogpattern_by_Peter_Nerlich", _BYSA4),
        ("Bridge_by_Sander_Klootwijk", _BYSA4), ("Dragonfly_by_Bolly", _BYSA4),
        ("free_by_Peter_Nerlich", _BYSA4), ("friends_by_Aitzol_Berasategi", _BY4),
        ("greentock_by_Peter_Nerlich", _BYSA4), ("life_by_Aitzol_Berasategi", _BY4),
        ("picosdeeuropa_by_Aitzol_Berasategi", _BY4), ("Picture_0B_by_freespace", _BY4),
        ("Picture_1A_by_freespace", _BY4), ("seeding_by_Clements_Engelhardt", "CC0-1.0"),
        ("sunset_by_Aitzol_Berasategi", _BY4), ("Wine_by_Jakkub_Mede", _BY4),
    )),
    note="umang_by_Abhishek_Mudgal.jpg is left out: an abstract gradient, not a photograph",
)

_PLASMA = "LGPL-3.0 (the wallpaper's metadata.json; Debian's copyright file says GPL-2.0-or-later)"
PLASMA_WALLPAPERS = PhotoCollection(
    name="plasma-workspace-wallpapers",
    package="plasma-workspace-wallpapers (Debian)",
    install="apt-get install plasma-workspace-wallpapers",
    root=Path("/usr/share/wallpapers"),
    photos=tuple(Photo(f"{n}/contents/images/2560x1600.jpg", f"plasma/{n}", _PLASMA, a) for n, a in (
        ("BytheWater", "Maciej Wiklo"), ("ColdRipple", "Risto Saukonpää"), ("ColorfulCups", "Dmitri Popov"),
        ("DarkestHour", "Risto Saukonpää"), ("EveningGlow", "Ian Hex"), ("FallenLeaf", "Martin Klapetek"),
        ("Grey", "Sigi Sagi"), ("Kite", "Risto Saukonpää"), ("OneStandsOut", "Risto Saukonpää"),
        ("Path", "Risto Saukonpää"), ("summer_1am", "Risto Saukonpää"),
    )),
    note="the photographic wallpapers only, at 2560x1600; the others are renders and drawings",
)

_OPENCV = "Apache-2.0 AND BSD-3-Clause (OpenCV source tree, per Debian's copyright file)"
OPENCV_SAMPLES = PhotoCollection(
    name="opencv-doc",
    package="opencv-doc (Debian; install with --no-install-recommends)",
    install="apt-get install --no-install-recommends opencv-doc",
    root=Path("/usr/share/doc/opencv-doc/examples/data"),
    photos=tuple(Photo(f, f"opencv/{f.rsplit('.', 1)[0]}", _OPENCV, "OpenCV samples") for f in (
        "aero1.jpg", "aero3.jpg", "aloeL.jpg", "aloeR.jpg", "apple.jpg", "baboon.jpg", "basketball1.png",
        "basketball2.png", "board.jpg", "box_in_scene.png", "building.jpg", "butterfly.jpg", "chicky_512.png",
        "ela_original.jpg", "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "left.jpg", "leuvenA.jpg",
        "leuvenB.jpg", "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png",
        "rubberwhale2.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg",
    )),
    note="natural photographs among the samples; logos, drawings, renders, calibration boards and "
         "paintings are left out",
)

WALLPAPER_COLLECTIONS = (MATE_BACKGROUNDS, LOMIRI_WALLPAPERS, PLASMA_WALLPAPERS)
PHOTO_COLLECTIONS = (SKIMAGE, *WALLPAPER_COLLECTIONS, OPENCV_SAMPLES)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

DATASET_SOURCES: dict[str, DatasetSource] = {
    "bundled": DatasetSource(
        spec="bundled",
        summary="128 square crops per class (random position, side 12-30% of the photo's shorter side, resized "
                "to the requested size) of 14 scikit-image photographs and textures, 13 classes",
        origins=("scikit-image",),
        licence="public domain / CC0 / BSD-3-Clause, per photograph (see SOURCES.md)",
        labels="the source photograph (the stereo pair motorcycle_left/right is one class)",
        split="96 train crops per class from the left 70% of each photograph, 32 test crops from the right 30%",
    ),
    "photos": DatasetSource(
        spec="photos[:K|full]",
        summary="non-overlapping tiles of every installed photograph, each photo first resized so that its shorter "
                "side holds K tiles (default 8; 'full' keeps the native resolution); tiles with pixel std < 10 skipped",
        origins=tuple(c.name for c in (SKIMAGE, *WALLPAPER_COLLECTIONS, OPENCV_SAMPLES)),
        licence="per photograph (see SOURCES.md)",
        labels="the source photograph",
        split="tiles in the right-most 20% of the tile columns are the test split",
        install="; ".join(c.install for c in (*WALLPAPER_COLLECTIONS, OPENCV_SAMPLES)),
    ),
    "backgrounds": DatasetSource(
        spec="backgrounds[:K|full]",
        summary="the same tiling as 'photos', of the Debian wallpaper photographs only",
        origins=tuple(c.name for c in WALLPAPER_COLLECTIONS),
        licence="GPL-2.0+, CC-BY(-SA)-4.0, CC0-1.0, LGPL-3.0, per photograph (see SOURCES.md)",
        labels="the source photograph",
        split="tiles in the right-most 20% of the tile columns are the test split",
        install="; ".join(c.install for c in WALLPAPER_COLLECTIONS),
    ),
    "fashion-mnist": DatasetSource(
        spec="fashion-mnist",
        summary="Zalando's Fashion-MNIST: 70,000 28x28 grayscale article images, resized and replicated to RGB",
        origins=("dataset-fashion-mnist",),
        licence="MIT (Expat), Copyright 2017 Zalando SE",
        labels="10 clothing classes",
        split="the official files: 60,000 train, 10,000 test",
        install=FASHION_MNIST_INSTALL,
    ),
    "canvas": DatasetSource(
        spec="canvas[:N]",
        summary="canvases of 2-4 Fashion-MNIST articles, each with its own random tint, brightness and contrast, "
                "at random places and scales over crops of the installed photographs; for pretraining, the first N "
                "(default 20,000) of an unlimited seeded stream of unlabelled canvases; for segmentation "
                "(maelens segment --data canvas), 4,096 train / 1,024 test labelled canvases",
        origins=("dataset-fashion-mnist", *(c.name for c in (SKIMAGE, *WALLPAPER_COLLECTIONS, OPENCV_SAMPLES))),
        licence="MIT (Fashion-MNIST) and the photographs' licences (see SOURCES.md)",
        labels="unlabelled for pretraining; per pixel, the article's class (10) or background for segmentation",
        split="train: Fashion-MNIST training items on the left 70% of each photograph; test: the official test "
              "items on the right-most 10%, which no pretraining set trains on",
        install=FASHION_MNIST_INSTALL,
    ),
}

__all__ = ["DATASET_SOURCES", "DatasetSource", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR",
    "FASHION_MNIST_INSTALL", "LOMIRI_WALLPAPERS", "MATE_BACKGROUNDS", "OPENCV_SAMPLES", "PHOTO_COLLECTIONS",
    "PLASMA_WALLPAPERS", "Photo", "PhotoCollection", "SKIMAGE", "SKIMAGE_TILE_EXCLUDE", "WALLPAPER_COLLECTIONS"]
