"""Write a built-in dataset as an NNC CSV dataset: PNG files plus the CSV files NNC opens.

The layout is that of NNC's MNIST sample, so the result opens in NNC as it is:

    DIR/mnist_training.csv      x:image,y:label / ./training/5/0.png,5 / ...
    DIR/mnist_test.csv          x:image,y:label / ./validation/7/0.png,7 / ...
    DIR/training/<label>/<i>.png, DIR/validation/<label>/<i>.png   (i: index in the split)
"""
import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from .. import safeio
from ..errors import DataError
from .registry import built_in_names
from .spec import DatasetSpec

# split -> (image folder, CSV suffix), as in NNC's sample
LAYOUT = {"train": ("training", "training"), "test": ("validation", "test")}


def export_csv(name, out_dir, *, splits=("train", "test"), limit=None, data_dir=None, log=print):
    """Export `limit` samples (all by default) of each split; returns the CSV paths written."""
    if name not in built_in_names():  # every built-in dataset is images x and labels y
        raise DataError(f"cannot export {name!r}; exportable: {', '.join(built_in_names())}")
    info = DatasetSpec(name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder; name a folder to export into")
    written = []
    for split in splits:
        arrays = info.load(split, data_dir, log=log)
        x, y = arrays["x"][:limit], arrays["y"][:limit]
        folder, suffix = LAYOUT[split]
        rows = []
        where = out / folder
        try:
            for label in np.unique(y):
                (out / folder / str(int(label))).mkdir(parents=True, exist_ok=True)
            for i, (image, label) in enumerate(zip(x, y[:, 0])):
                rel = f"./{folder}/{int(label)}/{i}.png"
                where = out / rel
                _save_png(image, where)
                rows.append((rel, int(label)))
        except safeio.WRITE_ERRORS as e:
            done = f"; {', '.join(map(str, written))} written whole" if written else ""
            raise DataError(f"cannot write {where}: {safeio.reason(e)}{done}") from None
        path = out / f"{name.replace('-', '_')}_{suffix}.csv"
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["x:image", "y:label"])
        w.writerows(rows)
        safeio.write_text(path, text.getvalue())  # the CSV last: it names only written files
        log(f"{path}: {len(rows)} images in {out / folder}")
        written.append(path)
    return written


def _save_png(chw, path):
    """(1, H, W) or (3, H, W) uint8 -> a grayscale or RGB PNG, read back by NNabla as the same array."""
    image = chw[0] if chw.shape[0] == 1 else np.transpose(chw, (1, 2, 0))
    Image.fromarray(np.ascontiguousarray(image)).save(path)
