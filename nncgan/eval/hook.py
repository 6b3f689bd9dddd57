"""Scores after each training epoch, into the run's monitors (`nncgan train`, off with --no-eval).

A GAN run whose dataset has a trained classifier: the epoch's images (SAMPLES_PER_LABEL per label,
drawn from fixed latents) are scored as `nncgan eval` scores them, each number appended to
monitor/eval-<name>.series.txt (index = epoch), and a collapse is warned about. A classifier
graph's own run: its accuracy on the test split, into monitor/eval-test_accuracy.series.txt and
eval/classifier.json (what `nncgan eval` prints beside the classifier).
"""
from pathlib import Path

import numpy as np

from ..errors import NncganError
from ..limits import derived_seed
from ..train.progress import eval_series_path as series_path, resumed_series
from . import classifier as C

SAMPLES_PER_LABEL = 100
GAN_SERIES = ("label_accuracy", "fid", "class_entropy_ratio", "pairwise_distance_ratio_min", "precision", "recall")


class _Series:
    def __init__(self, run, names, resume_epoch):
        # the points up to the epoch resumed from; later ones are dropped
        self.series = {n: resumed_series(series_path(run, n), f"eval-{n}", 1, resume_epoch) for n in names}

    def add(self, epoch, values):
        for n, s in self.series.items():
            if values.get(n) is not None:
                s.add(epoch, values[n])


class _Scorer:
    """Calling it scores an epoch; an error (unreadable test data, ...) is reported once and
    turns the scores off rather than stopping a run whose epoch is already saved."""

    def __call__(self, epoch):
        if self.off:
            return None
        try:
            return self.score(epoch)
        except NncganError as e:
            self.off = True
            self.log(f"nncgan: per-epoch scores off after epoch {epoch}: {e}")
            return None


class GanEpochEval(_Scorer):
    off = False

    def __init__(self, run, graph, sampler, clf, data_dir, log, resume_epoch):
        self.run, self.graph, self.sampler, self.clf = run, graph, sampler, clf
        self.data_dir, self.log, self.ref = data_dir, log, None
        names = [n for n in GAN_SERIES if n != "label_accuracy" or sampler.conditional]
        self.series = _Series(run, names, resume_epoch)

    def score(self, epoch):
        from .report import draw
        from .score import floor_text, reference, score
        if self.ref is None:  # real statistics once, at the first epoch's end
            self.ref = reference(self.clf, SAMPLES_PER_LABEL, self.data_dir)
        rng = np.random.RandomState(derived_seed(self.graph.config.seed, 104729))  # the same latents every epoch
        images, labels = [], []
        n = self.sampler.n
        for _ in range(-(-SAMPLES_PER_LABEL // n)):
            im, lab = draw(self.sampler, n, rng)
            images.append(im)
            labels.append(lab)
        labels = None if labels[0] is None else np.concatenate(labels)
        r = score(self.clf, self.ref, np.concatenate(images), labels)
        self.series.add(epoch, r)
        acc = f"label accuracy {r['label_accuracy']:.1%}, " if "label_accuracy" in r else ""
        self.log(f"epoch {epoch} eval: {acc}Frechet distance {r['fid']:.3f} ({floor_text(r)}), "
                 f"class entropy {r['class_entropy_ratio']:.0%} of max, precision {r['precision']:.2f}, "
                 f"recall {r['recall']:.2f}")
        for m in r["collapse_reasons"]:
            self.log(f"epoch {epoch}: warning: mode collapse: {m}")
        return r


class ClassifierEpochEval(_Scorer):
    off = False

    def __init__(self, run, graph, data_dir, log, resume_epoch):
        self.run, self.log = run, log
        self.clf = C.Classifier.live(graph)
        self.images, self.labels = C.test_split(graph.dataset, data_dir)
        self.series = _Series(run, ["test_accuracy"], resume_epoch)

    def score(self, epoch):
        acc = C.test_accuracy(self.clf, self.images, self.labels)
        self.series.add(epoch, {"test_accuracy": acc})
        C.write_test_accuracy(self.run, epoch, acc, len(self.labels))
        self.log(f"epoch {epoch}: test accuracy {acc:.2%} ({len(self.labels)} test images)")
        return {"test_accuracy": acc}


def for_training(graph, run, sampler, data_dir=None, log=print, resume_epoch=0, runs_dirs=()):
    """The per-epoch scorer of this training run, or None (with a one-line note) when none applies.

    The classifier is looked for beside the run (its runs folder) and in $NNCGAN_CLASSIFIER_RUNS."""
    try:
        if C.is_classifier(graph):
            return ClassifierEpochEval(run, graph, data_dir, log, resume_epoch)
        if sampler is None or graph.dataset.classifier is None:
            return None
        try:
            clf = C.Classifier(C.find(graph.dataset.name, list(runs_dirs) + [str(Path(run).parent)]))
        except NncganError as e:
            log(f"nncgan: per-epoch scores off: {e}")
            return None
        if clf.image_shape != tuple(sampler.output.shape[1:]):
            log(f"nncgan: per-epoch scores off: the classifier in {clf.run} reads images of shape "
                f"{clf.image_shape}, the executor draws {tuple(sampler.output.shape[1:])}")
            return None
        log(f"nncgan: scoring each epoch's samples with the classifier in {clf.run}")
        return GanEpochEval(run, graph, sampler, clf, data_dir, log, resume_epoch)
    except NncganError as e:
        log(f"nncgan: per-epoch scores off: {e}")
        return None
