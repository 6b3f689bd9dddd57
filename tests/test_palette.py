"""Each palette layer against the NNabla function it wraps: value and gradients, from a graph file."""
import numpy as np
import nnabla as nn
import nnabla.functions as F
import pytest
import yaml

from nncgan import cli
from nncgan.builder import build_network
from nncgan.errors import GraphError
from nncgan.graph.parse import parse_graph

X = (3, 4, 4)        # one sample: maps, height, width
V = (6,)


def r(a):
    """A reference Variable holding `a` (needs a gradient)."""
    return nn.Variable.from_numpy_array(np.array(a, np.float32), need_grad=True)


# (type, settings, sample shapes of the inputs, positive inputs?, reference: (xs, params) -> Variable)
CASES = [
    ("Swish", {}, [X], False, lambda x, p: F.swish(x[0])),
    ("GELU", {}, [X], False, lambda x, p: F.gelu(x[0])),
    ("SELU", {}, [X], False, lambda x, p: F.selu(x[0])),
    ("SoftPlus", {}, [X], False, lambda x, p: F.softplus(x[0])),
    ("SoftSign", {}, [X], False, lambda x, p: F.softsign(x[0])),
    ("ReLU6", {}, [X], False, lambda x, p: F.relu6(x[0])),
    ("Mish", {}, [X], False, lambda x, p: F.mish(x[0])),
    ("LogSigmoid", {}, [X], False, lambda x, p: F.log_sigmoid(x[0])),
    ("TanhShrink", {}, [X], False, lambda x, p: F.tanh_shrink(x[0])),
    ("Sin", {}, [X], False, lambda x, p: F.sin(x[0])),
    ("ATan", {}, [X], False, lambda x, p: F.atan(x[0])),
    ("Erf", {}, [X], False, lambda x, p: F.erf(x[0])),
    ("CELU", {"alpha": 0.5}, [X], False, lambda x, p: F.celu(x[0], 0.5, 1)),
    ("MaximumScalar", {"val": 0.2}, [X], False, lambda x, p: F.maximum_scalar(x[0], 0.2)),
    ("RPowScalar", {"val": 2}, [X], False, lambda x, p: F.r_pow_scalar(x[0], 2.0)),
    ("Prod", {"axes": [0]}, [X], False, lambda x, p: F.prod(x[0], axis=[1])),
    ("Shift", {"shifts": [0, 1, -1]}, [X], False, lambda x, p: F.shift(x[0], (0, 1, -1))),
    ("HardTanh", {}, [X], False, lambda x, p: F.hard_tanh(x[0])),
    ("HardSigmoid", {}, [X], False, lambda x, p: F.hard_sigmoid(x[0])),
    ("CReLU", {}, [X], False, lambda x, p: F.crelu(x[0], 1)),
    ("Softmax", {}, [V], False, lambda x, p: F.softmax(x[0])),
    ("Softmax", {"axis": 0}, [X], False, lambda x, p: F.softmax(x[0], axis=1)),
    ("LogSoftmax", {}, [V], False, lambda x, p: F.log_softmax(x[0])),
    ("Abs", {}, [X], False, lambda x, p: F.abs(x[0])),
    ("Exp", {}, [X], False, lambda x, p: F.exp(x[0])),
    ("Log", {}, [X], True, lambda x, p: F.log(x[0])),
    ("Sub2", {}, [X, X], False, lambda x, p: F.sub2(x[0], x[1])),
    ("Mul2", {}, [X, X], False, lambda x, p: F.mul2(x[0], x[1])),
    ("Mul2", {}, [X, (3, 1, 1)], False, lambda x, p: F.mul2(x[0], x[1])),   # broadcast: a per-map scale
    ("Div2", {}, [X, X], True, lambda x, p: F.div2(x[0], x[1])),
    ("Pow2", {}, [X, X], True, lambda x, p: F.pow2(x[0], x[1])),
    ("Maximum2", {}, [X, X], False, lambda x, p: F.maximum2(x[0], x[1])),
    ("Minimum2", {}, [X, X], False, lambda x, p: F.minimum2(x[0], x[1])),
    ("AddScalar", {"val": 0.5}, [X], False, lambda x, p: F.add_scalar(x[0], 0.5)),
    ("MulScalar", {"val": -2}, [X], False, lambda x, p: F.mul_scalar(x[0], -2.0)),
    ("PowScalar", {"val": 3}, [X], False, lambda x, p: F.pow_scalar(x[0], 3.0)),
    ("RSubScalar", {"val": 1}, [X], False, lambda x, p: F.r_sub_scalar(x[0], 1.0)),
    ("RDivScalar", {"val": 2}, [X], True, lambda x, p: F.r_div_scalar(x[0], 2.0)),
    ("Pad", {"pad_width": [1, 2, 0, 1]}, [X], False, lambda x, p: F.pad(x[0], (1, 2, 0, 1))),
    ("Pad", {"pad_width": [1, 1, 1, 1], "mode": "reflect"}, [X], False,
     lambda x, p: F.pad(x[0], (1, 1, 1, 1), "reflect")),
    ("Slice", {"start": [0, 1, 0], "stop": [2, 4, 4], "step": [1, 1, 2]}, [X], False,
     lambda x, p: F.slice(x[0], (0, 0, 1, 0), (2, 2, 4, 4), (1, 1, 1, 2))),
    ("Split", {"axis": 0, "index": 1}, [X], False, lambda x, p: F.split(x[0], axis=1)[1]),
    ("Stack", {"axis": 0}, [X, X], False, lambda x, p: F.stack(x[0], x[1], axis=1)),
    ("Tile", {"reps": [1, 2, 1]}, [X], False, lambda x, p: F.tile(x[0], (1, 1, 2, 1))),
    ("Transpose", {"axes": [1, 2, 0]}, [X], False, lambda x, p: F.transpose(x[0], (0, 2, 3, 1))),
    ("Broadcast", {"shape": [3, 4, 4]}, [(3, 1, 4)], False, lambda x, p: F.broadcast(x[0], (2, 3, 4, 4))),
    ("Flip", {"axes": [2]}, [X], False, lambda x, p: F.flip(x[0], [3])),
    ("Interpolate", {"output_size": [8, 8]}, [X], False,
     lambda x, p: F.interpolate(x[0], output_size=(8, 8), mode="linear")),
    ("Interpolate", {"output_size": [8, 6], "mode": "nearest"}, [X], False,
     lambda x, p: F.interpolate(x[0], output_size=(8, 6), mode="nearest")),
    ("GlobalAveragePooling", {}, [X], False, lambda x, p: F.global_average_pooling(x[0])),
    ("Sum", {}, [X], False, lambda x, p: F.sum(x[0], axis=[1, 2, 3])),
    ("Mean", {"axes": [1, 2], "keep_dims": True}, [X], False, lambda x, p: F.mean(x[0], axis=[2, 3], keepdims=True)),
    ("Max", {"axes": [0]}, [X], False, lambda x, p: F.max(x[0], axis=[1])),
    ("Min", {"axes": [2]}, [X], False, lambda x, p: F.min(x[0], axis=[3])),
    ("InstanceNormalization", {}, [X], False,
     lambda x, p: F.instance_normalization(x[0], p["beta"], p["gamma"], channel_axis=1, batch_axis=0)),
    ("LayerNormalization", {"epsilon": 1e-3}, [X], False,
     lambda x, p: F.layer_normalization(x[0], p["beta"], p["gamma"], batch_axis=0, eps=1e-3)),
    ("GroupNormalization", {"num_groups": 3}, [(6, 2, 2)], False,
     lambda x, p: F.group_normalization(x[0], p["beta"], p["gamma"], num_groups=3, channel_axis=1, batch_axis=0)),
    ("PReLU", {"slope_init": {"type": "Constant", "multiplier": 0.3}}, [X], False,
     lambda x, p: F.prelu(x[0], p["slope"], base_axis=1)),
    ("PReLU", {"shared": True}, [V], False, lambda x, p: F.prelu(x[0], p["slope"], base_axis=1)),
    ("HuberLoss", {"delta": 0.5}, [X, X], False, lambda x, p: F.huber_loss(x[0], x[1], 0.5)),
    ("EpsilonInsensitiveLoss", {"epsilon": 0.3}, [X, X], False,
     lambda x, p: F.epsilon_insensitive_loss(x[0], x[1], 0.3)),
    ("SumPooling", {"kernel_shape": [2, 2]}, [X], False, lambda x, p: F.sum_pooling(x[0], (2, 2))),
    ("DepthwiseConvolution", {"kernel_shape": [3, 3], "pad": [1, 1], "multiplier": 2}, [X], False,
     lambda x, p: F.depthwise_convolution(x[0], p["W"], p["b"], pad=(1, 1), multiplier=2)),
]
PARAMS = {"InstanceNormalization": ("instance_normalization", ("beta", "gamma")),
          "LayerNormalization": ("layer_normalization", ("beta", "gamma")),
          "GroupNormalization": ("group_normalization", ("beta", "gamma")),
          "PReLU": ("prelu", ("slope",)),
          "DepthwiseConvolution": ("depthwise_conv", ("W", "b"))}


