"""Sweep grids: config fields and their values, from the command line or a sweep file, crossed with settings.

A grid maps fields of a settings dataclass (`Config`, or any experiment's) to lists of
values: `--grid style_change_prob=0.5,1 --grid encoder_widths=16:16,32` (`parse`; a tuple
value has ":" between its numbers), or a TOML or JSON file mapping each field to a list
(`read_file`; a tuple value is a list there). `typed` types every value by its field,
`expand` crosses settings with every combination of the grid (the first field varies
slowest; `fold` keeps a grid beside a preset's one config); settings that differ only in
per-run numbers share a compiled program (`sweep.group_runs`). Errors are
`ConfigError`s of one line naming the field. Nothing here loads JAX.

Example:
    >>> from mmident_jax.config import Config
    >>> grid = typed(Config, parse(["style_change_prob=0.5,1", "encoder_widths=16:16,32"]))
    >>> grid
    {'style_change_prob': [0.5, 1.0], 'encoder_widths': [(16, 16), (32,)]}
    >>> settings = expand([(Config(), ())], grid)
    >>> len(settings), settings[1][1]
    (4, (('style_change_prob', 0.5), ('encoder_widths', '32')))
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmident_jax.config import ConfigError

# Fields a grid may not set, and where their values come from instead.
REFUSED = {"seed": "the seeds of a sweep come from --seeds"}
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


def parse(texts: Sequence[str]) -> dict[str, list[str]]:
    """`["field=v1,v2", ...]` as {field: ["v1", "v2"]}, in the order given."""
    grid: dict[str, list[str]] = {}
    for text in texts:
        name, eq, values = (part.strip() for part in text.partition("="))
        if not (name and eq and values):
            raise ConfigError(f"a grid entry is FIELD=V1,V2,...; got {text!r}")
        if name in grid:
            raise ConfigError(f"grid field {name} is given twice")
        grid[name] = [v.strip() for v in values.split(",")]
    return grid


def read_file(path) -> dict[str, list]:
    """A sweep file's grid: a TOML (`.toml`) or JSON (`.json`) table of field = [values]."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(f"grid file {path} must end in .toml or .json")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read grid file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        if path.suffix == ".toml":
            import tomllib  # Python 3.11+

            grid = tomllib.loads(text)
        else:
            grid = json.loads(text)
    except ImportError:
        raise ConfigError(f"grid file {path}: TOML needs Python 3.11 (tomllib); write it as JSON") from None
    except ValueError as e:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        raise ConfigError(f"grid file {path} is not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(grid, dict):
        raise ConfigError(f"grid file {path} must map field names to lists of values")
    for name, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(f"grid file {path}: {name} must be a list of values, got {values!r}")
    return grid


def merge(*grids: Mapping[str, list]) -> dict[str, list]:
    """One grid of several (the command line's and a file's); a field in two of them is refused."""
    merged: dict[str, list] = {}
    for grid in grids:
        for name, values in grid.items():
            if name in merged:
                raise ConfigError(f"grid field {name} is given twice (--grid and --grid-file)")
            merged[name] = values
    return merged


def field(kind: type, name: str, refused: Mapping[str, str] = REFUSED) -> dataclasses.Field:
    """The dataclass field `name` of `kind`; unknown names are refused with the closest known ones."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    if name in refused:
        raise ConfigError(f"{name} cannot be a grid field: {refused[name]}")
    if name not in fields:
        close = difflib.get_close_matches(name, list(fields), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; fields of {kind.__name__}: {', '.join(fields)}"
        raise ConfigError(f"unknown grid field {name!r}{hint}")
    return fields[name]


def _type_name(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _value(kind: str, raw):
    """One value of a field of type `kind` ("bool", "int", "float", "str", "tuple[int, ...]"), or ValueError."""
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (str, int)) and str(raw).lower() in TRUE + FALSE:
            return str(raw).lower() in TRUE
        raise ValueError("expected true/false, yes/no or 1/0")
    if kind in ("int", "float"):
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}")
        if kind == "int" and isinstance(raw, float):
            raise ValueError("expected an integer")
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}") from None
    if kind == "str":
        if not isinstance(raw, str):
            raise ValueError("expected a string")
        return raw
    if kind == "tuple[int, ...]":
        parts = raw.split(":") if isinstance(raw, str) else raw
        if not isinstance(parts, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) or isinstance(p, str) for p in parts
        ):
            raise ValueError("expected integers separated by ':' (a list of integers in a file)")
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError("expected integers separated by ':' (a list of integers in a file)") from None
    raise ValueError(f"a grid cannot set a field of type {kind}")


def values(kind: type, name: str, raw: Sequence) -> list:
    """The values `raw` (text or a file's values) of field `name` of `kind`, typed by the field."""
    f = field(kind, name)
    if not raw:
        raise ConfigError(f"grid field {name} has no values")
    typed_values = []
    for item in raw:
        try:
            typed_values.append(_value(_type_name(f), item))
        except ValueError as e:
            raise ConfigError(f"grid field {name}: bad value {item!r} ({e})") from None
    for value, n in ((v, typed_values.count(v)) for v in typed_values):
        if n > 1:
            raise ConfigError(f"grid field {name}: value {label(value)} is given {n} times")
    return typed_values


def typed(kind: type, grid: Mapping[str, Sequence]) -> dict[str, list]:
    """Every field of `grid` with its values typed (`values`)."""
    return {name: values(kind, name, raw) for name, raw in grid.items()}


def label(value):
    """A value as a table's label: a tuple as its command-line text ("64:64"), any other as is."""
    return ":".join(map(str, value)) if isinstance(value, tuple) else value


def columns(grid: Mapping[str, list]) -> list[str]:
    """The label columns `expand` adds: the fields with more than one value."""
    return [name for name, options in grid.items() if len(options) > 1]


def expand(settings: Sequence[tuple], grid: Mapping[str, list]) -> list[tuple]:
    """Every (config, labels) of `settings` crossed with every combination of `grid`, in order.

    Labels are (column, value) pairs; each field of the grid with more than one value adds
    its own (a field with one value sets it in every setting, and adds no column). A
    combination that makes an invalid config is refused (`ConfigError`, naming it).
    """
    names, added = list(grid), columns(grid)
    expanded = []
    for cfg, labels in settings:
        for name in names:
            field(type(cfg), name)
            if name in dict(labels) or len({getattr(c, name) for c, _ in settings}) > 1:
                raise ConfigError(
                    f"grid field {name} varies across the preset's settings already; grid it on one setting"
                )
        for combination in itertools.product(*(grid[name] for name in names)):
            chosen = dict(zip(names, combination))
            extra = tuple((name, label(chosen[name])) for name in added)
            try:
                expanded.append((dataclasses.replace(cfg, **chosen), (*labels, *extra)))
            except ConfigError as e:
                where = " ".join(f"{k}={label(v)}" for k, v in (*labels, *chosen.items()))
                raise ConfigError(f"grid setting {where}: {e}") from None
    return expanded


def fold(cfg, grid: Mapping[str, list]) -> tuple:
    """(`cfg` with the grid's one-valued fields set, the (field, values) pairs of the others): a
    preset of one config keeps its grid this way, hashable, and labels only what varies."""
    cfg = dataclasses.replace(cfg, **{name: v[0] for name, v in grid.items() if len(v) == 1})
    return cfg, tuple((name, tuple(v)) for name, v in grid.items() if len(v) > 1)


def from_args(kind: type, args) -> dict[str, list]:
    """The typed grid of the flags --grid and --grid-file (`flags.add_grid`); empty without them.
    A grid that sets train_steps refuses --train-steps beside it."""
    from_file = read_file(args.grid_file) if args.grid_file else {}
    grid = typed(kind, merge(parse(args.grid), from_file))
    if getattr(args, "train_steps", None) is not None and "train_steps" in grid:
        raise ConfigError("train_steps is a field of the grid: drop --train-steps")
    return grid
