"""What made a result: the package version (and git commit), JAX's version, the backend and its devices.

Run directories (`config.json`), sweeps (`sweep.json`) and their stored rows record it.
Results made by the same package version with the same JAX version on the same backend
are computed alike and may be mixed; others are not (a sweep re-evaluates them).

Example:
    >>> info = provenance()
    >>> sorted(info)[:3], mismatch(dict(info, git="another commit"))
    (['backend', 'devices', 'git'], None)
    >>> mismatch(dict(info, jax="0.4.1")).startswith("evaluated by mmident-jax")
    True
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from mmident_jax import __version__

COMPUTATION = ("mmident_jax", "jax", "backend")  # what fixes the numbers


@functools.cache
def provenance() -> dict:
    """{"mmident_jax": version, "git": commit or None, "jax": version, "backend": "cpu"/"gpu"/"tpu",
    "devices": how many}. The device count is recorded, not compared: XLA's CPU runtime rounds
    differently with another number of (forced host) devices (docs/random-streams.md)."""
    import jax

    return {
        "mmident_jax": __version__,
        "git": _git_commit(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
    }


def mismatch(made_by: dict | None) -> str | None:
    """None when results recorded as `made_by` are computed as today's are; else a phrase
    for a message: "evaluated by mmident-jax 0.1.0, ..., which computes differently from ..."."""
    today = provenance()
    if made_by is not None and all(made_by.get(k) == today.get(k) for k in COMPUTATION):
        return None
    return f"evaluated by {_describe(made_by)}, which computes differently from {_describe(today)}"


def _describe(made_by: dict | None) -> str:
    """ "mmident-jax 0.2.0, JAX 0.10.2 on cpu"."""
    if not made_by:
        return "an earlier version (not recorded)"
    return f"mmident-jax {made_by.get('mmident_jax')}, JAX {made_by.get('jax')} on {made_by.get('backend')}"


def _git_commit() -> str | None:
    """The commit of the source tree this package runs from ("...-dirty" if edited), if it is one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None
