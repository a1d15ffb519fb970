"""Least-squares probes: held-out R² of a linear map (with intercept) from codes to factors.

Computed in float64 under the thread-local `jax.enable_x64` context (docs/probes.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax.probes.metrics import _stack_blocks, _x64, r2_score


@jax.jit
def _linear_predict(x, y, x_test):
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    coef = jnp.linalg.lstsq(x - x_mean, y - y_mean)[0]
    return (x_test - x_mean) @ coef + y_mean


@_x64
def linear_r2_blocks(x_train, ys_train: Sequence, x_test, ys_test: Sequence) -> list[float]:
    """Least-squares R² for several target blocks sharing the inputs (one lstsq solve).

    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> [round(r, 6) for r in linear_r2_blocks(x, [x[:, :1], 2 * x + 1], x, [x[:, :1], 2 * x + 1])]
    [1.0, 1.0]
    """
    y, blocks = _stack_blocks(ys_train)
    y_test, _ = _stack_blocks(ys_test)
    x, x_test = (jnp.asarray(a, jnp.float64) for a in (x_train, x_test))
    pred = np.asarray(_linear_predict(x, jnp.asarray(y), x_test))
    return [r2_score(y_test[:, b], pred[:, b]) for b in blocks]


def linear_r2(x_train, y_train, x_test, y_test) -> float:
    """R² of least squares with intercept (scikit-learn ``LinearRegression``), fit on train.

    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> round(linear_r2(x[:50], x[:50] @ [1.0, -2.0], x[50:], x[50:] @ [1.0, -2.0]), 6)
    1.0
    """
    return linear_r2_blocks(x_train, [y_train], x_test, [y_test])[0]
