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
from typing import TYPE_CHECKING, Any

from ..errors import OutputError
from ..inputs.frames import Frame, FrameSource
from ..inputs.source import open_source
from ..outputs.annotate import Annotator
from ..outputs.files import exists, same_file, write_image
from ..outputs.isolate import isolate, safe_label
from ..outputs.video_writer import VideoWriter
from ..results import Results
from ..segmenter import Segmenter
from ..tracking.trackers import AnyTracker
from .progress import Progress

if TYPE_CHECKING:
    import numpy as np

    from .view import LiveView

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


class TrackCutouts:
    """Each tracked object's cut-outs as `{folder}/{label}-{id}/{frame:06d}.png`: one folder per track for the whole
    run. Its label is the class the track settled on (boxes.track_cls, when the tracker votes; else the detector's
    class) when its first cut-out is written, and the folder keeps that name while the run goes on, so a track whose
    vote changes does not split its cut-outs over folders of two classes; finish() renames each folder to the label
    its track ended with (unless a folder of that name is there already)."""

    def __init__(self, folder: Path, background: str = "transparent"):
        self.folder, self.background = folder, background
        self.written = 0
        self._folders: dict[int, str] = {}  # track id -> its folder's name
        self._labels: dict[int, str] = {}  # track id -> its latest label

    def add(self, result: Results, frame: int) -> int:
        """Writes the cut-outs of one frame's tracked objects; returns how many."""
        if result.boxes.id is None:
            return 0
        written = 0
        for k, cutout in enumerate(isolate(result, background=self.background, crop=True)):
            track, cls = int(result.boxes.id[k]), int(result.boxes.label_cls[k])
            self._labels[track] = safe_label(result.names.get(cls, str(cls)))
            name = self._folders.setdefault(track, f"{self._labels[track]}-{track}")
            if cutout.size:
                write_image(self.folder / name / f"{frame:06d}.png", cutout)
                written += 1
        self.written += written
        return written

    def finish(self) -> None:
        """Names each track's folder by the label its track ended with. OutputError when a folder cannot be renamed."""
        for track, name in self._folders.items():
            final = f"{self._labels[track]}-{track}"
            if final == name or exists(self.folder / final) or not exists(self.folder / name):
                continue
            try:
                (self.folder / name).rename(self.folder / final)
            except OSError as e:
                raise OutputError(f"cannot rename {self.folder / name} to {final}: {e.strerror or e}") from None
            self._folders[track] = final


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


class VideoOutputs:
    """Where one video's results go, frame after frame: its tracker (track ids), its annotated video `save` (opened
    on the first frame, with that frame's size, and entered into `stack`, which finishes it) and per-track cut-outs
    in `isolate_dir`; counted for its report. process_video has one, process_streams one per stream."""

    def __init__(self, stack: ExitStack, *, tracker: AnyTracker | None = None, annotator: Annotator | None = None,
                 save: str | Path | None = None, isolate_dir: str | Path | None = None):
        self._stack, self.tracker, self.annotator = stack, tracker, annotator
        self.save = None if save is None else Path(save)
        self.isolate_dir = None if isolate_dir is None else Path(isolate_dir)
        self._cutouts = None if self.isolate_dir is None else TrackCutouts(self.isolate_dir)
        if self._cutouts is not None:
            stack.callback(self._cutouts.finish)  # at the end of the run, stopped early or not
        self.writer: VideoWriter | None = None
        self.drawn: np.ndarray | None = None  # the last frame drawn for `save`: a live view shows it as it is
        self.count = self.cutouts = 0
        self.track_ids: set[int] = set()

    def add(self, frame: Frame, result: Results, fps: float | None = None) -> Results:
        """Tracks, draws, writes and cuts out one frame's result; returns it with its track ids. `fps`: the source's
        frame rate for the video (else the frame's, else 30). OutputError when the video cannot be written, or when
        the frames change size (the frames written so far are then kept as a video of their own)."""
        if self.tracker is not None:
            result = self.tracker.update(result)
            self.track_ids.update(result.boxes.id.tolist() if result.boxes.id is not None else ())
        if self.save is not None:
            height, width = frame.image.shape[:2]
            if self.writer is None:  # the size is known for certain only once a frame is here
                self.writer = self._stack.enter_context(VideoWriter(self.save, fps or frame.fps or 30.0,
                                                                    (width, height)))
            elif (width, height) != self.writer.size:
                raise _size_changed(self.writer, frame.index, (width, height))
            drawn = self.annotator.annotate(frame.image, result) if self.annotator is not None else frame.image
            self.writer.write(drawn)
            self.drawn = drawn
        if self._cutouts is not None:
            self.cutouts += self._cutouts.add(result, frame.index)
        self.count += 1
        return result

    def report(self, source: FrameSource, seconds: float, video: Path | None,
               partial_frames: int | None = None) -> VideoReport:
        return VideoReport(str(source.name), self.count, source.frames_read, source.frames_dropped,
                           source.frames_corrupt, source.reconnects, seconds, len(self.track_ids), video, self.cutouts,
                           partial_frames)

    def finish_video(self) -> Path | None:
        """The annotated video, finished and checked (`stack` does it; again here only tells): where it was kept,
        or None when there is none (no frame written, or it failed). After a run stopped early, what was written."""
        return self.writer.close() if self.writer is not None else None


