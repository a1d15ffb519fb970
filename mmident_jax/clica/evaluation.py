"""cl-ica's evaluation: linear R² and MCC of the codes, per fresh batch, and AnInfoNCE's learned Λ.

As cl-ica's `main_mlp.py` (docs/clica.md): `num_batches` batches of `batch_size` fresh
latents from the marginal (the run's evaluation stream); on each, a least-squares map
from the codes h(g(z)) to z is fit and scored on the same samples (R², uniform over the
n latents), and the MCC matches latents to codes by their |Pearson correlation|. Rows
report the mean and std over the batches, and the same two scores of the observations
g(z) themselves (the "identity" baseline). For AnInfoNCE the learned Λ is given in the
latents' order (each latent's matched code coordinate) beside the true one.

Example, an untrained encoder on the sphere:
    >>> import jax
    >>> from mmident_jax.clica.config import IcaConfig, hyper
    >>> from mmident_jax.clica.model import make_init
    >>> cfg = IcaConfig(space="sphere", conditional="vmf", conditional_scale=1.0, model_space="sphere",
    ...                 encoder_widths=(16,), cond_pool=100)
    >>> row = evaluate(make_init(cfg)(jax.random.PRNGKey(0), hyper(cfg)), cfg, num_batches=2, batch_size=256)
    >>> sorted(row)
    ['mcc', 'mcc_identity', 'mcc_std', 'r2_identity', 'r2_linear', 'r2_linear_std']
"""

from __future__ import annotations

import jax
import numpy as np

from mmident_jax import identifiability
from mmident_jax.clica.config import IcaConfig, hyper, precision
from mmident_jax.clica.model import codes, learned_precision, sample_pairs
from mmident_jax.clica.settings import EVAL_BATCHES
from mmident_jax.core import TrainState, stream
from mmident_jax.mixing import apply
from mmident_jax.probes import linear_r2


def scores(z: np.ndarray, h: np.ndarray) -> tuple[float, identifiability.Matching]:
    """In-sample linear R² of z from h, and the MCC matching of z to h."""
    return linear_r2(h, z, h, z), identifiability.mcc(z, h)


def evaluate(state: TrainState, cfg: IcaConfig, *, num_batches: int = EVAL_BATCHES, batch_size: int = 6144) -> dict:
    """The run's evaluation row: R² and MCC (mean and std over batches), their identity baseline
    and, for AnInfoNCE, the true and the learned Λ (latent order) and their correlation."""
    hp = hyper(cfg)
    encode = jax.jit(lambda params, z: codes(params, cfg, state.truth, z))
    r2s, mccs, first = [], [], None
    for i in range(num_batches):
        key = jax.random.fold_in(stream(state.key, "evaluation"), i)
        z = np.asarray(sample_pairs(key, cfg, hp, batch_size)[0])
        r2, matching = scores(z, np.asarray(encode(state.params, z)))
        r2s.append(r2)
        mccs.append(float(matching.mcc))
        if first is None:
            first = z, matching
    z, matching = first
    r2_identity, identity = scores(z, np.asarray(jax.jit(apply)(state.truth, z)))
    row = {
        "r2_linear": float(np.mean(r2s)),
        "r2_linear_std": float(np.std(r2s)),
        "mcc": float(np.mean(mccs)),
        "mcc_std": float(np.std(mccs)),
        "r2_identity": r2_identity,
        "mcc_identity": float(identity.mcc),
    }
    if cfg.loss == "aninfonce":
        learned = np.asarray(learned_precision(state.params))[np.asarray(matching.code_index)]
        true = precision(cfg) if cfg.conditional == "anisotropic" else np.ones(cfg.n, np.float32)
        row |= {
            "lambda_true": [round(float(x), 4) for x in true],
            "lambda_learned": [round(float(x), 4) for x in learned],
            "lambda_corr": float(np.corrcoef(true, learned)[0, 1]) if np.ptp(true) > 0 else float("nan"),
        }
    return row
