"""The optimiser every experiment uses: Adam after optional global-norm clipping, with a
constant learning rate or a linear warm-up then cosine decay to 0.

It reads the optimisation settings every config shares (`config.Optimisation`):
`lr_schedule`, `warmup_steps`, `train_steps` and `grad_clip` (0: no clipping). The peak
learning rate is an argument so that it may be a traced, per-run number.

Example:
    >>> from mmident_jax.config import Config
    >>> cfg = Config(lr_schedule="warmup_cosine", warmup_steps=10, train_steps=110)
    >>> [round(float(learning_rate(cfg, 1.0, t)), 3) for t in (0, 5, 10, 60, 110)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import jax.numpy as jnp
import optax


def learning_rate(cfg, peak, count):
    """The lr at optimiser step `count`: constant, or linear warm-up then cosine decay to 0.

    The decay ends at `cfg.train_steps`; a run shorter than its warm-up only warms up.
    """
    if cfg.lr_schedule == "constant":
        return peak
    warm = jnp.minimum(1.0, count / max(cfg.warmup_steps, 1))
    progress = jnp.clip((count - cfg.warmup_steps) / max(cfg.train_steps - cfg.warmup_steps, 1), 0.0, 1.0)
    return peak * warm * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def optimizer(cfg, lr) -> optax.GradientTransformation:
    """Adam after global-norm clipping at `cfg.grad_clip` (none when 0), with the schedule of
    `learning_rate` (peak `lr`, which may be traced)."""
    schedule = lr if cfg.lr_schedule == "constant" else (lambda count: learning_rate(cfg, lr, count))
    adam = optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adam) if cfg.grad_clip > 0 else adam
