"""The GAN zoo study of issue 13 in one command: train every system, score it, write the doc.

    python bench/zoo.py [--out runs/zoo] [--doc docs/gan_zoo.md] [--only NAME ...]
                        [--budget-scale F] [--quick] [--num N] [--report-only]

Long: run it in the background (the doc says how). One training at a time, each launched as
`python -m nncgan.cli train GRAPH --out OUT/runs/NAME --epochs B ...`; a training with several
budgets (epochs) is one run trained to the first budget, snapshotted (OUT/snaps/NAME@eB), then
`--resume`d to the next, so every budget is a checkpoint of one run, scored, never retrained.
The wall time and the CPU time (user + sys, from the kernel's rusage of the training process)
of every segment are recorded.

Resumable across sessions: each training's state is RECORD/state/NAME.json, each score
RECORD/scores/NAME.json; the full study's RECORD is docs/zoo/record, committed with the doc, so a
new checkout (without runs/) continues it: a training whose run is gone is trained again only if
a system still to be scored needs it. A rerun skips what is done and resumes an interrupted
training from its last saved epoch (`nncgan train --resume`). SIGINT/SIGTERM are passed to the current training
(nncgan train keeps its last saved epoch, or finishes saving the one it is writing), then it exits.

Scores (the numbers of `nncgan eval`, nncgan.eval.score, read by the dataset's classifier graph,
trained first as part of the study: OUT/runs/classifier_*): Frechet distance on the classifier's
features beside its real-vs-real floor, class entropy, precision/recall, mean confidence, label
accuracy (conditional systems); PSNR against bicubic and nearest (bench/sr_psnr.py); pix2pix L1,
PSNR, label accuracy of its outputs; CycleGAN digit kept through A->B and A->B->A, a stroke-width
measure against the real other domain. The doc gets tables, a tile per system and a quality-vs-
minutes plot between the markers <!-- zoo:begin --> and <!-- zoo:end -->.

--quick: the same study on the first 16 images of each dataset, batch 4, tiny budgets, 16 test
images for PSNR, pix2pix and CycleGAN, 512 for the Frechet reference: a smoke test
(tests/test_zoo.py) whose numbers mean nothing. Its segments are the same `nncgan train` commands
(with --procs 1), run inside this process (nncgan.cli.main) rather than launched: a launch's
start-up, first-use compilation and fresh work arrays cost more than a tiny segment's training.
CPU time is then this process's while it trains. On several cores, one forked lane per dataset.
--only NAME: only the systems (or trainings) whose name matches NAME (fnmatch; repeatable), and
the trainings they need. --budget-scale F multiplies every epoch budget (rounded, at least 1).
"""
import argparse
import contextlib
import fnmatch
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BEGIN, END = "<!-- zoo:begin -->", "<!-- zoo:end -->"
DATA = {"mnist": "mnist", "fashion": "fashion-mnist"}
DCGAN14 = ["params.h=14", "networks.DiscriminatorReal.layers.0.dataset=x_low"]
QUICK_LIMIT, QUICK_BATCH = 16, 4
LS = "networks.DiscriminatorReal.layers.4.target.multiplier=0.9"
QUICK_TESTS = 16   # --quick: test images translated or up-scaled per score (the whole split: minutes each)
QUICK_REF = 512     # --quick: test images of the Frechet reference (the whole split: 10,000)


# ---------------------------------------------------------------------------------------------
# What the study trains


@dataclass
class Training:
    name: str                      # the run folder OUT/runs/NAME
    graph: str                     # relative to the checkout
    sets: List[str]
    budgets: List[int]             # epochs after which the run is snapshotted and scored
    dataset: str = "mnist"         # whose classifier must exist first
    needs: List[str] = field(default_factory=list)   # trainings to run first
    equal_time_to: Optional[str] = None   # budget: the CPU time of that training's last budget


@dataclass
class System:
    name: str
    kind: str                      # how it is scored (a function below)
    trainings: List[str]           # one per stage; budget i of the system = budget i of each
    dataset: str = "mnist"
    group: str = ""                # the doc table it goes into
    label: str = ""


def _ds_set(ds, derive=None):
    d = f"{{name: {DATA[ds]}" + (f", derive: {derive}" if derive else "") + "}"
    return [f"dataset={d}"]


