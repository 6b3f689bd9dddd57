"""NNC's learning-rate schedulers and warm-up, on nnabla.utils.learning_rate_scheduler.

An optimizer's `lr_scheduler:` and `warmup:` mirror NNC's Config tab (LearningRateScheduler,
LearningRateMultiplier -> gamma, LearningRateUpdateInterval -> interval, its Unit -> unit,
LearningRatePower -> power, LearningRateSteps -> steps, LearningRateWarmupScheduler/Length/
LengthUnit -> warmup). The schedule is NNabla's own scheduler object, built as `nnabla_cli
train` builds it (utils/load.py `_create_optimizer`), with epochs turned into iterations the way
NNC writes its NNP. It is a function of the iteration alone, so a resumed run continues it exactly.
"""
from nnabla.utils import learning_rate_scheduler as LRS

UNITS = ("epoch", "iteration")
# type -> {setting: default}; max_iter None = the whole training (config.max_epoch x iterations per epoch)
SCHEDULERS = {
    "Exponential": {"gamma": 1.0, "interval": 1, "unit": "epoch"},
    "Step": {"gamma": 0.1, "steps": [], "unit": "epoch"},
    "Polynomial": {"power": 1.0, "max_iter": None},
    "Cosine": {"max_iter": None},
}
WARMUPS = {"Linear": {"length": 0, "unit": "epoch"}}


def check_setting(key, v):
    """The value of scheduler setting `key`, or ValueError(what was expected)."""
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if key in ("gamma", "power"):
        if not num or not (0 <= v < float("inf")):
            raise ValueError("a finite number >= 0")
        return float(v)
    if key in ("interval", "length"):
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if key == "interval" else 0):
            raise ValueError(f"an integer >= {1 if key == 'interval' else 0}")
        return v
    if key == "max_iter":
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError("an integer >= 1 (iterations), or null for the whole training")
        return v
    if key == "unit":
        if v not in UNITS:
            raise ValueError("epoch or iteration")
        return v
    if key == "steps":
        if not isinstance(v, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v):
            raise ValueError("a list of integers >= 0 (epochs or iterations, as unit says)")
        return sorted(v)
    raise ValueError("a known setting")


def parse(node, table, what):
    """{type: NAME, setting: value} -> (spec dict with defaults filled, [problem messages]).

    A problem is (key or None, message); None means the whole entry."""
    if node is None:
        return None, []
    if isinstance(node, str):
        node = {"type": node}
    if not isinstance(node, dict) or node.get("type") not in table:
        got = node.get("type") if isinstance(node, dict) else node
        return None, [(None, f"{what} must be {{type: {'|'.join(table)}, ...}}, got {got!r}")]
    spec, problems = dict(table[node["type"]], type=node["type"]), []
    for k, v in node.items():
        if k == "type":
            continue
        if k not in table[node["type"]]:
            problems.append((k, f"unknown setting '{k}' for {what} {node['type']}; "
                                f"known: {', '.join(table[node['type']]) or '(none)'}"))
            continue
        try:
            spec[k] = check_setting(k, v)
        except ValueError as e:
            problems.append((k, f"{what} setting '{k}' must be {e}, got {v!r}"))
    return spec, problems


def _iters(n, unit, iter_per_epoch):
    return n * iter_per_epoch if unit == "epoch" else n


def nnp_fields(spec, warmup, iter_per_epoch, max_epoch):
    """The schedule in iterations, as NNabla's Solver message holds it (NNC's NNP export):
    (lr_scheduler_type, {param: value}, warmup_iter or 0)."""
    kind, params = "", {}
    if spec is not None:
        kind = spec["type"]
        if kind == "Exponential":
            params = {"gamma": spec["gamma"], "iter_interval": _iters(spec["interval"], spec["unit"], iter_per_epoch)}
        elif kind == "Step":
            params = {"gamma": spec["gamma"],
                      "iter_steps": [_iters(s, spec["unit"], iter_per_epoch) for s in spec["steps"]]}
        else:
            params = {"max_iter": spec["max_iter"] or max_epoch * iter_per_epoch}
            if kind == "Polynomial":
                params["power"] = spec["power"]
    warm = _iters(warmup["length"], warmup["unit"], iter_per_epoch) if warmup is not None else 0
    return kind, params, warm


def make(spec, warmup, init_lr, iter_per_epoch, max_epoch):
    """NNabla's scheduler for an optimizer, or None when the rate stays `init_lr` throughout.

    Mirrors nnabla.utils.load._create_optimizer: a scheduler that cannot change the rate
    (gamma 1, no steps, power 0) is left out, as nnabla_cli leaves it out."""
    kind, p, warm = nnp_fields(spec, warmup, iter_per_epoch, max_epoch)
    sched = None
    if kind == "Exponential" and p["gamma"] != 1.0:
        sched = LRS.ExponentialScheduler(init_lr, p["gamma"], max(1, p["iter_interval"]))
    elif kind == "Step" and p["gamma"] != 1.0 and p["iter_steps"]:
        sched = LRS.StepScheduler(init_lr, p["gamma"], p["iter_steps"])
    elif kind == "Polynomial" and p["power"] != 0.0:
        sched = LRS.PolynomialScheduler(init_lr, p["max_iter"], p["power"])
    elif kind == "Cosine":
        sched = LRS.CosineScheduler(init_lr, p["max_iter"])
    if warm > 0:
        sched = LRS.LinearWarmupScheduler(sched or LRS.ExponentialScheduler(init_lr, 1.0, 1), warm)
    return sched
