"""Input data: one seeded source for verification, BN warm-up and (later) calibration.

Synthetic inputs look like natural images rather than white noise: a few octaves of smooth colour
noise plus a gradient, in [0, 1], then normalised the way the recipe says. Real images come from a
folder and go through the same resize + normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a (C, h, w) grid to (C, height, width) with numpy only."""
    channels, h, w = grid.shape
    ys = np.linspace(0, h - 1, height)
    xs = np.linspace(0, w - 1, width)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[None, :, None]
    wx = (xs - x0)[None, None, :]
    top = grid[:, y0][:, :, x0] * (1 - wx) + grid[:, y0][:, :, x1] * wx
    bottom = grid[:, y1][:, :, x0] * (1 - wx) + grid[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def synthetic_pixels(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Natural-looking pixels in [0, 1] with the given (N, C, H, W) shape."""
    batch, channels, height, width = shape
    images = np.empty(shape, dtype=np.float32)
    for i in range(batch):
        img = np.zeros((channels, height, width))
        for octave, weight in ((2, 0.5), (4, 0.3), (8, 0.15), (16, 0.05)):
            grid = rng.normal(size=(channels, octave + 1, octave + 1))
            img += weight * _upsample(grid, height, width)
        gy, gx = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
        angle = rng.uniform(0, 2 * np.pi)
        img += 0.3 * (np.cos(angle) * gx + np.sin(angle) * gy)[None]
        img += 0.02 * rng.normal(size=img.shape)  # sensor noise keeps some high frequencies
        img = (img - img.min()) / max(img.max() - img.min(), 1e-6)
        images[i] = img
    return images


def normalize(pixels: np.ndarray, normalization: Mapping[str, Sequence[float]]) -> np.ndarray:
    channels = pixels.shape[1]
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    if mean.size not in (1, channels) or std.size not in (1, channels):
        raise InputError(f"normalisation has {mean.size} means for {channels} channels")
    mean = mean.reshape(1, -1, 1, 1) if mean.size > 1 else mean
    std = std.reshape(1, -1, 1, 1) if std.size > 1 else std
    return ((pixels - mean) / std).astype(np.float32)


def synthetic_inputs(
    input_shapes: Mapping[str, Sequence[int]],
    normalization: Mapping[str, Sequence[float]],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One seeded, normalised sample per input name."""
    rng = np.random.default_rng(seed)
    return {
        name: normalize(synthetic_pixels(shape, rng), normalization) for name, shape in input_shapes.items()
    }


def synthetic_samples(
    input_shapes: Mapping[str, Sequence[int]],
    normalization: Mapping[str, Sequence[float]],
    count: int,
    seed: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    for i in range(count):
        yield synthetic_inputs(input_shapes, normalization, seed=seed + i)


def image_folder_pixels(folder: Path, shape: Sequence[int], limit: int | None = None) -> Iterator[np.ndarray]:
    """Decode every image in a folder, resized to (H, W) of `shape`, as (1, C, H, W) pixels in [0, 1]."""
    from PIL import Image

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    _, channels, height, width = shape
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise InputError(f"cannot load images for a {channels}-channel input")
    for path in paths[:limit]:
        try:
            with Image.open(path) as img:
                img = img.convert(mode).resize((width, height), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except OSError as exc:
            raise InputError(f"cannot read image {path}: {exc}") from None
        arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
        yield arr[None]


def _batches(arrays: Mapping[str, np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
    count = min(len(a) for a in arrays.values()) // batch
    return [{k: np.ascontiguousarray(a[i * batch:(i + 1) * batch]) for k, a in arrays.items()} for i in range(count)]


def calibration_samples(
    source: Path | None,
    input_shapes: Mapping[str, Sequence[int]],
    normalization: Mapping[str, Sequence[float]],
    count: int,
) -> tuple[list[dict[str, np.ndarray]], str]:
    """Calibration batches shaped like the graph's inputs, and a description of their source.

    `source` is a folder of images (single image input), an .npz keyed by input name holding
    [N, C, H, W] arrays already normalised, or None for seeded synthetic images.
    """
    if count < 1:
        raise InputError(f"calibration needs at least one sample, not {count}")
    batch = next(iter(input_shapes.values()))[0]
    if source is None:
        # seeds apart from the verification inputs (1, 2, ...) so the check does not see its own data
        return list(synthetic_samples(input_shapes, normalization, count, seed=5_000)), "synthetic"
    source = Path(source)
    if source.is_dir():
        if len(input_shapes) != 1:
            raise InputError(f"an image folder can only calibrate a single-input model, not {list(input_shapes)}")
        name, shape = next(iter(input_shapes.items()))
        pixels = list(image_folder_pixels(source, shape, limit=count * batch))
        if len(pixels) < batch:
            raise InputError(f"{source} has {len(pixels)} images, fewer than one batch of {batch}")
        stacked = normalize(np.concatenate(pixels), normalization)
        return _batches({name: stacked}, batch), f"images:{source}"
    if source.suffix == ".npz":
        try:
            with np.load(source) as archive:
                arrays = {k: archive[k] for k in archive.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read calibration data {source}: {exc}") from None
        if set(arrays) != set(input_shapes):
            raise InputError(f"{source} holds arrays {sorted(arrays)}; the model's inputs are {sorted(input_shapes)}")
        for name, shape in input_shapes.items():
            array = arrays[name]
            if array.ndim != len(shape) or tuple(array.shape[1:]) != tuple(shape[1:]):
                raise InputError(
                    f"{source}: {name!r} has shape {list(array.shape)}, expected [N, {', '.join(map(str, shape[1:]))}]"
                )
            arrays[name] = array.astype(np.float32)[: count * batch]
        batches = _batches(arrays, batch)
        if not batches:
            raise InputError(f"{source} holds fewer than one batch of {batch} samples")
        return batches, f"npz:{source}"
    if not source.exists():
        raise InputError(f"calibration data not found: {source}")
    raise InputError(f"calibration data must be an image folder or an .npz file, not {source}")
