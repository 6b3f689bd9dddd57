"""Run by tests/test_distributed.py as `mpiexec -n 2 python tests/mpi/sync_bn_check.py OUT.npz`:
sync BN on each rank's half of a batch, and F.batch_normalization on the whole batch (rank 0)."""
import sys

import numpy as np
import nnabla as nn
import nnabla.functions as F

from nncgan.layers.sync_bn import sync_batch_normalization
from nncgan.train.distributed import MPIComm, launched

rank, size, local = launched()
comm = MPIComm(rank, size, local)
rng = np.random.RandomState(0)
x_all = (rng.randn(8, 3, 5, 4) * 2 + 1).astype(np.float32)
dy_all = rng.randn(*x_all.shape).astype(np.float32)
b = len(x_all) // size
part = slice(rank * b, (rank + 1) * b)


def bn(x, sync, decay=0.9, eps=1e-3):
    beta, gamma = (nn.Variable.from_numpy_array(rng_p.randn(1, 3, 1, 1).astype(np.float32), need_grad=True)
                   for rng_p in (np.random.RandomState(1), np.random.RandomState(2)))
    mean = nn.Variable.from_numpy_array(np.full((1, 3, 1, 1), 0.5, np.float32))
    var = nn.Variable.from_numpy_array(np.full((1, 3, 1, 1), 2.0, np.float32))
    if sync:
        y = sync_batch_normalization(x, beta, gamma, mean, var, [1], decay, eps, comm)
    else:
        y = F.batch_normalization(x, beta, gamma, mean, var, axes=[1], decay_rate=decay, eps=eps, batch_stat=True)
    return y, beta, gamma, mean, var


x = nn.Variable.from_numpy_array(x_all[part], need_grad=True)
y, beta, gamma, mean, var = bn(x, True)
y.forward()
y.backward(dy_all[part])
got = {"y": y.d, "dx": x.g, "dbeta": comm.sum(beta.g.copy()), "dgamma": comm.sum(gamma.g.copy()),
       "mean": mean.d, "var": var.d}
ys = comm.world.gather(got, root=0)
if rank == 0:
    X = nn.Variable.from_numpy_array(x_all, need_grad=True)
    Y, B, G, M, V = bn(X, False)
    Y.forward()
    Y.backward(dy_all)
    want = {"y": Y.d, "dx": X.g, "dbeta": B.g, "dgamma": G.g, "mean": M.d, "var": V.d}
    cat = {k: np.concatenate([r[k] for r in ys]) for k in ("y", "dx")}
    cat.update({k: ys[0][k] for k in ("dbeta", "dgamma", "mean", "var")})
    np.savez(sys.argv[1], **{f"got_{k}": v for k, v in cat.items()}, **{f"want_{k}": v for k, v in want.items()})
