"""k-NN precision/recall (Kynkaanniemi et al. 2019) on hand-made points: each sample's manifold
radius is the distance to its k-th nearest *other* sample, so k and k+1 give different answers."""
import numpy as np
import pytest

from nncgan.eval import metrics as M

LINE = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])


def brute_radii(points, k):
    """k-th smallest distance to another point, by sorting, in plain Python."""
    out = []
    for i, p in enumerate(points):
        d = sorted(float(np.linalg.norm(p - q)) for j, q in enumerate(points) if j != i)
        out.append(d[min(k, len(d)) - 1])
    return out


def test_radius_is_the_kth_other_neighbour():
    # distances on the line: from 0: 1 3 6 10; from 1: 1 2 5 9; from 3: 2 3 3 7; from 6: 3 4 5 6; from 10: 4 7 9 10
    assert M._radii(LINE, 1).tolist() == [1, 1, 2, 3, 4]
    assert M._radii(LINE, 3).tolist() == [6, 5, 3, 5, 9]
    assert M._radii(LINE, 4).tolist() == [10, 9, 7, 6, 10]
    assert M._radii(LINE, 9).tolist() == [10, 9, 7, 6, 10]   # k beyond the others: the farthest


@pytest.mark.parametrize("k, fakes, precision", [
    # balls k=1: [-1,1] [0,2] [1,5] [3,9] [6,14]; with the 2nd neighbour they would reach -3 and 16
    (1, [[14.5], [-2.5], [4.6]], 1 / 3),
    # balls k=3: [-6,6] [-4,6] [0,6] [1,11] [1,19]; with the 4th neighbour they would reach 20
    (3, [[-5.0], [19.5], [20.5]], 1 / 3),
    (3, [[19.0], [-6.0], [11.0]], 1.0),                    # on the edges: inside (<=)
])
def test_precision_and_recall_on_a_line(k, fakes, precision):
    fakes = np.array(fakes)
    p, _ = M.precision_recall(LINE, fakes, k=k)
    assert p == pytest.approx(precision)
    _, r = M.precision_recall(fakes, LINE, k=k)            # the same balls, roles swapped
    assert r == pytest.approx(precision)


def test_default_k_against_brute_force():
    rng = np.random.RandomState(0)
    real, fake = rng.randn(40, 3), rng.randn(30, 3) * 1.5 + 0.5
    k = M.PR_K
    np.testing.assert_allclose(M._radii(real, k), brute_radii(real, k), rtol=1e-9)
    r_real, r_fake = brute_radii(real, k), brute_radii(fake, k)
    prec = np.mean([any(np.linalg.norm(f - x) <= r for x, r in zip(real, r_real)) for f in fake])
    rec = np.mean([any(np.linalg.norm(x - f) <= r for f, r in zip(fake, r_fake)) for x in real])
    assert M.precision_recall(real, fake) == (pytest.approx(prec), pytest.approx(rec))
    assert 0 < prec < 1 and 0 < rec < 1   # the case separates the radii: neither all in nor all out
