"""Sweeps: every setting of a preset for many seeds, a few programs in all.

Settings that differ only in per-run numbers (`Hyper`: p_chg, lr, ...) share one
program: their runs (settings x seeds) are stacked on one axis, vmapped, and that
axis is sharded over every device of every process (`jax.sharding`). Settings that
change shapes or structure (statistical or causal dependence, the mechanism) are
looped. Training is checkpointed per chunk (`stacked`: each process writes its runs),
so a sweep resumes, on any number of devices and processes; each process probes the
runs it holds and process 0 gathers the rows. A run whose loss stops being finite is
marked and frozen while the others finish. Each finished program's rows are kept with
their evaluation settings and provenance, so it is not trained again, and evaluated
again only when those differ.

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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mmident_jax import ablations, provenance, report, rundir, stacked, train
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


class Trained(NamedTuple):
    """A trained group as this process holds it.

    `state` (host arrays) holds runs `first`, `first + 1`, ... of the group: all of them on
    one process, this process's share on several. `diverged_at[i]` is the step at which
    run i's loss was first not finite (0 for a healthy run); a diverged run keeps the
    parameters of its last good chunk.
    """

    state: train.TrainState
    first: int
    diverged_at: np.ndarray


def _mesh() -> Mesh:
    """Every device of every process on one "runs" axis, each process's devices adjacent."""
    return Mesh(np.array(sorted(jax.devices(), key=lambda d: (d.process_index, d.id))), ("runs",))


def _pad(tree, count: int):
    """Host arrays with `count` copies of the last run appended (so every device gets as many)."""
    return jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], count, axis=0)]), tree)


def _shard(tree, mesh: Mesh):
    """Host arrays with a leading run axis -> global arrays sharded over all devices."""
    sharding = NamedSharding(mesh, PartitionSpec("runs"))
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda i: x[i]), tree)


def _gather(tree):
    """Global sharded arrays -> the same full numpy arrays on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def _local(tree, runs: int):
    """(first, host arrays): the real runs (not padding) this process holds of sharded arrays."""
    def start(shard) -> int:
        return shard.index[0].start or 0

    first = min(map(start, jax.tree.leaves(tree)[0].addressable_shards))
    return first, jax.tree.map(lambda x: np.concatenate([np.asarray(s.data) for s in sorted(
        x.addressable_shards, key=start)])[:max(0, runs - first)], tree)


def _parts(mesh: Mesh, padded: int, runs: int) -> list[tuple[int, int]]:
    """Each process's runs [lo, hi) of the group (padding left out), in process order."""
    per_device, ranges = padded // mesh.size, {}
    for k, device in enumerate(mesh.devices.flat):
        lo, hi = ranges.get(device.process_index, (k * per_device, k * per_device))
        ranges[device.process_index] = (lo, (k + 1) * per_device)
    return [(lo, min(hi, runs)) for _, (lo, hi) in sorted(ranges.items()) if lo < runs]


def stack_runs(runs: list[tuple[Setting, int]]) -> tuple[np.ndarray, Hyper]:
    """The runs' root keys and per-run numbers, stacked on a leading run axis (host arrays)."""
    keys = np.stack([np.asarray(jax.random.PRNGKey(seed)) for _, seed in runs])
    return keys, jax.tree.map(lambda *xs: np.stack(xs), *(jax.device_get(hyper(s.cfg)) for s, _ in runs))


def chunk_program(cfg: Config, n: int):
    """`(states, hp, live) -> (states, losses)`: n steps of every run, vmapped, jitted, donating.

    A run that is not `live`, or whose loss is not finite in these steps, keeps its state.
    """
    run = train.make_run(cfg)

    def chunk(state, hp, live):
        new, losses = run(state, hp, n)
        keep = live & jnp.all(jnp.isfinite(losses))
        return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state), losses

    return jax.jit(jax.vmap(chunk), donate_argnums=0)


