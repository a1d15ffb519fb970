"""Checkpoints of stacked runs, written by each process for the runs it holds.

A sweep's group of runs is checkpointed as a directory:

    groupN.ckpt/latest.json                   {"step": S, "runs": n, "parts": [[lo, hi], ...]}
    groupN.ckpt/step{S}.runs{lo}-{hi}.msgpack the training state of runs lo..hi-1 at step S

Every process writes the part it holds (real runs only, never the padding that evens
runs out over devices); once all parts of a step are written (a barrier), process 0
names them in `latest.json` (atomically) and deletes the other steps' files. A crash at
any point leaves `latest.json` naming a complete set of files. The parts are plain run
slices, so a checkpoint written by P processes on D devices restores on any other
number of either. Alongside the state each part keeps `diverged_at`: per run, the step
whose loss was first not finite (0 for a healthy run).

Example:
    >>> import tempfile, numpy as np
    >>> d = Path(tempfile.mkdtemp()) / "group0.ckpt"
    >>> state = {"w": np.arange(6.0).reshape(3, 2)}
    >>> save_part(d, 10, 0, state, np.zeros(3, np.int32))
    >>> commit(d, 10, [(0, 3)])
    >>> step, restored, diverged_at = restore(d, {"w": np.zeros((3, 2))})
    >>> step, restored["w"][2].tolist(), diverged_at.tolist()
    (10, [4.0, 5.0], [0, 0, 0])
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmident_jax import rundir

LATEST = "latest.json"


class Stacked:
    """The checkpoint directory `path` as the engine's store (`engine.Store`)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self, target):
        return restore(self.path, target) if exists(self.path) else None

    def save(self, step: int, first: int, local, diverged_at: np.ndarray, parts: list[tuple[int, int]]) -> None:
        """Each process writes its runs; once all have, process 0 commits the step."""
        import jax
        from jax.experimental import multihost_utils

        if first < len(diverged_at):
            save_part(self.path, step, first, local, diverged_at[first : first + len(jax.tree.leaves(local)[0])])
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"{self.path} step {step}")
        if jax.process_index() == 0:
            commit(self.path, step, parts)


def _part(path: Path, step: int, lo: int, hi: int) -> Path:
    return path / f"step{step:09d}.runs{lo}-{hi}.msgpack"


def exists(path: Path) -> bool:
    return (path / LATEST).is_file()


def save_part(path: Path, step: int, lo: int, state, diverged_at: np.ndarray) -> None:
    """Write runs lo..lo+len(diverged_at)-1 of the state at `step` (host arrays with a run axis)."""
    from flax import serialization

    path.mkdir(parents=True, exist_ok=True)
    hi = lo + len(diverged_at)
    data = {"state": serialization.to_state_dict(state), "diverged_at": np.asarray(diverged_at)}
    rundir.write_atomic(_part(path, step, lo, hi), serialization.msgpack_serialize(data))


def commit(path: Path, step: int, parts: list[tuple[int, int]]) -> None:
    """Name the parts of `step` as the checkpoint (call once all are written) and drop older steps."""
    keep = {_part(path, step, lo, hi).name for lo, hi in parts}
    rundir.write_atomic(
        path / LATEST, json.dumps({"step": step, "runs": parts[-1][1], "parts": [list(p) for p in parts]}).encode()
    )
    for stale in path.glob("step*.msgpack"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def restore(path: Path, target):
    """(step, state, diverged_at): the committed checkpoint, in the structure of `target` (all runs)."""
    import jax
    from flax import serialization

    try:
        latest = json.loads((path / LATEST).read_text())
        parts = [
            serialization.msgpack_restore(_part(path, latest["step"], lo, hi).read_bytes())
            for lo, hi in latest["parts"]
        ]
        joined = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
        state = serialization.from_state_dict(target, joined["state"])
    except Exception as e:  # a missing part, truncated msgpack, or a checkpoint of other runs
        raise rundir.RunDirError(
            f"{path} is not a readable checkpoint of this group "
            f"({type(e).__name__}: {e}); delete it to retrain the group"
        ) from None
    stored, wanted = len(joined["diverged_at"]), len(jax.tree.leaves(target)[0])
    if stored != wanted:
        raise rundir.RunDirError(
            f"{path} holds {stored} runs, not this group's {wanted}; delete it to retrain the group"
        )
    return int(latest["step"]), state, joined["diverged_at"]