def _graph(tmp_path, ltype, settings, shapes, loss=True):
    layers = [{"name": f"x{i}", "type": "Input", "size": list(s), "generator": "Normal"} for i, s in enumerate(shapes)]
    t = {"name": "T", "type": ltype, "inputs": [f"x{i}" for i in range(len(shapes))], **settings}
    if ltype in ("HuberLoss", "EpsilonInsensitiveLoss"):
        t.update(inputs=["x0"], target="x1")
    layers.append(t)
    if ltype not in ("HuberLoss", "EpsilonInsensitiveLoss"):
        layers.append({"name": "L", "type": "SquaredError", "inputs": ["T"],
                       "target": {"generator": "Constant", "multiplier": 0}})
    data = {"dataset": {"name": "mnist"}, "config": {"batch_size": 2, "max_epoch": 1},
            "networks": {"N": {"layers": layers}},
            "optimizers": {"N": {"network": "N", "solver": "Sgd"}},
            "executors": {"E": {"network": "N", "output": "T"}}}
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(data))
    return parse_graph(p)


@pytest.mark.parametrize("ltype, settings, shapes, positive, ref", CASES,
                         ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_layer_value_and_gradients_are_nnablas(tmp_path, ltype, settings, shapes, positive, ref):
    graph = _graph(tmp_path, ltype, settings, shapes)
    net = graph.networks["N"]
    assert net.layer("T").shape == tuple(ref([r(np.zeros((2,) + s)) for s in shapes], _zero_params(ltype)).shape[1:])
    built = build_network(net, 2, np.random.RandomState(0))
    rng = np.random.RandomState(1)
    data = [rng.uniform(0.5, 2.0, (2,) + s) if positive else rng.randn(2, *s) for s in shapes]
    xs = [built.outputs[f"x{i}"] for i in range(len(shapes))]
    for x, d in zip(xs, data):
        x.d, x.need_grad = d, True
    y = built.outputs["T"]
    y.forward()
    dy = rng.randn(*y.shape).astype(np.float32)
    for x in xs:
        x.grad.zero()
    params = _params(ltype)
    for v in params.values():
        v.grad.zero()
    y.backward(dy)
    # NNabla's function on copies of the same inputs and parameters
    rx = [r(d) for d in data]
    rp = {k: r(v.d) for k, v in params.items()}
    ry = ref(rx, rp)
    ry.forward()
    ry.backward(dy)
    np.testing.assert_allclose(y.d, ry.d, rtol=1e-5, atol=1e-6)
    for x, rxi in zip(xs, rx):
        np.testing.assert_allclose(x.g, rxi.g, rtol=1e-4, atol=1e-5)
    for k in params:
        np.testing.assert_allclose(params[k].g, rp[k].g, rtol=1e-4, atol=1e-5)
    assert set(params) == set(PARAMS.get(ltype, ((), ()))[1])


def _params(ltype):
    if ltype not in PARAMS:
        return {}
    prefix, names = PARAMS[ltype]
    allp = nn.get_parameters(grad_only=False)
    return {n: allp[f"T/{prefix}/{n}"] for n in names}


def _zero_params(ltype):
    """Parameter stand-ins for the shape check before building: what NNabla's setup needs."""
    return {"beta": None, "gamma": None, "slope": r(np.zeros(())) if ltype == "PReLU" else None,
            "W": r(np.zeros((6, 3, 3))), "b": None}


def test_embed_maps_indices_to_learned_rows(tmp_path):
    data = {"dataset": {"name": "mnist"}, "config": {"batch_size": 4, "max_epoch": 1},
            "networks": {"N": {"layers": [
                {"name": "y", "type": "Input", "size": [1], "dataset": "y"},
                {"name": "T", "type": "Embed", "n_inputs": 10, "n_features": 5},
                {"name": "L", "type": "SquaredError", "target": {"generator": "Constant", "multiplier": 0}}]}},
            "optimizers": {"N": {"network": "N", "solver": "Sgd"}},
            "executors": {"E": {"network": "N", "output": "T"}}}
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(data))
    net = parse_graph(p).networks["N"]
    assert net.layer("T").shape == (1, 5)
    built = build_network(net, 4, np.random.RandomState(0))
    built.outputs["y"].d = np.array([[3], [0], [9], [3]])
    y = built.outputs["T"]
    y.forward()
    w = nn.get_parameters(grad_only=False)["T/embed/W"]
    np.testing.assert_array_equal(y.d[:, 0], w.d[[3, 0, 9, 3]])
    w.grad.zero()
    y.backward(np.ones(y.shape, np.float32))
    assert w.g[3].tolist() == [2.0] * 5 and w.g[1].tolist() == [0.0] * 5   # row 3 used twice


