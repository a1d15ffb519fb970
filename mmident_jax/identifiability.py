"""Identifiability metrics for any codes: MCC, DCI and dependence ceilings (docs/metrics.md).

- MCC, the mean correlation coefficient: Pearson or Spearman correlation between
  every latent and every code dimension, latents matched one-to-one to codes by the
  assignment that maximises the total |correlation|, score = mean matched
  |correlation|. `mcc` matches and scores on the same samples (as cl-ica does),
  `mcc_out_of_sample` matches on validation and scores that matching on test (as
  icebeem's ``mean_corr_coef_out_of_sample``). Both are jittable and vmap over a
  leading batch axis (seeds, runs).
- DCI (Eastwood & Williams, 2018) for continuous factors: an importance matrix
  (codes x factors) of |Lasso coefficients|, the penalty chosen per factor by K-fold
  cross-validation like scikit-learn's ``LassoCV``; disentanglement, completeness
  and informativeness (held-out R²) from it. The Lasso is coordinate descent on
  the Gram matrix in JAX, vmapped over folds, factors and the penalty grid.
- Dependence ceilings: how well the *true* content block predicts each latent block
  with a given probe, and the share of the remaining headroom that codes recover
  (`normalized_score`).

The pure pieces (`correlation`, `mcc*`, `lasso`, `lasso_cv`, `dci_from_importance`)
follow their inputs' dtype; the host-level ones (`dci`, `dependence_ceilings`) run
in float64 under the thread-local ``jax.enable_x64(True)`` context, like the probes,
and never change the global flag. scipy and scikit-learn are only the tests' oracles.

Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(500, 3))
    >>> h = np.column_stack([-2 * z[:, 2], np.exp(z[:, 0]), z[:, 1] + 5])
    >>> m = mcc(z, h, method="spearman")
    >>> round(float(m.mcc), 6), m.code_index.tolist()
    (1.0, [1, 2, 0])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from mmident_jax import probes as P

METHODS = ("pearson", "spearman")
LASSO_TOL = 1e-12  # coordinate descent stops at a duality gap <= tol * Var(y) (scikit-learn's default: 1e-4)
LASSO_MAX_SWEEPS = 1000  # scikit-learn's default max_iter
DCI_FOLDS = 5  # LassoCV's default cv
DCI_ALPHAS = 100  # LassoCV's default grid: 100 penalties from alpha_max down to eps * alpha_max
DCI_EPS = 1e-3


def _float(x) -> jax.Array:
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _as_2d(x) -> jax.Array:
    x = _float(x)
    return x[:, None] if x.ndim == 1 else x


# ---------------------------------------------------------------- correlation and MCC


@jax.jit
def ranks(x) -> jax.Array:
    """Column-wise ranks 1..n, ties given their average rank (scipy's ``rankdata(method="average")``).

    One sort of (value, position) pairs per column; a run of equal values from sorted
    position p to q gets rank (p + q) / 2 + 1 (NaN stays NaN).

    >>> ranks(np.array([[3.0], [1.0], [3.0], [2.0]]))[:, 0].tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    x = _as_2d(x).T  # (d, n): sort along the last axis
    n = x.shape[1]
    position = lax.broadcasted_iota(jnp.int32, x.shape, 1)
    values, order = lax.sort((x, position), dimension=1, num_keys=1)
    new = values[:, 1:] != values[:, :-1]
    edge = jnp.ones((len(x), 1), bool)
    first = lax.cummax(jnp.where(jnp.concatenate([edge, new], axis=1), position, 0), axis=1)
    last = lax.cummin(jnp.where(jnp.concatenate([new, edge], axis=1), position, n), axis=1, reverse=True)
    rows = lax.broadcasted_iota(jnp.int32, x.shape, 0)
    r = jnp.zeros_like(x).at[rows, order].set((first + last + 2).astype(x.dtype) / 2)
    return jnp.where(jnp.isnan(x), jnp.nan, r).T


def _unit_columns(x):
    """Centred columns scaled to unit norm; constant columns become 0 (correlation 0, never NaN)."""
    centred = x - x.mean(axis=0)
    norm = jnp.sqrt(jnp.sum(centred**2, axis=0))
    constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
    return jnp.where(constant, 0, centred / jnp.where(constant, 1, norm))


@functools.partial(jax.jit, static_argnames="method")
def correlation(latents, codes, method: str = "pearson") -> jax.Array:
    """(d_latent, d_code) Pearson or Spearman (Pearson of average ranks) correlations.

    A constant column has correlation 0 with everything (numpy and scipy give NaN).

    >>> z = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> np.asarray(correlation(z, z[:, ::-1] ** 3), float).round(4).tolist()
    [[0.0, 0.9177], [0.0, 0.0]]
    >>> np.asarray(correlation(z, z[:, ::-1] ** 3, method="spearman"), float).round(4).tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    latents, codes = _as_2d(latents), _as_2d(codes)
    if method == "spearman":
        latents, codes = ranks(latents), ranks(codes)
    corr = jnp.matmul(_unit_columns(latents).T, _unit_columns(codes), precision=lax.Precision.HIGHEST)
    return jnp.clip(corr, -1, 1)


@jax.jit
def assignment(gain) -> tuple[jax.Array, jax.Array]:
    """Rows and columns of the one-to-one matching with the largest total ``gain``, by row.

    min(rows, cols) pairs (the Hungarian algorithm on ``-gain``; NaN counts as 0).

    >>> rows, cols = assignment(jnp.array([[0.1, 0.9, 0.2], [0.8, 0.7, 0.1]]))
    >>> rows.tolist(), cols.tolist()
    ([0, 1], [1, 0])
    """
    gain = jnp.asarray(gain)
    rows, cols = optax.assignment.hungarian_algorithm(-jnp.where(jnp.isnan(gain), 0, gain))
    order = jnp.argsort(rows)
    return rows[order], cols[order]


class Matching(NamedTuple):
    """An MCC and its matching: ``mcc`` = mean |``matched``| over k = min(d_latent, d_code) pairs.

    ``matched[i]`` is the (signed) correlation of latent ``latent_index[i]`` with code
    ``code_index[i]``, on the data that is scored; pairs are ordered by latent index.
    """

    mcc: jax.Array
    matched: jax.Array
    latent_index: jax.Array
    code_index: jax.Array


@jax.jit
def mcc_from_correlations(corr_match, corr_score=None) -> Matching:
    """MCC of a (d_latent, d_code) correlation matrix: match on |``corr_match``|, score ``corr_score``.

    ``corr_score`` defaults to ``corr_match`` (in-sample).

    >>> m = mcc_from_correlations(jnp.array([[0.2, -0.9], [0.7, 0.1]]))
    >>> round(float(m.mcc), 4), np.asarray(m.matched, float).round(4).tolist(), m.code_index.tolist()
    (0.8, [-0.9, 0.7], [1, 0])
    """
    corr_match = jnp.asarray(corr_match)
    corr_score = corr_match if corr_score is None else jnp.asarray(corr_score)
    rows, cols = assignment(jnp.abs(corr_match))
    matched = corr_score[rows, cols]
    return Matching(jnp.mean(jnp.abs(matched)), matched, rows, cols)


def mcc(latents, codes, method: str = "pearson") -> Matching:
    """In-sample MCC: latents matched to codes and scored on the same samples.

    ``latents`` (n, d_latent), ``codes`` (n, d_code); with d_latent != d_code the
    mean is over the min(d_latent, d_code) matched pairs (docs/metrics.md).

    >>> z = np.random.default_rng(0).normal(size=(200, 2))
    >>> m = mcc(z, z @ np.array([[1.0, 1.0], [-1.0, 1.0]]))  # a 45° rotation: no pair is clean
    >>> round(float(m.mcc), 2)
    0.71
    """
    corr = correlation(latents, codes, method)
    return mcc_from_correlations(corr, corr)  # one compiled program for in- and out-of-sample


def mcc_out_of_sample(latents_val, codes_val, latents_test, codes_test, method: str = "pearson") -> Matching:
    """Out-of-sample MCC: the matching is chosen on validation and scored on test.

    Spearman ranks each set on its own.

    >>> rng = np.random.default_rng(0)
    >>> z, noise = rng.normal(size=(2, 400, 3))
    >>> h = z[:, ::-1] + 0.5 * noise
    >>> m = mcc_out_of_sample(z[:200], h[:200], z[200:], h[200:])
    >>> m.code_index.tolist(), 0.8 < float(m.mcc) < 0.95
    ([2, 1, 0], True)
    """
    return mcc_from_correlations(
        correlation(latents_val, codes_val, method), correlation(latents_test, codes_test, method)
    )


# ---------------------------------------------------------------- Lasso


def _soft_threshold(x, t):
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0)


def _duality_gap(gram, xy, yy, alpha, w):
    """Duality gap of the Lasso at ``w`` (scikit-learn's, in units of 1/n): an upper bound on
    how far the objective is above its minimum."""
    grad = xy - gram @ w  # Xᵀ(y - Xw) / n
    residual = yy - 2 * w @ xy + w @ gram @ w  # ||y - Xw||² / n
    dual_norm = jnp.max(jnp.abs(grad), initial=0.0)
    const = jnp.where(dual_norm > alpha, alpha / jnp.where(dual_norm > 0, dual_norm, 1), 1.0)
    return 0.5 * residual * (1 + const**2) + alpha * jnp.sum(jnp.abs(w)) - const * (yy - w @ xy)


def _lasso_gram(gram, xy, yy, alpha, tol, max_sweeps):
    """Cyclic coordinate descent for min_w ½ (yy - 2 xy·w + wᵀ gram w) + alpha |w|₁.

    ``gram`` = XᵀX/n, ``xy`` = Xᵀy/n, ``yy`` = yᵀy/n of centred data (scikit-learn's
    Lasso objective). Sweeps until the duality gap is at most ``tol * yy`` (scikit-learn's
    criterion) or ``max_sweeps`` sweeps. Returns (w, sweeps).
    """
    diag = jnp.diagonal(gram)
    stop = tol * yy

    def coordinate(j, w):
        rho = xy[j] - gram[j] @ w + diag[j] * w[j]
        new = jnp.where(diag[j] > 0, _soft_threshold(rho, alpha) / jnp.where(diag[j] > 0, diag[j], 1), 0)
        return w.at[j].set(new)

    def sweep(state):
        w, _, count = state
        w = lax.fori_loop(0, len(xy), coordinate, w)
        return w, _duality_gap(gram, xy, yy, alpha, w), count + 1

    def running(state):
        return (state[1] > stop) & (state[2] < max_sweeps)

    w0 = jnp.zeros_like(xy)
    w, _, sweeps = lax.while_loop(running, sweep, (w0, _duality_gap(gram, xy, yy, alpha, w0), 0))
    return w, sweeps


@functools.partial(jax.jit, static_argnames="max_sweeps")
def lasso(x, y, alpha, *, tol: float = LASSO_TOL, max_sweeps: int = LASSO_MAX_SWEEPS):
    """scikit-learn's ``Lasso(alpha)``: min (1/2n) ||y - Xw - b||² + alpha |w|₁; returns (w, b).

    ``y`` (n,) gives w (d,); ``y`` (n, k) fits each column, w (k, d) and b (k,), with
    one ``alpha`` for all or one per column (shape (k,)).

    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> w, b = lasso(x, 2 * x[:, 0] + 1, 0.1)
    >>> np.asarray(w, float).round(2).tolist(), round(float(b), 2)
    ([1.92, 0.0, 0.0], 0.99)
    """
    w, b, _ = _lasso_fit(_float(x), _float(y), alpha, tol, max_sweeps)
    return w, b


def _lasso_fit(x, y, alpha, tol, max_sweeps):
    """`lasso` plus the sweeps each column took."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    n, hi = len(x), lax.Precision.HIGHEST
    gram = jnp.matmul(xc.T, xc, precision=hi) / n
    xy = jnp.matmul(xc.T, yc, precision=hi).T / n
    yy = jnp.sum(yc**2, axis=0) / n
    if y.ndim == 2:
        alpha = jnp.broadcast_to(jnp.asarray(alpha, x.dtype), (y.shape[1],))
        w, sweeps = jax.vmap(_lasso_gram, in_axes=(None, 0, 0, 0, None, None))(gram, xy, yy, alpha, tol, max_sweeps)
    else:
        w, sweeps = _lasso_gram(gram, xy, yy, jnp.asarray(alpha, x.dtype), tol, max_sweeps)
    return w, y_mean - w @ x_mean, sweeps


class LassoCV(NamedTuple):
    """`lasso_cv`'s fit: ``coef`` (k, d), ``intercept`` (k,), chosen ``alpha`` (k,), the grid
    ``alphas`` (k, A, largest first), the mean held-out MSE over folds ``mse_path`` (k, A), and
    the coordinate-descent ``sweeps`` (k,) of the final fits (``max_sweeps``: stopped unconverged)."""

    coef: jax.Array
    intercept: jax.Array
    alpha: jax.Array
    alphas: jax.Array
    mse_path: jax.Array
    sweeps: jax.Array


@functools.partial(jax.jit, static_argnames=("folds", "n_alphas", "eps", "max_sweeps"))
def lasso_cv(
    x,
    y,
    *,
    folds: int = DCI_FOLDS,
    n_alphas: int = DCI_ALPHAS,
    eps: float = DCI_EPS,
    tol: float = LASSO_TOL,
    max_sweeps: int = LASSO_MAX_SWEEPS,
) -> LassoCV:
    """Lasso per column of ``y`` with the penalty chosen like ``LassoCV(cv=folds)``.

    Per target column: the grid is ``n_alphas`` penalties geometrically from
    alpha_max = max|Xᵀy|/n (centred data: all coefficients zero) down to eps *
    alpha_max; each fold of ``folds`` unshuffled folds (scikit-learn's ``KFold``)
    fits the whole grid on the other folds (centred with their means) and scores the
    held-out MSE; the penalty with the smallest MSE averaged over folds (the largest
    on ties) is refit on all samples. Every (fold, column, penalty) problem is one
    element of a vmapped coordinate descent on its Gram matrix.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 4))
    >>> fit = lasso_cv(x, np.column_stack([x[:, 0], x[:, 1] - x[:, 2]]) + 0.1 * rng.normal(size=(200, 2)))
    >>> np.abs(fit.coef).round(1).tolist()
    [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]
    """
    x, y = _float(x), _as_2d(y)
    n = len(x)
    hold = np.zeros((folds, n), bool)
    for f, (_, va) in enumerate(P.kfold_splits(n, folds)):
        hold[f, va] = True
    fit_w = jnp.asarray(~hold, x.dtype)  # (F, n)
    hold_w = jnp.asarray(hold, x.dtype)
    hi = lax.Precision.HIGHEST

    # the grid, from all samples (LassoCV's _alpha_grid)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    alpha_max = jnp.max(jnp.abs(jnp.matmul(xc.T, yc, precision=hi)), axis=0) / n  # (k,)
    resolution = jnp.finfo(x.dtype).resolution
    ratios = jnp.asarray(np.geomspace(1.0, eps, n_alphas), x.dtype)
    alphas = jnp.where(alpha_max[:, None] <= resolution, resolution, alpha_max[:, None] * ratios)  # (k, A)

    def moments(weight, mx, my):
        """Gram, cross and y moments of the weighted rows, centred at (mx, my)."""
        xw, yw = x - mx, y - my
        count = weight.sum()
        gram = jnp.matmul(xw.T * weight, xw, precision=hi) / count
        return gram, jnp.matmul(xw.T * weight, yw, precision=hi).T / count, (weight @ yw**2) / count

    def one_fold(fw, hw):
        mx, my = (fw @ x) / fw.sum(), (fw @ y) / fw.sum()
        gram, xy, yy = moments(fw, mx, my)
        gram_h, xy_h, yy_h = moments(hw, mx, my)

        def one_column(xy_k, yy_k, alphas_k, xy_hk, yy_hk):
            w, _ = jax.vmap(_lasso_gram, in_axes=(None, None, None, 0, None, None))(
                gram, xy_k, yy_k, alphas_k, tol, max_sweeps
            )
            return yy_hk - 2 * w @ xy_hk + jnp.einsum("ad,de,ae->a", w, gram_h, w, precision=hi)

        return jax.vmap(one_column)(xy, yy, alphas, xy_h, yy_h)  # (k, A)

    mse = jnp.mean(jax.vmap(one_fold)(fit_w, hold_w), axis=0)  # (k, A)
    best = jnp.take_along_axis(alphas, jnp.argmin(mse, axis=1)[:, None], axis=1)[:, 0]
    coef, intercept, sweeps = _lasso_fit(x, y, best, tol, max_sweeps)
    return LassoCV(coef, intercept, best, alphas, mse, sweeps)


# ---------------------------------------------------------------- DCI


def _entropy(p, axis, base: int):
    """Entropy of the distributions along ``axis`` in log base ``base`` (0 log 0 = 0; base 1: 0)."""
    if base < 2:
        return jnp.zeros(p.sum(axis=axis).shape, p.dtype)
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1)), 0)
    return -jnp.sum(plogp, axis=axis) / jnp.log(base)


