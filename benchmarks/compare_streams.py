"""Many streams, one process: `edgeseg track` over N videos at once against N `edgeseg track` processes run at the
same time, and against one stream alone, on the same model.

    python benchmarks/compare_streams.py [--streams 4] [--frames 40] [--rounds 1] [--threads N] [--no-dynamic]
                                         [--json out.json]

The videos are seeded synthetic 1280x720 pans over scenes of shapes (MJPG .avi, a different scene each). Every run
is the real command in fresh processes, tracking and writing an annotated video per stream (--save):
  - one stream: `edgeseg track --source v0.avi --save ...`,
  - N streams in one process: `edgeseg track --source v0.avi ... vN.avi --save DIR`,
  - N processes: N single-stream commands started together.
Aggregate frames per second: all frames over the wall time from the first start to the last exit (start-up, the
model's loading, included), and over the processing loops (from the first loop's start, as each command's own
report dates it, to the last exit). Peak memory: each process's own peak resident set (VmHWM, sampled every 20 ms),
summed over the N processes (an upper bound of their peak together: they run side by side).
With Ultralytics installed, the same again with a dynamic-batch export of the model, the one process batching N
frames of different streams per network run (--batch N). Note that it is also dynamic in height and width: a
1280x720 frame runs at 640x384, not 640x640. Rounds alternate the runs, so drift on a shared machine hits all
alike; the table gives medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scenes import MODEL

from edgeseg.app.synthetic import panning_frames
from edgeseg.outputs.video_writer import VideoWriter

SIZE = (1280, 720)
FPS = 30.0
_REPORT = re.compile(r"^(\d+) frames from .*? at ([\d.]+) fps", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    """One configuration's measurements: frames, wall seconds (from the start to the last exit), the frames per
    second of the processing loops together, the sum of the processes' peak resident sets (MiB)."""

    frames: int
    wall_s: float
    loop_fps: float
    peak_mib: float

    @property
    def wall_fps(self) -> float:
        return self.frames / self.wall_s


def make_videos(folder: Path, streams: int, frames: int, objects: int) -> list[Path]:
    paths = []
    for k in range(streams):
        path = folder / f"cam{k}.avi"
        with VideoWriter(path, FPS, SIZE) as writer:
            for frame in panning_frames(*SIZE, objects=objects, frames=frames, seed=10 + k, step=(6, 3)):
                writer.write(frame)
        paths.append(path)
    return paths


