"""A layer type is one class: its parameters, NNC property names and NNP conversion are read off
it by validation, the builder, `import` (NNC and NNP) and `export` (NNP); loss targets are data."""
import textwrap

import nnabla as nn
import numpy as np
import pytest
import yaml
from nnabla.utils.save import create_proto

from nncgan.builder import build_network
from nncgan.graph import render
from nncgan.graph.parse import parse_graph
from nncgan.interop import nnc_import, nnp_import
from nncgan.interop.nnp_export import _Traced, _parameters
from nncgan.interop.sdcproj import NncLayer, Project
from nncgan.layers import REGISTRY
from nncgan.layers.base import LayerType, Param, Setting, int_, register
from nncgan.view import layout

X, V = [3, 4, 4], [6]
# An example for each importable type that needs more than one input of shape X: settings away
# from their defaults where NNP holds them, and the inputs' shapes (a loss: prediction, target).
EXAMPLES = {
    "Affine": ({"out_shape": [5], "with_bias": False}, [X]),
    "Convolution": ({"out_maps": 6, "kernel_shape": [3, 2], "pad": [1, 0], "stride": [2, 1], "dilation": [1, 2],
                     "group": 3}, [X]),
    "DepthwiseConvolution": ({"kernel_shape": [3, 2], "pad": [1, 0], "stride": [1, 2], "dilation": [2, 1],
                              "multiplier": 2, "with_bias": False}, [X]),
    "Deconvolution": ({"out_maps": 2, "kernel_shape": [3, 3], "pad": [1, 1], "stride": [2, 2], "dilation": [1, 1],
                       "group": 1, "with_bias": False}, [X]),
    "BatchNormalization": ({"decay_rate": 0.8, "epsilon": 1e-4, "batch_stat": False,
                            "var_init": {"type": "Constant", "multiplier": 0.0}}, [X]),
    "InstanceNormalization": ({"epsilon": 1e-3, "no_bias": True}, [X]),
    "LayerNormalization": ({"epsilon": 1e-3, "no_scale": True}, [X]),
    "GroupNormalization": ({"num_groups": 3, "epsilon": 1e-3}, [X]),
    "PReLU": ({"shared": True, "slope_init": {"type": "Constant", "multiplier": 0.5}}, [X]),
    "Embed": ({"n_inputs": 10, "n_features": 4}, [[1]]),
    "OneHot": ({"shape": [7]}, [[1]]),
    "LeakyReLU": ({"alpha": 0.3}, [X]),
    "ELU": ({"alpha": 0.5}, [X]),
    "Concatenate": ({"axis": 1}, [X, X]),
    "Reshape": ({"out_shape": [12, 4]}, [X]),
    "Unpooling": ({"kernel_shape": [2, 3]}, [X]),
    "MaxPooling": ({"kernel_shape": [2, 2], "stride": [1, 2], "pad": [1, 0], "ignore_border": False}, [X]),
    "AveragePooling": ({"kernel_shape": [2, 2], "stride": [2, 2], "pad": [0, 0], "ignore_border": True}, [X]),
    "SumPooling": ({"kernel_shape": [2, 1], "stride": [2, 1], "pad": [0, 0], "ignore_border": True}, [X]),
    "SoftmaxCrossEntropy": ({}, [V, [1]]),
    "CategoricalCrossEntropy": ({}, [V, [1]]),
    "HuberLoss": ({"delta": 0.5}, [X, X]),
    # types that NNP does not import, for their NNC properties
    "Broadcast": ({"shape": [3, 4, 4]}, [[3, 1, 4]]),
    "Interpolate": ({"output_size": [8, 6], "mode": "nearest", "align_corners": True}, [X]),
    "Pad": ({"pad_width": [1, 1, 1, 1], "mode": "reflect"}, [X]),
    "RandomCrop": ({"shape": [3, 2, 2]}, [X]),
    "RandomShift": ({"shifts": [0, 1, 1], "border_mode": "reflect"}, [X]),
    "Shift": ({"shifts": [0, 1, -1]}, [X]),
    "Slice": ({"start": [0, 1, 0], "stop": [2, 4, 4], "step": [1, 1, 2]}, [X]),
    "Tile": ({"reps": [1, 2, 1]}, [X]),
    "Transpose": ({"axes": [1, 2, 0]}, [X]),
    "EpsilonInsensitiveLoss": ({"epsilon": 0.25}, [X, X]),
}


def _example(name):
    lt = REGISTRY[name]
    if name in EXAMPLES:
        return EXAMPLES[name]
    assert not any(s.required for s in lt.settings.values()), f"{name} needs an entry in EXAMPLES"
    settings = {"val": 0.5} if "val" in lt.settings else {}
    n = (lt.num_inputs[0] or 1)
    return settings, [X] * n


