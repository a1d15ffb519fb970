"""Encoders g1, g2: Flax MLPs from observations to codes (docs/generative-process.md).

`init` returns the trainable parameters for both modalities: `{"g1": ..., "g2": ...}`,
or `{"g": ...}` when one encoder is shared. `encode` maps a modality's
observations to codes with the right parameters.

Example:
    >>> import jax
    >>> from mmident_jax.config import Config
    >>> cfg = Config(encoder_widths=(32, 32))
    >>> params = init(jax.random.PRNGKey(0), cfg)
    >>> encode(params, cfg, 1, jnp.zeros((3, cfg.n_latent))).shape
    (3, 5)
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmident_jax.config import Config

SLOPE = 0.01


def torch_uniform(fan_in: int):
    """PyTorch's `nn.Linear` default for weights and biases alike: uniform in ±1/√fan_in.

    >>> w = torch_uniform(4)(jax.random.PRNGKey(0), (4, 3))
    >>> bool(jnp.all(jnp.abs(w) <= 0.5))
    True
    """
    bound = fan_in**-0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class MLP(nn.Module):
    """Dense layers of the given widths, leaky ReLU (slope 0.01) after each hidden one.

    Parameters are float32; `dtype` is the computation type (bfloat16 for speed).
    `weight_init` is "lecun" (Flax's LeCun-normal weights, zero biases) or "pytorch" (the
    original's `nn.Linear` default, `torch_uniform`).
    """

    widths: Sequence[int]
    out: int
    dtype: jnp.dtype = jnp.float32
    weight_init: str = "lecun"

    def dense(self, width: int, fan_in: int) -> nn.Dense:
        if self.weight_init == "pytorch":
            return nn.Dense(width, dtype=self.dtype, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in))
        return nn.Dense(width, dtype=self.dtype)

    @nn.compact
    def __call__(self, x):
        for width in self.widths:
            x = nn.leaky_relu(self.dense(width, x.shape[-1])(x), SLOPE)
        return self.dense(self.out, x.shape[-1])(x).astype(jnp.float32)


# Config.precision -> (computation dtype, matmul precision)
PRECISION = {
    "float32": (jnp.float32, "float32"),
    "tf32": (jnp.float32, "tensorfloat32"),
    "bfloat16": (jnp.bfloat16, "bfloat16"),
}


def module(cfg: Config) -> MLP:
    return MLP(
        widths=cfg.widths, out=cfg.encoding_size, dtype=PRECISION[cfg.precision][0], weight_init=cfg.encoder_init
    )


def names(cfg: Config) -> tuple[str, ...]:
    """Parameter collections: one shared encoder or one per modality."""
    return ("g",) if cfg.shared_encoder else ("g1", "g2")


def init(key: jax.Array, cfg: Config) -> dict:
    """Parameters of the encoder(s), each from its own key."""
    x = jnp.zeros((1, cfg.n_latent))
    return {name: module(cfg).init(jax.random.fold_in(key, i), x) for i, name in enumerate(names(cfg))}


# Rows per block when encoding many samples, by backend. On a CPU XLA's matmuls lose speed as
# rows grow past a few thousand (benchmarks/README.md, "Encoding in blocks of rows"), so a long
# batch is encoded block by block (`lax.map`); accelerators take the whole batch at once.
BLOCK_ROWS = {"cpu": 1024}


def encode(params: dict, cfg: Config, modality: int, x: jax.Array) -> jax.Array:
    """Codes of observations `x` (n, n_latent) of modality 1 or 2.

    Rows are independent, so encoding by blocks of `BLOCK_ROWS` rows (on a CPU) gives the
    same codes, and the same gradients up to float32 round-off in their sums over rows.
    """
    name = "g" if cfg.shared_encoder else f"g{modality}"

    def apply(rows):
        return module(cfg).apply(params[name], rows)

    block = BLOCK_ROWS.get(jax.default_backend())
    n = x.shape[0]
    with jax.default_matmul_precision(PRECISION[cfg.precision][1]):
        if block is None or n <= block:
            return apply(x)
        whole = n - n % block
        codes = jax.lax.map(apply, x[:whole].reshape(whole // block, block, *x.shape[1:]))
        codes = codes.reshape(whole, *codes.shape[2:])
        return codes if whole == n else jnp.concatenate([codes, apply(x[whole:])])
