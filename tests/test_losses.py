import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax import losses


def test_infonce_direction_on_hand_computed_example():
    a = jnp.array([[0.0], [1.0]])
    b = jnp.array([[1.0], [1.0]])
    a_neg = jnp.array([[0.0], [2.0]])
    # i=0: d(a0,b0)=1, negatives d=0, 4 ; i=1: d=0, negatives d=1, 1
    l0 = 1.0 + math.log((math.exp(0) + math.exp(-4) + math.exp(-1)) / 3)
    l1 = 0.0 + math.log((2 * math.exp(-1) + math.exp(0)) / 3)
    assert float(losses.infonce_direction(a, b, a_neg)) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    # temperature 2 halves every distance
    l0 = 0.5 + math.log((1 + math.exp(-2) + math.exp(-0.5)) / 3)
    l1 = 0.0 + math.log((2 * math.exp(-0.5) + 1) / 3)
    assert float(losses.infonce_direction(a, b, a_neg, 2.0)) == pytest.approx((l0 + l1) / 2, rel=1e-6)


def naive_infonce_direction(a, b, a_neg, tau):
    """The DESIGN formula, written with explicit loops in float64."""
    a, b, a_neg = (np.asarray(x, np.float64) for x in (a, b, a_neg))
    total = 0.0
    for i in range(len(a)):
        pos = np.sum((a[i] - b[i]) ** 2) / tau
        neg = sum(math.exp(-np.sum((a[i] - a_neg[j]) ** 2) / tau) for j in range(len(a_neg)))
        total += pos + math.log((neg + math.exp(-pos)) / (len(a_neg) + 1))
    return total / len(a)


def test_symmetrised_infonce_matches_the_formula_on_random_codes():
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    h1, h2, h1n, h2n = (jax.random.normal(kk, (9, 3)) for kk in k)
    want = 0.5 * (naive_infonce_direction(h1, h2, h1n, 0.7) + naive_infonce_direction(h2, h1, h2n, 0.7))
    assert float(losses.infonce(h1, h2, h1n, h2n, 0.7)) == pytest.approx(want, rel=1e-5)


def test_squared_distances_equal_the_broadcast_form():
    a = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
    b = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    want = np.sum((np.asarray(a)[:, None] - np.asarray(b)[None]) ** 2, axis=-1)
    np.testing.assert_allclose(losses.squared_distances(a, b), want, rtol=1e-5, atol=1e-5)
    assert float(losses.squared_distances(a, a).min()) >= 0.0


def test_clip_cosine_on_hand_computed_example():
    h1 = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    h2 = jnp.array([[3.0, 0.0], [1.0, 1.0]])
    # cosine logits: [[1, 1/√2], [0, 1/√2]]
    r = 1 / math.sqrt(2)
    rows = (math.log(math.e + math.exp(r)) - 1) + (math.log(1 + math.exp(r)) - r)
    cols = (math.log(math.e + 1) - 1) + (math.log(2 * math.exp(r)) - r)
    assert float(losses.clip(h1, h2, 1.0, "cosine")) == pytest.approx(0.25 * (rows + cols), rel=1e-6)


def test_clip_l2_uses_negative_squared_distances():
    h1 = jnp.array([[0.0], [1.0]])
    h2 = jnp.array([[0.0], [3.0]])
    # logits -d: [[0, -9], [-1, -4]]
    rows = math.log(1 + math.exp(-9)) + (math.log(math.exp(-1) + math.exp(-4)) + 4)
    cols = math.log(1 + math.exp(-1)) + (math.log(math.exp(-9) + math.exp(-4)) + 4)
    assert float(losses.clip(h1, h2, 1.0, "l2")) == pytest.approx(0.25 * (rows + cols), rel=1e-6)
