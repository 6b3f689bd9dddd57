"""The BLAS kernels (nncgan/layers/cpu_kernels.py) against NNabla's own functions.

Values and every gradient (x, W, b) over a table of shapes and settings, accumulated gradients
included; which function a layer gets (fallbacks); and three training iterations of cgan_mnist's
optimizers reaching NNabla's parameters. Tolerances: float32 GEMMs sum in another order than
NNabla's loops, so values and gradients agree to rtol 1e-4 with an absolute floor of 1e-5 times
the largest magnitude."""
import contextlib

import numpy as np
import nnabla as nn
import nnabla.functions as F
import pytest

from nncgan.builder import build_all, build_network
from nncgan.graph.parse import parse_graph
from nncgan.layers import cpu_kernels as K
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN

RTOL, FLOOR = 1e-4, 1e-5


@pytest.fixture
def every_layer(monkeypatch):
    """The kernels for every size (the tests' layers are small)."""
    from nncgan.layers import sync_bn
    monkeypatch.setattr(K, "MIN_FLOPS", 0)
    monkeypatch.setattr(K, "MIN_ELEMENTWISE", 0)
    monkeypatch.setattr(sync_bn, "MIN_SIZE", 0)
    monkeypatch.delenv(K.ENV, raising=False)


def p2(pad=(0, 0), stride=(1, 1), dilation=(1, 1), group=1):
    return dict(pad=pad, stride=stride, dilation=dilation, group=group)


# (kind, x shape, W shape, bias, settings, x needs a gradient)
CASES = [
    ("affine", (5, 7), (7, 9), True, dict(base_axis=1), True),
    ("affine", (4, 3, 5), (15, 2, 3), True, dict(base_axis=1), True),       # W with out_shape [2, 3]
    ("affine", (2, 3, 5, 4), (20, 6), False, dict(base_axis=2), True),      # base_axis 2, no bias
    ("affine", (3, 11), (11, 1), True, dict(base_axis=1), False),           # input without a gradient
    ("convolution", (3, 4, 9, 8), (6, 4, 3, 3), True, p2(), True),
    ("convolution", (2, 3, 9, 7), (5, 3, 5, 5), False, p2(pad=(2, 2), stride=(2, 2)), True),   # odd size, stride 2
    ("convolution", (2, 4, 10, 11), (6, 4, 3, 2), True, p2(pad=(1, 0), stride=(2, 3), dilation=(2, 1)), True),
    ("convolution", (3, 6, 7, 7), (4, 3, 3, 3), True, p2(pad=(1, 1), group=2), True),          # groups
    ("convolution", (2, 4, 13), (5, 4, 4), True, dict(pad=(1,), stride=(2,), dilation=(2,), group=1), True),  # 1-D
    ("convolution", (2, 11, 8, 8), (7, 11, 5, 5), False, p2(pad=(2, 2), stride=(2, 2)), False),  # label-table like
    # stride 1, fewer output than input channels: the products on the output side of the taps
    ("convolution", (2, 6, 16, 17), (1, 6, 7, 7), True, p2(pad=(1, 1)), True),                  # DCGAN's last layer
    ("convolution", (3, 8, 11, 9), (2, 8, 3, 2), False, p2(pad=(1, 0), dilation=(2, 1)), True),  # dilation, no bias
    ("convolution", (2, 6, 11), (2, 6, 3), True, dict(pad=(2,), stride=(1,), dilation=(2,), group=1), True),  # 1-D
    ("convolution", (2, 5, 10, 10), (2, 5, 3, 3), True, p2(pad=(1, 1)), False),                 # x without a gradient
    ("deconvolution", (3, 4, 7, 7), (4, 5, 6, 6), False, p2(pad=(2, 2), stride=(2, 2)), True),  # cgan_mnist's
    ("deconvolution", (2, 3, 5, 6), (3, 2, 3, 3), True, p2(), True),
    ("deconvolution", (2, 4, 5, 4), (4, 3, 3, 2), True, p2(pad=(0, 1), stride=(1, 2), dilation=(2, 1), group=2), True),
    ("deconvolution", (2, 6, 5), (6, 2, 3), True, dict(pad=(1,), stride=(3,), dilation=(1,), group=1), True),  # 1-D
    ("deconvolution", (2, 3, 4, 4), (3, 1, 4, 4), True, p2(pad=(1, 1), stride=(2, 2)), False),
    # one convolution per output phase (_phase_plan): 1-D stride 3, mixed strides with a bias, 3-D
    ("deconvolution", (2, 3, 4), (3, 2, 6), True, dict(pad=(0,), stride=(3,), dilation=(1,), group=1), True),
    ("deconvolution", (2, 5, 3, 4), (5, 3, 4, 3), True, p2(pad=(2, 1), stride=(2, 1)), True),
    ("deconvolution", (2, 3, 3, 2, 3), (3, 2, 4, 2, 3), False,
     dict(pad=(2, 0, 0), stride=(2, 2, 1), dilation=(1, 1, 1), group=1), True),
]


