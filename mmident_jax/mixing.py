"""Invertible mixing functions: leaky-ReLU MLPs without bias (docs/generative-process.md).

A mixer is a tuple of square weight matrices W_1..W_L. `apply` computes
x = W_L σ(... σ(W_1 z)) with σ the leaky ReLU of slope 0.2 (not after the last
layer); `inverse` undoes it exactly. With `method="rejection"` every W has entries
U(-1, 1), unit-norm columns and a condition number at most the `ratio` quantile of
a pool of such matrices, as in the original code; the pick is fixed-shape (draw a
pool, take the first accepted) so `init` jits and vmaps over keys.

Example:
    >>> import jax
    >>> f = init(jax.random.PRNGKey(0), n=10)
    >>> z = jax.random.normal(jax.random.PRNGKey(1), (4, 10))
    >>> bool(jnp.allclose(inverse(f, apply(f, z)), z, atol=1e-4))  # float32 rounding
    True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

SLOPE = 0.2
THRESHOLD_KEY = 20230301  # fixed, so the threshold depends only on n, pool and ratio

Mixer = tuple[jax.Array, ...]


def random_matrices(key: jax.Array, count: int, n: int) -> jax.Array:
    """`count` n x n matrices with entries U(-1, 1) and L2-normalised columns."""
    w = jax.random.uniform(key, (count, n, n), minval=-1.0, maxval=1.0)
    return w / jnp.linalg.norm(w, axis=-2, keepdims=True)


def condition_numbers(w: jax.Array) -> jax.Array:
    """2-norm condition numbers of a stack of square matrices (..., n, n)."""
    s = jnp.linalg.svd(w, compute_uv=False)
    return s[..., 0] / s[..., -1]


@functools.cache
def condition_threshold(n: int, pool: int = 25_000, ratio: float = 1e-3) -> float:
    """The accepted condition-number bound: the `ratio` quantile of `pool` random matrices.

    Index int(pool * ratio) of the sorted pool, as the original code. Computed once
    per (n, pool, ratio) from a fixed key.
    """
    with jax.ensure_compile_time_eval():  # concrete even when first called under jit
        pool_matrices = random_matrices(jax.random.PRNGKey(THRESHOLD_KEY), pool, n)
        conds = np.sort(np.asarray(condition_numbers(pool_matrices)))
    return float(conds[min(int(pool * ratio), pool - 1)])


def _pick_well_conditioned(key: jax.Array, n: int, pool: int, threshold: float) -> jax.Array:
    candidates = random_matrices(key, pool, n)
    conds = condition_numbers(candidates)
    accepted = conds <= threshold
    # First accepted candidate; the best of the pool in the (vanishing) case of none.
    index = jnp.where(accepted.any(), jnp.argmax(accepted), jnp.argmin(conds))
    return candidates[index]


def init(
    key: jax.Array, n: int, n_layers: int = 3, *, method: str = "rejection", pool: int = 25_000, ratio: float = 1e-3
) -> Mixer:
    """Draw a mixer's weights: `n_layers` invertible n x n matrices.

    `method="orthogonal"` draws Haar-random orthogonal matrices instead.
    """
    keys = jax.random.split(key, n_layers)
    if method == "orthogonal":
        return tuple(jax.random.orthogonal(k, n) for k in keys)
    if method != "rejection":
        raise ValueError(f"unknown mixing init {method!r}")
    threshold = condition_threshold(n, pool, ratio)
    return tuple(_pick_well_conditioned(k, n, pool, threshold) for k in keys)


def _leaky_relu(x):
    return jnp.where(x > 0, x, SLOPE * x)


def _leaky_relu_inverse(y):
    return jnp.where(y > 0, y, y / SLOPE)


def apply(weights: Mixer, z: jax.Array) -> jax.Array:
    """Mix latents z (batch, n) into observations x (batch, n)."""
    x = z
    for i, w in enumerate(weights):
        x = x @ w.T
        if i < len(weights) - 1:
            x = _leaky_relu(x)
    return x


def inverse(weights: Mixer, x: jax.Array) -> jax.Array:
    """Recover latents from observations: `inverse(w, apply(w, z)) == z`."""
    z = x
    for i, w in reversed(list(enumerate(weights))):
        if i < len(weights) - 1:
            z = _leaky_relu_inverse(z)
        z = jnp.linalg.solve(w, z.T).T
    return z
