"""Live progress of a verification run on stderr: a bar with the running cells, counts, elapsed and
remaining time on a terminal; one plain line per finished cell otherwise (CI logs, pipes)."""

from __future__ import annotations

import time
from typing import Callable

from .matrix import Cell

_COLOURS = {"pass": "green", "xfail": "yellow", "built": "cyan", "skip": "yellow"}


class MatrixProgress:
    def __init__(self, console, total: int, label: Callable[[dict], str]):
        self.console = console
        self.total = total
        self.label = label
        self.done = 0
        self.counts: dict[str, int] = {}
        self.running: list[str] = []
        self.start = time.perf_counter()
        self._live = None
        self._task = None

    def __enter__(self) -> "MatrixProgress":
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self._live = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("left"),
                TimeRemainingColumn(), console=self.console, transient=True,
            )
            self._live.__enter__()
            self._task = self._live.add_task("starting", total=self.total, counts="")
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def started(self, cell: Cell) -> None:
        self.running.append(cell.key)
        self._refresh()

    def finished(self, result: dict) -> None:
        key = f"{result['model']}/{result['precision']}/{result['backend']}"
        if key in self.running:
            self.running.remove(key)
        self.done += 1
        status = result["status"]
        self.counts[status] = self.counts.get(status, 0) + 1
        colour = _COLOURS.get(status, "red")
        cached = " (cached)" if result.get("cached") else ""
        failures = "; ".join(result.get("failures", []))
        line = (f"[{self.done}/{self.total}] {result['model']:<22} {result['precision']}/{result['backend']:<12} "
                f"[{colour}]{self.label(result)}[/{colour}] {result.get('seconds', 0):.1f}s{cached}"
                + (f" {failures}" if failures and status != "xfail" else ""))
        if self._live is not None:
            self._live.console.print(line)  # printed above the bar
        else:
            self.console.print(line)
        self._refresh()

    def _refresh(self) -> None:
        if self._live is None:
            return
        counts = " ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        current = ", ".join(self.running[:2]) + (" …" if len(self.running) > 2 else "")
        self._live.update(self._task, completed=self.done, description=current or "done", counts=counts)

