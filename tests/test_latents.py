import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmident_jax import latents
from mmident_jax.config import Config, ConfigError, hyper, replace
from mmident_jax.presets import PRESETS

N = 200_000


def draw(cfg, n=N, seed=1, **numbers):
    params = latents.init(jax.random.PRNGKey(0), cfg)
    hp = hyper(cfg)._replace(**{k: jnp.float32(v) for k, v in numbers.items()})
    blocks = latents.sample_blocks(jax.random.PRNGKey(seed), params, cfg, hp, n)
    return params, jax.tree.map(np.asarray, blocks)


def cov(x, y=None):
    y = x if y is None else y
    return (x - x.mean(0)).T @ (y - y.mean(0)) / (len(x) - 1)


def test_independent_blocks_are_standard_normal_scaled_by_m_param():
    cfg = Config(m_param=2.0)
    _, b = draw(cfg)
    for block in (b.c, b.s, b.m1, b.m2):
        np.testing.assert_allclose(block.mean(0), 0.0, atol=0.03)  # 5 sd of the mean is 0.022
        np.testing.assert_allclose(cov(block), 4.0 * np.eye(5), atol=0.08)
    np.testing.assert_allclose(cov(b.c, b.s), 0.0, atol=0.08)


def test_statistical_dependence_gives_each_block_its_wishart_covariance_whatever_the_scale():
    """As the original (`multivariate_normal(0, Σ)`): m_param and c_param leave Wishart blocks at Σ."""
    cfg = Config(statistical_dependence=True, style_change_prob=1.0, wishart="independent")
    params, b = draw(cfg, m_param=2.0, c_param=0.5)
    for block, factor in (
        (b.c, params.content_factor),
        (b.s, params.style_factor),
        (b.m1, params.m1_factor),
        (b.m2, params.m2_factor),
    ):
        sigma = np.asarray(factor @ factor.T)
        np.testing.assert_allclose(cov(block), sigma, atol=0.03 * np.abs(sigma).max() + 0.05)
    change = np.asarray(params.change_factor @ params.change_factor.T)
    np.testing.assert_allclose(cov(b.s_tilde - b.s), change, atol=0.03 * np.abs(change).max() + 0.02)
    _, scaled = draw(Config(style_change_prob=1.0), m_param=2.0, c_param=0.5)  # without dependence they scale
    np.testing.assert_allclose(cov(scaled.c), 4.0 * np.eye(5), atol=0.08)
    np.testing.assert_allclose(cov(scaled.s_tilde - scaled.s), 0.25 * np.eye(5), atol=0.02)
    factors = (params.content_factor, params.style_factor, params.change_factor, params.m1_factor, params.m2_factor)
    assert all(not np.allclose(a, b) for i, a in enumerate(factors) for b in factors[i + 1 :])


def test_a_scale_under_statistical_dependence_is_refused():
    with pytest.raises(ConfigError, match="m_param 2.0 has no effect under statistical_dependence"):
        Config(statistical_dependence=True, m_param=2.0)
    with pytest.raises(ConfigError, match="c_param 0.5 has no effect"):
        Config(statistical_dependence=True, c_param=0.5)


def test_paper_preset_shares_one_wishart_draw_across_blocks():
    """The original seeds every Wishart draw with the run's seed: Σc = Σs = Σa = Σm1 = Σm2."""
    cfg = replace(PRESETS["paper"], statistical_dependence=True)
    assert cfg.wishart == "shared"
    params = latents.init(jax.random.PRNGKey(0), cfg)
    first = np.asarray(params.content_factor)
    for factor in (params.style_factor, params.change_factor, params.m1_factor, params.m2_factor):
        np.testing.assert_array_equal(factor, first)
    assert np.linalg.matrix_rank(first) == 5 and not np.allclose(first, np.eye(5))
    independent = latents.init(jax.random.PRNGKey(0), replace(cfg, wishart="independent"))
    assert not np.allclose(independent.style_factor, independent.content_factor)
    assert not np.allclose(independent.m1_factor, independent.m2_factor)


def test_shared_wishart_draws_one_matrix_per_block_size():
    """As scipy's wishart.rvs under one seed: equal sizes share the matrix, other sizes do not
    get a truncation of it (scipy's Bartlett draws for another size start the stream afresh)."""
    params = latents.init(jax.random.PRNGKey(0), Config(statistical_dependence=True, content_n=3))
    np.testing.assert_array_equal(params.style_factor, params.change_factor)
    np.testing.assert_array_equal(params.style_factor, params.m1_factor)
    assert not np.allclose(params.content_factor, params.style_factor[:3, :3])


