"""Saved epochs: parameters (.h5 and .protobuf), solver states and the loop's state.

Each epoch is written whole into a temporary folder with a manifest of checksums, renamed
into place, and only then named by `checkpoints/latest` (replaced atomically). A crash at
any moment leaves the previous epoch loadable; a damaged file is detected, never used.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import nnabla as nn

from ..errors import RunError

CKPT_DIR = "checkpoints"
LATEST = "latest"
MANIFEST = "MANIFEST.json"
STATE = "state.json"
PARAMS = "parameters.h5"


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def solver_file(name):
    return f"solver-{name}.h5"


def save(run, epoch, solvers, state, extra=None):
    """Write epoch `epoch` of the run: all NNabla parameters, each solver's state, `state`.

    `extra` maps further file names to a function writing that file (given its path); they are
    saved and checksummed with the epoch. A failed write (full disk, unwritable folder) removes
    what it wrote and raises RunError; the previous epoch and `latest` are untouched until the
    new epoch is complete.
    """
    root = Path(run) / CKPT_DIR
    final = root / f"epoch_{epoch:04d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        nn.save_parameters(str(tmp / PARAMS))
        nn.save_parameters(str(tmp / "parameters.protobuf"))
        for name, solver in solvers.items():
            solver.save_states(str(tmp / solver_file(name)))
        for name, write in (extra or {}).items():
            write(tmp / name)
        (tmp / STATE).write_text(json.dumps(state), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / MANIFEST).write_text(json.dumps({f: _sha256(tmp / f) for f in files}, indent=1),
                                    encoding="utf-8")
        for p in tmp.iterdir():
            _fsync(p)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = f"epoch {epoch - 1} is kept" if epoch > 1 else "no earlier epoch was saved"
        raise RunError(f"cannot save epoch {epoch} in {root}: {e.strerror or e}; {kept}") from None
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    pointer = root / f".{LATEST}.tmp-{os.getpid()}"
    pointer.write_text(final.name, encoding="utf-8")
    _fsync(pointer)
    os.replace(pointer, root / LATEST)
    _fsync(root)
    # Keep the last epoch only, as NNC does with Save Best off; this also clears what a killed
    # process left half-written (.epoch_*.tmp-PID): the run folder's lock makes them stale.
    for old in root.iterdir():
        if old.name not in (final.name, LATEST):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return final


def verify(folder):
    """Check every file of a saved epoch against its manifest; return the manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{folder / MANIFEST} is missing or damaged; this epoch cannot be trusted") from None
    if not isinstance(manifest, dict) or not {PARAMS, STATE} <= set(manifest) \
            or any(os.path.basename(str(n)) != n for n in manifest):
        raise RunError(f"{folder / MANIFEST} is damaged (it does not list this epoch's files)")
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file():
            raise RunError(f"{path} is missing from the saved epoch")
        if _sha256(path) != digest:
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
            name = pointer.read_text(encoding="utf-8").strip()
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
        name = (root / LATEST).read_text(encoding="utf-8").strip()
        return json.loads((root / name / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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


def load(run, solvers=None):
    """Load the last complete epoch's parameters (and solver states); return its state dict.

    Parameters the graph has built already must match the saved ones in name and shape.
    """
    folder = latest(run)
    check_shapes(folder / PARAMS, nn.get_parameters(grad_only=False))
    nn.load_parameters(str(folder / PARAMS))
    for name, solver in (solvers or {}).items():
        path = folder / solver_file(name)
        if not path.is_file():
            raise RunError(f"{path} is missing: the run's optimizers differ from the graph's")
        solver.load_states(str(path))
    return json.loads((folder / STATE).read_text(encoding="utf-8"))
