"""Progress of a long ingest run as plain lines, for logs, pipes and CI (a terminal gets a bar).

A line is printed every `every` seconds from a timer thread, whether or not the count moved, so a
watcher always knows the run is alive: `ingest: 1,024 of 2,225 articles (46%), 12.3 articles/s,
about 1m35s left`. The total is what is known so far: each file counts as one article until it
is read, when a file of records counts as its records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Self


class ProgressLines:
    def __init__(self, total: int, write: Callable[[str], None], every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, what: str = "ingest") -> None:
        if every <= 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        self.total, self.done = total, 0
        self._write, self._every, self._clock, self._what = write, every, clock, what
        self._started = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-lines", daemon=True)

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.done += n

    def grow(self, n: int) -> None:
        """The total turned out `n` larger (a file held several records)."""
        with self._lock:
            self.total += n

    def line(self) -> str:
        with self._lock:
            done, total = self.done, max(self.total, self.done)
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = done / elapsed
        share = f" ({100 * done / total:.0f}%)" if total else ""
        left = f", about {_duration((total - done) / rate)} left" if rate > 0 else ""
        return f"{self._what}: {done:,} of {total:,} articles{share}, {rate:.1f} articles/s{left}"

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._write(self.line())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._write(self.line())


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
