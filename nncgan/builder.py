"""Validated graph -> NNabla computation graphs with shared parameters.

One ParameterScope is one set of NNabla parameters (named '<scope>/<affine|conv|...>/<W|b|...>'
as NNC names them) in the global parameter registry, whichever network uses it. A parameter
whose LRateMultiplier is 0 in a network enters that network as an unlinked view with
need_grad=False: it reads the same memory but backward never computes its gradient.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import nnabla as nn
import nnabla.functions as F
from nnabla.initializer import ConstantInitializer
from nnabla.parameter import get_parameter_or_create

from .errors import GraphError
from .graph.model import Graph, Network
from .latent import LATENT_KINDS, draw as draw_latent
from .layers import get as get_layer_type


@dataclass
class Generator:
    """An input drawn afresh for every step: NNC's Input with Generator Normal/Uniform/Constant."""

    var: nn.Variable
    kind: str
    multiplier: float
    part: slice = slice(None)  # this rank's samples of the global batch
    global_batch: int = 0      # drawn whole, as one process draws it (0: var's own batch)

    def draw(self, rng, truncation=None):
        """Draw this step's values (nncgan.latent.draw), this rank's part of the global batch."""
        if self.kind not in LATENT_KINDS:
            self.var.d = self.multiplier
            return
        shape = ((self.global_batch,) + self.var.shape[1:]) if self.global_batch else self.var.shape
        self.var.d = draw_latent(self.kind, self.multiplier, shape, rng, truncation)[self.part]


@dataclass
class BuiltNetwork:
    name: str
    batch_size: int
    data: Dict[str, List[nn.Variable]]                 # dataset variable -> Inputs it feeds
    generators: List[Generator]
    outputs: Dict[str, nn.Variable]                    # layer name (and output alias) -> Variable
    loss: nn.Variable = None                           # weighted sum of the loss layers' means
    loss_terms: Dict[str, Tuple[float, nn.Variable]] = field(default_factory=dict)
    trainable: Dict[str, Tuple[nn.Variable, float]] = field(default_factory=dict)  # path -> (param, mult)
    term_means: Dict[str, nn.Variable] = field(default_factory=dict)   # loss layer -> its mean, unweighted
    part: slice = slice(None)  # this rank's samples of a global batch (data-parallel)

    def feed(self, batch, rng):
        """Set the dataset inputs from `batch` ({variable: array}) and draw every generator."""
        for var, targets in self.data.items():
            for v in targets:
                v.d = batch[var][self.part]
        for g in self.generators:
            g.draw(rng)


class _One:
    size, rank = 1, 0


_ONE = _One()


class _LayerContext:
    """What a layer type's build() may ask for: its parameters and its inputs' logits."""

    def __init__(self, layer, lt, in_vars, logits, rng, trainable, comm=None, placeholder=False):
        self.layer, self.lt, self.placeholder = layer, lt, placeholder
        self.comm = comm or _ONE  # data-parallel ranks (train/distributed.py): sync BN when several
        self.in_vars, self.logits, self.rng, self.trainable = in_vars, logits, rng, trainable
        self.shapes = lt.param_shapes(layer.settings, layer.in_shapes)

    def param(self, pname):
        layer, lt = self.layer, self.lt
        path = layer.param_path(pname, lt.param_prefix)
        learns = pname not in lt.fixed_params
        if self.placeholder:
            init = ConstantInitializer(0.0)
        else:
            init = lt.initializer(layer.settings, pname, layer.in_shapes)
            init.rng = self.rng  # NNabla initializers draw from their own rng: make it the run's
        var = get_parameter_or_create(path, self.shapes[pname], init, need_grad=learns)
        mult = layer.lr_mult.get(pname, 0.0)
        if learns and mult > 0:
            self.trainable[path] = (var, mult)
        else:  # frozen here (or a running statistic): same memory, but no gradient is computed for it
            var = var.get_unlinked_variable(need_grad=False)
        if pname == "W" and layer.settings.get("spectral_norm"):
            from .layers.palette import spectral_norm
            return spectral_norm(layer, var, self.rng)
        return var

    def logit_of(self, i):
        return self.logits.get(id(self.in_vars[i]))

    def constant_of(self, i):
        """The value of input i when it is an Input of Generator Constant (a loss's fixed target), else None."""
        return self.logits.get(("constant", id(self.in_vars[i])))


def build_network(net: Network, batch_size: int, rng=None, comm=None, placeholder=False) -> BuiltNetwork:
    """Build `net` for `batch_size` samples. Parameters are created on first use (from `rng`;
    zeros with `placeholder`, for a caller that loads them all: drawing SRCNN's took seconds).

    With `comm` of several ranks, batch_size is global and this rank builds its slice of it."""
    rng = rng if rng is not None else np.random.RandomState(0)
    global_batch, part = batch_size, slice(None)
    if comm is not None and comm.size > 1:
        from .train.distributed import batch_part
        part = batch_part(batch_size, comm)
        batch_size = part.stop - part.start
    built = BuiltNetwork(net.name, batch_size, {}, [], {}, part=part)
    vars_, logits, loss_sum = {}, {}, []
    for layer in net.layers:
        lt = get_layer_type(layer.type)
        if lt.is_input:
            v = nn.Variable((batch_size,) + tuple(layer.shape), need_grad=False)
            s = layer.settings
            if s["generator"] == "Constant":
                logits[("constant", id(v))] = s["multiplier"]
            if s["generator"]:
                built.generators.append(Generator(v, s["generator"], s["multiplier"], part,
                                                  global_batch if part.start is not None else 0))
            else:
                built.data.setdefault(s["dataset"], []).append(v)
            vars_[layer.name] = v
            continue
        xs = [vars_[i] for i in layer.inputs]
        try:
            ctx = _LayerContext(layer, lt, xs, logits, rng, built.trainable, comm, placeholder)
            y = lt.build(layer.settings, xs, ctx)
        except (RuntimeError, ValueError, MemoryError) as e:  # NNabla's own refusal, said in its words
            raise GraphError(f"{layer.where} NNabla cannot build this {layer.type}: "
                             f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}") from None
        if layer.type == "Sigmoid":
            logits[id(y)] = xs[0]
        vars_[layer.name] = y
        if lt.is_loss:
            weight = layer.settings["weight"]
            built.loss_terms[layer.name] = (weight, y)
            term = F.mean(y)
            term.persistent = True  # kept through forward(clear_no_need_grad): each term is logged
            built.term_means[layer.name] = term
            loss_sum.append(term if weight == 1.0 else term * weight)
    built.outputs = dict(vars_)
    for alias, name in net.outputs.items():
        built.outputs[alias] = vars_[name]
    if loss_sum:
        built.loss = loss_sum[0] if len(loss_sum) == 1 else F.add_n(*loss_sum)
    return built


def build_all(graph: Graph, batch_size: int, seed: int, comm=None):
    """The networks the optimizers train, built once; parameters initialised from `seed`."""
    rng = np.random.RandomState(seed)
    built = {}
    for opt in graph.optimizers:
        if opt.network not in built:
            built[opt.network] = build_network(graph.networks[opt.network], batch_size, rng, comm)
    return built, rng
