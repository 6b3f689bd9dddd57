"""Image-folder datasets: class subfolders, paired A/B, side-by-side A|B, unpaired trainA/trainB;
conversion and resize to the dataset's size; every bad folder giving a DataError naming the file."""
import numpy as np
import pytest
from PIL import Image

from nncgan.data.spec import DatasetSpec
from nncgan.data.folders import FolderSamples
from nncgan.errors import DataError, GraphError
from nncgan.graph.parse import parse_graph

from conftest import CGAN

QUIET = lambda *a: None  # noqa: E731


def png(path, h=6, w=4, mode="L", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    a = rng.randint(0, 256, (h, w) if mode == "L" else (h, w, 3)).astype(np.uint8)
    Image.fromarray(a, mode).save(path)
    return a if mode == "L" else a.transpose(2, 0, 1)


def load(path, **options):
    return DatasetSpec.of("folder", str(path), **options).load("train", log=QUIET)


def test_class_folders_label_in_sorted_name_order(tmp_path):
    want = {}
    for k, cls in enumerate(["cat", "ant", "bee"]):
        for j in range(k + 1):
            want[(cls, j)] = png(tmp_path / cls / f"{j}.png", seed=10 * k + j)
    info = DatasetSpec.of("folder", str(tmp_path))
    assert info.variables == {"x": (1, 6, 4), "y": (1,)} and info.classes == 3 and info.images == ("x",)
    arrays = info.load("train", log=QUIET)
    # sorted: ant (2 images) -> 0, bee (3) -> 1, cat (1) -> 2
    assert arrays["y"][:, 0].tolist() == [0, 0, 1, 1, 1, 2]
    assert np.array_equal(arrays["x"][0, 0], want[("ant", 0)]) and np.array_equal(arrays["x"][5, 0], want[("cat", 0)])


def test_size_converts_to_rgb_and_resizes(tmp_path):
    png(tmp_path / "a" / "0.png", 6, 4, "L")
    png(tmp_path / "b" / "0.png", 10, 10, "RGB")
    info = DatasetSpec.of("folder", str(tmp_path), size=[3, 8, 8])
    assert info.variables["x"] == (3, 8, 8)
    x = info.load("train", log=QUIET)["x"]
    assert x.shape == (2, 3, 8, 8) and np.array_equal(x[0, 0], x[0, 1])  # grey -> three equal channels


def test_graph_takes_folder_size_and_checks_inputs(tmp_path):
    for k in range(10):
        png(tmp_path / "digits" / f"d{k}" / "0.png", 20, 20, seed=k)
    g = tmp_path / "g.yaml"
    g.write_text(CGAN.read_text().replace("  name: mnist ", "  folder: digits\n  size: [1, 28, 28] #", 1))
    graph = parse_graph(g)
    assert graph.dataset.variables == {"x": (1, 28, 28), "y": (1,)} and graph.dataset.classes == 10
    assert graph.dataset.load("train", log=QUIET)["x"].shape == (10, 1, 28, 28)
    g.write_text(CGAN.read_text().replace("  name: mnist ", "  folder: digits #", 1))
    with pytest.raises(GraphError, match=r"size \(1, 28, 28\) does not match dataset variable 'x' of shape \(1, 20, 20\)"):
        parse_graph(g)


def test_paired_folders(tmp_path):
    a1, b1 = png(tmp_path / "A" / "1.png", seed=1), png(tmp_path / "B" / "1.png", seed=2)
    a2, b2 = png(tmp_path / "A" / "2.png", seed=3), png(tmp_path / "B" / "2.png", seed=4)
    info = DatasetSpec.of("folder", str(tmp_path))
    assert info.variables == {"a": (1, 6, 4), "b": (1, 6, 4)} and info.classes == 0 and info.images == ("a", "b")
    arrays = info.load("train", log=QUIET)
    assert np.array_equal(arrays["a"][:, 0], [a1, a2]) and np.array_equal(arrays["b"][:, 0], [b1, b2])


def test_side_by_side_pairs(tmp_path):
    whole = png(tmp_path / "train" / "0.png", 4, 8, "RGB")
    arrays = load(tmp_path / "train", layout="side-by-side")
    assert arrays["a"].shape == (1, 3, 4, 4)
    assert np.array_equal(arrays["a"][0], whole[:, :, :4]) and np.array_equal(arrays["b"][0], whole[:, :, 4:])


def test_unpaired_sets_cycle_the_smaller(tmp_path):
    a = [png(tmp_path / "trainA" / f"{i}.png", seed=i) for i in range(3)]
    b = [png(tmp_path / "trainB" / f"{i}.png", 5, 5, seed=9 + i) for i in range(2)]
    info = DatasetSpec.of("folder", str(tmp_path))
    assert info.variables == {"a": (1, 6, 4), "b": (1, 5, 5)}
    arrays = info.load("train", log=QUIET)
    assert len(arrays["a"]) == 3 and np.array_equal(arrays["a"][2, 0], a[2]) and np.array_equal(arrays["b"][2, 0], b[0])


@pytest.mark.parametrize("memory_mb", [None, "0"])
def test_unpaired_sides_are_shuffled_independently_each_epoch(tmp_path, monkeypatch, memory_mb):
    from nncgan.data.batches import iterator
    for i in range(8):
        png(tmp_path / "trainA" / f"{i}.png", seed=i)
        png(tmp_path / "trainB" / f"{i}.png", seed=100 + i)
    if memory_mb:
        monkeypatch.setenv("NNCGAN_MEMORY_LIMIT_MB", memory_mb)
    data = load(tmp_path)

    def pairs(first_epoch):
        di, iters = iterator(data, 8, seed=3, first_epoch=first_epoch)
        a, b = di.next()
        return sorted((int(x.sum()), int(y.sum())) for x, y in zip(a, b))
    epoch0, epoch1 = pairs(0), pairs(1)
    assert epoch0 != epoch1                      # A and B met differently in the two epochs
    assert pairs(1) == epoch1                    # ... and a resumed epoch sees the same pairs
    assert sorted(p[1] for p in epoch0) == sorted(p[1] for p in epoch1)   # every B image, once each


def test_streamed_folder_reads_per_sample(tmp_path, monkeypatch):
    for k in range(2):
        png(tmp_path / str(k) / "0.png", seed=k)
    monkeypatch.setenv("NNCGAN_MEMORY_LIMIT_MB", "0")
    data = load(tmp_path)
    assert isinstance(data, FolderSamples) and len(data) == 2
    x, y = data.sample(1)
    assert x.shape == (1, 6, 4) and y.tolist() == [1] and data.column("y").tolist() == [[0], [1]]


# ------------------------------------------------------------------------- bad folders


def error_of(path, **options):
    with pytest.raises(DataError) as err:
        load(path, **options)
    return str(err.value)


def test_missing_folder(tmp_path):
    assert error_of(tmp_path / "nope") == f"{tmp_path / 'nope'}: no such folder"


def test_empty_class(tmp_path):
    png(tmp_path / "a" / "0.png")
    (tmp_path / "b").mkdir()
    assert f"{tmp_path / 'b'}: no images (class 1 'b' is empty" in error_of(tmp_path)


def test_corrupt_image_named(tmp_path):
    png(tmp_path / "a" / "0.png")
    (tmp_path / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    assert error_of(tmp_path).startswith(f"{tmp_path / 'a' / '1.png'}: cannot read the image")


@pytest.mark.parametrize("h, w, mode, got", [(7, 4, "L", "(1, 7, 4)"), (6, 4, "RGB", "(3, 6, 4)")])
def test_wrong_size_or_channels_without_a_size(tmp_path, h, w, mode, got):
    png(tmp_path / "a" / "0.png")
    png(tmp_path / "a" / "1.png", h, w, mode)
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / 'a' / '1.png'}: image is {got}") and "first image's is (1, 6, 4)" in msg


def test_paired_file_without_partner(tmp_path):
    png(tmp_path / "A" / "1.png")
    png(tmp_path / "B" / "1.png")
    png(tmp_path / "A" / "2.png")
    assert error_of(tmp_path).startswith(f"{tmp_path / 'A' / '2.png'}: has no partner of the same name in {tmp_path / 'B'}")


def test_odd_width_side_by_side(tmp_path):
    png(tmp_path / "0.png", 4, 5)
    assert error_of(tmp_path, layout="side-by-side").startswith(f"{tmp_path / '0.png'}: width 5 is odd")


@pytest.mark.parametrize("size", [[2, 8, 8], [1, 8], "28"])
def test_bad_size(tmp_path, size):
    png(tmp_path / "a" / "0.png")
    assert "size must be [channels, height, width]" in error_of(tmp_path, size=size)


def test_label_outside_graph_classes(tmp_path):
    from nncgan.train.loop import train
    for k in range(11):
        png(tmp_path / "data" / f"c{k:02d}" / "0.png", 28, 28, seed=k)
    g = tmp_path / "g.yaml"
    g.write_text(CGAN.read_text().replace("  name: mnist ", "  folder: data #", 1))
    with pytest.raises(DataError, match=r"c10/0.png: label 10 in 'y', outside the graph's classes 0..9"):
        train(parse_graph(g), tmp_path / "run", max_epoch=1, log=QUIET, quiet=True)


@pytest.mark.parametrize("dataset, problem", [
    ("  name: mnist\n  size: [1, 28, 28] #", "'size' and 'layout' apply only to 'folder' datasets"),
    ("  name: mnist\n  csv: x.csv #", "dataset needs exactly one of 'name'"),
    ("  folder: nowhere #", "nowhere: no such folder"),
    ("  folder: .\n  layout: zigzag #", "unknown layout 'zigzag'"),
])
def test_dataset_section_problems(tmp_path, dataset, problem):
    g = tmp_path / "g.yaml"
    g.write_text(CGAN.read_text().replace("  name: mnist ", dataset, 1))
    with pytest.raises(GraphError, match=problem):
        parse_graph(g)


def test_streamed_folder_checks_every_image_before_training(tmp_path, monkeypatch):
    png(tmp_path / "a" / "0.png")
    png(tmp_path / "a" / "1.png", 7, 4)
    monkeypatch.setenv("NNCGAN_MEMORY_LIMIT_MB", "0")
    assert error_of(tmp_path).startswith(f"{tmp_path / 'a' / '1.png'}: image is (1, 7, 4)")
