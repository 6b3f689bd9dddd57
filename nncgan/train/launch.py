"""`nncgan train --procs N`: this process starts N MPI ranks of itself, and what each rank does on leaving.

The parent settles what all ranks must agree on before any starts (the run folder, the number of
ranks dividing the global batch), then waits for `mpiexec -n N python -m nncgan.cli train ...`.
"""
import contextlib
import io
import os
import sys
import traceback
from pathlib import Path

from . import distributed


def _global_batch(args, graph):
    from .. import run as runs
    if args.batch_size:
        return args.batch_size
    if args.resume:
        info = runs.read_info(Path(args.out))
        if runs.field(info, "batch_size"):  # a damaged value is ignored, as _train does
            return info["batch_size"]
    return graph.config.batch_size


def launch_if_asked(args, graph):
    """Start the ranks when --procs asks for several and no MPI launcher started this process;
    returns their exit status, or None to train here as one process."""
    from .. import run as runs
    from ..context import cuda_available
    if any(v in os.environ for v in distributed.SIZE_VARS):
        return None  # under mpiexec already (even -n 1)
    argv = list(args.argv)
    if not args.out:  # every rank must name the same run folder
        args.out = str(runs.latest_run(args.runs_dir, graph.name) if args.resume
                       else runs.fresh_path(graph, args.runs_dir))
        argv += ["--out", args.out]
    batch = _global_batch(args, graph)
    on_gpu = args.context == "cudnn" or (args.context == "auto" and cuda_available())
    n = distributed.procs_for(args.procs, batch, on_gpu)
    if n == 1:
        return None
    print(f"nncgan: {n} processes (mpiexec), a batch of {batch} split {batch // n} each, "
          f"{distributed.blas_threads(n)} BLAS thread(s) each", flush=True)
    return distributed.launch(n, argv)


def as_rank(args, run):
    """`run(args)` in a process of a multi-rank job. On an error every rank leaves together (rank 0
    says why); a rank failing alone aborts the job after a grace period, so none waits forever."""
    try:
        rank, size, _ = distributed.launched()
    except Exception:
        return run(args)  # the bad launcher variable is reported by `train` itself
    if size == 1:
        return run(args)
    run = _unexpected_is_an_error(run)
    if rank == 0:
        code = run(args)
        if code and not distributed.leave(code, rank):
            distributed.abort(code)
        return code
    out, err = io.StringIO(), io.StringIO()  # rank 0 speaks for the job
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(args)
    if code and not distributed.leave(code, rank):
        for line in err.getvalue().splitlines():
            print(f"[rank {rank}] {line}", file=sys.stderr)
        distributed.abort(code)
    return code


def _unexpected_is_an_error(run):
    """A bug raising in one rank must not leave the others waiting in a collective forever: the
    traceback is printed and the rank leaves (or aborts the job) like any failing rank."""
    def guarded(args):
        try:
            return run(args)
        except Exception:
            traceback.print_exc()
            return 1
    return guarded
