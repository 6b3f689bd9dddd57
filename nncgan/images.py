"""Image tiles: a batch of images in a near-square grid, as one PNG (Pillow)."""
import math

import numpy as np
from PIL import Image

PAD = 2  # pixels between cells


def grid(n):
    """(rows, cols) of a near-square grid for n images: 100 -> 10x10, 7 -> 3x3."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def tile(images, rows=None, cols=None, pad=PAD):
    """(N, C, H, W) floats in [0, 1] -> a PIL image, row-major, `pad` black pixels between cells."""
    images = np.asarray(images)
    n, c, h, w = images.shape
    if rows is None or cols is None:
        rows, cols = grid(n)
    canvas = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), np.uint8)
    pixels = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = pixels[i]
    return Image.fromarray(canvas[:, :, 0] if c == 1 else canvas)


def save_tile(images, path, rows=None, cols=None, info=None):
    """Write the tile as a PNG through safeio: a temporary file renamed over a regular file only."""
    from PIL import PngImagePlugin
    from . import safeio
    meta = PngImagePlugin.PngInfo()
    for k, v in (info or {}).items():
        meta.add_text(str(k), str(v))
    with safeio.atomic_path(path) as tmp:
        tile(images, rows, cols).save(tmp, format="PNG", pnginfo=meta)
    return path
