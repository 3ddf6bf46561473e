"""Makes the demo model shipped in edgeseg/assets: a YOLO11n-seg for synthetic shapes, as ONNX at 320x320.

    python export/make_demo_model.py --checkpoint ../shared/models/shapes11n-seg.pt    # export only (seconds)
    python export/make_demo_model.py --train --epochs 60                                # data, training, export
                                                                                        # (hours on a CPU)
    python export/make_demo_model.py --write-data runs/shapes-data                      # only the dataset

--train writes a synthetic dataset with edgeseg.app.synthetic in Ultralytics' YOLO-seg layout (with the
defaults, --seed 1 and 600 + 120 images of 320x320, it is the very dataset the shared model was
trained on, image for image), trains YOLO("yolo11n-seg.yaml") on it from scratch (or further from
--checkpoint), then exports the best weights. Needs the export extra: pip install -e ".[dev]".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edgeseg.app.synthetic import NAMES, make_scene
from edgeseg.outputs.files import write_bytes

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "edgeseg" / "assets" / "shapes11n-seg-320.onnx"
JPEG_QUALITY = 92  # as shared/tools/make_shapes.py wrote the training images


def write_dataset(folder: Path, train: int, val: int, size: int, seed: int, max_objects: int) -> Path:
    """images/{train,val}/NNNNN.jpg and labels/{train,val}/NNNNN.txt (class, then the visible polygon in [0, 1]);
    returns data.yaml. One random stream runs through both splits, as make_shapes.py drew it."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            scene = make_scene(size, size, (1, max_objects), rng, layout="random")
            ok, jpeg = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f"cannot encode image {i} of {split}")
            write_bytes(folder / "images" / split / f"{i:05d}.jpg", jpeg.tobytes())
            write_bytes(folder / "labels" / split / f"{i:05d}.txt", scene.yolo_labels().encode())
    data = folder / "data.yaml"
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(NAMES))
    write_bytes(data, f"path: {folder.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}".encode())
    return data


def train(data: Path, checkpoint: Path | None, epochs: int, imgsz: int, batch: int, device: str, project: Path) -> Path:
    """Trains with Ultralytics; returns the best checkpoint."""
    from ultralytics import YOLO

    model = YOLO(str(checkpoint) if checkpoint else "yolo11n-seg.yaml")
    # plots=False: plotting fetches a font from the internet, and these machines have none
    model.train(data=str(data), imgsz=imgsz, epochs=epochs, batch=batch, device=device, project=str(project.resolve()),
                name="shapes11n-seg", exist_ok=True, plots=False, workers=0)
    return Path(model.trainer.best)


def export(checkpoint: Path, out: Path, imgsz: int) -> Path:
    """Ultralytics' ONNX export (FP32, fixed batch 1 and imgsz, simplified, its metadata kept), moved to `out`."""
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        # Ultralytics writes the ONNX beside the checkpoint, which may be read-only (shared/)
        local = Path(shutil.copy(checkpoint, Path(tmp) / checkpoint.name))
        exported = YOLO(str(local)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, nms=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(out, Path(exported).read_bytes())
    out.chmod(0o644)  # write_bytes' temporary file is owner-only, and the wheel would install it so
    return out


def check(model: Path, imgsz: int) -> None:
    """Loads the file the way the demo does and runs it on a few grid scenes."""
    from edgeseg import Segmenter

    with Segmenter(model) as seg:
        if seg.names != dict(enumerate(NAMES)) or seg.imgsz != (imgsz, imgsz):
            raise SystemExit(f"{model}: expected names {NAMES} and input {imgsz}x{imgsz}, got {seg.names} and "
                             f"{seg.imgsz}")
        for seed, (w, h, n) in enumerate(((640, 480, 6), (1280, 720, 12), (480, 640, 5))):
            scene = make_scene(w, h, n, seed)
            (result,) = seg.predict(scene.image)
            print(f"  {w}x{h}: {len(scene)} shapes drawn, {len(result)} found")
        print(f"{model} ({model.stat().st_size / 2**20:.1f} MiB): {seg!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--checkpoint", type=Path,
                        help="Ultralytics .pt to export (or to go on training from, with --train)")
    parser.add_argument("--out", type=Path, default=ASSET,
                        help=f"ONNX file to write (default {ASSET.relative_to(REPO)})")
    parser.add_argument("--imgsz", type=int, default=320, help="training and export size (320)")
    parser.add_argument("--train", action="store_true", help="write the dataset and train before exporting")
    parser.add_argument("--write-data", type=Path, metavar="DIR", help="only write the dataset to DIR")
    parser.add_argument("--data", type=Path, default=Path("runs/shapes-data"), help="dataset folder for --train")
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=120)
    parser.add_argument("--max-objects", type=int, default=12, help="1 to this many shapes per image (12)")
    parser.add_argument("--seed", type=int, default=1, help="dataset seed (1: the shared model's dataset)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--project", type=Path, default=Path("runs/demo-model"), help="Ultralytics training folder")
    args = parser.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no update checks or downloads

    if args.write_data or args.train:
        folder = args.write_data or args.data
        data = write_dataset(folder, args.train_images, args.val_images, args.imgsz, args.seed, args.max_objects)
        print(f"dataset: {args.train_images} train + {args.val_images} val images, {data}")
        if args.write_data:
            return 0
        checkpoint = train(data, args.checkpoint, args.epochs, args.imgsz, args.batch, args.device, args.project)
    elif args.checkpoint:
        checkpoint = args.checkpoint
    else:
        parser.error("give --checkpoint to export, --train to train first, or --write-data DIR")
    if not checkpoint.exists():
        parser.error(f"checkpoint not found: {checkpoint}")
    check(export(checkpoint, args.out, args.imgsz), args.imgsz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
