"""Probes: how much of a ground-truth factor can be read out of learned codes.

Regression probes report scikit-learn's R² (uniform average over the target's
columns): least squares (`linear_r2`), RBF kernel ridge with a cross-validated
(alpha, gamma) grid (`kernel_ridge_r2`) and a small MLP (`mlp_r2`). Discrete
factors get classification probes reporting accuracy (`logistic_accuracy`,
`mlp_accuracy`). The `*_blocks` variants fit several target blocks against the
same inputs at once, which is what an evaluation does: one kernel
factorisation per (gamma, fold, alpha) serves every block, while each block
still selects its own (alpha, gamma).

Inputs are 2-D arrays (samples x features), numpy or JAX; 1-D targets are
treated as one column. Fits are closed form or jitted optimisation loops;
scikit-learn is only the tests' oracle.

Precision. Nothing here changes the global ``jax_enable_x64`` flag. The
closed-form probes run under the thread-local ``jax.enable_x64(True)`` context
and choose dtypes explicitly: kernels, residuals, predictions and scores are
float64; the O(n³) Cholesky factorisation is float32 followed by
`REFINEMENT_STEPS` steps of iterative refinement against the float64 system.
Measured against scikit-learn (float64), plain float32 moved cross-validation
scores by up to 2e-4 at n = 1024 (worst at alpha = 0.001, gamma = 0.01, where
cond(K + alpha I) ~ n / alpha) and the error grows with n; one refinement step
brought it to 5e-6, two to 1e-8, i.e. float64 answers. A float64 factorisation
would also be exact but is ~1.8x slower in XLA on CPU (37 vs 65 GFLOP/s at
n = 2731), while each refinement step costs only O(n²). The MLP probes train in
float32 like the encoders.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

ALPHAS = (1.0, 0.1, 0.01, 0.001)
GAMMAS = tuple(float(g) for g in np.logspace(-2, 2, 4))
REFINEMENT_STEPS = 2
NYSTROM_RANK = 1024

# Peak memory of the exact kernel ridge probe, measured as peak RSS growth: the
# final refit (the n x n float64 kernel kept for the refinement residuals, its
# float32 copy and Cholesky factor) takes 20.6 n² bytes (5.14 GiB at n = 16384);
# cross-validation, with four alphas of one (2n/3)² fold batched, 21.1 n²
# (1.32 GiB at n = 8192); plus ~0.3 GiB of runtime. Test predictions are made in
# row chunks. Leaving 2 GiB of a 24 GiB machine to everything else gives
# n ≈ 33,200; beyond EXACT_MAX_N the exact path raises and
# points to approx="nystrom". (On CPU time is the practical limit: the exact grid
# at n = 16384 factorises 48 matrices of 10923², ~5 minutes at the 65 GFLOP/s
# float32 Cholesky rate measured on 2 cores.)
EXACT_MAX_N = 33_000
_ALPHA_BATCH = 4
_PREDICT_CHUNK = 2048


def _x64(fn):
    """Run ``fn`` with 64-bit JAX types enabled for the current thread only."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


def _as_2d(a, dtype=None) -> np.ndarray:
    a = np.asarray(a, dtype=dtype)
    return a.reshape(len(a), -1) if a.ndim == 1 else a


def _stack_blocks(ys: Sequence) -> tuple[np.ndarray, list[slice]]:
    """Concatenate target blocks column-wise; return the array and each block's slice."""
    cols = [_as_2d(y, np.float64) for y in ys]
    stops = np.cumsum([c.shape[1] for c in cols])
    return np.concatenate(cols, axis=1), [slice(s - c.shape[1], s) for s, c in zip(stops, cols)]


# ---------------------------------------------------------------- scaling, scores


def standardize_fit(x):
    """Column means and standard deviations of ``x``; constant columns get std 1.

    >>> mean, std = standardize_fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> mean.tolist(), std.tolist()
    ([2.0, 5.0], [1.0, 1.0])
    """
    x = jnp.asarray(x)
    std = x.std(axis=0)
    return x.mean(axis=0), jnp.where(std == 0, 1, std)


def standardize_apply(x, mean, std):
    """Standardise ``x`` with statistics from `standardize_fit`.

    >>> standardize_apply(np.array([[1.0], [3.0]]), 2.0, 1.0).tolist()
    [[-1.0], [1.0]]
    """
    return (jnp.asarray(x) - mean) / std


