"""The multi-view structure and the run configuration (docs/multiview.md).

`Views` says which latents each view sees (S_k), which are perturbed between views,
which are statistically or causally dependent, which subsets of views are contrasted
and which code coordinates stand for their shared content. `MultiviewConfig` adds the
mixers, encoders, objective and optimisation; `from_two_view` builds the two-view
paper's setting from a `Config`; `MULTIVIEW*` are Yao et al.'s numerical experiment (named in `presets`).

Example, Yao et al.'s four views of six latents:
    >>> v = Views(6, ((0, 1, 2, 3, 4), (0, 1, 2, 4, 5), (0, 1, 2, 3, 5), (0, 1, 3, 4, 5)))
    >>> len(v.plan), v.content((0, 1)), v.content((0, 1, 2, 3))
    (11, (0, 1, 2, 4), (0, 1))
    >>> v.plan[3]  # views 1 and 2 share latents 0, 1, 2, 5: coordinates 0, 1, 2, 4 of both codes
    Group(views=(1, 2), content=(0, 1, 2, 5), coords=((0, 1, 2, 4), (0, 1, 2, 4)))
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from mmident_jax.config import Config, ConfigError, Encoders, Latents, Mixing, Optimisation, setting, validate_parts

SELECTIONS = ("ground_truth", "concat", "gumbel_softmax")
OBJECTIVES = ("pairs", "joint")


class MultiviewError(ConfigError):
    """A multi-view setting or command-line value is invalid; the message says which and why."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise MultiviewError(message)


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


class Group(NamedTuple):
    """A contrasted subset V of views, its content C_V and each view's code coordinates for it."""

    views: tuple[int, ...]
    content: tuple[int, ...]  # latents shared by every view of V and not perturbed, sorted
    coords: tuple[tuple[int, ...], ...] | None  # per view of V: its content block's code coordinates
    # (None under "gumbel_softmax": drawn anew at every step, `model.content_parts`)


