"""The settings of cl-ica's and AnInfoNCE's sweeps: labels in the papers' terms, presets' rows.

JAX-free, so that the command line reads the presets at once. A `Preset` is a list of
settings (config and labels) with seeds and the evaluation's batches; the rows below
are cl-ica's numerical tables (docs/clica.md) and AnInfoNCE's runs.

Example:
    >>> from mmident_jax.clica.config import CLICA_QUICK
    >>> [dict(labels)["model"] for _, labels in quick_settings(CLICA_QUICK)][:2]
    ['sphere, vMF(κ=1/τ=10)', 'sphere, vMF(κ=1/τ=10)']
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as _replace

from mmident_jax import grid
from mmident_jax.clica.config import IcaConfig
from mmident_jax.config import replace

LABELS = ("space", "marginal", "conditional", "model")
EVAL_BATCHES = 10  # cl-ica's --num-eval-batches


def _number(x: float) -> str:
    return f"{x:g}"


def describe(cfg: IcaConfig) -> tuple[tuple[str, str], ...]:
    """A setting's labels in cl-ica's terms: the latents' space, marginal and conditional, and the model.

    >>> dict(describe(IcaConfig(space="sphere", conditional="vmf", conditional_scale=1.0, model_space="sphere")))
    {'space': 'sphere', 'marginal': 'uniform', 'conditional': 'vMF(κ=1)', 'model': 'sphere, vMF(κ=1/τ=1)'}
    """
    scale = _number(cfg.conditional_scale)
    conditional = {
        "vmf": f"vMF(κ={scale})",
        "normal": f"normal(σ={scale})",
        "laplace": f"Laplace(λ={scale})",
        "generalized": f"GenNorm(p={_number(cfg.conditional_p)}, λ={scale})",
        "anisotropic": f"anisotropic({cfg.anisotropy} Λ)",
    }[cfg.conditional]
    marginal = cfg.marginal if cfg.marginal == "uniform" else f"{cfg.marginal}({_number(cfg.marginal_scale)})"
    if cfg.loss == "aninfonce":
        model = "sphere, AnInfoNCE (learned Λ)"
    elif cfg.model_space == "sphere":
        model = f"sphere, vMF(κ=1/τ={_number(1 / cfg.temperature)})"
    else:
        model = f"{cfg.model_space}, p={_number(cfg.loss_p)}"
    return (("space", cfg.space), ("marginal", marginal), ("conditional", conditional), ("model", model))


def assumptions_met(cfg: IcaConfig) -> bool:
    """Whether the model's space and similarity are the truth's (cl-ica's "M." column, up to the scale)."""
    family = {"vmf": "cosine", "anisotropic": "aninfonce"}.get(cfg.conditional)
    if family is not None:
        return cfg.space == cfg.model_space and (
            cfg.loss == "aninfonce" if family == "aninfonce" else cfg.similarity == "cosine" and cfg.loss == "infonce"
        )
    p = {"laplace": 1.0, "normal": 2.0, "generalized": cfg.conditional_p}[cfg.conditional]
    return cfg.space == cfg.model_space and cfg.similarity == "lp" and cfg.loss_p == p


def setting(cfg: IcaConfig) -> tuple[IcaConfig, tuple[tuple[str, str], ...]]:
    """A setting of a preset: the config and its labels (`describe`)."""
    return cfg, describe(cfg)


@dataclass(frozen=True)
class Preset:
    """A cl-ica / AnInfoNCE sweep: settings, seeds, and the evaluation's batches."""

    settings: tuple[tuple[IcaConfig, tuple[tuple[str, str], ...]], ...]
    seeds: int = 3
    eval_batches: int = EVAL_BATCHES
    eval_batch_size: int = 6144

    @property
    def labels(self) -> tuple[str, ...]:
        """The label columns: `LABELS`, then a grid's."""
        return tuple(k for k, _ in self.settings[0][1])

    def with_grid(self, values: dict) -> Preset:
        """Every setting crossed with the typed grid `values` (`grid.expand`), its labels described anew."""
        crossed = grid.expand(self.settings, values)
        return _replace(self, settings=tuple((cfg, describe(cfg) + labels[len(LABELS) :]) for cfg, labels in crossed))

    def with_overrides(self, *, seeds=None, train_steps=None) -> Preset:
        settings = (
            self.settings
            if train_steps is None
            else tuple((replace(c, train_steps=train_steps), labels) for c, labels in self.settings)
        )
        return _replace(self, settings=settings, seeds=seeds or self.seeds)


# ------------------------------------------------------------------ the presets' settings


def cl_ica_settings(base: IcaConfig) -> tuple:
    """cl-ica's numerical tables: the affine table's rows (space and conditional against the model),
    then the permutation table's (the model's p and space against the conditional's)."""
    rows = (
        ("sphere", "uniform", "vmf", 1.0, "sphere", 2.0),
        ("sphere", "uniform", "vmf", 10.0, "sphere", 2.0),
        ("sphere", "uniform", "laplace", 0.05, "sphere", 2.0),
        ("sphere", "uniform", "normal", 0.05, "sphere", 2.0),
        ("box", "uniform", "normal", 0.05, "unbounded", 2.0),
        ("box", "uniform", "laplace", 0.05, "unbounded", 2.0),
        ("box", "uniform", "laplace", 0.05, "unbounded", 3.0),
        ("box", "uniform", "normal", 0.05, "unbounded", 3.0),
        ("sphere", "normal", "laplace", 0.05, "sphere", 2.0),
        ("sphere", "normal", "normal", 0.05, "sphere", 2.0),
        ("unbounded", "laplace", "normal", 1.0, "unbounded", 2.0),
        ("unbounded", "normal", "normal", 1.0, "unbounded", 2.0),
        ("box", "uniform", "laplace", 0.05, "box", 1.0),
        ("box", "uniform", "generalized", 0.05, "box", 3.0),
        ("box", "uniform", "normal", 0.05, "box", 2.0),
        ("box", "uniform", "laplace", 0.05, "unbounded", 1.0),
        ("box", "uniform", "generalized", 0.05, "unbounded", 3.0),
    )
    return tuple(_settings(base, rows))


# At CPU scale (a batch of 256, 15,000 steps) a vMF(κ = 1) pair is too weak a signal to train
# on (R² stays at the identity's): the quick sphere rows take κ = 10 and a model of κ = 1/τ = 10.
QUICK_ROWS = (
    ("sphere", "uniform", "vmf", 10.0, "sphere", 2.0, 0.1),
    ("sphere", "uniform", "laplace", 0.05, "sphere", 2.0, 0.1),
    ("sphere", "normal", "laplace", 0.05, "sphere", 2.0, 0.1),
    ("box", "uniform", "normal", 0.05, "unbounded", 2.0),
    ("box", "uniform", "laplace", 0.05, "unbounded", 2.0),
    ("box", "uniform", "laplace", 0.05, "unbounded", 1.0),
    ("box", "uniform", "laplace", 0.05, "box", 1.0),
    ("box", "uniform", "generalized", 0.05, "unbounded", 3.0),
    ("unbounded", "laplace", "normal", 1.0, "unbounded", 2.0),
    ("unbounded", "normal", "normal", 1.0, "unbounded", 2.0),
)


def _settings(base: IcaConfig, rows):
    """Settings of rows (space, marginal, conditional, its scale, model space, p[, τ])."""
    for space, marginal, conditional, scale, model_space, p, *temperature in rows:
        yield setting(
            replace(
                base,
                space=space,
                marginal=marginal,
                conditional=conditional,
                conditional_scale=scale,
                model_space=model_space,
                loss_p=p,
                temperature=temperature[0] if temperature else base.temperature,
            )
        )


def quick_settings(base: IcaConfig) -> tuple:
    """Ten rows of both tables, for a CPU: each kind of mismatch once."""
    return tuple(_settings(base, QUICK_ROWS))


def aninfonce_settings(base: IcaConfig) -> tuple:
    """Rusak et al.'s two runs (bimodal and linearly spaced Λ, AnInfoNCE), each beside isotropic
    InfoNCE at τ = 0.1 (a vMF model of κ = 10, within Λ's range of 5 to 25)."""
    sphere = replace(base, space="sphere", conditional="anisotropic", model_space="sphere")
    return tuple(
        setting(replace(sphere, anisotropy=a, **loss))
        for a in ("bimodal", "linear")
        for loss in ({"loss": "aninfonce"}, {"loss": "infonce", "temperature": 0.1})
    )
