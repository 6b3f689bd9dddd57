"""Saved epochs: parameters (.h5 and .protobuf), solver states and the loop's state.

Each epoch is written whole into a temporary folder with a manifest of checksums, renamed
into place, and only then named by `checkpoints/latest` (replaced atomically). A crash at
any moment leaves the previous epoch loadable; a damaged file is detected, never used.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import h5py
import nnabla as nn

from .. import safeio
from ..errors import RunError

CKPT_DIR = "checkpoints"
LATEST = "latest"
MANIFEST = "MANIFEST.json"
STATE = "state.json"
PARAMS = "parameters.h5"


def _sha256(path):
    h = hashlib.sha256()
    with safeio.open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_fsync = safeio.fsync_path


def solver_file(name):
    return f"solver-{name}.h5"


EPOCH_NAME = re.compile(r"epoch_\d{4,}$")


@contextlib.contextmanager
def _readers_lock(root, mode):
    """flock on the checkpoints folder itself (nothing is written, so a read-only run works):
    LOCK_SH for a reader (it waits while old epochs are being removed), LOCK_EX|LOCK_NB for the
    trainer removing old epochs (it yields False while someone reads, and removes them later)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # no epochs yet: nothing to hold
        yield True
        return
    try:
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(run):
    """Hold the run's saved epochs for reading: none is removed until the block ends."""
    with _readers_lock(Path(run) / CKPT_DIR, fcntl.LOCK_SH):
        yield


def _write(tmp, solvers, state, extra):
    """An epoch's files and their manifest into the folder `tmp`, flushed to disk."""
    nn.save_parameters(str(tmp / PARAMS))
    safeio.fault("save-params")
    nn.save_parameters(str(tmp / "parameters.protobuf"))
    for name, solver in solvers.items():
        solver.save_states(str(tmp / solver_file(name)))
    for name, write in (extra or {}).items():
        write(tmp / name)
    (tmp / STATE).write_text(json.dumps(state), encoding="utf-8")
    files = sorted(p.name for p in tmp.iterdir())
    (tmp / MANIFEST).write_text(json.dumps({f: _sha256(tmp / f) for f in files}, indent=1), encoding="utf-8")
    for p in tmp.iterdir():
        _fsync(p)


def save(run, epoch, solvers, state, extra=None, keep=None):
    """Write epoch `epoch` of the run: all NNabla parameters, each solver's state, `state`.

    `extra` maps further file names to a function writing that file (given its path); they are
    saved and checksummed with the epoch. A failed write (full disk, unwritable folder; an
    OSError, or h5py's RuntimeError) removes what it wrote and raises RunError naming the epoch
    kept; the previous epoch and `latest` are untouched until the new epoch is complete.
    """
    root = Path(run) / CKPT_DIR
    final = root / f"epoch_{epoch:04d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    before = _pointed(root)
    renamed = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        safeio.fault("save-start")
        _write(tmp, solvers, state, extra)
        safeio.fault("save-written")
        if final.exists():  # a stale epoch of this number (never the one `latest` names)
            _remove(final)
        os.rename(tmp, final)
        renamed = True
        safeio.fault("save-renamed")
        with safeio.replacing(root / LATEST) as pointer:
            pointer.write_text(final.name, encoding="utf-8")
        _fsync(root)
        safeio.fault("save-pointed")
    except (OSError, RuntimeError, ValueError, RunError) as e:  # h5py: RuntimeError on a full disk
        shutil.rmtree(tmp, ignore_errors=True)
        if renamed and _pointed(root) != final.name:
            shutil.rmtree(final, ignore_errors=True)
        kept = f"epoch {int(before[6:])} is kept" if before else "no earlier epoch was saved"
        raise RunError(f"cannot save epoch {epoch} in {root}: {safeio.reason(e)}; {kept}") from None
    _remove_old(root, keep=final.name, also=keep)
    safeio.fault("save-cleaned")
    return final


PARTIAL = "partial"