def plan(scale=1.0, quick=False, seeds=None):
    """(trainings by name, systems in doc order) at budget scale `scale`; cgan seeds 1-3 (1 with --quick)."""
    seeds = seeds or ((1,) if quick else (1, 2, 3))
    def b(*epochs):
        if quick:
            epochs = (1, 2, 3)[:len(epochs)]
        out = []
        for e in epochs:
            e = max(1, int(round(e * (1 if quick else scale))))
            if e not in out:
                out.append(e)
        return out

    T, S = {}, []

    def add(t):
        T[t.name] = t
        return t

    for ds in DATA:
        add(Training(f"classifier_{ds}", f"graphs/classifier_{'mnist' if ds == 'mnist' else 'fashion'}.yaml",
                     [], b(3), ds))
    down = "{type: downscale, factor: 2}"
    for ds in DATA:
        c = [f"classifier_{ds}"]
        add(Training(f"dcgan28_{ds}", "graphs/dcgan.yaml", _ds_set(ds) if ds != "mnist" else [], b(1, 2, 5), ds, c))
        add(Training(f"dcgan14_{ds}", "graphs/dcgan.yaml", DCGAN14 + _ds_set(ds, down), b(1, 2, 5), ds, c))
        add(Training(f"srcnn_{ds}", "graphs/srcnn.yaml", _ds_set(ds, down), b(1, 2, 3), ds, c))
        add(Training(f"stage2_{ds}", "graphs/multistage_gan.yaml", _ds_set(ds, down), b(1, 2, 3), ds, c))
        S += [System(f"dcgan28_{ds}", "gan", [f"dcgan28_{ds}"], ds, "resolution", "DCGAN at 28"),
              System(f"dcgan14_srcnn_{ds}", "chain:dcgan_srcnn", [f"dcgan14_{ds}", f"srcnn_{ds}"], ds, "resolution",
                     "DCGAN at 14 + SRCNN x2"),
              System(f"multistage_{ds}", "chain:multistage", [f"dcgan14_{ds}", f"stage2_{ds}"], ds, "resolution",
                     "multi-stage GAN (DCGAN 14 + stage 2)"),
              System(f"dcgan14_bicubic_{ds}", "bicubic", [f"dcgan14_{ds}"], ds, "resolution",
                     "(DCGAN at 14 + bicubic, the reference for stage 2)"),
              System(f"srcnn_{ds}", "psnr", [f"srcnn_{ds}"], ds, "psnr", "SRCNN x2"),
              System(f"stage2_{ds}", "psnr", [f"stage2_{ds}"], ds, "psnr", "multi-stage stage 2")]
    # pix2pix's class kept still rose at 5 epochs (82.3, 83.8, 85.3%), and an epoch costs 2 min:
    # on to the graph's own max_epoch (10) and twice that
    add(Training("pix2pix", "graphs/pix2pix.yaml", [], b(1, 2, 5, 10, 20), "fashion", ["classifier_fashion"]))
    # CycleGAN's "digit kept" is read by a classifier of all three stroke widths: the plain MNIST
    # one reads thin real test digits at about 90%, below the 97% for the translations
    add(Training("classifier_strokes", "graphs/classifier_mnist.yaml", ["name=classifier_mnist_strokes"]
                 + _ds_set("mnist", "{type: stroke_widths}"), b(3), "mnist"))
    add(Training("cyclegan", "graphs/cyclegan.yaml", [], b(1, 2, 3), "mnist", ["classifier_mnist", "classifier_strokes"]))
    S += [System("pix2pix", "pix2pix", ["pix2pix"], "fashion", "pix2pix", "pix2pix edges -> Fashion-MNIST"),
          System("cyclegan", "cyclegan", ["cyclegan"], "mnist", "cyclegan", "CycleGAN thin <-> thick")]
    cm = ["classifier_mnist"]
    for s in seeds:
        add(Training(f"cgan_mnist_s{s}", "graphs/cgan_mnist.yaml", [f"config.seed={s}"], b(5), "mnist", cm))
        S.append(System(f"cgan_mnist_s{s}", "cgan", [f"cgan_mnist_s{s}"], "mnist", "cgan", f"cgan_mnist, seed {s}"))
    for s in seeds:
        add(Training(f"cgan_mnist_plus_s{s}", "graphs/cgan_mnist_plus.yaml", [f"config.seed={s}"], b(5), "mnist", cm))
        S.append(System(f"cgan_mnist_plus_s{s}", "cgan", [f"cgan_mnist_plus_s{s}"], "mnist", "cgan",
                        f"cgan_mnist_plus, seed {s}"))
    # the one-sided label smoothing the graph once had (target 0.9 for real images): one seed
    add(Training("cgan_mnist_plus_ls", "graphs/cgan_mnist_plus.yaml", [f"config.seed={seeds[0]}", LS], b(5), "mnist", cm))
    S.append(System("cgan_mnist_plus_ls", "cgan", ["cgan_mnist_plus_ls"], "mnist", "cgan",
                    f"cgan_mnist_plus with one-sided label smoothing, seed {seeds[0]}"))
    first = f"cgan_mnist_s{seeds[0]}"
    for name in ("baseline_deconv", "baseline_mlp", "baseline_slp"):
        # 1 epoch, then as many as fit in the GAN's CPU time (at most 3 in --quick)
        add(Training(name, f"graphs/{name}.yaml", [], [1], "mnist", cm + [first], equal_time_to=first))
        S.append(System(name, "cgan", [name], "mnist", "baselines", name))
    S.append(System(f"{first}_vs", "same", [first], "mnist", "baselines", "cgan_mnist (the GAN)"))
    # Training order: the classifiers, then the cheap conditional trainings, pix2pix and CycleGAN,
    # and the long resolution study last, so that an interrupted study has the most tables.
    rank = lambda n: (0 if n.startswith("classifier_") else 1 if n.startswith(("cgan_", "baseline_"))
                      else 2 if n in ("pix2pix", "cyclegan") else 3)
    T = dict(sorted(T.items(), key=lambda kv: rank(kv[0])))   # stable: plan order within a rank
    return T, S


# ---------------------------------------------------------------------------------------------
# Files of the study


class Study:
    def __init__(self, out, quick, scale, num, log=print, record=None):
        self.out = Path(out).resolve()
        # The record (study.json, state/, scores/: small JSON the doc is written from) may live apart
        # from the runs, in the repository, so that a new session's checkout continues the study.
        self.record = Path(record).resolve() if record else self.out
        self.quick, self.scale, self.num, self.log = quick, scale, num, log
        for d in ("runs", "snaps", "tiles"):
            (self.out / d).mkdir(parents=True, exist_ok=True)
        for d in ("state", "scores"):
            (self.record / d).mkdir(parents=True, exist_ok=True)
        settings = {"quick": quick, "budget_scale": scale, "num": num}
        path = self.record / "study.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if {k: saved.get(k) for k in settings} != settings:
                sys.exit(f"bench/zoo.py: {self.record} holds a study with {saved}, not {settings}; "
                         f"continue it with those options or give another --out")
        else:
            _write_json(path, dict(settings, started=_now()))
        self.env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for var, sub in (("NNCGAN_MNIST_DIR", "mnist"), ("NNCGAN_FASHION_MNIST_DIR", "fashion-mnist")):
            shared = ROOT.parent / "shared" / "data" / sub
            if not self.env.get(var) and (shared / "train-images-idx3-ubyte.gz").is_file():
                self.env[var] = str(shared)
        if quick:
            self.env["NNCGAN_LIMIT_SAMPLES"] = str(QUICK_LIMIT)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("NNCGAN_")})
        self.in_process = quick   # the full study launches each training as a process of its own
        self.child = None
        self.stop = False

    def state_path(self, name):
        return self.record / "state" / f"{name}.json"

    def scores_dir(self):
        return self.record / "scores"

    def state(self, name):
        p = self.state_path(name)
        return json.loads(p.read_text()) if p.is_file() else {"name": name, "segments": [], "snapshots": {}}

    def snap(self, name, epoch):
        return self.out / "snaps" / f"{name}@e{epoch}"


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_json(path, obj):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _saved_epoch(run):
    from nncgan.train import checkpoint
    if not (run / checkpoint.CKPT_DIR).is_dir():
        return 0
    st = checkpoint.peek_state(run)
    return int(st["epoch"]) if st else 0


def _load1():
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Training, one segment at a time


def _command(study, t, run, epochs, resume):
    cmd = [sys.executable, "-m", "nncgan.cli", "train", str(ROOT / t.graph), "--out", str(run),
           "--epochs", str(epochs), "--quiet", "--no-eval", "--context", "cpu", "--log-file", str(run) + ".log"]
    if study.quick:  # trained in this process (_train_here): one rank, no mpiexec
        cmd += ["--procs", "1"]
    if resume:
        return cmd + ["--resume"]
    if study.quick:
        cmd += ["--batch-size", str(QUICK_BATCH)]
    for s in t.sets:
        cmd += ["--set", s]
    return cmd


def _shown(cmd, study):
    env = f"NNCGAN_LIMIT_SAMPLES={QUICK_LIMIT} " if study.quick else ""
    return env + "nncgan " + " ".join(shlex.quote(c) for c in cmd[3:]).replace(str(study.out) + "/", "$ZOO/") \
        .replace(str(ROOT) + "/", "")


