"""Score anyone's codes against ground-truth latents: R² probes, MCC, DCI, dependence ceilings.

`score(latents, codes)` splits the samples into validation and test, standardises
the codes with validation statistics (as `evaluate` does), fits every probe on
validation and scores it on test, and returns one row per latent block plus an
``"all"`` row for all latent dimensions together:

- ``r2_linear``, ``r2_kernel``: test R² of least squares and of RBF kernel ridge
  (`probes.linear_r2_blocks`, `probes.kernel_ridge_r2_blocks`) from the codes;
- ``mcc_{pearson,spearman}_{in,out}``: MCC of the row's latent dimensions against all
  code dimensions; ``in`` matches and scores on test, ``out`` matches on validation
  and scores that matching on test;
- ``dci_d``, ``dci_c``, ``dci_i``: DCI over all latent dimensions at once (Lasso,
  fit on validation). Disentanglement is a property of the codes, so ``dci_d`` is
  only in the ``"all"`` row; completeness and informativeness are per factor, so
  each block's row has their mean over its dimensions and ``"all"`` the mean over
  every dimension;
- ``ceiling_linear``, ``ceiling_kernel``: test R² with which the true content block
  predicts the block (same probe, same split), and ``norm_linear``, ``norm_kernel``:
  the share of the headroom above the ceiling that the codes recover, for the blocks
  other than content (`identifiability.normalized_score`).

A column a row has no value for is absent from it (an empty CSV cell). Definitions:
docs/metrics.md.

Command line: ``mmident-jax score --latents Z.npz --codes H.npy [--out DIR]
[--metrics mcc,dci,...] [--content c] [--val-fraction 0.5] [--seed 0]
[--kernel-approx nystrom]`` prints the table and, with ``--out``, writes
``DIR/scores.csv`` atomically (readers see the old file or the new one; a rerun
replaces it). Bad input raises `ScoreError` with a one-line message; `run` prints it
and returns 2. Wiring: ``score.add_parser(commands)`` in ``cli.build_parser`` and
``if args.command == "score": return score.run(args)`` in ``cli.main``; importing
this module loads no JAX.

Example:
    >>> rng = np.random.default_rng(0)
    >>> c, noise = rng.normal(size=(2, 400, 2))
    >>> z = {"c": c, "s": 0.8 * c + noise}                # style depends on content
    >>> h = np.tanh(c @ [[1.0, 0.5], [-0.5, 1.0]])       # codes see content only
    >>> rows = score(z, h, metrics=("linear", "ceiling"))
    >>> [(r["block"], round(r["r2_linear"], 2), r.get("norm_linear")) for r in rows]
    [('c', 0.91, None), ('s', 0.35, 0.0), ('all', 0.63, None)]
    >>> round(rows[1]["ceiling_linear"], 2)                 # what c itself explains of s
    0.4
"""

from __future__ import annotations

import argparse
import sys
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmident_jax import report
from mmident_jax.config import ConfigError

# JAX, the probes and the metrics load when `score` runs: importing this module for
# `add_parser` keeps the command line's help and argument errors free of JAX.

METRICS = ("linear", "kernel", "mcc", "dci", "ceiling")
PROBES = ("linear", "kernel")
ALL = "all"
COLUMNS = (
    "block", "dims", "r2_linear", "r2_kernel",
    "mcc_pearson_in", "mcc_pearson_out", "mcc_spearman_in", "mcc_spearman_out",
    "dci_d", "dci_c", "dci_i",
    "ceiling_linear", "ceiling_kernel", "norm_linear", "norm_kernel",
)
MIN_SAMPLES = 5  # in each of validation and test (DCI's five folds need five validation samples)
SCORES_CSV = "scores.csv"


class ScoreError(ConfigError):
    """The input cannot be scored as asked; the one-line message says why."""


# ---------------------------------------------------------------- input checks


