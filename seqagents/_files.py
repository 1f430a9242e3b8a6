"""Safe file and folder writes shared by checkpoints and training runs (private helpers).

- A folder is replaced whole: it is written as a temporary sibling (:func:`temp_sibling`) and
  swapped into place (:func:`swap_into_place`), so that a reader sees the old folder or the new
  one, never a mix, and a write that fails half-way (a full disk) leaves the old one intact.
- Writes never follow a symbolic link: a link in the way is replaced by a regular file, the file
  it pointed to is left alone (a Hugging Face cache snapshot is made of links into a blob store).
- New files and folders get the modes the user's umask gives (``0o666 & ~umask`` and
  ``0o777 & ~umask``), whatever the writing library chose.
- Files are read only when they are regular files (:func:`check_regular_file`): a FIFO or a
  device in place of ``config.json`` would block a reader for ever.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path

__all__ = [
    "TEMP_MARKERS",
    "check_regular_file",
    "apply_umask",
    "current_umask",
    "read_files",
    "remove_entry",
    "remove_folder",
    "swap_into_place",
    "temp_sibling",
    "write_text",
]

TEMP_MARKERS = (".tmp-", ".old-")
"""What the hidden siblings made by :func:`temp_sibling` have in their names: ``.NAME.tmp-XXXX``
(a folder being written) and ``.NAME.old-XXXX`` (a replaced folder about to be deleted)."""


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def temp_sibling(target: Path, kind: str = "tmp") -> Path:
    """A new, empty hidden folder beside ``target`` (``.NAME.<kind>-XXXX``, on the same file
    system, so a rename moves it into place atomically), with the umask's folder mode."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = target.parent / f".{target.name}.{kind}-{secrets.token_hex(4)}"
        try:
            path.mkdir(mode=0o777)  # mkdir applies the umask
            return path
        except FileExistsError:
            continue


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a new regular file: a symbolic link (or anything else) in
    the way is removed first, never written through."""
    remove_entry(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def remove_entry(path: Path) -> None:
    """Remove a file or symbolic link at ``path`` (never what a link points to); nothing there
    is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise IsADirectoryError(
            errno.EISDIR, "a folder is in the way of a file", str(path)
        ) from None


def apply_umask(folder: Path, names: list[str] | None = None) -> None:
    """Give the regular files ``names`` in ``folder`` the mode ``0o666 & ~umask`` (libraries
    such as safetensors create their files 0600). Without ``names``: the folder itself gets
    ``0o777 & ~umask`` (a temporary folder is made private) and its files are left alone."""
    mask = current_umask()
    if names is None:
        os.chmod(folder, 0o777 & ~mask)
        return
    for name in names:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~mask)


def _renameat2() -> object | None:
    """glibc's ``renameat2`` (Linux >= 3.15, glibc >= 2.28), or None."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def swap_into_place(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` at ``target`` and delete what was there.

    Linux swaps the two folders with one ``renameat2(RENAME_EXCHANGE)``: ``target`` names the
    old folder or the new one at every instant. Elsewhere the old folder is renamed aside, then
    the new one into place (a reader may find no folder for that instant, never a mixed one).
    A symbolic link at ``target`` is replaced by the folder, its own target left alone.
    """
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if target.is_symlink() or not target.is_dir():
        aside = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
        os.rename(target, aside)
        os.rename(new, target)
        os.unlink(aside)
        return
    renameat2 = _renameat2()
    if renameat2 is not None:
        result = renameat2(  # type: ignore[operator]
            _AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE
        )
        if result == 0:
            remove_folder(new)  # now holds the old folder
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # not a file system limit
            raise OSError(code, os.strerror(code), str(target))
    aside = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.rename(target, aside)
    os.rename(new, target)
    remove_folder(aside)


def remove_folder(path: Path) -> None:
    """Delete a folder this module made (a temporary sibling or a replaced folder)."""
    shutil.rmtree(path, ignore_errors=True)


READ_ATTEMPTS = 20
"""Reads of a folder that keeps being replaced while it is read, before giving up."""


def read_files(
    folder: Path,
    names: list[str],
    error: type[Exception] = OSError,
    max_bytes: dict[str, int] | None = None,
) -> dict[str, bytes]:
    """The bytes of the files ``names`` in ``folder`` (those that exist), all from one version
    of a folder that :func:`swap_into_place` may replace meanwhile.

    Every file is opened (relative to the folder opened once) before any is read, and the
    folder must still be the one at ``folder`` once they are open; otherwise it is read again.
    Files are opened without blocking and must be regular files (``error`` otherwise), so a
    FIFO in place of a file never hangs the reader; a file larger than its ``max_bytes`` entry
    is an ``error`` too, raised before it is read.
    """
    limits = max_bytes or {}
    if not hasattr(os, "O_DIRECTORY") or os.open not in os.supports_dir_fd:  # not POSIX
        return _read_files_by_path(folder, names, error)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    for _ in range(READ_ATTEMPTS):
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        handles: dict[str, int] = {}
        try:
            for name in names:
                try:
                    handles[name] = os.open(name, flags, dir_fd=directory)
                except FileNotFoundError:
                    continue
            opened, current = os.fstat(directory), os.stat(folder)
            if (opened.st_ino, opened.st_dev) != (current.st_ino, current.st_dev):
                continue  # replaced while the files were opened: read the new folder
            for name, handle in handles.items():
                info = os.fstat(handle)
                _check_regular(info.st_mode, folder / name, error)
                if info.st_size > limits.get(name, info.st_size):
                    raise error(
                        f"{folder / name} has {info.st_size:,} bytes, more than the "
                        f"{limits[name]:,} a file of its kind may have; it is corrupt or not "
                        "what its name says"
                    )
            return {name: _read_all(handle) for name, handle in handles.items()}
        finally:
            for handle in handles.values():
                os.close(handle)
            os.close(directory)
    raise error(f"{folder} was replaced {READ_ATTEMPTS} times while it was read; try again")


def _read_files_by_path(folder: Path, names: list[str], error: type[Exception]) -> dict:
    found = {}
    for name in names:
        path = folder / name
        if os.path.exists(path):
            check_regular_file(path, error)
            found[name] = path.read_bytes()
    return found


def _read_all(handle: int) -> bytes:
    chunks = []
    while chunk := os.read(handle, 1 << 24):
        chunks.append(chunk)
    return b"".join(chunks)


def _check_regular(mode: int, path: Path | str, error: type[Exception]) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISFIFO(mode):
        kind = "a FIFO (named pipe)"
    elif stat.S_ISDIR(mode):
        kind = "a folder"
    else:
        kind = "a device or socket"
    raise error(f"{path} is {kind}, not a regular file; replace it with the real file")


def check_regular_file(path: Path | str, error: type[Exception] = OSError) -> None:
    """Raise ``error`` naming ``path`` unless it is a regular file (links are followed; a
    missing file raises ``FileNotFoundError``): a FIFO, socket or device would block a reader
    for ever or feed it without end."""
    _check_regular(os.stat(path).st_mode, path, error)
