"""Ground-truth latent model: content, style and modality-specific blocks (docs/generative-process.md).

`init` draws the per-seed parameters (Wishart covariance factors, the content->style
map B, a); `sample_blocks` draws a batch of latent blocks; `views` assembles the two
modalities' latent vectors z1 = (c, s, m1) and z2 = (c, s~, m2).

Example:
    >>> import jax
    >>> from mmident_jax.config import Config, hyper
    >>> cfg = Config(statistical_dependence=True)
    >>> params = init(jax.random.PRNGKey(0), cfg)
    >>> z1, z2 = views(sample_blocks(jax.random.PRNGKey(1), params, cfg, hyper(cfg), 8))
    >>> z1.shape, z2.shape
    ((8, 15), (8, 15))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mmident_jax.config import Config, Hyper

BLOCK_NAMES = ("c", "s", "s~", "m1", "m2")
DISCRETE_NAMES = {"none": (), "c": ("c", "c'"), "s": ("s", "s~"), "m": ("m1", "m2")}  # by cfg.discrete_block


class LatentParams(NamedTuple):
    """Per-seed parameters. Each `*_factor` A gives the block covariance A Aᵀ."""

    content_factor: jax.Array  # (nc, nc)
    style_factor: jax.Array  # (ns, ns)
    change_factor: jax.Array  # (ns, ns), covariance of the style perturbation
    m1_factor: jax.Array  # (nm, nm)
    m2_factor: jax.Array  # (nm, nm)
    B: jax.Array  # (ns, nc), content -> style
    a: jax.Array  # (ns,)


class Blocks(NamedTuple):
    """A batch of latent blocks, each (batch, block dim)."""

    c: jax.Array
    s: jax.Array
    s_tilde: jax.Array
    m1: jax.Array
    m2: jax.Array

    def named(self) -> dict[str, jax.Array]:
        """The blocks under their names in results tables: c, s, s~, m1, m2."""
        return dict(zip(BLOCK_NAMES, self))


def wishart_factor(key: jax.Array, dim: int) -> jax.Array:
    """A with A Aᵀ ~ Wishart(df=dim, scale=I): A = Xᵀ for X ~ N(0, 1)^(dim x dim)."""
    return jax.random.normal(key, (dim, dim)).T


def init(key: jax.Array, cfg: Config) -> LatentParams:
    """Draw the latent model's parameters for one seed.

    With `cfg.statistical_dependence` each block (and the style perturbation) gets a
    Wishart covariance. `cfg.wishart == "shared"` is the original script's process: it
    seeds every draw with the run's seed, so blocks of one size share one matrix (and
    blocks of other sizes get other draws, not truncations of it); "independent" draws
    one matrix per block (docs/generative-process.md).
    """
    nc, ns, nm = cfg.content_n, cfg.style_n, cfg.modality_n
    dims = (nc, ns, ns, nm, nm)
    if cfg.statistical_dependence:
        factors = [
            wishart_factor(jax.random.fold_in(key, dim if cfg.wishart == "shared" else 100 + i), dim)
            for i, dim in enumerate(dims)
        ]
    else:
        factors = [jnp.eye(dim) for dim in dims]
    if cfg.content_dependent_style:
        kb, ka = jax.random.split(jax.random.fold_in(key, 200))
        B, a = jax.random.normal(kb, (ns, nc)), jax.random.normal(ka, (ns,))
    else:
        B, a = jnp.zeros((ns, nc)), jnp.zeros((ns,))
    return LatentParams(*factors, B=B, a=a)


def grid(k: int) -> jax.Array:
    """The k values of a discrete dimension: evenly spaced, mean 0, variance 1 (like N(0, 1)).

    >>> grid(3)
    Array([-1.2247449,  0.       ,  1.2247449], dtype=float32)
    """
    half_width = (3.0 * (k - 1) / (k + 1)) ** 0.5  # variance of k evenly spaced points on [-w, w] is 1
    return jnp.linspace(-half_width, half_width, k)


def categories(values: jax.Array, k: int) -> jax.Array:
    """Category indices 0..k-1 of values on `grid(k)` (inverse of `grid(k)[index]`)."""
    values = jnp.asarray(values)
    return jnp.round((values / grid(k)[-1] + 1.0) * (k - 1) / 2).astype(jnp.int32)


def sample_blocks(key: jax.Array, params: LatentParams, cfg: Config, hp: Hyper, n: int) -> Blocks:
    """Draw n samples of (c, s, s~, m1, m2).

    c, s, m1, m2 ~ N(0, m_param² A Aᵀ); s <- s + B c + a; s~ = s + kappa * eps with
    kappa ~ Bernoulli(p_chg) per sample and dimension, eps ~ N(0, c_param² A_chg A_chgᵀ).
    Under statistical dependence the blocks are N(0, A Aᵀ) and eps ~ N(0, A_chg A_chgᵀ):
    like the original, a Wishart block ignores m_param and c_param.
    A discrete block (`cfg.discrete_block`) is uniform over `grid(k)` per dimension
    instead, and a discrete style changes by resampling: s~ = kappa ? fresh draw : s.
    """
    nc, ns, nm = cfg.content_n, cfg.style_n, cfg.modality_n
    kc, ks, k1, k2, kmask, keps = jax.random.split(key, 6)
    m_param, c_param = (1.0, 1.0) if cfg.statistical_dependence else (hp.m_param, hp.c_param)

    def draw(k, dim, factor, scale, block):
        if cfg.discrete_block == block:
            return grid(cfg.categories)[jax.random.randint(k, (n, dim), 0, cfg.categories)]
        return scale * jax.random.normal(k, (n, dim)) @ factor.T

    c = draw(kc, nc, params.content_factor, m_param, "c")
    s = draw(ks, ns, params.style_factor, m_param, "s") + c @ params.B.T + params.a
    kappa = jax.random.bernoulli(kmask, hp.style_change_prob, (n, ns))
    change = draw(keps, ns, params.change_factor, c_param, "s")
    s_tilde = jnp.where(kappa, change, s) if cfg.discrete_block == "s" else s + kappa * change
    m1 = draw(k1, nm, params.m1_factor, m_param, "m")
    m2 = draw(k2, nm, params.m2_factor, m_param, "m")
    return Blocks(c, s, s_tilde, m1, m2)


def views(blocks: Blocks) -> tuple[jax.Array, jax.Array]:
    """The two modalities' latents: z1 = (c, s, m1), z2 = (c, s~, m2)."""
    z1 = jnp.concatenate([blocks.c, blocks.s, blocks.m1], axis=-1)
    z2 = jnp.concatenate([blocks.c, blocks.s_tilde, blocks.m2], axis=-1)
    return z1, z2


def split_views(z1: jax.Array, z2: jax.Array, cfg: Config) -> Blocks:
    """Inverse of `views`: recover the named blocks from (z1, z2)."""
    nc, ns = cfg.content_n, cfg.style_n
    return Blocks(z1[:, :nc], z1[:, nc : nc + ns], z2[:, nc : nc + ns], z1[:, nc + ns :], z2[:, nc + ns :])
