"""Output files that never destroy data: checked before any work starts, written whole or not at all.

``check_output`` refuses, before anything is computed, what could only fail or do harm later: a folder that
does not exist or cannot be written, a folder where a file should go, a name under another format's suffix,
one of the command's own inputs (however the path is spelt: symlinks and hard links included), and an
existing file unless ``force``.

``write_atomically`` (and ``replacing`` for writers that need a path, such as numpy's memmap or a zip file)
writes into a new hidden file in the target's folder and renames it over the target only once it is complete
and synced: a full disk, an error or Ctrl-C midway leaves the old file as it was and no partial file behind.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import MbxError

Data = bytes | str | Callable[[BinaryIO], None]  # str is written as UTF-8; a callable writes into the file


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), force: bool = False,
                 suffixes: Iterable[str] = (), what: str = "the output", input_name: str = "an input",
                 folder_ok: bool = False) -> Path:
    """Raise MbxError unless ``path`` can take the output; return it as a Path.

    ``inputs``: files the command reads, never written over (``input_name`` says what they are in the
    message). ``suffixes``: the names the format may have (".onnx"), lower case. ``folder_ok``: an existing
    folder is a valid target (its files are the output). ``force``: an existing file may be replaced."""
    path = Path(path)
    suffixes = tuple(suffixes)
    if suffixes and path.suffix.lower() not in suffixes:
        named = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise MbxError(f"will not write {what} to {path.name}: its name has {named}; it must end in "
                       f"{' or '.join(suffixes)}.")
    if path.is_dir() and not folder_ok:
        raise MbxError(f"cannot write {path}: {os.strerror(errno.EISDIR)}")
    folder = path if path.is_dir() else path.parent
    if not folder.exists():
        raise MbxError(f"cannot write {path}: the folder {folder} does not exist.")
    if not folder.is_dir():
        raise MbxError(f"cannot write {path}: {folder} is a file, not a folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MbxError(f"cannot write {path}: the folder {folder} is not writable.")
    for source in inputs:
        if same_file(path, source):
            raise MbxError(f"will not write over {path.name}: it is {input_name}.")
    if path.exists() and not path.is_dir() and not force:
        raise MbxError(f"{path} already exists; give --force to replace it.")
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same resolved path (symlinks, '..', another spelling), or, both
    existing, the same file on disk (hard links, a case-insensitive file system)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def temp_path(path: str | os.PathLike) -> Path:
    """An unused hidden name beside ``path``: the same folder, so the final rename is atomic (never across file
    systems). Not tempfile's mkstemp: it makes private (0600) files, and the output must get the permissions
    the umask gives a new file."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def replacing(path: str | os.PathLike, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to create and write; when the block ends without
    an error, sync it (unless the caller has: ``sync=False``) and rename it over ``path``; on any error (Ctrl-C
    included) remove it and re-raise."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if sync:
            _sync(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:  # never created, or already gone
            pass
        raise


def write_atomically(path: str | os.PathLike, data: Data) -> Path:
    """Write ``data`` (bytes, text, or a function that writes into a binary file) to ``path`` whole or not at
    all. Raises OSError on a write error, leaving any existing file untouched."""
    write_together({path: data})
    return Path(path)


def write_together(items: Mapping[str | os.PathLike, Data]) -> None:
    """Several files, each whole or not at all, and none renamed into place until all are written and synced: a
    failure while writing the second leaves the first file's old content too."""
    with ExitStack() as stack:
        for path, data in items.items():
            tmp = stack.enter_context(replacing(path, sync=False))  # synced here, before any rename
            # 0o666 less the umask, as open() creates a file; O_EXCL: never through a name someone planted
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                if callable(data):
                    data(f)
                else:
                    f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())


def _sync(tmp: Path) -> None:
    """Flush a finished temporary file to disk before the rename, so a crash right after cannot leave the
    output renamed but empty. A folder (a writer's temporary folder) needs no sync here."""
    if tmp.is_dir():
        return
    fd = os.open(tmp, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