def _log_time_of_epoch(logfile, epoch, after):
    """The time-stamp of the `epoch N:` line in the run's --log-file written after `after` (or None)."""
    try:
        lines = Path(logfile).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    found = None
    for ln in lines:
        parts = ln.split(" ", 3)
        if len(parts) > 3 and parts[2] == "epoch" and parts[3].startswith(f"{epoch}:"):
            ts = time.mktime(time.strptime(parts[0] + " " + parts[1], "%Y-%m-%d %H:%M:%S"))
            if ts >= after - 1:
                found = ts
    return found


def _recover(study, t, st, run):
    """A segment whose process died with this driver (a killed session): count the time it took
    up to its last saved epoch, from the run's time-stamped log; its CPU time is not known."""
    seg = st.pop("running", None)
    if not seg:
        return
    epoch = _saved_epoch(run)
    done_before = max([s["to_epoch"] for s in st["segments"]], default=0)
    if epoch > done_before:
        ts = _log_time_of_epoch(str(run) + ".log", epoch, seg["started"])
        st["segments"].append(dict(seg, to_epoch=epoch, wall_s=(ts - seg["started"]) if ts else None, cpu_s=None,
                                   rc=None, note="interrupted with the driver; wall time to its last saved "
                                                 "epoch from the run's log, CPU time not measured"))
    _write_json(study.state_path(t.name), st)


def _run_segment(study, t, st, run, to_epoch):
    resume = _saved_epoch(run) > 0
    if run.exists() and not resume:  # a first segment that died before saving an epoch: set aside
        k = 1
        while run.with_name(f"{run.name}.unsaved-{k}").exists():
            k += 1
        run.rename(run.with_name(f"{run.name}.unsaved-{k}"))
    cmd = _command(study, t, run, to_epoch, resume)
    st["command"] = st.get("command") or _shown(_command(study, t, run, max(t.budgets), False), study)
    # the commit each segment trained with: the kernels (and so the minutes) change between sessions
    seg = {"to_epoch": to_epoch, "started": time.time(), "load1_start": _load1(), "command": _shown(cmd, study),
           "commit": _versions().get("nncgan commit", "")}
    st["running"] = seg
    _write_json(study.state_path(t.name), st)
    study.log(f"zoo: {t.name}: training to epoch {to_epoch} ({seg['command']})")
    with open(str(run) + ".out", "a", encoding="utf-8") as outf:
        if study.in_process:
            rc, cpu_s = _train_here(study, cmd, outf)
            seg.update(in_process=True)
        else:
            p = subprocess.Popen(cmd, cwd=str(study.out), env=study.env, stdout=outf, stderr=subprocess.STDOUT)
            study.child = p
            while True:
                try:
                    _, status, ru = os.wait4(p.pid, 0)
                    break
                except InterruptedError:
                    continue
            rc = p.returncode = os.waitstatus_to_exitcode(status)
            study.child = None
            cpu_s = ru.ru_utime + ru.ru_stime
            seg.update(max_rss_mb=ru.ru_maxrss / 1024)
    st.pop("running")
    seg.update(wall_s=time.time() - seg["started"], cpu_s=cpu_s, rc=rc, load1_end=_load1())
    if rc != 0:
        seg["to_epoch"] = _saved_epoch(run)
        seg["note"] = f"exit {rc}; see {run}.out"
    st["segments"].append(seg)
    _write_json(study.state_path(t.name), st)
    if rc != 0:
        tail = Path(str(run) + ".out").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        study.log(f"zoo: {t.name}: nncgan train exited {rc}: " + " / ".join(tail))
        return False
    return True


def _train_here(study, cmd, outf):
    """--quick: `nncgan train` (cmd) run in this process, not launched: its imports, compiled kernels
    and work arrays are then paid for once per study, not per segment (most of a tiny segment's
    time). (exit status, CPU seconds: this process's user + sys, all threads, while it trained)."""
    import contextlib
    import resource
    import traceback
    from nncgan import cli
    from nncgan.train import outputs
    usage = lambda: sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                        for f in ("ru_utime", "ru_stime"))
    cpu0, cwd, install = usage(), os.getcwd(), signal.signal

    def noting_stops(signum, handler):
        """nncgan train's SIGINT/SIGTERM handlers, which replace the driver's while it trains,
        also stop the study (a signal can end the training as an error, not as `interrupted`)."""
        if signum in (signal.SIGINT, signal.SIGTERM) and callable(handler) and not hasattr(handler, "stops"):
            inner = handler

            def handler(sig, frame):
                study.stop = True
                return inner(sig, frame)
            handler.stops = True
        return install(signum, handler)
    draw = outputs.epoch_images
    try:
        os.chdir(study.out)
        signal.signal = noting_stops
        # No tile, GIF or learning curve each epoch: the study draws its own tiles, and for
        # tiny runs these were a quarter of the quick study's CPU time.
        outputs.epoch_images = lambda *a, **k: None
        with contextlib.redirect_stdout(outf), contextlib.redirect_stderr(outf):
            try:
                rc = cli.main(cmd[3:])
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except Exception:  # noqa: BLE001 - a bug in one training is that training's failure
                traceback.print_exc()
                rc = 1
    finally:
        signal.signal, outputs.epoch_images = install, draw
        os.chdir(cwd)
    return rc, usage() - cpu0


def _tune_for_tiny_work():
    """--quick, whose every training and score runs in this process at tiny batches."""
    from nncgan.layers import cpu_kernels
    # Keep every (de)convolution work array for reuse, however large: a tile or a score at a batch
    # of 100 otherwise maps and faults in fresh pages each time (3.6 s of sys time for one DCGAN
    # tile here, 0.02 s reused). Memory: the largest layer's, once.
    cpu_kernels._Scratch.KEEP_BYTES = 1 << 40
    # One BLAS thread: at batch 4 a second one mostly spins and yields (CPU time of the DCGAN 28
    # part of the study, trainings and scores: 25.7 s with two, 18.0 s with one, measured)
    return cpu_kernels.set_blas_threads(1)


def _snapshot(study, t, st, run, epoch):
    from nncgan import run as runs
    from nncgan.train import checkpoint
    dst = study.snap(t.name, epoch)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / checkpoint.CKPT_DIR).mkdir(parents=True)
    for f in (runs.RUN_INFO, runs.GRAPH_COPY):
        shutil.copy2(run / f, tmp / f)
    folder = checkpoint.latest(run)
    shutil.copytree(folder, tmp / checkpoint.CKPT_DIR / folder.name)
    (tmp / checkpoint.CKPT_DIR / checkpoint.LATEST).write_text(folder.name)
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)
    segs = st["segments"]
    walls = [s["wall_s"] for s in segs]
    cpus = [s["cpu_s"] for s in segs]
    st["snapshots"][str(epoch)] = {
        "epoch": epoch, "run": str(dst), "wall_s": sum(w for w in walls if w is not None),
        "cpu_s": sum(c for c in cpus if c is not None),
        "complete_times": all(w is not None for w in walls) and all(c is not None for c in cpus)}
    _write_json(study.state_path(t.name), st)


