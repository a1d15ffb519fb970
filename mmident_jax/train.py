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

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mmident_jax import core, driver, encoders, latents, losses, mixing, optim
from mmident_jax.config import Config, Hyper, hyper, replace
from mmident_jax.core import TrainState, stream


class GroundTruth(NamedTuple):
    """The fixed generative model of one seed: latent parameters and both mixers."""

    latents: latents.LatentParams
    f1: mixing.Mixer
    f2: mixing.Mixer


def init_truth(key: jax.Array, cfg: Config) -> GroundTruth:
    """The ground-truth model of the run with root key `key`."""
    k_latents, k_f1, k_f2 = jax.random.split(stream(key, "truth"), 3)

    def mixer(k):
        return mixing.init(
            k, cfg.n_latent, cfg.n_mixing_layer, method=cfg.mixing_init, pool=cfg.cond_pool, ratio=cfg.cond_thresh_ratio
        )

    f1 = mixer(k_f1)
    f2 = f1 if cfg.shared_mixing else mixer(k_f2)
    return GroundTruth(latents.init(k_latents, cfg), f1, f2)


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


def contrastive_loss(
    params, cfg: Config, hp: Hyper, truth: GroundTruth, positives: latents.Blocks, negatives: latents.Blocks
) -> jax.Array:
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
        return tuple(latents.sample_blocks(k, state.truth.latents, cfg, hp, cfg.batch_size) for k in (k_pos, k_neg))


def make_init(cfg: Config) -> Callable[[jax.Array, Hyper], TrainState]:
    """`init(key, hp)`: the state before the first step."""

    def init(key, hp):
        params = encoders.init(stream(key, "encoder"), cfg)
        opt_state = optim.optimizer(cfg, hp.lr).init(params)
        return TrainState(jnp.zeros((), jnp.int32), params, opt_state, init_truth(key, cfg), key)

    return init


def make_step(cfg: Config) -> Callable[[TrainState, Hyper], tuple[TrainState, jax.Array]]:
    """`step(state, hp) -> (state, loss)`: one optimisation step on fresh data."""

    def loss(params, state, hp, batch):
        value = contrastive_loss(params, cfg, hp, state.truth, *batch)
        return value, value

    return core.make_step(lambda state, hp: data(state, cfg, hp), loss, lambda hp: optim.optimizer(cfg, hp.lr))


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


def train_seeds(cfg: Config, seeds: int = 1, *, progress: bool = True) -> TrainState:
    """Seeds `cfg.seed` .. `cfg.seed + seeds - 1` of `cfg` trained together (one program,
    sharded over the devices); returns their final states stacked along a leading seed axis.

    `progress` shows a bar on a terminal, else a line per chunk with the projected time.
    Each seed's numbers are those of `make_train(replace(cfg, seed=...))(PRNGKey(seed))`.
    Raises `TrainingDiverged` naming the seeds whose loss stopped being finite.

    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=4, log_steps=2, cond_pool=1000)
    >>> train_seeds(cfg, 2, progress=False).step.tolist()
    [4, 4]
    """
    import numpy as np

    from mmident_jax import engine
    from mmident_jax.progress import Progress

    keys = np.stack([driver.key(replace(cfg, seed=cfg.seed + i)) for i in range(seeds)])
    hp = jax.tree.map(lambda x: np.full((seeds,), x), hyper(cfg))
    bar = Progress({"seed-steps": cfg.train_steps * seeds}, enabled=progress)
    trained = engine.train_runs(
        experiment(cfg),
        keys,
        hp,
        on_chunk=lambda chunk: bar.advance(
            "seed-steps", chunk.length * seeds, info=f"loss {float(np.nanmean(chunk.losses)):.4f}"
        ),
    )
    bar.close()
    bad = [cfg.seed + i for i in np.flatnonzero(trained.diverged_at)]
    if bad:
        raise core.TrainingDiverged(f"seed(s) {', '.join(map(str, bad))} diverged")
    return jax.tree.map(jnp.asarray, trained.state)


def fit(cfg: Config, run_dir, *, monitor=None, progress: bool = True, print_fn=print) -> TrainState:
    """Train `cfg` in `run_dir` (resuming from its checkpoint) with `driver.fit`."""
    return driver.fit(cfg, run_dir, experiment(cfg), hyper(cfg), monitor=monitor, progress=progress, print_fn=print_fn)


def restore(run_dir, cfg: Config) -> TrainState:
    """The state saved in `run_dir` of the run `cfg`."""
    return driver.restore(run_dir, experiment(cfg), hyper(cfg))