def train_group(cfg: Config, runs: list[tuple[Setting, int]], out: Path | None = None,
                name: str = "", on_chunk=None) -> Trained:
    """Train the runs of one program together, sharded over every device.

    With `out`, the group is checkpointed in `out/name` after every chunk of `log_steps`
    steps (`stacked`: each process writes its runs), and training resumes from it, on
    any number of devices and processes. `on_chunk(step, losses)` gets each chunk's last
    step and mean loss per run (NaN for diverged runs). A run whose loss is not finite
    stops there (`Trained.diverged_at`); the others go on.
    """
    mesh, n = _mesh(), len(runs)
    keys, hp = stack_runs(runs)
    init = jax.jit(jax.vmap(train.make_init(cfg)))
    path = out / name if out is not None else None
    legacy = out / name.replace(".ckpt", ".msgpack") if out is not None else None
    if path is not None and stacked.exists(path):
        step, state, diverged_at = stacked.restore(path, jax.eval_shape(init, keys, hp))
    elif legacy is not None and legacy.exists():  # one file of padded runs, written before `stacked`
        step, state, diverged_at = stacked.restore_file(legacy, jax.eval_shape(init, keys, hp))
    else:  # on one device: the mixers' batched SVDs do not partition
        step, state, diverged_at = 0, jax.device_get(init(keys, hp)), np.zeros(n, np.int32)
    pad = (-n) % mesh.size
    state, hp = _shard(_pad(state, pad), mesh), _shard(_pad(hp, pad), mesh)
    chunks = {}
    while step < cfg.train_steps and not np.all(diverged_at):
        length = train.chunk_length(cfg, step)
        if length not in chunks:
            chunks[length] = chunk_program(cfg, length)
        state, losses = chunks[length](state, hp, _shard(_pad(diverged_at == 0, pad), mesh))
        losses = np.array(_gather(losses)[:n])
        finite = np.isfinite(losses)
        diverged_at = np.where((diverged_at == 0) & ~finite.all(axis=1),
                               step + 1 + np.argmin(finite, axis=1), diverged_at).astype(np.int32)
        losses[diverged_at > 0] = np.nan
        step += length
        if path is not None:
            _save(path, step, state, diverged_at, _parts(mesh, n + pad, n))
        if on_chunk:
            on_chunk(step, losses.mean(axis=1))
    first, local = _local(state, n)
    return Trained(local, first, diverged_at)


def _save(path: Path, step: int, state, diverged_at: np.ndarray, parts: list[tuple[int, int]]) -> None:
    """Each process writes its runs; once all have, process 0 commits the step."""
    first, local = _local(state, len(diverged_at))
    if first < len(diverged_at):
        stacked.save_part(path, step, first, local, diverged_at[first:first + len(jax.tree.leaves(local)[0])])
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"{path} step {step}")
    if jax.process_index() == 0:
        stacked.commit(path, step, parts)


def evaluate_group(trained: Trained, runs: list[tuple[Setting, int]], preset: SweepPreset,
                   on_run=None) -> list[dict]:
    """Result rows of the runs `trained` holds: labels, seed, validation loss, probe scores,
    and for a diverged run the step (`diverged_at`) whose parameters before it were probed."""
    rows = []
    for i in range(len(trained.state.step)):
        run_state = jax.tree.map(lambda x: x[i], trained.state)
        setting, seed = runs[trained.first + i]
        diverged = int(trained.diverged_at[trained.first + i])
        table = evaluate(run_state, setting.cfg, probes=preset.probes,
                         num_batches=preset.num_eval_batches, batch_size=preset.eval_batch_size,
                         permuted_content=preset.permuted_content, nonlinear_probe=preset.nonlinear_probe,
                         metrics=preset.metrics)
        val_loss = validation_loss(run_state, setting.cfg)
        rows.extend({**setting.labels(), "seed": seed, "val_loss": val_loss, **row,
                     **({"diverged_at": diverged} if diverged else {})} for row in table)
        if on_run:
            on_run()
    return rows


def _gather_rows(rows: list[dict]) -> list[dict]:
    """Every process's rows, in process order, on every process."""
    if jax.process_count() == 1:
        return rows
    data = np.frombuffer(json.dumps(rows).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([data.size])).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    everyone = multihost_utils.process_allgather(padded)
    return [row for p, size in enumerate(sizes) for row in json.loads(everyone[p, :size].tobytes())]


def evaluation_settings(preset: SweepPreset) -> dict:
    """What a sweep's evaluation depends on beyond the trained states."""
    return {"probes": list(preset.probes), "num_eval_batches": preset.num_eval_batches,
            "eval_batch_size": preset.eval_batch_size, "nonlinear_probe": preset.nonlinear_probe,
            "metrics": list(preset.metrics), "permuted_content": preset.permuted_content}


def _reusable(path: Path | None, evaluation: dict, say) -> list[dict] | None:
    """A group's stored rows when they were made by this evaluation, computed as today; else None."""
    if path is None or not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
    except ValueError:
        say(f"{path.name}: not readable; evaluating again")
        return None
    if isinstance(stored, list):  # written before evaluations were recorded
        stored = {"rows": stored}
    if "evaluation" not in stored:
        say(f"{path.name}: made by an earlier version that did not record its evaluation; evaluating again")
    elif stored["evaluation"] != evaluation:
        say(f"{path.name}: evaluated with other settings; evaluating again")
    elif mismatch := provenance.mismatch(stored.get("made_by")):
        say(f"{path.name}: {mismatch}; evaluating again")
    else:
        return stored["rows"]
    return None


