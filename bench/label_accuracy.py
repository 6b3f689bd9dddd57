"""Label accuracy of generated MNIST digits, measured by an independent classifier.

A measuring tool for conditional generators, not part of the library (it does
not import ``nncgan``): a small hand-written NNabla CNN is trained on real MNIST
and then reads generated digits, reporting how often digit D is read as D.

Usage::

    python bench/label_accuracy.py train [--data-dir DIR] [--out MODEL.h5] [--epochs 3]
    python bench/label_accuracy.py score --label D TILE.png [--cell 28] [--pad 2] [--min-conf 0.5] [--count N] [--model MODEL.h5]
    python bench/label_accuracy.py score-dir DIR [same options as score] [--require 0.95]

``train`` reads the IDX gzip files in DIR (default ``<repo>/../shared/data/mnist``),
prints the t10k test accuracy (99.33% after 3 epochs, ~7 min on one CPU core;
exit 1 if below 99%) and saves the parameters (scope ``label_classifier/``) to
MODEL (default ``~/.cache/nncgan/label_classifier.h5``).

``score`` takes a PNG tile: a grid of grayscale cell x cell images separated by
``pad`` pixels of gap and no outer border (width = cols*cell + (cols-1)*pad),
or a ``.npy`` array of shape (N,1,28,28) or (N,28,28) with values in [0,1];
``--count N`` uses only the first N cells (for partly filled grids). A cell is
read as D when the classifier's top class is D with probability >= ``--min-conf``
(default 0.5; 0 means plain argmax), so noise or blank cells, which an MNIST
classifier maps to some digit with low confidence, do not count as hits.
``score-dir`` scores every ``label_<D>.png`` / ``label_<D>.npy`` in DIR and
prints the minimum and mean over labels; with ``--require P`` it exits 1 when
the minimum is below P (otherwise it always exits 0).
"""
import argparse
import gzip
import re
import sys
import time
from pathlib import Path

import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import nnabla.solvers as S

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
MODEL = Path.home() / ".cache" / "nncgan" / "label_classifier.h5"


