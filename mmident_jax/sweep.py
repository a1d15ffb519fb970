"""Sweeps: every setting of a preset for many seeds, a few programs in all.

Settings that differ only in per-run numbers (`Hyper`: p_chg, lr, ...) share one
program: their runs (settings x seeds) are stacked on one axis, vmapped, and that
axis is sharded over every device of every process (`jax.sharding`). Settings that
change shapes or structure (statistical or causal dependence, the mechanism) are
looped. Training is checkpointed per chunk, so a sweep resumes; each finished
program's results are kept, so it is not trained again.

Example:
    >>> from mmident_jax.config import Config
    >>> from mmident_jax.presets import SweepPreset, table_settings
    >>> base = Config(encoder_widths=(16,), batch_size=32, train_steps=4, cond_pool=1000)
    >>> preset = SweepPreset(table_settings(base, ("multimodal",))[:2], seeds=2,
    ...                      probes=("linear",), eval_batch_size=256)
    >>> rows = sweep(preset, progress=False)
    >>> len(rows), sorted(rows[0])[:4]
    (40, ['causal', 'encoding', 'mechanism', 'p_chg'])
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mmident_jax import ablations, report, rundir, train
from mmident_jax.config import Config, Hyper, hyper, replace
from mmident_jax.evaluation import COLUMNS as PROBE_COLUMNS, evaluate, validation_loss
from mmident_jax.presets import Setting, SweepPreset
from mmident_jax.progress import Progress


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


def stack_runs(runs: list[tuple[Setting, int]]) -> tuple[np.ndarray, Hyper]:
    """The runs' root keys and per-run numbers, stacked on a leading run axis (host arrays)."""
    keys = np.stack([np.asarray(jax.random.PRNGKey(seed)) for _, seed in runs])
    return keys, jax.tree.map(lambda *xs: np.stack(xs), *(jax.device_get(hyper(s.cfg)) for s, _ in runs))


def chunk_program(cfg: Config, n: int):
    """`(stacked states, stacked hp) -> (states, losses)`: n steps of every run, vmapped, jitted, donating."""
    run = train.make_run(cfg)
    return jax.jit(jax.vmap(lambda s, h: run(s, h, n)), donate_argnums=0)


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
    keys, hp = stack_runs(padded)
    init = jax.jit(jax.vmap(train.make_init(cfg)))
    if out is not None and (out / name).exists():
        state = rundir.restore_checkpoint(out, jax.eval_shape(init, keys, hp), name)
    else:  # on one device: the mixers' batched SVDs do not partition
        state = jax.device_get(init(keys, hp))
    state, hp = _shard(state, mesh), _shard(hp, mesh)
    chunks = {}
    step = int(_gather(state.step)[0])
    while step < cfg.train_steps:
        n = train.chunk_length(cfg, step)
        if n not in chunks:
            chunks[n] = chunk_program(cfg, n)
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
                         permuted_content=preset.permuted_content, nonlinear_probe=preset.nonlinear_probe,
                         metrics=preset.metrics)
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
    bar = Progress({"seed-steps": steps, "runs probed": sum(len(r) for _, r in groups)},
                   enabled=progress and jax.process_index() == 0)
    rows = []
    for g, (cfg, runs) in enumerate(groups):
        done = out / f"group{g}.json" if out is not None else None
        if done is not None and done.exists():
            rows.extend(json.loads(done.read_text()))
            bar.advance("seed-steps", cfg.train_steps * len(runs))
            bar.advance("runs probed", len(runs))
            continue
        bar.advance("seed-steps", info=f"training {', '.join(dict.fromkeys(_label(s) for s, _ in runs))}")
        curve = _Curve(out / f"group{g}.curve.json" if out is not None else None, runs)

        def on_chunk(step, losses, runs=runs, curve=curve):
            bar.advance("seed-steps", (step - curve.last_step) * len(runs))
            curve.append(step, losses)

        state = train_group(cfg, runs, out, f"group{g}.msgpack", on_chunk=on_chunk)
        bar.advance("seed-steps", info="probing codes")
        group_rows = evaluate_group(state, runs, preset, on_run=lambda: bar.advance("runs probed", 1))
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


REPORTS = {"tables": report.write_tables, "encoding-size": ablations.write_encoding_size,
           "dims": ablations.write_dims, "discrete": ablations.write_discrete}


def stored_rows(out: Path, preset: SweepPreset) -> list[dict]:
    """The result rows a finished sweep keeps in `out` (`groupN.json`), in the preset's order."""
    paths = [out / f"group{g}.json" for g in range(len(group_runs(preset)))]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise rundir.RunDirError(f"{out} has no results for {', '.join(missing)}; run the sweep first")
    return [row for path in paths for row in json.loads(path.read_text())]


def write_results(out: Path, name: str, rows: list[dict], preset: SweepPreset) -> list[str]:
    """results.csv, results.md and the figure in `out`; returns what could not be written."""
    report.write_text(out / "results.csv", report.csv_text(rows, (*preset.labels, "seed", *PROBE_COLUMNS)))
    return REPORTS[preset.report](out, name, rows, preset.seeds)