def _run(fn, arrays, need_x, settings, uses):
    """Forward and backward of sum_i <fn_i(x, W, b), dy_i> over `uses` uses of one (x, W, b), so
    that with 2 uses every gradient is accumulated into; NNabla's clearing on as in training."""
    x = nn.Variable.from_numpy_array(arrays[0], need_grad=need_x)
    params = [nn.Variable.from_numpy_array(a, need_grad=True) for a in arrays[1:]]
    terms, ys = [], []
    for u in range(uses):
        y = fn(x, *params, **settings) if len(params) == 2 else fn(x, params[0], None, **settings)
        y.persistent = True
        ys.append(y)
        dy = np.random.RandomState(10 + u).randn(*y.shape).astype(np.float32)
        terms.append(F.sum(y * nn.Variable.from_numpy_array(dy)))
    loss = terms[0] if uses == 1 else F.add2(*terms)
    for v in [x] + params:
        v.grad.zero()
    loss.forward(clear_no_need_grad=True)
    loss.backward(clear_buffer=True)
    names = set()
    loss.visit(lambda f: names.add(f.info.type_name))
    return [y.d.copy() for y in ys] + ([x.g.copy()] if need_x else []) + [p.g.copy() for p in params], names


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_kernel_equals_nnabla(case, uses, every_layer):
    _compare(case, uses)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "affine"][::2])
def test_work_arrays_made_per_call_when_large(case, every_layer, monkeypatch):
    """Work arrays over KEEP_BYTES are not kept (inference at a big batch): the same results."""
    monkeypatch.setattr(K._Scratch, "KEEP_BYTES", 0)
    _compare(case, 2)


TAPS_OUT_CASES = [c for c in CASES if c[0] == "convolution" and c[2][0] < c[1][1] and set(c[4]["stride"]) == {1}
                  and c[4]["group"] == 1]


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("case", TAPS_OUT_CASES)
def test_fewer_output_channels_at_stride_1_copy_no_patches(case, uses, every_layer, monkeypatch):
    """DCGAN's last layer (64 -> 1 channel, 7x7) and the like in small: the products on the output
    side of the taps, no im2col in forward or backward; NNabla's values and gradients either way."""
    monkeypatch.setattr(K, "WINOGRAD", False)
    calls = []
    im2col = K._im2col
    monkeypatch.setattr(K, "_im2col", lambda *a: calls.append(a[1]) or im2col(*a))
    _compare(case, uses)
    assert calls == []
    monkeypatch.setattr(K, "TAPS_OUT", False)
    _compare(case, uses)
    assert calls


WINOGRAD_CASES = [
    ("convolution", (3, 4, 9, 8), (6, 4, 3, 3), True, p2(), True),                   # no padding
    ("convolution", (2, 5, 7, 9), (3, 5, 3, 3), False, p2(pad=(1, 1)), True),        # odd output: last tiles cut
    ("convolution", (2, 3, 6, 5), (4, 3, 3, 3), True, p2(pad=(2, 1)), True),         # pad 2, 1
    ("convolution", (4, 6, 8, 8), (2, 6, 3, 3), True, p2(pad=(1, 1)), False),        # x without a gradient
    ("convolution", (2, 7, 12, 10), (5, 7, 3, 3), True, p2(pad=(1, 1)), True),       # several pieces (chunk)
]


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("chunk", [1, 1 << 18])
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_3x3_at_stride_1_by_winograd_equals_nnabla(case, chunk, uses, every_layer, monkeypatch):
    """Winograd's F(2x2, 3x3): NNabla's values, and gradients written or accumulated, in one piece and
    one tile row a piece; no patches taken. With WINOGRAD off, the same through im2col."""
    monkeypatch.setattr(K, "WINOGRAD_CHUNK", chunk)
    monkeypatch.setattr(K, "WINOGRAD_MIN_MAPS", 1)
    monkeypatch.setattr(K, "WINOGRAD_SPARE", 2)
    calls, pieces = [], []
    im2col, transform = K._im2col, K.BlasConvolution._transform_input
    monkeypatch.setattr(K, "_im2col", lambda *a: calls.append(a[1]) or im2col(*a))
    monkeypatch.setattr(K.BlasConvolution, "_transform_input", lambda self, xp, t0, tr, tw:
                        pieces.append(tr) or transform(self, xp, t0, tr, tw))
    _compare(case, uses)
    assert calls == [] and pieces and (chunk > 1 or set(pieces) == {1})
    monkeypatch.setattr(K, "WINOGRAD", False)
    monkeypatch.setattr(K, "TAPS_OUT", False)
    pieces.clear()
    _compare(case, uses)
    assert calls and not pieces


def test_winograd_work_arrays_of_the_same_shape_for_other_inputs_start_clean(every_layer, monkeypatch):
    """An 8x8 and a 7x7 input, pad 1, fill work arrays of one shape (4 tile rows of 2 either way): the
    smaller one's cut tiles read zeros, not the larger one's last row; input and output gradients alike."""
    monkeypatch.setattr(K, "WINOGRAD_MIN_MAPS", 1)
    monkeypatch.setattr(K, "WINOGRAD_SPARE", 2)
    pieces, transform = [], K.BlasConvolution._transform_input
    monkeypatch.setattr(K.BlasConvolution, "_transform_input", lambda self, *a: pieces.append(a) or transform(self, *a))
    rng = np.random.RandomState(0)
    arrays = [rng.randn(2, 3, 8, 8).astype(np.float32), rng.randn(2, 3, 7, 7).astype(np.float32),
              rng.randn(4, 3, 3, 3).astype(np.float32)]

    def two(conv):
        return lambda a, b, w: F.concatenate(F.reshape(conv(a, w, pad=(1, 1)), (2 * 4 * 64,)),
                                             F.reshape(conv(b, w, pad=(1, 1)), (2 * 4 * 49,)), axis=0)
    got, names = _generic(two(K.convolution), arrays, [True, True, True], 2)
    want, _ = _generic(two(F.convolution), arrays, [True, True, True], 2)
    assert "BlasConvolution" in names and pieces
    _assert_same(got, want)


