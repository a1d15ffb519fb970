"""The image/text experiment: Multimodal3DIdent-style pairs generated on device (paper §5.2).

Each training step draws scenes (`scenes.sample_factors`), renders their images and
writes their sentences as tokens inside the scanned step, encodes both with an image
and a text encoder (`imgtxt.encoders`) and minimises the paper's image/text objective
(`losses.nt_xent`: cosine similarity, temperature 1, symmetric, negatives from both
modalities). Evaluation probes the codes of held-out pairs for every factor:
accuracy for the discrete ones (chance 1/classes), R² for the continuous ones.

Training is the core's (`experiment(cfg)`): single runs with `driver.fit`, the
encoding-size sweep with the sweep engine (`study`: one program per encoding size, its
seeds vmapped; steps dispatched one at a time, see `experiment`).

Example, a few steps of a tiny run:
    >>> import jax
    >>> from mmident_jax import core
    >>> cfg = ImgTxtConfig(image_encoder="cnn", image_size=16, batch_size=8, train_steps=2)
    >>> state, losses = jax.jit(core.make_train(experiment(cfg)))(jax.random.PRNGKey(0), ())
    >>> losses.shape, int(state.step)
    ((2,), 2)
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmident_jax import core, driver, losses, optim, presets, report, rundir, sweep
from mmident_jax import probes as P
from mmident_jax.core import stream
from mmident_jax.imgtxt import scenes, sentences
from mmident_jax.imgtxt.config import ImgTxtConfig, ImgTxtSweep
from mmident_jax.imgtxt.encoders import TextCNN, image_encoder

# Factor -> (role, classes; 0 for continuous factors in [0, 1]).
FACTORS = {
    "shape": ("content", len(scenes.SHAPES)),
    "x": ("content", 3),
    "y": ("content", 3),
    "color_name": ("style", len(sentences.COLOR_NAMES)),
    "hue": ("style", 0),
    "rotation": ("image", 0),
    "light_position": ("image", 0),
    "light_hue": ("image", 0),
    "background_hue": ("image", 0),
    "phrasing": ("text", scenes.NUM_PHRASINGS),
}
ENCODERS = ("image", "text")


class State(NamedTuple):
    step: jax.Array
    params: Any  # {"image": ..., "text": ...}
    opt_state: Any
    key: jax.Array  # the run's root key, split into `core.STREAMS`


def _modules(cfg: ImgTxtConfig):
    return image_encoder(cfg.image_encoder, cfg.encoding_size), TextCNN(len(sentences.VOCAB), cfg.encoding_size)


def pairs(key: jax.Array, cfg: ImgTxtConfig, n: int):
    """n scenes: their factors, images (n, size, size, 3) and sentence tokens (n, MAX_LEN)."""
    factors = scenes.sample_factors(key, n, cfg.position_dependent_color)
    return factors, scenes.render(factors, cfg.image_size), sentences.tokens(factors)


def codes(params, cfg: ImgTxtConfig, images, tokens):
    """(image codes, text codes) of a batch; images in [0, 1] are centred to [-1, 1] first."""
    image_module, text_module = _modules(cfg)
    return image_module.apply(params["image"], 2 * images - 1), text_module.apply(params["text"], tokens)


def make_init(cfg: ImgTxtConfig):
    """`init(key, hp) -> State`: both encoders' initial parameters and Adam's state (`hp`: none, `()`)."""
    image_module, text_module = _modules(cfg)

    def init(key, hp):
        k_image, k_text = jax.random.split(stream(key, "encoder"))
        _, images, tokens = pairs(key, cfg, 1)
        params = {"image": image_module.init(k_image, images), "text": text_module.init(k_text, tokens)}
        return State(jnp.zeros((), jnp.int32), params, optim.optimizer(cfg, cfg.lr).init(params), key)

    return init


def make_step(cfg: ImgTxtConfig):
    """`step(state, hp) -> (state, loss)`: one optimiser step (`optim.optimizer`) on freshly drawn pairs."""
    opt = optim.optimizer(cfg, cfg.lr)

    def objective(params, images, tokens):
        return losses.nt_xent(*codes(params, cfg, images, tokens), cfg.temperature)

    def step(state, hp):
        _, images, tokens = pairs(jax.random.fold_in(stream(state.key, "data"), state.step), cfg, cfg.batch_size)
        loss, grads = jax.value_and_grad(objective)(state.params, images, tokens)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return State(state.step + 1, params, opt_state, state.key), loss

    return step


def experiment(cfg: ImgTxtConfig) -> core.Experiment:
    """The run `cfg` as the core's experiment. Its steps are dispatched one jitted step at a
    time rather than scanned (`scan=False`): XLA's CPU backend runs convolutions inside a loop
    about 30x slower than at top level."""
    return core.Experiment(make_init(cfg), make_step(cfg), cfg.train_steps, cfg.log_steps, scan=False)


def fit(cfg: ImgTxtConfig, run_dir, *, progress: bool = True) -> State:
    """Train `cfg` in `run_dir` (resuming from its checkpoint) with `driver.fit`."""
    return driver.fit(cfg, run_dir, experiment(cfg), (), batching="vmap", progress=progress)


# ------------------------------------------------------------------ evaluation


def factor_values(factors: scenes.Factors) -> dict[str, np.ndarray]:
    """Every factor of `FACTORS` as a host array (the colour name derived from hue and palette)."""
    values = {name: np.asarray(getattr(factors, name)) for name in FACTORS if name != "color_name"}
    values["color_name"] = np.asarray(sentences.color_name(factors.hue, factors.palette))
    return values


def eval_data(state: State, cfg: ImgTxtConfig, split: int):
    """Codes and factors of `cfg.eval_size` held-out pairs (split 0: probe fitting, 1: scoring)."""
    key = jax.random.fold_in(stream(state.key, "evaluation"), split)
    chunk = min(cfg.eval_size, 512)
    count = math.ceil(cfg.eval_size / chunk)

    @jax.jit
    def batch(i):
        factors, images, tokens = pairs(jax.random.fold_in(key, i), cfg, chunk)
        return codes(state.params, cfg, images, tokens), factors

    (h_image, h_text), factors = jax.lax.map(batch, jnp.arange(count))
    flat = lambda x: np.asarray(x).reshape(count * chunk, *x.shape[2:])[: cfg.eval_size]
    return (flat(h_image), flat(h_text)), factor_values(jax.tree.map(flat, factors))


def evaluate(state: State, cfg: ImgTxtConfig) -> list[dict]:
    """One row per encoder x factor: role, chance, and `score` (nonlinear probe: accuracy or R²).

    Discrete factors: `acc_linear` (logistic regression) and `acc_nonlinear` (MLP
    classifier); continuous ones: `r2_linear` and `r2_nonlinear` (kernel ridge).
    """
    (fit_codes, fit_factors), (test_codes, test_factors) = eval_data(state, cfg, 0), eval_data(state, cfg, 1)
    discrete = [f for f, (_, classes) in FACTORS.items() if classes]
    continuous = [f for f in FACTORS if f not in discrete]
    rows = []
    for e, encoder in enumerate(ENCODERS):
        mean, std = P.standardize_fit(fit_codes[e])
        x_fit, x_test = (np.asarray(P.standardize_apply(c[e], mean, std)) for c in (fit_codes, test_codes))
        y_fit = [fit_factors[f][:, None] for f in continuous]
        y_test = [test_factors[f][:, None] for f in continuous]
        linear = P.linear_r2_blocks(x_fit, y_fit, x_test, y_test)
        kernel = [r2 for r2, _ in P.kernel_ridge_r2_blocks(x_fit, y_fit, x_test, y_test)]
        for f, r2_linear, r2_nonlinear in zip(continuous, linear, kernel):
            rows.append(
                {
                    "encoder": encoder,
                    "factor": f,
                    "role": FACTORS[f][0],
                    "chance": 0.0,
                    "r2_linear": r2_linear,
                    "r2_nonlinear": r2_nonlinear,
                    "score": r2_nonlinear,
                }
            )
        for i, f in enumerate(discrete):
            key = jax.random.fold_in(jax.random.fold_in(stream(state.key, "probes"), i), e)
            accuracy = P.mlp_accuracy(x_fit, fit_factors[f], x_test, test_factors[f], key=key)
            rows.append(
                {
                    "encoder": encoder,
                    "factor": f,
                    "role": FACTORS[f][0],
                    "chance": 1 / FACTORS[f][1],
                    "acc_linear": P.logistic_accuracy(x_fit, fit_factors[f], x_test, test_factors[f]),
                    "acc_nonlinear": accuracy,
                    "score": accuracy,
                }
            )
    order = list(FACTORS)
    return sorted(rows, key=lambda r: (ENCODERS.index(r["encoder"]), order.index(r["factor"])))


def evaluate_run(run_dir) -> list[dict]:
    """Evaluate the checkpoint in `run_dir` and write `run_dir/results.csv`."""
    cfg = rundir.load_config(run_dir, ImgTxtConfig)
    state = driver.restore(run_dir, experiment(cfg), ())
    rows = [{"encoding_size": cfg.encoding_size, "seed": cfg.seed, **r} for r in evaluate(state, cfg)]
    report.write_text(Path(run_dir) / rundir.RESULTS, report.csv_text(rows, COLUMNS))
    return rows


# ------------------------------------------------------------------ sweep over encoding sizes

COLUMNS = (
    "encoding_size",
    "seed",
    "encoder",
    "factor",
    "role",
    "chance",
    "acc_linear",
    "acc_nonlinear",
    "r2_linear",
    "r2_nonlinear",
    "score",
)


def study(preset: ImgTxtSweep, seeds: int | None = None, train_steps: int | None = None) -> sweep.Study:
    """Every (grid setting,) encoding size and seed of `preset` for the sweep engine: one program per
    setting and size, its seeds vmapped."""
    base = preset.base if train_steps is None else replace(preset.base, train_steps=train_steps)
    runs = [
        sweep.Run(replace(cfg, encoding_size=size, seed=seed), seed, (("encoding_size", size), *labels))
        for cfg, labels in preset.settings(base)
        for size in preset.sizes
        for seed in range(seeds or preset.seeds)
    ]
    return sweep.Study(
        runs,
        experiment,
        lambda run: (),
        lambda cfg: replace(cfg, seed=0),
        lambda state, run: evaluate(state, run.cfg),
        {"eval_size": base.eval_size},
        batching="vmap",
    )


def to_markdown(name: str, rows: list[dict], seeds: int, about: str = "", labels: tuple[str, ...] = ()) -> str:
    """Per (grid setting and) encoding size: each factor's score from image and text codes (accuracy or
    R²), chance beside; `about`, a paragraph under the title, says how the numbers were made."""
    lines = [
        f"# {name}",
        "",
        *([about, ""] if about else []),
        "Discrete factors: accuracy of an MLP classifier (chance = 1/classes); "
        f"continuous factors: kernel-ridge R². Mean ± std over {seeds} seed(s).",
        "",
    ]
    for values, mine in report.by_setting(rows, labels):
        lines += _size_tables(mine, report.setting_title(values))
    return "\n".join(lines)


def _size_tables(rows: list[dict], title: str) -> list[str]:
    lines = []
    for size in sorted({r["encoding_size"] for r in rows}):
        lines += [
            f"## Encoding size {size}" + (f", {title}" if title else ""),
            "",
            "| factor | role | metric | chance | image | text |",
            "|---|---|---|---|---|---|",
        ]
        for factor, (role, classes) in FACTORS.items():
            scores = [
                [r["score"] for r in rows if r["encoding_size"] == size and r["factor"] == factor and r["encoder"] == e]
                for e in ENCODERS
            ]
            cells = [report.mean_std(np.mean(v), np.std(v)) for v in scores]
            chance = f"{1 / classes:.2f}" if classes else "0"
            lines.append(
                f"| {factor} | {role} | {'accuracy' if classes else 'R²'} | {chance} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    return lines


def save_figure(path: Path, name: str, rows: list[dict], labels: tuple[str, ...] = ()) -> bool:
    """The paper's Fig. 3 layout: score of each factor against the encoding size, image and text codes
    (a row of panels per grid setting)."""
    plt = report.pyplot()
    if plt is None:
        return False
    sizes = sorted({r["encoding_size"] for r in rows})
    settings = report.by_setting(rows, labels)
    fig, panels = plt.subplots(len(settings), 2, figsize=(11, 4 * len(settings)), sharey=True, squeeze=False)
    for axes, (values, rows) in zip(panels, settings):
        _panels(axes, ", ".join(filter(None, [name, report.setting_title(values)])), rows, sizes)
    panels[-1, 1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    report.save_figure(fig, path)
    return True


def _panels(axes, name: str, rows: list[dict], sizes: list[int]) -> None:
    for ax, encoder in zip(axes, ENCODERS):
        for factor, (role, classes) in FACTORS.items():
            means = [
                np.mean(
                    [
                        r["score"]
                        for r in rows
                        if r["encoding_size"] == k and r["factor"] == factor and r["encoder"] == encoder
                    ]
                )
                for k in sizes
            ]
            ax.plot(sizes, means, marker="o", linestyle="-" if classes else "--", label=f"{factor} ({role})")
        ax.set_title(f"{name}: {encoder} codes")
        ax.set_xlabel("encoding size")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("accuracy (solid) / R² (dashed)")


def save_samples(path: Path, cfg: ImgTxtConfig, n: int = 16, seed: int = 0) -> bool:
    """A grid of `n` generated images titled with their sentences."""
    plt = report.pyplot()
    if plt is None:
        return False
    factors, images, _ = jax.jit(pairs, static_argnums=(1, 2))(jax.random.PRNGKey(seed), cfg, n)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax, image, text in zip(axes.flat, np.asarray(images), sentences.strings(factors)):
        ax.imshow(image)
        ax.set_title(textwrap.fill(text, 34), fontsize=6.5)
    for ax in axes.flat:
        ax.axis("off")
    report.save_figure(fig, path)
    return True


def about(name: str, preset: ImgTxtSweep, seeds: int, train_steps: int | None) -> str:
    """How a sweep's tables were made: seeds, steps, batch, encoding sizes, images, probe pairs,
    each marked where it differs from the registered sweep preset `name`."""

    def facts(p: ImgTxtSweep, seeds: int, train_steps: int | None) -> dict:
        cfg = p.base
        return {
            "seeds": str(seeds),
            "steps": f"{train_steps or cfg.train_steps:,}",
            "batch": str(cfg.batch_size),
            "encoding sizes": ", ".join(map(str, p.sizes)),
            "images": f"{cfg.image_encoder} on {cfg.image_size}×{cfg.image_size}",
            "evaluation": f"{cfg.eval_size} + {cfg.eval_size} pairs",
        }

    registered = presets.REGISTRY.get(("imgtxt sweep", name))
    base = facts(registered.value, registered.value.seeds, None) if registered else {}
    return report.settings_line(facts(preset, seeds, train_steps), base)


def write_results(
    out: Path, name: str, rows: list[dict], preset: ImgTxtSweep, seeds: int, train_steps: int | None = None
) -> list[str]:
    """results.csv, results.md (headed by `about`), results.png and samples.png; returns what could not be written."""
    report.write_text(out / "results.csv", report.csv_text(rows, (*preset.labels, *COLUMNS)))
    markdown = to_markdown(name, rows, seeds, about(name, preset, seeds, train_steps), preset.labels)
    report.write_text(out / "results.md", markdown)
    drawn = save_figure(out / "results.png", name, rows, preset.labels) and save_samples(
        out / "samples.png", preset.base
    )
    return [] if drawn else [f"results.png, samples.png ({report.MISSING})"]
