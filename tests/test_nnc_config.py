"""NNC's Config tab: weight decay, learning-rate schedulers and warm-up, against NNabla's own."""
import numpy as np
import nnabla as nn
import nnabla.solvers as S
import pytest
import yaml
from nnabla.utils import learning_rate_scheduler as LRS

from nncgan.builder import build_all
from nncgan.errors import GraphError
from nncgan.graph import overrides, render
from nncgan.graph.parse import parse_graph
from nncgan.train.optimizer import OptimizerStep

from conftest import batch_for

IPE, MAX_EPOCH = 3, 4   # iterations per epoch and epochs of the schedule tests


def graph_file(tmp_path, extra="", solver="{type: Sgd, lr: 0.1}", mult=0.5):
    text = f"""
dataset: {{name: mnist}}
config: {{batch_size: 4, max_epoch: {MAX_EPOCH}}}
networks:
  N:
    layers:
      - {{name: x, type: Input, size: [1, 28, 28], dataset: x}}
      - {{name: A, type: Affine, out_shape: 3, lr_mult: {{W: {mult}, b: 1}}}}
      - {{name: L, type: SquaredError, target: {{generator: Constant, multiplier: 1}}}}
optimizers:
  N:
    network: N
    solver: {solver}
{extra}
executors:
  E: {{network: N, output: A}}
"""
    p = tmp_path / "g.yaml"
    p.write_text(text)
    return p


def step_for(path, assignments=()):
    nn.clear_parameters()
    graph = overrides.load(path, assignments)[0]
    nets, rng = build_all(graph, 4, seed=5)
    step = OptimizerStep(graph.optimizers[0], nets["N"])
    step.set_schedule(IPE, graph.config.max_epoch)
    return graph, nets, rng, step


# (the optimizer's YAML, NNabla's scheduler as nnabla_cli builds it from NNC's NNP, in iterations)
SCHEDULES = [
    ("    lr_scheduler: {type: Exponential, gamma: 0.5, interval: 1, unit: epoch}",
     LRS.ExponentialScheduler(0.1, 0.5, IPE)),
    ("    lr_scheduler: {type: Exponential, gamma: 0.9, interval: 2, unit: iteration}",
     LRS.ExponentialScheduler(0.1, 0.9, 2)),
    ("    lr_scheduler: {type: Step, gamma: 0.1, steps: [1, 3], unit: epoch}",
     LRS.StepScheduler(0.1, 0.1, [IPE, 3 * IPE])),
    ("    lr_scheduler: {type: Polynomial, power: 2.0}",
     LRS.PolynomialScheduler(0.1, MAX_EPOCH * IPE, 2.0)),
    ("    lr_scheduler: {type: Cosine, max_iter: 10}",
     LRS.CosineScheduler(0.1, 10)),
    ("    lr_scheduler: {type: Cosine}\n    warmup: {type: Linear, length: 1, unit: epoch}",
     LRS.LinearWarmupScheduler(LRS.CosineScheduler(0.1, MAX_EPOCH * IPE), IPE)),
    ("    warmup: {type: Linear, length: 5, unit: iteration}",
     LRS.LinearWarmupScheduler(LRS.ExponentialScheduler(0.1, 1.0, 1), 5)),
]


@pytest.mark.parametrize("yaml_text, nnabla_scheduler", SCHEDULES, ids=[s[0].split("{type: ")[1].split(",")[0].split("}")[0]
                                                                        + str(i) for i, s in enumerate(SCHEDULES)])
def test_each_scheduler_sets_nnablas_rate_at_every_iteration(tmp_path, yaml_text, nnabla_scheduler):
    graph, nets, rng, step = step_for(graph_file(tmp_path, yaml_text))
    assert set(step.mults.values()) == {0.5, 1.0}
    batch = batch_for(nets["N"])
    for it in range(MAX_EPOCH * IPE):
        step(batch, rng, it)
        want = nnabla_scheduler.get_learning_rate(it)
        for name, solver in step.solvers.items():  # each LRateMultiplier group: its share of the rate
            assert solver.learning_rate() == pytest.approx(want * step.mults[name], rel=1e-6), (name, it)


