"""Writing output files so that a crash never leaves a half-written file or touches an input."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from lutgen import interrupts
from lutgen.errors import LutgenError, OptionError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps ``path``'s suffix, so writers that choose a format by extension
    (Pillow, OpenCV) still do. On any exception, Ctrl-C included, the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            raise LutgenError(f"cannot write {path}: it is a folder")
    except OSError as problem:
        if problem.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise LutgenError(f"cannot write {path}: {_stat_reason(path, problem)}") from None
    tmp: Path | None = None
    try:
        with interrupts.held():  # a Ctrl-C or SIGTERM cannot fall between creating and recording the file
            tmp = _temporary_beside(path)
        yield tmp
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with interrupts.held():
                tmp.unlink(missing_ok=True)
        raise


Writer = Callable[[Path], None]
"""Writes one output file to the (temporary) path it is given."""


def write_together(files: Sequence[tuple[Path, Writer]]) -> None:
    """Write every ``(target, write)`` of ``files`` so that all of the targets appear, or none.

    Each ``write(path)`` writes its file to a temporary path beside its target; once all are written,
    they are renamed onto their targets. Any exception, Ctrl-C and SIGTERM included, removes the
    temporary files and the targets already renamed, so an interruption never leaves part of the set
    (``enhance --export-cube``: a photo and its LUTs). Errors that name a temporary file are reworded
    to name its target.
    """
    temporaries: list[Path] = []
    placed: list[Path] = []
    target = None
    try:
        for target, write in files:
            with interrupts.held():
                temporaries.append(_temporary_beside(target))
            _write_naming_target(write, temporaries[-1], target)
        for (target, _), temporary in zip(files, temporaries):
            os.chmod(temporary, _mode_for(target))
            with interrupts.held():
                os.replace(temporary, target)
                placed.append(target)
    except BaseException as error:
        with interrupts.held():
            for path in (*temporaries, *placed):
                path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise LutgenError(f"cannot write {target}: {error.strerror or error}") from None
        raise


def _temporary_beside(target: Path) -> Path:
    """An empty temporary file in ``target``'s folder, keeping its suffix (writers choose formats by it)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    except OSError as error:
        raise LutgenError(f"cannot write {target}: {error.strerror or error}") from None
    os.close(handle)
    return Path(name)


def _write_naming_target(write: Writer, temporary: Path, target: Path) -> None:
    try:
        write(temporary)
    except LutgenError as error:
        raise LutgenError(str(error).replace(str(temporary), str(target))) from None


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, or what a plain ``open(path, "w")`` would give."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def ensure_not_input(output: str | Path, inputs) -> None:
    """Refuse to write ``output`` when it is one of ``inputs`` (same file on disk)."""
    out = Path(output)
    try:
        os.stat(out)
    except OSError:
        return  # nothing there (or nothing that can be reached) to overwrite
    for source in inputs:
        with contextlib.suppress(OSError):
            if out.samefile(source):
                raise LutgenError(f"refusing to overwrite the input {source}; choose another output path")


def check_folder_writable(folder: str | Path, what: str) -> None:
    """Raise an :class:`OptionError` unless files can be written in ``folder`` (made later if missing).

    Creates nothing: the nearest existing folder among ``folder`` and its parents must be a folder
    this process may write in. ``what`` names the folder's origin in the message, such as
    ``"--log-dir tmp/logs"``. Long commands call this before they start, not when they finish.
    """
    folder = Path(folder)
    existing, mode = Path("."), None
    for candidate in (folder, *folder.parents):
        mode = _mode_or_none(candidate, what)
        if mode is not None:
            existing = candidate
            break
    if mode is not None and not stat.S_ISDIR(mode):
        kind = "a file" if stat.S_ISREG(mode) else _special_kind(mode)
        raise OptionError(f"{what} cannot be created: {existing} is {kind}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(f"{what} cannot be written: the folder {existing} is not writable")


def _mode_or_none(path: Path, what: str) -> int | None:
    """``path``'s file type and mode (links followed), ``None`` when nothing is there; odd names refused."""
    try:
        return os.stat(path).st_mode
    except OSError as problem:
        if problem.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise OptionError(f"{what} cannot be used: {path}: {_stat_reason(path, problem)}") from None


def check_regular_file(path: str | Path, what: str = "file", error: type[LutgenError] = LutgenError) -> Path:
    """Return ``path`` if it names a regular file this process can read; else raise ``error``.

    Called before a file is opened, so that a FIFO (which would block forever), a device such as
    ``/dev/zero`` (which never ends), a folder, a missing file, a dangling symbolic link or a link
    loop is refused by one sentence naming the file and the real reason. ``what`` is the kind of
    file the command expected (``"image"``, ``".cube file"``), used in the message.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as problem:
        raise error(f"cannot read {path}: {_stat_reason(path, problem)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"cannot read {path}: it is a folder, not {_article(what)} {what}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"cannot read {path}: it is {_special_kind(info.st_mode)}, not a regular {what}")
    if not os.access(path, os.R_OK):
        raise error(f"cannot read {path}: permission denied")
    return path


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _stat_reason(path: Path, problem: OSError) -> str:
    if problem.errno == errno.ELOOP:
        return "it is a symbolic link loop"
    if problem.errno == errno.ENOENT:
        return "it is a symbolic link to a missing file" if path.is_symlink() else "no such file"
    if problem.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    if problem.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    return problem.strerror or str(problem)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


HASH_DIGITS = 12
"""Hex digits of a file's SHA-256 that a recipe records: enough to tell files apart, short to read."""


def file_hash(path: str | Path) -> str:
    """The first :data:`HASH_DIGITS` hex digits of the file's SHA-256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:HASH_DIGITS]