def test_winograd_is_chosen_for_many_maps_and_tiles_that_fit(every_layer):
    """Where measured faster only: 64+ maps in and out, tiles of 2x2 covering the output with little spare."""
    def chosen(x_shape, w_shape):
        f = K.BlasConvolution(pad=(1, 1), stride=(1, 1), dilation=(1, 1), group=1, reuse=True, taps_out=True,
                              winograd=True, winograd_min_maps=K.WINOGRAD_MIN_MAPS, winograd_spare=K.WINOGRAD_SPARE)
        return f._winograd(x_shape, w_shape)
    assert chosen((16, 256, 28, 28), (128, 256, 3, 3)) and chosen((32, 64, 14, 14), (128, 64, 3, 3))
    assert not chosen((16, 64, 28, 28), (32, 64, 3, 3))          # 32 output maps
    assert not chosen((32, 128, 7, 7), (256, 128, 3, 3))         # 8x8 of tiles for 7x7
    assert not chosen((16, 256, 28, 28), (128, 256, 5, 5))       # not 3x3


def _compare(case, uses):
    kind, xs, ws, bias, settings, need_x = case
    rng = np.random.RandomState(0)
    arrays = [rng.randn(*xs).astype(np.float32), rng.randn(*ws).astype(np.float32)]
    if bias:
        arrays.append(rng.randn(*((ws[1] * settings.get("group", 1),) if kind == "deconvolution" else
                                  (ws[0],) if kind == "convolution" else ws[1:])).astype(np.float32))
    fast, fast_names = _run(getattr(K, kind), arrays, need_x, settings, uses)
    ref, ref_names = _run(getattr(F, kind), arrays, need_x, settings, uses)
    blas = "Blas" + kind.capitalize()
    assert blas in fast_names and blas not in ref_names
    assert len(fast) == len(ref)
    for what, a, b in zip(["y"] * uses + ["dx"] * need_x + ["dW", "db"], fast, ref):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=FLOOR * np.abs(b).max(), err_msg=f"{kind} {what}")


def _function_names(y):
    names = []
    y.visit(lambda f: names.append(f.info.type_name))
    return names


@pytest.mark.parametrize("fn, xs, ws, extra", [
    ("convolution", (2, 5, 5, 4), (3, 3, 3, 4), dict(channel_last=True)),
    ("convolution", (2, 3, 4, 5, 5), (3, 4, 3, 3), dict(base_axis=2)),
    ("deconvolution", (2, 4, 5, 5), (4, 3, 3, 3), dict(stride=(2, 2), output_padding=(1, 1))),
])
def test_settings_not_covered_fall_back(fn, xs, ws, extra, every_layer):
    x, w = nn.Variable(xs), nn.Variable(ws)
    names = _function_names(getattr(K, fn)(x, w, None, **extra))
    assert names == [fn.capitalize()]


def _generator_functions(**kw):
    graph = parse_graph(CGAN)
    return _function_names(build_network(graph.networks["Generator"], 64, **kw).loss)


def test_layers_choose_by_context_size_and_switch(monkeypatch):
    monkeypatch.delenv(K.ENV, raising=False)
    names = _generator_functions()
    # cgan_mnist at batch 64: the big layers on BLAS, the small ones (below MIN_FLOPS, with one input
    # map or one output map) on NNabla's.
    assert names.count("BlasAffine") == 2 and names.count("Affine") >= 2      # Affine (110->512), Affine_4, tables
    assert names.count("BlasDeconvolution") == 1 and names.count("Deconvolution") >= 1
    assert names.count("BlasConvolution") == 1 and names.count("Convolution") >= 1
    # batch normalization and ReLU: NumPy's on the maps, NNabla's on the (64, 512) affine outputs
    assert names.count("NumpyBatchNormalization") == 4 and names.count("BatchNormalization") == 2
    assert names.count("NumpyReLU") == 4 and names.count("ReLU") == 2
    assert {"BlasLabelTable", "BlasAddRows", "NumpySlice"} <= set(names) and "Add2" not in names
    monkeypatch.setenv(K.ENV, "nnabla")
    nn.clear_parameters()
    assert not any(n.startswith("Blas") for n in _generator_functions())
    monkeypatch.delenv(K.ENV)
    nn.clear_parameters()
    with K.disabled():
        assert not any(n.startswith("Blas") for n in _generator_functions())
    nn.clear_parameters()
    from nnabla.ext_utils import get_extension_context
    with nn.context_scope(get_extension_context("cpu", type_config="half")):
        assert not K.enabled()
    cuda = nn.Context(backend=["cudnn:float", "cuda:float", "cpu:float"], array_class="CudaCachedArray")
    with nn.context_scope(cuda):   # what context.select("cudnn") sets: NNabla's cuDNN functions stay
        assert not K.enabled()
    assert K.enabled()


