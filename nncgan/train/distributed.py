"""Data-parallel training over several GPUs with NNabla's own communicators.

    mpirun -n 4 nncgan train graphs/cgan_mnist.yaml --comm nccl --context cudnn

Each process (one per GPU, `device_id` = its local rank) trains the whole graph on its own
shard of every epoch's order: the (seed, epoch) permutation every process draws alike, taken
rank::size. Before every solver update the gradients are averaged over the processes
(`all_reduce(division=True)` of NNabla's MultiProcessDataParallelCommunicator, the NCCL/MPI
build of nnabla-ext-cuda), so the parameters, initialised from the same seed, stay the same
on every GPU. config.batch_size is per process: one step sees size x batch_size images.
Generator inputs (noise) are drawn from a stream of their own per rank. BatchNormalization's
batch statistics are each process' own (as in NNabla's examples). Only rank 0 writes the run;
the others write into a scratch folder that is removed at the end.
"""
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nnabla.utils.data_iterator import data_iterator
from nnabla.utils.data_source import DataSource

from ..data.batches import MemorySource
from ..errors import RunError

CHOICES = ("auto", "none", "nccl")
# What mpirun (Open MPI, MPICH/Intel MPI) tells each process it started.
SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


def _env_int(env, names, default):
    for n in names:
        if env.get(n, "").strip():
            try:
                return int(env[n])
            except ValueError:
                raise RunError(f"the launcher's {n}={env[n]!r} is not a number") from None
    return default


def launched(env=None):
    """(rank, size, local_rank) that mpirun gave this process; (0, 1, 0) when not under mpirun."""
    env = os.environ if env is None else env
    return _env_int(env, RANK_VARS, 0), _env_int(env, SIZE_VARS, 1), _env_int(env, LOCAL_RANK_VARS, 0)


