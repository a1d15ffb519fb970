"""Sweeps: every setting of a preset for many seeds, a few programs in all (DESIGN §2-4).

Settings that differ only in per-run numbers (`Hyper`: p_chg, lr, ...) share one
program: their runs (settings x seeds) are stacked on one axis, vmapped, and that
axis is sharded over every device of every process (`jax.sharding`). Settings that
change shapes or structure (statistical or causal dependence, the mechanism) are
looped. Training is checkpointed per chunk, so a sweep resumes; each finished
program's results are kept, so it is not trained again.

Example:
    >>> from mmident_jax.config import Config
    >>> base = Config(encoder_widths=(16,), batch_size=32, train_steps=4, cond_pool=1000)
    >>> preset = SweepPreset(table_settings(base, ("multimodal",))[:2], seeds=2,
    ...                      probes=("linear",), eval_batch_size=256)
    >>> rows = sweep(preset, progress=False)
    >>> len(rows), sorted(rows[0])[:4]
    (40, ['causal', 'encoding', 'mechanism', 'p_chg'])
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mmident_jax import plotting, rundir, train
from mmident_jax.evaluate import BATCH_SIZE, COLUMNS as PROBE_COLUMNS, evaluate, validation_loss
from mmident_jax.config import PRESETS, Config, Hyper, hyper, replace

TABLE_LABELS = ("mechanism", "p_chg", "statistical", "causal")
COLUMNS = (*TABLE_LABELS, "seed", *PROBE_COLUMNS)
GENERATIVE = ((1.0, False, False), (0.75, False, False), (0.75, True, False),
              (0.75, False, True), (0.75, True, True))  # (p_chg, statistical, causal): Table 1 rows


@dataclass(frozen=True)
class Setting:
    """One row of a sweep's table: the run config and its labels ((column, value) pairs)."""

    cfg: Config
    label: tuple[tuple[str, object], ...]

    def labels(self) -> dict:
        return dict(self.label)


@dataclass(frozen=True)
class SweepPreset:
    """A sweep: its settings, seeds, evaluation, and how its results are reported.

    `report(out, name, rows, seeds)` writes results.md and the figure and returns what it
    could not write; None means the paper's tables (`write_tables`).
    """

    settings: tuple[Setting, ...]
    seeds: int = 3
    num_eval_batches: int = 5
    probes: tuple[str, ...] = ("linear", "kernel")
    nonlinear_probe: str = "kernel"
    permuted_content: bool = False
    eval_batch_size: int = BATCH_SIZE
    labels: tuple[str, ...] = TABLE_LABELS
    report: Callable | None = None

    def with_overrides(self, *, seeds=None, train_steps=None, num_eval_batches=None,
                       nonlinear_probe=None) -> "SweepPreset":
        """The preset with fewer/more seeds, steps or evaluation batches, or another nonlinear probe."""
        settings = self.settings if train_steps is None else tuple(
            replace(s, cfg=replace(s.cfg, train_steps=train_steps)) for s in self.settings)
        return replace(self, settings=settings, seeds=seeds or self.seeds,
                       num_eval_batches=num_eval_batches or self.num_eval_batches,
                       nonlinear_probe=nonlinear_probe or self.nonlinear_probe)


def mechanism_config(base: Config, mechanism: str) -> Config:
    """The paper's two mechanisms: "original" multi-view (f1 = f2, shared g, nm = 0) or "multimodal"."""
    if mechanism == "original":
        return replace(base, shared_mixing=True, shared_encoder=True, modality_n=0)
    return base


def table_settings(base: Config, mechanisms=("original", "multimodal")) -> tuple[Setting, ...]:
    """The five generative settings of Table 1 for each mechanism."""
    return tuple(Setting(replace(mechanism_config(base, m), style_change_prob=p, statistical_dependence=stat,
                                 content_dependent_style=causal),
                         (("mechanism", m), ("p_chg", p), ("statistical", stat), ("causal", causal)))
                 for m in mechanisms for p, stat, causal in GENERATIVE)


# The quick sweeps train each run for fewer steps than the `quick` preset: ten settings
# x three seeds must fit in an hour on a 2-core CPU, evaluation included.
QUICK_SWEEP = replace(PRESETS["quick"], train_steps=20_000)
_no_m = lambda cfg: replace(cfg, modality_n=0)
_independent = lambda cfg: replace(cfg, wishart="independent")

