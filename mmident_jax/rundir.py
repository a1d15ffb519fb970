"""The run directory (`config.json`, `checkpoint.msgpack`, `metrics.jsonl`, `results.csv`) and a sweep's (`sweep.json`).

Checkpoints are Flax msgpack files written atomically (temporary file, fsync, rename),
so a crash or a full disk mid-write leaves the previous checkpoint intact; the one
before it is kept as `checkpoint.prev.msgpack`. `config.json` also records what made
the run (`provenance`): every version that trained it, under "made_by". JAX and Flax
load only when a checkpoint is written or read, so the command line can check a run
directory at once.

Example:
    >>> import tempfile
    >>> from mmident_jax.config import Config
    >>> d = tempfile.mkdtemp()
    >>> prepare(d, Config()) is None  # a new run: nothing to resume
    True
    >>> load_config(d) == Config()
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mmident_jax.config import Config, ConfigError

CONFIG = "config.json"
CHECKPOINT = "checkpoint.msgpack"
PROVENANCE = "made_by"  # the config.json entry that lists what trained the run
METRICS = "metrics.jsonl"
RESULTS = "results.csv"

# Settings that may change when a run is resumed: how long it trains and how often it logs
# (how long only under a constant learning rate: a decaying schedule ends at `train_steps`).
RESUMABLE = ("train_steps", "log_steps")


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message says why."""


def load_config(run_dir, kind=Config):
    """The config stored in a run directory (a `Config`, or another `kind` with `from_dict`)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        stored = json.loads(path.read_text())
        stored.pop(PROVENANCE, None)
        return kind.from_dict(stored)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError, ConfigError) as e:
        raise RunDirError(f"{path} is not a valid config: {e}") from None


def prepare(run_dir, cfg):
    """Check that `cfg` may train in `run_dir`, create it, and write `config.json`.

    Returns the stored config when the directory already holds this run (resume),
    None for a new run. Refuses a path that is a file, a non-empty directory that is
    not a run, and a run whose settings differ from `cfg` beyond `RESUMABLE`.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run-dir {run_dir} exists and is not a directory")
    stored = None
    if (run_dir / CONFIG).exists():
        stored = load_config(run_dir, type(cfg))
        differing = [
            name for name, value in stored.to_dict().items() if name not in RESUMABLE and getattr(cfg, name) != value
        ]
        schedule = getattr(stored, "lr_schedule", "constant")
        if schedule != "constant" and cfg.train_steps != stored.train_steps:
            raise RunDirError(
                f"{run_dir} trains with the {schedule} schedule, which ends at train_steps="
                f"{stored.train_steps}; --train-steps {cfg.train_steps} would change the steps "
                "already taken (start a new run to train longer)"
            )
        if differing:
            name = differing[0]
            raise RunDirError(
                f"{run_dir} holds a run with {name}={getattr(stored, name)!r}, "
                f"not {getattr(cfg, name)!r}; use another --run-dir"
            )
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunDirError(f"{run_dir} is not empty and holds no run ({CONFIG} missing)")
    from mmident_jax.provenance import provenance

    versions = made_by(run_dir) if stored is not None else []
    versions += [] if provenance() in versions else [provenance()]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG, (json.dumps({**cfg.to_dict(), PROVENANCE: versions}, indent=2) + "\n").encode())
    return stored


def made_by(run_dir) -> list[dict]:
    """Every version that trained the run in `run_dir`, oldest first (`provenance`)."""
    try:
        return json.loads((Path(run_dir) / CONFIG).read_text()).get(PROVENANCE, [])
    except (OSError, ValueError, AttributeError):
        return []


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a read-only directory, an interrupt: leave no part behind
        tmp.unlink(missing_ok=True)
        raise


