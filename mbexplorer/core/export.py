"""Writing a preset's exact input tensors to files, for other runtimes and tools (``mbexplorer preprocess``).

Three forms, chosen by the output path (``output_kind``):

* ``.npy``: one array, the images' batch-of-one tensors stacked along the batch axis, in the order given;
* ``.npz``: one array per image (its batch-of-one tensor), keyed by the image's file name;
* a folder: one raw ``.bin`` file per image, named after it: the array's little-endian bytes and nothing
  else, what ``ais_bench --input`` and ``msame --input`` read.

Writing is all or nothing: everything goes to a temporary file or folder beside the output and is renamed
into place once every image has been converted, so a bad image (or Ctrl-C) leaves no partial output. Tensors
stream to disk one by one, so a folder of thousands of images never sits in memory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MbxError
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


def export_tensors(images: list[Path], pre: Preprocess, out: Path) -> Written:
    """Convert every image with ``pre`` (its exact decode and pipeline) and write the tensors to ``out``."""
    if not images:
        raise MbxError("no images to convert.")
    out = Path(out)
    kind = output_kind(out)
    parent = out.parent if not out.is_dir() else out
    if not parent.is_dir():
        raise MbxError(f"cannot write {out}: the folder {out.parent} does not exist.")
    names = unique_names(images, ".bin" if kind == "bin" else None)
    inputs = {_real(p) for p in images}
    clash = next((t for t in [out] + [out / n for n in names] * (kind == "bin") if _real(t) in inputs), None)
    if clash is not None:
        raise MbxError(f"will not write over {clash.name}: it is one of the input images.")
    if out.exists() and not out.is_dir() and kind == "bin":
        raise MbxError(f"cannot write {out}: it is a file; give a new or existing folder, or a .npy or .npz name.")
    writer = {"npy": _NpyWriter, "npz": _NpzWriter, "bin": _BinWriter}[kind](out, len(images))
    try:
        first = None
        for path, name in zip(images, names):
            tensor = pre.tensor(path)
            first = first or (tensor.shape, tensor.dtype)
            if (tensor.shape, tensor.dtype) != first:  # a preset's tensors all have one shape; guard the .npy
                raise MbxError(f"{path.name} gives a {tensor.dtype} {tensor.shape} tensor, unlike the others.")
            writer.add(name, tensor)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    where = {"npy": [f"{out}[{i}]" for i in range(len(images))], "npz": [f"{out}[{n}]" for n in names],
             "bin": [str(out / n) for n in names]}[kind]
    return Written(kind, out, list(zip(images, where)), tuple(first[0]), str(first[1]))


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _le(tensor: np.ndarray) -> np.ndarray:
    """The tensor as a C-contiguous little-endian array (a no-op on the machines this runs on)."""
    return np.ascontiguousarray(tensor, dtype=tensor.dtype.newbyteorder("<"))


def _temp_name(folder: Path, out: Path) -> Path:
    """An unused hidden name in ``folder`` for the output's temporary. Not tempfile's mkstemp/mkdtemp: they
    create private (0600/0700) files, and the renamed output must get the permissions the umask gives."""
    return folder / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


class _FileWriter:
    """A temporary file beside the output (same folder: the final rename never crosses file systems)."""

    def __init__(self, out: Path, n: int):
        self.out, self.n = out, n
        self.tmp = _temp_name(out.parent, out)

    def commit(self) -> None:
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


class _NpyWriter(_FileWriter):
    def __init__(self, out: Path, n: int):
        super().__init__(out, n)
        self.array = None
        self.i = 0

    def add(self, name: str, tensor: np.ndarray) -> None:
        if self.array is None:  # the header needs the whole shape: N images of the first one's shape
            shape = (self.n,) + tensor.shape[1:]
            self.array = np.lib.format.open_memmap(self.tmp, "w+", _le(tensor).dtype, shape)
        self.array[self.i:self.i + 1] = tensor
        self.i += 1

    def commit(self) -> None:
        self.array.flush()
        self.array = None  # the map holds the file open; Windows cannot rename it until it is closed
        super().commit()

    def abort(self) -> None:
        self.array = None
        super().abort()


class _NpzWriter(_FileWriter):
    """np.savez's format (a zip of .npy members, uncompressed), written one member at a time."""

    def __init__(self, out: Path, n: int):
        super().__init__(out, n)
        self.zip = zipfile.ZipFile(self.tmp, "x", zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, tensor: np.ndarray) -> None:
        with self.zip.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, _le(tensor), allow_pickle=False)

    def commit(self) -> None:
        self.zip.close()
        super().commit()

    def abort(self) -> None:
        self.zip.close()
        super().abort()


class _BinWriter:
    """Raw files in a temporary folder; a new output folder is that folder renamed, an existing one gets the
    files moved into it (each rename atomic; the temporary folder lives inside it, on the same file system)."""

    def __init__(self, out: Path, n: int):
        self.out = out
        self.existing = out.is_dir()
        self.tmp = _temp_name(out if self.existing else out.parent, out)
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
