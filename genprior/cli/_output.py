"""Transactional outputs of the ``genprior`` commands: a run's files appear all together or not
at all.

A command writes into a temporary folder ``.{name}.tmp-{pid}-{random}`` beside its ``--out``
folder and renames it into place only when everything succeeded; on any failure (an error, an
interrupt) the temporary folder is removed and ``--out`` is left exactly as it was. An existing
non-empty ``--out`` is refused unless ``--overwrite`` is given; then the new files replace the
old files of the same name and every other entry of the folder is kept, in one rename (the old
folder is moved aside to ``.{name}.old-{pid}`` for the instant of the swap).

A run killed by a signal cannot clean up; :func:`remove_stale` removes what it left (or puts an
old folder back when the kill hit between the two renames of a swap) at the next start, judging
by the process id in the name whether its owner is still alive (on this machine).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["check_output", "remove_stale", "transactional_output"]

#: ``.{name}.tmp-{pid}[-{random}]`` (temporary folder or file) or ``.{name}.old-{pid}`` (an
#: old folder moved aside during a swap)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)(?:-[^/]*)?$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def remove_stale(parent: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that killed runs left in ``parent``.

    Only entries named like genprior's temporaries whose process is no longer alive are touched:
    a ``.{name}.tmp-{pid}...`` entry is deleted; a ``.{name}.old-{pid}`` folder is renamed back
    to ``name`` when ``name`` is missing (the run died between the two renames of a swap) and
    deleted otherwise. Errors while cleaning are ignored (the next run tries again).

    Args:
        parent: the folder to clean (the parent of an ``--out``).

    Returns:
        the entries removed or restored.
    """
    parent = Path(parent)
    done: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return done
    for entry in sorted(entries):
        m = _TEMP.match(entry.name)
        if m is None or _pid_alive(int(m["pid"])):
            continue
        try:
            target = parent / m["name"]
            if m["kind"] == "old" and not target.exists():
                os.rename(entry, target)
            else:
                _remove(entry)
            done.append(entry)
        except OSError:
            continue
    return done


def check_output(path: str | os.PathLike, overwrite: bool, *, option: str = "--out",
                 kind: str = "folder") -> Path:
    """Refuse an output path that the command must not write, before any work starts.

    Args:
        path: the output folder (``kind="folder"``) or file (``kind="file"``).
        overwrite: whether an existing result may be replaced.
        option: the flag that named ``path``, for the message.
        kind: ``"folder"`` or ``"file"``.

    Returns:
        ``path`` as an absolute path.

    Raises:
        ValueError: ``path`` is a file where a folder is wanted (or the reverse), or holds an
            earlier result and ``overwrite`` is false.
    """
    path = Path(path).absolute()
    if kind == "folder":
        if path.exists() and not path.is_dir():
            raise ValueError(f"{option} {path} is an existing file; {option} names a folder")
        if path.is_dir() and not overwrite:
            names = sorted(p.name for p in path.iterdir())
            if names:
                shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
                raise ValueError(f"{option} {path} is not empty (holds {shown}); pass "
                                 f"--overwrite to replace the files this command writes, or "
                                 f"choose another folder")
    else:
        if path.is_dir():
            raise ValueError(f"{option} {path} is a folder; {option} names a file")
        if path.exists() and not overwrite:
            raise ValueError(f"{option} {path} exists; pass --overwrite to replace it")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: the folder {parent} is not writable")
    return path


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _carry_over(old: Path, new: Path) -> None:
    """Put into ``new`` every entry of ``old`` that ``new`` lacks (hard links where possible, so
    ``old`` stays intact until the swap)."""
    for entry in old.iterdir():
        dst = new / entry.name
        if dst.exists() or dst.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), dst)
        elif entry.is_dir():
            shutil.copytree(entry, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(dst))


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    if not path.exists():
        os.rename(tmp, path)
        return
    if not any(path.iterdir()):
        path.rmdir()
        os.rename(tmp, path)
        return
    if not overwrite:  # filled by someone else since the check
        raise ValueError(f"--out {path} is not empty; pass --overwrite to replace it")
    _carry_over(path, tmp)
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def transactional_output(path: str | os.PathLike, overwrite: bool = False, *,
                         option: str = "--out") -> Iterator[Path]:
    """A temporary folder to write a command's outputs into, renamed to ``path`` on success.

    Checks ``path`` (:func:`check_output`), removes stale temporaries of killed runs beside it
    (:func:`remove_stale`), yields a fresh folder beside ``path`` and, when the body succeeds,
    moves it into place: ``path`` is created, or an empty ``path`` replaced, or (only with
    ``overwrite``) a non-empty ``path`` replaced by the new files plus the old entries the new
    run did not write. When the body raises (an interrupt included), the temporary folder and
    any parent folders created for it are removed and ``path`` is untouched.

    Args:
        path: the output folder.
        overwrite: whether a non-empty ``path`` may be replaced.
        option: the flag that named ``path``, for messages.

    Raises:
        ValueError: as :func:`check_output`.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "run"
        >>> with transactional_output(out) as tmp:
        ...     _ = (tmp / "a.txt").write_text("done")
        >>> sorted(p.name for p in out.iterdir())
        ['a.txt']
        >>> shutil.rmtree(out.parent)
    """
    path = check_output(path, overwrite, option=option)
    created = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    remove_stale(parent if not created else created[-1].parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    except OSError as e:
        _remove_created(created)
        raise OSError(e.errno, f"{option} {path}: cannot create a folder beside it "
                      f"({e.strerror or e})") from e
    try:
        yield tmp
        _commit(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise


def _remove_created(created: list[Path]) -> None:
    """Remove the (empty) parent folders a failed run created, innermost first."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break
