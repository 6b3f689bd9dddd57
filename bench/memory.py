"""Resident memory of `nncgan train` after each epoch (issue 17: flat from epoch 1 to the last).

A benchmark, not a test. Runs the real command in a child process and reads its resident set
(VmRSS) and peak (VmHWM) of its largest process (a rank, on several cores) and the total of all
its processes from /proc when it logs each finished epoch, i.e. after the epoch's
checkpoint, sample tiles and learning curve, and again after the epoch's score when a classifier
scores it; the later reading stands for the epoch.

    .venv/bin/python bench/memory.py [--epochs 5] [--samples 2048] [--graph graphs/cgan_mnist.yaml]
                                     [--kernels blas|nnabla] [--classifier-runs DIR] [-- extra train arguments]

--samples sets NNCGAN_LIMIT_SAMPLES (0: the whole dataset). --classifier-runs: a folder holding a
trained classifier run (nncgan train graphs/classifier_mnist.yaml), so that each epoch is scored as
`nncgan train` beside a classifier scores it (NNCGAN_CLASSIFIER_RUNS). Prints one line per epoch and the
growth from epoch 1 to the last; exits 1 when the run fails.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def status_mb(pid):
    """{'VmRSS': MB, 'VmHWM': MB} of process `pid` (Linux /proc)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def tree(pid):
    """`pid` and all its descendants (Linux /proc): `nncgan train` on several cores waits for
    mpiexec, whose rank processes do the training."""
    kids = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def largest(pid):
    """{'VmRSS', 'VmHWM', 'total'}: the largest process of the tree (a rank) and the tree's total RSS."""
    mbs = [status_mb(p) for p in tree(pid)]
    mbs = [m for m in mbs if m]
    top = max(mbs, key=lambda m: m.get("VmHWM", 0), default={})
    return dict(top, total=sum(m.get("VmRSS", 0) for m in mbs))


def measure(graph, epochs, samples, kernels, extra, classifier_runs=None, log=print):
    """[(epoch, rss MB, peak MB, all processes' rss MB)] of one training run: the largest process's
    resident set and peak (one rank's, when it trains on several), and the whole tree's resident set."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NNCGAN_LIMIT_SAMPLES=str(samples), NNCGAN_KERNELS=kernels,
               PYTHONUNBUFFERED="1")
    if classifier_runs:
        env["NNCGAN_CLASSIFIER_RUNS"] = str(Path(classifier_runs).resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "nncgan.cli", "train", str(graph), "--epochs", str(epochs),
               "--out", f"{tmp}/run", "--quiet", *extra]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            saved = re.match(r"epoch (\d+): .*\(saved ", line)
            scored = re.match(r"epoch (\d+) eval: ", line)
            if saved or scored:
                log(line.rstrip())
                mb = largest(proc.pid)
                row = (int((saved or scored).group(1)), mb.get("VmRSS", float("nan")), mb.get("VmHWM", float("nan")),
                       mb["total"])
                if scored and rows and rows[-1][0] == row[0]:
                    rows[-1] = row  # after the epoch's score: the later reading stands for the epoch
                else:
                    rows.append(row)
                log(f"epoch {row[0]} {'scored' if scored else 'saved'}: largest process RSS {row[1]:.0f} MB, "
                    f"peak {row[2]:.0f} MB; all processes {row[3]:.0f} MB ({time.perf_counter() - t0:.0f} s)")
            elif re.match(r"epoch \d+", line):
                log(line.rstrip())
            elif "Error" in line or "error" in line or "scor" in line:
                log(line.rstrip())
        if proc.wait():
            raise SystemExit(f"bench/memory.py: the training failed ({' '.join(cmd)})")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "cgan_mnist.yaml"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=2048, help="NNCGAN_LIMIT_SAMPLES (0: all)")
    ap.add_argument("--kernels", choices=("blas", "nnabla"), default="blas")
    ap.add_argument("--classifier-runs", metavar="DIR", help="folder with a trained classifier run (scores each epoch)")
    ap.add_argument("extra", nargs="*", help="more `nncgan train` arguments (after --)")
    args = ap.parse_args()
    rows = measure(args.graph, args.epochs, args.samples, args.kernels, args.extra, args.classifier_runs)
    if len(rows) > 1:
        print(f"growth epoch {rows[0][0]} -> {rows[-1][0]}: {rows[-1][1] - rows[0][1]:+.0f} MB resident (largest "
              f"process), {rows[-1][3] - rows[0][3]:+.0f} MB all processes; "
              f"peak {rows[-1][2]:.0f} MB")


if __name__ == "__main__":
    main()