@dataclass
class Comm:
    """This process' place among the training processes; `comm` is NNabla's communicator (or None)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    comm: object = None

    @property
    def writes(self):
        """Whether this process writes the run (checkpoints, samples, monitors): rank 0 only."""
        return self.rank == 0

    def all_reduce(self, grads):
        """Average the gradient arrays (NdArray) over the processes, in place."""
        if self.comm is not None and self.size > 1:
            self.comm.all_reduce(grads, division=True, inplace=True)


SINGLE = Comm()


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
        raise RunError(f"started by mpirun as {size} processes but --comm none: each would train the whole run "
                       f"alone into the same folder; use --comm nccl (or start one process)")
    if mode == "nccl" and size == 1:
        raise RunError("--comm nccl trains over several processes started by mpirun, e.g. "
                       "`mpirun -n 4 nncgan train GRAPH --comm nccl`; this process was started alone")
    if mode == "auto" and size == 1:
        return 0, 1, 0
    return rank, size, local


def _needs_cuda(size, backend):
    return RunError(f"--comm nccl ({size} processes) needs the CUDA extension with NCCL and MPI "
                    f"(nnabla-ext-cuda, e.g. `pip install nnabla-ext-cuda120-nccl2-mpi3.1.6`) and "
                    f"--context cudnn; this process computes on the {backend}")


def require_cuda(context_choice, size):
    """Several processes train on GPUs only: refuse the CPU before any run folder is made."""
    from ..context import cuda_available
    if context_choice == "cpu":
        raise _needs_cuda(size, "CPU (--context cpu)")
    if not cuda_available():
        raise _needs_cuda(size, "CPU (nnabla-ext-cuda is not installed here)")


def setup(mode, backend, type_config="float", env=None):
    """The Comm for `--comm MODE`; on several processes, NNabla's communicator on this rank's GPU."""
    rank, size, local = plan(mode, env)
    if size == 1:
        return SINGLE
    if backend != "cudnn":
        raise _needs_cuda(size, backend)
    import nnabla as nn
    from nnabla.ext_utils import get_extension_context
    ctx = get_extension_context("cudnn", device_id=str(local), type_config=type_config)
    try:
        import nnabla.communicators as C
        comm = C.MultiProcessDataParallelCommunicator(ctx)
        comm.init()
    except Exception as e:  # the extension lacks NCCL/MPI, or MPI could not start
        raise RunError(f"NNabla's multi-process communicator could not start on rank {rank} of {size}: "
                       f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}; "
                       f"install the NCCL/MPI build of nnabla-ext-cuda and launch with mpirun") from None
    nn.set_default_context(ctx)
    return Comm(comm.rank, comm.size, comm.local_rank, comm)


def shard_order(order, rank, size, batch_size):
    """This rank's part of an epoch's `order`: every size-th sample from `rank`, whole batches,
    as many for every rank (so all processes take the same number of steps)."""
    per_rank = (len(order) // size // batch_size) * batch_size
    return np.asarray(order)[rank::size][:per_rank]


class ShardedSource(MemorySource):
    """MemorySource whose every epoch is this rank's shard of the (seed, epoch) permutation."""

    def __init__(self, arrays, batch_size, seed, rank, size, first_epoch=0, shuffle=True):
        self._rank, self._world, self._batch = rank, size, batch_size
        super().__init__(arrays, batch_size, seed, first_epoch, shuffle)
        self._size = (self._n // size // batch_size) * batch_size

    def reset(self):
        self._epoch += 1
        if self._shuffle:
            a = np.random.default_rng([self._seed, self._epoch]).permutation(self._n)
            b = np.random.default_rng([self._seed, self._epoch, 1]).permutation(self._n)
        else:
            a = b = np.arange(self._n)
        self._order = shard_order(a, self._rank, self._world, self._batch)
        self._order_b = shard_order(b, self._rank, self._world, self._batch)
        DataSource.reset(self)


def iterator(arrays, batch_size, seed, comm, first_epoch=0, shuffle=True):
    """Like data.batches.iterator, over this rank's shard; returns (iterator, steps per epoch)."""
    source = ShardedSource(arrays, batch_size, seed, comm.rank, comm.size, first_epoch, shuffle)
    if source.size == 0:
        raise ValueError(f"the dataset has {source._n} samples, fewer than one batch of {batch_size} "
                         f"for each of {comm.size} processes")
    di = data_iterator(source, batch_size, with_memory_cache=False, use_thread=False)
    return di, source.size // batch_size


def rank_rng(seed, rank, epoch):
    """The generator inputs' stream of one rank from an epoch on (resumable: a function of all three)."""
    return np.random.RandomState(np.random.SeedSequence([seed, rank, epoch]).generate_state(4))


def scratch_run(real_run):
    """A private copy of the run for a process that does not write it (rank > 0): the loop writes
    there; its saved epochs are copied in so that --resume reads the same state."""
    tmp = Path(tempfile.mkdtemp(prefix="nncgan-rank-"))
    if real_run is not None and Path(real_run).is_dir():
        shutil.copytree(real_run, tmp / "run", ignore=shutil.ignore_patterns(".lock", "samples", "monitor"))
    else:
        (tmp / "run").mkdir()
    return tmp / "run"


def train_other_rank(args, graph, train_fn):
    """A rank > 0 of `nncgan train`: train (`train_fn(run, info)`) into a scratch copy of the run
    (for --resume, a copy of rank 0's saved epochs), removed at the end."""
    from .. import run as runs
    real = Path(args.out)
    if args.resume and not (real / runs.RUN_INFO).is_file():
        raise RunError(f"{real} is not a run to resume (no {runs.RUN_INFO})")
    run = scratch_run(real if args.resume else None)
    try:
        if args.resume:
            return train_fn(run, runs.read_info(run))
        runs.new_run(graph, run)
        return train_fn(run, None)
    finally:
        shutil.rmtree(run.parent, ignore_errors=True)
