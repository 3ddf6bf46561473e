"""What the live view costs: `edgeseg track` video fps without --view, with --view and nobody watching, and with one
viewer reading the MJPEG stream.

    python benchmarks/compare_view.py [--frames 300] [--size 1280x720] [--rounds 3] [--json out.json]

The video is a seeded synthetic pan (MJPG .avi). Each run is the real command in a fresh process (`python -m edgeseg
track`, its report's fps: frames over the whole run, as the user sees it); the viewer is an http.client
reading /stream/0.mjpg from the moment the `view: URL` line appears until the stream ends. Rounds alternate the three
ways, so drift on a shared machine hits all alike; the table gives medians over rounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

from edgeseg.app.synthetic import panning_frames
from edgeseg.assets import demo_model_path
from edgeseg.outputs.video_writer import VideoWriter

WAYS = ("no view", "view, unwatched", "view, one viewer")


def make_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    with VideoWriter(path, 30.0, size) as writer:
        for frame in panning_frames(*size, objects=12, frames=frames, seed=5, step=(2, 1)):
            writer.write(frame)
    return path


def read_stream(url: str, counts: list[int]) -> None:
    """Reads the MJPEG stream of stream 0 until it ends, counting the JPEGs."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    conn.request("GET", "/stream/0.mjpg")
    response = conn.getresponse()
    while (line := response.fp.readline()):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            response.fp.readline()
            response.fp.read(length)
            counts[0] += 1


def run_track(video: Path, way: str, model: Path) -> tuple[float, int]:
    """One `edgeseg track` run: its reported fps, and the frames the viewer got."""
    args = [sys.executable, "-m", "edgeseg", "track", "--model", str(model), "--source", str(video)]
    if way != "no view":
        args += ["--view", "127.0.0.1:0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    counts, viewer = [0], None
    if way != "no view":
        for line in proc.stderr:
            if line.startswith("view: "):
                if way == "view, one viewer":
                    viewer = threading.Thread(target=read_stream, args=(line.split()[1], counts), daemon=True)
                    viewer.start()
                break
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"edgeseg track failed: {err}")
    if viewer is not None:
        viewer.join(60)
    fps = re.search(r"at ([\d.]+) fps", out)
    if fps is None:
        raise RuntimeError(f"no fps in the report: {out}")
    return float(fps.group(1)), counts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=demo_model_path())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    fps: dict[str, list[float]] = {way: [] for way in WAYS}
    received: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "pan.avi", args.frames, (width, height))
        for _ in range(args.rounds):
            for way in WAYS:
                rate, frames = run_track(video, way, args.model)
                fps[way].append(rate)
                if way == "view, one viewer":
                    received.append(frames)
    medians = {way: statistics.median(rates) for way, rates in fps.items()}
    print(f"edgeseg track, {args.frames} frames {width}x{height}, median of {args.rounds} rounds "
          f"(--view-fps 10, --view-width 960):")
    for way in WAYS:
        rates = ", ".join(f"{r:.1f}" for r in fps[way])
        print(f"  {way:18} {medians[way]:6.1f} fps  ({rates})")
    print(f"  the viewer received {statistics.median(received):.0f} frames a run (median)")
    if args.json:
        args.json.write_text(json.dumps({"frames": args.frames, "size": [width, height], "fps": fps,
                                         "median_fps": medians, "viewer_frames": received}, indent=2))


if __name__ == "__main__":
    main()