@pytest.mark.parametrize("fn, xs, ws, kw, blas", [
    ("convolution", (8, 32, 14, 14), (32, 32, 3, 3), dict(pad=(1, 1)), True),       # CycleGAN's R: 29 MFLOP
    ("convolution", (8, 16, 28, 28), (1, 16, 5, 5), dict(pad=(2, 2)), True),        # CycleGAN's Out: 5 MFLOP
    ("convolution", (8, 1, 28, 28), (16, 1, 5, 5), dict(pad=(2, 2)), False),        # one input map
    ("convolution", (4, 8, 6, 6), (6, 4, 3, 3), dict(group=2), False),              # 4 maps per group
    ("deconvolution", (8, 32, 14, 14), (32, 16, 4, 4), dict(pad=(1, 1), stride=(2, 2)), True),   # 16 out
    ("deconvolution", (8, 32, 14, 14), (32, 1, 6, 6), dict(pad=(2, 2), stride=(2, 2)), False),   # 1 out
])
def test_small_layers_take_the_kernels_by_their_maps(fn, xs, ws, kw, blas, monkeypatch):
    """Under MIN_FLOPS, a (de)convolution of MIN_MAPS or more maps on W's second axis (input maps of a
    convolution, output maps of a deconvolution, per group) still takes the kernel; fewer keep NNabla's."""
    monkeypatch.delenv(K.ENV, raising=False)
    x = nn.Variable(xs)
    y = getattr(K, fn)(x, nn.Variable(ws), None, **kw)
    assert 2 * int(np.prod(ws)) * xs[0] * int(np.prod(y.shape[2:] if fn == "convolution" else xs[2:])) < K.MIN_FLOPS
    assert y.parent.info.type_name == ("Blas" + fn.capitalize() if blas else fn.capitalize())


# Seeds of the generators' noise. cgan_mnist at batch 8 has points where a ReLU input is ~0 and
# rounding flips it: from seed 0, iteration 2's Generator step, Affine_2's gradient differs by 1% of
# its largest value between NNabla's own plain and label-table formulations exactly as between these
# kernels and NNabla's (measured; seed 2 too). Seeds 1, 3, 4, 5, 6 stay clear of such points.
SEED, STEP_SEEDS = 1, [1, 3]


def _batch(i, batch):
    d = np.random.RandomState(100 + i)
    return {"x": d.rand(batch, 1, 28, 28).astype(np.float32),
            "y": d.randint(0, 10, (batch, 1)).astype(np.float32)}


def _train(batch, iters, kernels, seed=SEED, graph_file=CGAN):
    nn.clear_parameters()
    graph = parse_graph(graph_file, base_dir=CGAN.parent)
    with contextlib.nullcontext() if kernels else K.disabled():
        nets, _ = build_all(graph, batch, graph.config.seed)
    steps = [OptimizerStep(o, nets[o.network]) for o in graph.optimizers]
    names = {n for s in steps for n in _function_names(s.network.loss)}
    rng = np.random.RandomState(seed)
    losses = [[s(_batch(i, batch), rng, i) for s in steps] for i in range(iters)]
    return losses, {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}, names


ADAM = "solver: {type: Adam, alpha: 0.0005, beta1: 0.5, beta2: 0.999, eps: 1.0e-8}"


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_three_iterations_reach_nnabla_parameters(seed, every_layer, tmp_path):
    """cgan_mnist's three optimizers, 3 iterations, batch 8, every layer on the kernels, reach the
    parameters NNabla's own functions reach: each within 1e-5, and within 1% of how far NNabla's
    run moved that parameter (measured: 1.5e-6 and 0.04%); the losses within 1e-4.

    With the optimizers' solver Sgd (lr 0.01), not Adam: Adam's first steps are alpha x the sign of
    each gradient, so a ~0 gradient summed in another order moves a weight by 2 alpha at once and
    the GAN amplifies that; measured, NNabla's own two formulations of the label maps then end up to
    0.025 apart at batch 32, and these kernels 0.005-0.04 apart at batch 8 depending on seed and CPU.
    Adam's gradients are checked step by step below, its update in test_fused_adam.py."""
    sgd = tmp_path / "cgan_sgd.yaml"
    text = CGAN.read_text()
    assert text.count(ADAM) == 3
    sgd.write_text(text.replace(ADAM, "solver: {type: Sgd, lr: 0.01}"))
    _, init, _ = _train(8, 0, kernels=False, seed=seed, graph_file=sgd)
    losses_f, fast, fast_names = _train(8, 3, kernels=True, seed=seed, graph_file=sgd)
    losses_r, ref, ref_names = _train(8, 3, kernels=False, seed=seed, graph_file=sgd)
    assert {"BlasAffine", "BlasConvolution", "BlasDeconvolution", "NumpyBatchNormalization"} <= fast_names
    assert not any(n.startswith(("Blas", "Numpy")) for n in ref_names)
    np.testing.assert_allclose(losses_f, losses_r, rtol=1e-4)
    assert fast.keys() == ref.keys()
    for k in ref:
        moved = np.abs(ref[k] - init[k]).max()
        np.testing.assert_allclose(fast[k], ref[k], rtol=0, atol=min(1e-5, max(1e-2 * moved, 1e-7)), err_msg=k)


