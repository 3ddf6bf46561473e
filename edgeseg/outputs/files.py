"""Writing output files atomically: a temporary name in the same folder, then a rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from ..errors import OutputError
from ..inputs.images import IMAGE_SUFFIXES


def temporary_file(path: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new empty file in `path`'s folder (created if needed), named `{prefix}{random}{suffix}`, open for writing:
    (file descriptor, its path). It is created with mode 0o666, so the process's umask gives it the permissions
    of any other new file (mkstemp's 0o600 would leave outputs readable by their owner only); OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temporary name beside it, renamed over `path` only when the block
    ends without an error, so readers see either the old file or the whole new one. On an error the temporary file
    is removed; an OSError becomes an OutputError naming `path`."""
    path = Path(path)
    try:
        fd, tmp = temporary_file(path, f".{path.name}.", ".tmp")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` so that readers see either the old file or the whole new one."""
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encodes by the file's suffix (.jpg, .png, ...) and writes atomically."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:  # a suffix OpenCV reads but has no encoder for (.dng, .mpo) raises instead of returning False
        ok = False
    if not ok:
        raise OutputError(f"cannot encode an image as {path.suffix!r} for {path}")
    return write_bytes(path, encoded.tobytes())


def write_json(path: str | Path, data: Any) -> Path:
    """Writes `data` as compact JSON, atomically; NaN or infinity anywhere in it is an OutputError (JSON has no
    such numbers, and a file that other tools cannot parse is not an output)."""
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError as e:
        raise OutputError(f"cannot write {path}: {e} (a result holds NaN or infinity)") from None
    return write_bytes(path, text.encode())


# image formats OpenCV reads but cannot write an annotated (colour, 8-bit) image in: .pgm is grey only, .pfm float,
# and there is no .dng or .mpo encoder
_READ_ONLY_SUFFIXES = {".pgm", ".pfm", ".dng", ".mpo"}


def annotated_name(path: Path) -> str:
    """The file name of an image's annotated copy: the image's own, or its stem + .png for a format in
    _READ_ONLY_SUFFIXES."""
    return path.stem + ".png" if path.suffix.lower() in _READ_ONLY_SUFFIXES else path.name


def exists(path: Path) -> bool:
    """Path.exists, with a path that cannot be reached (a parent folder this user may not enter) an OutputError."""
    try:
        return path.exists()
    except OSError as e:
        raise OutputError(f"cannot reach {path}: {e.strerror or e}") from None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when `a` and `b` are one file (links and other spellings of a path included); False when either is
    missing."""
    a, b = Path(a), Path(b)
    if not (exists(a) and exists(b)):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError as e:
        raise OutputError(f"cannot compare {a} with {b}: {e.strerror or e}") from None


def check_not_inputs(outputs: dict[str, Path | None], inputs: Sequence[str | os.PathLike | np.ndarray]) -> None:
    """Before the model loads: no output file (`outputs`: option name -> path, None when not asked for) is one of
    the run's inputs (images, video, model, config files; arrays are passed over). OutputError otherwise."""
    files = [Path(i) for i in inputs if isinstance(i, (str, os.PathLike))]
    for flag, output in outputs.items():
        if output is None:
            continue
        for item in files:
            if same_file(output, item):
                raise OutputError(f"{flag} {output} is an input of this run ({item}), which it would replace: "
                                  "give another name")


def check_folder_holds_no_inputs(folder: Path, inputs: Sequence[str | os.PathLike | np.ndarray], flag: str) -> None:
    """Before the model loads: `folder`, where outputs of names not known in advance go (cut-outs named by class),
    holds none of the input images, which one of them could replace. OutputError otherwise."""
    if not exists(folder):
        return
    for item in inputs:
        if isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() in IMAGE_SUFFIXES:
            parent = Path(item).resolve().parent
            if same_file(parent, folder) or Path(folder).resolve() in parent.parents:
                raise OutputError(f"{flag} {folder} holds the input {os.fspath(item)}, which an output could replace: "
                                  "give a folder without input images")


def check_output_folder(save_dir: Path, items: Sequence[str | np.ndarray], key: Callable[[Path], str],
                        replaces_input: bool, flag: str = "--save-dir") -> None:
    """Before the model loads: `save_dir` (named `flag` in messages) is a folder, no two input files of different
    folders give the same output names (`key(path)`: their files would overwrite each other), and with
    `replaces_input` (`key` is the output's file name) no output would replace an input in `save_dir`. Arrays
    among `items` are not files and are passed over. OutputError otherwise."""
    if exists(save_dir) and not save_dir.is_dir():
        raise OutputError(f"{flag} {save_dir} is a file; give a folder")
    first: dict[str, str] = {}
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            continue
        path = Path(item)
        other = first.setdefault(key(path), item)
        if other != item and not same_file(other, item):
            raise OutputError(f"{other} and {item} would write files of the same names into {save_dir}, the second "
                              "replacing the first: rename one, or run them separately")
        target = save_dir / key(path)
        if replaces_input and same_file(target, path):
            raise OutputError(f"{flag} {save_dir} holds the input {item}, which its output would replace: "
                              "give another folder")


def check_annotated_folder(folder: Path, images: Sequence[str | np.ndarray], protected: Sequence[str | os.PathLike],
                           flag: str = "--save-dir") -> None:
    """Before the model loads: the annotated copies of `images` (named annotated_name) written into `folder` replace
    no input — neither an image (check_output_folder) nor one of `protected` (the model, settings files)."""
    check_output_folder(folder, images, annotated_name, replaces_input=True, flag=flag)
    files = [i for i in images if isinstance(i, (str, os.PathLike))]
    check_not_inputs({f"{flag} {folder} (file {annotated_name(Path(i))})": folder / annotated_name(Path(i))
                      for i in files}, [*files, *protected])


def new_numbered_folder(base: Path) -> Path:
    """base, or base2, base3, ...: the first that does not exist yet, created (as Ultralytics numbers its runs)."""
    n = 1
    while True:
        folder = base if n == 1 else base.with_name(f"{base.name}{n}")
        try:
            folder.mkdir(parents=True)  # creating it claims the name, even against another run started alongside
            return folder
        except FileExistsError:
            n += 1
        except OSError as e:
            raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
