"""Training: `make_train(cfg)` returns a pure `train(key)`; `fit` runs it with a run directory.

Everything seed-dependent is derived from one key through named streams
(`stream(key, "truth")`, ...): the ground-truth latent model and mixers, the encoder
initialisation, the training data (step t draws from `fold_in(data key, t)` inside
the scanned step, so data never leaves the device), the evaluation and monitor sets.

Example, three seeds in one program:
    >>> import jax
    >>> from mmident_jax.config import Config
    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=5, cond_pool=1000)
    >>> keys = jax.random.split(jax.random.PRNGKey(0), 3)
    >>> state, losses = jax.jit(jax.vmap(make_train(cfg)))(keys)
    >>> losses.shape
    (3, 5)
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmident_jax import encoders, latents, losses, mixing, probes, rundir
from mmident_jax.config import Config, Hyper, hyper

STREAMS = {"truth": 0, "encoder": 1, "data": 2, "evaluation": 3, "monitor": 4, "probes": 5}
MONITOR_SIZE = 2048  # samples to fit, and as many to score, the monitor's linear probes


def stream(key: jax.Array, name: str) -> jax.Array:
    """The key of one named random stream of a run."""
    return jax.random.fold_in(key, STREAMS[name])


class GroundTruth(NamedTuple):
    """The fixed generative model of one seed: latent parameters and both mixers."""

    latents: latents.LatentParams
    f1: mixing.Mixer
    f2: mixing.Mixer


class TrainState(NamedTuple):
    step: jax.Array  # int32, number of optimisation steps taken
    params: Any  # encoder parameters
    opt_state: Any
    truth: GroundTruth
    key: jax.Array  # the run's root key


def init_truth(key: jax.Array, cfg: Config) -> GroundTruth:
    """The ground-truth model of the run with root key `key`."""
    k_latents, k_f1, k_f2 = jax.random.split(stream(key, "truth"), 3)

    def mixer(k):
        return mixing.init(k, cfg.n_latent, cfg.n_mixing_layer, method=cfg.mixing_init,
                           pool=cfg.cond_pool, ratio=cfg.cond_thresh_ratio)

    f1 = mixer(k_f1)
    f2 = f1 if cfg.shared_mixing else mixer(k_f2)
    return GroundTruth(latents.init(k_latents, cfg), f1, f2)


def learning_rate(cfg: Config, peak, count):
    """The lr at optimiser step `count`: constant, or linear warm-up then cosine decay to 0.

    The decay ends at `cfg.train_steps`; a run shorter than its warm-up only warms up.
    """
    if cfg.lr_schedule == "constant":
        return peak
    warm = jnp.minimum(1.0, count / max(cfg.warmup_steps, 1))
    progress = jnp.clip((count - cfg.warmup_steps) / max(cfg.train_steps - cfg.warmup_steps, 1), 0.0, 1.0)
    return peak * warm * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def optimizer(cfg: Config, lr) -> optax.GradientTransformation:
    """Adam after global-norm clipping, with the schedule of `learning_rate` (peak may be traced)."""
    schedule = lr if cfg.lr_schedule == "constant" else (lambda count: learning_rate(cfg, lr, count))
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(schedule))


def observations(cfg: Config, truth: GroundTruth, blocks: latents.Blocks):
    """Both modalities' observations x1 = f1(z1), x2 = f2(z2) of a batch of latents."""
    z1, z2 = latents.views(blocks)
    with jax.named_scope("mix"):
        return mixing.apply(truth.f1, z1), mixing.apply(truth.f2, z2)


def codes(params, cfg: Config, truth: GroundTruth, blocks: latents.Blocks):
    """Both encoders' codes h1 = g1(f1(z1)), h2 = g2(f2(z2)) of a batch of latents."""
    x1, x2 = observations(cfg, truth, blocks)
    return encoders.encode(params, cfg, 1, x1), encoders.encode(params, cfg, 2, x2)


def objective(cfg: Config, hp: Hyper, h1: jax.Array, h2: jax.Array, n_positive: int) -> jax.Array:
    """The configured loss on codes whose first `n_positive` rows are the positive pairs.

    InfoNCE takes the remaining rows as the negatives; CLIP uses only the positives.
    """
    with jax.named_scope("loss"):
        if cfg.loss == "clip":
            return losses.clip(h1[:n_positive], h2[:n_positive], hp.temperature, cfg.similarity)
        b = n_positive
        return losses.infonce(h1[:b], h2[:b], h1[b:], h2[b:], hp.temperature)


