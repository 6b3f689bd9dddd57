"""Graph file -> validated `Graph`, reporting every problem found in one pass.

Each problem names file, line, network and layer and what was expected; all of them are
raised together as one `GraphError`. Nothing here touches NNabla: shapes are inferred from
the layer registry, so a broken graph fails before any memory is allocated.
"""
import os

from .. import limits
from ..data import spec as dataset_spec
from ..errors import GraphError
from ..layers import get as get_layer_type, known_types
from ..layers.base import ShapeError
from ..layers.palette import grouped_types
from . import schema
from ..hints import close as _close, did_you_mean as _suggest
from .params import resolve as resolve_params
from ..data.kind import DatasetInfo
from .model import Config, Executor, Graph, Layer, Network, Optimizer, Where
from .yamlio import Node, Seq, load_file

TOP_KEYS = ("nncgan", "name", "description", "params", "dataset", "config", "defaults", "blocks", "networks",
            "optimizers", "executors")
# The config and optimizer keys with their defaults: names kept for importers; nncgan.graph.schema describes them.
CONFIG_KEYS = schema.defaults(schema.CONFIG)
OPTIMIZER_KEYS = schema.defaults(schema.OPTIMIZER)
LAYER_KEYS = schema.LAYER_KEYS
USE_KEYS = ("use", "inputs", "prefix", "scope_prefix", "lr_mult", "settings")
MISSING = object()
MAX_ELEMENTS = 1 << 28  # per sample or parameter: 1 GiB of float32 (the NNC sample's largest is 1.6 M)


def _article(word):
    return "an" if str(word)[:1].upper() in "AEIOU" else "a"


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Problems:
    """The problems found, each once: a block used by several networks reports a problem of its own
    lines one time, naming every use, not once per network."""

    def __init__(self, path):
        self.path = path
        self.items = []
        self.count = 0  # every add, repeats included: "did this layer have a problem?"
        self._uses = {}  # (line, layer, block, msg) -> (index in items, [(network, used_at)])

    def add(self, where, msg):
        self.count += 1
        if not getattr(where, "block", None):
            self.items.append(f"{where} {msg}")
            return
        key = (where.file, where.line, where.layer, where.block, msg)
        if key not in self._uses:
            self._uses[key] = (len(self.items), [])
            self.items.append(None)
        index, uses = self._uses[key]
        uses.append((where.network, where.used_at))
        if len(uses) == 1:
            self.items[index] = f"{where} {msg}"
        else:
            nets = ", ".join(f"'{n}' (line {u})" for n, u in uses)
            self.items[index] = (f"{where.file}:{where.line}: layer '{where.layer}' of block '{where.block}', "
                                 f"used by networks {nets}: {msg}")

    def at(self, line, **kw):
        return Where(self.path, line, **kw)

    def keys(self, node, allowed, where, what, required=()):
        """Unknown keys (with the nearest known ones) and missing required keys of a mapping."""
        ok = True
        for k in node:
            if k not in allowed:
                w = Where(**{**where.__dict__, "line": node.line_of(k)})
                self.add(w, f"unknown key '{k}' in {what}{_suggest(k, allowed) or '.'} "
                            f"Known: {', '.join(allowed)}")
                ok = False
        for k in required:
            if k not in node:
                self.add(where, f"{what} needs '{k}'")
                ok = False
        return ok


def parse_graph(path, base_dir=None, raw=None, text=None):
    """Read, validate and resolve the graph file at `path`; raise GraphError listing every problem.

    Relative paths in the graph resolve against `base_dir` (default: the graph file's folder).
    `raw` and `text`, when given, are the already loaded (e.g. overridden) tree and the text a
    run keeps of it; errors still name `path` and the lines the tree was loaded from.
    """
    path = os.fspath(path)
    if raw is None:
        raw = load_file(path)
    if text is None:
        from ..safeio import open_regular
        try:
            with open_regular(path, "r") as f:
                text = f.read()
        except OSError as e:
            raise GraphError(f"{path}: cannot read the graph file: {e.strerror}") from None
    return _Parser(path, raw, text, base_dir or os.path.dirname(os.path.abspath(path))).parse()