def sweep(preset: SweepPreset, out: Path | None = None, *, progress: bool = True, say=print) -> list[dict]:
    """Train and evaluate every run of `preset`; returns one row per run x encoder x block.

    With `out`, each group's checkpoint (`groupN.ckpt`), training-loss curve
    (`groupN.curve.json`: per chunk, the step and each run's mean loss) and results
    (`groupN.json`: rows, evaluation settings, provenance) are kept there, so a rerun
    resumes; a finished group whose evaluation settings or version differ is evaluated
    again from its checkpoint, without training. Processes share the runs of a group for
    both training and evaluation; `say` reports (on process 0) what is evaluated again.
    """
    evaluation = evaluation_settings(preset)
    say = say if jax.process_index() == 0 else (lambda message: None)
    groups = group_runs(preset)
    steps = sum(cfg.train_steps * len(runs) for cfg, runs in groups)
    bar = Progress({"seed-steps": steps, "runs probed": sum(len(r) for _, r in groups)},
                   enabled=progress and jax.process_index() == 0)
    rows = []
    for g, (cfg, runs) in enumerate(groups):
        done = out / f"group{g}.json" if out is not None else None
        stored = _reusable(done, evaluation, say)
        if stored is not None:
            rows.extend(stored)
            bar.advance("seed-steps", cfg.train_steps * len(runs))
            bar.advance("runs probed", len(runs))
            continue
        bar.advance("seed-steps", info=f"training {', '.join(dict.fromkeys(_label(s) for s, _ in runs))}")
        curve = _Curve(out / f"group{g}.curve.json" if out is not None else None, runs)

        def on_chunk(step, losses, runs=runs, curve=curve):
            bar.advance("seed-steps", (step - curve.last_step) * len(runs))
            curve.append(step, losses)

        trained = train_group(cfg, runs, out, f"group{g}.ckpt", on_chunk=on_chunk)
        bar.advance("seed-steps", info="probing codes")
        group_rows = _gather_rows(evaluate_group(trained, runs, preset,
                                                 on_run=lambda: bar.advance("runs probed", 1)))
        if done is not None and jax.process_index() == 0:
            rundir.write_atomic(done, json.dumps({"evaluation": evaluation, "made_by": provenance.provenance(),
                                                  "rows": group_rows}).encode())
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


# Evaluation settings that sweep.json held before each group recorded its own evaluation.
EVALUATION_KEYS = ("num_eval_batches", "nonlinear_probe", "eval_size", "metrics")


def prepare_out(out: Path, identity: dict) -> None:
    """Create `out` for the sweep that `identity` (what fixes its training) describes, or check
    it holds that same sweep; `sweep.json` records the identity and what made it."""
    marker = out / "sweep.json"
    if out.exists() and not out.is_dir():
        raise rundir.RunDirError(f"--out {out} exists and is not a directory")
    if marker.exists():
        try:
            stored = json.loads(marker.read_text())
            trained = {k: v for k, v in stored.items() if k not in ("made_by", *EVALUATION_KEYS)}
        except (ValueError, AttributeError):
            raise rundir.RunDirError(f"{marker} is not a readable sweep.json; use another --out") from None
        if trained != identity:
            raise rundir.RunDirError(f"{out} holds another sweep ({trained}); use another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise rundir.RunDirError(f"{out} is not empty and holds no sweep (sweep.json missing)")
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(marker, json.dumps({**identity, "made_by": provenance.provenance()}).encode())


REPORTS = {"tables": report.write_tables, "encoding-size": ablations.write_encoding_size,
           "dims": ablations.write_dims, "discrete": ablations.write_discrete}


def stored_rows(out: Path, preset: SweepPreset) -> list[dict]:
    """The result rows a finished sweep keeps in `out` (`groupN.json`), in the preset's order."""
    paths = [out / f"group{g}.json" for g in range(len(group_runs(preset)))]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise rundir.RunDirError(f"{out} has no results for {', '.join(missing)}; run the sweep first")
    stored = [json.loads(path.read_text()) for path in paths]
    return [row for group in stored for row in (group if isinstance(group, list) else group["rows"])]


def diverged_runs(rows: list[dict], labels) -> list[str]:
    """One phrase per diverged run of `rows`: its labels, seed and the step it diverged at."""
    runs = {(*(r[k] for k in labels), r["seed"]): r["diverged_at"] for r in rows if "diverged_at" in r}
    return [" ".join(f"{k}={v}" for k, v in zip((*labels, "seed"), run)) + f" at step {step}"
            for run, step in runs.items()]


def write_results(out: Path, name: str, rows: list[dict], preset: SweepPreset) -> list[str]:
    """results.csv (every run), results.md and the figure (healthy runs) in `out`; returns what
    could not be written. Diverged runs are listed under the tables."""
    report.write_text(out / "results.csv", report.csv_text(rows, (*preset.labels, "seed", *PROBE_COLUMNS)))
    skipped = REPORTS[preset.report](out, name, [r for r in rows if "diverged_at" not in r], preset.seeds)
    diverged = diverged_runs(rows, preset.labels)
    if diverged:
        md = (out / "results.md").read_text()
        report.write_text(out / "results.md", md + "\nLeft out of the tables, diverged: " + "; ".join(diverged) + ".\n")
    return skipped
