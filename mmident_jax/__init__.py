"""mmident-jax: identifiability of multimodal contrastive learning in JAX.

Example:
    >>> import jax
    >>> from mmident_jax import Config, make_train
    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=3, cond_pool=1000)
    >>> state, losses = jax.jit(make_train(cfg))(jax.random.PRNGKey(0))
    >>> int(state.step)
    3
"""

from mmident_jax.config import PRESETS, Config, Hyper, hyper, replace
from mmident_jax.evaluate import evaluate
from mmident_jax.driver import fit
from mmident_jax.train import make_train

__all__ = ["PRESETS", "Config", "Hyper", "evaluate", "fit", "hyper", "make_train", "replace"]
