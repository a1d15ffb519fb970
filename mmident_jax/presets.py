"""Every named preset, in one registry, and the two-view experiment's presets.

Each entry is the command that takes it, its value and one line about it. The two-view
presets are listed here (`train`: a `Config`; `sweep`: a `SweepPreset`); every other
experiment registers its own from its package (`register`, e.g. in
`mmident_jax.multiview.command`). The command line's help, choices and errors are
generated from `REGISTRY`, so a new preset is one entry. This module does not load JAX:
the command line reads it before any work starts.

Example:
    >>> names("sweep")[:3]
    ['table1', 'table1-quick', 'table1-independent']
    >>> get("train", "quick").batch_size
    256
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mmident_jax.config import EVAL_BATCH_SIZE, PAPER, QUICK, Config, ConfigError

# ------------------------------------------------------------------ sweep presets


@dataclass(frozen=True)
class Setting:
    """One row of a sweep's table: the run config and its labels ((column, value) pairs)."""

    cfg: Config
    label: tuple[tuple[str, object], ...]

    def labels(self) -> dict:
        return dict(self.label)


TABLE_LABELS = ("mechanism", "p_chg", "statistical", "causal")


@dataclass(frozen=True)
class SweepPreset:
    """A sweep: its settings, seeds, evaluation, and how its results are reported.

    `report` names the writer of results.md and the figure: "tables" (the paper's
    tables), an ablation's ("encoding-size", "dims", "discrete"), or "grid" (any grid of
    settings, `report.write_grid`).
    """

    settings: tuple[Setting, ...]
    seeds: int = 3
    num_eval_batches: int = 5
    probes: tuple[str, ...] = ("linear", "kernel")
    nonlinear_probe: str = "kernel"
    metrics: tuple[str, ...] = ()  # identifiability metrics of evaluation: "mcc", "dci", "ceiling"
    permuted_content: bool = False
    eval_batch_size: int = EVAL_BATCH_SIZE
    labels: tuple[str, ...] = TABLE_LABELS
    report: str = "tables"

    def with_overrides(
        self, *, seeds=None, train_steps=None, num_eval_batches=None, nonlinear_probe=None, eval_size=None, metrics=None
    ) -> SweepPreset:
        """The preset with other seeds, steps, evaluation batches, size, nonlinear probe or metrics."""
        settings = (
            self.settings
            if train_steps is None
            else tuple(replace(s, cfg=replace(s.cfg, train_steps=train_steps)) for s in self.settings)
        )
        return replace(
            self,
            settings=settings,
            seeds=seeds or self.seeds,
            num_eval_batches=num_eval_batches or self.num_eval_batches,
            nonlinear_probe=nonlinear_probe or self.nonlinear_probe,
            eval_batch_size=eval_size or self.eval_batch_size,
            metrics=self.metrics if metrics is None else tuple(metrics),
        )


GENERATIVE = (
    (1.0, False, False),
    (0.75, False, False),
    (0.75, True, False),
    (0.75, False, True),
    (0.75, True, True),
)  # (p_chg, statistical, causal): Table 1 rows


def mechanism_config(base: Config, mechanism: str) -> Config:
    """The paper's two mechanisms: "original" multi-view (f1 = f2, shared g, nm = 0) or "multimodal"."""
    if mechanism == "original":
        return replace(base, shared_mixing=True, shared_encoder=True, modality_n=0)
    return base


def table_settings(base: Config, mechanisms=("original", "multimodal")) -> tuple[Setting, ...]:
    """The five generative settings of Table 1 for each mechanism."""
    return tuple(
        Setting(
            replace(
                mechanism_config(base, m),
                style_change_prob=p,
                statistical_dependence=stat,
                content_dependent_style=causal,
            ),
            (("mechanism", m), ("p_chg", p), ("statistical", stat), ("causal", causal)),
        )
        for m in mechanisms
        for p, stat, causal in GENERATIVE
    )


ENCODING_SIZES = (1, 3, 5, 7, 9, 11, 13, 15)
DIMS = (0, 1, 3, 5, 7, 9)
CATEGORIES = tuple(range(3, 11))


def independent_multimodal(base: Config) -> Config:
    """The ablations' base: multimodal mechanism, independent latents, p_chg = 0.75."""
    return replace(
        base,
        style_change_prob=0.75,
        statistical_dependence=False,
        content_dependent_style=False,
        shared_mixing=False,
        shared_encoder=False,
    )


def encoding_size_settings(base: Config, sizes=ENCODING_SIZES) -> tuple[Setting, ...]:
    return tuple(Setting(replace(base, encoding_size=k), (("encoding_size", k),)) for k in sizes)


def dims_settings(base: Config, dims=DIMS, fixed: int = 5) -> tuple[Setting, ...]:
    """nm in `dims` with ns = `fixed`, then ns in `dims` with nm = `fixed` (their common setting once)."""
    pairs = [(fixed, nm) for nm in dims] + [(ns, fixed) for ns in dims if ns != fixed]
    return tuple(Setting(replace(base, style_n=ns, modality_n=nm), (("ns", ns), ("nm", nm))) for ns, nm in pairs)


def discrete_settings(base: Config, blocks=("c", "s", "m"), ks=CATEGORIES) -> tuple[Setting, ...]:
    return tuple(
        Setting(replace(base, discrete_block=b, categories=k), (("discrete", b), ("k", k))) for b in blocks for k in ks
    )


