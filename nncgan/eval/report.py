"""`nncgan eval RUN`: draw images from a run for every label, score them, print a table, write JSON.

RUN/eval/eval.json is one flat object (documented in docs/eval.md): what was evaluated (run, epoch,
samples, seed, classifier run) and every number of `score.score`.
"""
import json
import time
from pathlib import Path

import numpy as np

from .. import runs
from ..errors import RunError
from ..limits import memory_error
from . import classifier as C
from .score import floor_text, reference, score

EVAL_DIR = "eval"
EVAL_JSON = "eval.json"
SOURCES = ("generator", "test", "repeat")  # what is scored: the run's images, or real test images (checks)


def load_classifier(dataset, explicit=None, runs_dirs=("runs",)):
    run = Path(explicit) if explicit else C.find(dataset, runs_dirs)
    clf = C.Classifier(run)
    if clf.dataset != dataset:
        raise RunError(f"the classifier in {run} was trained on '{clf.dataset}', but the run's "
                       f"dataset is '{dataset}'; train one with: {C.train_command(dataset) or 'a classifier graph'}")
    return clf


def generated(run, num, seed, no_ema=False):
    """(images, labels or None, epoch, used_ema, graph): `num` images per label from the run's last epoch."""
    from ..sampling import data_inputs
    run = runs.Run(run)
    graph = run.graph()
    if data_inputs(graph):
        raise RunError(f"{run} is a run of '{graph.name}', whose executor reads dataset images: it draws "
                       f"none, so there is nothing to evaluate (nncgan eval scores a GAN run)")
    run.latest_epoch()  # no saved epoch: said before the memory check
    too_many = memory_error(graph.networks[graph.executor.network], num, "--num")
    if too_many:
        raise RunError(too_many)
    loaded = run.sampler(num, no_ema=no_ema)
    images, labels = draw(loaded.sampler, num, np.random.RandomState(seed))
    return images, labels, loaded.epoch, loaded.used_ema, graph


def draw(sampler, num, rng):
    """`num` images per label (10 x `num` for an unconditional executor) from a built Sampler of size num."""
    if not sampler.conditional:
        return np.concatenate([sampler.draw(None, rng) for _ in range(10)]), None
    labels = np.repeat(np.arange(sampler.classes), num)
    return np.concatenate([sampler.draw(np.full(num, c), rng) for c in range(sampler.classes)]), labels


def real_as_generated(ref, num, seed, source):
    """Real test images fed in as if generated: `num` per label ('test'), or one of them repeated
    ('repeat', a deliberately collapsed set) under every label."""
    rng = np.random.RandomState(seed)
    if source == "test":  # at most as many as the test split holds of a label
        images = [ref.test_images_of(c, num, rng) for c in range(ref.classes)]
        return np.concatenate(images), np.repeat(np.arange(ref.classes), [len(i) for i in images])
    labels = np.repeat(np.arange(ref.classes), num)
    return np.repeat(ref.test_images_of(0, 1, rng), len(labels), axis=0), labels


def evaluate(run=None, num=100, seed=0, classifier=None, runs_dirs=("runs",), source="generator",
             dataset=None, data_dir=None, no_ema=False):
    """Every number for `run`'s last epoch (source 'generator'), or for real test images fed in as if
    generated ('test', 'repeat'; `run` or `dataset` says which data), as the flat dict of eval.json."""
    start = time.perf_counter()
    head = {"run": None, "graph": None, "source": source, "seed": seed, "epoch": None, "ema": None}
    if run is not None:
        run = runs.Run(run)
        info = run.info
        head.update(run=str(run), graph=info.get("name"))
        runs_dirs = list(runs_dirs) + [str(run.path.parent)]
        if source == "generator":
            images, labels, epoch, used_ema, graph = generated(run, num, seed, no_ema)
            head.update(epoch=epoch, ema=used_ema)
        else:
            graph = run.graph()
        dataset = graph.dataset.name
    elif source == "generator" or dataset is None:
        raise RunError("nothing to evaluate: give a run (or, with --images-from test|repeat, a --dataset)")
    clf = load_classifier(dataset, classifier, runs_dirs)
    ref = reference(clf, num, data_dir)
    if source != "generator":
        images, labels = real_as_generated(ref, num, seed, source)
    head.update(dataset=dataset, samples_per_label=num if labels is not None else None,
                classifier=str(clf.run.resolve()), classifier_epoch=clf.epoch,
                classifier_test_accuracy=clf.test_accuracy,
                classifier_test_images=C.read_test_accuracy(clf.run, clf.epoch, with_count=True)[1])
    result = {**head, **score(clf, ref, images, labels)}
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return result