class ImportanceScores(NamedTuple):
    """Disentanglement and completeness of an importance matrix (see `dci_from_importance`)."""

    disentanglement: jax.Array
    completeness: jax.Array
    code_disentanglement: jax.Array
    code_weight: jax.Array
    factor_completeness: jax.Array


@functools.partial(jax.jit, static_argnames="weighted_completeness")
def dci_from_importance(importance, weighted_completeness: bool = False) -> ImportanceScores:
    """Disentanglement D and completeness C of a (D codes, K factors) importance matrix R >= 0.

    Per code i: D_i = 1 - H_K(P_i.), P_ij = R_ij / sum_k R_ik, weight rho_i =
    sum_j R_ij / sum_ij R_ij; D = sum_i rho_i D_i. Per factor j: C_j = 1 - H_D(P~_.j),
    P~_ij = R_ij / sum_k R_kj; C = mean_j C_j (the paper's uniform average), or
    weighted by each factor's share of the importance with ``weighted_completeness``
    (disentanglement_lib's variant). H_b is entropy in log base b (K = 1 or D = 1: 0).
    A code with no importance has weight 0 (and D_i = 0); a factor no code explains
    has C_j = 0; an all-zero R gives D = C = 0.

    >>> s = dci_from_importance(np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 0.0]]))
    >>> float(s.disentanglement), s.factor_completeness.tolist(), np.asarray(s.code_weight, float).round(4).tolist()
    (1.0, [1.0, 1.0], [0.6667, 0.3333, 0.0])
    >>> round(float(dci_from_importance(np.ones((2, 2))).disentanglement), 6)
    0.0
    """
    r = jnp.abs(_as_2d(importance))
    n_codes, n_factors = r.shape
    row, col, total = r.sum(axis=1), r.sum(axis=0), r.sum()
    p_code = r / jnp.where(row > 0, row, 1)[:, None]
    p_factor = r / jnp.where(col > 0, col, 1)[None, :]
    code_d = jnp.where(row > 0, 1 - _entropy(p_code, 1, n_factors), 0)
    factor_c = jnp.where(col > 0, 1 - _entropy(p_factor, 0, n_codes), 0)
    safe_total = jnp.where(total > 0, total, 1)
    rho = row / safe_total
    completeness = jnp.sum(col / safe_total * factor_c) if weighted_completeness else jnp.mean(factor_c)
    return ImportanceScores(jnp.sum(rho * code_d), completeness, code_d, rho, factor_c)


