"""Images in and out: which files are images, reading one, scaling uint8 <-> [0, 1], and tiles.

Every reader of image files (image folders, NNC CSV cells, `infer --input`) asks `is_image`,
reads through `ImageReader`, and scales with `to_unit`, so they accept and feed the same images.
Tiles: a batch of images in a near-square grid, as one PNG (Pillow).
"""
import errno
import math
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

# The image files nncgan reads: exactly those NNabla's CSV loader reads as images
# (nnabla.utils.data_source_loader), so a folder, a CSV and `--input` take the same files.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
PAD = 2  # pixels between cells


def is_image(name):
    """Whether a file name (or path) has one of IMAGE_EXTENSIONS, in any case."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_EXTENSIONS


def to_unit(pixels):
    """uint8 pixels -> float32 in [0, 1]: NNC's ImageNormalization (pixel / 255), as training feeds them."""
    return np.asarray(pixels).astype(np.float32) / 255.0


def as_fed(values, image):
    """A dataset variable's values as training feeds them: scaled to [0, 1] when it is an image."""
    return to_unit(values) if image else np.asarray(values).astype(np.float32)


def to_pixels(images):
    """Floats in [0, 1] -> uint8 pixels (clipped, rounded to nearest): the inverse of to_unit."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def stat_of(p):
    """os.stat of `p` (following links), None when absent; a link that loops is an error naming it."""
    try:
        return os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{p}: a symbolic link that loops (it leads back to itself)") from None
        return None


def entries(d, kind):
    """The subfolders (kind "dir") or image files (kind "file") of folder `d`, sorted, hidden ones left out."""
    test = stat.S_ISDIR if kind == "dir" else stat.S_ISREG  # FIFOs and devices are never images
    out = []
    for p in d.iterdir():
        if p.name.startswith(".") or (kind == "file" and not is_image(p.name)):
            continue
        st = stat_of(p)
        if st is not None and test(st.st_mode):
            out.append(p)
    return sorted(out)


def image_files(folder):
    """The image files in `folder`, sorted by name: regular files (links followed) with one of
    IMAGE_EXTENSIONS; hidden files (.name) are left out."""
    return entries(Path(folder), "file")


def _opened(path):
    """The image at `path`, opened (pixels not decoded); DataError for what is not a usable image.

    Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, 89 M pixels) is an error from the
    limit on: Pillow itself only warns up to twice that, and decodes gigabytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DataError(f"{path}: the image has more pixels than Pillow's decompression-bomb limit of "
                        f"{Image.MAX_IMAGE_PIXELS:,}; shrink it before training") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:  # unreadable, not an image
        raise DataError(f"{path}: cannot read the image ({e})") from None


def open_image(path):
    """The image at `path`, decoded; DataError naming the file for what cannot be read."""
    with _opened(path) as im:
        try:
            im.load()
            return im.copy()
        except (OSError, ValueError) as e:  # truncated, corrupt
            raise DataError(f"{path}: cannot read the image ({e})") from None


def _channels(mode):
    return 1 if mode in ("1", "L", "I", "I;16", "F") else 3  # palette, RGBA, CMYK... -> RGB