@dataclass(frozen=True)
class Views:
    """Which latents each of K >= 2 views sees, and how their codes are contrasted.

    - `subsets[k]` = S_k, the latents view k sees, in the order its mixer takes them; a
      latent seen by one view only is private to it (the two-view paper's m_k).
    - `perturbed`: latents whose value view k >= 1 sees perturbed (the paper's style:
      with probability p_chg per sample and dimension, plus N(0, c_param²)); view 0 sees
      them unperturbed. Each must be seen by two views or more; it is never content.
    - `dependent`: latents with a Wishart covariance (one draw per sampling block: shared,
      perturbed, the perturbation, each view's private latents).
    - `causal_parents`: the perturbed latents get + B z[parents] + a, B and a ~ N(0, 1).
    - `groups`: the subsets V to contrast (sorted view tuples); None = every V with |V| >= 2
      and non-empty content C_V = (∩_{k in V} S_k) minus the perturbed latents.
    - `selection`: "ground_truth" (code coordinate j of view k stands for S_k[j], so V's
      content block is the coordinates of C_V) or "concat" (each view's code is split into
      one block per group, `np.array_split`, equal when the code size is a multiple of the
      number of groups) or "gumbel_softmax" (Yao et al.'s `--selection gumbel_softmax`: at
      every step each view of V takes |C_V| coordinates of its code by a hard top-k
      Gumbel-softmax whose logits are the batch mean of that code; docs/multiview.md).
    - `code_sizes`: each encoder's outputs; () = |S_k| (ground truth); concat needs them equal.
    """

    n_latent: int
    subsets: tuple[tuple[int, ...], ...]
    perturbed: tuple[int, ...] = ()
    dependent: tuple[int, ...] = ()
    causal_parents: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] | None = None
    selection: str = "ground_truth"
    code_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)
        put("subsets", tuple(_ints(s) for s in self.subsets))
        for name in ("perturbed", "dependent", "causal_parents"):
            put(name, tuple(sorted(_ints(getattr(self, name)))))
        if self.groups is not None:
            put("groups", tuple(tuple(sorted(_ints(g))) for g in self.groups))
        put("code_sizes", _ints(self.code_sizes))
        validate_views(self)

    @property
    def k(self) -> int:
        """Number of views K."""
        return len(self.subsets)

    @property
    def codes(self) -> tuple[int, ...]:
        """Each view's code size."""
        return self.code_sizes or tuple(len(s) for s in self.subsets)

    def seen_by(self, latent: int) -> tuple[int, ...]:
        """The views that see `latent`."""
        return tuple(k for k, s in enumerate(self.subsets) if latent in s)

    @property
    def shared(self) -> tuple[int, ...]:
        """Latents seen by two views or more and not perturbed (sorted)."""
        return tuple(i for i in range(self.n_latent) if len(self.seen_by(i)) >= 2 and i not in self.perturbed)

    def private(self, k: int) -> tuple[int, ...]:
        """Latents seen by view k only (sorted)."""
        return tuple(i for i in range(self.n_latent) if self.seen_by(i) == (k,))

    @property
    def blocks(self) -> tuple[tuple[int, ...], ...]:
        """The sampling blocks, each drawn from its own key: shared, perturbed, the
        perturbation (same latents), then each view's private latents."""
        return (self.shared, self.perturbed, self.perturbed, *(self.private(k) for k in range(self.k)))

    def content(self, views: tuple[int, ...]) -> tuple[int, ...]:
        """C_V: the latents every view of V sees, less the perturbed ones (sorted)."""
        common = set.intersection(*(set(self.subsets[k]) for k in views))
        return tuple(sorted(common - set(self.perturbed)))

    def default_groups(self) -> tuple[tuple[int, ...], ...]:
        """Every V with |V| >= 2 and non-empty C_V, by size then lexicographically (Yao et al.'s order)."""
        return tuple(
            v for r in range(2, self.k + 1) for v in itertools.combinations(range(self.k), r) if self.content(v)
        )

    @property
    def plan(self) -> tuple[Group, ...]:
        """The contrasted groups with their content and each view's content coordinates."""
        groups = self.groups if self.groups is not None else self.default_groups()
        if self.selection == "concat":
            blocks = np.array_split(np.arange(self.codes[0]), len(groups))
            return tuple(Group(v, self.content(v), tuple(_ints(b) for _ in v)) for v, b in zip(groups, blocks))
        if self.selection == "gumbel_softmax":
            return tuple(Group(v, self.content(v), None) for v in groups)
        return tuple(
            Group(v, self.content(v), tuple(tuple(self.subsets[k].index(i) for i in self.content(v)) for k in v))
            for v in groups
        )

    @property
    def latent_names(self) -> tuple[str, ...]:
        """Names of the evaluated latents: z0 .. z{d-1}, then zi~k, latent i as view k >= 1 sees it."""
        return (
            *(f"z{i}" for i in range(self.n_latent)),
            *(f"z{i}~{k}" for k in range(1, self.k) for i in self.perturbed),
        )


