"""Held-out scores of the image-to-image graphs (pix2pix, CycleGAN) from a trained run.

A measuring tool, not part of the library. It reads the first N samples of the run's dataset
test split (never trained on), runs the executors the way `nncgan infer` does, and prints one
Markdown table row per measure.

    python bench/pairs_eval.py pix2pix RUN [--num 1000] [--data-dir DIR]
    python bench/pairs_eval.py cyclegan RUN [--num 1000] [--data-dir DIR] [--model MODEL.h5]

pix2pix: L1 (mean absolute pixel difference, pixels in [0, 1]) and PSNR (mean over images of
10 log10(1 / MSE)) of the translation G(a) against the true item b, beside two baselines that
take no learning: the input edge map itself, and a black image.

cyclegan (dataset `derive: {type: strokes}`, whose test split holds the thin (a) and thick (b)
version of every test digit): the independent digit classifier of bench/label_accuracy.py reads
the sources a and b, the translations A->B, B->A and the round trips A->B->A, B->A->B; "kept"
is the fraction read as the source's label. Also the ink (fraction of pixels > 0.5), which shows
whether a translation really thickens or thins, and L1 of A->B against the true thick version.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import nnabla as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from nncgan import context, inference  # noqa: E402
from nncgan.data.batches import to_batch  # noqa: E402


def test_split(run, num, data_dir):
    graph = inference.run_graph(run)
    info = graph.dataset
    # only the first `num` read and derived: on the test split edges and strokes are made image by
    # image, so these are the first `num` of the whole derived split, without deriving all 10000
    data = info.load("test", data_dir, log=lambda *a: None, limit=num)
    names = list(data)
    return to_batch(names, [np.asarray(data[k])[:num] for k in names], info.images)


def translate(run, executor, images):
    loaded = inference.load(run, len(images), executor)
    var = loaded.sampler.needs[0]
    return loaded.sampler.draw(None, np.random.RandomState(0), feed={var: images})


def l1(x, y):
    return float(np.mean(np.abs(x - y)))


def psnr(x, y):
    from nncgan.psnr import mean_psnr
    return mean_psnr(x, y)


def pix2pix(args):
    d = test_split(args.run, args.num, args.data_dir)
    out = translate(args.run, None, d["a"])
    n = len(out)
    print(f"| pix2pix, {n} test pairs | L1 | PSNR (dB) |\n|---|---|---|")
    for name, x in (("G(edges), the translation", out), ("baseline: the edge map itself", d["a"]),
                    ("baseline: a black image", np.zeros_like(out))):
        print(f"| {name} | {l1(x, d['b']):.4f} | {psnr(x, d['b']):.2f} |")
    return 0


def cyclegan(args):
    d = test_split(args.run, args.num, args.data_dir)
    a, b, y = d["a"], d["b"], d["y_a"][:, 0].astype(int)
    ab = translate(args.run, "AtoB", a)
    aba = translate(args.run, "BtoA", ab)
    ba = translate(args.run, "BtoA", b)
    bab = translate(args.run, "AtoB", ba)
    nn.clear_parameters()
    import label_accuracy as la
    la.load_model(args.model)
    rows = (("a (thin source)", a), ("A->B", ab), ("A->B->A", aba),
            ("b (thick source)", b), ("B->A", ba), ("B->A->B", bab))
    print(f"| CycleGAN, {len(a)} test digits | kept (read as the source's label) | ink | L1 to |\n|---|---|---|---|")
    for name, x in rows:
        kept = float(np.mean(la.predict(x).argmax(1) == y))
        ink = float(np.mean(x > 0.5))
        ref = ("b", b) if name.endswith("B") or name.startswith("a ") else ("a", a)
        print(f"| {name} | {kept:.1%} | {ink:.3f} | {ref[0]}: {l1(x, ref[1]):.4f} |")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("graph", choices=("pix2pix", "cyclegan"))
    p.add_argument("run")
    p.add_argument("--num", type=int, default=1000, help="the first N test samples (default 1000)")
    p.add_argument("--data-dir")
    p.add_argument("--model", default=str(Path.home() / ".cache" / "nncgan" / "label_classifier.h5"))
    args = p.parse_args(argv)
    context.select("cpu", log=lambda *a: None)
    return pix2pix(args) if args.graph == "pix2pix" else cyclegan(args)


if __name__ == "__main__":
    sys.exit(main())
