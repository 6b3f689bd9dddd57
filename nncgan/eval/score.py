"""Score a set of images against real data: every number of `nncgan eval`, as one flat dict.

The real side (`Reference`) is computed once per classifier: the Gaussian of the test set's
features, a sample of training images as large as the generated set (the precision/recall
reference and the real-vs-real floor of the Frechet distance: real training images scored exactly
as generated ones are), and the within-label distances of real images.
"""
import numpy as np

from ..data.spec import resolve as resolve_dataset
from ..images import as_fed
from . import metrics as M


def _images(arrays, info):
    return as_fed(arrays["x"], "x" in info.images)


def _labels(arrays):
    return np.asarray(arrays["y"]).reshape(len(arrays["y"]), -1)[:, 0].astype(int)


class Reference:
    """Real data under classifier `clf`: test-set Gaussian, `n` training images, the floor."""

    def __init__(self, clf, n, seed=0, data_dir=None, log=print, test_limit=None):
        """`test_limit`: only the first that many test images (a smoke test's cheaper Gaussian)."""
        info = getattr(clf, "spec", None) or resolve_dataset(clf.dataset)  # the classifier graph's dataset
        self.classes = clf.classes
        test = info.load("test", data_dir, log=log)
        if test_limit is not None:
            test = {k: v[:test_limit] for k, v in test.items()}
        self.test_images, self.test_labels = _images(test, info), _labels(test)
        _, test_feats = clf(self.test_images)
        self.test_gaussian = M.gaussian(test_feats)
        train = info.load("train", data_dir, log=log)
        pick = np.random.RandomState(seed).choice(len(train["y"]), min(n, len(train["y"])), replace=False)
        self.real_labels = _labels({"y": np.asarray(train["y"])[pick]})
        _, self.real_features = clf(_images({"x": np.asarray(train["x"])[pick]}, info))
        self.floor = M.frechet_distance(M.gaussian(self.real_features), self.test_gaussian)
        self.real_pairwise = [M.mean_pairwise_distance(self.real_features[self.real_labels == c])
                              for c in range(self.classes)]
        self.real_pairwise_all = M.mean_pairwise_distance(self.real_features)

    def test_images_of(self, label, n, rng):
        """`n` test images of `label` (drawn without replacement), to feed in as if generated."""
        idx = np.flatnonzero(self.test_labels == label)
        return self.test_images[rng.choice(idx, min(n, len(idx)), replace=False)]


FLOOR_SEED = 0  # which training images make the floor: fixed, so eval --seed and each epoch agree


def reference(clf, per_label, data_dir=None):
    """The Reference of `per_label` images a label, picked alike by the per-epoch eval and `nncgan eval`."""
    return Reference(clf, per_label * clf.classes, FLOOR_SEED, data_dir, log=lambda *a: None)


def floor_text(r):
    """The Frechet floor with what it was measured on (a different data size gives another floor)."""
    return (f"floor {r['fid_floor']:.3f}: {r['fid_floor_train_images']} real train vs "
            f"{r['fid_floor_test_images']} test images")


def score(clf, ref, images, labels=None):
    """The numbers for `images` (N, C, H, W) in [0, 1], drawn for `labels` (None: unconditional)."""
    probs, feats = clf(images)
    K = clf.classes
    out = {"samples": int(len(images))}
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        acc, per = M.label_accuracy(probs, labels, K)
        out["label_accuracy"] = acc
        out.update({f"label_accuracy_{c}": per[c] for c in range(K)})
    out["fid"] = M.frechet_distance(M.gaussian(feats), ref.test_gaussian)
    out["fid_floor"] = ref.floor
    out["fid_floor_train_images"], out["fid_floor_test_images"] = len(ref.real_features), len(ref.test_images)
    hist = M.class_histogram(probs, K)
    out.update({f"predicted_fraction_{c}": float(hist[c]) for c in range(K)})
    out["class_entropy"] = M.entropy(hist)
    out["class_entropy_max"] = float(np.log(K))
    out["class_entropy_ratio"] = out["class_entropy"] / out["class_entropy_max"]
    # Within-label spread, as a fraction of real images' spread for the same label.
    groups = range(K) if labels is not None else [None]
    ratios = []
    for c in groups:
        mine = feats if c is None else feats[labels == c]
        if len(mine) < 2:
            continue
        real = ref.real_pairwise_all if c is None else ref.real_pairwise[c]
        d = M.mean_pairwise_distance(mine)
        ratio = d / real if real > 0 else None
        if c is not None:
            out[f"pairwise_distance_{c}"] = d
            out[f"pairwise_distance_ratio_{c}"] = ratio
        ratios.append((c, d, ratio))
    out["pairwise_distance"] = float(np.mean([d for _, d, _ in ratios])) if ratios else None
    out["pairwise_distance_real"] = (ref.real_pairwise_all if labels is None else
                                     float(np.mean([ref.real_pairwise[c] for c, _, _ in ratios])) if ratios else None)
    valid = [r for _, _, r in ratios if r is not None]
    out["pairwise_distance_ratio_min"] = min(valid) if valid else None
    out["precision"], out["recall"] = M.precision_recall(ref.real_features, feats)
    out["pr_k"] = M.PR_K
    reasons = []
    if out["class_entropy_ratio"] < M.COLLAPSE_ENTROPY_RATIO:
        top = int(hist.argmax())
        reasons.append(f"class histogram collapsed: entropy {out['class_entropy']:.3f} of "
                       f"{out['class_entropy_max']:.3f} nats, {hist[top]:.0%} read as class {top}")
    low = [(c, d, r) for c, d, r in ratios if r is not None and r < M.COLLAPSE_DIVERSITY]
    if low:
        where = "the images" if low[0][0] is None else \
            f"label{'s' if len(low) > 1 else ''} " + ", ".join(str(c) for c, _, _ in low)
        reasons.append(f"{where} collapsed: within-label feature distance at most "
                       f"{max(r for _, _, r in low):.0%} of real images' (below {M.COLLAPSE_DIVERSITY:.0%})")
    out["collapse"] = bool(reasons)
    out["collapse_reasons"] = reasons
    return out