SWEEP_PRESETS: dict[str, SweepPreset] = {
    "table1": SweepPreset(table_settings(PRESETS["paper"])),
    "table1-quick": SweepPreset(table_settings(QUICK_SWEEP), num_eval_batches=1),
    "table1-independent": SweepPreset(table_settings(_independent(PRESETS["paper"]))),
    "table1-independent-quick": SweepPreset(table_settings(_independent(QUICK_SWEEP)), num_eval_batches=1),
    "table4": SweepPreset(table_settings(_no_m(PRESETS["paper"]), ("multimodal",))),
    "table4-quick": SweepPreset(table_settings(_no_m(QUICK_SWEEP), ("multimodal",)), num_eval_batches=1),
    "interventions": SweepPreset(table_settings(PRESETS["paper"], ("multimodal",)), permuted_content=True),
    "interventions-quick": SweepPreset(table_settings(QUICK_SWEEP, ("multimodal",)),
                                       num_eval_batches=1, permuted_content=True),
}


def program_key(cfg: Config) -> Config:
    """What fixes the compiled program: the config with its per-run numbers and seed blanked."""
    return replace(cfg, seed=0, **{name: getattr(Config(), name) for name in Hyper._fields})


def group_runs(preset: SweepPreset) -> list[tuple[Config, list[tuple[Setting, int]]]]:
    """Runs (setting, seed) grouped by program, in the preset's order."""
    groups: dict[Config, list] = {}
    for setting in preset.settings:
        groups.setdefault(program_key(setting.cfg), []).extend((setting, s) for s in range(preset.seeds))
    return list(groups.items())


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("runs",))


def _shard(tree, mesh: Mesh):
    """Host arrays with a leading run axis -> global arrays sharded over all devices."""
    sharding = NamedSharding(mesh, PartitionSpec("runs"))
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda i: x[i]), tree)


def _gather(tree):
    """Global sharded arrays -> the same full numpy arrays on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def train_group(cfg: Config, runs: list[tuple[Setting, int]], out: Path | None = None,
                name: str = "", on_chunk=None) -> train.TrainState:
    """Train the runs of one program together; returns their stacked final state (host arrays).

    Runs are padded to a multiple of the device count and sharded over devices. With
    `out`, the stacked state is saved as `out/name` after every chunk of `log_steps`
    steps, and training resumes from it. `on_chunk(step, losses)` gets each chunk's
    last step and mean loss per run.
    """
    mesh = _mesh()
    padded = runs + [runs[-1]] * ((-len(runs)) % mesh.size)  # every device gets as many runs
    keys = np.stack([np.asarray(jax.random.PRNGKey(seed)) for _, seed in padded])
    hp = jax.tree.map(lambda *xs: np.stack(xs), *(jax.device_get(hyper(s.cfg)) for s, _ in padded))
    init = jax.jit(jax.vmap(train.make_init(cfg)))
    if out is not None and (out / name).exists():
        state = rundir.restore_checkpoint(out, jax.eval_shape(init, keys, hp), name)
    else:  # on one device: the mixers' batched SVDs do not partition
        state = jax.device_get(init(keys, hp))
    state, hp = _shard(state, mesh), _shard(hp, mesh)
    run, chunks = train.make_run(cfg), {}
    step = int(_gather(state.step)[0])
    while step < cfg.train_steps:
        n = train.chunk_length(cfg, step)
        if n not in chunks:
            chunks[n] = jax.jit(jax.vmap(lambda s, h, n=n: run(s, h, n)), donate_argnums=0)
        state, losses = chunks[n](state, hp)
        step += n
        losses = _gather(losses)[:len(runs)]
        if not np.all(np.isfinite(losses)):
            raise train.TrainingDiverged(f"loss is not finite in steps {step - n + 1}..{step} of {name}; "
                                         "kept the last checkpoint")
        if out is not None:
            host = _gather(state)
            if jax.process_index() == 0:
                rundir.save_checkpoint(out, host, name)
        if on_chunk:
            on_chunk(step, losses.mean(axis=1))
    return jax.tree.map(lambda x: x[:len(runs)], _gather(state))


def evaluate_group(state: train.TrainState, runs: list[tuple[Setting, int]], preset: SweepPreset,
                   on_run=None) -> list[dict]:
    """Result rows of every run of a trained group: labels, seed, validation loss and probe scores."""
    rows = []
    for i, (setting, seed) in enumerate(runs):
        run_state = jax.tree.map(lambda x: x[i], state)
        table = evaluate(run_state, setting.cfg, probes=preset.probes,
                         num_batches=preset.num_eval_batches, batch_size=preset.eval_batch_size,
                         permuted_content=preset.permuted_content, nonlinear_probe=preset.nonlinear_probe)
        val_loss = validation_loss(run_state, setting.cfg)
        rows.extend({**setting.labels(), "seed": seed, "val_loss": val_loss, **row} for row in table)
        if on_run:
            on_run()
    return rows


def sweep(preset: SweepPreset, out: Path | None = None, *, progress: bool = True) -> list[dict]:
    """Train and evaluate every run of `preset`; returns one row per run x encoder x block.

    With `out`, each group's checkpoint, training-loss curve (`groupN.curve.json`: per
    chunk, the step and each run's mean loss) and results are kept there, so a rerun
    resumes.
    """
    groups = group_runs(preset)
    steps = sum(cfg.train_steps * len(runs) for cfg, runs in groups)
    bar = _Progress(progress and jax.process_index() == 0, steps, sum(len(r) for _, r in groups))
    rows = []
    for g, (cfg, runs) in enumerate(groups):
        done = out / f"group{g}.json" if out is not None else None
        if done is not None and done.exists():
            rows.extend(json.loads(done.read_text()))
            bar.skip(cfg.train_steps * len(runs), len(runs))
            continue
        bar.describe(f"training {', '.join(dict.fromkeys(_label(s) for s, _ in runs))}")
        curve = _Curve(out / f"group{g}.curve.json" if out is not None else None, runs)

        def on_chunk(step, losses, runs=runs, curve=curve):
            bar.advance_steps((step - curve.last_step) * len(runs))
            curve.append(step, losses)

        state = train_group(cfg, runs, out, f"group{g}.msgpack", on_chunk=on_chunk)
        bar.describe("probing codes")
        group_rows = evaluate_group(state, runs, preset, on_run=bar.advance_run)
        if done is not None and jax.process_index() == 0:
            rundir.write_atomic(done, json.dumps(group_rows).encode())
        rows.extend(group_rows)
    bar.close()
    return rows


def _label(setting: Setting) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.label)


class _Curve:
    """A group's training-loss curve, kept (atomically, by process 0) beside its checkpoint."""

    def __init__(self, path: Path | None, runs: list[tuple[Setting, int]]):
        self.path, self.runs = path, [{**s.labels(), "seed": seed} for s, seed in runs]
        self.points = json.loads(path.read_text())["points"] if path is not None and path.exists() else []
        self.last_step = self.points[-1][0] if self.points else 0

    def append(self, step: int, losses: np.ndarray):
        self.points.append([step, [float(x) for x in losses]])
        self.last_step = step
        if self.path is not None and jax.process_index() == 0:
            rundir.write_atomic(self.path, json.dumps({"runs": self.runs, "points": self.points}).encode())


