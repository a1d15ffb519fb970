"""Contrastive objectives over batches of codes (DESIGN §1).

`infonce` is the paper's objective: squared-L2 similarity, positives included in the
log-mean-exp, negatives from an independent batch of the same modality, symmetrised
over the two modalities. `clip` is the CLIP-style alternative with in-batch
negatives from the other modality.

Example:
    >>> a = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    >>> b = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    >>> round(float(infonce_direction(a, b, a)), 4)  # log((1 + e^-1 + 1) / 3)
    -0.2366
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise ‖a_i − b_j‖² as ‖a‖² + ‖b‖² − 2 a bᵀ: never builds a (n, m, d) tensor."""
    sq = jnp.sum(a * a, axis=-1)[:, None] + jnp.sum(b * b, axis=-1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


def infonce_direction(a: jax.Array, b: jax.Array, a_neg: jax.Array, temperature=1.0) -> jax.Array:
    """One direction of the paper's loss.

    L = mean_i [ d(a_i, b_i)/τ + log( (Σ_j exp(−d(a_i, a'_j)/τ) + exp(−d(a_i, b_i)/τ)) / (N+1) ) ].
    """
    positive = -jnp.sum((a - b) ** 2, axis=-1) / temperature
    negatives = -squared_distances(a, a_neg) / temperature
    logits = jnp.concatenate([negatives, positive[:, None]], axis=1)
    log_mean_exp = jax.nn.logsumexp(logits, axis=1) - jnp.log(logits.shape[1])
    return jnp.mean(log_mean_exp - positive)


def infonce(h1, h2, h1_neg, h2_neg, temperature=1.0) -> jax.Array:
    """The paper's symmetrised loss ½ (L(h1, h2, h1') + L(h2, h1, h2'))."""
    return 0.5 * (infonce_direction(h1, h2, h1_neg, temperature)
                  + infonce_direction(h2, h1, h2_neg, temperature))


def clip(h1, h2, temperature=1.0, similarity: str = "cosine") -> jax.Array:
    """Symmetric cross-entropy over in-batch cross-modal pairs (CLIP).

    `similarity` is "cosine" or "l2" (negative squared distance).
    """
    if similarity == "cosine":
        h1 = h1 / jnp.linalg.norm(h1, axis=-1, keepdims=True)
        h2 = h2 / jnp.linalg.norm(h2, axis=-1, keepdims=True)
        logits = h1 @ h2.T / temperature
    elif similarity == "l2":
        logits = -squared_distances(h1, h2) / temperature
    else:
        raise ValueError(f"unknown similarity {similarity!r}")
    diagonal = jnp.diagonal(logits)
    rows = jax.nn.logsumexp(logits, axis=1) - diagonal
    cols = jax.nn.logsumexp(logits, axis=0) - diagonal
    return 0.5 * (jnp.mean(rows) + jnp.mean(cols))
