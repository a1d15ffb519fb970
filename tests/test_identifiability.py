"""MCC, DCI and dependence ceilings against independent NumPy/SciPy/scikit-learn oracles."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy, rankdata, spearmanr
from sklearn.linear_model import Lasso, LassoCV, LinearRegression
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from mmident_jax import identifiability as I
from mmident_jax import probes


@pytest.fixture(autouse=True)
def x64():
    """float64 for the comparisons with the oracles (thread-local; the global flag is untouched)."""
    with jax.enable_x64(True):
        yield


# ---------------------------------------------------------------- oracles (the literature's code paths)


def oracle_corr(x, y, method):
    d = x.shape[1]
    if method == "pearson":
        return np.corrcoef(x, y, rowvar=False)[:d, d:]
    rho = spearmanr(x, y)[0]
    if np.ndim(rho) == 0:  # two columns in all: scipy returns the one coefficient
        rho = np.array([[1.0, rho], [rho, 1.0]])
    return rho[:d, d:]


def oracle_mcc(x, y, method):
    """cl-ica / icebeem ``mean_corr_coef``: |corr|, linear_sum_assignment(-|corr|), mean."""
    cc = np.abs(oracle_corr(x, y, method))
    rows, cols = linear_sum_assignment(-cc)
    return cc[rows, cols].mean(), rows, cols


def oracle_mcc_out(x, y, x_test, y_test, method):
    """icebeem's ``mean_corr_coef_out_of_sample``."""
    rows, cols = linear_sum_assignment(-np.abs(oracle_corr(x, y, method)))
    return np.abs(oracle_corr(x_test, y_test, method))[rows, cols].mean(), rows, cols


