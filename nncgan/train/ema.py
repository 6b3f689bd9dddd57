"""An exponential moving average (EMA) of the parameters the executor network draws with.

With `config.ema: D` the trained parameters that RuntimeGenerator uses get a shadow copy,
updated after every iteration as  shadow = D * shadow + (1 - D) * parameter  (before
`config.ema_start` the shadow simply follows the parameter). The shadow never feeds back into
training: it is saved beside each epoch as ema.h5 (NNabla's .h5 layout) and swapped in only
to draw images. BatchNormalization's running statistics are not trained, so they are used as is.
"""
import contextlib
from pathlib import Path

import h5py
import numpy as np
import nnabla as nn

from ..layers import get as get_layer_type

EMA_FILE = "ema.h5"


def executor_params(graph):
    """NNabla names of the parameters the default executor network reads."""
    net = graph.networks[graph.executor.network]
    names = set()
    for l in net.layers:
        lt = get_layer_type(l.type)
        if lt.params and l.in_shapes:
            names.update(l.param_path(p, lt.param_prefix) for p in lt.param_shapes(l.settings, l.in_shapes))
    return names


class EMA:
    def __init__(self, params, decay, start=0):
        self.params, self.decay, self.start = params, float(decay), int(start)
        self.shadow = {k: np.array(v.d, copy=True) for k, v in params.items()}

    @classmethod
    def for_graph(cls, graph, nets):
        """The EMA that `config.ema` asks for over what the optimizers train (None when off)."""
        if graph.config.ema is None:
            return None
        trained = {p: var for net in nets.values() for p, (var, _) in net.trainable.items()}
        used = executor_params(graph)
        return cls({p: trained[p] for p in sorted(used) if p in trained}, graph.config.ema,
                   graph.config.ema_start)

    def update(self, iteration):
        """After iteration `iteration` (0-based) has updated the parameters."""
        d = self.decay
        for k, v in self.params.items():
            if iteration < self.start:
                self.shadow[k][...] = v.d
            else:
                s = self.shadow[k]
                s *= d
                s += (1.0 - d) * v.d

    @contextlib.contextmanager
    def swapped(self):
        """The parameters hold the averages inside the block, their trained values again after it."""
        kept = {k: np.array(v.d, copy=True) for k, v in self.params.items()}
        try:
            for k, v in self.params.items():
                v.d = self.shadow[k]
            yield
        finally:
            for k, v in self.params.items():
                v.d = kept[k]

    def save(self, path):
        nn.save_parameters(str(path), {k: nn.Variable.from_numpy_array(s) for k, s in self.shadow.items()})

    def load(self, path):
        saved = read(path)
        for k in self.shadow:
            if k in saved:  # a parameter new since the save starts from its current value
                self.shadow[k][...] = saved[k]


def read(path):
    """{name: array} from an NNabla parameter .h5 file, without touching the parameter registry."""
    out = {}
    with h5py.File(str(path), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def load_into_parameters(folder):
    """Overwrite the loaded parameters with a saved epoch's EMA; False when it has none."""
    path = Path(folder) / EMA_FILE
    if not path.is_file():
        return False
    params = nn.get_parameters(grad_only=False)
    for k, a in read(path).items():
        if k in params:
            params[k].d = a
    return True