def _matrix(a, what: str) -> np.ndarray:
    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ScoreError(f"{what} is not a numeric array ({error})") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ScoreError(f"{what} must be 2-D (samples x dimensions), got shape {x.shape}")
    if x.shape[1] == 0:
        raise ScoreError(f"{what} has no dimensions (shape {x.shape})")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ScoreError(f"{what} has {int(bad.sum())} non-finite values (first at row {i}, column {j})")
    return x


def latent_blocks(latents, blocks: Mapping[str, tuple[int, int]] | None = None) -> dict[str, np.ndarray]:
    """Named (n, d_b) float64 blocks from a dict of arrays, or one array and column ranges.

    ``blocks={"c": (0, 5), "s": (5, 10)}`` cuts columns [start, stop) of a single
    array; a single array without ``blocks`` is one block named ``"z"``.

    >>> {k: v.shape for k, v in latent_blocks(np.zeros((4, 3)), {"c": (0, 2), "s": (2, 3)}).items()}
    {'c': (4, 2), 's': (4, 1)}
    """
    if isinstance(latents, Mapping):
        if blocks is not None:
            raise ScoreError("blocks= is for a single latents array, not a dict of blocks")
        named = {str(k): _matrix(v, f"latent block {k!r}") for k, v in latents.items()}
    else:
        z = _matrix(latents, "latents")
        if blocks is None:
            named = {"z": z}
        else:
            named = {}
            for name, cols in blocks.items():
                try:
                    start, stop = (int(v) for v in cols)
                except (TypeError, ValueError):
                    raise ScoreError(f"block {name!r}: expected (start, stop) columns, got {cols!r}") from None
                if not 0 <= start < stop <= z.shape[1]:
                    raise ScoreError(f"block {name!r}: columns ({start}, {stop}) outside 0..{z.shape[1]} "
                                     "or empty")
                named[str(name)] = z[:, start:stop]
    if not named:
        raise ScoreError("no latent blocks given")
    if ALL in named:
        raise ScoreError(f"latent block name {ALL!r} is reserved for the row of all dimensions")
    lengths = {k: len(v) for k, v in named.items()}
    if len(set(lengths.values())) > 1:
        raise ScoreError(f"latent blocks have different numbers of samples: {lengths}")
    return named