def contrastive_loss(params, cfg: Config, hp: Hyper, truth: GroundTruth,
                     positives: latents.Blocks, negatives: latents.Blocks) -> jax.Array:
    """The configured objective on a positive batch (and an independent negative batch)."""
    b = positives.c.shape[0]
    if cfg.loss == "clip":
        return objective(cfg, hp, *codes(params, cfg, truth, positives), b)
    both = jax.tree.map(lambda p, n: jnp.concatenate([p, n]), positives, negatives)
    return objective(cfg, hp, *codes(params, cfg, truth, both), b)  # one encoder pass over both batches


def data(state: TrainState, cfg: Config, hp: Hyper) -> tuple[latents.Blocks, latents.Blocks]:
    """The positive and the independent negative batch of step `state.step`, drawn on the device."""
    k_pos, k_neg = jax.random.split(jax.random.fold_in(stream(state.key, "data"), state.step))
    with jax.named_scope("sample"):
        return tuple(latents.sample_blocks(k, state.truth.latents, cfg, hp, cfg.batch_size)
                     for k in (k_pos, k_neg))


def apply_gradients(cfg: Config, hp: Hyper, params, opt_state, grads):
    """`(params, opt_state)` after one optimiser update with `grads`."""
    with jax.named_scope("update"):
        updates, opt_state = optimizer(cfg, hp.lr).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state


def make_init(cfg: Config) -> Callable[[jax.Array, Hyper], TrainState]:
    """`init(key, hp)`: the state before the first step."""

    def init(key, hp):
        params = encoders.init(stream(key, "encoder"), cfg)
        opt_state = optimizer(cfg, hp.lr).init(params)
        return TrainState(jnp.zeros((), jnp.int32), params, opt_state, init_truth(key, cfg), key)

    return init


def make_step(cfg: Config) -> Callable[[TrainState, Hyper], tuple[TrainState, jax.Array]]:
    """`step(state, hp) -> (state, loss)`: one optimisation step on fresh data."""

    def step(state, hp):
        positives, negatives = data(state, cfg, hp)
        loss, grads = jax.value_and_grad(contrastive_loss)(state.params, cfg, hp, state.truth, positives, negatives)
        params, opt_state = apply_gradients(cfg, hp, state.params, state.opt_state, grads)
        return state._replace(step=state.step + 1, params=params, opt_state=opt_state), loss

    return step


def make_run(cfg: Config) -> Callable[[TrainState, Hyper, int], tuple[TrainState, jax.Array]]:
    """`run(state, hp, n) -> (state, losses)`: `n` steps in one `lax.scan` (n static)."""
    step = make_step(cfg)

    def run(state, hp, n):
        return jax.lax.scan(lambda s, _: step(s, hp), state, None, length=n)

    return run


def make_train(cfg: Config) -> Callable[..., tuple[TrainState, jax.Array]]:
    """`train(key, hp=None) -> (final state, per-step losses)`, pure and vmappable.

    `hp` defaults to the config's numbers (`hyper(cfg)`); pass a batched `Hyper` to
    vmap over learning rates, style-change probabilities, ...
    """
    init, run = make_init(cfg), make_run(cfg)

    def train(key, hp=None):
        hp = hyper(cfg) if hp is None else hp
        return run(init(key, hp), hp, cfg.train_steps)

    return train


def monitor_data(state: TrainState, cfg: Config, hp: Hyper):
    """Validation loss, codes and latent blocks of a fixed held-out set (jittable)."""
    n = MONITOR_SIZE
    blocks = latents.sample_blocks(stream(state.key, "monitor"), state.truth.latents, cfg, hp, 2 * n)
    first, second = (jax.tree.map(lambda x: x[sl], blocks) for sl in (slice(None, n), slice(n, None)))
    val_loss = contrastive_loss(state.params, cfg, hp, state.truth, first, second)
    return val_loss, codes(state.params, cfg, state.truth, blocks), blocks


