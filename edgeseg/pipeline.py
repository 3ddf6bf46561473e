"""Three stages overlapped in threads: one thread prepares items, another runs them through the network, and the
caller's thread finishes each one, in order. ONNX Runtime, OpenCV and the Numba kernels release the GIL, so on a
machine with cores to spare the slowest stage sets the rate, not the sum of the three."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()  # the last item a stage hands on


class _Failure:
    """An exception raised in a stage's thread, on its way to the caller's thread."""

    def __init__(self, error: BaseException):
        self.error = error


def overlapped(items: Iterable[Any], prepare: Callable[[Any], Any], infer: Callable[[Any], Any],
               finish: Callable[[Any], Iterable[T]], depth: int = 2, in_flight: int = 1) -> Iterator[T]:
    """Yields from finish(infer(prepare(item))) for each item of `items`, in order, with the reading of `items`
    and prepare in one thread, infer in another and finish in the caller's. `depth`: items waiting between two
    stages. `in_flight`: infer calls running at once (threads of their own), for a backend whose device works on
    several requests together (OpenVINO's throughput hint); `infer` must then be thread-safe, and up to depth +
    in_flight prepared items wait on it. An exception in a stage (or in iterating `items`) is raised in the
    caller's thread once the items before it are finished; closing the generator early stops the threads."""
    stop = threading.Event()
    prepared: queue.Queue = queue.Queue(maxsize=depth)
    inferred: queue.Queue = queue.Queue(maxsize=depth)

    def put(q: queue.Queue, item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put(prepared, prepare(item)):
                    return
            put(prepared, _END)
        except BaseException as e:  # handed to the caller's thread, which raises it
            put(prepared, _Failure(e))

    def run() -> None:
        # with several runs in flight, futures in submission order: the caller's thread takes them in order,
        # whichever run ends first
        runs = ThreadPoolExecutor(in_flight, thread_name_prefix="edgeseg-infer") if in_flight > 1 else None
        try:
            while True:
                item = _take(prepared, stop)
                if item is None or isinstance(item, _Failure) or item is _END:
                    if item is not None:
                        put(inferred, item)
                    return
                if runs is not None:
                    handed = runs.submit(infer, item)
                else:
                    try:
                        handed = infer(item)
                    except BaseException as e:
                        put(inferred, _Failure(e))
                        return
                if not put(inferred, handed):
                    return
        finally:
            if runs is not None:
                runs.shutdown(cancel_futures=True)  # closed early: the runs not started are not started

    if in_flight < 1:
        raise ValueError(f"in_flight must be at least 1, got {in_flight}")
    workers = [threading.Thread(target=read, name="edgeseg-read", daemon=True),
               threading.Thread(target=run, name="edgeseg-infer", daemon=True)]
    for w in workers:
        w.start()
    try:
        while True:
            item = _take(inferred, stop)
            if item is _END or item is None:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield from finish(item.result() if isinstance(item, Future) else item)
    finally:
        stop.set()
        for w in workers:
            # the reader may be waiting on a live source for its next frame: closing that source ends it
            w.join(timeout=5.0)


def _take(q: queue.Queue, stop: threading.Event) -> Any:
    """The next item of a stage's queue, or None once `stop` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return None