def split_indices(n: int, val_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test indices from a seeded permutation: the first round(val_fraction n) validate.

    >>> [len(i) for i in split_indices(10, 0.3)]
    [3, 7]
    """
    if not 0 < val_fraction < 1:
        raise ScoreError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return np.sort(order[:n_val]), np.sort(order[n_val:])


def _check_split(split, n: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        val, test = (np.asarray(s) for s in split)
    except (TypeError, ValueError):
        raise ScoreError("split must be a pair (validation indices, test indices)") from None
    for name, idx in (("validation", val), ("test", test)):
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ScoreError(f"{name} indices must be a 1-D integer array, got {idx.dtype} of shape {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ScoreError(f"{name} indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
    if np.intersect1d(val, test).size:
        raise ScoreError(f"validation and test indices overlap ({np.intersect1d(val, test).size} samples)")
    return val, test


# ---------------------------------------------------------------- scoring


def score(latents, codes, *, blocks: Mapping[str, tuple[int, int]] | None = None,
          metrics: Sequence[str] = METRICS, content: str = "c", val_fraction: float = 0.5, seed: int = 0,
          split: tuple | None = None, kernel_approx: str | None = None) -> list[dict]:
    """One row per latent block and one ``"all"`` row, with a column per metric (module docstring).

    ``latents``: a dict of named (n, d_b) blocks, or one (n, d) array with ``blocks``
    column ranges; ``codes``: (n, d_code); NumPy or JAX, 1-D arrays are one column.
    ``split=(val_idx, test_idx)`` gives the validation/test rows (disjoint integer
    indices); otherwise a permutation seeded by ``seed`` puts ``val_fraction`` of the
    samples in validation. ``metrics``: a subset of `METRICS` (or a comma-separated
    string); ``"ceiling"`` needs
    the ``content`` block and uses the probes asked for (linear if neither is).
    ``kernel_approx="nystrom"``: kernel ridge on a Nyström approximation (needed
    above `probes.EXACT_MAX_N` validation samples). Raises `ScoreError` on bad input.
    """
    import jax

    from mmident_jax import identifiability as I, probes as P

    metrics = tuple(m for m in metrics.split(",") if m) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ScoreError(f"unknown metric {unknown[0] if unknown else '(none)'!r}; choose from {','.join(METRICS)}")
    named = latent_blocks(latents, blocks)
    h = _matrix(codes, "codes")
    n = len(h)
    if any(len(v) != n for v in named.values()):
        raise ScoreError(f"latents have {len(next(iter(named.values())))} samples, codes {n}")
    if "ceiling" in metrics and content not in named:
        raise ScoreError(f"content block {content!r} not among the latent blocks {list(named)}; "
                         "name it with content= or leave 'ceiling' out of the metrics")
    if kernel_approx not in (None, "nystrom"):
        raise ScoreError(f"kernel_approx must be None or 'nystrom', got {kernel_approx!r}")
    val, test = split_indices(n, val_fraction, seed) if split is None else _check_split(split, n)
    if min(len(val), len(test)) < MIN_SAMPLES:
        raise ScoreError(f"need at least {MIN_SAMPLES} validation and test samples, got {len(val)} and {len(test)}")
    if "kernel" in metrics and kernel_approx is None and len(val) > P.EXACT_MAX_N:
        raise ScoreError(f"{len(val)} validation samples exceed the exact kernel probe's limit "
                         f"{P.EXACT_MAX_N}; use kernel_approx='nystrom' (--kernel-approx nystrom)")

    names = list(named)
    z = np.concatenate([named[k] for k in names], axis=1)
    stops = np.cumsum([named[k].shape[1] for k in names])
    slices = {k: slice(stop - named[k].shape[1], stop) for k, stop in zip(names, stops)}
    slices[ALL] = slice(0, z.shape[1])
    rows = {k: {"block": k, "dims": int(s.stop - s.start)} for k, s in slices.items()}
    kernel = {"approx": kernel_approx}

    with jax.enable_x64(True):
        mean, std = P.standardize_fit(h[val])
        h_val, h_test = (np.asarray(P.standardize_apply(h[i], mean, std)) for i in (val, test))
        z_val, z_test = z[val], z[test]
        targets = list(slices)
        ys_val, ys_test = [z_val[:, slices[k]] for k in targets], [z_test[:, slices[k]] for k in targets]
        if "linear" in metrics:
            for k, r2 in zip(targets, P.linear_r2_blocks(h_val, ys_val, h_test, ys_test)):
                rows[k]["r2_linear"] = r2
        if "kernel" in metrics:
            for k, (r2, _) in zip(targets, P.kernel_ridge_r2_blocks(h_val, ys_val, h_test, ys_test, **kernel)):
                rows[k]["r2_kernel"] = r2
        columns, d = I.block_columns(z_val, h_val, z_test, h_test, slices, metrics)
        if d is not None:
            if not d.converged:
                warnings.warn(f"DCI: some Lasso fits stopped after {I.LASSO_MAX_SWEEPS} sweeps before their "
                              "duality gap closed (nearly collinear codes?); importances are approximate",
                              stacklevel=2)
            rows[ALL]["dci_d"] = d.disentanglement
        for k, cols in columns.items():
            rows[k].update(cols)
        if "ceiling" in metrics:
            for probe in [p for p in PROBES if p in metrics] or ["linear"]:
                options = kernel if probe == "kernel" else {}
                ceilings = I.dependence_ceilings(named[content][val], [named[k][val] for k in names],
                                                 named[content][test], [named[k][test] for k in names],
                                                 probe=probe, **options)
                for k, ceiling in zip(names, ceilings):
                    rows[k][f"ceiling_{probe}"] = ceiling
                    if k != content and f"r2_{probe}" in rows[k]:
                        rows[k][f"norm_{probe}"] = I.normalized_score(rows[k][f"r2_{probe}"], ceiling)
    return [{c: row[c] for c in COLUMNS if c in row} for row in rows.values()]


# ---------------------------------------------------------------- output


def _columns(rows: list[dict]) -> list[str]:
    return [c for c in COLUMNS if any(c in row for row in rows)]


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV, columns in `COLUMNS` order (those any row has); absent values are empty.

    >>> print(to_csv([{"block": "c", "dims": 2, "r2_linear": 0.5}, {"block": "all", "dims": 2}]), end="")
    block,dims,r2_linear
    c,2,0.5
    all,2,
    """
    return report.csv_text(rows, _columns(rows))


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table (floats to 3 decimals, absent values blank).

    >>> print(format_table([{"block": "c", "dims": 2, "mcc_pearson_in": 0.98765}]))
    block  dims  mcc_pearson_in
        c     2           0.988
    """
    return report.text_table(rows, _columns(rows))


# ---------------------------------------------------------------- files and command line


def _load(path, what: str):
    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"{what} file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ScoreError(f"cannot read {what} file {path}: {str(error).splitlines()[0]}") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        return {k: data[k] for k in data.files}


def load_latents(path) -> dict[str, np.ndarray] | np.ndarray:
    """Named blocks from an .npz (one array per block), or one array from an .npy (block ``"z"``)."""
    data = _load(path, "latents")
    if isinstance(data, dict) and not data:
        raise ScoreError(f"latents file {path} holds no arrays")
    return data


def load_codes(path) -> np.ndarray:
    """The codes from an .npy, or an .npz holding exactly one array."""
    data = _load(path, "codes")
    if isinstance(data, dict):
        if len(data) != 1:
            raise ScoreError(f"codes file {path} must hold one array, holds {len(data)}: {sorted(data)}")
        data = next(iter(data.values()))
    return data


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``score`` command to an argparse ``subparsers`` object; returns its parser."""
    parser = subparsers.add_parser("score", help="identifiability metrics of any codes against latents; "
                                                 "writes scores.csv")
    parser.add_argument("--latents", required=True, help="an .npz with one (n, d) array per named latent block")
    parser.add_argument("--codes", required=True, help="the (n, d) codes: an .npy, or an .npz with one array")
    parser.add_argument("--out", help="directory for scores.csv (default: print only)")
    parser.add_argument("--metrics", default=",".join(METRICS),
                        help=f"comma-separated subset of {','.join(METRICS)} (default all)")
    parser.add_argument("--content", default="c", help="the content block, for the ceilings (default c)")
    parser.add_argument("--val-fraction", type=float, default=0.5,
                        help="share of the samples that fit the probes; the rest score them (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation/test permutation (default 0)")
    parser.add_argument("--kernel-approx", choices=("nystrom",),
                        help="Nyström kernel ridge (needed above probes.EXACT_MAX_N validation samples)")
    return parser


def run(args: argparse.Namespace) -> None:
    """The ``score`` command: print the table and write ``--out``/scores.csv; bad input raises `ScoreError`."""
    metrics = tuple(m for m in args.metrics.split(",") if m)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ScoreError(f"unknown metric {unknown[0] if unknown else '(none)'!r}; choose from {','.join(METRICS)}")
    out = None if args.out is None else Path(args.out)
    if out is not None and out.exists() and not out.is_dir():
        raise ScoreError(f"--out {out} exists and is not a directory")
    rows = score(load_latents(args.latents), load_codes(args.codes), metrics=metrics, content=args.content,
                 val_fraction=args.val_fraction, seed=args.seed, kernel_approx=args.kernel_approx)
    print(format_table(rows))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        report.write_text(out / SCORES_CSV, to_csv(rows))
        print(f"wrote {out / SCORES_CSV}", file=sys.stderr)
