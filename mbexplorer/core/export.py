"""Writing a preset's exact input tensors to files, for other runtimes and tools (``mbexplorer preprocess``).

Three forms, chosen by the output path (``output_kind``):

* ``.npy``: one array, the images' batch-of-one tensors stacked along the batch axis, in the order given;
* ``.npz``: one array per image (its batch-of-one tensor), keyed by the image's file name;
* a folder: one raw ``.bin`` file per image, named after it: the array's little-endian bytes and nothing
  else, what ``ais_bench --input`` and ``msame --input`` read.

Writing is all or nothing (``outputs``): everything goes to a temporary file or folder beside the output and is
renamed into place once every image has been converted, so a bad image (or Ctrl-C) leaves no partial output; the
output is checked before any image is converted (``check_destination``), and an existing file is replaced only
with ``force``. Tensors stream to disk one by one, so a folder of thousands of images never sits in memory.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MbxError
from .outputs import check_output, replacing, temp_path
from .preprocess import Preprocess


@dataclass
class Written:
    kind: str  # "npy", "npz" or "bin"
    path: Path  # the output: a file, or the folder of .bin files
    entries: list[tuple[Path, str]]  # (image, where its tensor is: out.npy[i], out.npz[key] or out/name.bin)
    shape: tuple[int, ...]  # one image's tensor (batch of one); an .npy's array has len(entries) in front
    dtype: str


def output_kind(out: Path) -> str:
    """'npy' or 'npz' by the suffix; 'bin' (a folder of raw files) for an existing folder or any other name."""
    if out.is_dir():
        return "bin"
    return {".npy": "npy", ".npz": "npz"}.get(out.suffix.lower(), "bin")


def unique_names(images: list[Path], suffix: str | None = None) -> list[str]:
    """Each image's file name (``suffix``: its stem with that suffix instead), made unique with _2, _3, ...
    where two images share a name (the same name in two folders, or cat.jpg beside cat.png)."""
    out, taken = [], set()
    for p in images:
        stem, ext = (p.stem, suffix) if suffix is not None else (Path(p.name).stem, Path(p.name).suffix)
        name, n = stem + ext, 1
        while name.lower() in taken:  # case-insensitive: the names must also differ on Windows and macOS
            n += 1
            name = f"{stem}_{n}{ext}"
        taken.add(name.lower())
        out.append(name)
    return out


def check_destination(images: list[Path], out: Path, force: bool = False) -> tuple[str, list[str]]:
    """Everything about ``out`` that can be checked before any image is converted (``outputs.check_output``):
    its kind and the names of the images' entries in it. Never over an input image; an existing file (the
    .npy or .npz, or a .bin in an existing folder) only with ``force``."""
    out = Path(out)
    kind = output_kind(out)
    names = unique_names(images, ".bin" if kind == "bin" else None)
    # for a folder, force is about the .bin files in it, checked below; an existing file cannot become one
    check_output(out, inputs=images, force=force or kind == "bin", folder_ok=kind == "bin",
                 input_name="one of the input images")
    if kind == "bin" and out.exists() and not out.is_dir():
        raise MbxError(f"cannot write {out}: it is a file; give a new or existing folder, or a .npy or .npz name.")
    if kind == "bin" and out.is_dir():
        inputs = {_real(p) for p in images}
        for name in names:
            if _real(out / name) in inputs:
                raise MbxError(f"will not write over {name}: it is one of the input images.")
            check_output(out / name, force=force)
    return kind, names


def export_tensors(images: list[Path], pre: Preprocess, out: Path, force: bool = False) -> Written:
    """Convert every image with ``pre`` (its exact decode and pipeline) and write the tensors to ``out``
    (``check_destination`` first: ``force`` replaces existing files)."""
    if not images:
        raise MbxError("no images to convert.")
    out = Path(out)
    kind, names = check_destination(images, out, force)
    if kind == "bin":
        writer = _BinWriter(out)
        try:
            first = _convert(images, names, pre, writer)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    else:
        with replacing(out) as tmp:
            writer = {"npy": _NpyWriter, "npz": _NpzWriter}[kind](tmp, len(images))
            try:
                first = _convert(images, names, pre, writer)
            finally:
                writer.close()  # before the rename or removal: Windows cannot rename or delete an open file
    where = {"npy": [f"{out}[{i}]" for i in range(len(images))], "npz": [f"{out}[{n}]" for n in names],
             "bin": [str(out / n) for n in names]}[kind]
    return Written(kind, out, list(zip(images, where)), tuple(first[0]), str(first[1]))


def _convert(images: list[Path], names: list[str], pre: Preprocess, writer) -> tuple:
    """Every image's tensor into ``writer``; the first one's (shape, dtype)."""
    first = None
    for path, name in zip(images, names):
        tensor = pre.tensor(path)
        first = first or (tensor.shape, tensor.dtype)
        if (tensor.shape, tensor.dtype) != first:  # a preset's tensors all have one shape; guard the .npy
            raise MbxError(f"{path.name} gives a {tensor.dtype} {tensor.shape} tensor, unlike the others.")
        writer.add(name, tensor)
    return first


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _le(tensor: np.ndarray) -> np.ndarray:
    """The tensor as a C-contiguous little-endian array (a no-op on the machines this runs on)."""
    return np.ascontiguousarray(tensor, dtype=tensor.dtype.newbyteorder("<"))


class _NpyWriter:
    """One array of N images, streamed into a memory-mapped .npy at ``path`` (the temporary file)."""

    def __init__(self, path: Path, n: int):
        self.path, self.n = path, n
        self.array = None
        self.i = 0

    def add(self, name: str, tensor: np.ndarray) -> None:
        if self.array is None:  # the header needs the whole shape: N images of the first one's shape
            shape = (self.n,) + tensor.shape[1:]
            self.array = np.lib.format.open_memmap(self.path, "w+", _le(tensor).dtype, shape)
        self.array[self.i:self.i + 1] = tensor
        self.i += 1

    def close(self) -> None:
        if self.array is not None:
            self.array.flush()
        self.array = None  # the map holds the file open


class _NpzWriter:
    """np.savez's format (a zip of .npy members, uncompressed), written one member at a time."""

    def __init__(self, path: Path, n: int):
        self.zip = zipfile.ZipFile(path, "x", zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, tensor: np.ndarray) -> None:
        with self.zip.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, _le(tensor), allow_pickle=False)

    def close(self) -> None:
        self.zip.close()


class _BinWriter:
    """Raw files in a temporary folder; a new output folder is that folder renamed, an existing one gets the
    files moved into it (each rename atomic; the temporary folder lives inside it, on the same file system)."""

    def __init__(self, out: Path):
        self.out = out
        self.existing = out.is_dir()
        self.tmp = temp_path(out / out.name if self.existing else out)
        self.tmp.mkdir()
        self.names: list[str] = []

    def add(self, name: str, tensor: np.ndarray) -> None:
        (self.tmp / name).write_bytes(_le(tensor).tobytes())
        self.names.append(name)

    def commit(self) -> None:
        if not self.existing:
            os.rename(self.tmp, self.out)  # fails (nothing written) if the folder appeared meanwhile
            return
        for name in self.names:
            os.replace(self.tmp / name, self.out / name)
        self.tmp.rmdir()

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
