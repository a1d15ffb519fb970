"""One run on disk: any experiment trained in its run directory, resumably.

`fit` prepares the run directory (`rundir`), then trains the run with the engine
(`engine.train_runs`, one run on one device) from its checkpoint or from the start.
After each chunk of up to `log_steps` steps it checks the losses (a NaN or infinite
loss stops the run and keeps the last good checkpoint), appends a `metrics.jsonl` line
(step, mean loss, steps/s and the optional monitor's figures), writes the checkpoint
atomically and moves the progress bar. A process killed between the two leaves a line
ahead of the checkpoint, which the resumed run drops, so `metrics.jsonl` holds one
line per chunk however often the run is interrupted.

Example:
    >>> import tempfile
    >>> from mmident_jax import train
    >>> from mmident_jax.config import Config, hyper
    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=4, log_steps=2, cond_pool=1000)
    >>> state = fit(cfg, tempfile.mkdtemp(), train.experiment(cfg), hyper(cfg), progress=False)
    >>> int(state.step)
    4
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import engine, rundir
from mmident_jax.core import Experiment, TrainingDiverged
from mmident_jax.progress import Progress


class RunDirectory:
    """A run directory's `checkpoint.msgpack` (one run's state) as the engine's store."""

    def __init__(self, run_dir):
        self.run_dir = run_dir

    def load(self, target):
        if not rundir.has_checkpoint(self.run_dir):
            return None
        one = rundir.restore_checkpoint(
            self.run_dir, jax.tree.map(lambda t: jax.ShapeDtypeStruct(t.shape[1:], t.dtype), target)
        )
        return int(one.step), jax.tree.map(lambda x: np.asarray(x)[None], one), np.zeros(1, np.int32)

    def save(self, step, first, local, diverged_at, parts) -> None:
        rundir.save_checkpoint(self.run_dir, jax.tree.map(lambda x: x[0], local))


def key(cfg) -> np.ndarray:
    """The root key of the run `cfg` describes: `PRNGKey(cfg.seed)`."""
    return np.asarray(jax.random.PRNGKey(cfg.seed))


def restore(run_dir, experiment: Experiment, hp):
    """The state saved in `run_dir`, in the structure of the experiment's `init` result."""
    target = jax.eval_shape(experiment.init, jax.random.PRNGKey(0), hp)  # shapes only: any key
    return jax.tree.map(jnp.asarray, rundir.restore_checkpoint(run_dir, target))


def fit(
    cfg,
    run_dir,
    experiment: Experiment,
    hp,
    *,
    monitor: Callable[[Any], dict] | None = None,
    batching: str = "map",
    progress: bool = True,
    print_fn=print,
):
    """Train `experiment` (made from `cfg`, with per-run numbers `hp`) in `run_dir` from
    its checkpoint up to `train_steps`; returns the final state.

    `monitor(state)` adds figures to each metrics line (e.g. `evaluation.monitor(cfg)`).
    Raises `TrainingDiverged` on a non-finite loss.
    """
    rundir.prepare(run_dir, cfg)
    store = RunDirectory(run_dir)
    bar = Progress({"train": experiment.train_steps}, enabled=progress)
    start = []

    def on_chunk(chunk: engine.Chunk):
        begin = chunk.step - chunk.length
        if not start:
            start.append(begin)
            rundir.drop_metrics_after(run_dir, begin)
            bar.skip("train", begin)
        if chunk.diverged_at[0]:
            bad = chunk.diverged_at[0] - begin - 1
            raise TrainingDiverged(
                f"loss is {np.ravel(chunk.losses[0, bad])[0]} at step {chunk.diverged_at[0]}; "
                f"kept the checkpoint of step {begin}"
            )
        record = {"step": chunk.step, "loss": float(chunk.losses.mean()), "steps_per_s": chunk.length / chunk.seconds}
        record.update(monitor(jax.tree.map(lambda x: x[0], chunk.state)) if monitor else {})
        rundir.append_metrics(run_dir, record)
        r2 = record.get("r2_linear/hz1/c")
        bar.advance(
            "train", chunk.length, info=f"loss {record['loss']:.4f}" + (f"  R²(c) {r2:.3f}" if r2 is not None else "")
        )

    try:
        trained = engine.train_runs(
            experiment,
            key(cfg)[None],
            jax.tree.map(lambda x: np.asarray(x)[None], hp),
            store=store,
            on_chunk=on_chunk,
            batching=batching,
            devices=jax.devices()[:1],
        )
    finally:
        bar.close()
    state = jax.tree.map(lambda x: jnp.asarray(x[0]), trained.state)
    if not start:
        print_fn(f"{run_dir}: already trained for {int(state.step)} steps")
    return state
