"""One image module: the same image files accepted by every reader (image folders, NNC CSV cells,
`infer --input`), and uint8 <-> [0, 1] scaling that round-trips."""
import numpy as np
import pytest
from PIL import Image

from nncgan import feeds, images
from nncgan.data import folders
from nncgan.data.csv_dataset import CsvTable
from nncgan.errors import DataError

QUIET = lambda *a: None  # noqa: E731
# Every extension Pillow writes here, accepted or not; '.PNG' checks that case does not matter.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF",
           ".tiff": "TIFF", ".webp": "WEBP", ".PNG": "PNG"}
ACCEPTED = {e for e in FORMATS if e.lower() in images.IMAGE_EXTENSIONS}


def every_format(d):
    """One 4x4 grayscale image per extension in FORMATS, plus files no reader may take."""
    d.mkdir(parents=True, exist_ok=True)
    for i, (ext, fmt) in enumerate(FORMATS.items()):
        Image.fromarray(np.full((4, 4), 10 * i, np.uint8)).save(d / f"img{i}{ext}", format=fmt)
    (d / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / ".hidden.png")
    return d


def test_the_extensions_are_those_nnablas_csv_loader_reads_as_images():
    # A CSV image cell goes through NNabla's loader: nncgan's list is exactly its image list
    # (DICOM left out: Pillow does not read it).
    from nnabla.utils.data_source_loader import _load_functions, load_image
    assert set(images.IMAGE_EXTENSIONS) == {e for e, f in _load_functions.items() if f is load_image} - {".dcm"}


def test_folder_datasets_and_infer_input_take_exactly_the_image_extensions(tmp_path):
    every_format(tmp_path / "classes" / "only")
    want = sorted(f"img{i}{e}" for i, e in enumerate(FORMATS) if e in ACCEPTED)
    arrays = folders.load(tmp_path / "classes", size=[1, 4, 4], log=QUIET)  # GIF reads as a palette
    assert len(arrays["x"]) == len(want)
    fed = feeds.from_folder(tmp_path / "classes" / "only", (1, 4, 4))
    assert len(fed) == len(want)     # main's feeds also took .webp, which the dataset readers refuse
    assert [p.name for p in images.image_files(tmp_path / "classes" / "only")] == want


@pytest.mark.parametrize("ext", list(FORMATS))
def test_a_csv_image_cell_is_read_exactly_when_the_extension_is_accepted(tmp_path, ext):
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / f"a{ext}", format=FORMATS[ext])
    (tmp_path / "d.csv").write_text(f"x:image,y:label\n./a{ext},0\n")
    if ext in ACCEPTED:
        table = CsvTable(tmp_path / "d.csv")
        assert table.images == ("x",) and table.shapes["x"][1:] == (4, 4)  # NNabla reads GIF as RGB
    else:
        with pytest.raises(DataError, match=f"a{ext}"):
            CsvTable(tmp_path / "d.csv")


def test_scaling_round_trips_and_matches_what_training_feeds():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    unit = images.to_unit(pixels)
    assert unit.dtype == np.float32 and unit.min() == 0.0 and unit.max() == 1.0
    assert np.array_equal(images.to_pixels(unit), pixels)
    assert np.array_equal(images.to_pixels(np.array([-0.5, 1.5, 0.5 / 255, 0.49 / 255])), [0, 255, 1, 0])
    from nncgan.data.batches import to_batch
    batch = to_batch(("x", "y"), (pixels, np.array([[3]])), images=("x",))
    assert np.array_equal(batch["x"], unit) and batch["y"].dtype == np.float32 and batch["y"][0, 0] == 3.0