def _graph(tmp_path, ltype, settings, shapes):
    lt = REGISTRY[ltype]
    layers = [{"name": f"x{i}", "type": "Input", "size": list(s), "generator": "Constant"}
              for i, s in enumerate(shapes)]
    layer = {"name": "T", "type": ltype, "inputs": [f"x{i}" for i in range(len(shapes))], **settings}
    layers.append(layer)
    if lt.is_loss:
        layer.update(inputs=["x0"], target="x1")
    else:  # an optimizer needs a loss
        layers.append({"name": "L", "type": "SquaredError", "inputs": ["T"],
                       "target": {"generator": "Constant", "multiplier": 0}})
    data = {"dataset": {"name": "mnist"}, "config": {"batch_size": 2, "max_epoch": 1},
            "networks": {"N": {"layers": layers}}, "optimizers": {"N": {"network": "N", "solver": "Sgd"}},
            "executors": {"E": {"network": "N", "output": "T"}}}
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(data))
    return parse_graph(p)


def _nnp_round_trip(graph):
    """The graph's network traced into an NNP network definition and imported back: layer dicts."""
    nn.clear_parameters()
    traced = _Traced(graph.networks["N"], 2)
    proto = create_proto({"networks": [traced.content]}, variable_batch_size=True)
    net = proto.network[0]
    traced.finish(net)
    gens = {var: (kind, mult) for var, kind, mult in traced.generators}
    mults = {path: m for path, (m, _) in traced.params.items()}
    nn.clear_parameters()
    return {l["name"]: l for l in nnp_import._network(net, "test", ({}, gens), mults)["layers"]}


def _same_settings(lt, written, original):
    """Every setting of the imported layer (its default where the import left it out) is the original's."""
    for key, spec in lt.settings.items():
        got = spec.parse(written[key]) if key in written else spec.default
        assert got == original[key], (lt.type_name, key, written.get(key), original[key])


@pytest.mark.parametrize("ltype", sorted(n for n, lt in REGISTRY.items() if lt.nnp_import))
def test_every_importable_layer_round_trips_through_an_nnp(tmp_path, ltype):
    settings, shapes = _example(ltype)
    graph = _graph(tmp_path, ltype, settings, shapes)
    layer = graph.networks["N"].layer("T")
    imported = _nnp_round_trip(graph)
    back = imported["T"]
    assert back["type"] == ltype
    _same_settings(REGISTRY[ltype], back, layer.settings)
    if REGISTRY[ltype].is_loss:
        assert back["target"] == {"generator": "Constant", "multiplier": 1.0}   # x1, drawn


def test_the_importable_types_are_the_ones_nncgan_read_before():
    """nnp_import's tables (PLAIN, SCALAR, LOSSES, _CONVERT) became `nnp_import` on the classes."""
    assert set(nnp_import.importable()) >= {
        "Affine", "Convolution", "Deconvolution", "BatchNormalization", "LeakyReLU", "ELU", "Concatenate",
        "Reshape", "Unpooling", "MaxPooling", "AveragePooling", "SumPooling", "InstanceNormalization",
        "LayerNormalization", "GroupNormalization", "PReLU", "Embed", "OneHot", "ReLU", "Sigmoid", "Tanh",
        "Identity", "Add2", "Swish", "GELU", "Sub2", "Round", "GlobalAveragePooling", "AddScalar", "RPowScalar",
        "BinaryCrossEntropy", "SigmoidCrossEntropy", "SquaredError", "AbsoluteError", "SoftmaxCrossEntropy",
        "HuberLoss", "EpsilonInsensitiveLoss"}
    # functions whose NNP arguments nncgan's layer does not hold are not read as that layer
    assert not {"SELU", "SoftPlus", "Softmax", "CReLU", "Pad", "Dropout", "Input"} & set(nnp_import.importable())


def _nnc_text(v):
    """A setting's value as an .sdcproj property value: True, 0.5, 3,2."""
    if isinstance(v, (tuple, list)):
        return ",".join(map(str, v))
    return str(v)


@pytest.mark.parametrize("ltype", sorted(n for n, lt in REGISTRY.items() if not lt.is_input))
def test_every_layer_reads_back_from_the_nnc_properties_it_declares(tmp_path, ltype):
    """A layer written with NNC's property names (`nnc_property`) and its parameters' Initializer
    properties imports from an .sdcproj layer to the same settings."""
    settings, shapes = _example(ltype)
    lt = REGISTRY[ltype]
    layer = _graph(tmp_path, ltype, settings, shapes).networks["N"].layer("T")
    props = {"Name": "T"}
    for key, v in layer.settings.items():
        if v is None:
            continue
        if key.endswith("_init") and any(p.init_setting == key for p in lt.parameters):
            pname = next(p.name for p in lt.parameters if p.init_setting == key)
            props[f"{pname}.Initializer"], props[f"{pname}.InitializerMultiplier"] = v[0], str(v[1])
        else:
            props[lt.nnc_property(key)] = _nnc_text(v)
    entry = nnc_import._sdc_layer(Project("p.sdcproj", "[Global]\n"), NncLayer("1", ltype, props, "N_Layer_0", 1),
                                  ["x0", "x1"][:len(shapes)])
    _same_settings(lt, entry, layer.settings)