def loss_curves(out: Path) -> list[tuple[dict, list[int], list[float]]]:
    """Every run's training-loss curve kept in a sweep's `out`: (labels and seed, steps, losses)."""
    curves = []
    for path in sorted(out.glob("group*.curve.json"), key=lambda p: int(p.name[5:].split(".")[0])):
        data = json.loads(path.read_text())
        steps = [p[0] for p in data["points"]]
        curves.extend((run, steps, [p[1][i] for p in data["points"]]) for i, run in enumerate(data["runs"]))
    return curves


class _Progress:
    """A rich progress display over training steps and probed runs (or nothing)."""

    def __init__(self, enabled: bool, steps: int, runs: int):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
            self.train = self.bar.add_task("seed-steps", total=steps, info="")
            self.probe = self.bar.add_task("runs probed", total=runs, info="")
            self.bar.start()

    def describe(self, text: str):
        if self.bar:
            self.bar.update(self.train, info=text)

    def advance_steps(self, n: int):
        if self.bar:
            self.bar.advance(self.train, n)

    def advance_run(self):
        if self.bar:
            self.bar.advance(self.probe, 1)

    def skip(self, steps: int, runs: int):
        if self.bar:
            self.bar.advance(self.train, steps)
            self.bar.advance(self.probe, runs)

    def close(self):
        if self.bar:
            self.bar.stop()


# ------------------------------------------------------------------ tables and figure


def to_csv(rows: list[dict], labels: tuple[str, ...] = TABLE_LABELS) -> str:
    """One line per run x encoder x block: labels, seed, probe scores, then any further figures."""
    columns = [*labels, "seed", *PROBE_COLUMNS]
    columns += sorted({k for row in rows for k in row} - set(columns))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def own_blocks(encoding: str, rows: list[dict]) -> list[str]:
    """The blocks shown for an encoder: content, its own style and modality block, and c'."""
    own = {"hz1": ("c", "s", "m1"), "hz2": ("c", "s~", "m2")}[encoding] + ("c'",)
    present = {r["predicted_factors"] for r in rows}
    return [b for b in own if b in present]


def summarise(rows: list[dict], metric: str, labels: tuple[str, ...] = TABLE_LABELS
              ) -> list[tuple[dict, dict[str, tuple[float, float]]]]:
    """Per setting (in order of appearance): {"hz1: c": (mean, std over seeds), ...} of `metric`.

    Rows without `metric` (e.g. accuracies of continuous blocks) are left out.
    """
    settings: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        cells = settings.setdefault(tuple(r[c] for c in labels), {})
        if metric in r:
            cells.setdefault(f"{r['encoding']}: {r['predicted_factors']}", []).append(r[metric])
    return [(dict(zip(labels, key)), {k: (float(np.mean(v)), float(np.std(v))) for k, v in cells.items()})
            for key, cells in settings.items()]


