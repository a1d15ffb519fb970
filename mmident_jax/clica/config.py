"""The run configuration of cl-ica's and AnInfoNCE's experiments, its per-run numbers and presets.

One latent vector z lives in a space (box, sphere, unbounded) with a marginal; its
positive partner z̃ is drawn from a conditional around it; one invertible mixer g
maps both to observations and one encoder h is trained so that InfoNCE, with the
model's similarity, tells z̃ from the batch's other samples (docs/clica.md). The
model's space and similarity may differ from the truth's: that is cl-ica's mismatch table.

Example:
    >>> cfg = IcaConfig(space="sphere", conditional="vmf", conditional_scale=1.0, model_space="sphere")
    >>> cfg.n, cfg.widths, cfg.similarity
    (10, (100, 500, 500, 500, 500, 100), 'cosine')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from mmident_jax.config import Config, ConfigError, Encoders, Mixing, Optimisation, setting, validate_parts

SPACES = ("box", "sphere", "unbounded")
MARGINALS = ("uniform", "normal", "laplace")
CONDITIONALS = ("vmf", "normal", "laplace", "generalized", "anisotropic")
LOSSES = ("infonce", "aninfonce")
ANISOTROPIES = ("bimodal", "linear")


class IcaError(ConfigError):
    """A cl-ica / AnInfoNCE setting is invalid; the message says which and why."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise IcaError(message)


