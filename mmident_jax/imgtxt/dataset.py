"""Export scenes to, and load them from, the folder layout of Multimodal3DIdent.

Layout (github.com/imantdaunhawer/Multimodal3DIdent, README.md)::

    DIR/images/000000.png ...   zero-padded to ceil(log10 n) digits, as generate_images.py
    DIR/text/text_raw.txt       one sentence per line
    DIR/latents_image.csv       header row, one row per sample
    DIR/latents_text.csv

Columns are those of the data set's generate_latents.py, in its order. Our factors map to:

- latents_image.csv: object_shape = shape, object_xpos = x, object_ypos = y,
  object_zpos = 0 (constant there too), object_alpharot = object_betarot = 0.5
  (no out-of-plane rotation: Blender maps [0, 1] to [-π/2, π/2]; written because the
  original `datasets.py` requires them), object_gammarot = rotation (in-plane, ·2π here),
  object_color = hue, spotlight_pos = light_position, spotlight_color = light_hue,
  background_color = background_hue.
- latents_text.csv: object_shape, object_xpos, object_ypos, object_zpos as above,
  object_color_name = the colour's name, object_color_index = its index in
  `sentences.COLOR_NAMES` (the real data set indexes its sorted names instead),
  text_phrasing = phrasing, and our own color_palette = palette (not in the real data).

`load` reads this layout or the real data set (any extra columns are kept). PNG files
need Pillow: `pip install 'mmident-jax[images]'`.

Example:
    >>> import tempfile, jax
    >>> from mmident_jax.imgtxt.scenes import sample_factors
    >>> directory = tempfile.mkdtemp()
    >>> export(directory, sample_factors(jax.random.PRNGKey(0), 3), size=32)
    >>> images, texts, latents = load(directory)
    >>> images.shape, images.dtype, len(texts), latents["object_shape"].tolist()
    ((3, 32, 32, 3), dtype('uint8'), 3, [1, 6, 2])
"""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np

from mmident_jax.imgtxt.scenes import Factors, render
from mmident_jax.imgtxt.sentences import COLOR_NAMES, color_name, strings

IMAGE_COLUMNS = {  # column -> Factors field, or a constant
    "object_shape": "shape",
    "object_xpos": "x",
    "object_ypos": "y",
    "object_zpos": 0.0,
    "object_alpharot": 0.5,
    "object_betarot": 0.5,
    "object_gammarot": "rotation",
    "object_color": "hue",
    "spotlight_pos": "light_position",
    "spotlight_color": "light_hue",
    "background_color": "background_hue",
}
TEXT_COLUMNS = (
    "object_shape",
    "object_xpos",
    "object_ypos",
    "object_zpos",
    "object_color_name",
    "object_color_index",
    "text_phrasing",
    "color_palette",
)
_CHUNK = 256  # samples rendered at a time by `export`
_render = jax.jit(render, static_argnames="size")


class DatasetError(ValueError):
    """A data set folder that cannot be read; the message names the file."""


def _pillow():
    try:
        from PIL import Image
    except ImportError as err:
        raise DatasetError(
            "reading and writing PNG files needs Pillow, which is not installed: pip install 'mmident-jax[images]'"
        ) from err
    return Image


def image_path(directory, index: int, n: int) -> Path:
    """DIR/images/<index>.png, zero-padded to ceil(log10 n) digits like the data set."""
    return Path(directory) / "images" / f"{index:0{len(str(max(n - 1, 0)))}d}.png"


def to_uint8(images) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (rounded); uint8 images are returned unchanged."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def _write_csv(path: Path, columns: dict[str, list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))