class DCI(NamedTuple):
    """`dci`'s result: the three scores, the (codes, factors) ``importance`` matrix, per-code
    ``code_disentanglement`` and ``code_weight``, per-factor ``factor_completeness`` and
    ``factor_informativeness`` (test R²), each factor's cross-validated ``alpha``, and whether
    every final Lasso fit ``converged`` within `LASSO_MAX_SWEEPS` sweeps."""

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray
    code_disentanglement: np.ndarray
    code_weight: np.ndarray
    factor_completeness: np.ndarray
    factor_informativeness: np.ndarray
    alpha: np.ndarray
    converged: bool


def dci(
    codes_train,
    factors_train,
    codes_test,
    factors_test,
    *,
    folds: int = DCI_FOLDS,
    n_alphas: int = DCI_ALPHAS,
    eps: float = DCI_EPS,
    weighted_completeness: bool = False,
) -> DCI:
    """DCI (Eastwood & Williams, 2018) with Lasso regressors, fit on train and scored on test.

    Codes and factors are standardised with training statistics; each factor gets a
    `lasso_cv` (penalty by ``folds``-fold cross-validation); the importance of code i
    for factor j is |coefficient_ij|; disentanglement and completeness come from
    `dci_from_importance`, informativeness is the mean over factors of the
    regressors' test R². Float64 (thread-local x64). docs/metrics.md has the
    definitions.

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(600, 3))
    >>> h = z[:, [2, 0, 1]] * [1.0, -3.0, 0.5] + 0.05 * rng.normal(size=(600, 3))
    >>> r = dci(h[:400], z[:400], h[400:], z[400:])
    >>> [round(v, 2) for v in (r.disentanglement, r.completeness, r.informativeness)]
    [1.0, 1.0, 1.0]
    """
    with jax.enable_x64(True):
        x, y = np.asarray(codes_train, np.float64), np.asarray(factors_train, np.float64)
        y = y.reshape(len(y), -1)
        x_mean, x_std = P.standardize_fit(x)
        y_mean, y_std = P.standardize_fit(y)
        fit = lasso_cv(
            P.standardize_apply(x, x_mean, x_std),
            P.standardize_apply(y, y_mean, y_std),
            folds=folds,
            n_alphas=n_alphas,
            eps=eps,
        )
        x_test = P.standardize_apply(np.asarray(codes_test, np.float64), x_mean, x_std)
        pred = np.asarray(x_test @ fit.coef.T + fit.intercept) * np.asarray(y_std) + np.asarray(y_mean)
        y_test = np.asarray(factors_test, np.float64).reshape(len(pred), -1)
        r2 = np.array([P.r2_score(y_test[:, j], pred[:, j]) for j in range(y_test.shape[1])])
        importance = np.abs(np.asarray(fit.coef)).T
        s = dci_from_importance(importance, weighted_completeness)
        return DCI(
            float(s.disentanglement),
            float(s.completeness),
            float(r2.mean()),
            importance,
            np.asarray(s.code_disentanglement),
            np.asarray(s.code_weight),
            np.asarray(s.factor_completeness),
            r2,
            np.asarray(fit.alpha),
            bool(np.all(np.asarray(fit.sweeps) < LASSO_MAX_SWEEPS)),
        )


