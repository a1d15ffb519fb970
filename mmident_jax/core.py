"""The one training core: an experiment is an `init` and a `step`; the core scans steps.

Every experiment (two-view, multi-view, image/text) supplies an `Experiment`: the state
before the first step, `init(key, hp)`, and one optimisation step on freshly drawn
data, `step(state, hp) -> (state, losses)`, both pure. `hp` is the run's per-run
numbers (a pytree of arrays, so runs can be stacked and vmapped). The core turns an
experiment into a pure `train(key, hp)` (`make_train`); `engine` trains many runs of it
together, `driver.fit` one run in its directory, `sweep` every run of a study.

Random streams are named and shared by all experiments: a run's root key is split by
`stream(key, name)` into the ground truth, the encoders, the training data, the
evaluation and monitor sets and the probes (docs/random-streams.md).

Example, a counter that "trains" by adding its learning rate:
    >>> import jax, jax.numpy as jnp
    >>> counter = Experiment(init=lambda key, hp: {"step": jnp.int32(0), "x": jnp.float32(0)},
    ...                      step=lambda s, hp: ({"step": s["step"] + 1, "x": s["x"] + hp}, s["x"]),
    ...                      train_steps=3, log_steps=2)
    >>> state, losses = make_train(counter)(jax.random.PRNGKey(0), jnp.float32(0.5))
    >>> float(state["x"]), losses.tolist(), chunk_length(counter, 2)
    (1.5, [0.0, 0.5, 1.0], 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

STREAMS = {"truth": 0, "encoder": 1, "data": 2, "evaluation": 3, "monitor": 4, "probes": 5, "selection": 6}


def stream(key: jax.Array, name: str) -> jax.Array:
    """The key of one named random stream of a run."""
    return jax.random.fold_in(key, STREAMS[name])


class Experiment(NamedTuple):
    """What the core needs of an experiment: pure `init` and `step`, and how long to train.

    - `init(key, hp)`: the state before the first step; it has a `step` entry (int32).
    - `step(state, hp) -> (state, losses)`: one optimisation step on fresh data.
    - `train_steps`, `log_steps`: the run's length and its chunks (checkpoints, metrics).
    - `scan`: chunks are one `lax.scan`; False dispatches one jitted step at a time
      (XLA's CPU backend runs convolutions inside a loop many times slower).
    """

    init: Callable[[jax.Array, Any], Any]
    step: Callable[[Any, Any], tuple[Any, Any]]
    train_steps: int
    log_steps: int
    scan: bool = True


class TrainState(NamedTuple):
    """The state of a contrastive run: steps taken, encoder parameters, optimiser state,
    the fixed ground truth of its generative model and its root key."""

    step: jax.Array  # int32, number of optimisation steps taken
    params: Any
    opt_state: Any
    truth: Any
    key: jax.Array


def make_step(data: Callable, loss: Callable, optimizer: Callable) -> Callable:
    """`step(state, hp) -> (state, losses)` from an experiment's data, loss and optimiser.

    `data(state, hp)` draws the step's batch (on the device, from the state's key and
    step); `loss(params, state, hp, batch) -> (total, losses)` is differentiated in
    `params`; `optimizer(hp)` is the `optax` transformation (its learning rate may be traced).
    """

    def step(state, hp):
        batch = data(state, hp)
        (_, losses), grads = jax.value_and_grad(loss, has_aux=True)(state.params, state, hp, batch)
        with jax.named_scope("update"):
            updates, opt_state = optimizer(hp).update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        return state._replace(step=state.step + 1, params=params, opt_state=opt_state), losses

    return step


def scan_steps(step: Callable) -> Callable:
    """`run(state, hp, n) -> (state, stacked outputs)`: n calls of `step(state, hp)` in one `lax.scan` (n static)."""

    def run(state, hp, n):
        return jax.lax.scan(lambda s, _: step(s, hp), state, None, length=n)

    return run


def make_train(experiment: Experiment) -> Callable[[jax.Array, Any], tuple[Any, Any]]:
    """`train(key, hp) -> (final state, per-step losses)`: the whole run, pure and vmappable."""
    run = scan_steps(experiment.step)

    def train(key, hp):
        return run(experiment.init(key, hp), hp, experiment.train_steps)

    return train


def chunk_length(experiment: Experiment, step: int) -> int:
    """Steps of the next chunk from `step`: up to the next multiple of `log_steps`."""
    return min(experiment.log_steps - step % experiment.log_steps, experiment.train_steps - step)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
