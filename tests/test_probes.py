"""Probes against scikit-learn on fixed seeded data (scikit-learn is a test-only oracle)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score as sk_r2
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from mmident_jax import probes
from mmident_jax.probes import classification

N_TRAIN, N_TEST = 300, 200


def regression_data(seed=0, noise=0.1):
    """5-D Gaussian inputs; targets: 2 smooth nonlinear columns, 1 pure-noise column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_TRAIN + N_TEST, 5))
    smooth = np.sin(x[:, :2]) + x[:, 2:4] ** 2 / 4 + noise * rng.normal(size=(len(x), 2))
    y = np.column_stack([smooth, rng.normal(size=len(x))])
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def sklearn_grid_search(x, y, x_test, y_test):
    grid = {"alpha": list(probes.ALPHAS), "gamma": list(probes.GAMMAS)}
    search = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=3).fit(x, y)
    return search.score(x_test, y_test), search.best_params_


# ---------------------------------------------------------------- R² and scaling


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]], [[1.5, 2.0], [2.5, 2.0], [5.0, 2.0]]),  # constant, exact
        ([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]], [[1.5, 2.0], [2.5, 2.5], [5.0, 2.0]]),  # constant, missed
        ([0.1, 0.1, 0.1], [0.1, 0.1, 0.2]),  # mean of 0.1s is not exactly 0.1 in float64
        ([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0]),  # 1-D arrays
        ([[3.0], [-0.5], [2.0]], [2.5, 0.0, 2.0]),  # (n, 1) against 1-D
        ([[0.5, 1.0], [-1.0, 1.0], [7.0, -6.0]], [[0.0, 2.0], [-1.0, 2.0], [8.0, -5.0]]),  # multi-output
        ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]),  # negative
    ],
)
def test_r2_score_equals_sklearn(y_true, y_pred):
    assert probes.r2_score(y_true, y_pred) == pytest.approx(sk_r2(y_true, y_pred), rel=1e-12, abs=1e-12)


def test_r2_score_single_sample_is_nan():
    assert math.isnan(probes.r2_score([1.0], [2.0]))


def test_standardize_matches_sklearn_and_keeps_constant_columns_finite():
    x = np.random.default_rng(0).normal(size=(50, 3)) * [1.0, 4.0, 0.0] + [0.0, -2.0, 3.0]
    mean, std = probes.standardize_fit(x)
    z = np.asarray(probes.standardize_apply(x, mean, std))
    np.testing.assert_allclose(z, StandardScaler().fit_transform(x), atol=1e-5)
    assert np.all(np.isfinite(z)) and np.all(z[:, 2] == 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), data=st.data())
def test_kfold_splits_equal_sklearn(n, data):
    folds = data.draw(st.integers(2, min(n, 12)))
    ours = probes.kfold_splits(n, folds)
    theirs = list(KFold(n_splits=folds).split(np.zeros(n)))
    assert len(ours) == len(theirs)
    for (tr, va), (tr_sk, va_sk) in zip(ours, theirs):
        np.testing.assert_array_equal(tr, tr_sk)
        np.testing.assert_array_equal(va, va_sk)


def test_kfold_splits_rejects_too_many_folds():
    with pytest.raises(ValueError, match="folds"):
        probes.kfold_splits(2, 3)


# ---------------------------------------------------------------- linear


def test_linear_r2_equals_sklearn():
    x, y, x_test, y_test = regression_data()
    x = x @ np.random.default_rng(1).normal(size=(5, 5)) + 3.0  # correlated, off-centre inputs
    x_test = x_test @ np.random.default_rng(1).normal(size=(5, 5)) + 3.0
    expected = LinearRegression().fit(x, y).score(x_test, y_test)
    assert abs(probes.linear_r2(x, y, x_test, y_test) - expected) < 1e-5


def test_linear_r2_blocks_equal_single_calls():
    x, y, x_test, y_test = regression_data()
    blocks = probes.linear_r2_blocks(x, [y[:, :2], y[:, 2]], x_test, [y_test[:, :2], y_test[:, 2]])
    singles = [probes.linear_r2(x, y[:, cols], x_test, y_test[:, cols]) for cols in (slice(0, 2), 2)]
    np.testing.assert_allclose(blocks, singles, rtol=1e-10)


