"""The engine: many runs of one experiment trained together, sharded over every device.

`train_runs` stacks the runs' states on one axis, shards that axis over the devices of
every process (`shard_map`) and trains in chunks of up to `log_steps` steps. After each
chunk it marks a run whose loss stopped being finite (`diverged_at`, its state frozen at
the chunk before) and hands the chunk to `on_chunk`, then to the `store` that
checkpoints it; a store that holds a checkpoint is resumed from, on any number of
devices. Single runs (`driver.fit`) and sweeps (`sweep.sweep`) both train here.

How each device computes its runs is `batching`:

- "map" (default): one run after another (`lax.map`), each the same program it is
  alone, so a run's floats do not depend on how many runs share its device or how the
  runs are spread over devices (docs/random-streams.md, "One run, one number").
- "vmap": the device's runs batched into one program: faster on accelerators, but XLA
  may then round a run differently with each group size.

Example, the counter of `core` for three runs:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from mmident_jax.core import Experiment
    >>> counter = Experiment(init=lambda key, hp: {"step": jnp.int32(0), "x": jnp.float32(0)},
    ...                      step=lambda s, hp: ({"step": s["step"] + 1, "x": s["x"] + hp}, s["x"]),
    ...                      train_steps=4, log_steps=3)
    >>> keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(3)])
    >>> trained = train_runs(counter, keys, np.float32([1, 2, np.inf]))
    >>> trained.state["x"].tolist(), trained.diverged_at.tolist()
    ([4.0, 8.0, 0.0], [0, 0, 2])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mmident_jax.core import Experiment, chunk_length, scan_steps

BATCHING = ("map", "vmap")
RUNS = PartitionSpec("runs")


class Chunk(NamedTuple):
    """One trained chunk, as `on_chunk` sees it.

    `losses` are each run's per-step losses of the chunk (host, `(runs, length, ...)`);
    `diverged_at[i]` is the step at which run i's loss was first not finite (0: healthy);
    `state` is the stacked state after the chunk (device arrays, padded runs at the end).
    """

    step: int
    length: int
    losses: np.ndarray
    diverged_at: np.ndarray
    state: Any
    seconds: float


class Trained(NamedTuple):
    """Trained runs as this process holds them: `state` (host arrays) holds runs `first`,
    `first + 1`, ... (all of them on one process); a diverged run keeps the state of its
    last good chunk."""

    state: Any
    first: int
    diverged_at: np.ndarray


class Store(Protocol):
    """Where the engine checkpoints: `load(target)` -> `(step, state, diverged_at)` or None;
    `save(step, first, local, diverged_at, parts)` with this process's runs `local` (host
    arrays of runs first, first + 1, ...) and every process's runs `parts` ([lo, hi) each)."""

    def load(self, target) -> tuple[int, Any, np.ndarray] | None: ...

    def save(self, step: int, first: int, local, diverged_at: np.ndarray, parts: list[tuple[int, int]]) -> None: ...


def mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """`devices` (default: every device of every process) on one "runs" axis, each process's adjacent."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.array(sorted(devices, key=lambda d: (d.process_index, d.id))), ("runs",))


def _pad(tree, count: int):
    """Host arrays with `count` copies of the last run appended (so every device gets as many)."""
    return jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], count, axis=0)]), tree)


def _shard(tree, where: Mesh):
    """Host arrays with a leading run axis -> global arrays sharded over the mesh."""
    sharding = NamedSharding(where, RUNS)
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
    return first, jax.tree.map(
        lambda x: np.concatenate([np.asarray(s.data) for s in sorted(x.addressable_shards, key=start)])[
            : max(0, runs - first)
        ],
        tree,
    )


def _parts(where: Mesh, padded: int, runs: int) -> list[tuple[int, int]]:
    """Each process's runs [lo, hi) (padding left out), in process order."""
    per_device, ranges = padded // where.size, {}
    for k, device in enumerate(where.devices.flat):
        lo, hi = ranges.get(device.process_index, (k * per_device, k * per_device))
        ranges[device.process_index] = (lo, (k + 1) * per_device)
    return [(lo, min(hi, runs)) for _, (lo, hi) in sorted(ranges.items()) if lo < runs]


