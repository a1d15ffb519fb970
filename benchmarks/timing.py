"""Shared timing helpers for the benchmark scripts.

`time_jax` separates XLA compilation from steady-state run time and reports the
program's memory; `time_call` times any callable (scikit-learn, or a host function
wrapping several jitted programs); `time_interleaved` times several programs
round-robin (so that a change in the machine's speed hits them alike); `skip_on_oom`
turns running out of device memory into a skipped row; `CpuLoad` measures how much of
the host's CPU other processes took meanwhile; `environment` records where the figures
came from. Times are in seconds; spreads are min/max over the repeats
(`rel_spread` = (max - min) / median).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import jax


def _summary(times: list[float]) -> dict:
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "rel_spread": (max(times) - min(times)) / median,
        "repeats": len(times),
    }


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _host_busy_s() -> float | None:
    """CPU seconds all processes (and the hypervisor's steal) have used since boot, from /proc/stat (Linux)."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return None
    fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _clock_ticks()


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class CpuLoad:
    """``with CpuLoad() as load: ...``; then ``load.other`` is the share of the host's CPU capacity
    that other processes (and hypervisor steal) used meanwhile: 0 on a quiet machine, 0.5 when
    one of two cores was taken. None where /proc/stat is absent.

    On a CPU backend XLA splits work over every core, so a busy core elsewhere slows a
    program by up to the share it takes: figures with ``other`` above ~0.1 are not this
    code's speed.
    """

    def __enter__(self):
        self._start = (_host_busy_s(), _own_cpu_s(), time.perf_counter())
        self.other = None
        return self

    def __exit__(self, *exc):
        busy, own, wall = _host_busy_s(), _own_cpu_s(), time.perf_counter()
        if busy is not None and self._start[0] is not None and wall > self._start[2]:
            others = (busy - self._start[0]) - (own - self._start[1])
            capacity = (wall - self._start[2]) * (os.cpu_count() or 1)
            self.other = min(1.0, max(0.0, others / capacity))
        return False


def time_call(fn, *args, repeats: int = 3, warmup: int = 1) -> dict:
    """Time ``fn(*args)``; JAX outputs are waited for. ``first_s`` is the first (warm-up) call.

    With ``warmup=0`` the first call is also one of the ``repeats``. ``other_cpu`` is
    `CpuLoad`'s share of the CPU other processes took during the timed calls.
    """

    def timed() -> float:
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - start

    times = [timed() for _ in range(warmup)]
    with CpuLoad() as load:
        times += [timed() for _ in range(repeats)]
    return {"first_s": times[0], **_summary(times[warmup:]), "other_cpu": load.other}


def time_interleaved(programs: dict, repeats: int = 3, warmup: int = 1) -> dict:
    """Time several programs side by side: ``programs`` maps a name to ``(fn, args)``.

    After `warmup` calls of each (``first_s`` is the first), `repeats` rounds call each
    program once in turn, so that a change in the machine's speed during the measurement
    (another job starting on a shared CPU) hits every program alike. Returns
    ``{name: time_call's figures}``; ``other_cpu`` covers all the rounds.
    """

    def timed(fn, args) -> float:
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - start

    first = {name: [timed(fn, args) for _ in range(warmup)] for name, (fn, args) in programs.items()}
    times = {name: [] for name in programs}
    with CpuLoad() as load:
        for _ in range(repeats):
            for name, (fn, args) in programs.items():
                times[name].append(timed(fn, args))
    return {
        name: {"first_s": (first[name] or t)[0], **_summary(t), "other_cpu": load.other} for name, t in times.items()
    }


def time_jax(fn, *args, repeats: int = 5, reference: tuple | None = None) -> dict:
    """Compile time of ``jax.jit(fn)`` for ``args``, its steady-state run time, and its `memory`.

    The compilation lands in jit's cache, so a later ``jax.jit(fn)(*args)`` of the same
    ``fn`` object runs without compiling again. Raises `MemoryError` before running a
    program that cannot fit in the host's memory on CPU (see `check_fits`). With
    ``reference=(ref_fn, ref_args)``, that program is compiled too and timed interleaved
    with ``fn`` (see `time_interleaved`); its figures are under ``"reference"``.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    check_fits(compiled)
    if reference is None:
        timing = time_call(compiled, *args, repeats=repeats, warmup=1)
    else:
        ref_fn, ref_args = reference
        both = time_interleaved(
            {"program": (compiled, args), "reference": (jax.jit(ref_fn).lower(*ref_args).compile(), ref_args)},
            repeats=repeats,
        )
        timing = {**both["program"], "reference": both["reference"]}
    return {"compile_s": compile_s, **timing, "memory": memory(compiled)}


def program_bytes(compiled) -> int | None:
    """Device memory XLA plans for one compiled program: arguments + outputs + temporaries - aliased."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def memory(compiled) -> dict:
    """Memory of a compiled program, read after it ran.

    ``program_bytes``: XLA's plan for this program (every backend). ``device_peak_bytes``:
    the device allocator's high-water mark for the whole process so far
    (``memory_stats()["peak_bytes_in_use"]``; JAX cannot reset it), None where the
    backend keeps no statistics (CPU).
    """
    stats = jax.devices()[0].memory_stats()
    return {
        "program_bytes": program_bytes(compiled),
        "device_peak_bytes": None if stats is None else stats.get("peak_bytes_in_use"),
    }


def _host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), None elsewhere."""
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def check_fits(compiled) -> None:
    """On CPU, raise `MemoryError` if the program plans more memory than the host has available.

    On GPU and TPU, XLA itself raises RESOURCE_EXHAUSTED; on CPU the operating system
    would kill the process instead, so the plan is checked before running.
    """
    if jax.default_backend() != "cpu":
        return
    needed, available = program_bytes(compiled), _host_available_bytes()
    if needed is not None and available is not None and needed > available:
        raise MemoryError(f"needs {needed / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available")


def skip_on_oom(fn, *args, **kwargs) -> dict:
    """``fn(*args, **kwargs)``, or ``{"skipped": "out of memory: ..."}`` if the device runs out of memory."""
    try:
        return fn(*args, **kwargs)
    except (MemoryError, jax.errors.JaxRuntimeError) as error:
        if isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" not in str(error):
            raise
        return {"skipped": f"out of memory: {str(error).splitlines()[0][:200]}"}


def environment() -> dict:
    """JAX version, backend, device kind and count, CPU count, host and date of this run."""
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def fmt(value, spec: str) -> str:
    """`value` formatted with `spec`, or "-" for None (a figure this device or run does not have)."""
    return "-" if value is None else format(value, spec)


def megabytes(n: int | None, spec: str = ".1f") -> str:
    return fmt(None if n is None else n / 2**20, spec)


def print_table(rows: list[dict], skipped: str | None = None) -> None:
    """Every benchmark's printed table: rows of formatted cells (column -> text) aligned by
    `report.text_table`, columns in order of first appearance. A row with a "skipped" entry
    prints its first cell and the reason (`skipped`: the name of that first column)."""
    from mmident_jax.report import text_table

    kept = [r for r in rows if "skipped" not in r]
    columns = list(dict.fromkeys(c for r in kept for c in r))
    if kept:
        print(text_table(kept, columns))
    for r in rows:
        if "skipped" in r:
            print(f"{r.get(skipped, '')} skipped: {r['skipped']}")
