"""Many videos, cameras and streams through the whole chain in one process: one model, frames of every stream
batched into its runs, and per stream what process_video does for one: a tracker, an annotated video, cut-outs and a
report. A stream that cannot be opened, fails, or whose output fails ends on its own; the others go on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OutputError, SourceError
from ..inputs.frames import Frame
from ..inputs.images import VIDEO_SUFFIXES, expand_source
from ..inputs.source import is_video_source
from ..inputs.streams import MultiSource, Stream, stream_names
from ..outputs.annotate import Annotator
from ..outputs.files import check_folder_holds_no_inputs, check_not_inputs, exists
from ..results import Results
from ..segmenter import Segmenter
from ..tracking.trackers import AnyTrackerConfig, load_config, make_tracker
from .process_video import VideoOutputs, VideoReport
from .progress import Progress

if TYPE_CHECKING:
    from .view import LiveView

log = logging.getLogger(__name__)

VIDEO_SUFFIX = ".mp4"  # each stream's annotated video: {save_dir}/{stream name}.mp4


@dataclass(frozen=True)
class StreamReport(VideoReport):
    """process_video's report for one stream of process_streams, with its output `name` and `error`: why it stopped
    early (it could not be opened, failed while read, or its output failed), None when it ran to its end."""

    name: str = ""
    error: str | None = None

    def format(self) -> str:
        if self.error is not None and not self.frames_read:
            return f"{self.name}: failed: {self.error}"
        parts = [f"{self.name}: {self.frames} frames at {self.fps:.1f} fps",
                 f"{self.frames_dropped} dropped, {self.frames_corrupt} unreadable, {self.reconnects} reconnects",
                 f"{self.tracks} tracks"]
        if self.video is not None:
            partial = "" if self.partial_frames is None else f" (partial: {self.partial_frames} frames)"
            parts.append(f"video in {self.video}{partial}")
        if self.cutouts:
            parts.append(f"{self.cutouts} cut-outs")
        if self.error is not None:
            parts.append(f"failed: {self.error}")
        return "; ".join(parts)


@dataclass(frozen=True)
class StreamsReport:
    """What process_streams did: one StreamReport per source, in the order given, and the run's length."""

    streams: tuple[StreamReport, ...]
    seconds: float

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.streams)

    @property
    def fps(self) -> float:
        """Frames per second of all streams together."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> tuple[StreamReport, ...]:
        return tuple(s for s in self.streams if s.error is not None)

    def format(self) -> str:
        failed = f" ({len(self.failed)} failed)" if self.failed else ""
        head = f"{self.frames} frames from {len(self.streams)} streams{failed} at {self.fps:.1f} fps in all"
        return "\n".join([head, *(f"  {s.format()}" for s in self.streams)])


def check_stream_outputs(sources: Sequence[Any], names: Sequence[str], save_dir: str | Path | None,
                         isolate_dir: str | Path | None, protected: Sequence[str | os.PathLike] = (),
                         flags: tuple[str, str] = ("save_dir", "isolate_dir")) -> None:
    """Before the model loads: `save_dir` is a folder, and none of the streams' videos in it ({name}.mp4) is one of
    the inputs (a source, or one of `protected`: the model, settings files), which it would replace; `isolate_dir`
    holds no input image. `flags`: how messages name the two. OutputError otherwise."""
    inputs = [*_input_files(sources), *protected]
    if save_dir is not None:
        save_dir = Path(save_dir)
        if save_dir.suffix.lower() in VIDEO_SUFFIXES or (exists(save_dir) and not save_dir.is_dir()):
            raise OutputError(f"{flags[0]} {save_dir}: with several sources it names a folder, for one video per "
                              f"stream ({names[0]}{VIDEO_SUFFIX}, ...)")
        check_not_inputs({f"{flags[0]} {save_dir} (file {name}{VIDEO_SUFFIX})": save_dir / f"{name}{VIDEO_SUFFIX}"
                          for name in names}, inputs)
    if isolate_dir is not None:
        check_folder_holds_no_inputs(Path(isolate_dir), inputs, flags[1])


def _input_files(sources: Sequence[Any]) -> list[str | os.PathLike]:
    """The files the sources name: videos, and the images of folders and globs (a source that is not there is
    passed over: it fails as a stream, on its own)."""
    files: list[str | os.PathLike] = []
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):
            continue
        if is_video_source(source):
            files.append(source)
            continue
        try:
            files.extend(i for i in expand_source(source) if isinstance(i, (str, os.PathLike)))
        except SourceError:
            pass
    return files


def process_streams(segmenter: Segmenter, sources: Sequence[Any], *,
                    tracker: str | os.PathLike | AnyTrackerConfig | None = None, annotator: Annotator | None = None,
                    save_dir: str | Path | None = None, isolate_dir: str | Path | None = None, progress: bool = True,
                    on_result: Callable[[Frame, Results], None] | None = None, queue_size: int = 1,
                    view: LiveView | None = None, **source_options: Any) -> StreamsReport:
    """Runs `segmenter` over several sources at once (inputs.streams.MultiSource: every frame of a file in order,
    the newest of a live source; frames of all streams batched into one network run, the stages overlapped).

    Per stream, as process_video does for one: `tracker` (a tracker file or settings) makes it a tracker of its
    own; `annotator` draws its frames into `save_dir`/{name}.mp4 (names from inputs.streams.stream_names: a file's
    stem, camera0, a URL's host and path; unique); its cut-outs go to `isolate_dir`/{name}/{class}-{id}/. on_result
    (frame, result) sees every frame (frame.stream: which source). A progress line shows each stream's fps and
    drops. A stream that cannot be opened or fails (its source, or its video: OutputError) ends with a warning
    and its error in the report; the others go on. SourceError when no source at all could be opened. When the run
    stops early (Ctrl-C, an error), each video written so far is kept, playable, as process_video keeps one.
    view: a started app.view.LiveView with one stream per source, in order: each shown live, drawn by `annotator`.
    """
    names = stream_names(sources)
    check_stream_outputs(sources, names, save_dir, isolate_dir)
    settings = load_config(tracker) if isinstance(tracker, (str, os.PathLike)) else tracker
    outputs: list[VideoOutputs] = []
    last: dict[int, float] = {}  # when each stream's last result came, from the start
    dropped: set[int] = set()  # the streams whose outputs failed: their frames still on the way go nowhere
    start = time.perf_counter()
    try:
        with ExitStack() as stack:
            multi = stack.enter_context(MultiSource(sources, names=names, queue_size=queue_size, **source_options))
            outputs = [VideoOutputs(stack, tracker=None if settings is None else make_tracker(settings),
                                    annotator=annotator,
                                    save=None if save_dir is None else Path(save_dir) / f"{name}{VIDEO_SUFFIX}",
                                    isolate_dir=None if isolate_dir is None else Path(isolate_dir) / name)
                       for name in names]
            bar = stack.enter_context(Progress(0, "frames", enabled=progress, unit="fps"))
            start = time.perf_counter()
            for frame, result in segmenter.stream_frames(multi):
                stream = multi.streams[frame.stream]
                if stream.index in dropped:
                    continue
                try:
                    result = outputs[stream.index].add(frame, result, stream.fps)
                except OutputError as e:
                    dropped.add(stream.index)
                    multi.drop(stream.index, str(e))
                    continue
                last[stream.index] = time.perf_counter() - start
                if on_result is not None:
                    on_result(frame, result)
                if view is not None:
                    view.add(stream.index, frame, result, annotator, outputs[stream.index].drawn,
                             {"dropped": stream.frames_dropped, "reconnects": stream.reconnects})
                bar.update(note=_note(multi.streams, outputs, last, time.perf_counter() - start))
            seconds = time.perf_counter() - start
    except BaseException:
        # the stack has finished and checked the videos by now; closing again only tells which were kept
        for stream_outputs in outputs:
            kept = stream_outputs.finish_video()
            if kept is not None:
                log.warning("stopped early: %s kept with the %s frames written", kept,
                            stream_outputs.writer.frames_written)  # type: ignore[union-attr]
        raise
    return StreamsReport(tuple(_report(s, o, last.get(s.index, 0.0)) for s, o in
                               zip(multi.streams, outputs, strict=True)), seconds)


def _report(stream: Stream, outputs: VideoOutputs, seconds: float) -> StreamReport:
    return StreamReport(stream.label, outputs.count, stream.frames_read, stream.frames_dropped, stream.frames_corrupt,
                        stream.reconnects, seconds, len(outputs.track_ids), outputs.finish_video(), outputs.cutouts,
                        name=stream.name, error=stream.error)


def _note(streams: Sequence[Stream], outputs: Sequence[VideoOutputs], last: dict[int, float], now: float) -> str:
    """The progress line's note: each stream's frames per second (until its last frame once it has ended) and
    drops, or that it failed."""
    parts = []
    for stream, out in zip(streams, outputs, strict=True):
        if stream.failed:
            parts.append(f"{stream.name} failed")
            continue
        done = stream.ended and not stream.queue
        seconds = last.get(stream.index, now) if done else now
        dropped = f" {stream.frames_dropped} dropped" if stream.frames_dropped else ""
        parts.append(f"{stream.name} {out.count / max(seconds, 1e-9):.1f} fps{dropped}{' ended' if done else ''}")
    return "| " + " | ".join(parts)