@pytest.mark.parametrize("seed", STEP_SEEDS)
def test_every_step_of_three_iterations_has_nnabla_gradients(seed, every_layer):
    """The networks built twice on one set of parameters, once per kind of kernel: at each of the
    optimizers' steps of 3 iterations, the kernels' gradients (from the same parameters, batch and
    noise, with NNabla's buffer clearing) equal NNabla's to 1e-4 of each gradient's largest value;
    then NNabla's step updates the shared parameters."""
    graph = parse_graph(CGAN)
    with K.disabled():
        ref_nets, _ = build_all(graph, 8, graph.config.seed)
    fast_nets, _ = build_all(graph, 8, graph.config.seed)   # same names: the same parameters
    ref = [OptimizerStep(o, ref_nets[o.network]) for o in graph.optimizers]
    fast = [fast_nets[o.network] for o in graph.optimizers]
    assert {"BlasAffine", "BlasConvolution", "BlasDeconvolution"} <= \
        {n for net in fast for n in _function_names(net.loss)}
    rng, params = np.random.RandomState(seed), nn.get_parameters(grad_only=False)
    for i in range(3):
        for step, net in zip(ref, fast):
            saved, state = {k: v.d.copy() for k, v in params.items()}, rng.get_state()
            for v, _ in net.trainable.values():
                v.grad.zero()
            net.feed(_batch(i, 8), rng)
            net.loss.forward(clear_no_need_grad=True)
            net.loss.backward(clear_buffer=True)
            got = {k: v.g.copy() for k, (v, _) in net.trainable.items()}
            for k, v in params.items():   # undo the batch statistics' moving averages
                v.d = saved[k]
            rng.set_state(state)
            step(_batch(i, 8), rng, i)
            for k, (v, _) in step.network.trainable.items():
                scale = np.abs(v.g).max() + 1e-12
                np.testing.assert_allclose(got[k] / scale, v.g / scale, atol=1e-4,
                                           err_msg=f"iteration {i} {step.opt.name} {k}")


def test_dcgan_steps_with_winograd_have_nnabla_gradients(monkeypatch):
    """DCGAN at 28 (the zoo's), batch 4, the layers chosen as in training (thresholds as they are):
    its 64+ map 3x3 convolutions go through Winograd, and each optimizer's gradients equal those of
    NNabla's own functions on the same parameters, batch and noise, to 1e-4 of the largest."""
    nn.clear_parameters()
    graph = parse_graph(CGAN.parent / "dcgan.yaml")
    with K.disabled():
        ref_nets, _ = build_all(graph, 4, graph.config.seed)
    fast_nets, _ = build_all(graph, 4, graph.config.seed)
    pieces, transform = [], K.BlasConvolution._transform_input
    monkeypatch.setattr(K.BlasConvolution, "_transform_input", lambda self, *a: pieces.append(a) or transform(self, *a))
    params = nn.get_parameters(grad_only=False)
    batch = {"x": np.random.RandomState(5).rand(4, 1, 28, 28).astype(np.float32)}
    for o in graph.optimizers:
        grads = []
        for nets in (fast_nets, ref_nets):
            net, saved, rng = nets[o.network], {k: v.d.copy() for k, v in params.items()}, np.random.RandomState(7)
            for v, _ in net.trainable.values():
                v.grad.zero()
            net.feed(batch, rng)
            net.loss.forward(clear_no_need_grad=True)
            net.loss.backward(clear_buffer=True)
            grads.append({k: v.g.copy() for k, (v, _) in net.trainable.items()})
            for k, v in params.items():   # the batch statistics' moving averages back
                v.d = saved[k]
        for k, want in grads[1].items():
            scale = np.abs(want).max() + 1e-12
            np.testing.assert_allclose(grads[0][k] / scale, want / scale, atol=1e-4, err_msg=f"{o.name} {k}")
    assert pieces


@pytest.mark.parametrize("fn, xs, ws, kw", [
    ("affine", (4, 6), (5, 3), {}),
    ("convolution", (2, 4, 6, 6), (3, 5, 3, 3), {}),                # input maps 4, W reads 5
    ("convolution", (2, 4, 3, 3), (3, 4, 5, 5), {}),                # kernel larger than the input
    ("deconvolution", (2, 4, 2, 2), (4, 3, 3, 3), dict(pad=(3, 3))),        # an output below one pixel
])
def test_mismatched_shapes_go_to_nnabla_which_refuses_them(fn, xs, ws, kw, every_layer):
    with pytest.raises(RuntimeError, match="Failed|mismatch|invalid|must"):
        getattr(K, fn)(nn.Variable(xs), nn.Variable(ws), None, **kw)


# ---- batch normalization (nncgan/layers/sync_bn.py) and ReLU: NumPy functions on the CPU context

