"""The settings schema: every setting a graph file may write, described once.

Validation (graph/parse.py), `--set` (graph/overrides.py), `nncgan render` and `nncgan check`
all read these tables, so a setting the file accepts is one `--set` accepts, checked by the
same code with the same message. A setting is a `Setting` (nncgan.layers.base, the API layer
types declare their settings with): `parse` turns a YAML value into the checked value or
raises ValueError saying what was expected ("an integer >= 1"), plus `default`, `required`
and `doc`. A `Compound` setting's value is a mapping with problems of its own (config.keep,
an optimizer's solver or lr_scheduler): its parse returns (spec, [(key or None, message)]).

The sections and what each setting's message names:
- a layer type's settings: `lt.settings` (nncgan.layers), "<Type> setting 'key'"; null = the default
- a loss's `target:` mapping: Input's generator/multiplier/dataset, "target 'key'"
- CONFIG: the `config:` keys, "config.key"
- OPTIMIZER: an optimizer's keys, "key" (solver and schedules: "optimizer 'NAME': ...")
- solver_settings(type): a solver's settings, defaults from nncgan.solvers, "solver setting 'key'"
- schedule_settings(key, type): lr_scheduler / warmup settings (nncgan.schedules)
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

from .. import limits, schedules, solvers
from ..layers import get as get_layer_type
from ..layers.base import Setting, any_str, bool_, float_, int_

LAYER_KEYS = ("name", "type", "input", "inputs", "scope", "lr_mult", "target")  # besides a type's settings


@dataclass(frozen=True)
class Compound(Setting):
    """A setting holding a mapping: parse(value, label) -> (spec, [(key or None, full message)])."""


def check(setting, value, label):
    """(checked value, [(key or None, message)]); on a problem the value is the setting's default."""
    if isinstance(setting, Compound):
        spec, problems = setting.parse(value, label)
        return (setting.default if problems else spec), problems
    try:
        return setting.parse(value), []
    except ValueError as e:
        return setting.default, [(None, f"{label} must be {e}, got {value!r}")]


# ---- config

def int_in(least, most):
    def parse(v):
        if not isinstance(v, int) or isinstance(v, bool) or not least <= v <= most:
            raise ValueError(f"an integer {least}..{most:,}")
        return v
    return parse