def json_path(result):
    """RUN/eval/eval.json for a run's own images; eval-test.json / eval-repeat.json for the checks
    on real images (in the run, or else in the classifier's run), so they never replace it."""
    folder = Path(result["run"] or result["classifier"]) / EVAL_DIR
    return folder / (EVAL_JSON if result["source"] == "generator" else f"eval-{result['source']}.json")


def write_json(path, result):
    from .. import safeio
    return safeio.write_text(path, json.dumps(result, indent=1) + "\n")


def _pct(v):
    return "-" if v is None else f"{v:.1%}"


def _num(v):
    return "-" if v is None else f"{v:.3f}"


def table(r):
    """The result as a few readable lines."""
    what = {"generator": f"epoch {r['epoch']}{' (EMA parameters)' if r.get('ema') else ''}",
            "test": "real test images fed in as if generated",
            "repeat": "one real test image repeated (a deliberately collapsed set)"}[r["source"]]
    acc = r["classifier_test_accuracy"]
    lines = [f"{r['run'] or r['dataset']}: {what}; {r['samples']} images"
             + (f", {r['samples_per_label']} per label" if r.get("samples_per_label") else "") + f", seed {r['seed']}",
             f"classifier: {r['classifier']} (epoch {r['classifier_epoch']}"
             + (f", test accuracy {acc:.2%}" if acc is not None else "")
             + (f" on {r['classifier_test_images']} test images)" if r.get("classifier_test_images") else ")")]
    K = sum(1 for k in r if k.startswith("predicted_fraction_"))
    if "label_accuracy" in r:
        head = "label      " + " ".join(f"{c:>6}" for c in range(K)) + "     all"
        lines += ["", head,
                  "read as    " + " ".join(f"{_pct(r[f'label_accuracy_{c}']):>6}" for c in range(K))
                  + f"  {_pct(r['label_accuracy']):>6}",
                  "diversity  " + " ".join(f"{_num(r.get(f'pairwise_distance_ratio_{c}')):>6}" for c in range(K))
                  + "   (within-label feature distance / real images')"]
    lines += ["",
              f"Frechet distance (classifier features)  {r['fid']:.3f}   {floor_text(r)}",
              f"class histogram entropy                 {r['class_entropy']:.3f} of {r['class_entropy_max']:.3f} nats"
              f" ({r['class_entropy_ratio']:.0%})",
              "predicted classes                       " + " ".join(f"{c}:{r[f'predicted_fraction_{c}']:.0%}" for c in range(K)),
              f"mean pairwise feature distance          {_num(r['pairwise_distance'])}   real: {_num(r['pairwise_distance_real'])}",
              f"precision / recall (k={r['pr_k']})              {r['precision']:.3f} / {r['recall']:.3f}"]
    if r["collapse"]:
        lines += ["", "MODE COLLAPSE:"] + [f"  {m}" for m in r["collapse_reasons"]]
    else:
        lines += ["", "no collapse detected"]
    return "\n".join(lines)


def is_classifier_run(run):
    return runs.Run(run).kind == runs.CLASSIFIER


def classifier_test(run, data_dir=None):
    """A classifier run's accuracy on its dataset's test split, saved as RUN/eval/classifier.json."""
    clf = C.Classifier(run)
    images, labels = C.test_split(clf.dataset, data_dir)
    acc = C.test_accuracy(clf, images, labels)
    C.write_test_accuracy(run, clf.epoch, acc, len(labels))
    return (f"{run}: classifier of {clf.dataset}, epoch {clf.epoch}: test accuracy {acc:.2%} on "
            f"{len(labels)} test images (saved in {Path(run) / EVAL_DIR / C.INFO})")


def run_eval(run=None, *, runs_dir="runs", context="auto", num=100, seed=0, classifier=None, source="generator",
             dataset=None, data_dir=None, no_ema=False, say=print):
    """`nncgan eval`: score run `run` (default: the latest GAN run, said) and write its eval.json;
    a classifier run is measured on its test split instead. Returns the JSON file written."""
    from .. import context as ctx
    ctx.select(context)
    if run is None and (source == "generator" or dataset is None):
        run = runs.chosen(None, runs_dir, "evaluating", kinds=(runs.GAN,), how="RUN", say=say)
    if run is not None and source == "generator" and is_classifier_run(run):
        say(classifier_test(run, data_dir))  # a classifier run: its test accuracy
        return Path(run) / EVAL_DIR / C.INFO
    result = evaluate(run, num=num, seed=seed, classifier=classifier, runs_dirs=[runs_dir], source=source,
                      dataset=dataset, data_dir=data_dir, no_ema=no_ema)
    say(table(result))
    path = write_json(json_path(result), result)
    say(f"nncgan: wrote {path}")
    return path
