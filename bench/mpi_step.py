"""Processes against BLAS threads for nncgan's training step: one interleaved comparison.

    .venv/bin/python bench/mpi_step.py [--rounds 3] [--iters 6] [--batch 64]

A benchmark, not a test. In rounds whose order rotates, each variant trains cgan_mnist's three
Adam steps (the loop's OptimizerStep, global batch 64, real MNIST, no file written) for --iters
timed iterations after one warm-up:
  1p x 1t   one process, OPENBLAS/OMP_NUM_THREADS=1
  1p x 2t   one process, 2 BLAS threads
  2p x 1t   two MPI ranks (mpiexec, the batch split 32 + 32, gradients all-reduced, sync BN)
and the same question for one OpenBLAS GEMM of the heavy Affine's shape (batch x 3146 @ 3146 x 512):
one process on 2 threads against two processes of half the rows on 1 thread each, side by side.
Prints the median ms per iteration (and images/s) of each variant.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST = os.environ.get("NNCGAN_MNIST_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))


def worker(iters, batch):
    """Time `iters` training iterations in this process (a rank when under mpiexec); rank 0 prints JSON."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import nnabla as nn
    from nncgan import context
    from nncgan.builder import build_all
    from nncgan.data.batches import iterator, to_batch
    from nncgan.data.spec import resolve
    from nncgan.graph.parse import parse_graph
    from nncgan.train import distributed
    from nncgan.train.optimizer import OptimizerStep
    context.select("cpu", log=lambda *a: None)
    rank, size, local = distributed.launched()
    comm = distributed.MPIComm(rank, size, local) if size > 1 else None
    graph = parse_graph(ROOT / "graphs" / "cgan_mnist.yaml")
    info = resolve("mnist")
    arrays = info.load("train", MNIST, log=lambda *a: None)
    arrays = {k: v[:batch * (iters + 1)] for k, v in arrays.items()}
    nets, rng = build_all(graph, batch, graph.config.seed, comm)
    steps = [OptimizerStep(o, nets[o.network], comm) for o in graph.optimizers]
    di, _ = iterator(arrays, batch, graph.config.seed)
    times = []
    for i in range(iters + 1):
        b = to_batch(di.variables, di.next(), info.images)
        t = time.perf_counter()
        for s in steps:
            s(b, rng, i)
        times.append(time.perf_counter() - t)
    if comm is not None:
        comm.barrier()
    if rank == 0:
        print(json.dumps({"ms": [1e3 * t for t in times[1:]]}))


def gemm(rows, reps):
    import numpy as np
    a = np.random.rand(rows, 3146).astype(np.float32)
    w = np.random.rand(3146, 512).astype(np.float32)
    a @ w
    t = time.perf_counter()
    for _ in range(reps):
        a @ w
    print(json.dumps({"ms": 1e3 * (time.perf_counter() - t) / reps}))


def run(cmd, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gemm", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.iters, a.batch)
    if a.gemm:
        return gemm(a.gemm, 50)
    me = [sys.executable, str(Path(__file__).resolve())]
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    step = me + ["--worker", "--iters", str(a.iters), "--batch", str(a.batch)]
    variants = {"1p x 1t": (step, 1), "1p x 2t": (step, 2), "2p x 1t": ([mpiexec, "-n", "2"] + step, 1)}
    res = {k: [] for k in variants}
    g = {"gemm 1p x 2t": [], "gemm 2p x 1t": []}
    names = list(variants)
    for r in range(a.rounds):
        for k in names[r % 3:] + names[:r % 3]:
            cmd, threads = variants[k]
            res[k] += run(cmd, threads)[0]["ms"]
        g["gemm 1p x 2t"].append(run(me + ["--gemm", str(a.batch)], 2)[0]["ms"])
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        ps = [subprocess.Popen(me + ["--gemm", str(a.batch // 2)], env=env, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
        g["gemm 2p x 1t"].append(max(json.loads(q.communicate()[0])["ms"] for q in ps))
    print(f"load average at the end: {os.getloadavg()}")
    for k, v in res.items():
        m = statistics.median(v)
        print(f"{k}: {m:7.1f} ms/iteration (median of {len(v)}), {a.batch / m * 1e3:6.1f} images/s")
    for k, v in g.items():
        print(f"{k}: {statistics.median(v):6.2f} ms per {a.batch}x3146 @ 3146x512 (median of {len(v)})")


if __name__ == "__main__":
    main()