def random_data(seed, n, d_latent, d_code, ties=False):
    """Latents and noisy, partly mixed, monotonically distorted codes; optional ties (rounded values)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d_latent))
    mix = rng.normal(size=(d_latent, d_code)) * 0.3 + np.eye(d_latent, d_code)[:, rng.permutation(d_code)]
    h = np.tanh(z @ mix) + 0.2 * rng.normal(size=(n, d_code))
    if ties:
        z, h = np.round(z, 1), np.round(h, 1)
    return z, h


# Every MCC test uses n = 500 samples per set and these shapes, so that the few compiled
# programs are shared (compilation, not computation, is what costs time here).
N = 500
SHAPES = [(5, 5), (3, 6), (6, 3), (1, 1)]


# ---------------------------------------------------------------- correlation, ranks, assignment


@pytest.mark.parametrize("ties", [False, True])
def test_ranks_equal_scipy_rankdata_average(ties):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(N, 5)).astype(float) if ties else rng.normal(size=(N, 5))
    np.testing.assert_array_equal(np.asarray(I.ranks(x)), rankdata(x, axis=0, method="average"))


@pytest.mark.parametrize("shape", SHAPES + [(1, 6)])
def test_assignment_matches_scipy_linear_sum_assignment(shape):
    for seed in range(5):
        gain = np.random.default_rng(seed).random(shape)
        rows, cols = (np.asarray(a) for a in I.assignment(gain))
        sp_rows, sp_cols = linear_sum_assignment(-gain)
        assert len(rows) == min(shape) and len(set(rows)) == len(set(cols)) == min(shape)
        assert gain[rows, cols].sum() == pytest.approx(gain[sp_rows, sp_cols].sum(), rel=1e-12)
        np.testing.assert_array_equal(rows, sp_rows)  # continuous random gains: the optimum is unique
        np.testing.assert_array_equal(cols, sp_cols)


# ---------------------------------------------------------------- MCC against the oracle


@pytest.mark.parametrize("method", I.METHODS)
@pytest.mark.parametrize("shape", SHAPES)
def test_mcc_in_sample_equals_oracle(method, shape):
    for ties in (False, True):
        z, h = random_data(2, N, *shape, ties=ties)
        np.testing.assert_allclose(
            np.asarray(I.correlation(z, h, method)), oracle_corr(z, h, method), rtol=0, atol=1e-12
        )
        m = I.mcc(z, h, method)
        score, rows, cols = oracle_mcc(z, h, method)
        assert float(m.mcc) == pytest.approx(score, abs=1e-6)
        assert float(m.mcc) == pytest.approx(float(np.mean(np.abs(np.asarray(m.matched)))), abs=1e-15)
        np.testing.assert_array_equal(np.asarray(m.latent_index), rows)
        np.testing.assert_array_equal(np.asarray(m.code_index), cols)
        np.testing.assert_allclose(np.asarray(m.matched), oracle_corr(z, h, method)[rows, cols], atol=1e-10)


@pytest.mark.parametrize("method", I.METHODS)
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_mcc_out_of_sample_equals_icebeem_oracle(method, shape):
    z, h = random_data(3, 2 * N, *shape)
    m = I.mcc_out_of_sample(z[:N], h[:N], z[N:], h[N:], method)
    score, rows, cols = oracle_mcc_out(z[:N], h[:N], z[N:], h[N:], method)
    assert float(m.mcc) == pytest.approx(score, abs=1e-6)
    np.testing.assert_array_equal(np.asarray(m.code_index), cols)
    in_sample = oracle_mcc(z[N:], h[N:], method)[0]
    assert float(m.mcc) <= in_sample + 1e-12  # the test set's own matching is the best one on test


def test_out_of_sample_keeps_the_validation_matching_when_test_prefers_another():
    """Validation pairs latent i with code i; on test code i tracks latent 4 - i: out << in."""
    rng = np.random.default_rng(4)
    z = rng.normal(size=(2 * N, 5))
    h = z + 0.3 * rng.normal(size=z.shape)
    h[N:] = h[N:, ::-1]
    out = I.mcc_out_of_sample(z[:N], h[:N], z[N:], h[N:])
    inside = I.mcc(z[N:], h[N:])
    assert np.asarray(out.code_index).tolist() == [0, 1, 2, 3, 4]
    assert np.asarray(inside.code_index).tolist() == [4, 3, 2, 1, 0]
    assert float(out.mcc) < 0.35 < 0.9 < float(inside.mcc)  # only the middle pair survives the swap
    assert float(out.mcc) == pytest.approx(oracle_mcc_out(z[:N], h[:N], z[N:], h[N:], "pearson")[0], abs=1e-6)


# ---------------------------------------------------------------- known answers


@pytest.mark.parametrize("method", I.METHODS)
def test_permuted_sign_flipped_rescaled_latents_have_mcc_one(method):
    z = np.random.default_rng(5).uniform(-1, 1, size=(N, 5))
    perm = [3, 0, 4, 1, 2]
    scale = np.array([2.0, -0.5, 7.0, -1.0, 0.01])
    h = z[:, perm] * scale + np.arange(5)
    m = I.mcc(z, h, method)
    assert float(m.mcc) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(np.asarray(m.code_index), np.argsort(perm))
    np.testing.assert_allclose(np.asarray(m.matched), np.sign(scale[np.argsort(perm)]), atol=1e-12)


def test_monotone_nonlinearity_spearman_one_pearson_below():
    z = np.random.default_rng(6).normal(size=(N, 5))
    h = np.column_stack([np.exp(2 * z[:, 1]), z[:, 2] ** 3, -np.tanh(3 * z[:, 0]), z[:, 4], np.exp(z[:, 3])])
    assert float(I.mcc(z, h, "spearman").mcc) == pytest.approx(1.0, abs=1e-12)
    assert float(I.mcc(z, h, "pearson").mcc) < 0.9


def test_rotation_mixing_two_latents_lowers_mcc_but_keeps_block_r2_one():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(N, 5))
    angle = np.pi / 4
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    h = np.column_stack([z[:, :2] @ rot, z[:, 2:]])  # invertible: the block (z0, z1) is recoverable
    m = I.mcc(z, h)
    assert float(m.mcc) == pytest.approx((2 * np.cos(angle) + 3) / 5, abs=0.03)  # two pairs at cos 45°
    assert float(m.mcc) < 0.92
    half = N // 2
    assert probes.linear_r2(h[:half], z[:half, :2], h[half:], z[half:, :2]) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", I.METHODS)
def test_constant_code_column_gives_zero_correlation_and_finite_mcc(method):
    z = np.random.default_rng(8).normal(size=(N, 5))
    h = z[:, [1, 0, 2, 4, 3]] * 3
    h[:, 2] = 0.1  # its float mean is not exactly 0.1
    corr = np.asarray(I.correlation(z, h, method))
    np.testing.assert_array_equal(corr[:, 2], 0.0)
    m = I.mcc(z, h, method)
    assert math.isfinite(float(m.mcc))
    assert float(m.mcc) == pytest.approx(4 / 5, abs=1e-12)  # z2 can only match the constant code
    assert np.asarray(m.code_index).tolist() == [1, 0, 2, 4, 3]


def test_one_dimension():
    z = np.random.default_rng(9).normal(size=(N, 1))
    assert float(I.mcc(z, -5 * z).mcc) == pytest.approx(1.0, abs=1e-12)
    assert float(I.mcc(z[:, 0], z[:, 0] ** 3, "spearman").mcc) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("method", I.METHODS)
def test_nan_input_gives_nan_and_terminates(method):
    z, h = random_data(10, N, 5, 5)
    z[5, 1] = np.nan
    assert np.isnan(np.asarray(I.correlation(z, h, method))[1]).all()
    m = I.mcc(z, h, method)
    assert math.isnan(float(m.mcc)) and len(np.asarray(m.code_index)) == 5


def test_mcc_jits_vmaps_over_runs_and_works_in_float32():
    data = [random_data(s, 2 * N, 5, 5) for s in range(3)]
    zs, hs = (jnp.asarray(np.stack(a)) for a in zip(*data))
    out = jax.jit(jax.vmap(lambda *a: I.mcc_out_of_sample(*a, method="spearman")))(
        zs[:, :N], hs[:, :N], zs[:, N:], hs[:, N:]
    )
    for i, (z, h) in enumerate(data):
        score, _, cols = oracle_mcc_out(z[:N], h[:N], z[N:], h[N:], "spearman")
        assert float(out.mcc[i]) == pytest.approx(score, abs=1e-6)
        np.testing.assert_array_equal(np.asarray(out.code_index[i]), cols)
    with jax.enable_x64(False):
        z, h = data[0]
        m = I.mcc(z[:N].astype(np.float32), h[:N].astype(np.float32))
        assert m.mcc.dtype == jnp.float32
        assert float(m.mcc) == pytest.approx(oracle_mcc(z[:N], h[:N], "pearson")[0], abs=1e-5)


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="kendall"):
        I.mcc(np.zeros((5, 2)), np.zeros((5, 2)), "kendall")


# ---------------------------------------------------------------- DCI from importance matrices


def oracle_dci(r, weighted=False):
    """Eastwood & Williams' formulas with scipy.stats.entropy, for matrices without zero rows/columns."""
    n_codes, n_factors = r.shape
    d_i = 1 - entropy(r.T + 1e-300, base=n_factors)
    rho = r.sum(1) / r.sum()
    c_j = 1 - entropy(r + 1e-300, base=n_codes)
    c = (r.sum(0) / r.sum()) @ c_j if weighted else c_j.mean()
    return rho @ d_i, c, d_i, c_j