def test_update_interval_takes_the_rate_of_the_iteration_that_updates(tmp_path):
    """nnabla_cli sets the rate at the last iteration of each interval: scheduler(iter) there."""
    p = graph_file(tmp_path, "    update_interval: 2\n    lr_scheduler: {type: Exponential, gamma: 0.5, "
                             "interval: 1, unit: iteration}", mult=1.0)
    graph, nets, rng, step = step_for(p)
    solver = next(iter(step.solvers.values()))
    batch = batch_for(nets["N"])
    seen = []
    for it in range(6):
        step(batch, rng, it)
        seen.append(solver.learning_rate())
    assert seen == pytest.approx([0.1, 0.1 * 0.5, 0.1 * 0.5, 0.1 * 0.5 ** 3, 0.1 * 0.5 ** 3, 0.1 * 0.5 ** 5])


def test_constant_schedule_leaves_the_rate_alone(tmp_path):
    graph, nets, rng, step = step_for(graph_file(tmp_path, "    lr_scheduler: {type: Exponential, gamma: 1.0}"))
    assert step.scheduler is None   # as nnabla_cli: gamma 1 builds no scheduler


@pytest.mark.parametrize("solver", ["{type: Sgd, lr: 0.1}", "{type: Adam, alpha: 0.01}"])
def test_weight_decay_is_nnablas_solver_weight_decay_before_the_update(tmp_path, solver):
    wd = 0.01
    # The gradient without decay, from one plain step (Sgd: delta = -lr g).
    graph, nets, rng, step = step_for(graph_file(tmp_path, "", solver=solver, mult=1.0))
    params = nn.get_parameters(grad_only=False)
    w0 = {k: v.d.copy() for k, v in params.items()}
    step(batch_for(nets["N"]), rng, 0)
    grads = {k: v.g.copy() for k, v in params.items()}
    # NNabla's own solver, given that gradient and asked for weight_decay(wd), then update().
    ref = {}
    for k in w0:
        v = nn.Variable(w0[k].shape, need_grad=True)
        v.d, v.g = w0[k], grads[k]
        s = S.Sgd(0.1) if "Sgd" in solver else S.Adam(0.01)
        s.set_parameters({k: v})
        s.weight_decay(wd)
        s.update()
        ref[k] = v.d.copy()
    graph, nets, rng, step = step_for(graph_file(tmp_path, f"    weight_decay: {wd}", solver=solver, mult=1.0))
    assert step.opt.weight_decay == wd
    params = nn.get_parameters(grad_only=False)
    step(batch_for(nets["N"]), rng, 0)
    plain = {k: w0[k] - 0.1 * grads[k] for k in w0} if "Sgd" in solver else None
    for k in ref:
        np.testing.assert_allclose(params[k].d, ref[k], rtol=1e-6, atol=1e-8)
        if plain is not None and np.abs(w0[k]).max() > 1e-3:  # the decay really changed the step
            assert not np.allclose(params[k].d, plain[k], rtol=0, atol=1e-9)


def test_set_reads_the_optimizer_schema(tmp_path):
    p = graph_file(tmp_path)
    graph, applied = overrides.load(p, ["optimizers.N.update_interval=2", "optimizers.N.weight_decay=0.001",
                                        "optimizers.N.lr_scheduler={type: Step, steps: [2]}"])
    o = graph.optimizers[0]
    assert (o.update_interval, o.weight_decay) == (2, 0.001)
    assert o.lr_scheduler == {"type": "Step", "gamma": 0.1, "steps": [2], "unit": "epoch"}
    graph, _ = overrides.load(graph_file(tmp_path, "    lr_scheduler: {type: Exponential}"),
                              ["optimizers.N.lr_scheduler.gamma=0.5"])
    assert graph.optimizers[0].lr_scheduler["gamma"] == 0.5
    with pytest.raises(GraphError, match="weight_decay"):
        overrides.load(p, ["optimizers.N.weight_decy=0.1"])
    with pytest.raises(GraphError, match="unit.*epoch or iteration"):
        overrides.load(graph_file(tmp_path, "    lr_scheduler: {type: Exponential, unit: epochs}"))


