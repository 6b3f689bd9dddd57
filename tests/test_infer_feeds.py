"""`nncgan infer` feeding dataset variables (--input, the split), --executor, and pipeline files."""
import textwrap

import numpy as np
import pytest
from PIL import Image

from nncgan import cli

# A tiny image-to-image graph: paired folder a (1,4,4) -> b (1,8,8), nearest up-scaling + one conv.
SR_GRAPH = """\
nncgan: 1
name: tiny_sr
dataset: {folder: data}
config: {batch_size: 4, max_epoch: 1, seed: 3}
networks:
  Train:
    layers:
      - {name: A, type: Input, size: [1, 4, 4], dataset: a}
      - {name: Up, type: Unpooling, kernel_shape: [2, 2]}
      - {name: Conv, type: Convolution, out_maps: 1, kernel_shape: [3, 3], pad: [1, 1]}
      - {name: Loss, type: SquaredError, input: Conv, target: {dataset: b}}
  Runtime:
    layers:
      - {name: A, type: Input, size: [1, 4, 4], dataset: a}
      - {name: Up, type: Unpooling, kernel_shape: [2, 2]}
      - {name: Conv, type: Convolution, out_maps: 1, kernel_shape: [3, 3], pad: [1, 1]}
  Upscaled:
    layers:
      - {name: A, type: Input, size: [1, 4, 4], dataset: a}
      - {name: Up, type: Unpooling, kernel_shape: [2, 2]}
optimizers:
  Train: {network: Train, solver: {type: Adam, alpha: 0.01}}
executors:
  Executor: {network: Runtime, output: Conv}
  Nearest: {network: Upscaled, output: Up}
"""

# Stage 1 of a pipeline: latents -> a (1,4,4) image.
GEN_GRAPH = """\
nncgan: 1
name: tiny_gen
dataset: {folder: data}
config: {batch_size: 4, max_epoch: 1, seed: 3}
networks:
  Train:
    layers:
      - {name: Z, type: Input, size: 8, generator: Normal}
      - {name: Affine, type: Affine, out_shape: [1, 4, 4]}
      - {name: Sigmoid, type: Sigmoid}
      - {name: Loss, type: SquaredError, input: Sigmoid, target: {dataset: a}}
  Runtime:
    layers:
      - {name: Z, type: Input, size: 8, generator: Normal}
      - {name: Affine, type: Affine, out_shape: [1, 4, 4]}
      - {name: Sigmoid, type: Sigmoid}
optimizers:
  Train: {network: Train, solver: {type: Adam, alpha: 0.01}}
executors:
  Executor: {network: Runtime, output: Sigmoid}
"""


def _img(path, side, value):
    Image.fromarray(np.full((side, side), value, np.uint8)).save(path)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for d in ("data/A", "data/B"):
        (tmp_path / d).mkdir(parents=True)
    for i in range(8):
        _img(tmp_path / f"data/A/{i}.png", 4, 30 * i)
        _img(tmp_path / f"data/B/{i}.png", 8, 30 * i)
    (tmp_path / "sr.yaml").write_text(SR_GRAPH)
    (tmp_path / "gen.yaml").write_text(GEN_GRAPH)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _train(graph, out):
    assert cli.main(["train", graph, "--out", out, "--quiet", "--context", "cpu"]) == 0


def _png(path):
    return np.asarray(Image.open(path))


def test_infer_feeds_the_dataset_and_input_folders_and_picks_executors(workdir, capsys):
    _train("sr.yaml", "runs/sr")
    # Default: the executor's input image from the dataset; 4 images of 8x8 in a 2x2 tile.
    assert cli.main(["infer", "--run", "runs/sr", "--num", "4", "--out", "a.png"]) == 0
    assert _png("a.png").shape == (2 * 8 + 2, 2 * 8 + 2)
    # --input: three constant 4x4 images; the 'Nearest' executor up-scales them to 8x8 exactly.
    (workdir / "in").mkdir()
    for i, v in enumerate((0, 100, 250)):
        _img(workdir / f"in/{i}.png", 4, v)
    assert cli.main(["infer", "--run", "runs/sr", "--executor", "Nearest", "--input", "in",
                     "--out", "n.png"]) == 0
    tile = _png("n.png")
    assert tile.shape == (2 * 8 + 2, 2 * 8 + 2)          # 3 images -> a 2x2 grid
    assert (tile[:8, :8] == 0).all() and (tile[:8, 10:] == 100).all() and (tile[10:, :8] == 250).all()
    # Errors: an unknown executor, an --input variable it does not read.
    assert cli.main(["infer", "--run", "runs/sr", "--executor", "Nope"]) == 2
    assert "no executor 'Nope'" in capsys.readouterr().err
    assert cli.main(["infer", "--run", "runs/sr", "--input", "zz=in"]) == 2
    assert "reads no dataset variable 'zz'" in capsys.readouterr().err


def test_pipeline_chains_stages_and_checks_shapes(workdir, capsys):
    _train("gen.yaml", "runs/gen")
    _train("sr.yaml", "runs/sr")
    (workdir / "p.yaml").write_text(textwrap.dedent("""\
        nncgan: 1
        pipeline: tiny
        stages:
          - {name: gen, graph: gen.yaml, run: runs/gen}
          - {name: up, graph: sr.yaml, run: runs/sr, executor: Nearest, feed: {a: gen}}
        """))
    assert cli.main(["check", "p.yaml"]) == 0
    assert "up: sr.yaml, executor Nearest, a <- gen -> (1, 8, 8)" in capsys.readouterr().out
    assert cli.main(["infer", "p.yaml", "--num", "4", "--out", "out.png"]) == 0
    final, first = _png("out.png"), _png("out.gen.png")
    assert first.shape == (10, 10) and final.shape == (18, 18)     # 4x4 images, then 8x8
    # The nearest up-scaling of stage 1's images, pixel for pixel.
    assert (final[:8, :8] == np.kron(first[:4, :4], np.ones((2, 2), np.uint8))).all()
    assert cli.main(["infer", "p.yaml", "--num", "4", "--label", "3"]) == 2
    assert "no stage of pipeline 'tiny' takes a label" in capsys.readouterr().err
    # A feed whose shape does not fit is refused by check, naming the stages.
    (workdir / "bad.yaml").write_text(textwrap.dedent("""\
        nncgan: 1
        pipeline: bad
        stages:
          - {name: up, graph: sr.yaml, executor: Nearest}
          - {name: again, graph: sr.yaml, executor: Nearest, feed: {a: up}}
        """))
    assert cli.main(["check", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:5: stage 'again' reads 'a' as (1, 4, 4), but stage 'up' draws images of shape (1, 8, 8)" in err
