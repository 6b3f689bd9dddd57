"""Whole-iteration A/B of this branch's CPU speed-ups, in one process, interleaved: cgan_mnist, batch 64,
the three optimizer steps as `nncgan train` runs them, built twice: "before" with NNabla's batch
normalization, ReLU and label-table functions (Slice, (de)convolution of one-hot maps, Affine, Add2)
and NNabla's failed relative imports left in place (main before this work), "after" with everything. Each round runs one iteration of each, alternating which goes
first; prints the medians. A benchmark, not a test.

    .venv/bin/python bench/step_ab.py [--rounds 20] [--threads 1]
"""
import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import nnabla as nn
import nnabla.functions as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from nncgan.layers import cpu_kernels as K, sync_bn  # noqa: E402

IMPORTS = ("nnabla.nnabla", "nnabla.nnabla_ext", "nnabla.nnabla_ext.cpu")


def _nnabla_table(fn, w, in_axis, channels, spatial, geometry):
    """label_maps' table as it was built before: a Slice of W and the (de)convolution of C one-hot maps."""
    a, e = channels
    c = e - a
    eye = np.broadcast_to(np.eye(c, dtype=np.float32).reshape((c, c) + (1,) * len(spatial)), (c, c) + tuple(spatial))
    lo, hi = [0] * w.ndim, list(w.shape)
    lo[in_axis], hi[in_axis] = a, e
    return fn(nn.Variable.from_numpy_array(np.ascontiguousarray(eye)), F.slice(w, lo, hi), None, base_axis=1,
              **geometry)


PATCH = {"label_table": _nnabla_table, "slice_": F.slice,
         "add_rows": lambda y, o, t: y + F.reshape(F.affine(o, F.reshape(t, (t.shape[0], -1))), y.shape)}


@contextlib.contextmanager
def before():
    """Main's state: NNabla's BN, ReLU and label-table functions, the failing relative imports back."""
    saved = (K.MIN_ELEMENTWISE, sync_bn.MIN_SIZE, {n: sys.modules.pop(n, None) for n in IMPORTS},
             {k: getattr(K, k) for k in PATCH})
    K.MIN_ELEMENTWISE = sync_bn.MIN_SIZE = 1 << 62
    for k, v in PATCH.items():
        setattr(K, k, v)
    try:
        yield
    finally:
        K.MIN_ELEMENTWISE, sync_bn.MIN_SIZE = saved[0], saved[1]
        for k, v in saved[3].items():
            setattr(K, k, v)
        for n, m in saved[2].items():
            if n not in sys.modules and m is not None:
                sys.modules[n] = m


# This round's changes (issue 17, second pass), each a switch read when a layer is built: "--previous"
# compares main before them ("before") with them ("after").
ROUND = {(K, "PHASES"): False, (K, "REUSE_PATCHES"): False, (K, "TRANSPOSE_CHUNK"): 0, (K, "TAPS_FIRST"): False}


@contextlib.contextmanager
def previous():
    """Main's kernels before this round's changes."""
    saved = {k: getattr(*k) for k in ROUND}, {n: sys.modules.pop(n, None) for n in IMPORTS}
    for (m, k), v in ROUND.items():
        setattr(m, k, v)
    sys.modules.update({n: None for n in IMPORTS[:2]})   # main's failing relative imports
    try:
        yield
    finally:
        for (m, k), v in saved[0].items():
            setattr(m, k, v)
        for n, m in saved[1].items():
            sys.modules[n] = m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--previous", action="store_true", help="before = main before this round's changes "
                    "(default: before the BN/ReLU/label-table/import work)")
    args = ap.parse_args()
    base = previous if args.previous else before
    from nncgan import context
    from step_time import nncgan_steps
    context.select("cpu", log=lambda *a: None)
    K.set_blas_threads(args.threads)
    with nn.parameter_scope("before"), base():
        old = nncgan_steps(args.batch)
    with nn.parameter_scope("after"):
        new = nncgan_steps(args.batch)
    runs = {"before": (old, base), "after": (new, contextlib.nullcontext)}
    rng, data = np.random.RandomState(0), np.random.RandomState(1)
    times = {k: [] for k in runs}
    cpu = {k: [] for k in runs}   # CPU time of this process: less disturbed by other jobs than wall time
    for i in range(args.rounds + 2):
        batch = {"x": data.rand(args.batch, 1, 28, 28).astype(np.float32),
                 "y": data.randint(0, 10, (args.batch, 1)).astype(np.float32)}
        for k in (("before", "after") if i % 2 else ("after", "before")):
            steps, scope = runs[k]
            with scope():
                t0, c0 = time.perf_counter(), time.process_time()
                for s in steps:
                    s(batch, rng, i)
                if i >= 2:
                    times[k].append(time.perf_counter() - t0)
                    cpu[k].append(time.process_time() - c0)
    print(f"batch {args.batch}, {args.threads} BLAS thread(s), {args.rounds} interleaved iterations, median:")
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    mcpu = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    for k, v in med.items():
        print(f"  {k:7s} {v:7.1f} ms/iteration wall, {mcpu[k]:7.1f} ms CPU")
    print(f"  after / before: {med['after'] / med['before']:.3f} wall, {mcpu['after'] / mcpu['before']:.3f} CPU")


if __name__ == "__main__":
    main()