def test_render_writes_the_schedule_and_rechecks(tmp_path):
    p = graph_file(tmp_path, "    weight_decay: 0.0001\n    lr_scheduler: {type: Polynomial}\n"
                             "    warmup: {type: Linear, length: 2}")
    data = yaml.safe_load(render.render(parse_graph(p)))
    o = data["optimizers"]["N"]
    assert o["weight_decay"] == 0.0001
    assert o["lr_scheduler"] == {"type": "Polynomial", "power": 1.0, "max_iter": None}
    assert o["warmup"] == {"type": "Linear", "length": 2, "unit": "epoch"}
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(data))
    assert parse_graph(again).optimizers[0].lr_scheduler == o["lr_scheduler"]


class _Traced:  # what nnp_export._optimizer reads of a traced network
    losses, params = [], {}

    def bind(self, msg):
        pass


@pytest.mark.parametrize("extra", [
    "    weight_decay: 0.0001\n    lr_scheduler: {type: Step, gamma: 0.5, steps: [1, 3], unit: epoch}\n"
    "    warmup: {type: Linear, length: 2, unit: iteration}",
    "    lr_scheduler: {type: Exponential, gamma: 0.9, interval: 2, unit: epoch}",
    "    lr_scheduler: {type: Polynomial, power: 0.5}",
    "    lr_scheduler: {type: Cosine, max_iter: 7}",
])
def test_nnp_export_writes_the_schedule_nnabla_cli_reads_and_import_reads_it_back(tmp_path, extra):
    from nnabla.utils import nnabla_pb2
    from nncgan.interop import nnp_export, nnp_import
    from nncgan import schedules
    graph = parse_graph(graph_file(tmp_path, extra))
    opt = graph.optimizers[0]
    o = nnabla_pb2.Optimizer()
    nnp_export._optimizer(o, opt, _Traced(), IPE, MAX_EPOCH)
    assert o.solver.weight_decay == pytest.approx(opt.weight_decay)
    back = nnp_import._schedule(o.solver, "test")
    # Read back in iterations: the same rate at every iteration as the original.
    mine = schedules.make(opt.lr_scheduler, opt.warmup, 0.1, IPE, MAX_EPOCH)
    theirs = schedules.make(back.get("lr_scheduler"), back.get("warmup"), 0.1, 1000, 1)
    for it in range(MAX_EPOCH * IPE):
        assert theirs.get_learning_rate(it) == pytest.approx(mine.get_learning_rate(it), rel=1e-6)