def _r2_columns(y, pred, weight, xp):
    """Per-column R² with scikit-learn's force_finite rules; ``weight`` (n, 1) masks rows.

    ``xp`` is numpy (exact float64 arithmetic of scikit-learn) or jax.numpy (in jit).
    """
    mean = xp.sum(weight * y, axis=0) / xp.sum(weight)
    num = xp.sum(weight * (y - pred) ** 2, axis=0)
    den = xp.sum(weight * (y - mean) ** 2, axis=0)
    ratio = num / xp.where(den == 0, 1, den)
    return xp.where(num == 0, 1.0, xp.where(den == 0, 0.0, 1 - ratio))


def r2_score(y_true, y_pred) -> float:
    """scikit-learn's R², uniform average over columns (constant column: 1 if exact, else 0).

    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    >>> r2_score([[1.0, 7.0], [2.0, 7.0]], [[1.0, 7.0], [2.0, 6.0]])
    0.5
    """
    y, pred = _as_2d(y_true, np.float64), _as_2d(y_pred, np.float64)
    if len(y) < 2:
        return float("nan")
    return float(np.mean(_r2_columns(y, pred, np.ones((len(y), 1)), np)))


def kfold_splits(n: int, folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) indices of scikit-learn's unshuffled ``KFold(folds)``.

    Contiguous validation blocks; the first ``n % folds`` get one extra sample.

    >>> [v.tolist() for _, v in kfold_splits(7, 3)]
    [[0, 1, 2], [3, 4], [5, 6]]
    """
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= n samples, got folds={folds}, n={n}")
    sizes = n // folds + (np.arange(folds) < n % folds)
    stops = np.cumsum(sizes)
    return [
        (np.r_[0:start, stop:n], np.arange(start, stop))
        for start, stop in zip(stops - sizes, stops)
    ]


def _padded(indices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack index arrays of unequal length, padding with index 0; return (indices, mask)."""
    width = max(len(i) for i in indices)
    mask = np.arange(width) < np.array([len(i) for i in indices])[:, None]
    stacked = np.zeros(mask.shape, dtype=np.int32)
    stacked[mask] = np.concatenate(indices)
    return stacked, mask


# ---------------------------------------------------------------- linear


@jax.jit
def _linear_predict(x, y, x_test):
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    coef = jnp.linalg.lstsq(x - x_mean, y - y_mean)[0]
    return (x_test - x_mean) @ coef + y_mean


@_x64
def linear_r2_blocks(x_train, ys_train: Sequence, x_test, ys_test: Sequence) -> list[float]:
    """Least-squares R² for several target blocks sharing the inputs (one lstsq solve).

    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> [round(r, 6) for r in linear_r2_blocks(x, [x[:, :1], 2 * x + 1], x, [x[:, :1], 2 * x + 1])]
    [1.0, 1.0]
    """
    y, blocks = _stack_blocks(ys_train)
    y_test, _ = _stack_blocks(ys_test)
    x, x_test = (jnp.asarray(a, jnp.float64) for a in (x_train, x_test))
    pred = np.asarray(_linear_predict(x, jnp.asarray(y), x_test))
    return [r2_score(y_test[:, b], pred[:, b]) for b in blocks]


def linear_r2(x_train, y_train, x_test, y_test) -> float:
    """R² of least squares with intercept (scikit-learn ``LinearRegression``), fit on train.

    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> round(linear_r2(x[:50], x[:50] @ [1.0, -2.0], x[50:], x[50:] @ [1.0, -2.0]), 6)
    1.0
    """
    return linear_r2_blocks(x_train, [y_train], x_test, [y_test])[0]


# ---------------------------------------------------------------- kernel ridge


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
    return jax.scipy.linalg.cho_solve(
        jax.scipy.linalg.cho_factor(gram + alpha * jnp.eye(len(gram))), cross
    )


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
                lambda alpha: _r2_columns(
                    y[va], phi[va] @ _ridge(fold_gram, fold_cross, alpha), weight, jnp
                ),
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
        x_train, [y_train], x_test, [y_test],
        alphas=alphas, gammas=gammas, folds=folds, approx=approx, rank=rank,
    )[0]