def validate_views(v: Views) -> None:
    """Raise `MultiviewError` naming the first inconsistency of the structure."""
    d, K = v.n_latent, len(v.subsets)
    _check(d >= 1, f"n_latent must be >= 1, got {d}")
    _check(K >= 2, f"need at least 2 views, got {K}")
    for k, s in enumerate(v.subsets):
        _check(len(s) >= 1, f"view {k} sees no latent")
        _check(all(0 <= i < d for i in s), f"view {k} sees latents {list(s)} outside 0..{d - 1}")
        _check(len(set(s)) == len(s), f"view {k} sees a latent twice: {list(s)}")
    unseen = [i for i in range(d) if not v.seen_by(i)]
    _check(not unseen, f"latent {unseen[0] if unseen else ''} is seen by no view")
    for name in ("perturbed", "dependent", "causal_parents"):
        values = getattr(v, name)
        _check(all(0 <= i < d for i in values), f"{name} {list(values)} has latents outside 0..{d - 1}")
        _check(len(set(values)) == len(values), f"{name} {list(values)} lists a latent twice")
    lonely = [i for i in v.perturbed if len(v.seen_by(i)) < 2]
    _check(not lonely, f"perturbed latent {lonely[0] if lonely else ''} is seen by fewer than 2 views")
    _check(not set(v.causal_parents) & set(v.perturbed), "causal_parents must not be perturbed latents")
    _check(not v.causal_parents or v.perturbed, "causal_parents need perturbed latents to act on")
    _check(v.selection in SELECTIONS, f"selection must be one of {', '.join(SELECTIONS)}, got {v.selection!r}")
    _check(
        not v.code_sizes or len(v.code_sizes) == K,
        f"code_sizes needs one size per view ({K}), got {list(v.code_sizes)}",
    )
    _check(all(c >= 1 for c in v.codes), f"code_sizes must be >= 1, got {list(v.codes)}")
    groups = v.groups if v.groups is not None else v.default_groups()
    _check(len(groups) >= 1, "no subset of views has shared unperturbed latents to contrast")
    _check(len(set(groups)) == len(groups), "groups lists a subset twice")
    for g in groups:
        _check(len(g) >= 2 and len(set(g)) == len(g), f"group {list(g)} needs at least 2 distinct views")
        _check(all(0 <= k < K for k in g), f"group {list(g)} has views outside 0..{K - 1}")
        _check(bool(v.content(g)), f"views {list(g)} share no unperturbed latent")
    if v.selection == "concat":
        _check(len(set(v.codes)) == 1, f"concat needs equal code sizes, got {list(v.codes)}")
        _check(
            v.codes[0] >= len(groups),
            f"concat needs a code size >= the number of groups ({len(groups)}), got {v.codes[0]}",
        )
    elif v.selection == "gumbel_softmax":
        for g in groups:
            small = [k for k in g if v.codes[k] < len(v.content(g))]
            _check(
                not small,
                f"view {small[0] if small else ''}'s code has {v.codes[small[0]] if small else 0} "
                f"coordinates; group {list(g)} selects {len(v.content(g))}",
            )
    else:
        for g in groups:
            for k in g:
                top = max(v.subsets[k].index(i) for i in v.content(g))
                _check(
                    top < v.codes[k],
                    f"view {k}'s code has {v.codes[k]} coordinates; group {list(g)} needs coordinate {top}",
                )


@dataclass(frozen=True)
class MultiviewConfig(Optimisation, Encoders, Mixing, Latents):
    """A multi-view run: the structure, and the shared parts (latent scale, mixers, encoders,
    optimisation) of `config`, defined and validated there.

    Defaults are Yao et al.'s numerical experiment where it fixes them (3 mixing layers,
    encoders 10n, 50n x 4, 10n for n inputs, Adam at 1e-4 without clipping, batch 4096,
    100,000 steps, independent Wishart draws). `objective` "pairs" sums the two-view
    paper's symmetrised InfoNCE (`losses.infonce`) over the pairs of views in each group;
    "joint" is Yao et al.'s numerical loss (one InfoNCE per group: positive distance summed
    along consecutive views, negative distances summed over the group's views).
    """

    views: Views
    objective: str = setting(
        "pairs",
        "pairs (the two-view InfoNCE summed over each subset's pairs) or joint (Yao et al.'s one InfoNCE per subset)",
    )
    temperature: float = setting(1.0, "temperature tau")
    wishart: str = dataclasses.field(default="independent", kw_only=True)
    batch_size: int = dataclasses.field(default=4096, kw_only=True)
    grad_clip: float = dataclasses.field(default=0.0, kw_only=True)
    train_steps: int = dataclasses.field(default=100_000, kw_only=True)

    def __post_init__(self):
        if isinstance(self.views, dict):
            unknown = sorted(set(self.views) - {f.name for f in dataclasses.fields(Views)})
            _check(not unknown, f"unknown views setting(s) {', '.join(unknown)}")
            object.__setattr__(self, "views", Views(**self.views))
        validate(self)

    def widths(self, k: int) -> tuple[int, ...]:
        """Hidden widths of view k's encoder."""
        n = len(self.views.subsets[k])
        return self.encoder_widths or (10 * n, 50 * n, 50 * n, 50 * n, 50 * n, 10 * n)

    def encoder_config(self, k: int) -> Config:
        """A two-view `Config` describing view k's encoder, for `encoders.module` / `encoders.encode`."""
        return Config(
            encoder_widths=self.widths(k),
            encoding_size=self.views.codes[k],
            precision=self.precision,
            encoder_init=self.encoder_init,
        )


