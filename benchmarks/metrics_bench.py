"""Metrics benchmark: `mmident_jax.identifiability` against the SciPy/scikit-learn path.

    python benchmarks/metrics_bench.py [--n 20480] [--dims 15] [--repeats 3] [--runs 16] [--out FILE.json]
                                       [--smoke]

Latents z ~ N(0, I_d) and d codes h = tanh(z P (I + 0.2 G)) + 0.1 noise (P a permutation,
G Gaussian): a nearly, not exactly, identified code. Rows:

- ``mcc_{pearson,spearman}_in``: MCC on all n samples, `identifiability.mcc` vs
  ``np.corrcoef`` (or ``scipy.stats.spearmanr``) + ``scipy.optimize.linear_sum_assignment``;
- ``mcc_{pearson,spearman}_out``: matched on the first n/2 samples, scored on the
  other n/2 (`identifiability.mcc_out_of_sample` vs icebeem's recipe on the same parts);
- ``mcc_pearson_in xR``: ``--runs`` R codes (noisy, permuted copies) scored at once,
  ``jax.vmap`` of `identifiability.mcc` vs a Python loop of the SciPy path; the value
  columns are means over the runs, ``abs_diff`` the largest difference;
- ``dci``: fit on the first n/2, informativeness on the rest; `identifiability.dci`
  vs ``StandardScaler`` + one ``LassoCV(cv=5)`` per factor (its default grid and
  tolerance) + the entropy formulas in NumPy.

Ours run in float64 (thread-local x64), like the baselines. MCC programs are compiled
first (``compile_s``: `timing.time_jax`'s ``lower().compile()``), then ours and theirs
are timed side by side (`timing.time_interleaved`: one warm-up call each, then
``--repeats`` rounds; medians). For ``dci`` ``compile_s`` is the compilation of its
jitted core `identifiability.lasso_cv`, ``first_s`` the first `dci` call (its own
compilation included), and scikit-learn is timed alongside like the rest. Values:
``value_ours``/``value_theirs`` and their ``abs_diff`` (DCI: max over D, C, I). Prints a
table and writes JSON (environment + every figure) to --out. --smoke: n = 512, d = 5,
2 runs, one repeat.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy, spearmanr
from sklearn.linear_model import LassoCV
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from timing import check_fits, environment, fmt, time_interleaved  # noqa: E402
from timing import print_table as table  # noqa: E402

from mmident_jax import identifiability as I  # noqa: E402


def make_data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    mix = np.eye(d)[rng.permutation(d)] @ (np.eye(d) + 0.2 * rng.normal(size=(d, d)))
    return z, np.tanh(z @ mix) + 0.1 * rng.normal(size=(n, d))


# ---------------------------------------------------------------- the SciPy / scikit-learn path


def scipy_corr(x, y, method):
    d = x.shape[1]
    if method == "pearson":
        return np.corrcoef(x, y, rowvar=False)[:d, d:]
    return spearmanr(x, y)[0][:d, d:]


def scipy_mcc(x, y, method):
    cc = np.abs(scipy_corr(x, y, method))
    return cc[linear_sum_assignment(-cc)].mean()


def scipy_mcc_out(x, y, x_test, y_test, method):
    pairs = linear_sum_assignment(-np.abs(scipy_corr(x, y, method)))
    return np.abs(scipy_corr(x_test, y_test, method))[pairs].mean()


def sklearn_dci(h, z, h_test, z_test):
    hs, zs = StandardScaler().fit(h), StandardScaler().fit(z)
    x, x_test, y = hs.transform(h), hs.transform(h_test), zs.transform(z)
    fits = [LassoCV(cv=5).fit(x, y[:, j]) for j in range(y.shape[1])]
    r = np.abs(np.array([f.coef_ for f in fits])).T  # codes x factors
    pred = zs.inverse_transform(np.column_stack([f.predict(x_test) for f in fits]))
    d_i = 1 - entropy(r.T + 1e-300, base=r.shape[1])
    c_j = 1 - entropy(r + 1e-300, base=r.shape[0])
    info = np.mean([r2_score(z_test[:, j], pred[:, j]) for j in range(z.shape[1])])
    return np.array([(r.sum(1) / r.sum()) @ d_i, c_j.mean(), info])


# ---------------------------------------------------------------- rows


def compiled(fn, *args) -> tuple:
    start = time.perf_counter()
    program = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    check_fits(program)
    return program, compile_s


def mcc_rows(z, h, repeats: int) -> list[dict]:
    half = len(z) // 2
    parts = (z[:half], h[:half], z[half:], h[half:])
    rows = []
    for method in I.METHODS:
        for kind in ("in", "out"):
            if kind == "in":
                ours_fn, args = (lambda a, b, m=method: I.mcc(a, b, m).mcc), (z, h)
                theirs_fn = functools.partial(scipy_mcc, method=method)
            else:
                ours_fn, args = (lambda a, b, c, d, m=method: I.mcc_out_of_sample(a, b, c, d, m).mcc), parts
                theirs_fn = functools.partial(scipy_mcc_out, method=method)
            program, compile_s = compiled(ours_fn, *args)
            timing = time_interleaved({"ours": (program, args), "theirs": (theirs_fn, args)}, repeats=repeats)
            ours, theirs = float(program(*args)), float(theirs_fn(*args))
            rows.append(
                row(f"mcc_{method}_{kind}", {"compile_s": compile_s, **timing["ours"]}, timing["theirs"], ours, theirs)
            )
    return rows


def batched_row(z, h, runs: int, repeats: int) -> dict:
    """In-sample Pearson MCC of `runs` codes at once (vmapped; e.g. seeds) vs a loop of the SciPy path."""
    rng = np.random.default_rng(1)
    hs = np.stack([h[:, rng.permutation(h.shape[1])] + 0.05 * rng.normal(size=h.shape) for _ in range(runs)])
    zs = np.broadcast_to(z, (runs, *z.shape))
    program, compile_s = compiled(lambda a, b: jax.vmap(lambda x, y: I.mcc(x, y).mcc)(a, b), zs, hs)

    def theirs_fn(a, b):
        return np.array([scipy_mcc(x, y, "pearson") for x, y in zip(a, b)])

    timing = time_interleaved({"ours": (program, (zs, hs)), "theirs": (theirs_fn, (zs, hs))}, repeats=repeats)
    ours, theirs = np.asarray(program(zs, hs)), theirs_fn(zs, hs)
    return row(
        f"mcc_pearson_in x{runs}",
        {"compile_s": compile_s, **timing["ours"]},
        timing["theirs"],
        float(ours.mean()),
        float(theirs.mean()),
        abs_diff=float(np.max(np.abs(ours - theirs))),
        runs=runs,
    )


def dci_row(z, h, repeats: int) -> dict:
    half = len(z) // 2
    args = (h[:half], z[:half], h[half:], z[half:])
    x = (h[:half] - h[:half].mean(0)) / h[:half].std(0)
    y = (z[:half] - z[:half].mean(0)) / z[:half].std(0)
    _, compile_s = compiled(lambda a, b: I.lasso_cv(a, b), x, y)

    def ours_fn(*a):
        r = I.dci(*a)
        return np.array([r.disentanglement, r.completeness, r.informativeness])

    timing = time_interleaved({"ours": (ours_fn, args), "theirs": (sklearn_dci, args)}, repeats=repeats)
    ours, theirs = ours_fn(*args), sklearn_dci(*args)
    return row(
        "dci",
        {"compile_s": compile_s, **timing["ours"]},
        timing["theirs"],
        ours.tolist(),
        theirs.tolist(),
        abs_diff=float(np.max(np.abs(ours - theirs))),
    )


def row(metric, ours, theirs, value_ours, value_theirs, **extra) -> dict:
    return {
        "metric": metric,
        "ours": ours,
        "theirs": theirs,
        "speedup": theirs["median_s"] / ours["median_s"],
        "value_ours": value_ours,
        "value_theirs": value_theirs,
        "abs_diff": extra.pop("abs_diff", abs(value_ours - value_theirs) if np.isscalar(value_ours) else None),
        **extra,
    }


def print_table(rows: list[dict], n: int, d: int) -> None:
    print(f"n = {n} samples, {d} latents x {d} codes (float64)")
    show = lambda v: f"{v:.4f}" if np.isscalar(v) else "/".join(f"{x:.3f}" for x in v)
    table(
        [
            {
                "metric": r["metric"],
                "compile s": f"{r['ours']['compile_s']:.3f}",
                "first s": f"{r['ours']['first_s']:.3f}",
                "ours s": f"{r['ours']['median_s']:.4f}",
                "theirs s": f"{r['theirs']['median_s']:.4f}",
                "speedup": f"{r['speedup']:.2f}",
                "value ours": show(r["value_ours"]),
                "value theirs": show(r["value_theirs"]),
                "|diff|": f"{r['abs_diff']:.1e}",
                "other_cpu": fmt(r["ours"]["other_cpu"], ".2f"),
            }
            for r in rows
        ]
    )
    print("(dci values are D/C/I; theirs: LassoCV at its default duality-gap tol 1e-4, ours at 1e-12)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20480)
    parser.add_argument("--dims", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=16, help="codes scored at once in the vmapped MCC row")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="n = 512, d = 5, one repeat: a few seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs = 2
    n, d, repeats = (512, 5, 1) if args.smoke else (args.n, args.dims, args.repeats)
    z, h = make_data(n, d)
    with jax.enable_x64(True):
        print("MCC ...", file=sys.stderr, flush=True)
        rows = mcc_rows(z, h, repeats)
        rows.append(batched_row(z, h, args.runs, repeats))
        print("DCI ...", file=sys.stderr, flush=True)
        rows.append(dci_row(z, h, repeats))
    print_table(rows, n, d)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "environment": environment(),
                "args": vars(args) | {"out": str(args.out)},
                "config": {"n": n, "d_latent": d, "d_code": d, "repeats": repeats},
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
