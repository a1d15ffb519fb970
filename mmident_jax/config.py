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

__all__ = [
    "Config",
    "ConfigError",
    "Encoders",
    "Hyper",
    "Latents",
    "Mixing",
    "Optimisation",
    "PAPER",
    "QUICK",
    "Settings",
    "check",
    "help_of",
    "hyper",
    "replace",
    "setting",
    "validate_parts",
]

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


def setting(default, help: str, **kw) -> Any:
    """A settings field and its help text: the one place a setting is documented (the command
    line's flags and docs/settings.md are made from it, `help_of`)."""
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def help_of(kind: type, name: str) -> str:
    """The help text of setting `name` of the settings class `kind` (or of the class it redeclares
    the field from, with another default).

    >>> help_of(Config, "content_n")
    'content dimensions nc'
    """
    for cls in kind.__mro__:
        field = getattr(cls, "__dataclass_fields__", {}).get(name)
        if field is not None and "help" in field.metadata:
            return field.metadata["help"]
    raise KeyError(f"{kind.__name__}.{name} has no help text")


def check(ok: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `ok`."""
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True, kw_only=True)
class Latents(Settings):
    """The latent marginals and the perturbation every latent model shares (docs/generative-process.md)."""

    style_change_prob: float = setting(
        1.0, "probability p_chg that a perturbed (style) dimension changes between views"
    )
    c_param: float = setting(1.0, "std of the style perturbation (not under statistical dependence)")
    m_param: float = setting(1.0, "std of the latent marginals (not under statistical dependence)")
    wishart: str = setting(
        "shared",
        "Wishart draws under statistical dependence: shared (one per block size, the "
        "original's) or independent (one per block)",
    )


@dataclass(frozen=True, kw_only=True)
class Mixing(Settings):
    """The invertible mixing MLPs, one per view."""

    n_mixing_layer: int = setting(3, "layers of each mixing MLP")
    mixing_init: str = setting("rejection", "mixing weights: rejection (condition-number threshold) or orthogonal")
    cond_pool: int = setting(25_000, "random matrices in the condition-number pool")
    cond_thresh_ratio: float = setting(
        1e-3, "quantile of the pool's condition numbers accepted (0: the pool's best, as cl-ica)"
    )


@dataclass(frozen=True, kw_only=True)
class Encoders(Settings):
    """The encoder MLPs; `encoder_widths=()` means the paper's widths for the inputs."""

    encoder_widths: tuple[int, ...] = setting(
        (), "hidden widths of the encoder MLP, comma-separated (empty: the paper's 10n, 50n x 4, 10n)"
    )
    encoder_init: str = setting(
        "pytorch", "encoder weights and biases: pytorch (nn.Linear's uniform +-1/sqrt(fan_in)) or lecun (Flax's)"
    )
    precision: str = setting("float32", "encoder matmuls: float32, tf32 (GPUs) or bfloat16 compute (float32 params)")


@dataclass(frozen=True, kw_only=True)
class Optimisation(Settings):
    """Adam with optional clipping and schedule (`optim.optimizer`), batch, length and chunks of a run."""

    seed: int = setting(0, "random seed of the run")
    batch_size: int = setting(6144, "samples per step")
    lr: float = setting(1e-4, "peak learning rate")
    lr_schedule: str = setting("constant", "constant or warmup_cosine")
    warmup_steps: int = setting(0, "linear warm-up steps of warmup_cosine")
    grad_clip: float = setting(2.0, "global-norm gradient clipping (0: none)")
    train_steps: int = setting(300_001, "total optimisation steps")
    log_steps: int = setting(1000, "steps between checkpoints and metrics lines")


def validate_parts(cfg) -> None:
    """Raise `ConfigError` naming the first out-of-range setting of the shared parts `cfg` has."""
    if isinstance(cfg, Latents):
        check(0.0 <= cfg.style_change_prob <= 1.0, f"style_change_prob must be in [0, 1], got {cfg.style_change_prob}")
        for name in ("c_param", "m_param"):
            check(getattr(cfg, name) > 0, f"{name} must be > 0, got {getattr(cfg, name)}")
        check(cfg.wishart in WISHART_DRAWS, f"wishart must be one of {', '.join(WISHART_DRAWS)}, got {cfg.wishart!r}")
    if isinstance(cfg, Mixing):
        for name in ("n_mixing_layer", "cond_pool"):
            check(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
        check(0.0 <= cfg.cond_thresh_ratio <= 1.0, f"cond_thresh_ratio must be in [0, 1], got {cfg.cond_thresh_ratio}")
        check(
            cfg.mixing_init in MIXING_INITS,
            f"mixing_init must be one of {', '.join(MIXING_INITS)}, got {cfg.mixing_init!r}",
        )
    if isinstance(cfg, Encoders):
        object.__setattr__(cfg, "encoder_widths", tuple(int(w) for w in cfg.encoder_widths))
        check(all(w >= 1 for w in cfg.encoder_widths), f"encoder_widths must be positive, got {cfg.encoder_widths}")
        for name, allowed in (("precision", PRECISIONS), ("encoder_init", ENCODER_INITS)):
            check(
                getattr(cfg, name) in allowed, f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}"
            )
    if isinstance(cfg, Optimisation):
        for name in ("train_steps", "log_steps"):
            check(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
        for name in ("warmup_steps", "seed"):
            check(getattr(cfg, name) >= 0, f"{name} must be >= 0, got {getattr(cfg, name)}")
        check(cfg.batch_size >= 2, f"batch_size must be >= 2 (contrastive negatives), got {cfg.batch_size}")
        check(cfg.lr > 0, f"lr must be > 0, got {cfg.lr}")
        check(cfg.grad_clip >= 0, f"grad_clip must be >= 0 (0: none), got {cfg.grad_clip}")
        check(
            cfg.lr_schedule in SCHEDULES, f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {cfg.lr_schedule!r}"
        )
        check(
            cfg.lr_schedule != "constant" or cfg.warmup_steps == 0,
            f"warmup_steps {cfg.warmup_steps} applies to the warmup_cosine schedule, not to a constant learning rate",
        )


@dataclass(frozen=True)
class Config(Optimisation, Encoders, Mixing, Latents):
    """Every setting of one two-view run. Defaults are the paper's (ICLR 2023).

    The shared parts (`Latents`, `Mixing`, `Encoders`, `Optimisation`) are defined and
    validated once; the fields below are the two-view latent model's, its encoders' and
    its objective's.
    """

    # Ground-truth latent model (docs/generative-process.md).
    content_n: int = setting(5, "content dimensions nc")
    style_n: int = setting(5, "style dimensions ns")
    modality_n: int = setting(5, "modality-specific dimensions nm (0: none)")
    statistical_dependence: bool = setting(False, "Wishart-correlated latent blocks")
    content_dependent_style: bool = setting(False, "causal dependence s <- s + B c + a")
    discrete_block: str = setting("none", "none, or the block (c, s, m) whose dimensions are discrete")
    categories: int = setting(5, "values k per dimension of the discrete block")
    shared_mixing: bool = setting(False, "one mixing function for both modalities (multi-view)")
    # Encoders g1, g2.
    encoding_size: int = setting(5, "code dimensions")
    shared_encoder: bool = setting(False, "one encoder for both modalities")
    # Objective.
    loss: str = setting("infonce", "objective: infonce (the paper's) or clip")
    similarity: str = setting("l2", "similarity of the clip objective: l2 or cosine")
    temperature: float = setting(1.0, "temperature tau")

    def __post_init__(self):
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
    validate_parts(cfg)
    for name in ("content_n", "encoding_size"):
        check(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("style_n", "modality_n"):
        check(getattr(cfg, name) >= 0, f"{name} must be >= 0, got {getattr(cfg, name)}")
    check(cfg.temperature > 0, f"temperature must be > 0, got {cfg.temperature}")
    check(cfg.grad_clip > 0, f"grad_clip must be > 0 (the two-view runs always clip), got {cfg.grad_clip}")
    for name, allowed in (("loss", LOSSES), ("similarity", SIMILARITIES), ("discrete_block", DISCRETE_BLOCKS)):
        check(getattr(cfg, name) in allowed, f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    check(cfg.categories >= 2, f"categories must be >= 2, got {cfg.categories}")
    if cfg.discrete_block != "none":
        dim = {"c": cfg.content_n, "s": cfg.style_n, "m": cfg.modality_n}[cfg.discrete_block]
        check(dim > 0, f"discrete_block {cfg.discrete_block!r} has no dimensions")
        check(not cfg.statistical_dependence, "statistical_dependence needs continuous blocks (discrete_block is set)")
        check(
            not (cfg.discrete_block == "s" and cfg.content_dependent_style),
            "content_dependent_style needs a continuous style block (discrete_block is 's')",
        )
    # settings that another one would silently ignore
    for name in ("m_param", "c_param"):
        check(
            not cfg.statistical_dependence or getattr(cfg, name) == 1.0,
            f"{name} {getattr(cfg, name)} has no effect under statistical_dependence: like the original, "
            "a Wishart block is N(0, Σ) whatever its scale",
        )
    check(
        cfg.loss == "clip" or cfg.similarity == "l2",
        f"similarity {cfg.similarity!r} applies to the clip loss; infonce is the paper's squared-L2 objective",
    )


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
