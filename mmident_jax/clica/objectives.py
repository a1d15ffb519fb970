"""The objectives of cl-ica and AnInfoNCE on a batch of anchors a and their positives b (docs/clica.md).

- `lp_infonce`: cl-ica's InfoNCE with the similarity −Σ_d |u_d − v_d|^p / τ; the negatives of
  anchor i are every anchor of the batch, itself included, and the positive is in the
  denominator; not symmetrised.
- `cosine_infonce`: the same with the similarity uᵀv / τ of unit-norm codes (cl-ica's p = 0).
- `aninfonce`: Rusak et al.'s loss, the two-modality NT-Xent with the similarity
  −½ (u − v)ᵀ Λ (u − v) for a diagonal Λ that is learned.

Example, the Lp loss of two anchors by hand (p = 1, τ = 1):
    >>> a, b = jnp.array([[0.0, 0.0], [1.0, 1.0]]), jnp.array([[0.0, 1.0], [1.0, 1.0]])
    >>> round(float(lp_infonce(a, b, 1.0)), 4)  # ½ [1 + log(1 + e^-2 + e^-1), log(e^-2 + 1 + 1)]
    1.0831
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mmident_jax import losses

TILE_ROWS = 256  # rows of anchors whose (rows, n, d) differences are made at once


def lp_distances(a: jax.Array, b: jax.Array, p) -> jax.Array:
    """Pairwise Σ_d |a_id − b_jd|^p, by tiles of `TILE_ROWS` rows (recomputed in the backward pass),
    so that the (n, m, d) differences are never held at once."""
    if p == 2:
        return losses.squared_distances(a, b)
    n = a.shape[0]
    rows = min(TILE_ROWS, n)
    tiles = jnp.pad(a, ((0, -n % rows), (0, 0))).reshape(-1, rows, a.shape[1])
    tile = jax.checkpoint(lambda t: jnp.sum(jnp.abs(t[:, None, :] - b[None]) ** p, axis=-1))
    return jax.lax.map(tile, tiles).reshape(-1, b.shape[0])[:n]


def _infonce(positive: jax.Array, negatives: jax.Array) -> jax.Array:
    """mean_i −log( e^{positive_i} / (e^{positive_i} + Σ_j e^{negatives_ij}) )."""
    return jnp.mean(jax.nn.logsumexp(jnp.concatenate([negatives, positive[:, None]], axis=1), axis=1) - positive)


def lp_infonce(a: jax.Array, b: jax.Array, p, temperature=1.0) -> jax.Array:
    """cl-ica's loss with the Lp similarity (p-th power of the distance, over τ)."""
    positive = -jnp.sum(jnp.abs(a - b) ** p, axis=-1) / temperature
    return _infonce(positive, -lp_distances(a, a, p) / temperature)


def cosine_infonce(a: jax.Array, b: jax.Array, temperature=1.0) -> jax.Array:
    """cl-ica's loss for unit-norm codes: similarity uᵀv / τ."""
    return _infonce(jnp.sum(a * b, axis=-1) / temperature, a @ a.T / temperature)


def aninfonce(a: jax.Array, b: jax.Array, precision: jax.Array) -> jax.Array:
    """Rusak et al.'s anisotropic InfoNCE: NT-Xent with the similarity −½ Σ_d λ_d (u_d − v_d)².

    Each of the 2n anchors (a_i, then b_i) is contrasted against the other view's n codes (its
    positive among them) and its own view's n − 1 others. With Λ = I and unit-norm codes this is
    NT-Xent of cosine similarity at τ = 1.
    """
    root = jnp.sqrt(precision)
    return losses.nt_xent(a * root, b * root, temperature=2.0, similarity="l2")