@dataclass(frozen=True)
class IcaConfig(Optimisation, Encoders, Mixing):
    """One run of the single-mixer contrastive experiment. Defaults are cl-ica's `main_mlp.py`
    (box, uniform marginal, normal conditional of std 0.05, L2 model; batch 6144, Adam at 1e-4,
    300,003 steps, the encoder 10n, 50n x 4, 10n with PyTorch's init, the best-conditioned mixer
    of a pool of 25,000)."""

    n: int = setting(10, "latent dimensions n (and observation and code dimensions)")
    space: str = setting("box", "the latents' space: box ([0, 1]^n), sphere (S^{n-1}) or unbounded (R^n)")
    marginal: str = setting("uniform", "the latents' marginal: uniform (box, sphere), normal or laplace")
    marginal_scale: float = setting(1.0, "std (normal) or scale (laplace) of a non-uniform marginal")
    conditional: str = setting(
        "normal", "positive pairs z̃ | z: vmf (sphere), normal, laplace, generalized (normal of shape p) or anisotropic"
    )
    conditional_scale: float = setting(
        0.05, "the conditional's concentration κ (vmf), std (normal) or scale λ (laplace, generalized)"
    )
    conditional_p: float = setting(3.0, "shape p of the generalized-normal conditional")
    anisotropy: str = setting(
        "bimodal", "Λ of the anisotropic conditional: bimodal (half high, half low) or linear (evenly spaced)"
    )
    lambda_low: float = setting(5.0, "the anisotropic conditional's lowest precision")
    lambda_high: float = setting(25.0, "the anisotropic conditional's highest precision")
    shell: float = setting(0.1, "the anisotropic conditional keeps draws with |1 - ‖y‖| below this, then projects")
    model_space: str = setting(
        "unbounded", "the codes' space: unbounded, sphere (unit-norm codes) or box (sigmoid times learned bounds)"
    )
    loss_p: float = setting(2.0, "p of the model's similarity -Σ|h - h̃|^p / τ (unbounded and box models)")
    loss: str = setting("infonce", "infonce (cl-ica's) or aninfonce (Rusak et al.'s, with a learned diagonal Λ)")
    lambda_lr: float = setting(1e-3, "learning rate of aninfonce's learned Λ")
    temperature: float = setting(1.0, "temperature τ")
    cond_thresh_ratio: float = dataclasses.field(default=0.0, kw_only=True)
    encoder_init: str = dataclasses.field(default="pytorch", kw_only=True)
    grad_clip: float = dataclasses.field(default=0.0, kw_only=True)
    train_steps: int = dataclasses.field(default=300_003, kw_only=True)
    log_steps: int = dataclasses.field(default=1000, kw_only=True)

    def __post_init__(self):
        validate(self)

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths of the encoder (cl-ica's 10n, 50n x 4, 10n by default)."""
        n = self.n
        return self.encoder_widths or (10 * n, 50 * n, 50 * n, 50 * n, 50 * n, 10 * n)

    @property
    def similarity(self) -> str:
        """What the loss compares: "cosine" (sphere model, cl-ica's p = 0) or "lp"."""
        return "cosine" if self.model_space == "sphere" else "lp"

    def encoder_config(self) -> Config:
        """A two-view `Config` describing the encoder, for `encoders.module` / `encoders.encode`."""
        return Config(
            encoder_widths=self.widths, encoding_size=self.n, precision=self.precision, encoder_init=self.encoder_init
        )


def validate(cfg: IcaConfig) -> None:
    """Raise `IcaError` naming the first setting that is out of range or inconsistent."""
    try:
        validate_parts(cfg)
    except ConfigError as e:
        raise IcaError(str(e)) from None
    for name, allowed in (
        ("space", SPACES),
        ("marginal", MARGINALS),
        ("conditional", CONDITIONALS),
        ("model_space", SPACES),
        ("loss", LOSSES),
        ("anisotropy", ANISOTROPIES),
    ):
        _check(getattr(cfg, name) in allowed, f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    _check(cfg.n >= 2, f"n must be >= 2, got {cfg.n}")
    for name in ("marginal_scale", "conditional_scale", "conditional_p", "loss_p", "temperature", "lambda_lr", "shell"):
        _check(getattr(cfg, name) > 0, f"{name} must be > 0, got {getattr(cfg, name)}")
    _check(
        0 < cfg.lambda_low <= cfg.lambda_high,
        f"need 0 < lambda_low <= lambda_high, got {cfg.lambda_low}, {cfg.lambda_high}",
    )
    if cfg.space == "box":
        _check(cfg.marginal == "uniform", f"the box takes the uniform marginal, got {cfg.marginal!r}")
    if cfg.space == "unbounded":
        _check(cfg.marginal != "uniform", "the unbounded space has no uniform marginal: choose normal or laplace")
    _check(
        cfg.conditional not in ("vmf", "anisotropic") or cfg.space == "sphere",
        f"the {cfg.conditional} conditional lives on the sphere, not in the {cfg.space} space",
    )
    _check(
        cfg.loss != "aninfonce" or cfg.model_space == "sphere",
        f"aninfonce compares unit-norm codes: it needs model_space 'sphere', got {cfg.model_space!r}",
    )


def precision(cfg: IcaConfig) -> np.ndarray:
    """The anisotropic conditional's diagonal Λ: "bimodal" (the first half `lambda_high`, the rest
    `lambda_low`, as AnInfoNCE's runs) or "linear" (evenly spaced from low to high).

    >>> precision(IcaConfig(space="sphere", conditional="anisotropic", model_space="sphere", n=4)).tolist()
    [25.0, 25.0, 5.0, 5.0]
    """
    if cfg.anisotropy == "linear":
        return np.linspace(cfg.lambda_low, cfg.lambda_high, cfg.n, dtype=np.float32)
    return np.where(np.arange(cfg.n) < cfg.n // 2, cfg.lambda_high, cfg.lambda_low).astype(np.float32)


class Hyper(NamedTuple):
    """Per-run numbers that may be vmapped over (float32 scalars)."""

    marginal_scale: Any
    conditional_scale: Any
    temperature: Any
    lr: Any


def hyper(cfg: IcaConfig) -> Hyper:
    """The config's per-run numbers as float32 arrays."""
    import jax.numpy as jnp

    return Hyper(*(jnp.float32(getattr(cfg, name)) for name in Hyper._fields))


def program_key(cfg: IcaConfig) -> IcaConfig:
    """What fixes the compiled program: the config with its per-run numbers and seed blanked."""
    return replace(cfg, seed=0, **{name: getattr(IcaConfig(), name) for name in Hyper._fields})


# cl-ica's numerical experiment (`main_mlp.py`'s defaults; each table row sets the spaces).
CLICA = IcaConfig()

# Small enough for a 2-core CPU: the ten quick rows x 3 seeds within half an hour, evaluation
# included: smaller encoders and batch, warm-up then cosine decay from a higher peak, clipping
# at 2.0 as the two-view `quick` preset (results/clica-quick/README.md: how it was chosen).
CLICA_QUICK = replace(
    CLICA,
    encoder_widths=(128, 128, 128),
    encoder_init="lecun",
    batch_size=256,
    lr=3e-3,
    lr_schedule="warmup_cosine",
    warmup_steps=500,
    grad_clip=2.0,
    train_steps=15_000,
    log_steps=1000,
)

# Rusak et al.'s runs (their README's commands): unit sphere in R^10, batch 1000, Adam at 1e-4 for
# the encoder and 1e-3 for Λ, 300,003 steps.
ANINFONCE = replace(
    CLICA, space="sphere", conditional="anisotropic", model_space="sphere", loss="aninfonce", batch_size=1000
)
# At CPU scale (a batch of 256, 8,000 steps) Λ has fewer steps to grow from softplus(0) = 0.69
# towards 25, so its Adam runs at 1e-2: the most an entry of θ can move is then 80.
ANINFONCE_QUICK = replace(
    CLICA_QUICK,
    space="sphere",
    conditional="anisotropic",
    model_space="sphere",
    loss="aninfonce",
    lambda_lr=1e-2,
    train_steps=8000,
)
