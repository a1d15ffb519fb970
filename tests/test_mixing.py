import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax import mixing


@pytest.mark.parametrize("method", ["rejection", "orthogonal"])
def test_inverse_undoes_apply_exactly_in_float64(method):
    with jax.enable_x64(True):
        f = mixing.init(jax.random.PRNGKey(0), 15, 3, method=method, pool=2000)
        z = jax.random.normal(jax.random.PRNGKey(1), (2000, 15), dtype=jnp.float64)
        x = mixing.apply(f, z)
        np.testing.assert_allclose(mixing.inverse(f, x), z, atol=1e-5)
        assert not np.allclose(x, z)  # it does mix


def test_inverse_in_float32_is_within_rounding():
    f = mixing.init(jax.random.PRNGKey(0), 15)
    z = jax.random.normal(jax.random.PRNGKey(1), (2000, 15))
    np.testing.assert_allclose(mixing.inverse(f, mixing.apply(f, z)), z, atol=3e-4)


def test_apply_is_leaky_relu_mlp_without_bias():
    w1, w2 = jnp.array([[1.0, 0.0], [0.0, -1.0]]), jnp.array([[2.0, 1.0], [0.0, 1.0]])
    x = mixing.apply((w1, w2), jnp.array([[1.0, 1.0]]))
    # W1 z = (1, -1) -> leaky (1, -0.2) -> W2 (.) = (1.8, -0.2)
    np.testing.assert_allclose(x, [[1.8, -0.2]], rtol=1e-6)


def test_every_layer_is_under_the_condition_threshold_with_unit_columns():
    pool, ratio = 25_000, 1e-3
    threshold = mixing.condition_threshold(15, pool, ratio)
    for seed in range(3):
        f = mixing.init(jax.random.PRNGKey(seed), 15, 3, pool=pool, ratio=ratio)
        assert len(f) == 3
        conds = np.asarray(mixing.condition_numbers(jnp.stack(f)))
        assert np.all(conds <= threshold), (conds, threshold)
        np.testing.assert_allclose(np.linalg.norm(np.stack(f), axis=1), 1.0, rtol=1e-5)


def test_threshold_is_the_ratio_quantile_of_the_pool_like_the_original():
    pool = mixing.random_matrices(jax.random.PRNGKey(mixing.THRESHOLD_KEY), 4000, 6)
    conds = np.sort(np.linalg.cond(np.asarray(pool, dtype=np.float64)))
    assert mixing.condition_threshold(6, 4000, 0.01) == pytest.approx(conds[40], rel=1e-4)
    # a well-conditioned tail: far below the pool's median
    assert conds[40] < 0.5 * np.median(conds)


def test_orthogonal_init_gives_orthogonal_layers():
    f = mixing.init(jax.random.PRNGKey(0), 7, 2, method="orthogonal")
    for w in f:
        np.testing.assert_allclose(w.T @ w, np.eye(7), atol=1e-5)


def test_init_vmaps_over_keys():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    init = lambda k: mixing.init(k, 5, 2, pool=500)
    batched = jax.jit(jax.vmap(init))(keys)
    for i, k in enumerate(keys):
        for got, want in zip(batched, init(k)):
            np.testing.assert_allclose(got[i], want, rtol=1e-6)