# ---------------------------------------------------------------- MLP probes


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), jnp.zeros(n))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def _mlp_apply(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _mse(pred, target):
    return jnp.mean((pred - target) ** 2)


@functools.lru_cache
def _heads_xent(sizes: tuple[int, ...]):
    """Summed softmax cross-entropy of consecutive logit heads of the given sizes."""
    splits = np.cumsum(sizes)[:-1].tolist()

    def loss(logits, labels):
        heads = jnp.split(logits, splits, axis=1)
        return sum(
            optax.softmax_cross_entropy_with_integer_labels(h, labels[:, j]).mean()
            for j, h in enumerate(heads)
        )

    return loss


@dataclasses.dataclass(frozen=True)
class _Training:
    """MLP probe settings (hashable: static under jit); see `mlp_r2`."""

    hidden: tuple[int, ...]
    steps: int
    batch_size: int
    learning_rate: float
    val_fraction: float
    eval_every: int
    patience: int


@functools.partial(jax.jit, static_argnames=("loss", "out_dim", "cfg"))
def _fit_mlp(key, x, t, x_val, t_val, *, loss, out_dim, cfg: _Training):
    """Adam on random mini-batches; every ``cfg.eval_every`` steps the held-out loss
    is checked and the best parameters kept; stops after ``cfg.patience`` checks
    without improvement or ``cfg.steps`` steps."""
    init_key, batch_key = jax.random.split(key)
    params = _mlp_init(init_key, (x.shape[1], *cfg.hidden, out_dim))
    opt = optax.adam(cfg.learning_rate)

    def objective(p, xb, tb):
        return loss(_mlp_apply(p, xb), tb)

    def step(carry, i):
        p, state = carry
        idx = jax.random.randint(jax.random.fold_in(batch_key, i), (cfg.batch_size,), 0, len(x))
        updates, state = opt.update(jax.grad(objective)(p, x[idx], t[idx]), state)
        return (optax.apply_updates(p, updates), state), None

    def train_round(carry):
        p, state, best, best_loss, stale, r = carry
        (p, state), _ = lax.scan(step, (p, state), r * cfg.eval_every + jnp.arange(cfg.eval_every))
        val_loss = objective(p, x_val, t_val)
        better = val_loss < best_loss
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), p, best)
        return p, state, best, jnp.minimum(val_loss, best_loss), jnp.where(better, 0, stale + 1), r + 1

    def running(carry):
        return (carry[-1] < cfg.steps // cfg.eval_every) & (carry[-2] < cfg.patience)

    start = (params, opt.init(params), params, objective(params, x_val, t_val), 0, 0)
    return lax.while_loop(running, train_round, start)[2]


def _train_mlp(key, x, t, x_test, *, loss, out_dim, cfg: _Training):
    """Standardise inputs, hold out ``cfg.val_fraction`` of the rows, fit; return test outputs."""
    mean, std = standardize_fit(x)
    x, x_test = standardize_apply(x, mean, std), standardize_apply(x_test, mean, std)
    split_key, fit_key = jax.random.split(key)
    order = jax.random.permutation(split_key, len(x))
    val, fit = jnp.split(order, [max(1, round(cfg.val_fraction * len(x)))])
    params = _fit_mlp(fit_key, x[fit], t[fit], x[val], t[val], loss=loss, out_dim=out_dim, cfg=cfg)
    return _mlp_apply(params, x_test)


def mlp_r2(
    x_train, y_train, x_test, y_test, *, key, hidden=(256, 256), steps=3000, batch_size=256,
    learning_rate=1e-3, val_fraction=0.1, eval_every=100, patience=5,
) -> float:
    """Test R² of a ReLU MLP regressor (Adam, early stopping on a held-out split).

    Inputs and targets are standardised with training statistics; at most ``steps``
    Adam steps; the parameters with the best held-out loss (checked every
    ``eval_every`` steps, stopping after ``patience`` checks without improvement)
    predict the test set. Deterministic given ``key``.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> r2 = mlp_r2(x[:500], np.sin(x[:500]), x[500:], np.sin(x[500:]),
    ...             key=jax.random.key(0), hidden=(64, 64), steps=500)
    >>> r2 > 0.9
    True
    """
    y = _as_2d(y_train, np.float32)
    y_mean, y_std = standardize_fit(y)
    cfg = _Training(tuple(hidden), steps, batch_size, learning_rate, val_fraction, eval_every, patience)
    pred = _train_mlp(
        key, jnp.asarray(x_train, jnp.float32), standardize_apply(y, y_mean, y_std),
        jnp.asarray(x_test, jnp.float32), loss=_mse, out_dim=y.shape[1], cfg=cfg,
    )
    return r2_score(y_test, pred * y_std + y_mean)


@dataclasses.dataclass(frozen=True)
class _Regressor:
    """scikit-learn `MLPRegressor` settings (hashable: static under jit); see `mlp_regressor_r2`."""

    hidden: tuple[int, ...]
    learning_rate: float
    alpha: float
    batch_size: int
    max_iter: int
    tol: float
    n_iter_no_change: int


@functools.partial(jax.jit, static_argnames=("cfg",))
def _fit_regressor(key, x, y, cfg: _Regressor):
    """scikit-learn's `MLPRegressor` fit with the adam solver, step for step (docs/probes.md)."""
    n, out = x.shape[0], y.shape[1]
    batch = min(cfg.batch_size, n)
    n_batches = -(-n // batch)
    sizes = (x.shape[1], *cfg.hidden, out)
    init_key, shuffle_key = jax.random.split(key)
    params = []
    for k, fan_in, fan_out in zip(jax.random.split(init_key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, weights and intercepts alike
        kw, kb = jax.random.split(k)
        params.append((jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                       jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)))

    def losses(p, xb, yb, rows):
        """(reported loss, objective whose gradient scikit-learn follows) on the first `rows` rows."""
        mask = (jnp.arange(batch) < rows)[:, None]
        sq = jnp.sum(jnp.where(mask, _mlp_apply(p, xb) - yb, 0.0) ** 2)
        penalty = 0.5 * cfg.alpha * sum(jnp.sum(w ** 2) for w, _ in p) / rows
        return 0.5 * sq / (rows * out) + penalty, 0.5 * sq / rows + penalty

    def adam(p, m, v, t, g):
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g ** 2, v, g)
        lr = cfg.learning_rate * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        return jax.tree.map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + 1e-8), p, m, v), m, v, t

    def minibatch(carry, i):
        p, m, v, t, order, total = carry
        rows = jnp.minimum(batch, n - i * batch)
        idx = lax.dynamic_slice(order, (i * batch,), (batch,))
        grads, loss = jax.grad(lambda p: losses(p, x[idx], y[idx], rows)[::-1], has_aux=True)(p)
        p, m, v, t = adam(p, m, v, t, grads)
        return (p, m, v, t, order, total + loss * rows), None

    def epoch(carry):
        p, m, v, t, best, stale, it = carry
        order = jnp.pad(jax.random.permutation(jax.random.fold_in(shuffle_key, it), n), (0, n_batches * batch - n))
        (p, m, v, t, _, total), _ = lax.scan(minibatch, (p, m, v, t, order, 0.0), jnp.arange(n_batches))
        loss = total / n
        stale = jnp.where(loss > best - cfg.tol, stale + 1, 0)
        return p, m, v, t, jnp.minimum(loss, best), stale, it + 1

    def running(carry):
        return (carry[-1] < cfg.max_iter) & (carry[-2] <= cfg.n_iter_no_change)

    zeros = jax.tree.map(jnp.zeros_like, params)
    start = (params, zeros, zeros, 0, jnp.inf, 0, 0)
    return lax.while_loop(running, epoch, start)[0]