def to_markdown(name: str, rows: list[dict], seeds: int) -> str:
    """The paper's layout: one table per mechanism, rows = settings, columns = blocks."""
    lines = [f"# {name}", ""]
    for metric, title in (("r2_nonlinear", "Nonlinear R² (kernel ridge)"), ("r2_linear", "Linear R²")):
        for mechanism in dict.fromkeys(r["mechanism"] for r in rows):
            mrows = [r for r in rows if r["mechanism"] == mechanism]
            columns = [f"{e}: {b}" for e in ("hz1", "hz2") for b in own_blocks(e, mrows)]
            lines += [f"## {title}, {mechanism}, mean ± std over {seeds} seeds", "",
                      "| p_chg | stat. | caus. | " + " | ".join(columns) + " |",
                      "|---" * (3 + len(columns)) + "|"]
            for labels, cells in summarise(mrows, metric):
                values = [f"{cells[c][0]:.2f}±{cells[c][1]:.2f}" if c in cells and not math.isnan(cells[c][0])
                          else "–" for c in columns]
                lines.append(f"| {labels['p_chg']:g} | {'yes' if labels['statistical'] else 'no'} | "
                             f"{'yes' if labels['causal'] else 'no'} | " + " | ".join(values) + " |")
            lines.append("")
    return "\n".join(lines)


def save_figure(path: Path, name: str, rows: list[dict]) -> bool:
    """Bar chart of nonlinear R² per setting and block (hz1); False if matplotlib is missing."""
    plt = plotting.pyplot()
    if plt is None:
        return False
    mechanisms = list(dict.fromkeys(r["mechanism"] for r in rows))
    fig, axes = plt.subplots(1, len(mechanisms), figsize=(6 * len(mechanisms), 3.6), squeeze=False)
    for ax, mechanism in zip(axes[0], mechanisms):
        mrows = [r for r in rows if r["mechanism"] == mechanism]
        blocks = own_blocks("hz1", mrows)
        summary = summarise(mrows, "r2_nonlinear")
        width = 0.8 / len(blocks)
        for j, block in enumerate(blocks):
            means, stds = zip(*(cells.get(f"hz1: {block}", (np.nan, 0.0)) for _, cells in summary))
            ax.bar(np.arange(len(summary)) + j * width, means, width, yerr=stds, label=block, capsize=2)
        ax.set_xticks(np.arange(len(summary)) + 0.4 - width / 2)
        ax.set_xticklabels([f"p={l['p_chg']:g}{chr(10)}{'stat ' * l['statistical']}{'caus' * l['causal']}"
                            for l, _ in summary], fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("nonlinear R² (hz1)")
        ax.set_title(f"{name}: {mechanism}")
        ax.legend(fontsize=8)
    plotting.save(fig, path)
    return True


def initialize_distributed(coordinator_address=None, num_processes=None, process_id=None) -> None:
    """Join a multi-process sweep through JAX's distributed runtime (before any computation).

    Without arguments the cluster manager's settings are used (SLURM, TPU pods, ...).
    CPU processes exchange data with gloo collectives.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # accelerators ignore it
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def prepare_out(out: Path, identity: dict) -> None:
    """Create `out` for the sweep described by `identity`, or check it holds that same sweep."""
    marker = out / "sweep.json"
    if out.exists() and not out.is_dir():
        raise rundir.RunDirError(f"--out {out} exists and is not a directory")
    if marker.exists():
        stored = json.loads(marker.read_text())
        if stored != identity:
            raise rundir.RunDirError(f"{out} holds another sweep ({stored}); use another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise rundir.RunDirError(f"{out} is not empty and holds no sweep (sweep.json missing)")
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(marker, json.dumps(identity).encode())


def write_tables(out: Path, name: str, rows: list[dict], seeds: int) -> list[str]:
    """The paper's tables as results.md and their figure as results.png; returns what could not be written."""
    rundir.write_atomic(out / "results.md", to_markdown(name, rows, seeds).encode())
    return [] if save_figure(out / "results.png", name, rows) else [NO_MATPLOTLIB]


NO_MATPLOTLIB = f"results.png ({plotting.MISSING})"


def write_results(out: Path, name: str, rows: list[dict], preset: SweepPreset) -> list[str]:
    """results.csv, results.md and the figure in `out`; returns what could not be written."""
    rundir.write_atomic(out / "results.csv", to_csv(rows, preset.labels).encode())
    return (preset.report or write_tables)(out, name, rows, preset.seeds)
