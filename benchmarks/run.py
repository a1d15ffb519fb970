"""Run every benchmark, print their tables, and write one JSON file with all their figures.

    python benchmarks/run.py [--smoke] [--out DIR]

One script per question, each timed with `timing.py` (see benchmarks/README.md):

- train      train_bench.py      train-step throughput and FLOP utilisation vs batch size
- precision  precision_bench.py  float32 / tf32 / bfloat16: speed and loss drift
- sweep      sweep_bench.py      seed-vmap scaling (recorded as skipped where the script is absent)
- probe      probe_bench.py      probe speed and R² vs scikit-learn
- profile    profile_bench.py    where the time of one paper-config train step goes
- sweep_program  sweep_program_bench.py  the sweep's own program at paper scale: R runs x precision,
             the evaluation of one run, and the projected wall time of `sweep --preset table1`
- batching   batching_bench.py   the engine's batchings "map" and "vmap" side by side: speed, and whether
             a run's parameters are those it has alone
- metrics    metrics_bench.py    MCC (Pearson, Spearman; in and out of sample) and DCI vs numpy/scipy/scikit-learn

Each script's ``main(argv)`` is called with ``--out FILE`` (and ``--smoke``), and
the JSON it writes becomes one section of ``DIR/bench_<device kind>[_smoke].json``
(plus ``wall_s``). A script that fails is recorded with its error, the others
still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import environment  # noqa: E402

SCRIPTS = {
    "train": "train_bench",
    "precision": "precision_bench",
    "sweep": "sweep_bench",
    "probe": "probe_bench",
    "profile": "profile_bench",
    "sweep_program": "sweep_program_bench",
    "batching": "batching_bench",
    "metrics": "metrics_bench",
}


def run_script(name: str, module_name: str, smoke: bool, tmp: Path) -> dict:
    """The JSON that script `module_name` writes, with its wall time; or why it was skipped or failed."""
    if importlib.util.find_spec(module_name) is None:
        return {"skipped": f"benchmarks/{module_name}.py is not present"}
    out = tmp / f"{name}.json"
    argv = ["--out", str(out)] + (["--smoke"] if smoke else [])
    start = time.perf_counter()
    try:
        importlib.import_module(module_name).main(argv)
    except (Exception, SystemExit) as error:  # one broken script (or CLI) must not cost the others' figures
        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}"}
    return {"wall_s": time.perf_counter() - start, **json.loads(out.read_text())}


def status(section: dict) -> str:
    if "skipped" in section:
        return f"skipped: {section['skipped']}"
    if "error" in section:
        return f"FAILED: {section['error']}"
    return f"ok in {section['wall_s']:.1f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every script in under a minute on a CPU")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="output directory")
    args = parser.parse_args(argv)

    env = environment()
    print(
        f"JAX {env['jax']}, backend {env['backend']}, {env['device_count']} x {env['device_kind']}"
        f"{', smoke run' if args.smoke else ''}",
        flush=True,
    )
    sections = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module_name in SCRIPTS.items():
            print(f"\n== {name} ({module_name}.py) ==", flush=True)
            sections[name] = run_script(name, module_name, args.smoke, Path(tmp))
            if "skipped" in sections[name]:
                print(status(sections[name]))

    print("\n== summary ==")
    for name, section in sections.items():
        print(f"{name:<10} {status(section)}")
    device = re.sub(r"[^a-z0-9]+", "-", env["device_kind"].lower()).strip("-")
    path = args.out / f"bench_{device}{'_smoke' if args.smoke else ''}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "smoke": args.smoke, "benchmarks": sections}, indent=2))
    print(f"wrote {path}")
    return 1 if any("error" in s for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
