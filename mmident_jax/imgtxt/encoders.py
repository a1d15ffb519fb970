"""Flax encoders of the image/text experiment: images and token sequences to codes.

- `ResNet18`: the paper's image encoder, ResNet-18 layout (stem, four stages of two
  basic blocks, 64-512 channels, global average pooling) with GroupNorm in place of
  BatchNorm, so training stays a pure function of parameters (no batch statistics);
- `SmallCNN`: four strided 4x4 convolutions and a dense layer, for quick runs;
- `TextCNN`: token embedding, three 1-D convolutions, max-pooling over positions.

Each ends in a dense layer of `out` (the encoding size) units.

Example:
    >>> import jax, jax.numpy as jnp
    >>> images, tokens = jnp.zeros((2, 32, 32, 3)), jnp.zeros((2, 12), jnp.int32)
    >>> cnn, text = SmallCNN(out=4), TextCNN(vocab=50, out=4)
    >>> cnn.apply(cnn.init(jax.random.PRNGKey(0), images), images).shape
    (2, 4)
    >>> text.apply(text.init(jax.random.PRNGKey(0), tokens), tokens).shape
    (2, 4)
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, channels // 4))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a (projected, if the shape changes) shortcut."""

    channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.channels, (3, 3), self.stride, use_bias=False)(x)
        y = nn.relu(_norm(self.channels)(y))
        y = _norm(self.channels)(nn.Conv(self.channels, (3, 3), use_bias=False)(y))
        if self.stride != 1 or x.shape[-1] != self.channels:
            x = _norm(self.channels)(nn.Conv(self.channels, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(x + y)


class ResNet18(nn.Module):
    """ResNet-18 on (n, H, W, 3) images in [0, 1]; the stem is 7x7/2 + max-pool from 128 pixels up,
    a 3x3/1 convolution below (small images keep their resolution)."""

    out: int

    @nn.compact
    def __call__(self, x):
        if x.shape[1] >= 128:
            x = nn.relu(_norm(64)(nn.Conv(64, (7, 7), 2, use_bias=False)(x)))
            x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
        else:
            x = nn.relu(_norm(64)(nn.Conv(64, (3, 3), use_bias=False)(x)))
        for i, channels in enumerate((64, 128, 256, 512)):
            x = BasicBlock(channels, 1 if i == 0 else 2)(x)
            x = BasicBlock(channels)(x)
        return nn.Dense(self.out)(x.mean(axis=(1, 2)))


class SmallCNN(nn.Module):
    """Four 4x4 stride-2 convolutions (32, 64, 64, 128 channels), dense 256, dense `out`."""

    out: int

    @nn.compact
    def __call__(self, x):
        for channels in (32, 64, 64, 128):
            x = nn.leaky_relu(nn.Conv(channels, (4, 4), 2)(x), 0.01)
        x = nn.leaky_relu(nn.Dense(256)(x.reshape(x.shape[0], -1)), 0.01)
        return nn.Dense(self.out)(x)


class TextCNN(nn.Module):
    """Embedding (`embed` dims), three width-3 convolutions of `channels`, max over positions,
    dense `out`. Padding (token 0) is masked out of the max."""

    vocab: int
    out: int
    embed: int = 64
    channels: int = 128

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.embed)(tokens)
        for _ in range(3):
            x = nn.leaky_relu(nn.Conv(self.channels, (3,))(x), 0.01)
        x = jnp.where((tokens > 0)[..., None], x, -jnp.inf).max(axis=1)
        return nn.Dense(self.out)(x)


def image_encoder(name: str, out: int) -> nn.Module:
    """ "resnet18" or "cnn"."""
    return {"resnet18": ResNet18, "cnn": SmallCNN}[name](out=out)