def test_content_dependent_style_shifts_style_by_B_c_plus_a():
    cfg = Config(content_dependent_style=True)
    params, b = draw(cfg)
    B, a = np.asarray(params.B), np.asarray(params.a)
    np.testing.assert_allclose(b.s.mean(0), a, atol=0.05)
    np.testing.assert_allclose(cov(b.s, b.c), B, atol=0.05)  # Cov(s, c) = B Cov(c) = B
    np.testing.assert_allclose(cov(b.s), np.eye(5) + B @ B.T, atol=0.03 * np.abs(B @ B.T).max() + 0.05)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.75, 1.0])
def test_each_style_dimension_changes_with_probability_p_chg(p):
    _, b = draw(Config(style_change_prob=p))
    changed = b.s_tilde != b.s
    # binomial sd of the rate over N samples is at most 0.0011 per dimension
    np.testing.assert_allclose(changed.mean(0), p, atol=0.006)
    z1, z2 = latents.views(jax.tree.map(jnp.asarray, b))
    np.testing.assert_array_equal(z1[:, :5], z2[:, :5])


@settings(max_examples=8, deadline=None)
@given(nc=st.integers(1, 4), ns=st.integers(0, 4), nm=st.integers(0, 4), dep=st.booleans(), causal=st.booleans())
def test_views_and_split_views_round_trip_for_any_block_sizes(nc, ns, nm, dep, causal):
    cfg = Config(content_n=nc, style_n=ns, modality_n=nm, statistical_dependence=dep, content_dependent_style=causal)
    _, b = draw(cfg, n=7)
    z1, z2 = latents.views(b)
    assert z1.shape == z2.shape == (7, nc + ns + nm)
    back = latents.split_views(z1, z2, cfg)
    for got, want in zip(back, b):
        np.testing.assert_array_equal(got, want)


def test_per_run_numbers_can_be_vmapped():
    cfg = Config()
    params = latents.init(jax.random.PRNGKey(0), cfg)
    sample = lambda p: latents.sample_blocks(
        jax.random.PRNGKey(3), params, cfg, hyper(cfg)._replace(style_change_prob=p), 1000
    )
    b = jax.vmap(sample)(jnp.array([0.0, 0.5]))
    assert float(jnp.mean(b.s_tilde[0] != b.s[0])) == 0.0
    single = latents.sample_blocks(jax.random.PRNGKey(3), params, cfg, hyper(replace(cfg, style_change_prob=0.5)), 1000)
    np.testing.assert_allclose(b.s_tilde[1], single.s_tilde, rtol=1e-6)
    assert 0.4 < float(jnp.mean(single.s_tilde != single.s)) < 0.6


@pytest.mark.parametrize("k", [3, 10])
def test_discrete_grid_has_unit_variance_and_categories_invert_it(k):
    grid = np.asarray(latents.grid(k))
    np.testing.assert_allclose([grid.mean(), grid.var()], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.diff(grid), np.diff(grid)[0], rtol=1e-5)  # evenly spaced
    np.testing.assert_array_equal(latents.categories(grid, k), np.arange(k))


@pytest.mark.parametrize("block, k, p", [("c", 3, 0.75), ("s", 4, 0.5), ("s", 10, 1.0), ("m", 7, 0.75)])
def test_discrete_blocks_are_uniform_and_style_resamples_with_p_chg(block, k, p):
    cfg = Config(discrete_block=block, categories=k, style_change_prob=p)
    _, b = draw(cfg)
    discrete = {"c": (b.c,), "s": (b.s, b.s_tilde), "m": (b.m1, b.m2)}[block]
    for values in discrete:
        idx = np.asarray(latents.categories(values, k))
        np.testing.assert_array_equal(np.asarray(latents.grid(k))[idx], values)  # on the grid
        freq = np.bincount(idx.ravel(), minlength=k) / idx.size
        np.testing.assert_allclose(freq, 1 / k, atol=0.003)  # 6 sd of a frequency from 1e6 draws
    others = [x for name, x in (("c", b.c), ("s", b.s), ("m", b.m1)) if name != block]
    for values in others:  # the continuous blocks stay standard normal
        np.testing.assert_allclose(values.var(0), 1.0, atol=0.03)
    changed = b.s != b.s_tilde
    if block == "s":  # a change resamples the category: it differs with probability p (1 - 1/k)
        np.testing.assert_allclose(changed.mean(), p * (1 - 1 / k), atol=0.003)
    else:
        np.testing.assert_allclose(changed.mean(), p, atol=0.003)


@pytest.mark.parametrize(
    "settings, words",
    [
        (dict(discrete_block="s", statistical_dependence=True), "statistical_dependence"),
        (dict(discrete_block="s", content_dependent_style=True), "content_dependent_style"),
        (dict(discrete_block="m", modality_n=0), "no dimensions"),
        (dict(discrete_block="x"), "discrete_block must be one of"),
        (dict(categories=1), "categories must be >= 2"),
    ],
)
def test_discrete_settings_are_validated(settings, words):
    with pytest.raises(ValueError, match=words):
        Config(**settings)