def test_sdcproj_schedulers_import_in_nncs_units(tmp_path):
    from nncgan.interop import nnc_import
    from conftest import ROOT
    src = ROOT.parent / "shared" / "nnc" / "mnist_dcgan.sdcproj"
    if not src.is_file():
        pytest.skip("NNC samples not found")
    text = src.read_text()
    first = text.index("LearningRateScheduler=Exponential")
    head, tail = text[:first], text[first:]
    tail = tail.replace("LearningRateScheduler=Exponential\nLearningRateMultiplier=1\n",
                        "LearningRateScheduler=Step\nLearningRateMultiplier=0.5\n", 1)
    tail = tail.replace("LearningRateSteps=\nLearningRateWarmupScheduler=None\nLearningRateWarmupLength=0\n"
                        "LearningRateWarmupLengthUnit=0",
                        "LearningRateSteps=10,20\nLearningRateWarmupScheduler=Linear\nLearningRateWarmupLength=3\n"
                        "LearningRateWarmupLengthUnit=1", 1)
    second = tail.index("LearningRateScheduler=Exponential", 10)
    tail = tail[:second] + tail[second:].replace("LearningRateScheduler=Exponential\nLearningRateMultiplier=1\n"
                                                 "LearningRateUpdateInterval=1\n",
                                                 "LearningRateScheduler=Exponential\nLearningRateMultiplier=0.9\n"
                                                 "LearningRateUpdateInterval=2\n", 1)
    p = tmp_path / "sched.sdcproj"
    p.write_text(head + tail)
    graph = nnc_import.import_file(p, tmp_path / "sched.yaml", log=lambda *a: None)
    d, g = graph.optimizers
    assert d.lr_scheduler == {"type": "Step", "gamma": 0.5, "steps": [10, 20], "unit": "epoch"}
    assert d.warmup == {"type": "Linear", "length": 3, "unit": "iteration"}
    assert g.lr_scheduler == {"type": "Exponential", "gamma": 0.9, "interval": 2, "unit": "epoch"}
    assert d.weight_decay == g.weight_decay == 0.0001


def _bn_sdcproj(tmp_path, gamma_mult="1.0"):
    from conftest import ROOT
    src = ROOT.parent / "shared" / "nnc" / "mnist_dcgan_with_label.sdcproj"
    if not src.is_file():
        pytest.skip("NNC samples not found")
    text = src.read_text()
    # the first BatchNormalization's gamma.InitializerMultiplier
    at = text.index("Property_12_Name=gamma.InitializerMultiplier\nProperty_12_Value=1.0")
    text = text[:at] + text[at:].replace("Property_12_Value=1.0", f"Property_12_Value={gamma_mult}", 1)
    p = tmp_path / "bn.sdcproj"
    p.write_text(text)
    return p


def test_bn_initializers_import_and_the_running_variance_starts_at_zero(tmp_path):
    from nncgan.interop import nnc_import, nnp_export
    graph = nnc_import.import_file(_bn_sdcproj(tmp_path, "0.5"), tmp_path / "bn.yaml", log=lambda *a: None)
    bns = [l for net in graph.networks.values() for l in net.layers if l.type == "BatchNormalization"]
    assert bns and all(l.settings["var_init"] == ("Constant", 0.0) for l in bns)
    assert sum(l.settings["gamma_init"] == ("Constant", 0.5) for l in bns) >= 1
    nn.clear_parameters()
    build_all(graph, 4, seed=0)
    params = nn.get_parameters(grad_only=False)
    variances = [v.d for k, v in params.items() if k.endswith("/bn/var")]
    gammas = {k: float(v.d.mean()) for k, v in params.items() if k.endswith("/bn/gamma")}
    assert variances and all(not v.any() for v in variances)
    assert sorted(set(gammas.values())) == [0.5, 1.0]
    # The NNP holds what NNC's does: var's initializer Constant 0.
    net = graph.networks[graph.optimizers[0].network]
    inits = {k: init for k, (_, init) in nnp_export._parameters(net).items()}
    assert {v for k, v in inits.items() if k.endswith("/bn/var")} == {("Constant", 0.0)}


def test_bn_running_variance_from_zero_follows_the_moving_average(tmp_path):
    """After one training iteration var = (1 - decay) x batch variance, as NNC's from 0 (not 0.9 + ...)."""
    p = tmp_path / "bn.yaml"
    p.write_text(graph_file(tmp_path).read_text().replace(
        "      - {name: L, type: SquaredError",
        "      - {name: BN, type: BatchNormalization, var_init: {type: Constant, multiplier: 0}}\n"
        "      - {name: L, type: SquaredError"))
    graph, nets, rng, step = step_for(p)
    var = nn.get_parameters(grad_only=False)["BN/bn/var"]
    assert not var.d.any()
    batch = batch_for(nets["N"])
    nets["N"].feed(batch, rng)
    nets["N"].outputs["A"].forward()
    a = nets["N"].outputs["A"].d.copy()
    step(batch, rng, 0)
    np.testing.assert_allclose(var.d.ravel(), 0.1 * a.var(axis=0, ddof=1), rtol=1e-4)