def export(directory, factors: Factors, images=None, size: int = 64) -> None:
    """Write the scenes' images, sentences and latents in the Multimodal3DIdent layout.

    `images` (n, H, W, 3), float in [0, 1] or uint8, default: `render(factors, size)`.
    Existing files of the same names are overwritten.
    """
    image_module = _pillow()
    factors = Factors(*jax.device_get(factors))
    n = len(factors.shape)
    if images is not None and len(images) != n:
        raise ValueError(f"{len(images)} images for {n} scenes")
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    (directory / "text").mkdir(exist_ok=True)
    for start in range(0, n, _CHUNK):
        part = Factors(*(field[start : start + _CHUNK] for field in factors))
        batch = to_uint8(_render(part, size=size) if images is None else images[start : start + _CHUNK])
        for index, image in enumerate(batch, start):
            image_module.fromarray(image).save(image_path(directory, index, n))
    (directory / "text" / "text_raw.txt").write_text("\n".join(strings(factors)))
    fields = factors._asdict()
    _write_csv(
        directory / "latents_image.csv",
        {
            column: fields[value].tolist() if isinstance(value, str) else [value] * n
            for column, value in IMAGE_COLUMNS.items()
        },
    )
    color_index = np.asarray(color_name(factors.hue, factors.palette)).tolist()
    _write_csv(
        directory / "latents_text.csv",
        dict(
            zip(
                TEXT_COLUMNS,
                (
                    factors.shape.tolist(),
                    factors.x.tolist(),
                    factors.y.tolist(),
                    [0.0] * n,
                    [COLOR_NAMES[i] for i in color_index],
                    color_index,
                    factors.phrasing.tolist(),
                    factors.palette.tolist(),
                ),
            )
        ),
    )


def _column(values: list[str]) -> np.ndarray:
    """CSV strings -> int64, else float64, else str array."""
    for dtype in (np.int64, np.float64):
        try:
            return np.array([dtype(v) for v in values])
        except ValueError:
            pass
    return np.array(values)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, ValueError) as err:  # ValueError: not UTF-8 text
        raise DatasetError(f"cannot read {path}: {err}") from err


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    rows = list(csv.reader(_read_text(path).splitlines()))
    if len(rows) < 2 or any(len(row) != len(rows[0]) for row in rows):
        raise DatasetError(f"{path} needs a header and rows of the same length")
    header, *rows = rows
    return {name: _column([row[i] for row in rows]) for i, name in enumerate(header)}


def load(directory, size: int | None = None) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Read a Multimodal3DIdent-layout folder: ours or the real data set.

    Returns uint8 images (n, H, W, 3) (RGBA is converted to RGB; resized to size x size
    if `size` is given), the n sentences, and the latents: the columns of
    latents_image.csv, then those of latents_text.csv it lacks (the shared ones must
    agree). Raises DatasetError naming the file for a missing file, a count mismatch,
    an unreadable image or differently sized images.
    """
    image_module = _pillow()
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"missing folder {directory}")
    paths = {name: directory / name for name in ("latents_image.csv", "latents_text.csv")}
    paths["text"] = directory / "text" / "text_raw.txt"
    for path in paths.values():
        if not path.is_file():
            raise DatasetError(f"missing file {path}")
    latents = _read_csv(paths["latents_image.csv"])
    n = len(next(iter(latents.values())))
    for name, column in _read_csv(paths["latents_text.csv"]).items():
        if len(column) != n:
            raise DatasetError(
                f"{paths['latents_text.csv']} has {len(column)} rows, expected {n} as in {paths['latents_image.csv']}"
            )
        if name in latents and not np.array_equal(latents[name], column):
            raise DatasetError(
                f"{paths['latents_text.csv']}: column {name} disagrees with {paths['latents_image.csv']}"
            )
        latents.setdefault(name, column)
    texts = _read_text(paths["text"]).splitlines()
    if len(texts) != n:
        raise DatasetError(f"{paths['text']} has {len(texts)} lines, expected {n} as in {paths['latents_image.csv']}")
    images = []
    for index in range(n):
        path = image_path(directory, index, n)
        if not path.is_file():
            raise DatasetError(f"missing image {path}")
        try:
            with image_module.open(path) as image:
                image = image.convert("RGB")
                if size is not None:
                    image = image.resize((size, size), image_module.Resampling.BILINEAR)
                images.append(np.asarray(image))
        except (OSError, SyntaxError, ValueError) as err:
            raise DatasetError(f"unreadable image {path}: {err}") from err
        if images[-1].shape != images[0].shape:
            raise DatasetError(f"image {path} is {images[-1].shape[:2]}, expected {images[0].shape[:2]} as the first")
    return np.stack(images), texts, latents
