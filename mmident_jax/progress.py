"""Progress of long work: rich bars on a terminal, plain lines otherwise, or nothing.

On a terminal each named bar is drawn by rich. When standard error is not a terminal
(a log file, CI, a cluster job) each bar prints a plain line instead, at most one
every `every` seconds and one when it completes. After the first step of work each
bar prints its projected time to finish from the speed measured so far, and warns in
one line when that exceeds an hour on a CPU.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> bars = Progress({"train": 100}, stream=out, clock=iter(range(0, 1000, 10)).__next__)
    >>> bars.advance("train", 10, info="loss 0.5")
    >>> bars.advance("train", 90)
    >>> print(out.getvalue().strip())
    train: projected 1 min 30 s to finish (10/100 in 10 s)
    train: 10/100 (10%) 10 s elapsed, 1 min 30 s left  loss 0.5
    train: 100/100 (100%) 20 s elapsed, done  loss 0.5
"""

from __future__ import annotations

import contextlib
import sys
import time

HOUR = 3600.0


def duration(seconds: float) -> str:
    """`3 h 05 min`, `4 min 10 s`, `12 s`."""
    seconds = int(round(seconds))
    if seconds >= HOUR:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _on_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"


class Progress:
    """Named bars (name -> total), each with a free-text `info` field; `enabled=False` makes
    every call a no-op. On a terminal `stream` (standard error by default) rich draws them,
    otherwise they print lines."""

    def __init__(
        self, totals: dict[str, int], *, enabled: bool = True, every: float = 30.0, stream=None, clock=time.monotonic
    ):
        self.stream, self.clock, self.every, self.enabled = stream or sys.stderr, clock, every, enabled
        self.bar, self.tasks = None, {}
        # per bar: units done, units skipped (done before this run: not part of its speed), info, last line printed
        self.state = {
            name: {"total": total, "done": 0, "from": 0, "info": "", "printed": None, "projected": False}
            for name, total in totals.items()
        }
        if not enabled:
            return
        if self.stream.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bars

            self.bar = Bars(
                TextColumn("{task.description:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self.tasks = {name: self.bar.add_task(name, total=total, info="") for name, total in totals.items()}
            self.bar.start()
        self.start = self.clock()

    def _say(self, line: str) -> None:
        if self.bar:
            self.bar.console.print(line)
        else:
            print(line, file=self.stream, flush=True)

    def advance(self, name: str, n: int = 0, *, info: str | None = None) -> None:
        """Move bar `name` on by `n` (and replace its info text)."""
        if not self.enabled:
            return
        s = self.state[name]
        s["done"] = min(s["done"] + n, s["total"])
        s["info"] = s["info"] if info is None else info
        now = self.clock()
        elapsed, moved = now - self.start, s["done"] - s["from"]
        left = (s["total"] - s["done"]) * elapsed / moved if moved > 0 else None
        if n > 0 and not s["projected"] and s["done"] < s["total"]:
            s["projected"] = True
            self._say(
                f"{name}: projected {duration(left)} to finish ({moved}/{s['total'] - s['from']} in "
                f"{duration(elapsed)})"
            )
            if left > HOUR and _on_cpu():
                self._say(
                    f"warning: {name} is projected to take over an hour on this CPU; a quick preset takes minutes"
                )
        if self.bar:
            self.bar.update(self.tasks[name], advance=n, **({} if info is None else {"info": info}))
            return
        finished = s["done"] >= s["total"]
        if n > 0 and (finished or s["printed"] is None or now - s["printed"] >= self.every):
            s["printed"] = now
            when = "done" if finished else (f"{duration(left)} left" if left is not None else "")
            pct = 100 * s["done"] // max(s["total"], 1)
            self._say(
                f"{name}: {s['done']}/{s['total']} ({pct}%) {duration(elapsed)} elapsed, {when}"
                + (f"  {s['info']}" if s["info"] else "")
            )

    def skip(self, name: str, n: int) -> None:
        """Count `n` units of bar `name` as done before now (resumed or reused work): they
        move the bar but not the measured speed."""
        if self.enabled:
            s = self.state[name]
            s["from"] += n
            s["done"] += n
            if self.bar:
                self.bar.update(self.tasks[name], advance=n)

    def finish(self) -> None:
        """Show every bar at its total (the work is done, whatever was skipped) and stop."""
        for name, s in self.state.items():
            if self.enabled and s["done"] < s["total"]:
                s["projected"] = True  # nothing left to project
                self.advance(name, s["total"] - s["done"])
        self.close()

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


@contextlib.contextmanager
def status(enabled: bool = True, *, stream=None, clock=time.monotonic):
    """`update(message)` for work in steps of unknown length: a rich spinner on a terminal,
    else one plain line per message with the time elapsed; nothing when not `enabled`.

    >>> import io
    >>> out = io.StringIO()
    >>> with status(stream=out, clock=iter([0, 5]).__next__) as update:
    ...     update("hz1: kernel probes")
    >>> out.getvalue().strip()
    'hz1: kernel probes (5 s elapsed)'
    """
    stream = stream or sys.stderr
    if not enabled:
        yield lambda message: None
    elif stream.isatty():
        from rich.console import Console

        with Console(file=stream).status("working") as spinner:
            yield spinner.update
    else:
        start = clock()
        yield lambda message: print(f"{message} ({duration(clock() - start)} elapsed)", file=stream, flush=True)