# The quick sweeps train each run for fewer steps than the `quick` preset: ten settings
# x three seeds must fit in an hour on a 2-core CPU, evaluation included.
QUICK_SWEEP = replace(QUICK, train_steps=20_000)
# Quick ablations: the quick encoder and schedule, probes on 2048 samples, and as many
# steps and seeds as fit in 30 minutes on a 2-core CPU, evaluation included: the elbow
# shows after 10k steps; content needs 15k-20k to pass R² 0.8 for every dimension.
QUICK_ABLATION = independent_multimodal(QUICK_SWEEP)
PAPER_ABLATION = independent_multimodal(PAPER)


def _no_m(cfg: Config) -> Config:
    return replace(cfg, modality_n=0)


def _independent(cfg: Config) -> Config:
    return replace(cfg, wishart="independent")


def _quick_ablation(settings, steps: int, seeds: int, labels, report: str) -> SweepPreset:
    settings = tuple(replace(s, cfg=replace(s.cfg, train_steps=steps)) for s in settings)
    return SweepPreset(settings, seeds=seeds, num_eval_batches=1, eval_batch_size=2048, labels=labels, report=report)


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class Preset:
    command: str  # the command that takes it: "train", "sweep", "imgtxt train", "imgtxt sweep", "multiview", ...
    value: Any
    about: str


def _entries():
    yield (
        "paper",
        Preset("train", PAPER, "the paper's configuration exactly (300,001 steps at batch 6144: days on a CPU)"),
    )
    yield "quick", Preset("train", QUICK, "the paper's latent model on small encoders: minutes on a CPU")
    yield "table1", Preset("sweep", SweepPreset(table_settings(PAPER)), "Table 1, paper scale")
    yield (
        "table1-quick",
        Preset("sweep", SweepPreset(table_settings(QUICK_SWEEP), num_eval_batches=1), "Table 1, quick scale"),
    )
    yield (
        "table1-independent",
        Preset(
            "sweep",
            SweepPreset(table_settings(_independent(PAPER))),
            "Table 1 with independent Wishart draws, paper scale",
        ),
    )
    yield (
        "table1-independent-quick",
        Preset(
            "sweep",
            SweepPreset(table_settings(_independent(QUICK_SWEEP)), num_eval_batches=1),
            "Table 1 with independent Wishart draws, quick scale",
        ),
    )
    yield (
        "table4",
        Preset(
            "sweep",
            SweepPreset(table_settings(_no_m(PAPER), ("multimodal",))),
            "Table 4 (no modality-specific latents), paper scale",
        ),
    )
    yield (
        "table4-quick",
        Preset(
            "sweep",
            SweepPreset(table_settings(_no_m(QUICK_SWEEP), ("multimodal",)), num_eval_batches=1),
            "Table 4, quick scale",
        ),
    )
    yield (
        "interventions",
        Preset(
            "sweep",
            SweepPreset(table_settings(PAPER, ("multimodal",)), permuted_content=True),
            "content permuted at test time, paper scale",
        ),
    )
    yield (
        "interventions-quick",
        Preset(
            "sweep",
            SweepPreset(table_settings(QUICK_SWEEP, ("multimodal",)), num_eval_batches=1, permuted_content=True),
            "content permuted at test time, quick scale",
        ),
    )
    yield (
        "encoding-size",
        Preset(
            "sweep",
            SweepPreset(encoding_size_settings(PAPER_ABLATION), labels=("encoding_size",), report="encoding-size"),
            "encoding size 1..15, validation loss and its elbow, paper scale",
        ),
    )
    yield (
        "encoding-size-quick",
        Preset(
            "sweep",
            _quick_ablation(encoding_size_settings(QUICK_ABLATION), 10_000, 2, ("encoding_size",), "encoding-size"),
            "encoding size ablation, quick scale",
        ),
    )
    yield (
        "dims",
        Preset(
            "sweep",
            SweepPreset(dims_settings(PAPER_ABLATION), labels=("ns", "nm"), report="dims"),
            "nm and ns in {0, 1, 3, 5, 7, 9}, paper scale",
        ),
    )
    yield (
        "dims-quick",
        Preset(
            "sweep",
            _quick_ablation(dims_settings(QUICK_ABLATION), 20_000, 1, ("ns", "nm"), "dims"),
            "dimension ablation, quick scale",
        ),
    )
    yield (
        "discrete",
        Preset(
            "sweep",
            SweepPreset(discrete_settings(PAPER_ABLATION), labels=("discrete", "k"), report="discrete"),
            "discrete c, s or m with k = 3..10, paper scale",
        ),
    )
    yield (
        "discrete-quick",
        Preset(
            "sweep",
            _quick_ablation(discrete_settings(QUICK_ABLATION, ks=(3, 10)), 15_000, 2, ("discrete", "k"), "discrete"),
            "discrete ablation (k = 3, 10), quick scale",
        ),
    )


REGISTRY: dict[tuple[str, str], Preset] = {(p.command, name): p for name, p in _entries()}


def register(name: str, command: str, value: Any, about: str) -> None:
    """Add an experiment's preset: each experiment package registers its own beside its command."""
    REGISTRY[command, name] = Preset(command, value, about)


def names(command: str) -> list[str]:
    """The presets `command` takes, in the registry's order."""
    return [name for cmd, name in REGISTRY if cmd == command]


def get(command: str, name: str):
    """The preset `name` of `command`; `ConfigError` naming the choices if there is none."""
    if (command, name) not in REGISTRY:
        raise ConfigError(f"unknown preset {name!r} for {command}; choose from {', '.join(names(command))}")
    return REGISTRY[command, name].value


def sweep_preset(name: str) -> SweepPreset:
    return get("sweep", name)


PRESETS: dict[str, Config] = {name: get("train", name) for name in names("train")}  # the run presets, by name
