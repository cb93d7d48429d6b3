"""Pictures the synthetic world is built from: still images that ship inside installed
packages (no downloads) and seeded procedural textures.

The split is fixed: HELD_OUT images appear only in validation streams (seeds >= VAL_SEED_START),
training streams never see them. Procedural textures are seeded, so they are new in both.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from ..styles.ops import gradient_map

VAL_SEED_START = 1_000_000
MAX_IMAGE_SIDE = 512  # images are cached at this size; scenes resize them to what they need


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(filename) as f:
            return np.asarray(Image.open(f).convert("RGB"))

    return load


# Every loader reads files inside an installed package; none touches the network.
IMAGE_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "camera": _skimage("camera"),
    "coins": _skimage("coins"),
    "brick": _skimage("brick"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "moon": _skimage("moon"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "retina": _skimage("retina"),
    "colorwheel": _skimage("colorwheel"),
    "clock": _skimage("clock"),
    "china": _sklearn("china.jpg"),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
    # held out for validation
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "flower": _sklearn("flower.jpg"),
}
HELD_OUT = ("chelsea", "coffee", "rocket", "flower")
TRAIN_IMAGES = tuple(n for n in IMAGE_LOADERS if n not in HELD_OUT)


SEEDS_PER_SPLIT = 100_000  # train worlds are seeds 0.., validation worlds VAL_SEED_START..


def split_of(seed: int) -> str:
    return "val" if seed >= VAL_SEED_START else "train"


def seed_base(split: str) -> int:
    """The first world seed of a split."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    return VAL_SEED_START if split == "val" else 0


def image_names(split: str) -> tuple[str, ...]:
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    return TRAIN_IMAGES if split == "train" else HELD_OUT


@functools.lru_cache(maxsize=None)
def load_image(name: str) -> np.ndarray:
    """An RGB float32 image in [0, 1], longest side at most MAX_IMAGE_SIDE. Grey images
    come back grey (three equal channels); scenes tint them."""
    if name not in IMAGE_LOADERS:
        raise KeyError(f"unknown image {name!r}; known: {', '.join(IMAGE_LOADERS)}")
    a = np.asarray(IMAGE_LOADERS[name]())
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = a[..., :3]
    img = Image.fromarray(a.astype(np.uint8))
    scale = MAX_IMAGE_SIDE / max(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    out = np.asarray(img, dtype=np.float32) / 255.0
    out.flags.writeable = False  # cached and shared: nobody may edit it in place
    return out


def preload_images(split: str) -> None:
    """Load every image of a split into the cache now: an endless stream then holds the same
    memory from its first frame to its last, instead of growing as scenes reach new images."""
    for name in image_names(split):
        load_image(name)


def is_grey(img: np.ndarray) -> bool:
    return bool(np.allclose(img[..., 0], img[..., 1]) and np.allclose(img[..., 1], img[..., 2]))


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-style resize of a float image (PIL per channel keeps it exact in float32)."""
    chans = [
        np.asarray(Image.fromarray(img[..., c]).resize((width, height), Image.BILINEAR))
        for c in range(img.shape[2])
    ]
    return np.stack(chans, axis=2)


# --- procedural textures ---------------------------------------------------------------

def random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """n saturated-but-varied colours (HSV sampled, converted to RGB)."""
    from matplotlib.colors import hsv_to_rgb

    hsv = np.stack([rng.random(n), rng.uniform(0.3, 1.0, n), rng.uniform(0.2, 1.0, n)], axis=1)
    return hsv_to_rgb(hsv).astype(np.float32)


def _normalise(v: np.ndarray) -> np.ndarray:
    lo, hi = v.min(), v.max()
    return (v - lo) / (hi - lo + 1e-8)


def _fractal_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    v = np.zeros((size, size), np.float32)
    for octave, cells in enumerate((4, 8, 16, 32)):
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        v += ndimage.zoom(grid, size / (cells + 1), order=3)[:size, :size] * 0.5**octave
    return _normalise(v)


def _gratings(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    v = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 4)):
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(2, 10), rng.uniform(0, 2 * np.pi)
        v += np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    return _normalise(v)


def _checker(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = int(rng.integers(3, 10))
    y, x = np.mgrid[0:size, 0:size] * cells // size
    v = ((x + y) % 2).astype(np.float32)
    return ndimage.gaussian_filter(v, 1.0)  # soft edges: no aliasing when resampled


def _dots(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = int(rng.integers(3, 9))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) * cells / size
    d = np.hypot((x % 1) - 0.5, (y % 1) - 0.5)
    radius = rng.uniform(0.15, 0.4)
    return np.clip((radius - d) * size / cells + 0.5, 0, 1)


TEXTURE_KINDS = {
    "noise": _fractal_noise,
    "gratings": _gratings,
    "checker": _checker,
    "dots": _dots,
}


def procedural_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A seeded RGB texture in [0, 1]: one pattern kind mapped through 2-4 random colours."""
    kind = list(TEXTURE_KINDS)[rng.integers(len(TEXTURE_KINDS))]
    value = TEXTURE_KINDS[kind](rng, size)
    return gradient_map(value, random_colours(rng, int(rng.integers(2, 5))))


def picture(rng: np.random.Generator, split: str, p_procedural: float = 0.3) -> np.ndarray:
    """A background or sprite picture: a packaged image of the split (grey ones tinted),
    or a procedural texture."""
    if rng.random() < p_procedural:
        return procedural_texture(rng)
    names = image_names(split)
    img = load_image(names[rng.integers(len(names))])
    if is_grey(img):
        tint = random_colours(rng, 2)
        img = gradient_map(img[..., 0], np.stack([tint[0] * 0.3, tint[1] * 0.5 + 0.5]))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)