def _equal_time_epochs(study, t, st):
    """Epochs that fill the CPU time of `t.equal_time_to`'s last budget, from this run's first epoch.
    CPU time, not wall time: a wall time also counts whatever paused or slowed the study (another
    job, a benchmark's SIGSTOP), and both trainings run on all the cores alike."""
    other = study.state(t.equal_time_to)["snapshots"]
    one = st["snapshots"].get("1")
    if not other or not one:
        return 1
    target = other[str(max(map(int, other)))]["cpu_s"]
    n = max(1, int(target // max(one["cpu_s"], 1e-6)))
    return min(n, 3 if study.quick else 200)


def _unscored(study, s, T):
    """True when system `s` lacks the score of one of its budgets."""
    n = 1 if s.kind == "same" or T[s.trainings[0]].equal_time_to else min(len(T[x].budgets) for x in s.trainings)
    return len(list(study.scores_dir().glob(f"{s.name}@*.json"))) < n


def forget_if_lost(study, t, S, T):
    """A training recorded in the record whose run is gone (a new checkout: runs/ is not kept) is
    trained again if an unscored system needs it (its own, or as the classifier that scores them);
    that system's scores of the lost run go with it, so that its budgets come from one run."""
    st = study.state(t.name)
    if not st["segments"] or (study.out / "runs" / t.name).exists():
        return
    users = [s for s in S if t.name in s.trainings or any(t.name in T[x].needs for x in s.trainings)]
    if not any(_unscored(study, s, T) for s in users):
        return
    study.log(f"zoo: {t.name}: its run is gone and {', '.join(s.name for s in users if _unscored(study, s, T))} "
              f"still need it: trained again")
    study.state_path(t.name).unlink()
    for s in users:
        if t.name in s.trainings:
            for p in study.scores_dir().glob(f"{s.name}@*.json"):
                p.unlink()


def train(study, t, scored=lambda: None):
    """Train `t` through all its budgets, calling `scored` after each new snapshot (so a budget is
    scored before the next one trains: a study stopped mid-training keeps its earlier budgets'
    scores); True when every budget is snapshotted."""
    st = study.state(t.name)
    run = study.out / "runs" / t.name
    _recover(study, t, st, run)
    budgets = list(t.budgets)
    if t.equal_time_to:
        if "1" in st["snapshots"]:
            budgets = sorted({1, _equal_time_epochs(study, t, st)})
        st["budgets"] = budgets
    for b in budgets:
        if str(b) in st["snapshots"]:
            continue
        if study.stop:
            return False
        if _saved_epoch(run) > b:  # the state was lost after the run went past this budget
            study.log(f"zoo: {t.name}: the run is past epoch {b} and no snapshot of it was kept; budget skipped")
            continue
        if _saved_epoch(run) < b and not _run_segment(study, t, st, run, b):
            return False
        _snapshot(study, t, st, run, b)
        scored()
        if t.equal_time_to and b == 1:
            return train(study, t, scored)  # now the equal-wall budget is known
    st["done"] = True
    st["budgets"] = budgets
    _write_json(study.state_path(t.name), st)
    return True


# ---------------------------------------------------------------------------------------------
# Scoring


class Scorer:
    def __init__(self, study):
        self.study = study
        self.clfs, self.refs, self.real = {}, {}, {}

    def classifier(self, ds):
        from nncgan.eval import classifier as C
        from nncgan.eval.score import Reference
        if ds not in self.clfs:
            self.clfs[ds] = C.Classifier(C.find(DATA[ds], [str(self.study.out / "runs")]))
            self.refs[ds] = Reference(self.clfs[ds], self.study.num * 10, 0, log=lambda *a: None,
                                      test_limit=QUICK_REF if self.study.quick else None)
        return self.clfs[ds], self.refs[ds]

    def widths_classifier(self):
        """The digit classifier trained on thin, as drawn and thick strokes (training classifier_strokes)."""
        from nncgan.eval import classifier as C
        if "strokes" not in self.clfs:
            self.clfs["strokes"] = C.Classifier(self.study.out / "runs" / "classifier_strokes")
        return self.clfs["strokes"]

    def quality(self, ds, images, labels=None):
        """nncgan eval's numbers (nncgan.eval.score.score) + mean confidence and entropy in bits."""
        from nncgan.eval.score import score
        clf, ref = self.classifier(ds)
        r = score(clf, ref, images, labels)
        r["confidence"] = float(clf(images)[0].max(1).mean())
        r["class_entropy_bits"] = r["class_entropy"] / math.log(2)
        r.pop("collapse_reasons", None)
        return r

    def real_down(self, ds):
        """The real rows' test images down-scaled to 14 (the datasets' x_low) and up-scaled back by
        bicubic and by nearest: what a chain through 14 reaches with real images at its first stage."""
        key = f"down_{ds}"
        if key not in self.real:
            from nncgan.data.derived import area_downscale
            from nncgan.eval.report import real_as_generated
            clf, ref = self.classifier(ds)
            images, _ = real_as_generated(ref, self.study.num, 0, "test")
            low = area_downscale(images, 2)
            self.real[key] = {"bicubic": self.quality(ds, _bicubic(low, 28)),
                              "nearest": self.quality(ds, np.repeat(np.repeat(low, 2, 2), 2, 3))}
        return self.real[key]

    def real_row(self, ds):
        """Real test images scored as if generated (`nncgan eval --images-from test`)."""
        if ds not in self.real:
            from nncgan.eval.report import real_as_generated
            clf, ref = self.classifier(ds)
            images, labels = real_as_generated(ref, self.study.num, 0, "test")
            self.real[ds] = self.quality(ds, images, labels)
        return self.real[ds]


def _draw_run(run, num):
    """`nncgan eval`'s images: num per label (10 x num unconditional), seed 0, EMA when saved."""
    from nncgan import inference
    from nncgan.eval.report import draw
    loaded = inference.load(run, num)
    return draw(loaded.sampler, num, np.random.RandomState(0))


def _chain(pipeline_file, stage_runs, n, chunk=100):
    """`nncgan infer PIPELINE --seed k` for k = 0, 1, ... (chunks of `chunk` images): first and last stage."""
    from nncgan import pipeline
    p = pipeline.parse(ROOT / "graphs" / pipeline_file)
    firsts, lasts = [], []
    for k in range(-(-n // chunk)):
        res = pipeline.run_stages(p, min(chunk, n - k * chunk), k, None, stage_runs, log=lambda *a: None)
        firsts.append(res[0][2])
        lasts.append(res[-1][2])
    return np.concatenate(firsts), np.concatenate(lasts)


def _translate(run, executor, images, chunk=500):
    """An image-to-image executor over `images`, `chunk` at a time (as bench/pairs_eval.py, bounded memory)."""
    import pairs_eval
    return np.concatenate([pairs_eval.translate(run, executor, images[i:i + chunk])
                           for i in range(0, len(images), chunk)])


def _bicubic(images, size):
    from PIL import Image
    out = [np.asarray(Image.fromarray(im[0].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC))
           for im in images]
    return np.clip(np.stack(out)[:, None], 0.0, 1.0)


def stroke_width(images, threshold=0.5):
    """Mean stroke width in pixels: ink area / half its 4-neighbour perimeter (a stroke of width w
    and length L has area w L and perimeter about 2 L). Per image; images without ink are skipped."""
    ink = np.asarray(images)[:, 0] > threshold
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    edges = (padded[:, 1:, :] != padded[:, :-1, :]).sum((1, 2)) + (padded[:, :, 1:] != padded[:, :, :-1]).sum((1, 2))
    area = ink.sum((1, 2))
    ok = edges > 0
    return float(np.mean(area[ok] / (edges[ok] / 2.0))) if ok.any() else 0.0


def _l1(x, y):
    return float(np.mean(np.abs(np.asarray(x) - np.asarray(y))))


def score_system(study, scorer, s, i, snaps):
    """The scores of system `s` at budget index i, from its trainings' snapshots `snaps`."""
    from nncgan.psnr import mean_psnr
    n = study.num
    tests = QUICK_TESTS if study.quick else 10 ** 9   # test images for PSNR, pix2pix, CycleGAN (all of them)
    ds = s.dataset
    tile = None
    r = {}
    if s.kind in ("gan", "cgan", "same"):
        images, labels = _draw_run(snaps[0], n)
        r = scorer.quality(ds, images, labels)
        tile = images[::max(1, len(images) // 64)][:64] if labels is None else \
            images.reshape(10, -1, *images.shape[1:])[:, :6].transpose(1, 0, 2, 3, 4).reshape(-1, *images.shape[1:])
    elif s.kind.startswith("chain:"):
        pipe = {"chain:dcgan_srcnn": ("dcgan_srcnn.pipeline.yaml", "dcgan14", "srcnn"),
                "chain:multistage": ("multistage.pipeline.yaml", "stage1", "stage2")}[s.kind]
        first, last = _chain(pipe[0], {pipe[1]: str(snaps[0]), pipe[2]: str(snaps[1])}, 10 * n)
        r = scorer.quality(ds, np.clip(last, 0.0, 1.0))
        tile = np.clip(last[:64], 0, 1)
    elif s.kind == "bicubic":
        images, _ = _draw_run(snaps[0], n)
        up = _bicubic(images, 28)
        r = scorer.quality(ds, up)
        tile = up[:64]
    elif s.kind == "psnr":
        import sr_psnr
        r = sr_psnr.upscale_psnr(str(snaps[0]), tests)
    elif s.kind == "pix2pix":
        import pairs_eval
        d = pairs_eval.test_split(str(snaps[0]), tests, None)
        out = np.clip(_translate(str(snaps[0]), None, d["a"]), 0.0, 1.0)
        y = d["y"].reshape(len(out), -1)[:, 0].astype(int)
        clf, _ = scorer.classifier("fashion")
        q = scorer.quality("fashion", out, y)
        r = {"num": len(out), "l1": _l1(out, d["b"]), "psnr": mean_psnr(out, d["b"]),
             "psnr_edges": mean_psnr(d["a"], d["b"]), "label_accuracy": q["label_accuracy"],
             "label_accuracy_real": float(np.mean(clf(d["b"])[0].argmax(1) == y)),
             "fid": q["fid"], "fid_floor": q["fid_floor"]}
        tile = np.concatenate([d["a"][:8], out[:8], d["b"][:8]])
    elif s.kind == "cyclegan":
        import pairs_eval
        run = str(snaps[0])
        d = pairs_eval.test_split(run, tests, None)
        a, b, y = d["a"], d["b"], d["y_a"].reshape(len(d["a"]), -1)[:, 0].astype(int)
        ab = np.clip(_translate(run, "AtoB", a), 0, 1)
        aba = np.clip(_translate(run, "BtoA", ab), 0, 1)
        ba = np.clip(_translate(run, "BtoA", b), 0, 1)
        bab = np.clip(_translate(run, "AtoB", ba), 0, 1)
        plain, _ = scorer.classifier("mnist")
        widths = scorer.widths_classifier()
        r = {"num": len(a)}
        for key, x in (("a", a), ("ab", ab), ("aba", aba), ("b", b), ("ba", ba), ("bab", bab)):
            r[f"kept_{key}"] = float(np.mean(widths(x)[0].argmax(1) == y))
            r[f"kept_{key}_plain"] = float(np.mean(plain(x)[0].argmax(1) == y))
            r[f"width_{key}"] = stroke_width(x)
        r.update(l1_ab_b=_l1(ab, b), l1_a_b=_l1(a, b), l1_aba_a=_l1(aba, a), l1_ab_a=_l1(ab, a),
                 l1_ba_a=_l1(ba, a), l1_bab_b=_l1(bab, b))
        tile = np.concatenate([a[:8], ab[:8], aba[:8], b[:8], ba[:8]])
    else:
        raise ValueError(s.kind)
    return r, tile


def _system_budgets(study, s, T):
    """[(budget index, [snapshot run per training], wall_s, cpu_s, epochs)] available now."""
    states = [study.state(t) for t in s.trainings]
    out = []
    lists = [sorted(map(int, st["snapshots"])) for st in states]
    if s.kind in ("gan", "cgan", "same") and T[s.trainings[0]].equal_time_to:
        lists = [[max(lists[0])]] if lists[0] and states[0].get("done") else [[]]
    if s.kind == "same":
        lists = [[max(lists[0])]] if lists[0] else [[]]
    for i in range(min(len(x) for x in lists)):
        epochs = [x[i] for x in lists]
        snaps = [st["snapshots"][str(e)] for st, e in zip(states, epochs)]
        out.append((i, [Path(sn["run"]) for sn in snaps], sum(sn["wall_s"] for sn in snaps),
                    sum(sn["cpu_s"] for sn in snaps), epochs,
                    all(sn.get("complete_times", True) for sn in snaps)))
    return out


def score_all(study, systems, T):
    from nncgan.images import save_tile
    scorer = study.scorer = getattr(study, "scorer", None) or Scorer(study)
    for s in systems:
        if not all(study.state(n).get("done") for t in s.trainings for n in T[t].needs):
            continue   # a classifier that scores it is not trained yet (e.g. one added to the plan since)
        for i, snaps, wall, cpu, epochs, complete in _system_budgets(study, s, T):
            path = study.scores_dir() / f"{s.name}@{i}.json"
            if path.is_file():
                continue
            if study.stop:
                return
            study.log(f"zoo: scoring {s.name} at epochs {epochs}")
            t0 = time.time()
            try:
                r, tile = score_system(study, scorer, s, i, snaps)
            except Exception as e:  # noqa: BLE001 - one system's failure must not stop the study
                study.log(f"zoo: {s.name}: scoring failed: {type(e).__name__}: {e}")
                _write_json(path.with_suffix(".failed"), {"error": f"{type(e).__name__}: {e}", "at": _now()})
                continue
            if tile is not None:
                save_tile(tile, study.out / "tiles" / f"{s.name}.png", *_grid(len(tile), s))
            _write_json(path, {"system": s.name, "budget_index": i, "epochs": epochs, "wall_s": wall, "cpu_s": cpu,
                               "times_complete": complete, "scored_at": _now(),
                               "score_seconds": time.time() - t0, "scores": r})
        if s.kind in ("gan", "cgan", "chain:dcgan_srcnn", "chain:multistage", "bicubic") and \
                any((study.scores_dir()).glob(f"{s.name}@*.json")):
            scorer.real_row(s.dataset)
            if s.group == "resolution":
                scorer.real_down(s.dataset)
    for ds, r in scorer.real.items():
        _write_json(study.scores_dir() / f"real_{ds}.json", {"system": f"real_{ds}", "scores": r})


def _grid(n, s):
    if s.kind in ("pix2pix",):
        return 3, 8
    if s.kind == "cyclegan":
        return 5, 8
    if s.kind in ("cgan", "same"):
        return n // 10, 10
    return None, None


# ---------------------------------------------------------------------------------------------
# The doc


def _versions():
    import nnabla
    out = {"python": platform.python_version(), "nnabla": nnabla.__version__, "numpy": np.__version__}
    try:
        out["nncgan commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _machine():
    cpu = "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2 ** 20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


def _f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)


def _scores(study):
    out = {}
    for p in sorted((study.scores_dir()).glob("*.json")):
        d = json.loads(p.read_text())
        out.setdefault(d["system"], []).append(d)
    for v in out.values():
        v.sort(key=lambda d: d.get("budget_index", 0))
    return out


def _mins(sec):
    return "-" if sec is None else f"{sec / 60:.1f}"


def write_doc(study, systems, T, doc, argv):
    sc = _scores(study)
    doc = Path(doc)
    tiles_dir = doc.parent / "zoo"
    tiles_dir.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(tiles_dir, doc.parent)
    L = [BEGIN, "", "## The study, from one run of `bench/zoo.py`" + (" (--quick: a smoke test, numbers "
                                                                         "meaningless)" if study.quick else ""), ""]
    L += [f"Machine: {_machine()}. Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()) + ".",
          f"Command: `{' '.join(['python', 'bench/zoo.py'] + [shlex.quote(a) for a in argv])}` "
          f"(results in `{study.out.name}/`; started {json.loads((study.record / 'study.json').read_text())['started']}, "
          f"this doc written {_now()}). Scores: {study.num} images per label, seed 0, read by the "
          f"study's own classifier runs (`classifier_mnist`, `classifier_fashion`), as `nncgan eval` reads them. "
          f"Wall and CPU time: each training's `nncgan train` processes (all segments up to that budget; "
          f"CPU = user + sys); the load average is in the trainings table.", ""]
    # resolution study
    for ds in DATA:
        rows = [s for s in systems if s.group == "resolution" and s.dataset == ds and s.name in sc]
        if not rows:
            continue
        real = sc.get(f"real_{ds}", [{}])[0].get("scores", {})
        L += [f"### Resolution study 14 -> 28, {DATA[ds]}", "",
              "| system | epochs (per stage) | train wall min | CPU min | Frechet distance | floor | x floor | "
              "class entropy (bits) | precision | recall | mean conf |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        if real:
            L.append(f"| real test images | | | | {_f(real['fid'])} | {_f(real['fid_floor'])} | "
                     f"{_f(real['fid'] / real['fid_floor'], '{:.2f}')} | {_f(real['class_entropy_bits'])} | "
                     f"{_f(real['precision'])} | {_f(real['recall'])} | {_f(real['confidence'])} |")
        down = sc.get(f"real_down_{ds}", [{}])[0].get("scores", {})
        for how, r in sorted(down.items()):
            L.append(f"| real test images at 14, up-scaled by {how} | | | | {_f(r['fid'])} | {_f(r['fid_floor'])} | "
                     f"{_f(r['fid'] / r['fid_floor'], '{:.2f}')} | {_f(r['class_entropy_bits'])} | "
                     f"{_f(r['precision'])} | {_f(r['recall'])} | {_f(r['confidence'])} |")
        for s in rows:
            for d in sc[s.name]:
                r = d["scores"]
                L.append(f"| {s.label} | {'+'.join(map(str, d['epochs']))} | {_mins(d['wall_s'])} | {_mins(d['cpu_s'])} | "
                         f"{_f(r['fid'])} | {_f(r['fid_floor'])} | {_f(r['fid'] / r['fid_floor'], '{:.2f}')} | "
                         f"{_f(r['class_entropy_bits'])} | {_f(r['precision'])} | {_f(r['recall'])} | "
                         f"{_f(r['confidence'])} |")
        L.append("")
        L += _winners(sc, rows) + [""]
        L += [f"![quality against minutes, {DATA[ds]}]({rel}/quality_vs_minutes_{ds}.png)", ""]
        _plot(sc, rows, real, tiles_dir / f"quality_vs_minutes_{ds}.png", DATA[ds])
    # PSNR
    rows = [s for s in systems if s.group == "psnr" and s.name in sc]
    if rows:
        L += ["### Up-scaling real test images 14 -> 28: PSNR (dB), whole test split", "",
              "| model | dataset | epochs | train wall min | PSNR | bicubic | nearest | beats bicubic |",
              "|---|---|---|---|---|---|---|---|"]
        for s in rows:
            for d in sc[s.name]:
                r = d["scores"]
                L.append(f"| {s.label} | {DATA[s.dataset]} ({r['num']}) | {d['epochs'][0]} | {_mins(d['wall_s'])} | "
                         f"{r['model']:.2f} | {r['bicubic']:.2f} | {r['nearest']:.2f} | "
                         f"{'yes' if r['model'] > r['bicubic'] else 'no'} |")
        L.append("")
    if "pix2pix" in sc:
        L += ["### pix2pix, edges -> Fashion-MNIST items (test split)", "",
              "| system | epochs | train wall min | L1 | PSNR | PSNR of the edge map | label accuracy (outputs) | "
              "(real items) | Frechet distance | floor |", "|---|---|---|---|---|---|---|---|---|---|"]
        label = next(s.label for s in systems if s.name == "pix2pix")
        for d in sc["pix2pix"]:
            r = d["scores"]
            L.append(f"| {label} | {d['epochs'][0]} | {_mins(d['wall_s'])} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['psnr_edges']:.2f} | "
                     f"{r['label_accuracy']:.1%} | {r['label_accuracy_real']:.1%} | {_f(r['fid'])} | {_f(r['fid_floor'])} |")
        L.append("")
    if "cyclegan" in sc:
        L += ["### CycleGAN, thin (A) <-> thick (B) MNIST strokes (test split)", "",
              "kept: read as the source digit's label by a digit classifier trained on all three stroke widths "
              "(`classifier_strokes`: `graphs/classifier_mnist.yaml` on `derive: {type: stroke_widths}`), in "
              "brackets by the study's plain MNIST classifier, which reads thin digits worse; width: mean stroke "
              "width in pixels (ink area / half its perimeter, pixels > 0.5).", "",
              "| system | epochs | train wall min | kept a | A->B | A->B->A | kept b | B->A | B->A->B | width a | A->B | "
              "b | B->A | L1 A->B->A to a | L1 A->B to a |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        label = next(s.label for s in systems if s.name == "cyclegan")
        for d in sc["cyclegan"]:
            r = d["scores"]
            L.append(f"| {label} | {d['epochs'][0]} | {_mins(d['wall_s'])} | " + " | ".join(
                f"{r[k]:.1%}" + (f" ({r[k + '_plain']:.1%})" if k + "_plain" in r else "")
                for k in ("kept_a", "kept_ab", "kept_aba", "kept_b", "kept_ba", "kept_bab")) + " | "
                + " | ".join(f"{r[k]:.2f}" for k in ("width_a", "width_ab", "width_b", "width_ba"))
                + f" | {r['l1_aba_a']:.4f} | {r['l1_ab_a']:.4f} |")
        L.append("")
    rows = [s for s in systems if s.group in ("cgan", "baselines") and s.name in sc]
    if rows:
        real = sc.get("real_mnist", [{}])[0].get("scores", {})
        L += ["### Conditional: NNC's cgan_mnist (3 seeds), cgan_mnist_plus, and the non-GAN baselines at the GAN's "
              "CPU time", "",
              "| model | epochs | train wall min | CPU min | label accuracy | worst label | Frechet distance | floor | "
              "x floor | in-label diversity (min) | precision | recall |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        if real:
            L.append(_cgan_row("real test images", None, real))
        for s in rows:
            for d in sc[s.name][-1:]:
                L.append(_cgan_row(s.label, d, d["scores"]))
        for prefix, label in (("cgan_mnist_s", "cgan_mnist"), ("cgan_mnist_plus_s", "cgan_mnist_plus")):
            got = [sc[k][-1]["scores"] for k in sc if k.startswith(prefix) and k[len(prefix):].isdigit()]
            if len(got) > 1:
                acc = np.array([g["label_accuracy"] for g in got])
                worst = np.array([min(g[f"label_accuracy_{c}"] for c in range(10)) for g in got])
                ratio = np.array([g["fid"] / g["fid_floor"] for g in got])
                L.append(f"| **{label}, mean +- std over {len(got)} seeds** | | | | {acc.mean():.1%} +- {acc.std():.1%} | "
                         f"{worst.mean():.1%} +- {worst.std():.1%} | | | {ratio.mean():.2f} +- {ratio.std():.2f} | | | |")
        L.append("")
    L += ["### The issue's goals, as measured here", ""] + _goals(sc, systems) + [""]
    # tiles
    L += ["### One tile per system (last budget)", ""]
    for s in systems:
        src = study.out / "tiles" / f"{s.name}.png"
        if src.is_file():
            shutil.copy2(src, tiles_dir / src.name)
        if s.name in sc and (tiles_dir / src.name).is_file():   # the doc's own copy outlives runs/
            L.append(f"{s.label} ({DATA[s.dataset]}): ![{s.name}]({rel}/{src.name})  ")
    L.append("")
    # trainings
    L += ["### Every training", "", "| training | command | epochs | wall min | CPU min | load (start -> end) | "
          "commit | note |", "|---|---|---|---|---|---|---|---|"]
    for name in T:
        st = study.state(name)
        for seg in st["segments"]:
            L.append(f"| {name} | `{seg['command']}` | {seg['to_epoch']} | {_mins(seg.get('wall_s'))} | "
                     f"{_mins(seg.get('cpu_s'))} | {_f(seg.get('load1_start'), '{:.1f}')} -> "
                     f"{_f(seg.get('load1_end'), '{:.1f}')} | {seg.get('commit', '')} | {seg.get('note', '')} |")
    L += ["", END]
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    block = "\n".join(L)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    doc.write_text(text, encoding="utf-8")
    return doc


def _goals(sc, systems):
    """One line per goal of issue 13: met or not, with the number that says so (at the last budget)."""
    def last(name):
        return sc[name][-1]["scores"] if name in sc else None

    def line(ok, text):
        return f"- {'**met**' if ok else 'not met'}: {text}"
    out = []
    for ds in DATA:
        r, real = last(f"dcgan28_{ds}"), sc.get(f"real_{ds}", [{}])[0].get("scores")
        if r and real:
            x = r["fid"] / r["fid_floor"]
            de = abs(r["class_entropy_bits"] - real["class_entropy_bits"])
            out.append(line(x <= 5 and de <= 0.1, f"DCGAN at 28 on {DATA[ds]}: Frechet distance {x:.2f}x the floor "
                                                  f"(goal <= 5x), class entropy {de:.3f} bit from the real data's (goal <= 0.1)"))
        r = last(f"stage2_{ds}")
        if r:
            out.append(line(r["model"] > r["bicubic"], f"stage 2 on down-scaled real {DATA[ds]} test images: "
                                                       f"{r['model']:.2f} dB against bicubic {r['bicubic']:.2f} dB"))
        ms, bi = last(f"multistage_{ds}"), last(f"dcgan14_bicubic_{ds}")
        if ms and bi:
            out.append(line(ms["fid"] < bi["fid"], f"multi-stage samples on {DATA[ds]}: Frechet distance {ms['fid']:.3f} "
                                                   f"against stage 1 + bicubic {bi['fid']:.3f}"))
    r = last("cyclegan")
    if r:
        out.append(line(min(r["kept_ab"], r["kept_aba"]) >= 0.97,
                        f"CycleGAN keeps the digit: A->B {r['kept_ab']:.1%}, A->B->A {r['kept_aba']:.1%} (goal >= 97%; "
                        f"the real thin digits {r['kept_a']:.1%}, thick {r['kept_b']:.1%})"))
    r = last("pix2pix")
    if r:
        out.append(line(r["label_accuracy"] >= r["label_accuracy_real"] - 0.05,
                        f"pix2pix keeps the item's class: {r['label_accuracy']:.1%} of outputs against "
                        f"{r['label_accuracy_real']:.1%} of the real items (here: within 5 points)"))
    for name in [k for k in sc if k.startswith("cgan_mnist_plus_s")]:
        r = last(name)
        worst = min(r[f"label_accuracy_{c}"] for c in range(10))
        x = r["fid"] / r["fid_floor"]
        out.append(line(worst >= 0.97 and x <= 2, f"{name}: worst label {worst:.1%} (goal >= 97%), Frechet distance "
                                                  f"{x:.2f}x the floor (goal <= 2x)"))
    return out or ["- nothing scored yet"]


def _cgan_row(label, d, r):
    per = [r.get(f"label_accuracy_{c}") for c in range(10)]
    worst = min((p, c) for c, p in enumerate(per)) if None not in per else None
    head = f"| {label} | {'' if d is None else d['epochs'][0]} | {'' if d is None else _mins(d['wall_s'])} | " \
           f"{'' if d is None else _mins(d['cpu_s'])} | "
    return head + (f"{r['label_accuracy']:.1%} | {worst[0]:.0%} (label {worst[1]}) | " if worst else "- | - | ") + \
        f"{_f(r['fid'])} | {_f(r['fid_floor'])} | {_f(r['fid'] / r['fid_floor'], '{:.2f}')} | " \
        f"{_f(r.get('pairwise_distance_ratio_min'))} | {_f(r['precision'])} | {_f(r['recall'])} |"


def _winners(sc, rows):
    """One sentence per budget index: which system has the lowest Frechet distance."""
    out = []
    n = max(len(sc[s.name]) for s in rows)
    for i in range(n):
        got = [(sc[s.name][i]["scores"]["fid"], s.label, sc[s.name][i]["wall_s"]) for s in rows
               if len(sc[s.name]) > i and not s.label.startswith("(")]
        if got:
            fid, label, wall = min(got)
            out.append(f"- budget {i + 1}: lowest Frechet distance **{label}** ({fid:.3f}, {_mins(wall)} min of training)")
    return out


def _plot(sc, rows, real, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    for s in rows:
        pts = [(d["wall_s"] / 60, d["scores"]["fid"] / d["scores"]["fid_floor"]) for d in sc[s.name]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s.label)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training wall time (min)")
    ax.set_ylabel("Frechet distance / floor (lower is better)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def select(T, S, only):
    """The systems matching `only` and the trainings they (transitively) need, in plan order."""
    if not only:
        return T, S
    systems = [s for s in S if any(fnmatch.fnmatch(s.name, o) for o in only)]
    wanted = {t for s in systems for t in s.trainings} | {t for t in T if any(fnmatch.fnmatch(t, o) for o in only)}
    if not wanted:
        sys.exit(f"bench/zoo.py: --only {' '.join(only)} matches nothing; systems: {', '.join(s.name for s in S)}")
    todo = list(wanted)
    while todo:
        for n in T[todo.pop()].needs:
            if n not in wanted:
                wanted.add(n)
                todo.append(n)
    return {k: v for k, v in T.items() if k in wanted}, systems


def _work(study, T, S):
    """Train `T` in order, scoring the systems of `S` as their snapshots come; the names that failed."""
    failed = []
    for name, t in T.items():
        if study.stop:
            break
        if any(n in failed for n in t.needs):
            failed.append(name)
            continue
        forget_if_lost(study, t, S, T)
        ours = [s for s in S if all(x in T for x in s.trainings)]
        if not train(study, t, lambda: score_all(study, ours, T)):
            failed.append(name)
        score_all(study, ours, T)
    return failed


def _in_lanes(study, T, S, pids):
    """--quick on several cores: one forked process per dataset runs `_work` on that dataset's
    trainings and systems (every training needs only its own dataset's), the lanes side by side."""
    failed = []
    for ds in DATA:
        lane_t = {k: t for k, t in T.items() if t.dataset == ds}
        lane_s = [s for s in S if all(x in lane_t for x in s.trainings)]
        if not lane_t:
            continue
        result = study.out / f".lane-{ds}.json"
        result.unlink(missing_ok=True)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:   # the lane: its own process, its own NNabla parameters and scorer
            code = 1
            try:
                _write_json(result, _work(study, lane_t, lane_s))
                code = 0
            except BaseException:  # noqa: BLE001 - said here: os._exit below would swallow it
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                os._exit(code)
        pids.append(pid)
    for pid in list(pids):
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    pids.clear()
    for ds in DATA:
        result = study.out / f".lane-{ds}.json"
        if any(t.dataset == ds for t in T.values()):
            failed += json.loads(result.read_text()) if result.is_file() else [f"lane {ds}"]
            result.unlink(missing_ok=True)
    return failed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="the runs, snapshots and tiles (default runs/zoo)")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "gan_zoo.md"))
    ap.add_argument("--record", help="the study's record: study.json, state/, scores/ (default: docs/zoo/record, "
                                     "committed, for the full study in runs/zoo; OUT for --quick or another --out)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME")
    ap.add_argument("--budget-scale", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--num", type=int, help="images per label for the scores (default 100; 2 with --quick)")
    ap.add_argument("--report-only", action="store_true", help="write the doc from what is done; train nothing")
    args = ap.parse_args(argv)
    if args.budget_scale <= 0:
        ap.error("--budget-scale must be positive")
    num = args.num or (2 if args.quick else 100)
    import logging  # as nncgan's cli: set before NNabla's import, which would log INFO to stderr
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    record = args.record or (None if args.out or args.quick else ROOT / "docs" / "zoo" / "record")
    study = Study(args.out or ROOT / "runs" / "zoo", args.quick, args.budget_scale, num,
                  log=lambda m: print(m, flush=True), record=record)
    if args.quick:  # here, not in Study (which tests make inside pytest): settings of this process
        study.blas = _tune_for_tiny_work()
    from nncgan import context
    context.select("cpu", log=lambda *a: None)
    T_all, S_all = plan(args.budget_scale, args.quick)
    T, S = select(T_all, S_all, args.only)

    lanes = []   # --quick: the pids of the forked lanes

    def on_signal(signum, frame):
        study.stop = True
        if study.child is not None and study.child.poll() is None:
            study.child.send_signal(signum)  # nncgan train saves or keeps its last epoch, then exits
        for pid in lanes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    t0 = time.time()
    failed = []
    if args.report_only:
        pass
    elif study.quick and len(os.sched_getaffinity(0)) > 1:
        failed = _in_lanes(study, T, S, lanes)
    else:
        failed = _work(study, T, S)
    doc = write_doc(study, S_all, T_all, args.doc, argv)   # the whole study's tables, whatever --only ran
    study.log(f"zoo: {'stopped' if study.stop else 'done'} in {time.time() - t0:.0f} s; doc: {doc}"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 130 if study.stop else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
