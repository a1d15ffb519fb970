"""Probe benchmark: `mmident_jax.probes` against scikit-learn on identical synthetic data.

    python benchmarks/probe_bench.py [--sizes 2048 4096] [--out FILE.json] [--smoke]
                                     [--whole-eval-max-n 4096] [--repeats 3] [--sklearn-jobs -1]

For each training size n (test size n too; inputs x ~ N(0, I_5), targets a smooth
nonlinear function of x plus noise) it times and scores:

- kernel: `kernel_ridge_r2` vs ``GridSearchCV(KernelRidge(kernel="rbf"), n_jobs=-1)`` over
  the same grid and 3 folds (targets: speed-up >= 1.5, |delta R²| <= 0.005);
- nystrom: ``kernel_ridge_r2(approx="nystrom")`` against our exact probe;
- linear: `linear_r2` vs ``LinearRegression``;
- whole-eval: one evaluation, 2 encoders x 5 factor blocks (c, s, s_tilde, m1, m2;
  5-dim each) with the shared factorisation `kernel_ridge_r2_blocks`, vs
  scikit-learn fitting factor by factor (target: speed-up >= 5). scikit-learn needs
  ~10 x its single-probe time here (10+ minutes at n = 8192), so this row only runs
  for n <= --whole-eval-max-n (default 4096).

Our times are the median of --repeats calls after one warm-up call (whose time,
including compilation, is reported as first_s); scikit-learn runs once (it has no
warm-up). --smoke uses n = 256 and one repeat. Prints a table and writes JSON
(environment + every figure) to --out.

The baseline is the original's evaluation (imantdaunhawer/multimodal-contrastive-learning,
main_mlp.py): ``GridSearchCV(..., cv=3, n_jobs=-1)`` and ``LinearRegression(n_jobs=-1)``,
i.e. the 48 fits of a grid search spread over every core. ``--sklearn-jobs`` sets
scikit-learn's n_jobs (every row records it as ``theirs_n_jobs``); figures made before
2026-11-29 (``benchmarks/results/probe_bench.json`` of 2026-11-28) ran the grid search
with n_jobs=None, one fit at a time, and overstate the speed-up on a multi-core host.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV

sys.path.insert(0, str(Path(__file__).parent))
from timing import environment, time_call  # noqa: E402
from timing import print_table as table  # noqa: E402

from mmident_jax import probes  # noqa: E402

BLOCKS = ("c", "s", "s_tilde", "m1", "m2")


def smooth_data(n: int, seed: int = 0):
    """x ~ N(0, I_5) (train and test, n each); y = sin(x A) + 0.3 tanh(x B) + 0.1 noise, 5-dim."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 5))
    a, b = rng.normal(size=(2, 5, 5)) / np.sqrt(5)
    y = np.sin(x @ a) + 0.3 * np.tanh(x @ b) + 0.1 * rng.normal(size=(2 * n, 5))
    return x[:n], y[:n], x[n:], y[n:]


def evaluation_data(n: int, seed: int = 0):
    """Latent blocks and two encoders' standardised codes, like an identifiability evaluation.

    Codes depend nonlinearly on content with a small style leak, so R²(c) is high and
    the other blocks are near 0. Returns (codes per encoder, blocks), train and test halves.
    """
    rng = np.random.default_rng(seed)
    c, s, m1, m2 = rng.normal(size=(4, 2 * n, 5))
    blocks = [c, s, s + (rng.random(s.shape) < 0.75) * rng.normal(size=s.shape), m1, m2]
    codes = []
    for m in (m1, m2):
        w, v = rng.normal(size=(2, 5, 5)) / np.sqrt(5)
        z = np.tanh(c @ w) + 0.1 * s @ v + 0.01 * m
        codes.append((z - z[n:].mean(0)) / z[n:].std(0))
    return [(z[:n], z[n:]) for z in codes], [(b[:n], b[n:]) for b in blocks]


SKLEARN_JOBS = -1  # as the original: every core (`--sklearn-jobs`)


def sklearn_kernel(x, y, x_test, y_test, n_jobs=SKLEARN_JOBS):
    grid = {"alpha": list(probes.ALPHAS), "gamma": list(probes.GAMMAS)}
    search = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=3, n_jobs=n_jobs).fit(x, y)
    return search.score(x_test, y_test), {k: float(v) for k, v in search.best_params_.items()}


def row(name, n, ours, theirs, r2_ours, r2_theirs, **extra) -> dict:
    return {
        "probe": name,
        "n": n,
        "ours": ours,
        "theirs": theirs,
        "speedup": theirs["median_s"] / ours["median_s"],
        "r2_ours": r2_ours,
        "r2_theirs": r2_theirs,
        "abs_r2_diff": float(np.max(np.abs(np.subtract(r2_ours, r2_theirs)))),
        **extra,
    }


