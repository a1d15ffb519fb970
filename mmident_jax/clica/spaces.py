"""Latent spaces, their marginals and the positive-pair conditionals of cl-ica and AnInfoNCE.

Pure, fixed-shape samplers (docs/clica.md): every rejection step draws a fixed number
of proposals and keeps the first accepted one, so sampling jits and vmaps. The spaces:

- "box": [0, 1]^n, uniform marginal; a conditional is truncated to the box coordinate
  by coordinate (each coordinate redrawn until it lands inside);
- "sphere": the unit sphere S^{n-1} in R^n, uniform (or a projected normal / Laplace
  around e_1) marginal; von Mises–Fisher conditional (Wood's algorithm), or noise in R^n
  projected back; the anisotropic conditional of AnInfoNCE;
- "unbounded": R^n with a normal or Laplace marginal and no truncation.

Example, a von Mises–Fisher draw around e_1 keeps unit norm:
    >>> import jax, jax.numpy as jnp
    >>> mu = jnp.eye(10)[:1].repeat(1000, 0)
    >>> x = von_mises_fisher(jax.random.PRNGKey(0), mu, 10.0)
    >>> bool(jnp.allclose(jnp.linalg.norm(x, axis=1), 1.0, atol=1e-5)), round(float(x[:, 0].mean()), 1)
    (True, 0.6)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BOX = (0.0, 1.0)  # the box of cl-ica's numerical experiment
# Proposals per rejection step (the first accepted one is kept), each sized so that a miss is
# rarer than 1 in 10^5 draws: a box coordinate is accepted with probability >= 1/2, Wood's
# vMF step with >= 0.84 (κ <= 10, n = 10), AnInfoNCE's shell with about 0.1.
PROPOSALS = 16
VMF_PROPOSALS = 8
SHELL_PROPOSALS = 128


def first_accepted(proposals: jax.Array, accepted: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first accepted proposal along axis 0 (the last one where none is) and whether any was.

    >>> first_accepted(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([[False, True], [True, True]]))
    (Array([3., 2.], dtype=float32), Array([ True,  True], dtype=bool))
    """
    index = jnp.where(accepted.any(axis=0), jnp.argmax(accepted, axis=0), accepted.shape[0] - 1)
    return jnp.take_along_axis(proposals, index[None], axis=0)[0], accepted.any(axis=0)


def project(x: jax.Array) -> jax.Array:
    """Rows of x scaled onto the unit sphere."""
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def generalized_normal(key: jax.Array, shape, p, scale) -> jax.Array:
    """Draws of density p / (2 λ Γ(1/p)) exp(-(|x|/λ)^p), λ = `scale`: λ s G^{1/p}, s = ±1, G ~ Gamma(1/p).

    p = 1 is the Laplace distribution of scale λ (variance 2 λ²); p = 2 a normal of std λ/√2.
    """
    k_sign, k_gamma = jax.random.split(key)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
    return scale * sign * jax.random.gamma(k_gamma, 1.0 / p, shape) ** (1.0 / p)


def noise(key: jax.Array, kind: str, shape, scale, p=3.0) -> jax.Array:
    """Additive noise: "normal" (std `scale`), "laplace" (scale `scale`) or "generalized" (λ `scale`, shape p)."""
    if kind == "normal":
        return scale * jax.random.normal(key, shape)
    if kind == "laplace":
        return scale * jax.random.laplace(key, shape)
    return generalized_normal(key, shape, p, scale)


def uniform_sphere(key: jax.Array, size: int, n: int) -> jax.Array:
    """Uniform on S^{n-1}: normalised standard normal draws."""
    return project(jax.random.normal(key, (size, n)))


def marginal(key: jax.Array, space: str, kind: str, size: int, n: int, scale) -> jax.Array:
    """`size` draws of the latent marginal: "uniform" (box, sphere), or "normal" / "laplace" of
    scale `scale` (unbounded: around 0; sphere: around e_1, projected)."""
    if space == "box":
        return jax.random.uniform(key, (size, n), minval=BOX[0], maxval=BOX[1])
    if space == "sphere":
        if kind == "uniform":
            return uniform_sphere(key, size, n)
        return project(jnp.eye(n)[0] + noise(key, kind, (size, n), scale))
    return noise(key, kind, (size, n), scale)


def von_mises_fisher(key: jax.Array, mu: jax.Array, kappa, proposals: int = VMF_PROPOSALS) -> jax.Array:
    """Draws of density ∝ exp(κ μᵀx) on the sphere around each row of `mu` (Wood, 1994).

    The cosine w to μ is drawn by rejection (`proposals` tries per row, the first accepted
    kept); the direction orthogonal to μ is uniform.
    """
    size, n = mu.shape
    m = n - 1.0
    b = m / (jnp.sqrt(4.0 * kappa**2 + m**2) + 2.0 * kappa)
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + m * jnp.log(1.0 - x0**2)
    k_beta, k_u, k_v = jax.random.split(key, 3)
    beta = jax.random.beta(k_beta, m / 2.0, m / 2.0, (proposals, size))
    w = (1.0 - (1.0 + b) * beta) / (1.0 - (1.0 - b) * beta)
    u = jax.random.uniform(k_u, (proposals, size), minval=1e-12)
    w, _ = first_accepted(w, kappa * w + m * jnp.log(1.0 - x0 * w) - c >= jnp.log(u))
    v = jax.random.normal(k_v, (size, n))
    v = project(v - jnp.sum(v * mu, axis=1, keepdims=True) * mu)
    return w[:, None] * mu + jnp.sqrt(jnp.clip(1.0 - w**2, 0.0))[:, None] * v


def truncated(key: jax.Array, z: jax.Array, kind: str, scale, p=3.0, proposals: int = PROPOSALS) -> jax.Array:
    """z + noise truncated to the box, coordinate by coordinate: each coordinate's first draw
    inside the box of `proposals` (clipped to it where none is)."""
    draws = z + noise(key, kind, (proposals, *z.shape), scale, p)
    inside = (draws >= BOX[0]) & (draws <= BOX[1])
    kept, found = first_accepted(draws, inside)
    return jnp.where(found, kept, jnp.clip(kept, *BOX))


def anisotropic(key: jax.Array, z: jax.Array, precision: jax.Array, threshold: float, proposals: int = SHELL_PROPOSALS):
    """AnInfoNCE's conditional: y = z + N(0, Λ⁻¹) (Λ = diag(`precision`)), kept when |1 − ‖y‖| <
    `threshold` (the first of `proposals` tries; the last where none is), projected onto the sphere."""
    y = z + jax.random.normal(key, (proposals, *z.shape)) / jnp.sqrt(precision)
    accepted = jnp.abs(1.0 - jnp.linalg.norm(y, axis=-1)) < threshold
    index = jnp.where(accepted.any(axis=0), jnp.argmax(accepted, axis=0), proposals - 1)
    return project(jnp.take_along_axis(y, index[None, :, None], axis=0)[0])


def conditional(key: jax.Array, z: jax.Array, space: str, kind: str, scale, p, precision, threshold) -> jax.Array:
    """Positive partners of `z`: "vmf" (κ = `scale`, sphere), "anisotropic" (sphere), or additive
    "normal" / "laplace" / "generalized" noise, truncated to the box or projected onto the sphere."""
    if kind == "vmf":
        return von_mises_fisher(key, z, scale)
    if kind == "anisotropic":
        return anisotropic(key, z, precision, threshold)
    if space == "box":
        return truncated(key, z, kind, scale, p)
    moved = z + noise(key, kind, z.shape, scale, p)
    return project(moved) if space == "sphere" else moved
