"""Derived datasets (nncgan.data.derived): down-scaled pairs, edge maps, thin/thick strokes."""
import numpy as np
import pytest

from nncgan.data import derived
from nncgan.data.spec import DatasetSpec
from nncgan.data.batches import iterator, to_batch
from nncgan.errors import DataError, GraphError
from nncgan.graph import parse

from conftest import stand_in, use_small_mnist


def _digits(n=6, seed=0):
    """Synthetic uint8 (n, 1, 28, 28) images: filled rectangles of random grey levels."""
    rng = np.random.RandomState(seed)
    x = np.zeros((n, 1, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.randint(4, 10, 2)
        x[i, 0, r:r + 12, c:c + 10] = rng.randint(100, 256)
    return x, rng.randint(0, 10, (n, 1)).astype(np.float32)


@pytest.fixture
def fake_mnist(monkeypatch):
    """'mnist' as 40 synthetic images with labels 0..39 (so halves and orders can be traced)."""
    x, _ = _digits(40)
    y = np.arange(40, dtype=np.float32)[:, None]
    stand_in(monkeypatch, "mnist", lambda split, data_dir=None, log=print: {"x": x, "y": y})
    return x, y


def test_downscale_is_the_area_average_and_x_up_its_bicubic_resize(fake_mnist):
    x, y = fake_mnist
    info = DatasetSpec.of("mnist", derive={"type": "downscale", "factor": 2})
    assert info.variables == {"x": (1, 28, 28), "x_low": (1, 14, 14), "x_up": (1, 28, 28), "y": (1,)}
    a = info.load("train", log=lambda *_: None)
    assert np.array_equal(a["x"], x) and np.array_equal(a["y"], y)
    # every low-resolution pixel is the exact mean of its 2x2 block of the original
    for i in (0, 7):
        for r, c in ((0, 0), (5, 9), (13, 13), (6, 4)):
            block = x[i, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2].astype(np.float64)
            assert a["x_low"][i, 0, r, c] == pytest.approx(block.mean())
    assert a["x_up"].dtype == np.uint8 and a["x_up"].shape == (40, 1, 28, 28)
    # the bicubic resize stays close to the original where the image is flat, and is fed in [0, 1]
    batch = to_batch(("x_low", "x_up"), (a["x_low"][:2], a["x_up"][:2]), info.images)
    assert 0 <= batch["x_low"].min() and batch["x_low"].max() <= 1 and batch["x_up"].max() <= 1
    assert np.mean(np.abs(a["x_up"].astype(float) - x)) < 20


def test_downscale_factor_four_and_refused_factors(fake_mnist):
    x, _ = fake_mnist
    a = DatasetSpec.of("mnist", derive={"type": "downscale", "factor": 4}).load("train", log=lambda *_: None)
    assert a["x_low"].shape == (40, 1, 7, 7)
    assert a["x_low"][3, 0, 2, 5] == pytest.approx(x[3, 0, 8:12, 20:24].mean())
    for bad, said in (({"type": "downscale", "factor": 3}, "divide"), ({"type": "downscale", "factor": 1}, ">= 2"),
                      ({"type": "blur"}, "one of downscale, edges, strokes"),
                      ({"type": "edges", "factor": 2}, "unknown key 'factor'"), ({"type": "edges", "threshold": 1.5}, "between")):
        with pytest.raises(DataError, match=said):
            DatasetSpec.of("mnist", derive=bad)


def test_edges_are_binary_outlines_of_the_item(fake_mnist):
    x, y = fake_mnist
    a = DatasetSpec.of("mnist", derive={"type": "edges"}).load("train", log=lambda *_: None)
    assert set(a) == {"a", "b", "y"} and np.array_equal(a["b"], x)
    e = a["a"][:, 0]
    assert set(np.unique(e)) <= {0, 255}
    for i in range(5):
        inside = np.zeros((28, 28), bool)
        rows, cols = np.nonzero(x[i, 0])
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        inside[r0 + 2:r1 - 1, c0 + 2:c1 - 1] = True        # a flat interior has no gradient
        assert not e[i][inside].any()
        assert e[i][r0, c0 + 3] and e[i][r1, c0 + 3]          # the rectangle's border is an edge
        assert e[i][r0 + 5, c0] and e[i][r0 + 5, c1]
        far = np.ones((28, 28), bool)
        far[max(r0 - 1, 0):r1 + 2, max(c0 - 1, 0):c1 + 2] = False
        assert not e[i][far].any()                            # nothing away from the item
    # a higher threshold keeps fewer edge pixels
    hi = DatasetSpec.of("mnist", derive={"type": "edges", "threshold": 0.9}).load("train", log=lambda *_: None)
    assert (hi["a"] > 0).sum() < (e > 0).sum()


def test_strokes_train_split_halves_are_disjoint_and_thin_thick(fake_mnist):
    x, y = fake_mnist
    info = DatasetSpec.of("mnist", derive={"type": "strokes"})
    a = info.load("train", log=lambda *_: None)
    assert np.array_equal(a["y_a"][:, 0], np.arange(20)) and np.array_equal(a["y_b"][:, 0], np.arange(20, 40))
    assert not set(a["y_a"][:, 0]) & set(a["y_b"][:, 0])
    ink = lambda im: (im > 0).sum(axis=(1, 2, 3))  # noqa: E731
    assert (ink(a["a"]) < ink(x[:20])).all() and (ink(a["b"]) > ink(x[20:])).all()
    assert (a["a"] <= x[:20]).all() and (a["b"] >= x[20:]).all()   # erosion only removes, dilation only adds
    # b is drawn in its own order: over an epoch A and B meet in a shuffled pairing
    di, iters = iterator(a, 10, seed=3)
    batch = to_batch(di.variables, di.next(), info.images)
    assert set(batch) == {"a", "y_a", "b", "y_b"}
    assert all(int(t) < 20 for t in batch["y_a"][:, 0]) and all(int(t) >= 20 for t in batch["y_b"][:, 0])
    assert not np.array_equal(batch["y_b"][:, 0] - 20, batch["y_a"][:, 0])
    # the test split: both versions of every image, labels equal
    t = info.load("test", log=lambda *_: None)
    assert np.array_equal(t["y_a"], t["y_b"]) and len(t["a"]) == 40
    assert (t["a"] <= t["b"]).all()


def test_stroke_widths_cycle_thin_as_drawn_thick_in_both_splits(fake_mnist):
    x, y = fake_mnist
    info = DatasetSpec.of("mnist", derive={"type": "stroke_widths"})
    assert info.variables == {"x": (1, 28, 28), "y": (1,)} and info.images == ("x",)
    for split in ("train", "test"):
        a = info.load(split, log=lambda *_: None)
        assert np.array_equal(a["y"], y) and len(a["x"]) == len(x)
        assert np.array_equal(a["x"][0::3], derived.thin_strokes(x[0::3]))
        assert np.array_equal(a["x"][1::3], x[1::3])
        assert np.array_equal(a["x"][2::3], derived.thick_strokes(x[2::3]))
        ink = lambda im: (im > 0).sum(axis=(1, 2, 3))  # noqa: E731
        assert (ink(a["x"][0::3]) < ink(x[0::3])).all() and (ink(a["x"][2::3]) > ink(x[2::3])).all()


def test_real_mnist_strokes_keep_every_digit_visible(monkeypatch, mnist_dir):
    use_small_mnist(monkeypatch)["n"] = 200
    a = DatasetSpec.of("mnist", derive={"type": "strokes"}).load("train", log=lambda *_: None)
    thin_ink = (a["a"] > 127).sum(axis=(1, 2, 3))
    thick_ink = (a["b"] > 127).sum(axis=(1, 2, 3))
    # about half the ink thin, twice it thick; nearly every thin digit keeps a visible stroke
    assert np.mean(thin_ink >= 10) > 0.95 and np.median(thick_ink) > 3 * np.median(thin_ink)


def test_limit_samples_applies_before_deriving(fake_mnist):
    a = DatasetSpec.of("mnist", derive={"type": "strokes"}).load("train", log=lambda *_: None, limit=10)
    assert len(a["a"]) == len(a["b"]) == 5 and a["y_a"][:, 0].tolist() == [0, 1, 2, 3, 4]


GRAPH = """nncgan: 1
dataset: {name: mnist, derive: DERIVE}
config: {max_epoch: 1, batch_size: 4}
networks:
  N:
    layers:
      - {name: lo, type: Input, size: [1, 14, 14], dataset: x_low}
      - {name: U, type: Unpooling, kernel_shape: [2, 2]}
      - {name: C, type: Convolution, out_maps: 1, kernel_shape: [3, 3], pad: [1, 1]}
      - {name: L, type: SquaredError, target: {dataset: x}}
  R:
    layers:
      - {name: lo, type: Input, size: [1, 14, 14], dataset: x_low}
      - {name: U, type: Unpooling, kernel_shape: [2, 2]}
      - {name: C, type: Convolution, out_maps: 1, kernel_shape: [3, 3], pad: [1, 1]}
    outputs: {y: C}
optimizers:
  O: {network: N, solver: {type: Adam}}
executors:
  E: {network: R, output: y}
"""


def test_graph_names_a_derived_dataset_and_errors_name_the_line(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text(GRAPH.replace("DERIVE", "{type: downscale, factor: 2}"))
    graph = parse.parse_graph(str(g))
    assert graph.dataset.variables["x_low"] == (1, 14, 14)
    # the mapping as written, which `render` writes back
    assert graph.dataset.mapping() == {"name": "mnist", "derive": {"type": "downscale", "factor": 2}}
    assert graph.dataset == DatasetSpec.of("mnist", derive={"type": "downscale", "factor": 2})
    assert graph.dataset.name == "mnist+downscale,factor=2"
    g.write_text(GRAPH.replace("DERIVE", "{type: downscale, factor: 5}"))
    with pytest.raises(GraphError) as e:
        parse.parse_graph(str(g))
    assert f"{g}:2:" in str(e.value) and "must divide" in str(e.value)
    assert "x_low" not in str(e.value)  # no second, misleading error about the base's variables
    for hostile in ("[downscale]", "{type: [1]}", "{type: {a: 1}}", "null", "{type: strokes, 3: 4}"):
        g.write_text(GRAPH.replace("DERIVE", hostile))
        with pytest.raises(GraphError, match=r"g.yaml:2: dataset derive"):
            parse.parse_graph(str(g))
