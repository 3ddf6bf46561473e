"""A small progress bar for long runs (stderr, one line, redrawn in place)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`with Progress(total, "predict") as bar: ... bar.update()`; silent when disabled. `total` 0: an open-ended
    run (a camera, a stream), shown as a count and a rate. `unit`: what the rate counts ("img/s", "fps")."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream: TextIO | None = None, width: int = 24,
                 unit: str = "img/s"):
        self.total, self.desc, self.enabled, self.width, self.unit = total, desc, enabled, width, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._line = ""  # what the bar shows now, so that write() can put it back

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.1 or 0 < self.total <= self.done):
            self._last_draw = now
            self._draw(now, note)

    def write(self, text: str) -> None:
        """Prints `text` as a line of its own above the bar (a line printed straight to the stream would be drawn
        over by the bar's next redraw, or run into it)."""
        if self.enabled and self._line:
            self.stream.write("\r" + " " * len(self._line) + "\r")
        self.stream.write(text + "\n")
        if self.enabled and self._line:
            self.stream.write(self._line)
        self.stream.flush()

    def _draw(self, now: float, note: str) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        if not self.total:
            line = f"{self.desc} {self.done} {rate:6.1f} {self.unit} {note}"
        else:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
            line = f"{self.desc} {self.done}/{self.total} [{bar}] {frac:4.0%} {rate:6.1f} {self.unit} {note}"
        self._line = "\r" + line.rstrip().ljust(80)
        self.stream.write(self._line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()
        self._line = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
