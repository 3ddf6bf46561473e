"""Tracking a video: `edgeseg track` against Ultralytics' model.track(persist=True) + its annotator, same ONNX model.

    python benchmarks/compare_video.py [--frames 60] [--objects 20] [--rounds 2] [--threads N] [--json out.json]

The video is a seeded synthetic 1920x1080 pan over a scene of shapes (MJPG .avi, decoded by both sides). Each side
reads every frame, segments, tracks, draws masks, boxes and labels, and writes an annotated video:
  - edgeseg: process_video (the read, the network and the rest overlapped in threads),
  - Ultralytics: cv2.VideoCapture, model.track(frame, persist=True, retina_masks=True), results[0].plot(),
    cv2.VideoWriter, one after the other as its examples do,
  - the bare network rate: InferenceSession.run alone on one letterboxed frame, as often as there are frames.
Rounds alternate the three, so drift on a shared machine hits all alike; the table gives medians over rounds.
--threads N gives the network N CPU threads on both edgeseg's side and the bare one (default: ONNX Runtime's, one
per core): with fewer threads than cores, the other stages have a core of their own, as on a board with cores to spare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
from scenes import MODEL

from edgeseg import Segmenter, Tracker, process_video
from edgeseg.app.synthetic import panning_frames
from edgeseg.outputs.annotate import BoxAnnotator, LabelAnnotator, MaskAnnotator, compose
from edgeseg.outputs.video_writer import VideoWriter

SIZE = (1920, 1080)
FPS = 30.0


def make_video(path: Path, frames: int, objects: int) -> Path:
    with VideoWriter(path, FPS, SIZE) as writer:
        for frame in panning_frames(*SIZE, objects=objects, frames=frames, seed=5, step=(6, 3)):
            writer.write(frame)
    return path


def run_edgeseg(seg: Segmenter, video: Path, out: Path) -> tuple[float, int]:
    annotator = compose(MaskAnnotator(color_by="track"), BoxAnnotator(color_by="track"),
                        LabelAnnotator(color_by="track"))
    report = process_video(seg, video, tracker=Tracker(frame_rate=FPS), annotator=annotator, save=out, progress=False)
    return report.fps, report.frames


def run_ultralytics(video: Path, out: Path) -> tuple[float, int]:
    from ultralytics import YOLO

    model = YOLO(str(MODEL), task="segment")
    model.predict(next(panning_frames(*SIZE, objects=1, frames=1)), verbose=False)  # loads the session, not timed
    capture = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    count, start = 0, time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        result = model.track(frame, persist=True, retina_masks=True, verbose=False)[0]
        writer.write(result.plot())
        count += 1
    seconds = time.perf_counter() - start
    capture.release()
    writer.release()
    return count / seconds, count


def run_bare(seg: Segmenter, frames: int, threads: int | None) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(MODEL), options, providers=list(seg.providers))
    tensor = seg.preprocess([next(panning_frames(*SIZE, objects=1, frames=1))])[0].copy()
    feed = {session.get_inputs()[0].name: tensor}
    session.run(None, feed)
    start = time.perf_counter()
    for _ in range(frames):
        session.run(None, feed)
    return frames / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, help="the network's CPU threads, both sides (default: one per core)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "pan.avi", args.frames, args.objects)
        # as `edgeseg track` runs it
        seg = Segmenter(MODEL, provider_options={"cpu_spinning": False, "cpu_threads": args.threads})
        seg.warmup()
        process_video(seg, video, annotator=compose(MaskAnnotator()), progress=False, save=Path(tmp) / "warm.avi")
        samples: dict[str, list[float]] = {"edgeseg": [], "ultralytics": [], "bare": []}
        found = []
        for _ in range(args.rounds):
            fps, n = run_edgeseg(seg, video, Path(tmp) / "edgeseg.avi")
            samples["edgeseg"].append(fps)
            samples["ultralytics"].append(run_ultralytics(video, Path(tmp) / "ultralytics.avi")[0])
            samples["bare"].append(run_bare(seg, args.frames, args.threads))
            found.append(len(seg.predict(next(panning_frames(*SIZE, objects=args.objects, frames=1, seed=5)))[0]))
    median = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{args.frames} frames of {SIZE[0]}x{SIZE[1]}, {args.objects} shapes drawn ({found[0]} found in the first "
          f"frame), {args.rounds} rounds, medians; {os.cpu_count()} CPUs, network threads "
          f"{args.threads or 'one per core'}, load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| pipeline | frames per second | ratio |\n|---|---|---|")
    print(f"| edgeseg track + annotate + write | {median['edgeseg']:.1f} | "
          f"{median['edgeseg'] / median['ultralytics']:.2f}x Ultralytics (target >= 2x) |")
    print(f"| Ultralytics model.track + plot + write | {median['ultralytics']:.1f} | 1.00x |")
    print(f"| bare InferenceSession.run (network only) | {median['bare']:.1f} | edgeseg at "
          f"{median['edgeseg'] / median['bare']:.2f}x of it (target >= 0.9x) |")
    if args.json:
        args.json.write_text(json.dumps({"samples_fps": samples, "median_fps": median, "frames": args.frames,
                                         "objects": args.objects, "threads": args.threads}, indent=1))


if __name__ == "__main__":
    main()