@pytest.mark.parametrize("shape", [(5, 5), (3, 8), (8, 3)])
@pytest.mark.parametrize("weighted", [False, True])
def test_dci_from_importance_equals_entropy_formula(shape, weighted):
    for seed in range(3):
        r = np.random.default_rng(seed).random(shape) ** 3
        s = I.dci_from_importance(r, weighted)
        d, c, d_i, c_j = oracle_dci(r, weighted)
        assert float(s.disentanglement) == pytest.approx(d, abs=1e-12)
        assert float(s.completeness) == pytest.approx(c, abs=1e-12)
        np.testing.assert_allclose(np.asarray(s.code_disentanglement), d_i, atol=1e-12)
        np.testing.assert_allclose(np.asarray(s.factor_completeness), c_j, atol=1e-12)


def test_dci_by_hand():
    # code 0 splits evenly over both factors (D_0 = 0), code 1 serves factor 1 alone (D_1 = 1);
    # weights 2/3, 1/3. Factor 0 is in code 0 only (C_0 = 1), factor 1 evenly in both (C_1 = 0).
    s = I.dci_from_importance(np.array([[1.0, 1.0], [0.0, 1.0]]))
    assert float(s.disentanglement) == pytest.approx(1 / 3, abs=1e-12)
    assert float(s.completeness) == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(np.asarray(s.code_weight), [2 / 3, 1 / 3], atol=1e-12)
    weighted = I.dci_from_importance(np.array([[1.0, 1.0], [0.0, 1.0]]), weighted_completeness=True)
    assert float(weighted.completeness) == pytest.approx(1 / 3, abs=1e-12)  # factor shares 1/3, 2/3


