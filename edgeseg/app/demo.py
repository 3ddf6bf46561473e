"""The offline demo: synthetic scenes through the shipped demo model, with pictures, cut-outs and timings.

    report = run_demo()            # writes runs/demo (or runs/demo2, ...) in the current folder
    print(report.format())

Needs no network and no files besides the package: the model is edgeseg/assets' ONNX file and
the scenes come from edgeseg.app.synthetic, which also knows what it drew, so the summary can say
how many of the drawn shapes the model found.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import demo_model_path
from ..errors import ConfigError, OutputError
from ..outputs.annotate import plot
from ..outputs.files import new_numbered_folder, write_bytes, write_image
from ..results import Results
from ..segmenter import Segmenter
from .progress import Progress
from .synthetic import Scene, make_scene

# (width, height, shapes) of the demo scenes, used in turn: landscape, HD, portrait, full HD
SCENE_SIZES = ((640, 480, 6), (1280, 720, 12), (480, 640, 5), (1920, 1080, 20))
STAGES = ("preprocess", "inference", "postprocess")
MATCH_IOU = 0.5  # a found object matches a drawn one when their masks overlap this much (intersection over union)


@dataclass(frozen=True)
class DemoImage:
    """One demo scene: what was drawn and found, the per-stage milliseconds, and the files written for it."""

    name: str
    width: int
    height: int
    drawn: int  # shapes visible in the scene
    found: int  # objects the model returned
    matched: int  # found objects whose mask matches a drawn shape's (IoU >= MATCH_IOU), each shape matched once
    right_class: int  # matched objects that also have the drawn shape's class
    ms: dict[str, float]  # preprocess, inference, postprocess
    input: Path
    annotated: Path
    isolated: tuple[Path, ...]


@dataclass(frozen=True)
class DemoReport:
    """What run_demo did. Paths are inside out_dir; format() is the text of summary.txt."""

    out_dir: Path
    model: Path
    provider: str
    imgsz: tuple[int, int]
    settings: dict[str, float | bool]  # conf, iou, agnostic_nms
    startup_ms: float  # opening the model and the first (warm-up) run, which loads or compiles the kernels
    images: tuple[DemoImage, ...]
    summary_txt: Path
    summary_json: Path

    @property
    def mean_ms(self) -> dict[str, float]:
        """Milliseconds per image for each stage, averaged over the scenes."""
        return {stage: float(np.mean([im.ms[stage] for im in self.images])) for stage in STAGES}

    def totals(self) -> dict[str, int]:
        return {key: sum(getattr(im, key) for im in self.images)
                for key in ("drawn", "found", "matched", "right_class")}

    def to_dict(self) -> dict:
        """The content of summary.json; file paths relative to out_dir."""
        def rel(p: Path) -> str:
            return p.relative_to(self.out_dir).as_posix()

        return {
            "model": self.model.name,
            "provider": self.provider,
            "imgsz": list(self.imgsz),
            "settings": self.settings,
            "startup_ms": round(self.startup_ms, 2),
            "mean_ms": {k: round(v, 3) for k, v in self.mean_ms.items()},
            "totals": self.totals(),
            "images": [{
                "name": im.name, "width": im.width, "height": im.height,
                "drawn": im.drawn, "found": im.found, "matched": im.matched, "right_class": im.right_class,
                "ms": {k: round(v, 3) for k, v in im.ms.items()},
                "input": rel(im.input), "annotated": rel(im.annotated), "isolated": [rel(p) for p in im.isolated],
            } for im in self.images],
            "summary": [rel(self.summary_txt), rel(self.summary_json)],
        }  # fmt: skip

    def format(self) -> str:
        """A short text summary; its last line names the output folder."""
        h, w = self.imgsz
        lines = [f"edgeseg demo: {len(self.images)} synthetic scenes, model {self.model.name} (input {w}x{h}) "
                 f"on {self.provider}",
                 f"{'image':<12}{'size':>10}{'drawn':>7}{'found':>7}{'matched':>9}{'class ok':>10}"
                 f"{'pre ms':>9}{'infer ms':>10}{'post ms':>9}"]
        for im in self.images:
            lines.append(f"{im.input.name:<12}{f'{im.width}x{im.height}':>10}{im.drawn:>7}{im.found:>7}{im.matched:>9}"
                         f"{im.right_class:>10}{im.ms['preprocess']:>9.1f}{im.ms['inference']:>10.1f}"
                         f"{im.ms['postprocess']:>9.1f}")
        mean = ", ".join(f"{stage} {ms:.1f}" for stage, ms in self.mean_ms.items())
        t = self.totals()
        isolated = sum(len(im.isolated) for im in self.images)
        lines += [
            f"ms per image: {mean} (start-up, model and kernels: {self.startup_ms:.0f} ms)",
            f"{t['drawn']} shapes drawn, {t['found']} found, {t['matched']} matched (mask IoU >= {MATCH_IOU}), "
            f"{t['right_class']} of these with the right class",
            f"wrote {len(self.images)} inputs/, {len(self.images)} annotated/, {isolated} isolated/ objects, "
            f"{self.summary_txt.name}, {self.summary_json.name}",
            f"output folder: {self.out_dir}",
        ]
        return "\n".join(lines)


def run_demo(out_dir: Path | None = None, images: int = 4, seed: int = 0, progress: bool = True) -> DemoReport:
    """Makes `images` synthetic scenes of different sizes, segments them with the shipped demo model and
    writes inputs/, annotated/, isolated/ (transparent cut-outs), summary.txt and summary.json to
    out_dir (default: a new runs/demo, runs/demo2, ... in the current folder)."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ConfigError(f"images must be a whole number >= 1, got {images!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:  # NumPy's generators take seeds >= 0
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    model = demo_model_path()  # before the folder: a missing model leaves no empty folder behind
    out = _make_folder(Path(out_dir)) if out_dir is not None else new_numbered_folder(Path("runs") / "demo")
    rng = np.random.default_rng(seed)  # one stream for all scenes: the same seed gives the same scenes
    done: list[DemoImage] = []
    t0 = time.perf_counter()
    # agnostic NMS: this small model often calls one shape two names, and the demo should show one object per shape
    with Segmenter(model, agnostic_nms=True) as seg, Progress(images, "demo", enabled=progress) as bar:
        seg.warmup()  # every kernel loads (or compiles) before the timed scenes
        startup_ms = (time.perf_counter() - t0) * 1e3
        for k in range(images):
            width, height, shapes = SCENE_SIZES[k % len(SCENE_SIZES)]
            scene = make_scene(width, height, shapes, rng)
            source = write_image(out / "inputs" / f"scene{k}.jpg", scene.image)
            # segment the written file, as a user would: results carry its path, which names the cut-outs
            (result,) = seg.predict(source)
            annotated = write_image(out / "annotated" / source.name, plot(result))
            isolated = result.save_isolated(out / "isolated", background="transparent", crop=True)
            matched, right_class = _match(result, scene)
            done.append(DemoImage(source.name, width, height, len(scene), len(result), matched, right_class,
                                  {stage: float(result.speed[stage]) for stage in STAGES},
                                  source, annotated, tuple(Path(p) for p in isolated)))
            bar.update()
        provider, imgsz = seg.providers[0], seg.imgsz
        settings = {"conf": seg.config.conf, "iou": seg.config.iou, "agnostic_nms": seg.config.agnostic_nms}
    report = DemoReport(out, model, provider, imgsz, settings, startup_ms, tuple(done),
                        out / "summary.txt", out / "summary.json")
    write_bytes(report.summary_txt, (report.format() + "\n").encode())
    write_bytes(report.summary_json, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return report


def _match(result: Results, scene: Scene) -> tuple[int, int]:
    """(matched, right_class): found objects, most confident first, each taking the unmatched drawn shape
    its mask overlaps most if their IoU >= MATCH_IOU. Looks only inside each found object's box."""
    areas = scene.areas
    taken = np.zeros(len(scene), bool)
    matched = right_class = 0
    for k in np.argsort(-result.boxes.conf, kind="stable"):
        crop, (x0, y0) = result.masks.crops[k].astype(bool), result.masks.origins[k]  # the demo's: source masks
        under = scene.instance_ids[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]][crop]
        inter = np.bincount(under, minlength=len(scene) + 1)[1:]
        iou = inter / np.maximum(np.count_nonzero(crop) + areas - inter, 1)
        iou[taken] = 0
        if len(iou) == 0 or iou.max() < MATCH_IOU:
            continue
        j = int(np.argmax(iou))
        taken[j] = True
        matched += 1
        right_class += int(scene.classes[j] == result.boxes.cls[k])
    return matched, right_class


def _make_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
    return folder
