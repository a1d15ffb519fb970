"""The misalignment experiment's run configuration, its factor roles and its presets (docs/misalignment.md).

`MisalignConfig` is one run of Cai et al.'s numerical experiment: semantic factors s
shared by an image and a text modality, of which the text sees only the selected ones
(I_θ) and some of those perturbed (I_ρ), and modality-specific factors m_x, m_t.
`roles` sorts the semantic factors into selected, perturbed, invariant and omitted;
`Preset` is a sweep over settings; `MISALIGN*` are the presets' base configs.

Example, I_θ = {0, 1, 2, 5} and I_ρ = {1, 4} of six factors:
    >>> roles(6, (0, 1, 2, 5), (1, 4))
    Roles(selected=(0, 1, 2, 5), perturbed=(1,), invariant=(0, 2, 5), omitted=(3, 4))
    >>> cfg = MisalignConfig(selected=(0, 1, 2), perturbed=(2,))
    >>> cfg.code_size, labels(cfg)
    (2, (('latents', 'independent'), ('selected', 3), ('perturbed', 1)))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from mmident_jax.config import Config, ConfigError, Encoders, Latents, Mixing, Optimisation, setting, validate_parts

PROBES = ("linear", "mlp")  # least squares; scikit-learn's MLPRegressor(max_iter=10000), the authors' --mlp-eval


class MisalignError(ConfigError):
    """A misalignment setting or command-line value is invalid; the message says which and why."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise MisalignError(message)


class Roles(NamedTuple):
    """The semantic factors (0-based indices, sorted) by what the text modality sees of them."""

    selected: tuple[int, ...]  # I_θ: reach the text modality
    perturbed: tuple[int, ...]  # I_ρ ∩ I_θ: reach it perturbed
    invariant: tuple[int, ...]  # I_θ \ I_ρ: reach it exactly as the image modality sees them
    omitted: tuple[int, ...]  # outside I_θ: never reach it


def roles(semantic_n: int, selected=(), perturbed=()) -> Roles:
    """The roles of `semantic_n` factors when the text sees `selected` (() = all) with `perturbed` perturbed.

    Perturbed factors outside the selection never reach the text: they are omitted, not perturbed.
    """
    chosen = tuple(sorted(set(selected))) if selected else tuple(range(semantic_n))
    moved = tuple(sorted(set(perturbed) & set(chosen)))
    return Roles(
        chosen,
        moved,
        tuple(i for i in chosen if i not in moved),
        tuple(i for i in range(semantic_n) if i not in chosen),
    )


def role_of(r: Roles, i: int) -> str:
    """ "invariant", "perturbed" or "omitted": the role of semantic factor i."""
    return "invariant" if i in r.invariant else "perturbed" if i in r.perturbed else "omitted"