def test_every_setting_has_one_nnc_property_that_names_it_back():
    for name, lt in REGISTRY.items():
        props = [lt.nnc_property(k) for k in lt.settings]
        assert len(set(props)) == len(props), name
        for key in lt.settings:
            assert lt.setting_of_property(lt.nnc_property(key)) == key, (name, key)
    conv = REGISTRY["Convolution"]
    assert (conv.nnc_property("pad"), conv.nnc_property("stride"), conv.nnc_property("out_maps")) == \
        ("Padding", "Strides", "OutMaps")
    assert REGISTRY["MaxPooling"].setting_of_property("Padding") == "pad"
    assert REGISTRY["Pad"].setting_of_property("PadWidth") == "pad_width"
    assert REGISTRY["Affine"].setting_of_property("Padding") is None


@pytest.mark.parametrize("ltype", ["MaxPooling", "AveragePooling", "SumPooling"])
def test_pooling_shapes_are_nnablas(ltype):
    """ignore_border false with a pad: NNabla's windows start within input + one pad, not two."""
    import itertools
    import nnabla.functions as F
    lt, fn = REGISTRY[ltype], getattr(F, REGISTRY[ltype].fn.__name__)
    for i, k, s, p, ib in itertools.product(range(1, 8), range(1, 4), range(1, 4), range(0, 3), (True, False)):
        if p >= k or (ib and i + 2 * p < k):
            continue
        want = fn(nn.Variable((1, 2, i, 5)), (k, 1), (s, 1), ib, (p, 0)).shape[1:]
        got = lt.out_shape({"kernel_shape": (k, 1), "stride": (s, 1), "pad": (p, 0), "ignore_border": ib}, [(2, i, 5)])
        assert got == want, (i, k, s, p, ib)


def test_each_parameter_is_declared_once_with_its_initializer_setting():
    for name, lt in REGISTRY.items():
        for p in lt.parameters:
            assert p.init_setting in lt.settings, (name, p.name)
        assert ("spectral_norm" in lt.settings) == any(p.spectral_norm is not None for p in lt.parameters), name
    bn = REGISTRY["BatchNormalization"]
    assert bn.params == ("beta", "gamma", "mean", "var") and bn.fixed_params == ("mean", "var")
    affine = REGISTRY["Affine"]
    assert affine.param_shapes({"out_shape": (5,), "with_bias": False}, [(3, 4)]) == {"W": (12, 5)}


def test_categorical_cross_entropy_is_nnablas(tmp_path):
    """A loss is one class: CategoricalCrossEntropy of probabilities against class indices."""
    import nnabla.functions as F
    graph = _graph(tmp_path, "CategoricalCrossEntropy", {}, [V, [1]])
    assert graph.networks["N"].layer("T").shape == (1,)
    nn.clear_parameters()
    built = build_network(graph.networks["N"], 2, np.random.RandomState(0))
    p = np.array([[0.1, 0.2, 0.3, 0.2, 0.1, 0.1], [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]], np.float32)
    built.outputs["x0"].d, built.outputs["x1"].d = p, [[2], [0]]
    built.loss.forward()
    assert built.loss_terms["T"][0] == 1.0
    np.testing.assert_allclose(built.outputs["T"].d, -np.log([[0.3], [0.5]]), rtol=1e-6)
    ref = F.categorical_cross_entropy(nn.Variable.from_numpy_array(p), nn.Variable.from_numpy_array(np.array([[2], [0]])))
    ref.forward()
    np.testing.assert_allclose(built.outputs["T"].d, ref.d, rtol=1e-6)


def test_export_writes_each_parameters_declared_initializer_and_learning(tmp_path):
    graph = _graph(tmp_path, "BatchNormalization", EXAMPLES["BatchNormalization"][0], [X])
    assert _parameters(graph.networks["N"]) == {
        "T/bn/beta": (1.0, ("Constant", 0.0)), "T/bn/gamma": (1.0, ("Constant", 1.0)),
        "T/bn/mean": (0.0, ("Constant", 0.0)), "T/bn/var": (0.0, ("Constant", 0.0))}   # running statistics: 0


# ---- adding a layer with a parameter is one class

