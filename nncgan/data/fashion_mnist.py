"""Fashion-MNIST (Zalando Research) from its four IDX files, through the IDX source chain.

Sources, in order: the explicit directory (``data_dir`` or ``NNCGAN_FASHION_MNIST_DIR``), the
cache ``~/.cache/nncgan/fashion-mnist``, the Debian package ``dataset-fashion-mnist``
(``apt-get install dataset-fashion-mnist`` puts the files in /usr/share/datasets/fashion-mnist/),
public HTTPS mirrors, then the same Debian package fetched from the package index without
installing it (``apt-get download``, no root needed; its four files verified, then cached). No
PyPI package ships the files. Debian's .gz files carry a shorter gzip header than the published
ones, so they pass on the checksum of their decompressed contents (see ``idx.verify``).
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .. import safeio
from . import idx
from .idx import FILENAMES, CacheDir, LocalDir, Mirrors, SourceUnavailable, require_files

# sha256 of the published .gz files (shared/data/fashion-mnist/SOURCE.md).
GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
# sha256 of their decompressed contents; the Debian package's files match these (checked
# against dataset-fashion-mnist 0.0~git20200523.55506a9-1).
RAW_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras' copy
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

SPEC = idx.IdxSpec("fashion-mnist", "Fashion-MNIST", "NNCGAN_FASHION_MNIST_DIR", GZ_SHA256, RAW_SHA256, MIRRORS)


class DebianPackage:
    """The files installed by ``apt-get install dataset-fashion-mnist``, read in place.

    Not strict: a damaged system copy is reported and the chain moves on to the mirrors.
    """

    strict = False

    def __init__(self, path):
        self.path = Path(path)
        self.label = f"Debian package {DEBIAN_PACKAGE} ({self.path})"

    def provide(self, cache, spec, log):
        try:
            require_files(self.path)
        except SourceUnavailable as e:
            raise SourceUnavailable(f"{e} (apt-get install {DEBIAN_PACKAGE})") from None
        return self.path, f"using the Debian package {DEBIAN_PACKAGE} in {self.path}"


class DebianDownload:
    """``apt-get download dataset-fashion-mnist`` (the .deb from the configured Debian mirror, not
    installed), its four files read out of the archive, verified, then cached. Needs apt's package
    lists (``apt-get update``); without apt or them the chain moves on."""

    strict = False
    label = f"Debian package index ({DEBIAN_PACKAGE}, apt-get download)"

    def __init__(self, download=None):
        self.download = download or apt_download  # download(package, dest_dir) -> .deb path

    def provide(self, cache, spec, log):
        if not shutil.which("dpkg-deb"):
            raise SourceUnavailable("dpkg-deb is not installed")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".apt-") as tmp:
            deb = Path(self.download(DEBIAN_PACKAGE, Path(tmp)))
            tar = _run(["dpkg-deb", "--fsys-tarfile", str(deb)], tmp)
            if tar.returncode != 0:
                raise SourceUnavailable(f"dpkg-deb cannot read {deb.name}")
            where = f"{deb.name}:{DEBIAN_DIR}"
            members = _read_members(tar.stdout, [f".{DEBIAN_DIR}/{n}" for n in FILENAMES], where)
            for name, gz in zip(FILENAMES, members):
                idx.verify(spec, gz, name, f"{where}/{name}")
            for name, gz in zip(FILENAMES, members):  # every file verified above; now publish them
                with safeio.replacing(cache / name) as part:
                    part.write_bytes(gz)
        return cache, f"fetched {deb.name} from the Debian package index, verified, cached in {cache}"


APT_TIMEOUT_S = 300  # the package is about 31 MB


def _run(cmd, cwd):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SourceUnavailable(f"{cmd[0]} timed out after {APT_TIMEOUT_S} s") from None
    except OSError as e:
        raise SourceUnavailable(f"{cmd[0]}: {e.strerror or e}") from None


def apt_download(package, dest):
    """``apt-get download PACKAGE`` into ``dest`` (fetched, not installed); returns the .deb."""
    got = _run(["apt-get", "download", "-qq", package], dest)
    debs = sorted(Path(dest).glob("*.deb"))
    if got.returncode != 0 or len(debs) != 1:
        lines = (got.stderr or got.stdout or b"").decode(errors="replace").strip().splitlines()
        raise SourceUnavailable(f"apt-get download failed: {lines[-1] if lines else got.returncode}")
    return debs[0]


def _read_members(data, names, where):
    """The bytes of the regular-file members `names` of the tar archive `data` (nothing extracted)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            out = []
            for n in names:
                m = tf.getmember(n)
                if not m.isfile():
                    raise KeyError(n)
                out.append(tf.extractfile(m).read())
            return out
    except (tarfile.TarError, KeyError, OSError) as e:
        raise SourceUnavailable(f"{where}: cannot read {e}") from None


def load_fashion_mnist(split, data_dir=None, *, cache_dir=None, sources=None, log=print):
    """``(images, labels)`` of ``split`` as read-only uint8 arrays (N, 28, 28) and (N,)."""
    if sources is None:
        sources = default_sources(data_dir)
    elif data_dir is not None:
        raise ValueError("pass data_dir to default_sources() when giving sources")
    return idx.load_idx(SPEC, split, sources, cache_dir=cache_dir, log=log)


def default_sources(data_dir=None, *, debian_dir=None, fetch=None, apt_download=None):
    """The standard chain; ``debian_dir`` (default: the module's DEBIAN_DIR, read at call time
    so tests can move it), ``fetch`` and ``apt_download`` are replaced by tests."""
    return idx.explicit_sources(SPEC, data_dir) + [
        CacheDir(), DebianPackage(debian_dir or DEBIAN_DIR), Mirrors(fetch=fetch), DebianDownload(apt_download)]


__all__ = ["load_fashion_mnist", "default_sources", "DebianPackage", "DebianDownload", "LocalDir", "SPEC",
           "CLASSES"]
