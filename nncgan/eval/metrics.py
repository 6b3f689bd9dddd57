"""The numbers of `nncgan eval`, on a classifier's probabilities and features (NumPy/SciPy only).

- label accuracy: the fraction of images the classifier reads as the label they were drawn for;
- Frechet distance between Gaussians fitted to two feature sets (FID's formula, Heusel et al. 2017,
  on the domain classifier's features instead of Inception's);
- entropy of the predicted-class histogram (log K when every class is equally present);
- mean pairwise feature distance within a label (0 when one image is repeated);
- precision and recall of k-NN manifolds in feature space (Kynkaanniemi et al. 2019).
"""
import numpy as np

PR_K = 3                      # neighbours that set each sample's manifold radius
COLLAPSE_ENTROPY_RATIO = 0.5  # histogram entropy below this fraction of log K: the classes collapsed
COLLAPSE_DIVERSITY = 0.2      # within-label distance below this fraction of the real one: a label collapsed


def label_accuracy(probs, labels, classes):
    """(overall, [per label or None where the label was not asked for])."""
    pred = probs.argmax(1)
    labels = np.asarray(labels).reshape(-1)
    per = [float((pred[labels == c] == c).mean()) if (labels == c).any() else None for c in range(classes)]
    return float((pred == labels).mean()), per


def class_histogram(probs, classes):
    """The fraction of images predicted as each class."""
    return np.bincount(probs.argmax(1), minlength=classes)[:classes] / len(probs)


def entropy(hist):
    """Entropy (nats) of a histogram of fractions."""
    p = hist[hist > 0]
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: never -0.0


def gaussian(features):
    return features.mean(0), np.cov(features, rowvar=False)


def _sqrt_psd(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a, b):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) of Gaussians a = (mu1, S1), b = (mu2, S2).

    Tr (S1 S2)^1/2 is taken as the sum of the square roots of the eigenvalues of the symmetric
    S1^1/2 S2 S1^1/2 (the same eigenvalues), which stays finite for singular covariances (a
    collapsed set) where a general matrix square root does not."""
    (mu1, s1), (mu2, s2) = a, b
    r = _sqrt_psd(s1)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


def _sq_dists(a, b, chunk=2048):
    """Squared Euclidean distances (len(a), len(b)), in chunks of rows."""
    bb = (b * b).sum(1)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        out[i:i + chunk] = np.maximum((x * x).sum(1)[:, None] + bb[None, :] - 2 * x @ b.T, 0)
    return out


def mean_pairwise_distance(features):
    """Mean Euclidean distance over all pairs of distinct rows (0 for fewer than two)."""
    n = len(features)
    if n < 2:
        return 0.0
    d = np.sqrt(_sq_dists(features, features))
    return float(d[~np.eye(n, dtype=bool)].mean())


def _radii(features, k):
    """Distance from each row to its k-th nearest other row."""
    d = _sq_dists(features, features)
    np.fill_diagonal(d, np.inf)
    k = min(k, len(features) - 1)
    return np.sqrt(np.partition(d, k - 1, axis=1)[:, k - 1])


def _coverage(manifold, radii, queries):
    """Fraction of `queries` inside at least one ball (row of `manifold`, radius `radii`)."""
    d = np.sqrt(_sq_dists(queries, manifold))
    return float((d <= radii[None, :]).any(1).mean())


def precision_recall(real, fake, k=PR_K):
    """Precision: fake samples inside the real manifold; recall: real samples inside the fake one."""
    return _coverage(real, _radii(real, k), fake), _coverage(fake, _radii(fake, k), real)
