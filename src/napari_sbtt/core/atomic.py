"""Write files so that nothing half-written is ever left at the destination.

Every writer in napari-sbtt writes to a temporary file in the destination's
folder and renames it into place once complete. An existing destination is
only replaced when the caller asks for it (``overwrite=True``), and a folder
is never replaced by a file. The file gets the user's normal permissions
(``0o666`` less the umask), not the private ``0o600`` of a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "check_writable", "OutputExistsError",
           "current_umask"]


class OutputExistsError(FileExistsError):
    """The output path exists and overwriting was not asked for."""


def current_umask() -> int:
    """The process's umask (the permission bits new files must not get), e.g. 0o022."""
    try:  # Linux: read it without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path; raise ``OutputExistsError`` if it exists and ``overwrite`` is False.

    A folder at ``path`` is refused even with ``overwrite`` (IsADirectoryError naming it): a file
    never replaces a folder.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder; give the path of a file to write (a folder is never "
                                "replaced by a file)")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise OutputExistsError(
            f"{p} already exists; choose another output path or pass overwrite=True "
            "(--overwrite on the command line) to replace it"
        )
    if not p.parent.exists():
        raise FileNotFoundError(f"the folder {p.parent} does not exist; create it first")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    The temporary name keeps the destination's suffix, so writers that pick a
    format from the suffix (tifffile, numpy) behave as for the final name.
    """
    dest = check_writable(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f"{dest.suffix}.part", dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    # the writer sees the real suffix last (np.savez appends .npz otherwise)
    real_tmp = tmp_path.with_name(tmp_path.name[: -len(".part")])
    tmp_path.rename(real_tmp)
    try:
        yield real_tmp
        if not overwrite and dest.exists():
            raise OutputExistsError(f"{dest} appeared while it was being written; not replacing it")
        os.replace(real_tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            real_tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        write(tmp)
