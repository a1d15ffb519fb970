"""Settings of the image/text experiment: `ImgTxtConfig`, its presets and encoding-size sweeps.

Example:
    >>> QUICK.image_encoder, QUICK.image_size
    ('cnn', 32)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mmident_jax.config import Optimisation, check, setting, validate_parts

IMAGE_ENCODERS = ("resnet18", "cnn")


@dataclass(frozen=True)
class ImgTxtConfig(Optimisation):
    """One image/text run. Defaults are the paper's (batch 256, Adam at lr 1e-5 without clipping,
    100k steps, ResNet-18); the optimisation part is `config.Optimisation`, validated there."""

    encoding_size: int = setting(4, "code dimensions")
    image_size: int = setting(64, "image side in pixels")
    image_encoder: str = setting("resnet18", "resnet18 (the paper's) or cnn")
    position_dependent_color: bool = setting(False, "hue drawn from the third of [0, 1] of the x-position")
    temperature: float = setting(1.0, "temperature tau")
    eval_size: int = setting(4096, "held-out pairs to fit the probes on (and as many to score them)")
    batch_size: int = field(default=256, kw_only=True)
    lr: float = field(default=1e-5, kw_only=True)
    grad_clip: float = field(default=0.0, kw_only=True)
    train_steps: int = field(default=100_000, kw_only=True)

    def __post_init__(self):
        validate_parts(self)
        for name in ("encoding_size", "image_size", "eval_size"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(
            self.image_encoder in IMAGE_ENCODERS,
            f"image_encoder must be one of {', '.join(IMAGE_ENCODERS)}, got {self.image_encoder!r}",
        )


@dataclass(frozen=True)
class ImgTxtSweep:
    """Encoding sizes x seeds of one base config, like the paper's Fig. 3, crossed with a `grid`
    of its other fields ((field, values) pairs: `mmident_jax.grid`)."""

    base: ImgTxtConfig
    sizes: tuple[int, ...]
    seeds: int
    grid: tuple[tuple[str, tuple], ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """The grid's label columns (beside `encoding_size`)."""
        return tuple(name for name, _ in self.grid)

    def settings(self, base: ImgTxtConfig) -> list[tuple[ImgTxtConfig, tuple]]:
        """(config, grid labels) of `base` crossed with the grid (`grid.expand`)."""
        from mmident_jax import grid

        return grid.expand([(base, ())], {name: list(values) for name, values in self.grid})

    def with_grid(self, values: dict) -> ImgTxtSweep:
        """The sweep crossed with the typed grid `values`; a field of one value sets it in `base`.
        The encoding size is the sweep's own axis, not a grid field."""
        from mmident_jax import grid

        check("encoding_size" not in values, "encoding_size cannot be a grid field: the preset sweeps its sizes")
        base, pairs = grid.fold(self.base, values)
        return replace(self, base=base, grid=pairs)


PAPER = ImgTxtConfig()
# A small CNN on 32x32 images, a larger learning rate and temperature 0.1 (at temperature 1
# the shape is not learned within a few thousand steps): trains on a 2-core CPU in minutes.
QUICK = replace(
    PAPER,
    image_encoder="cnn",
    image_size=32,
    batch_size=128,
    lr=1e-3,
    temperature=0.1,
    train_steps=3000,
    log_steps=500,
    eval_size=2048,
)
