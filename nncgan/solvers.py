"""NNC's optimizer solvers (Adam, Sgd, Momentum, ...) by name, on nnabla.solvers.

Adding a solver is one entry here: its settings, their defaults and checks reach validation,
`--set`, `render` and `check` through nncgan.graph.schema."""
import nnabla.solvers as S

# name -> (constructor, {setting: default}, the setting that is the learning rate)
SOLVERS = {
    "Adam": (S.Adam, {"alpha": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, "alpha"),
    "Adamax": (S.Adamax, {"alpha": 0.002, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, "alpha"),
    "AdamW": (S.AdamW, {"alpha": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "wd": 1e-4}, "alpha"),
    "Sgd": (S.Sgd, {"lr": 0.001}, "lr"),
    "Momentum": (S.Momentum, {"lr": 0.001, "momentum": 0.9}, "lr"),
    "Nesterov": (S.Nesterov, {"lr": 0.001, "momentum": 0.9}, "lr"),
    "Adagrad": (S.Adagrad, {"lr": 0.01, "eps": 1e-8}, "lr"),
    "RMSprop": (S.RMSprop, {"lr": 0.001, "decay": 0.9, "eps": 1e-8}, "lr"),
    "Adadelta": (S.Adadelta, {"lr": 1.0, "decay": 0.95, "eps": 1e-6}, "lr"),
}


def learning_rate_key(name):
    return SOLVERS[name][2]


def nnp_field(name):
    """The field of NNabla's protobuf Solver holding this solver's settings (adam_param, ...)."""
    return f"{name.lower()}_param"


def filled(name, settings):
    """Every setting of solver `name`: those given, the rest at their defaults."""
    return dict(SOLVERS[name][1], **settings)


def make(name, settings, lr_scale=1.0):
    """A solver whose every step is `lr_scale` times the configured one (an LRateMultiplier)."""
    ctor, _, lr_key = SOLVERS[name]
    kwargs = filled(name, settings)
    kwargs[lr_key] = kwargs[lr_key] * lr_scale
    solver = ctor(**kwargs)
    if name == "Adam" and fused():
        from .solver_kernels import FusedAdam
        return FusedAdam(solver, kwargs["beta1"], kwargs["beta2"], kwargs["eps"])
    return solver


def fused():
    """Whether Adam's update runs nncgan's fused CPU loop: where the BLAS layer kernels run (the CPU float
    context, not switched off) and numba is installed; NNabla's own solver otherwise (CUDA, NNP export)."""
    from .layers import cpu_kernels
    from .solver_kernels import available
    return cpu_kernels.enabled() and available()
