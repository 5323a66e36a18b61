"""Resident memory: the process's own (sampled while a cell runs, for the report) and the machine's."""

from __future__ import annotations

import os
import threading

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """This process's resident set size, or None where /proc is not available."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def machine_bytes() -> tuple[int, int] | None:
    """(total, available) memory of the machine from /proc/meminfo, or None."""
    try:
        with open("/proc/meminfo") as fh:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.strip()}
        return fields["MemTotal"], fields["MemAvailable"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


class PeakRss:
    """Samples this process's resident size every `interval` seconds while the block runs; `peak` is
    the largest sample (None where /proc is not available)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        value = rss_bytes()
        if value is not None:
            self.peak = value if self.peak is None else max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakRss":
        self._sample()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