# ---------------------------------------------------------------- dependence ceilings

CEILING_PROBES = ("linear", "kernel")


def dependence_ceilings(
    content_train,
    blocks_train: Sequence,
    content_test,
    blocks_test: Sequence,
    *,
    probe: str = "linear",
    **kernel_options,
) -> list[float]:
    """Test R² with which the true content block predicts each block: what a content-only code earns.

    Content is standardised with training statistics (as codes are) and fed to the
    probe (``"linear"``: `probes.linear_r2_blocks`; ``"kernel"``:
    `probes.kernel_ridge_r2_blocks`, ``kernel_options`` passed on), fit on train,
    scored on test, one R² per block.

    >>> rng = np.random.default_rng(0)
    >>> c, noise, m = rng.normal(size=(3, 1000, 2))
    >>> s = c @ np.array([[1.0, 0.0], [0.0, 1.0]]) + noise     # half of Var(s) comes from c
    >>> [round(v, 1) for v in dependence_ceilings(c[:500], [s[:500], m[:500]], c[500:], [s[500:], m[500:]])]
    [0.5, -0.0]
    """
    if probe not in CEILING_PROBES:
        raise ValueError(f"probe must be one of {CEILING_PROBES}, got {probe!r}")
    c_train, c_test = (np.asarray(c, np.float64).reshape(len(c), -1) for c in (content_train, content_test))
    with jax.enable_x64(True):
        mean, std = P.standardize_fit(c_train)
        c_train, c_test = (np.asarray(P.standardize_apply(c, mean, std)) for c in (c_train, c_test))
    if probe == "linear":
        return P.linear_r2_blocks(c_train, list(blocks_train), c_test, list(blocks_test))
    return [
        r2
        for r2, _ in P.kernel_ridge_r2_blocks(c_train, list(blocks_train), c_test, list(blocks_test), **kernel_options)
    ]


