"""docs/settings.md: every setting of every experiment, made from the config fields themselves.

    python -m mmident_jax.settings_page > docs/settings.md

Each field's help is its `config.setting`; its flag, where the command line has one, is
`flags.flag`; each preset's value comes from `presets.REGISTRY` ("varies" where a preset's
settings differ). `tests/test_docs.py` checks that the page is up to date.

Example:
    >>> page = settings_page()
    >>> page.splitlines()[0], "| `content_n` | `--content-n` |" in page
    ('# Settings', True)
"""

from __future__ import annotations

import dataclasses

from mmident_jax import cli, presets
from mmident_jax.clica.config import IcaConfig
from mmident_jax.config import Config, help_of
from mmident_jax.flags import flag
from mmident_jax.imgtxt import command as imgtxt
from mmident_jax.imgtxt.config import ImgTxtConfig
from mmident_jax.misalign.config import MisalignConfig
from mmident_jax.multiview.structure import MultiviewConfig


def _show(value) -> str:
    return (
        ",".join(map(str, value))
        if isinstance(value, tuple)
        else f"{value:,}"
        if isinstance(value, int) and not isinstance(value, bool)
        else str(value)
    )


def _preset_value(preset, name: str) -> str:
    """A setting's value in a preset: a config's, a preset's config's, or its settings' ("varies" when they differ)."""
    if hasattr(preset, "settings"):
        values = list(dict.fromkeys(getattr(cfg, name) for cfg, _ in preset.settings))
        return _show(values[0]) if len(values) == 1 else "varies"
    return _show(getattr(getattr(preset, "cfg", preset), name))


def settings_page() -> str:
    """docs/settings.md: every setting of every experiment, from the fields themselves: its
    flag (where the command line has one), its help and each preset's value."""
    lines = [
        "# Settings",
        "",
        "Generated from the config fields (`config.setting`) by `python -m mmident_jax.settings_page`; "
        "a test checks that this page, the fields and the command line's flags agree.",
        "",
    ]
    for title, kind, command, flags in (
        ("`mmident-jax train` (`config.Config`)", Config, "train", cli.TRAIN_FLAGS),
        ("`mmident-jax imgtxt train` (`imgtxt.config.ImgTxtConfig`)", ImgTxtConfig, "imgtxt train", imgtxt.FLAGS),
        ("`mmident-jax multiview` runs (`multiview.MultiviewConfig`, `--grid`)", MultiviewConfig, "multiview", ()),
        ("`mmident-jax clica` runs (`clica.config.IcaConfig`, `--grid`)", IcaConfig, "clica", ()),
        ("`mmident-jax misalign` runs (`misalign.config.MisalignConfig`, `--grid`)", MisalignConfig, "misalign", ()),
    ):
        names = presets.names(command)
        lines += [
            f"## {title}",
            "",
            "| setting | flag | what | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for field in dataclasses.fields(kind):
            if field.name == "views":
                continue
            lines.append(
                f"| `{field.name}` | {f'`{flag(field.name)}`' if field.name in flags else ''} | "
                f"{help_of(kind, field.name)} | "
                + " | ".join(_preset_value(presets.get(command, p), field.name) for p in names)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_page(), end="")
