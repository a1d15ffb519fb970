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
    """The objective of docs/generative-process.md, written with explicit loops in float64."""
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


def materialised_infonce_direction(a, b, a_neg, tau):
    """The loss with every (n, m) logit built, as written before the tiled log-sum-exp."""
    positive = -jnp.sum((a - b) ** 2, axis=-1) / tau
    logits = jnp.concatenate([-losses.squared_distances(a, a_neg) / tau, positive[:, None]], axis=1)
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.log(logits.shape[1]) - positive)


@pytest.mark.parametrize("tile_logits", [None, 8 * 29])  # one tile; tiles of 8 rows, the last one padded
def test_tiled_infonce_matches_materialised_logits_with_gradients(monkeypatch, tile_logits):
    if tile_logits is not None:
        monkeypatch.setattr(losses, "TILE_LOGITS", {jax.default_backend(): tile_logits})
    k = jax.random.split(jax.random.PRNGKey(3), 3)
    a, b, a_neg = (
        jax.random.normal(k[0], (37, 4)),
        jax.random.normal(k[1], (37, 4)),
        2.0 * jax.random.normal(k[2], (29, 4)),
    )
    tau = jnp.float32(0.7)
    got = jax.value_and_grad(losses.infonce_direction, argnums=(0, 1, 2, 3))(a, b, a_neg, tau)
    want = jax.value_and_grad(materialised_infonce_direction, argnums=(0, 1, 2, 3))(a, b, a_neg, tau)
    assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-6)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    # vmapped over a batch of temperatures, as a sweep does
    taus = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(jax.grad(losses.infonce_direction, argnums=(0, 3)), (None, None, None, 0))(a, b, a_neg, taus)
    for i, t in enumerate(taus):
        ga, gt = jax.grad(materialised_infonce_direction, argnums=(0, 3))(a, b, a_neg, t)
        np.testing.assert_allclose(batched[0][i], ga, rtol=2e-5, atol=1e-6)
        assert float(batched[1][i]) == pytest.approx(float(gt), rel=1e-5)


def test_nt_xent_on_hand_computed_example():
    h1 = jnp.array([[1.0, 0.0], [0.0, 2.0]])  # cosine similarity ignores the norm
    h2 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    # anchor h1_0: positive cos(h1_0, h2_0) = 1; negatives h2_1 (0) and h1_1 (0); the same for every anchor
    expected = math.log(math.e + 2) - 1
    assert float(losses.nt_xent(h1, h2)) == pytest.approx(expected, rel=1e-6)
    # temperature 0.5 doubles every logit
    assert float(losses.nt_xent(h1, h2, 0.5)) == pytest.approx(math.log(math.e**2 + 2) - 2, rel=1e-6)
    # l2: positives at distance 0, negatives at squared distance 2 (cross) and 5 / 5 (within)
    h1 = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    h2 = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    expected = math.log(1 + math.exp(-5) + math.exp(-5))
    assert float(losses.nt_xent(h1, h2, similarity="l2")) == pytest.approx(expected, rel=1e-6)


def test_tile_rows_fit_the_cache_on_cpu_and_keep_the_paper_batch_whole_on_accelerators():
    assert losses.tile_rows(6144, 6144, "cpu") == 128  # 2^20 logits
    assert losses.tile_rows(100, 6144, "cpu") == 100  # never more rows than there are
    assert losses.tile_rows(6144, 10**9, "cpu") == 8  # at least 8
    assert losses.tile_rows(6144, 6144, "gpu") == 6144
    assert losses.tile_rows(16384, 16384, "tpu") == 8192  # 2^27 logits