def _decay(v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise ValueError("a decay between 0 and 1 (e.g. 0.999) or null")
    return float(v)


def _monitor(v, label):
    from ..train.monitor import parse
    return parse(v)


def _keep(v, label):
    from ..train.keep import parse_keep
    spec, problems = parse_keep(v)
    return spec or "last", problems


def _save_every(v, label):
    from ..train.keep import parse_save_every
    return parse_save_every(v)


CONFIG = {
    "batch_size": Setting(int_in(1, limits.MAX_BATCH), 64, doc="samples per iteration"),
    "max_epoch": Setting(int_in(1, limits.MAX_EPOCHS), 100, doc="epochs to train"),
    "seed": Setting(int_in(0, limits.SEED_MAX), 0, doc="seeds parameters, data order and latents"),
    "save_best": Setting(bool_, False, doc="NNC's Save Best; only false (a GAN's lowest loss is not its best)"),
    "ema": Setting(_decay, None, doc="decay of the executor's parameter average, null for none"),
    "ema_start": Setting(int_in(0, limits.MAX_COUNT), 0, doc="the iteration the average starts from"),
    "monitor": Compound(_monitor, None, doc="NNC's monitor pass: {interval: N, monitors: {...}}"),
    "keep": Compound(_keep, "last", doc="which complete epochs stay: last, {every: N}, {best: ...}"),
    "save_every": Compound(_save_every, None, doc="a partial epoch's save: {iterations: N}, {minutes: M}"),
}


# ---- optimizers, solvers, schedules

def _number(v):
    """A solver setting: a finite number >= 0 (NNabla's solvers take floats)."""
    return float_(0)(v)


def solver_settings(solver_type):
    """{setting: Setting} of a solver type (nncgan.solvers), {} for an unknown one."""
    if solver_type not in solvers.SOLVERS:
        return {}
    return {k: Setting(_number, d) for k, d in solvers.SOLVERS[solver_type][1].items()}


def _solver(s, label):
    """An optimizer's solver: a type name or {type: NAME, setting: value} -> (type, {setting: float})."""
    from ..hints import did_you_mean as _suggest
    if isinstance(s, str):
        s = {"type": s}
    if not isinstance(s, dict) or s.get("type") not in solvers.SOLVERS:
        got = s.get("type") if isinstance(s, dict) else s
        return None, [(None, f"{label}: solver type must be one of {', '.join(solvers.SOLVERS)}"
                             f"{_suggest(got, solvers.SOLVERS)} (got {got!r})")]
    table, out, problems = solver_settings(s["type"]), {}, []
    for k, v in s.items():
        if k == "type":
            continue
        if k not in table:
            problems.append((k, f"unknown setting '{k}' for solver {s['type']}{_suggest(k, table)} "
                                f"Known: {', '.join(table)}"))
            continue
        out[k], bad = check(table[k], v, f"solver setting '{k}'")
        problems += [(k, msg) for _, msg in bad]
    return (s["type"], out), problems


SCHEDULE_TABLES = {"lr_scheduler": schedules.SCHEDULERS, "warmup": schedules.WARMUPS}


def schedule_settings(key, schedule_type):
    """{setting: Setting} of an lr_scheduler or warmup type (nncgan.schedules)."""
    table = SCHEDULE_TABLES[key].get(schedule_type, {})
    return {k: Setting(lambda v, k=k: schedules.check_setting(k, v), d) for k, d in table.items()}


def _schedule(key):
    return lambda v, label: schedules.parse(v, SCHEDULE_TABLES[key], label)


OPTIMIZER = {
    "network": Setting(any_str, required=True, doc="the network whose loss it minimises"),
    "solver": Compound(_solver, ("Adam", {}), required=True, doc="{type: Adam|Sgd|..., setting: value}"),
    "update_interval": Setting(int_(1), 1, doc="iterations whose gradients add up into one update"),
    "weight_decay": Setting(float_(0), 0.0, doc="NNC's WeightDecay"),
    "lr_scheduler": Compound(_schedule("lr_scheduler"), None, doc="{type: " + "|".join(schedules.SCHEDULERS) + ", ...}"),
    "warmup": Compound(_schedule("warmup"), None, doc="{type: Linear, length: N, unit: epoch|iteration}"),
}


def optimizer_label(opt, key):
    """How a problem of optimizer `opt`'s `key` is named."""
    if key == "solver":
        return f"optimizer '{opt}'"
    if key in SCHEDULE_TABLES:
        return f"optimizer '{opt}': {key}"
    return key


# ---- where a setting is, for --set

class Found(NamedTuple):
    setting: Setting
    label: str
    null_is_default: bool = False  # a layer setting written null takes its default


def settings_at(parent, path):
    """{key: Found} of the settings a mapping at `path` (keys walked from the top) may hold,
    `parent` being that mapping as loaded; {} where the schema says nothing (a dataset, a name)."""
    path = [str(p) for p in path]
    if path == ["config"]:
        return {k: Found(s, f"config.{k}") for k, s in CONFIG.items()}
    if len(path) == 2 and path[0] == "optimizers":
        return {k: Found(s, optimizer_label(path[1], k)) for k, s in OPTIMIZER.items()}
    if len(path) == 3 and path[0] == "optimizers" and path[2] == "solver":
        return {k: Found(s, f"solver setting '{k}'") for k, s in solver_settings(parent.get("type")).items()}
    if len(path) == 3 and path[0] == "optimizers" and path[2] in SCHEDULE_TABLES:
        what = f"optimizer '{path[1]}': {path[2]}"
        return {k: Found(s, f"{what} setting '{k}'")
                for k, s in schedule_settings(path[2], parent.get("type")).items()}
    if "layers" in path and path[-1] == "target":
        inp = get_layer_type("Input").settings
        return {k: Found(inp[k], f"target '{k}'") for k in ("generator", "multiplier", "dataset")}
    type_name = None
    if "layers" in path and isinstance(parent.get("type"), str):
        type_name = parent["type"]
    elif len(path) == 2 and path[0] == "defaults" or len(path) >= 2 and path[-2] == "settings":
        type_name = path[-1]    # defaults.<Type>, a use: entry's settings.<Type>
    lt = get_layer_type(type_name) if type_name else None
    if lt is None:
        return {}
    return {k: Found(s, f"{type_name} setting '{k}'", True) for k, s in lt.settings.items()}


def settable(parent, path):
    """The keys a mapping at `path` may be given although the file leaves them out."""
    keys = list(settings_at(parent, path))
    if "layers" in path and isinstance(parent.get("type"), str) and get_layer_type(parent["type"]):
        keys = list(LAYER_KEYS) + keys
    if len(path) == 3 and path[0] == "optimizers" and path[2] in ("solver",) + tuple(SCHEDULE_TABLES):
        keys = ["type"] + keys
    return keys


def defaults(table):
    """{key: default} of a section, e.g. the config keys a rendered graph writes."""
    return {k: s.default for k, s in table.items()}


def validate(found: Optional[Found], value):
    """Problems of `value` for a setting as the file's validation finds them ([] when fine)."""
    if found is None or (found.null_is_default and value is None):
        return []
    return [msg for _, msg in check(found.setting, value, found.label)[1]]
