"""Run configuration: one frozen dataclass, its validation, and the paper's and the quick base configs.

Everything that changes shapes or program structure is a field of `Config`
(hashable, so it can be a static argument of `jit`). The numbers a sweep may want
to vary per run without recompiling live in `Hyper`, a pytree of arrays built
from the config by `hyper(cfg)`.

Example:
    >>> cfg = replace(QUICK, style_change_prob=0.75)
    >>> cfg.n_latent, cfg.modality_n
    (15, 5)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

__all__ = ["Config", "ConfigError", "Hyper", "PAPER", "QUICK", "Settings", "check", "hyper", "replace"]

EVAL_BATCH_SIZE = 4096  # samples per evaluation batch, as the original
PROBES = ("linear", "kernel", "mlp")  # evaluation probes
IDENTIFIABILITY_METRICS = ("mcc", "dci", "ceiling")  # evaluation's --metrics (docs/metrics.md)
NONLINEAR_PROBES = ("kernel", "mlp")  # what fills r2_nonlinear: kernel ridge, or the original's --mlp-eval
LOSSES = ("infonce", "clip")
SIMILARITIES = ("l2", "cosine")
MIXING_INITS = ("rejection", "orthogonal")
SCHEDULES = ("constant", "warmup_cosine")
PRECISIONS = ("float32", "tf32", "bfloat16")
WISHART_DRAWS = ("shared", "independent")
ENCODER_INITS = ("pytorch", "lecun")
DISCRETE_BLOCKS = ("none", "c", "s", "m")


class ConfigError(ValueError):
    """A setting is out of range; the message names the setting and the problem."""


class Settings:
    """Serialisation of a frozen dataclass of settings: `to_dict`, and `from_dict` refusing unknown names."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
        return cls(**d)


def check(ok: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `ok`."""
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class Config(Settings):
    """Every setting of one training run. Defaults are the paper's (ICLR 2023)."""

    # Ground-truth latent model (docs/generative-process.md).
    content_n: int = 5
    style_n: int = 5
    modality_n: int = 5
    style_change_prob: float = 1.0
    statistical_dependence: bool = False
    content_dependent_style: bool = False
    c_param: float = 1.0
    m_param: float = 1.0
    wishart: str = "shared"  # "shared": one draw per block size, as the original; "independent": one per block
    discrete_block: str = "none"  # "c", "s" or "m" (m1 and m2): each dimension takes `categories` values
    categories: int = 5  # k, values per dimension of the discrete block
    # Mixing functions f1, f2.
    n_mixing_layer: int = 3
    mixing_init: str = "rejection"
    cond_pool: int = 25_000
    cond_thresh_ratio: float = 1e-3
    shared_mixing: bool = False
    # Encoders g1, g2; `encoder_widths=()` means the paper's widths for n latents.
    encoding_size: int = 5
    encoder_widths: tuple[int, ...] = ()
    shared_encoder: bool = False
    precision: str = "float32"  # encoder matmuls: float32, tf32, or bfloat16 compute
    encoder_init: str = "pytorch"  # "pytorch": nn.Linear's uniform(+-1/sqrt(fan_in)); "lecun": Flax's default
    # Objective.
    loss: str = "infonce"
    similarity: str = "l2"
    temperature: float = 1.0
    # Optimisation.
    seed: int = 0
    batch_size: int = 6144
    lr: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float = 2.0
    train_steps: int = 300_001
    log_steps: int = 1000

    def __post_init__(self):
        object.__setattr__(self, "encoder_widths", tuple(self.encoder_widths))
        validate(self)

    @property
    def n_latent(self) -> int:
        """Dimension of one modality's latent vector and of its observation."""
        return self.content_n + self.style_n + self.modality_n

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths of the encoder MLP (the paper's 10n, 50n x 4, 10n by default)."""
        n = self.n_latent
        return self.encoder_widths or (10 * n, 50 * n, 50 * n, 50 * n, 50 * n, 10 * n)


def validate(cfg: Config) -> None:
    """Raise `ConfigError` naming the first setting that is out of range."""
    for name in ("content_n", "encoding_size", "n_mixing_layer", "cond_pool", "train_steps", "log_steps"):
        check(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("style_n", "modality_n", "warmup_steps", "seed"):
        check(getattr(cfg, name) >= 0, f"{name} must be >= 0, got {getattr(cfg, name)}")
    check(cfg.batch_size >= 2, f"batch_size must be >= 2 (contrastive negatives), got {cfg.batch_size}")
    check(0.0 <= cfg.style_change_prob <= 1.0, f"style_change_prob must be in [0, 1], got {cfg.style_change_prob}")
    check(0.0 < cfg.cond_thresh_ratio <= 1.0, f"cond_thresh_ratio must be in (0, 1], got {cfg.cond_thresh_ratio}")
    for name in ("c_param", "m_param", "temperature", "lr", "grad_clip"):
        check(getattr(cfg, name) > 0, f"{name} must be > 0, got {getattr(cfg, name)}")
    check(all(w >= 1 for w in cfg.encoder_widths), f"encoder_widths must be positive, got {cfg.encoder_widths}")
    for name, allowed in (("loss", LOSSES), ("similarity", SIMILARITIES), ("discrete_block", DISCRETE_BLOCKS),
                          ("mixing_init", MIXING_INITS), ("lr_schedule", SCHEDULES),
                          ("precision", PRECISIONS), ("wishart", WISHART_DRAWS),
                          ("encoder_init", ENCODER_INITS)):
        check(getattr(cfg, name) in allowed, f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    check(cfg.categories >= 2, f"categories must be >= 2, got {cfg.categories}")
    if cfg.discrete_block != "none":
        dim = {"c": cfg.content_n, "s": cfg.style_n, "m": cfg.modality_n}[cfg.discrete_block]
        check(dim > 0, f"discrete_block {cfg.discrete_block!r} has no dimensions")
        check(not cfg.statistical_dependence, "statistical_dependence needs continuous blocks (discrete_block is set)")
        check(not (cfg.discrete_block == "s" and cfg.content_dependent_style),
              "content_dependent_style needs a continuous style block (discrete_block is 's')")
    # settings that another one would silently ignore
    check(cfg.loss == "clip" or cfg.similarity == "l2",
          f"similarity {cfg.similarity!r} applies to the clip loss; infonce is the paper's squared-L2 objective")
    check(cfg.lr_schedule != "constant" or cfg.warmup_steps == 0,
          f"warmup_steps {cfg.warmup_steps} applies to the warmup_cosine schedule, not to a constant learning rate")


class Hyper(NamedTuple):
    """Per-run numbers that may be vmapped over (float32 scalars or arrays)."""

    style_change_prob: Any
    c_param: Any
    m_param: Any
    temperature: Any
    lr: Any


def hyper(cfg: Config) -> Hyper:
    """The config's per-run numbers as float32 arrays."""
    import jax.numpy as jnp  # here, so that reading a config (the CLI's help) does not load JAX

    return Hyper(*(jnp.float32(getattr(cfg, name)) for name in Hyper._fields))


PAPER = Config()

# Small enough to train on a 2-core CPU in minutes; same latent sizes, encoding size,
# objective and latent process as the paper. Flax's LeCun init reaches the quick targets a
# little sooner than PyTorch's (README, "Presets").
QUICK = replace(
    PAPER,
    encoder_widths=(128, 128, 128),
    encoder_init="lecun",
    batch_size=256,
    lr=1e-2,
    lr_schedule="warmup_cosine",
    warmup_steps=500,
    train_steps=30_000,
    log_steps=1000,
)

