"""A small progress bar for long runs (stderr, one line, redrawn in place)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`with Progress(total, "predict") as bar: ... bar.update()`; silent when disabled."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream: TextIO | None = None, width: int = 24):
        self.total, self.desc, self.enabled, self.width = total, desc, enabled, width
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.1 or 0 < self.total <= self.done):
            self._last_draw = now
            self._draw(now, note)

    def _draw(self, now: float, note: str) -> None:
        if not self.total:  # an open-ended run (a camera, a stream): a count and a rate, no bar
            rate = self.done / max(now - self.start, 1e-9)
            self.stream.write(f"\r{self.desc} {self.done} {rate:6.1f}/s {note}".ljust(80))
            self.stream.flush()
            return
        frac = min(self.done / self.total, 1.0)
        filled = int(frac * self.width)
        rate = self.done / max(now - self.start, 1e-9)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
        line = f"\r{self.desc} {self.done}/{self.total} [{bar}] {frac:4.0%} {rate:6.1f} img/s {note}"
        self.stream.write(line.ljust(80))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
