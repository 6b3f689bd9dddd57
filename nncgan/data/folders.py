"""Image folders as datasets, in the layouts users bring from other tools.

``dataset: {folder: DIR, size: [C, H, W], layout: ...}``; the layout is found from the
folder's subfolders unless given:

- ``classes``: one subfolder per class, labels 0..K-1 in sorted folder-name order -> x, y
- ``paired``: ``A/`` and ``B/`` holding files of the same names (pix2pix) -> a, b
- ``side-by-side``: each image holds A on its left half and B on its right -> a, b
  (never guessed: a folder of plain images looks the same)
- ``unpaired``: ``trainA/`` and ``trainB/`` of any sizes (CycleGAN) -> a, b; an epoch is as
  long as the larger set (the smaller cycled), B shuffled apart from A each epoch so pairs change

With ``size`` every image is converted to C channels (1 grayscale, 3 RGB) and resized to
H x W, which is how a folder is fitted to the graph's Inputs. Without it the first image sets
the shape and any image of another size or channel count is an error naming the file.
Images are uint8 (C, H, W), scaled by 1/255 at batch time like NNC's image datasets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..images import IMAGE_EXTENSIONS, ImageReader, entries as _entries, image_files as _images, \
    open_image as _open, stat_of as _stat
from .kind import DatasetInfo
from .samples import Arrays, Samples, fits_in_memory, read_all

LAYOUTS = ("classes", "paired", "side-by-side", "unpaired")
MAX_SAMPLE_VALUES = 1 << 28  # as nncgan.graph.parse.MAX_ELEMENTS: what an Input may hold per sample


def _subdirs(d):
    return _entries(d, "dir")


def _halves(left):
    def crop(im, path):
        if im.width % 2:
            raise DataError(f"{path}: width {im.width} is odd; a side-by-side image holds A and B "
                            f"in two halves of equal width")
        half = im.width // 2
        return im.crop((0, 0, half, im.height) if left else (half, 0, im.width, im.height))
    return crop


class FolderSamples(Samples):
    """Per sample: (file, crop) for each variable, plus fixed labels; read when asked."""

    def __init__(self, variables, readers, files, labels=None, independent=()):
        self.variables = tuple(variables) + (("y",) if labels is not None else ())
        self.independent = tuple(independent)  # drawn in their own order (unpaired B)
        self.readers, self.files, self.labels = readers, files, labels  # files: per variable, [(path, crop)]
        self.n = max(len(f) for f in files)

    def __len__(self):
        return self.n

    def sample(self, i):
        out = [r.read(*f[i % len(f)]) for r, f in zip(self.readers, self.files)]
        if self.labels is not None:
            out.append(self.labels[i:i + 1])
        return tuple(out)

    def column(self, var):
        if var != "y" or self.labels is None:
            raise KeyError(var)
        return self.labels[:, None]

    def where(self, i):
        return str(self.files[0][i % len(self.files[0])][0])


def _check_size(size, where):
    ok = isinstance(size, (list, tuple)) and len(size) == 3 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size) and size[0] in (1, 3)
    if not ok:
        raise DataError(f"{where}: size must be [channels, height, width] with channels 1 (grayscale) "
                        f"or 3 (RGB), got {size!r}")
    if size[0] * size[1] * size[2] > MAX_SAMPLE_VALUES:  # every image is resized to it: refused before
        raise DataError(f"{where}: size {list(size)} is {size[0] * size[1] * size[2]:,} values per image; "
                        f"nncgan takes at most {MAX_SAMPLE_VALUES:,} (the graph's limit per sample)")
    return tuple(size)


def _layout(root, layout):
    names = {p.name for p in _subdirs(root)}
    if layout is None:
        return "paired" if {"A", "B"} <= names else "unpaired" if {"trainA", "trainB"} <= names else "classes"
    if layout not in LAYOUTS:
        raise DataError(f"{root}: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return layout


def _need_images(d, what):
    _stat(d)
    files = _images(d) if d.is_dir() else []
    if not d.is_dir():
        raise DataError(f"{d}: no such folder ({what})")
    if not files:
        raise DataError(f"{d}: no images ({what}; looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def scan(root, size=None, layout=None):
    """Find the files and labels; read only the first image of each variable (for its shape)."""
    root = Path(root)
    _stat(root)  # a looping link is said as such, not "no such folder"
    if not root.is_dir():
        raise DataError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    shape = _check_size(size, root) if size is not None else None
    layout = _layout(root, layout)
    labels = None
    if layout == "classes":
        dirs = _subdirs(root)
        if not dirs:
            raise DataError(f"{root}: no class subfolders; put each class's images in a subfolder "
                            f"named after it (or say layout: paired, side-by-side or unpaired)")
        per_class = [_need_images(d, f"class {k} '{d.name}' is empty") for k, d in enumerate(dirs)]
        files = {"x": [(f, None) for fs in per_class for f in fs]}
        labels = np.concatenate([np.full(len(fs), k, np.float32) for k, fs in enumerate(per_class)])
        classes = [d.name for d in dirs]
    elif layout == "paired":
        a, b = _need_images(root / "A", "paired set A"), _need_images(root / "B", "paired set B")
        names_b = {f.name for f in b}
        lone = [f for f in a if f.name not in names_b] + [f for f in b if f.name not in {g.name for g in a}]
        if lone:
            raise DataError(f"{lone[0]}: has no partner of the same name in "
                            f"{root / ('B' if lone[0].parent.name == 'A' else 'A')} ({len(lone)} unpaired file(s))")
        files = {"a": [(f, None) for f in a], "b": [(root / "B" / f.name, None) for f in a]}
        classes = []
    elif layout == "side-by-side":
        imgs = _need_images(root, "side-by-side A|B images")
        files = {"a": [(f, _halves(True)) for f in imgs], "b": [(f, _halves(False)) for f in imgs]}
        classes = []
    else:
        files = {"a": [(f, None) for f in _need_images(root / "trainA", "unpaired set A")],
                 "b": [(f, None) for f in _need_images(root / "trainB", "unpaired set B")]}
        classes = []
    readers = {}
    for var, fs in files.items():
        path, crop = fs[0]
        im = crop(_open(path), path) if crop else _open(path)
        readers[var] = ImageReader(shape or ImageReader.natural_shape(im), resize=shape is not None)
    return layout, files, labels, readers, classes


def load(root, size=None, layout=None, log=print):
    """Every image read now when they fit in memory (errors before training), else streamed."""
    layout, files, labels, readers, _ = scan(root, size, layout)
    samples = FolderSamples(list(files), [readers[v] for v in files], [files[v] for v in files], labels,
                            independent=("b",) if layout == "unpaired" else ())
    n = len(samples)
    shapes = [readers[v].shape for v in files] + ([(1,)] if labels is not None else [])
    dtypes = [np.uint8] * len(files) + ([np.float32] if labels is not None else [])
    if not fits_in_memory(n, shapes, dtypes):
        for reader, fs in zip(samples.readers, samples.files):
            for path, crop in fs:  # headers only: an odd image stops the run before training
                reader.probe(path, crop)
        log(f"{root}: {n} samples ({layout}), streamed from disk (more than the memory limit)")
        return samples
    arrays = read_all(n, samples.variables, shapes, dtypes, samples.sample)
    log(f"{root}: {n} samples ({layout}) in memory")
    return Arrays(arrays, samples.where, samples.independent)


def describe(path, size=None, layout=None):
    """What an image folder holds: its variables (the first image of each sets the shape without
    `size`) and classes (class subfolders)."""
    layout_found, files, labels, readers, classes = scan(path, size, layout)
    variables = {v: readers[v].shape for v in files}
    if labels is not None:
        variables["y"] = (1,)
    doc = f"image folder {path} ({layout_found}" + (f": {', '.join(classes)})" if classes else ")")
    return DatasetInfo(f"folder:{path}", variables, len(classes), tuple(files), doc)