def _run_bn(fn, xs, axes, uses, seed=0):
    """sum_i <BN_i(x), dy_i> over `uses` uses of one (x, beta, gamma) with one pair of running
    statistics: the outputs, the gradients of x, beta and gamma, and the running mean and variance."""
    rng = np.random.RandomState(seed)
    pshape = tuple(n if i in axes else 1 for i, n in enumerate(xs))
    x = nn.Variable.from_numpy_array((rng.randn(*xs) * 2 + 0.5).astype(np.float32), need_grad=True)
    beta, gamma = (nn.Variable.from_numpy_array(rng.randn(*pshape).astype(np.float32), need_grad=True)
                   for _ in range(2))
    mean = nn.Variable.from_numpy_array(rng.randn(*pshape).astype(np.float32))
    var = nn.Variable.from_numpy_array(rng.rand(*pshape).astype(np.float32) + 0.5)
    terms, ys = [], []
    for u in range(uses):
        y = fn(x, beta, gamma, mean, var, axes=axes, decay_rate=0.9, eps=0.01, batch_stat=True)
        y.persistent = True
        ys.append(y)
        terms.append(F.sum(y * nn.Variable.from_numpy_array(rng.randn(*xs).astype(np.float32))))
    loss = terms[0] if uses == 1 else F.add2(*terms)
    for v in (x, beta, gamma):
        v.grad.zero()
    loss.forward(clear_no_need_grad=True)
    loss.backward(clear_buffer=True)
    names = set()
    loss.visit(lambda f: names.add(f.info.type_name))
    return [y.d.copy() for y in ys] + [v.g.copy() for v in (x, beta, gamma)] + [mean.d.copy(), var.d.copy()], names


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("xs, axes", [
    ((16, 6, 5, 3), [1]),          # maps of a convolution
    ((9, 7), [1]),                 # an affine's outputs
    ((5, 4, 6), [2]),              # the last axis
])
def test_batch_normalization_equals_nnabla(xs, axes, uses, every_layer):
    from nncgan.layers import sync_bn
    fast, fast_names = _run_bn(sync_bn.batch_normalization, xs, axes, uses)
    ref, ref_names = _run_bn(F.batch_normalization, xs, axes, uses)
    assert "NumpyBatchNormalization" in fast_names and "NumpyBatchNormalization" not in ref_names
    what = ["y"] * uses + ["dx", "dbeta", "dgamma", "running mean", "running var"]
    for w, a, b in zip(what, fast, ref):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=FLOOR * np.abs(b).max(), err_msg=w)


def test_batch_normalization_falls_back(every_layer, monkeypatch):
    from nncgan.layers import sync_bn
    args = [nn.Variable(s) for s in ((4, 3, 2, 2), (1, 3, 1, 1), (1, 3, 1, 1), (1, 3, 1, 1), (1, 3, 1, 1))]
    kw = dict(axes=[1], decay_rate=0.9, eps=1e-5)
    assert _function_names(sync_bn.batch_normalization(*args, batch_stat=False, **kw)) == ["BatchNormalization"]
    two = [nn.Variable(s) for s in ((4, 3, 2, 2),) + ((1, 3, 2, 1),) * 4]
    assert "BatchNormalization" in _function_names(sync_bn.batch_normalization(
        *two, batch_stat=True, axes=[1, 2], decay_rate=0.9, eps=1e-5))     # NNabla's, with its transposes
    monkeypatch.setenv(K.ENV, "nnabla")
    assert _function_names(sync_bn.batch_normalization(*args, batch_stat=True, **kw)) == ["BatchNormalization"]


@pytest.mark.parametrize("uses", [1, 2])
def test_relu_equals_nnabla(uses, every_layer):
    x = np.random.RandomState(0).randn(6, 5, 4, 3).astype(np.float32)
    x[0, 0, 0] = 0.0                                           # the kink: no gradient, as NNabla
    fast, fast_names = _run(lambda v, w, *a, **k: K.relu(v) * w, [x, np.ones_like(x)], True, {}, uses)
    ref, ref_names = _run(lambda v, w, *a, **k: F.relu(v) * w, [x, np.ones_like(x)], True, {}, uses)
    assert "NumpyReLU" in fast_names and "NumpyReLU" not in ref_names
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("alpha", [0.2, 0.0, 1.0])
def test_leaky_relu_equals_nnabla(alpha, uses, every_layer):
    x = np.random.RandomState(0).randn(6, 5, 4, 3).astype(np.float32)
    x[0, 0, 0] = 0.0                                           # the kink: NNabla's gradient there
    fast, fast_names = _run(lambda v, w, *a, **k: K.leaky_relu(v, alpha) * w, [x, np.ones_like(x)], True, {}, uses)
    ref, ref_names = _run(lambda v, w, *a, **k: F.leaky_relu(v, alpha) * w, [x, np.ones_like(x)], True, {}, uses)
    assert "NumpyLeakyReLU" in fast_names and "NumpyLeakyReLU" not in ref_names
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(a, b)