def test_random_flip_flips_whole_samples_and_its_gradient_follows(tmp_path):
    graph = _graph(tmp_path, "RandomFlip", {"axes": [2]}, [X])
    built = build_network(graph.networks["N"], 16, np.random.RandomState(0))
    x = built.outputs["x0"]
    x.d, x.need_grad = np.random.RandomState(2).randn(16, *X).astype(np.float32), True
    y = built.outputs["T"]
    y.forward()
    flipped = [np.array_equal(y.d[i], x.d[i, :, :, ::-1]) for i in range(16)]
    kept = [np.array_equal(y.d[i], x.d[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    x.grad.zero()
    dy = np.random.RandomState(3).randn(*y.shape).astype(np.float32)
    y.backward(dy)
    for i in range(16):
        np.testing.assert_array_equal(x.g[i], dy[i, :, :, ::-1] if flipped[i] else dy[i])


@pytest.mark.parametrize("ltype, settings", [("RandomShift", {"shifts": [0, 1, 1]}),
                                             ("ImageAugmentation", {"angle": 0.2, "flip_lr": True})])
def test_augmentation_keeps_the_shape_and_is_seeded_by_the_run(tmp_path, ltype, settings):
    graph = _graph(tmp_path, ltype, settings, [X])
    assert graph.networks["N"].layer("T").shape == X
    outs = []
    for seed in (0, 0, 1):
        nn.clear_parameters()
        built = build_network(graph.networks["N"], 8, np.random.RandomState(seed))
        built.outputs["x0"].d = np.random.RandomState(2).randn(8, *X)
        built.outputs["T"].forward()
        outs.append(built.outputs["T"].d.copy())
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize("ltype, dim", [("Affine", 1), ("Convolution", 0), ("Deconvolution", 1)])
def test_spectral_norm_divides_the_weight_by_nnablas_estimate(tmp_path, ltype, dim):
    settings = {"Affine": {"out_shape": 5}, "Convolution": {"out_maps": 5, "kernel_shape": [3, 3]},
                "Deconvolution": {"out_maps": 5, "kernel_shape": [3, 3]}}[ltype]
    graph = _graph(tmp_path, ltype, {**settings, "spectral_norm": True, "with_bias": False}, [X])
    built = build_network(graph.networks["N"], 2, np.random.RandomState(0))
    prefix = {"Affine": "affine", "Convolution": "conv", "Deconvolution": "deconv"}[ltype]
    params = nn.get_parameters(grad_only=False)
    w, u = params[f"T/{prefix}/W"], params[f"T/{prefix}/u"]
    u0 = u.d.copy()
    ref_u = r(u0)
    ref = F.spectral_norm(r(w.d), ref_u, dim=dim, itr=1)
    ref.forward()
    built.outputs["x0"].d = np.random.RandomState(2).randn(2, *X)
    built.outputs["T"].forward()
    w_sn = r(ref.d)  # NNabla's normalised weight after one power iteration from the same u
    fn = {"Affine": lambda x: F.affine(x, w_sn), "Convolution": lambda x: F.convolution(x, w_sn),
          "Deconvolution": lambda x: F.deconvolution(x, w_sn)}[ltype]
    want = fn(r(built.outputs["x0"].d))
    want.forward()
    np.testing.assert_allclose(built.outputs["T"].d, want.d, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(u.d, u0)          # the power iteration's vector moves with each forward
    assert w in [v for v, _ in built.trainable.values()]


def test_unknown_type_is_grouped_with_suggestions(tmp_path, capsys):
    graph = _graph(tmp_path, "Swish", {}, [X])
    p = tmp_path / "g.yaml"
    p.write_text(p.read_text().replace("type: Swish", "type: InstanceNorm"))
    with pytest.raises(GraphError) as e:
        parse_graph(p)
    msg = str(e.value)
    assert "did you mean 'InstanceNormalization'" in msg and "Swish" not in msg   # a guess, not the whole list
    assert cli.main(["check", str(p)]) == 2
    p.write_text(p.read_text().replace("type: InstanceNorm", "type: Qwxyz"))
    with pytest.raises(GraphError) as e:
        parse_graph(p)
    msg = str(e.value)
    assert "normalization:" in msg.lower() and "Swish" in msg   # nothing close: grouped, not one flat list


def test_palette_layers_export_to_nnp_and_import_back(tmp_path, small_mnist):
    small_mnist["n"] = 32
    g = tmp_path / "pal.yaml"
    g.write_text("""
dataset: {name: mnist}
config: {batch_size: 8, max_epoch: 1}
networks:
  N:
    layers:
      - {name: z, type: Input, size: [4], generator: Normal}
      - {name: A, type: Affine, out_shape: [1, 28, 28], spectral_norm: true}
      - {name: I, type: InstanceNormalization, epsilon: 0.001}
      - {name: G, type: GroupNormalization, num_groups: 1, no_bias: true}
      - {name: P, type: PReLU}
      - {name: W, type: Swish}
      - {name: M, type: MulScalar, val: 0.5}
      - {name: S, type: AddScalar, val: 0.25}
      - {name: L, type: HuberLoss, delta: 0.5, target: {dataset: x}}
optimizers:
  N: {network: N, solver: Adam, weight_decay: 0.001}
executors:
  E: {network: N, output: S}
""")
    run, nnp = tmp_path / "run", tmp_path / "pal.nnp"
    assert cli.main(["train", str(g), "--out", str(run), "--quiet", "--context", "cpu"]) == 0
    assert cli.main(["export", str(run), "-o", str(nnp)]) == 0
    assert cli.main(["import", str(nnp), "-o", str(tmp_path / "back.yaml")]) == 0
    back = parse_graph(tmp_path / "back.yaml")
    layers = {l.type: l.settings for l in back.networks["N"].layers}
    assert layers["MulScalar"]["val"] == 0.5 and layers["AddScalar"]["val"] == 0.25
    assert "Swish" in layers and layers["HuberLoss"]["delta"] == 0.5
    assert back.optimizers[0].weight_decay == 0.001
    assert layers["InstanceNormalization"]["epsilon"] == pytest.approx(0.001)
    assert layers["GroupNormalization"]["no_bias"] and not layers["GroupNormalization"]["no_scale"]
    assert layers["PReLU"]["shared"] is False
    assert layers["Affine"]["spectral_norm"] is True
    import zipfile
    with zipfile.ZipFile(nnp) as z:  # the power iteration's vector travels with the parameters
        z.extract("parameter.protobuf", tmp_path / "p")
    nn.clear_parameters()
    nn.load_parameters(str(tmp_path / "p" / "parameter.protobuf"))
    assert "A/affine/u" in nn.get_parameters(grad_only=False)