class ImageReader:
    """Reads an image file as uint8 (C, H, W): converted and resized to `shape`, or checked against it."""

    def __init__(self, shape, resize):
        self.shape, self.resize = tuple(shape), resize

    @staticmethod
    def natural_shape(im):
        return (_channels(im.mode), im.height, im.width)

    def probe(self, path, crop=None):
        """What read() would refuse, from the file's header alone (no pixels decoded)."""
        with _opened(path) as im:
            mode, w, h = im.mode, im.width, im.height
        if crop is not None:
            if w % 2:
                raise DataError(f"{path}: width {w} is odd; a side-by-side image holds A and B "
                                f"in two halves of equal width")
            w //= 2
        got = (_channels(mode), h, w)
        if not self.resize and got != self.shape:
            raise DataError(f"{path}: image is {got} (channels, height, width), the first image's is "
                            f"{self.shape}; give the dataset a size: [C, H, W] to convert and resize every image")

    def read(self, path, crop=None):
        im = open_image(path)
        if crop is not None:
            im = crop(im, path)
        c, h, w = self.shape
        if self.resize:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
        elif self.natural_shape(im) != self.shape:
            raise DataError(f"{path}: image is {self.natural_shape(im)} (channels, height, width), the "
                            f"first image's is {self.shape}; give the dataset a size: [C, H, W] to convert "
                            f"and resize every image")
        else:
            im = im.convert("L" if c == 1 else "RGB")
        a = np.asarray(im, np.uint8)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def grid(n):
    """(rows, cols) of a near-square grid for n images: 100 -> 10x10, 7 -> 3x3."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def tile(images, rows=None, cols=None, pad=PAD, row_labels=None):
    """(N, C, H, W) floats in [0, 1] -> a PIL image, row-major, `pad` black pixels between cells.

    `row_labels`: a caption per row (the label), drawn in a black margin left of the grid; the
    cells keep their pixels, shifted right by `caption_margin(row_labels)`."""
    images = np.asarray(images)
    n, c, h, w = images.shape
    if rows is None or cols is None:
        rows, cols = grid(n)
    left = caption_margin(row_labels)
    canvas = np.zeros((rows * h + (rows - 1) * pad, left + cols * w + (cols - 1) * pad, c), np.uint8)
    pixels = to_pixels(images).transpose(0, 2, 3, 1)
    for i in range(n):
        r, k = divmod(i, cols)
        x = left + k * (w + pad)
        canvas[r * (h + pad):r * (h + pad) + h, x:x + w] = pixels[i]
    out = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas)
    if left:
        from PIL import ImageDraw
        draw = ImageDraw.Draw(out)
        white = 255 if c == 1 else (255,) * c
        for r, text in enumerate(row_labels[:rows]):
            draw.text((2, r * (h + pad) + max(0, (h - CAPTION_FONT_PX) // 2)), str(text), fill=white)
    return out


CAPTION_CHAR_PX, CAPTION_FONT_PX = 6, 11  # PIL's default bitmap font


def caption_margin(row_labels):
    """Pixels of the left caption margin: room for the longest caption and a gap (0 without captions)."""
    if not row_labels:
        return 0
    return 4 + CAPTION_CHAR_PX * max(len(str(t)) for t in row_labels)


def row_captions(labels, rows, cols):
    """The label of each row of a rows x cols tile, or None when some row mixes labels (or there are none)."""
    if labels is None:
        return None
    labels = [int(v) for v in np.asarray(labels).ravel()]
    out = []
    for r in range(rows):
        row = set(labels[r * cols:(r + 1) * cols])
        if len(row) > 1:
            return None
        if row:
            out.append(row.pop())
    return out


def scaled(image, scale):
    """The picture `scale` times larger, each pixel a scale x scale block (nearest: no blur)."""
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale), Image.NEAREST)


AUTO_SCALE_PX = 56  # --scale's default: a cell shows at least this large (28 px MNIST -> 2x)


def auto_scale(images):
    """The smallest integer scale at which a cell is AUTO_SCALE_PX pixels or more (1 for large cells)."""
    h, w = np.asarray(images).shape[2:]
    return max(1, min(16, math.ceil(AUTO_SCALE_PX / max(1, min(h, w)))))


def save_tile(images, path, rows=None, cols=None, info=None, row_labels=None, scale=1):
    """Write the tile as a PNG through safeio: a temporary file renamed over a regular file only."""
    from PIL import PngImagePlugin
    from . import safeio
    meta = PngImagePlugin.PngInfo()
    for k, v in (info or {}).items():
        meta.add_text(str(k), str(v))
    if row_labels:  # where the cells start, for tools that read them
        meta.add_text("caption_margin", str(caption_margin(row_labels)))
    with safeio.atomic_path(path) as tmp:
        scaled(tile(images, rows, cols, row_labels=row_labels), scale).save(tmp, format="PNG", pnginfo=meta)
    return path