def test_leaky_relu_of_a_slope_outside_0_1_keeps_nnabla(every_layer):
    assert K.leaky_relu(nn.Variable((2, 3)), 1.5).parent.info.type_name == "LeakyReLU"
    assert K.leaky_relu(nn.Variable((2, 3)), -0.1).parent.info.type_name == "LeakyReLU"


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("xs, k", [((3, 4, 5, 6), (2, 2)), ((2, 3, 4), (3, 1)), ((2, 1, 2, 3, 4), (1, 3))])
def test_unpooling_equals_nnabla(xs, k, uses, every_layer):
    x = np.random.RandomState(0).randn(*xs).astype(np.float32)
    fast, fast_names = _run(lambda v, w, *a, **kw: K.unpooling(v, k) * w, [x, np.ones((1,) * len(xs), np.float32)], True, {}, uses)
    ref, ref_names = _run(lambda v, w, *a, **kw: F.unpooling(v, k) * w, [x, np.ones((1,) * len(xs), np.float32)], True, {}, uses)
    assert "NumpyUnpooling" in fast_names and "NumpyUnpooling" not in ref_names
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)   # backward: the adds in another order


def test_unpooled_one_hot_label_maps_are_still_found(every_layer):
    """label_maps.py walks OneHot -> Reshape -> Unpooling: it finds NumPy's unpooling as NNabla's."""
    from nncgan.layers import label_maps
    onehot = F.one_hot(nn.Variable((4, 1)), (10,))
    maps = K.unpooling(F.reshape(onehot, (4, 10, 1, 1)), (6, 6))
    assert maps.parent.info.type_name == "NumpyUnpooling"
    found = label_maps._label_map(maps)
    assert found is not None and found.shape == (4, 10) and found.parent.info.type_name == "OneHot"
    assert label_maps._label_map(F.unpooling(F.reshape(onehot, (4, 10, 1, 1)), (6, 6))) is not None


# ---- the label-map tables' functions (layers/label_maps.py on the CPU context)

def _generic(build, arrays, needs, uses, extra=None):
    """Outputs of `uses` uses of build(*variables), and every gradient of sum_i <out_i, dy_i> (+ extra).
    The functions see each input through F.identity: NNabla adds into a leaf's gradient always, into
    an intermediate's only after the first writer, so both ways of storing a gradient are exercised."""
    vs = [nn.Variable.from_numpy_array(a, need_grad=g) for a, g in zip(arrays, needs)]
    mid = [F.identity(v) if g else v for v, g in zip(vs, needs)]
    terms, ys = [], []
    for u in range(uses):
        y = build(*mid)
        y.persistent = True
        ys.append(y)
        terms.append(F.sum(y * nn.Variable.from_numpy_array(np.random.RandomState(20 + u).randn(*y.shape)
                                                            .astype(np.float32))))
    if extra is not None:    # another use of the inputs, so that the kernels' gradients are accumulated into
        terms.append(extra(*mid))
    loss = terms[0] if len(terms) == 1 else F.add_n(*terms)
    for v in vs:
        v.grad.zero()
    loss.forward(clear_no_need_grad=True)
    loss.backward(clear_buffer=True)
    names = set()
    loss.visit(lambda f: names.add(f.info.type_name))
    return [y.d.copy() for y in ys] + [v.g.copy() for v, g in zip(vs, needs) if g], names


def _assert_same(fast, ref):
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=FLOOR * np.abs(b).max())


TABLES = [  # (fn, W shape, in_axis, label channels, input spatial, geometry)
    ("convolution", (32, 11, 5, 5), 1, (1, 11), (28, 28), p2(pad=(2, 2), stride=(2, 2))),          # cgan_mnist's
    ("convolution", (6, 9, 3, 2), 1, (2, 5), (9, 8), p2(pad=(1, 0), stride=(2, 3), dilation=(2, 1))),
    ("convolution", (5, 4, 4), 1, (0, 3), (13,), dict(pad=(1,), stride=(2,), dilation=(2,), group=1)),
    ("deconvolution", (74, 32, 6, 6), 0, (0, 10), (7, 7), p2(pad=(2, 2), stride=(2, 2))),          # cgan_mnist's
    ("deconvolution", (7, 3, 3, 2), 0, (4, 7), (5, 4), p2(pad=(0, 1), stride=(1, 2), dilation=(2, 1))),
]


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("case", TABLES)
def test_label_table_equals_nnabla_on_one_hot_maps(case, uses, every_layer):
    kind, ws, in_axis, (a, e), spatial, geometry = case
    fn = getattr(F, kind)
    w = np.random.RandomState(0).randn(*ws).astype(np.float32)
    other = nn.Variable.from_numpy_array(np.random.RandomState(1).randn(*ws).astype(np.float32))

    def ref(wv):
        c = e - a
        eye = np.broadcast_to(np.eye(c, dtype=np.float32).reshape((c, c) + (1,) * len(spatial)), (c, c) + spatial)
        lo, hi = [0] * len(ws), list(ws)
        lo[in_axis], hi[in_axis] = a, e
        return fn(nn.Variable.from_numpy_array(np.ascontiguousarray(eye)), F.slice(wv, lo, hi), None,
                  base_axis=1, **geometry)

    def fast(wv):
        return K.label_table(getattr(K, kind), wv, in_axis, (a, e), spatial, geometry)
    extra = lambda wv: F.sum(wv * other)   # noqa: E731  (W's gradient outside the label channels)
    got, names = _generic(fast, [w], [True], uses, extra)
    want, _ = _generic(ref, [w], [True], uses, extra)
    assert "BlasLabelTable" in names
    _assert_same(got, want)


