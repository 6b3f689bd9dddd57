"""What one training iteration does to the parameters, against a hand computation of NNC's rules:
the optimizers in the graph's order, LRateMultiplier scaling the learning rate (not the gradient),
frozen parameters left without gradient, update_interval accumulating, data-parallel gradients
reduced before the update."""
import numpy as np
import nnabla as nn
import pytest

from nncgan import run as runs
from nncgan.builder import build_all
from nncgan.graph.parse import parse_graph
from nncgan.train import loop
from nncgan.train import distributed
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN, batch_for, use_image_splits
from test_interpreter import sgd_graph

LR = 0.1


def write_graph(tmp_path, text, name="g.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return parse_graph(p)


def registry():
    return nn.get_parameters(grad_only=False)


def snapshot():
    return {k: v.d.copy() for k, v in registry().items()}


def restore(values):
    for k, v in registry().items():
        v.d = values[k]


def grads(net, batch):
    """d(loss)/d(parameter) of `net` at the current parameters, for what `net` trains: computed
    here, from zeroed gradients, independently of OptimizerStep."""
    for v in registry().values():
        v.grad.zero()
    net.feed(batch, np.random.RandomState(0))
    net.loss.forward()
    net.loss.backward()
    return {k: v.g.copy() for k, (v, _) in net.trainable.items()}


# ---------------------------------------------------------------- LRateMultiplier under Adam

ADAM = dict(alpha=0.01, beta1=0.5, beta2=0.999, eps=1e-8)


def adam_graph(tmp_path, mult):
    """test_interpreter's one-network graph (A's W at multiplier `mult`) under Adam instead of SGD."""
    text = sgd_graph(tmp_path, mult).text
    assert text.count("{type: Sgd, lr: 0.1}") == 1
    return write_graph(tmp_path, text.replace("{type: Sgd, lr: 0.1}", "{type: Adam, alpha: %s, beta1: %s, "
                                              "beta2: %s, eps: 1.0e-8}" % (ADAM["alpha"], ADAM["beta1"],
                                                                          ADAM["beta2"])), f"adam_{mult}.yaml")


def by_hand_and_by_step(graph, update):
    """Three steps of `graph`'s one optimizer computed by hand in float64 (`update(k, t, g, lr)` -> the
    new value of parameter k at step t with gradient g and learning rate lr), then by OptimizerStep;
    asserts they agree. Returns (start values, learning rates)."""
    nets, rng = build_all(graph, 4, seed=5)
    net = nets["N"]
    batches = [batch_for(net, seed=s) for s in range(3)]
    start = snapshot()
    lr = {k: ADAM["alpha"] * m for k, (_, m) in net.trainable.items()}
    w = {k: start[k].astype(np.float64) for k in net.trainable}
    for t, batch in enumerate(batches, 1):
        for k in w:
            registry()[k].d = w[k]
        g = grads(net, batch)
        for k in w:
            w[k] = update(k, t, g[k], lr[k], w[k])
    restore(start)
    step = OptimizerStep(graph.optimizers[0], net)
    for i, batch in enumerate(batches):
        step(batch, rng, i)
    for k in w:
        np.testing.assert_allclose(registry()[k].d, w[k], rtol=1e-4, atol=1e-6, err_msg=k)
    return start, lr


@pytest.mark.parametrize("mult", [0.5, 0.1])
def test_multiplier_scales_adams_learning_rate_not_the_gradient(tmp_path, mult):
    # Adam is (nearly) invariant to a gradient's scale: a multiplier put on the gradient instead
    # of on alpha leaves the step almost unchanged, which SGD cannot tell apart.
    b1, b2, eps = ADAM["beta1"], ADAM["beta2"], ADAM["eps"]
    m, v = {}, {}

    def adam(k, t, g, lr, w):  # m, v, bias-corrected step (nnabla.solvers.Adam's documented formula)
        m[k] = b1 * m.get(k, 0.0) + (1 - b1) * g
        v[k] = b2 * v.get(k, 0.0) + (1 - b2) * g ** 2
        return w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[k] / (np.sqrt(v[k]) + eps)
    start, lr = by_hand_and_by_step(adam_graph(tmp_path, mult), adam)
    assert lr["A/affine/W"] == pytest.approx(ADAM["alpha"] * mult) and lr["A/affine/b"] == ADAM["alpha"]
    assert not np.array_equal(registry()["A/affine/W"].d, start["A/affine/W"])


def test_adamax_is_nnablas_under_its_multiplier(tmp_path):
    """Adamax (one entry in nncgan.solvers): the infinity-norm step of NNabla's documented formula,
    the multiplier on alpha."""
    graph = write_graph(tmp_path, adam_graph(tmp_path, 0.5).text.replace("type: Adam,", "type: Adamax,"), "adamax.yaml")
    assert graph.optimizers[0].solver == "Adamax"
    b1, b2, eps = ADAM["beta1"], ADAM["beta2"], ADAM["eps"]
    m, u = {}, {}

    def adamax(k, t, g, lr, w):
        m[k] = b1 * m.get(k, 0.0) + (1 - b1) * g
        u[k] = np.maximum(b2 * u.get(k, 0.0), np.abs(g))
        return w - lr / (1 - b1 ** t) * m[k] / (u[k] + eps)
    _, lr = by_hand_and_by_step(graph, adamax)
    assert lr["A/affine/W"] == pytest.approx(ADAM["alpha"] * 0.5)


# ------------------------------------------- frozen parameters and update_interval (shared scopes)

def shared_graph(tmp_path, interval):
    """G trains A with B frozen; D trains B with A frozen: NNC's GAN pattern in four parameters."""
    return write_graph(tmp_path, f"""
dataset: {{name: mnist}}
config: {{batch_size: 4, max_epoch: 1}}
networks:
  G:
    layers:
      - {{name: x, type: Input, size: [1, 28, 28], dataset: x}}
      - {{name: A, type: Affine, out_shape: 3}}
      - {{name: B, type: Affine, out_shape: 1, lr_mult: 0}}
      - {{name: L, type: SquaredError, target: {{generator: Constant, multiplier: 1}}}}
  D:
    layers:
      - {{name: x, type: Input, size: [1, 28, 28], dataset: x}}
      - {{name: A, type: Affine, out_shape: 3, lr_mult: 0}}
      - {{name: B, type: Affine, out_shape: 1}}
      - {{name: L, type: SquaredError, target: {{generator: Constant, multiplier: -1}}}}
optimizers:
  G: {{network: G, solver: {{type: Sgd, lr: {LR}}}, update_interval: {interval}}}
  D: {{network: D, solver: {{type: Sgd, lr: {LR}}}, update_interval: {interval}}}
executors:
  E: {{network: G, output: B}}
""", f"shared_{interval}.yaml")


A_PARAMS = ("A/affine/W", "A/affine/b")
B_PARAMS = ("B/affine/W", "B/affine/b")


def test_frozen_parameters_get_no_gradient(tmp_path):
    graph = shared_graph(tmp_path, 1)
    nets, rng = build_all(graph, 4, seed=2)
    assert set(nets["G"].trainable) == set(A_PARAMS) and set(nets["D"].trainable) == set(B_PARAMS)
    step = OptimizerStep(graph.optimizers[0], nets["G"])
    for k in B_PARAMS:
        registry()[k].g = 7.0  # a sentinel: backward of G must not touch what G does not train
    step(batch_for(nets["G"]), rng, 0)
    for k in B_PARAMS:
        assert np.all(registry()[k].g == 7.0), f"{k}: G's backward computed a gradient for a frozen parameter"


@pytest.mark.parametrize("interval", [2, 3])
def test_update_interval_accumulates_each_optimizers_own_gradients(tmp_path, interval):
    graph = shared_graph(tmp_path, interval)
    nets, rng = build_all(graph, 4, seed=2)
    G, D = nets["G"], nets["D"]
    batches = [batch_for(G, seed=s) for s in range(2 * interval)]
    start = snapshot()
    # By hand, NNC's rule: per optimizer, the sum of its own network's gradients over `interval`
    # iterations, then one SGD step; G runs before D, so D's gradients after G's update see it.
    expect, acc_a, acc_b = [], {}, {}
    for i, batch in enumerate(batches):
        for k, g in grads(G, batch).items():
            acc_a[k] = acc_a.get(k, 0) + g
        if (i + 1) % interval == 0:
            for k in A_PARAMS:
                registry()[k].d = registry()[k].d - LR * acc_a.pop(k)
        for k, g in grads(D, batch).items():
            acc_b[k] = acc_b.get(k, 0) + g
        if (i + 1) % interval == 0:
            for k in B_PARAMS:
                registry()[k].d = registry()[k].d - LR * acc_b.pop(k)
        expect.append(snapshot())
    restore(start)
    steps = [OptimizerStep(o, nets[o.network]) for o in graph.optimizers]
    for i, batch in enumerate(batches):
        for s in steps:
            s(batch, rng, i)
        now = snapshot()
        for k in A_PARAMS + B_PARAMS:
            np.testing.assert_allclose(now[k], expect[i][k], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{k} after iteration {i} (update_interval {interval})")
            if i < interval - 1:  # nothing moves before the interval is complete
                assert np.array_equal(now[k], start[k]), f"{k} changed at iteration {i} of {interval}"
    assert not np.allclose(expect[-1]["A/affine/W"], expect[interval - 1]["A/affine/W"])


# ------------------------------------------------------ data-parallel: reduce, then update

def test_gradients_are_all_reduced_before_the_update(tmp_path):
    graph = shared_graph(tmp_path, 1)
    nets, rng = build_all(graph, 4, seed=2)
    G = nets["G"]
    batch = batch_for(G)
    start = snapshot()
    g = grads(G, batch)
    seen = []

    class Tripling(distributed.Comm):  # a fake communicator: "the average over processes" is 3 x this one
        def all_reduce(self, arrays, scalars=()):
            seen.append(len(arrays))
            for a in arrays:
                a.data = a.data * 3.0
            return list(scalars)

    restore(start)
    OptimizerStep(graph.optimizers[0], G, Tripling(0, 2, 0))(batch, rng, 0)
    assert seen == [len(A_PARAMS)]
    for k in A_PARAMS:
        np.testing.assert_allclose(registry()[k].d, start[k] - LR * 3.0 * g[k], rtol=1e-5, atol=1e-7, err_msg=k)


# ------------------------------------------------------------------ the optimizers' order

def test_optimizers_run_in_the_graphs_order_each_seeing_the_previous_update(tmp_path, monkeypatch):
    rng = np.random.RandomState(0)
    use_image_splits(monkeypatch, "mnist", {"train": rng.randint(0, 256, (16, 1, 28, 28)).astype(np.uint8)})
    graph = parse_graph(CGAN)
    assert [o.name for o in graph.optimizers] == ["Generator", "DiscriminatorFake", "DiscriminatorReal"]
    graph.config.batch_size = 8
    run = tmp_path / "run"
    runs.new_run(graph, run)
    seen = []  # (optimizer, generator's and discriminator's parameters as that step found them)
    real_call = OptimizerStep.__call__

    def recording(self, batch, rng, iteration):
        seen.append((self.opt.name, registry()["Affine/affine/W"].d.copy(), registry()["Affine_4/affine/W"].d.copy()))
        return real_call(self, batch, rng, iteration)
    monkeypatch.setattr(OptimizerStep, "__call__", recording)
    loop.train(graph, run, max_epoch=1, log=lambda *a: None, quiet=True, evaluate=False)
    assert [s[0] for s in seen] == ["Generator", "DiscriminatorFake", "DiscriminatorReal"] * 2
    for it in range(2):
        (_, g0, d0), (_, g1, d1), (_, g2, d2) = seen[3 * it: 3 * it + 3]
        # DiscriminatorFake sees the generator that Generator just updated, the discriminator as it was;
        assert not np.array_equal(g0, g1) and np.array_equal(d0, d1)
        # DiscriminatorReal sees the discriminator that DiscriminatorFake just updated.
        assert np.array_equal(g1, g2) and not np.array_equal(d1, d2)
