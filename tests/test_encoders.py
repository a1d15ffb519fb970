import jax
import numpy as np
import pytest

from mmident_jax import encoders
from mmident_jax.config import Config, replace
from mmident_jax.presets import PRESETS, sweep_preset


def layers(cfg):
    params = encoders.init(jax.random.PRNGKey(0), cfg)["g1"]["params"]
    return [params[f"Dense_{i}"] for i in range(len(params))]


def test_pytorch_init_is_uniform_within_one_over_sqrt_fan_in_per_layer():
    """nn.Linear's default: weight and bias ~ U(-1/√fan_in, 1/√fan_in); mean 0, variance 1/(3 fan_in)."""
    cfg = PRESETS["paper"]
    fans = (cfg.n_latent, *cfg.widths)
    for layer, fan_in in zip(layers(cfg), fans, strict=True):
        bound = fan_in**-0.5
        w, b = np.asarray(layer["kernel"]), np.asarray(layer["bias"])
        assert w.shape[0] == fan_in
        assert np.abs(b).max() <= bound and np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound  # fills the interval (>= 750 draws per layer)
        # moments of the 2k-560k weights per layer: 5 standard errors
        assert abs(w.mean()) < 5 * bound / np.sqrt(3 * w.size)
        assert w.var() == pytest.approx(bound**2 / 3, rel=5 * np.sqrt(0.8 / w.size))


def test_lecun_init_is_flax_default_with_zero_biases():
    cfg = replace(PRESETS["paper"], encoder_init="lecun")
    first = layers(cfg)[1]  # fan_in 150
    w = np.asarray(first["kernel"])
    np.testing.assert_array_equal(first["bias"], 0.0)
    assert w.std() == pytest.approx(150**-0.5, rel=0.05)
    assert np.abs(w).max() > 150**-0.5 * 1.5  # not the uniform's bound


def test_paper_presets_use_the_pytorch_init():
    assert Config().encoder_init == "pytorch" and PRESETS["paper"].encoder_init == "pytorch"
    for name in ("table1", "table4", "interventions"):
        assert {s.cfg.encoder_init for s in sweep_preset(name).settings} == {"pytorch"}
