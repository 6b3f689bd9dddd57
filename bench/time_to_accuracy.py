"""Time from `nncgan train` to a generator whose samples reach 95% label accuracy.

A measuring tool, not a test. `train` runs `nncgan train` on a graph and copies every epoch's
checkpoint as soon as it is saved (a run keeps only its last epochs), recording the wall time
and the training process' CPU time (user+sys, from /proc) at that moment. `score` assembles a
run from each copied epoch, draws 100 images per label with the executor network (the same
latents as `nncgan infer --seed 0`), reads them with bench/label_accuracy.py's independent
classifier (plain argmax, as `score-dir --min-conf 0`) and finds the first epoch whose mean
accuracy over the labels reaches the threshold.

    python bench/time_to_accuracy.py train graphs/cgan_mnist.yaml --out DIR [--epochs 3] [--data-dir D]
    python bench/time_to_accuracy.py score DIR --label "after" [--threshold 0.95] [-o result.json]
    python bench/time_to_accuracy.py score EPOCHS_DIR --graph G.yaml --times-txt times.txt \\
        [--time-v train.out] --label "before"     (a run watched by a shell loop: `start T` /
                                                   `epoch_000N T` lines, /usr/bin/time -v output)
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid):
    """utime + stime of a live process and its waited-for children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK


def train(args):
    out = Path(args.out).resolve()
    (out / "epochs").mkdir(parents=True, exist_ok=True)
    run = out / "run"
    cmd = [sys.executable, "-m", "nncgan.cli", "train", str(Path(args.graph).resolve()), "--epochs", str(args.epochs),
           "--out", str(run), "--quiet", "--context", "cpu"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)))
    record = {"command": " ".join(["nncgan"] + cmd[3:]), "pythonpath": env["PYTHONPATH"],
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epochs": []}
    t0 = time.time()
    with open(out / "train.log", "w") as logf:
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=out, env=env)  # cwd: not the checkout, so PYTHONPATH decides
        seen = set()
        while True:
            done = p.poll() is not None
            for d in sorted((run / "checkpoints").glob("epoch_*")) if (run / "checkpoints").is_dir() else []:
                if d.name in seen or not (d / "MANIFEST.json").exists():
                    continue
                wall, cpu = time.time() - t0, (_cpu_s(p.pid) if not done else None)
                shutil.copytree(d, out / "epochs" / d.name)
                seen.add(d.name)
                record["epochs"].append({"epoch": int(d.name.split("_")[1]), "wall_s": wall, "cpu_s": cpu,
                                         "cpu_note": "the training process, measured"})
                (out / "times.json").write_text(json.dumps(record, indent=1))
            if done:
                break
            time.sleep(2)
    shutil.copy(run / "graph.yaml", out / "graph.yaml")
    record["exit"] = p.returncode
    record["total_wall_s"] = time.time() - t0
    (out / "times.json").write_text(json.dumps(record, indent=1))
    return p.returncode


def _baseline_times(times_txt, time_v):
    """Epoch times of a run watched by the lead's shell loop (copy time: up to ~15 s late)."""
    lines = [ln.split() for ln in Path(times_txt).read_text().splitlines() if ln.strip()]
    start = int(lines[0][1])
    epochs = [{"epoch": int(n.split("_")[1]), "wall_s": int(t) - start} for n, t in lines[1:] if n.startswith("epoch_")]
    cpu_total, n = None, max((e["epoch"] for e in epochs), default=0)
    if time_v and Path(time_v).exists():
        text = Path(time_v).read_text()
        u = re.search(r"User time \(seconds\): ([\d.]+)", text)
        s = re.search(r"System time \(seconds\): ([\d.]+)", text)
        if u and s:
            cpu_total = float(u.group(1)) + float(s.group(1))
        trained = [int(m) for m in re.findall(r"^epoch (\d+):", text, re.M)]  # the epoch lines of nncgan train
        n = max(trained + [n])
    for e in epochs:  # the epochs do the same work: the measured total CPU time, pro rata
        e["cpu_s"] = cpu_total * e["epoch"] / n if cpu_total else None
        e["cpu_note"] = f"total CPU of {n} epochs, pro rata" if cpu_total else None
    return {"epochs": epochs}


def _draw(graph_path, folder, per_label, seed):
    """(10, per_label, 1, 28, 28) images of each label from one saved epoch."""
    import nnabla as nn
    from nncgan import context, runs
    from nncgan.graph.parse import parse_graph
    context.select("cpu", log=lambda *a: None)
    sampler = runs.load_epoch(parse_graph(graph_path), per_label, folder, no_ema=True).sampler
    rng = np.random.RandomState(seed)
    images = np.stack([sampler.draw(np.full(per_label, d), rng) for d in range(10)])
    nn.clear_parameters()
    return images


def score(args):
    sys.path.insert(0, str(HERE))
    import nnabla as nn
    import label_accuracy as la
    src = Path(args.dir)
    epochs_dir = src / "epochs" if (src / "epochs").is_dir() else src
    graph = Path(args.graph) if args.graph else src / "graph.yaml"
    if args.times_txt:
        record = _baseline_times(args.times_txt, args.time_v)
    else:
        record = json.loads((src / "times.json").read_text())
    drawn = {e["epoch"]: _draw(graph, epochs_dir / f"epoch_{e['epoch']:04d}", args.per_label, args.seed)
             for e in record["epochs"]}
    la.load_model(args.model)
    result = {"label": args.label, "threshold": args.threshold, "per_label": args.per_label,
              "first_epoch_reaching": None, "epochs": []}
    for e in record["epochs"]:
        acc = [float((la.predict(drawn[e["epoch"]][d]).argmax(1) == d).mean()) for d in range(10)]
        row = dict(e, accuracy=acc, accuracy_mean=float(np.mean(acc)), accuracy_min=min(acc))
        result["epochs"].append(row)
        print(f"epoch {e['epoch']}: {row['accuracy_mean']:.1%} mean, {row['accuracy_min']:.1%} lowest  "
              f"(wall {e['wall_s'] / 60:.1f} min" + (f", CPU {e['cpu_s'] / 60:.1f} min" if e.get("cpu_s") else "") + ")")
        if result["first_epoch_reaching"] is None and row["accuracy_mean"] >= args.threshold:
            result["first_epoch_reaching"] = e["epoch"]
    nn.clear_parameters()
    text = json.dumps(result, indent=1)
    if args.output:
        Path(args.output).write_text(text)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("graph")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--data-dir")
    s = sub.add_parser("score")
    s.add_argument("dir", help="the --out of `train`, or a folder of epoch_NNNN copies (with --times-txt)")
    s.add_argument("--label", required=True, help="what the result is called in the table, e.g. 'after'")
    s.add_argument("--graph", help="the graph the epochs were trained from (default DIR/graph.yaml)")
    s.add_argument("--times-txt")
    s.add_argument("--time-v", help="/usr/bin/time -v output of that run (its total CPU time)")
    s.add_argument("--threshold", type=float, default=0.95)
    s.add_argument("--per-label", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--model", default=str(Path.home() / ".cache" / "nncgan" / "label_classifier.h5"))
    s.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    return train(args) if args.cmd == "train" else score(args)


if __name__ == "__main__":
    sys.exit(main())