class _Parser:
    def __init__(self, path, raw, text, base_dir):
        self.path, self.raw, self.text, self.base_dir = path, raw, text, base_dir
        self.p = _Problems(path)
        self.broken = set()  # ids of layers already reported

    def where(self, node, key=None, **kw):
        line = node.line_of(key) if (key is not None and isinstance(node, (Node, Seq))) \
            else getattr(node, "line", 1)
        return self.p.at(line, **kw)

    def section(self, key, kind=Node, required=True):
        v = self.raw.get(key, MISSING)
        if v is MISSING:
            if required:
                self.p.add(self.p.at(1), f"the graph needs a '{key}:' section")
            return kind()
        if not isinstance(v, kind):
            what = "a mapping" if kind is Node else "a list"
            self.p.add(self.where(self.raw, key), f"'{key}' must be {what}")
            return kind()
        return v

    # ---- top level
    def parse(self):
        self.p.keys(self.raw, TOP_KEYS, self.p.at(1), "the graph")
        self.raw, params, problems = resolve_params(self.raw, self.path)  # ${h/8} -> a number
        self.p.items += problems
        dataset, described = self.parse_dataset()
        config = self.parse_config()
        self.defaults = self.parse_defaults()
        self.blocks = self.section("blocks", required=False)
        networks = {}
        nets_node = self.section("networks")
        for name, node in nets_node.items():
            networks[name] = self.parse_network(str(name), node, nets_node.line_of(name), described)
        self.check_scopes(networks)
        for name, m in (config.monitor or {}).get("monitors", {}).items():
            if m["network"] not in networks:
                self.p.add(self.where(self.raw["config"]["monitor"], "monitors"),
                           f"config.monitor: monitor '{name}': unknown network '{m['network']}'"
                           f"{_suggest(m['network'], networks)}")
        self.check_batch(networks, config)
        self.check_name()
        optimizers = self.parse_optimizers(networks)
        executors = self.parse_executors(networks)
        if self.p.items:
            raise GraphError(self.p.items)
        name = self.raw.get("name") or os.path.splitext(os.path.basename(self.path))[0]
        return Graph(self.path, str(name), dataset, config, networks, optimizers, executors, self.text, params)

    def check_name(self):
        """The graph's name becomes a run folder's name (runs/<time>-<name>): never a path."""
        from ..safeio import name_problem
        if "name" in self.raw:
            name = self.raw.get("name")
            problem = name_problem(name) if isinstance(name, str) else "must be a string"
            if problem:
                self.p.add(self.where(self.raw, "name"), f"the graph's name {name!r} {problem}")

    def parse_dataset(self):
        """The DatasetSpec, and the DatasetInfo the Inputs are checked against (empty when unusable)."""
        node = self.section("dataset")
        self.p.keys(node, dataset_spec.keys(), self.where(node), "dataset")
        spec, problems = None, []
        if isinstance(self.raw.get("dataset"), Node):  # else section() has said what is wrong
            spec, problems = dataset_spec.from_mapping(node, self.base_dir, _suggest)
        for key, message in problems:
            self.p.add(self.where(node, key), message)
        return spec, (spec.info if spec else DatasetInfo("", {}, 0))

    def parse_config(self):
        node = self.section("config")
        self.p.keys(node, tuple(CONFIG_KEYS), self.where(node), "config")
        vals = {key: self.setting(node, key, s, f"config.{key}") for key, s in schema.CONFIG.items()}
        if vals["save_best"]:
            self.p.add(self.where(node, "save_best"),
                       "config.save_best: true is not supported: a GAN's lowest loss is not its best "
                       "generator, so nncgan always keeps the last epoch (NNC's Save Best off)")
        return Config(**vals)

    def parse_defaults(self):
        node = self.section("defaults", required=False)
        out = {}
        for t, settings in node.items():
            lt = get_layer_type(t)
            if lt is None:
                self.p.add(self.where(node, t), f"defaults: unknown layer type '{t}'{_suggest(t, known_types())}")
                continue
            if not isinstance(settings, Node):
                self.p.add(self.where(node, t), f"defaults.{t} must be a mapping of settings")
                continue
            out[t] = settings
        return out

    # ---- networks and blocks
    def parse_network(self, name, node, line, dataset):
        nw = self.p.at(line, network=name)
        if not isinstance(node, Node):
            self.p.add(nw, "a network must be a mapping with 'layers:'")
            return Network(name, [], {}, nw)
        self.p.keys(node, ("layers", "outputs", "description"), nw, f"network '{name}'", required=("layers",))
        entries = node.get("layers", Seq())
        if not isinstance(entries, Seq):
            self.p.add(self.where(node, "layers", network=name), "'layers' must be a list")
            entries = Seq()
        layers = self.expand(entries, name, placeholders={}, ctx={})
        layers = self.order_and_check(name, layers, dataset)
        outputs = {}
        out_node = node.get("outputs", Node())
        if not isinstance(out_node, Node):
            self.p.add(self.where(node, "outputs", network=name), "'outputs' must map names to layers")
            out_node = Node()
        names = {l.name for l in layers}
        for alias, target in out_node.items():
            if target not in names:
                self.p.add(self.where(out_node, alias, network=name),
                           f"output '{alias}' names unknown layer '{target}'{_suggest(target, names)}")
            outputs[str(alias)] = target
        return Network(name, layers, outputs, nw)

    def expand(self, entries, network, placeholders, ctx):
        """Layer entries (and `use:` of blocks) -> Layers, with implicit inputs resolved.

        `placeholders` maps a block's input names to layer names in the network; `ctx` carries
        the `use:` entry's prefix, scope prefix, multiplier factor and settings overrides.
        """
        out = []
        prev = None
        for i, e in enumerate(entries):
            line = entries.line_of(i)
            w = self.p.at(line, network=network, block=ctx.get("block"), used_at=ctx.get("used_at"))
            if not isinstance(e, Node):
                self.p.add(w, "each layer must be a mapping with 'name' and 'type' (or 'use: BLOCK')")
                continue
            if "use" in e:
                if ctx.get("block"):
                    self.p.add(w, "a block cannot use another block")
                    continue
                got = self.expand_use(e, network, line, prev)
            else:
                got = self.parse_layer(e, network, w, placeholders, ctx, prev)
            if got:
                out.extend(got)
                prev = got[-1].name
        return out

    def expand_use(self, e, network, line, prev):
        w = self.p.at(line, network=network)
        self.p.keys(e, USE_KEYS, w, "a 'use:' entry")
        bname = e["use"]
        block = self.blocks.get(bname) if isinstance(bname, str) else None
        if not isinstance(block, Node):
            self.p.add(w, f"unknown block '{bname}'{_suggest(bname, self.blocks)} "
                          f"Known: {', '.join(map(str, self.blocks)) or '(none)'}")
            return []
        bw = self.where(block)
        self.p.keys(block, ("inputs", "layers", "description"), bw, f"block '{bname}'", required=("layers",))
        prefix = e.get("prefix", "")
        scope_prefix = e.get("scope_prefix", "")
        for k in ("prefix", "scope_prefix"):
            if not isinstance(e.get(k, ""), str):
                self.p.add(w, f"'{k}' must be a string")
                return []
        factor = e.get("lr_mult", 1.0)
        if not _is_num(factor) or not factor >= 0 or factor == float("inf"):
            self.p.add(w, f"lr_mult of a 'use:' entry must be a finite number >= 0 (it multiplies every "
                          f"multiplier in the block), got {factor!r}")
            factor = 1.0
        overrides = e.get("settings", Node())
        if not isinstance(overrides, Node) or not all(isinstance(v, Node) for v in overrides.values()):
            self.p.add(w, "'settings' must map layer types to settings, e.g. "
                          "{BatchNormalization: {batch_stat: false}}")
            overrides = Node()
        for t in overrides:
            if get_layer_type(t) is None:
                self.p.add(w, f"settings for unknown layer type '{t}'{_suggest(t, known_types())}")
        # Bind the block's inputs: explicitly, else to the network's layer of the same name.
        declared = block.get("inputs", Seq())
        if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
            self.p.add(bw, f"block '{bname}': 'inputs' must be a list of names")
            declared = []
        given = e.get("inputs", Node())
        if not isinstance(given, Node):
            self.p.add(w, "'inputs' of a 'use:' entry must map the block's inputs to layers, "
                          "e.g. {image: Sigmoid}")
            given = Node()
        for k in given:
            if k not in declared:
                self.p.add(w, f"block '{bname}' has no input '{k}'{_suggest(k, declared)} "
                              f"Its inputs: {', '.join(map(str, declared)) or '(none)'}")
        placeholders = {d: given.get(d, d) for d in declared}
        layers_node = block.get("layers", Seq())
        if not isinstance(layers_node, Seq):
            self.p.add(bw, f"block '{bname}': 'layers' must be a list")
            return []
        ctx = {"block": bname, "used_at": line, "prefix": prefix, "scope_prefix": scope_prefix,
               "factor": float(factor), "overrides": overrides, "prev": prev}
        return self.expand(layers_node, network, placeholders, ctx)

    def parse_layer(self, e, network, w, placeholders, ctx, prev):
        name, ltype = e.get("name"), e.get("type")
        if not isinstance(name, str) or not name:
            self.p.add(w, "a layer needs a 'name' (a string)")
            return []
        full = ctx.get("prefix", "") + name
        w = Where(**{**w.__dict__, "layer": full})
        lt = get_layer_type(ltype)
        if lt is None:
            guess = _suggest(ltype, known_types())  # the whole list, by group, only when nothing is close
            self.p.add(w, f"unknown layer type '{ltype}'" + (guess or "; layer types by group: "
                                                              + "; ".join(grouped_types())))
            # Kept as a shapeless stand-in so that layers reading it report nothing spurious.
            given = e.get("inputs", e.get("input", [prev] if prev else []))
            given = [given] if isinstance(given, str) else given if isinstance(given, list) else []
            return [Layer(full, str(ltype), [self.resolve(g, placeholders, ctx) for g in given
                                             if isinstance(g, str)], {}, full, {}, w, shape=None)]
        allowed = LAYER_KEYS + tuple(lt.settings)
        before = self.p.count
        self.p.keys(e, allowed, w, f"{_article(ltype)} {ltype} layer")
        # a misspelt key (out_shpe) is the one cause: the setting it meant is not reported missing too
        meant = {m for k in e if k not in allowed for m in _close(k, allowed)[:1]}

        # settings: type defaults < graph defaults < the layer's own < the use: entry's overrides
        raw = {k: v for k, v in e.items() if k in lt.settings}
        for src in (self.defaults.get(ltype, {}), raw, ctx.get("overrides", {}).get(ltype, {})):
            for k in src:
                if k not in lt.settings:
                    self.p.add(w, f"unknown setting '{k}' for {ltype}{_suggest(k, lt.settings)} "
                                  f"Known: {', '.join(lt.settings) or '(none)'}")
        merged = {**self.defaults.get(ltype, {}), **raw, **ctx.get("overrides", {}).get(ltype, {})}
        settings = {}
        for key, spec in lt.settings.items():
            if key in merged and merged[key] is not None:
                settings[key], problems = schema.check(spec, merged[key], f"{ltype} setting '{key}'")
                for _, msg in problems:
                    self.p.add(Where(**{**w.__dict__, "line": e.line_of(key)}), msg)
            elif spec.required:
                if key not in meant:
                    self.p.add(w, f"{ltype} needs the setting '{key}'" + (f" ({spec.doc})" if spec.doc else ""))
                settings[key] = spec.default
            else:
                settings[key] = spec.default
        extra = []
        if lt.is_input and not ((settings.get("dataset") is None) ^ (settings.get("generator") is None)):
            self.p.add(w, "an Input needs exactly one of 'dataset' (a dataset variable) or "
                          "'generator' (Normal, Uniform or Constant)")

        # inputs: explicit, else the previous entry (NNC's chain of links)
        inputs = self.parse_inputs(e, w, lt, placeholders, ctx, prev)
        if lt.is_loss:
            target = self.parse_target(e, w, full, placeholders, ctx)
            if target is not None:
                if isinstance(target, Layer):
                    if target.settings.get("generator") and inputs:
                        target.shape_like = inputs[0]   # drawn in the prediction's shape
                    extra.append(target)
                    inputs.append(target.name)
                else:
                    inputs.append(target)

        scope = e.get("scope", name)
        if not isinstance(scope, str) or not scope:
            self.p.add(w, f"'scope' (ParameterScope) must be a non-empty string, got {scope!r}")
            scope = name
        scope = ctx.get("scope_prefix", "") + scope
        lr_mult = self.parse_lr_mult(e, w, lt, settings, ctx.get("factor", 1.0))
        layer = Layer(full, ltype, inputs, settings, scope, lr_mult, w)
        if self.p.count > before:  # reported: its shape (and those after it) would only repeat it
            self.broken.add(id(layer))
        return extra + [layer]

    def parse_inputs(self, e, w, lt, placeholders, ctx, prev):
        if "input" in e and "inputs" in e:
            self.p.add(w, "give 'input' or 'inputs', not both")
        given = e.get("inputs", e.get("input", MISSING))
        lo, hi = lt.num_inputs
        if lt.is_loss:
            lo, hi = lo - 1, hi - 1   # the target is the second input
        if given is MISSING:
            if hi == 0:
                return []
            p = prev if prev is not None else ctx.get("prev")
            if p is None:
                self.p.add(w, "no 'input' given and no layer before this one to take it from")
                return []
            if lo > 1:
                self.p.add(w, f"{lt.type_name} needs {lo} or more inputs: list them in 'inputs'")
            return [p]
        if isinstance(given, str):
            given = [given]
        if not isinstance(given, list) or not all(isinstance(g, str) for g in given):
            self.p.add(w, "'inputs' must be a layer name or a list of layer names")
            return []
        if len(given) < lo or (hi is not None and len(given) > hi):
            want = f"{lo}" if lo == hi else (f"{lo} or more" if hi is None else f"{lo} to {hi}")
            self.p.add(w, f"{lt.type_name} takes {want} input(s), got {len(given)}: {given}")
        return [self.resolve(g, placeholders, ctx) for g in given]

    @staticmethod
    def resolve(ref, placeholders, ctx):
        """A name inside a block: a block input -> the bound layer; another block layer -> prefixed."""
        if ref in placeholders:
            return placeholders[ref]
        return ctx.get("prefix", "") + ref

    def parse_target(self, e, w, loss_name, placeholders, ctx):
        t = e.get("target", MISSING)
        if t is MISSING:
            self.p.add(w, "a loss needs a 'target': {generator: Constant, multiplier: 1}, "
                          "{dataset: VARIABLE} or a layer name")
            return None
        if isinstance(t, str):
            return self.resolve(t, placeholders, ctx)
        tw = Where(**{**w.__dict__, "line": e.line_of("target")})
        if not isinstance(t, Node) or not self.p.keys(t, ("generator", "multiplier", "dataset"), tw, "a target") \
                or (("generator" in t) == ("dataset" in t)):
            self.p.add(tw, "target must be a layer name, {generator: Constant|Normal|Uniform, multiplier: M} "
                           "or {dataset: VARIABLE}")
            return None
        lt = get_layer_type("Input")
        settings = {"size": None, "dataset": None, "generator": None, "multiplier": 1.0}
        for k in ("generator", "multiplier", "dataset"):
            if k in t:
                try:
                    settings[k] = lt.settings[k].parse(t[k])
                except ValueError as err:
                    self.p.add(tw, f"target '{k}' must be {err}, got {t[k]!r}")
        name = f"{loss_name}.T"
        layer = Layer(name, "Input", [], settings, name, {}, Where(**{**tw.__dict__, "layer": name}),
                      target_of=loss_name)
        return layer

    def parse_lr_mult(self, e, w, lt, settings, factor):
        learnable = [p for p in lt.params if p not in lt.fixed_params and lt.param_used(settings, p)]
        mult = {p: 1.0 for p in learnable}
        v = e.get("lr_mult", MISSING)
        if v is not MISSING:
            lw = Where(**{**w.__dict__, "line": e.line_of("lr_mult")})
            if not lt.params:
                self.p.add(lw, f"{lt.type_name} has no parameters, so no lr_mult")
            elif _is_num(v):
                mult = {p: float(v) for p in learnable}
            elif isinstance(v, Node):
                for p, m in v.items():
                    if p in lt.fixed_params:
                        self.p.add(lw, f"'{p}' is a running statistic and never learns; "
                                       f"lr_mult applies to {', '.join(learnable)}")
                    elif p not in learnable:
                        self.p.add(lw, f"{lt.type_name} has no learnable parameter '{p}'"
                                       f"{_suggest(p, learnable)} Its parameters: {', '.join(learnable)}")
                    else:
                        mult[p] = m
            else:
                self.p.add(lw, f"lr_mult must be a number or a mapping like {{W: 1, b: 0}}, got {v!r}")
            for p, m in list(mult.items()):
                if not _is_num(m) or not (0 <= m < float("inf")):
                    self.p.add(lw, f"lr_mult of '{p}' must be a finite number >= 0 "
                                   f"(0 freezes, 0.5 halves the step), got {m!r}")
                    mult[p] = 1.0
        return {p: float(m) * factor for p, m in mult.items()}

    # ---- whole-network checks
    def order_and_check(self, network, layers, dataset):
        """Duplicate names, unknown inputs, cycles, then shapes in dependency order."""
        by_name = {}
        for l in layers:
            if l.name in by_name:
                self.p.add(l.where, f"duplicate layer name '{l.name}' (first at line {by_name[l.name].where.line})")
            else:
                by_name[l.name] = l
        ok = True
        for l in layers:
            for ref in l.inputs:
                if ref not in by_name:
                    self.p.add(l.where, f"input '{ref}' is not a layer of network '{network}'"
                                        f"{_suggest(ref, by_name)}")
                    ok = False
        if not ok:
            return list(by_name.values())
        order = self.topo_order(network, list(by_name.values()))
        if order is None:
            return list(by_name.values())
        for l in order:
            self.infer_shape(l, by_name, dataset)
        return order

    @staticmethod
    def deps(layer):
        return layer.inputs + ([layer.shape_like] if layer.shape_like else [])

    def topo_order(self, network, layers):
        by_name = {l.name: l for l in layers}
        state, order = {}, []

        for start in layers:
            if start.name in state:
                continue
            stack = [(start.name, iter(self.deps(start)))]
            state[start.name] = "open"
            path = [start.name]
            while stack:
                name, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    state[name] = "done"
                    order.append(by_name[name])
                elif state.get(nxt) == "open":
                    cycle = path[path.index(nxt):] + [nxt]
                    self.p.add(by_name[nxt].where, f"cycle in network '{network}': " + " -> ".join(reversed(cycle)))
                    return None
                elif nxt not in state:
                    state[nxt] = "open"
                    path.append(nxt)
                    stack.append((nxt, iter(self.deps(by_name[nxt]))))
        return order

    def infer_shape(self, l, by_name, dataset):
        lt = get_layer_type(l.type)
        if lt is None or id(l) in self.broken:  # already reported
            l.shape = None
            return
        in_shapes = [by_name[i].shape for i in self.deps(l)]
        if any(s is None for s in in_shapes):
            l.shape = None
            return
        l.in_shapes = in_shapes[:len(l.inputs)]
        if lt.is_input:
            l.shape = self.input_shape(l, by_name, dataset)
            return
        try:
            l.shape = tuple(lt.out_shape(l.settings, in_shapes))
        except ShapeError as err:
            names = ", ".join(f"'{i}' {s}" for i, s in zip(l.inputs, in_shapes))
            self.p.add(l.where, f"shape mismatch: {l.type} expected {err} (inputs: {names})")
            l.shape = None
            return
        except Exception:  # a shape rule tripping over settings it was not written for: no Python wording
            names = ", ".join(f"'{i}' {s}" for i, s in zip(l.inputs, in_shapes))
            self.p.add(l.where, f"{l.type} cannot work out its output shape from its settings "
                                f"({', '.join(f'{k}={v}' for k, v in l.settings.items())}) and inputs {names}")
            l.shape = None
            return
        self.check_size(l, l.shape, "output")

    def check_size(self, l, shape, what):
        """Refuse sizes no machine trains, before NNabla tries to allocate them."""
        n = 1
        for d in shape:
            n *= int(d)
        if n > MAX_ELEMENTS:
            self.p.add(l.where, f"{what} of shape {tuple(shape)} has {n:,} elements; nncgan builds at most "
                                f"{MAX_ELEMENTS:,} per sample and per parameter")
            return False
        return True

    def input_shape(self, l, by_name, dataset):
        shape = self._input_shape(l, by_name, dataset)
        return shape if shape is None or self.check_size(l, shape, "input") else None

    def _input_shape(self, l, by_name, dataset):
        s = l.settings
        var = s.get("dataset")
        if l.shape_like:
            return by_name[l.shape_like].shape
        if var is not None:
            if dataset.variables and var not in dataset.variables:
                self.p.add(l.where, f"unknown dataset variable '{var}'{_suggest(var, dataset.variables)} "
                                    f"Dataset '{dataset.name}' has: {', '.join(dataset.variables)}")
                return s.get("size")
            want = dataset.variables.get(var)
            if s.get("size") is None:
                return want
            if want is not None and tuple(s["size"]) != tuple(want):
                self.p.add(l.where, f"size {tuple(s['size'])} does not match dataset variable '{var}' "
                                    f"of shape {tuple(want)}")
        return s.get("size")

    def check_scopes(self, networks):
        """One ParameterScope = one set of parameters: every use must agree on each shape."""
        seen = {}
        for net in networks.values():
            mults = {}
            for l in net.layers:
                lt = get_layer_type(l.type)
                if lt is None or not lt.params or l.shape is None or not l.in_shapes:
                    continue
                try:
                    shapes = lt.param_shapes(l.settings, l.in_shapes)
                except Exception:
                    continue
                for p, shape in shapes.items():
                    if not self.check_size(l, shape, f"parameter {p}"):
                        continue
                    path = l.param_path(p, lt.param_prefix)
                    if path in seen and seen[path][0] != tuple(shape):
                        first = seen[path][1]
                        self.p.add(l.where, f"ParameterScope '{l.scope}' is reused with a different shape: "
                                            f"{p} is {tuple(shape)} here but {seen[path][0]} at {first}")
                    seen.setdefault(path, (tuple(shape), l.where))
                    if p in l.lr_mult:
                        if path in mults and mults[path][0] != l.lr_mult[p]:
                            self.p.add(l.where, f"parameter {path} has lr_mult {l.lr_mult[p]} here but "
                                                f"{mults[path][0]} at layer '{mults[path][1]}' of the same network")
                        mults.setdefault(path, (l.lr_mult[p], l.name))

    def check_batch(self, networks, config):
        """A batch of every network must fit: refused here, not by NNabla's allocator in `train`."""
        for net in networks.values():
            msg = limits.memory_error(net, config.batch_size, "config.batch_size")
            if msg:
                self.p.add(self.where(self.raw.get("config", self.raw), "batch_size"), msg)
                return

    # ---- training and runtime
    def parse_optimizers(self, networks):
        node = self.section("optimizers")
        out = []
        for name, o in node.items():
            w = self.where(node, name)
            if not isinstance(o, Node):
                self.p.add(w, f"optimizer '{name}' must be a mapping with network and solver")
                continue
            self.p.keys(o, tuple(OPTIMIZER_KEYS), w, f"optimizer '{name}'", required=("network", "solver"))
            net = o.get("network")
            if "network" in o and (not isinstance(net, str) or net not in networks):
                self.p.add(self.where(o, "network"), f"optimizer '{name}': unknown network '{net}'"
                                                     f"{_suggest(net, networks)} Networks: {', '.join(map(str, networks))}")
            elif "network" in o and not networks[net].losses:
                self.p.add(self.where(o, "network"), f"optimizer '{name}': network '{net}' has no loss layer")
            v = {k: self.setting(o, k, schema.OPTIMIZER[k], schema.optimizer_label(name, k))
                 for k in ("update_interval", "solver", "weight_decay", "lr_scheduler", "warmup")}
            stype, ssettings = v["solver"]
            out.append(Optimizer(str(name), net, stype, ssettings, v["update_interval"], w, v["weight_decay"],
                                 v["lr_scheduler"], v["warmup"]))
        if not out and "optimizers" in self.raw:
            self.p.add(self.where(self.raw, "optimizers"), "'optimizers' must name at least one optimizer")
        return out

    def setting(self, node, key, setting, label):
        """The value of `key` in `node` checked by its schema `setting` (its default when left out);
        each problem is reported at the line of the key, or of the key inside a mapping value."""
        v = node.get(key, None if setting.required else setting.default)
        value, problems = schema.check(setting, v, label)
        for k, msg in problems:
            self.p.add(self.where(v, k) if k is not None and isinstance(v, Node) else self.where(node, key), msg)
        return value

    def parse_executors(self, networks):
        node = self.section("executors")
        out = {}
        for name, e in node.items():
            w = self.where(node, name)
            if not isinstance(e, Node):
                self.p.add(w, f"executor '{name}' must be a mapping with network and output")
                continue
            self.p.keys(e, ("network", "output"), w, f"executor '{name}'", required=("network", "output"))
            name_ = e.get("network")
            net = networks.get(name_) if isinstance(name_, str) else None
            if "network" in e and net is None:
                self.p.add(self.where(e, "network"), f"executor '{name}': unknown network '{e.get('network')}'"
                                                     f"{_suggest(e.get('network'), networks)}")
                continue
            if net is None:
                continue
            output = e.get("output")
            layer = net.outputs.get(output, output)
            if net.layer(layer) is None:
                self.p.add(self.where(e, "output"), f"executor '{name}': network '{net.name}' has no output "
                                                    f"or layer '{output}'")
                continue
            out[str(name)] = Executor(str(name), net.name, layer, w)
        if not out and not self.p.items:
            self.p.add(self.p.at(1), "the graph needs an 'executors:' entry naming the runtime network and output")
        return out