def test_probes_accept_jax_arrays():
    data = [jnp.asarray(a, jnp.float32) for a in regression_data()]
    as_numpy = [np.asarray(a) for a in data]
    assert probes.linear_r2(*data) == probes.linear_r2(*as_numpy)
    assert probes.kernel_ridge_r2(*data) == probes.kernel_ridge_r2(*as_numpy)


# ---------------------------------------------------------------- kernel ridge


@pytest.mark.parametrize("seed, noise", [(0, 0.1), (1, 1.0)])
def test_kernel_ridge_selects_like_grid_search(seed, noise):
    data = regression_data(seed, noise)
    r2, params = probes.kernel_ridge_r2(*data)
    r2_sk, params_sk = sklearn_grid_search(*data)
    assert params == pytest.approx(params_sk, rel=1e-12)
    assert abs(r2 - r2_sk) < 1e-3


def test_kernel_ridge_blocks_equal_single_calls():
    x, y, x_test, y_test = regression_data()
    smooth, noise = (y[:, :2], y_test[:, :2]), (y[:, 2], y_test[:, 2])
    blocks = probes.kernel_ridge_r2_blocks(x, [smooth[0], noise[0]], x_test, [smooth[1], noise[1]])
    singles = [probes.kernel_ridge_r2(x, t, x_test, t_test) for t, t_test in (smooth, noise)]
    assert blocks[0][1] != blocks[1][1], "blocks should select different grid points"
    for (r2, params), (r2_single, params_single) in zip(blocks, singles):
        assert params == params_single
        assert r2 == pytest.approx(r2_single, rel=1e-9, abs=1e-9)


def test_kernel_ridge_rejects_exact_beyond_size_limit():
    x = np.zeros((probes.EXACT_MAX_N + 1, 1))
    with pytest.raises(ValueError, match="nystrom"):
        probes.kernel_ridge_r2(x, x, x[:2], x[:2])
    with pytest.raises(ValueError, match="approx"):
        probes.kernel_ridge_r2(x[:30], x[:30], x[:2], x[:2], approx="fourier")


def test_nystrom_approximates_exact_probe():
    data = regression_data()
    data = (data[0], data[1][:, :2], data[2], data[3][:, :2])
    r2, _ = probes.kernel_ridge_r2(*data)
    r2_full_rank, _ = probes.kernel_ridge_r2(*data, approx="nystrom", rank=N_TRAIN)
    r2_low_rank, _ = probes.kernel_ridge_r2(*data, approx="nystrom", rank=100)
    assert abs(r2_full_rank - r2) < 1e-3
    assert abs(r2_low_rank - r2) < 0.05


def test_probes_leave_global_x64_flag_alone():
    before = jax.config.jax_enable_x64
    probes.linear_r2(*regression_data())
    assert jax.config.jax_enable_x64 == before
    assert jnp.zeros(1).dtype == (jnp.float64 if before else jnp.float32)


# ---------------------------------------------------------------- MLP


def test_mlp_r2_fits_smooth_target_deterministically():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 3)).astype(np.float32)
    y = np.sin(x[:, :2]) + 0.5 * x[:, 2:] ** 2
    kwargs = {"key": jax.random.key(0), "hidden": (64, 64), "steps": 1500}
    r2 = probes.mlp_r2(x[:1000], y[:1000], x[1000:], y[1000:], **kwargs)
    assert r2 > 0.95
    assert probes.mlp_r2(x[:1000], y[:1000], x[1000:], y[1000:], **kwargs) == r2