def mlp_regressor_r2(
    x_train, y_train, x_test, y_test, *, key, hidden=(100,), learning_rate=1e-3, alpha=1e-4,
    batch_size=200, max_iter=1000, tol=1e-4, n_iter_no_change=10,
) -> float:
    """Test R² of scikit-learn's `MLPRegressor(max_iter=1000)` with its defaults, in JAX.

    The original script's `--mlp-eval` probe: one hidden layer of 100 ReLU units, Glorot
    uniform init, Adam (lr 1e-3) on shuffled minibatches of min(200, n), L2 penalty
    `alpha`, stopping when the epoch's training loss has not improved by `tol` for more
    than `n_iter_no_change` epochs, or after `max_iter` epochs. No scaling of inputs or
    targets (the evaluation standardises the codes). Deterministic given ``key``.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> r2 = mlp_regressor_r2(x[:500], np.sin(x[:500]), x[500:], np.sin(x[500:]), key=jax.random.key(0))
    >>> r2 > 0.9
    True
    """
    cfg = _Regressor(tuple(hidden), learning_rate, alpha, batch_size, max_iter, tol, n_iter_no_change)
    y = jnp.asarray(_as_2d(y_train, np.float32))
    params = _fit_regressor(key, jnp.asarray(x_train, jnp.float32), y, cfg)
    return r2_score(y_test, _mlp_apply(params, jnp.asarray(x_test, jnp.float32)))


# ---------------------------------------------------------------- classification


