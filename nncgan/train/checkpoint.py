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
    saved and checksummed with the epoch.
    """
    root = Path(run) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch_{epoch:04d}"
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
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
    (tmp / MANIFEST).write_text(json.dumps({f: _sha256(tmp / f) for f in files}, indent=1), encoding="utf-8")
    for p in tmp.iterdir():
        _fsync(p)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    pointer = root / f".{LATEST}.tmp-{os.getpid()}"
    pointer.write_text(final.name, encoding="utf-8")
    _fsync(pointer)
    os.replace(pointer, root / LATEST)
    _fsync(root)
    for old in root.iterdir():  # keep the last epoch only, as NNC does with Save Best off
        if old.name != final.name and old.name != LATEST and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return final


def verify(folder):
    """Check every file of a saved epoch against its manifest; return the manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{folder / MANIFEST} is missing or damaged; this epoch cannot be trusted") from None
    for name, digest in manifest.items():
        path = folder / name
        if not path.is_file():
            raise RunError(f"{path} is missing from the saved epoch")
        if _sha256(path) != digest:
            raise RunError(f"{path} is damaged (its checksum does not match {MANIFEST})")
    return manifest


def latest(run):
    """The folder of the last complete epoch, verified. Falls back to scanning if the pointer is lost."""
    root = Path(run) / CKPT_DIR
    pointer = root / LATEST
    names = []
    if pointer.is_file():
        names.append(pointer.read_text(encoding="utf-8").strip())
    names += sorted((p.name for p in root.glob("epoch_*") if p.is_dir()), reverse=True)
    errors = []
    for name in dict.fromkeys(names):
        try:
            verify(root / name)
            return root / name
        except RunError as e:
            errors.append(str(e))
    detail = ("; ".join(errors)) if errors else "no epoch has been saved yet"
    raise RunError(f"{run}: no complete saved epoch ({detail})")


def has_checkpoint(run):
    root = Path(run) / CKPT_DIR
    return (root / LATEST).is_file() or any(root.glob("epoch_*"))


def load(run, solvers=None):
    """Load the last complete epoch's parameters (and solver states); return its state dict."""
    folder = latest(run)
    nn.load_parameters(str(folder / PARAMS))
    for name, solver in (solvers or {}).items():
        path = folder / solver_file(name)
        if not path.is_file():
            raise RunError(f"{path} is missing: the run's optimizers differ from the graph's")
        solver.load_states(str(path))
    return json.loads((folder / STATE).read_text(encoding="utf-8"))
