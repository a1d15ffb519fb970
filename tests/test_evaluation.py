"""The evaluation on oracle codes: what it must report when the codes are known functions of the latents."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax import train
from mmident_jax.config import hyper, replace
from mmident_jax.evaluation import evaluate, identifiability_columns


@pytest.fixture
def content_codes(monkeypatch):
    """Codes that are invertible functions of the content block alone (hz1 affine, hz2 a monotone warp)."""
    monkeypatch.setattr(
        train,
        "codes",
        lambda params, cfg, truth, blocks: (2.0 * blocks.c[:, ::-1] + 1.0, jnp.tanh(0.5 * blocks.c) + blocks.c),
    )


def initial_state(cfg):
    return jax.jit(train.make_init(cfg))(jax.random.PRNGKey(0), hyper(cfg))


def by_block(rows, encoding):
    return {r["predicted_factors"]: r for r in rows if r["encoding"] == encoding}


def test_codes_of_content_recover_content_and_nothing_else(tiny, content_codes):
    cfg = replace(tiny, style_change_prob=0.75)
    rows = evaluate(initial_state(cfg), cfg, probes=("linear", "kernel"), batch_size=1024, metrics=("mcc",))
    for encoding in ("hz1", "hz2"):
        blocks = by_block(rows, encoding)
        assert blocks["c"]["r2_nonlinear"] >= 0.99 and blocks["c"]["mcc_spearman_out"] > 0.99
        for name in ("s", "s~", "m1", "m2"):
            assert blocks[name]["r2_linear"] <= 0.05 and blocks[name]["r2_nonlinear"] <= 0.05, (encoding, name)
    assert by_block(rows, "hz1")["c"]["r2_linear"] > 0.999  # affine: the linear probe suffices


def test_permuted_content_is_read_as_the_new_content(tiny, content_codes):
    cfg = replace(tiny, modality_n=0)
    rows = by_block(
        evaluate(initial_state(cfg), cfg, probes=("linear",), batch_size=1024, permuted_content=True), "hz1"
    )
    assert rows["c'"]["r2_linear"] > 0.999 and rows["c"]["r2_linear"] < 0.05


def test_identifiability_columns_on_known_codes():
    """Codes = permuted, rescaled content: MCC 1 for c, ~0 for an independent block; under
    s = c B + noise the ceiling is the share of Var(s) that c explains, and a code of c alone
    recovers nothing beyond it."""
    rng = np.random.default_rng(0)
    n = 2000
    c, noise, m = rng.normal(size=(3, n, 2))
    s = c @ np.array([[1.0, 0.0], [0.0, 1.0]]) + noise  # half of Var(s) comes from c
    codes = np.column_stack([-3.0 * c[:, 1], 0.5 * c[:, 0]])
    codes = (codes - codes[:1000].mean(0)) / codes[:1000].std(0)
    y = {"c": c, "s": s, "m1": m}
    val = {k: v[:1000] for k, v in y.items()}
    test = {k: v[1000:] for k, v in y.items()}
    r2 = {"s": {"r2_linear": 0.5, "r2_nonlinear": 0.5}, "m1": {"r2_linear": 0.0, "r2_nonlinear": 0.0}}
    out = identifiability_columns(codes[:1000], codes[1000:], val, test, ("mcc", "ceiling"), r2)
    assert out["c"]["mcc_pearson_in"] == pytest.approx(1.0) and out["c"]["mcc_pearson_out"] == pytest.approx(1.0)
    assert out["m1"]["mcc_pearson_out"] < 0.1
    assert out["s"]["ceiling_linear"] == pytest.approx(0.5, abs=0.05)
    assert out["m1"]["ceiling_kernel"] < 0.02
    assert out["s"]["norm_linear"] < 0.1  # R² 0.5 at a ceiling of ~0.5: nothing beyond content