def _peak_kib(pid: int) -> int:
    """The process's own peak resident set so far (VmHWM, KiB; 0 once it is gone). getrusage of a reaped child
    would not do: Python starts children with vfork, and Linux then counts this process's resident set as theirs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def run_together(commands: list[list[str]], logs: Path) -> Run:
    """Starts every command at once and waits for all, sampling their peak memory every 20 ms; their own report
    lines give frames and loop rates."""
    logs.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    procs = []
    for k, command in enumerate(commands):
        with open(logs / f"{k}.out", "w") as out, open(logs / f"{k}.err", "w") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "edgeseg", *command], stdout=out, stderr=err))
    peaks, ends = [0] * len(procs), [0.0] * len(procs)
    while not all(ends):
        for k, proc in enumerate(procs):
            if not ends[k]:
                peaks[k] = max(peaks[k], _peak_kib(proc.pid))
                if proc.poll() is not None:
                    ends[k] = time.perf_counter() - start
        time.sleep(0.02)
    frames, loop_start = 0, min(ends)
    for k, proc in enumerate(procs):
        text = (logs / f"{k}.out").read_text()
        if proc.returncode != 0 or not (found := _REPORT.search(text)):
            raise SystemExit(f"{' '.join(commands[k])} failed ({proc.returncode}):\n{(logs / f'{k}.err').read_text()}")
        frames += int(found.group(1))
        loop_start = min(loop_start, ends[k] - int(found.group(1)) / float(found.group(2)))  # its loop's start
    # the loops' rate together: all frames over the span from the first loop's start to the last exit
    return Run(frames, max(ends), frames / (max(ends) - loop_start), sum(peaks) / 1024)


def track(model: Path, sources: list[Path], save: Path, threads: int | None, batch: int | None) -> list[str]:
    command = ["track", "--model", str(model), "--source", *map(str, sources), "--save", str(save),
               "--tracker", "bytetrack.yaml"]
    command += ["--threads", str(threads)] if threads else []
    return command + (["--batch", str(batch)] if batch else [])


def dynamic_export(folder: Path, imgsz: int) -> Path | None:
    """The shapes model exported again with a dynamic batch (as tests/conftest.py does), or None without Ultralytics."""
    try:
        import ultralytics
    except ImportError:
        return None
    os.environ.setdefault("YOLO_OFFLINE", "1")
    checkpoint = Path(shutil.copy(MODEL.with_suffix(".pt"), folder / MODEL.with_suffix(".pt").name))
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # its banner would bury the table
        exported = ultralytics.YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, dynamic=True, verbose=False)
    return Path(shutil.move(exported, folder / "shapes-dynamic.onnx"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="frames per video")
    parser.add_argument("--objects", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, help="ONNX Runtime's CPU threads per process (default: one per core)")
    parser.add_argument("--no-dynamic", dest="dynamic", action="store_false", help="skip the dynamic-batch model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    n = args.streams
    results: dict[str, dict[str, list[Run]]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        videos = make_videos(tmp, n, args.frames, args.objects)
        models = {"fixed batch 1": (MODEL, None)}
        if args.dynamic and (dynamic := dynamic_export(tmp, 640)) is not None:
            models[f"dynamic batch, --batch {n}"] = (dynamic, n)
        for label, (model, batch) in models.items():
            runs = results[label] = {"1 stream": [], f"{n} streams, 1 process": [], f"{n} processes": []}
            for r in range(args.rounds):
                out = tmp / f"out-{r}"
                runs["1 stream"].append(run_together([track(model, videos[:1], out / "one.mp4", args.threads, None)],
                                                     out / "logs-one"))
                runs[f"{n} streams, 1 process"].append(run_together(
                    [track(model, videos, out / "many", args.threads, batch)], out / "logs-many"))
                runs[f"{n} processes"].append(run_together(
                    [track(model, [v], out / f"proc-{v.stem}.mp4", args.threads, None) for v in videos],
                    out / "logs-procs"))
                shutil.rmtree(out)

    print(f"{n} videos of {SIZE[0]}x{SIZE[1]}, {args.frames} frames each, {args.objects} shapes, {args.rounds} "
          f"round(s), medians; model {MODEL.name}; {os.cpu_count()} CPUs, network threads "
          f"{args.threads or 'one per core'}; load average {load:.1f} -> {os.getloadavg()[0]:.1f}\n")
    print("| model | run | frames | aggregate fps (wall, start-up included) | aggregate fps (loops) | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for label, runs in results.items():
        medians = summary[label] = {}
        for name, samples in runs.items():
            medians[name] = {"frames": samples[0].frames,
                             "wall_fps": statistics.median(s.wall_fps for s in samples),
                             "loop_fps": statistics.median(s.loop_fps for s in samples),
                             "peak_mib": statistics.median(s.peak_mib for s in samples)}
            m = medians[name]
            print(f"| {label} | {name} | {m['frames']} | {m['wall_fps']:.2f} | {m['loop_fps']:.2f} | "
                  f"{m['peak_mib']:.0f} |")
        one, many, procs = (medians[k] for k in runs)
        print(f"| {label} | targets | | {n} in 1 at {many['wall_fps'] / procs['wall_fps']:.2f}x the {n} processes "
              f"(>= 1) | {many['loop_fps'] / procs['loop_fps']:.2f}x | {many['peak_mib'] / one['peak_mib']:.2f}x one "
              f"stream's (<= 1.3); the {n} processes {procs['peak_mib'] / one['peak_mib']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"medians": summary, "streams": n, "frames": args.frames,
                                         "samples": {label: {name: [vars(s) for s in samples]
                                                             for name, samples in runs.items()}
                                                     for label, runs in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
