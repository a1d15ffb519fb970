"""RBF kernel ridge probes with scikit-learn's cross-validated (alpha, gamma) grid.

One factorisation per (gamma, fold, alpha) serves every target block, and each block
selects its own (alpha, gamma). Kernels, residuals and scores are float64; the O(n³)
Cholesky factorisation is float32 followed by `REFINEMENT_STEPS` steps of iterative
refinement against the float64 system, which gives float64 answers at float32 speed
(docs/probes.md, "Precision"). Beyond `EXACT_MAX_N` samples the exact path refuses and
points to the Nyström approximation (its memory model: docs/probes.md, "Memory").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mmident_jax.probes.metrics import ProbeError, _padded, _r2_columns, _stack_blocks, _x64, kfold_splits, r2_score

EXACT_MAX_N = 33_000  # samples of the exact kernel ridge probe: 20.6 n² bytes at its refit (docs/probes.md, "Memory")
ALPHAS = (1.0, 0.1, 0.01, 0.001)
GAMMAS = tuple(float(g) for g in np.logspace(-2, 2, 4))
REFINEMENT_STEPS = 2
NYSTROM_RANK = 1024
_ALPHA_BATCH = 4
_PREDICT_CHUNK = 2048


def _rbf(a, b, gamma):
    """exp(-gamma ||a_i - b_j||²), summing squared differences feature by feature.

    Exact (no ||a||² + ||b||² - 2ab cancellation); XLA fuses it into one n x m pass.
    """
    sq = sum((a[:, j, None] - b[None, :, j]) ** 2 for j in range(a.shape[1]))
    return jnp.exp(-gamma * sq)


def _solve_refined(k, diag, y):
    """Solve (k + diag(diag)) w = y: float32 Cholesky, float64 iterative refinement."""
    chol = lax.linalg.cholesky((k + jnp.diag(diag)).astype(jnp.float32), symmetrize_input=False)

    def solve(r):
        return jax.scipy.linalg.cho_solve((chol, True), r.astype(jnp.float32)).astype(k.dtype)

    w = solve(y)
    for _ in range(REFINEMENT_STEPS):
        w = w + solve(y - k @ w - diag[:, None] * w)
    return w


@jax.jit
def _cv_scores(x, y, train, train_mask, val, val_mask, alphas, gammas):
    """Validation R² per target column for every (gamma, fold, alpha): shape (G, F, A, T).

    Folds are padded to equal size: padded training rows get a unit diagonal, zero
    kernel and zero target, so their weights are exactly 0; padded validation rows
    get weight 0. One kernel per (gamma, fold) is built and shared by all alphas,
    whose factorisations are batched (vmap, `_ALPHA_BATCH` at a time); the
    (gamma, fold) pairs run one after another (lax.map), which bounds memory.
    """

    def one_kernel(args):
        gamma, tr, tr_mask, va, va_mask = args
        k = _rbf(x[tr], x[tr], gamma) * (tr_mask[:, None] & tr_mask[None, :])
        k_val = _rbf(x[va], x[tr], gamma)
        y_tr = y[tr] * tr_mask[:, None]

        def one_alpha(alpha):
            w = _solve_refined(k, jnp.where(tr_mask, alpha, 1.0), y_tr)
            return _r2_columns(y[va], k_val @ w, va_mask[:, None].astype(y.dtype), jnp)

        return lax.map(one_alpha, alphas, batch_size=_ALPHA_BATCH)

    n_gammas, n_folds = len(gammas), len(train)
    per_kernel = (jnp.repeat(gammas, n_folds),) + tuple(
        jnp.tile(a, (n_gammas, 1)) for a in (train, train_mask, val, val_mask)
    )
    return lax.map(one_kernel, per_kernel).reshape(n_gammas, n_folds, len(alphas), -1)


@jax.jit
def _refit_predict(x, y, x_test, alpha, gamma):
    """Fit on all training rows; predict ``x_test`` in row chunks (bounded memory)."""
    w = _solve_refined(_rbf(x, x, gamma), jnp.full(len(x), alpha), y)
    return lax.map(lambda row: _rbf(row[None], x, gamma)[0] @ w, x_test, batch_size=_PREDICT_CHUNK)


def _nystrom_features(x, landmarks, gamma):
    """Features phi with phi phiᵀ = K_xz K_zz⁺ K_zx (eigenvalues below 1e-10 relative dropped)."""
    lam, u = jnp.linalg.eigh(_rbf(landmarks, landmarks, gamma))
    keep = lam > lam[-1] * 1e-10
    return _rbf(x, landmarks, gamma) @ (u * jnp.where(keep, lax.rsqrt(jnp.where(keep, lam, 1)), 0))


def _ridge(gram, cross, alpha):
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram + alpha * jnp.eye(len(gram))), cross)


@jax.jit
def _nystrom_cv_scores(x, y, landmarks, val, val_mask, alphas, gammas):
    """As `_cv_scores` for the Nyström kernel; fold Gram matrices by down-dating the full one."""

    def one_gamma(gamma):
        phi = _nystrom_features(x, landmarks, gamma)
        gram, cross = phi.T @ phi, phi.T @ y

        def one_fold(args):
            va, va_mask = args
            weight = va_mask[:, None].astype(y.dtype)
            phi_va = phi[va] * weight
            fold_gram, fold_cross = gram - phi_va.T @ phi_va, cross - phi_va.T @ y[va]
            return lax.map(
                lambda alpha: _r2_columns(y[va], phi[va] @ _ridge(fold_gram, fold_cross, alpha), weight, jnp),
                alphas,
            )

        return lax.map(one_fold, (val, val_mask))

    return lax.map(one_gamma, gammas)


@jax.jit
def _nystrom_refit_predict(x, y, x_test, landmarks, alpha, gamma):
    phi = _nystrom_features(x, landmarks, gamma)
    return _nystrom_features(x_test, landmarks, gamma) @ _ridge(phi.T @ phi, phi.T @ y, alpha)


def _select(scores: np.ndarray) -> tuple[int, int]:
    """GridSearchCV's choice from (G, F, A, T) scores: best mean fold R², grid order alpha-major.

    scikit-learn iterates the grid with keys sorted (alpha outer, gamma inner), ranks
    NaN scores last, and breaks ties by the first grid position.
    """
    means = scores.mean(axis=(1, 3)).T.ravel()
    best = np.where(np.isnan(means), -np.inf, means).argmax()
    return divmod(int(best), scores.shape[0])


@_x64
def kernel_ridge_r2_blocks(
    x_train,
    ys_train: Sequence,
    x_test,
    ys_test: Sequence,
    *,
    alphas: Sequence[float] = ALPHAS,
    gammas: Sequence[float] = GAMMAS,
    folds: int = 3,
    approx: str | None = None,
    rank: int = NYSTROM_RANK,
) -> list[tuple[float, dict]]:
    """`kernel_ridge_r2` for several target blocks sharing the inputs.

    Each (gamma, fold, alpha) kernel is factorised once and solved for all blocks'
    columns together; each block selects its own (alpha, gamma) by its mean fold R²
    (averaged over its columns) and is refit with that pair (one factorisation per
    distinct selected pair). Returns ``[(test R², {"alpha", "gamma"}), ...]``.

    Exact path: time O(folds * len(alphas) * len(gammas) * (2n/3)³), memory about
    21 n² bytes; n above `EXACT_MAX_N` (the 24 GiB limit) raises ValueError.
    ``approx="nystrom"`` replaces the kernel by its Nyström approximation on ``rank``
    evenly spaced training points (time O(n rank² + rank³), memory O(n rank)); the
    landmarks' inputs, never their targets, are shared by all folds. Measured at
    n = 4096 (smooth 5-D targets, and an evaluation-like set of five 5-D blocks):
    |R² - exact R²| <= 5.4e-3 at rank 256, 1.0e-3 at 512, 3.6e-4 at 1024 (the
    default; 3.5 s vs 6.3 s exact for one block) and 2.7e-4 at 2048, with the same
    (alpha, gamma) selected throughout; the exact path's cost grows as n³, this one's
    as n.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(120, 2))
    >>> ys = [np.sin(x), rng.normal(size=(120, 1))]
    >>> (r2_sin, _), (r2_noise, _) = kernel_ridge_r2_blocks(x[:90], [y[:90] for y in ys],
    ...                                                     x[90:], [y[90:] for y in ys])
    >>> r2_sin > 0.9, r2_noise < 0.2
    (True, True)
    """
    y, blocks = _stack_blocks(ys_train)
    y_test, _ = _stack_blocks(ys_test)
    x, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    alphas, gammas = np.asarray(alphas, np.float64), np.asarray(gammas, np.float64)
    n = len(x)
    if approx not in (None, "nystrom"):
        raise ValueError(f"approx must be None or 'nystrom', got {approx!r}")
    if approx is None and n > EXACT_MAX_N:
        raise ValueError(
            f"exact kernel ridge on n={n} training points exceeds EXACT_MAX_N={EXACT_MAX_N} "
            f"(~21 n² bytes, sized for 24 GiB); use approx='nystrom' (rank={rank})"
        )
    train, train_mask = _padded([tr for tr, _ in kfold_splits(n, folds)])
    val, val_mask = _padded([va for _, va in kfold_splits(n, folds)])
    if approx is None:
        scores = _cv_scores(x, y, train, train_mask, val, val_mask, alphas, gammas)
        refit = functools.partial(_refit_predict, x, y, x_test)
    else:
        landmarks = x[np.linspace(0, n - 1, min(rank, n)).astype(int)]
        scores = _nystrom_cv_scores(x, y, landmarks, val, val_mask, alphas, gammas)
        refit = functools.partial(_nystrom_refit_predict, x, y, x_test, landmarks)
    choices = [_select(np.asarray(scores)[..., b]) for b in blocks]
    preds = {(a, g): np.asarray(refit(alphas[a], gammas[g])) for a, g in set(choices)}
    return [
        (
            r2_score(y_test[:, b], preds[a, g][:, b]),
            {"alpha": float(alphas[a]), "gamma": float(gammas[g])},
        )
        for b, (a, g) in zip(blocks, choices)
    ]


def kernel_ridge_r2(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    alphas: Sequence[float] = ALPHAS,
    gammas: Sequence[float] = GAMMAS,
    folds: int = 3,
    approx: str | None = None,
    rank: int = NYSTROM_RANK,
) -> tuple[float, dict]:
    """Test R² of RBF kernel ridge tuned like ``GridSearchCV(KernelRidge(kernel="rbf"), cv=folds)``.

    No intercept, kernel exp(-gamma ||x - x'||²), weights from (K + alpha I) w = y.
    Every (alpha, gamma) of the grid is scored by its mean R² over ``folds``
    unshuffled folds (scikit-learn's ``KFold``); the best pair (the first in
    alpha-major grid order on ties) is refit on all training data. Returns the test
    R² and ``{"alpha": ..., "gamma": ...}``. Size limit and ``approx``, ``rank``:
    see `kernel_ridge_r2_blocks`.

    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> r2, params = kernel_ridge_r2(x[:70], np.sin(x[:70]), x[70:], np.sin(x[70:]))
    >>> r2 > 0.95, sorted(params)
    (True, ['alpha', 'gamma'])
    """
    return kernel_ridge_r2_blocks(
        x_train,
        [y_train],
        x_test,
        [y_test],
        alphas=alphas,
        gammas=gammas,
        folds=folds,
        approx=approx,
        rank=rank,
    )[0]


def check_eval_size(num_batches: int, batch_size: int, probes=("kernel",), nonlinear_probe: str = "kernel") -> None:
    """Refuse (`ProbeError`) an evaluation the exact kernel ridge probe cannot fit, before any work starts."""
    n = num_batches * batch_size
    if "kernel" in probes and nonlinear_probe == "kernel" and n > EXACT_MAX_N:
        raise ProbeError(
            f"{num_batches} evaluation batches of {batch_size} are {n} samples, over the exact kernel "
            f"ridge limit of {EXACT_MAX_N}: use at most {EXACT_MAX_N // batch_size} batches, or the "
            "Nystrom approximation (probes.kernel_ridge_r2(..., approx='nystrom'))"
        )
