"""Adam's update as one fused, vectorised loop on the CPU (numba), over NNabla's own solver states.

NNabla's CPU Adam is a scalar loop: a square root and a division per element kept it at about
5 ns an element, 27 ms of a cgan_mnist iteration (its 5.2 M parameter updates: the Generator's
once, the discriminator's twice). Compiled by numba with NumPy's error model (no per-element
zero-division check, so LLVM vectorises it), the same arithmetic in the same order takes a third
of that (bench/kernel_ab.py) and gives bit-identical parameters and states (tests/test_fused_adam.py).

The NNabla solver stays the owner of everything else: its states (mean, var, t) are the arrays
this loop updates in place, so save_states/load_states, weight_decay, set_learning_rate and
checkpoints are NNabla's. Only the step count t lives here between updates (NNabla's SolverState
hands out a copy of it); it is written back before the states are read or saved.
"""
import math

import numpy as np

_KERNEL = []


def _kernel():
    """The compiled update (compiled once per process, cached on disk beside this module when it can be)."""
    if not _KERNEL:
        import numba

        def adam(p, g, m, v, beta1, beta2, alpha_t, eps):
            # nbla/solver/generic/adam.cpp's loop, operation for operation (float32 throughout).
            one = np.float32(1)
            for s in range(p.size):
                m[s] = beta1 * m[s] + (one - beta1) * g[s]
                v[s] = beta2 * v[s] + (one - beta2) * g[s] * g[s]
                p[s] = p[s] - alpha_t * m[s] / (np.sqrt(v[s]) + eps)

        try:
            _KERNEL.append(numba.njit(adam, nogil=True, error_model="numpy", cache=True))
        except RuntimeError:  # no writable cache location: compile in memory
            _KERNEL.append(numba.njit(adam, nogil=True, error_model="numpy"))
    return _KERNEL[0]


def available():
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class FusedAdam:
    """An NNabla Adam solver whose update() runs the fused loop; every other call is the solver's own.

    Below MIN_SIZE parameters it leaves the update to NNabla too: the loop's one-time start (importing
    numba, loading the compiled loop: 0.3-0.8 s a process, and about 120 MB of resident memory) would
    cost more than it saves on a small network."""
    MIN_SIZE = 1 << 18

    def __init__(self, solver, beta1, beta2, eps):
        self._solver = solver
        self._b1, self._b2, self._eps = np.float32(beta1), np.float32(beta2), np.float32(eps)
        self._bound = []   # [(key, parameter, mean, var)]
        self._t = {}
        self._fresh_t = self._small = True

    def __getattr__(self, name):
        return getattr(self._solver, name)

    def _bind(self):
        """Take the solver's parameters and state variables (after they were set or loaded)."""
        params = self._solver.get_parameters()
        states = self._solver.get_states()
        self._bound = [(k, params[k], states[k].pstate["mean"], states[k].pstate["var"]) for k in params]
        self._t = {k: states[k].t for k in params}
        self._fresh_t = True
        self._small = sum(p.size for p in params.values()) < self.MIN_SIZE

    def _sync(self):
        """Write the step counts back into NNabla's states, before they are read or saved."""
        if self._fresh_t:
            return
        states = self._solver.get_states()
        for k, st in states.items():
            st.t = self._t[k]
        self._solver.set_states(states)
        self._fresh_t = True

    def update(self):
        if self._small:
            return self._solver.update()
        kernel = _kernel()
        alpha = np.float32(self._solver.learning_rate())
        # As adam.cpp: std::pow(float beta, t) in double, the correction rounded to float, times alpha in float.
        b1, b2 = float(self._b1), float(self._b2)
        for key, p, m, v in self._bound:
            t = self._t[key] = min(self._t[key] + 1, 2 ** 32 - 2)
            alpha_t = alpha * np.float32(math.sqrt(1 - b2 ** t) / (1 - b1 ** t))
            kernel(p.data.get_data("rw", np.float32).reshape(-1), p.grad.get_data("r", np.float32).reshape(-1),
                   m.data.get_data("rw", np.float32).reshape(-1), v.data.get_data("rw", np.float32).reshape(-1),
                   self._b1, self._b2, alpha_t, self._eps)
        self._fresh_t = False

    def set_parameters(self, *args, **kwargs):
        self._sync()
        self._solver.set_parameters(*args, **kwargs)
        self._bind()

    def remove_parameters(self, *args, **kwargs):
        self._sync()
        self._solver.remove_parameters(*args, **kwargs)
        self._bind()

    def clear_parameters(self):
        self._solver.clear_parameters()
        self._bind()

    def get_states(self):
        self._sync()
        return self._solver.get_states()

    def save_states(self, path):
        self._sync()
        self._solver.save_states(path)

    def set_states_to_protobuf(self, *args, **kwargs):
        self._sync()
        return self._solver.set_states_to_protobuf(*args, **kwargs)

    def set_states(self, states):
        self._solver.set_states(states)
        self._bind()

    def load_states(self, path):
        self._solver.load_states(path)
        self._bind()

    def set_states_from_protobuf(self, *args, **kwargs):
        self._solver.set_states_from_protobuf(*args, **kwargs)
        self._bind()
