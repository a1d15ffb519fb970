"""Contrastive objectives over batches of codes (docs/generative-process.md).

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


# Logits per tile of the InfoNCE log-sum-exp. On a CPU a tile of 2^20 (4 MiB of float32) stays
# in cache while it is made, reduced and (backward) turned into gradients, and the (n, m)
# logits are never built; on accelerators, which stream memory fast and pay per loop
# iteration, a tile holds up to 2^27 logits (512 MiB): the paper's batch is one tile.
TILE_LOGITS = {"cpu": 2**20}
ACCELERATOR_TILE_LOGITS = 2**27


def tile_rows(n: int, m: int, backend: str | None = None) -> int:
    """Rows per tile for n rows against m negatives: a power of two (at least 8) of about
    `TILE_LOGITS` / m logits for the backend, or all n rows if fewer."""
    budget = TILE_LOGITS.get(backend or jax.default_backend(), ACCELERATOR_TILE_LOGITS)
    rows = 2 ** max(3, (budget // max(m, 1)).bit_length() - 1)
    return max(1, min(rows, n))


def _row_tiles(x: jax.Array, rows: int) -> jax.Array:
    """x (n, ...) zero-padded to a multiple of `rows` and split into (tiles, rows, ...)."""
    x = jnp.pad(x, [(0, -x.shape[0] % rows)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(x.shape[0] // rows, rows, *x.shape[1:])


@jax.custom_vjp
def logsumexp_negatives(a: jax.Array, a_neg: jax.Array, positive: jax.Array, temperature) -> jax.Array:
    """lse_i = log( Σ_j exp(−‖a_i − a'_j‖²/τ) + exp(positive_i) ), computed by tiles of rows.

    Equal to ``logsumexp(concatenate([-squared_distances(a, a_neg) / τ, positive[:, None]], 1), 1)``
    (to float32 round-off), but computed by tiles of `tile_rows` rows, each tile's logits
    made, reduced and (in the backward pass, which recomputes them) turned into gradients
    while they are in cache, in O(rows · m) memory (its speed: benchmarks/README.md,
    "Where the step time goes").
    """
    return _logsumexp_negatives_fwd(a, a_neg, positive, temperature)[0]


def _logsumexp_negatives_fwd(a, a_neg, positive, temperature):
    n, t = a.shape[0], jnp.asarray(temperature, a.dtype)
    rows = tile_rows(n, a_neg.shape[0])

    def tile(args):
        a_tile, p_tile = args
        neg = -squared_distances(a_tile, a_neg) / t
        top = jnp.maximum(jnp.max(neg, axis=1), p_tile)
        top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
        total = jnp.sum(jnp.exp(neg - top[:, None]), axis=1) + jnp.exp(p_tile - top)
        return jnp.log(total) + top

    lse = jax.lax.map(tile, (_row_tiles(a, rows), _row_tiles(positive, rows))).reshape(-1)[:n]
    return lse, (a, a_neg, positive, t, lse)


def _logsumexp_negatives_bwd(residuals, g):
    # With w_ij = g_i softmax_ij (the negatives' share of row i's softmax) and d_ij = ‖a_i − a'_j‖²:
    # ∂/∂a_i = (2/τ) Σ_j w_ij (a'_j − a_i), ∂/∂a'_j = (2/τ) Σ_i w_ij (a_i − a'_j),
    # ∂/∂positive_i = g_i exp(positive_i − lse_i), ∂/∂τ = Σ_ij w_ij d_ij / τ².
    # (The clamp of d at 0, which only bites at round-off, is not differentiated.)
    a, a_neg, positive, t, lse = residuals
    n, dim = a.shape
    rows = tile_rows(n, a_neg.shape[0])
    neg1 = jnp.concatenate([a_neg, jnp.ones((a_neg.shape[0], 1), a.dtype)], axis=1)

    def tile(carry, args):
        acc, ct_t = carry
        a_tile, lse_tile, g_tile = args
        d = squared_distances(a_tile, a_neg)
        w = g_tile[:, None] * jnp.exp(-d / t - lse_tile[:, None])
        wn = w @ neg1  # (rows, dim + 1): Σ_j w_ij a'_j and Σ_j w_ij
        ct_a = (2.0 / t) * (wn[:, :dim] - wn[:, dim:] * a_tile)
        a1 = jnp.concatenate([a_tile, jnp.ones((a_tile.shape[0], 1), a.dtype)], axis=1)
        return (acc + a1.T @ w, ct_t + jnp.sum(w * d)), ct_a  # acc: Σ_i w_ij a_i and Σ_i w_ij

    init = (jnp.zeros((dim + 1, a_neg.shape[0]), a.dtype), jnp.zeros((), a.dtype))
    (acc, ct_t), ct_a = jax.lax.scan(tile, init, (_row_tiles(a, rows), _row_tiles(lse, rows), _row_tiles(g, rows)))
    ct_neg = (2.0 / t) * (acc[:dim].T - acc[dim][:, None] * a_neg)
    return ct_a.reshape(-1, dim)[:n], ct_neg, g * jnp.exp(positive - lse), ct_t / (t * t)


logsumexp_negatives.defvjp(_logsumexp_negatives_fwd, _logsumexp_negatives_bwd)


def infonce_direction(a: jax.Array, b: jax.Array, a_neg: jax.Array, temperature=1.0) -> jax.Array:
    """One direction of the paper's loss.

    L = mean_i [ d(a_i, b_i)/τ + log( (Σ_j exp(−d(a_i, a'_j)/τ) + exp(−d(a_i, b_i)/τ)) / (N+1) ) ].
    """
    positive = -jnp.sum((a - b) ** 2, axis=-1) / temperature
    log_mean_exp = logsumexp_negatives(a, a_neg, positive, temperature) - jnp.log(a_neg.shape[0] + 1)
    return jnp.mean(log_mean_exp - positive)


def infonce(h1, h2, h1_neg, h2_neg, temperature=1.0) -> jax.Array:
    """The paper's symmetrised loss ½ (L(h1, h2, h1') + L(h2, h1, h2'))."""
    return 0.5 * (infonce_direction(h1, h2, h1_neg, temperature) + infonce_direction(h2, h1, h2_neg, temperature))


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


def nt_xent(h1, h2, temperature=1.0, similarity: str = "cosine") -> jax.Array:
    """The paper's image/text objective: symmetric InfoNCE with negatives from both modalities.

    For anchor h1_i the positive is h2_i and the negatives are h2_j and h1_j (j != i)
    (SimCLR's NT-Xent across two modalities); likewise for h2_i; the two are averaged.
    `similarity` is "cosine" or "l2" (negative squared distance).
    """
    if similarity == "cosine":
        h1 = h1 / jnp.linalg.norm(h1, axis=-1, keepdims=True)
        h2 = h2 / jnp.linalg.norm(h2, axis=-1, keepdims=True)
        sim = lambda a, b: a @ b.T / temperature
    elif similarity == "l2":
        sim = lambda a, b: -squared_distances(a, b) / temperature
    else:
        raise ValueError(f"unknown similarity {similarity!r}")
    self_pair = jnp.eye(h1.shape[0], dtype=bool)
    cross = sim(h1, h2)
    within1 = jnp.where(self_pair, -jnp.inf, sim(h1, h1))
    within2 = jnp.where(self_pair, -jnp.inf, sim(h2, h2))
    positive = jnp.diagonal(cross)
    loss1 = jax.nn.logsumexp(jnp.concatenate([cross, within1], axis=1), axis=1) - positive
    loss2 = jax.nn.logsumexp(jnp.concatenate([cross.T, within2], axis=1), axis=1) - positive
    return 0.5 * (jnp.mean(loss1) + jnp.mean(loss2))
