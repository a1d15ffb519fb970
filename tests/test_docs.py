"""Documentation that cannot go stale: every backticked name resolves; the settings page, the
config fields and the command line's flags agree."""

import argparse
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

import mmident_jax
from mmident_jax import cli, settings_page
from mmident_jax.config import Config, help_of
from mmident_jax.imgtxt import command as imgtxt
from mmident_jax.imgtxt.config import ImgTxtConfig
from mmident_jax.multiview.structure import MultiviewConfig

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mmident_jax"
TEXTS = sorted(
    [
        ROOT / "README.md",  # not CHANGELOG.md: it names what was renamed
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "benchmarks").glob("*.md"),
        *(ROOT / "results").glob("*/README.md"),
        *PACKAGE.rglob("*.py"),
    ]
)
DOTTED = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(.*?\))?`")
FILES = {"json", "jsonl", "md", "csv", "png", "msgpack", "npz", "npy", "py", "toml", "log", "txt", "pt", "ckpt"}
PREFIXES = ("mmident_jax", "mmident_jax.multiview", "mmident_jax.imgtxt", "mmident_jax.probes")
MODULES = {p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"} | {
    p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
}


def resolves(dotted: str) -> bool:
    """`a.b.c` names a module or attribute of the package (absolute, or under a subpackage)."""
    parts = dotted.split(".")
    starts = [parts[0]] if parts[0] == "mmident_jax" else [f"{p}.{parts[0]}" for p in PREFIXES]
    for start in starts:
        try:
            obj = importlib.import_module(start)
        except ImportError:
            head, _, name = start.rpartition(".")
            obj = getattr(importlib.import_module(head), name, None)
            if obj is None:
                continue
        path = start
        for part in parts[1:]:
            path = f"{path}.{part}"
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:
                obj = importlib.import_module(path)
            except ImportError:
                break
        else:
            return True
    return False


def checked_names(text: str) -> list[str]:
    """The backticked dotted names of `text` that claim to be the package's: their first part is
    one of its modules or a name `mmident_jax` exports (not a file name like `config.json`)."""
    names = []
    for dotted in DOTTED.findall(text):
        first, last = dotted.split(".")[0], dotted.rsplit(".", 1)[1]
        if last in FILES:
            continue
        if first in MODULES or first == "mmident_jax" or first in mmident_jax.__all__:
            names.append(dotted)
    return names


@pytest.mark.parametrize("path", TEXTS, ids=[str(p.relative_to(ROOT)) for p in TEXTS])
def test_every_backticked_name_resolves(path):
    stale = [name for name in dict.fromkeys(checked_names(path.read_text())) if not resolves(name)]
    assert not stale, f"{path.relative_to(ROOT)} names what does not import: {stale}"


def test_the_name_check_catches_a_renamed_module():
    assert checked_names("see `probes.linear_r2` and `evaluate.monitor`, not `config.json`") == [
        "probes.linear_r2",
        "evaluate.monitor",
    ]
    assert resolves("probes.linear_r2") and resolves("model.topk_gumbel") and resolves("mmident_jax.multiview")
    assert not resolves("evaluate.monitor") and not resolves("probes.linear_r3")


def test_the_settings_page_is_generated_from_the_fields():
    page = (ROOT / "docs" / "settings.md").read_text()
    assert page == settings_page.settings_page(), "regenerate: python -m mmident_jax.settings_page > docs/settings.md"


@pytest.mark.parametrize(
    "command, kind, names", [(["train"], Config, cli.TRAIN_FLAGS), (["imgtxt", "train"], ImgTxtConfig, imgtxt.FLAGS)]
)
def test_every_flag_takes_its_help_from_its_field(command, kind, names):
    parser = cli.build_parser()
    sub = parser
    for word in command:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    helps = {a.dest: a.help for a in sub._actions}
    for name in names:
        assert helps[name].startswith(help_of(kind, name) + " (default "), name
    for field in dataclasses.fields(kind):
        assert help_of(kind, field.name)  # every setting is documented where it is defined


def test_every_multiview_setting_is_documented():
    assert all(help_of(MultiviewConfig, f.name) for f in dataclasses.fields(MultiviewConfig) if f.name != "views")