def process_video(segmenter: Segmenter, source: Any, *, tracker: AnyTracker | None = None,
                  annotator: Annotator | None = None, save: str | Path | None = None,
                  isolate_dir: str | Path | None = None, progress: bool = True,
                  on_result: Callable[[Frame, Results], None] | None = None, view: LiveView | None = None,
                  **source_options: Any) -> VideoReport:
    """Runs `segmenter` over every frame of `source` (see inputs.source.open_source), in order, with the stages
    overlapped.

    tracker: gives each result track ids (boxes.id). annotator: draws each frame for `save`, a video file with the
    source's size and frame rate (written to a temporary name, checked and renamed; a failed write is an
    OutputError and leaves no file). on_result(frame, result) is called for every frame. isolate_dir: per-track
    cut-outs. When the run stops early (Ctrl-C, an error, frames that change size: OutputError) what was written is
    kept as a playable video if it checks out, and the summary, logged, says the video is partial. view: a started
    app.view.LiveView, shown the frames live as its stream 0, drawn by `annotator`.
    """
    if save is not None and isinstance(source, (str, os.PathLike)) and same_file(save, source):
        # the annotated video would be renamed over the one being read: the user's original, gone
        raise OutputError(f"cannot write {save}: it is the video being read; give another name")
    outputs: VideoOutputs | None = None
    try:
        with ExitStack() as stack:
            frames = stack.enter_context(open_source(source, **source_options))
            outputs = VideoOutputs(stack, tracker=tracker, annotator=annotator, save=save, isolate_dir=isolate_dir)
            # a file announces its frame count (a bar with a total); a camera or stream runs open-ended
            total = frames.frame_count if not frames.live else None
            bar = stack.enter_context(Progress(total or 0, "frames", enabled=progress, unit="fps"))
            start = time.perf_counter()
            for frame, result in segmenter.stream_frames(frames):
                result = outputs.add(frame, result, frames.fps)
                if on_result is not None:
                    on_result(frame, result)
                if view is not None:
                    view.add(0, frame, result, annotator, outputs.drawn,
                             {"dropped": frames.frames_dropped, "reconnects": frames.reconnects})
                bar.update(note=f"{frames.frames_dropped} dropped" if frames.live else "")
            seconds = time.perf_counter() - start
    except BaseException:
        # the stack has finished and checked the video by now; closing again only tells whether it was kept
        kept = outputs.finish_video() if outputs is not None else None
        if kept is not None:
            log.warning("%s", outputs.report(frames, time.perf_counter() - start, kept,
                                             outputs.writer.frames_written).format())
        raise
    return outputs.report(frames, seconds, Path(save) if save is not None and outputs.count else None)
