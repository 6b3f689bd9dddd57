"""Data-parallel training over MPI processes: every core of a machine, or several machines and GPUs.

    nncgan train graphs/cgan_mnist.yaml                  # --procs auto: one process per core, here
    mpiexec -f hosts -n 8 nncgan train GRAPH --out RUN   # started by MPI, on several machines

`--procs N` re-launches `nncgan train` under the venv's `mpiexec` (the `mpich` wheel) as N ranks.
config.batch_size is the GLOBAL batch: every rank draws the same epoch order and the same generator
noise as one process would (the same rng), and takes its 1/N slice of each batch. Before every
solver update the gradients are summed over the ranks with mpi4py's Allreduce on NumPy views of
NNabla's gradient arrays (host memory, also for CUDA ranks) and divided by N; BatchNormalization
uses statistics of the whole batch (layers/sync_bn.py). So N ranks train what one process trains,
up to float rounding. With the NCCL/MPI build of nnabla-ext-cuda, `--comm nccl` all-reduces on
the GPUs with NNabla's own communicator instead.

Only rank 0 writes the run; the others train into a scratch copy that is removed at the end. A
stop (Ctrl-C, SIGTERM) is agreed on: each rank's flag travels with the losses in every step's
all-reduce, so all ranks stop at the same step. A rank that dies takes the job down (mpiexec kills
the others); a rank leaving with an error waits briefly for the others, then aborts the job, so no
rank is left blocked in an all-reduce.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RunError

CHOICES = ("auto", "none", "mpi", "nccl")
# What mpiexec (MPICH/Hydra, Intel MPI, Open MPI) tells each process it started.
SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")
PROCS_ENV = "NNCGAN_PROCS"        # the default of --procs (the test suite sets 1)
EXIT_AT_ENV = "NNCGAN_TEST_KILL"  # "RANK:ITERATION": that rank kills itself (kill -9) there; for tests
LEAVE_GRACE_S = 5.0               # how long a failing rank waits for the others before aborting the job


class Stopped(Exception):
    """Some rank was asked to stop (Ctrl-C, SIGTERM): every rank stops at this same step."""

    while_saving = False


def _env_int(env, names, default):
    for n in names:
        if env.get(n, "").strip():
            try:
                return int(env[n])
            except ValueError:
                raise RunError(f"the launcher's {n}={env[n]!r} is not a number") from None
    return default


def launched(env=None):
    """(rank, size, local_rank) that mpiexec gave this process; (0, 1, 0) when not under mpiexec."""
    env = os.environ if env is None else env
    return _env_int(env, RANK_VARS, 0), _env_int(env, SIZE_VARS, 1), _env_int(env, LOCAL_RANK_VARS, 0)


@dataclass
class Comm:
    """This process' place among the training processes (one process: SINGLE)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    stop: bool = False  # set by the signal handler; agreed on in the next all-reduce

    @property
    def writes(self):
        """Whether this process writes the run (checkpoints, samples, monitors): rank 0 only."""
        return self.rank == 0

    def all_reduce(self, grads, scalars=()):
        """Average `grads` (NdArrays) over the ranks in place; returns `scalars` averaged.
        Raises Stopped, on every rank alike, when any rank was asked to stop."""
        return list(scalars)

    def barrier(self):
        """Wait for every rank (rank 0's epoch saved)."""


SINGLE = Comm()


class MPIComm(Comm):
    """Gradients summed by MPI Allreduce on NumPy views of NNabla's arrays (host memory)."""

    def __init__(self, rank, size, local_rank):
        super().__init__(rank, size, local_rank)
        from mpi4py import MPI
        self.MPI, self.world = MPI, MPI.COMM_WORLD

    def sum(self, a):
        """Sum a NumPy array over the ranks, in place (sync BN's statistics)."""
        self.world.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
        return a

    def barrier(self):
        self.world.Barrier()

    def all_reduce(self, grads, scalars=()):
        # One message per step: every gradient, the losses and the stop flag packed together
        # (a rank's every wait on the others costs a scheduling delay on a busy machine).
        views = [g.data for g in grads]  # views of the gradients' memory (host copies on a GPU)
        n = sum(v.size for v in views)
        buf = self._buffer(n + len(scalars) + 1)
        o = 0
        for v in views:
            buf[o:o + v.size] = v.reshape(-1)
            o += v.size
        buf[n:-1] = scalars
        buf[-1] = 1.0 if self.stop else 0.0
        self.sum(buf)
        if buf[-1] > 0:
            raise Stopped()
        scale = np.float32(1.0 / self.size)
        o = 0
        for v in views:   # the mean, written straight back (one pass, not a scaling pass and a copy)
            np.multiply(buf[o:o + v.size].reshape(v.shape), scale, out=v)
            o += v.size
        return (buf[n:-1] * scale).tolist()

    def _buffer(self, n):
        if getattr(self, "_buf", None) is None or self._buf.size < n:
            self._buf = np.empty(n, np.float32)
        return self._buf[:n]