_monitor_data = jax.jit(monitor_data, static_argnums=1)


def monitor(state: TrainState, cfg: Config, hp: Hyper) -> dict[str, float]:
    """Cheap progress figures: validation loss and held-out linear R² per encoder and block.

    Linear probes fit on `MONITOR_SIZE` samples and are scored on as many others
    (keys like "r2_linear/hz1/c").
    """
    val_loss, hs, blocks = _monitor_data(state, cfg, hp)
    n, named = MONITOR_SIZE, {k: np.asarray(v) for k, v in blocks.named().items() if v.shape[1]}
    out = {"val_loss": float(val_loss)}
    for name, h in zip(("hz1", "hz2"), map(np.asarray, hs)):
        r2 = probes.linear_r2_blocks(h[:n], [y[:n] for y in named.values()],
                                     h[n:], [y[n:] for y in named.values()])
        out.update({f"r2_linear/{name}/{block}": r for block, r in zip(named, r2)})
    return out


def restore(run_dir, cfg: Config) -> TrainState:
    """The training state saved in `run_dir` (trained with `cfg`)."""
    shapes = jax.eval_shape(make_init(cfg), jax.random.PRNGKey(cfg.seed), hyper(cfg))
    return jax.tree.map(jnp.asarray, rundir.restore_checkpoint(run_dir, shapes))


def chunk_length(cfg: Config, step: int) -> int:
    """Steps of the next scanned chunk from `step`: up to the next multiple of `log_steps`."""
    return min(cfg.log_steps - step % cfg.log_steps, cfg.train_steps - step)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def fit(cfg: Config, run_dir, *, progress: bool = True, print_fn=print) -> TrainState:
    """Train `cfg` in `run_dir`, resuming from its checkpoint, up to `cfg.train_steps`.

    Every `log_steps` steps (chunks of one `lax.scan`) it writes the checkpoint and one
    line of `metrics.jsonl`: step, mean loss of the chunk, steps/s and `monitor` figures.
    """
    rundir.prepare(run_dir, cfg)
    hp = hyper(cfg)
    key = jax.random.PRNGKey(cfg.seed)
    init = jax.jit(make_init(cfg))
    state = restore(run_dir, cfg) if rundir.has_checkpoint(run_dir) else init(key, hp)
    run = jax.jit(make_run(cfg), static_argnums=2, donate_argnums=0)

    compiled = {}  # chunk length -> executable; at most two lengths per run
    start = int(state.step)
    bar = _progress(progress, start, cfg.train_steps)
    while int(state.step) < cfg.train_steps:
        step = int(state.step)
        n = chunk_length(cfg, step)
        if n not in compiled:
            compiled[n] = run.lower(state, hp, n).compile()
        t0 = time.perf_counter()
        new_state, chunk_losses = compiled[n](state, hp)
        chunk_losses = np.asarray(chunk_losses)
        seconds = time.perf_counter() - t0
        if not np.all(np.isfinite(chunk_losses)):
            bad = step + 1 + int(np.argmin(np.isfinite(chunk_losses)))
            raise TrainingDiverged(f"loss is {chunk_losses[bad - step - 1]} at step {bad}; "
                                   f"kept the checkpoint of step {step}")
        state = new_state
        rundir.save_checkpoint(run_dir, state)
        record = {"step": step + n, "loss": float(chunk_losses.mean()), "steps_per_s": n / seconds}
        record.update(monitor(state, cfg, hp))
        rundir.append_metrics(run_dir, record)
        bar(step + n, record)
    bar(None, None)
    if int(state.step) == start:
        print_fn(f"{run_dir}: already trained for {start} steps")
    return state


def _progress(enabled: bool, start: int, total: int):
    """A rich progress bar; returns `update(step, record)`, with `update(None, None)` to close."""
    if not enabled:
        return lambda step, record: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[info]}"))
    task = bar.add_task("train", total=total, completed=start, info="")
    bar.start()

    def update(step, record):
        if step is None:
            bar.stop()
            return
        r2 = record.get("r2_linear/hz1/c")
        info = f"loss {record['loss']:.4f}" + (f"  R²(c) {r2:.3f}" if r2 is not None else "")
        bar.update(task, completed=step, info=info)

    return update