def validate(cfg: MultiviewConfig) -> None:
    """Raise `MultiviewError` naming the first setting that is out of range."""
    try:
        validate_parts(cfg)
    except ConfigError as e:
        raise MultiviewError(str(e)) from None
    _check(cfg.temperature > 0, f"temperature must be > 0, got {cfg.temperature}")
    _check(cfg.objective in OBJECTIVES, f"objective must be one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")


def two_view_structure(cfg: Config) -> Views:
    """The two-view paper's latents as a `Views`: z = (c, s, m1, m2), S_0 = c ∪ s ∪ m1,
    S_1 = c ∪ s ∪ m2, s perturbed, one group whose content block is the whole code."""
    nc, ns, nm = cfg.content_n, cfg.style_n, cfg.modality_n
    c, s = tuple(range(nc)), tuple(range(nc, nc + ns))
    m1, m2 = tuple(range(nc + ns, nc + ns + nm)), tuple(range(nc + ns + nm, nc + ns + 2 * nm))
    return Views(
        n_latent=nc + ns + 2 * nm,
        subsets=(c + s + m1, c + s + m2),
        perturbed=s,
        dependent=tuple(range(nc + ns + 2 * nm)) if cfg.statistical_dependence else (),
        causal_parents=c if cfg.content_dependent_style and ns else (),
        groups=((0, 1),),
        selection="concat",
        code_sizes=(cfg.encoding_size, cfg.encoding_size),
    )


def from_two_view(cfg: Config) -> MultiviewConfig:
    """The two-view paper's run `cfg` as a multi-view run; same key, same numbers.

    Refuses (one line) what the multi-view model does not express: discrete latents,
    one shared mixer or encoder, the CLIP loss.

    >>> from mmident_jax.config import QUICK
    >>> mv = from_two_view(QUICK)
    >>> mv.views.subsets[1], mv.views.perturbed
    ((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19), (5, 6, 7, 8, 9))
    >>> mv.views.plan  # one group, whose content block is the whole code
    (Group(views=(0, 1), content=(0, 1, 2, 3, 4), coords=((0, 1, 2, 3, 4), (0, 1, 2, 3, 4))),)
    """
    _check(cfg.discrete_block == "none", "from_two_view: discrete latents are not modelled (discrete_block)")
    _check(not cfg.shared_mixing, "from_two_view: one shared mixer is not modelled (shared_mixing)")
    _check(not cfg.shared_encoder, "from_two_view: one shared encoder is not modelled (shared_encoder)")
    _check(cfg.loss == "infonce", f"from_two_view: only the infonce loss is modelled, got {cfg.loss!r}")
    same = {f.name for f in dataclasses.fields(MultiviewConfig)} & {f.name for f in dataclasses.fields(Config)}
    settings = {name: getattr(cfg, name) for name in same}
    settings["encoder_widths"] = cfg.widths
    return MultiviewConfig(views=two_view_structure(cfg), objective="pairs", **settings)


# ------------------------------------------------------------------ presets

