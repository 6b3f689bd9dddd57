"""infer --truncation T: every Normal/Uniform latent value within T, and the image says so."""
import numpy as np
import pytest

from nncgan import cli
from nncgan.graph import overrides
from nncgan.sampling import Sampler, truncated

from conftest import CGAN


@pytest.mark.parametrize("kind, multiplier, limit", [("Normal", 1.0, 0.5), ("Uniform", 2.0, 0.3)])
def test_truncation_keeps_every_latent_within_t(kind, multiplier, limit):
    rng = np.random.RandomState(0)
    v = truncated(kind, multiplier, (64, 100), rng, limit)
    assert v.shape == (64, 100) and np.abs(v).max() <= limit
    assert np.abs(v).max() > 0.9 * limit and len(np.unique(v)) == v.size   # redrawn, not clipped
    plain = np.random.RandomState(0)
    raw = (plain.standard_normal((64, 100)) if kind == "Normal" else plain.uniform(-1, 1, (64, 100))) * multiplier
    within = np.abs(raw) <= limit
    assert np.array_equal(v[within], raw[within])   # values already within T are kept as drawn


def test_sampler_truncates_the_executors_latents_only():
    graph, _ = overrides.load(CGAN, ["networks.RuntimeGenerator.layers.0.generator=Normal"])
    sampler = Sampler(graph, 20)
    (z,) = sampler.built.generators
    sampler.draw(np.arange(20) % 10, np.random.RandomState(1))
    assert np.abs(z.var.d).max() > 1.0        # untruncated Normal draws go beyond 1
    sampler.draw(np.arange(20) % 10, np.random.RandomState(1), truncation=1.0)
    assert np.abs(z.var.d).max() <= 1.0


def test_truncation_must_be_positive(capsys):
    assert cli.main(["infer", "--truncation", "0"]) == 2
    assert "argument --truncation: must be a positive number" in capsys.readouterr().err
    # that infer --truncation states T in the PNG's metadata is tested with a trained run in test_ema.py


@pytest.mark.parametrize("generator", ["Normal", "Uniform", "Constant"])
@pytest.mark.parametrize("truncation", [None, 0.7])
def test_training_infer_and_latent_codes_draw_the_same_latents(generator, truncation):
    """One place draws latents (nncgan.latent.draw): a training network's generator, infer's Sampler
    and a latent code of seed S hold the same values for the same RandomState(S)."""
    from nncgan import latent
    from nncgan.builder import build_network
    graph, _ = overrides.load(CGAN, [f"networks.RuntimeGenerator.layers.0.generator={generator}",
                                     "networks.RuntimeGenerator.layers.0.multiplier=1.5"])
    sampler = Sampler(graph, 1)
    sampler.draw([3], np.random.RandomState(7), truncation=truncation)
    (z,) = sampler.built.generators
    code = latent.code(sampler, 7, truncation)[0]
    assert np.array_equal(z.var.d, code)
    want = latent.draw(generator, 1.5, (1, 100), np.random.RandomState(7), truncation)
    assert np.array_equal(code, want)
    (g,) = build_network(graph.networks["RuntimeGenerator"], 1).generators
    g.draw(np.random.RandomState(7), truncation)
    assert np.array_equal(g.var.d, want)
    if generator == "Constant":
        assert np.all(want == 1.5)
    elif truncation is None:
        assert np.abs(want).max() > 0.7     # the draw is not truncated unless asked
