"""Score anyone's codes against ground-truth latents: R² probes, MCC, DCI, dependence ceilings.

`score(latents, codes)` splits the samples into validation and test, standardises
the codes with validation statistics (as `evaluate` does), fits every probe on
validation and scores it on test, and returns one row per latent block plus an
``"all"`` row for all latent dimensions together:

- ``r2_linear``, ``r2_nonlinear``: test R² of least squares and of RBF kernel ridge
  (`probes.linear_r2_blocks`, `probes.kernel_ridge_r2_blocks`) from the codes, named
  as `evaluate` names them;
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

Command line: ``mmident-jax score --latents Z.npz --codes H.npz [--blocks c=0:5,s=5:10]
[--out DIR] [--metrics mcc,dci,...] [--content c] [--val-fraction 0.5] [--seed 0]
[--kernel-approx nystrom]``, or with a given split ``--val-latents --val-codes
--test-latents --test-codes``, prints one table per code array (an .npz may hold
several, e.g. ``hz1`` and ``hz2``) and, with ``--out``, writes ``DIR/scores.csv``
(a ``codes`` column names the array) atomically (readers see the old file or the new
one; a rerun replaces it). Files are what ``numpy.save`` / ``numpy.savez`` write;
PyTorch and pickled files are refused with how to save them. Bad input raises
`ScoreError` with a one-line message; `run` prints it
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
    "codes",
    "block",
    "dims",
    "r2_linear",
    "r2_nonlinear",
    "mcc_pearson_in",
    "mcc_pearson_out",
    "mcc_spearman_in",
    "mcc_spearman_out",
    "dci_d",
    "dci_c",
    "dci_i",
    "ceiling_linear",
    "ceiling_kernel",
    "norm_linear",
    "norm_kernel",
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
                    raise ScoreError(f"block {name!r}: columns ({start}, {stop}) outside 0..{z.shape[1]} or empty")
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


def score(
    latents,
    codes,
    *,
    blocks: Mapping[str, tuple[int, int]] | None = None,
    metrics: Sequence[str] = METRICS,
    content: str = "c",
    val_fraction: float = 0.5,
    seed: int = 0,
    split: tuple | None = None,
    kernel_approx: str | None = None,
) -> list[dict]:
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

    from mmident_jax import identifiability as I
    from mmident_jax import probes as P

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
        raise ScoreError(
            f"content block {content!r} not among the latent blocks {list(named)}; name the blocks "
            "(a dict, blocks= or --blocks c=0:5,s=5:10), choose content= (--content) or leave "
            "'ceiling' out of the metrics"
        )
    for name, block in named.items():
        constant = np.flatnonzero(np.ptp(block, axis=0) == 0)
        if constant.size:
            raise ScoreError(
                f"latent block {name!r} is constant in column(s) {constant.tolist()}: R² is undefined "
                "there; leave those columns out"
            )
    dead = np.flatnonzero(np.ptp(h, axis=0) == 0)
    if dead.size == h.shape[1]:
        raise ScoreError("the codes are constant: there is nothing to score")
    if dead.size:
        warnings.warn(f"code column(s) {dead.tolist()} are constant and carry no information", stacklevel=2)
    if kernel_approx not in (None, "nystrom"):
        raise ScoreError(f"kernel_approx must be None or 'nystrom', got {kernel_approx!r}")
    val, test = split_indices(n, val_fraction, seed) if split is None else _check_split(split, n)
    if min(len(val), len(test)) < MIN_SAMPLES:
        raise ScoreError(f"need at least {MIN_SAMPLES} validation and test samples, got {len(val)} and {len(test)}")
    if "kernel" in metrics and kernel_approx is None and len(val) > P.EXACT_MAX_N:
        raise ScoreError(
            f"{len(val)} validation samples exceed the exact kernel probe's limit "
            f"{P.EXACT_MAX_N}; use kernel_approx='nystrom' (--kernel-approx nystrom)"
        )

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
                rows[k]["r2_nonlinear"] = r2
        columns, d = I.block_columns(z_val, h_val, z_test, h_test, slices, metrics)
        if d is not None:
            if not d.converged:
                warnings.warn(
                    f"DCI: some Lasso fits stopped after {I.LASSO_MAX_SWEEPS} sweeps before their "
                    "duality gap closed (nearly collinear codes?); importances are approximate",
                    stacklevel=2,
                )
            rows[ALL]["dci_d"] = d.disentanglement
        for k, cols in columns.items():
            rows[k].update(cols)
        if "ceiling" in metrics:
            for probe in [p for p in PROBES if p in metrics] or ["linear"]:
                options = kernel if probe == "kernel" else {}
                ceilings = I.dependence_ceilings(
                    named[content][val],
                    [named[k][val] for k in names],
                    named[content][test],
                    [named[k][test] for k in names],
                    probe=probe,
                    **options,
                )
                for k, ceiling in zip(names, ceilings):
                    rows[k][f"ceiling_{probe}"] = ceiling
                    r2 = rows[k].get("r2_linear" if probe == "linear" else "r2_nonlinear")
                    if k != content and r2 is not None:
                        rows[k][f"norm_{probe}"] = I.normalized_score(r2, ceiling)
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


SAVE_HINT = "save plain arrays with numpy.save('x.npy', array) or numpy.savez('x.npz', c=..., s=...)"


def _load(path, what: str):
    """The array of an .npy, or the named arrays of an .npz; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"{what} file {path} does not exist")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("data.pkl") for n in names):
            raise ScoreError(
                f"{what} file {path} is a PyTorch file (torch.save), which is not read; in PyTorch, "
                + SAVE_HINT.replace("array)", "tensor.cpu().numpy())")
            )
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):  # numpy's wording suggests allow_pickle=True: unsafe, not advised here
            raise ScoreError(
                f"{what} file {path} is not an array file numpy wrote (pickled objects or another "
                f"format, not read); {SAVE_HINT}"
            ) from None
        raise ScoreError(f"cannot read {what} file {path}: {str(error).splitlines()[0]}; {SAVE_HINT}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ScoreError(f"cannot read {what} file {path}: {str(error).splitlines()[0]}; {SAVE_HINT}") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        try:
            arrays = {k: data[k] for k in data.files}
        except ValueError:
            raise ScoreError(f"{what} file {path} holds pickled objects, which are not read; {SAVE_HINT}") from None
    if not arrays:
        raise ScoreError(f"{what} file {path} holds no arrays")
    return arrays


def load_latents(path) -> dict[str, np.ndarray] | np.ndarray:
    """Named blocks from an .npz with several arrays, else one array (cut with `blocks`)."""
    data = _load(path, "latents")
    return next(iter(data.values())) if isinstance(data, dict) and len(data) == 1 else data


def load_codes(path) -> dict[str, np.ndarray]:
    """The named code arrays of an .npz (e.g. hz1, hz2), or an .npy's array under its file name."""
    data = _load(path, "codes")
    return data if isinstance(data, dict) else {Path(path).stem: data}


def parse_blocks(text: str) -> dict[str, tuple[int, int]]:
    """``"c=0:5,s=5:10"`` -> ``{"c": (0, 5), "s": (5, 10)}``.

    >>> parse_blocks("c=0:5,s=5:10")
    {'c': (0, 5), 's': (5, 10)}
    """
    blocks = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, cols = part.partition("=")
        start, _, stop = cols.partition(":")
        try:
            blocks[name.strip()] = (int(start), int(stop))
        except ValueError:
            raise ScoreError(f"--blocks: expected name=start:stop, e.g. c=0:5,s=5:10, got {part!r}") from None
        if not name.strip():
            raise ScoreError(f"--blocks: a block needs a name, got {part!r}")
    if not blocks:
        raise ScoreError("--blocks: no blocks given; e.g. c=0:5,s=5:10")
    return blocks


def _latents(path, blocks: str | None, flag: str) -> dict[str, np.ndarray]:
    """The named latent blocks of a file (`load_latents`), cut by `--blocks` when given."""
    latents = load_latents(path)
    if blocks is not None and isinstance(latents, dict):
        raise ScoreError(f"--blocks cuts one latents array; {flag} {path} holds {len(latents)}: {sorted(latents)}")
    return latent_blocks(latents, None if blocks is None else parse_blocks(blocks))


def _inputs(args) -> tuple:
    """(latents, {name: codes}, split) from the command line's files."""
    given = {"--latents": args.latents, "--codes": args.codes}
    split_files = {
        "--val-latents": args.val_latents,
        "--val-codes": args.val_codes,
        "--test-latents": args.test_latents,
        "--test-codes": args.test_codes,
    }
    if all(v is None for v in split_files.values()):
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise ScoreError(f"{' and '.join(missing)} required (or the four --val-*/--test-* files)")
        return _latents(args.latents, args.blocks, "--latents"), load_codes(args.codes), None
    if any(v is not None for v in given.values()):
        raise ScoreError("give either --latents and --codes, or the four --val-*/--test-* files, not both")
    missing = [k for k, v in split_files.items() if v is None]
    if missing:
        raise ScoreError(f"a given split needs {', '.join(missing)} too")
    z_val, z_test = (_latents(split_files[f"--{w}-latents"], args.blocks, f"--{w}-latents") for w in ("val", "test"))
    h_val, h_test = (load_codes(split_files[f"--{w}-codes"]) for w in ("val", "test"))
    if len(h_val) == len(h_test) == 1:  # one array each (e.g. two .npy files): the validation file names it
        h_test = {next(iter(h_val)): next(iter(h_test.values()))}
    if list(z_val) != list(z_test) or list(h_val) != list(h_test):
        raise ScoreError(
            f"validation and test files name different arrays: latents {list(z_val)} and "
            f"{list(z_test)}, codes {list(h_val)} and {list(h_test)}"
        )
    n_val = {len(v) for v in (*z_val.values(), *h_val.values())}
    if len(n_val) > 1:
        raise ScoreError(f"the validation files have different numbers of samples: {sorted(n_val)}")
    n, m = n_val.pop(), len(next(iter(z_test.values())))
    both = lambda a, b: {k: np.concatenate([_matrix(a[k], k), _matrix(b[k], k)]) for k in a}
    return both(z_val, z_test), both(h_val, h_test), (np.arange(n), np.arange(n, n + m))


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``score`` command to an argparse ``subparsers`` object; returns its parser."""
    parser = subparsers.add_parser(
        "score", help="identifiability metrics of any codes against latents; writes scores.csv"
    )
    parser.add_argument(
        "--latents",
        help="an .npz with one (n, d) array per named latent block, or one (n, d) array (.npy or .npz) with --blocks",
    )
    parser.add_argument("--codes", help="(n, d) codes: an .npy, or an .npz of named arrays (one table each)")
    parser.add_argument("--blocks", help="names for column ranges of one latents array, e.g. c=0:5,s=5:10")
    for where, text in (("val", "validation (fit)"), ("test", "test (score)")):
        parser.add_argument(f"--{where}-latents", help=f"the {text} latents: a given split, instead of --latents")
        parser.add_argument(f"--{where}-codes", help=f"the {text} codes, instead of --codes")
    parser.add_argument("--out", help="directory for scores.csv (default: print only)")
    parser.add_argument(
        "--metrics", default=",".join(METRICS), help=f"comma-separated subset of {','.join(METRICS)} (default all)"
    )
    parser.add_argument("--content", default="c", help="the content block, for the ceilings (default c)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        help="share of the samples that fit the probes; the rest score them (default 0.5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation/test permutation (default 0)")
    parser.add_argument(
        "--kernel-approx",
        choices=("nystrom",),
        help="Nyström kernel ridge (needed above probes.EXACT_MAX_N validation samples)",
    )
    return parser


def run(args: argparse.Namespace) -> None:
    """The ``score`` command: print a table per code array and write ``--out``/scores.csv; bad input raises
    `ScoreError`; a warning (e.g. constant code columns) is one line on standard error."""
    metrics = tuple(m for m in args.metrics.split(",") if m)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ScoreError(f"unknown metric {unknown[0] if unknown else '(none)'!r}; choose from {','.join(METRICS)}")
    out = None if args.out is None else Path(args.out)
    if out is not None and out.exists() and not out.is_dir():
        raise ScoreError(f"--out {out} exists and is not a directory")
    latents, codes, split = _inputs(args)
    rows = []
    for name, h in codes.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scored = score(
                latents,
                h,
                metrics=metrics,
                content=args.content,
                val_fraction=args.val_fraction,
                seed=args.seed,
                split=split,
                kernel_approx=args.kernel_approx,
            )
        for w in caught:
            print(f"warning: {name}: {w.message}", file=sys.stderr)
        scored = [{"codes": name, **r} for r in scored]
        if len(codes) > 1:
            print(f"# {name}")
        print(format_table([{k: v for k, v in r.items() if k != "codes"} for r in scored]))
        rows += scored
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        report.write_text(out / SCORES_CSV, to_csv(rows))
        print(f"wrote {out / SCORES_CSV}", file=sys.stderr)
