"""mmident-jax: identifiability of multimodal contrastive learning in JAX.

The names below load their modules on first use, so that `import mmident_jax` (and the
command line's help) does not load JAX.

Example:
    >>> import jax
    >>> from mmident_jax import Config, make_train
    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=3, cond_pool=1000)
    >>> state, losses = jax.jit(make_train(cfg))(jax.random.PRNGKey(0))
    >>> int(state.step)
    3
"""

import importlib

__version__ = "0.5.0"

_API = {
    "Config": "config",
    "Hyper": "config",
    "hyper": "config",
    "replace": "config",
    "PRESETS": "presets",
    "make_train": "train",
    "train_seeds": "train",
    "fit": "train",
    "evaluate": "evaluation",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'mmident_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mmident_jax.{_API[name]}"), name)
    globals()[name] = value
    return value
