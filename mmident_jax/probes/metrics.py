"""Scores and scaling shared by every probe: R², standardisation, K-fold splits.

R² is scikit-learn's: uniform average over the target's columns, with its rules for
constant columns. Inputs are 2-D arrays (samples x features), numpy or JAX; 1-D
targets are one column.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


class ProbeError(ValueError):
    """Data a probe cannot be fitted on (too few samples, a single class); the message says why."""


def _x64(fn):
    """Run ``fn`` with 64-bit JAX types enabled for the current thread only."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


def _as_2d(a, dtype=None) -> np.ndarray:
    a = np.asarray(a, dtype=dtype)
    return a.reshape(len(a), -1) if a.ndim == 1 else a


def _stack_blocks(ys: Sequence) -> tuple[np.ndarray, list[slice]]:
    """Concatenate target blocks column-wise; return the array and each block's slice."""
    cols = [_as_2d(y, np.float64) for y in ys]
    stops = np.cumsum([c.shape[1] for c in cols])
    return np.concatenate(cols, axis=1), [slice(s - c.shape[1], s) for s, c in zip(stops, cols)]


def standardize_fit(x):
    """Column means and standard deviations of ``x``; constant columns get std 1.

    >>> mean, std = standardize_fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> mean.tolist(), std.tolist()
    ([2.0, 5.0], [1.0, 1.0])
    """
    x = jnp.asarray(x)
    std = x.std(axis=0)
    return x.mean(axis=0), jnp.where(std == 0, 1, std)


def standardize_apply(x, mean, std):
    """Standardise ``x`` with statistics from `standardize_fit`.

    >>> standardize_apply(np.array([[1.0], [3.0]]), 2.0, 1.0).tolist()
    [[-1.0], [1.0]]
    """
    return (jnp.asarray(x) - mean) / std


def _r2_columns(y, pred, weight, xp):
    """Per-column R² with scikit-learn's force_finite rules; ``weight`` (n, 1) masks rows.

    ``xp`` is numpy (exact float64 arithmetic of scikit-learn) or jax.numpy (in jit).
    """
    mean = xp.sum(weight * y, axis=0) / xp.sum(weight)
    num = xp.sum(weight * (y - pred) ** 2, axis=0)
    den = xp.sum(weight * (y - mean) ** 2, axis=0)
    ratio = num / xp.where(den == 0, 1, den)
    return xp.where(num == 0, 1.0, xp.where(den == 0, 0.0, 1 - ratio))


def r2_score(y_true, y_pred) -> float:
    """scikit-learn's R², uniform average over columns (constant column: 1 if exact, else 0).

    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    >>> r2_score([[1.0, 7.0], [2.0, 7.0]], [[1.0, 7.0], [2.0, 6.0]])
    0.5
    """
    y, pred = _as_2d(y_true, np.float64), _as_2d(y_pred, np.float64)
    if len(y) < 2:
        return float("nan")
    return float(np.mean(_r2_columns(y, pred, np.ones((len(y), 1)), np)))


def kfold_splits(n: int, folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) indices of scikit-learn's unshuffled ``KFold(folds)``.

    Contiguous validation blocks; the first ``n % folds`` get one extra sample.

    >>> [v.tolist() for _, v in kfold_splits(7, 3)]
    [[0, 1, 2], [3, 4], [5, 6]]
    """
    if not 2 <= folds <= n:
        raise ProbeError(f"need 2 <= folds <= n samples, got folds={folds}, n={n}")
    sizes = n // folds + (np.arange(folds) < n % folds)
    stops = np.cumsum(sizes)
    return [(np.r_[0:start, stop:n], np.arange(start, stop)) for start, stop in zip(stops - sizes, stops)]


def _padded(indices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack index arrays of unequal length, padding with index 0; return (indices, mask)."""
    width = max(len(i) for i in indices)
    mask = np.arange(width) < np.array([len(i) for i in indices])[:, None]
    stacked = np.zeros(mask.shape, dtype=np.int32)
    stacked[mask] = np.concatenate(indices)
    return stacked, mask