def partial_folder(run):
    return Path(run) / CKPT_DIR / PARTIAL


def save_partial(run, solvers, state, extra=None):
    """Save an epoch in progress as checkpoints/partial, which `latest` never names (infer does not
    use it): written whole into a temporary folder with its manifest, then renamed into place; a
    crash at any moment leaves the previous partial save, or none, and the complete epochs."""
    final = partial_folder(run)
    tmp = final.with_name(f".{PARTIAL}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _write(tmp, solvers, state, extra)
        if final.exists():
            _remove(final)
        os.rename(tmp, final)
        _fsync(final.parent)
    except (OSError, RuntimeError, ValueError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(f"cannot save the epoch in progress in {final}: {safeio.reason(e)}; "
                       f"the complete epochs are kept") from None
    safeio.fault("partial-saved")
    return final


def peek_partial(run):
    """The partial save's state, verified, or None (absent or damaged: the complete epoch is used)."""
    folder = partial_folder(run)
    if not folder.is_dir() or folder.is_symlink():
        return None
    try:
        verify(folder)
        state = json.loads(safeio.read_text(folder / STATE, limit=64 << 20))
    except (RunError, OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _remove(folder):
    """Rename an epoch away first (readers never find it half-removed), then remove it."""
    gone = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.rename(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _remove_old(root, keep, also=None):
    """Keep the last epoch (and those `also(epochs)` names: config.keep), and clear what a killed save
    left (.epoch_*.tmp-PID, .latest.*.tmp; the run's lock makes them stale). Only nncgan's own epochs are
    touched (epoch_NNNN folders with a manifest), never a user's file; nothing is removed
    while a reader (infer, eval, report) holds the epochs: that waits for the next save."""
    with _readers_lock(root, fcntl.LOCK_EX | fcntl.LOCK_NB) as free:
        if not free:
            return
        epochs = [int(p.name[6:]) for p in root.iterdir() if EPOCH_NAME.match(p.name)]
        kept = set(also(epochs)) if also is not None and epochs else set()
        for old in root.iterdir():
            name = old.name
            try:
                if EPOCH_NAME.match(name) and name != keep and int(name[6:]) not in kept \
                        and old.is_dir() and not old.is_symlink() and (old / MANIFEST).is_file():
                    _remove(old)
                elif name == PARTIAL and old.is_dir() and not old.is_symlink() and (old / MANIFEST).is_file():
                    _remove(old)  # the epoch it was part of is complete now
                elif re.match(rf"\.(epoch_\d{{4,}}|{PARTIAL})\.(tmp|old)-\d+$", name) and old.is_dir() \
                        and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                elif re.match(rf"\.{LATEST}\.[a-z0-9_]{{8}}\.tmp$", name) and old.is_file():  # safeio's
                    old.unlink()
            except OSError:
                pass  # a leftover that cannot be removed now is retried at the next save


def _pointed(root):
    """The epoch `latest` names (unverified), or None: what a failed save leaves in place."""
    try:
        name = safeio.read_text(root / LATEST, limit=256).strip()
    except (OSError, ValueError):
        return None
    return name if EPOCH_NAME.match(name) else None


def complete_epoch(run):
    """The name of the run's last complete (verified) epoch, or None."""
    try:
        return latest(run).name
    except RunError:
        return None


def verify(folder):
    """Check every file of a saved epoch against its manifest; return the manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads(safeio.read_text(folder / MANIFEST, limit=1 << 20))
    except (OSError, ValueError):
        raise RunError(f"{folder / MANIFEST} is missing or damaged; this epoch cannot be trusted") from None
    if not isinstance(manifest, dict) or not {PARAMS, STATE} <= set(manifest) \
            or any(os.path.basename(str(n)) != n for n in manifest):
        raise RunError(f"{folder / MANIFEST} is damaged (it does not list this epoch's files)")
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file():
            raise RunError(f"{path} is missing from the saved epoch")
        try:
            same = _sha256(path) == digest
        except OSError as e:
            raise RunError(f"{path} cannot be read: {safeio.reason(e)}") from None
        if not same:
            raise RunError(f"{path} is damaged (its checksum does not match {MANIFEST})")
    return manifest


def latest(run):
    """The folder of the last complete epoch, verified.

    The epoch named by `checkpoints/latest` is the one to use: if it is damaged that is an
    error naming the file, never a silent step back to an older epoch (which exists only
    briefly, while a save is finishing). Only when the pointer itself is absent (a process
    killed between its first epoch's rename and pointer) is the newest intact epoch used.
    """
    root = Path(run) / CKPT_DIR
    pointer = root / LATEST
    if pointer.is_file():
        try:
            name = safeio.read_text(pointer, limit=256).strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        if not name.startswith("epoch_") or os.path.basename(name) != name or not (root / name).is_dir():
            raise RunError(f"{pointer} is damaged: it names {name[:40]!r}, which is not a saved epoch")
        try:
            verify(root / name)
        except RunError as e:
            older = [p.name for p in sorted(root.glob("epoch_*"), reverse=True)
                     if p.name != name and _intact(p)]
            hint = (f"; the older complete epoch {older[0]} is intact: to continue from it, write "
                    f"'{older[0]}' into {pointer}") if older else ""
            raise RunError(f"{e}{hint}") from None
        return root / name
    errors = []
    for p in sorted((p for p in root.glob("epoch_*") if p.is_dir()), reverse=True):
        try:
            verify(p)
            return p
        except RunError as e:
            errors.append(str(e))
    detail = ("; ".join(errors)) if errors else "no epoch has been saved yet"
    raise RunError(f"{run}: no complete saved epoch ({detail})")


def _intact(folder):
    try:
        verify(folder)
        return True
    except RunError:
        return False


def peek_state(run):
    """The state of the epoch `checkpoints/latest` names, unverified (for listings and reports), or None."""
    root = Path(run) / CKPT_DIR
    try:
        name = safeio.read_text(root / LATEST, limit=256).strip()
        if not EPOCH_NAME.match(name):
            return None
        state = json.loads(safeio.read_text(root / name / STATE, limit=64 << 20))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def has_checkpoint(run):
    root = Path(run) / CKPT_DIR
    return (root / LATEST).is_file() or any(root.glob("epoch_*"))


def check_shapes(path, params):
    """Every parameter the graph built must be in the saved file with the same shape."""
    try:
        with h5py.File(path, "r") as f:
            saved = {}
            f.visititems(lambda n, o: saved.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
    except OSError as e:
        raise RunError(f"{path} cannot be read as parameters: {e}") from None
    problems = []
    for name, var in params.items():
        if name not in saved:
            problems.append(f"'{name}' {tuple(var.shape)} is not in the saved epoch")
        elif tuple(saved[name]) != tuple(var.shape):
            problems.append(f"'{name}' is {tuple(saved[name])} in the saved epoch but "
                            f"{tuple(var.shape)} in the graph")
    if problems:
        raise RunError(f"the parameters in {path} do not fit the graph (was it edited since?): "
                       + "; ".join(problems))


def load(run, solvers=None, folder=None, verified=False):
    """Load the last complete epoch's (or `folder`'s, verified unless `verified` says the caller
    just did under its own reading lock) parameters and solver states; return its state dict.

    Parameters the graph has built already must match the saved ones in name and shape.
    """
    with reading(run):
        if folder is None:
            folder = latest(run)
        elif not verified:
            verify(folder)
        check_shapes(folder / PARAMS, nn.get_parameters(grad_only=False))
        nn.load_parameters(str(folder / PARAMS))
        for name, solver in (solvers or {}).items():
            path = folder / solver_file(name)
            if not path.is_file():
                raise RunError(f"{path} is missing: the run's optimizers differ from the graph's")
            solver.load_states(str(path))
        return json.loads((folder / STATE).read_text(encoding="utf-8"))
