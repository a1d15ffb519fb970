import pytest

from mmident_jax.config import Config


@pytest.fixture
def tiny() -> Config:
    """A run small enough to train in a second: same latent model, tiny encoders (the quick presets' init)."""
    return Config(
        encoder_widths=(16, 16),
        batch_size=32,
        cond_pool=1000,
        lr=1e-3,
        encoder_init="lecun",
        train_steps=20,
        log_steps=10,
    )