class NcclComm(MPIComm):
    """Gradients all-reduced on the GPUs by NNabla's communicator (the NCCL/MPI build of nnabla-ext-cuda);
    the losses and the stop flag through MPI."""

    def __init__(self, rank, size, local_rank, comm):
        super().__init__(rank, size, local_rank)
        self.comm = comm

    def all_reduce(self, grads, scalars=()):
        scalars = super().all_reduce([], scalars)
        if grads:
            self.comm.all_reduce(grads, division=True, inplace=True)
        return scalars


def plan(mode, env=None):
    """What `--comm MODE` means in this process' environment, checked before anything is loaded.

    Returns (rank, size, local_rank) to run with; raises RunError for a flag that cannot work.
    """
    if mode not in CHOICES:
        raise RunError(f"--comm must be one of {', '.join(CHOICES)}, got {mode!r}")
    rank, size, local = launched(env)
    if size < 1 or not 0 <= rank < size:
        raise RunError(f"the launcher says rank {rank} of {size} processes, which is not a valid place")
    if mode == "none" and size > 1:
        raise RunError(f"started by mpiexec as {size} processes but --comm none: each would train the whole "
                       f"run alone into the same folder; use --comm auto (or start one process)")
    if mode in ("nccl", "mpi") and size == 1:
        raise RunError(f"--comm {mode} trains over several processes started by mpiexec, e.g. "
                       f"`mpiexec -n 4 nncgan train GRAPH --comm {mode} --out RUN`; this process was started alone")
    return rank, size, local


def _needs_cuda(size, backend):
    return RunError(f"--comm nccl ({size} processes) needs the NCCL/MPI build of nnabla-ext-cuda (on PyPI only "
                    f"for older NNabla, e.g. nnabla-ext-cuda110-nccl2-mpi3-1-6 1.30.1) and --context cudnn; "
                    f"this process computes on the {backend}. --comm mpi (the default) all-reduces through "
                    f"host memory and needs neither")


def require_cuda(context_choice, size):
    """--comm nccl trains on GPUs only: refuse the CPU before any run folder is made."""
    from ..context import cuda_available
    if context_choice == "cpu":
        raise _needs_cuda(size, "CPU (--context cpu)")
    if not cuda_available():
        raise _needs_cuda(size, "CPU (nnabla-ext-cuda is not installed here)")


def _nnabla_communicator(ctx):
    import nnabla.communicators as C
    comm = C.MultiProcessDataParallelCommunicator(ctx)
    comm.init()
    return comm


def setup(mode, backend, type_config="float", env=None):
    """The Comm for `--comm MODE`: SINGLE alone; MPI (or NNabla's NCCL communicator) among several."""
    rank, size, local = plan(mode, env)
    if size == 1:
        return SINGLE
    if backend == "cudnn":  # one GPU per process on each machine
        import nnabla as nn
        from nnabla.ext_utils import get_extension_context
        ctx = get_extension_context("cudnn", device_id=str(local), type_config=type_config)
        nn.set_default_context(ctx)
        if mode in ("nccl", "auto"):
            try:
                return NcclComm(rank, size, local, _nnabla_communicator(ctx))
            except Exception as e:  # the extension lacks NCCL/MPI: through host memory, unless asked for
                if mode == "nccl":
                    raise RunError(f"NNabla's multi-process communicator could not start on rank {rank} of "
                                   f"{size}: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}"
                                   f"; install the NCCL/MPI build of nnabla-ext-cuda, or use --comm mpi") from None
    elif mode == "nccl":
        raise _needs_cuda(size, backend)
    try:
        return MPIComm(rank, size, local)
    except ImportError:
        raise RunError("several processes need mpi4py (`pip install mpi4py mpich`, as pyproject.toml pins)") from None


def die_if_asked(comm, iteration):
    """The test hook of a rank signalled mid-run: NNCGAN_TEST_KILL=RANK:ITERATION[:SIGNAL] sends
    itself SIGNAL (default KILL, as kill -9) before that iteration."""
    rank, _, rest = os.environ.get(EXIT_AT_ENV, "").partition(":")
    it, _, sig = rest.partition(":")
    if rank == str(comm.rank) and it == str(iteration):
        os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))


def batch_part(batch_size, comm):
    """This rank's slice of the global batch; refuses a batch that does not split evenly."""
    if batch_size % comm.size:
        raise RunError(f"config.batch_size {batch_size} does not split evenly over {comm.size} processes; "
                       f"choose --procs dividing it (or --batch-size)")
    b = batch_size // comm.size
    return slice(comm.rank * b, (comm.rank + 1) * b)


