"""Shared timing helpers for the benchmark scripts.

`time_jax` separates XLA compilation from steady-state run time; `time_call`
times any callable (scikit-learn, or a host function wrapping several jitted
programs); `environment` records where the figures came from. Times are in
seconds; spreads are min/max over the repeats.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

import jax


def _summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times)}


def time_call(fn, *args, repeats: int = 3, warmup: int = 1) -> dict:
    """Time ``fn(*args)``; JAX outputs are waited for. ``first_s`` is the first (warm-up) call.

    With ``warmup=0`` the first call is also one of the ``repeats``.
    """
    times = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], **_summary(times[warmup:])}


def time_jax(fn, *args, repeats: int = 5) -> dict:
    """Compile time of ``jax.jit(fn)`` for ``args``, then its steady-state run time."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    return {"compile_s": compile_s, **time_call(compiled, *args, repeats=repeats, warmup=1)}


def environment() -> dict:
    """JAX version, backend, device kind, CPU count, host and date of this run."""
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
