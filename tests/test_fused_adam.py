"""Issue 17: Adam's fused CPU update (nncgan/solver_kernels.py) is NNabla's Adam bit for bit, and its
states are NNabla's: saved by one, resumed by the other."""
import numpy as np
import nnabla as nn
import nnabla.solver
import pytest

from nncgan import solvers
from nncgan.layers import cpu_kernels
from nncgan.solver_kernels import FusedAdam

SHAPES = [(3146, 90), (33,), (8, 3, 5, 5), (1,), (2, 1, 3)]   # above FusedAdam.MIN_SIZE in all
SETTINGS = {"alpha": 0.0002, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8}


def _params(seed=0):
    r = np.random.RandomState(seed)
    ps = {f"net/p{i}": nn.Variable(s, need_grad=True) for i, s in enumerate(SHAPES)}
    for v in ps.values():
        v.d = r.randn(*v.shape).astype(np.float32)
    return ps


def _pair(lr_scale=1.0, settings=SETTINGS):
    fused = solvers.make("Adam", settings, lr_scale)
    with cpu_kernels.disabled():
        plain = solvers.make("Adam", settings, lr_scale)
    assert isinstance(fused, FusedAdam) and isinstance(plain, nnabla.solver.Solver)
    a, b = _params(), _params()
    fused.set_parameters(a)
    plain.set_parameters(b)
    return (fused, a), (plain, b)


def _grads(step, *param_sets):
    r = np.random.RandomState(100 + step)
    for k in param_sets[0]:
        g = (r.randn(*param_sets[0][k].shape) * 10.0 ** r.randint(-4, 2)).astype(np.float32)
        for ps in param_sets:
            ps[k].g = g


def _same(s1, p1, s2, p2):
    for k in p1:
        np.testing.assert_array_equal(p1[k].d, p2[k].d, err_msg=k)
    st1, st2 = s1.get_states(), s2.get_states()
    for k in p1:
        assert st1[k].t == st2[k].t
        for name in ("mean", "var"):
            np.testing.assert_array_equal(st1[k].pstate[name].d, st2[k].pstate[name].d, err_msg=f"{k} {name}")


@pytest.mark.parametrize("lr_scale, settings", [(1.0, SETTINGS), (0.5, SETTINGS),
                                                 (1.0, {"alpha": 0.001, "beta1": 0.9, "beta2": 0.99, "eps": 1e-4})])
def test_fused_adam_is_nnablas_adam_bit_for_bit(lr_scale, settings):
    (fused, a), (plain, b) = _pair(lr_scale, settings)
    for step in range(6):
        _grads(step, a, b)
        if step == 2:   # what OptimizerStep does with weight_decay and an lr_scheduler
            for s in (fused, plain):
                s.weight_decay(0.01)
                s.set_learning_rate(s.learning_rate() * 0.3)
        fused.update()
        plain.update()
        _same(fused, a, plain, b)


def test_states_saved_by_either_solver_resume_in_the_other(tmp_path):
    (fused, a), (plain, b) = _pair()
    for step in range(3):
        _grads(step, a, b)
        fused.update()
        plain.update()
    fused.save_states(str(tmp_path / "fused.h5"))
    plain.save_states(str(tmp_path / "plain.h5"))
    # Swap: the NNabla solver continues from the fused one's file, the fused one from NNabla's.
    (fused2, a2), (plain2, b2) = _pair()
    for k in a:
        a2[k].d, b2[k].d = b[k].d, a[k].d
    fused2.load_states(str(tmp_path / "plain.h5"))
    plain2.load_states(str(tmp_path / "fused.h5"))
    _same(fused2, a2, plain2, b2)
    for step in range(3, 5):
        _grads(step, a2, b2)
        fused2.update()
        plain2.update()
    _same(fused2, a2, plain2, b2)
    assert fused2.get_states()["net/p0"].t == 5


def test_a_small_network_keeps_nnablas_update(monkeypatch):
    (fused, a), (plain, b) = _pair()
    monkeypatch.setattr("nncgan.solver_kernels._kernel", lambda: pytest.fail("the fused loop ran"))
    fused.set_parameters({"net/p1": a["net/p1"]}, reset=True)
    plain.set_parameters({"net/p1": b["net/p1"]}, reset=True)
    a["net/p1"].g = b["net/p1"].g = np.ones(33, np.float32)
    fused.update()
    plain.update()
    np.testing.assert_array_equal(a["net/p1"].d, b["net/p1"].d)
    assert fused.get_states()["net/p1"].t == 1


def test_adam_falls_back_to_nnablas_solver_where_the_fused_loop_does_not_apply(monkeypatch):
    assert isinstance(solvers.make("Adam", {}), FusedAdam)
    with cpu_kernels.disabled():   # NNP export, or NNCGAN_KERNELS=nnabla
        assert isinstance(solvers.make("Adam", {}), nnabla.solver.Solver)
    assert isinstance(solvers.make("Adamax", {}), nnabla.solver.Solver)
    monkeypatch.setattr("nncgan.solver_kernels.available", lambda: False)   # no numba installed
    assert isinstance(solvers.make("Adam", {}), nnabla.solver.Solver)