# ---- starting the ranks -------------------------------------------------------------------------

def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def procs_for(choice, batch_size, on_gpu=False):
    """How many ranks `--procs CHOICE` starts: auto = the cores this process may use (the largest
    number not above them that divides the batch; 1 on a GPU); N as asked, dividing the batch."""
    if choice == "auto":
        if on_gpu:
            return 1
        n = max(1, min(cores(), batch_size))
        while batch_size % n:
            n -= 1
        return n
    try:
        n = int(choice)
    except ValueError:
        n = 0
    if n < 1:
        raise RunError(f"--procs must be a number of processes (at least 1) or auto, got {choice!r}")
    if batch_size % n:
        raise RunError(f"--procs {n}: config.batch_size {batch_size} does not split evenly over {n} "
                       f"processes (the batch is global); choose a divisor of {batch_size}")
    return n


def mpiexec():
    """The venv's mpiexec (installed by the mpich wheel beside this Python), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.is_file() else shutil.which("mpiexec")
    if not found:
        raise RunError("several processes need MPI's mpiexec: `pip install mpich mpi4py` (pinned in "
                       "pyproject.toml), or --procs 1")
    return found


def blas_threads(n):
    """BLAS/OpenMP threads per rank: the cores shared out (1 each when there are as many ranks as cores)."""
    return max(1, cores() // n)


def _stop_with_parent():
    """In mpiexec's process: a Ctrl-C of its own when `nncgan train` dies (kill -9 of the parent
    would otherwise leave the ranks training on their own)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG (Linux)
    except Exception:
        pass


def launch(n, argv):
    """Run `nncgan ARGV` as n MPI ranks and wait; returns the exit status. Ctrl-C and SIGTERM are
    passed to mpiexec once each (it forwards them to every rank, which stop together)."""
    threads = str(blas_threads(n))
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    from .. import hints
    prog = shlex.split(hints.prog())
    if len(prog) == 1:  # the ranks run `python -m nncgan.cli`: their hints print the command the user typed
        env.setdefault("NNCGAN_PROG", prog[0])
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "nncgan.cli", *argv]
    # Its own session: the terminal's Ctrl-C reaches this process only, which forwards it once
    # (mpiexec takes a second Ctrl-C as "kill everything now").
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_stop_with_parent)

    def forward(signum, frame):
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return rc if rc >= 0 else 128 - rc


def leave(code, rank):
    """A rank > 0 leaving with an error: True when every rank is leaving too (rank 0 then says
    why); otherwise, after LEAVE_GRACE_S, abort the whole job so that none waits forever."""
    from mpi4py import MPI
    req = MPI.COMM_WORLD.Ibarrier()
    deadline = time.monotonic() + LEAVE_GRACE_S
    while time.monotonic() < deadline:
        if req.Test():
            return True
        time.sleep(0.01)
    return False


def abort(code):
    from mpi4py import MPI
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(code)


# ---- ranks other than 0 ---------------------------------------------------------------------------

def scratch_run(real_run):
    """A private copy of the run for a process that does not write it (rank > 0): the loop writes
    there; its saved epochs are copied in so that --resume reads the same state."""
    tmp = Path(tempfile.mkdtemp(prefix="nncgan-rank-"))
    (tmp / "run").mkdir()
    if real_run is not None and Path(real_run).is_dir():
        _copy_settled(Path(real_run), tmp / "run")
    return tmp / "run"


def _copy_settled(src, dst, skip=(".lock", "samples", "monitor")):
    """Copy a run folder that rank 0 may be tidying at the same moment (a stale partial save or a
    temporary file removed): what vanishes mid-copy is left out. Saves are renamed into place
    whole, so what is copied is never half a file."""
    try:
        entries = list(os.scandir(src))
    except (FileNotFoundError, NotADirectoryError):
        return
    for e in entries:
        if e.name in skip or e.name.startswith("."):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                (dst / e.name).mkdir()
                _copy_settled(Path(e.path), dst / e.name, skip=())
            elif e.is_file(follow_symlinks=False):
                shutil.copy2(e.path, dst / e.name)
        except FileNotFoundError:
            continue


def train_other_rank(out, resume, graph, train_fn):
    """A rank > 0 of `nncgan train` (run folder `out`): train (`train_fn(run, info)`) into a
    scratch copy of the run (for `resume`, a copy of rank 0's saved epochs), removed at the end."""
    from .. import run as runs
    real = Path(out)
    if resume and not (real / runs.RUN_INFO).is_file():
        raise RunError(f"{real} is not a run to resume (no {runs.RUN_INFO})")
    run = scratch_run(real if resume else None)
    try:
        if resume:
            return train_fn(run, runs.read_info(run))
        runs.new_run(graph, run)
        return train_fn(run, None)
    finally:
        shutil.rmtree(run.parent, ignore_errors=True)
