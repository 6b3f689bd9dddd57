"""Fashion-MNIST (Zalando Research) from its four IDX files, through the IDX source chain.

Sources, in order: the explicit directory (``data_dir`` or ``NNCGAN_FASHION_MNIST_DIR``), the
cache ``~/.cache/nncgan/fashion-mnist``, the Debian package ``dataset-fashion-mnist``
(``apt-get install dataset-fashion-mnist`` puts the files in /usr/share/datasets/fashion-mnist/),
then public HTTPS mirrors. Debian's .gz files carry a shorter gzip header than the published
ones, so they pass on the checksum of their decompressed contents (see ``idx.verify``).
"""
from __future__ import annotations

from pathlib import Path

from . import idx
from .idx import CacheDir, LocalDir, Mirrors, SourceUnavailable, require_files

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


def load_fashion_mnist(split, data_dir=None, *, cache_dir=None, sources=None, log=print):
    """``(images, labels)`` of ``split`` as read-only uint8 arrays (N, 28, 28) and (N,)."""
    if sources is None:
        sources = default_sources(data_dir)
    elif data_dir is not None:
        raise ValueError("pass data_dir to default_sources() when giving sources")
    return idx.load_idx(SPEC, split, sources, cache_dir=cache_dir, log=log)


def default_sources(data_dir=None, *, debian_dir=None, fetch=None):
    """The standard chain; ``debian_dir`` (default: the module's DEBIAN_DIR, read at call time
    so tests can move it) and ``fetch`` are replaced by tests."""
    return idx.explicit_sources(SPEC, data_dir) + [
        CacheDir(), DebianPackage(debian_dir or DEBIAN_DIR), Mirrors(fetch=fetch)]


__all__ = ["load_fashion_mnist", "default_sources", "DebianPackage", "LocalDir", "SPEC", "CLASSES"]