def test_mlp_regressor_r2_matches_sklearn_mlp_regressor():
    """The original's --mlp-eval probe: mean test R² over three seeds within 0.02 of scikit-learn's."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 5)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], np.tanh(x[:, 3] - x[:, 4])], axis=1)
    train, test = slice(0, 1000), slice(1000, None)
    ours = [probes.mlp_regressor_r2(x[train], y[train], x[test], y[test], key=jax.random.key(s)) for s in range(3)]
    theirs = [
        MLPRegressor(max_iter=1000, random_state=s).fit(x[train], y[train]).score(x[test], y[test]) for s in range(3)
    ]
    assert np.mean(ours) == pytest.approx(np.mean(theirs), abs=0.02)
    assert np.mean(ours) < 0.995  # the target is not trivially fit: the comparison can fail
    again = probes.mlp_regressor_r2(x[train], y[train], x[test], y[test], key=jax.random.key(0))
    assert again == ours[0]


def test_mlp_regressors_per_column_fit_together_equal_one_fit_each():
    """Yao et al. fit one MLPRegressor per latent: the vmapped fits equal one `mlp_regressor_r2`
    per column (and per stacked problem) with the documented keys."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 300, 2)).astype(np.float32)
    y = np.stack([np.sin(x[..., 0]), x[..., 0] * x[..., 1], np.tanh(x[..., 1])], axis=-1)
    key = jax.random.key(3)
    got = probes.mlp_regressor_r2_columns(x[:, :250], y[:, :250], x[:, 250:], y[:, 250:], key=key, max_iter=50)
    keys = jax.random.split(key, 6)
    want = [
        [
            probes.mlp_regressor_r2(
                x[b, :250], y[b, :250, j], x[b, 250:], y[b, 250:, j], key=keys[3 * b + j], max_iter=50
            )
            for j in range(3)
        ]
        for b in range(2)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.ptp(want) > 0.1
    single = probes.mlp_regressor_r2_columns(x[0, :250], y[0, :250], x[0, 250:], y[0, 250:], key=key, max_iter=50)
    np.testing.assert_allclose(
        single,
        [
            probes.mlp_regressor_r2(x[0, :250], y[0, :250, j], x[0, 250:], y[0, 250:, j], key=k, max_iter=50)
            for j, k in enumerate(jax.random.split(key, 3))
        ],
        rtol=1e-4,
        atol=1e-5,
    )


def test_mlp_accuracy_on_separable_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 2)).astype(np.float32)
    labels = np.column_stack([(x**2).sum(1) > 1.4, np.digitize(x[:, 0], [-0.5, 0.5])])
    acc = probes.mlp_accuracy(
        x[:1000], labels[:1000], x[1000:], labels[1000:], key=jax.random.key(0), hidden=(64, 64), steps=1500
    )
    assert acc > 0.95


# ---------------------------------------------------------------- logistic


def classification_data(n_classes, seed=0):
    """Overlapping Gaussian classes in 4-D, so accuracy is well below 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=600)
    x = rng.normal(size=(600, 4)) + rng.normal(size=(n_classes, 4))[labels]
    return x[:400], labels[:400], x[400:], labels[400:]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_logistic_accuracy_matches_sklearn(n_classes):
    x, y, x_test, y_test = classification_data(n_classes)
    expected = LogisticRegression().fit(x, y).score(x_test, y_test)
    assert 0.5 < expected < 0.95
    assert abs(probes.logistic_accuracy(x, y, x_test, y_test) - expected) <= 0.01


@pytest.mark.parametrize("n_classes", [2, 4])
def test_logistic_fit_reaches_sklearn_optimum(n_classes):
    x, y, x_test, _ = classification_data(n_classes, seed=1)
    sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x, y)
    with jax.enable_x64(True):
        w = classification._fit_logistic(jnp.asarray(x), jnp.asarray(y), 0.5, 1e-9, n_classes=n_classes, max_iter=1000)
        proba = jax.nn.softmax(classification._logits(w, jnp.asarray(x_test), n_classes))
    np.testing.assert_allclose(proba, sk.predict_proba(x_test), atol=1e-5)


def test_logistic_accuracy_averages_label_columns():
    x, y4, x_test, y4_test = classification_data(4)
    y2, y2_test = y4 // 2, y4_test // 2
    both = probes.logistic_accuracy(x, np.column_stack([y2, y4]), x_test, np.column_stack([y2_test, y4_test]))
    singles = [probes.logistic_accuracy(x, y, x_test, y_test) for y, y_test in ((y2, y2_test), (y4, y4_test))]
    assert both == pytest.approx(np.mean(singles))
    with pytest.raises(ValueError, match="single class"):
        probes.logistic_accuracy(x, np.zeros(len(x), int), x_test, y2_test)
