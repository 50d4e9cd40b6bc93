"""One-line, path-first errors for every file-system problem a user can hand brittle.

``check_input_file(path)`` says *why* a path cannot be read as a data file before anything
opens it: ``p.txt: no such file``, ``d: is a directory, expected a file``, ``loop.txt:
symbolic link loop``, ``fifo: is a named pipe (FIFO), expected a regular file`` (a FIFO
without a writer would block forever), ``p: permission denied``.
:func:`check_output_dir` does the same for a run directory before any work starts.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from brittle.errors import BrittleError


class PathError(BrittleError, OSError):
    """A file-system problem with a user-supplied path; ``str()`` is ``path: reason``."""

    def __str__(self) -> str:  # OSError's own __str__ would add "[Errno …]"
        return str(self.args[0]) if self.args else ""


_REASONS = {
    errno.ENOENT: "no such file",
    errno.ELOOP: "symbolic link loop",
    errno.ENOTDIR: "a parent of this path is not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "file name too long",
    errno.EISDIR: "is a directory, expected a file",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EEXIST: "already exists",
}


def os_reason(e: OSError) -> str:
    """A short human reason for an OSError (no errno numbers, no repr)."""
    return _REASONS.get(e.errno or -1) or (e.strerror or type(e).__name__).lower()


def path_error(path: str | Path, e: OSError, prefix: str = "") -> PathError:
    """``PathError("path: reason")`` for an OSError raised while touching ``path``."""
    return PathError(f"{path}: {prefix}{os_reason(e)}")


def _kind(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "is a directory, expected a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), expected a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, expected a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, expected a regular file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


def check_input_file(path: str | Path, line: str = "") -> Path:
    """``path`` if it is a readable regular file, else a :class:`PathError` ``path:{line} reason``
    (``line`` lets data readers keep their ``path:0:`` convention)."""
    path = Path(path)
    where = f"{path}:{line}:" if line else f"{path}:"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        reason = "broken symbolic link" if os.path.islink(path) else "no such file"
        raise PathError(f"{where} {reason}") from None
    except OSError as e:
        raise PathError(f"{where} {os_reason(e)}") from None
    except ValueError:  # embedded NUL byte
        raise PathError(f"{where} invalid file name") from None
    kind = _kind(st.st_mode)
    if kind:
        raise PathError(f"{where} {kind}")
    if not os.access(path, os.R_OK):
        raise PathError(f"{where} permission denied")
    return path


def check_output_dir(path: str | Path) -> Path:
    """Raise :class:`PathError` unless ``path`` is, or can be created as, a writable
    directory; creates nothing."""
    path = Path(path)
    probe = path
    try:
        while True:
            try:
                st = os.stat(probe)
            except NotADirectoryError:  # some ancestor is a file: find and name it
                probe = probe.parent
                continue
            except FileNotFoundError:
                if os.path.islink(probe):
                    raise PathError(f"{path}: {probe} is a broken symbolic link") from None
                parent = probe.parent
                if parent == probe:
                    raise PathError(f"{path}: cannot be created") from None
                probe = parent
                continue
            if not stat.S_ISDIR(st.st_mode):
                what = "exists and is not a directory" if probe == path else f"{probe} is not a directory"
                raise PathError(f"{path}: {what}")
            if not os.access(probe, os.W_OK | os.X_OK):
                which = "" if probe == path else f" ({probe})"
                raise PathError(f"{path}: directory{which} is not writable")
            return path
    except PathError:
        raise
    except OSError as e:
        raise PathError(f"{path}: {os_reason(e)}") from None
    except ValueError:
        raise PathError(f"{path}: invalid directory name") from None


def is_regular_file(path: str | Path) -> bool:
    """``Path.is_file`` that is False (never an exception) for any unusable name."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
