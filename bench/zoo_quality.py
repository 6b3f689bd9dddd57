"""Sample quality of generated digit tiles, read by bench/label_accuracy.py's independent classifier.

    python bench/zoo_quality.py TILE.png [TILE.png ...] [--cell 28] [--labels-cycle]

For each tile (a grid from `nncgan infer`; cells other than 28 px are resized to 28 for the
classifier) prints:
  conf      mean top class probability: how digit-like the images are to the classifier
  sure      share of images whose top probability is >= 0.9
  entropy   entropy of the predicted-class histogram, bits (3.32 = all ten digits equally often;
            low = the generator draws few kinds of digit: mode collapse)
  spread    mean per-pixel standard deviation across the tile's images (0 = every image alike)
With --labels-cycle (a conditional model drawn by plain `nncgan infer --no-captions`: one row per
label, image i of N has label i * 10 // N):
  acc       share read as their label
  in-label  the spread within each label, averaged: what the noise changes (0 = the noise is ignored)
`--real N` scores N real MNIST test digits the same way, as the reference row.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_accuracy as la  # noqa: E402


def spread(cells):
    return float(cells.reshape(len(cells), -1).std(axis=0).mean()) if len(cells) > 1 else 0.0


def scores(cells, labels=None):
    prob = la.predict(cells)
    pred = prob.argmax(1)
    hist = np.bincount(pred, minlength=10) / len(pred)
    nz = hist[hist > 0]
    out = {"n": len(cells), "conf": float(prob.max(1).mean()), "sure": float((prob.max(1) >= 0.9).mean()),
           "entropy": float(-(nz * np.log2(nz)).sum()), "spread": spread(cells)}
    if labels is not None:
        out["acc"] = float((pred == labels).mean())
        out["in-label"] = float(np.mean([spread(cells[labels == d]) for d in np.unique(labels)]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tiles", nargs="*")
    ap.add_argument("--cell", type=int, default=28)
    ap.add_argument("--pad", type=int, default=2)
    ap.add_argument("--labels-cycle", action="store_true")
    ap.add_argument("--real", type=int, help="also score this many real MNIST test digits")
    ap.add_argument("--data-dir", default=str(la.DATA_DIR))
    ap.add_argument("--model", default=str(la.MODEL))
    args = ap.parse_args(argv)
    la.load_model(args.model)
    rows = []
    if args.real:
        x, y = la.load_mnist(args.data_dir, "t10k")
        rows.append((f"real MNIST test ({args.real})", scores(x[:args.real], y[:args.real] if args.labels_cycle else None)))
    for t in args.tiles:
        cells = la.load_cells(t, args.cell, args.pad)
        labels = np.arange(len(cells)) * 10 // len(cells) if args.labels_cycle else None
        rows.append((t, scores(cells, labels)))
    for name, s in rows:
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
