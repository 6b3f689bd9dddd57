"""The benchmark of issue 7: nncgan's training step against its rivals, in one run, interleaved.

A benchmark, not a test. Every contestant trains graphs/cgan_mnist.yaml's networks (Generator,
DiscriminatorFake, DiscriminatorReal; three Adam steps in NNC's order, batch 64) in its own
process, kept alive for the whole run; the coordinator asks them in turn, in rounds whose order
rotates, for a few timed iterations each, so that the load of a shared machine falls on all
alike. Each reports its peak resident memory (getrusage) at the end.

    .venv/bin/python bench/bench.py [--rounds 6] [--per-round 3] [--infer-run RUN] [--no-torch] [--no-cli]
                                    [--accuracy before.json --accuracy after.json] [--write-doc]

Contestants: nncgan (BLAS kernels, OpenBLAS on every core); nncgan with one BLAS thread; nncgan
with NNabla's own Affine/(De)Convolution kernels (NNCGAN_KERNELS=nnabla, before issue 17); nncgan
with the plain label-map formulation as well (the code before issue 7's speed work); the same networks hand-written in NNabla (bench/step_time.py); `nnabla_cli train`
on the graph exported as NNP (when the NNP exporter is installed); the PyTorch twin
(bench/torch_twin.py) on 1 and on 2 threads, in its own venv bench/.venv-torch (created on
first use from the torch 2.13.0 CPU wheel; --no-torch to leave it out).
Also: the cold-start wall time of `nncgan infer --label 7` (fresh processes, --infer-run RUN)
and the time to 95% label accuracy from bench/time_to_accuracy.py's JSON results.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TORCH_VENV = HERE / ".venv-torch"
TORCH_WHEEL = "torch==2.13.0"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench.py: begin -->", "<!-- bench.py: end -->"


# ---------------------------------------------------------------- contestants on NNabla (workers)

def _nnabla_worker(kind, batch):
    sys.path.insert(0, str(HERE))
    import numpy as np
    import nnabla as nn
    from _worker import serve
    from nncgan import context
    context.select("cpu", log=lambda *a: None)
    rng, data = np.random.RandomState(0), np.random.RandomState(1)
    if kind == "handwritten":
        from step_time import HandWritten
        twin = HandWritten(batch)
        step = lambda b: twin.step(b, rng)  # noqa: E731
    else:
        from step_time import nncgan_steps
        comm = None
        if kind == "nncgan-mpi":   # under mpiexec: this rank's part of the batch, as `nncgan train --procs N`
            from nncgan.train import distributed
            comm = distributed.MPIComm(*distributed.launched())
        steps = nncgan_steps(batch, label_tables=(kind != "nncgan-plain"), kernels=(kind in ("nncgan", "nncgan-mpi")),
                             comm=comm)
        it = [0]

        def step(b):
            for s in steps:
                s(b, rng, it[0])
            it[0] += 1

    def make_batch(i):
        return {"x": data.rand(batch, 1, 28, 28).astype(np.float32),
                "y": data.randint(0, 10, (batch, 1)).astype(np.float32)}
    serve(step, make_batch, {"nnabla": nn.__version__, "python": platform.python_version()},
          comm.world if kind == "nncgan-mpi" else None)


# ---------------------------------------------------------------- the coordinator

class Contestant:
    def __init__(self, name, cmd, env=None):
        self.name, self.times, self.cpu, self.info, self.end = name, [], [], {}, {}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=ROOT, bufsize=1)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"bench: contestant '{name}' did not start ({' '.join(map(str, cmd))})")
        self.info = json.loads(line[6:])

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def run(self, n, keep=True):
        reply = self.ask(f"run {n}")
        if keep:
            self.times += reply["times"]
            self.cpu += reply.get("cpu", [])

    def quit(self):
        self.end = self.ask("quit")
        self.proc.wait(timeout=60)


def torch_python():
    """The benchmark's own venv with the CPU torch wheel (never a CUDA build), created once."""
    py = TORCH_VENV / "bin" / "python"
    if not py.exists():
        py3 = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else "python3"
        subprocess.run([py3, "-m", "venv", str(TORCH_VENV)], check=True)
        wheels = sorted(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl")) if Path("/opt/wheels").is_dir() else []
        subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheels[0]) if wheels else TORCH_WHEEL, "numpy",
                        *([] if wheels else ["--index-url", "https://download.pytorch.org/whl/cpu"])], check=True)
    return str(py)


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    return env