def timed(fn, *args, repeats=1, warmup=0):
    """(result of the last call, `time_call` figures) so slow baselines run only once."""
    out = []
    timing = time_call(lambda: out.append(fn(*args)), repeats=repeats, warmup=warmup)
    return out[-1], timing


def bench_size(n: int, repeats: int, whole_eval: bool, n_jobs=SKLEARN_JOBS) -> list[dict]:
    """The rows at size n; scikit-learn runs with `n_jobs` (recorded as ``theirs_n_jobs``)."""
    args = smooth_data(n)
    ours = {"repeats": repeats, "warmup": 1}

    (r2, params), t_ours = timed(probes.kernel_ridge_r2, *args, **ours)
    (r2_sk, params_sk), t_sk = timed(sklearn_kernel, *args, n_jobs)
    rows = [
        row("kernel", n, t_ours, t_sk, r2, r2_sk, params_ours=params, params_theirs=params_sk, theirs_n_jobs=n_jobs)
    ]

    def nystrom(*a):
        return probes.kernel_ridge_r2(*a, approx="nystrom")

    (r2_ny, params_ny), t_ny = timed(nystrom, *args, **ours)
    rows.append(
        row(
            "nystrom", n, t_ny, t_ours, r2_ny, r2, params_ours=params_ny, params_theirs=params, rank=probes.NYSTROM_RANK
        )
    )

    def sklearn_linear(x, y, x_test, y_test):
        return LinearRegression(n_jobs=n_jobs).fit(x, y).score(x_test, y_test)

    (r2_lin, t_lin), (r2_sk_lin, t_sk_lin) = (timed(fit, *args, **ours) for fit in (probes.linear_r2, sklearn_linear))
    rows.append(row("linear", n, t_lin, t_sk_lin, r2_lin, r2_sk_lin, theirs_n_jobs=n_jobs))

    if whole_eval:
        codes, blocks = evaluation_data(n)
        train_blocks, test_blocks = [b for b, _ in blocks], [b for _, b in blocks]

        def ours_eval():
            return [
                r for z, z_test in codes for r in probes.kernel_ridge_r2_blocks(z, train_blocks, z_test, test_blocks)
            ]

        def sklearn_eval():
            return [sklearn_kernel(z, b, z_test, b_test, n_jobs) for z, z_test in codes for b, b_test in blocks]

        (res, t_eval), (res_sk, t_eval_sk) = timed(ours_eval, repeats=1, warmup=1), timed(sklearn_eval)
        rows.append(
            row(
                "whole-eval",
                n,
                t_eval,
                t_eval_sk,
                [r for r, _ in res],
                [r for r, _ in res_sk],
                blocks=list(BLOCKS),
                params_disagree=sum(p != q for (_, p), (_, q) in zip(res, res_sk)),
                theirs_n_jobs=n_jobs,
            )
        )
    return rows


def print_table(rows: list[dict], n_jobs=SKLEARN_JOBS) -> None:
    def params(r):
        if "params_ours" in r:
            return f"{r['params_ours']} / {r['params_theirs']}"
        return f"{r['params_disagree']} of 10 selections differ" if "params_disagree" in r else ""

    table(
        [
            {
                "n": str(r["n"]),
                "probe": r["probe"],
                "ours s": f"{r['ours']['median_s']:.3f}",
                "first s": f"{r['ours']['first_s']:.3f}",
                "theirs s": f"{r['theirs']['median_s']:.3f}",
                "speedup": f"{r['speedup']:.2f}",
                "R2 ours": f"{np.mean(r['r2_ours']):.4f}",
                "R2 theirs": f"{np.mean(r['r2_theirs']):.4f}",
                "|dR2|": f"{r['abs_r2_diff']:.1e}",
                "params (ours / theirs)": params(r),
            }
            for r in rows
        ]
    )
    print(
        "(nystrom compares against our exact probe; whole-eval R2 columns are means over 10 entries; "
        f"scikit-learn n_jobs={n_jobs})"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_bench.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole-eval-max-n", type=int, default=4096)
    parser.add_argument(
        "--sklearn-jobs",
        type=int,
        default=-1,
        help="scikit-learn's n_jobs (default -1, every core, as the original; 0 means None)",
    )
    parser.add_argument("--smoke", action="store_true", help="n = 256, one repeat: a few seconds")
    args = parser.parse_args(argv)
    n_jobs = args.sklearn_jobs or None
    sizes, repeats = ([256], 1) if args.smoke else (args.sizes, args.repeats)
    rows = []
    for n in sizes:
        print(f"n = {n} ...", file=sys.stderr, flush=True)
        rows += bench_size(n, repeats, whole_eval=n <= args.whole_eval_max_n, n_jobs=n_jobs)
    print_table(rows, n_jobs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"environment": environment(), "args": vars(args) | {"out": str(args.out)}, "rows": rows},
            indent=2,
            default=str,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
