"""The interpreter on the real NNC graph: shared scopes, frozen halves, real multipliers, safe BCE."""
import numpy as np
import nnabla as nn
import nnabla.functions as F
import pytest

from nncgan.builder import build_all, build_network
from nncgan.graph.parse import parse_graph
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN, batch_for

D_SCOPES = ("Convolution_3", "Convolution_4", "Affine_3", "Affine_4",
            "BatchNormalization_4", "BatchNormalization_5", "BatchNormalization_6")
G_SCOPES = ("Affine", "Affine_2", "Deconvolution", "Deconvolution_2",
            "BatchNormalization", "BatchNormalization_2", "BatchNormalization_3")
LEARNABLE = ("/W", "/b", "/beta", "/gamma")


def snapshot(scopes):
    return {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()
            if k.split("/")[0] in scopes and k.endswith(LEARNABLE)}


@pytest.fixture
def cgan():
    graph = parse_graph(CGAN)
    nets, rng = build_all(graph, 8, seed=3)
    steps = {o.name: OptimizerStep(o, nets[o.network]) for o in graph.optimizers}
    return graph, nets, steps, rng


def step(steps, nets, name, rng):
    return steps[name](batch_for(nets[steps[name].opt.network]), rng, 0)


@pytest.mark.parametrize("opt, frozen, learning", [
    ("Generator", D_SCOPES, G_SCOPES),
    ("DiscriminatorFake", G_SCOPES, D_SCOPES),
    ("DiscriminatorReal", G_SCOPES, D_SCOPES),
])
def test_frozen_scope_bit_identical_while_the_rest_learns(cgan, opt, frozen, learning):
    graph, nets, steps, rng = cgan
    before_frozen, before_learning = snapshot(frozen), snapshot(learning)
    assert len(before_frozen) == 11 and len(before_learning) == 11
    step(steps, nets, opt, rng)
    after_frozen, after_learning = snapshot(frozen), snapshot(learning)
    for k in before_frozen:
        assert np.array_equal(before_frozen[k], after_frozen[k]), f"{k} changed although frozen in {opt}"
    for k in before_learning:
        assert not np.array_equal(before_learning[k], after_learning[k]), f"{k} did not learn in {opt}"


def test_one_scope_is_one_parameter_across_networks(cgan):
    graph, nets, steps, rng = cgan
    params = nn.get_parameters(grad_only=False)
    # 7 G layers + 7 D layers: W (+b where biased), BN beta/gamma/mean/var, each created exactly once
    assert len([k for k in params if k.startswith("Affine/")]) == 1
    assert sorted(k for k in params if k.startswith("Affine_4/")) == ["Affine_4/affine/W", "Affine_4/affine/b"]
    # What the Generator optimizer learns is what DiscriminatorFake and RuntimeGenerator compute with.
    fake, runtime = nets["DiscriminatorFake"], build_network(graph.networks["RuntimeGenerator"], 8)
    batch = batch_for(fake)

    def fake_image():  # BatchStat true: depends on parameters and inputs only
        fake.feed(batch, np.random.RandomState(0))
        fake.outputs["Sigmoid"].forward()
        return fake.outputs["Sigmoid"].d.copy()

    def runtime_image():
        runtime.feed(batch, np.random.RandomState(0))
        runtime.outputs["x2"].forward()
        return runtime.outputs["x2"].d.copy()

    f0 = fake_image()
    assert np.array_equal(fake_image(), f0)
    r0 = runtime_image()  # (after fake_image: its BatchStat forward moves the running statistics)
    assert np.array_equal(runtime_image(), r0)
    params["Deconvolution_2/deconv/b"].d += 1.0      # one edit, seen by both networks
    assert not np.allclose(runtime_image(), r0) and not np.allclose(fake_image(), f0)
    f1 = fake_image()
    step(steps, nets, "Generator", rng)              # the Generator network's update, seen by DiscriminatorFake
    assert not np.allclose(fake_image(), f1)
    learned = nets["Generator"].trainable["Affine/affine/W"][0]
    learned.d[0, 0] = 123.0
    assert params["Affine/affine/W"].d[0, 0] == 123.0   # the solver's variable is the registry's


def test_explicit_scope_shares_across_names(tmp_path):
    text = CGAN.read_text().replace(
        "- {name: Affine_3, type: Affine, out_shape: 512, with_bias: false}",
        "- {name: Affine_3, type: Affine, out_shape: 512, with_bias: false, scope: SharedD}")
    p = tmp_path / "g.yaml"
    p.write_text(text)
    graph = parse_graph(p)
    build_all(graph, 4, 0)
    names = nn.get_parameters(grad_only=False)
    assert "SharedD/affine/W" in names and not any(k.startswith("Affine_3/") for k in names)