def _bce_net(tmp_path, form):
    p = tmp_path / f"bce_{form}.yaml"
    p.write_text(f"""
dataset: {{name: mnist}}
config: {{batch_size: 6, max_epoch: 1}}
networks:
  N:
    layers:
      - {{name: z, type: Input, size: [1], generator: Constant}}
      - {{name: S, type: Sigmoid}}
      - {{name: L, type: BinaryCrossEntropy, target: {{generator: Constant, multiplier: 0}}, after_sigmoid: {form}}}
optimizers:
  N: {{network: N, solver: Sgd}}
executors:
  E: {{network: N, output: S}}
""")
    from nncgan.builder import build_network
    return build_network(parse_graph(p).networks["N"], 6)


def test_bce_after_sigmoid_nnc_form_is_nncs_value_and_gradient(tmp_path):
    import nnabla.functions as F
    logits = np.array([[-10.0], [-1.0], [0.5], [10.0], [16.0], [40.0]], np.float32)
    # NNC: Sigmoid then BinaryCrossEntropy, NNabla's own functions
    z = nn.Variable.from_numpy_array(logits, need_grad=True)
    ref = F.binary_cross_entropy(F.sigmoid(z), F.constant(0, logits.shape))
    ref.forward()
    z.grad.zero()
    ref.backward(np.ones_like(logits))
    nnc_value, nnc_grad = ref.d.copy(), z.g.copy()
    assert nnc_value[-1, 0] == pytest.approx(87.3365, rel=1e-4) and nnc_grad[-1, 0] == 0   # the clamp
    for form in ("nnc", "fused"):
        net = _bce_net(tmp_path, form)
        net.feed({}, np.random.RandomState(0))   # the target: Constant x 0
        x = net.outputs["z"]
        x.need_grad = True
        x.d = logits
        y = net.outputs["L"]
        y.forward()
        x.grad.zero()
        y.backward(np.ones_like(logits))
        if form == "nnc":
            assert y.parent.name == "BinaryCrossEntropy"
            np.testing.assert_array_equal(y.d, nnc_value)
            np.testing.assert_array_equal(x.g, nnc_grad)
        else:  # NNabla's SigmoidCrossEntropy: log(1 + e^z) to float32 rounding, gradient sigmoid(z)
            assert y.parent.name == "SigmoidCrossEntropy"
            np.testing.assert_allclose(y.d, np.logaddexp(0, logits.astype(np.float64)), rtol=1e-3)
            np.testing.assert_allclose(x.g, 1 / (1 + np.exp(-logits.astype(np.float64))), rtol=1e-6)
            # where NNC's is finite and not clamped, the two agree to float32 rounding of the sigmoid
            np.testing.assert_allclose(y.d[:4], nnc_value[:4], rtol=2e-3, atol=1e-6)


def test_loss_series_holds_each_epochs_last_partial_interval(tmp_path, small_mnist):
    """128 images / batch 4 = 32 iterations an epoch, one point every 3 (NNabla's MonitorSeries: the
    first closes at iteration 2): the last, iteration 31, is the mean of 30 and 31 (29 closed an
    interval); epoch 2 starts its intervals from there."""
    from nncgan import cli
    from nncgan.train import progress
    small_mnist["n"] = 128
    run = tmp_path / "run"
    g = tmp_path / "gen.yaml"
    g.write_text("""
dataset: {name: mnist}
config: {batch_size: 4, max_epoch: 2}
networks:
  N:
    layers:
      - {name: z, type: Input, size: [4], generator: Normal}
      - {name: A, type: Affine, out_shape: [1, 28, 28]}
      - {name: S, type: Sigmoid}
      - {name: L, type: SquaredError, target: {dataset: x}}
optimizers:
  N: {network: N, solver: Adam}
executors:
  E: {network: N, output: S}
""")
    assert cli.main(["train", str(g), "--out", str(run), "--quiet", "--context", "cpu"]) == 0
    rows = progress.read_series(progress.series_file(run, "N"))
    steps = [int(i) for i in rows[:, 0]]
    assert steps[:11] == [2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 31]
    assert steps[11:] == [34, 37, 40, 43, 46, 49, 52, 55, 58, 61, 63]