def _encode_labels(y_train, y_test):
    """Per label column: training classes, and both label sets as class indices (-1: unseen)."""
    train, test = _as_2d(y_train), _as_2d(y_test)
    classes = [np.unique(col) for col in train.T]
    for j, c in enumerate(classes):
        if len(c) < 2:
            raise ValueError(f"label column {j} has a single class {c.tolist()}; need at least 2")

    def encode(labels):
        idx = [np.clip(np.searchsorted(c, col), 0, len(c) - 1) for c, col in zip(classes, labels.T)]
        return np.stack([np.where(c[i] == col, i, -1) for c, i, col in zip(classes, idx, labels.T)], 1)

    return classes, encode(train), encode(test)


def _logits(w, x, n_classes):
    """Affine logits; two classes use one free column (binomial, as scikit-learn)."""
    z = x @ w[:-1] + w[-1]
    return jnp.concatenate([jnp.zeros_like(z), z], axis=1) if n_classes == 2 else z


@functools.partial(jax.jit, static_argnames=("n_classes", "max_iter"))
def _fit_logistic(x, labels, c, tol, *, n_classes, max_iter):
    """L-BFGS on mean cross-entropy + ||W||² / (2 C n) (intercept unpenalised)."""
    free = 1 if n_classes == 2 else n_classes

    def objective(w):
        xent = optax.softmax_cross_entropy_with_integer_labels(_logits(w, x, n_classes), labels)
        return xent.mean() + jnp.sum(w[:-1] ** 2) / (2 * c * len(x))

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        w, state = carry
        value, grad = value_and_grad(w, state=state)
        updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(w, updates), state

    def running(carry):
        count = optax.tree.get(carry[1], "count")
        grad_norm = optax.tree.norm(optax.tree.get(carry[1], "grad"))
        return (count == 0) | ((count < max_iter) & (grad_norm >= tol))

    w = jnp.zeros((x.shape[1] + 1, free), x.dtype)
    return lax.while_loop(running, step, (w, opt.init(w)))[0]


@_x64
def logistic_accuracy(x_train, y_train, x_test, y_test, *, C=1.0, max_iter=1000, tol=1e-6) -> float:
    """Test accuracy of L2-regularised multinomial logistic regression, averaged over label columns.

    The objective of scikit-learn's ``LogisticRegression(C=C)`` (lbfgs; binomial for
    two classes), optimised in float64 until the gradient norm is below ``tol``.
    Labels: integers of shape (n,) or (n, k) for k discrete factors.

    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> labels = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
    >>> logistic_accuracy(x[:150], labels[:150], x[150:], labels[150:]) > 0.9
    True
    """
    classes, train, test = _encode_labels(y_train, y_test)
    x, x_test = (jnp.asarray(a, jnp.float64) for a in (x_train, x_test))
    accuracies = []
    for j, c in enumerate(classes):
        w = _fit_logistic(x, train[:, j], C, tol, n_classes=len(c), max_iter=max_iter)
        pred = np.asarray(jnp.argmax(_logits(w, x_test, len(c)), axis=1))
        accuracies.append(np.mean(pred == test[:, j]))
    return float(np.mean(accuracies))


def mlp_accuracy(
    x_train, y_train, x_test, y_test, *, key, hidden=(256, 256), steps=3000, batch_size=256,
    learning_rate=1e-3, val_fraction=0.1, eval_every=100, patience=5,
) -> float:
    """Test accuracy of a ReLU MLP classifier (one softmax head per label column), averaged.

    Trained like `mlp_r2` on the summed cross-entropy. Deterministic given ``key``.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> labels = (x ** 2).sum(1) > 1.4
    >>> mlp_accuracy(x[:500], labels[:500], x[500:], labels[500:],
    ...              key=jax.random.key(0), hidden=(64, 64), steps=500) > 0.9
    True
    """
    classes, train, test = _encode_labels(y_train, y_test)
    sizes = tuple(len(c) for c in classes)
    cfg = _Training(tuple(hidden), steps, batch_size, learning_rate, val_fraction, eval_every, patience)
    logits = _train_mlp(
        key, jnp.asarray(x_train, jnp.float32), jnp.asarray(train),
        jnp.asarray(x_test, jnp.float32), loss=_heads_xent(sizes), out_dim=sum(sizes), cfg=cfg,
    )
    heads = jnp.split(logits, np.cumsum(sizes)[:-1].tolist(), axis=1)
    return float(np.mean([np.mean(np.asarray(h.argmax(1)) == test[:, j]) for j, h in enumerate(heads)]))
