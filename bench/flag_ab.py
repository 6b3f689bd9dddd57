"""Whole-iteration A/B of one cpu_kernels switch on any graph: its optimizer steps built twice, with the
switch off ("before") and on ("after"), run interleaved iteration by iteration in one process on the
same random batches; prints the medians of this process' CPU time. A benchmark, not a test.

    .venv/bin/python bench/flag_ab.py GRAPH --flag WINOGRAD [--batch 32] [--rounds 10] [--set PATH=VALUE ...]
    .venv/bin/python bench/flag_ab.py GRAPH --flag MIN_MAPS --values 1000000 8     # a setting: before, after
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import nnabla as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nncgan import context  # noqa: E402
from nncgan.builder import build_all  # noqa: E402
from nncgan.graph.overrides import load  # noqa: E402
from nncgan.layers import cpu_kernels as K  # noqa: E402
from nncgan.train.optimizer import OptimizerStep  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graph")
    ap.add_argument("--flag", required=True, help="a switch of nncgan/layers/cpu_kernels.py read when a layer is built")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--values", nargs=2, type=float, metavar=("BEFORE", "AFTER"),
                    help="a numeric setting's two values (default: the switch False, then True)")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    context.select("cpu", log=lambda *a: None)
    K.set_blas_threads(args.threads)
    graph, _ = load(args.graph, args.set)
    runs, old = {}, getattr(K, args.flag)
    values = (False, True) if args.values is None else args.values
    for name, value in zip(("before", "after"), values):
        setattr(K, args.flag, value)
        with nn.parameter_scope(name):
            nets, _ = build_all(graph, args.batch, graph.config.seed, None)
        runs[name] = [OptimizerStep(o, nets[o.network], None) for o in graph.optimizers]
    setattr(K, args.flag, old)
    shapes = {var: t[0].shape for s in runs["after"] for var, t in s.network.data.items()}
    rng, data = np.random.RandomState(0), np.random.RandomState(1)
    times = {k: [] for k in runs}
    for i in range(args.rounds + 2):
        batch = {k: data.rand(*v).astype(np.float32) for k, v in shapes.items()}
        for k in (("before", "after") if i % 2 else ("after", "before")):
            with nn.parameter_scope(k):
                t0 = time.process_time()
                for s in runs[k]:
                    s(batch, rng, i)
                if i >= 2:   # the first iterations allocate
                    times[k].append(time.process_time() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"{args.graph} batch {args.batch}, {args.flag} before / after, {args.rounds} interleaved iterations, "
          f"median CPU ms: {med['before']:.1f} / {med['after']:.1f} (ratio {med['after'] / med['before']:.3f})"
          + (f"; values {values[0]:g} / {values[1]:g}" if args.values else ""))


if __name__ == "__main__":
    main()
