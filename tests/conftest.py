"""Shared test helpers: the command line in-process, a tiny run's flags and config, one compilation cache."""

import atexit
import contextlib
import io
import shutil
import tempfile
from types import SimpleNamespace

import jax
import pytest

from mmident_jax import cli as command
from mmident_jax.config import Config

# One compilation cache for the session: tests that build the same small programs (a tiny
# run trained by the command line, then resumed, evaluated, ...) compile each once. It
# halves the default run on 2 cores; compiled programs are the same, so are the numbers.
_CACHE = tempfile.mkdtemp(prefix="mmident-jax-tests-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def tiny() -> Config:
    """A run small enough to train in a second: same latent model, tiny encoders (the quick presets' init)."""
    return Config(
        encoder_widths=(16, 16),
        batch_size=32,
        cond_pool=1000,
        lr=1e-3,
        encoder_init="lecun",
        train_steps=20,
        log_steps=10,
    )


# `mmident-jax train` flags of a tiny new run (the paper's latent model, small encoders, no progress)
TINY_FLAGS = (
    "--preset",
    "paper",
    "--encoder-widths",
    "16,16",
    "--batch-size",
    "32",
    "--cond-pool",
    "1000",
    "--lr",
    "1e-3",
    "--no-progress",
)


def run_cli(*args) -> SimpleNamespace:
    """`mmident-jax ARGS` in this process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = command.main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture
def cli():
    """`cli("train", ...)`: `mmident-jax` run in this process (`run_cli`)."""
    return run_cli


@pytest.fixture
def tiny_flags() -> list[str]:
    """The flags of a tiny new `mmident-jax train` run (`TINY_FLAGS`)."""
    return list(TINY_FLAGS)
