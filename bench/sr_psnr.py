"""PSNR of a super-resolution run against bicubic and nearest-neighbour up-scaling, on held-out images.

    python bench/sr_psnr.py RUN [--num 1000] [--executor Executor] [--data-dir DIR]

RUN is a run of a graph whose executor reads `x_low` (graphs/srcnn.yaml, graphs/multistage_gan.yaml)
on a `derive: {type: downscale}` dataset. The first --num images of the dataset's test split
(never trained on) are up-scaled by the run's executor (its output clipped to [0, 1], as a PNG
would hold it), by bicubic interpolation (the dataset's x_up) and by repeating pixels, and each is
compared with the original x. Prints mean PSNR in dB (images in [0, 1], peak 1).
"""
import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
logging.basicConfig(level=logging.WARNING)

from nncgan import context, feeds, inference  # noqa: E402
from nncgan.psnr import mean_psnr  # noqa: E402


def upscale_psnr(run, num, executor=None, data_dir=None, batch=100):
    """{'model': dB, 'bicubic': dB, 'nearest': dB, 'num', 'seconds', 'executor', 'folder', 'dataset'}:
    the first `num` test images (all of them if fewer) up-scaled three ways, compared with x."""
    graph = inference.run_graph(run)
    info_vars = graph.dataset.variables
    if not {"x", "x_low", "x_up"} <= set(info_vars):
        sys.exit(f"{run}: its dataset has {', '.join(info_vars)}; PSNR needs x, x_low and x_up "
                 f"(dataset: {{name: mnist, derive: {{type: downscale, factor: 2}}}})")
    # only the first `num` images read and down-scaled (image by image: the same as the first num
    # of the whole derived split), not all 10000 of them
    test = graph.dataset.load("test", data_dir, log=lambda *a: None, limit=num)
    data = feeds.first_samples(test, ["x", "x_low", "x_up"], min(num, feeds.length_of(test)), graph.dataset.images)
    num = len(data["x"])
    batch = min(batch, num)
    loaded = inference.load(run, batch, executor)
    rng = np.random.RandomState(0)
    start, outs = time.perf_counter(), []
    for i in range(0, num, batch):
        low = data["x_low"][i:i + batch]
        k = len(low)
        if k < batch:  # the last partial batch: padded, the padding dropped
            low = np.concatenate([low, np.repeat(low[-1:], batch - k, axis=0)])
        outs.append(loaded.sampler.draw(None, rng, feed={"x_low": low})[:k])
    sr = np.clip(np.concatenate(outs), 0.0, 1.0)
    seconds = time.perf_counter() - start
    nearest = np.kron(data["x_low"], np.ones((1, 1, 2, 2), np.float32))
    return {"model": mean_psnr(sr, data["x"]), "bicubic": mean_psnr(data["x_up"], data["x"]),
            "nearest": mean_psnr(nearest, data["x"]), "num": num, "seconds": seconds,
            "executor": loaded.sampler.executor.name, "folder": loaded.folder.name, "dataset": graph.dataset.name}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--executor")
    ap.add_argument("--data-dir")
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args(argv)
    context.select("cpu", log=lambda *a: None)
    r = upscale_psnr(args.run, args.num, args.executor, args.data_dir, args.batch)
    print(f"{args.run} ({r['folder']}), {r['num']} test images, {r['dataset']}:")
    print(f"  {r['executor']:<10} {r['model']:6.2f} dB   ({r['seconds']:.1f} s)")
    print(f"  {'bicubic':<10} {r['bicubic']:6.2f} dB")
    print(f"  {'nearest':<10} {r['nearest']:6.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