YAO_SUBSETS = ((0, 1, 2, 3, 4), (0, 1, 2, 4, 5), (0, 1, 2, 3, 5), (0, 1, 3, 4, 5))
YAO_VIEWS = Views(6, YAO_SUBSETS)


@dataclass(frozen=True)
class Preset:
    """A multi-view experiment: the run settings (`cfg`, crossed with a `grid` of its fields), seeds,
    and the evaluation's size and probes."""

    cfg: MultiviewConfig
    seeds: int = 3
    protocol: str = "heldout"  # `evaluation.PROTOCOLS`: "yao" (Yao et al.'s) or "heldout"
    eval_batches: int = 1
    eval_batch_size: int = 4096
    probes: tuple[str, ...] = ("linear", "kernel")
    grid: tuple[tuple[str, tuple], ...] = ()  # (field, values) pairs: `mmident_jax.grid`

    @property
    def settings(self) -> list[tuple[MultiviewConfig, tuple]]:
        """(config, labels) of every setting: `cfg` alone, or crossed with the grid (`grid.expand`)."""
        from mmident_jax import grid

        return grid.expand([(self.cfg, ())], {name: list(values) for name, values in self.grid})

    @property
    def labels(self) -> tuple[str, ...]:
        """The label columns: the grid's fields."""
        return tuple(name for name, _ in self.grid)

    def with_grid(self, values: dict) -> Preset:
        """The preset crossed with the typed grid `values` ({field: [values]}); a field of one value
        sets it in `cfg`."""
        from mmident_jax import grid

        cfg, pairs = grid.fold(self.cfg, values)
        return replace(self, cfg=cfg, grid=pairs)

    def with_overrides(self, *, seeds=None, train_steps=None, protocol=None) -> Preset:
        cfg = self.cfg if train_steps is None else replace(self.cfg, train_steps=train_steps)
        if protocol is not None and protocol != self.protocol:  # each protocol with its own sizes and probe
            sizes = YAO_EVALUATION if protocol == "yao" else HELDOUT_EVALUATION
            return replace(self, cfg=cfg, seeds=seeds or self.seeds, protocol=protocol, **sizes)
        return replace(self, cfg=cfg, seeds=seeds or self.seeds)


# Yao et al.'s evaluation (main_numerical.py --evaluate): 10 batches of 4096, linear regression and
# MLPRegressor(max_iter=5000); and the held-out protocol's: 4096 validation and 4096 test samples.
YAO_EVALUATION = {"eval_batches": 10, "eval_batch_size": 4096, "probes": ("linear", "mlp")}
HELDOUT_EVALUATION = {"eval_batches": 1, "eval_batch_size": 4096, "probes": ("linear", "kernel")}

MULTIVIEW = MultiviewConfig(views=YAO_VIEWS, objective="joint")

# Yao et al.'s dependent option (--n_dependent_dims): a Wishart(n, I) covariance for the first n
# latents; here all six.
MULTIVIEW_DEPENDENT = replace(MULTIVIEW, views=replace(YAO_VIEWS, dependent=tuple(range(6))))

# Small enough for a 2-core CPU: 3 seeds vmapped in one program within 20 minutes, evaluation
# included. Smaller encoders and batch, warm-up then cosine decay from a higher peak lr, clipping at
# 2.0 as the two-view `quick` preset (results/multiview-quick/README.md: how it was chosen).
MULTIVIEW_QUICK = replace(
    MULTIVIEW,
    objective="pairs",
    encoder_widths=(64, 64, 64),
    batch_size=256,
    lr=3e-3,
    lr_schedule="warmup_cosine",
    warmup_steps=500,
    grad_clip=2.0,
    train_steps=5000,
    log_steps=250,
)
# The same scale with Yao et al.'s objective (one joint InfoNCE per subset) and evaluation.
MULTIVIEW_YAO_QUICK = replace(MULTIVIEW_QUICK, objective="joint")
