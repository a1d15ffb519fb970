"""`mmident-jax report` rewrites every committed results folder byte for byte from its stored rows."""

import shutil
import sys
from pathlib import Path

import pytest

RESULTS = Path(__file__).parent.parent / "results"
FOLDERS = sorted(p.parent.name for p in RESULTS.glob("*/sweep.json"))


@pytest.mark.parametrize("name", FOLDERS)
def test_report_rewrites_a_results_folder_byte_for_byte(tmp_path, name, cli):
    out = tmp_path / name
    shutil.copytree(RESULTS / name, out)
    for table in ("results.md", "results.csv"):
        (out / table).unlink()
    result = cli("report", "--out", out)
    assert result.returncode == 0, result.stderr
    for table in ("results.md", "results.csv"):
        assert (out / table).read_bytes() == (RESULTS / name / table).read_bytes(), table


def test_without_matplotlib_the_figure_is_skipped_with_the_extra_named(tmp_path, monkeypatch, cli):
    out = tmp_path / "dims-quick"
    shutil.copytree(RESULTS / "dims-quick", out)
    (out / "results.png").unlink()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = cli("report", "--out", out)
    assert result.returncode == 0 and not (out / "results.png").exists()
    assert result.stderr == "skipped results.png (matplotlib is not installed: pip install 'mmident-jax[plot]')\n"
