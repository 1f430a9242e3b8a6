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
    "current_umask",
    "folder_identity",
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


def apply_umask(folder: Path) -> None:
    """Give every regular file directly in ``folder`` the mode ``0o666 & ~umask`` (libraries
    such as safetensors create their files 0600) and the folder ``0o777 & ~umask``."""
    mask = current_umask()
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, 0o666 & ~mask)
    os.chmod(folder, 0o777 & ~mask)


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


def folder_identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when :func:`swap_into_place` replaces the folder ``path`` (its inode,
    device and change time), or None when it is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_dev, info.st_ctime_ns


def check_regular_file(path: Path | str, error: type[Exception] = OSError) -> None:
    """Raise ``error`` naming ``path`` unless it is a regular file (links are followed; a
    missing file raises ``FileNotFoundError``): a FIFO, socket or device would block a reader
    for ever or feed it without end."""
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISFIFO(mode):
        kind = "a FIFO (named pipe)"
    elif stat.S_ISDIR(mode):
        kind = "a folder"
    else:
        kind = "a device or socket"
    raise error(f"{path} is {kind}, not a regular file; replace it with the real file")