def sgd_graph(tmp_path, mult):
    text = f"""
dataset: {{name: mnist}}
config: {{batch_size: 4, max_epoch: 1}}
networks:
  N:
    layers:
      - {{name: x, type: Input, size: [1, 28, 28], dataset: x}}
      - {{name: A, type: Affine, out_shape: 3, lr_mult: {{W: {mult}, b: 1}}}}
      - {{name: B, type: Affine, out_shape: 1}}
      - {{name: L, type: SquaredError, target: {{generator: Constant, multiplier: 1}}}}
optimizers:
  N: {{network: N, solver: {{type: Sgd, lr: 0.1}}}}
executors:
  E: {{network: N, output: B}}
"""
    p = tmp_path / f"sgd_{mult}.yaml"
    p.write_text(text)
    return parse_graph(p)


def sgd_delta(tmp_path, mult):
    nn.clear_parameters()
    graph = sgd_graph(tmp_path, mult)
    nets, rng = build_all(graph, 4, seed=5)
    opt = OptimizerStep(graph.optimizers[0], nets["N"])
    params = nn.get_parameters(grad_only=False)
    before = {k: v.d.copy() for k, v in params.items()}
    opt(batch_for(nets["N"]), rng, 0)
    return {k: params[k].d - before[k] for k in before}


def test_half_multiplier_gives_half_the_step_under_sgd(tmp_path):
    full, half, zero = (sgd_delta(tmp_path, m) for m in (1.0, 0.5, 0.0))
    assert np.abs(full["A/affine/W"]).max() > 1e-6
    np.testing.assert_allclose(half["A/affine/W"], 0.5 * full["A/affine/W"], rtol=1e-5, atol=1e-7)
    assert not np.any(zero["A/affine/W"])
    # the other parameters take the same step whatever A/W's multiplier
    np.testing.assert_allclose(half["B/affine/W"], full["B/affine/W"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(half["A/affine/b"], full["A/affine/b"], rtol=1e-5, atol=1e-7)


def test_bce_after_sigmoid_is_fused_and_finite(tmp_path):
    graph = sgd_graph(tmp_path, 1.0)
    text = graph.text.replace("- {name: L, type: SquaredError",
                              "- {name: S, type: Sigmoid}\n      - {name: L, type: BinaryCrossEntropy")
    p = tmp_path / "bce.yaml"
    p.write_text(text)
    net = build_network(parse_graph(p).networks["N"], 4)
    logit = net.outputs["B"]
    assert net.outputs["L"].parent.name == "SigmoidCrossEntropy"
    # the same value as BCE of the sigmoid where that is finite ...
    z = nn.Variable.from_numpy_array(np.array([[-3.0], [0.0], [2.0], [5.0]], np.float32))
    t = nn.Variable.from_numpy_array(np.ones((4, 1), np.float32))
    fused, plain = F.sigmoid_cross_entropy(z, t), F.binary_cross_entropy(F.sigmoid(z), t)
    F.sink(fused, plain).forward()
    np.testing.assert_allclose(fused.d, plain.d, rtol=1e-5)
    # ... and finite where sigmoid saturates to 0 and plain BCE would take log(0)
    z.d = np.array([[-200.0], [200.0], [-100.0], [100.0]])
    fused.forward()
    assert np.all(np.isfinite(fused.d)) and fused.d[0, 0] == pytest.approx(200.0)
    assert logit.shape == (4, 1)


@pytest.mark.parametrize("target", ["{generator: Constant, multiplier: 0.9}", "{dataset: y}"])
def test_bce_after_sigmoid_learns_a_soft_target(tmp_path, target):
    """Label smoothing (a real image's target 0.9) and a dataset's target in [0, 1]: NNabla's
    SigmoidCrossEntropy reads its target as an integer (0.9 -> 0), so the fused loss must not use it."""
    text = sgd_graph(tmp_path, 1.0).text.replace(
        "- {name: L, type: SquaredError, target: {generator: Constant, multiplier: 1}}",
        "- {name: S, type: Sigmoid}\n      - {name: L, type: BinaryCrossEntropy, target: " + target + "}")
    p = tmp_path / "soft.yaml"
    p.write_text(text)
    net = build_network(parse_graph(p).networks["N"], 4)
    batch = batch_for(net)
    batch["y"] = np.full((4, 1), 0.9, np.float32)
    net.feed(batch, np.random.RandomState(0))
    net.loss.forward()
    z = net.outputs["B"].d.astype(np.float64)
    np.testing.assert_allclose(net.outputs["L"].d, np.logaddexp(0, z) - 0.9 * z, rtol=1e-5)
    for v in nn.get_parameters().values():
        v.grad.zero()
    net.loss.backward()
    dz = (1 / (1 + np.exp(-z)) - 0.9) / 4   # d mean / d logit
    h = net.outputs["A"].d
    np.testing.assert_allclose(nn.get_parameters()["B/affine/b"].g.ravel(), dz.sum(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(nn.get_parameters()["B/affine/W"].g, h.T @ dz, rtol=1e-4, atol=1e-7)


def test_cudnn_request_falls_back_to_cpu_with_one_notice(monkeypatch):
    from nncgan import context
    monkeypatch.setattr(context, "cuda_available", lambda: False)
    said = []
    assert context.select("cudnn", log=said.append) == "cpu"
    assert len(said) == 1 and "CPU" in said[0]
    assert nn.get_current_context().backend[0].startswith("cpu")
    said.clear()
    assert context.select("cpu", log=said.append) == "cpu" and said == []
