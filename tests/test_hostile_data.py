"""Issue 16 item 8: datasets and imports that are wrong or hostile get one clear message naming the
file (and row or line), never a traceback, a hang or memory eaten: CSV labels of 1e8 or inf, images
over Pillow's decompression-bomb limit, looping links in a folder dataset, .sdcproj numbers that are
not numbers, a .nntxt Convolution without W, a .nntxt that is /dev/zero or a FIFO."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from nncgan import cli
from nncgan.data.spec import DatasetSpec
from nncgan.errors import DataError

from conftest import ROOT
from hang_guard import no_hang

WITH_LABEL = ROOT.parent / "shared" / "nnc" / "mnist_dcgan_with_label.sdcproj"
needs_samples = pytest.mark.skipif(not WITH_LABEL.is_file(), reason=f"NNC sample not found: {WITH_LABEL}")


def csv_dataset(path, labels):
    path.write_text("x__0,y:label\n" + "".join(f"{i % 7}.5,{y}\n" for i, y in enumerate(labels)))
    with no_hang(what=f"a CSV dataset with labels {labels[:5]}"):
        return DatasetSpec.of("csv", str(path))


def run_cli(args, capsys):
    with no_hang(what=" ".join(args)):
        rc = cli.main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out + out.err


# ---- CSV labels

def test_csv_label_of_1e8_is_refused_naming_its_row(tmp_path):
    with pytest.raises(DataError) as e:
        csv_dataset(tmp_path / "d.csv", [0, 1, "1e8", 1])
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'd.csv'}: labels of 'y' run 0..100000000 but no row has label 2, 3")
    assert "(and 99,999,993 more)" in msg and "the largest, 1e8, is in row 3 (line 4)" in msg


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "1e39"])
def test_csv_labels_and_values_must_be_finite(tmp_path, bad):
    with pytest.raises(DataError, match=r"row 2 \(line 3\): 'y' must be a finite number"):
        csv_dataset(tmp_path / "d.csv", [0, bad, 1])
    (tmp_path / "x.csv").write_text(f"x__0,y:label\n0.5,0\n{bad},1\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): 'x' must hold finite numbers"):
        DatasetSpec.of("csv", str(tmp_path / "x.csv")).load("train", log=lambda *a: None)


@settings(derandomize=True, max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.integers(-2, 12), st.sampled_from(["1e8", "3e38", "inf", "nan", "2.5", "1e-9"])),
                min_size=1, max_size=12))
def test_any_csv_labels_give_classes_or_a_data_error(tmp_path_factory, labels):
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    try:
        info = csv_dataset(path, labels)
    except DataError as e:
        assert str(e).startswith(str(path))
        return
    y = np.array([float(v) for v in labels])
    assert np.isfinite(y).all()
    if info.classes:   # labels 0..K-1, each class present
        assert set(y.astype(int)) == set(range(info.classes))


# ---- image folders

def _folder(root, images):
    (root / "digit").mkdir(parents=True)
    for name, im in images.items():
        im.save(root / "digit" / name)
    return root


def test_image_over_pillows_bomb_limit_is_refused(tmp_path):
    # 200 M pixels of a 1-bit image: 25 MB to build, a few hundred kB as PNG; Pillow raises above twice its limit.
    _folder(tmp_path / "d", {"a.png": Image.new("L", (8, 8)), "b.png": Image.new("1", (20000, 10000))})
    with no_hang(), pytest.raises(DataError, match="b.png: the image has more pixels than Pillow's decompression-bomb limit"):
        DatasetSpec.of("folder", str(tmp_path / "d"), size=[1, 8, 8]).load("train", log=lambda *a: None)


def test_image_between_pillows_warning_and_error_is_refused(tmp_path, monkeypatch):
    # Pillow only warns between its limit and twice it, and decodes the image: nncgan refuses.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _folder(tmp_path / "d", {"a.png": Image.new("L", (40, 40))})    # 1,600 pixels: a warning in Pillow
    with pytest.raises(DataError, match="a.png: the image has more pixels than Pillow's decompression-bomb limit of 1,000"):
        DatasetSpec.of("folder", str(tmp_path / "d"))


def test_a_folder_size_too_large_to_allocate_is_refused(tmp_path):
    _folder(tmp_path / "d", {"a.png": Image.new("L", (8, 8))})
    with no_hang(), pytest.raises(DataError, match=r"size \[3, 100000, 100000\] is 30,000,000,000 values per "
                                                   r"image; nncgan takes at most 268,435,456"):
        DatasetSpec.of("folder", str(tmp_path / "d"), size=[3, 100000, 100000])


def test_looping_links_in_a_folder_dataset_are_named(tmp_path):
    _folder(tmp_path / "d", {"a.png": Image.new("L", (8, 8))})
    os.symlink("loop.png", tmp_path / "d" / "digit" / "loop.png")
    with no_hang(), pytest.raises(DataError, match=r"loop.png: a symbolic link that loops"):
        DatasetSpec.of("folder", str(tmp_path / "d"))
    os.symlink("root", tmp_path / "root")
    with no_hang(), pytest.raises(DataError, match=r"root: a symbolic link that loops"):
        DatasetSpec.of("folder", str(tmp_path / "root"))


# ---- imports

def _edit_line(text, startswith, new_value):
    lines = text.splitlines()
    n = next(i for i, l in enumerate(lines) if l.startswith(startswith))
    lines[n] = lines[n].split("=", 1)[0] + "=" + new_value
    return "\n".join(lines) + "\n", n + 1


@needs_samples
@pytest.mark.parametrize("key, value, expected", [
    ("UpdateInterval=", "often", "UpdateInterval to be an integer, got 'often'"),
    ("WeightDecay=", "none", "WeightDecay to be a finite number, got 'none'"),
    ("LearningRateMultiplier=", "nan", "LearningRateMultiplier to be a finite number, got 'nan'"),
    ("SolverParameter_0=", "inf", "SolverParameter_0 to be a finite number, got 'inf'"),
    ("BatchSize=", "9" * 5000, "BatchSize to be an integer"),
])
def test_sdcproj_numbers_that_are_not_numbers(key, value, expected, tmp_path, capsys):
    text, line = _edit_line(WITH_LABEL.read_text(encoding="utf-8-sig"), key, value)
    src = tmp_path / "p.sdcproj"
    src.write_text(text)
    rc, out = run_cli(["import", str(src), "-o", str(tmp_path / "g.yaml")], capsys)
    assert rc == 2 and f"{src}:{line}: [" in out and f"expected {expected}" in out, out
    assert not (tmp_path / "g.yaml").exists()


@needs_samples
@pytest.mark.parametrize("prop, value", [("Property_4_Value=", "lots"),   # Z's GeneratorMultiplier
                                         ("Property_7_Value=", "inf")])   # Affine's W.LRateMultiplier
def test_sdcproj_layer_multipliers_that_are_not_numbers(prop, value, tmp_path, capsys):
    text = WITH_LABEL.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    n = next(i for i, l in enumerate(lines) if l.startswith(prop)
             and lines[i - 1].split("=")[1] in ("GeneratorMultiplier", "W.LRateMultiplier"))
    name = lines[n - 1].split("=")[1]
    section = next(l for l in reversed(lines[:n]) if l.startswith("["))
    lines[n] = prop + value
    src = tmp_path / "p.sdcproj"
    src.write_text("\n".join(lines) + "\n")
    rc, out = run_cli(["import", str(src), "-o", str(tmp_path / "g.yaml")], capsys)
    assert rc == 2 and f"{src}:" in out and section in out, out
    assert f"expected {name} of " in out and f"to be a number, got '{value}'" in out, out


NNTXT_CONV = """network {
  name: "N"
  batch_size: 4
  variable { name: "x" type: "Buffer" shape { dim: -1 dim: 1 dim: 8 dim: 8 } }
  variable { name: "y" type: "Buffer" shape { dim: -1 dim: 4 dim: 6 dim: 6 } }
  function {
    name: "conv" type: "Convolution" input: "x" output: "y"
    convolution_param { base_axis: 1 pad { dim: 0 dim: 0 } stride { dim: 1 dim: 1 } dilation { dim: 1 dim: 1 } group: 1 }
  }
}
"""


def test_nntxt_convolution_without_w(tmp_path, capsys):
    src = tmp_path / "n.nntxt"
    src.write_text(NNTXT_CONV)
    rc, out = run_cli(["import", str(src), "-o", str(tmp_path / "g.yaml")], capsys)
    assert rc == 2 and f"{src}: network 'N', function 'conv' (Convolution): expected a parameter W" in out, out


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_import_refuses_what_is_not_a_regular_file(kind, tmp_path, capsys):
    for suffix in (".nntxt", ".nnp", ".sdcproj"):
        src = tmp_path / f"n{suffix}"
        if kind == "device":
            os.symlink("/dev/zero", src)     # read without a bound, this never ends
        elif kind == "fifo":
            os.mkfifo(src)                   # opened for reading, this blocks for ever
        else:
            src.mkdir()
        rc, out = run_cli(["import", str(src), "-o", str(tmp_path / "g.yaml")], capsys)
        what = {"device": "a device", "fifo": "a FIFO (named pipe)", "folder": "a folder"}[kind]
        assert rc == 2 and f"{src}: expected " in out and f"a regular file; it is {what}" in out, out
        assert not (tmp_path / "g.yaml").exists()
