"""The `nnabla_cli train` contestant of bench/bench.py: the same graph exported as NNP.

Set-up (untimed): a one-iteration run of graphs/cgan_mnist.yaml gives a run to export; the
first 640 MNIST training images are written as an NNC CSV dataset (`nncgan dataset export`);
`nncgan export RUN --format nnp` writes two NNPs that differ only in max_epoch (1 and 4, 10
iterations an epoch, no monitors). Each round runs one of them in a fresh `nnabla_cli train`;
the time of one iteration is (median time of the 4-epoch runs - median of the 1-epoch runs) /
30 iterations, so start-up, loading and the final save cancel out. Peak RSS is the largest
of the nnabla_cli processes (os.wait4).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES, EPOCHS = 640, (1, 4)


def available():
    try:
        import nncgan.interop.nnp_export  # noqa: F401
    except ImportError:
        return False
    return Path(sys.executable).with_name("nnabla_cli").exists()


class NnablaCli:
    name = "nnabla_cli train (NNP export)"

    def __init__(self, batch, data_dir=None, log=print):
        self.batch, self.info, self.end, self.rounds = batch, {}, {}, 0
        self.walls = {e: [] for e in EPOCHS}
        self.maxrss_mb = 0.0
        self.tmp = tempfile.TemporaryDirectory(prefix="nncgan-bench-cli-")
        root = Path(self.tmp.name)
        env = dict(os.environ, PYTHONPATH=str(ROOT), NNCGAN_LIMIT_SAMPLES=str(batch))
        if data_dir:
            env["NNCGAN_MNIST_DIR"] = str(data_dir)
        nncgan = [sys.executable, "-m", "nncgan.cli"]
        quiet = dict(check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log("bench: preparing the nnabla_cli contestant (a one-iteration run, a CSV dataset, NNP export)")
        subprocess.run(nncgan + ["train", "graphs/cgan_mnist.yaml", "--epochs", "1", "--out", str(root / "run"),
                                 "--quiet", "--context", "cpu", "--batch-size", str(batch)], **quiet)
        full = dict(quiet, env={k: v for k, v in env.items() if k != "NNCGAN_LIMIT_SAMPLES"})
        subprocess.run(nncgan + ["dataset", "export", "mnist", str(root / "ds"), "--split", "train",
                                 "--limit", str(SAMPLES)], **full)
        self.nnp = {}
        for e in EPOCHS:
            self.nnp[e] = root / f"cgan_{e}.nnp"
            subprocess.run(nncgan + ["export", str(root / "run"), "--format", "nnp", "-o", str(self.nnp[e]),
                                     "--max-epoch", str(e), "--no-monitors", "--batch-size", str(batch),
                                     "--dataset-csv", str(root / "ds" / "mnist_training.csv")], **quiet)
        self.cli = str(Path(sys.executable).with_name("nnabla_cli"))

    def run(self, n=None, keep=True):
        """One `nnabla_cli train`, alternately of the 1- and the 4-epoch NNP (`n` is ignored)."""
        e = EPOCHS[self.rounds % 2]
        self.rounds += 1
        out = Path(self.tmp.name) / f"out{self.rounds}"
        out.mkdir()
        t0 = time.perf_counter()
        p = subprocess.Popen([self.cli, "train", "-c", str(self.nnp[e]), "-p", str(self.nnp[e]), "-o", str(out),
                              "-C", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.tmp.name)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"bench: nnabla_cli train failed (exit {p.returncode}) on {self.nnp[e]}")
        if keep:
            self.walls[e].append(wall)
            self.maxrss_mb = max(self.maxrss_mb, usage.ru_maxrss / 1024)

    @property
    def times(self):
        lo, hi = (self.walls[e] for e in EPOCHS)
        if not lo or not hi:
            return []
        iters = (EPOCHS[1] - EPOCHS[0]) * (SAMPLES // self.batch)
        return [(statistics.median(hi) - statistics.median(lo)) / iters]

    def quit(self):
        self.end = {"maxrss_mb": self.maxrss_mb,
                    "note": f"{len(self.walls[EPOCHS[0]])}+{len(self.walls[EPOCHS[1]])} runs of "
                            f"{EPOCHS[0]} and {EPOCHS[1]} epochs"}
        self.tmp.cleanup()
