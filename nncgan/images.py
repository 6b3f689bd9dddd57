"""Image tiles: a batch of images in a near-square grid, as one PNG (Pillow)."""
import math

import numpy as np
from PIL import Image

PAD = 2  # pixels between cells


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
    pixels = (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
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
