"""`nncgan train --procs N`: this process starts N MPI ranks of itself, and what each rank does on leaving.

The parent settles what all ranks must agree on before any starts (the run folder, the number of
ranks dividing the global batch), then waits for `mpiexec -n N python -m nncgan.cli train ...`.
"""
import contextlib
import io
import os
import sys
import traceback

from . import distributed


def under_launcher():
    """Whether an MPI launcher (mpiexec, even -n 1) started this process."""
    return any(v in os.environ for v in distributed.SIZE_VARS)


def launch_if_asked(argv, procs, context, batch):
    """Start the ranks (`nncgan ARGV` each) when --procs asks for several and no MPI launcher
    started this process; returns their exit status, or None to train here as one process.
    `batch`: the global batch the ranks share; `argv` must name the run folder (--out)."""
    from ..context import cuda_available
    if under_launcher():
        return None
    on_gpu = context == "cudnn" or (context == "auto" and cuda_available())
    n = distributed.procs_for(procs, batch, on_gpu)
    if n == 1:
        return None
    print(f"nncgan: {n} processes (mpiexec), a batch of {batch} split {batch // n} each, "
          f"{distributed.blas_threads(n)} BLAS thread(s) each", flush=True)
    return distributed.launch(n, list(argv))


def as_rank(call):
    """`call()` in a process of a multi-rank job. On an error every rank leaves together (rank 0
    says why); a rank failing alone aborts the job after a grace period, so none waits forever."""
    try:
        rank, size, _ = distributed.launched()
    except Exception:
        return call()  # the bad launcher variable is reported by `train` itself
    if size == 1:
        return call()
    call = _unexpected_is_an_error(call)
    if rank == 0:
        code = call()
        if code and not distributed.leave(code, rank):
            distributed.abort(code)
        return code
    out, err = io.StringIO(), io.StringIO()  # rank 0 speaks for the job
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = call()
    if code and not distributed.leave(code, rank):
        for line in err.getvalue().splitlines():
            print(f"[rank {rank}] {line}", file=sys.stderr)
        distributed.abort(code)
    return code


def _unexpected_is_an_error(call):
    """A bug raising in one rank must not leave the others waiting in a collective forever: the
    traceback is printed and the rank leaves (or aborts the job) like any failing rank."""
    def guarded():
        try:
            return call()
        except Exception:
            traceback.print_exc()
            return 1
    return guarded