@pytest.mark.parametrize("uses", [1, 2])
@pytest.mark.parametrize("onehot_grad", [False, True])
def test_add_rows_equals_affine_and_add2(uses, onehot_grad, every_layer):
    rng = np.random.RandomState(0)
    y, table = rng.randn(6, 4, 3, 5).astype(np.float32), rng.randn(10, 4, 3, 5).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.randint(0, 10, 6)]
    got, names = _generic(K.add_rows, [y, onehot, table], [True, onehot_grad, True], uses)
    want, _ = _generic(lambda v, o, t: v + F.reshape(F.affine(o, F.reshape(t, (10, -1))), v.shape),
                       [y, onehot, table], [True, onehot_grad, True], uses)
    assert "BlasAddRows" in names
    _assert_same(got, want)


@pytest.mark.parametrize("uses", [1, 2])
def test_slice_equals_nnabla(uses, every_layer):
    w = np.random.RandomState(0).randn(9, 11, 5, 5).astype(np.float32)
    extra = lambda v: F.sum(v * 3.0)   # noqa: E731
    got, names = _generic(lambda v: K.slice_(v, [1, 2, 0, 1], [9, 10, 5, 4]), [w], [True], uses, extra)
    want, _ = _generic(lambda v: F.slice(v, [1, 2, 0, 1], [9, 10, 5, 4]), [w], [True], uses, extra)
    assert "NumpySlice" in names
    _assert_same(got, want)


def test_forward_and_backward_run_no_import_machinery(every_layer, monkeypatch):
    """NNabla's Cython code runs `import nnabla` / `import nnabla_ext.cpu` relative first ('nnabla.nnabla',
    'nnabla.nnabla_ext.cpu') inside every forward/backward and get_data; cpu_kernels names those modules
    so that the imports succeed in C: no sys.path scan, no importlib call at all, and the same modules."""
    import importlib._bootstrap as bootstrap
    import sys
    import nnabla_ext.cpu
    assert sys.modules["nnabla.nnabla"].Variable is nn.Variable
    assert sys.modules["nnabla.nnabla_ext.cpu"].context is nnabla_ext.cpu.context
    loads = []
    find_and_load, handle_fromlist = bootstrap._find_and_load, bootstrap._handle_fromlist

    def spy(name, import_):
        loads.append(name)
        return find_and_load(name, import_)

    def spy_fromlist(module, *args, **kwargs):
        loads.append(module.__name__)
        return handle_fromlist(module, *args, **kwargs)
    x = nn.Variable.from_numpy_array(np.random.RandomState(0).randn(8, 6, 5, 5).astype(np.float32), need_grad=True)
    y = F.sum(K.relu(K.convolution(x, nn.Variable.from_numpy_array(np.ones((4, 6, 3, 3), np.float32)))))
    monkeypatch.setattr(bootstrap, "_find_and_load", spy)
    monkeypatch.setattr(bootstrap, "_handle_fromlist", spy_fromlist)
    y.forward()
    y.backward()
    assert loads == []
    assert x.g.any()


def test_convolution_backward_reuses_its_own_patches_only(every_layer, monkeypatch):
    """The weight gradient reads the forward's im2col when no other kernel has used the work array
    since (one im2col per forward+backward of a lone convolution), and recomputes it otherwise: two
    chained convolutions of other shapes equal NNabla's in every gradient."""
    monkeypatch.setattr(K, "WINOGRAD", False)    # 3x3 at stride 1 takes no patches otherwise
    rng = np.random.RandomState(0)
    x = rng.randn(3, 4, 9, 9).astype(np.float32)
    w1, w2 = rng.randn(6, 4, 3, 3).astype(np.float32), rng.randn(5, 6, 3, 3).astype(np.float32)
    calls = []
    im2col = K._im2col

    def counted(*a):
        calls.append(a[1])
        return im2col(*a)
    monkeypatch.setattr(K, "_im2col", counted)
    _, names = _generic(lambda xv, wv: K.convolution(xv, wv, pad=(1, 1)), [x, w1], [False, True], 1)
    assert "BlasConvolution" in names and len(calls) == 1

    def chain(conv):
        return lambda xv, a, b: conv(F.relu(conv(xv, a, pad=(1, 1), stride=(2, 2))), b, pad=(0, 0))
    got, names = _generic(chain(K.convolution), [x, w1, w2], [True, True, True], 1)
    want, _ = _generic(chain(F.convolution), [x, w1, w2], [True, True, True], 1)
    assert "BlasConvolution" in names
    _assert_same(got, want)


@pytest.mark.parametrize("chunk", [1, 100])     # one channel a piece; several channels, a shorter last piece
@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "affine"])
def test_transposing_copies_in_pieces_equal_nnabla(case, chunk, every_layer, monkeypatch):
    """The piecewise copies back to (N, C, ...) (TRANSPOSE_CHUNK elements at a time: from_csn and the
    deconvolution's phases), written, added and with a bias."""
    monkeypatch.setattr(K, "TRANSPOSE_CHUNK", chunk)
    test_kernel_equals_nnabla(case, 2, every_layer)