def test_loss_monitors_flush_writes_the_partial_mean(tmp_path):
    from nncgan.train import progress
    m = progress.LossMonitors(tmp_path, ["A"], 3)
    for i in range(11):
        m.add(i, {"A": float(i)})
    m.flush(10)
    m.flush(10)  # nothing new: nothing written
    rows = progress.read_series(progress.series_file(tmp_path, "A"))
    assert rows.tolist() == [[2, 1.0], [5, 4.0], [8, 7.0], [10, 9.5]]   # every 3 points, then the partial 9, 10


def _monitor_graph(tmp_path, monitor):
    p = tmp_path / f"mon{bool(monitor)}.yaml"
    p.write_text(f"""
dataset: {{name: mnist}}
config: {{batch_size: 8, max_epoch: 2, monitor: {monitor}}}
blocks:
  net:
    layers:
      - {{name: z, type: Input, size: [4], generator: Normal}}
      - {{name: A, type: Affine, out_shape: [1, 28, 28]}}
      - {{name: BN, type: BatchNormalization}}
      - {{name: S, type: Sigmoid}}
      - {{name: L, type: SquaredError, target: {{dataset: x}}}}
networks:
  N: {{layers: [{{use: net}}]}}
  M: {{layers: [{{use: net}}]}}   # the monitor's network: the same scopes
optimizers:
  N: {{network: N, solver: Adam}}
executors:
  E: {{network: N, output: S}}
""")
    return p


def test_monitor_pass_moves_only_the_running_statistics(tmp_path, small_mnist):
    from nncgan import cli
    from nncgan.train import checkpoint
    small_mnist["n"] = 32
    params = {}
    for monitor in ("null", "{interval: 10, monitors: {train_error: {network: M, dataset: training}, "
                            "valid_error: {network: M, dataset: validation}}}"):
        run = tmp_path / f"run{len(monitor)}"
        assert cli.main(["train", str(_monitor_graph(tmp_path, monitor)), "--out", str(run), "--quiet",
                         "--context", "cpu"]) == 0
        nn.clear_parameters()
        checkpoint.load(run)
        params[monitor] = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    off, on = params.values()
    for k in off:
        if k.endswith(("/mean", "/var")):
            assert not np.array_equal(off[k], on[k]), k
        else:  # the pass trains nothing and draws nothing from training's rng
            assert np.array_equal(off[k], on[k]), k


def test_monitor_epochs_and_schema(tmp_path):
    from nncgan.train import monitor
    spec = {"interval": 10, "monitors": {"m": {"network": "M", "dataset": "validation"}}}
    assert [e for e in range(1, 31) if monitor.due(spec, e)] == [1, 2, 3, 4, 5, 10, 20, 30]
    assert not monitor.due(None, 1)
    with pytest.raises(GraphError, match="unknown network 'Q'"):
        parse_graph(_monitor_graph(tmp_path, "{monitors: {m: {network: Q}}}"))
    with pytest.raises(GraphError, match="validation.training"):
        parse_graph(_monitor_graph(tmp_path, "{monitors: {m: {network: M, dataset: valid}}}"))
    g = parse_graph(_monitor_graph(tmp_path, "{monitors: {m: {network: M}}}"))
    assert g.config.monitor == {"interval": 10, "monitors": {"m": {"network": "M", "dataset": "validation"}}}