def previous(path: Path) -> Path:
    """Where the checkpoint before `path` is kept: checkpoint.msgpack -> checkpoint.prev.msgpack."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(run_dir, state, name: str = CHECKPOINT) -> None:
    """Atomically write a pytree of arrays (the training state), keeping the one it replaces."""
    import jax
    from flax import serialization

    path = Path(run_dir) / name
    data = serialization.to_bytes(jax.device_get(state))
    if path.exists():  # a second name for the current file, then the new one replaces it
        link = previous(path).with_name(previous(path).name + ".tmp")
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, previous(path))
    write_atomic(path, data)


def has_checkpoint(run_dir) -> bool:
    return (Path(run_dir) / CHECKPOINT).is_file()


def restore_checkpoint(run_dir, target, name: str = CHECKPOINT):
    """Read the checkpoint into the structure of `target` (arrays or ShapeDtypeStructs)."""
    path = Path(run_dir) / name
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no checkpoint ({name}); train it first")
    from flax import serialization

    try:
        return serialization.from_bytes(target, path.read_bytes())
    except Exception as e:  # msgpack's and flax's errors for a truncated or foreign file
        kept = (
            f"the one before it is kept as {previous(path).name} (rename it to {name} to resume from it)"
            if previous(path).is_file()
            else "restore it or start a new run"
        )
        raise RunDirError(f"{path} is not a readable checkpoint of this run ({type(e).__name__}); {kept}") from None


def append_metrics(run_dir, record: dict) -> None:
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def drop_metrics_after(run_dir, step: int) -> None:
    """Keep the metrics lines of steps up to `step`: those past it were written before a
    checkpoint that was not, a last line cut short by a crash is dropped too."""
    path = Path(run_dir) / METRICS
    if path.exists():
        kept = "".join(json.dumps(r) + "\n" for r in read_metrics(run_dir) if r["step"] <= step)
        if kept != path.read_text():
            write_atomic(path, kept.encode())


def read_metrics(run_dir) -> list[dict]:
    """The records of `metrics.jsonl`, but for a last line cut short by a crash."""
    path = Path(run_dir) / METRICS
    lines = path.read_text().splitlines() if path.exists() else []
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise RunDirError(f"{path}: line {i + 1} is not JSON") from None
    return records


def _differs(stored: dict, wanted: dict) -> str:
    """Every entry of two identities that differs (a setting's config field once, however
    many settings it differs in), as a phrase."""
    phrases, fields = [], set()
    for key in dict.fromkeys([*wanted, *stored]):
        if stored.get(key) == wanted.get(key):
            continue
        if key == "settings" and isinstance(stored.get(key), list) and len(stored[key]) == len(wanted[key]):
            for have, want in zip(stored[key], wanted[key]):
                for name in dict.fromkeys([*want["config"], *have["config"]]):
                    if have["config"].get(name) != want["config"].get(name) and name not in fields:
                        fields.add(name)
                        phrases.append(
                            f"{name}={have['config'].get(name)!r} where this sweep has {want['config'].get(name)!r}"
                        )
        elif key == "settings" and isinstance(stored.get(key), list):
            phrases.append(f"{len(stored[key])} settings where this sweep has {len(wanted[key])}")
        else:
            phrases.append(f"{key}={stored.get(key)!r} where this sweep has {wanted.get(key)!r}")
    return "; ".join(phrases)


def prepare_out(out: Path, wanted: dict) -> None:
    """Create `out` for the sweep that `wanted` (`sweep.identity`) describes, or check it holds
    that same sweep (else `RunDirError` naming every setting that differs); `sweep.json`
    records the identity and what made it."""
    marker = out / "sweep.json"
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory")
    if marker.exists():
        try:
            stored = json.loads(marker.read_text())
            stored.pop("made_by", None)
        except (ValueError, AttributeError, KeyError):
            raise RunDirError(f"{marker} is not a readable sweep.json; use another --out") from None
        if stored != wanted:
            raise RunDirError(f"{out} holds another sweep ({_differs(stored, wanted)}); use another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise RunDirError(f"{out} is not empty and holds no sweep (sweep.json missing)")
    import jax

    from mmident_jax.provenance import provenance

    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(marker, json.dumps({**wanted, "made_by": provenance()}, indent=1).encode())
