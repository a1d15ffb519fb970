"""Figures are optional: matplotlib comes with the `plot` extra (`pip install ".[plot]"`).

Example:
    >>> plt = pyplot()  # None without matplotlib
    >>> plt is None or hasattr(plt, "subplots")
    True
"""

from __future__ import annotations

from pathlib import Path

MISSING = "matplotlib is not installed: pip install 'mmident-jax[plot]'"


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend, or None when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig, path: Path) -> None:
    """Lay out, write (120 dpi) and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
