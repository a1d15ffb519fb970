"""Multimodal3DIdent-style scenes in 2-D: factors, sampling and rendering in pure JAX.

The paper's image/text experiment renders a 3-D object with Blender. Here the object is
a 2-D signed-distance shape, so batches are drawn and rendered inside jit (`size` and
`n` static, memory O(n·size²)). Factors mirror the real data set:

- content, shared with the text: `shape` (7 classes), `x`, `y` (3 grid cells each);
- style: `hue`, the object colour (the text names it from the sample's `palette`);
- image-specific: `rotation`, `light_position`, `light_hue`, `background_hue`;
- text-specific: `phrasing` (and `palette`, which is only seen through the colour name).

Example:
    >>> import jax
    >>> factors = sample_factors(jax.random.PRNGKey(0), 4)
    >>> images = jax.jit(render, static_argnames="size")(factors, size=32)
    >>> images.shape, bool(images.min() >= 0) and bool(images.max() <= 1)
    ((4, 32, 32, 3), True)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

X_POSITIONS = ("left", "center", "right")
Y_POSITIONS = ("top", "mid", "bottom")
NUM_PALETTES = 3  # colour-name palettes, see `sentences.PALETTES`
NUM_PHRASINGS = 5  # sentence templates, see `sentences.TEMPLATES`

RADIUS = 0.13  # object radius (one local unit) as a fraction of the image side
BACKGROUND_SV = (0.6, 0.5)  # saturation, value of the background: darker than the object
OBJECT_SV = (1.0, 1.0)  # as Blender's object colour in the real data set
LIGHT_SV = (0.8, 1.0)
LIGHT_ARC = 0.4  # the light's centre lies on the upper half-circle of this radius
LIGHT_WIDTH = 0.3  # standard deviation of its Gaussian glow
LIGHT_STRENGTH = 0.35  # added to the background (whose value stays <= 0.85)
OBJECT_SHADING = 0.25  # the object's brightness varies by this much with the glow


class Factors(NamedTuple):
    """Ground-truth factors of a batch; every field has shape (n,)."""

    shape: jax.Array  # int32 in 0..6, index into SHAPES
    x: jax.Array  # int32 in 0..2, X_POSITIONS
    y: jax.Array  # int32 in 0..2, Y_POSITIONS (0 = top)
    hue: jax.Array  # float32 in [0, 1], object colour
    rotation: jax.Array  # float32 in [0, 1], in-plane rotation / 2π
    light_position: jax.Array  # float32 in [0, 1], position on the light's arc
    light_hue: jax.Array  # float32 in [0, 1]
    background_hue: jax.Array  # float32 in [0, 1]
    palette: jax.Array  # int32 in 0..2, the palette that names the colour
    phrasing: jax.Array  # int32 in 0..4, the sentence template


def hsv_to_rgb(h, s, v) -> jax.Array:
    """HSV -> RGB like `colorsys.hsv_to_rgb`; inputs broadcast, output gets a last axis 3."""
    h, s, v = (jnp.asarray(a, jnp.float32)[..., None] for a in (h, s, v))
    k = jnp.mod(jnp.array([5.0, 3.0, 1.0]) + 6 * h, 6)
    return v - v * s * jnp.clip(jnp.minimum(k, 4 - k), 0, 1)


# Signed distances (negative inside) in local units: object radius about 1, y down.
# Each shape's centroid is at the origin, so rotation keeps it in its grid cell.
def _box(x, y, half_x, half_y):
    dx, dy = jnp.abs(x) - half_x, jnp.abs(y) - half_y
    return jnp.hypot(jnp.maximum(dx, 0), jnp.maximum(dy, 0)) + jnp.minimum(jnp.maximum(dx, dy), 0)


def _triangle(x, y, half_side):
    """Equilateral, pointing up (after Inigo Quilez's sdEquilateralTriangle)."""
    k = 3**0.5
    x, y = jnp.abs(x) - half_side, -y + half_side / k
    fold = x + k * y > 0
    x, y = jnp.where(fold, (x - k * y) / 2, x), jnp.where(fold, (-k * x - y) / 2, y)
    x = x - jnp.clip(x, -2 * half_side, 0)
    return -jnp.hypot(x, y) * jnp.sign(y)


def _star(x, y, outer, inner):
    """Five-pointed star (after Inigo Quilez's sdStar5); `inner` is the relative depth."""
    kx, ky = 0.809016994375, -0.587785252292
    x, y = jnp.abs(x), -y
    t = 2 * jnp.maximum(kx * x + ky * y, 0)
    x, y = x - t * kx, y - t * ky
    t = 2 * jnp.maximum(-kx * x + ky * y, 0)
    x, y = x + t * kx, y - t * ky
    x, y = jnp.abs(x), y - outer
    bx, by = -inner * ky, inner * kx - 1
    h = jnp.clip((x * bx + y * by) / (bx * bx + by * by), 0, outer)
    return jnp.hypot(x - bx * h, y - by * h) * jnp.sign(y * bx - x * by)


def _heart(x, y, scale=1.6, centroid=0.657):
    """Inigo Quilez's sdHeart, scaled by `scale` and shifted so its centroid is at 0."""
    x, y = jnp.abs(x) / scale, -y / scale + centroid
    lobe = jnp.hypot(x - 0.25, y - 0.75) - 2**0.5 / 4
    m = 0.5 * jnp.maximum(x + y, 0)
    body = jnp.sqrt(jnp.minimum(x**2 + (y - 1) ** 2, (x - m) ** 2 + (y - m) ** 2)) * jnp.sign(x - y)
    return scale * jnp.where(x + y > 1, lobe, body)


_SDFS = {
    "circle": lambda x, y: jnp.hypot(x, y) - 0.85,
    "square": lambda x, y: _box(x, y, 0.75, 0.75),
    "triangle": lambda x, y: _triangle(x, y, 0.95),
    "star": lambda x, y: _star(x, y, 1.05, 0.45),
    "cross": lambda x, y: jnp.minimum(_box(x, y, 1.0, 0.3), _box(x, y, 0.3, 1.0)),
    "ring": lambda x, y: jnp.abs(jnp.hypot(x, y) - 0.72) - 0.25,
    "heart": _heart,
}
SHAPES = tuple(_SDFS)


def sample_factors(key: jax.Array, n: int, position_dependent_color: bool = False) -> Factors:
    """Draw n scenes: discrete factors uniform over their values, continuous ones U[0, 1].

    With `position_dependent_color` the hue is uniform on the third of [0, 1] given by
    the x-position (left: [0, 1/3), center: [1/3, 2/3), right: [2/3, 1)), as the
    data set's `--position-dependent-color` option. The other factors do not change.
    """
    keys = jax.random.split(key, len(Factors._fields))

    def integers(k, count):
        return jax.random.randint(k, (n,), 0, count, dtype=jnp.int32)

    unit = [jax.random.uniform(k, (n,)) for k in keys[3:8]]
    x = integers(keys[1], len(X_POSITIONS))
    hue = (x + unit[0]) / 3 if position_dependent_color else unit[0]
    return Factors(
        integers(keys[0], len(SHAPES)),
        x,
        integers(keys[2], len(Y_POSITIONS)),
        hue,
        *unit[1:],
        integers(keys[8], NUM_PALETTES),
        integers(keys[9], NUM_PHRASINGS),
    )


def _grid(size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel-centre coordinates in [0, 1], broadcastable to (1, size, size)."""
    t = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
    return t[None, None, :], t[None, :, None]


def coverage(factors: Factors, size: int = 64) -> jax.Array:
    """(n, size, size) fraction of each pixel the object covers (smoothstep over 1 pixel).

    The object sits at the centre of its cell ((x + 0.5) / 3, (y + 0.5) / 3) of the image,
    rotated by rotation · 2π.
    """
    u, v = _grid(size)
    dx = u - ((factors.x + 0.5) / 3)[:, None, None]
    dy = v - ((factors.y + 0.5) / 3)[:, None, None]
    angle = 2 * jnp.pi * factors.rotation[:, None, None]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    qx, qy = (cos * dx + sin * dy) / RADIUS, (cos * dy - sin * dx) / RADIUS
    shape = factors.shape[:, None, None]
    sdfs = [sdf(qx, qy) for sdf in _SDFS.values()]
    distance = jnp.select([shape == k for k in range(len(SHAPES) - 1)], sdfs[:-1], sdfs[-1])
    t = jnp.clip(0.5 - distance * RADIUS * size, 0, 1)
    return t * t * (3 - 2 * t)


def render(factors: Factors, size: int = 64) -> jax.Array:
    """(n, size, size, 3) float32 images in [0, 1].

    Background: hue `background_hue` at saturation/value BACKGROUND_SV (0.6, 0.5). A light
    of hue `light_hue` (LIGHT_SV) centred on the upper half-circle of radius LIGHT_ARC
    around the image centre (angle (light_position - 0.5)·π from the top) adds a Gaussian
    glow to the background and shades the object (brightness 1 - OBJECT_SHADING .. 1).
    Object: hue `hue` at full saturation and value, composited with `coverage`.
    """
    u, v = _grid(size)
    angle = (factors.light_position - 0.5) * jnp.pi
    light_x = (0.5 + LIGHT_ARC * jnp.sin(angle))[:, None, None]
    light_y = (0.5 - LIGHT_ARC * jnp.cos(angle))[:, None, None]
    glow = jnp.exp(-((u - light_x) ** 2 + (v - light_y) ** 2) / (2 * LIGHT_WIDTH**2))[..., None]

    def color(hue, sv):
        return hsv_to_rgb(hue, *sv)[:, None, None, :]

    background = color(factors.background_hue, BACKGROUND_SV) + LIGHT_STRENGTH * glow * color(
        factors.light_hue, LIGHT_SV
    )
    obj = color(factors.hue, OBJECT_SV) * (1 - OBJECT_SHADING + OBJECT_SHADING * glow)
    alpha = coverage(factors, size)[..., None]
    return background + alpha * (obj - background)
