"""Probes: how much of a ground-truth factor can be read out of learned codes.

Regression probes report scikit-learn's R² (`metrics`): least squares (`linear`), RBF
kernel ridge with a cross-validated (alpha, gamma) grid (`kernel`) and MLPs (`mlp`: an
early-stopped probe and the original's `--mlp-eval`). Discrete factors get
classification probes reporting accuracy (`classification`). The `*_blocks` variants
fit several target blocks against the same inputs at once, which is what an
evaluation does. Fits are closed form or jitted optimisation loops; scikit-learn is
only the tests' oracle. Numerics: docs/probes.md.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 3))
    >>> round(linear_r2(x[:100], x[:100] @ [1.0, 2.0, 0.0], x[100:], x[100:] @ [1.0, 2.0, 0.0]), 6)
    1.0
"""

from mmident_jax.probes.classification import logistic_accuracy, mlp_accuracy
from mmident_jax.probes.kernel import (
    ALPHAS,
    EXACT_MAX_N,
    GAMMAS,
    NYSTROM_RANK,
    REFINEMENT_STEPS,
    check_eval_size,
    kernel_ridge_r2,
    kernel_ridge_r2_blocks,
)
from mmident_jax.probes.linear import linear_r2, linear_r2_blocks
from mmident_jax.probes.metrics import ProbeError, kfold_splits, r2_score, standardize_apply, standardize_fit
from mmident_jax.probes.mlp import mlp_r2, mlp_regressor_r2, mlp_regressor_r2_columns

__all__ = [
    "ALPHAS",
    "EXACT_MAX_N",
    "GAMMAS",
    "NYSTROM_RANK",
    "ProbeError",
    "REFINEMENT_STEPS",
    "check_eval_size",
    "kernel_ridge_r2",
    "kernel_ridge_r2_blocks",
    "kfold_splits",
    "linear_r2",
    "linear_r2_blocks",
    "logistic_accuracy",
    "mlp_accuracy",
    "mlp_r2",
    "mlp_regressor_r2",
    "mlp_regressor_r2_columns",
    "r2_score",
    "standardize_apply",
    "standardize_fit",
]