def load_idx(path):
    """Parse an IDX(.gz) file into a uint8 array (magic: 0x0000 0x08 ndim)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(data_dir, split):
    x = load_idx(Path(data_dir) / f"{split}-images-idx3-ubyte.gz")
    y = load_idx(Path(data_dir) / f"{split}-labels-idx1-ubyte.gz")
    return x[:, None].astype(np.float32) / 255.0, y.astype(np.int32)


def classifier(x, test=False):
    """conv32-pool-conv64-pool-conv64-affine128-affine10 (3x3 convs, ReLU); x: (B,1,28,28) in [0,1]."""
    with nn.parameter_scope("label_classifier"):
        h = F.max_pooling(F.relu(PF.convolution(x, 32, (3, 3), pad=(1, 1), name="conv1")), (2, 2))
        h = F.max_pooling(F.relu(PF.convolution(h, 64, (3, 3), pad=(1, 1), name="conv2")), (2, 2))
        h = F.relu(PF.convolution(h, 64, (3, 3), pad=(1, 1), name="conv3"))
        h = F.relu(PF.affine(h, 128, name="fc1"))
        if not test:
            h = F.dropout(h, 0.3)
        return PF.affine(h, 10, name="fc2")


def predict(images, batch=500):
    """Class probabilities (N,10) for a (N,1,28,28) float array (params must be loaded)."""
    x = nn.Variable((batch, 1, 28, 28))
    y = F.softmax(classifier(x, test=True))
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        x.d[:len(chunk)] = chunk
        y.forward(clear_buffer=True)
        out.append(y.d[:len(chunk)].copy())
    return np.concatenate(out)


def train(args):
    np.random.seed(0)
    nn.seed(0)
    xtr, ytr = load_mnist(args.data_dir, "train")
    xte, yte = load_mnist(args.data_dir, "t10k")
    bs, steps = 128, len(xtr) // 128
    x, t = nn.Variable((bs, 1, 28, 28)), nn.Variable((bs, 1))
    loss = F.mean(F.softmax_cross_entropy(classifier(x), t))
    solver = S.Adam(2e-3)
    solver.set_parameters(nn.get_parameters())
    rng, start = np.random.RandomState(0), time.time()
    for epoch in range(args.epochs):
        perm, total = rng.permutation(len(xtr)), 0.0
        for i in range(steps):  # cosine learning-rate decay from 2e-3 to 0 over the whole run
            solver.set_learning_rate(1e-3 * (1 + np.cos(np.pi * (epoch * steps + i) / (args.epochs * steps))))
            idx = perm[i * bs:(i + 1) * bs]
            x.d, t.d = xtr[idx], ytr[idx, None]
            loss.forward(clear_no_need_grad=True)
            solver.zero_grad()
            loss.backward(clear_buffer=True)
            solver.update()
            total += float(loss.d)
        acc = (predict(xte).argmax(1) == yte).mean()
        print(f"epoch {epoch + 1}: loss {total / steps:.4f}  test acc {acc:.2%}  "
              f"({time.time() - start:.0f}s)", flush=True)
    Path(args.out).expanduser().parent.mkdir(parents=True, exist_ok=True)
    nn.save_parameters(str(Path(args.out).expanduser()))
    print(f"test accuracy {acc:.2%}; saved {args.out}")
    return 0 if acc >= 0.99 else 1


def load_cells(path, cell=28, pad=2, count=None):
    """Images of a PNG tile (grid with `pad` gaps) or .npy array, as (N,1,28,28) in [0,1]."""
    path = Path(path)
    if path.suffix == ".npy":
        cells = np.load(path).astype(np.float32).reshape(-1, 1, 28, 28)
    else:
        from PIL import Image
        img = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
        (rows, r), (cols, c) = divmod(img.shape[0] + pad, cell + pad), divmod(img.shape[1] + pad, cell + pad)
        if r or c:
            sys.exit(f"{path}: size {img.shape[1]}x{img.shape[0]} is not a grid of {cell}px cells with {pad}px gaps")
        s = cell + pad
        cells = [img[i * s:i * s + cell, j * s:j * s + cell] for i in range(rows) for j in range(cols)]
        if cell != 28:  # resample other cell sizes to the classifier's 28x28
            cells = [np.asarray(Image.fromarray(c).resize((28, 28), Image.BILINEAR)) for c in cells]
        cells = np.stack(cells)[:, None]
    return cells[:count] if count else cells


def score_one(path, label, args):
    """Print and return the fraction of cells read as `label` with probability >= min_conf."""
    prob = predict(load_cells(path, args.cell, args.pad, args.count))
    pred, unsure = prob.argmax(1), prob.max(1) < args.min_conf
    hits, hist = int(((pred == label) & ~unsure).sum()), np.bincount(pred, minlength=10)
    print(f"label {label}: {hits}/{len(pred)} = {hits / len(pred):.1%}   predicted "
          + " ".join(f"{d}:{n}" for d, n in enumerate(hist) if n) + f"   unsure(p<{args.min_conf:g}):{unsure.sum()}")
    return hits / len(pred)


def load_model(path):
    path = Path(path).expanduser()
    if not path.exists():
        sys.exit(f"no model at {path}; run `python bench/label_accuracy.py train` first")
    nn.load_parameters(str(path))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--data-dir", default=str(DATA_DIR))
    tr.add_argument("--out", default=str(MODEL))
    tr.add_argument("--epochs", type=int, default=3)
    for name in ("score", "score-dir"):
        sp = sub.add_parser(name)
        sp.add_argument("path", help="tile (.png/.npy)" if name == "score" else "directory of label_<D>.png/.npy")
        if name == "score":
            sp.add_argument("--label", type=int, required=True)
        else:
            sp.add_argument("--require", type=float, help="exit 1 if the minimum accuracy is below this")
        sp.add_argument("--cell", type=int, default=28)
        sp.add_argument("--pad", type=int, default=2)
        sp.add_argument("--count", type=int, help="use only the first N cells")
        sp.add_argument("--min-conf", type=float, default=0.5,
                        help="a cell counts only if its top probability reaches this (0: plain argmax)")
        sp.add_argument("--model", default=str(MODEL))
    args = p.parse_args(argv)
    if args.cmd == "train":
        return train(args)
    load_model(args.model)
    if args.cmd == "score":
        score_one(args.path, args.label, args)
        return 0
    files = sorted(f for f in Path(args.path).glob("label_*.*")
                   if f.suffix in (".png", ".npy") and re.fullmatch(r"label_\d", f.stem))
    if not files:
        sys.exit(f"no label_<D>.png / .npy files in {args.path}")
    accs = [score_one(f, int(f.stem[-1]), args) for f in files]
    print(f"min {min(accs):.1%}  mean {np.mean(accs):.1%}  over {len(accs)} labels")
    return 1 if args.require is not None and min(accs) < args.require else 0


if __name__ == "__main__":
    sys.exit(main())