def test_dci_perfectly_disentangled_and_one_code_for_all():
    perm_scaled = np.zeros((4, 4))
    perm_scaled[[0, 1, 2, 3], [2, 0, 3, 1]] = [0.5, 3.0, 1.0, 0.01]
    s = I.dci_from_importance(perm_scaled)
    assert float(s.disentanglement) == pytest.approx(1.0, abs=1e-12)
    assert float(s.completeness) == pytest.approx(1.0, abs=1e-12)
    one = np.zeros((4, 4))
    one[0] = 1.0  # one code carries every factor; the others nothing
    s = I.dci_from_importance(one)
    assert float(s.disentanglement) == pytest.approx(0.0, abs=1e-12)
    assert float(s.completeness) == pytest.approx(1.0, abs=1e-12)  # each factor sits in a single code
    np.testing.assert_allclose(np.asarray(s.code_weight), [1, 0, 0, 0])
    spread = np.ones((4, 4))  # every code carries every factor
    s = I.dci_from_importance(spread)
    assert float(s.disentanglement) == pytest.approx(0.0, abs=1e-12)
    assert float(s.completeness) == pytest.approx(0.0, abs=1e-12)


def test_dci_zero_rows_columns_and_degenerate_sizes():
    r = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # code 1 empty, factor 2 unexplained
    s = I.dci_from_importance(r)
    np.testing.assert_allclose(np.asarray(s.code_weight), [2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(np.asarray(s.factor_completeness), [1, 1, 0])
    assert float(s.disentanglement) == pytest.approx(1.0) and float(s.completeness) == pytest.approx(2 / 3)
    zero = I.dci_from_importance(np.zeros((3, 2)))
    assert float(zero.disentanglement) == 0.0 and float(zero.completeness) == 0.0
    one_factor = I.dci_from_importance(np.array([[0.2], [0.2]]))  # K = 1: every code is disentangled
    assert float(one_factor.disentanglement) == 1.0 and float(one_factor.completeness) == pytest.approx(0.0)
    one_code = I.dci_from_importance(np.array([[0.3, 0.3]]))  # D = 1 code: every factor is complete
    assert float(one_code.completeness) == 1.0 and float(one_code.disentanglement) == pytest.approx(0.0)


# ---------------------------------------------------------------- Lasso against scikit-learn


def lasso_problem(seed=11, n=300, d=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 1] += 0.8 * x[:, 0]  # correlated inputs: coordinate descent needs several sweeps
    y = x @ np.array([1.0, 0.5, 0.0, 0.0, -0.3, 0.05])[:d] + 0.5 * rng.normal(size=n) + 2.0
    return x, y


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.3, 5.0])
def test_lasso_equals_sklearn_lasso(alpha):
    x, y = lasso_problem()
    w, b = I.lasso(x, y, alpha)
    ref = Lasso(alpha=alpha, tol=1e-14, max_iter=1_000_000).fit(x, y)
    np.testing.assert_allclose(np.asarray(w), ref.coef_, atol=1e-8)
    assert float(b) == pytest.approx(ref.intercept_, abs=1e-8)


def test_lasso_many_targets_with_their_own_penalties():
    x, y = lasso_problem()
    ys = np.column_stack([y, -y + x[:, 3]])
    w, b = I.lasso(x, ys, np.array([0.05, 0.2]))
    for k, alpha in enumerate((0.05, 0.2)):
        ref = Lasso(alpha=alpha, tol=1e-14, max_iter=1_000_000).fit(x, ys[:, k])
        np.testing.assert_allclose(np.asarray(w[k]), ref.coef_, atol=1e-8)


