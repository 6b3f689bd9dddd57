"""Files written and read safely, for the user's outputs and a run's own files alike.

Every output is written to a temporary file beside it, flushed to disk, and renamed over the
target only when the target is a regular file (or absent): a device node, a FIFO, a folder or a
link to one is refused, never replaced -- `--out /dev/null` leaves /dev/null alone, as root too.
A failed write removes its temporary file and raises one RunError saying what failed and what
is kept, whatever raised it: an OSError (full disk, read-only folder), h5py's RuntimeError on a
full disk, or Pillow's errors. Readers open files without blocking and refuse what is not a
regular file, so a FIFO planted where a file belongs never hangs a command.
"""
import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import RunError

# What a failed write may raise: h5py reports a full disk as RuntimeError, Pillow as OSError or
# ValueError, matplotlib as either.
WRITE_ERRORS = (OSError, RuntimeError, ValueError)


def reason(e):
    """A failed write or read in a few words: the OS's words when there are any."""
    text = str(e)
    # h5py (an OSError or a RuntimeError): "Can't write data (file write failed: ..., errno = 28, ...)"
    m = re.search(r"errno = (\d+)", text)
    if m and int(m.group(1)) in errno.errorcode:
        return os.strerror(int(m.group(1)))
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        if os.strerror(code) in text:
            return os.strerror(code)
    return text.splitlines()[0][:200] if text else type(e).__name__


def check_target(path):
    """The file that writing `path` will replace: `path`, or where a link at `path` leads.

    Refused (RunError): a folder, and anything that is not a regular file (device node, FIFO,
    socket), directly or through a link, and a link that leads nowhere."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise RunError(f"{path} is a link to {os.readlink(path)}, which does not exist; "
                           f"name a file to write") from None
        return path
    except OSError as e:
        raise RunError(f"cannot write {path}: {reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise RunError(f"{path} is a folder; name a file to write (e.g. {path / 'out'})")
    if not stat.S_ISREG(st.st_mode):
        raise RunError(f"{path} is not a regular file (a device, FIFO or socket); it is never replaced: "
                       f"name a file to write")
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def fault(step):
    """Fault injection for tests: with NNCGAN_FAIL_AT=STEP the process kills itself (SIGKILL) at
    that step, as a power cut would; a no-op otherwise."""
    if os.environ.get("NNCGAN_FAIL_AT") == step:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside `path` to write; then flush it and rename it over `path`.

    The one place a file is replaced: a crash at any moment leaves the old file or the new one.
    The temporary name (.NAME.<random>.tmp.SUFFIX) ends in `path`'s own suffix, so writers that
    pick a format by extension (nn.save_parameters, matplotlib) still do. Whatever fails, the
    temporary file is removed and the error raised as it is (atomic_path words it for the user);
    `path`'s folder is made if missing."""
    target = check_target(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
        os.close(fd)
        os.chmod(tmp, _umask_mode())  # mkstemp's 0600 would make every output private
        yield Path(tmp)
        fault(f"write:{target.name}")  # written, not yet renamed
        fsync_path(tmp)
        check_target(path)  # still a regular file (or absent) at the last moment
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path, kept="", what=None):
    """`replacing(path)`, a failure raised as one RunError "cannot write WHAT: REASON; KEPT"."""
    try:
        with replacing(path) as tmp:
            yield tmp
    except WRITE_ERRORS as e:
        raise RunError(f"cannot write {what or path}: {reason(e)}" + (f"; {kept}" if kept else "")) from None


def write_bytes(path, data, **kw):
    with atomic_path(path, **kw) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text, **kw):
    return write_bytes(path, text.encode("utf-8"), **kw)


def open_regular(path, mode="rb"):
    """Open a regular file for reading without ever blocking: a FIFO, device or folder at `path`
    raises OSError (as a missing file does) instead of hanging the reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, limit=None):
    with open_regular(path) as f:
        return f.read() if limit is None else f.read(limit)


def read_text(path, limit=None):
    """The file's text (UTF-8); OSError for a missing or non-regular file, ValueError for bad UTF-8."""
    return read_bytes(path, limit).decode("utf-8")


def is_regular(path):
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


# ---- names from graph files that become file or folder names

_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def name_problem(name):
    """Why `name` (a graph's `name:`, a pipeline's `pipeline:`, a stage's `name:`) cannot be
    used as a file or folder name, or None: it must stay one plain name inside its folder."""
    if not isinstance(name, str) or not name.strip():
        return "must be a non-empty name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    if _BAD_NAME.search(name):
        return "must not hold a path separator ('/' or '\\') or control characters (NUL, newline)"
    if name in (".", ".."):
        return "must not be '.' or '..' (it becomes a file or folder name)"
    if len(name.encode("utf-8")) > 200:
        return "is too long for a file name (at most 200 bytes)"
    if name != name.strip():
        return "must not start or end with spaces"
    return None
