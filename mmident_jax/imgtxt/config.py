"""Settings of the image/text experiment: `ImgTxtConfig`, its presets and encoding-size sweeps.

Example:
    >>> QUICK.image_encoder, QUICK.image_size
    ('cnn', 32)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mmident_jax.config import Settings, check

IMAGE_ENCODERS = ("resnet18", "cnn")


@dataclass(frozen=True)
class ImgTxtConfig(Settings):
    """One image/text run. Defaults are the paper's (batch 256, lr 1e-5, 100k steps, ResNet-18)."""

    encoding_size: int = 4
    image_size: int = 64
    image_encoder: str = "resnet18"
    position_dependent_color: bool = False
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 256
    lr: float = 1e-5
    train_steps: int = 100_000
    log_steps: int = 1000
    eval_size: int = 4096  # held-out pairs to fit probes on, and as many to score them

    def __post_init__(self):
        for name in ("encoding_size", "image_size", "train_steps", "log_steps", "eval_size"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}")
        check(self.batch_size >= 2, f"batch_size must be >= 2 (contrastive negatives), got {self.batch_size}")
        check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        for name in ("temperature", "lr"):
            check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        check(self.image_encoder in IMAGE_ENCODERS,
              f"image_encoder must be one of {', '.join(IMAGE_ENCODERS)}, got {self.image_encoder!r}")


@dataclass(frozen=True)
class ImgTxtSweep:
    """Encoding sizes x seeds of one base config, like the paper's Fig. 3."""

    base: ImgTxtConfig
    sizes: tuple[int, ...]
    seeds: int


PAPER = ImgTxtConfig()
# A small CNN on 32x32 images, a larger learning rate and temperature 0.1 (at temperature 1
# the shape is not learned within a few thousand steps): trains on a 2-core CPU in minutes.
QUICK = replace(PAPER, image_encoder="cnn", image_size=32, batch_size=128, lr=1e-3, temperature=0.1,
                train_steps=3000, log_steps=500, eval_size=2048)
