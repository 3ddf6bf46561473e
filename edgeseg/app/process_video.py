"""A video, camera or stream through the whole chain: segment, track, annotate, write, cut out.

The network and the reading run in threads (Segmenter.stream_frames) while this thread decodes
masks, tracks, draws and writes the previous frames, so the frame rate approaches the network's own.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..inputs.frames import Frame
from ..inputs.source import open_source
from ..outputs.annotate import Annotator
from ..outputs.files import same_file, write_image
from ..outputs.isolate import isolate, safe_label
from ..outputs.video_writer import VideoWriter
from ..results import Results
from ..segmenter import Segmenter
from ..tracking import Tracker
from .progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoReport:
    """What process_video did: frames processed, read, dropped (live) and skipped (corrupt), reconnects, the
    achieved frames per second over the whole run, tracks started, and the files written. `partial_frames`: the
    run stopped early and `video` holds only the frames written until then, this many."""

    source: str
    frames: int
    frames_read: int
    frames_dropped: int
    frames_corrupt: int
    reconnects: int
    seconds: float
    tracks: int
    video: Path | None
    cutouts: int
    partial_frames: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        parts = [f"{self.frames} frames from {self.source} at {self.fps:.1f} fps"]
        if self.frames_dropped or self.frames_corrupt or self.reconnects:
            parts.append(f"{self.frames_dropped} dropped, {self.frames_corrupt} unreadable, "
                         f"{self.reconnects} reconnects")
        if self.tracks:
            parts.append(f"{self.tracks} tracks")
        if self.video:
            partial = self.partial_frames is not None
            parts.append(f"video in {self.video}" + (f" (partial: the {self.partial_frames} frames written before the "
                                                     "run stopped)" if partial else ""))
        if self.cutouts:
            parts.append(f"{self.cutouts} cut-outs")
        return "; ".join(parts)


def save_track_cutouts(result: Results, folder: Path, frame: int, background: str = "transparent") -> int:
    """Each tracked object's cut-out as `{folder}/{label}-{id}/{frame:06d}.png`: one folder per track."""
    if result.boxes.id is None:
        return 0
    written = 0
    for k, cutout in enumerate(isolate(result, background=background, crop=True)):
        if cutout.size:
            label = safe_label(result.names.get(int(result.boxes.cls[k]), str(result.boxes.cls[k])))
            write_image(folder / f"{label}-{int(result.boxes.id[k])}" / f"{frame:06d}.png", cutout)
            written += 1
    return written


def _size_changed(writer: VideoWriter, index: int, size: tuple[int, int]) -> OutputError:
    """The error for a source whose frames change size at frame `index`: a video has one size, so the frames
    written so far are finished as a video of their own, and the error says where they are."""
    change = f"the video changed size at frame {index} ({writer.size[0]}x{writer.size[1]} -> {size[0]}x{size[1]})"
    written = writer.frames_written
    try:
        kept = writer.close()
    except OutputError as e:
        return OutputError(f"{change}, and the {written} frames before it could not be kept: {e}")
    return OutputError(f"cannot go on writing {writer.path}: {change}; the {written} frames before it are in {kept}")


def process_video(segmenter: Segmenter, source: Any, *, tracker: Tracker | None = None,
                  annotator: Annotator | None = None, save: str | Path | None = None,
                  isolate_dir: str | Path | None = None, progress: bool = True,
                  on_result: Callable[[Frame, Results], None] | None = None, **source_options: Any) -> VideoReport:
    """Runs `segmenter` over every frame of `source` (see inputs.source.open_source), in order, with the stages
    overlapped.

    tracker: gives each result track ids (boxes.id). annotator: draws each frame for `save`, a video file with the
    source's size and frame rate (written to a temporary name, checked and renamed; a failed write is an
    OutputError and leaves no file). on_result(frame, result) is called for every frame. isolate_dir: per-track
    cut-outs. When the run stops early (Ctrl-C, an error, frames that change size: OutputError) what was written is
    kept as a playable video if it checks out, and the summary, logged, says the video is partial.
    """
    if save is not None and isinstance(source, (str, os.PathLike)) and same_file(save, source):
        # the annotated video would be renamed over the one being read: the user's original, gone
        raise OutputError(f"cannot write {save}: it is the video being read; give another name")
    writer: VideoWriter | None = None
    count = cutouts = 0
    track_ids: set[int] = set()

    def report(seconds: float, video: Path | None, partial_frames: int | None = None) -> VideoReport:
        return VideoReport(str(frames.name), count, frames.frames_read, frames.frames_dropped, frames.frames_corrupt,
                           frames.reconnects, seconds, len(track_ids), video, cutouts, partial_frames)

    try:
        with ExitStack() as stack:
            frames = stack.enter_context(open_source(source, **source_options))
            # a file announces its frame count (a bar with a total); a camera or stream runs open-ended
            total = frames.frame_count if not frames.live else None
            bar = stack.enter_context(Progress(total or 0, "frames", enabled=progress, unit="fps"))
            start = time.perf_counter()
            for frame, result in segmenter.stream_frames(frames):
                if tracker is not None:
                    result = tracker.update(result)
                    track_ids.update(result.boxes.id.tolist() if result.boxes.id is not None else ())
                if save is not None:
                    height, width = frame.image.shape[:2]
                    if writer is None:  # the size is known for certain only once a frame is here
                        fps = frames.fps or frame.fps or 30.0
                        writer = stack.enter_context(VideoWriter(save, fps, (width, height)))
                    elif (width, height) != writer.size:
                        raise _size_changed(writer, frame.index, (width, height))
                    writer.write(annotator.annotate(frame.image, result) if annotator is not None else frame.image)
                if isolate_dir is not None:
                    cutouts += save_track_cutouts(result, Path(isolate_dir), frame.index)
                if on_result is not None:
                    on_result(frame, result)
                count += 1
                bar.update(note=f"{frames.frames_dropped} dropped" if frames.live else "")
            seconds = time.perf_counter() - start
    except BaseException:
        # the stack has finished and checked the video by now; closing again only tells whether it was kept
        kept = writer.close() if writer is not None else None
        if kept is not None:
            log.warning("%s", report(time.perf_counter() - start, kept, writer.frames_written).format())
        raise
    return report(seconds, Path(save) if save is not None and count else None)