class Scale(LayerType):
    """y = x * g, g one learned factor per map: the shape of a layer with a parameter."""
    type_name = "Scale"
    param_prefix = "scale"
    settings = {"maps_axis": Setting(int_(0), 0, doc="the sample axis g runs along")}
    parameters = (Param("g", lambda s, x: tuple(n if i == s["maps_axis"] else 1 for i, n in enumerate(x[0])),
                        ("Constant", 1.0)),)

    def build(self, s, xs, ctx):
        import nnabla.functions as F
        return F.mul2(xs[0], F.reshape(ctx.param("g"), (1,) + ctx.param("g").shape, inplace=False))


@pytest.fixture
def scale_layer():
    register(Scale)
    yield REGISTRY["Scale"]
    del REGISTRY["Scale"]


def test_a_layer_with_a_parameter_is_one_class(tmp_path, scale_layer):
    graph = _graph(tmp_path, "Scale", {"g_init": {"type": "Constant", "multiplier": 2.0}, "lr_mult": 0.5}, [X])
    layer = graph.networks["N"].layer("T")
    assert layer.settings["g_init"] == ("Constant", 2.0) and layer.lr_mult == {"g": 0.5}
    assert layer.shape == tuple(X)
    nn.clear_parameters()
    built = build_network(graph.networks["N"], 2, np.random.RandomState(0))
    assert list(built.trainable) == ["T/scale/g"]
    g, mult = built.trainable["T/scale/g"]
    assert g.shape == (3, 1, 1) and mult == 0.5 and np.all(g.d == 2.0)
    assert _parameters(graph.networks["N"]) == {"T/scale/g": (0.5, ("Constant", 2.0))}   # as export writes it
    nn.clear_parameters()
    # NNC's properties of it are read by the importer: MapsAxis, g.Initializer, g.LRateMultiplier
    project = Project("p.sdcproj", "[Global]\n")
    entry = nnc_import._sdc_layer(project, NncLayer("1", "Scale", {
        "Name": "S", "MapsAxis": "1", "g.Initializer": "Constant", "g.InitializerMultiplier": "3.0",
        "g.LRateMultiplier": "0"}, "N_Layer_0", 1), ["x"])
    assert entry == {"name": "S", "type": "Scale", "inputs": ["x"], "maps_axis": 1,
                     "g_init": {"type": "Constant", "multiplier": 3.0}, "lr_mult": 0.0}


# ---- loss targets are data, not a '.T' name

USER_T = textwrap.dedent("""\
    nncgan: 1
    name: t
    dataset: {name: mnist}
    config: {batch_size: 4, max_epoch: 1, seed: 1}
    networks:
      N:
        layers:
          - {name: X, type: Input, size: [1, 28, 28], dataset: x}
          - {name: L.T, type: Input, size: [1], dataset: y}
          - {name: A, type: Affine, input: X, out_shape: 10}
          - {name: L, type: SoftmaxCrossEntropy, input: A, target: L.T}
          - {name: M, type: SquaredError, input: A, target: {generator: Constant, multiplier: 0}}
    optimizers: {o: {network: N, solver: Adam}}
    executors: {e: {network: N, output: A}}
    """)


def test_a_users_input_named_like_a_target_stays_a_layer(tmp_path):
    """An Input the user named 'L.T' and gave to loss L by name is theirs: `render` keeps it and
    `view` draws it as an input; only M's `target: {...}` is written back as a target."""
    path = tmp_path / "g.yaml"
    path.write_text(USER_T)
    graph = parse_graph(path)
    net = graph.networks["N"]
    data = render.resolved(graph)
    layers = {l["name"]: l for l in data["networks"]["N"]["layers"]}
    assert "L.T" in layers and layers["L"]["target"] == "L.T"
    assert layers["M"]["target"] == {"generator": "Constant", "multiplier": 0.0} and "M.T" not in layers
    again = tmp_path / "r.yaml"
    again.write_text(render.render(graph))
    assert [l.name for l in parse_graph(again).networks["N"].layers] == [l.name for l in net.layers]
    assert not layout.is_implicit_target(net.layer("L.T"), net)
    assert layout.is_implicit_target(net.layer("M.T"), net)
    assert net.layer("M.T").target_of == "M" and net.layer("L.T").target_of is None


def test_an_unknown_nnc_property_is_answered_with_the_declared_names():
    from nncgan.interop.sdcproj import ImportError_
    with pytest.raises(ImportError_) as e:
        nnc_import._sdc_layer(Project("p.sdcproj", "[Global]\n"),
                              NncLayer("1", "Convolution", {"Name": "C", "Pad": "1", "Bogus": "1"}, "N_Layer_0", 3), ["x"])
    msg = str(e.value)
    assert msg.startswith("p.sdcproj:3: [N_Layer_0] expected properties of Convolution that nncgan reads (")
    assert "Padding, " in msg and "W.Initializer, " in msg and "got Bogus='1'" in msg and "WInit" not in msg