def _batched(fn: Callable, batching: str) -> Callable:
    """`fn` of one run's arguments -> the same over a leading run axis, per `batching`."""
    if batching == "vmap":
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args)


def init_program(experiment: Experiment, batching: str = "map") -> Callable:
    """`(keys, hp) -> states`: every run's initial state (jitted, on the default device)."""
    return jax.jit(_batched(experiment.init, batching))


def _keep(live, losses, new, old):
    """A run's new state when it is live and its losses are finite, else its old one."""
    keep = live & jnp.all(jnp.isfinite(losses))
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)


def chunk_program(experiment: Experiment, n: int, where: Mesh, batching: str = "map") -> Callable:
    """`(states, hp, live) -> (states, losses)`: n steps of every run, sharded over `where`.

    A run that is not `live`, or whose loss is not finite in these steps, keeps its state.
    """

    def sharded(fn, donate=True):
        program = jax.shard_map(_batched(fn, batching), mesh=where, in_specs=RUNS, out_specs=RUNS, check_vma=False)
        return jax.jit(program, donate_argnums=0 if donate else ())

    if experiment.scan:
        run = scan_steps(experiment.step)

        def one(state, hp, live):
            new, losses = run(state, hp, n)
            return _keep(live, losses, new, state), losses

        return sharded(one)
    step = sharded(experiment.step)
    select = sharded(lambda new, old, live, losses: _keep(live, losses, new, old))

    def dispatched(state, hp, live):
        start, losses = jax.tree.map(jnp.copy, state), []
        for _ in range(n):
            state, loss = step(state, hp)
            losses.append(loss)
        losses = jnp.stack(losses, axis=1)
        return select(state, start, live, losses), losses

    return dispatched


def train_runs(
    experiment: Experiment,
    keys: np.ndarray,
    hp,
    *,
    store: Store | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
    batching: str = "map",
    devices: Sequence[jax.Device] | None = None,
) -> Trained:
    """Train the runs with root keys `keys` and per-run numbers `hp` (host arrays, one run
    per leading index) together, sharded over `devices` (default: all).

    With `store`, training resumes from its checkpoint and checkpoints after every chunk,
    after `on_chunk(chunk)` has seen it. A run whose loss is not finite stops there
    (`Trained.diverged_at`); the others go on.
    """
    where, n = mesh(devices), len(keys)
    init = init_program(experiment, batching)
    restored = store.load(jax.eval_shape(init, keys, hp)) if store is not None else None
    if restored is None:  # on one device: the mixers' batched SVDs do not partition
        step, state, diverged_at = 0, jax.device_get(init(keys, hp)), np.zeros(n, np.int32)
    else:
        step, state, diverged_at = restored
    pad = (-n) % where.size
    state, hp = _shard(_pad(state, pad), where), _shard(_pad(hp, pad), where)
    chunks = {}
    while step < experiment.train_steps and not np.all(diverged_at):
        length = chunk_length(experiment, step)
        if length not in chunks:
            chunks[length] = chunk_program(experiment, length, where, batching)
        t0 = time.perf_counter()
        state, losses = chunks[length](state, hp, _shard(_pad(diverged_at == 0, pad), where))
        losses = np.asarray(_gather(losses)[:n])
        seconds = time.perf_counter() - t0
        finite = np.isfinite(losses).reshape(n, length, -1).all(axis=2)
        diverged_at = np.where(
            (diverged_at == 0) & ~finite.all(axis=1), step + 1 + np.argmin(finite, axis=1), diverged_at
        ).astype(np.int32)
        step += length
        if on_chunk is not None:
            on_chunk(Chunk(step, length, losses, diverged_at, state, seconds))
        if store is not None:
            first, local = _local(state, n)
            store.save(step, first, local, diverged_at, _parts(where, n + pad, n))
    first, local = _local(state, n)
    return Trained(local, first, diverged_at)