def normalized_score(r2: float, ceiling: float) -> float:
    """Share of the headroom above the ceiling that codes recover: (R² - c) / (1 - c) in [0, 1].

    c = max(ceiling, 0) (a negative test R² means content predicts nothing); NaN when
    c >= 1 (no headroom) or either input is NaN. docs/metrics.md explains the choice.

    >>> normalized_score(0.75, 0.5), normalized_score(0.3, 0.5), normalized_score(0.2, -0.01)
    (0.5, 0.0, 0.2)
    """
    r2, ceiling = float(r2), float(ceiling)
    if not (np.isfinite(r2) and np.isfinite(ceiling)) or ceiling >= 1:
        return float("nan")
    c = max(ceiling, 0.0)
    return float(min(max((float(r2) - c) / (1 - c), 0.0), 1.0))


def block_columns(z_val, h_val, z_test, h_test, slices: dict[str, slice], metrics) -> tuple[dict[str, dict], Any]:
    """The identifiability columns of latent blocks (column `slices` of z) against codes h: the
    one computation behind `evaluation.evaluate`, the sweeps and `score.score`.

    Per block, with "mcc" in `metrics`: `mcc_{pearson,spearman}_{in,out}` (matched and scored on
    test; matched on validation, scored on test); with "dci": `dci_c`, `dci_i` (the block's mean
    completeness and informativeness). Returns the columns and the `dci` result (for its
    disentanglement and convergence; None without "dci"). Run under ``jax.enable_x64(True)``.
    """
    out = {name: {} for name in slices}
    if "mcc" in metrics:
        for method in METHODS:
            corr_val = np.asarray(correlation(z_val, h_val, method))
            corr_test = np.asarray(correlation(z_test, h_test, method))
            for name, cols in slices.items():
                out[name][f"mcc_{method}_in"] = float(mcc_from_correlations(corr_test[cols], corr_test[cols]).mcc)
                out[name][f"mcc_{method}_out"] = float(mcc_from_correlations(corr_val[cols], corr_test[cols]).mcc)
    scores = None
    if "dci" in metrics:
        scores = dci(h_val, z_val, h_test, z_test)
        for name, cols in slices.items():
            out[name].update(
                dci_c=float(np.mean(scores.factor_completeness[cols])),
                dci_i=float(np.mean(scores.factor_informativeness[cols])),
            )
    return out, scores
