"""Progress on the terminal: one or more rich progress bars, or nothing.

Example:
    >>> bars = Progress({"train": 100}, enabled=False)  # disabled: every call is a no-op
    >>> bars.advance("train", 10, info="loss 0.5")
    >>> bars.close()
"""

from __future__ import annotations


class Progress:
    """Named bars (name -> total) drawn with rich, each with a free-text `info` field."""

    def __init__(self, totals: dict[str, int], *, enabled: bool = True, completed: dict[str, int] | None = None):
        self.bar, self.tasks = None, {}
        if not enabled:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bars, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Bars(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        completed = completed or {}
        self.tasks = {name: self.bar.add_task(name, total=total, completed=completed.get(name, 0), info="")
                      for name, total in totals.items()}
        self.bar.start()

    def advance(self, name: str, n: int = 0, *, info: str | None = None) -> None:
        """Move bar `name` on by `n` (and replace its info text)."""
        if self.bar:
            fields = {} if info is None else {"info": info}
            self.bar.update(self.tasks[name], advance=n, **fields)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