@dataclass(frozen=True)
class MisalignConfig(Optimisation, Encoders, Mixing, Latents):
    """One run of the misalignment experiment; defaults are the authors' numerical experiment.

    Latents z = (s, m_x, m_t); the image modality is x = g_x(s, m_x), the text modality
    t = g_t(s̃[I_θ], m_t) with s̃ = s except on the perturbed factors. The shared parts
    (latent scales, mixers, encoders, optimisation) are those of `mmident_jax.config`;
    encoders default to the paper's widths 10d, 50d x 4, 10d for d inputs.
    """

    semantic_n: int = setting(10, "semantic factors s, seen by both modalities (the text perhaps only some)")
    modality_n: int = setting(5, "modality-specific factors m_x and m_t, each (0: none)")
    selected: tuple[int, ...] = setting(
        (), "I_theta: the 0-based semantic factors the text modality sees, comma-separated (empty: all)"
    )
    perturbed: tuple[int, ...] = setting(
        (), "I_rho: the 0-based semantic factors perturbed in the text modality, comma-separated (empty: none)"
    )
    dependent: bool = setting(
        False, "Wishart-correlated s, m_x and m_t (and perturbation), instead of independent N(0, I) factors"
    )
    encoding_size: int = setting(0, "code dimensions of both encoders (0: the invariant factors, |I_theta \\ I_rho|)")
    temperature: float = setting(1.0, "temperature tau")
    style_change_prob: float = dataclasses.field(default=0.75, kw_only=True)
    wishart: str = dataclasses.field(default="independent", kw_only=True)
    batch_size: int = dataclasses.field(default=6144, kw_only=True)
    grad_clip: float = dataclasses.field(default=2.0, kw_only=True)
    train_steps: int = dataclasses.field(default=100_001, kw_only=True)
    log_steps: int = dataclasses.field(default=1000, kw_only=True)
    encoder_init: str = dataclasses.field(default="pytorch", kw_only=True)

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)
        for name in ("selected", "perturbed"):
            put(name, tuple(int(i) for i in getattr(self, name)))
        validate(self)
        put("perturbed", tuple(sorted(self.perturbed)))
        # every factor listed is the same setting as none listed: one program, one identity
        put("selected", () if sorted(self.selected) == list(range(self.semantic_n)) else tuple(sorted(self.selected)))

    @property
    def roles(self) -> Roles:
        return roles(self.semantic_n, self.selected, self.perturbed)

    @property
    def code_size(self) -> int:
        """Each encoder's outputs: `encoding_size`, or the number of invariant factors."""
        return self.encoding_size or len(self.roles.invariant)

    @property
    def input_sizes(self) -> tuple[int, int]:
        """Dimensions of the image and the text latents (and observations): n_s + n_m, |I_θ| + n_m."""
        return self.semantic_n + self.modality_n, len(self.roles.selected) + self.modality_n

    def widths(self, k: int) -> tuple[int, ...]:
        """Hidden widths of encoder k (0: image, 1: text)."""
        d = self.input_sizes[k]
        return self.encoder_widths or (10 * d, 50 * d, 50 * d, 50 * d, 50 * d, 10 * d)

    def encoder_config(self, k: int) -> Config:
        """A two-view `Config` describing encoder k, for `encoders.module` / `encoders.encode`."""
        return Config(
            encoder_widths=self.widths(k),
            encoding_size=self.code_size,
            precision=self.precision,
            encoder_init=self.encoder_init,
        )


def validate(cfg: MisalignConfig) -> None:
    """Raise `MisalignError` naming the first setting that is out of range."""
    try:
        validate_parts(cfg)
    except ConfigError as e:
        raise MisalignError(str(e)) from None
    n = cfg.semantic_n
    _check(n >= 1, f"semantic_n must be >= 1, got {n}")
    _check(cfg.modality_n >= 0, f"modality_n must be >= 0, got {cfg.modality_n}")
    for name in ("selected", "perturbed"):
        values = getattr(cfg, name)
        outside = [i for i in values if not 0 <= i < n]
        _check(not outside, f"{name} {list(values)} has factor {outside[0] if outside else ''} outside 0..{n - 1}")
        twice = [i for i in values if values.count(i) > 1]
        _check(not twice, f"{name} {list(values)} lists factor {twice[0] if twice else ''} twice")
    r = roles(n, cfg.selected, cfg.perturbed)
    _check(bool(r.invariant), f"no invariant factor left: every selected factor {list(r.selected)} is perturbed")
    _check(cfg.encoding_size >= 0, f"encoding_size must be >= 0 (0: the invariant factors), got {cfg.encoding_size}")
    _check(cfg.temperature > 0, f"temperature must be > 0, got {cfg.temperature}")
    _check(cfg.grad_clip > 0, f"grad_clip must be > 0 (the authors clip at 2.0), got {cfg.grad_clip}")
    for name in ("m_param", "c_param"):
        _check(
            not cfg.dependent or getattr(cfg, name) == 1.0,
            f"{name} {getattr(cfg, name)} has no effect when dependent: like the original, a Wishart block is "
            "N(0, Σ) whatever its scale",
        )


def labels(cfg: MisalignConfig) -> tuple[tuple[str, Any], ...]:
    """A setting's labels in the tables: latents ("independent"/"dependent"), |I_θ| and |I_ρ ∩ I_θ|."""
    r = cfg.roles
    return (
        ("latents", "dependent" if cfg.dependent else "independent"),
        ("selected", len(r.selected)),
        ("perturbed", len(r.perturbed)),
    )