def test_lasso_cv_equals_sklearn_lasso_cv():
    x, y = lasso_problem()
    ys = np.column_stack([y, np.sin(x[:, 2]) + 0.3 * x[:, 5]])
    fit = I.lasso_cv(x, ys)
    for k in range(2):
        ref = LassoCV(cv=5, tol=1e-14, max_iter=1_000_000).fit(x, ys[:, k])
        np.testing.assert_allclose(np.asarray(fit.alphas[k]), ref.alphas_, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(fit.mse_path[k]), ref.mse_path_.mean(axis=1), rtol=1e-7)
        assert float(fit.alpha[k]) == pytest.approx(ref.alpha_, rel=1e-12)
        np.testing.assert_allclose(np.asarray(fit.coef[k]), ref.coef_, atol=1e-8)
        assert float(fit.intercept[k]) == pytest.approx(ref.intercept_, abs=1e-8)


def test_lasso_constant_column_and_constant_target():
    x, y = lasso_problem()
    x[:, 2] = 4.0
    w, _ = I.lasso(x, y, 0.01)
    assert float(w[2]) == 0.0 and np.all(np.isfinite(np.asarray(w)))
    fit = I.lasso_cv(x, np.column_stack([np.full(len(x), 1.5), y]))
    np.testing.assert_array_equal(np.asarray(fit.coef[0]), 0.0)
    assert float(fit.intercept[0]) == pytest.approx(1.5)
    assert float(fit.coef[1, 2]) == 0.0 and abs(float(fit.coef[1, 0])) > 0.5


# ---------------------------------------------------------------- DCI end to end


def sklearn_dci(h_train, z_train, h_test, z_test):
    """The same pipeline from scikit-learn parts: StandardScaler, LassoCV per factor, test R²."""
    hs, zs = StandardScaler().fit(h_train), StandardScaler().fit(z_train)
    x, x_test, y = hs.transform(h_train), hs.transform(h_test), zs.transform(z_train)
    fits = [LassoCV(cv=5, tol=1e-12, max_iter=1_000_000).fit(x, y[:, j]) for j in range(y.shape[1])]
    r = np.abs(np.array([f.coef_ for f in fits])).T
    pred = zs.inverse_transform(np.column_stack([f.predict(x_test) for f in fits]))
    r2 = [r2_score(z_test[:, j], pred[:, j]) for j in range(z_test.shape[1])]
    d, c, _, _ = oracle_dci(r)
    return d, c, float(np.mean(r2)), r


def test_dci_equals_sklearn_pipeline():
    rng = np.random.default_rng(12)
    z = rng.normal(size=(800, 4))
    h = np.tanh(z @ (np.eye(4) + 0.3 * rng.normal(size=(4, 4)))) + 0.1 * rng.normal(size=(800, 4))
    ours = I.dci(h[:500], z[:500], h[500:], z[500:])
    d, c, i, r = sklearn_dci(h[:500], z[:500], h[500:], z[500:])
    np.testing.assert_allclose(ours.importance, r, atol=1e-7)
    assert ours.disentanglement == pytest.approx(d, abs=1e-6)
    assert ours.completeness == pytest.approx(c, abs=1e-6)
    assert ours.informativeness == pytest.approx(i, abs=1e-6)
    assert 0.05 < d < 0.95 and 0.05 < c < 0.95  # a partly mixed code: neither extreme


def test_dci_of_permuted_codes_is_one_and_of_rotated_codes_is_low():
    rng = np.random.default_rng(13)
    z = rng.normal(size=(800, 4))
    h = z[:, [1, 2, 0, 3]] * [2.0, -1.0, 0.3, 5.0] + 0.05 * rng.normal(size=(800, 4))
    r = I.dci(h[:500], z[:500], h[500:], z[500:])
    assert r.disentanglement > 0.97 and r.completeness > 0.97 and r.informativeness > 0.99
    np.testing.assert_array_equal(r.importance.argmax(axis=1), [1, 2, 0, 3])
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    rotated = I.dci(z[:500] @ q, z[:500], z[500:] @ q, z[500:])
    assert rotated.informativeness > 0.99  # all information is there ...
    assert rotated.disentanglement < 0.6 and rotated.completeness < 0.6  # ... but spread over codes
    noise = I.dci(rng.normal(size=(500, 4)), z[:500], rng.normal(size=(300, 4)), z[500:])
    assert noise.informativeness < 0.05
    assert r.converged and rotated.converged and noise.converged