def cold_start_infer(run, repeats=3):
    """Median wall seconds of `nncgan infer --run RUN --label 7` in a fresh process."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "nncgan.cli", "infer", "--run", str(run), "--label", "7",
                            "--context", "cpu", "--out", f"{tmp}/seven{i}.png"], check=True, env=_env(),
                           cwd=ROOT, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def arithmetic_limit(batch):
    """(GFLOP per iteration, GEMM GFLOP/s on 1 thread, on 2 threads), measured here (bench/step_time.py)."""
    sys.path.insert(0, str(ROOT))  # this checkout's nncgan, as the workers' PYTHONPATH
    from step_time import flops_per_iteration, gemm_peak
    return flops_per_iteration(batch) / 1e9, gemm_peak(1), gemm_peak(2)


def table(contestants, batch, accuracy, infer_s, load, args, arithmetic=None):
    ref = {c.name: _median(c.times) for c in contestants}
    hand = ref.get("hand-written NNabla")
    rows = ["| contestant | median ms / iteration | images / s | vs hand-written NNabla | peak RSS MB "
            "| median CPU ms / iteration |",
            "|---|---|---|---|---|---|"]
    for c in contestants:
        m = ref[c.name]
        rows.append(f"| {c.name} | {m * 1000:.1f} | {batch / m:.1f} | "
                    f"{m / hand:.3f} | {c.end.get('maxrss_mb', float('nan')):.0f} | {_median(c.cpu) * 1000:.1f} |")
    if not any(c.name.startswith("nnabla_cli") for c in contestants):
        rows.append("| nnabla_cli train (NNP export) | not run (--no-cli, or no NNP exporter / nnabla_cli here) "
                    "| | | | |")
    versions = {k: v for c in contestants for k, v in c.info.items() if k != "threads"}
    out = [f"Machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
           f"load average {load[0]:.2f} at the start, {load[1]:.2f} at the end (other jobs share the machine).",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".",
           f"Command: `{' '.join(['.venv/bin/python', 'bench/bench.py'] + args)}` "
           f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
           f"Training step, batch {batch}, {len(contestants[0].times)} timed iterations per contestant "
           f"(interleaved rounds); CPU ms: the contestant process' CPU time, all its threads (less "
           f"disturbed by other jobs than the wall time):", ""] + rows
    if arithmetic:
        gflop, peak1, peak2 = arithmetic
        one = ref.get("nncgan, 1 core", float("nan"))
        alls = min((m for k, m in ref.items() if k.startswith("nncgan,") and "MPI processes" in k), default=float("nan"))
        out += ["", f"Arithmetic: one iteration is {gflop:.2f} GFLOP of GEMM-shaped work (the affines and "
                    f"(de)convolutions nncgan builds, forward and the backward products it computes). NumPy's "
                    f"float32 GEMM peaks at {peak1:.1f} GFLOP/s on one core here, {peak2:.1f} on two "
                    f"(OpenBLAS, 1024x1024): at that peak an iteration's arithmetic takes "
                    f"{gflop / peak1 * 1000:.0f} ms on one core, {gflop / peak2 * 1000:.0f} ms on two. nncgan "
                    f"on one core, {one * 1000:.0f} ms, is {gflop / one:.1f} GFLOP/s ({gflop / one / peak1:.0%} of "
                    f"the one-core peak); on all cores, {alls * 1000:.0f} ms, {gflop / alls:.1f} GFLOP/s "
                    f"({gflop / alls / peak2:.0%} of the two-core peak). The rest is the layers that are not GEMMs "
                    f"(batch normalisation, activations, concatenation), im2col/col2im copies, Python per "
                    f"function and, on several processes, the all-reduce."]
        torch1, torch2 = ref.get("PyTorch twin, 1 thread"), ref.get("PyTorch twin, 2 threads")
        if torch1 and torch2:
            out += ["", f"Against the PyTorch twin: nncgan on one core {one * 1000:.1f} ms against {torch1 * 1000:.1f} "
                        f"on one thread ({one / torch1:.2f}x its time); on all cores {alls * 1000:.1f} ms against "
                        f"{torch2 * 1000:.1f} on two threads ({alls / torch2:.2f}x its time)."]
    for c in contestants:
        if c.end.get("note"):
            out += ["", f"{c.name}: one iteration = the difference of {c.end['note']}, divided by their "
                        f"difference in iterations (start-up and saving cancel out)."]
    if infer_s is not None:
        out += ["", f"Cold start of `nncgan infer --label 7` (fresh process, 100 images, CPU): "
                    f"{infer_s:.2f} s wall (median of 3)."]
    for acc in accuracy:
        out += ["", time_to_accuracy_line(acc)]
    return "\n".join(out) + "\n"


def time_to_accuracy_line(r):
    hit = r.get("first_epoch_reaching")
    if hit is None:
        return f"Time to {r['threshold']:.0%} label accuracy, {r['label']}: not reached in {len(r['epochs'])} epochs."
    e = next(x for x in r["epochs"] if x["epoch"] == hit)
    cpu = f", {e['cpu_s'] / 60:.1f} min CPU ({e['cpu_note']})" if e.get("cpu_s") is not None else ""
    return (f"Time to {r['threshold']:.0%} label accuracy, {r['label']}: epoch {hit} "
            f"({e['accuracy_mean']:.1%} mean, {e['accuracy_min']:.1%} lowest label), "
            f"{e['wall_s'] / 60:.1f} min wall{cpu} from `nncgan train`.")


def write_doc(text):
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n## The latest run of bench/bench.py\n\n" + block + "\n"
    DOC.write_text(doc, encoding="utf-8")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=("nncgan", "nncgan-mpi", "nncgan-plain", "nncgan-nnabla", "handwritten"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=3, help="timed iterations per contestant per round")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-cli", action="store_true", help="leave out nnabla_cli train")
    shared = ROOT.parent / "shared" / "data" / "mnist"
    ap.add_argument("--data-dir", default=os.environ.get("NNCGAN_MNIST_DIR") or (str(shared) if shared.is_dir() else None),
                    help="the MNIST files for the nnabla_cli contestant's CSV dataset")
    ap.add_argument("--infer-run", help="a run folder for the cold start of `nncgan infer --label 7`")
    ap.add_argument("--accuracy", action="append", default=[], metavar="JSON",
                    help="a result of bench/time_to_accuracy.py score, to put in the table (repeatable)")
    ap.add_argument("--write-doc", action="store_true", help=f"write the table into {DOC.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    if args.worker:
        return _nnabla_worker(args.worker, args.batch)

    load0 = os.getloadavg()[0]
    me = [sys.executable, str(Path(__file__).resolve()), "--batch", str(args.batch), "--worker"]
    from nncgan.train import distributed
    n = distributed.cores()
    specs = [(f"nncgan, {n} MPI processes (all cores, as `nncgan train`)",
              [distributed.mpiexec(), "-n", str(n)] + me + ["nncgan-mpi"], _env(OPENBLAS_NUM_THREADS="1")),
             ("nncgan, 1 process, all cores as BLAS threads", me + ["nncgan"], _env()),
             ("nncgan, 1 core", me + ["nncgan"], _env(OPENBLAS_NUM_THREADS="1")),
             ("nncgan, NNabla kernels (before issue 17)", me + ["nncgan-nnabla"], _env(NNCGAN_KERNELS="nnabla")),
             ("nncgan, plain label maps (before issue 7)", me + ["nncgan-plain"], _env(NNCGAN_KERNELS="nnabla")),
             ("hand-written NNabla", me + ["handwritten"], _env())]
    if not args.no_torch:
        tpy = torch_python()
        for n in (1, 2):
            specs.append((f"PyTorch twin, {n} thread{'s' if n > 1 else ''}",
                          [tpy, str(HERE / "torch_twin.py"), "--threads", str(n), "--batch", str(args.batch)],
                          dict(os.environ, OMP_NUM_THREADS=str(n))))
    contestants = [Contestant(*s) for s in specs]
    if not args.no_cli:
        from cli_contestant import NnablaCli, available
        if available():
            contestants.insert(3, NnablaCli(args.batch, args.data_dir, log=lambda m: print(m, file=sys.stderr)))
    for c in contestants:
        c.run(2, keep=False)  # first iterations allocate memory (nnabla_cli: one untimed run)
    for r in range(args.rounds):
        k = r % len(contestants)
        for c in contestants[k:] + contestants[:k]:
            c.run(args.per_round)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{c.name} {_median(c.times) * 1000:.0f} ms"
                                                        for c in contestants), file=sys.stderr)
    for c in contestants:
        c.quit()
    infer_s = cold_start_infer(args.infer_run) if args.infer_run else None
    accuracy = [json.loads(Path(p).read_text()) for p in args.accuracy]
    text = table(contestants, args.batch, accuracy, infer_s, (load0, os.getloadavg()[0]), argv,
                 arithmetic_limit(args.batch))
    print(text)
    if args.write_doc:
        write_doc(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
