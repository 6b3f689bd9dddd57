"""Fashion-MNIST through the IDX source chain: explicit dir, cache, Debian package, mirrors.
No network: the Debian directory is a re-gzipped copy of shared/data/fashion-mnist in tmp_path
and mirrors are fakes serving the real files."""
import gzip
import hashlib
import shutil
import subprocess
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from nncgan.data import fashion_mnist as fm
from nncgan.data.spec import DatasetSpec
from nncgan.data.idx import FILENAMES, LocalDir
from nncgan.errors import DataError

from conftest import dataset_dir

REAL = dataset_dir("fashion-mnist")  # ../shared, else the user's cache, filled as `train` fills it
MNIST = dataset_dir("mnist")
QUIET = lambda s: None  # noqa: E731


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("NNCGAN_FASHION_MNIST_DIR", "NNCGAN_CACHE_DIR", "NNCGAN_MNIST_DIR"):
        monkeypatch.delenv(var, raising=False)


def copy_real(dest):
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILENAMES:
        shutil.copyfile(REAL / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def debian_dir(tmp_path_factory):
    """Like the Debian package: same contents, a gzip header without name or time."""
    d = tmp_path_factory.mktemp("usr-share-datasets") / "fashion-mnist"
    d.mkdir()
    for name in FILENAMES:
        raw = gzip.decompress((REAL / name).read_bytes())
        (d / name).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    return d


def must_not_run(*args):
    raise AssertionError("this source should not have been reached")


def offline(url, dest):
    raise urllib.error.URLError("offline (fake)")


def apt_offline(package, dest):
    raise fm.SourceUnavailable("apt-get download failed: offline (fake)")


def build_deb(tmp, files, name="dataset-fashion-mnist_0.1-1_all.deb"):
    """A .deb laid out like Debian's dataset-fashion-mnist, holding `files` ({name: bytes})."""
    root = tmp / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: dataset-fashion-mnist\nVersion: 0.1-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n")
    data = root / fm.DEBIAN_DIR.lstrip("/")
    data.mkdir(parents=True)
    for n, b in files.items():
        (data / n).write_bytes(b)
    deb = tmp / name
    subprocess.run(["dpkg-deb", "-Znone", "--root-owner-group", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    shutil.rmtree(root)
    return deb


class FakeApt:
    """apt_download(package, dest) copying a prepared .deb, as `apt-get download` leaves it."""

    def __init__(self, deb):
        self.deb, self.calls = deb, []

    def __call__(self, package, dest):
        self.calls.append(package)
        return Path(shutil.copy(self.deb, dest))


class FakeMirror:
    def __init__(self, root=REAL):
        self.root, self.calls = root, []

    def __call__(self, url, dest):
        self.calls.append(url)
        shutil.copyfile(self.root / url.rsplit("/", 1)[1], dest)


def files_in(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_loads_both_splits_from_dir(tmp_path):
    lines = []
    x, y = fm.load_fashion_mnist("train", str(REAL), cache_dir=str(tmp_path / "c"), log=lines.append)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and y.shape == (60000,)
    assert y[0] == 9 and np.bincount(y).tolist() == [6000] * 10  # balanced; first is an ankle boot
    x, y = fm.load_fashion_mnist("test", str(REAL), cache_dir=str(tmp_path / "c"), log=lines.append)
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    assert lines == [f"Fashion-MNIST: using data dir {REAL}"] * 2
    assert not (tmp_path / "c").exists()


def test_registry_feeds_x_and_y():
    info = DatasetSpec("fashion-mnist")
    arrays = info.load("test", str(REAL), log=QUIET)
    assert arrays["x"].shape == (10000, 1, 28, 28) and arrays["y"].shape == (10000, 1)
    assert info.variables == {"x": (1, 28, 28), "y": (1,)} and info.classes == 10 and info.images == ("x",)


def test_env_dir_beats_cache_and_debian(tmp_path, monkeypatch, debian_dir):
    copy_real(tmp_path / "c" / "fashion-mnist")
    monkeypatch.setenv("NNCGAN_FASHION_MNIST_DIR", str(REAL))
    lines = []
    chain = fm.default_sources(debian_dir=debian_dir, fetch=must_not_run)
    fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    assert lines == [f"Fashion-MNIST: using NNCGAN_FASHION_MNIST_DIR {REAL}"]


def test_cache_beats_debian(tmp_path, debian_dir):
    cache = copy_real(tmp_path / "c" / "fashion-mnist")
    lines = []
    chain = fm.default_sources(debian_dir=debian_dir, fetch=must_not_run)
    fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    assert lines == [f"Fashion-MNIST: using cache {cache}"]


def test_debian_package_used_in_place_by_contents_checksum(tmp_path, debian_dir):
    name = FILENAMES[0]
    assert hashlib.sha256((debian_dir / name).read_bytes()).hexdigest() != fm.GZ_SHA256[name]
    lines = []
    chain = fm.default_sources(debian_dir=debian_dir, fetch=must_not_run)
    x, y = fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    want_x, want_y = fm.load_fashion_mnist("test", sources=[LocalDir(REAL, "real")], log=QUIET)
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert "skipped cache" in lines[0]
    assert lines[1] == f"Fashion-MNIST: using the Debian package dataset-fashion-mnist in {debian_dir}"
    assert files_in(tmp_path / "c" / "fashion-mnist") == []  # read in place, not copied


def test_mirrors_when_no_package_then_cache(tmp_path):
    fetch = FakeMirror()
    lines = []
    chain = fm.default_sources(debian_dir=tmp_path / "not-installed", fetch=fetch)
    fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    assert "apt-get install dataset-fashion-mnist" in lines[1]
    assert len(fetch.calls) == 4 and fetch.calls[0].startswith(fm.MIRRORS[0])
    assert files_in(tmp_path / "c" / "fashion-mnist") == sorted(FILENAMES)
    lines.clear()
    fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    assert lines == [f"Fashion-MNIST: using cache {tmp_path / 'c' / 'fashion-mnist'}"] and len(fetch.calls) == 4


def test_mnist_served_as_fashion_is_refused_and_not_cached(tmp_path):
    chain = fm.default_sources(debian_dir=tmp_path / "none", fetch=FakeMirror(MNIST), apt_download=apt_offline)
    with pytest.raises(DataError) as err:
        fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=QUIET)
    assert "checksum mismatch: expected the original Fashion-MNIST train-images-idx3-ubyte.gz" in str(err.value)
    assert files_in(tmp_path / "c" / "fashion-mnist") == []


def test_damaged_debian_copy_falls_through_to_mirrors(tmp_path, debian_dir):
    bad = tmp_path / "deb"
    shutil.copytree(debian_dir, bad)
    data = (bad / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(data[:len(data) // 2])
    lines = []
    chain = fm.default_sources(debian_dir=bad, fetch=FakeMirror())
    fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    assert f"{bad / 't10k-labels-idx1-ubyte.gz'}: not a complete gzip file" in lines[1]
    assert "downloaded 4 file(s)" in lines[2]


def test_nothing_available_lists_every_source(tmp_path):
    chain = fm.default_sources(str(tmp_path / "nowhere"), debian_dir=tmp_path / "none", fetch=offline,
                               apt_download=apt_offline)
    with pytest.raises(DataError) as err:
        fm.load_fashion_mnist("train", cache_dir=str(tmp_path / "c"), sources=chain, log=QUIET)
    msg = str(err.value)
    for n, text in enumerate(["data dir", "cache", "Debian package dataset-fashion-mnist", "download mirrors",
                              "Debian package index (dataset-fashion-mnist, apt-get download)"], 1):
        assert f"  {n}. {text}" in msg
    assert "NNCGAN_FASHION_MNIST_DIR" in msg and "offline (fake)" in msg
    assert files_in(tmp_path / "c" / "fashion-mnist") == []


@pytest.fixture(scope="module")
def debian_archive(tmp_path_factory, debian_dir):
    return build_deb(tmp_path_factory.mktemp("deb"), {n: (debian_dir / n).read_bytes() for n in FILENAMES})


def test_package_index_when_offline_fetches_verifies_and_caches(tmp_path, debian_archive):
    apt = FakeApt(debian_archive)
    lines = []
    chain = fm.default_sources(debian_dir=tmp_path / "not-installed", fetch=offline, apt_download=apt)
    x, y = fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    want_x, want_y = fm.load_fashion_mnist("test", sources=[LocalDir(REAL, "real")], log=QUIET)
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert apt.calls == ["dataset-fashion-mnist"] and "offline (fake)" in lines[2]
    assert lines[3].startswith(f"Fashion-MNIST: fetched {debian_archive.name} from the Debian package index, verified")
    assert files_in(tmp_path / "c" / "fashion-mnist") == sorted(FILENAMES)   # no archive, no temp folder
    lines.clear()
    fm.load_fashion_mnist("train", cache_dir=str(tmp_path / "c"), sources=chain, log=lines.append)
    assert lines == [f"Fashion-MNIST: using cache {tmp_path / 'c' / 'fashion-mnist'}"] and len(apt.calls) == 1


def test_package_with_other_contents_is_refused_and_not_cached(tmp_path, debian_dir):
    files = {n: (debian_dir / n).read_bytes() for n in FILENAMES}
    files["t10k-labels-idx1-ubyte.gz"] = (MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    chain = fm.default_sources(debian_dir=tmp_path / "none", fetch=offline,
                               apt_download=FakeApt(build_deb(tmp_path, files)))
    with pytest.raises(DataError) as err:
        fm.load_fashion_mnist("test", cache_dir=str(tmp_path / "c"), sources=chain, log=QUIET)
    assert f"{fm.DEBIAN_DIR}/t10k-labels-idx1-ubyte.gz: checksum mismatch" in str(err.value)
    assert files_in(tmp_path / "c" / "fashion-mnist") == []


def test_cgan_fashion_graph_checks():
    from nncgan.cli import main
    from nncgan.graph.parse import parse_graph
    path = Path(__file__).resolve().parents[1] / "graphs" / "cgan_fashion.yaml"
    g = parse_graph(path)
    assert (g.dataset.name, g.dataset.classes, g.dataset.variables["x"]) == ("fashion-mnist", 10, (1, 28, 28))
    assert main(["check", str(path)]) == 0


def test_graph_dataset_from_the_debian_package_alone(tmp_path, monkeypatch, debian_dir):
    """A fresh machine: no cache, no variable, no network; only the package's files."""
    monkeypatch.setattr(fm, "DEBIAN_DIR", str(debian_dir))
    monkeypatch.setattr("nncgan.data.idx.urllib_fetch", must_not_run)
    lines = []
    arrays = DatasetSpec("fashion-mnist").load("train", None, log=lines.append)
    assert arrays["x"].shape == (60000, 1, 28, 28) and arrays["y"][0, 0] == 9
    assert lines[-1] == f"Fashion-MNIST: using the Debian package dataset-fashion-mnist in {debian_dir}"
    assert files_in(tmp_path / "home" / ".cache" / "nncgan" / "fashion-mnist") == []  # read in place


def test_cli_trains_cgan_fashion_from_the_debian_package(tmp_path, monkeypatch, debian_dir, capsys):
    """The issue's bar: `nncgan train` on a Fashion-MNIST graph with nothing but the package
    installed. Only the first 64 images are kept, to stay fast."""
    from nncgan.cli import main
    monkeypatch.setattr(fm, "DEBIAN_DIR", str(debian_dir))
    monkeypatch.setattr("nncgan.data.idx.urllib_fetch", must_not_run)
    real = fm.load_fashion_mnist
    monkeypatch.setattr(fm, "load_fashion_mnist", lambda *a, **k: tuple(v[:64] for v in real(*a, **k)))
    monkeypatch.chdir(tmp_path)
    graph = Path(__file__).resolve().parents[1] / "graphs" / "cgan_fashion.yaml"
    assert main(["train", str(graph), "--epochs", "1", "--batch-size", "32", "--quiet", "--context", "cpu"]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    assert (run / "checkpoints" / "epoch_0001" / "parameters.h5").is_file()
    assert (run / "samples" / "epoch_0001.png").is_file()