def test_dci_reports_unconverged_fits_of_nearly_collinear_codes():
    rng = np.random.default_rng(17)
    z = rng.normal(size=(800, 4))
    h = z @ rng.normal(size=(4, 4))
    h[:, 1] = h[:, 0] + 1e-4 * rng.normal(size=800)  # a near-duplicate code: a flat valley
    r = I.dci(h[:500], z[:500], h[500:], z[500:])
    assert not r.converged
    assert r.informativeness > 0.6 and np.isfinite(r.disentanglement)


# ---------------------------------------------------------------- dependence ceilings


def test_linear_ceilings_of_independent_blocks_are_near_zero():
    rng = np.random.default_rng(14)
    c, s, m = rng.normal(size=(3, 2000, 3))
    ceilings = I.dependence_ceilings(c[:1000], [s[:1000], m[:1000]], c[1000:], [s[1000:], m[1000:]])
    assert all(abs(v) < 0.05 for v in ceilings), ceilings


def test_linear_ceiling_of_causal_dependence_is_the_explained_share():
    rng = np.random.default_rng(15)
    n, sigma = 2000, 0.8
    c = rng.normal(size=(n, 3))
    b = np.array([[1.0, 0.0, 0.5], [0.0, 0.5, 0.0], [0.3, 0.0, 1.0]])
    s = c @ b.T + sigma * rng.normal(size=(n, 3))
    [ceiling] = I.dependence_ceilings(c[:1000], [s[:1000]], c[1000:], [s[1000:]])
    direct = LinearRegression().fit(c[:1000], s[:1000]).score(c[1000:], s[1000:])
    assert ceiling == pytest.approx(direct, abs=1e-10)  # the probe fit on c itself
    explained = (b**2).sum(axis=1)  # Var(B c) per style dimension, Var(c) = I
    theory = np.mean(explained / (explained + sigma**2))
    assert ceiling == pytest.approx(theory, abs=0.03)
    assert 0.4 < theory < 0.7  # a ceiling well inside (0, 1)


def test_kernel_ceiling_sees_nonlinear_dependence_and_not_independence():
    rng = np.random.default_rng(16)
    n, sigma = 800, 0.3
    c, m, noise = rng.normal(size=(3, n, 1))
    s = np.cos(2 * c) + sigma * noise  # uncorrelated with c, yet determined by it
    blocks = [s, m]
    lin = I.dependence_ceilings(c[:400], [b[:400] for b in blocks], c[400:], [b[400:] for b in blocks])
    ker = I.dependence_ceilings(c[:400], [b[:400] for b in blocks], c[400:], [b[400:] for b in blocks], probe="kernel")
    var_signal = 0.5 * (1 + np.exp(-8)) - np.exp(-4)  # Var(cos 2c), c ~ N(0, 1)
    assert all(abs(v) < 0.05 for v in lin), lin
    assert ker[0] == pytest.approx(var_signal / (var_signal + sigma**2), abs=0.05)
    assert abs(ker[1]) < 0.05


def test_ceiling_unknown_probe_raises():
    with pytest.raises(ValueError, match="mlp"):
        I.dependence_ceilings(
            np.zeros((10, 1)), [np.zeros((10, 1))], np.zeros((10, 1)), [np.zeros((10, 1))], probe="mlp"
        )


@pytest.mark.parametrize(
    "r2, ceiling, expected",
    [
        (0.75, 0.5, 0.5),
        (1.0, 0.5, 1.0),
        (0.5, 0.5, 0.0),
        (0.3, 0.5, 0.0),  # below the ceiling: clipped to 0
        (0.4, 0.0, 0.4),  # independent blocks: the R² itself
        (0.4, -0.02, 0.4),  # a negative ceiling counts as 0
        (1.0000001, 0.2, 1.0),  # clipped to 1
    ],
)
def test_normalized_score(r2, ceiling, expected):
    assert I.normalized_score(r2, ceiling) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("r2, ceiling", [(0.9, 1.0), (0.9, 1.2), (float("nan"), 0.3), (0.4, float("nan"))])
def test_normalized_score_undefined_without_headroom_or_numbers(r2, ceiling):
    assert math.isnan(I.normalized_score(r2, ceiling))