LABELS = ("latents", "selected", "perturbed")


# ------------------------------------------------------------------ presets


def sweep_settings(
    base: MisalignConfig, selection=None, perturbation=None, latents=(False,)
) -> tuple[tuple[MisalignConfig, tuple], ...]:
    """The authors' two series, for each of `latents` (dependent False/True): the selection series
    I_θ = the first k factors for k in `selection` with I_ρ = ∅ (default k = n..1), and the
    perturbation series I_θ = all, I_ρ = the first k for k in `perturbation` (default 0..n-1).
    Their common setting (all selected, none perturbed) is listed once."""
    n = base.semantic_n
    selection = tuple(range(n, 0, -1)) if selection is None else tuple(selection)
    perturbation = tuple(range(n)) if perturbation is None else tuple(perturbation)
    out: dict = {}
    for dependent in latents:
        cfgs = [replace(base, dependent=dependent, selected=tuple(range(k)), perturbed=()) for k in selection]
        cfgs += [replace(base, dependent=dependent, selected=(), perturbed=tuple(range(k))) for k in perturbation]
        for cfg in cfgs:
            out.setdefault(cfg, labels(cfg))
    return tuple(out.items())


@dataclass(frozen=True)
class Preset:
    """A misalignment sweep: its settings ((config, labels) pairs), seeds, and the evaluation's
    size (validation and test sets of `eval_batches` x `eval_batch_size` samples each) and probes."""

    settings: tuple[tuple[MisalignConfig, tuple[tuple[str, Any], ...]], ...]
    seeds: int = 3
    eval_batches: int = 5
    eval_batch_size: int = 4096
    probes: tuple[str, ...] = PROBES

    def __post_init__(self):
        _check(len(self.settings) >= 1, "a preset needs at least one setting")
        seen = [tuple(lab) for _, lab in self.settings]
        _check(len(set(seen)) == len(seen), "two settings of the preset have the same labels")
        _check(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        _check(self.eval_batches >= 1 and self.eval_batch_size >= 2, "evaluation sets need >= 2 samples")
        unknown = [p for p in self.probes if p not in PROBES]
        _check(not unknown, f"unknown probe {unknown[0] if unknown else ''!r}; choose from {', '.join(PROBES)}")

    @property
    def labels(self) -> tuple[str, ...]:
        """The label columns: `LABELS`, then a grid's."""
        return tuple(k for k, _ in self.settings[0][1])

    def with_grid(self, values: dict) -> Preset:
        """Every setting crossed with the typed grid `values` (`grid.expand`); its fields add label columns."""
        from mmident_jax import grid

        return replace(self, settings=tuple(grid.expand(self.settings, values)))

    def with_overrides(self, *, seeds=None, train_steps=None, probes=None) -> Preset:
        settings = (
            self.settings
            if train_steps is None
            else tuple((replace(cfg, train_steps=train_steps), lab) for cfg, lab in self.settings)
        )
        return replace(self, settings=settings, seeds=seeds or self.seeds, probes=tuple(probes or self.probes))


MISALIGN = MisalignConfig()

# Small enough for a 2-core CPU: the 14 settings of `misalign-quick` x 3 seeds, each setting its own
# program, trained and evaluated (linear probe) within 15 minutes: 32-37 s per setting measured, about
# 9 minutes in all. The multi-view quick scale: small encoders and batch, warm-up then cosine decay
# from a higher peak learning rate, clipping at 2.0 (docs/misalignment.md, "At quick scale").
MISALIGN_QUICK = replace(
    MISALIGN,
    encoder_widths=(64, 64, 64),
    batch_size=256,
    lr=3e-3,
    lr_schedule="warmup_cosine",
    warmup_steps=500,
    train_steps=5000,
    log_steps=250,
)
QUICK_SELECTION = (10, 7, 4, 1)
QUICK_PERTURBATION = (0, 3, 6, 9)
