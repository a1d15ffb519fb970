"""The two-view experiment, pure: `experiment(cfg)` for the core, `make_train(cfg)` -> `train(key)`.

Everything seed-dependent is derived from one key through the named streams of
`core.stream`: the ground-truth latent model and mixers, the encoder initialisation,
the training data (step t draws from `fold_in(data key, t)` inside the scanned step, so
data never leaves the device), the evaluation and monitor sets and the probes
(docs/random-streams.md). Nothing here touches files or the terminal: `fit` trains a
run in its directory (`driver.fit`), `sweep` many (`engine`).

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

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mmident_jax import core, driver, encoders, latents, losses, mixing
from mmident_jax.config import Config, Hyper, hyper
from mmident_jax.core import stream


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


def experiment(cfg: Config) -> core.Experiment:
    """The run `cfg` as the core's experiment (init, step, length)."""
    return core.Experiment(make_init(cfg), make_step(cfg), cfg.train_steps, cfg.log_steps)


def make_run(cfg: Config) -> Callable[[TrainState, Hyper, int], tuple[TrainState, jax.Array]]:
    """`run(state, hp, n) -> (state, losses)`: `n` steps in one `lax.scan` (n static)."""
    return core.scan_steps(make_step(cfg))


def make_train(cfg: Config) -> Callable[..., tuple[TrainState, jax.Array]]:
    """`train(key, hp=None) -> (final state, per-step losses)`, pure and vmappable.

    `hp` defaults to the config's numbers (`hyper(cfg)`); pass a batched `Hyper` to
    vmap over learning rates, style-change probabilities, ...
    """
    train = core.make_train(experiment(cfg))
    return lambda key, hp=None: train(key, hyper(cfg) if hp is None else hp)


def fit(cfg: Config, run_dir, *, monitor=None, progress: bool = True, print_fn=print) -> TrainState:
    """Train `cfg` in `run_dir` (resuming from its checkpoint) with `driver.fit`."""
    return driver.fit(cfg, run_dir, experiment(cfg), hyper(cfg), monitor=monitor, progress=progress,
                      print_fn=print_fn)


def restore(run_dir, cfg: Config) -> TrainState:
    """The state saved in `run_dir` of the run `cfg`."""
    return driver.restore(run_dir, experiment(cfg), hyper(cfg))
