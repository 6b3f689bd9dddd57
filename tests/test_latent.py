"""infer --interpolate / --arithmetic: the strip's ends are infer's own images for those seeds,
the arithmetic result is the generator applied to z1 - z2 + z3, and the pictures have the cells they say."""
import numpy as np
import pytest
from PIL import Image

from nncgan import cli, latent
from nncgan.graph.parse import parse_graph
from nncgan.images import PAD
from nncgan.sampling import Sampler
from nncgan.train import checkpoint

from tiny_run import tiny_run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def pixels(path):
    with Image.open(path) as im:
        return np.array(im), dict(im.text)


def loaded_sampler(run, n):
    sampler = Sampler(parse_graph(run / "graph.yaml"), n)
    checkpoint.load(run)
    return sampler


def test_strip_ends_are_the_images_infer_draws_for_those_seeds(trained_run, tmp_path, capsys):
    strip = tmp_path / "strip.png"
    assert cli.main(["infer", "--run", str(trained_run), "--label", "7", "--interpolate", "3", "11",
                     "--steps", "6", "--scale", "1", "--out", str(strip)]) == 0
    s, meta = pixels(strip)
    assert s.shape == (28, 6 * 28 + 5 * PAD)                         # one row of 6 cells
    assert meta["interpolation"] == "linear" and meta["seeds"] == "3,11"   # cgan's Z is Uniform
    cells = [s[:, i * (28 + PAD):i * (28 + PAD) + 28] for i in range(6)]
    for seed, cell in ((3, cells[0]), (11, cells[-1])):
        one = tmp_path / f"one{seed}.png"
        assert cli.main(["infer", "--run", str(trained_run), "--label", "7", "--num", "1",
                         "--seed", str(seed), "--out", str(one)]) == 0
        assert np.array_equal(pixels(one)[0], cell), seed
    assert not np.array_equal(cells[0], cells[-1])
    assert all(not np.array_equal(cells[i], cells[i + 1]) for i in range(5))   # it moves at every step


def test_walk_is_linear_for_uniform_and_spherical_for_normal():
    a, b = np.array([[3.0, 0.0]]), np.array([[0.0, 3.0]])
    mid_lin = latent.walk([a], [b], 3, "linear")[1][0]
    mid_sph = latent.walk([a], [b], 3, "slerp")[1][0]
    assert np.allclose(mid_lin, [[1.5, 1.5]])
    assert np.allclose(mid_sph, [[3 / np.sqrt(2), 3 / np.sqrt(2)]])        # stays on the sphere of radius 3
    ends = latent.walk([a], [b], 5, "slerp")
    assert np.allclose(ends[0][0], a) and np.allclose(ends[-1][0], b)
    assert np.allclose(latent.slerp(a, a * 2, 0.5), a * 1.5)               # parallel: linear


def test_interpolation_numbers_match_the_generator(trained_run):
    sampler = loaded_sampler(trained_run, 5)
    images, how = latent.interpolate(sampler, 1, 2, 4, method="slerp")
    assert how == "slerp"
    c1, c2 = latent.code(sampler, 1), latent.code(sampler, 2)
    assert np.allclose(c1[0], np.random.RandomState(1).uniform(-1, 1, (1, 100)))
    one = loaded_sampler(trained_run, 1)
    for t, img in zip(np.linspace(0, 1, 5), images):
        z = latent.slerp(c1[0], c2[0], t)
        assert np.allclose(latent.generate(one, [[z]], [4])[0], img, atol=1e-6)


def test_arithmetic_is_the_generator_applied_to_z1_minus_z2_plus_z3(trained_run, tmp_path, capsys):
    out = tmp_path / "arith.png"
    assert cli.main(["infer", "--run", str(trained_run), "--arithmetic", "5", "6", "7",
                     "--labels", "1,1,8", "--scale", "1", "--out", str(out)]) == 0
    pic, meta = pixels(out)
    gap = 14
    assert pic.shape == (28, 4 * 28 + 3 * gap) and meta["labels"] == "1,1,8,8"
    cells = [pic[:, i * (28 + gap):i * (28 + gap) + 28] for i in range(4)]
    for i in range(3):                                                # symbols drawn between cells
        assert pic[:, i * (28 + gap) + 28:(i + 1) * (28 + gap)].max() == 255
    one = loaded_sampler(trained_run, 1)
    z = [latent.code(one, s)[0] for s in (5, 6, 7)]
    for cell, (code, label) in zip(cells, [(z[0], 1), (z[1], 1), (z[2], 8), (z[0] - z[1] + z[2], 8)]):
        want = latent.generate(one, [[code]], [label])[0, 0]
        assert np.array_equal(cell, (np.clip(want, 0, 1) * 255 + 0.5).astype(np.uint8))
    assert "z(seed 5) - z(seed 6) + z(seed 7)" in capsys.readouterr().out


def test_latent_options_are_checked(trained_run, capsys):
    base = ["infer", "--run", str(trained_run)]
    assert cli.main(base + ["--interpolate", "1", "2"]) == 2
    assert "conditional: give --label" in capsys.readouterr().err
    assert cli.main(base + ["--label", "12", "--interpolate", "1", "2"]) == 2
    assert "outside the graph's classes 0..9" in capsys.readouterr().err
    assert cli.main(base + ["--arithmetic", "1", "2", "3", "--labels", "1,x,3"]) == 2
    assert "--labels takes integers" in capsys.readouterr().err
    assert cli.main(base + ["--label", "1", "--interpolate", "1", "2", "--steps", "1"]) == 2
    assert "--steps must be at least 2" in capsys.readouterr().err
    assert cli.main(base + ["--label", "1", "--interpolate", "1", "2", "--steps", "0"]) == 2
    assert "argument --steps: must be at least 1" in capsys.readouterr().err
    assert cli.main(base + ["--label", "1", "--interpolate", "1", "2", "--arithmetic", "1", "2", "3"]) == 2
    assert "not both" in capsys.readouterr().err
