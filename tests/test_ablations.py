import jax
import numpy as np
import pytest

from mmident_jax import ablations, presets, twoview
from mmident_jax.config import replace
from mmident_jax.evaluation import evaluate, validation_loss
from mmident_jax.train import make_train

PAPER_CURVE = [-2.54, -6.70, -8.20, -8.15, -8.22, -8.29, -8.24, -8.25]  # the paper's, sizes 1, 3, ..., 15


@pytest.mark.parametrize("knee", [1, 3, 5, 9, 15])
def test_elbow_finds_the_knee_of_noisy_synthetic_curves(knee):
    sizes = np.array(presets.ENCODING_SIZES)
    rng = np.random.default_rng(knee)
    losses = -8.0 + 6.0 * np.clip((knee - sizes) / 14, 0, None) ** 0.5 + rng.normal(0, 0.05, len(sizes))
    assert ablations.elbow(sizes, losses) == knee


def test_elbow_of_the_papers_curve_is_the_content_size():
    assert ablations.elbow(presets.ENCODING_SIZES, PAPER_CURVE) == 5
    assert ablations.elbow([2, 4, 8], [1.0, 1.0, 1.0]) == 2  # a flat curve: the smallest size


def test_presets_vary_one_thing_in_the_independent_multimodal_setting():
    ablation = {
        name: presets.sweep_preset(name)
        for name in presets.names("sweep")
        if name.split("-quick")[0] in ("encoding-size", "dims", "discrete")
    }
    assert len(ablation) == 6
    dims = [(s.cfg.style_n, s.cfg.modality_n) for s in ablation["dims"].settings]
    assert dims == [(5, 0), (5, 1), (5, 3), (5, 5), (5, 7), (5, 9), (0, 5), (1, 5), (3, 5), (7, 5), (9, 5)]
    assert [s.cfg.encoding_size for s in ablation["encoding-size"].settings] == [1, 3, 5, 7, 9, 11, 13, 15]
    discrete = [(s.cfg.discrete_block, s.cfg.categories) for s in ablation["discrete"].settings]
    assert discrete == [(b, k) for b in "csm" for k in range(3, 11)]
    for preset in ablation.values():
        for s in preset.settings:
            assert (s.cfg.style_change_prob, s.cfg.shared_mixing, s.cfg.shared_encoder) == (0.75, False, False)
            assert not (s.cfg.statistical_dependence or s.cfg.content_dependent_style)
    assert ablation["dims"].settings[0].cfg.batch_size == 6144  # paper scale
    assert ablation["dims"].settings[3].cfg.widths == (150, 750, 750, 750, 750, 150)  # 10n, 50n for n = 15


@pytest.mark.slow
def test_discrete_blocks_get_accuracy_beside_chance(tiny):
    cfg = replace(tiny, discrete_block="s", categories=4)
    state, _ = jax.jit(make_train(cfg))(jax.random.PRNGKey(0))
    rows = evaluate(state, cfg, probes=("linear", "kernel"), batch_size=512)
    by_block = {(r["encoding"], r["predicted_factors"]): r for r in rows}
    for key in (("hz1", "s"), ("hz1", "s~"), ("hz2", "s")):
        row = by_block[key]
        assert row["chance"] == 0.25 and np.isnan(row["r2_linear"]) and np.isnan(row["r2_nonlinear"])
        assert 0.0 <= row["acc_linear"] <= 1.0 and 0.0 <= row["acc_nonlinear"] <= 1.0
    assert "acc_linear" not in by_block[("hz1", "c")] and np.isfinite(by_block[("hz1", "c")]["r2_nonlinear"])
    assert np.isfinite(validation_loss(state, cfg, n=256))


def rows_of(labels, values, blocks=("c", "s", "s~", "m1", "m2"), seeds=2, **extra):
    return [
        {
            **dict(zip(labels, v)),
            "seed": seed,
            "encoding": e,
            "predicted_factors": b,
            "r2_linear": 0.5,
            "r2_nonlinear": 0.9 if b == "c" else 0.1 * seed,
            **extra,
        }
        for v in values
        for seed in range(seeds)
        for e in ("hz1", "hz2")
        for b in blocks
    ]


def test_encoding_size_report_shows_val_loss_and_elbow(tmp_path):
    rows = []
    for size, loss in zip(presets.ENCODING_SIZES, PAPER_CURVE):
        rows += [dict(r, val_loss=loss + 0.02 * r["seed"]) for r in rows_of(("encoding_size",), [(size,)])]
    ablations.write_encoding_size(tmp_path, "demo", rows, seeds=2)
    md = (tmp_path / "results.md").read_text()
    assert "**Elbow of the validation loss: encoding size 5**" in md
    assert "| encoding_size | val_loss | hz1: c | hz1: s | hz1: m1 | hz2: c | hz2: s~ | hz2: m2 |" in md
    assert "| 5 | -8.19±0.01 | 0.90±0.00 | 0.05±0.05 |" in md
    assert (tmp_path / "results.png").stat().st_size > 0
    twoview.write_results(tmp_path, "demo", rows, presets.sweep_preset("encoding-size-quick"))
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header == "encoding_size,seed,encoding,predicted_factors,r2_linear,r2_nonlinear,val_loss"


def test_dims_report_has_one_table_per_varied_block(tmp_path):
    values = [(5, nm) for nm in presets.DIMS] + [(ns, 5) for ns in presets.DIMS if ns != 5]
    ablations.write_dims(tmp_path, "demo", rows_of(("ns", "nm"), values), seeds=2)
    md = (tmp_path / "results.md").read_text()
    nm_part, ns_part = md.split("## nm varied, ns = 5")[1].split("## ns varied, nm = 5")
    assert [line.split(" | ")[0] for line in nm_part.splitlines() if line.startswith("| ") and "±" in line] == [
        f"| {nm}" for nm in presets.DIMS
    ]
    assert [line.split(" | ")[0] for line in ns_part.splitlines() if line.startswith("| ") and "±" in line] == [
        f"| {ns}" for ns in presets.DIMS
    ]
